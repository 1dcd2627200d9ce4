//! `hbeat run` as a real process: two nodes on loopback UDP with the issue's timings, a
//! heartbeat-style script resource that records every start and stop. Failover after kill -9,
//! no failback without auto_failback, standby hands over with the handshake, a graceful stop lets
//! the peer take over at once, status shows the letters, a stranger's datagram and a key
//! holder that is not a peer are counted, never acted on, and a group whose interface is missing
//! is not served.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HBEAT: &str = env!("CARGO_BIN_EXE_hbeat");
/// The longest any wait may take before the test fails loudly (far above deadtime: a bound for
/// a broken daemon, not a performance figure).
const WAIT: Duration = Duration::from_secs(20);

struct Node {
    name: &'static str,
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(HBEAT)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("hbeat run");
        self.child = Some(child);
    }

    /// The status, or `None` while the daemon is not answering (starting).
    fn try_status(&self) -> Option<serde_json::Value> {
        let out = Command::new(HBEAT)
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn status(&self) -> serde_json::Value {
        let out = Command::new(HBEAT)
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hbeat status of {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ctl(&self, cmd: &str) {
        let out = Command::new(HBEAT)
            .args([cmd, "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hbeat {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let end = Instant::now() + WAIT;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < end, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two free UDP ports on 127.0.0.1.
fn free_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn wait_for(what: &str, logs: &[&Path], mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > end {
            let tails: Vec<String> = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!(
                "waited {WAIT:?} for {what}; logs:\n{}",
                tails.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn events(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A scratch directory (removed on drop) with the recording script resource; writes key files
/// and node configurations.
struct Fixture {
    dir: PathBuf,
    script: PathBuf,
    /// Keys by id, made by `hbeat keygen` once per fixture.
    keys: std::collections::BTreeMap<u8, String>,
    /// The timing lines of every node's file.
    timings: &'static str,
}

/// The issue's timings.
const ISSUE_TIMINGS: &str =
    "keepalive = \"20ms\"\nwarntime = \"60ms\"\ndeadtime = \"100ms\"\ninitdead = \"2s\"";
/// For tests whose point is that nothing moves: a loaded two-core machine running several
/// daemons at once can starve one for more than 100 ms, which is a real (and correct) failover
/// at the issue's timings. The failover benchmark measures the issue's timings.
const CALM_TIMINGS: &str =
    "keepalive = \"20ms\"\nwarntime = \"300ms\"\ndeadtime = \"600ms\"\ninitdead = \"3s\"";

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("hbeat-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // heartbeat's resource script convention: NAME start|stop|status, LSB exit codes.
        let script = dir.join("res");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nd={}\ncase \"$2\" in\nstart) echo \"$HBEAT_NODE start $1\" >> $d/events; touch $d/held.$HBEAT_NODE ;;\nstop) echo \"$HBEAT_NODE stop $1\" >> $d/events; rm -f $d/held.$HBEAT_NODE ;;\nstatus) [ -e $d/held.$HBEAT_NODE ] && exit 0; exit 3 ;;\nesac\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
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
        Fixture {
            dir,
            script,
            keys,
            timings: ISSUE_TIMINGS,
        }
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
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Writes `<me>.toml` (the issue's timings, one loopback UDP link, the group `web` preferring
    /// a, `extra` lines at the top) and returns the node, not started.
    fn node(
        &self,
        me: &'static str,
        other: &str,
        mine: u16,
        theirs: u16,
        key_file: &Path,
        extra: &str,
    ) -> Node {
        let text = format!(
            "node = \"{me}\"\ncluster = \"t\"\nkey_file = \"{key}\"\n{timings}\nsocket = \"{d}/{me}.sock\"\nstate_dir = \"{d}/state.{me}\"\n{extra}\n\n[[peer]]\nname = \"{other}\"\n\n[[link]]\nudp = {{ bind = \"127.0.0.1:{mine}\", peer = \"127.0.0.1:{theirs}\" }}\n\n[[group]]\nname = \"web\"\npreferred = \"a\"\nresources = [\"script:{s}::web\"]\n",
            key = key_file.display(),
            d = self.dir.display(),
            s = self.script.display(),
            timings = self.timings,
        );
        let config = self.dir.join(format!("{me}.toml"));
        std::fs::write(&config, text).unwrap();
        Node {
            name: me,
            config,
            child: None,
            log: self.dir.join(format!("{me}.log")),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn failover_standby_and_leave_between_two_real_processes() {
    let f = Fixture::new("failover");
    let dir = f.dir.clone();
    let key_file = f.key(&[1]);
    let (pa, pb) = free_ports();
    let mut a = f.node("a", "b", pa, pb, &key_file, "");
    let mut b = f.node("b", "a", pb, pa, &key_file, "");
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();

    // Both up: web on its preferred node a, and only there.
    wait_for("a starts web", &logs, || events(&dir) == ["a start web"]);
    wait_for("b sees a holding web", &logs, || {
        b.try_status()
            .is_some_and(|s| s["groups"][0]["holder"] == "a")
    });
    let s = a.status();
    assert_eq!(s["pair"], "(N,N)", "{s}");
    assert_eq!(s["peers"][0]["up"], true, "{s}");

    // kill -9 of the active node: b takes web over after deadtime.
    a.signal(nix::sys::signal::Signal::SIGKILL);
    a.wait_exit();
    wait_for("b starts web after a died", &logs, || {
        events(&dir) == ["a start web", "b start web"]
    });
    let s = b.status();
    assert_eq!(s["state"], "T", "{s}");
    assert_eq!(s["pair"], "(D,T)", "{s}");
    assert_eq!(s["peers"][0]["up"], false, "{s}");

    // a returns (its script's state is gone with it): without auto_failback web stays on b.
    let _ = std::fs::remove_file(dir.join("held.a"));
    a.start();
    wait_for("a sees b holding web", &logs, || {
        a.try_status()
            .is_some_and(|s| s["groups"][0]["holder"] == "b")
    });
    wait_for("the pair settles at (N,N)", &logs, || {
        b.status()["pair"] == "(N,N)"
    });
    assert_eq!(events(&dir).len(), 2, "nothing moved: {:?}", events(&dir));

    // standby on b: the handshake, b stops before a starts.
    b.ctl("standby");
    wait_for("web back on a after b's standby", &logs, || {
        events(&dir).len() == 4
    });
    assert_eq!(events(&dir)[2..], ["b stop web", "a start web"]);

    // A graceful stop of a: it stops web, says leave, and b takes over without waiting deadtime
    // (the order of the events shows it; the time is the benchmark's business).
    a.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("b starts web after a left", &logs, || {
        events(&dir).len() == 6
    });
    assert_eq!(events(&dir)[4..], ["a stop web", "b start web"]);
    assert!(a.wait_exit().success(), "a's exit after TERM");
    let a_log = std::fs::read_to_string(&a.log).unwrap();
    assert!(a_log.contains("stopped"), "{a_log}");

    // A stranger's datagram on b's port is dropped and counted, never acted on.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .send_to(b"hB\x01\x01garbage that is not a frame", ("127.0.0.1", pb))
        .unwrap();
    wait_for("the stranger's datagram counted", &logs, || {
        b.status()["links"][0]["rejected_source"] == 1
    });
    assert_eq!(b.status()["held"][0], "web");
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
        b.status()["rejected"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x[0] == "unknown_sender" && x[1] == 1))
    });
    assert_eq!(b.status()["held"][0], "web");

    b.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(b.wait_exit().success());
    assert_eq!(events(&dir).last().unwrap(), "b stop web");
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
    f.timings = CALM_TIMINGS;
    let (pa, pb) = free_ports();
    // Each node has its own key file, so the rotation can go one node at a time as it would.
    let (ka, kb) = (f.dir.join("authkey.a"), f.dir.join("authkey.b"));
    f.write_key(&ka, &[1]);
    f.write_key(&kb, &[1]);
    let mut a = f.node("a", "b", pa, pb, &ka, "");
    let mut b = f.node("b", "a", pb, pa, &kb, "");
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();
    wait_for("a holds web and b sees it", &logs, || {
        events(&f.dir) == ["a start web"]
            && b.try_status()
                .is_some_and(|s| s["groups"][0]["holder"] == "a")
    });

    // The rotation: the new key added second everywhere, then made first, then the old dropped;
    // a by the control request, b by SIGHUP. After each step both accept each other's frames.
    let received_by = |n: &Node| n.status()["links"][0]["received"].as_u64().unwrap();
    for ids in [&[1u8, 2][..], &[2, 1], &[2]] {
        f.write_key(&ka, ids);
        assert_eq!(reload(&a), (Some(0), String::new()));
        assert_eq!(a.status()["key_ids"], serde_json::json!(ids));
        f.write_key(&kb, ids);
        b.signal(nix::sys::signal::Signal::SIGHUP);
        wait_for("b reloaded its key file", &logs, || {
            b.status()["key_ids"] == serde_json::json!(ids)
        });
        let (ra, rb) = (received_by(&a), received_by(&b));
        wait_for("frames still flow both ways", &logs, || {
            received_by(&a) > ra + 5 && received_by(&b) > rb + 5
        });
    }
    for n in [&a, &b] {
        let s = n.status();
        assert_eq!(s["rejected"], serde_json::json!([]), "{s}");
        assert_eq!(s["peers"][0]["up"], true, "{s}");
    }
    assert_eq!(events(&f.dir), ["a start web"], "nothing moved");

    // A new deadtime by SIGHUP is in force at once.
    edit(&b.config, "deadtime = \"600ms\"", "deadtime = \"800ms\"");
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("b runs with the new deadtime", &logs, || {
        b.status()["deadtime_ms"] == 800
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
    assert_eq!(s["key_ids"], serde_json::json!([2]), "{s}");
    assert_eq!(s["deadtime_ms"], 600, "{s}");
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
    assert_eq!(s["deadtime_ms"], 800, "{s}");
    assert_eq!(s["peers"][0]["up"], true, "{s}");
    assert_eq!(events(&f.dir), ["a start web"], "nothing moved");
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
    f.timings = CALM_TIMINGS;
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
    wait_for("a holds web", &logs, || events(&f.dir) == ["a start web"]);
    // Enough frames for the 128-message window to fill (20 ms keepalive: ~3 s).
    let loss = |n: &Node, link: usize| {
        n.status()["peers"][0]["links"][link]["loss_pct"]
            .as_f64()
            .unwrap()
    };
    wait_for("b's figures for both links", &logs, || {
        let s = b.status();
        s["peers"][0]["links"][1]["last_seen_ms"].is_u64()
            && s["links"][1]["received"].as_u64().unwrap() > 200
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
        assert_eq!(s["peers"][0]["up"], true, "{s}");
    }
    assert_eq!(events(&f.dir), ["a start web"], "nothing moved");
}

/// Interface tracking reaches the state machine: a group that needs an interface that does not
/// exist is not served, and status says why (the carrier itself is followed on veth links in
/// `link_root`).
#[test]
fn a_group_whose_interface_is_missing_is_not_served_and_status_says_why() {
    let f = Fixture::new("carrier");
    let key_file = f.key(&[1]);
    let (pa, pb) = free_ports();
    let mut a = f.node("a", "b", pa, pb, &key_file, "");
    edit(
        &a.config,
        "resources = [",
        "interfaces = [\"lo\", \"hbt-none0\"]\nresources = [",
    );
    let log = a.log.clone();
    a.start();
    wait_for("a's status to say why it cannot serve web", &[&log], || {
        a.try_status()
            .is_some_and(|s| s["groups"][0]["unready"] == "hbt-none0 has no carrier")
    });
    assert_eq!(events(&f.dir), Vec::<String>::new());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("tracked interface not found") && text.contains("hbt-none0"),
        "{text}"
    );
}
