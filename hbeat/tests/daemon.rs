//! `hbeat run` as a real process: two nodes on loopback UDP with the timings, a
//! heartbeat-style script resource that records every start and stop. Failover after kill -9,
//! no failback without auto_failback, standby hands over with the handshake, a graceful stop lets
//! the peer take over at once, status shows the letters, and a stranger's datagram and a key
//! holder that is not a peer are counted, never acted on.

use std::net::UdpSocket;
use std::path::Path;

use nix::sys::signal::Signal;

mod support;
use support::{Site, wait_for};

/// Two free UDP ports on 127.0.0.1.
fn free_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

#[test]
fn failover_standby_and_leave_between_two_real_processes() {
    let site = Site::new("daemon");
    let (pa, pb) = free_ports();
    let udp = |mine: u16, theirs: u16| {
        vec![format!(
            "udp = {{ bind = \"127.0.0.1:{mine}\", peer = \"127.0.0.1:{theirs}\" }}"
        )]
    };
    let web = site.group("web", &["a", "b"]);
    let mut a = site.node("a", &["b"], "", &udp(pa, pb), &web);
    let mut b = site.node("b", &["a"], "", &udp(pb, pa), &web);
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(|p| p.as_path()).collect();
    let events = || site.events();
    a.start();
    b.start();

    // Both up: web on its preferred node a, and only there.
    wait_for("a starts web", &logs, || events() == ["a start web"]);
    wait_for("b sees a holding web", &logs, || {
        b.try_status()
            .is_some_and(|s| s.groups[0].holder.as_deref() == Some("a"))
    });
    let s = a.status();
    assert_eq!(s.pair, "(N,N)", "{s:?}");
    assert!(s.peers[0].up, "{s:?}");

    // kill -9 of the active node: b takes web over after deadtime.
    a.kill();
    wait_for("b starts web after a died", &logs, || {
        events() == ["a start web", "b start web"]
    });
    let s = b.status();
    assert_eq!(s.state, 'T', "{s:?}");
    assert_eq!(s.pair, "(D,T)", "{s:?}");
    assert!(!s.peers[0].up, "{s:?}");

    // a returns (its script's state is gone with it): without auto_failback web stays on b.
    let _ = std::fs::remove_file(site.dir.join("held.a.web"));
    a.start();
    wait_for("a sees b holding web", &logs, || {
        a.try_status()
            .is_some_and(|s| s.groups[0].holder.as_deref() == Some("b"))
    });
    wait_for("the pair settles at (N,N)", &logs, || {
        b.status().pair == "(N,N)"
    });
    assert_eq!(events().len(), 2, "nothing moved: {:?}", events());

    // standby on b: the handshake, b stops before a starts.
    b.ctl("standby");
    wait_for("web back on a after b's standby", &logs, || {
        events().len() == 4
    });
    assert_eq!(events()[2..], ["b stop web", "a start web"]);

    // A graceful stop of a: it stops web, says leave, and b takes over without waiting deadtime
    // (the order of the events shows it; the time is the benchmark's business).
    a.signal(Signal::SIGTERM);
    wait_for("b starts web after a left", &logs, || events().len() == 6);
    assert_eq!(events()[4..], ["a stop web", "b start web"]);
    assert!(a.wait_exit().success(), "a's exit after TERM");
    let a_log = a.log_text();
    assert!(a_log.contains("stopped"), "{a_log}");

    // A stranger's datagram on b's port is dropped and counted, never acted on.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .send_to(b"hB\x01\x01garbage that is not a frame", ("127.0.0.1", pb))
        .unwrap();
    wait_for("the stranger's datagram counted", &logs, || {
        b.status().links[0].rejected_source == 1
    });
    assert_eq!(b.status().held, ["web"]);
    // A key holder that is not one of b's peers, from a's address (a has stopped): authenticated,
    // counted as an unknown sender, never acted on.
    let keys = hbeat::keys::KeyRing::load(&site.key_file).unwrap();
    let intruder = hbeat::msg::Message {
        cluster: "t".into(),
        sender: "c".into(),
        incarnation: 1,
        seq: 1,
        kind: hbeat::msg::Kind::TakeoverRequest,
        state: hbeat::msg::NodeState::Recover,
        held: vec![],
        groups_hash: 0,
        link: 0,
        to: Some("b".into()),
        groups: vec!["web".into()],
    };
    let from_a = UdpSocket::bind(("127.0.0.1", pa)).unwrap();
    from_a
        .send_to(
            &hbeat::frame::encode(&intruder, &keys).unwrap(),
            ("127.0.0.1", pb),
        )
        .unwrap();
    wait_for("the unknown sender counted", &logs, || {
        b.status()
            .rejected
            .contains(&("unknown_sender".to_string(), 1))
    });
    assert_eq!(b.status().held, ["web"]);

    b.signal(Signal::SIGTERM);
    assert!(b.wait_exit().success());
    assert_eq!(events().last().unwrap(), "b stop web");
}
