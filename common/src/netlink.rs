//! The one netlink socket both kernel edges use: IPVS over generic netlink
//! ([`ipvs::socket`](crate::ipvs::socket)) and interface addresses over rtnetlink
//! ([`net::addr`](crate::net::addr)).
//!
//! [`Netlink`] owns a neli [`NlSocket`] and adds what a daemon needs around it: every receive is
//! bounded in time (`SO_RCVTIMEO`, [`DEFAULT_TIMEOUT`] unless the caller sets another), so a
//! lost reply is [`NlError::Timeout`] in words instead of a hang; every datagram is received
//! into one fixed buffer ([`RECV_CHUNK`]), so a reply can neither grow memory nor be silently
//! cut (`MSG_TRUNC` reports the real length); a full receive queue (`ENOBUFS`) is its own error.
//!
//! The transport seam: [`Netlink::from_socket`] takes any datagram socket, so the protocol logic
//! above it runs in unit tests against a `socketpair(2)` whose other end is played by the test
//! (answering like the kernel, or not at all).
//!
//! Deliberately not here: message formats (the codecs: [`ipvs::codec`](crate::ipvs::codec),
//! [`net::rtcodec`](crate::net::rtcodec)), multicast groups, and a background receiver thread
//! (neli's `NlRouter` has one and waits on it without a deadline, which is why it is not used).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// How long a request waits for the kernel's next datagram unless the caller sets another
/// ([`Netlink::set_timeout`]). The kernel answers every request carrying `NLM_F_ACK` at once;
/// silence for this long means the reply was lost. moby/ipvs uses 3 s; the emulated lab kernel
/// is slower.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest datagram the kernel sends on a netlink socket: dump skbs are capped at 32 KiB
/// (`af_netlink.c: netlink_recvmsg`, `max_recvmsg_len`); twice that for safety.
pub const RECV_CHUNK: usize = 64 * 1024;

/// Why a netlink exchange failed, below the level of any protocol.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// No datagram within the timeout.
    #[error("no reply from the kernel within {}", secs(.0))]
    Timeout(Duration),
    /// The receive queue overflowed and the kernel dropped replies (`ENOBUFS`).
    #[error("the kernel dropped replies (netlink receive buffer overflow)")]
    Overflow,
    /// A datagram larger than the receive buffer (its tail was cut off).
    #[error("a {len}-byte datagram does not fit the {cap}-byte receive buffer")]
    Truncated {
        /// The datagram's real length.
        len: usize,
        /// The buffer's size.
        cap: usize,
    },
    /// `send` took fewer bytes than given.
    #[error("sent {sent} of {len} bytes")]
    ShortSend {
        /// Bytes the kernel took.
        sent: usize,
        /// Bytes given.
        len: usize,
    },
    /// The peer closed its end (only a test transport does that).
    #[error("the netlink peer closed the socket")]
    Closed,
    /// Any other socket error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// `1.5 s`, `5 s`, `0.2 s`.
fn secs(d: &Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s} s")
    }
}

/// A netlink socket with bounded receives (see the [module docs](self)).
pub struct Netlink {
    sock: NlSocket,
    timeout: Duration,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.sock.as_raw_fd())
            .field("timeout", &self.timeout)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Netlink {
    /// Opens and binds a netlink socket of `family` in the calling thread's network namespace,
    /// blocking with [`DEFAULT_TIMEOUT`].
    pub fn connect(family: NlFamily) -> Result<Netlink, NlError> {
        let sock = NlSocket::connect(family, None, Groups::empty())?;
        Netlink::from_socket(sock)
    }

    /// Wraps an open datagram socket: a netlink socket, or in tests one end of a `socketpair(2)`
    /// (convert an [`OwnedFd`] with [`Netlink::from_fd`]).
    pub fn from_socket(sock: NlSocket) -> Result<Netlink, NlError> {
        sock.block()?;
        let mut me = Netlink {
            sock,
            timeout: DEFAULT_TIMEOUT,
            seq: 0,
            buf: vec![0; RECV_CHUNK],
        };
        me.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(me)
    }

    /// Wraps an owned datagram socket (the test seam; see [`Netlink::from_socket`]).
    pub fn from_fd(fd: OwnedFd) -> Result<Netlink, NlError> {
        // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor; NlSocket closes
        // it on drop, and nothing else refers to it.
        let sock = unsafe { NlSocket::from_raw_fd(fd.into_raw_fd()) };
        Netlink::from_socket(sock)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.sock` and stays open while `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.sock.as_raw_fd()) }
    }

    /// How long a receive waits for the next datagram.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets how long a receive waits for the next datagram (at least 1 ms: `SO_RCVTIMEO` 0
    /// would mean forever).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), NlError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let tv = TimeVal::new(
            timeout.as_secs().try_into().unwrap_or(i64::MAX),
            timeout.subsec_micros().into(),
        );
        setsockopt(&self.fd(), sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)?;
        self.timeout = timeout;
        Ok(())
    }

    /// Raises the receive buffer to `bytes`: `SO_RCVBUFFORCE` (ignores `net.core.rmem_max`, needs
    /// `CAP_NET_ADMIN`), else `SO_RCVBUF` (capped by `rmem_max`). Best effort: a smaller buffer
    /// only leaves smaller margins.
    pub fn raise_recv_buffer(&self, bytes: usize) {
        if setsockopt(&self.fd(), sockopt::RcvBufForce, &bytes).is_err() {
            let _ = self.sock.set_recv_buffer_size(bytes);
        }
    }

    /// Asks for extended acks (the kernel's own words with an error); best effort.
    pub fn enable_ext_ack(&self) {
        let _ = self.sock.enable_ext_ack(true);
    }

    /// The next request sequence number (never 0: the kernel's own notifications use 0).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends one datagram (one or more requests) whole.
    pub fn send(&self, bytes: &[u8]) -> Result<(), NlError> {
        let sent = self.sock.send(bytes, Msg::empty())?;
        if sent != bytes.len() {
            return Err(NlError::ShortSend {
                sent,
                len: bytes.len(),
            });
        }
        Ok(())
    }

    /// Receives the next datagram, waiting at most [`Netlink::timeout`].
    pub fn recv(&mut self) -> Result<&[u8], NlError> {
        let n = loop {
            match self.sock.recv(&mut self.buf[..], Msg::TRUNC) {
                Ok((n, _)) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NlError::Timeout(self.timeout));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Err(NlError::Overflow),
                Err(e) => return Err(NlError::Io(e)),
            }
        };
        if n == 0 {
            return Err(NlError::Closed);
        }
        if n > self.buf.len() {
            return Err(NlError::Truncated {
                len: n,
                cap: self.buf.len(),
            });
        }
        Ok(&self.buf[..n])
    }
}

/// Test transports: a datagram `socketpair(2)` whose second end plays the kernel.
#[cfg(test)]
pub(crate) mod testing {
    use std::os::unix::net::UnixDatagram;

    use super::*;

    /// A [`Netlink`] whose peer is the returned socket.
    pub(crate) fn pair() -> (Netlink, UnixDatagram) {
        let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
        let nl = Netlink::from_fd(OwnedFd::from(ours)).expect("wrap the socketpair");
        (nl, theirs)
    }

    /// The netlink messages in one datagram: (type, flags, seq, payload).
    pub(crate) fn split(bytes: &[u8]) -> Vec<(u16, u16, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            assert!(len >= 16 && at + len <= bytes.len(), "bad nlmsg_len {len}");
            let ty = u16::from_ne_bytes(bytes[at + 4..at + 6].try_into().unwrap());
            let flags = u16::from_ne_bytes(bytes[at + 6..at + 8].try_into().unwrap());
            let seq = u32::from_ne_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            out.push((ty, flags, seq, bytes[at + 16..at + len].to_vec()));
            at += (len + 3) & !3;
        }
        out
    }

    /// An `NLMSG_ERROR` reply to `seq` with `errno` (0: an ACK) as the kernel makes it: an ACK
    /// echoes the request's header (`NLM_F_CAPPED`), an error the whole request
    /// (`af_netlink.c: netlink_ack`).
    pub(crate) fn error_reply(seq: u32, errno: i32, request: &[u8]) -> Vec<u8> {
        let req_len = u32::from_ne_bytes(request[..4].try_into().unwrap()) as usize;
        let (echo, flags) = if errno == 0 {
            (&request[..16], 0x100u16)
        } else {
            (&request[..req_len], 0)
        };
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + 4 + echo.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(-errno).to_ne_bytes());
        b.extend_from_slice(echo);
        b
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::testing::*;
    use super::*;

    #[test]
    fn a_swallowed_reply_is_a_timeout_in_words_not_a_hang() {
        let (mut nl, peer) = pair();
        nl.set_timeout(Duration::from_millis(200)).unwrap();
        nl.send(b"a request nobody answers").unwrap();
        let mut got = [0u8; 64];
        assert_eq!(peer.recv(&mut got).unwrap(), 24, "the request went out");
        let start = Instant::now();
        let err = nl.recv().unwrap_err();
        assert!(matches!(err, NlError::Timeout(_)), "{err:?}");
        assert_eq!(err.to_string(), "no reply from the kernel within 0.2 s");
        // Not a hang: the call came back (a generous bound, not a performance figure).
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn the_default_timeout_is_five_seconds_and_applied_to_the_socket() {
        let (nl, _peer) = pair();
        assert_eq!(nl.timeout(), Duration::from_secs(5));
        let tv = nix::sys::socket::getsockopt(&nl.fd(), sockopt::ReceiveTimeout).unwrap();
        assert_eq!((tv.tv_sec(), tv.tv_usec()), (5, 0));
        assert_eq!(DEFAULT_TIMEOUT.as_secs(), 5);
    }

    #[test]
    fn an_answer_within_the_timeout_is_received_whole() {
        let (mut nl, peer) = pair();
        peer.send(&[7u8; 1000]).unwrap();
        assert_eq!(nl.recv().unwrap(), &[7u8; 1000][..]);
        assert_eq!(nl.next_seq(), 1);
        assert_eq!(nl.next_seq(), 2);
    }

    #[test]
    fn an_oversized_datagram_is_an_error_not_a_cut() {
        let (mut nl, peer) = pair();
        // A unix datagram socket's default send buffer takes this much.
        let big = vec![1u8; RECV_CHUNK + 100];
        nix::sys::socket::setsockopt(&peer, sockopt::SndBuf, &(4 * RECV_CHUNK)).unwrap();
        peer.send(&big).unwrap();
        let err = nl.recv().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "a {}-byte datagram does not fit the {RECV_CHUNK}-byte receive buffer",
                RECV_CHUNK + 100
            )
        );
    }

    #[test]
    fn the_real_kernel_socket_opens_with_the_default_timeout() {
        // NETLINK_ROUTE needs no privileges to open.
        let nl = Netlink::connect(NlFamily::Route).unwrap();
        assert_eq!(nl.timeout(), DEFAULT_TIMEOUT);
    }
}
