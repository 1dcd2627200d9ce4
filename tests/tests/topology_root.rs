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

/// Whether the running kernel has the netem qdisc, read from its own build configuration
/// (`/proc/config.gz`, else `/boot/config-RELEASE`) and, for a module, its module tree: the witness
/// that decides what `topo.sh netem` must do here, independent of what it does.
fn kernel_has_netem() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("read /proc/sys/kernel/osrelease")
        .trim()
        .to_owned();
    let config = if std::path::Path::new("/proc/config.gz").exists() {
        stdout_ok(
            "zcat /proc/config.gz",
            std::process::Command::new("zcat")
                .arg("/proc/config.gz")
                .output()
                .expect("run zcat (gzip)"),
        )
    } else {
        let boot = format!("/boot/config-{release}");
        std::fs::read_to_string(&boot).unwrap_or_else(|e| {
            panic!("cannot tell whether this kernel has netem: no /proc/config.gz, and {boot}: {e}")
        })
    };
    match config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_NET_SCH_NETEM="))
    {
        Some("y") => true,
        Some("m") => {
            std::path::Path::new("/sys/module/sch_netem").exists()
                || stdout_ok(
                    "find sch_netem",
                    std::process::Command::new("find")
                        .args([&format!("/lib/modules/{release}"), "-name", "sch_netem.ko*"])
                        .output()
                        .expect("run find"),
                )
                .contains("sch_netem")
        }
        _ => false,
    }
}

/// The host kernel here has no netem (the lab VM's has: `tests/scenarios/lab-basics.sh` puts 100 %
/// loss on a link, sees the fetch fail and heal): `topo.sh netem` must then refuse in words that
/// say where to run, and install nothing. On a kernel that has netem it must really drop packets.
#[test]
fn netem_drops_packets_where_the_kernel_has_it_and_is_refused_in_words_where_not() {
    let t = Topology::up(&[]);
    let out = t.script(&["netem", "r1", "eth0", "loss", "100%"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let qdisc = || stdout_ok("tc", t.exec("r1", &["tc", "qdisc", "show", "dev", "eth0"]));
    if kernel_has_netem() {
        assert!(out.status.success(), "netem on a kernel with netem: {err}");
        let q = qdisc();
        assert!(q.contains("netem") && q.contains("loss 100%"), "{q}");
        let lost = t.exec(
            "c",
            &[
                "busybox",
                "timeout",
                "3",
                "busybox",
                "wget",
                "-qO-",
                "http://192.0.2.11/",
            ],
        );
        assert!(!lost.status.success(), "fetch from r1 through 100 % loss");
        stdout_ok(
            "tc qdisc del",
            t.exec("r1", &["tc", "qdisc", "del", "dev", "eth0", "root"]),
        );
        assert_eq!(fetch(&t, "c", "http://192.0.2.11/"), "r1");
    } else {
        assert!(
            !out.status.success(),
            "topo.sh netem succeeded on a kernel without netem: {err}"
        );
        assert_eq!(
            err,
            "topo: this kernel has no netem qdisc (sch_netem); run the scenario in the lab VM (tests/lab run)\n"
        );
        let q = qdisc();
        assert!(!q.contains("netem"), "{q}");
        // The link is untouched.
        assert_eq!(fetch(&t, "c", "http://192.0.2.11/"), "r1");
    }
}
