//! The rtnetlink link messages, pure: the `RTM_GETLINK` dump request as bytes, and what the
//! kernel sends about links (`RTM_NEWLINK`, `RTM_DELLINK`, in a dump or as `RTNLGRP_LINK`
//! notifications) as [`LinkMsg`]s. No socket, no privileges; the socket side is
//! [`links`](super::links).
//!
//! Carrier is what a service on the interface needs: administratively up (`IFF_UP`) and running
//! (`IFF_RUNNING`, which the kernel sets when the RFC 2863 operational state is up or unknown,
//! `dev_get_flags`); a deleted link has none. `IFF_LOWER_UP` alone is not enough: a link that is
//! down keeps it, and a dormant one (802.1X, a bond's backup) has it without passing traffic.
//!
//! Only `AF_UNSPEC` link messages describe a link: a bridge also sends `RTM_NEWLINK` and
//! `RTM_DELLINK` with `AF_BRIDGE` about its ports (a port leaving the bridge is an `AF_BRIDGE`
//! `RTM_DELLINK` of a link that still exists), so those are [`LinkMsg::Other`].
//!
//! Deliberately not here: every other link attribute (MTU, addresses, statistics, VF lists: the
//! dump does not ask for `IFLA_EXT_MASK` extras, which keeps each message small), changing links.

use std::io::Cursor;

use neli::FromBytesWithInput;
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{Iff, Ifla, RtAddrFamily, Rtm};
use neli::rtnl::{Ifinfomsg, IfinfomsgBuilder};

use super::rtcodec::{self, RtCodecError};

/// `netlink.h: NLM_F_DUMP_INTR`: the link list changed while the dump ran.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// What one link message says about a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkEvent {
    /// The interface name (`IFLA_IFNAME`).
    pub name: String,
    /// The interface index.
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Up and running (see the [module docs](self)); false for a deleted link.
    pub carrier: bool,
    /// The link is gone (`RTM_DELLINK`, or missing from a later snapshot).
    pub deleted: bool,
}

impl LinkEvent {
    /// The same link, deleted.
    pub fn gone(&self) -> LinkEvent {
        LinkEvent {
            up: false,
            carrier: false,
            deleted: true,
            ..self.clone()
        }
    }
}

/// One message of a datagram on a link socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMsg {
    /// A link's state: a dump reply (`seq` of the request) or a notification (`seq` 0).
    Link {
        /// The request's sequence number, 0 for a notification.
        seq: u32,
        /// The dump is inconsistent (`NLM_F_DUMP_INTR`): the list changed while it ran.
        interrupted: bool,
        /// The link.
        event: LinkEvent,
    },
    /// The end of dump `seq`.
    Done {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive; 0 when the dump went well.
        errno: i32,
        /// The dump is inconsistent (`NLM_F_DUMP_INTR`).
        interrupted: bool,
    },
    /// The kernel refused request `seq` (an `NLMSG_ERROR` with errno 0 is an ACK: errno 0).
    Error {
        /// The request's sequence number.
        seq: u32,
        /// The errno, positive.
        errno: i32,
    },
    /// Anything else (another family's link message, other types): skipped by callers.
    Other {
        /// Its sequence number.
        seq: u32,
    },
}

/// `RTM_GETLINK` dump of every link (`REQUEST | DUMP`), one `ifinfomsg` of family `AF_UNSPEC`.
pub fn dump_request(seq: u32) -> Result<Vec<u8>, RtCodecError> {
    let msg = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .build()
        .map_err(|e| RtCodecError::Encode(e.to_string()))?;
    rtcodec::frame(Rtm::Getlink, NlmF::REQUEST | NlmF::DUMP, seq, msg)
}

/// Reads one link message (header included) into a [`LinkEvent`]; `None` for a message that is
/// not about a link as such (another family) or names no interface.
fn decode_link(one: &[u8], deleted: bool) -> Result<Option<LinkEvent>, RtCodecError> {
    let payload = &one[16..];
    let msg = Ifinfomsg::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
        .map_err(|e| RtCodecError::Malformed(format!("link message: {e}")))?;
    if *msg.ifi_family() != RtAddrFamily::Unspecified {
        return Ok(None);
    }
    let Ok(index) = u32::try_from(*msg.ifi_index()) else {
        return Ok(None);
    };
    let attrs = msg.rtattrs().get_attr_handle();
    let Some(name) = attrs.get_attribute(Ifla::Ifname).map(|a| {
        let b = a.rta_payload().as_ref();
        let b = b.split(|&c| c == 0).next().unwrap_or_default();
        String::from_utf8_lossy(b).into_owned()
    }) else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    let flags = *msg.ifi_flags();
    let up = !deleted && flags.contains(Iff::UP);
    Ok(Some(LinkEvent {
        name,
        index,
        up,
        carrier: up && flags.contains(Iff::RUNNING),
        deleted,
    }))
}

/// Splits one received datagram into [`LinkMsg`]s. Any input gives messages or an error, never
/// a panic.
pub fn parse_links(bytes: &[u8]) -> Result<Vec<LinkMsg>, RtCodecError> {
    let mut out = Vec::new();
    for raw in rtcodec::split(bytes)? {
        let seq = raw.seq;
        let interrupted = raw.flags & NLM_F_DUMP_INTR != 0;
        let msg = match raw.ty {
            t if t == libc::NLMSG_DONE as u16 => LinkMsg::Done {
                seq,
                errno: raw.errno(),
                interrupted,
            },
            t if t == libc::NLMSG_ERROR as u16 => LinkMsg::Error {
                seq,
                errno: raw.errno(),
            },
            t if t == libc::RTM_NEWLINK || t == libc::RTM_DELLINK => {
                match decode_link(raw.bytes, t == libc::RTM_DELLINK)? {
                    Some(event) => LinkMsg::Link {
                        seq,
                        interrupted,
                        event,
                    },
                    None => LinkMsg::Other { seq },
                }
            }
            _ => LinkMsg::Other { seq },
        };
        out.push(msg);
    }
    Ok(out)
}

/// Test messages built the way the kernel lays them out.
#[cfg(test)]
pub(crate) mod testing {
    /// One link message: `ty` (`RTM_NEWLINK`/`RTM_DELLINK`), header `flags`, `seq`, family,
    /// index, `ifi_flags`, then `IFLA_IFNAME` (NUL-terminated) and `IFLA_OPERSTATE`.
    pub(crate) fn link_msg(
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        index: i32,
        ifi_flags: u32,
        name: &str,
    ) -> Vec<u8> {
        let mut attrs = Vec::new();
        let mut push = |kind: u16, payload: &[u8]| {
            attrs.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            attrs.extend_from_slice(&kind.to_ne_bytes());
            attrs.extend_from_slice(payload);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        };
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        push(libc::IFLA_IFNAME, &n);
        let oper = if ifi_flags & libc::IFF_RUNNING as u32 != 0 {
            6 // IF_OPER_UP
        } else {
            2 // IF_OPER_DOWN
        };
        push(libc::IFLA_OPERSTATE, &[oper]);
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + 16 + attrs.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.push(family);
        b.push(0);
        b.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&ifi_flags.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change
        b.extend_from_slice(&attrs);
        b
    }

    /// `NLMSG_DONE` of dump `seq`.
    pub(crate) fn done(seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&0i32.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    const UP_RUNNING: u32 = (libc::IFF_UP | libc::IFF_RUNNING | libc::IFF_LOWER_UP) as u32;
    const UP_NO_CARRIER: u32 = (libc::IFF_UP | libc::IFF_BROADCAST) as u32;

    fn ev(name: &str, index: u32, up: bool, carrier: bool, deleted: bool) -> LinkEvent {
        LinkEvent {
            name: name.into(),
            index,
            up,
            carrier,
            deleted,
        }
    }

    #[test]
    fn the_dump_request_is_one_ifinfomsg_of_any_family() {
        #[rustfmt::skip]
        let want: [u8; 32] = [
            32, 0, 0, 0, 18, 0, 1, 3, 7, 0, 0, 0, 0, 0, 0, 0, // RTM_GETLINK, REQUEST|ROOT|MATCH, seq 7
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // AF_UNSPEC, index 0, no flags
        ];
        assert_eq!(dump_request(7).unwrap(), want);
    }

    /// A real kernel's (6.18) notifications for a veth pair, every datagram one after another
    /// (`tests/fixtures/links/capture.sh`): ca created, ca up, cb down, ca deleted.
    const CAPTURE: &[u8] = include_bytes!("../../tests/fixtures/links/notifications-6.18.bin");

    #[test]
    fn a_real_kernels_notifications_decode_to_carrier_changes() {
        let events: Vec<_> = parse_links(CAPTURE)
            .unwrap()
            .into_iter()
            .map(|m| match m {
                LinkMsg::Link {
                    seq: 0,
                    interrupted: false,
                    event,
                } => event,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ev("ca", 3, true, false, false), // up, the peer's carrier not there yet
                ev("ca", 3, true, true, false),
                ev("cb", 2, true, true, false),
                ev("cb", 2, false, false, false), // cb down...
                ev("ca", 3, true, false, false),  // ...takes ca's carrier
                ev("ca", 3, false, false, false), // going down before it is deleted
                ev("ca", 3, false, false, true),
                ev("cb", 2, false, false, true), // a veth's peer goes with it
            ]
        );
    }

    #[test]
    fn carrier_needs_up_and_running_and_a_deleted_link_has_none() {
        let mut d = link_msg(libc::RTM_NEWLINK, 0, 0, 0, 4, UP_RUNNING, "eth0");
        d.extend(link_msg(
            libc::RTM_NEWLINK,
            0,
            0,
            0,
            4,
            UP_NO_CARRIER,
            "eth0",
        ));
        // Running but administratively down cannot happen in the kernel; still no carrier.
        d.extend(link_msg(
            libc::RTM_NEWLINK,
            0,
            0,
            0,
            4,
            libc::IFF_RUNNING as u32,
            "eth0",
        ));
        d.extend(link_msg(libc::RTM_DELLINK, 0, 0, 0, 4, UP_RUNNING, "eth0"));
        let got = parse_links(&d).unwrap();
        let events: Vec<_> = got
            .into_iter()
            .map(|m| match m {
                LinkMsg::Link { event, .. } => event,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ev("eth0", 4, true, true, false),
                ev("eth0", 4, true, false, false),
                ev("eth0", 4, false, false, false),
                ev("eth0", 4, false, false, true),
            ]
        );
    }

    #[test]
    fn dump_replies_keep_their_sequence_and_the_interrupted_flag() {
        let mut d = link_msg(libc::RTM_NEWLINK, 2 | NLM_F_DUMP_INTR, 9, 0, 1, 0x49, "lo");
        d.extend(done(9));
        assert_eq!(
            parse_links(&d).unwrap(),
            vec![
                LinkMsg::Link {
                    seq: 9,
                    interrupted: true,
                    event: ev("lo", 1, true, true, false),
                },
                LinkMsg::Done {
                    seq: 9,
                    errno: 0,
                    interrupted: false
                },
            ]
        );
        let err = crate::netlink::testing::error_reply(9, libc::EBUSY, &dump_request(9).unwrap());
        assert_eq!(
            parse_links(&err).unwrap(),
            vec![LinkMsg::Error {
                seq: 9,
                errno: libc::EBUSY
            }]
        );
    }

    #[test]
    fn bridge_port_messages_and_other_types_are_not_links() {
        // A port leaving a bridge: AF_BRIDGE RTM_DELLINK of a link that still exists.
        let mut d = link_msg(libc::RTM_DELLINK, 0, 0, 7, 4, UP_RUNNING, "eth0");
        let mut addr = link_msg(libc::RTM_NEWLINK, 0, 0, 0, 4, UP_RUNNING, "eth0");
        addr[4..6].copy_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
        d.extend(addr);
        assert_eq!(
            parse_links(&d).unwrap(),
            vec![LinkMsg::Other { seq: 0 }, LinkMsg::Other { seq: 0 }]
        );
    }

    #[test]
    fn a_link_without_a_name_is_skipped_and_a_long_name_is_read_to_its_nul() {
        let mut d = link_msg(libc::RTM_NEWLINK, 0, 0, 0, 4, UP_RUNNING, "");
        d.extend(link_msg(
            libc::RTM_NEWLINK,
            0,
            0,
            0,
            5,
            UP_RUNNING,
            "a-fifteen-byte-",
        ));
        let got = parse_links(&d).unwrap();
        assert_eq!(got[0], LinkMsg::Other { seq: 0 });
        assert!(
            matches!(&got[1], LinkMsg::Link { event, .. } if event.name == "a-fifteen-byte-"),
            "{got:?}"
        );
    }

    /// A small deterministic generator (xorshift): the property below needs many inputs, not a
    /// new dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn no_input_panics_truncated_corrupted_or_random() {
        let mut good = link_msg(libc::RTM_NEWLINK, 0, 0, 0, 4, UP_RUNNING, "eth0");
        good.extend(link_msg(libc::RTM_DELLINK, 0, 0, 0, 5, UP_RUNNING, "veth1"));
        good.extend(done(3));
        // The kernel's own first message: nested attributes (IFLA_AF_SPEC, IFLA_LINKINFO) too.
        good.extend_from_slice(&CAPTURE[..1492]);
        // Every cut of a valid datagram: an error or fewer messages, never a panic.
        for cut in 0..good.len() {
            let _ = parse_links(&good[..cut]);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5_000 {
            // Corrupt one to four bytes of the valid datagram (lengths, types, attributes)...
            let mut b = good.clone();
            for _ in 0..(xorshift(&mut seed) % 4 + 1) {
                let at = (xorshift(&mut seed) as usize) % b.len();
                b[at] = xorshift(&mut seed) as u8;
            }
            let _ = parse_links(&b);
            // ...and random bytes with a plausible header.
            let len = (xorshift(&mut seed) % 96) as usize;
            let mut r: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
            if r.len() >= 6 {
                r[..4].copy_from_slice(&(len as u32).to_ne_bytes());
                r[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
            }
            let _ = parse_links(&r);
        }
        // A header promising more than there is.
        let mut b = good.clone();
        b[0] = 0xff;
        assert!(parse_links(&b).is_err());
    }
}
