//! `hbeat run` as a real process: two nodes on loopback UDP with the timings, a
//! heartbeat-style script resource that records every start and stop. Failover after kill -9,
//! no failback without auto_failback, standby hands over with the handshake, a graceful stop lets
//! the peer take over at once, status shows the letters, and a stranger's datagram and a key
//! holder that is not a peer are counted, never acted on.

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

#[test]
fn failover_standby_and_leave_between_two_real_processes() {
    let dir = std::env::temp_dir().join(format!("hbeat-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = Command::new(HBEAT).arg("keygen").output().unwrap();
    assert!(key.status.success());
    let key_file = dir.join("authkey");
    std::fs::write(&key_file, &key.stdout).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
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
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (pa, pb) = free_ports();
    let conf = |me: &str, other: &str, mine: u16, theirs: u16| {
        let text = format!(
            "node = \"{me}\"\ncluster = \"t\"\nkey_file = \"{key}\"\nkeepalive = \"20ms\"\nwarntime = \"60ms\"\ndeadtime = \"100ms\"\ninitdead = \"2s\"\nsocket = \"{d}/{me}.sock\"\nstate_dir = \"{d}/state.{me}\"\n\n[[peer]]\nname = \"{other}\"\n\n[[link]]\nudp = {{ bind = \"127.0.0.1:{mine}\", peer = \"127.0.0.1:{theirs}\" }}\n\n[[group]]\nname = \"web\"\npreferred = \"a\"\nresources = [\"script:{s}::web\"]\n",
            key = key_file.display(),
            d = dir.display(),
            s = script.display(),
        );
        let p = dir.join(format!("{me}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut a = Node {
        name: "a",
        config: conf("a", "b", pa, pb),
        child: None,
        log: dir.join("a.log"),
    };
    let mut b = Node {
        name: "b",
        config: conf("b", "a", pb, pa),
        child: None,
        log: dir.join("b.log"),
    };
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
    std::fs::remove_dir_all(&dir).unwrap();
}
