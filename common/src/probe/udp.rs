//! `udp`: a datagram sent to the target gets a reply, optionally matching a regex (keepalived's
//! `UDP_CHECK` with `require_reply`). An ICMP port unreachable answer makes it down at once (the
//! connected socket reports it as `ECONNREFUSED`); silence makes it down at the timeout.
//!
//! [`socket`] and [`exchange`] are also the socket and request/answer steps of the other UDP kinds
//! (dns, sip, radius). A read is one datagram into a buffer of fixed size (64 KiB, 4 KiB for dns
//! and radius: a longer datagram is cut there); datagrams that answer something else are passed
//! over until the timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use super::text::Payload;
use super::{Down, Pattern, io_reason};

/// A UDP request/reply check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Udp {
    /// The datagram to send, as text with escapes (`\n`, `\xNN`); empty by default.
    #[serde(default = "empty")]
    pub send: Payload,
    /// A regex the reply must match; any reply is enough without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Pattern>,
}

fn empty() -> Payload {
    Payload::new("").expect("empty payload is valid")
}

/// A UDP socket connected to `addr` (so ICMP errors are reported), bound to `source` if given.
pub async fn socket(addr: SocketAddr, source: Option<IpAddr>) -> Result<UdpSocket, Down> {
    let local = match (source, addr) {
        (Some(s), _) => SocketAddr::new(s, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| io_reason(&format!("bind {local}"), &e))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| io_reason("connect", &e))?;
    Ok(socket)
}

/// Sends `request` on a connected `socket`, then reads datagrams (up to `max` bytes each) until
/// `judge` gives a verdict; `None` passes over a datagram that answers something else (a late answer
/// to an earlier request on a reused port).
pub(super) async fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    max: usize,
    mut judge: impl FnMut(&[u8]) -> Option<Result<String, Down>>,
) -> Result<String, Down> {
    socket.send(request).await.map_err(|e| reason(&e))?;
    let mut buf = vec![0u8; max];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| reason(&e))?;
        if let Some(verdict) = judge(&buf[..n]) {
            return verdict;
        }
    }
}

/// Maps a send/recv error on a connected UDP socket: refused means ICMP port unreachable.
pub(super) fn reason(e: &std::io::Error) -> Down {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Down("port unreachable".into())
    } else {
        io_reason("", e)
    }
}

pub(super) async fn check(
    u: &Udp,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let socket = socket(addr, source).await?;
    // The first datagram is the reply.
    exchange(&socket, &u.send.bytes(), 65536, |reply| {
        Some(match &u.expect {
            Some(re) if !re.is_match(reply) => Err(Down(format!(
                "reply does not match /{}/: {}",
                re.as_str(),
                super::simpletcp::preview(reply)
            ))),
            _ => Ok(format!("reply of {} bytes", reply.len())),
        })
    })
    .await
}
