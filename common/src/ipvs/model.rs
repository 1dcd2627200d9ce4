//! The typed IPVS model: what a virtual service, a real server (destination), a sync daemon, the
//! timeouts and the module info are, independent of how they travel over netlink.
//!
//! Configuration ([`Service`], [`Destination`]) is kept apart from what only the kernel reports
//! ([`Stats`], connection counters in [`DestinationStatus`]), so that a desired table and a dumped
//! table compare with `==`. Kernel-internal state (the `HASHED` service flag, flag bits this model does
//! not know) is dropped when decoding and never part of the model. A [`Table`] is the whole
//! configuration of one network namespace: services by key, each with its destinations by address.
//!
//! This module does no validation against a particular kernel and no I/O; see
//! [`codec`](super::codec) for the wire format and [`socket`](super::socket) for the kernel.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// An address family as IPVS knows it (`AF_INET` 2, `AF_INET6` 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }

    /// The `AF_*` number (`linux/socket.h`).
    pub fn af(self) -> u16 {
        match self {
            Family::Inet => libc::AF_INET as u16,
            Family::Inet6 => libc::AF_INET6 as u16,
        }
    }

    /// The family for an `AF_*` number, if IPVS supports it.
    pub fn from_af(af: u16) -> Option<Family> {
        match i32::from(af) {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "ipv4",
            Family::Inet6 => "ipv6",
        })
    }
}

/// The transport protocol of an address-based service (`IPPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// Any other protocol number the kernel reports.
    Other(u16),
}

impl Protocol {
    /// The `IPPROTO_*` number.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u16,
            Protocol::Udp => libc::IPPROTO_UDP as u16,
            Protocol::Sctp => libc::IPPROTO_SCTP as u16,
            Protocol::Other(n) => n,
        }
    }

    /// The protocol for an `IPPROTO_*` number.
    pub fn from_number(n: u16) -> Protocol {
        match i32::from(n) {
            libc::IPPROTO_TCP => Protocol::Tcp,
            libc::IPPROTO_UDP => Protocol::Udp,
            libc::IPPROTO_SCTP => Protocol::Sctp,
            _ => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(n) => write!(f, "protocol {n}"),
        }
    }
}

/// What identifies a virtual service in the kernel: (family, protocol, address, port) or
/// (family, firewall mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    /// A service on an address and port; the family is the address's.
    Addr {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// The virtual address and port (port 0 means every port, for persistent services).
        addr: SocketAddr,
    },
    /// A service matching packets carrying a firewall mark (set by nftables/iptables).
    Fwmark {
        /// The family the mark applies to: a mark exists once per family.
        family: Family,
        /// The non-zero mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// A TCP service.
    pub fn tcp(addr: SocketAddr) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// A UDP service.
    pub fn udp(addr: SocketAddr) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// An SCTP service.
    pub fn sctp(addr: SocketAddr) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr,
        }
    }

    /// A firewall-mark service.
    pub fn fwmark(family: Family, mark: u32) -> ServiceKey {
        ServiceKey::Fwmark { family, mark }
    }

    /// The service's address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(&addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// `tcp 192.0.2.100:80`, `udp [2001:db8::100]:53`, `fwmark 1`, `fwmark 1 ipv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol} {addr}"),
            ServiceKey::Fwmark {
                family: Family::Inet,
                mark,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark { family, mark } => write!(f, "fwmark {mark} {family}"),
        }
    }
}

/// A scheduler, by its kernel name (module `ip_vs_<name>`, autoloaded by the kernel).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (ipvsadm's default).
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing (see [`ServiceFlags::sched_fallback`] and [`ServiceFlags::sched_port`]).
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing (see [`ServiceFlags::sched_fallback`] and [`ServiceFlags::sched_port`]).
    Mh,
    /// Weighted random twos choice.
    Twos,
    /// No scheduler (`none`): no new connections are scheduled.
    None,
    /// Any other name (a scheduler from an out-of-tree module).
    Other(String),
}

impl Scheduler {
    /// Every scheduler of the mainline kernel (`net/netfilter/ipvs/ip_vs_*.c`), `none` excluded.
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    /// The kernel's name for it.
    pub fn name(&self) -> &str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
            Scheduler::None => "none",
            Scheduler::Other(s) => s,
        }
    }

    /// The scheduler for a kernel name; unknown names become [`Scheduler::Other`].
    pub fn from_name(name: &str) -> Scheduler {
        match name {
            "rr" => Scheduler::Rr,
            "wrr" => Scheduler::Wrr,
            "lc" => Scheduler::Lc,
            "wlc" => Scheduler::Wlc,
            "lblc" => Scheduler::Lblc,
            "lblcr" => Scheduler::Lblcr,
            "dh" => Scheduler::Dh,
            "sh" => Scheduler::Sh,
            "sed" => Scheduler::Sed,
            "nq" => Scheduler::Nq,
            "fo" => Scheduler::Fo,
            "ovf" => Scheduler::Ovf,
            "mh" => Scheduler::Mh,
            "twos" => Scheduler::Twos,
            "none" => Scheduler::None,
            other => Scheduler::Other(other.to_string()),
        }
    }
}

impl FromStr for Scheduler {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Scheduler::from_name(s))
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Service flags the user sets (`ip_vs.h: IP_VS_SVC_F_*`). Kernel-internal bits (`HASHED`) are not
/// represented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ServiceFlags {
    /// Persistent service (`IP_VS_SVC_F_PERSISTENT`, 0x1): a client sticks to one real server for
    /// [`Service::timeout`] seconds.
    pub persistent: bool,
    /// One-packet scheduling (`IP_VS_SVC_F_ONEPACKET`, 0x4): every UDP datagram is scheduled on its own.
    pub one_packet: bool,
    /// sh / mh: fall back to another server when the hashed one is unavailable
    /// (`IP_VS_SVC_F_SCHED_SH_FALLBACK` = `SCHED1`, 0x8).
    pub sched_fallback: bool,
    /// sh / mh: hash the source port too (`IP_VS_SVC_F_SCHED_SH_PORT` = `SCHED2`, 0x10).
    pub sched_port: bool,
    /// The third scheduler flag (`IP_VS_SVC_F_SCHED3`, 0x20), unused by mainline schedulers.
    pub sched3: bool,
}

impl ServiceFlags {
    /// `IP_VS_SVC_F_PERSISTENT` (ip_vs.h).
    pub const PERSISTENT: u32 = 0x1;
    /// `IP_VS_SVC_F_HASHED` (ip_vs.h): kernel-internal, never set by users.
    pub const HASHED: u32 = 0x2;
    /// `IP_VS_SVC_F_ONEPACKET` (ip_vs.h).
    pub const ONEPACKET: u32 = 0x4;
    /// `IP_VS_SVC_F_SCHED1` (ip_vs.h).
    pub const SCHED1: u32 = 0x8;
    /// `IP_VS_SVC_F_SCHED2` (ip_vs.h).
    pub const SCHED2: u32 = 0x10;
    /// `IP_VS_SVC_F_SCHED3` (ip_vs.h).
    pub const SCHED3: u32 = 0x20;

    /// The wire bits.
    pub fn bits(self) -> u32 {
        let mut b = 0;
        for (on, bit) in [
            (self.persistent, Self::PERSISTENT),
            (self.one_packet, Self::ONEPACKET),
            (self.sched_fallback, Self::SCHED1),
            (self.sched_port, Self::SCHED2),
            (self.sched3, Self::SCHED3),
        ] {
            if on {
                b |= bit;
            }
        }
        b
    }

    /// The flags from wire bits; `HASHED` and unknown bits are dropped.
    pub fn from_bits(b: u32) -> ServiceFlags {
        ServiceFlags {
            persistent: b & Self::PERSISTENT != 0,
            one_packet: b & Self::ONEPACKET != 0,
            sched_fallback: b & Self::SCHED1 != 0,
            sched_port: b & Self::SCHED2 != 0,
            sched3: b & Self::SCHED3 != 0,
        }
    }
}

/// The persistence granularity: clients in the same network share one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    /// An IPv4 mask, e.g. `255.255.255.0`.
    V4(Ipv4Addr),
    /// An IPv6 prefix length, 1..=128.
    V6(u8),
}

impl Netmask {
    /// The neutral mask for a family (`255.255.255.255` or `/128`), what ipvsadm sends by default.
    pub fn full(family: Family) -> Netmask {
        match family {
            Family::Inet => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::Inet6 => Netmask::V6(128),
        }
    }
}

/// A virtual service's configuration (everything NEW/SET_SERVICE carries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// What identifies the service.
    pub key: ServiceKey,
    /// The scheduler.
    pub scheduler: Scheduler,
    /// Persistence, one-packet and scheduler flags.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (used when [`ServiceFlags::persistent`]).
    pub timeout: u32,
    /// Persistence granularity.
    pub netmask: Netmask,
    /// Persistence engine (`sip`), if any.
    pub pe_name: Option<String>,
}

impl Service {
    /// A non-persistent service with neutral defaults (timeout 0, full netmask, no flags).
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Service {
        Service {
            key,
            scheduler,
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: Netmask::full(key.family()),
            pe_name: None,
        }
    }

    /// Makes the service persistent for `timeout` seconds.
    pub fn persistent(mut self, timeout: u32) -> Service {
        self.flags.persistent = true;
        self.timeout = timeout;
        self
    }
}

/// The checksum option of a GUE or GRE tunnel (`ip_vs.h: IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TunnelChecksum {
    /// No checksum (`NOCSUM`, 0).
    #[default]
    None,
    /// Checksum (`CSUM`, 1).
    Checksum,
    /// Remote checksum offload (`REMCSUM`, 2).
    Remote,
    /// Any other flag combination the kernel reports.
    Other(u16),
}

impl TunnelChecksum {
    /// The wire value.
    pub fn bits(self) -> u16 {
        match self {
            TunnelChecksum::None => 0,
            TunnelChecksum::Checksum => 1,
            TunnelChecksum::Remote => 2,
            TunnelChecksum::Other(b) => b,
        }
    }

    /// From the wire value.
    pub fn from_bits(b: u16) -> TunnelChecksum {
        match b {
            0 => TunnelChecksum::None,
            1 => TunnelChecksum::Checksum,
            2 => TunnelChecksum::Remote,
            b => TunnelChecksum::Other(b),
        }
    }
}

/// The encapsulation of a tunnelled destination (`ip_vs.h: IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encap {
    /// IP in IP (0).
    #[default]
    Ipip,
    /// Generic UDP encapsulation (1) to a UDP port (non-zero).
    Gue {
        /// The destination UDP port.
        port: u16,
        /// Checksum option.
        checksum: TunnelChecksum,
    },
    /// GRE (2).
    Gre {
        /// Checksum option.
        checksum: TunnelChecksum,
    },
    /// Another tunnel type number.
    Other(u8),
}

/// How packets reach a real server (`ip_vs.h: IP_VS_CONN_F_FWD_MASK` values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Forward {
    /// NAT (`MASQ`, 0).
    Masq,
    /// The director itself (`LOCALNODE`, 1).
    Local,
    /// IP tunnel (`TUNNEL`, 2), the only method allowing a destination of another family.
    Tunnel(Encap),
    /// Direct routing (`DROUTE`, 3, ipvsadm's "gate", its default).
    #[default]
    Route,
    /// Bypass (`BYPASS`, 4).
    Bypass,
    /// Another method number (5..=7) the kernel reports.
    Other(u32),
}

impl Forward {
    /// The wire value of `FWD_METHOD`.
    pub fn method(self) -> u32 {
        match self {
            Forward::Masq => 0,
            Forward::Local => 1,
            Forward::Tunnel(_) => 2,
            Forward::Route => 3,
            Forward::Bypass => 4,
            Forward::Other(n) => n,
        }
    }
}

/// A real server of a service (everything NEW/SET_DEST carries).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The real server's address and port; its family may differ from the service's only with
    /// [`Forward::Tunnel`].
    pub addr: SocketAddr,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight, 0..=i32::MAX; 0 quiesces the server (no new connections).
    pub weight: u32,
    /// Upper connection threshold (0: no limit).
    pub upper_threshold: u32,
    /// Lower connection threshold (must not exceed the upper one).
    pub lower_threshold: u32,
}

impl Destination {
    /// A destination with weight 1 and no thresholds.
    pub fn new(addr: SocketAddr, forward: Forward) -> Destination {
        Destination {
            addr,
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// Sets the weight.
    pub fn weight(mut self, weight: u32) -> Destination {
        self.weight = weight;
        self
    }
}

/// Traffic counters and rates, relative to the last zeroing (`IPVS_STATS_ATTR_*`; the 64-bit set
/// when the kernel has it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub in_pkts: u64,
    /// Outgoing packets.
    pub out_pkts: u64,
    /// Incoming bytes.
    pub in_bytes: u64,
    /// Outgoing bytes.
    pub out_bytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

/// A service as dumped: its configuration and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The configuration.
    pub service: Service,
    /// Read-only counters.
    pub stats: Stats,
}

/// A destination as dumped: its configuration, connection counts and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    /// The configuration.
    pub destination: Destination,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Persistence templates.
    pub persistent_conns: u32,
    /// Read-only counters.
    pub stats: Stats,
}

/// A service with its destinations, as part of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    /// The service's configuration.
    pub service: Service,
    /// Its destinations by address.
    pub destinations: BTreeMap<SocketAddr, Destination>,
}

/// The IPVS configuration of one network namespace: services by key, destinations by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Services by key.
    pub services: BTreeMap<ServiceKey, VirtualService>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Adds or replaces a service (keeping its destinations if it was there).
    pub fn insert_service(&mut self, service: Service) {
        match self.services.get_mut(&service.key) {
            Some(vs) => vs.service = service,
            None => {
                self.services.insert(
                    service.key,
                    VirtualService {
                        service,
                        destinations: BTreeMap::new(),
                    },
                );
            }
        }
    }

    /// Adds or replaces a destination of a service; false when the service is not in the table.
    pub fn insert_destination(&mut self, key: &ServiceKey, dest: Destination) -> bool {
        match self.services.get_mut(key) {
            Some(vs) => {
                vs.destinations.insert(dest.addr, dest);
                true
            }
            None => false,
        }
    }

    /// The number of destinations over all services.
    pub fn destination_count(&self) -> usize {
        self.services.values().map(|v| v.destinations.len()).sum()
    }
}

/// The role of a connection-synchronisation daemon (`IPVS_DAEMON_ATTR_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DaemonRole {
    /// Sends connection state (`IP_VS_STATE_MASTER`, 1).
    Master,
    /// Receives connection state (`IP_VS_STATE_BACKUP`, 2).
    Backup,
}

impl DaemonRole {
    /// The wire value.
    pub fn state(self) -> u32 {
        match self {
            DaemonRole::Master => 1,
            DaemonRole::Backup => 2,
        }
    }
}

impl fmt::Display for DaemonRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DaemonRole::Master => "master",
            DaemonRole::Backup => "backup",
        })
    }
}

/// A connection-synchronisation daemon. Optional fields left `None` take the kernel's defaults
/// (group 224.0.0.81, port 8848, TTL 1, length from the interface MTU); a dump reports them all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncDaemon {
    /// Master or backup.
    pub role: DaemonRole,
    /// The multicast interface (at most 15 bytes).
    pub interface: String,
    /// The sync id (0..=255 used by the kernel).
    pub sync_id: u32,
    /// Maximum sync message length.
    pub max_len: Option<u16>,
    /// Multicast group (IPv4 or IPv6).
    pub group: Option<IpAddr>,
    /// UDP port.
    pub port: Option<u16>,
    /// Multicast TTL.
    pub ttl: Option<u8>,
}

impl SyncDaemon {
    /// A daemon with the kernel's defaults.
    pub fn new(role: DaemonRole, interface: &str, sync_id: u32) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: interface.to_string(),
            sync_id,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        }
    }
}

/// Connection timeouts in seconds (`IPVS_CMD_ATTR_TIMEOUT_*`); 0 in a set request keeps the
/// current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// Module information (`IPVS_CMD_GET_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Info {
    /// The IPVS version, e.g. `0x010201` for 1.2.1.
    pub version: u32,
    /// The connection hash table size.
    pub conn_tab_size: u32,
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IP Virtual Server version {}.{}.{} (size={})",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff,
            self.conn_tab_size
        )
    }
}

/// One change to the kernel table: what the planner produces and [`Ipvs::apply`](super::Ipvs::apply)
/// executes, one netlink request each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create a service (NEW_SERVICE).
    AddService(Service),
    /// Replace a service's configuration (SET_SERVICE).
    EditService(Service),
    /// Delete a service and its destinations (DEL_SERVICE).
    DelService(ServiceKey),
    /// Add a destination (NEW_DEST).
    AddDestination(ServiceKey, Destination),
    /// Replace a destination's configuration (SET_DEST).
    EditDestination(ServiceKey, Destination),
    /// Delete a destination (DEL_DEST).
    DelDestination(ServiceKey, SocketAddr),
    /// Start a sync daemon (NEW_DAEMON).
    StartDaemon(SyncDaemon),
    /// Stop a sync daemon (DEL_DAEMON).
    StopDaemon(DaemonRole),
    /// Set timeouts (SET_CONFIG); zero fields are kept.
    SetTimeouts(Timeouts),
    /// Zero the counters of one service or of all (ZERO).
    Zero(Option<ServiceKey>),
    /// Delete every service in the namespace (FLUSH).
    Flush,
}

impl fmt::Display for Op {
    /// The operation and its object in words, as used in error messages:
    /// `add destination 192.0.2.13:80 to tcp 192.0.2.100:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) => write!(f, "add service {}", s.key),
            Op::EditService(s) => write!(f, "edit service {}", s.key),
            Op::DelService(k) => write!(f, "delete service {k}"),
            Op::AddDestination(k, d) => write!(f, "add destination {} to {k}", d.addr),
            Op::EditDestination(k, d) => write!(f, "edit destination {} of {k}", d.addr),
            Op::DelDestination(k, a) => write!(f, "delete destination {a} from {k}"),
            Op::StartDaemon(d) => write!(f, "start sync daemon {} on {}", d.role, d.interface),
            Op::StopDaemon(r) => write!(f, "stop sync daemon {r}"),
            Op::SetTimeouts(_) => f.write_str("set timeouts"),
            Op::Zero(Some(k)) => write!(f, "zero counters of {k}"),
            Op::Zero(None) => f.write_str("zero all counters"),
            Op::Flush => f.write_str("flush all services"),
        }
    }
}
