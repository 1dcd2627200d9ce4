//! The IPVS generic netlink wire format, both directions, as pure functions: [`Op`]s and dump
//! requests become neli [`Genlmsghdr`] messages, reply bytes become [`Reply`]s and then model types.
//!
//! Facts from `include/uapi/linux/ip_vs.h` and `net/netfilter/ipvs/ip_vs_ctl.c` (see
//! `shared/reference/ipvs-netlink.md`): ports (service, destination, tunnel) and the IPv4 netmask
//! travel in network order, everything else in host order; addresses are 16-byte unions; the IPv6
//! netmask is a prefix length; integers have exact widths (a u32 where a u16 is expected would be read
//! half, silently). Decoding drops what is kernel-internal (the `HASHED` flag) and skips unknown
//! attributes (newer kernels add some).
//!
//! This module opens no socket and knows no family id: [`socket`](super::socket) frames and sends.
//!
//! ```
//! use common::ipvs::codec;
//! use common::ipvs::{Op, Scheduler, Service, ServiceKey};
//!
//! let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
//! let msg = codec::encode(&Op::AddService(Service::new(key, Scheduler::Wlc))).unwrap();
//! assert_eq!(*msg.cmd(), codec::cmd::NEW_SERVICE);
//! assert_eq!(codec::decode_service_request(&msg).unwrap(), Service::new(key, Scheduler::Wlc));
//! ```

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use neli::consts::nl::{NlmF, Nlmsg};
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder};
use neli::nl::{NlPayload, Nlmsghdr};
use neli::types::{Buffer, GenlBuffer};
use neli::{FromBytes, FromBytesWithInput, Size, ToBytes};

use super::model::*;

/// A generic netlink message of the IPVS family: command, version, attributes.
pub type Message = Genlmsghdr<u8, u16>;

/// The family's name for `CTRL_CMD_GETFAMILY` (`ip_vs.h: IPVS_GENL_NAME`).
pub const FAMILY_NAME: &str = "IPVS";
/// The protocol version (`ip_vs.h: IPVS_GENL_VERSION`).
pub const VERSION: u8 = 1;

/// Command numbers (`ip_vs.h: enum IPVS_CMD_*`).
pub mod cmd {
    /// Create a service; also the command of service dump replies.
    pub const NEW_SERVICE: u8 = 1;
    /// Replace a service's configuration.
    pub const SET_SERVICE: u8 = 2;
    /// Delete a service.
    pub const DEL_SERVICE: u8 = 3;
    /// Get (doit) or dump services.
    pub const GET_SERVICE: u8 = 4;
    /// Add a destination; also the command of destination dump replies.
    pub const NEW_DEST: u8 = 5;
    /// Replace a destination's configuration.
    pub const SET_DEST: u8 = 6;
    /// Delete a destination.
    pub const DEL_DEST: u8 = 7;
    /// Dump a service's destinations (dump only).
    pub const GET_DEST: u8 = 8;
    /// Start a sync daemon; also the command of daemon dump replies.
    pub const NEW_DAEMON: u8 = 9;
    /// Stop a sync daemon.
    pub const DEL_DAEMON: u8 = 10;
    /// Dump the sync daemons (dump only).
    pub const GET_DAEMON: u8 = 11;
    /// Set timeouts; also the command of the GET_CONFIG reply.
    pub const SET_CONFIG: u8 = 12;
    /// Get timeouts.
    pub const GET_CONFIG: u8 = 13;
    /// The command of the GET_INFO reply.
    pub const SET_INFO: u8 = 14;
    /// Get version and connection table size.
    pub const GET_INFO: u8 = 15;
    /// Zero counters.
    pub const ZERO: u8 = 16;
    /// Delete all services.
    pub const FLUSH: u8 = 17;
}

/// Attribute numbers (`ip_vs.h: IPVS_CMD_ATTR_*`, `IPVS_SVC_ATTR_*`, `IPVS_DEST_ATTR_*`,
/// `IPVS_DAEMON_ATTR_*`, `IPVS_STATS_ATTR_*`, `IPVS_INFO_ATTR_*`).
pub mod attr {
    /// Top level: nested service.
    pub const CMD_SERVICE: u16 = 1;
    /// Top level: nested destination.
    pub const CMD_DEST: u16 = 2;
    /// Top level: nested daemon.
    pub const CMD_DAEMON: u16 = 3;
    /// Top level: TCP timeout (u32 s).
    pub const CMD_TIMEOUT_TCP: u16 = 4;
    /// Top level: TCP FIN timeout (u32 s).
    pub const CMD_TIMEOUT_TCP_FIN: u16 = 5;
    /// Top level: UDP timeout (u32 s).
    pub const CMD_TIMEOUT_UDP: u16 = 6;

    /// Service: address family (u16).
    pub const SVC_AF: u16 = 1;
    /// Service: protocol (u16).
    pub const SVC_PROTOCOL: u16 = 2;
    /// Service: address (16 bytes).
    pub const SVC_ADDR: u16 = 3;
    /// Service: port (be16).
    pub const SVC_PORT: u16 = 4;
    /// Service: firewall mark (u32).
    pub const SVC_FWMARK: u16 = 5;
    /// Service: scheduler name (NUL string).
    pub const SVC_SCHED_NAME: u16 = 6;
    /// Service: flags and mask (2 × u32).
    pub const SVC_FLAGS: u16 = 7;
    /// Service: persistence timeout (u32 s).
    pub const SVC_TIMEOUT: u16 = 8;
    /// Service: netmask (v4 mask bytes, or v6 prefix length u32).
    pub const SVC_NETMASK: u16 = 9;
    /// Service: 32-bit stats (nested).
    pub const SVC_STATS: u16 = 10;
    /// Service: persistence engine name (NUL string).
    pub const SVC_PE_NAME: u16 = 11;
    /// Service: 64-bit stats (nested).
    pub const SVC_STATS64: u16 = 12;

    /// Destination: address (16 bytes).
    pub const DEST_ADDR: u16 = 1;
    /// Destination: port (be16).
    pub const DEST_PORT: u16 = 2;
    /// Destination: forwarding method (u32).
    pub const DEST_FWD_METHOD: u16 = 3;
    /// Destination: weight (u32).
    pub const DEST_WEIGHT: u16 = 4;
    /// Destination: upper threshold (u32).
    pub const DEST_U_THRESH: u16 = 5;
    /// Destination: lower threshold (u32).
    pub const DEST_L_THRESH: u16 = 6;
    /// Destination: active connections (u32, output).
    pub const DEST_ACTIVE_CONNS: u16 = 7;
    /// Destination: inactive connections (u32, output).
    pub const DEST_INACT_CONNS: u16 = 8;
    /// Destination: persistence templates (u32, output).
    pub const DEST_PERSIST_CONNS: u16 = 9;
    /// Destination: 32-bit stats (nested, output).
    pub const DEST_STATS: u16 = 10;
    /// Destination: address family (u16).
    pub const DEST_ADDR_FAMILY: u16 = 11;
    /// Destination: 64-bit stats (nested, output).
    pub const DEST_STATS64: u16 = 12;
    /// Destination: tunnel type (u8).
    pub const DEST_TUN_TYPE: u16 = 13;
    /// Destination: tunnel port (be16).
    pub const DEST_TUN_PORT: u16 = 14;
    /// Destination: tunnel flags (u16).
    pub const DEST_TUN_FLAGS: u16 = 15;

    /// Daemon: state (u32: 1 master, 2 backup).
    pub const DAEMON_STATE: u16 = 1;
    /// Daemon: multicast interface (NUL string).
    pub const DAEMON_MCAST_IFN: u16 = 2;
    /// Daemon: sync id (u32).
    pub const DAEMON_SYNC_ID: u16 = 3;
    /// Daemon: max sync message length (u16).
    pub const DAEMON_SYNC_MAXLEN: u16 = 4;
    /// Daemon: IPv4 multicast group (4 bytes, network order).
    pub const DAEMON_MCAST_GROUP: u16 = 5;
    /// Daemon: IPv6 multicast group (16 bytes).
    pub const DAEMON_MCAST_GROUP6: u16 = 6;
    /// Daemon: multicast port (u16, host order).
    pub const DAEMON_MCAST_PORT: u16 = 7;
    /// Daemon: multicast TTL (u8).
    pub const DAEMON_MCAST_TTL: u16 = 8;

    /// Info: version (u32).
    pub const INFO_VERSION: u16 = 1;
    /// Info: connection table size (u32).
    pub const INFO_CONN_TAB_SIZE: u16 = 2;
}

/// A malformed message: what was wrong, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A message or attribute is not what the protocol says.
    #[error("malformed IPVS message: {0}")]
    Malformed(String),
    /// neli could not serialise a message.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// The operation or request.
        what: String,
        /// neli's reason.
        reason: String,
    },
}

fn malformed(s: impl Into<String>) -> CodecError {
    CodecError::Malformed(s.into())
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Longest attribute, header included: `nla_len` is a u16 (`netlink.h: struct nlattr`). neli
/// would wrap a longer length silently.
pub const MAX_ATTR_LEN: usize = u16::MAX as usize;
/// Longest scheduler name, persistence engine name and sync interface name: the kernel's buffers
/// hold 16 bytes with the NUL (`ip_vs.h: IP_VS_SCHEDNAME_MAXLEN`, `IP_VS_PENAME_MAXLEN`,
/// `IP_VS_IFNAME_MAXLEN`), and its policy refuses longer ones (`ip_vs_ctl.c`, `NLA_NUL_STRING`).
pub const MAX_NAME_LEN: usize = 15;

/// `name` fits a kernel name buffer: at most [`MAX_NAME_LEN`] bytes, no NUL (which would cut it).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} {name:?} is {} bytes long; the kernel takes at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err(format!("{what} {name:?} contains a NUL byte"));
    }
    Ok(())
}

fn attr<P: Size + ToBytes>(ty: u16, payload: P) -> Result<Nlattr<u16, Buffer>, String> {
    let len = 4 + payload.unpadded_size();
    if len > MAX_ATTR_LEN {
        return Err(format!(
            "attribute {ty} would be {len} bytes long; netlink attributes hold at most {MAX_ATTR_LEN}"
        ));
    }
    let t = AttrTypeBuilder::default()
        .nla_type(ty)
        .build()
        .map_err(|e| e.to_string())?;
    NlattrBuilder::default()
        .nla_type(t)
        .nla_payload(payload)
        .build()
        .map_err(|e| e.to_string())
}

fn nest(ty: u16, children: Vec<Nlattr<u16, Buffer>>) -> Result<Nlattr<u16, Buffer>, String> {
    let t = AttrTypeBuilder::default()
        .nla_type(ty)
        .nla_nested(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut parent = NlattrBuilder::default()
        .nla_type(t)
        .nla_payload(Buffer::new())
        .build()
        .map_err(|e| e.to_string())?;
    let len = 4 + children.iter().map(|c| c.padded_size()).sum::<usize>();
    if len > MAX_ATTR_LEN {
        return Err(format!(
            "nested attribute {ty} would be {len} bytes long; netlink attributes hold at most {MAX_ATTR_LEN}"
        ));
    }
    for c in &children {
        parent = parent.nest(c).map_err(|e| e.to_string())?;
    }
    Ok(parent)
}

fn message(cmd: u8, attrs: Vec<Nlattr<u16, Buffer>>) -> Result<Message, String> {
    let mut buf = GenlBuffer::new();
    for a in attrs {
        buf.push(a);
    }
    GenlmsghdrBuilder::<u8, u16>::default()
        .cmd(cmd)
        .version(VERSION)
        .attrs(buf)
        .build()
        .map_err(|e| e.to_string())
}

/// The 16-byte `union nf_inet_addr` of an address.
pub fn addr_bytes(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn service_id_attrs(key: &ServiceKey) -> Result<Vec<Nlattr<u16, Buffer>>, String> {
    let mut v = vec![attr(attr::SVC_AF, key.family().af())?];
    match key {
        ServiceKey::Addr { protocol, addr } => {
            v.push(attr(attr::SVC_PROTOCOL, protocol.number())?);
            v.push(attr(attr::SVC_ADDR, addr_bytes(&addr.ip()))?);
            v.push(attr(attr::SVC_PORT, addr.port().to_be_bytes())?);
        }
        ServiceKey::Fwmark { mark, .. } => v.push(attr(attr::SVC_FWMARK, *mark)?),
    }
    Ok(v)
}

fn service_id(key: &ServiceKey) -> Result<Nlattr<u16, Buffer>, String> {
    nest(attr::CMD_SERVICE, service_id_attrs(key)?)
}

fn service_full(s: &Service) -> Result<Nlattr<u16, Buffer>, String> {
    let mut v = service_id_attrs(&s.key)?;
    check_name("scheduler name", s.scheduler.name())?;
    v.push(attr(attr::SVC_SCHED_NAME, s.scheduler.name())?);
    if let Some(pe) = &s.pe_name {
        check_name("persistence engine name", pe)?;
        v.push(attr(attr::SVC_PE_NAME, pe.as_str())?);
    }
    // struct ip_vs_flags { flags; mask }: an all-ones mask makes the flags absolute.
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&s.flags.bits().to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    v.push(attr(attr::SVC_FLAGS, flags)?);
    v.push(attr(attr::SVC_TIMEOUT, s.timeout)?);
    v.push(match s.netmask {
        Netmask::V4(m) => attr(attr::SVC_NETMASK, m.octets())?,
        Netmask::V6(p) => attr(attr::SVC_NETMASK, u32::from(p))?,
    });
    nest(attr::CMD_SERVICE, v)
}

fn dest_id_attrs(addr: &SocketAddr) -> Result<Vec<Nlattr<u16, Buffer>>, String> {
    Ok(vec![
        attr(attr::DEST_ADDR, addr_bytes(&addr.ip()))?,
        attr(attr::DEST_PORT, addr.port().to_be_bytes())?,
        attr(attr::DEST_ADDR_FAMILY, Family::of(&addr.ip()).af())?,
    ])
}

/// A tunnel's `DEST_TUN_TYPE`, `DEST_TUN_PORT` (host order here) and `DEST_TUN_FLAGS`.
fn tunnel_fields(encap: Encap) -> (u8, u16, u16) {
    match encap {
        Encap::Ipip => (0, 0, 0),
        Encap::Gue { port, checksum } => (1, port, checksum.bits()),
        Encap::Gre { checksum } => (2, 0, checksum.bits()),
        Encap::Other(n) => (n, 0, 0),
    }
}

fn dest_full(d: &Destination) -> Result<Nlattr<u16, Buffer>, String> {
    let mut v = dest_id_attrs(&d.addr)?;
    v.push(attr(attr::DEST_FWD_METHOD, d.forward.method())?);
    v.push(attr(attr::DEST_WEIGHT, d.weight)?);
    v.push(attr(attr::DEST_U_THRESH, d.upper_threshold)?);
    v.push(attr(attr::DEST_L_THRESH, d.lower_threshold)?);
    if let Forward::Tunnel(encap) = d.forward {
        let (ty, port, flags) = tunnel_fields(encap);
        v.push(attr(attr::DEST_TUN_TYPE, ty)?);
        v.push(attr(attr::DEST_TUN_PORT, port.to_be_bytes())?);
        v.push(attr(attr::DEST_TUN_FLAGS, flags)?);
    }
    nest(attr::CMD_DEST, v)
}

fn daemon_full(d: &SyncDaemon) -> Result<Nlattr<u16, Buffer>, String> {
    check_name("sync interface name", &d.interface)?;
    let mut v = vec![
        attr(attr::DAEMON_STATE, d.role.state())?,
        attr(attr::DAEMON_MCAST_IFN, d.interface.as_str())?,
        attr(attr::DAEMON_SYNC_ID, d.sync_id)?,
    ];
    if let Some(l) = d.max_len {
        v.push(attr(attr::DAEMON_SYNC_MAXLEN, l)?);
    }
    match d.group {
        Some(IpAddr::V4(g)) => v.push(attr(attr::DAEMON_MCAST_GROUP, g.octets())?),
        Some(IpAddr::V6(g)) => v.push(attr(attr::DAEMON_MCAST_GROUP6, g.octets())?),
        None => {}
    }
    if let Some(p) = d.port {
        v.push(attr(attr::DAEMON_MCAST_PORT, p)?);
    }
    if let Some(t) = d.ttl {
        v.push(attr(attr::DAEMON_MCAST_TTL, t)?);
    }
    nest(attr::CMD_DAEMON, v)
}

/// The request for one operation (framed with [`frame`]).
pub fn encode(op: &Op) -> Result<Message, CodecError> {
    let r = match op {
        Op::AddService(s) => service_full(s).and_then(|a| message(cmd::NEW_SERVICE, vec![a])),
        Op::EditService(s) => service_full(s).and_then(|a| message(cmd::SET_SERVICE, vec![a])),
        Op::DelService(k) => service_id(k).and_then(|a| message(cmd::DEL_SERVICE, vec![a])),
        Op::AddDestination(k, d) => service_id(k)
            .and_then(|s| Ok((s, dest_full(d)?)))
            .and_then(|(s, d)| message(cmd::NEW_DEST, vec![s, d])),
        Op::EditDestination(k, d) => service_id(k)
            .and_then(|s| Ok((s, dest_full(d)?)))
            .and_then(|(s, d)| message(cmd::SET_DEST, vec![s, d])),
        Op::DelDestination(k, a) => service_id(k)
            .and_then(|s| Ok((s, nest(attr::CMD_DEST, dest_id_attrs(a)?)?)))
            .and_then(|(s, d)| message(cmd::DEL_DEST, vec![s, d])),
        Op::StartDaemon(d) => daemon_full(d).and_then(|a| message(cmd::NEW_DAEMON, vec![a])),
        Op::StopDaemon(r) => attr(attr::DAEMON_STATE, r.state())
            .and_then(|s| nest(attr::CMD_DAEMON, vec![s]))
            .and_then(|a| message(cmd::DEL_DAEMON, vec![a])),
        Op::SetTimeouts(t) => (|| {
            message(
                cmd::SET_CONFIG,
                vec![
                    attr(attr::CMD_TIMEOUT_TCP, t.tcp)?,
                    attr(attr::CMD_TIMEOUT_TCP_FIN, t.tcp_fin)?,
                    attr(attr::CMD_TIMEOUT_UDP, t.udp)?,
                ],
            )
        })(),
        Op::Zero(Some(k)) => service_id(k).and_then(|a| message(cmd::ZERO, vec![a])),
        Op::Zero(None) => message(cmd::ZERO, vec![]),
        Op::Flush => message(cmd::FLUSH, vec![]),
    };
    r.map_err(|reason| CodecError::Encode {
        what: op.to_string(),
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding straight to bytes

/// A value as it travels in an attribute: the same bytes neli writes for it (integers in host
/// order, arrays as they are, strings with their NUL).
trait Wire {
    fn put(&self, out: &mut Vec<u8>);
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_ne_bytes());
            }
        }
    )*};
}
wire_int!(u8, u16, u32);

impl<const N: usize> Wire for [u8; N] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Wire for &str {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
        out.push(0);
    }
}

/// Writes netlink attributes into a framed message under construction.
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, ty: u16, value: impl Wire) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0.extend_from_slice(&ty.to_ne_bytes());
        value.put(self.0);
        // Every payload here is a fixed-width value or a name of at most MAX_NAME_LEN bytes.
        let len = self.0.len() - at;
        self.0[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self.0.resize(at + align4(len), 0);
    }

    /// A nested attribute: `fill` writes its children.
    fn nest(&mut self, ty: u16, fill: impl FnOnce(&mut Attrs<'_>)) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        fill(&mut Attrs(self.0));
        let len = (self.0.len() - at) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// `netlink.h: NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 1 << 15;

fn put_service_id(a: &mut Attrs<'_>, key: &ServiceKey) {
    a.put(attr::SVC_AF, key.family().af());
    match key {
        ServiceKey::Addr { protocol, addr } => {
            a.put(attr::SVC_PROTOCOL, protocol.number());
            a.put(attr::SVC_ADDR, addr_bytes(&addr.ip()));
            a.put(attr::SVC_PORT, addr.port().to_be_bytes());
        }
        ServiceKey::Fwmark { mark, .. } => a.put(attr::SVC_FWMARK, *mark),
    }
}

fn put_service_full(a: &mut Attrs<'_>, s: &Service) {
    a.nest(attr::CMD_SERVICE, |a| {
        put_service_id(a, &s.key);
        a.put(attr::SVC_SCHED_NAME, s.scheduler.name());
        if let Some(pe) = &s.pe_name {
            a.put(attr::SVC_PE_NAME, pe.as_str());
        }
        let mut flags = [0u8; 8];
        flags[..4].copy_from_slice(&s.flags.bits().to_ne_bytes());
        flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
        a.put(attr::SVC_FLAGS, flags);
        a.put(attr::SVC_TIMEOUT, s.timeout);
        match s.netmask {
            Netmask::V4(m) => a.put(attr::SVC_NETMASK, m.octets()),
            Netmask::V6(p) => a.put(attr::SVC_NETMASK, u32::from(p)),
        }
    });
}

fn put_dest_id(a: &mut Attrs<'_>, addr: &SocketAddr) {
    a.put(attr::DEST_ADDR, addr_bytes(&addr.ip()));
    a.put(attr::DEST_PORT, addr.port().to_be_bytes());
    a.put(attr::DEST_ADDR_FAMILY, Family::of(&addr.ip()).af());
}

fn put_dest_full(a: &mut Attrs<'_>, d: &Destination) {
    a.nest(attr::CMD_DEST, |a| {
        put_dest_id(a, &d.addr);
        a.put(attr::DEST_FWD_METHOD, d.forward.method());
        a.put(attr::DEST_WEIGHT, d.weight);
        a.put(attr::DEST_U_THRESH, d.upper_threshold);
        a.put(attr::DEST_L_THRESH, d.lower_threshold);
        if let Forward::Tunnel(encap) = d.forward {
            let (ty, port, flags) = tunnel_fields(encap);
            a.put(attr::DEST_TUN_TYPE, ty);
            a.put(attr::DEST_TUN_PORT, port.to_be_bytes());
            a.put(attr::DEST_TUN_FLAGS, flags);
        }
    });
}

fn put_daemon_full(a: &mut Attrs<'_>, d: &SyncDaemon) {
    a.nest(attr::CMD_DAEMON, |a| {
        a.put(attr::DAEMON_STATE, d.role.state());
        a.put(attr::DAEMON_MCAST_IFN, d.interface.as_str());
        a.put(attr::DAEMON_SYNC_ID, d.sync_id);
        if let Some(l) = d.max_len {
            a.put(attr::DAEMON_SYNC_MAXLEN, l);
        }
        match d.group {
            Some(IpAddr::V4(g)) => a.put(attr::DAEMON_MCAST_GROUP, g.octets()),
            Some(IpAddr::V6(g)) => a.put(attr::DAEMON_MCAST_GROUP6, g.octets()),
            None => {}
        }
        if let Some(p) = d.port {
            a.put(attr::DAEMON_MCAST_PORT, p);
        }
        if let Some(t) = d.ttl {
            a.put(attr::DAEMON_MCAST_TTL, t);
        }
    });
}

/// Appends the framed request for `op` to `out`: the same bytes as [`frame`] of [`encode`], and
/// the same refusals, written directly. `NetlinkIpvs::apply` uses this: neli's builders allocate
/// for every attribute and serialise every nest twice, which made encoding the largest user-space
/// cost of programming a table (callgrind, `ldir apply` of 1,000 virtuals x 10 reals in the lab
/// VM: 124 M of its 250 M instructions in `NetlinkIpvs::apply`, ~11,000 per request).
pub fn encode_framed(
    op: &Op,
    family: u16,
    seq: u32,
    ask: Ask,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let refuse = |reason: String| CodecError::Encode {
        what: op.to_string(),
        reason,
    };
    match op {
        Op::AddService(s) | Op::EditService(s) => {
            check_name("scheduler name", s.scheduler.name()).map_err(refuse)?;
            if let Some(pe) = &s.pe_name {
                check_name("persistence engine name", pe).map_err(refuse)?;
            }
        }
        Op::StartDaemon(d) => check_name("sync interface name", &d.interface).map_err(refuse)?,
        _ => {}
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&family.to_ne_bytes());
    out.extend_from_slice(&u16::from(request_flags(ask)).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    let command = match op {
        Op::AddService(_) => cmd::NEW_SERVICE,
        Op::EditService(_) => cmd::SET_SERVICE,
        Op::DelService(_) => cmd::DEL_SERVICE,
        Op::AddDestination(..) => cmd::NEW_DEST,
        Op::EditDestination(..) => cmd::SET_DEST,
        Op::DelDestination(..) => cmd::DEL_DEST,
        Op::StartDaemon(_) => cmd::NEW_DAEMON,
        Op::StopDaemon(_) => cmd::DEL_DAEMON,
        Op::SetTimeouts(_) => cmd::SET_CONFIG,
        Op::Zero(_) => cmd::ZERO,
        Op::Flush => cmd::FLUSH,
    };
    out.extend_from_slice(&[command, VERSION, 0, 0]);
    let mut a = Attrs(out);
    match op {
        Op::AddService(s) | Op::EditService(s) => put_service_full(&mut a, s),
        Op::DelService(k) | Op::Zero(Some(k)) => {
            a.nest(attr::CMD_SERVICE, |a| put_service_id(a, k))
        }
        Op::AddDestination(k, d) | Op::EditDestination(k, d) => {
            a.nest(attr::CMD_SERVICE, |a| put_service_id(a, k));
            put_dest_full(&mut a, d);
        }
        Op::DelDestination(k, addr) => {
            a.nest(attr::CMD_SERVICE, |a| put_service_id(a, k));
            a.nest(attr::CMD_DEST, |a| put_dest_id(a, addr));
        }
        Op::StartDaemon(d) => put_daemon_full(&mut a, d),
        Op::StopDaemon(r) => a.nest(attr::CMD_DAEMON, |a| a.put(attr::DAEMON_STATE, r.state())),
        Op::SetTimeouts(t) => {
            a.put(attr::CMD_TIMEOUT_TCP, t.tcp);
            a.put(attr::CMD_TIMEOUT_TCP_FIN, t.tcp_fin);
            a.put(attr::CMD_TIMEOUT_UDP, t.udp);
        }
        Op::Zero(None) | Op::Flush => {}
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    Ok(())
}

/// nlctrl's fixed family id (`genetlink.h: GENL_ID_CTRL`).
pub const GENL_ID_CTRL: u16 = 0x10;
/// nlctrl: `CTRL_CMD_GETFAMILY`, `CTRL_ATTR_FAMILY_ID`, `CTRL_ATTR_FAMILY_NAME` (`genetlink.h`).
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// `genetlink.h: GENL_NAMSIZ` minus the NUL.
const MAX_FAMILY_NAME_LEN: usize = 15;

/// The framed nlctrl request for the id of generic netlink family `name` (`REQUEST | ACK`).
pub fn family_request(name: &str, seq: u32) -> Result<Vec<u8>, CodecError> {
    let encode_err = |reason: String| CodecError::Encode {
        what: format!("the lookup of generic netlink family {name:?}"),
        reason,
    };
    if name.len() > MAX_FAMILY_NAME_LEN {
        return Err(encode_err(format!(
            "the name is {} bytes long; the kernel takes at most {MAX_FAMILY_NAME_LEN}",
            name.len()
        )));
    }
    let a = attr(CTRL_ATTR_FAMILY_NAME, name).map_err(encode_err)?;
    let mut attrs = GenlBuffer::new();
    attrs.push(a);
    let msg = GenlmsghdrBuilder::<u8, u16>::default()
        .cmd(CTRL_CMD_GETFAMILY)
        .version(2)
        .attrs(attrs)
        .build()
        .map_err(|e| encode_err(e.to_string()))?;
    let mut out = Vec::new();
    frame(GENL_ID_CTRL, seq, Ask::Ack, msg, &mut out)?;
    Ok(out)
}

/// The family id in nlctrl's reply to [`family_request`], if the message has one.
pub fn decode_family_id(msg: &Message) -> Result<Option<u16>, CodecError> {
    match find(&attrs_of(msg.attrs()), CTRL_ATTR_FAMILY_ID) {
        None => Ok(None),
        Some(p) => Ok(Some(u16::from_ne_bytes(p.try_into().map_err(|_| {
            malformed(format!("nlctrl family id of {} bytes, not 2", p.len()))
        })?))),
    }
}

/// The dump request for every service (sent with `NLM_F_DUMP`).
pub fn dump_services() -> Result<Message, CodecError> {
    message(cmd::GET_SERVICE, vec![]).map_err(|reason| CodecError::Encode {
        what: "dump services".into(),
        reason,
    })
}

/// The dump request for one service's destinations (sent with `NLM_F_DUMP`).
pub fn dump_destinations(key: &ServiceKey) -> Result<Message, CodecError> {
    service_id(key)
        .and_then(|a| message(cmd::GET_DEST, vec![a]))
        .map_err(|reason| CodecError::Encode {
            what: format!("dump destinations of {key}"),
            reason,
        })
}

/// The doit request for one service (sent with `NLM_F_ACK`).
pub fn get_service(key: &ServiceKey) -> Result<Message, CodecError> {
    service_id(key)
        .and_then(|a| message(cmd::GET_SERVICE, vec![a]))
        .map_err(|reason| CodecError::Encode {
            what: format!("get service {key}"),
            reason,
        })
}

/// A request without attributes: GET_DAEMON (dump), GET_CONFIG, GET_INFO.
pub fn bare(command: u8) -> Result<Message, CodecError> {
    message(command, vec![]).map_err(|reason| CodecError::Encode {
        what: format!("command {command}"),
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Framing of replies

/// One netlink message of a reply stream, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A data message (dump entry or doit reply) for request `seq`.
    Message {
        /// The request's sequence number.
        seq: u32,
        /// The generic netlink message.
        msg: Message,
    },
    /// The positive acknowledgement of request `seq`.
    Ack {
        /// The request's sequence number.
        seq: u32,
    },
    /// The kernel refused request `seq` with `errno` (positive).
    Error {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive.
        errno: i32,
    },
    /// The end of dump `seq` (`NLMSG_DONE`), with the dump's errno (0 when it went well).
    Done {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive; 0 on success.
        errno: i32,
    },
}

/// Splits received bytes (one or more datagrams concatenated) into [`Reply`]s.
pub fn parse_replies(bytes: &[u8]) -> Result<Vec<Reply>, CodecError> {
    let mut out = Vec::new();
    let mut cur = Cursor::new(bytes);
    while (cur.position() as usize) < bytes.len() {
        let start = cur.position() as usize;
        if bytes.len() - start < 16 {
            return Err(malformed(format!(
                "{} trailing bytes after the last message",
                bytes.len() - start
            )));
        }
        let len = u32::from_ne_bytes([
            bytes[start],
            bytes[start + 1],
            bytes[start + 2],
            bytes[start + 3],
        ]) as usize;
        if len < 16 || start + len > bytes.len() {
            return Err(malformed(format!(
                "message length {len} at offset {start} out of bounds"
            )));
        }
        let ty = u16::from_ne_bytes([bytes[start + 4], bytes[start + 5]]);
        let seq = u32::from_ne_bytes([
            bytes[start + 8],
            bytes[start + 9],
            bytes[start + 10],
            bytes[start + 11],
        ]);
        if ty == u16::from(Nlmsg::Noop) {
            cur.set_position((start + align4(len)) as u64);
            continue;
        }
        if ty == u16::from(Nlmsg::Done) {
            // The payload is the dump's status (an int), absent on very old kernels.
            let errno = if len >= 20 {
                -i32::from_ne_bytes([
                    bytes[start + 16],
                    bytes[start + 17],
                    bytes[start + 18],
                    bytes[start + 19],
                ])
            } else {
                0
            };
            out.push(Reply::Done { seq, errno });
            cur.set_position((start + align4(len)) as u64);
            continue;
        }
        let m = Nlmsghdr::<u16, Message>::from_bytes(&mut cur)
            .map_err(|e| malformed(format!("message at offset {start}: {e}")))?;
        out.push(match m.nl_payload() {
            NlPayload::Payload(p) => Reply::Message {
                seq,
                msg: p.clone(),
            },
            NlPayload::Ack(_) => Reply::Ack { seq },
            NlPayload::Err(e) => Reply::Error {
                seq,
                errno: -*e.error(),
            },
            NlPayload::DumpExtAck(e) => Reply::Done {
                seq,
                errno: -*e.error(),
            },
            NlPayload::Empty => Reply::Ack { seq },
        });
        // neli pads to 4; make sure we are at the next message whatever it read.
        cur.set_position((start + align4(len)).min(bytes.len()) as u64);
    }
    Ok(out)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// What a framed request asks of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A doit request answered with an ACK or an error (`REQUEST | ACK`).
    Ack,
    /// A doit request answered only if it fails (`REQUEST`): the kernel sends an error for a
    /// failed request whatever its flags (`af_netlink.c: netlink_rcv_skb`), nothing for a success.
    ErrorsOnly,
    /// A dump (`REQUEST | DUMP`).
    Dump,
}

/// The netlink header flags for a request.
pub fn request_flags(ask: Ask) -> NlmF {
    match ask {
        Ask::Ack => NlmF::REQUEST | NlmF::ACK,
        Ask::ErrorsOnly => NlmF::REQUEST,
        Ask::Dump => NlmF::REQUEST | NlmF::DUMP,
    }
}

/// Serialises a framed request (netlink header + message) into `out`.
pub fn frame(
    family: u16,
    seq: u32,
    ask: Ask,
    msg: Message,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let nl = neli::nl::NlmsghdrBuilder::default()
        .nl_type(family)
        .nl_flags(request_flags(ask))
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(msg))
        .build()
        .map_err(|e| CodecError::Encode {
            what: "netlink header".into(),
            reason: e.to_string(),
        })?;
    let mut c = Cursor::new(Vec::with_capacity(nl.padded_size()));
    nl.to_bytes(&mut c).map_err(|e| CodecError::Encode {
        what: "netlink message".into(),
        reason: e.to_string(),
    })?;
    out.extend_from_slice(c.get_ref());
    Ok(())
}

/// Turns the framed request at the start of `framed` into one that asks for an ACK
/// ([`Ask::Ack`]); leaves anything shorter than a netlink header as it is.
pub fn ask_for_ack(framed: &mut [u8]) {
    if let Some(flags) = framed.get_mut(6..8) {
        let f = u16::from_ne_bytes([flags[0], flags[1]]) | u16::from(NlmF::ACK);
        flags.copy_from_slice(&f.to_ne_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// The attributes of a message or nest, as (type without flags, payload).
fn attrs_of(buf: &GenlBuffer<u16, Buffer>) -> Vec<(u16, &[u8])> {
    buf.iter()
        .map(|a| (*a.nla_type().nla_type(), a.nla_payload().as_ref()))
        .collect()
}

fn nested(payload: &[u8], what: &str) -> Result<GenlBuffer<u16, Buffer>, CodecError> {
    GenlBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
        .map_err(|e| malformed(format!("{what}: {e}")))
}

fn find<'a>(attrs: &'a [(u16, &'a [u8])], id: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(t, _)| *t == id).map(|(_, p)| *p)
}

fn fixed<const N: usize>(p: &[u8], what: &str) -> Result<[u8; N], CodecError> {
    p.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed(format!("{what} is {} bytes, expected {N}", p.len())))
}

fn req<'a>(attrs: &'a [(u16, &'a [u8])], id: u16, what: &str) -> Result<&'a [u8], CodecError> {
    find(attrs, id).ok_or_else(|| malformed(format!("{what} is missing")))
}

fn u8_(p: &[u8], what: &str) -> Result<u8, CodecError> {
    Ok(fixed::<1>(p, what)?[0])
}
fn u16_(p: &[u8], what: &str) -> Result<u16, CodecError> {
    Ok(u16::from_ne_bytes(fixed(p, what)?))
}
fn be16(p: &[u8], what: &str) -> Result<u16, CodecError> {
    Ok(u16::from_be_bytes(fixed(p, what)?))
}
fn u32_(p: &[u8], what: &str) -> Result<u32, CodecError> {
    Ok(u32::from_ne_bytes(fixed(p, what)?))
}
fn u64_(p: &[u8], what: &str) -> Result<u64, CodecError> {
    Ok(u64::from_ne_bytes(fixed(p, what)?))
}
fn string(p: &[u8], what: &str) -> Result<String, CodecError> {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8(p[..end].to_vec()).map_err(|_| malformed(format!("{what} is not UTF-8")))
}
fn ip(p: &[u8], family: Family, what: &str) -> Result<IpAddr, CodecError> {
    let b: [u8; 16] = fixed(p, what)?;
    Ok(match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from(b)),
    })
}

fn top_nest(msg: &Message, id: u16, what: &str) -> Result<GenlBuffer<u16, Buffer>, CodecError> {
    let top = attrs_of(msg.attrs());
    nested(req(&top, id, what)?, what)
}

fn decode_stats(payload: &[u8], wide: bool) -> Result<Stats, CodecError> {
    let buf = nested(payload, "stats")?;
    let a = attrs_of(&buf);
    let mut s = Stats::default();
    let get = |id: u16, is64: bool| -> Result<u64, CodecError> {
        match find(&a, id) {
            None => Ok(0),
            Some(p) if is64 => u64_(p, "stats counter"),
            Some(p) => Ok(u64::from(u32_(p, "stats counter")?)),
        }
    };
    s.conns = get(1, wide)?;
    s.in_pkts = get(2, wide)?;
    s.out_pkts = get(3, wide)?;
    s.in_bytes = get(4, true)?;
    s.out_bytes = get(5, true)?;
    s.cps = get(6, wide)?;
    s.in_pps = get(7, wide)?;
    s.out_pps = get(8, wide)?;
    s.in_bps = get(9, wide)?;
    s.out_bps = get(10, wide)?;
    Ok(s)
}

fn stats_of(a: &[(u16, &[u8])], id32: u16, id64: u16) -> Result<Stats, CodecError> {
    match (find(a, id64), find(a, id32)) {
        (Some(p), _) => decode_stats(p, true),
        (None, Some(p)) => decode_stats(p, false),
        (None, None) => Ok(Stats::default()),
    }
}

fn decode_key(a: &[(u16, &[u8])]) -> Result<ServiceKey, CodecError> {
    let af = u16_(req(a, attr::SVC_AF, "service AF")?, "service AF")?;
    let family =
        Family::from_af(af).ok_or_else(|| malformed(format!("service address family {af}")))?;
    if let Some(p) = find(a, attr::SVC_FWMARK) {
        let mark = u32_(p, "service FWMARK")?;
        if mark != 0 {
            return Ok(ServiceKey::Fwmark { family, mark });
        }
    }
    let protocol = Protocol::from_number(u16_(
        req(a, attr::SVC_PROTOCOL, "service PROTOCOL")?,
        "service PROTOCOL",
    )?);
    let addr = ip(
        req(a, attr::SVC_ADDR, "service ADDR")?,
        family,
        "service ADDR",
    )?;
    let port = be16(req(a, attr::SVC_PORT, "service PORT")?, "service PORT")?;
    Ok(ServiceKey::Addr {
        protocol,
        addr: SocketAddr::new(addr, port),
    })
}

fn decode_service_attrs(a: &[(u16, &[u8])]) -> Result<Service, CodecError> {
    let key = decode_key(a)?;
    let scheduler = Scheduler::from_name(&string(
        req(a, attr::SVC_SCHED_NAME, "service SCHED_NAME")?,
        "service SCHED_NAME",
    )?);
    let fl: [u8; 8] = fixed(req(a, attr::SVC_FLAGS, "service FLAGS")?, "service FLAGS")?;
    let flags = ServiceFlags::from_bits(u32::from_ne_bytes([fl[0], fl[1], fl[2], fl[3]]));
    let timeout = u32_(
        req(a, attr::SVC_TIMEOUT, "service TIMEOUT")?,
        "service TIMEOUT",
    )?;
    let nm = req(a, attr::SVC_NETMASK, "service NETMASK")?;
    let netmask = match key.family() {
        Family::Inet => Netmask::V4(Ipv4Addr::from(fixed::<4>(nm, "service NETMASK")?)),
        Family::Inet6 => {
            let p = u32_(nm, "service NETMASK")?;
            Netmask::V6(u8::try_from(p).map_err(|_| malformed(format!("IPv6 prefix length {p}")))?)
        }
    };
    let pe_name = match find(a, attr::SVC_PE_NAME) {
        Some(p) => Some(string(p, "service PE_NAME")?).filter(|s| !s.is_empty()),
        None => None,
    };
    Ok(Service {
        key,
        scheduler,
        flags,
        timeout,
        netmask,
        pe_name,
    })
}

/// A service dump entry (or a GET_SERVICE doit reply).
pub fn decode_service(msg: &Message) -> Result<ServiceStatus, CodecError> {
    let buf = top_nest(msg, attr::CMD_SERVICE, "SERVICE attribute")?;
    let a = attrs_of(&buf);
    Ok(ServiceStatus {
        service: decode_service_attrs(&a)?,
        stats: stats_of(&a, attr::SVC_STATS, attr::SVC_STATS64)?,
    })
}

/// The service a NEW/SET_SERVICE request carries (the inverse of [`encode`] for those).
pub fn decode_service_request(msg: &Message) -> Result<Service, CodecError> {
    decode_service(msg).map(|s| s.service)
}

/// The service key of any request carrying a SERVICE nest.
pub fn decode_service_key(msg: &Message) -> Result<ServiceKey, CodecError> {
    let buf = top_nest(msg, attr::CMD_SERVICE, "SERVICE attribute")?;
    decode_key(&attrs_of(&buf))
}

/// A destination dump entry of a service of family `service_family` (used when the kernel does not
/// report the destination's own family).
pub fn decode_destination(
    msg: &Message,
    service_family: Family,
) -> Result<DestinationStatus, CodecError> {
    let buf = top_nest(msg, attr::CMD_DEST, "DEST attribute")?;
    let a = attrs_of(&buf);
    let family = match find(&a, attr::DEST_ADDR_FAMILY) {
        Some(p) => match u16_(p, "destination ADDR_FAMILY")? {
            0 => service_family,
            af => Family::from_af(af)
                .ok_or_else(|| malformed(format!("destination address family {af}")))?,
        },
        None => service_family,
    };
    let addr = ip(
        req(&a, attr::DEST_ADDR, "destination ADDR")?,
        family,
        "destination ADDR",
    )?;
    let port = be16(
        req(&a, attr::DEST_PORT, "destination PORT")?,
        "destination PORT",
    )?;
    let method = u32_(
        req(&a, attr::DEST_FWD_METHOD, "destination FWD_METHOD")?,
        "destination FWD_METHOD",
    )?;
    let opt_u32 = |id: u16, what: &str| -> Result<u32, CodecError> {
        find(&a, id)
            .map(|p| u32_(p, what))
            .transpose()
            .map(|v| v.unwrap_or(0))
    };
    let forward = match method & 7 {
        0 => Forward::Masq,
        1 => Forward::Local,
        2 => {
            let ty = find(&a, attr::DEST_TUN_TYPE)
                .map(|p| u8_(p, "destination TUN_TYPE"))
                .transpose()?
                .unwrap_or(0);
            let tport = find(&a, attr::DEST_TUN_PORT)
                .map(|p| be16(p, "destination TUN_PORT"))
                .transpose()?
                .unwrap_or(0);
            let tflags = find(&a, attr::DEST_TUN_FLAGS)
                .map(|p| u16_(p, "destination TUN_FLAGS"))
                .transpose()?
                .unwrap_or(0);
            let checksum = TunnelChecksum::from_bits(tflags);
            Forward::Tunnel(match ty {
                0 => Encap::Ipip,
                1 => Encap::Gue {
                    port: tport,
                    checksum,
                },
                2 => Encap::Gre { checksum },
                n => Encap::Other(n),
            })
        }
        3 => Forward::Route,
        4 => Forward::Bypass,
        n => Forward::Other(n),
    };
    Ok(DestinationStatus {
        destination: Destination {
            addr: SocketAddr::new(addr, port),
            forward,
            weight: u32_(
                req(&a, attr::DEST_WEIGHT, "destination WEIGHT")?,
                "destination WEIGHT",
            )?,
            upper_threshold: opt_u32(attr::DEST_U_THRESH, "destination U_THRESH")?,
            lower_threshold: opt_u32(attr::DEST_L_THRESH, "destination L_THRESH")?,
        },
        active_conns: opt_u32(attr::DEST_ACTIVE_CONNS, "destination ACTIVE_CONNS")?,
        inactive_conns: opt_u32(attr::DEST_INACT_CONNS, "destination INACT_CONNS")?,
        persistent_conns: opt_u32(attr::DEST_PERSIST_CONNS, "destination PERSIST_CONNS")?,
        stats: stats_of(&a, attr::DEST_STATS, attr::DEST_STATS64)?,
    })
}

/// A sync daemon dump entry (or the DAEMON nest of a NEW_DAEMON request).
pub fn decode_daemon(msg: &Message) -> Result<SyncDaemon, CodecError> {
    let buf = top_nest(msg, attr::CMD_DAEMON, "DAEMON attribute")?;
    let a = attrs_of(&buf);
    let role = match u32_(req(&a, attr::DAEMON_STATE, "daemon STATE")?, "daemon STATE")? {
        1 => DaemonRole::Master,
        2 => DaemonRole::Backup,
        n => return Err(malformed(format!("daemon state {n}"))),
    };
    let group = match (
        find(&a, attr::DAEMON_MCAST_GROUP),
        find(&a, attr::DAEMON_MCAST_GROUP6),
    ) {
        (Some(p), _) => Some(IpAddr::V4(Ipv4Addr::from(fixed::<4>(
            p,
            "daemon MCAST_GROUP",
        )?))),
        (None, Some(p)) => Some(IpAddr::V6(Ipv6Addr::from(fixed::<16>(
            p,
            "daemon MCAST_GROUP6",
        )?))),
        (None, None) => None,
    };
    Ok(SyncDaemon {
        role,
        interface: string(
            req(&a, attr::DAEMON_MCAST_IFN, "daemon MCAST_IFN")?,
            "daemon MCAST_IFN",
        )?,
        sync_id: u32_(
            req(&a, attr::DAEMON_SYNC_ID, "daemon SYNC_ID")?,
            "daemon SYNC_ID",
        )?,
        max_len: find(&a, attr::DAEMON_SYNC_MAXLEN)
            .map(|p| u16_(p, "daemon SYNC_MAXLEN"))
            .transpose()?,
        group,
        port: find(&a, attr::DAEMON_MCAST_PORT)
            .map(|p| u16_(p, "daemon MCAST_PORT"))
            .transpose()?,
        ttl: find(&a, attr::DAEMON_MCAST_TTL)
            .map(|p| u8_(p, "daemon MCAST_TTL"))
            .transpose()?,
    })
}

/// The GET_CONFIG reply (or a SET_CONFIG request).
pub fn decode_timeouts(msg: &Message) -> Result<Timeouts, CodecError> {
    let a = attrs_of(msg.attrs());
    let get = |id, what| {
        find(&a, id)
            .map(|p| u32_(p, what))
            .transpose()
            .map(|v| v.unwrap_or(0))
    };
    Ok(Timeouts {
        tcp: get(attr::CMD_TIMEOUT_TCP, "TIMEOUT_TCP")?,
        tcp_fin: get(attr::CMD_TIMEOUT_TCP_FIN, "TIMEOUT_TCP_FIN")?,
        udp: get(attr::CMD_TIMEOUT_UDP, "TIMEOUT_UDP")?,
    })
}

/// The GET_INFO reply.
pub fn decode_info(msg: &Message) -> Result<Info, CodecError> {
    let a = attrs_of(msg.attrs());
    Ok(Info {
        version: u32_(req(&a, attr::INFO_VERSION, "INFO_VERSION")?, "INFO_VERSION")?,
        conn_tab_size: u32_(
            req(&a, attr::INFO_CONN_TAB_SIZE, "INFO_CONN_TAB_SIZE")?,
            "INFO_CONN_TAB_SIZE",
        )?,
    })
}

/// The destination a NEW/SET_DEST request carries, with its service key.
pub fn decode_destination_request(msg: &Message) -> Result<(ServiceKey, Destination), CodecError> {
    let key = decode_service_key(msg)?;
    Ok((key, decode_destination(msg, key.family())?.destination))
}

/// Builds a dump reply entry the way the kernel does (`ip_vs_genl_fill_service`): flags with the
/// kernel-internal `HASHED` bit and an all-ones mask, stats attached. For tests of the decoder.
#[cfg(test)]
pub(crate) fn kernel_service_reply(s: &ServiceStatus) -> Message {
    let svc = &s.service;
    let mut v = service_id_attrs(&svc.key).unwrap();
    v.push(attr(attr::SVC_SCHED_NAME, svc.scheduler.name()).unwrap());
    if let Some(pe) = &svc.pe_name {
        v.push(attr(attr::SVC_PE_NAME, pe.as_str()).unwrap());
    }
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&(svc.flags.bits() | ServiceFlags::HASHED).to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    v.push(attr(attr::SVC_FLAGS, flags).unwrap());
    v.push(attr(attr::SVC_TIMEOUT, svc.timeout).unwrap());
    v.push(match svc.netmask {
        Netmask::V4(m) => attr(attr::SVC_NETMASK, m.octets()).unwrap(),
        Netmask::V6(p) => attr(attr::SVC_NETMASK, u32::from(p)).unwrap(),
    });
    v.push(stats_nest(attr::SVC_STATS, &s.stats, false));
    v.push(stats_nest(attr::SVC_STATS64, &s.stats, true));
    message(cmd::NEW_SERVICE, vec![nest(attr::CMD_SERVICE, v).unwrap()]).unwrap()
}

/// Builds a destination dump entry the way the kernel does (`ip_vs_genl_fill_dest`).
#[cfg(test)]
pub(crate) fn kernel_destination_reply(d: &DestinationStatus) -> Message {
    let dest = &d.destination;
    let (ty, port, flags): (u8, u16, u16) = match dest.forward {
        Forward::Tunnel(Encap::Gue { port, checksum }) => (1, port, checksum.bits()),
        Forward::Tunnel(Encap::Gre { checksum }) => (2, 0, checksum.bits()),
        Forward::Tunnel(Encap::Other(n)) => (n, 0, 0),
        _ => (0, 0, 0),
    };
    let v = vec![
        attr(attr::DEST_ADDR, addr_bytes(&dest.addr.ip())).unwrap(),
        attr(attr::DEST_PORT, dest.addr.port().to_be_bytes()).unwrap(),
        attr(attr::DEST_FWD_METHOD, dest.forward.method()).unwrap(),
        attr(attr::DEST_WEIGHT, dest.weight).unwrap(),
        attr(attr::DEST_TUN_TYPE, ty).unwrap(),
        attr(attr::DEST_TUN_PORT, port.to_be_bytes()).unwrap(),
        attr(attr::DEST_TUN_FLAGS, flags).unwrap(),
        attr(attr::DEST_U_THRESH, dest.upper_threshold).unwrap(),
        attr(attr::DEST_L_THRESH, dest.lower_threshold).unwrap(),
        attr(attr::DEST_ACTIVE_CONNS, d.active_conns).unwrap(),
        attr(attr::DEST_INACT_CONNS, d.inactive_conns).unwrap(),
        attr(attr::DEST_PERSIST_CONNS, d.persistent_conns).unwrap(),
        attr(attr::DEST_ADDR_FAMILY, Family::of(&dest.addr.ip()).af()).unwrap(),
        stats_nest(attr::DEST_STATS, &d.stats, false),
        stats_nest(attr::DEST_STATS64, &d.stats, true),
    ];
    message(cmd::NEW_DEST, vec![nest(attr::CMD_DEST, v).unwrap()]).unwrap()
}

#[cfg(test)]
fn stats_nest(id: u16, s: &Stats, wide: bool) -> Nlattr<u16, Buffer> {
    let vals = [
        s.conns,
        s.in_pkts,
        s.out_pkts,
        s.in_bytes,
        s.out_bytes,
        s.cps,
        s.in_pps,
        s.out_pps,
        s.in_bps,
        s.out_bps,
    ];
    let mut v = Vec::new();
    for (i, val) in vals.iter().enumerate() {
        let id = i as u16 + 1;
        if wide || id == 4 || id == 5 {
            v.push(attr(id, *val).unwrap());
        } else {
            v.push(attr(id, *val as u32).unwrap());
        }
    }
    nest(id, v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn services() -> Vec<Service> {
        let mut persistent =
            Service::new(ServiceKey::udp(sa("[2001:db8::100]:53")), Scheduler::Sh).persistent(600);
        persistent.flags.one_packet = true;
        persistent.flags.sched_fallback = true;
        persistent.flags.sched_port = true;
        persistent.flags.sched3 = true;
        persistent.netmask = Netmask::V6(64);
        persistent.pe_name = Some("sip".into());
        let mut v4mask = Service::new(
            ServiceKey::sctp(sa("192.0.2.100:5060")),
            Scheduler::Other("xyz".into()),
        );
        v4mask.netmask = Netmask::V4(Ipv4Addr::new(255, 255, 255, 0));
        v4mask.timeout = 17;
        vec![
            Service::new(ServiceKey::tcp(sa("192.0.2.100:80")), Scheduler::Wlc),
            Service::new(ServiceKey::fwmark(Family::Inet, 7), Scheduler::Rr),
            Service::new(
                ServiceKey::fwmark(Family::Inet6, 0xdead_beef),
                Scheduler::None,
            ),
            Service::new(
                ServiceKey::Addr {
                    protocol: Protocol::Other(33),
                    addr: sa("192.0.2.1:1"),
                },
                Scheduler::Mh,
            ),
            persistent,
            v4mask,
        ]
    }

    fn destinations() -> Vec<Destination> {
        vec![
            Destination::new(sa("192.0.2.11:80"), Forward::Route),
            Destination {
                addr: sa("192.0.2.12:8080"),
                forward: Forward::Masq,
                weight: i32::MAX as u32,
                upper_threshold: 100,
                lower_threshold: 50,
            },
            Destination::new(sa("[2001:db8::11]:80"), Forward::Local).weight(0),
            Destination::new(sa("192.0.2.13:80"), Forward::Bypass),
            Destination::new(sa("192.0.2.14:80"), Forward::Tunnel(Encap::Ipip)),
            Destination::new(
                sa("192.0.2.15:80"),
                Forward::Tunnel(Encap::Gue {
                    port: 6080,
                    checksum: TunnelChecksum::Remote,
                }),
            ),
            Destination::new(
                sa("[2001:db8::16]:80"),
                Forward::Tunnel(Encap::Gre {
                    checksum: TunnelChecksum::Checksum,
                }),
            ),
            Destination::new(
                sa("192.0.2.17:80"),
                Forward::Tunnel(Encap::Gue {
                    port: 1,
                    checksum: TunnelChecksum::Other(3),
                }),
            ),
            Destination::new(sa("192.0.2.18:80"), Forward::Tunnel(Encap::Other(9))),
            Destination::new(sa("192.0.2.19:80"), Forward::Other(6)),
        ]
    }

    #[test]
    fn service_requests_round_trip_every_field() {
        for s in services() {
            for op in [Op::AddService(s.clone()), Op::EditService(s.clone())] {
                let m = encode(&op).unwrap();
                assert_eq!(decode_service_request(&m).unwrap(), s, "{op}");
            }
            for op in [Op::DelService(s.key), Op::Zero(Some(s.key))] {
                assert_eq!(decode_service_key(&encode(&op).unwrap()).unwrap(), s.key);
            }
        }
    }

    #[test]
    fn destination_requests_round_trip_every_field() {
        let key = ServiceKey::tcp(sa("192.0.2.100:80"));
        for d in destinations() {
            for op in [
                Op::AddDestination(key, d.clone()),
                Op::EditDestination(key, d.clone()),
            ] {
                let m = encode(&op).unwrap();
                assert_eq!(
                    decode_destination_request(&m).unwrap(),
                    (key, d.clone()),
                    "{op}"
                );
            }
        }
    }

    #[test]
    fn kernel_dump_entries_decode_with_stats_and_without_hashed() {
        let stats = Stats {
            conns: 1,
            in_pkts: 2,
            out_pkts: 3,
            in_bytes: 1 << 40,
            out_bytes: 5,
            cps: 6,
            in_pps: 7,
            out_pps: 8,
            in_bps: 9,
            out_bps: 10,
        };
        for s in services() {
            let st = ServiceStatus { service: s, stats };
            assert_eq!(decode_service(&kernel_service_reply(&st)).unwrap(), st);
        }
        for d in destinations() {
            let st = DestinationStatus {
                destination: d,
                active_conns: 11,
                inactive_conns: 12,
                persistent_conns: 13,
                stats,
            };
            assert_eq!(
                decode_destination(&kernel_destination_reply(&st), Family::Inet).unwrap(),
                st
            );
        }
    }

    /// Sync daemons: the fewest settings, all of them, an IPv4 group.
    fn daemons() -> [SyncDaemon; 3] {
        let full = SyncDaemon {
            role: DaemonRole::Backup,
            interface: "eth0".into(),
            sync_id: 9,
            max_len: Some(1400),
            group: Some("ff02::81".parse().unwrap()),
            port: Some(8849),
            ttl: Some(3),
        };
        let mut v4 = SyncDaemon::new(DaemonRole::Master, "lan0", 1);
        v4.group = Some("239.1.1.1".parse().unwrap());
        [SyncDaemon::new(DaemonRole::Master, "eth1", 255), full, v4]
    }

    #[test]
    fn daemons_timeouts_round_trip() {
        for d in daemons() {
            assert_eq!(
                decode_daemon(&encode(&Op::StartDaemon(d.clone())).unwrap()).unwrap(),
                d
            );
        }
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        let m = encode(&Op::SetTimeouts(t)).unwrap();
        assert_eq!(*m.cmd(), cmd::SET_CONFIG);
        assert_eq!(decode_timeouts(&m).unwrap(), t);
    }

    #[test]
    fn wire_layout_matches_the_kernel() {
        // The NEW_DEST request's DEST nest, checked byte for byte: ports big-endian, the rest host order.
        let key = ServiceKey::tcp(sa("192.0.2.100:80"));
        let d = Destination {
            addr: sa("192.0.2.13:80"),
            forward: Forward::Route,
            weight: 5,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        let m = encode(&Op::AddDestination(key, d)).unwrap();
        let top = attrs_of(m.attrs());
        let svc = nested(find(&top, attr::CMD_SERVICE).unwrap(), "svc").unwrap();
        let svc = attrs_of(&svc);
        assert_eq!(find(&svc, attr::SVC_PORT).unwrap(), &[0, 80]);
        assert_eq!(find(&svc, attr::SVC_AF).unwrap(), &2u16.to_ne_bytes());
        assert_eq!(
            find(&svc, attr::SVC_ADDR).unwrap(),
            &[192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let dest = nested(find(&top, attr::CMD_DEST).unwrap(), "dest").unwrap();
        let dest = attrs_of(&dest);
        assert_eq!(find(&dest, attr::DEST_PORT).unwrap(), &[0, 80]);
        assert_eq!(find(&dest, attr::DEST_WEIGHT).unwrap(), &5u32.to_ne_bytes());
        assert_eq!(
            find(&dest, attr::DEST_ADDR_FAMILY).unwrap(),
            &2u16.to_ne_bytes()
        );
        let mut framed = Vec::new();
        frame(0x20, 7, Ask::Ack, m, &mut framed).unwrap();
        assert_eq!(framed.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(framed[..4].try_into().unwrap()) as usize,
            framed.len()
        );
        // netmask: v4 as mask bytes, v6 as a host-order prefix length
        let mut s = Service::new(ServiceKey::tcp(sa("[2001:db8::1]:80")), Scheduler::Rr);
        s.netmask = Netmask::V6(96);
        let m = encode(&Op::AddService(s)).unwrap();
        let svc = nested(
            find(&attrs_of(m.attrs()), attr::CMD_SERVICE).unwrap(),
            "svc",
        )
        .unwrap();
        assert_eq!(
            find(&attrs_of(&svc), attr::SVC_NETMASK).unwrap(),
            &96u32.to_ne_bytes()
        );
        assert_eq!(
            find(&attrs_of(&svc), attr::SVC_SCHED_NAME).unwrap(),
            b"rr\0"
        );
    }

    #[test]
    fn reply_stream_is_classified_by_seq() {
        // ack (seq 1), error -EEXIST echoing a request (seq 2), a data message (seq 3), DONE (seq 3)
        let mut bytes = Vec::new();
        let push_hdr = |b: &mut Vec<u8>, len: u32, ty: u16, flags: u16, seq: u32| {
            b.extend_from_slice(&len.to_ne_bytes());
            b.extend_from_slice(&ty.to_ne_bytes());
            b.extend_from_slice(&flags.to_ne_bytes());
            b.extend_from_slice(&seq.to_ne_bytes());
            b.extend_from_slice(&4242u32.to_ne_bytes());
        };
        push_hdr(&mut bytes, 36, 2, 0x100, 1);
        bytes.extend_from_slice(&0i32.to_ne_bytes());
        push_hdr(&mut bytes, 16, 0x20, 5, 1);
        let mut req = Vec::new();
        frame(0x20, 2, Ask::Ack, encode(&Op::Flush).unwrap(), &mut req).unwrap();
        push_hdr(&mut bytes, 20 + req.len() as u32, 2, 0, 2);
        bytes.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        bytes.extend_from_slice(&req);
        let mut data = Vec::new();
        frame(0x20, 3, Ask::Ack, encode(&Op::Flush).unwrap(), &mut data).unwrap();
        data[6..8].copy_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        bytes.extend_from_slice(&data);
        push_hdr(&mut bytes, 20, 3, 2, 3);
        bytes.extend_from_slice(&0i32.to_ne_bytes());
        let r = parse_replies(&bytes).unwrap();
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!(r[0], Reply::Ack { seq: 1 });
        assert_eq!(
            r[1],
            Reply::Error {
                seq: 2,
                errno: libc::EEXIST
            }
        );
        assert!(matches!(&r[2], Reply::Message { seq: 3, msg } if *msg.cmd() == cmd::FLUSH));
        assert_eq!(r[3], Reply::Done { seq: 3, errno: 0 });
        assert!(parse_replies(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn short_attributes_are_errors_not_panics() {
        let mut m = encode(&Op::AddService(services()[0].clone())).unwrap();
        let bad = message(
            cmd::NEW_SERVICE,
            vec![nest(attr::CMD_SERVICE, vec![attr(attr::SVC_AF, 2u8).unwrap()]).unwrap()],
        )
        .unwrap();
        let e = decode_service(&bad).unwrap_err().to_string();
        assert!(e.contains("service AF is 1 bytes, expected 2"), "{e}");
        m = message(*m.cmd(), vec![]).unwrap();
        assert!(
            decode_service(&m)
                .unwrap_err()
                .to_string()
                .contains("SERVICE attribute is missing")
        );
    }

    #[test]
    fn names_beyond_the_kernel_limits_are_errors_not_truncations() {
        let key = ServiceKey::tcp(sa("192.0.2.100:80"));
        let long = Scheduler::Other("a-scheduler-name-of-23".into());
        let err = encode(&Op::AddService(Service::new(key, long))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode add service tcp 192.0.2.100:80: scheduler name \"a-scheduler-name-of-23\" is 22 \
             bytes long; the kernel takes at most 15"
        );
        // 15 bytes is the most the kernel's 16-byte buffer takes with its NUL.
        let fits = Scheduler::Other("fifteen-bytes-x".into());
        assert!(encode(&Op::AddService(Service::new(key, fits))).is_ok());
        let mut pe = Service::new(key, Scheduler::Rr);
        pe.pe_name = Some("sip\0x".into());
        assert!(
            encode(&Op::EditService(pe))
                .unwrap_err()
                .to_string()
                .ends_with("persistence engine name \"sip\\0x\" contains a NUL byte")
        );
        let d = SyncDaemon::new(DaemonRole::Master, "an-interface-name", 1);
        assert!(
            encode(&Op::StartDaemon(d))
                .unwrap_err()
                .to_string()
                .ends_with("sync interface name \"an-interface-name\" is 17 bytes long; the kernel takes at most 15")
        );
        let long_family = "A-FAMILY-NAME-TOO-LONG";
        assert!(family_request(long_family, 1).is_err());
    }

    /// Every kind of operation, with every field the fixtures above vary.
    fn every_op() -> Vec<Op> {
        let mut ops = Vec::new();
        for s in services() {
            ops.extend([
                Op::AddService(s.clone()),
                Op::EditService(s.clone()),
                Op::DelService(s.key),
                Op::Zero(Some(s.key)),
            ]);
            for d in destinations() {
                ops.extend([
                    Op::AddDestination(s.key, d.clone()),
                    Op::EditDestination(s.key, d.clone()),
                    Op::DelDestination(s.key, d.addr),
                ]);
            }
        }
        for d in daemons() {
            ops.push(Op::StopDaemon(d.role));
            ops.push(Op::StartDaemon(d));
        }
        ops.extend([
            Op::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
            Op::Zero(None),
            Op::Flush,
        ]);
        ops
    }

    #[test]
    fn requests_written_directly_are_neli_s_bytes() {
        let ops = every_op();
        assert!(ops.len() > 200);
        for op in &ops {
            for ask in [Ask::Ack, Ask::ErrorsOnly] {
                let mut neli = vec![0xee; 3];
                frame(0x1c, 4242, ask, encode(op).unwrap(), &mut neli).unwrap();
                let mut direct = vec![0xee; 3];
                encode_framed(op, 0x1c, 4242, ask, &mut direct).unwrap();
                assert_eq!(direct, neli, "{op} {ask:?}");
            }
        }
        // And refuses what encode refuses, in the same words.
        let key = ServiceKey::tcp(sa("192.0.2.100:80"));
        let mut pe = Service::new(key, Scheduler::Rr);
        pe.pe_name = Some("sip\0x".into());
        for op in [
            Op::AddService(Service::new(
                key,
                Scheduler::Other("a-scheduler-name-of-23".into()),
            )),
            Op::EditService(pe),
            Op::StartDaemon(SyncDaemon::new(DaemonRole::Master, "an-interface-name", 1)),
        ] {
            let mut out = Vec::new();
            let err = encode_framed(&op, 0x1c, 1, Ask::Ack, &mut out).unwrap_err();
            assert_eq!(err.to_string(), encode(&op).unwrap_err().to_string());
            assert!(out.is_empty(), "{op}: nothing written");
        }
    }

    #[test]
    fn payloads_beyond_u16_nla_len_are_errors_not_wrapped_lengths() {
        let err = attr(1, vec![0u8; MAX_ATTR_LEN - 3]).unwrap_err();
        assert_eq!(
            err,
            "attribute 1 would be 65536 bytes long; netlink attributes hold at most 65535"
        );
        assert!(attr(1, vec![0u8; MAX_ATTR_LEN - 4]).is_ok());
        // Two children that each fit make a nest that does not.
        let half = || attr(2, vec![0u8; 40_000]).unwrap();
        let err = nest(3, vec![half(), half()]).unwrap_err();
        assert_eq!(
            err,
            "nested attribute 3 would be 80012 bytes long; netlink attributes hold at most 65535"
        );
    }

    #[test]
    fn the_family_lookup_has_the_bytes_nlctrl_expects() {
        let b = family_request("IPVS", 7).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &32u32.to_ne_bytes()[..], &0x10u16.to_ne_bytes(), &5u16.to_ne_bytes(), // GENL_ID_CTRL, REQUEST|ACK
            &7u32.to_ne_bytes(), &0u32.to_ne_bytes(),
            &[3, 2, 0, 0],                                 // CTRL_CMD_GETFAMILY, version 2
            &9u16.to_ne_bytes(), &2u16.to_ne_bytes(), b"IPVS\0", &[0, 0, 0], // CTRL_ATTR_FAMILY_NAME
        ]
        .concat();
        assert_eq!(b, want);
    }
}
