//! `pgsql`: PostgreSQL answers. By default an SSLRequest (PostgreSQL protocol, "Message Formats":
//! length 8, code 80877103) must get the one-byte answer `S` or `N`; the connection is then closed,
//! which the server does not log (it expects clients that dislike the answer to leave). With
//! `user`, a StartupMessage (protocol 3.0) is sent instead and the server must answer with an
//! authentication request (`R`) — it is up and reading its users — or an error (`E`) about the
//! login (wrong user, database, pg_hba.conf rule): the server is up and says no to us. An error of
//! class 57 (operator intervention: starting up, shutting down) or 53 (insufficient resources: too
//! many connections) is down with its message. An answer announcing more than 16 KiB is down at
//! once, before it is read. Not here: authenticating, TLS, queries.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::simpletcp::preview;
use super::text::WireText;
use super::{Down, io_reason};

/// A PostgreSQL check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pgsql {
    /// Send a StartupMessage for this user instead of an SSLRequest.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::text::de_user"
    )]
    pub user: Option<WireText>,
    /// With `user`: the database named in the StartupMessage (default: the user's name).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_database"
    )]
    pub database: Option<WireText>,
}

fn de_database<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WireText>, D::Error> {
    super::text::wire_opt(d, "database")
}

impl Pgsql {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.database.is_some() && self.user.is_none() {
            out.push(("database", "needs user".to_string()));
        }
        for (field, v) in [("user", &self.user), ("database", &self.database)] {
            if v.as_ref().is_some_and(|v| v.is_empty()) {
                out.push((field, "must be a non-empty name".to_string()));
            }
        }
        if let Some(user) = &self.user
            && let Err(Down(e)) = startup_message(user, self.database.as_deref())
        {
            out.push(("user", e));
        }
    }
}

/// The SSLRequest code (1234 << 16 | 5679).
pub const SSL_REQUEST: u32 = 80877103;
/// Protocol version 3.0.
pub const PROTOCOL_3: u32 = 196608;

/// The SSLRequest message.
pub fn ssl_request() -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&8u32.to_be_bytes());
    m[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    m
}

/// The longest StartupMessage a server accepts (`MAX_STARTUP_PACKET_LENGTH`, src/include/libpq/pqcomm.h).
pub const MAX_STARTUP: usize = 10000;

/// The longest answer read (and the cap of the read): an authentication request or an error.
pub const MAX_ANSWER: usize = 16 * 1024;

/// A StartupMessage for `user` and `database`; an error when it would be longer than
/// [`MAX_STARTUP`] (never truncated).
pub fn startup_message(user: &str, database: Option<&str>) -> Result<Vec<u8>, Down> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for (k, v) in [("user", Some(user)), ("database", database)] {
        if let Some(v) = v {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
    }
    body.push(0);
    let len = body.len() + 4;
    if len > MAX_STARTUP {
        return Err(Down(format!(
            "user and database make a startup message of {len} bytes, over PostgreSQL's {MAX_STARTUP}"
        )));
    }
    let mut m = (len as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    Ok(m)
}

/// The fields of an ErrorResponse body: SQLSTATE (`C`) and message (`M`).
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
            Some((b'M', v)) => msg = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    (code, msg)
}

/// What an answer to the StartupMessage means (`tag`, body).
pub fn judge_startup(tag: u8, body: &[u8]) -> Result<String, Down> {
    match tag {
        b'R' => {
            let method = body
                .get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap_or([0; 4])));
            let what = match method {
                Some(0) => "authentication ok (trust)",
                Some(3) => "asks for a password",
                Some(5) => "asks for an MD5 password",
                Some(10) => "asks for SASL authentication",
                _ => "asks for authentication",
            };
            Ok(what.to_string())
        }
        b'E' => {
            let (code, msg) = error_fields(body);
            if code.starts_with("57") || code.starts_with("53") {
                Err(Down(format!("error {code}: {msg}")))
            } else {
                Ok(format!("refuses the login: {code} {msg}"))
            }
        }
        other => Err(Down(format!(
            "answer {:?}, expected an authentication request or an error",
            other as char
        ))),
    }
}

pub(super) async fn check(
    c: &Pgsql,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = super::tcp::connect(addr, source).await?;
    let Some(user) = &c.user else {
        s.write_all(&ssl_request())
            .await
            .map_err(|e| io_reason("send", &e))?;
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.map_err(|e| io_reason("read", &e))?;
        return match (n, b[0]) {
            (0, _) => Err(Down("connection closed without an answer".into())),
            (_, b'S') => Ok("SSLRequest answered S (TLS available)".into()),
            (_, b'N') => Ok("SSLRequest answered N (no TLS)".into()),
            (_, other) => Err(Down(format!(
                "SSLRequest answered {}, expected S or N",
                preview(&[other])
            ))),
        };
    };
    s.write_all(&startup_message(user, c.database.as_deref())?)
        .await
        .map_err(|e| io_reason("send", &e))?;
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Down("connection closed without an answer".into())
        } else {
            io_reason("read", &e)
        }
    })?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len < 4 {
        return Err(Down(format!("not a PostgreSQL answer: {}", preview(&head))));
    }
    if len > MAX_ANSWER {
        return Err(Down(format!(
            "not a PostgreSQL answer: {len} bytes, over the {MAX_ANSWER}-byte cap: {}",
            preview(&head)
        )));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body)
        .await
        .map_err(|e| io_reason("read", &e))?;
    let verdict = judge_startup(head[0], &body);
    // Terminate ('X'), so the server logs no unexpected EOF.
    let _ = s.write_all(&[b'X', 0, 0, 0, 4]).await;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(ssl_request(), [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        let m = startup_message("probe", None).unwrap();
        assert_eq!(
            u32::from_be_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(&m[4..8], &PROTOCOL_3.to_be_bytes());
        assert_eq!(&m[8..], b"user\0probe\0\0");
        let long = "u".repeat(MAX_STARTUP);
        assert!(
            startup_message(&long, None)
                .unwrap_err()
                .0
                .contains("over PostgreSQL's 10000")
        );
    }

    #[test]
    fn startup_answers() {
        assert!(
            judge_startup(b'R', &10u32.to_be_bytes())
                .unwrap()
                .contains("SASL")
        );
        let e = b"SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0";
        assert_eq!(
            judge_startup(b'E', e).unwrap(),
            "refuses the login: 28000 no pg_hba.conf entry"
        );
        let e = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(
            judge_startup(b'E', e).unwrap_err().0,
            "error 57P03: the database system is starting up"
        );
        assert!(judge_startup(b'H', b"").is_err());
    }
}
