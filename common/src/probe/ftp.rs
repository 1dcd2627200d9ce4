//! `ftp`: the server greets with 220 and, when `user` is set, accepts the login (USER/PASS: 230,
//! RFC 959 §4.2); then QUIT (ldirectord's `service = ftp` logs in as `anonymous` by default; here
//! the login is optional). Not here: RETR of a file (ldirectord's `request`), FTPS.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use super::Down;
use super::line::{expect, read_reply, send};

/// An FTP check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ftp {
    /// Log in as this user (e.g. `anonymous`); greeting only when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The password for `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

pub(super) async fn check(
    c: &Ftp,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = BufReader::new(super::tcp::connect(addr, source).await?);
    let greeting = expect(&mut s, "greeting", 220).await?;
    let mut said = greeting;
    if let Some(user) = &c.user {
        send(&mut s, &format!("USER {user}")).await?;
        let (code, line) = read_reply(&mut s, "USER").await?;
        let line = match code {
            230 => line,
            331 | 332 => {
                send(
                    &mut s,
                    &format!("PASS {}", c.password.as_deref().unwrap_or("")),
                )
                .await?;
                expect(&mut s, "login", 230).await?
            }
            _ => return Err(Down(format!("USER: {line}"))),
        };
        said = line;
    }
    let _ = send(&mut s, "QUIT").await;
    Ok(said)
}
