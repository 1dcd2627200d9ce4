//! Ethernet frames for address takeover, built and parsed as plain bytes: gratuitous ARP request
//! and reply, the RFC 5227 ARP probe, and the IPv6 unsolicited Neighbor Advertisement with its
//! ICMPv6 checksum.
//!
//! Pure: no sockets, no clock, no privileges; round-trip and golden-byte tested. The frames are
//! the exact bytes handed to an `AF_PACKET` socket (Ethernet header included, no FCS, no padding:
//! the NIC pads short frames to 60 bytes itself, as it does for the kernel's own ARP).
//!
//! What the fields are, and why:
//! - **Gratuitous ARP** (heartbeat's `send_arp.libnet`, `resource-agents/tools/send_arp.libnet.c`):
//!   a *request* (op 1, target MAC 00:00:00:00:00:00) and a *reply* (op 2, target MAC = the sender's
//!   own MAC), both with sender IP = target IP = the VIP and sender MAC = the interface's, to the
//!   Ethernet broadcast address. Linux (`net/ipv4/arp.c: arp_is_garp`) only treats a reply as
//!   gratuitous when its target MAC equals its sender MAC, hence the reply's target MAC.
//! - **ARP probe** (RFC 5227 §2.1.1): a request with sender IP 0.0.0.0 and target MAC zero, so that
//!   no neighbour cache learns anything from it.
//! - **Unsolicited NA** (RFC 4861 §4.4, §7.2.6): from the VIP to all-nodes `ff02::1`
//!   (Ethernet `33:33:00:00:00:01`, RFC 2464 §7), hop limit 255, Override set, Solicited and
//!   Router clear, with a Target Link-Layer Address option carrying the interface's MAC.
//!
//! Deliberately not here: VLAN tags, other link types (InfiniBand, FireWire), NS/DAD for IPv6.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// EtherType of ARP (IEEE 802 numbers; `if_ether.h: ETH_P_ARP`).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4 (`if_ether.h: ETH_P_IP`), the ARP protocol type.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6 (`if_ether.h: ETH_P_IPV6`).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ARP hardware type Ethernet (RFC 826; `if_arp.h: ARPHRD_ETHER`).
const ARP_HTYPE_ETHER: u16 = 1;
/// Length of an Ethernet header.
pub const ETH_HLEN: usize = 14;
/// Length of an Ethernet ARP frame for IPv4: 14 + 28.
pub const ARP_FRAME_LEN: usize = ETH_HLEN + 28;
/// Length of the unsolicited NA frame: 14 Ethernet + 40 IPv6 + 32 ICMPv6 (24 NA + 8 option).
pub const NA_FRAME_LEN: usize = ETH_HLEN + 40 + NA_ICMP_LEN;
const NA_ICMP_LEN: usize = 32;
/// IPv6 next header number of ICMPv6 (RFC 4443).
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 type Neighbor Advertisement (RFC 4861 §4.4).
const ICMPV6_NA: u8 = 136;
/// NDP option Target Link-Layer Address (RFC 4861 §4.6.1).
const ND_OPT_TLLA: u8 = 2;
/// NDP messages must carry hop limit 255 (RFC 4861 §7.1.2).
pub const ND_HOP_LIMIT: u8 = 255;
/// NA flag bits in the first byte after the checksum (RFC 4861 §4.4).
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// All-nodes multicast address (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, the "unknown" target MAC of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The Ethernet multicast address an IPv6 multicast address maps to (RFC 2464 §7):
    /// 33:33 and the last four bytes.
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address; write e.g. \"02:00:00:00:00:01\"")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, MacParseError> {
        let bad = || MacParseError(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// ARP operation (RFC 826; `if_arp.h: ARPOP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Other(u16),
}

impl ArpOp {
    /// The wire value.
    pub const fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Other(n) => n,
        }
    }

    /// The operation for a wire value.
    pub const fn from_code(n: u16) -> ArpOp {
        match n {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            n => ArpOp::Other(n),
        }
    }
}

/// An Ethernet/IPv4 ARP frame, fields named as in RFC 826.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpFrame {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// Operation.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// Gratuitous ARP request for `ip` from `mac`, to broadcast (see the [module docs](self)).
    pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            eth_dst: MacAddr::BROADCAST,
            eth_src: mac,
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// Gratuitous ARP reply for `ip` from `mac`, to broadcast; target MAC = `mac`.
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            op: ArpOp::Reply,
            target_mac: mac,
            ..ArpFrame::gratuitous_request(mac, ip)
        }
    }

    /// RFC 5227 §2.1.1 probe for `ip` from `mac`: sender IP 0.0.0.0, target MAC zero, broadcast.
    pub fn probe(mac: MacAddr, ip: Ipv4Addr) -> ArpFrame {
        ArpFrame {
            sender_ip: Ipv4Addr::UNSPECIFIED,
            ..ArpFrame::gratuitous_request(mac, ip)
        }
    }

    /// True for a gratuitous ARP in Linux's sense (`arp_is_garp`): sender IP = target IP, and for
    /// a reply also target MAC = sender MAC.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
            && (self.op != ArpOp::Reply || self.target_mac == self.sender_mac)
    }

    /// The frame's bytes.
    pub fn to_bytes(&self) -> [u8; ARP_FRAME_LEN] {
        let mut b = [0u8; ARP_FRAME_LEN];
        b[0..6].copy_from_slice(&self.eth_dst.0);
        b[6..12].copy_from_slice(&self.eth_src.0);
        b[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        b[14..16].copy_from_slice(&ARP_HTYPE_ETHER.to_be_bytes());
        b[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        b[18] = 6;
        b[19] = 4;
        b[20..22].copy_from_slice(&self.op.code().to_be_bytes());
        b[22..28].copy_from_slice(&self.sender_mac.0);
        b[28..32].copy_from_slice(&self.sender_ip.octets());
        b[32..38].copy_from_slice(&self.target_mac.0);
        b[38..42].copy_from_slice(&self.target_ip.octets());
        b
    }
}

/// An unsolicited (or any) Neighbor Advertisement in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NaFrame {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// IPv6 source.
    pub src_ip: Ipv6Addr,
    /// IPv6 destination.
    pub dst_ip: Ipv6Addr,
    /// IPv6 hop limit (255 for a valid NDP message).
    pub hop_limit: u8,
    /// R flag.
    pub router: bool,
    /// S flag.
    pub solicited: bool,
    /// O flag.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option, if present.
    pub target_mac: Option<MacAddr>,
}

impl NaFrame {
    /// Unsolicited NA for `ip` from `mac` to all-nodes, Override set (see the [module docs](self)).
    pub fn unsolicited(mac: MacAddr, ip: Ipv6Addr) -> NaFrame {
        NaFrame {
            eth_dst: MacAddr::ipv6_multicast(ALL_NODES),
            eth_src: mac,
            src_ip: ip,
            dst_ip: ALL_NODES,
            hop_limit: ND_HOP_LIMIT,
            router: false,
            solicited: false,
            override_flag: true,
            target: ip,
            target_mac: Some(mac),
        }
    }

    /// The frame's bytes, ICMPv6 checksum filled in. Without a target MAC the option is left out
    /// and the frame is 8 bytes shorter.
    pub fn to_bytes(&self) -> Vec<u8> {
        let icmp_len = if self.target_mac.is_some() {
            NA_ICMP_LEN
        } else {
            NA_ICMP_LEN - 8
        };
        let mut b = Vec::with_capacity(ETH_HLEN + 40 + icmp_len);
        b.extend_from_slice(&self.eth_dst.0);
        b.extend_from_slice(&self.eth_src.0);
        b.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        // Version 6, traffic class 0, flow label 0.
        b.extend_from_slice(&[0x60, 0, 0, 0]);
        b.extend_from_slice(&(icmp_len as u16).to_be_bytes());
        b.push(IPPROTO_ICMPV6);
        b.push(self.hop_limit);
        b.extend_from_slice(&self.src_ip.octets());
        b.extend_from_slice(&self.dst_ip.octets());
        let icmp_start = b.len();
        b.extend_from_slice(&[ICMPV6_NA, 0, 0, 0]);
        let flags = (if self.router { NA_ROUTER } else { 0 })
            | (if self.solicited { NA_SOLICITED } else { 0 })
            | (if self.override_flag { NA_OVERRIDE } else { 0 });
        b.extend_from_slice(&[flags, 0, 0, 0]);
        b.extend_from_slice(&self.target.octets());
        if let Some(mac) = self.target_mac {
            b.extend_from_slice(&[ND_OPT_TLLA, 1]);
            b.extend_from_slice(&mac.0);
        }
        let sum = icmpv6_checksum(self.src_ip, self.dst_ip, &b[icmp_start..]);
        b[icmp_start + 2..icmp_start + 4].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message` (checksum field zero, or the received value:
/// then a correct message sums to 0) over the RFC 8200 §8.1 pseudo-header.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(message);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A parsed frame of one of the kinds this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame {
    /// Ethernet/IPv4 ARP.
    Arp(ArpFrame),
    /// ICMPv6 Neighbor Advertisement.
    Na(NaFrame),
}

/// Why bytes are not a frame [`parse`] understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the headers need.
    #[error("frame too short: {len} bytes, {need} needed for {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not ARP for Ethernet/IPv4, nor IPv6.
    #[error("not an ARP or IPv6 frame (EtherType {0:#06x})")]
    EtherType(u16),
    /// ARP for another hardware or protocol type.
    #[error(
        "ARP for hardware type {htype} / protocol {ptype:#06x} (lengths {hlen}/{plen}), not Ethernet/IPv4"
    )]
    ArpKind {
        /// Hardware type.
        htype: u16,
        /// Protocol type.
        ptype: u16,
        /// Hardware address length.
        hlen: u8,
        /// Protocol address length.
        plen: u8,
    },
    /// IPv6, but not an ICMPv6 Neighbor Advertisement without extension headers.
    #[error(
        "IPv6 packet is not a Neighbor Advertisement (next header {next_header}, ICMPv6 type {icmp_type:?})"
    )]
    NotNa {
        /// IPv6 next header.
        next_header: u8,
        /// ICMPv6 type, when the next header is ICMPv6.
        icmp_type: Option<u8>,
    },
    /// The ICMPv6 checksum does not match.
    #[error("ICMPv6 checksum {got:#06x} is wrong, expected {want:#06x}")]
    Checksum {
        /// In the frame.
        got: u16,
        /// Computed.
        want: u16,
    },
}

/// Parses an Ethernet frame (no FCS; trailing padding is ignored).
pub fn parse(b: &[u8]) -> Result<Frame, FrameError> {
    need(b, ETH_HLEN, "the Ethernet header")?;
    let mac = |o: usize| MacAddr(b[o..o + 6].try_into().expect("6 bytes"));
    let u16_at = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    let eth_dst = mac(0);
    let eth_src = mac(6);
    match u16_at(12) {
        ETHERTYPE_ARP => {
            need(b, ARP_FRAME_LEN, "an Ethernet/IPv4 ARP frame")?;
            let (htype, ptype, hlen, plen) = (u16_at(14), u16_at(16), b[18], b[19]);
            if (htype, ptype, hlen, plen) != (ARP_HTYPE_ETHER, ETHERTYPE_IPV4, 6, 4) {
                return Err(FrameError::ArpKind {
                    htype,
                    ptype,
                    hlen,
                    plen,
                });
            }
            let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
            Ok(Frame::Arp(ArpFrame {
                eth_dst,
                eth_src,
                op: ArpOp::from_code(u16_at(20)),
                sender_mac: mac(22),
                sender_ip: ip(28),
                target_mac: mac(32),
                target_ip: ip(38),
            }))
        }
        ETHERTYPE_IPV6 => {
            need(b, ETH_HLEN + 40, "the IPv6 header")?;
            let ip6 = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&b[o..o + 16]).expect("16"));
            let payload_len = usize::from(u16_at(ETH_HLEN + 4));
            let next_header = b[ETH_HLEN + 6];
            let hop_limit = b[ETH_HLEN + 7];
            let (src_ip, dst_ip) = (ip6(ETH_HLEN + 8), ip6(ETH_HLEN + 24));
            let icmp_start = ETH_HLEN + 40;
            if next_header != IPPROTO_ICMPV6 {
                return Err(FrameError::NotNa {
                    next_header,
                    icmp_type: None,
                });
            }
            need(b, icmp_start + payload_len, "the IPv6 payload")?;
            let icmp = &b[icmp_start..icmp_start + payload_len];
            if icmp.first() != Some(&ICMPV6_NA) {
                return Err(FrameError::NotNa {
                    next_header,
                    icmp_type: icmp.first().copied(),
                });
            }
            need(icmp, 24, "a Neighbor Advertisement")?;
            let got = u16::from_be_bytes([icmp[2], icmp[3]]);
            if icmpv6_checksum(src_ip, dst_ip, icmp) != 0 {
                let mut zeroed = icmp.to_vec();
                zeroed[2..4].fill(0);
                return Err(FrameError::Checksum {
                    got,
                    want: icmpv6_checksum(src_ip, dst_ip, &zeroed),
                });
            }
            let flags = icmp[4];
            let mut target_mac = None;
            let mut opts = &icmp[24..];
            // Options: type, length in units of 8 bytes (RFC 4861 §4.6); a zero length is invalid.
            while opts.len() >= 8 {
                let len = usize::from(opts[1]) * 8;
                if len == 0 || len > opts.len() {
                    break;
                }
                if opts[0] == ND_OPT_TLLA && len == 8 {
                    target_mac = Some(MacAddr(opts[2..8].try_into().expect("6 bytes")));
                }
                opts = &opts[len..];
            }
            Ok(Frame::Na(NaFrame {
                eth_dst,
                eth_src,
                src_ip,
                dst_ip,
                hop_limit,
                router: flags & NA_ROUTER != 0,
                solicited: flags & NA_SOLICITED != 0,
                override_flag: flags & NA_OVERRIDE != 0,
                target: Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).expect("16")),
                target_mac,
            }))
        }
        other => Err(FrameError::EtherType(other)),
    }
}

fn need(b: &[u8], n: usize, what: &'static str) -> Result<(), FrameError> {
    if b.len() < n {
        Err(FrameError::Truncated {
            what,
            len: b.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    #[rustfmt::skip]
    const GARP_REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,   // eth dst: broadcast
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,   // eth src
        0x08, 0x06,                           // ARP
        0x00, 0x01, 0x08, 0x00, 6, 4,         // Ethernet, IPv4, hlen, plen
        0x00, 0x01,                           // request
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,   // sender MAC
        192, 0, 2, 100,                       // sender IP = VIP
        0, 0, 0, 0, 0, 0,                     // target MAC unknown
        192, 0, 2, 100,                       // target IP = VIP
    ];

    #[rustfmt::skip]
    const GARP_REPLY: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4,
        0x00, 0x02,                           // reply
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        192, 0, 2, 100,
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,   // target MAC = own MAC
        192, 0, 2, 100,
    ];

    #[rustfmt::skip]
    const PROBE: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4,
        0x00, 0x01,
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        0, 0, 0, 0,                           // sender IP 0.0.0.0 (RFC 5227)
        0, 0, 0, 0, 0, 0,
        192, 0, 2, 100,
    ];

    // Checked independently: `tcpdump -vv -r` of this frame in a pcap prints "[icmp6 sum ok]".
    #[rustfmt::skip]
    const NA: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01,   // eth dst: all-nodes multicast
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        0x86, 0xdd,                           // IPv6
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 58, 255, // v6, payload 32, ICMPv6, hop limit 255
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // src 2001:db8::100
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,          // dst ff02::1
        136, 0, 0x78, 0xed,                   // NA, code 0, checksum
        0x20, 0, 0, 0,                        // Override
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // target
        2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // TLLA option
    ];

    #[test]
    fn gratuitous_arp_golden_bytes() {
        assert_eq!(
            ArpFrame::gratuitous_request(MAC, VIP).to_bytes(),
            GARP_REQUEST
        );
        assert_eq!(ArpFrame::gratuitous_reply(MAC, VIP).to_bytes(), GARP_REPLY);
        assert_eq!(ArpFrame::probe(MAC, VIP).to_bytes(), PROBE);
    }

    #[test]
    fn arp_round_trips_and_classifies() {
        for (frame, garp) in [
            (ArpFrame::gratuitous_request(MAC, VIP), true),
            (ArpFrame::gratuitous_reply(MAC, VIP), true),
            (ArpFrame::probe(MAC, VIP), false),
        ] {
            let mut bytes = frame.to_bytes().to_vec();
            assert_eq!(parse(&bytes), Ok(Frame::Arp(frame)));
            // NIC padding to 60 bytes is ignored.
            bytes.resize(60, 0);
            assert_eq!(parse(&bytes), Ok(Frame::Arp(frame)));
            assert_eq!(frame.is_gratuitous(), garp, "{frame:?}");
        }
        // A reply whose target MAC is not the sender's is not gratuitous to Linux.
        let mut reply = ArpFrame::gratuitous_reply(MAC, VIP);
        reply.target_mac = MacAddr::ZERO;
        assert!(!reply.is_gratuitous());
    }

    #[test]
    fn unsolicited_na_golden_bytes_and_checksum() {
        let ip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let na = NaFrame::unsolicited(MAC, ip);
        assert_eq!(na.to_bytes(), NA);
        assert_eq!(parse(&NA), Ok(Frame::Na(na)));
        // The whole message sums to zero with the checksum in place.
        assert_eq!(icmpv6_checksum(ip, ALL_NODES, &NA[54..]), 0);
        let mut bad = NA;
        bad[58] ^= 0x20; // clear Override
        assert_eq!(
            parse(&bad),
            Err(FrameError::Checksum {
                got: 0x78ed,
                want: 0x98ed
            })
        );
    }

    #[test]
    fn checksum_of_odd_length_pads_with_zero() {
        let a = Ipv6Addr::UNSPECIFIED;
        // Pseudo-header only: length 1 and next header 58 => !(0x0001 + 0x003a + 0x0100).
        assert_eq!(
            icmpv6_checksum(a, a, &[0x01]),
            !(0x0001u16 + 0x003a + 0x0100)
        );
    }

    #[test]
    fn parse_rejects_what_it_does_not_know() {
        assert!(matches!(parse(&[0; 10]), Err(FrameError::Truncated { .. })));
        let mut ip4 = GARP_REQUEST;
        ip4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(&ip4), Err(FrameError::EtherType(0x0800)));
        let mut ib = GARP_REQUEST;
        ib[15] = 32; // InfiniBand hardware type
        assert!(matches!(
            parse(&ib),
            Err(FrameError::ArpKind { htype: 32, .. })
        ));
        let mut ns = NA;
        ns[54] = 135; // Neighbor Solicitation
        assert!(matches!(
            parse(&ns),
            Err(FrameError::NotNa {
                icmp_type: Some(135),
                ..
            })
        ));
        assert!(matches!(
            parse(&NA[..70]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn mac_text_round_trips() {
        assert_eq!(MAC.to_string(), "02:00:5e:10:20:30");
        assert_eq!("02:00:5E:10:20:30".parse::<MacAddr>(), Ok(MAC));
        for bad in [
            "",
            "02:00:5e:10:20",
            "02:00:5e:10:20:30:40",
            "0:00:5e:10:20:30",
            "zz:00:5e:10:20:30",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(
            MacAddr::ipv6_multicast("ff02::1:ff00:100".parse().unwrap()).to_string(),
            "33:33:ff:00:01:00"
        );
    }
}
