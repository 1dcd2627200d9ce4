//! `radius`: an Access-Request (RFC 2865 §4.1) with a shared secret gets an answer whose Response
//! Authenticator is valid for that secret (§3). Access-Accept, Access-Reject and Access-Challenge
//! all mean the server is alive and shares our secret: the check does not need a real account
//! (keepalived has no RADIUS checker; ldirectord's `service = radius` likewise accepts any valid
//! answer). An answer with a wrong authenticator is down ("wrong shared secret?"); silence runs into
//! the timeout (servers drop requests from unknown clients or with a bad Message-Authenticator).
//!
//! The request carries User-Name, User-Password hidden as in §5.2, NAS-Identifier (a request must
//! carry it or NAS-IP-Address, §4.1) and Message-Authenticator (RFC 3579 §3.2, HMAC-MD5, placed
//! first as servers hardened against BlastRADIUS, CVE-2024-3596, expect; the `hmac` crate). The packet codec is pure
//! ([`access_request`], [`verify_answer`]); [`check`] only adds the UDP socket. Not here:
//! accounting, RadSec, EAP, checking the answer's attributes.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::Down;

/// RFC 2865 §4: packet codes.
pub const ACCESS_REQUEST: u8 = 1;
/// RFC 2865 §4.2.
pub const ACCESS_ACCEPT: u8 = 2;
/// RFC 2865 §4.3.
pub const ACCESS_REJECT: u8 = 3;
/// RFC 2865 §4.4.
pub const ACCESS_CHALLENGE: u8 = 11;
/// RFC 2865 §5: attribute types used here.
pub const USER_NAME: u8 = 1;
/// RFC 2865 §5.2.
pub const USER_PASSWORD: u8 = 2;
/// RFC 2865 §5.32.
pub const NAS_IDENTIFIER: u8 = 32;
/// RFC 3579 §3.2.
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// RFC 2865 §5.2: a password is at most 128 octets.
pub const MAX_PASSWORD: usize = 128;

/// A RADIUS check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Radius {
    /// The shared secret configured for this client on the server.
    pub secret: String,
    /// The User-Name sent; `probe` by default (the account need not exist).
    #[serde(default = "default_user")]
    pub user: String,
    /// The User-Password sent, hidden with the secret; empty by default.
    #[serde(default)]
    pub password: String,
    /// The NAS-Identifier sent; `lvs-probe` by default.
    #[serde(default = "default_nas")]
    pub nas_identifier: String,
}

fn default_user() -> String {
    "probe".to_string()
}

fn default_nas() -> String {
    "lvs-probe".to_string()
}

impl Radius {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.secret.is_empty() {
            out.push(("secret", "must not be empty".to_string()));
        }
        if self.password.len() > MAX_PASSWORD {
            out.push(("password", format!("at most {MAX_PASSWORD} bytes")));
        }
        for (field, v) in [
            ("user", &self.user),
            ("nas_identifier", &self.nas_identifier),
        ] {
            if v.is_empty() || v.len() > 253 {
                out.push((field, "must be 1 to 253 bytes".to_string()));
            }
        }
    }
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-MD5 (RFC 2104), for the Message-Authenticator.
pub fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    // HMAC takes keys of any length (a longer one is hashed first): this cannot fail.
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// User-Password hiding (RFC 2865 §5.2): the password padded with NULs to a multiple of 16, each
/// block XORed with MD5(secret + previous ciphertext block), the first with MD5(secret +
/// Request Authenticator).
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let len = password.len().max(1).div_ceil(16) * 16;
    let mut out = password.to_vec();
    out.resize(len, 0);
    let mut prev: Vec<u8> = authenticator.to_vec();
    for block in out.chunks_mut(16) {
        let b = md5(&[secret, &prev]);
        for (x, k) in block.iter_mut().zip(b) {
            *x ^= k;
        }
        prev = block.to_vec();
    }
    out
}

/// Appends an attribute; a value over 253 bytes (RFC 2865 §5: the length is one octet, header
/// included) is an error, never truncated.
fn attr(out: &mut Vec<u8>, kind: u8, value: &[u8]) -> Result<(), Down> {
    let len = u8::try_from(value.len() + 2).map_err(|_| {
        Down(format!(
            "attribute {kind} of {} bytes is over 253",
            value.len()
        ))
    })?;
    out.push(kind);
    out.push(len);
    out.extend_from_slice(value);
    Ok(())
}

/// An Access-Request with identifier `id` and Request Authenticator `auth` (random per request);
/// an error if a value does not fit its length field (what [`Radius`]'s validation refuses).
pub fn access_request(r: &Radius, id: u8, auth: &[u8; 16]) -> Result<Vec<u8>, Down> {
    let secret = r.secret.as_bytes();
    let mut p = vec![ACCESS_REQUEST, id, 0, 0];
    p.extend_from_slice(auth);
    let ma_at = p.len() + 2;
    attr(&mut p, MESSAGE_AUTHENTICATOR, &[0; 16])?;
    attr(&mut p, USER_NAME, r.user.as_bytes())?;
    attr(
        &mut p,
        USER_PASSWORD,
        &hide_password(r.password.as_bytes(), secret, auth),
    )?;
    attr(&mut p, NAS_IDENTIFIER, r.nas_identifier.as_bytes())?;
    // Three attributes of at most 255 bytes and a 16-byte one: always under RFC 2865 §3's 4096.
    let len = u16::try_from(p.len()).map_err(|_| Down("request too long".into()))?;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    // RFC 3579 §3.2: HMAC over the whole packet with the Message-Authenticator's value zeroed.
    let mac = hmac_md5(secret, &p);
    p[ma_at..ma_at + 16].copy_from_slice(&mac);
    Ok(p)
}

/// Checks an answer to the request `(id, auth)`: `Ok(None)` when it answers another request,
/// `Ok(Some(code))` for a well-formed answer with a valid Response Authenticator.
pub fn verify_answer(
    answer: &[u8],
    id: u8,
    auth: &[u8; 16],
    secret: &[u8],
) -> Result<Option<u8>, Down> {
    if answer.len() < 20 {
        return Err(Down(format!(
            "answer of {} bytes is too short for RADIUS",
            answer.len()
        )));
    }
    let len = u16::from_be_bytes([answer[2], answer[3]]) as usize;
    if len < 20 || len > answer.len() {
        return Err(Down(format!(
            "answer's length field {len} does not fit its {} bytes",
            answer.len()
        )));
    }
    if answer[1] != id {
        return Ok(None);
    }
    let answer = &answer[..len];
    let expected = md5(&[&answer[..4], auth, &answer[20..], secret]);
    if answer[4..20] != expected {
        return Err(Down(format!(
            "{} with a bad Response Authenticator (wrong shared secret?)",
            code_name(answer[0])
        )));
    }
    Ok(Some(answer[0]))
}

/// The name of a packet code.
pub fn code_name(code: u8) -> String {
    match code {
        ACCESS_REQUEST => "Access-Request".into(),
        ACCESS_ACCEPT => "Access-Accept".into(),
        ACCESS_REJECT => "Access-Reject".into(),
        ACCESS_CHALLENGE => "Access-Challenge".into(),
        other => format!("code {other}"),
    }
}

pub(super) async fn check(
    r: &Radius,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let id: u8 = rand::random();
    let auth: [u8; 16] = rand::random();
    let socket = super::udp::socket(addr, source).await?;
    let request = access_request(r, id, &auth)?;
    super::udp::exchange(&socket, &request, 4096, |datagram| {
        match verify_answer(datagram, id, &auth, r.secret.as_bytes()) {
            Err(e) => Some(Err(e)),
            Ok(None) => None,
            Ok(Some(code @ (ACCESS_ACCEPT | ACCESS_REJECT | ACCESS_CHALLENGE))) => {
                Some(Ok(code_name(code)))
            }
            Ok(Some(code)) => Some(Err(Down(format!(
                "answer {} to an Access-Request",
                code_name(code)
            )))),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// RFC 2865 §7.1: user nemo, password arctangent, secret xyzzy5461.
    #[test]
    fn rfc2865_example() {
        let request = hex(
            "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65 6d 6f 02 12 \
             0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03",
        );
        let auth: [u8; 16] = request[4..20].try_into().unwrap();
        assert_eq!(
            hide_password(b"arctangent", b"xyzzy5461", &auth),
            request[28..44]
        );
        let answer = hex(
            "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00 00 01 0f 06 \
             00 00 00 00 0e 06 c0 a8 01 03",
        );
        assert_eq!(
            verify_answer(&answer, 0, &auth, b"xyzzy5461").unwrap(),
            Some(ACCESS_ACCEPT)
        );
        assert!(
            verify_answer(&answer, 0, &auth, b"wrong")
                .unwrap_err()
                .0
                .contains("bad Response Authenticator")
        );
        assert_eq!(
            verify_answer(&answer, 7, &auth, b"xyzzy5461").unwrap(),
            None
        );
    }

    /// RFC 2104 appendix / RFC 2202 §2 test case 2.
    #[test]
    fn hmac_md5_known_answer() {
        let mac = hmac_md5(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.to_vec(),
            hex("75 0c 78 3e 6a b0 b5 03 ea a8 6e 31 0a 5d b7 38")
        );
    }

    #[test]
    fn long_passwords_chain_blocks() {
        let auth = [7u8; 16];
        let hidden = hide_password(&[b'x'; 20], b"s", &auth);
        assert_eq!(hidden.len(), 32);
        // The second block is keyed with the first ciphertext block.
        let b2 = md5(&[b"s", &hidden[..16]]);
        assert_eq!(hidden[16] ^ b2[0], b'x');
        assert_eq!(hidden[20] ^ b2[4], 0);
        assert_eq!(hide_password(b"", b"s", &auth).len(), 16);
    }

    #[test]
    fn request_layout_and_message_authenticator() {
        let r = Radius {
            secret: "s3cret".into(),
            user: "probe".into(),
            password: "pw".into(),
            nas_identifier: "lb1".into(),
        };
        let auth = [1u8; 16];
        let p = access_request(&r, 42, &auth).unwrap();
        assert_eq!((p[0], p[1]), (ACCESS_REQUEST, 42));
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        assert_eq!((p[20], p[21]), (MESSAGE_AUTHENTICATOR, 18));
        let mut zeroed = p.clone();
        zeroed[22..38].fill(0);
        assert_eq!(hmac_md5(b"s3cret", &zeroed), p[22..38]);
        assert_eq!(&p[38..45], b"\x01\x07probe");
    }

    /// RFC 2202 §2 test cases 6 and 7: keys longer than the block are hashed first.
    #[test]
    fn hmac_md5_long_key() {
        let key = [0xaa; 80];
        assert_eq!(
            hmac_md5(
                &key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_vec(),
            hex("6b 1a b7 fe 4b d7 bf 8f 0b 62 e6 ce 61 b9 d0 cd")
        );
    }

    #[test]
    fn values_that_do_not_fit_are_errors() {
        let mut r = Radius {
            secret: "s".into(),
            user: "u".repeat(254),
            password: String::new(),
            nas_identifier: "n".into(),
        };
        assert!(
            access_request(&r, 1, &[0; 16])
                .unwrap_err()
                .0
                .contains("over 253")
        );
        let mut p = Vec::new();
        r.problems(&mut p);
        assert_eq!(p[0].0, "user");
        r.user = "u".repeat(253);
        let req = access_request(&r, 1, &[0; 16]).unwrap();
        assert_eq!(req[38..40], [USER_NAME, 255]);
    }
}
