//! `tcp`: the target accepts a TCP connection (ldirectord's `checktype = connect`, keepalived's
//! `TCP_CHECK`). The connection is closed at once; nothing is sent.
//!
//! [`connect`] is also the connection step of every TCP-based kind.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};

use super::{Down, io_reason};

/// A TCP connect check; no parameters of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tcp {}

/// Connects to `addr`, from `source` when given.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, Down> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| io_reason("socket", &e))?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| io_reason(&format!("bind {src}"), &e))?;
    }
    let stream = socket.connect(addr).await.map_err(|e| io_reason("", &e))?;
    // Checks exchange a few small messages; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub(super) async fn check(addr: SocketAddr, source: Option<IpAddr>) -> Result<String, Down> {
    connect(addr, source).await?;
    Ok("connected".to_string())
}
