//! Golden test of the IPVS codec: decodes reply bytes captured from the lab kernel (Debian 6.1) for a
//! table programmed with `ipvsadm` (see `fixtures/ipvs/capture.sh`), and compares the result with the
//! table written out here and with `ipvsadm -Sn` of the same moment. No privileges needed.

mod ipvs_util;

use std::net::SocketAddr;

use common::ipvs::codec::{self, Reply, attr};
use common::ipvs::*;
use ipvs_util::{parse_ipvsadm_save, without_thresholds};

const DUMP: &[u8] = include_bytes!("fixtures/ipvs/dump-6.1.bin");
const SAVED: &str = include_str!("fixtures/ipvs/dump-6.1.ipvsadm-Sn");

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The table `capture.sh` programs, written from its ipvsadm commands.
fn expected() -> Table {
    let mut t = Table::new();
    let tcp = ServiceKey::tcp(sa("192.0.2.100:80"));
    t.insert_service(Service::new(tcp, Scheduler::Rr));
    t.insert_destination(&tcp, Destination::new(sa("192.0.2.11:80"), Forward::Route));
    t.insert_destination(
        &tcp,
        Destination {
            addr: sa("192.0.2.12:8080"),
            forward: Forward::Masq,
            weight: 3,
            upper_threshold: 100,
            lower_threshold: 60,
        },
    );
    let udp6 = ServiceKey::udp(sa("[2001:db8::100]:53"));
    let mut s = Service::new(udp6, Scheduler::Sh).persistent(600);
    s.netmask = Netmask::V6(64);
    s.flags.one_packet = true;
    s.flags.sched_fallback = true;
    s.flags.sched_port = true;
    t.insert_service(s);
    t.insert_destination(
        &udp6,
        Destination::new(sa("[2001:db8::11]:53"), Forward::Route).weight(0),
    );
    let fw = ServiceKey::fwmark(Family::Inet, 7);
    t.insert_service(Service::new(fw, Scheduler::Wlc).persistent(300));
    t.insert_destination(
        &fw,
        Destination::new(sa("192.0.2.11:0"), Forward::Route).weight(2),
    );
    t.insert_service(Service::new(
        ServiceKey::fwmark(Family::Inet6, 7),
        Scheduler::Lc,
    ));
    let sctp = ServiceKey::sctp(sa("192.0.2.100:5060"));
    let mut s = Service::new(sctp, Scheduler::Wrr).persistent(30);
    s.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
    t.insert_service(s);
    let gue = Encap::Gue {
        port: 6080,
        checksum: TunnelChecksum::Checksum,
    };
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.13:5060"), Forward::Tunnel(gue)),
    );
    let gre = Encap::Gre {
        checksum: TunnelChecksum::None,
    };
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.14:5060"), Forward::Tunnel(gre)),
    );
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.15:5060"), Forward::Tunnel(Encap::Ipip)).weight(4),
    );
    let sip = ServiceKey::udp(sa("192.0.2.100:5060"));
    let mut s = Service::new(sip, Scheduler::Mh).persistent(60);
    s.pe_name = Some("sip".into());
    s.flags.sched_port = true;
    t.insert_service(s);
    t
}

/// Splits the capture into its dumps: services, then one destinations dump per service in order.
fn dumps() -> Vec<Vec<codec::Message>> {
    let mut out = vec![Vec::new()];
    for r in codec::parse_replies(DUMP).unwrap() {
        match r {
            Reply::Message { msg, .. } => out.last_mut().unwrap().push(msg),
            Reply::Done { errno: 0, .. } => out.push(Vec::new()),
            other => panic!("unexpected reply in a dump: {other:?}"),
        }
    }
    assert!(
        out.pop().unwrap().is_empty(),
        "the capture ends with a DONE"
    );
    out
}

#[test]
fn captured_kernel_dump_decodes_to_the_programmed_table() {
    let dumps = dumps();
    let services: Vec<ServiceStatus> = dumps[0]
        .iter()
        .map(|m| codec::decode_service(m).unwrap())
        .collect();
    assert_eq!(services.len(), 6);
    assert_eq!(
        dumps.len(),
        1 + services.len(),
        "one destinations dump per service"
    );
    let mut t = Table::new();
    for (s, dests) in services.iter().zip(&dumps[1..]) {
        t.insert_service(s.service.clone());
        for m in dests {
            let d = codec::decode_destination(m, s.service.key.family()).unwrap();
            assert_eq!(
                (d.active_conns, d.inactive_conns, d.persistent_conns),
                (0, 0, 0)
            );
            assert_eq!(d.stats, Stats::default());
            t.insert_destination(&s.service.key, d.destination);
        }
    }
    assert_eq!(t, expected());
    assert_eq!(
        parse_ipvsadm_save(SAVED).unwrap(),
        without_thresholds(&expected()),
        "ipvsadm -Sn of the capture"
    );
}

#[test]
fn captured_services_carry_the_kernel_internal_hashed_flag_that_decoding_drops() {
    for m in &dumps()[0] {
        let top = m.attrs().get_attr_handle();
        let svc = top.get_nested_attributes::<u16>(attr::CMD_SERVICE).unwrap();
        let flags: [u8; 8] = svc.get_attr_payload_as(attr::SVC_FLAGS).unwrap();
        let bits = u32::from_ne_bytes(flags[..4].try_into().unwrap());
        assert_ne!(bits & ServiceFlags::HASHED, 0, "the kernel reports HASHED");
        assert_eq!(
            u32::from_ne_bytes(flags[4..].try_into().unwrap()),
            u32::MAX,
            "mask"
        );
        let decoded = codec::decode_service(m).unwrap().service;
        assert_eq!(decoded.flags.bits(), bits & !ServiceFlags::HASHED);
    }
}

#[test]
fn truncated_capture_is_an_error_not_a_panic() {
    for cut in [1, 7, 17, 100, DUMP.len() / 2] {
        assert!(
            codec::parse_replies(&DUMP[..DUMP.len() - cut]).is_err(),
            "cut {cut}"
        );
    }
    // Corrupt lengths inside attributes never panic either.
    let mut bad = DUMP.to_vec();
    for i in (20..bad.len()).step_by(97) {
        bad[i] = 0xff;
        if let Ok(replies) = codec::parse_replies(&bad) {
            for r in replies {
                if let Reply::Message { msg, .. } = r {
                    let _ = codec::decode_service(&msg);
                    let _ = codec::decode_destination(&msg, Family::Inet);
                }
            }
        }
    }
}
