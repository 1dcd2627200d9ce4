//! The ping probe against loopback, IPv4 and IPv6. ICMP sockets need root (or a
//! `net.ipv4.ping_group_range` holding the caller's group, which many hosts do not set), so this is a
//! `*_root` target: `cargo test --workspace --test '*_root'` as root (part of `tests/lab all`).

use common::config;
use common::probe::{Probe, Prober, Spec};

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("an effective uid in /proc/self/status")
}

#[tokio::test]
async fn ping_loopback_v4_and_v6() {
    if euid() != 0 {
        panic!(
            "needs root (ICMP sockets): run as root `cargo test --workspace --test '*_root'` (part of `tests/lab all`)"
        );
    }
    let spec = |count| {
        let mut s: Spec = config::parse_str("p.toml", "kind = \"ping\"\n").unwrap();
        if let common::probe::Check::Ping(p) = &mut s.check {
            p.count = count;
        }
        s
    };
    let prober = Prober::new();
    let o = prober
        .run(&Probe::new("127.0.0.1".parse().unwrap(), spec(1)))
        .await;
    assert!(o.up, "{}", o.reason);
    assert!(o.reason.starts_with("echo reply seq=0"), "{}", o.reason);
    let o = prober
        .run(&Probe::new("::1".parse().unwrap(), spec(3)))
        .await;
    assert!(o.up, "{}", o.reason);
    assert!(o.reason.starts_with("echo reply seq="), "{}", o.reason);
}
