//! `tcp`: the target accepts a TCP connection (ldirectord's `checktype = connect`, keepalived's
//! `TCP_CHECK`). The connection is closed at once; nothing is sent.
//!
//! [`connect`] is also the connection step of every TCP-based kind; [`start`] the one of checks
//! whose first move is a single write or read.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::TcpStream;

use super::{Down, io_reason};

/// A TCP connect check; no parameters of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tcp {}

/// How a check's connection ends when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// FIN, the usual orderly close.
    Orderly,
    /// RST (SO_LINGER 0), as HAProxy closes its checks: the server keeps no TIME_WAIT entry for
    /// the check, and neither side waits for the other's FIN.
    Reset,
}

/// Starts connecting to `addr`, from `source` when given, and returns at once: the stream's first
/// read or write waits for the connection and fails with the connection's error (refused,
/// unreachable…). No `getsockopt(SO_ERROR)` call on the way, unlike a full [`connect`].
pub(super) fn start(
    addr: SocketAddr,
    source: Option<IpAddr>,
    close: Close,
) -> Result<TcpStream, Down> {
    // SOCK_NONBLOCK and SOCK_CLOEXEC in the one socket(2) call.
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(|e| io_reason("socket", &e))?;
    if close == Close::Reset {
        socket
            .set_linger(Some(Duration::ZERO))
            .map_err(|e| io_reason("socket", &e))?;
    }
    if let Some(src) = source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .map_err(|e| io_reason(&format!("bind {src}"), &e))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(io_reason("", &e)),
    }
    // Registers with the runtime's reactor; readiness starts empty, so the first read or write
    // waits for the connect's outcome.
    TcpStream::from_std(socket.into()).map_err(|e| io_reason("socket", &e))
}

/// Connects to `addr`, from `source` when given.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, Down> {
    let stream = start(addr, source, Close::Orderly)?;
    stream.writable().await.map_err(|e| io_reason("", &e))?;
    if let Some(e) = stream.take_error().map_err(|e| io_reason("", &e))? {
        return Err(io_reason("", &e));
    }
    // Checks exchange a few small messages; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub(super) async fn check(addr: SocketAddr, source: Option<IpAddr>) -> Result<String, Down> {
    connect(addr, source).await?;
    Ok("connected".to_string())
}
