//! Link state as the kernel announces it: a [`LinkWatcher`] follows `RTM_NEWLINK`/`RTM_DELLINK`
//! notifications (`RTNLGRP_LINK`) on a non-blocking `NETLINK_ROUTE` socket read through tokio's
//! `AsyncFd`, so it keeps working when an interface is deleted and created again (unlike
//! keepalived's `track_interface`, which looks the interface up once: keepalived issues 2142,
//! 1823). Messages are read by the pure [`linkcodec`](super::linkcodec); the link table that
//! turns them into changes ([`LinkTable`]) is pure too.
//!
//! Every read goes into one fixed buffer ([`RECV_CHUNK`]). Events are lost when the receive
//! queue overflows (`ENOBUFS`) or a datagram does not fit the buffer (`MSG_TRUNC` reports its
//! real length); the watcher then takes a new snapshot and reports the differences, deletions
//! included, so a consumer never keeps a state the kernel no longer has.
//!
//! The snapshot is an `RTM_GETLINK` dump on the same socket rather than `getifaddrs(3)`
//! ([`SystemInterfaces`](super::SystemInterfaces)): it is read with the same parser, it does not
//! block the runtime (`getifaddrs` waits on its own socket), and dump replies and notifications
//! arrive on one socket in the order the kernel made them, so notifications received during the
//! dump are folded in and the snapshot is exactly the state at its last message. A dump the
//! kernel marks inconsistent (`NLM_F_DUMP_INTR`), or one during which events were lost, is
//! repeated (at most [`DUMP_ATTEMPTS`] times); a dump without an answer for [`DUMP_TIMEOUT`] is
//! an error.
//!
//! Deliberately not here: which interfaces matter and what to do about them (the tools decide),
//! addresses, changing links.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;
use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::NetError;
pub use super::linkcodec::LinkEvent;
use super::linkcodec::{self, LinkMsg};
use crate::netlink::RECV_CHUNK;

/// How long a snapshot waits for the kernel's next dump datagram.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a snapshot is taken again when the link list changed during it.
pub const DUMP_ATTEMPTS: u32 = 5;

/// The receive queue [`LinkWatcher::open`] asks for: room for a burst of notifications (a
/// networking restart sends a few per link) before the kernel drops any.
pub const RECV_QUEUE: usize = 1 << 20;

/// The links known, by index; turns notifications and snapshots into the changes a consumer
/// needs to see. Pure.
#[derive(Debug, Default, Clone)]
pub struct LinkTable {
    links: BTreeMap<u32, LinkEvent>,
}

impl LinkTable {
    /// A table holding `links` (a snapshot).
    pub fn new(links: impl IntoIterator<Item = LinkEvent>) -> LinkTable {
        LinkTable {
            links: links
                .into_iter()
                .filter(|l| !l.deleted)
                .map(|l| (l.index, l))
                .collect(),
        }
    }

    /// The links, by index.
    pub fn links(&self) -> impl Iterator<Item = &LinkEvent> {
        self.links.values()
    }

    /// Applies one notification and returns the changes: none when nothing a consumer sees
    /// changed (an MTU change, say); a renamed link is its old name's deletion, then the link.
    pub fn apply(&mut self, ev: LinkEvent) -> Vec<LinkEvent> {
        let old = if ev.deleted {
            self.links.remove(&ev.index)
        } else {
            self.links.insert(ev.index, ev.clone())
        };
        match old {
            Some(o) if o.name != ev.name => vec![o.gone(), ev],
            Some(o) if o == ev => Vec::new(),
            // A deletion of a link never seen is still news to a consumer without a snapshot.
            _ => vec![ev],
        }
    }

    /// Replaces the table with a new snapshot and returns the changes: every link gone (or
    /// renamed: its old name) as a deletion, then every link new or changed, by index.
    pub fn resync(&mut self, snapshot: impl IntoIterator<Item = LinkEvent>) -> Vec<LinkEvent> {
        let new = LinkTable::new(snapshot);
        let mut out: Vec<LinkEvent> = self
            .links
            .values()
            .filter(|o| new.links.get(&o.index).is_none_or(|n| n.name != o.name))
            .map(LinkEvent::gone)
            .collect();
        out.extend(
            new.links
                .values()
                .filter(|n| self.links.get(&n.index) != Some(n))
                .cloned(),
        );
        *self = new;
        out
    }
}

/// Why a receive gave no messages.
enum Recv {
    /// Events were lost (the reason, for the log): take a snapshot.
    Lost(String),
    /// The socket failed.
    Failed(NetError),
}

/// Follows link notifications (see the [module docs](self)).
pub struct LinkWatcher {
    sock: AsyncFd<NlSocket>,
    buf: Vec<u8>,
    table: LinkTable,
    pending: VecDeque<LinkEvent>,
    seq: u32,
    /// Events were lost and no snapshot has made up for it yet.
    stale: bool,
    resyncs: u64,
}

impl std::fmt::Debug for LinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatcher")
            .field("links", &self.table.links.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl LinkWatcher {
    /// Opens a `NETLINK_ROUTE` socket subscribed to link notifications in the calling thread's
    /// network namespace (no privileges needed). Must be called within a tokio runtime.
    /// Notifications are received from now on; [`LinkWatcher::snapshot`] gives the state.
    pub fn open() -> Result<LinkWatcher, NetError> {
        LinkWatcher::open_with_queue(RECV_QUEUE)
    }

    /// [`LinkWatcher::open`] with a receive queue of about `bytes` (`SO_RCVBUFFORCE` with
    /// `CAP_NET_ADMIN`, else `SO_RCVBUF`, which `net.core.rmem_max` caps; best effort).
    pub fn open_with_queue(bytes: usize) -> Result<LinkWatcher, NetError> {
        let op = "open a link notification socket";
        let sock = NlSocket::connect(
            NlFamily::Route,
            None,
            Groups::new_groups(&[libc::RTNLGRP_LINK]),
        )
        .map_err(|e| NetError::io(op, e))?;
        // SAFETY: the descriptor is owned by `sock`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(sock.as_raw_fd()) };
        // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF does not.
        if setsockopt(&fd, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = sock.set_recv_buffer_size(bytes);
        }
        LinkWatcher::from_socket(sock).map_err(|e| NetError::io(op, e))
    }

    /// Wraps an open datagram socket (the test seam: one end of a `socketpair(2)`).
    fn from_socket(sock: NlSocket) -> io::Result<LinkWatcher> {
        sock.nonblock()?;
        // SAFETY: `sock` owns its descriptor, which is neither closed nor replaced while the
        // AsyncFd holds it (it closes with the NlSocket when the AsyncFd drops).
        let sock = unsafe { AsyncFd::register(sock)? };
        Ok(LinkWatcher {
            sock,
            buf: vec![0; RECV_CHUNK],
            table: LinkTable::default(),
            pending: VecDeque::new(),
            seq: 0,
            stale: false,
            resyncs: 0,
        })
    }

    /// The links as last reported (the last snapshot plus the changes since), by index.
    pub fn links(&self) -> impl Iterator<Item = &LinkEvent> {
        self.table.links()
    }

    /// How many times lost notifications were made up for with a new snapshot.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Every link now, by index, taken with an `RTM_GETLINK` dump; the changes [`next`]
    /// reports are relative to it (notifications not yet read are dropped: the snapshot is
    /// newer).
    ///
    /// [`next`]: LinkWatcher::next
    pub async fn snapshot(&mut self) -> Result<Vec<LinkEvent>, NetError> {
        let links = self.dump().await?;
        self.pending.clear();
        self.stale = false;
        self.table = LinkTable::new(links.clone());
        Ok(links)
    }

    /// The next change: a link's state that differs from the last one reported, or a deletion.
    /// Waits for as long as nothing changes. Cancel-safe: a snapshot cut short after lost
    /// notifications is taken again by the next call.
    pub async fn next(&mut self) -> Result<LinkEvent, NetError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            if self.stale {
                let links = self.dump().await?;
                let changes = self.table.resync(links);
                self.pending.extend(changes);
                self.stale = false;
                self.resyncs += 1;
                continue;
            }
            match self.recv().await {
                Ok(msgs) => {
                    for m in msgs {
                        if let LinkMsg::Link { seq: 0, event, .. } = m {
                            let changes = self.table.apply(event);
                            self.pending.extend(changes);
                        }
                    }
                }
                Err(Recv::Lost(reason)) => {
                    tracing::warn!(%reason, "link notifications lost: taking a new snapshot");
                    self.stale = true;
                }
                Err(Recv::Failed(e)) => return Err(e),
            }
        }
    }

    /// A consistent dump, retried while the kernel marks it interrupted or events are lost.
    async fn dump(&mut self) -> Result<Vec<LinkEvent>, NetError> {
        let op = "list links (RTM_GETLINK)";
        for _ in 0..DUMP_ATTEMPTS {
            match self.dump_once(op).await? {
                Some(links) => return Ok(links),
                None => tracing::debug!("link dump inconsistent; taking it again"),
            }
        }
        Err(NetError::Netlink {
            op: op.to_owned(),
            detail: format!("the link list kept changing during {DUMP_ATTEMPTS} dumps"),
        })
    }

    /// One dump with notifications folded in; `None` when it is inconsistent.
    async fn dump_once(&mut self, op: &str) -> Result<Option<Vec<LinkEvent>>, NetError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let req = linkcodec::dump_request(seq).map_err(|e| NetError::Netlink {
            op: op.to_owned(),
            detail: e.to_string(),
        })?;
        let sent = self
            .sock
            .async_io(Interest::WRITABLE, |s| s.send(&req, Msg::empty()))
            .await
            .map_err(|e| NetError::io(op, e))?;
        if sent != req.len() {
            return Err(NetError::Netlink {
                op: op.to_owned(),
                detail: format!("sent {sent} of {} bytes", req.len()),
            });
        }
        let mut links = BTreeMap::new();
        let mut consistent = true;
        loop {
            let msgs = match tokio::time::timeout(DUMP_TIMEOUT, self.recv()).await {
                Err(_) => {
                    return Err(NetError::Netlink {
                        op: op.to_owned(),
                        detail: format!("no reply from the kernel within {DUMP_TIMEOUT:?}"),
                    });
                }
                Ok(Err(Recv::Lost(_))) => {
                    // The dump itself is never dropped (the kernel waits for room), but
                    // notifications were: this dump may hold a link's state from before them.
                    consistent = false;
                    continue;
                }
                Ok(Err(Recv::Failed(e))) => return Err(e),
                Ok(Ok(msgs)) => msgs,
            };
            for m in msgs {
                match m {
                    LinkMsg::Link {
                        seq: s,
                        interrupted,
                        event,
                    } if s == seq || s == 0 => {
                        consistent &= !interrupted;
                        if event.deleted {
                            links.remove(&event.index);
                        } else {
                            links.insert(event.index, event);
                        }
                    }
                    LinkMsg::Done {
                        seq: s,
                        errno,
                        interrupted,
                    } if s == seq => {
                        if errno != 0 {
                            return Err(kernel(op, errno));
                        }
                        let all = links.into_values().collect();
                        return Ok((consistent && !interrupted).then_some(all));
                    }
                    LinkMsg::Error { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(kernel(op, errno));
                    }
                    _ => {}
                }
            }
        }
    }

    /// The messages of the next datagram.
    async fn recv(&mut self) -> Result<Vec<LinkMsg>, Recv> {
        let op = "read link notifications";
        let LinkWatcher { sock, buf, .. } = self;
        loop {
            let mut ready = sock
                .readable()
                .await
                .map_err(|e| Recv::Failed(NetError::io(op, e)))?;
            let n = match ready.try_io(|s| s.get_ref().recv(&mut buf[..], Msg::TRUNC)) {
                Err(_would_block) => continue,
                Ok(Ok((n, _))) => n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(Recv::Lost(
                        "the receive queue overflowed (ENOBUFS)".to_owned(),
                    ));
                }
                Ok(Err(e)) => return Err(Recv::Failed(NetError::io(op, e))),
            };
            if n > buf.len() {
                return Err(Recv::Lost(format!(
                    "a {n}-byte datagram did not fit the {}-byte buffer",
                    buf.len()
                )));
            }
            if n == 0 {
                return Err(Recv::Failed(NetError::Netlink {
                    op: op.to_owned(),
                    detail: "the socket was closed".to_owned(),
                }));
            }
            return linkcodec::parse_links(&buf[..n]).map_err(|e| {
                Recv::Failed(NetError::Netlink {
                    op: op.to_owned(),
                    detail: e.to_string(),
                })
            });
        }
    }
}

fn kernel(op: &str, errno: i32) -> NetError {
    NetError::Kernel {
        op: op.to_owned(),
        errno,
        reason: io::Error::from_raw_os_error(errno).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixDatagram;

    use super::super::linkcodec::testing::{done, link_msg};
    use super::*;

    const UP_RUNNING: u32 = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
    const UP: u32 = libc::IFF_UP as u32;

    fn ev(name: &str, index: u32, carrier: bool) -> LinkEvent {
        LinkEvent {
            name: name.into(),
            index,
            up: true,
            carrier,
            deleted: false,
        }
    }

    #[test]
    fn the_table_reports_changes_only_and_a_rename_as_the_old_names_deletion() {
        let mut t = LinkTable::new([ev("eth0", 2, true), ev("eth1", 3, true)]);
        assert_eq!(t.apply(ev("eth0", 2, true)), vec![], "nothing changed");
        assert_eq!(t.apply(ev("eth0", 2, false)), vec![ev("eth0", 2, false)]);
        assert_eq!(
            t.apply(ev("wan", 3, true)),
            vec![ev("eth1", 3, true).gone(), ev("wan", 3, true)]
        );
        assert_eq!(
            t.apply(ev("eth0", 2, false).gone()),
            vec![ev("eth0", 2, false).gone()]
        );
        assert_eq!(t.apply(ev("eth0", 9, true)), vec![ev("eth0", 9, true)]);
        let names: Vec<_> = t.links().map(|l| (l.index, l.name.as_str())).collect();
        assert_eq!(names, vec![(3, "wan"), (9, "eth0")]);
    }

    #[test]
    fn a_resync_reports_deletions_first_then_what_is_new_or_changed() {
        let mut t = LinkTable::new([ev("eth0", 2, true), ev("eth1", 3, true), ev("lo", 1, true)]);
        // eth0 was deleted and created again (new index), eth1 lost carrier, lo unchanged.
        let got = t.resync([ev("lo", 1, true), ev("eth1", 3, false), ev("eth0", 7, true)]);
        assert_eq!(
            got,
            vec![
                ev("eth0", 2, true).gone(),
                ev("eth1", 3, false),
                ev("eth0", 7, true)
            ]
        );
        assert_eq!(
            t.resync([ev("lo", 1, true), ev("eth1", 3, false), ev("eth0", 7, true)]),
            vec![]
        );
    }

    /// `f` within 10 s: a watcher that misses what it waits for fails the test instead of hanging.
    async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("no answer from the watcher within 10 s")
    }

    /// A watcher whose "kernel" is the returned socket.
    fn pair() -> (LinkWatcher, UnixDatagram) {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        // SAFETY: `into_raw_fd` hands over sole ownership of an open descriptor to NlSocket.
        let sock = unsafe { NlSocket::from_raw_fd(OwnedFd::from(ours).into_raw_fd()) };
        theirs.set_nonblocking(false).unwrap();
        (LinkWatcher::from_socket(sock).unwrap(), theirs)
    }

    /// Plays the kernel for one dump: reads the request and answers with `links` and DONE.
    fn answer_dump(kernel: &UnixDatagram, links: &[(i32, u32, &str)]) {
        let mut req = [0u8; 64];
        let n = kernel.recv(&mut req).unwrap();
        assert_eq!(n, 32, "one ifinfomsg");
        assert_eq!(u16::from_ne_bytes([req[4], req[5]]), libc::RTM_GETLINK);
        let seq = u32::from_ne_bytes(req[8..12].try_into().unwrap());
        let mut d = Vec::new();
        for &(index, flags, name) in links {
            d.extend(link_msg(libc::RTM_NEWLINK, 2, seq, 0, index, flags, name));
        }
        kernel.send(&d).unwrap();
        kernel.send(&done(seq)).unwrap();
    }

    #[tokio::test]
    async fn lost_events_are_followed_by_a_snapshot_and_its_differences() {
        let (mut w, kernel) = pair();
        let k = std::thread::spawn(move || {
            answer_dump(
                &kernel,
                &[
                    (1, UP_RUNNING, "lo"),
                    (2, UP_RUNNING, "eth0"),
                    (3, UP_RUNNING, "eth1"),
                ],
            );
            // A notification, then a datagram too big for the buffer: events were lost.
            kernel
                .send(&link_msg(libc::RTM_NEWLINK, 0, 0, 0, 3, UP, "eth1"))
                .unwrap();
            nix::sys::socket::setsockopt(
                &kernel,
                nix::sys::socket::sockopt::SndBuf,
                &(4 * RECV_CHUNK),
            )
            .unwrap();
            kernel.send(&vec![0u8; RECV_CHUNK + 1]).unwrap();
            // Meanwhile eth0 was deleted and eth1 regained carrier.
            answer_dump(&kernel, &[(1, UP_RUNNING, "lo"), (3, UP_RUNNING, "eth1")]);
            kernel
        });
        let snap = within(w.snapshot()).await.unwrap();
        assert_eq!(
            snap,
            vec![ev("lo", 1, true), ev("eth0", 2, true), ev("eth1", 3, true)]
        );
        assert_eq!(within(w.next()).await.unwrap(), ev("eth1", 3, false));
        assert_eq!(within(w.next()).await.unwrap(), ev("eth0", 2, true).gone());
        assert_eq!(within(w.next()).await.unwrap(), ev("eth1", 3, true));
        assert_eq!(w.resyncs(), 1);
        let names: Vec<_> = w.links().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth1"]);
        let _kernel = k.join().unwrap();
    }

    #[tokio::test]
    async fn notifications_during_a_dump_are_folded_in_and_a_refusal_is_an_error() {
        let (mut w, kernel) = pair();
        let k = std::thread::spawn(move || {
            let mut req = [0u8; 64];
            kernel.recv(&mut req).unwrap();
            let seq = u32::from_ne_bytes(req[8..12].try_into().unwrap());
            let mut d = link_msg(libc::RTM_NEWLINK, 2, seq, 0, 2, UP_RUNNING, "eth0");
            d.extend(link_msg(
                libc::RTM_NEWLINK,
                2,
                seq,
                0,
                3,
                UP_RUNNING,
                "eth1",
            ));
            kernel.send(&d).unwrap();
            // eth1 deleted after the dump passed it, eth0 lost carrier.
            kernel
                .send(&link_msg(libc::RTM_DELLINK, 0, 0, 0, 3, UP_RUNNING, "eth1"))
                .unwrap();
            kernel
                .send(&link_msg(libc::RTM_NEWLINK, 0, 0, 0, 2, UP, "eth0"))
                .unwrap();
            kernel.send(&done(seq)).unwrap();
            // The next dump is refused.
            let n = kernel.recv(&mut req).unwrap();
            let err = crate::netlink::testing::error_reply(
                u32::from_ne_bytes(req[8..12].try_into().unwrap()),
                libc::EBUSY,
                &req[..n],
            );
            kernel.send(&err).unwrap();
            kernel
        });
        assert_eq!(
            within(w.snapshot()).await.unwrap(),
            vec![ev("eth0", 2, false)]
        );
        let err = within(w.snapshot()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "list links (RTM_GETLINK): the kernel refused: Device or resource busy (os error 16)"
        );
        let _kernel = k.join().unwrap();
    }

    #[tokio::test]
    async fn the_real_kernel_socket_opens_and_lists_loopback() {
        // NETLINK_ROUTE needs no privileges; every network namespace has `lo`.
        let mut w = LinkWatcher::open().unwrap();
        let links = within(w.snapshot()).await.unwrap();
        assert!(
            links.iter().any(|l| l.name == "lo" && l.index == 1),
            "{links:?}"
        );
    }
}
