//! `simpletcp`: connect, send some bytes, and read until the answer matches a regex (ldirectord's
//! `service = simpletcp` with `request`/`receive`). Reading stops at the first match, at end of
//! stream, or after [`READ_LIMIT`] bytes (the cap: down at once, naming it); a stream that stays
//! open without a match runs into the timeout.
//!
//! [`exchange`] is the same read loop for other line-based kinds.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::text::Payload;
use super::{Down, Pattern, io_reason};

/// How much of an answer is searched: 64 KiB.
pub const READ_LIMIT: usize = 64 * 1024;

/// A send-and-expect check over TCP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleTcp {
    /// Sent after connecting, as text with escapes (`\r\n`, `\xNN`); nothing when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Payload>,
    /// The regex the answer must match.
    pub expect: Pattern,
}

/// Sends `send` (if any) and reads until `expect` matches what was read so far; returns the bytes.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    send: Option<&[u8]>,
    expect: &Pattern,
) -> Result<Vec<u8>, Down> {
    if let Some(bytes) = send
        && !bytes.is_empty()
    {
        stream
            .write_all(bytes)
            .await
            .map_err(|e| io_reason("send", &e))?;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if expect.is_match(&got) {
            return Ok(got);
        }
        if got.len() >= READ_LIMIT {
            return Err(Down(format!(
                "no match for /{}/ in the first {READ_LIMIT} bytes (the read cap): {}",
                expect.as_str(),
                preview(&got)
            )));
        }
        let room = buf.len().min(READ_LIMIT - got.len());
        let n = stream
            .read(&mut buf[..room])
            .await
            .map_err(|e| io_reason("read", &e))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    if got.is_empty() {
        Err(Down("connection closed without an answer".into()))
    } else {
        Err(Down(format!(
            "answer does not match /{}/: {}",
            expect.as_str(),
            preview(&got)
        )))
    }
}

/// The start of `bytes` for a reason: up to 60 characters, control characters escaped.
pub fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == 60 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

pub(super) async fn check(
    s: &SimpleTcp,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let mut stream = super::tcp::connect(addr, source).await?;
    let send = s.send.as_ref().map(Payload::bytes);
    let got = exchange(&mut stream, send.as_deref(), &s.expect).await?;
    Ok(format!("answer matches: {}", preview(&got)))
}
