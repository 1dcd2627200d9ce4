//! `fakeip` on real veth links (issue 4), on the host kernel in network namespaces.
//!
//! Three hosts of the lab topology on the bridge `lan`: A = `d1` (holds the VIP first),
//! B = `d2` (takes it over with `fakeip`), observer O = `c`, whose neighbour cache is the judge.
//! Captures are made with tcpdump on O and checked byte by byte at fixed offsets.
//!
//! Linux neighbour `locktime` (`net.ipv4.neigh.*.locktime`, 1 s by default): an ARP packet that
//! would change an entry's link-layer address is ignored when it arrives within locktime of the
//! entry's last update — *unless* it is a gratuitous ARP (`net/ipv4/arp.c: arp_process`,
//! `override = time_after(jiffies, n->updated + locktime) || is_garp`). The tests show both sides
//! explicitly instead of waiting the window out.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::net::frame::{ArpFrame, ArpOp, MacAddr};
use tests::wire::{Capture, Packet, in_netns, send_raw, write_pcap};
use tests::{Topology, neigh, stdout_ok, tool, touch};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";

fn fakeip_cmd(t: &Topology, node: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &t.netns(node)])
        .arg(tool("fakeip"))
        .args(args);
    c
}

fn fakeip(t: &Topology, node: &str, args: &[&str]) -> Output {
    fakeip_cmd(t, node, args).output().expect("run fakeip")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mac(t: &Topology, node: &str) -> MacAddr {
    stdout_ok(
        "read MAC",
        t.exec(node, &["cat", "/sys/class/net/eth0/address"]),
    )
    .parse()
    .expect("a MAC address")
}

fn addrs(t: &Topology, node: &str) -> String {
    stdout_ok(
        "ip addr",
        t.exec(node, &["ip", "-o", "addr", "show", "dev", "eth0"]),
    )
}

/// Starts `fakeip ARGS` on `node`, polls O's entry for `ip` until it names `want`; returns when
/// that happened (None: not while fakeip ran) and fakeip's output.
fn takeover(
    t: &Topology,
    node: &str,
    args: &[&str],
    ip: &str,
    want: MacAddr,
) -> (Option<Duration>, Output) {
    let start = Instant::now();
    let mut child: Child = fakeip_cmd(t, node, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fakeip");
    let mut moved = None;
    loop {
        let running = child.try_wait().expect("try_wait").is_none();
        if neigh(t, "c", ip).is_some_and(|(m, _)| m == want) {
            // Only counts if fakeip was still sending its burst when we looked.
            if running {
                moved = Some(start.elapsed());
            }
            break;
        }
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait for fakeip");
    (moved, out)
}

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// The ARP frames in `pkts` whose sender IP is `ip` and sender MAC `from`.
fn arp_from(pkts: &[Packet], ip: &str, from: MacAddr) -> Vec<Packet> {
    pkts.iter()
        .filter(|p| {
            p.data.len() >= 42
                && p.data[12..14] == [0x08, 0x06]
                && p.data[22..28] == from.0
                && p.data[28..32] == ip4(ip)
        })
        .cloned()
        .collect()
}

/// Checks that `frames` are `pairs` (request, reply) gratuitous ARP pairs for `ip` from `mac`,
/// field by field, each pair at least `interval` after the previous one.
fn check_garp_pairs(frames: &[Packet], pairs: usize, ip: &str, mac: MacAddr, interval: Duration) {
    assert_eq!(frames.len(), 2 * pairs, "frames: {frames:?}");
    for (i, p) in frames.iter().enumerate() {
        let d = &p.data;
        let request = i % 2 == 0;
        assert_eq!(
            d[0..6],
            [0xff; 6],
            "frame {i}: Ethernet destination is broadcast"
        );
        assert_eq!(d[6..12], mac.0, "frame {i}: Ethernet source is B's MAC");
        assert_eq!(d[12..14], [0x08, 0x06], "frame {i}: EtherType ARP");
        assert_eq!(
            d[14..20],
            [0, 1, 0x08, 0x00, 6, 4],
            "frame {i}: Ethernet/IPv4 ARP"
        );
        let op = if request { [0, 1] } else { [0, 2] };
        assert_eq!(d[20..22], op, "frame {i}: request then reply");
        assert_eq!(d[22..28], mac.0, "frame {i}: sender MAC");
        assert_eq!(d[28..32], ip4(ip), "frame {i}: sender IP = VIP");
        let tha = if request { [0; 6] } else { mac.0 };
        assert_eq!(
            d[32..38],
            tha,
            "frame {i}: target MAC (request: zero, reply: own)"
        );
        assert_eq!(d[38..42], ip4(ip), "frame {i}: target IP = VIP");
    }
    // Pair i is due `i * interval` after the first (the schedule is anchored at the start, so a
    // late wake-up is not carried over); it is never early (a little capture-clock slack).
    for (i, pair) in frames.chunks(2).enumerate() {
        let at = pair[0].ts.saturating_sub(frames[0].ts);
        let due = interval * i as u32;
        assert!(
            at + Duration::from_millis(5) >= due,
            "pair {i} at {at:?} after the first, due at {due:?}"
        );
    }
}

#[test]
fn ipv4_takeover_moves_the_observer_within_the_first_burst_with_exact_request_reply_pairs() {
    let t = Topology::up(&["--no-http"]);
    let (a, b) = (mac(&t, "d1"), mac(&t, "d2"));
    let out = fakeip(
        &t,
        "d1",
        &["up", "192.0.2.100/24", "dev", "eth0", "--count", "0"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    touch(&t, "c", VIP4);
    assert_eq!(
        neigh(&t, "c", VIP4).map(|n| n.0),
        Some(a),
        "O learnt A's MAC by traffic"
    );

    let cap = Capture::start(&t.netns("c"), "eth0");
    // The entry was just updated by real traffic, well within locktime: a gratuitous ARP is
    // honoured anyway (is_garp), so the first announcement already moves it.
    touch(&t, "c", VIP4);
    let (moved, out) = takeover(&t, "d2", &["up", "192.0.2.100/24", "dev", "eth0"], VIP4, b);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("192.0.2.100/24 added to eth0, announced 5 times"),
        "{}",
        text(&out)
    );
    assert!(
        moved.is_some(),
        "O's entry did not move to B's MAC during the burst"
    );
    cap.wait_until("B's 5 ARP pairs at O", |pk| {
        arp_from(pk, VIP4, b).len() >= 10
    });
    let frames = arp_from(&cap.stop(), VIP4, b);
    check_garp_pairs(&frames, 5, VIP4, b, Duration::from_millis(200));
    assert!(addrs(&t, "d2").contains("192.0.2.100/24"));

    // Idempotent: a second `up` says so, changes nothing, still announces (here twice).
    let cap = Capture::start(&t.netns("c"), "eth0");
    let out = fakeip(
        &t,
        "d2",
        &[
            "up",
            "192.0.2.100/24",
            "dev",
            "eth0",
            "--count",
            "2",
            "--interval",
            "50ms",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already on eth0, announced 2 times"),
        "{}",
        text(&out)
    );
    cap.wait_until("B's 2 ARP pairs at O", |pk| {
        arp_from(pk, VIP4, b).len() >= 4
    });
    let pk = cap.stop();
    check_garp_pairs(
        &arp_from(&pk, VIP4, b),
        2,
        VIP4,
        b,
        Duration::from_millis(50),
    );
    assert_eq!(addrs(&t, "d2").matches("192.0.2.100/24").count(), 1);
}

#[test]
fn locktime_ignores_a_plain_reply_from_the_old_holder_until_it_expires() {
    let t = Topology::up(&["--no-http"]);
    let (a, b) = (mac(&t, "d1"), mac(&t, "d2"));
    // A 2 s locktime makes the window wide enough to act in deterministically.
    stdout_ok(
        "sysctl",
        t.exec("c", &["sysctl", "-qw", "net.ipv4.neigh.eth0.locktime=200"]),
    );
    let out = fakeip(
        &t,
        "d1",
        &["up", "192.0.2.100/24", "dev", "eth0", "--count", "0"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    touch(&t, "c", VIP4);
    assert_eq!(neigh(&t, "c", VIP4).map(|n| n.0), Some(a));

    // B's single announcement lands inside the locktime of the entry's update by A's traffic and
    // still wins: gratuitous ARP overrides locktime.
    let out = fakeip(
        &t,
        "d2",
        &["up", "192.0.2.100/24", "dev", "eth0", "--count", "1"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let took = Instant::now();
    assert_eq!(neigh(&t, "c", VIP4).map(|n| n.0), Some(b));

    // The old holder A still answers for the VIP (it never released it): a plain ARP reply to O.
    let o_mac = mac(&t, "c");
    let stale = ArpFrame {
        eth_dst: o_mac,
        eth_src: a,
        op: ArpOp::Reply,
        sender_mac: a,
        sender_ip: VIP4.parse().unwrap(),
        target_mac: o_mac,
        target_ip: "192.0.2.51".parse().unwrap(),
    }
    .to_bytes();
    let send_from_a = || in_netns(&t.netns("d1"), || send_raw("eth0", &stale));
    // A sends its plain reply again and again until O's entry names A. Within locktime every one is
    // ignored; the first honoured is past it: the entry moves back, but not before ~2 s. (What
    // failover must prevent by releasing the VIP on the old node, or `hold --refresh`.)
    let deadline = Duration::from_secs(10);
    send_from_a();
    assert!(
        took.elapsed() < Duration::from_millis(1500),
        "the test was too slow to send within locktime ({:?})",
        took.elapsed()
    );
    let back = loop {
        if neigh(&t, "c", VIP4).is_some_and(|(m, _)| m == a) {
            break took.elapsed();
        }
        assert!(
            took.elapsed() < deadline,
            "waited {deadline:?} for the old holder's plain reply to win past locktime"
        );
        std::thread::sleep(Duration::from_millis(20));
        send_from_a();
    };
    // B's update happened before `took`, by at most the time fakeip took to exit: some slack.
    assert!(
        back >= Duration::from_millis(1500),
        "the old holder's plain reply won {back:?} after B's announcement, within the 2 s locktime"
    );
}

#[test]
fn ipv6_takeover_moves_the_observer_neighbour_cache_with_unsolicited_nas() {
    let t = Topology::up(&["--no-http"]);
    tests::require_tool("tcpdump", "tcpdump");
    let (a, b) = (mac(&t, "d1"), mac(&t, "d2"));
    let out = fakeip(
        &t,
        "d1",
        &["up", "2001:db8::100/64", "dev", "eth0", "--count", "0"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    touch(&t, "c", VIP6);
    assert_eq!(
        neigh(&t, "c", VIP6).map(|n| n.0),
        Some(a),
        "O learnt A's MAC by traffic"
    );
    // Added without DAD: usable at once, not tentative.
    let line = addrs(&t, "d1")
        .lines()
        .find(|l| l.contains("2001:db8::100/64"))
        .map(str::to_owned)
        .expect("the VIP on A");
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{line}"
    );

    let cap = Capture::start(&t.netns("c"), "eth0");
    let (moved, out) = takeover(
        &t,
        "d2",
        &["up", "2001:db8::100/64", "dev", "eth0"],
        VIP6,
        b,
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        moved.is_some(),
        "O's IPv6 entry did not move to B's MAC during the burst"
    );
    let is_na_from_b = |p: &Packet| {
        p.data.len() > 54
            && p.data[6..12] == b.0
            && p.data[12..14] == [0x86, 0xdd]
            && p.data[54] == 136
    };
    cap.wait_until("B's 5 unsolicited NAs at O", |pk| {
        pk.iter().filter(|p| is_na_from_b(p)).count() >= 5
    });
    let vip: std::net::Ipv6Addr = VIP6.parse().unwrap();
    let nas: Vec<Packet> = cap.stop().into_iter().filter(is_na_from_b).collect();
    assert_eq!(nas.len(), 5, "{nas:?}");
    for p in &nas {
        let d = &p.data;
        assert_eq!(d.len(), 86);
        assert_eq!(d[0..6], [0x33, 0x33, 0, 0, 0, 1], "to the all-nodes MAC");
        assert_eq!(d[12..14], [0x86, 0xdd]);
        assert_eq!(
            d[18..22],
            [0, 32, 58, 255],
            "payload 32, ICMPv6, hop limit 255"
        );
        assert_eq!(d[22..38], vip.octets(), "from the VIP");
        assert_eq!(
            d[38..54],
            "ff02::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(d[54..56], [136, 0], "Neighbor Advertisement");
        assert_eq!(d[58], 0x20, "Override only (not Router, not Solicited)");
        assert_eq!(d[62..78], vip.octets(), "target = VIP");
        assert_eq!(d[78..80], [2, 1], "Target Link-Layer Address option");
        assert_eq!(d[80..86], b.0);
    }
    // tcpdump verifies each checksum independently.
    let path = std::env::temp_dir().join(format!("fakeip-na-{}.pcap", std::process::id()));
    write_pcap(&path, &nas);
    let dump = Command::new("tcpdump")
        .args(["-nn", "-vv", "-r"])
        .arg(&path)
        .output()
        .expect("tcpdump -r");
    let _ = std::fs::remove_file(&path);
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert_eq!(dump.matches("[icmp6 sum ok]").count(), 5, "{dump}");
    assert_eq!(dump.matches("Flags [override]").count(), 5, "{dump}");
}

#[test]
fn status_answers_0_held_3_not_2_usage_and_down_removes() {
    let t = Topology::up(&["--no-http"]);
    let st = |args: &[&str]| fakeip(&t, "d2", &[&["status"], args].concat());
    let out = st(&[VIP4, "dev", "eth0"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.0.2.100 is not on eth0"
    );

    let out = fakeip(
        &t,
        "d2",
        &[
            "up",
            "192.0.2.100/24",
            "dev",
            "eth0",
            "--label",
            "vip",
            "--count",
            "0",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        addrs(&t, "d2").contains("192.0.2.100/24 brd 192.0.2.255 scope global secondary eth0:vip"),
        "{}",
        addrs(&t, "d2")
    );
    let out = st(&[VIP4, "dev", "eth0", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"address": VIP4, "interface": "eth0", "held": true, "prefix_len": 24, "label": "eth0:vip"})
    );
    for bad in [
        &[VIP4, "eth0"][..],
        &[VIP4, "dev"],
        &["nonsense", "dev", "eth0"],
        &[],
    ] {
        let out = st(bad);
        assert_eq!(code(&out), 2, "{bad:?}: {}", text(&out));
    }
    let out = st(&[VIP4, "dev", "eth9"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interface eth9: no such interface"));

    let out = fakeip(&t, "d2", &["down", "192.0.2.100/24", "dev", "eth0"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!addrs(&t, "d2").contains("192.0.2.100"));
    let out = fakeip(&t, "d2", &["down", VIP4, "dev", "eth0"]);
    assert_eq!(code(&out), 0, "absent is not an error: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.0.2.100 was not on eth0"
    );
    assert_eq!(code(&st(&[VIP4, "dev", "eth0"])), 3);
}

#[test]
fn hold_is_ready_after_the_first_burst_reannounces_on_hup_and_cleans_up_on_term() {
    let t = Topology::up(&["--no-http"]);
    let b = mac(&t, "d2");
    let sock_path = std::env::temp_dir().join(format!("fakeip-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock_path);
    let notify = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let cap = Capture::start(&t.netns("c"), "eth0");
    let start = Instant::now();
    let mut child = fakeip_cmd(
        &t,
        "d2",
        &["hold", "192.0.2.100/24", "2001:db8::100/64", "dev", "eth0"],
    )
    .env("NOTIFY_SOCKET", &sock_path)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn fakeip hold");
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within 10 s");
    assert_eq!(&buf[..n], b"READY=1\n");
    // READY only once the burst (0..800 ms) is out.
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    let held = addrs(&t, "d2");
    assert!(
        held.contains("192.0.2.100/24") && held.contains("2001:db8::100/64"),
        "{held}"
    );

    // SIGHUP: a second burst.
    // SAFETY: signalling the `ip netns exec` process this test started, which execs fakeip.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    cap.wait_until("the second burst after SIGHUP", |pk| {
        arp_from(pk, VIP4, b).len() >= 20
    });
    let frames = arp_from(&cap.stop(), VIP4, b);
    assert_eq!(
        frames.len(),
        20,
        "5 pairs at start, 5 after SIGHUP: {frames:?}"
    );

    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for hold");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let left = addrs(&t, "d2");
    assert!(
        !left.contains("192.0.2.100") && !left.contains("2001:db8::100"),
        "{left}"
    );
    assert!(err.contains("releasing"), "{err}");
    let _ = std::fs::remove_file(&sock_path);
}

/// The ARP frames in `pkts` from MAC `from` whose sender IP is 0.0.0.0 (probes, RFC 5227 §2.1.1).
fn arp_probes(pkts: &[Packet], from: MacAddr) -> Vec<Packet> {
    pkts.iter()
        .filter(|p| {
            p.data.len() >= 42
                && p.data[6..12] == from.0
                && p.data[12..14] == [0x08, 0x06]
                && p.data[28..32] == [0, 0, 0, 0]
        })
        .cloned()
        .collect()
}

/// Checks that `frames` are exactly `n` RFC 5227 §2.1.1 ARP probes for `ip` from `mac`, field by
/// field, probe i at least `i * spacing` after the first (they are spread over the timeout).
fn check_probes(frames: &[Packet], n: usize, ip: &str, mac: MacAddr, spacing: Duration) {
    assert_eq!(frames.len(), n, "probes: {frames:?}");
    for (i, p) in frames.iter().enumerate() {
        let d = &p.data;
        assert_eq!(
            d[0..6],
            [0xff; 6],
            "probe {i}: Ethernet destination is broadcast"
        );
        assert_eq!(d[6..12], mac.0, "probe {i}: Ethernet source is B's MAC");
        assert_eq!(d[12..14], [0x08, 0x06], "probe {i}: EtherType ARP");
        assert_eq!(
            d[14..20],
            [0, 1, 0x08, 0x00, 6, 4],
            "probe {i}: Ethernet/IPv4 ARP"
        );
        assert_eq!(d[20..22], [0, 1], "probe {i}: a request");
        assert_eq!(d[22..28], mac.0, "probe {i}: sender MAC = B's");
        assert_eq!(d[28..32], [0, 0, 0, 0], "probe {i}: sender IP 0.0.0.0");
        assert_eq!(d[32..38], [0; 6], "probe {i}: target MAC zero");
        assert_eq!(
            d[38..42],
            ip4(ip),
            "probe {i}: target IP = the address probed"
        );
        let at = p.ts.saturating_sub(frames[0].ts);
        assert!(
            at + Duration::from_millis(5) >= spacing * i as u32,
            "probe {i} at {at:?} after the first"
        );
    }
}

#[test]
fn probe_sees_a_holder_and_a_free_address_and_check_conflict_refuses() {
    let t = Topology::up(&["--no-http"]);
    let a = mac(&t, "d1");
    let out = fakeip(
        &t,
        "d1",
        &["up", "192.0.2.100/24", "dev", "eth0", "--count", "0"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));

    let cap = Capture::start(&t.netns("c"), "eth0");
    let out = fakeip(&t, "d2", &["probe", VIP4, "dev", "eth0"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("192.0.2.100 is in use by {a}")
    );
    // The probe on the wire: exactly one (A answers it at once), RFC 5227 §2.1.1.
    let b = mac(&t, "d2");
    cap.wait_until("B's ARP probe at O", |pk| !arp_probes(pk, b).is_empty());
    check_probes(&arp_probes(&cap.stop(), b), 1, VIP4, b, Duration::ZERO);
    let out = fakeip(&t, "d2", &["probe", "192.0.2.1", "dev", "eth0"]);
    assert_eq!(code(&out), 1, "A's own address: {}", text(&out));
    // Nobody answers for a free address: all 3 probes (PROBE_NUM) go out, spread over the timeout.
    let cap = Capture::start(&t.netns("c"), "eth0");
    let out = fakeip(
        &t,
        "d2",
        &["probe", "192.0.2.77", "dev", "eth0", "--timeout", "300ms"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.0.2.77 is free on eth0"
    );
    cap.wait_until("B's 3 ARP probes at O", |pk| arp_probes(pk, b).len() >= 3);
    check_probes(
        &arp_probes(&cap.stop(), b),
        3,
        "192.0.2.77",
        b,
        Duration::from_millis(100),
    );

    let out = fakeip(
        &t,
        "d2",
        &["up", "192.0.2.100/24", "dev", "eth0", "--check-conflict"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("192.0.2.100 is in use on eth0 by {a}"))
    );
    assert!(!addrs(&t, "d2").contains("192.0.2.100"), "nothing taken");
    let out = fakeip(
        &t,
        "d2",
        &[
            "up",
            "192.0.2.100/24",
            "dev",
            "eth0",
            "--check-conflict",
            "--force",
            "--count",
            "1",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("forced: it was in use by {a}"))
    );
}

#[test]
fn errors_are_clear_and_change_nothing() {
    let t = Topology::up(&["--no-http"]);
    stdout_ok(
        "add a link that is down",
        t.exec(
            "d2",
            &[
                "ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1",
            ],
        ),
    );
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["up", "192.0.2.100/24", "dev", "eth9"],
            2,
            "interface eth9: no such interface",
        ),
        (
            &["up", "192.0.2.100/24", "dev", "dummy0"],
            111,
            "interface dummy0 is down: bring it up first",
        ),
        (
            &["up", "2001:db8::100/64", "dev", "eth0", "--label", "vip"],
            2,
            "IPv6 addresses have no labels",
        ),
        (
            &["probe", "2001:db8::1", "dev", "eth0"],
            2,
            "works for IPv4 only",
        ),
        (
            &["up", "192.0.2.100", "dev", "eth0"],
            2,
            "192.0.2.100 needs a prefix length, e.g. 192.0.2.100/24",
        ),
        (
            &["announce", "192.0.2.100", "dev", "lo"],
            2,
            "interface lo is not an Ethernet interface",
        ),
    ];
    for (args, want, msg) in cases {
        let out = fakeip(&t, "d2", args);
        assert_eq!(code(&out), want, "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(msg),
            "{args:?}: {}",
            text(&out)
        );
    }
    // Without CAP_NET_ADMIN and CAP_NET_RAW: a clear message, exit 125, nothing added.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.netns("d2"),
            "setpriv",
            "--bounding-set",
            "-net_admin,-net_raw",
            "--inh-caps",
            "-all",
        ])
        .arg(tool("fakeip"))
        .args(["up", "192.0.2.100/24", "dev", "eth0"])
        .output()
        .expect("run setpriv (util-linux)");
    assert_eq!(code(&out), 125, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs CAP_NET_ADMIN and CAP_NET_RAW"),
        "{}",
        text(&out)
    );
    assert!(!addrs(&t, "d2").contains("192.0.2.100"));
    // status needs no privilege.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.netns("d2"),
            "setpriv",
            "--bounding-set",
            "-net_admin,-net_raw",
            "--inh-caps",
            "-all",
        ])
        .arg(tool("fakeip"))
        .args(["status", "192.0.2.2", "dev", "eth0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out));
}
