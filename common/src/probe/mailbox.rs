//! `pop3`, `imap` and their TLS forms `pop3s`, `imaps`: the server's greeting is positive (`+OK`,
//! RFC 1939 §4; `* OK` or `* PREAUTH`, RFC 9051 §7.1), then the session is closed politely (QUIT /
//! LOGOUT). `pop3s`/`imaps` speak TLS from the first byte (RFC 8314 §3.3, ports 995/993); `pop3` and
//! `imap` with `starttls = true` upgrade after the greeting (`STLS`, RFC 2595 §4; `STARTTLS`, RFC
//! 9051 §6.2.1), so a broken certificate or TLS setup is seen. Certificates are verified as for
//! `https` ([`super::tls`]).
//!
//! ldirectord logs in only when given credentials; this check never does. Lines are read with the
//! caps of [`super::line`]. Not here: login, mailbox selection.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncWrite, BufReader};

use super::Down;
use super::line::{REPLY_LIMIT, read_line, read_line_within, send};
use super::tls::{TlsConfigs, TlsParams};

/// A POP3 or IMAP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// `pop3`/`imap` only: upgrade to TLS after the greeting and complete the handshake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starttls: bool,
    /// TLS: the name sent as SNI and required in the certificate (default: the target's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// TLS: verify the certificate; on unless explicitly turned off.
    #[serde(default = "super::yes")]
    pub verify: bool,
    /// TLS: trust only the CA certificates of this PEM file instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            starttls: false,
            sni: None,
            verify: true,
            ca_file: None,
        }
    }
}

impl Mailbox {
    pub(super) fn tls(&self) -> TlsParams<'_> {
        TlsParams {
            sni: self.sni.as_deref(),
            verify: self.verify,
            ca_file: self.ca_file.as_deref(),
        }
    }

    /// `implicit`: the kind is TLS from the start (pop3s, imaps).
    pub(super) fn problems(
        &self,
        kind: &str,
        implicit: bool,
        out: &mut Vec<(&'static str, String)>,
    ) {
        if implicit && self.starttls {
            out.push((
                "starttls",
                format!("{kind} speaks TLS from the start; starttls applies to pop3 and imap"),
            ));
        }
        tls_field_problems(
            &format!(" or kind = \"{kind}s\""),
            implicit || self.starttls,
            self.sni.is_some(),
            self.verify,
            self.ca_file.is_some(),
            out,
        );
    }
}

/// Rejects TLS settings on a check that does no TLS (they would be silently ignored).
pub(super) fn tls_field_problems(
    hint: &str,
    tls: bool,
    sni: bool,
    verify: bool,
    ca_file: bool,
    out: &mut Vec<(&'static str, String)>,
) {
    if tls {
        return;
    }
    for (set, field) in [(sni, "sni"), (!verify, "verify"), (ca_file, "ca_file")] {
        if set {
            out.push((
                field,
                format!("applies only to TLS: set starttls = true{hint}"),
            ));
        }
    }
}

/// Which protocol.
#[derive(Debug, Clone, Copy)]
pub(super) enum Proto {
    Pop3,
    Imap,
}

impl Proto {
    fn positive(self, greeting: &str) -> bool {
        match self {
            Proto::Pop3 => greeting.starts_with("+OK"),
            Proto::Imap => greeting.starts_with("* OK") || greeting.starts_with("* PREAUTH"),
        }
    }

    fn bye(self) -> &'static str {
        match self {
            Proto::Pop3 => "QUIT",
            Proto::Imap => "a1 LOGOUT",
        }
    }
}

async fn greeting<S: AsyncBufRead + Unpin>(proto: Proto, s: &mut S) -> Result<String, Down> {
    let greeting = read_line(s, "greeting").await?;
    if !proto.positive(&greeting) {
        return Err(Down(format!(
            "greeting: {}",
            super::simpletcp::preview(greeting.as_bytes())
        )));
    }
    Ok(greeting)
}

async fn bye<S: AsyncWrite + Unpin>(proto: Proto, s: &mut S) {
    let _ = send(s, proto.bye()).await;
}

/// Asks for STARTTLS and reads the answer: `+OK` (POP3) or the tagged `a0 OK` (IMAP, after any
/// untagged lines).
async fn ask_starttls<S: AsyncBufRead + AsyncWrite + Unpin>(
    proto: Proto,
    s: &mut S,
) -> Result<(), Down> {
    match proto {
        Proto::Pop3 => {
            send(s, "STLS").await?;
            let line = read_line(s, "STLS answer").await?;
            if !line.starts_with("+OK") {
                return Err(Down(format!("STLS: {line}")));
            }
        }
        Proto::Imap => {
            send(s, "a0 STARTTLS").await?;
            // Untagged lines before the tagged answer count against one reply's cap.
            let mut budget = REPLY_LIMIT;
            loop {
                let line = read_line_within(s, "STARTTLS answer", &mut budget).await?;
                if line.starts_with("* ") {
                    continue;
                }
                if !line.starts_with("a0 OK") {
                    return Err(Down(format!("STARTTLS: {line}")));
                }
                break;
            }
        }
    }
    Ok(())
}

pub(super) async fn check(
    proto: Proto,
    implicit_tls: bool,
    m: &Mailbox,
    tls: &TlsConfigs,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let tcp = super::tcp::connect(addr, source).await?;
    if implicit_tls {
        let mut s = BufReader::new(super::tls::handshake(tls, m.tls(), addr.ip(), tcp).await?);
        let g = greeting(proto, &mut s).await?;
        bye(proto, &mut s).await;
        return Ok(g);
    }
    let mut s = BufReader::new(tcp);
    let g = greeting(proto, &mut s).await?;
    if !m.starttls {
        bye(proto, &mut s).await;
        return Ok(g);
    }
    ask_starttls(proto, &mut s).await?;
    // The server says nothing more before the handshake: the buffer is empty.
    let mut s = super::tls::handshake(tls, m.tls(), addr.ip(), s.into_inner()).await?;
    bye(proto, &mut s).await;
    Ok(format!("{g} (STARTTLS ok)"))
}
