//! Interface addresses: list, add and remove them through rtnetlink (`RTM_GETADDR`,
//! `RTM_NEWADDR`, `RTM_DELADDR`), never by running `ip`.
//!
//! [`Addresses`] is the narrow interface the tools use; [`Rtnetlink`] talks to the kernel with
//! `neli` (one short-lived `NETLINK_ROUTE` socket per call: no background thread, nothing to keep
//! open between a tool's two or three requests), and [`RecordingAddresses`] is an in-memory fake
//! with the kernel's add/remove semantics that records every call for unit tests.
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
use std::io::{self, Cursor};
use std::net::IpAddr;
use std::sync::Mutex;

use neli::FromBytesWithInput;
use neli::consts::nl::{NlmF, NlmsgerrAttr};
use neli::consts::rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm};
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, RtattrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::types::{Buffer, RtBuffer};
use neli::utils::Groups;

use super::NetError;
use super::iface::Interface;
use crate::config::Cidr;

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
#[derive(Debug, Default, Clone, Copy)]
pub struct Rtnetlink;

fn family(addr: IpAddr) -> RtAddrFamily {
    if addr.is_ipv4() {
        RtAddrFamily::Inet
    } else {
        RtAddrFamily::Inet6
    }
}

fn ip_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The IPv4 directed broadcast address of `addr/prefix_len`.
fn broadcast(addr: std::net::Ipv4Addr, prefix_len: u8) -> std::net::Ipv4Addr {
    let host = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    std::net::Ipv4Addr::from(u32::from(addr) | host)
}

fn netlink_err(op: &str, e: impl fmt::Display) -> NetError {
    NetError::Netlink {
        op: op.to_owned(),
        detail: e.to_string(),
    }
}

fn attr(
    kind: Ifa,
    payload: Vec<u8>,
    op: &str,
) -> Result<neli::rtnl::Rtattr<Ifa, Buffer>, NetError> {
    RtattrBuilder::default()
        .rta_type(kind)
        .rta_payload(Buffer::from(payload))
        .build()
        .map_err(|e| netlink_err(op, e))
}

/// What a request's answers amount to.
enum Outcome {
    Ack,
    Errno(i32, Option<String>),
}

impl Rtnetlink {
    fn connect(op: &str) -> Result<NlSocketHandle, NetError> {
        let sock = NlSocketHandle::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| socket_err(op, e))?;
        // Extended acks give the kernel's own words ("Invalid prefix length", ...); an old kernel
        // without them still works.
        let _ = sock.enable_ext_ack(true);
        Ok(sock)
    }

    /// Sends one request and collects its answers: dump payloads until `NLMSG_DONE`, or the ack.
    fn request(
        op: &str,
        kind: Rtm,
        flags: NlmF,
        msg: Ifaddrmsg,
    ) -> Result<(Vec<Ifaddrmsg>, Outcome), NetError> {
        let sock = Self::connect(op)?;
        let hdr = NlmsghdrBuilder::default()
            .nl_type(kind)
            .nl_flags(flags)
            .nl_seq(1)
            .nl_payload(NlPayload::Payload(msg))
            .build()
            .map_err(|e| netlink_err(op, e))?;
        sock.send(&hdr).map_err(|e| socket_err(op, e))?;
        let mut got = Vec::new();
        loop {
            let (iter, _) = sock.recv::<u16, Buffer>().map_err(|e| socket_err(op, e))?;
            for m in iter {
                let m = m.map_err(|e| socket_err(op, e))?;
                if *m.nl_seq() != 1 {
                    continue;
                }
                match m.nl_payload() {
                    NlPayload::Ack(_) => return Ok((got, Outcome::Ack)),
                    NlPayload::Err(e) => {
                        let msg = e
                            .ext_ack()
                            .get_attr_handle()
                            .get_attr_payload_as_with_len::<String>(NlmsgerrAttr::Msg)
                            .ok();
                        return Ok((got, Outcome::Errno(-*e.error(), msg)));
                    }
                    NlPayload::DumpExtAck(_) | NlPayload::Empty => {
                        return Ok((got, Outcome::Ack));
                    }
                    NlPayload::Payload(p) => {
                        if *m.nl_type() == u16::from(Rtm::Newaddr) {
                            let len = p.as_ref().len();
                            let parsed =
                                Ifaddrmsg::from_bytes_with_input(&mut Cursor::new(p.as_ref()), len)
                                    .map_err(|e| netlink_err(op, e))?;
                            got.push(parsed);
                        } else if *m.nl_type() == libc::NLMSG_DONE as u16 {
                            return Ok((got, Outcome::Ack));
                        }
                    }
                }
            }
        }
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
                    Some(m) if !m.trim_end_matches('\0').is_empty() => {
                        format!("{} ({words})", m.trim_end_matches('\0'))
                    }
                    _ => words,
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

fn socket_err(op: &str, e: neli::err::SocketError) -> NetError {
    match e {
        neli::err::SocketError::Io(io) => {
            NetError::io(op, io::Error::new(io.kind(), io.to_string()))
        }
        other => netlink_err(op, other),
    }
}

impl Addresses for Rtnetlink {
    fn list(&self, iface: &Interface) -> Result<Vec<IfAddr>, NetError> {
        let op = format!("list the addresses of {}", iface.name);
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Unspecified)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(iface.index)
            .build()
            .map_err(|e| netlink_err(&op, e))?;
        let (msgs, outcome) = Self::request(&op, Rtm::Getaddr, NlmF::REQUEST | NlmF::DUMP, msg)?;
        Self::check(&op, outcome, 0)?;
        let mut out = Vec::new();
        for m in msgs.iter().filter(|m| *m.ifa_index() == iface.index) {
            let attrs = m.rtattrs().get_attr_handle();
            let get = |k: Ifa| {
                attrs
                    .get_attribute(k)
                    .map(|a| a.rta_payload().as_ref().to_vec())
            };
            let is_v4 = *m.ifa_family() == RtAddrFamily::Inet;
            // IPv4: IFA_LOCAL is the address, IFA_ADDRESS the peer on point-to-point links.
            let raw = if is_v4 {
                get(Ifa::Local).or_else(|| get(Ifa::Address))
            } else {
                get(Ifa::Address).or_else(|| get(Ifa::Local))
            };
            let Some(addr) = raw.as_deref().and_then(ip_from) else {
                continue;
            };
            let label = get(Ifa::Label)
                .map(|l| {
                    String::from_utf8_lossy(&l)
                        .trim_end_matches('\0')
                        .to_owned()
                })
                .filter(|l| *l != iface.name);
            let flags = get(Ifa::Flags)
                .and_then(|f| <[u8; 4]>::try_from(f.as_slice()).ok())
                .map(u32::from_ne_bytes)
                .unwrap_or_else(|| u32::from(u8::from(*m.ifa_flags())));
            out.push(IfAddr {
                addr,
                prefix_len: *m.ifa_prefixlen(),
                label,
                flags,
            });
        }
        Ok(out)
    }

    fn add(&self, iface: &Interface, addr: Cidr, label: Option<&str>) -> Result<Change, NetError> {
        let op = format!("add {addr} to {}", iface.name);
        let ip = addr.addr();
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifa::Local, ip_bytes(ip), &op)?);
        attrs.push(attr(Ifa::Address, ip_bytes(ip), &op)?);
        let mut flags = IfaF::empty();
        let mut scope = RtScope::Universe;
        match ip {
            IpAddr::V4(v4) => {
                if addr.prefix_len() <= 30 {
                    let brd = broadcast(v4, addr.prefix_len());
                    attrs.push(attr(Ifa::Broadcast, brd.octets().to_vec(), &op)?);
                }
                if let Some(l) = label {
                    let mut bytes = l.as_bytes().to_vec();
                    bytes.push(0);
                    attrs.push(attr(Ifa::Label, bytes, &op)?);
                }
                if v4.is_loopback() {
                    scope = RtScope::Host;
                }
            }
            IpAddr::V6(_) => flags |= IfaF::NODAD,
        }
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(family(ip))
            .ifa_prefixlen(addr.prefix_len())
            .ifa_flags(flags)
            .ifa_scope(scope)
            .ifa_index(iface.index)
            .rtattrs(attrs)
            .build()
            .map_err(|e| netlink_err(&op, e))?;
        let (_, outcome) = Self::request(
            &op,
            Rtm::Newaddr,
            NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL,
            msg,
        )?;
        Self::check(&op, outcome, libc::EEXIST)
    }

    fn remove(&self, iface: &Interface, addr: IpAddr, prefix_len: u8) -> Result<Change, NetError> {
        let op = format!("remove {addr}/{prefix_len} from {}", iface.name);
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifa::Local, ip_bytes(addr), &op)?);
        if addr.is_ipv6() {
            attrs.push(attr(Ifa::Address, ip_bytes(addr), &op)?);
        }
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(family(addr))
            .ifa_prefixlen(prefix_len)
            .ifa_scope(RtScope::Universe)
            .ifa_index(iface.index)
            .rtattrs(attrs)
            .build()
            .map_err(|e| netlink_err(&op, e))?;
        let (_, outcome) = Self::request(&op, Rtm::Deladdr, NlmF::REQUEST | NlmF::ACK, msg)?;
        Self::check(&op, outcome, libc::EADDRNOTAVAIL)
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
    fn broadcast_addresses() {
        let b = |a: &str, p| broadcast(a.parse().unwrap(), p).to_string();
        assert_eq!(b("192.0.2.100", 24), "192.0.2.255");
        assert_eq!(b("192.0.2.100", 30), "192.0.2.103");
        assert_eq!(b("198.18.3.4", 15), "198.19.255.255");
        assert_eq!(b("192.0.2.100", 0), "255.255.255.255");
    }

    #[test]
    fn lists_loopback_addresses_from_the_kernel() {
        // Unprivileged: a dump needs no capability. Every namespace's lo has 127.0.0.1/8 once up.
        use crate::net::Interfaces;
        let lo = crate::net::SystemInterfaces.interface("lo").unwrap();
        let addrs = Rtnetlink.list(&lo).unwrap();
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
}
