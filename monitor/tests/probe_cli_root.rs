//! `monitor probe` where nothing answers: in a fresh network namespace (`unshare -n`, needs root) a veth
//! link with no peer address swallows packets, so "no answer" is tested without sending anything off the
//! machine. A `*_root` target: `cargo test --workspace --test '*_root'` as root (`tests/lab all`).

use std::process::{Command, Output};

mod cli_util;
use cli_util::{line, stderr, stdout};

const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

/// Runs `script` in a new network namespace with `lo` up and a veth pair `d0`/`d1`, d0 holding
/// 192.0.2.1/24 and 2001:db8::1/64, d1 no address: 192.0.2.99 is routed to d0 and never answers
/// (its ARP/ND goes unanswered). Needs root.
fn in_netns(script: &str) -> Output {
    if euid() != 0 {
        panic!(
            "needs root (it makes a network namespace with unshare -n): run as root \
             `cargo test --workspace --test '*_root'` (part of `tests/lab all`)"
        );
    }
    let setup = "ip link set lo up && ip link add d0 type veth peer name d1 && ip link set d1 up && ip addr add 192.0.2.1/24 dev d0 \
                 && ip -6 addr add 2001:db8::1/64 dev d0 nodad && ip link set d0 up";
    Command::new("unshare")
        .args(["-n", "sh", "-c", &format!("{setup} && {script}")])
        .env("MONITOR", MONITOR)
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are needed")
}

fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap()
}

#[test]
fn no_answer_is_a_timeout_in_a_namespace() {
    let o = in_netns(
        "\"$MONITOR\" probe ping 192.0.2.99 2001:db8::99 --timeout 500ms --count 2; echo rc=$?; \
         \"$MONITOR\" probe tcp 192.0.2.99:80 --timeout 500ms; echo rc=$?; \
         \"$MONITOR\" probe http 192.0.2.99 --timeout 500ms; echo rc=$?; \
         \"$MONITOR\" probe ping 192.0.2.1; echo rc=$?",
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}{}", stderr(&o));
    line(
        lines[0],
        "down",
        "192.0.2.99",
        "ping",
        "no echo reply (2 sent)",
    );
    line(
        lines[1],
        "down",
        "2001:db8::99",
        "ping",
        "no echo reply (2 sent)",
    );
    assert_eq!(lines[2], "rc=1");
    line(
        lines[3],
        "down",
        "192.0.2.99:80",
        "tcp",
        "timeout after 500ms",
    );
    assert_eq!(lines[4], "rc=1");
    line(
        lines[5],
        "down",
        "192.0.2.99:80",
        "http",
        "timeout after 500ms",
    );
    assert_eq!(lines[6], "rc=1");
    line(lines[7], "up", "192.0.2.1", "ping", "echo reply seq=0");
    assert_eq!(lines[8], "rc=0");
}
