//! `ldap`: a simple bind (anonymous by default) is answered with resultCode success (RFC 4511
//! §4.2), then the session is closed with an unbindRequest (§4.3) — ldirectord's `service = ldap`
//! binds the same way. The few BER elements (ITU-T X.690, definite lengths) are written and read
//! here ([`bind_request`], [`bind_result`]); no LDAP library. Lengths are bounded both ways: a
//! request with content over 65535 bytes is an error (never truncated), and an answer is read up to
//! [`READ_LIMIT`] bytes, a BER length announcing more being refused at once. Not here: LDAPS,
//! StartTLS, a search.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::simpletcp::{READ_LIMIT, preview};
use super::text::WireText;
use super::{Down, io_reason};

/// An LDAP bind check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ldap {
    /// The DN to bind as; empty (anonymous) by default.
    #[serde(
        default,
        skip_serializing_if = "str::is_empty",
        deserialize_with = "de_dn"
    )]
    pub dn: WireText,
    /// The password for `dn`; empty by default.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
}

fn de_dn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<WireText, D::Error> {
    super::text::wire(d, "dn")
}

impl Ldap {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        // RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind, which servers
        // accept without checking anything: it would prove nothing the anonymous bind does not.
        if let Err(e) = bind_request(&self.dn, &self.password) {
            out.push(("dn", format!("dn and password too long: {e}")));
        }
        if !self.dn.is_empty() && self.password.is_empty() {
            out.push((
                "password",
                "a bind DN needs a password (an empty one is an unauthenticated bind)".to_string(),
            ));
        }
    }
}

// BER tags (RFC 4511 §4.1.1, §4.2, §4.2.2, §4.3; X.690 §8).
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const BIND_REQUEST: u8 = 0x60;
const BIND_RESPONSE: u8 = 0x61;
const UNBIND_REQUEST: u8 = 0x42;
const EXTENDED_RESPONSE: u8 = 0x78;
const SIMPLE_AUTH: u8 = 0x80;
/// The messageID of the bind; the unbind is the next.
const BIND_ID: u8 = 1;

/// The longest BER content written: lengths are encoded in at most two bytes (X.690 §8.1.3.5), and
/// a bind request is far smaller; anything longer is refused, never truncated.
pub const MAX_CONTENT: usize = 0xffff;

/// Appends a TLV; content longer than [`MAX_CONTENT`] is an error.
fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) -> Result<(), String> {
    let n = content.len();
    let len = u16::try_from(n)
        .map_err(|_| format!("BER content of {n} bytes is longer than {MAX_CONTENT}"))?;
    let [hi, lo] = len.to_be_bytes();
    out.push(tag);
    match n {
        0..0x80 => out.push(lo),
        0x80..=0xff => out.extend_from_slice(&[0x81, lo]),
        _ => out.extend_from_slice(&[0x82, hi, lo]),
    }
    out.extend_from_slice(content);
    Ok(())
}

/// `LDAPMessage { messageID 1, bindRequest { version 3, name, simple password } }`; an error when
/// `dn` and `password` make it longer than BER lengths of two bytes allow.
pub fn bind_request(dn: &str, password: &str) -> Result<Vec<u8>, String> {
    let mut op = Vec::new();
    tlv(&mut op, INTEGER, &[3])?;
    tlv(&mut op, OCTET_STRING, dn.as_bytes())?;
    tlv(&mut op, SIMPLE_AUTH, password.as_bytes())?;
    let mut msg = Vec::new();
    tlv(&mut msg, INTEGER, &[BIND_ID])?;
    tlv(&mut msg, BIND_REQUEST, &op)?;
    let mut out = Vec::new();
    tlv(&mut out, SEQUENCE, &msg)?;
    Ok(out)
}

/// `LDAPMessage { messageID 2, unbindRequest }`.
pub fn unbind_request() -> Vec<u8> {
    vec![SEQUENCE, 5, INTEGER, 1, BIND_ID + 1, UNBIND_REQUEST, 0]
}

/// A BER element: tag, content, and its total length with the header.
type Element<'a> = (u8, &'a [u8], usize);

/// One BER element at the start of `b`; `Ok(None)` if more bytes are needed.
fn element(b: &[u8]) -> Result<Option<Element<'_>>, String> {
    if b.len() < 2 {
        return Ok(None);
    }
    let (len, head) = match b[1] {
        n if n < 0x80 => (n as usize, 2),
        0x80 => return Err("indefinite length (not allowed in LDAP)".into()),
        n => {
            let k = (n & 0x7f) as usize;
            if k > 4 {
                return Err(format!("length of {k} bytes"));
            }
            if b.len() < 2 + k {
                return Ok(None);
            }
            let len = b[2..2 + k].iter().fold(0usize, |a, &x| a << 8 | x as usize);
            (len, 2 + k)
        }
    };
    // Said at once: waiting for gigabytes announced by a hostile length would only run into the cap.
    if len > READ_LIMIT {
        return Err(format!(
            "BER length {len} is over the {READ_LIMIT}-byte cap of an answer"
        ));
    }
    if b.len() < head + len {
        return Ok(None);
    }
    Ok(Some((b[0], &b[head..head + len], head + len)))
}

fn need<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    match element(b)? {
        Some((t, content, n)) if t == tag => Ok((content, &b[n..])),
        Some((t, _, _)) => Err(format!("{what}: tag 0x{t:02x}, expected 0x{tag:02x}")),
        None => Err(format!("{what}: truncated")),
    }
}

fn integer(content: &[u8]) -> i64 {
    content.iter().fold(
        if content.first().is_some_and(|b| b & 0x80 != 0) {
            -1
        } else {
            0
        },
        |a, &x| a << 8 | x as i64,
    )
}

/// RFC 4511 §4.1.9 / appendix A: the result codes a bind may get.
pub fn result_name(code: i64) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown",
    }
}

/// Reads a complete answer message: `Ok(None)` if more bytes are needed, else the bind's
/// `(resultCode, diagnosticMessage)`.
pub fn bind_result(b: &[u8]) -> Result<Option<(i64, String)>, String> {
    if b.first().is_some_and(|&t| t != SEQUENCE) {
        return Err(format!("not an LDAP message: {}", preview(b)));
    }
    let Some((_, msg, _)) = element(b)? else {
        return Ok(None);
    };
    let (id, rest) = need(msg, INTEGER, "messageID")?;
    let (op_tag, op, _) = element(rest)?.ok_or("protocolOp: truncated")?;
    let id = integer(id);
    // A Notice of Disconnection (messageID 0, extendedResponse, §4.4.1) carries the reason too.
    if !(op_tag == BIND_RESPONSE && id == BIND_ID as i64 || op_tag == EXTENDED_RESPONSE && id == 0)
    {
        return Err(format!(
            "answer with messageID {id} and operation 0x{op_tag:02x}, expected a bindResponse"
        ));
    }
    let (code, rest) = need(op, ENUMERATED, "resultCode")?;
    let (_matched, rest) = need(rest, OCTET_STRING, "matchedDN")?;
    let (diag, _) = need(rest, OCTET_STRING, "diagnosticMessage")?;
    Ok(Some((
        integer(code),
        String::from_utf8_lossy(diag).into_owned(),
    )))
}

pub(super) async fn check(
    c: &Ldap,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut s = super::tcp::connect(addr, source).await?;
    s.write_all(&bind_request(&c.dn, &c.password).map_err(Down)?)
        .await
        .map_err(|e| io_reason("send", &e))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (code, diag) = loop {
        match bind_result(&got).map_err(Down)? {
            Some(r) => break r,
            None if got.len() >= READ_LIMIT => {
                return Err(Down(format!("answer longer than {READ_LIMIT} bytes")));
            }
            None => {}
        }
        let room = buf.len().min(READ_LIMIT - got.len());
        let n = s
            .read(&mut buf[..room])
            .await
            .map_err(|e| io_reason("read", &e))?;
        if n == 0 {
            return Err(Down(if got.is_empty() {
                "connection closed without an answer".into()
            } else {
                format!(
                    "connection closed in the middle of an answer: {}",
                    preview(&got)
                )
            }));
        }
        got.extend_from_slice(&buf[..n]);
    };
    let _ = s.write_all(&unbind_request()).await;
    let who = if c.dn.is_empty() {
        "anonymous bind"
    } else {
        "bind"
    };
    let what = format!("{who}: {code} {}", result_name(code));
    match (code, diag.trim()) {
        (0, _) => Ok(what),
        (_, "") => Err(Down(what)),
        (_, d) => Err(Down(format!("{what}: {d}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_bind_bytes() {
        // RFC 4511 §4.2 encoded by hand: SEQUENCE { 1, [APPLICATION 0] { 3, "", [0] "" } }.
        assert_eq!(
            bind_request("", "").unwrap(),
            [
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00
            ]
        );
        let long = bind_request(&"x".repeat(200), "pw").unwrap();
        assert_eq!(&long[..2], &[0x30, 0x81]);
        assert_eq!(long.len(), 3 + long[2] as usize);
        let longer = bind_request(&"x".repeat(1000), "pw").unwrap();
        assert_eq!(&longer[..2], &[0x30, 0x82]);
        assert_eq!(
            longer.len(),
            4 + u16::from_be_bytes([longer[2], longer[3]]) as usize
        );
    }

    #[test]
    fn lengths_that_do_not_fit_are_errors() {
        // The DN's own content fits in 65535 bytes; the operation around it does not.
        let e = bind_request(&"x".repeat(65530), "pw").unwrap_err();
        assert!(e.contains("longer than 65535"), "{e}");
        assert!(bind_request(&"x".repeat(70_000), "").is_err());
        let mut out = Vec::new();
        assert!(tlv(&mut out, OCTET_STRING, &[0; 0x1_0000]).is_err());
        assert!(out.is_empty(), "nothing written on error");
        tlv(&mut out, OCTET_STRING, &[0; 0xffff]).unwrap();
        assert_eq!(&out[..4], &[OCTET_STRING, 0x82, 0xff, 0xff]);
        let mut p = Vec::new();
        let c = Ldap {
            dn: WireText::new(&"x".repeat(70_000)).unwrap(),
            password: "pw".into(),
        };
        c.problems(&mut p);
        assert_eq!(p[0].0, "dn", "{p:?}");
    }

    #[test]
    fn hostile_ber_is_an_error_not_an_allocation() {
        // A length of 4 GiB - 1 in four bytes, and one in eight: refused at once.
        let e = bind_result(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02]).unwrap_err();
        assert!(e.contains("over the 65536-byte cap"), "{e}");
        assert!(bind_result(&[0x30, 0x88, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        assert!(bind_result(&[0x30, 0x80]).is_err(), "indefinite");
        // Inner lengths that point past their container are truncation errors, not panics.
        assert!(bind_result(&[0x30, 0x05, 0x02, 0x7f, 0x01, 0x61, 0x00]).is_err());
        assert!(bind_result(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        // Every prefix and every single-byte corruption of a valid answer: no panic.
        let ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        for n in 0..ok.len() {
            let _ = bind_result(&ok[..n]);
            for v in [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff] {
                let mut b = ok;
                b[n] = v;
                let _ = bind_result(&b);
            }
        }
    }

    #[test]
    fn bind_results() {
        let ok = [
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        assert_eq!(bind_result(&ok).unwrap(), Some((0, String::new())));
        assert_eq!(bind_result(&ok[..9]).unwrap(), None, "incomplete");
        let mut bad = vec![
            0x30, 0x0f, 0x02, 0x01, 0x01, 0x61, 0x0a, 0x0a, 0x01, 49, 0x04, 0x00, 0x04, 0x03,
        ];
        bad.extend_from_slice(b"bad");
        assert_eq!(bind_result(&bad).unwrap(), Some((49, "bad".into())));
        assert!(
            bind_result(b"HTTP/1.1 400 Bad Request\r\n")
                .unwrap_err()
                .starts_with("not an LDAP message")
        );
    }
}
