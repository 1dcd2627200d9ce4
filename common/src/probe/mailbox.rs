//! `pop3` and `imap`: the server's greeting is positive (`+OK`, RFC 1939 §4; `* OK`, RFC 9051
//! §7.1.1), then the session is closed politely (QUIT / LOGOUT). ldirectord logs in only when given
//! credentials; this check never does. Not here: TLS variants (pop3s, imaps), login.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use super::Down;
use super::line::{read_line, send};

/// A POP3 or IMAP greeting check; no parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {}

/// Which protocol.
#[derive(Debug, Clone, Copy)]
pub(super) enum Proto {
    Pop3,
    Imap,
}

pub(super) async fn check(
    proto: Proto,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = BufReader::new(super::tcp::connect(addr, source).await?);
    let greeting = read_line(&mut s, "greeting").await?;
    let (ok, bye) = match proto {
        Proto::Pop3 => (greeting.starts_with("+OK"), "QUIT"),
        Proto::Imap => (
            greeting.starts_with("* OK") || greeting.starts_with("* PREAUTH"),
            "a1 LOGOUT",
        ),
    };
    if !ok {
        return Err(Down(format!(
            "greeting: {}",
            super::simpletcp::preview(greeting.as_bytes())
        )));
    }
    let _ = send(&mut s, bye).await;
    Ok(greeting)
}
