//! `smtp`: the server greets with 220, answers EHLO with 250, and is left with QUIT (ldirectord's
//! `service = smtp`, keepalived's `SMTP_CHECK`). With `starttls = true` the session is upgraded
//! (STARTTLS → 220, RFC 3207 §4), the certificate verified as for `https` ([`super::tls`]), and EHLO
//! repeated over TLS. Not here: authentication, sending mail, implicit-TLS submission (port 465).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use super::Down;
use super::line::{expect, send};
use super::text::WireText;
use super::tls::{TlsConfigs, TlsParams};

/// An SMTP check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// The name given in EHLO (keepalived's `helo_name`); `localhost` by default.
    #[serde(default = "localhost", deserialize_with = "de_helo")]
    pub helo: WireText,
    /// Upgrade to TLS with STARTTLS after EHLO and complete the handshake.
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

fn de_helo<'de, D: serde::Deserializer<'de>>(d: D) -> Result<WireText, D::Error> {
    super::text::wire(d, "helo")
}

fn localhost() -> WireText {
    WireText::new("localhost").unwrap_or_default()
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            helo: localhost(),
            starttls: false,
            sni: None,
            verify: true,
            ca_file: None,
        }
    }
}

impl Smtp {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        // RFC 5321 §4.1.1.1: EHLO takes one domain or address literal.
        if self.helo.is_empty() || self.helo.contains(char::is_whitespace) {
            out.push(("helo", "must be one name without blanks".to_string()));
        }
        super::mailbox::tls_field_problems(
            "",
            self.starttls,
            self.sni.is_some(),
            self.verify,
            self.ca_file.is_some(),
            out,
        );
    }
}

pub(super) async fn check(
    c: &Smtp,
    tls: &TlsConfigs,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = BufReader::new(super::tcp::connect(addr, source).await?);
    let greeting = expect(&mut s, "greeting", 220).await?;
    send(&mut s, &format!("EHLO {}", c.helo)).await?;
    expect(&mut s, "EHLO", 250).await?;
    if !c.starttls {
        send(&mut s, "QUIT").await?;
        // The server's 221 is not waited for: the service has proven itself already.
        return Ok(greeting);
    }
    send(&mut s, "STARTTLS").await?;
    expect(&mut s, "STARTTLS", 220).await?;
    let params = TlsParams {
        sni: c.sni.as_deref(),
        verify: c.verify,
        ca_file: c.ca_file.as_deref(),
    };
    let tls = super::tls::handshake(tls, params, addr.ip(), s.into_inner()).await?;
    let mut s = BufReader::new(tls);
    // RFC 3207 §4.2: the client forgets what it knew and says EHLO again.
    send(&mut s, &format!("EHLO {}", c.helo)).await?;
    expect(&mut s, "EHLO after STARTTLS", 250).await?;
    let _ = send(&mut s, "QUIT").await;
    Ok(format!("{greeting} (STARTTLS ok)"))
}
