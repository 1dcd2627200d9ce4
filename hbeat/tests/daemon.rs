//! `hbeat run` as a real process: two nodes on loopback UDP with the timings, a
//! heartbeat-style script resource that records every start and stop. Failover after kill -9,
//! no failback without auto_failback, standby hands over with the handshake, a graceful stop lets
//! the peer take over at once, status shows the letters, a stranger's datagram and a key
//! holder that is not a peer are counted, never acted on, and a group whose interface is missing
//! is not served.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{CALM_TIMINGS, HBEAT, Node, Site, wait_for};

/// Two free UDP ports on 127.0.0.1.
fn free_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn paths(logs: &[PathBuf]) -> Vec<&Path> {
    logs.iter().map(PathBuf::as_path).collect()
}

/// A [`Site`] (the recording script resource; removed on drop) that also writes key files with
/// chosen ids and node configurations.
struct Fixture {
    site: Site,
    /// Keys by id, made by `hbeat keygen` once per fixture.
    keys: std::collections::BTreeMap<u8, String>,
}

impl std::ops::Deref for Fixture {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl Fixture {
    /// [`Fixture::new`] with [`CALM_TIMINGS`]: for tests whose point is not the timings.
    fn calm(tag: &str) -> Fixture {
        let mut f = Fixture::new(tag);
        f.site.timings = CALM_TIMINGS;
        f
    }

    /// Nodes a and b on loopback, sharing the key file with key 1; not started.
    fn pair(&self) -> (Node, Node) {
        let key = self.key(&[1]);
        let (pa, pb) = free_ports();
        (
            self.node("a", "b", pa, pb, &key, ""),
            self.node("b", "a", pb, pa, &key, ""),
        )
    }

    /// Starts both and waits until a holds web (and nothing else happened) and b sees it;
    /// returns their logs.
    fn start(&self, a: &mut Node, b: &mut Node) -> [PathBuf; 2] {
        let logs = [a.log.clone(), b.log.clone()];
        a.start();
        b.start();
        wait_for("a holds web and b sees it", &paths(&logs), || {
            self.events() == ["a start web"]
                && b.try_status()
                    .is_some_and(|s| s.groups[0].holder.as_deref() == Some("a"))
        });
        logs
    }

    fn new(tag: &str) -> Fixture {
        let site = Site::new(&format!("daemon-{tag}"));
        let keys = (1..=2)
            .map(|id| {
                let out = Command::new(HBEAT)
                    .args(["keygen", "--id", &id.to_string()])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let text = String::from_utf8(out.stdout).unwrap();
                let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
                (id, format!("{line}\n"))
            })
            .collect();
        Fixture { site, keys }
    }

    /// Writes the key file `authkey-<ids>` with these keys in this order, mode 0600.
    fn key(&self, ids: &[u8]) -> PathBuf {
        let name: Vec<String> = ids.iter().map(u8::to_string).collect();
        let path = self.dir.join(format!("authkey-{}", name.join("-")));
        self.write_key(&path, ids);
        path
    }

    /// Replaces the key file at `path` with these keys (atomically, as an admin's editor would).
    fn write_key(&self, path: &Path, ids: &[u8]) {
        let text: String = ids.iter().map(|id| self.keys[id].as_str()).collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        support::set_mode(&tmp, 0o600);
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Writes `<me>.toml` (the timings, one loopback UDP link, the group `web` preferring
    /// a, `extra` lines at the top, this key file) and returns the node, not started.
    fn node(
        &self,
        me: &str,
        other: &str,
        mine: u16,
        theirs: u16,
        key_file: &Path,
        extra: &str,
    ) -> Node {
        let link =
            format!("udp = {{ bind = \"127.0.0.1:{mine}\", peer = \"127.0.0.1:{theirs}\" }}");
        let n = self.site.node(
            me,
            &[other],
            extra,
            &[link],
            &self.group("web", &["a", "b"]),
        );
        edit(
            &n.config,
            &format!("key_file = \"{}\"", self.key_file.display()),
            &format!("key_file = \"{}\"", key_file.display()),
        );
        n
    }
}

#[test]
fn failover_standby_and_leave_between_two_real_processes() {
    let f = Fixture::new("failover");
    let key_file = f.key(&[1]);
    let (pa, pb) = free_ports();
    let mut a = f.node("a", "b", pa, pb, &key_file, "");
    let mut b = f.node("b", "a", pb, pa, &key_file, "");
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();

    // Both up: web on its preferred node a, and only there.
    wait_for("a starts web", &logs, || f.events() == ["a start web"]);
    wait_for("b sees a holding web", &logs, || {
        b.try_status()
            .is_some_and(|s| s.groups[0].holder.as_deref() == Some("a"))
    });
    let s = a.status();
    assert_eq!(s.pair, "(N,N)", "{s:?}");
    assert!(s.peers[0].up, "{s:?}");

    // kill -9 of the active node: b takes web over after deadtime.
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait_exit();
    wait_for("b starts web after a died", &logs, || {
        f.events() == ["a start web", "b start web"]
    });
    let s = b.status();
    assert_eq!(s.state, 'T', "{s:?}");
    assert_eq!(s.pair, "(D,T)", "{s:?}");
    assert!(!s.peers[0].up, "{s:?}");

    // a returns (its script's state is gone with it): without auto_failback web stays on b.
    let _ = std::fs::remove_file(f.dir.join("held.a.web"));
    a.start();
    wait_for("a sees b holding web", &logs, || {
        a.try_status()
            .is_some_and(|s| s.groups[0].holder.as_deref() == Some("b"))
    });
    wait_for("the pair settles at (N,N)", &logs, || {
        b.status().pair == "(N,N)"
    });
    assert_eq!(f.events().len(), 2, "nothing moved: {:?}", f.events());

    // standby on b: the handshake, b stops before a starts.
    b.ctl("standby");
    wait_for("web back on a after b's standby", &logs, || {
        f.events().len() == 4
    });
    assert_eq!(f.events()[2..], ["b stop web", "a start web"]);

    // A graceful stop of a: it stops web, says leave, and b takes over without waiting deadtime
    // (the order of the events shows it; the time is the benchmark's business).
    a.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("b starts web after a left", &logs, || f.events().len() == 6);
    assert_eq!(f.events()[4..], ["a stop web", "b start web"]);
    assert!(a.wait_exit().success(), "a's exit after TERM");
    let a_log = std::fs::read_to_string(&a.log).unwrap();
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
    let keys = hbeat::keys::KeyRing::load(&key_file).unwrap();
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
        health: Default::default(),
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

    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.wait_exit().success());
    assert_eq!(f.events().last().unwrap(), "b stop web");
}

/// Edits a file in place: `from` must occur.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// `hbeat reload`, returning its exit code and stderr.
fn reload(n: &Node) -> (Option<i32>, String) {
    let out = Command::new(HBEAT)
        .args(["reload", "--config"])
        .arg(&n.config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reload_rotates_the_key_without_a_failover_and_refuses_what_needs_a_restart() {
    let mut f = Fixture::new("reload");
    f.site.timings = CALM_TIMINGS;
    let (pa, pb) = free_ports();
    // Each node has its own key file, so the rotation can go one node at a time as it would.
    let (ka, kb) = (f.dir.join("authkey.a"), f.dir.join("authkey.b"));
    f.write_key(&ka, &[1]);
    f.write_key(&kb, &[1]);
    let mut a = f.node("a", "b", pa, pb, &ka, "");
    let mut b = f.node("b", "a", pb, pa, &kb, "");
    let logs = f.start(&mut a, &mut b);
    let logs = paths(&logs);

    // The rotation: the new key added second everywhere, then made first, then the old dropped;
    // a by the control request, b by SIGHUP. After each step both accept each other's frames.
    let received_by = |n: &Node| n.status().links[0].received;
    for ids in [&[1u8, 2][..], &[2, 1], &[2]] {
        f.write_key(&ka, ids);
        assert_eq!(reload(&a), (Some(0), String::new()));
        assert_eq!(a.status().key_ids, ids);
        f.write_key(&kb, ids);
        b.signal(nix::sys::signal::Signal::SIGHUP);
        wait_for("b reloaded its key file", &logs, || {
            b.status().key_ids == ids
        });
        let (ra, rb) = (received_by(&a), received_by(&b));
        wait_for("frames still flow both ways", &logs, || {
            received_by(&a) > ra + 5 && received_by(&b) > rb + 5
        });
    }
    for n in [&a, &b] {
        let s = n.status();
        assert!(s.rejected.is_empty(), "{s:?}");
        assert!(s.peers[0].up, "{s:?}");
    }
    assert_eq!(f.events(), ["a start web"], "nothing moved");

    // A new deadtime by SIGHUP is in force at once.
    edit(&b.config, "deadtime = \"600ms\"", "deadtime = \"800ms\"");
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("b runs with the new deadtime", &logs, || {
        b.status().deadtime_ms == 800
    });

    // A changed link needs a restart: refused whole, named, nothing changed (not even the key
    // file edited at the same time).
    edit(
        &a.config,
        &format!("peer = \"127.0.0.1:{pb}\""),
        "peer = \"127.0.0.1:9\"",
    );
    edit(&a.config, "deadtime = \"600ms\"", "deadtime = \"700ms\"");
    f.write_key(&ka, &[1, 2]);
    let (code, err) = reload(&a);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a.toml") && err.contains("link changed") && err.contains("restart"),
        "{err}"
    );
    let s = a.status();
    assert_eq!(s.key_ids, [2], "{s:?}");
    assert_eq!(s.deadtime_ms, 600, "{s:?}");
    // A file that does not parse, by SIGHUP: logged with its place, the daemon carries on.
    // (`hbeat status` finds the socket in the file: a copy of the good one serves for that.)
    let broken = b.config.clone();
    b.config = f.dir.join("b-good.toml");
    std::fs::copy(&broken, &b.config).unwrap();
    std::fs::write(&broken, "node = \"b\"\ncluster = [\n").unwrap();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("b logs the refused reload", &logs, || {
        std::fs::read_to_string(&b.log)
            .unwrap()
            .contains("reload refused")
    });
    let b_log = std::fs::read_to_string(&b.log).unwrap();
    assert!(b_log.contains("b.toml:2"), "{b_log}");
    let s = b.status();
    assert_eq!(s.deadtime_ms, 800, "{s:?}");
    assert!(s.peers[0].up, "{s:?}");
    assert_eq!(f.events(), ["a start web"], "nothing moved");

    // The clients with the broken file: the errors are printed; `status` still reaches the
    // daemon by --socket, or by the file's `socket` when the file is TOML that does not
    // validate; `reload` stops at the errors (exit 2).
    let client = |file: &Path, args: &[&str]| {
        let out = Command::new(HBEAT)
            .args(args)
            .arg("--config")
            .arg(file)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let sock = b.socket.to_str().unwrap();
    let (code, out, err) = client(&broken, &["status", "--socket", sock]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("b (t): "), "{out}");
    std::fs::write(
        &broken,
        format!("node = \"b\"\ncluster = \"t\"\nsocket = \"{sock}\"\nkeepalive = \"fast\"\n"),
    )
    .unwrap();
    let (code, out, err) = client(&broken, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("b (t): "), "{out}");
    assert!(
        err.contains("b.toml:4") && err.contains(&format!("asking the daemon at {sock}")),
        "{err}"
    );
    let (code, _, err) = client(&broken, &["reload"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("b.toml:4"), "{err}");
}

/// A UDP relay between two nodes' second link that drops every `nth` datagram each way: a link
/// with loss on real sockets (netem needs the lab VM's kernel). Returns the address each side
/// must send to; the relay sends to a from `to_a` and to b from `to_b`, so each node's link
/// peer is the relay's address it hears from.
fn lossy_relay(a: u16, b: u16, nth: u64) -> (u16, u16) {
    let to_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ports = (
        to_a.local_addr().unwrap().port(),
        to_b.local_addr().unwrap().port(),
    );
    let relay = |from: UdpSocket, out: UdpSocket, dest: u16| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while let Ok(len) = from.recv(&mut buf) {
                n += 1;
                if !n.is_multiple_of(nth) {
                    let _ = out.send_to(&buf[..len], ("127.0.0.1", dest));
                }
            }
        });
    };
    // a sends to the socket it hears from (to_a), which forwards to b from to_b; and back.
    relay(to_a.try_clone().unwrap(), to_b.try_clone().unwrap(), b);
    relay(to_b, to_a, a);
    ports
}

#[test]
fn a_link_losing_a_third_of_its_frames_shows_the_loss_and_moves_nothing() {
    let mut f = Fixture::new("loss");
    f.site.timings = CALM_TIMINGS;
    let key = f.key(&[1]);
    let (pa, pb) = free_ports();
    let (qa, qb) = free_ports();
    let (relay_for_a, relay_for_b) = lossy_relay(qa, qb, 3);
    let mut a = f.node("a", "b", pa, pb, &key, "");
    let mut b = f.node("b", "a", pb, pa, &key, "");
    let second = |n: &Node, mine: u16, relay: u16| {
        let mut text = std::fs::read_to_string(&n.config).unwrap();
        text += &format!(
            "\n[[link]]\nudp = {{ bind = \"127.0.0.1:{mine}\", peer = \"127.0.0.1:{relay}\" }}\n"
        );
        std::fs::write(&n.config, text).unwrap();
    };
    second(&a, qa, relay_for_a);
    second(&b, qb, relay_for_b);
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();
    wait_for("a holds web", &logs, || f.events() == ["a start web"]);
    // Enough frames for the 128-message window to fill (20 ms keepalive: ~3 s).
    let loss = |n: &Node, link: usize| n.status().peers[0].links[link].loss_pct;
    wait_for("b's figures for both links", &logs, || {
        let s = b.status();
        s.peers[0]
            .links
            .get(1)
            .is_some_and(|l| l.last_seen_ms.is_some())
            && s.links[1].received > 200
    });
    for n in [&a, &b] {
        let clean = loss(n, 0);
        let lossy = loss(n, 1);
        assert!(clean < 5.0, "{}: link 0 lost {clean}%", n.name);
        assert!(
            (20.0..=45.0).contains(&lossy),
            "{}: link 1 lost {lossy}%, a third dropped",
            n.name
        );
        let s = n.status();
        assert!(s.peers[0].up, "{s:?}");
    }
    assert_eq!(f.events(), ["a start web"], "nothing moved");
}

/// How many times `n`'s log says group `web` finished starting (past its settle time: a death
/// before that is a failed start, another path).
fn web_started(n: &Node) -> usize {
    n.log_text().matches("Acquired { group: \"web\" }").count()
}

#[test]
fn a_killed_command_resource_moves_the_group_to_the_ready_peer_or_restarts_it_here() {
    let f = Fixture::calm("resfail");
    let (mut a, mut b) = f.pair();
    // After the script, a supervised command that writes its pid where the test finds it.
    let cmd = format!(
        "sh -c 'echo $$ > {}/pid.$HBEAT_NODE; exec sleep 1000'",
        f.dir.display()
    );
    for n in [&a, &b] {
        edit(&n.config, "::web\"]", &format!("::web\", {cmd:?}]"));
    }
    let logs = f.start(&mut a, &mut b);
    let logs = paths(&logs);
    let pid_of = |node: &str| {
        std::fs::read_to_string(f.dir.join(format!("pid.{node}")))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
    };
    let kill = |pid: i32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap()
    };
    wait_for("a holds web, its command running", &logs, || {
        web_started(&a) == 1
            && pid_of("a").is_some()
            && b.try_status()
                .is_some_and(|s| s.groups[0].holder.as_deref() == Some("a"))
    });
    // b is ready: killing a's command moves web to b (stopped here first), at once.
    kill(pid_of("a").unwrap());
    wait_for("web moved to b", &logs, || {
        f.events() == ["a start web", "a stop web", "b start web"] && web_started(&b) == 1
    });
    a.assert_logged("resource failed");
    // a in standby is not ready: killing b's command restarts web on b.
    a.ctl("standby");
    wait_for("b sees a not ready for web", &logs, || {
        b.status().groups[0].holder.as_deref() == Some("b")
            && a.status().groups[0].unready.as_deref() == Some("standby")
    });
    let old = pid_of("b").unwrap();
    kill(old);
    wait_for("web restarted on b", &logs, || {
        f.events()[3..] == ["b stop web", "b start web"] && web_started(&b) == 2
    });
    assert_ne!(pid_of("b"), Some(old));
    assert_eq!(b.status().groups[0].holder.as_deref(), Some("b"));
}

#[test]
fn a_frozen_active_node_yields_on_waking_and_the_keeper_announces_again() {
    let f = Fixture::calm("freeze");
    let (mut a, mut b) = f.pair();
    let logs = f.start(&mut a, &mut b);
    let logs = paths(&logs);
    // A hung daemon (a VM pause, SIGSTOP) for longer than deadtime: b takes over; a's resources
    // still run (nothing stopped them).
    a.signal(nix::sys::signal::Signal::SIGSTOP);
    wait_for("b took web while a was frozen", &logs, || {
        f.events() == ["a start web", "b start web"]
    });
    a.signal(nix::sys::signal::Signal::SIGCONT);
    // a sees b holding web and lets go of its copy at once; b keeps it (no second move) and
    // announces it again once it is the only holder.
    wait_for("a released its copy", &logs, || {
        f.events() == ["a start web", "b start web", "a stop web"]
    });
    wait_for("b announced web again", &logs, || {
        b.log_text().contains("the group is mine alone again")
    });
    assert_eq!(b.status().groups[0].holder.as_deref(), Some("b"));
    assert_eq!(a.status().groups[0].holder.as_deref(), Some("b"));
    assert_eq!(f.events().len(), 3, "nothing else moved");
}

/// Writes an executable `sh` script in the fixture's directory.
fn script(f: &Fixture, name: &str, body: &str) -> PathBuf {
    let p = f.dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    support::set_mode(&p, 0o755);
    p
}

#[test]
fn a_failing_fence_command_blocks_the_takeover_until_it_succeeds() {
    let f = Fixture::calm("fence");
    let (mut a, mut b) = f.pair();
    // b fences a with a command that fails until the file `fence-ok` exists.
    let fence = script(
        &f,
        "fence",
        &format!(
            "echo \"$HBEAT_NODE fences $HBEAT_PEER\" >> {d}/fences; [ -e {d}/fence-ok ]",
            d = f.dir.display()
        ),
    );
    edit(
        &b.config,
        "[[peer]]\nname = \"a\"\n",
        &format!("[[peer]]\nname = \"a\"\nfence = \"{}\"\n", fence.display()),
    );
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();
    let fences = || {
        std::fs::read_to_string(f.dir.join("fences"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait_for("a holds web and b sees it", &logs, || {
        f.events() == ["a start web"]
            && b.try_status()
                .is_some_and(|s| s.groups[0].holder.as_deref() == Some("a"))
    });
    a.kill();
    wait_for("b tried to fence a, failed and alerted", &logs, || {
        fences() == ["b fences a"] && b.log_text().contains("fencing a failed")
    });
    b.assert_logged("ALERT");
    assert_eq!(f.events(), ["a start web"], "no takeover without a fence");
    // The fence works from now on: b's retry (ten deadtimes later) succeeds and b takes over.
    std::fs::write(f.dir.join("fence-ok"), "").unwrap();
    wait_for("b took web after fencing a", &logs, || {
        f.events() == ["a start web", "b start web"]
    });
    assert_eq!(fences(), ["b fences a", "b fences a"]);
}

#[test]
fn a_resource_that_will_not_stop_keeps_the_group_off_the_peer() {
    let f = Fixture::calm("nostop");
    let (mut a, mut b) = f.pair();
    // A second resource whose `stop` always fails (its `status` says it runs).
    let nostop = script(
        &f,
        "nostop",
        "case \"$2\" in stop) exit 1 ;; *) exit 0 ;; esac",
    );
    for n in [&a, &b] {
        edit(
            &n.config,
            "::web\"]",
            &format!("::web\", \"script:{}::web\"]", nostop.display()),
        );
    }
    let logs = f.start(&mut a, &mut b);
    let logs = paths(&logs);
    // Standby asks a to hand web over: its stop fails, so web stays with a.
    a.ctl("standby");
    wait_for("a's stop failed and it alerted", &logs, || {
        a.log_text().contains("ALERT")
    });
    a.assert_logged("web did not stop cleanly: it stays here");
    // Give b a second of a's frames (50 keepalives) to start it wrongly.
    let seen = b.status().links[0].received;
    wait_for("b heard a for a second more", &logs, || {
        b.status().links[0].received > seen + 50
    });
    assert!(
        !f.events().contains(&"b start web".to_string()),
        "{:?}",
        f.events()
    );
    assert_eq!(b.status().groups[0].holder.as_deref(), Some("a"));
    assert_eq!(a.status().held, ["web"]);
}

/// Interface tracking reaches the state machine: a group that needs an interface that does not
/// exist is not served, and status says why (the carrier itself is followed on veth links in
/// `link_root`).
#[test]
fn a_group_whose_interface_is_missing_is_not_served_and_status_says_why() {
    let f = Fixture::new("carrier");
    let (mut a, _b) = f.pair();
    edit(
        &a.config,
        "resources = [",
        "interfaces = [\"lo\", \"hbt-none0\"]\nresources = [",
    );
    let log = a.log.clone();
    a.start();
    wait_for("a's status to say why it cannot serve web", &[&log], || {
        a.try_status()
            .is_some_and(|s| s.groups[0].unready.as_deref() == Some("hbt-none0 has no carrier"))
    });
    assert_eq!(f.events(), Vec::<String>::new());
    a.assert_logged("tracked interface not found");
    a.assert_logged("hbt-none0");
}
