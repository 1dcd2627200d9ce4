//! The rtnetlink address messages, pure: requests (`RTM_NEWADDR`, `RTM_DELADDR`, `RTM_GETADDR`)
//! as bytes, and the kernel's replies as [`RtReply`]s. No socket, no privileges: the unit tests
//! hold the bytes `ip addr` sends (captured with `strace -e write=3` on a veth link) and a real
//! kernel's dump.
//!
//! The requests have iproute2's layout, attribute for attribute: adding an IPv4 address sends
//! `IFA_LOCAL`, `IFA_LABEL`, `IFA_ADDRESS`, `IFA_BROADCAST` (directed broadcast for prefixes up
//! to /30, as `brd +` does); IPv6 `IFA_LOCAL`, `IFA_ADDRESS` with `IFA_F_NODAD` (see
//! [`addr`](super::addr) for why); removing sends `IFA_LOCAL` and `IFA_ADDRESS`. A listing is a
//! dump of one `ifaddrmsg` naming the interface (iproute2 sends an `ifinfomsg` there, a quirk of
//! its own); the kernel dumps every interface's addresses, so replies are filtered by index.
//!
//! Deliberately not here: routes, links, lifetimes (`IFA_CACHEINFO`), multicast notifications.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};

use neli::consts::nl::{NlmF, NlmsgerrAttr};
use neli::consts::rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Rtattr, RtattrBuilder};
use neli::types::{Buffer, RtBuffer};
use neli::{FromBytes, FromBytesWithInput, Size, ToBytes};

use super::addr::IfAddr;
use crate::config::Cidr;

/// `if.h: IFNAMSIZ` minus the NUL: the longest label (`ip addr add ... label`).
pub const MAX_LABEL_LEN: usize = 15;

/// A request that cannot be built, or a reply that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtCodecError {
    /// The request has a value the kernel would refuse or cut.
    #[error("{0}")]
    Invalid(String),
    /// neli could not build or serialise a message.
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The kernel sent something this module cannot read.
    #[error("malformed rtnetlink reply: {0}")]
    Malformed(String),
}

fn enc(e: impl std::fmt::Display) -> RtCodecError {
    RtCodecError::Encode(e.to_string())
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

fn family(addr: IpAddr) -> RtAddrFamily {
    if addr.is_ipv4() {
        RtAddrFamily::Inet
    } else {
        RtAddrFamily::Inet6
    }
}

/// The IPv4 directed broadcast address of `addr/prefix_len`.
pub fn broadcast(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    let host = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    Ipv4Addr::from(u32::from(addr) | host)
}

fn attr(kind: Ifa, payload: Vec<u8>) -> Result<Rtattr<Ifa, Buffer>, RtCodecError> {
    RtattrBuilder::default()
        .rta_type(kind)
        .rta_payload(Buffer::from(payload))
        .build()
        .map_err(enc)
}

/// One rtnetlink request: `msg` behind a netlink header (the link codec's dump uses it too).
pub(super) fn frame<P: Size + ToBytes>(
    kind: Rtm,
    flags: NlmF,
    seq: u32,
    msg: P,
) -> Result<Vec<u8>, RtCodecError> {
    let hdr = NlmsghdrBuilder::default()
        .nl_type(kind)
        .nl_flags(flags)
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(msg))
        .build()
        .map_err(enc)?;
    let mut c = Cursor::new(Vec::with_capacity(hdr.padded_size()));
    hdr.to_bytes(&mut c).map_err(enc)?;
    Ok(c.into_inner())
}

/// `RTM_NEWADDR` for `addr` on interface `index` (`REQUEST | ACK | CREATE | EXCL`), with an
/// IPv4 `label` (the full label, e.g. `eth0:vip`, at most [`MAX_LABEL_LEN`] bytes).
pub fn add_request(
    seq: u32,
    index: u32,
    addr: Cidr,
    label: Option<&str>,
) -> Result<Vec<u8>, RtCodecError> {
    let ip = addr.addr();
    let mut attrs = RtBuffer::new();
    attrs.push(attr(Ifa::Local, ip_bytes(ip))?);
    let mut flags = IfaF::empty();
    let mut scope = RtScope::Universe;
    match ip {
        IpAddr::V4(v4) => {
            if let Some(l) = label {
                if l.len() > MAX_LABEL_LEN || l.contains('\0') {
                    return Err(RtCodecError::Invalid(format!(
                        "label {l:?}: at most {MAX_LABEL_LEN} bytes without NUL (IFNAMSIZ)"
                    )));
                }
                let mut bytes = l.as_bytes().to_vec();
                bytes.push(0);
                attrs.push(attr(Ifa::Label, bytes)?);
            }
            attrs.push(attr(Ifa::Address, ip_bytes(ip))?);
            if addr.prefix_len() <= 30 {
                let brd = broadcast(v4, addr.prefix_len());
                attrs.push(attr(Ifa::Broadcast, brd.octets().to_vec())?);
            }
            if v4.is_loopback() {
                scope = RtScope::Host;
            }
        }
        IpAddr::V6(_) => {
            attrs.push(attr(Ifa::Address, ip_bytes(ip))?);
            flags |= IfaF::NODAD;
        }
    }
    let msg = IfaddrmsgBuilder::default()
        .ifa_family(family(ip))
        .ifa_prefixlen(addr.prefix_len())
        .ifa_flags(flags)
        .ifa_scope(scope)
        .ifa_index(index)
        .rtattrs(attrs)
        .build()
        .map_err(enc)?;
    frame(
        Rtm::Newaddr,
        NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL,
        seq,
        msg,
    )
}

/// `RTM_DELADDR` for `addr/prefix_len` on interface `index` (`REQUEST | ACK`).
pub fn remove_request(
    seq: u32,
    index: u32,
    addr: IpAddr,
    prefix_len: u8,
) -> Result<Vec<u8>, RtCodecError> {
    let mut attrs = RtBuffer::new();
    attrs.push(attr(Ifa::Local, ip_bytes(addr))?);
    attrs.push(attr(Ifa::Address, ip_bytes(addr))?);
    let msg = IfaddrmsgBuilder::default()
        .ifa_family(family(addr))
        .ifa_prefixlen(prefix_len)
        .ifa_scope(RtScope::Universe)
        .ifa_index(index)
        .rtattrs(attrs)
        .build()
        .map_err(enc)?;
    frame(Rtm::Deladdr, NlmF::REQUEST | NlmF::ACK, seq, msg)
}

/// `RTM_GETADDR` dump of both families (`REQUEST | DUMP`).
pub fn list_request(seq: u32, index: u32) -> Result<Vec<u8>, RtCodecError> {
    let msg = IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Unspecified)
        .ifa_prefixlen(0)
        .ifa_scope(RtScope::Universe)
        .ifa_index(index)
        .build()
        .map_err(enc)?;
    frame(Rtm::Getaddr, NlmF::REQUEST | NlmF::DUMP, seq, msg)
}

/// One message of a reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtReply {
    /// An address (`RTM_NEWADDR` in a dump) on interface `index`; `None` when it has no address
    /// attribute this module reads.
    Addr {
        /// The request's sequence number.
        seq: u32,
        /// The interface index.
        index: u32,
        /// The address.
        addr: Option<IfAddr>,
    },
    /// The ACK of request `seq`.
    Ack {
        /// The request's sequence number.
        seq: u32,
    },
    /// The kernel refused request `seq`.
    Error {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive.
        errno: i32,
        /// The kernel's own words (extended ack), when it sent them.
        message: Option<String>,
    },
    /// The end of dump `seq`, with its errno (0: complete).
    Done {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive; 0 when the dump went well.
        errno: i32,
    },
    /// Any other message (skipped by callers).
    Other {
        /// Its sequence number.
        seq: u32,
    },
}

/// Reads one `ifaddrmsg` into an address; `iface_name` drops a label equal to it.
fn decode_addr(m: &Ifaddrmsg, iface_name: Option<&str>) -> Option<IfAddr> {
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
    let addr = raw.as_deref().and_then(ip_from)?;
    let label = get(Ifa::Label)
        .map(|l| {
            String::from_utf8_lossy(&l)
                .trim_end_matches('\0')
                .to_owned()
        })
        .filter(|l| Some(l.as_str()) != iface_name);
    let flags = get(Ifa::Flags)
        .and_then(|f| <[u8; 4]>::try_from(f.as_slice()).ok())
        .map(u32::from_ne_bytes)
        .unwrap_or_else(|| u32::from(u8::from(*m.ifa_flags())));
    Some(IfAddr {
        addr,
        prefix_len: *m.ifa_prefixlen(),
        label,
        flags,
    })
}

/// One netlink message of a datagram, header fields read, bounds checked.
pub(super) struct RawMsg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The whole message, header included (`nlmsg_len` bytes).
    pub bytes: &'a [u8],
}

impl RawMsg<'_> {
    /// The errno of an `NLMSG_ERROR` or `NLMSG_DONE` (their payload starts with it), positive.
    pub fn errno(&self) -> i32 {
        match self.bytes.get(16..20) {
            Some(b) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]).saturating_neg(),
            None => 0,
        }
    }
}

/// The messages of one received datagram, in order; a length out of bounds is an error.
pub(super) fn split(bytes: &[u8]) -> Result<Vec<RawMsg<'_>>, RtCodecError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        if bytes.len() - at < 16 {
            return Err(RtCodecError::Malformed(format!(
                "{} trailing bytes after the last message",
                bytes.len() - at
            )));
        }
        let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        if len < 16 || len > bytes.len() - at {
            return Err(RtCodecError::Malformed(format!(
                "message length {len} at offset {at} out of bounds"
            )));
        }
        let one = &bytes[at..at + len];
        out.push(RawMsg {
            ty: u16::from_ne_bytes([one[4], one[5]]),
            flags: u16::from_ne_bytes([one[6], one[7]]),
            seq: u32::from_ne_bytes([one[8], one[9], one[10], one[11]]),
            bytes: one,
        });
        at = at.saturating_add((len + 3) & !3);
    }
    Ok(out)
}

/// Splits one received datagram into [`RtReply`]s; labels equal to `iface_name` are dropped.
pub fn parse_replies(bytes: &[u8], iface_name: Option<&str>) -> Result<Vec<RtReply>, RtCodecError> {
    let mut out = Vec::new();
    for (at, raw) in split(bytes)?.into_iter().enumerate() {
        let (one, ty, seq) = (raw.bytes, raw.ty, raw.seq);
        if ty == libc::NLMSG_DONE as u16 {
            out.push(RtReply::Done {
                seq,
                errno: raw.errno(),
            });
            continue;
        }
        if ty == libc::NLMSG_NOOP as u16 {
            continue;
        }
        let m = Nlmsghdr::<u16, Buffer>::from_bytes(&mut Cursor::new(one))
            .map_err(|e| RtCodecError::Malformed(format!("message {at}: {e}")))?;
        out.push(match m.nl_payload() {
            NlPayload::Ack(_) | NlPayload::Empty => RtReply::Ack { seq },
            NlPayload::Err(e) => RtReply::Error {
                seq,
                errno: -*e.error(),
                message: e
                    .ext_ack()
                    .get_attr_handle()
                    .get_attr_payload_as_with_len::<String>(NlmsgerrAttr::Msg)
                    .ok()
                    .map(|s| s.trim_end_matches('\0').to_owned())
                    .filter(|s| !s.is_empty()),
            },
            NlPayload::DumpExtAck(e) => RtReply::Done {
                seq,
                errno: -*e.error(),
            },
            NlPayload::Payload(p) if ty == u16::from(Rtm::Newaddr) => {
                let p = p.as_ref();
                let msg = Ifaddrmsg::from_bytes_with_input(&mut Cursor::new(p), p.len())
                    .map_err(|e| RtCodecError::Malformed(format!("address message: {e}")))?;
                RtReply::Addr {
                    seq,
                    index: *msg.ifa_index(),
                    addr: decode_addr(&msg, iface_name),
                }
            }
            NlPayload::Payload(_) => RtReply::Other { seq },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes `ip` (iproute2 6.1) sent on a veth link with index 3, captured with
    /// `strace -e trace=sendmsg -e write=3`; sequence number 0x6b0f26ab.
    const SEQ: u32 = 0x6b0f_26ab;
    #[rustfmt::skip]
    const IP_ADDR_ADD_V4: [u8; 60] = [ // ip -4 addr add 192.0.2.100/24 brd + dev e0 label e0:vip
        0x3c, 0x00, 0x00, 0x00, 0x14, 0x00, 0x05, 0x06, 0xab, 0x26, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x18, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00, 0xc0, 0x00, 0x02, 0x64,
        0x0b, 0x00, 0x03, 0x00, 0x65, 0x30, 0x3a, 0x76, 0x69, 0x70, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00,
        0xc0, 0x00, 0x02, 0x64, 0x08, 0x00, 0x04, 0x00, 0xc0, 0x00, 0x02, 0xff,
    ];
    #[rustfmt::skip]
    const IP_ADDR_DEL_V4: [u8; 40] = [ // ip -4 addr del 192.0.2.100/24 dev e0
        0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00, 0xab, 0x26, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x18, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00, 0xc0, 0x00, 0x02, 0x64,
        0x08, 0x00, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x64,
    ];
    #[rustfmt::skip]
    const IP_ADDR_ADD_V6: [u8; 64] = [ // ip -6 addr add 2001:db8::100/64 dev e0 nodad
        0x40, 0x00, 0x00, 0x00, 0x14, 0x00, 0x05, 0x06, 0xab, 0x26, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00,
        0x0a, 0x40, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x14, 0x00, 0x01, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    ];
    #[rustfmt::skip]
    const IP_ADDR_DEL_V6: [u8; 64] = [ // ip -6 addr del 2001:db8::100/64 dev e0
        0x40, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00, 0xab, 0x26, 0x0f, 0x6b, 0x00, 0x00, 0x00, 0x00,
        0x0a, 0x40, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x14, 0x00, 0x01, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    ];
    /// The kernel's (6.18) `RTM_GETADDR` dump datagram for that link holding both addresses
    /// (`ip addr show dev e0`, `strace -e read=3`): seq 0x6b0f26af, port id 0x369a.
    #[rustfmt::skip]
    const KERNEL_DUMP: [u8; 160] = [
        0x58, 0x00, 0x00, 0x00, 0x14, 0x00, 0x22, 0x00, 0xaf, 0x26, 0x0f, 0x6b, 0x9a, 0x36, 0x00, 0x00,
        0x02, 0x18, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0xc0, 0x00, 0x02, 0x64,
        0x08, 0x00, 0x02, 0x00, 0xc0, 0x00, 0x02, 0x64, 0x08, 0x00, 0x04, 0x00, 0xc0, 0x00, 0x02, 0xff,
        0x0b, 0x00, 0x03, 0x00, 0x65, 0x30, 0x3a, 0x76, 0x69, 0x70, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00,
        0x80, 0x00, 0x00, 0x00, 0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xe4, 0xc8, 0x00, 0x00, 0xe4, 0xc8, 0x00, 0x00, 0x48, 0x00, 0x00, 0x00, 0x14, 0x00, 0x22, 0x00,
        0xaf, 0x26, 0x0f, 0x6b, 0x9a, 0x36, 0x00, 0x00, 0x0a, 0x40, 0x82, 0x00, 0x03, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xe5, 0xc8, 0x00, 0x00, 0xe5, 0xc8, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x82, 0x00, 0x00, 0x00,
    ];
    /// The kernel's `NLMSG_DONE` ending that dump.
    #[rustfmt::skip]
    const KERNEL_DONE: [u8; 20] = [
        0x14, 0x00, 0x00, 0x00, 0x03, 0x00, 0x22, 0x00, 0xaf, 0x26, 0x0f, 0x6b, 0x9a, 0x36, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn requests_are_byte_for_byte_what_iproute2_sends() {
        assert_eq!(
            add_request(SEQ, 3, cidr("192.0.2.100/24"), Some("e0:vip")).unwrap(),
            IP_ADDR_ADD_V4
        );
        assert_eq!(
            remove_request(SEQ, 3, "192.0.2.100".parse().unwrap(), 24).unwrap(),
            IP_ADDR_DEL_V4
        );
        assert_eq!(
            add_request(SEQ, 3, cidr("2001:db8::100/64"), None).unwrap(),
            IP_ADDR_ADD_V6
        );
        assert_eq!(
            remove_request(SEQ, 3, "2001:db8::100".parse().unwrap(), 64).unwrap(),
            IP_ADDR_DEL_V6
        );
    }

    #[test]
    fn the_listing_is_a_dump_of_one_ifaddrmsg() {
        #[rustfmt::skip]
        let want: [u8; 24] = [
            24, 0, 0, 0, 22, 0, 1, 3, 9, 0, 0, 0, 0, 0, 0, 0, // RTM_GETADDR, REQUEST|ROOT|MATCH, seq 9
            0, 0, 0, 0, 3, 0, 0, 0,                           // AF_UNSPEC, index 3
        ];
        assert_eq!(list_request(9, 3).unwrap(), want);
    }

    #[test]
    fn small_prefixes_get_no_broadcast_and_loopback_is_host_scope() {
        let b = add_request(1, 1, cidr("192.0.2.100/31"), None).unwrap();
        assert_eq!(b.len(), 16 + 8 + 8 + 8, "IFA_LOCAL and IFA_ADDRESS only");
        let b = add_request(1, 1, cidr("127.0.0.2/8"), None).unwrap();
        assert_eq!(b[16 + 3], libc::RT_SCOPE_HOST);
        assert_eq!(
            broadcast("198.18.3.4".parse().unwrap(), 15).to_string(),
            "198.19.255.255"
        );
        assert_eq!(
            broadcast("192.0.2.100".parse().unwrap(), 0).to_string(),
            "255.255.255.255"
        );
    }

    #[test]
    fn a_label_the_kernel_would_cut_is_an_error() {
        let err = add_request(1, 3, cidr("192.0.2.100/24"), Some("eth0:a-long-label")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "label \"eth0:a-long-label\": at most 15 bytes without NUL (IFNAMSIZ)"
        );
    }

    #[test]
    fn the_kernel_dump_decodes_to_both_addresses() {
        let replies = parse_replies(&KERNEL_DUMP, Some("e0")).unwrap();
        assert_eq!(
            replies,
            vec![
                RtReply::Addr {
                    seq: 0x6b0f_26af,
                    index: 3,
                    addr: Some(IfAddr {
                        addr: "192.0.2.100".parse().unwrap(),
                        prefix_len: 24,
                        label: Some("e0:vip".into()),
                        flags: libc::IFA_F_PERMANENT,
                    }),
                },
                RtReply::Addr {
                    seq: 0x6b0f_26af,
                    index: 3,
                    addr: Some(IfAddr {
                        addr: "2001:db8::100".parse().unwrap(),
                        prefix_len: 64,
                        label: None,
                        flags: libc::IFA_F_PERMANENT | libc::IFA_F_NODAD,
                    }),
                },
            ]
        );
        assert_eq!(
            parse_replies(&KERNEL_DONE, None).unwrap(),
            vec![RtReply::Done {
                seq: 0x6b0f_26af,
                errno: 0
            }]
        );
    }

    #[test]
    fn acks_and_errors_are_classified() {
        let ack = crate::netlink::testing::error_reply(5, 0, &IP_ADDR_DEL_V4);
        assert_eq!(
            parse_replies(&ack, None).unwrap(),
            vec![RtReply::Ack { seq: 5 }]
        );
        let err = crate::netlink::testing::error_reply(6, libc::EADDRNOTAVAIL, &IP_ADDR_DEL_V4);
        assert_eq!(
            parse_replies(&err, None).unwrap(),
            vec![RtReply::Error {
                seq: 6,
                errno: libc::EADDRNOTAVAIL,
                message: None
            }]
        );
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        for cut in [1, 15, 17, 40, 159] {
            let r = parse_replies(&KERNEL_DUMP[..cut], None);
            assert!(r.is_err(), "{cut} bytes: {r:?}");
        }
        let mut bad = KERNEL_DONE;
        bad[0] = 200;
        assert!(parse_replies(&bad, None).is_err());
    }
}
