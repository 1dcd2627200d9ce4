//! `ping`: the target answers ICMP echo (ICMPv6 for IPv6 targets), with `surge-ping`
//! (ldirectord's `checktype = ping`, keepalived's `PING_CHECK`).
//!
//! Up at the first echo reply; `count` echoes are sent one after another, each waiting its share of
//! the timeout. One ICMP socket per family and source address is shared by all checks. The socket
//! is an unprivileged ICMP datagram socket where `net.ipv4.ping_group_range` allows it, else a raw
//! socket (needs root or CAP_NET_RAW); the reason says which is missing when neither can be opened.
//! Not here: ICMP errors (unreachable, TTL exceeded) are not reported separately — they are "no
//! reply".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

use super::Down;

/// 56 bytes of payload, what iputils `ping` sends by default.
const PAYLOAD: [u8; 56] = [0; 56];

/// An ICMP echo check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    /// How many echoes at most (1 by default, like ldirectord); the first reply makes it up. Each echo waits 90% of the timeout divided by `count`.
    #[serde(default = "one")]
    pub count: u8,
}

fn one() -> u8 {
    1
}

impl Default for Ping {
    fn default() -> Self {
        Ping { count: 1 }
    }
}

impl Ping {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.count == 0 {
            out.push(("count", "must be at least 1".to_string()));
        }
    }
}

/// ICMP clients, one per (family, source).
#[derive(Default)]
pub(super) struct Pingers {
    clients: Mutex<HashMap<(bool, Option<IpAddr>), Client>>,
    ident: AtomicU16,
}

/// The shared ICMP socket's receive buffer: room for a burst of replies. Thousands of pings sent
/// together (a monitor with 2,500 ping services starting) get their replies together, and the
/// default buffer (about 200 KiB, some 300 replies) dropped the rest: those pings timed out and
/// their hosts were falsely down. As root the system limit (`net.core.rmem_max`) is passed
/// (SO_RCVBUFFORCE); otherwise the buffer grows up to it.
const RECEIVE_BUFFER: usize = 4 << 20;

fn grow_receive_buffer(fd: std::os::fd::RawFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    // SAFETY: `fd` is the socket of a surge-ping client the caller holds, open for this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
    }
}

impl Pingers {
    fn client(&self, v6: bool, source: Option<IpAddr>) -> Result<Client, Down> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&(v6, source)) {
            return Ok(c.clone());
        }
        let mut b = Config::builder().kind(if v6 { ICMP::V6 } else { ICMP::V4 });
        if let Some(src) = source {
            b = b.bind(SocketAddr::new(src, 0));
        }
        let client = Client::new(&b.build()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Down("cannot open an ICMP socket: run as root, or allow this group in net.ipv4.ping_group_range".into())
            } else {
                super::io_reason("cannot open an ICMP socket", &e)
            }
        })?;
        grow_receive_buffer(client.get_socket().get_native_sock());
        clients.insert((v6, source), client.clone());
        Ok(client)
    }

    pub(super) async fn check(
        &self,
        p: &Ping,
        target: IpAddr,
        source: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<String, Down> {
        let client = self.client(target.is_ipv6(), source)?;
        let ident =
            PingIdentifier(self.ident.fetch_add(1, Ordering::Relaxed) ^ std::process::id() as u16);
        let mut pinger = client.pinger(target, ident).await;
        let count = p.count.max(1);
        // Leave a tenth of the timeout so "no reply" is reported rather than the outer timeout.
        pinger.timeout(timeout * 9 / 10 / u32::from(count));
        for seq in 0..u16::from(count) {
            match pinger.ping(PingSequence(seq), &PAYLOAD).await {
                Ok(_) => return Ok(format!("echo reply seq={seq}")),
                Err(SurgeError::Timeout { .. }) => continue,
                Err(SurgeError::IOError(e)) => return Err(super::io_reason("send", &e)),
                Err(e) => return Err(Down(format!("ping: {e}"))),
            }
        }
        Err(Down(format!("no echo reply ({count} sent)")))
    }
}
