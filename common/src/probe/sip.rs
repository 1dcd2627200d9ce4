//! `sip`: an OPTIONS request over UDP is answered `SIP/2.0 200` (RFC 3261 §11; ldirectord's
//! `service = sip`). Provisional answers (1xx) are waited through; any other final status is down
//! with the status line. Answers to other requests (another Call-ID) are ignored; ICMP port
//! unreachable is down at once. Not here: SIP over TCP or TLS, authentication challenges (a 401/407
//! is reported as down with its status line).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::Down;
use super::simpletcp::preview;
use super::text::WireText;

/// A SIP OPTIONS check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sip {
    /// The user part of the Request-URI (`sip:user@target`); none by default (`sip:target`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::text::de_user"
    )]
    pub user: Option<WireText>,
}

impl Sip {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if let Some(u) = &self.user
            && (u.is_empty() || u.contains(|c: char| c.is_whitespace() || c == '@' || c == ':'))
        {
            out.push((
                "user",
                "must be a SIP user name (no blanks, '@' or ':')".to_string(),
            ));
        }
    }
}

/// The OPTIONS request from `local` to `target` (RFC 3261 §8.1.1: the mandatory headers; the
/// branch starts with the magic cookie `z9hG4bK`, §8.1.1.7).
pub fn request(target: SocketAddr, local: SocketAddr, user: Option<&str>, id: u64) -> String {
    let uri = match user {
        Some(u) => format!("sip:{u}@{target}"),
        None => format!("sip:{target}"),
    };
    format!(
        "OPTIONS {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{id:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag:08x}\r\n\
         To: <{uri}>\r\n\
         Call-ID: {id:016x}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        tag = id as u32,
        ip = local.ip(),
    )
}

/// The Call-ID header's value of a message (also its compact form `i:`, RFC 3261 §7.3.3).
fn call_id(msg: &str) -> Option<&str> {
    msg.lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
                .then(|| value.trim())
        })
}

/// What an answer means: `None` to keep waiting (provisional, or not ours), else the verdict.
pub fn judge(answer: &[u8], our_call_id: &str) -> Option<Result<String, Down>> {
    let text = String::from_utf8_lossy(answer);
    let status_line = text.lines().next().unwrap_or("").trim();
    let Some(rest) = status_line.strip_prefix("SIP/2.0 ") else {
        return Some(Err(Down(format!("not a SIP answer: {}", preview(answer)))));
    };
    if call_id(&text) != Some(our_call_id) {
        return None;
    }
    match rest.get(..3).and_then(|c| c.parse::<u16>().ok()) {
        Some(100..=199) => None,
        Some(200) => Some(Ok(status_line.to_string())),
        Some(_) => Some(Err(Down(format!("{status_line}, expected SIP/2.0 200")))),
        None => Some(Err(Down(format!(
            "not a SIP status line: {}",
            preview(status_line.as_bytes())
        )))),
    }
}

pub(super) async fn check(
    c: &Sip,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let socket = super::udp::socket(addr, source).await?;
    let local = socket
        .local_addr()
        .map_err(|e| super::io_reason("local address", &e))?;
    let id: u64 = rand::random();
    let msg = request(addr, local, c.user.as_deref(), id);
    let our_call_id = format!("{id:016x}@{}", local.ip());
    super::udp::exchange(&socket, msg.as_bytes(), 65536, |reply| {
        judge(reply, &our_call_id)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_the_mandatory_headers() {
        let r = request(
            "192.0.2.13:5060".parse().unwrap(),
            "192.0.2.1:40000".parse().unwrap(),
            None,
            0xabc,
        );
        assert!(
            r.starts_with("OPTIONS sip:192.0.2.13:5060 SIP/2.0\r\n"),
            "{r}"
        );
        for h in [
            "Via: SIP/2.0/UDP 192.0.2.1:40000;branch=z9hG4bK0000000000000abc",
            "Max-Forwards: 70",
            "To: <sip:192.0.2.13:5060>",
            "Call-ID: 0000000000000abc@192.0.2.1",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
        ] {
            assert!(r.contains(h), "{h} missing in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        let r6 = request(
            "[2001:db8::13]:5060".parse().unwrap(),
            "[2001:db8::1]:4000".parse().unwrap(),
            Some("ping"),
            1,
        );
        assert!(
            r6.starts_with("OPTIONS sip:ping@[2001:db8::13]:5060 SIP/2.0\r\n"),
            "{r6}"
        );
    }

    #[test]
    fn answers() {
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\ni: abc@h\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(judge(ok, "abc@h").unwrap().unwrap(), "SIP/2.0 200 OK");
        assert!(judge(ok, "other@h").is_none(), "not ours");
        let trying = b"SIP/2.0 100 Trying\r\nCall-ID: abc@h\r\n\r\n";
        assert!(judge(trying, "abc@h").is_none());
        let busy = b"SIP/2.0 503 Service Unavailable\r\nCall-ID: abc@h\r\n\r\n";
        assert_eq!(
            judge(busy, "abc@h").unwrap().unwrap_err().0,
            "SIP/2.0 503 Service Unavailable, expected SIP/2.0 200"
        );
        assert!(
            judge(b"HTTP/1.1 400 Bad Request\r\n\r\n", "abc@h")
                .unwrap()
                .is_err()
        );
    }
}
