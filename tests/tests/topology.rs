//! The lab topology on the host kernel: real namespaces, veth pairs, bridges and HTTP servers.

use tests::{Topology, namespaces, stdout_ok};

fn fetch(t: &Topology, node: &str, url: &str) -> String {
    stdout_ok(
        &format!("fetch {url} from {node}"),
        t.exec(
            node,
            &["busybox", "timeout", "5", "busybox", "wget", "-qO-", url],
        ),
    )
}

#[test]
fn client_reaches_both_real_servers_over_v4_and_v6() {
    let t = Topology::up(&[]);
    assert_eq!(fetch(&t, "c", "http://192.0.2.11/"), "r1");
    assert_eq!(fetch(&t, "c", "http://192.0.2.12/"), "r2");
    assert_eq!(fetch(&t, "c", "http://[2001:db8::11]/"), "r1");
    assert_eq!(fetch(&t, "c", "http://[2001:db8::12]/"), "r2");
    // The directors are on the same LAN.
    assert_eq!(fetch(&t, "d1", "http://192.0.2.12/"), "r2");
}

#[test]
fn real_servers_are_set_up_for_lvs_dr() {
    let t = Topology::up(&["--no-http"]);
    for r in ["r1", "r2"] {
        let lo = stdout_ok(
            "ip addr",
            t.exec(r, &["ip", "-o", "addr", "show", "dev", "lo"]),
        );
        assert!(lo.contains("192.0.2.100/32"), "{r} lo: {lo}");
        assert!(lo.contains("2001:db8::100/128"), "{r} lo: {lo}");
        for (key, want) in [("arp_ignore", "1"), ("arp_announce", "2")] {
            for ifc in ["all", "eth0"] {
                let v = stdout_ok(
                    "sysctl",
                    t.exec(r, &["cat", &format!("/proc/sys/net/ipv4/conf/{ifc}/{key}")]),
                );
                assert_eq!(v, want, "{r} {ifc} {key}");
            }
        }
    }
    // No HTTP server was asked for: the port is closed.
    let out = t.exec("c", &["bash", "-c", "echo > /dev/tcp/192.0.2.11/80"]);
    assert!(!out.status.success(), "port 80 open on r1 with --no-http");
}

#[test]
fn heartbeat_link_joins_only_the_directors() {
    let t = Topology::up(&["--hb", "--no-http"]);
    let d1 = stdout_ok(
        "ip addr",
        t.exec("d1", &["ip", "-o", "addr", "show", "dev", "eth1"]),
    );
    assert!(d1.contains("198.18.0.1/24"), "{d1}");
    // Connection refused (not a timeout) proves the packets crossed the hb bridge and came back.
    let probe = "{ echo > /dev/tcp/198.18.0.2/9; } 2>&1";
    let out = stdout_ok(
        "probe",
        t.exec("d1", &["bash", "-c", &format!("{probe} || true")]),
    );
    assert!(
        out.contains("Connection refused"),
        "d1 -> d2 over hb: {out}"
    );
    let out = t.exec("r1", &["ip", "link", "show", "eth1"]);
    assert!(!out.status.success(), "r1 must have no heartbeat link");
}

#[test]
fn down_removes_every_namespace_and_server() {
    let t = Topology::up(&["--hb"]);
    let prefix = t.prefix().to_owned();
    let mine = || {
        namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .count()
    };
    assert_eq!(mine(), 6, "d1 d2 r1 r2 c sw");
    let pids = stdout_ok(
        "ip netns pids",
        std::process::Command::new("ip")
            .args(["netns", "pids", &t.netns("r1")])
            .output()
            .unwrap(),
    );
    assert!(!pids.is_empty(), "r1 runs its HTTP server");
    t.down().expect("topo down");
    assert_eq!(mine(), 0);
    for pid in pids.split_whitespace() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true),
            "HTTP server {pid} survived topo down"
        );
    }
}

#[test]
fn netem_on_a_kernel_without_it_says_where_to_run() {
    let t = Topology::up(&["--no-http"]);
    let out = t.script(&["netem", "c", "eth0", "loss", "30%"]);
    if out.status.success() {
        // This kernel has netem after all: it must then really be installed on the link.
        let q = stdout_ok("tc", t.exec("c", &["tc", "qdisc", "show", "dev", "eth0"]));
        assert!(q.contains("netem"), "{q}");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no netem qdisc") && err.contains("tests/lab run"),
            "{err}"
        );
    }
}
