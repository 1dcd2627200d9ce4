//! `ftp`: the server greets with 220 and, when `user` is set, accepts the login (USER/PASS: 230,
//! RFC 959 §4.2); with `retr`, a file is downloaded over a passive data connection (PASV, or EPSV
//! for IPv6, RFC 2428 §3) and its content may have to match `expect` (ldirectord's `service = ftp`
//! with `request`/`receive`); then QUIT.
//!
//! The data connection goes to the target's address whatever address the PASV answer names: the
//! real server is the one being checked, and a server cannot point the probe elsewhere (RFC 2577
//! §3, bounce attacks). A download logs in as `anonymous` unless `user` is given, as ldirectord
//! does. Not here: active mode (PORT), FTPS.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWrite, BufReader};

use super::line::{expect, read_reply, send};
use super::simpletcp::{READ_LIMIT, preview};
use super::text::WireText;
use super::{Down, Pattern, io_reason};

/// The user a download logs in as when none is configured (ldirectord's default login).
pub const ANONYMOUS: &str = "anonymous";

/// An FTP check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ftp {
    /// Log in as this user (e.g. `anonymous`); greeting only when absent (unless `retr` is set).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::text::de_user"
    )]
    pub user: Option<WireText>,
    /// The password for `user`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_password"
    )]
    pub password: Option<WireText>,
    /// A file to download (ldirectord's `request`), e.g. `/health.txt`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_retr"
    )]
    pub retr: Option<WireText>,
    /// A regex the file's content must match (ldirectord's `receive`); needs `retr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Pattern>,
}

fn de_password<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WireText>, D::Error> {
    super::text::wire_opt(d, "password")
}

fn de_retr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WireText>, D::Error> {
    super::text::wire_opt(d, "retr")
}

impl Ftp {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.expect.is_some() && self.retr.is_none() {
            out.push((
                "expect",
                "needs retr: the file whose content is matched".to_string(),
            ));
        }
        if self.password.is_some() && self.user.is_none() {
            out.push(("password", "needs user".to_string()));
        }
        if let Some(f) = &self.retr
            && f.is_empty()
        {
            out.push(("retr", "must be a file name".to_string()));
        }
    }
}

async fn login<S: AsyncBufRead + AsyncWrite + Unpin>(
    s: &mut S,
    user: &str,
    password: &str,
) -> Result<String, Down> {
    send(s, &format!("USER {user}")).await?;
    let (code, line) = read_reply(s, "USER").await?;
    match code {
        230 => Ok(line),
        331 | 332 => {
            send(s, &format!("PASS {password}")).await?;
            expect(s, "login", 230).await
        }
        _ => Err(Down(format!("USER: {line}"))),
    }
}

/// The data port of a PASV answer `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` (RFC 959 §4.1.2;
/// the host part is ignored) or an EPSV answer `229 … (|||port|)` (RFC 2428 §3).
pub fn passive_port(line: &str) -> Option<u16> {
    let open = line.find('(')?;
    let inner = &line[open + 1..open + 1 + line[open + 1..].find(')')?];
    if let Some(rest) = inner.strip_prefix("|||") {
        return rest.strip_suffix('|')?.parse().ok();
    }
    let n: Vec<u16> = inner
        .split(',')
        .map(|x| x.trim().parse::<u8>().map(u16::from))
        .collect::<Result<_, _>>()
        .ok()?;
    (n.len() == 6).then(|| n[4] * 256 + n[5])
}

async fn download<S: AsyncBufRead + AsyncWrite + Unpin>(
    s: &mut S,
    file: &str,
    re: Option<&Pattern>,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    send(s, "TYPE I").await?;
    expect(s, "TYPE I", 200).await?;
    let (cmd, ok) = if addr.is_ipv4() {
        ("PASV", 227)
    } else {
        ("EPSV", 229)
    };
    send(s, cmd).await?;
    let line = expect(s, cmd, ok).await?;
    let port = passive_port(&line).ok_or_else(|| {
        Down(format!(
            "{cmd}: no data port in {}",
            preview(line.as_bytes())
        ))
    })?;
    let mut data = super::tcp::connect(SocketAddr::new(addr.ip(), port), source)
        .await
        .map_err(|Down(r)| Down(format!("data connection to port {port}: {r}")))?;
    send(s, &format!("RETR {file}")).await?;
    let (code, line) = read_reply(s, "RETR").await?;
    if code != 125 && code != 150 {
        return Err(Down(format!("RETR {file}: {line}")));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if re.is_some_and(|re| re.is_match(&got)) {
            // Matched: the rest of the file is not needed (the server sees an aborted transfer).
            drop(data);
            let _ = send(s, "QUIT").await;
            return Ok(format!("RETR {file}: content matches"));
        }
        if got.len() >= READ_LIMIT {
            if let Some(re) = re {
                return Err(Down(format!(
                    "RETR {file}: no match for /{}/ in the first {READ_LIMIT} bytes (the read cap)",
                    re.as_str()
                )));
            }
            break;
        }
        let room = buf.len().min(READ_LIMIT - got.len());
        let n = data
            .read(&mut buf[..room])
            .await
            .map_err(|e| io_reason("reading the data connection", &e))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    drop(data);
    if let Some(re) = re {
        return Err(Down(format!(
            "RETR {file}: content does not match /{}/: {}",
            re.as_str(),
            preview(&got)
        )));
    }
    let (code, line) = read_reply(s, "end of transfer").await?;
    if code != 226 && code != 250 {
        return Err(Down(format!("RETR {file}: {line}")));
    }
    let _ = send(s, "QUIT").await;
    Ok(format!("RETR {file}: {} bytes", got.len()))
}

pub(super) async fn check(
    c: &Ftp,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = BufReader::new(super::tcp::connect(addr, source).await?);
    let greeting = expect(&mut s, "greeting", 220).await?;
    let user = c.user.as_deref().or(c.retr.as_ref().map(|_| ANONYMOUS));
    let Some(user) = user else {
        let _ = send(&mut s, "QUIT").await;
        return Ok(greeting);
    };
    // An anonymous login traditionally gives an e-mail address as password (RFC 1635 §2).
    let password = c.password.as_deref().unwrap_or("probe@");
    let said = login(&mut s, user, password).await?;
    match &c.retr {
        Some(file) => download(&mut s, file, c.expect.as_ref(), addr, source).await,
        None => {
            let _ = send(&mut s, "QUIT").await;
            Ok(said)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_ports() {
        assert_eq!(
            passive_port("227 Entering Passive Mode (192,0,2,13,195,80)."),
            Some(195 * 256 + 80)
        );
        assert_eq!(
            passive_port("229 Entering Extended Passive Mode (|||50000|)"),
            Some(50000)
        );
        assert_eq!(passive_port("227 Entering Passive Mode"), None);
        assert_eq!(passive_port("227 (1,2,3,4,5)"), None);
        assert_eq!(passive_port("227 (1,2,3,4,300,1)"), None);
    }
}
