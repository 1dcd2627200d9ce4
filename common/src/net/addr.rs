//! Interface addresses: list, add and remove them through rtnetlink (`RTM_GETADDR`,
//! `RTM_NEWADDR`, `RTM_DELADDR`), never by running `ip`.
//!
//! [`Addresses`] is the narrow interface the tools use; [`Rtnetlink`] talks to the kernel over the
//! toolkit's [`Netlink`] socket (one short-lived `NETLINK_ROUTE` socket per call: no background
//! thread, nothing to keep open between a tool's two or three requests) with requests from the
//! pure [`rtcodec`](super::rtcodec); every wait for a reply is bounded
//! ([`netlink::DEFAULT_TIMEOUT`] or [`Rtnetlink::with_timeout`]). The calls block their thread:
//! [`RecordingAddresses`] is an in-memory fake with the
//! kernel's add/remove semantics that records every call for unit tests.
//!
//! Semantics the tools rely on: adding an address that is already there is
//! [`Change::Unchanged`] (the kernel's `EEXIST`), removing an absent one too (`EADDRNOTAVAIL`).
//! IPv6 addresses are added with `IFA_F_NODAD`: a VIP must be usable at once, and during a takeover
//! the old holder may still answer duplicate address detection, which would leave the address
//! "dadfailed" and unusable (keepalived does the same). IPv4 addresses get a broadcast address
//! for prefixes up to /30, as `ip addr add ... brd +` and heartbeat's IPaddr2 do.
//!
//! Deliberately not here: routes, address lifetimes, `IFA_F_NOPREFIXROUTE` and other flags,
//! change notifications (multicast groups).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use neli::consts::socket::NlFamily;

use super::NetError;
use super::iface::Interface;
use super::rtcodec::{self, RtReply};
use crate::config::Cidr;
use crate::netlink::{self, Netlink, NlError};

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfAddr {
    /// The address (IPv4: `IFA_LOCAL`; IPv6: `IFA_ADDRESS`).
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// IPv4 label (`eth0:vip`), if it differs from the interface name.
    pub label: Option<String>,
    /// `IFA_F_*` flags (`IFA_FLAGS` when present, else `ifa_flags`).
    pub flags: u32,
}

impl IfAddr {
    /// True while IPv6 duplicate address detection runs (`IFA_F_TENTATIVE`): not usable yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & libc::IFA_F_TENTATIVE != 0
    }

    /// True when IPv6 duplicate address detection found another holder (`IFA_F_DADFAILED`).
    pub fn is_dad_failed(&self) -> bool {
        self.flags & libc::IFA_F_DADFAILED != 0
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Whether an add or remove changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Added or removed.
    Done,
    /// Already there (add) or already absent (remove).
    Unchanged,
}

/// Address operations on one interface at a time.
pub trait Addresses: Send + Sync {
    /// The addresses on `iface`, both families.
    fn list(&self, iface: &Interface) -> Result<Vec<IfAddr>, NetError>;
    /// Adds `addr` to `iface` with `label` (IPv4 only; the full label, e.g. `eth0:vip`).
    fn add(&self, iface: &Interface, addr: Cidr, label: Option<&str>) -> Result<Change, NetError>;
    /// Removes `addr` with prefix length `prefix_len` from `iface`.
    fn remove(&self, iface: &Interface, addr: IpAddr, prefix_len: u8) -> Result<Change, NetError>;
}

/// The kernel, over rtnetlink (see the [module docs](self)).
#[derive(Debug, Clone, Copy)]
pub struct Rtnetlink {
    timeout: Duration,
}

impl Default for Rtnetlink {
    fn default() -> Rtnetlink {
        Rtnetlink {
            timeout: netlink::DEFAULT_TIMEOUT,
        }
    }
}

fn codec_err(op: &str, e: rtcodec::RtCodecError) -> NetError {
    NetError::Netlink {
        op: op.to_owned(),
        detail: e.to_string(),
    }
}

fn nl_err(op: &str, e: NlError) -> NetError {
    match e {
        NlError::Io(io) => NetError::io(op, io),
        other => NetError::Netlink {
            op: op.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// What a request's answers amount to.
enum Outcome {
    Ack,
    Errno(i32, Option<String>),
}

impl Rtnetlink {
    /// Talks to the kernel with `timeout` per reply datagram (default
    /// [`netlink::DEFAULT_TIMEOUT`]): a lost reply is an error after that long, never a hang.
    pub fn with_timeout(timeout: Duration) -> Rtnetlink {
        Rtnetlink { timeout }
    }

    /// How long a request waits for each reply datagram.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn connect(&self, op: &str) -> Result<Netlink, NetError> {
        let mut nl = Netlink::connect(NlFamily::Route).map_err(|e| nl_err(op, e))?;
        nl.set_timeout(self.timeout).map_err(|e| nl_err(op, e))?;
        // Extended acks give the kernel's own words ("Invalid prefix length", ...); an old kernel
        // without them still works.
        nl.enable_ext_ack();
        Ok(nl)
    }

    /// Sends the request `build(seq)` makes on `nl` and collects its answers: dump entries until
    /// `NLMSG_DONE`, or the ack.
    fn exchange(
        nl: &mut Netlink,
        op: &str,
        iface: &Interface,
        build: impl FnOnce(u32) -> Result<Vec<u8>, rtcodec::RtCodecError>,
    ) -> Result<(Vec<IfAddr>, Outcome), NetError> {
        let seq = nl.next_seq();
        let bytes = build(seq).map_err(|e| codec_err(op, e))?;
        nl.send(&bytes).map_err(|e| nl_err(op, e))?;
        let mut got = Vec::new();
        loop {
            let datagram = nl.recv().map_err(|e| nl_err(op, e))?;
            for r in
                rtcodec::parse_replies(datagram, Some(&iface.name)).map_err(|e| codec_err(op, e))?
            {
                match r {
                    RtReply::Addr {
                        seq: s,
                        index,
                        addr: Some(a),
                    } if s == seq && index == iface.index => got.push(a),
                    RtReply::Ack { seq: s } | RtReply::Done { seq: s, errno: 0 } if s == seq => {
                        return Ok((got, Outcome::Ack));
                    }
                    RtReply::Done { seq: s, errno } if s == seq => {
                        return Ok((got, Outcome::Errno(errno, None)));
                    }
                    RtReply::Error {
                        seq: s,
                        errno,
                        message,
                    } if s == seq => return Ok((got, Outcome::Errno(errno, message))),
                    _ => {}
                }
            }
        }
    }

    fn request(
        &self,
        op: &str,
        iface: &Interface,
        build: impl FnOnce(u32) -> Result<Vec<u8>, rtcodec::RtCodecError>,
    ) -> Result<(Vec<IfAddr>, Outcome), NetError> {
        let mut nl = self.connect(op)?;
        Self::exchange(&mut nl, op, iface, build)
    }

    fn check(op: &str, outcome: Outcome, benign: i32) -> Result<Change, NetError> {
        match outcome {
            Outcome::Ack => Ok(Change::Done),
            Outcome::Errno(e, _) if e == benign => Ok(Change::Unchanged),
            // EPERM only: EACCES also means "IPv6 is disabled on this device", which the kernel
            // explains in its extended ack.
            Outcome::Errno(e, _) if e == libc::EPERM => {
                Err(NetError::Privilege { op: op.to_owned() })
            }
            Outcome::Errno(errno, msg) => {
                let words = io::Error::from_raw_os_error(errno).to_string();
                let reason = match msg {
                    Some(m) => format!("{m} ({words})"),
                    None => words,
                };
                Err(NetError::Kernel {
                    op: op.to_owned(),
                    errno,
                    reason,
                })
            }
        }
    }
}

impl Addresses for Rtnetlink {
    fn list(&self, iface: &Interface) -> Result<Vec<IfAddr>, NetError> {
        let op = format!("list the addresses of {}", iface.name);
        let (addrs, outcome) =
            self.request(&op, iface, |seq| rtcodec::list_request(seq, iface.index))?;
        Self::check(&op, outcome, 0)?;
        Ok(addrs)
    }

    fn add(&self, iface: &Interface, addr: Cidr, label: Option<&str>) -> Result<Change, NetError> {
        let op = format!("add {addr} to {}", iface.name);
        let (_, outcome) = self.request(&op, iface, |seq| {
            rtcodec::add_request(seq, iface.index, addr, label)
        })?;
        Self::check(&op, outcome, libc::EEXIST)
    }

    fn remove(&self, iface: &Interface, addr: IpAddr, prefix_len: u8) -> Result<Change, NetError> {
        let op = format!("remove {addr}/{prefix_len} from {}", iface.name);
        let (_, outcome) = self.request(&op, iface, |seq| {
            rtcodec::remove_request(seq, iface.index, addr, prefix_len)
        })?;
        Self::check(&op, outcome, libc::EADDRNOTAVAIL)
    }
}

/// [`Addresses`] for async code: each call runs on tokio's blocking pool
/// ([`crate::blocking::off_runtime`]), never on a runtime worker.
#[derive(Debug)]
pub struct AsyncAddresses<A: ?Sized> {
    inner: std::sync::Arc<A>,
}

impl<A: ?Sized> Clone for AsyncAddresses<A> {
    fn clone(&self) -> Self {
        AsyncAddresses {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Addresses + ?Sized + 'static> AsyncAddresses<A> {
    /// Shares `inner` (e.g. `Arc<Rtnetlink>`, or an `Arc<dyn Addresses>`).
    pub fn new(inner: std::sync::Arc<A>) -> AsyncAddresses<A> {
        AsyncAddresses { inner }
    }

    /// The blocking implementation inside.
    pub fn inner(&self) -> &std::sync::Arc<A> {
        &self.inner
    }

    /// [`Addresses::list`].
    pub async fn list(&self, iface: Interface) -> Result<Vec<IfAddr>, NetError> {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || inner.list(&iface)).await
    }

    /// [`Addresses::add`].
    pub async fn add(
        &self,
        iface: Interface,
        addr: Cidr,
        label: Option<String>,
    ) -> Result<Change, NetError> {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || inner.add(&iface, addr, label.as_deref())).await
    }

    /// [`Addresses::remove`].
    pub async fn remove(
        &self,
        iface: Interface,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<Change, NetError> {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || inner.remove(&iface, addr, prefix_len)).await
    }
}

/// One call made to [`RecordingAddresses`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrCall {
    /// `list(iface)`.
    List(String),
    /// `add(iface, addr, label)`.
    Add(String, Cidr, Option<String>),
    /// `remove(iface, addr, prefix_len)`.
    Remove(String, IpAddr, u8),
}

/// In-memory addresses with the kernel's semantics, recording every call; for unit tests.
/// [`RecordingAddresses::fail_with`] makes the next mutating call fail.
#[derive(Debug, Default)]
pub struct RecordingAddresses {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    by_iface: BTreeMap<u32, Vec<IfAddr>>,
    calls: Vec<AddrCall>,
    fail_next: Option<NetError>,
}

impl RecordingAddresses {
    /// Empty: no interface has an address.
    pub fn new() -> RecordingAddresses {
        RecordingAddresses::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `addr` on interface `index` without recording a call.
    pub fn preset(&self, index: u32, addr: Cidr) {
        self.lock().by_iface.entry(index).or_default().push(IfAddr {
            addr: addr.addr(),
            prefix_len: addr.prefix_len(),
            label: None,
            flags: 0,
        });
    }

    /// The next `add` or `remove` fails with `err`.
    pub fn fail_with(&self, err: NetError) {
        self.lock().fail_next = Some(err);
    }

    /// The addresses of interface `index`.
    pub fn addresses(&self, index: u32) -> Vec<IfAddr> {
        self.lock()
            .by_iface
            .get(&index)
            .cloned()
            .unwrap_or_default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<AddrCall> {
        self.lock().calls.clone()
    }

    /// The mutating calls so far (no `List`).
    pub fn changes(&self) -> Vec<AddrCall> {
        self.calls()
            .into_iter()
            .filter(|c| !matches!(c, AddrCall::List(_)))
            .collect()
    }
}

impl Addresses for RecordingAddresses {
    fn list(&self, iface: &Interface) -> Result<Vec<IfAddr>, NetError> {
        let mut s = self.lock();
        s.calls.push(AddrCall::List(iface.name.clone()));
        Ok(s.by_iface.get(&iface.index).cloned().unwrap_or_default())
    }

    fn add(&self, iface: &Interface, addr: Cidr, label: Option<&str>) -> Result<Change, NetError> {
        let mut s = self.lock();
        s.calls.push(AddrCall::Add(
            iface.name.clone(),
            addr,
            label.map(str::to_owned),
        ));
        if let Some(e) = s.fail_next.take() {
            return Err(e);
        }
        let list = s.by_iface.entry(iface.index).or_default();
        if list
            .iter()
            .any(|a| a.addr == addr.addr() && a.prefix_len == addr.prefix_len())
        {
            return Ok(Change::Unchanged);
        }
        list.push(IfAddr {
            addr: addr.addr(),
            prefix_len: addr.prefix_len(),
            label: label.map(str::to_owned),
            flags: if addr.addr().is_ipv6() {
                libc::IFA_F_NODAD
            } else {
                0
            },
        });
        Ok(Change::Done)
    }

    fn remove(&self, iface: &Interface, addr: IpAddr, prefix_len: u8) -> Result<Change, NetError> {
        let mut s = self.lock();
        s.calls
            .push(AddrCall::Remove(iface.name.clone(), addr, prefix_len));
        if let Some(e) = s.fail_next.take() {
            return Err(e);
        }
        let list = s.by_iface.entry(iface.index).or_default();
        let before = list.len();
        list.retain(|a| !(a.addr == addr && a.prefix_len == prefix_len));
        Ok(if list.len() < before {
            Change::Done
        } else {
            Change::Unchanged
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::MacAddr;

    #[test]
    fn lists_loopback_addresses_from_the_kernel() {
        // Unprivileged: a dump needs no capability. Every namespace's lo has 127.0.0.1/8 once up.
        use crate::net::Interfaces;
        let lo = crate::net::SystemInterfaces.interface("lo").unwrap();
        let addrs = Rtnetlink::default().list(&lo).unwrap();
        if lo.up {
            assert!(
                addrs
                    .iter()
                    .any(|a| a.addr == IpAddr::from([127, 0, 0, 1]) && a.prefix_len == 8),
                "{addrs:?}"
            );
        }
    }

    #[test]
    fn fake_has_kernel_semantics_and_records() {
        let eth0 = Interface::ethernet("eth0", 2, MacAddr([2, 0, 0, 0, 0, 1]));
        let f = RecordingAddresses::new();
        let vip: Cidr = "192.0.2.100/24".parse().unwrap();
        assert_eq!(f.add(&eth0, vip, Some("eth0:vip")).unwrap(), Change::Done);
        assert_eq!(f.add(&eth0, vip, None).unwrap(), Change::Unchanged);
        assert_eq!(f.list(&eth0).unwrap().len(), 1);
        assert_eq!(f.remove(&eth0, vip.addr(), 24).unwrap(), Change::Done);
        assert_eq!(f.remove(&eth0, vip.addr(), 24).unwrap(), Change::Unchanged);
        f.fail_with(NetError::Privilege { op: "x".into() });
        assert!(f.add(&eth0, vip, None).unwrap_err().is_privilege());
        assert_eq!(f.calls().len(), 6);
        assert_eq!(
            f.changes()[0],
            AddrCall::Add("eth0".into(), vip, Some("eth0:vip".into()))
        );
    }

    fn veth() -> Interface {
        Interface::ethernet("e0", 3, MacAddr([2, 0, 0, 0, 0, 1]))
    }

    #[test]
    fn a_swallowed_reply_is_an_error_after_the_timeout() {
        let (mut nl, peer) = crate::netlink::testing::pair();
        nl.set_timeout(std::time::Duration::from_millis(200))
            .unwrap();
        let op = "add 192.0.2.100/24 to e0";
        let err = Rtnetlink::exchange(&mut nl, op, &veth(), |seq| {
            rtcodec::add_request(seq, 3, "192.0.2.100/24".parse().unwrap(), None)
        })
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "add 192.0.2.100/24 to e0: netlink: no reply from the kernel within 0.2 s"
        );
        let mut req = [0u8; 128];
        let n = peer.recv(&mut req).unwrap();
        assert_eq!(
            crate::netlink::testing::split(&req[..n])[0].0,
            libc::RTM_NEWADDR
        );
    }

    #[test]
    fn errors_carry_the_kernels_words() {
        let (mut nl, peer) = crate::netlink::testing::pair();
        let kernel = std::thread::spawn(move || {
            let mut req = [0u8; 128];
            let n = peer.recv(&mut req).unwrap();
            let seq = crate::netlink::testing::split(&req[..n])[0].2;
            let reply = crate::netlink::testing::error_reply(seq, libc::EADDRNOTAVAIL, &req[..n]);
            peer.send(&reply).unwrap();
        });
        let op = "remove 192.0.2.100/24 from e0";
        let (_, outcome) = Rtnetlink::exchange(&mut nl, op, &veth(), |seq| {
            rtcodec::remove_request(seq, 3, "192.0.2.100".parse().unwrap(), 24)
        })
        .unwrap();
        kernel.join().unwrap();
        assert_eq!(
            Rtnetlink::check(op, outcome, libc::EADDRNOTAVAIL).unwrap(),
            Change::Unchanged
        );
        let refused = Rtnetlink::check(
            op,
            Outcome::Errno(libc::EINVAL, Some("Invalid prefix".into())),
            0,
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "remove 192.0.2.100/24 from e0: the kernel refused: Invalid prefix (Invalid argument (os error 22))"
        );
    }

    /// An [`Addresses`] whose `list` blocks until the test opens the gate (or 20 s pass).
    struct Gated(Mutex<std::sync::mpsc::Receiver<()>>);

    impl Addresses for Gated {
        fn list(&self, _: &Interface) -> Result<Vec<IfAddr>, NetError> {
            let gate = self.0.lock().unwrap();
            gate.recv_timeout(std::time::Duration::from_secs(20))
                .map_err(|_| NetError::Privilege {
                    op: "the gate stayed shut".into(),
                })?;
            Ok(vec![])
        }
        fn add(&self, _: &Interface, _: Cidr, _: Option<&str>) -> Result<Change, NetError> {
            Ok(Change::Done)
        }
        fn remove(&self, _: &Interface, _: IpAddr, _: u8) -> Result<Change, NetError> {
            Ok(Change::Done)
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_addresses_keep_the_runtime_free_while_the_kernel_call_blocks() {
        let (open, gate) = std::sync::mpsc::channel();
        let a = AsyncAddresses::new(std::sync::Arc::new(Gated(Mutex::new(gate))));
        let call = tokio::spawn({
            let a = a.clone();
            async move { a.list(veth()).await }
        });
        tokio::task::yield_now().await;
        open.send(()).unwrap();
        assert_eq!(call.await.unwrap().unwrap(), vec![]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_addresses_answer_like_the_blocking_ones() {
        let fake = std::sync::Arc::new(RecordingAddresses::new());
        let a: AsyncAddresses<dyn Addresses> = AsyncAddresses::new(fake.clone());
        let vip: Cidr = "192.0.2.100/24".parse().unwrap();
        assert_eq!(
            a.add(veth(), vip, Some("e0:vip".into())).await.unwrap(),
            Change::Done
        );
        assert_eq!(a.add(veth(), vip, None).await.unwrap(), Change::Unchanged);
        assert_eq!(a.list(veth()).await.unwrap().len(), 1);
        assert_eq!(
            a.remove(veth(), vip.addr(), 24).await.unwrap(),
            Change::Done
        );
        assert_eq!(
            fake.changes()[0],
            AddrCall::Add("e0".into(), vip, Some("e0:vip".into()))
        );
        assert_eq!(fake.calls().len(), 4);
    }
}
