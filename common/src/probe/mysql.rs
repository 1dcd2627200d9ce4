//! `mysql`: the server's initial handshake packet says protocol 10 and its version (MySQL client/server
//! protocol, "Protocol::HandshakeV10"); an error packet instead (too many connections, host not
//! allowed) is down with the server's message. MariaDB speaks the same.
//!
//! With `user`, the check logs in as that user with an empty password (a HandshakeResponse41, an
//! empty answer to any auth switch) and expects OK, then sends COM_QUIT — as haproxy's `mysql-check
//! user`. Without it the connection is closed after the greeting, which the server counts as an
//! interrupted connection: after `max_connect_errors` of them in a row it blocks the director's
//! address until `FLUSH HOSTS`, so give a `user` (`CREATE USER 'probe'@'192.0.2.1'`, no
//! privileges) when the server sees no other traffic from the director. A packet announcing more
//! than 64 KiB is down at once, before anything is read or allocated for it. Not here: passwords,
//! TLS, queries.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::simpletcp::preview;
use super::text::WireText;
use super::{Down, io_reason};

/// A MySQL/MariaDB check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mysql {
    /// Log in as this user, without a password; greeting only when absent. At most
    /// [`MAX_USER`] bytes, no control characters.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::text::de_user"
    )]
    pub user: Option<WireText>,
}

/// The longest user name accepted: MariaDB's limit is 80 characters, MySQL's 32 (`mysql.user`).
pub const MAX_USER: usize = 255;

impl Mysql {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if let Some(u) = &self.user
            && (u.is_empty() || u.len() > MAX_USER)
        {
            out.push(("user", format!("must be 1 to {MAX_USER} bytes")));
        }
    }
}

/// The largest packet accepted (and the cap of every read): greetings and OK/ERR packets are far smaller, and anything bigger
/// is not a MySQL server talking.
const MAX_PACKET: usize = 64 * 1024;
// Capability flags (include/mysql_com.h): CLIENT_LONG_PASSWORD, CLIENT_PROTOCOL_41,
// CLIENT_SECURE_CONNECTION, CLIENT_PLUGIN_AUTH.
const CAPABILITIES: u32 = 0x0000_0001 | 0x0000_0200 | 0x0000_8000 | 0x0008_0000;
/// utf8mb4_general_ci.
const CHARSET: u8 = 45;
/// Packet headers of OK, ERR and auth switch (EOF) packets.
const OK: u8 = 0x00;
const ERR: u8 = 0xff;
const AUTH_SWITCH: u8 = 0xfe;

/// Reads one packet: `(sequence id, payload)`.
async fn read_packet<S: AsyncRead + Unpin>(s: &mut S, what: &str) -> Result<(u8, Vec<u8>), Down> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Down(format!("connection closed before the {what}"))
        } else {
            io_reason(&format!("reading the {what}"), &e)
        }
    })?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    if len > MAX_PACKET {
        return Err(Down(format!(
            "not a MySQL {what}: packet of {len} bytes, over the {MAX_PACKET}-byte cap: {}",
            preview(&head)
        )));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)
        .await
        .map_err(|e| io_reason(&format!("reading the {what}"), &e))?;
    Ok((head[3], payload))
}

async fn write_packet<S: AsyncWrite + Unpin>(
    s: &mut S,
    seq: u8,
    payload: &[u8],
) -> Result<(), Down> {
    // The length field has three bytes: a longer payload is an error, never truncated.
    let mut p = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n < 1 << 24)
        .ok_or_else(|| Down(format!("packet of {} bytes is too long", payload.len())))?
        .to_le_bytes();
    p[3] = seq;
    let mut out = p.to_vec();
    out.extend_from_slice(payload);
    s.write_all(&out).await.map_err(|e| io_reason("send", &e))
}

/// An ERR packet's `error NNNN: message` (the SQL state marker `#XXXXX` skipped).
pub fn error_text(p: &[u8]) -> String {
    if p.len() < 3 {
        return "error packet".into();
    }
    let code = u16::from_le_bytes([p[1], p[2]]);
    let mut msg = &p[3..];
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    format!("error {code}: {}", String::from_utf8_lossy(msg).trim())
}

/// The server version of a HandshakeV10 payload, or why it is not one.
pub fn greeting_version(p: &[u8]) -> Result<String, Down> {
    match p.first() {
        Some(&10) => {
            let end = p[1..].iter().position(|&b| b == 0).ok_or_else(|| {
                Down(format!("greeting without a version string: {}", preview(p)))
            })?;
            Ok(String::from_utf8_lossy(&p[1..1 + end]).into_owned())
        }
        Some(&ERR) => Err(Down(error_text(p))),
        Some(&v) => Err(Down(format!(
            "protocol version {v}, expected 10: {}",
            preview(p)
        ))),
        None => Err(Down("empty greeting".into())),
    }
}

/// HandshakeResponse41 for `user` with an empty password, naming `mysql_native_password`.
pub fn login_packet(user: &str) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&CAPABILITIES.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(CHARSET);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    p.push(0); // auth response: length 0 (empty password)
    p.extend_from_slice(b"mysql_native_password\0");
    p
}

pub(super) async fn check(
    c: &Mysql,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = super::tcp::connect(addr, source).await?;
    let (_, greeting) = read_packet(&mut s, "greeting").await?;
    let version = greeting_version(&greeting)?;
    let Some(user) = &c.user else {
        return Ok(format!("protocol 10, server {version}"));
    };
    write_packet(&mut s, 1, &login_packet(user)).await?;
    let (mut n, mut answer) = read_packet(&mut s, "login answer").await?;
    // An auth switch to another plugin: an empty password is an empty answer in every plugin.
    for _ in 0..2 {
        if answer.first() != Some(&AUTH_SWITCH) || answer.len() < 2 {
            break;
        }
        write_packet(&mut s, n.wrapping_add(1), &[]).await?;
        (n, answer) = read_packet(&mut s, "login answer").await?;
    }
    match answer.first() {
        Some(&OK) => {
            // COM_QUIT (sequence 0: a new command).
            let _ = write_packet(&mut s, 0, &[0x01]).await;
            Ok(format!("server {version}, logged in as {user}"))
        }
        Some(&ERR) => Err(Down(format!("login as {user}: {}", error_text(&answer)))),
        _ => Err(Down(format!(
            "login as {user}: unexpected answer {}",
            preview(&answer)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_and_errors() {
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.6-MariaDB-0+deb12u1\0\x05\0\0\0");
        assert_eq!(greeting_version(&g).unwrap(), "10.11.6-MariaDB-0+deb12u1");
        let mut e = vec![0xff, 0x10, 0x04];
        e.extend_from_slice(b"Too many connections");
        assert_eq!(
            greeting_version(&e).unwrap_err().0,
            "error 1040: Too many connections"
        );
        let mut e41 = vec![0xff, 0x15, 0x04, b'#'];
        e41.extend_from_slice(b"28000Access denied");
        assert_eq!(error_text(&e41), "error 1045: Access denied");
        assert!(
            greeting_version(&[9, b'x'])
                .unwrap_err()
                .0
                .starts_with("protocol version 9")
        );
    }

    #[tokio::test]
    async fn lengths_that_do_not_fit_are_errors() {
        let mut out = Vec::new();
        let max = vec![0u8; (1 << 24) - 1];
        write_packet(&mut out, 3, &max).await.unwrap();
        assert_eq!(out[..4], [0xff, 0xff, 0xff, 3]);
        let mut out = Vec::new();
        let e = write_packet(&mut out, 0, &vec![0u8; 1 << 24])
            .await
            .unwrap_err();
        assert!(e.0.contains("too long"), "{e}");
        assert!(out.is_empty(), "nothing written");
        let mut p = Vec::new();
        let long = Mysql {
            user: Some(WireText::new(&"u".repeat(MAX_USER + 1)).unwrap()),
        };
        long.problems(&mut p);
        assert_eq!(p[0].0, "user");
    }

    #[tokio::test]
    async fn a_packet_over_the_cap_is_refused_before_it_is_read() {
        // The header announces 16 MiB; nothing of it follows.
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0];
        let e = read_packet(&mut r, "greeting").await.unwrap_err();
        assert!(e.0.contains("over the 65536-byte cap"), "{e}");
    }

    #[test]
    fn login_packet_layout() {
        let p = login_packet("probe");
        assert_eq!(&p[..4], &CAPABILITIES.to_le_bytes());
        assert_eq!(&p[32..38], b"probe\0");
        assert_eq!(p[38], 0);
        assert!(p.ends_with(b"mysql_native_password\0"));
    }
}
