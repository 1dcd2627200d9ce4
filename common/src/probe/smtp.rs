//! `smtp`: the server greets with 220, answers EHLO with 250, and is left with QUIT (ldirectord's
//! `service = smtp`, keepalived's `SMTP_CHECK`). Not here: STARTTLS, authentication, sending mail.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use super::Down;
use super::line::{expect, send};

/// An SMTP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// The name given in EHLO (keepalived's `helo_name`); `localhost` by default.
    #[serde(default = "localhost")]
    pub helo: String,
}

fn localhost() -> String {
    "localhost".to_string()
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp { helo: localhost() }
    }
}

pub(super) async fn check(
    c: &Smtp,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = BufReader::new(super::tcp::connect(addr, source).await?);
    let greeting = expect(&mut s, "greeting", 220).await?;
    send(&mut s, &format!("EHLO {}", c.helo)).await?;
    expect(&mut s, "EHLO", 250).await?;
    send(&mut s, "QUIT").await?;
    // The server's 221 is not waited for: the service has proven itself already.
    Ok(greeting)
}
