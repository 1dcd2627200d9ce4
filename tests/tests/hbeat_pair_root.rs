//! hbeat and fakeip together on the lab topology (`tests/topo.sh up --hb`), on the host kernel:
//! directors d1 and d2 exchange heartbeats over the `hb` bridge (eth1) and move the VIP with
//! `fakeip hold` on the LAN (eth0); the client c's neighbour cache is the judge of who the LAN
//! believes holds the VIP.
//!
//! A split brain healed: the heartbeat cable of d2 is pulled, so both directors hold the VIP (c
//! follows d2's announcement); when the cable returns, d2 (later in the group's nodes) lets go and
//! d1, the keeper, announces the VIP again — c's entry names d1 within seconds, not after its
//! neighbour entry times out. Exactly one director has the address afterwards.
//!
//! d2 runs its `fakeip hold` armed (`armed:`, hbeat's pre-started form): waiting while d1 holds
//! the VIP (no address on d2), taking it when told, armed again after its release.
//!
//! A `fakeip hold` killed with SIGKILL cannot remove its address: hbeat runs the same command
//! with `HBEAT_CLEANUP=1` before its release counts as done, so when the peer holds the VIP the
//! dead holder's node no longer has it (without the cleanup the address would stay for good).
//!
//! Root, not part of a plain `cargo test`; `tests/lab all` runs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::{Topology, neigh, stdout_ok, tool, touch};

const VIP: &str = "192.0.2.100";
const WAIT: Duration = Duration::from_secs(20);

struct Director {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Drop for Director {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Director {
    fn status(&self) -> serde_json::Value {
        let out = Command::new(tool("hbeat"))
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .output()
            .expect("run hbeat status");
        if !out.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn holds_web(&self) -> bool {
        self.status()["held"] == serde_json::json!(["web"])
    }
}

fn start(
    t: &Topology,
    dir: &Path,
    name: &'static str,
    other: &str,
    key: &Path,
    armed: bool,
) -> Director {
    let (mine, theirs) = if name == "d1" {
        ("198.18.0.1", "198.18.0.2")
    } else {
        ("198.18.0.2", "198.18.0.1")
    };
    let d = dir.display();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "node = \"{name}\"\ncluster = \"lab\"\nkey_file = \"{key}\"\n\
             keepalive = \"20ms\"\nwarntime = \"300ms\"\ndeadtime = \"600ms\"\ninitdead = \"3s\"\n\
             socket = \"{d}/{name}.sock\"\nstate_dir = \"{d}/state.{name}\"\n\
             [[peer]]\nname = \"{other}\"\n\
             [[link]]\nudp = {{ bind = \"{mine}:694\", peer = \"{theirs}:694\" }}\n\
             [[group]]\nname = \"web\"\nnodes = [\"d1\", \"d2\"]\n\
             resources = [\"{armed}{fakeip} hold {VIP}/24 dev eth0\"]\n",
            key = key.display(),
            armed = if armed { "armed:" } else { "" },
            fakeip = tool("fakeip").display(),
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &t.netns(name)])
        .arg(tool("hbeat"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start hbeat");
    Director {
        name,
        config,
        log,
        child,
    }
}

/// How many times a `fakeip hold` under this director said it was armed and waiting.
fn armed_lines(d: &Director) -> usize {
    std::fs::read_to_string(&d.log)
        .unwrap_or_default()
        .matches("armed: waiting for the go")
        .count()
}

fn wait_for(what: &str, ds: &[&Director], mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > end {
            let logs: Vec<String> = ds
                .iter()
                .map(|d| {
                    format!(
                        "--- {}\n{}",
                        d.name,
                        std::fs::read_to_string(&d.log).unwrap_or_default()
                    )
                })
                .collect();
            panic!("waited {WAIT:?} for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mac(t: &Topology, node: &str) -> String {
    let out = stdout_ok(
        "ip link show",
        t.exec(node, &["ip", "-br", "link", "show", "eth0"]),
    );
    out.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC in {out:?}"))
        .to_string()
}

/// The MAC c's neighbour cache has for the VIP, if any.
fn seen_by_c(t: &Topology) -> Option<String> {
    neigh(t, "c", VIP).map(|(m, _)| m.to_string())
}

fn has_vip(t: &Topology, node: &str) -> bool {
    stdout_ok(
        "ip addr show",
        t.exec(node, &["ip", "-4", "addr", "show", "dev", "eth0"]),
    )
    .contains(&format!("{VIP}/24"))
}

/// The key file and a fresh directory for one test.
fn setup(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hbeat-pair-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keygen = Command::new(tool("hbeat")).arg("keygen").output().unwrap();
    assert!(keygen.status.success());
    let key = dir.join("authkey");
    std::fs::write(&key, &keygen.stdout).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (dir, key)
}

/// The pids of the `fakeip` processes the director's hbeat started.
fn fakeips(d: &Director) -> Vec<i32> {
    let parent = d.child.id().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(parent.as_str()) && String::from_utf8_lossy(&cmdline).contains("fakeip") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_fakeip_is_cleaned_up_before_the_peer_takes_the_vip() {
    let t = Topology::up(&["--hb", "--no-http"]);
    let (dir, key) = setup("cleanup");
    let d1 = start(&t, &dir, "d1", "d2", &key, false);
    let d2 = start(&t, &dir, "d2", "d1", &key, true);
    let both = [&d1, &d2];
    wait_for(
        "d1 holds web with the VIP; d2's fakeip armed",
        &both,
        || {
            d1.holds_web()
                && has_vip(&t, "d1")
                && armed_lines(&d2) == 1
                && std::fs::read_to_string(&d1.log)
                    .unwrap_or_default()
                    .contains("group acquired")
        },
    );
    let held = fakeips(&d1);
    assert_eq!(held.len(), 1, "one fakeip under d1's hbeat: {held:?}");
    let kill = Command::new("kill")
        .args(["-KILL", &held[0].to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -KILL {}", held[0]);

    // The resource failed on d1 and d2 is ready: the group moves. When d2 holds the VIP, d1's
    // release (its cleanup included) is done: the address must be gone from d1 already.
    wait_for("d2 holds web with the VIP", &both, || {
        d2.holds_web() && has_vip(&t, "d2")
    });
    assert!(
        !has_vip(&t, "d1"),
        "d1 still has the VIP the killed fakeip left while d2 holds it:\n{}",
        std::fs::read_to_string(&d1.log).unwrap_or_default()
    );
    let log1 = std::fs::read_to_string(&d1.log).unwrap();
    assert!(
        log1.contains("cleaned up after its death (HBEAT_CLEANUP=1)"),
        "{log1}"
    );
    assert!(
        log1.contains("address removed"),
        "the cleanup run of fakeip said what it did: {log1}"
    );
    drop((d1, d2));
    t.down().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_healed_split_brain_leaves_one_holder_and_the_lan_follows_the_keeper() {
    let t = Topology::up(&["--hb", "--no-http"]);
    let (dir, key) = setup("split");
    let (m1, m2) = (mac(&t, "d1"), mac(&t, "d2"));

    let d1 = start(&t, &dir, "d1", "d2", &key, false);
    let d2 = start(&t, &dir, "d2", "d1", &key, true);
    let both = [&d1, &d2];
    wait_for("d1 holds web, d2 sees it; d2's fakeip armed", &both, || {
        d1.holds_web()
            && d2.status()["groups"][0]["holder"] == "d1"
            && has_vip(&t, "d1")
            && armed_lines(&d2) == 1
    });
    assert!(!has_vip(&t, "d2"), "an armed fakeip touches nothing");
    // c talks to the VIP: its cache names d1.
    touch(&t, "c", VIP);
    wait_for("c's entry names d1", &both, || {
        seen_by_c(&t).as_deref() == Some(m1.as_str())
    });

    // d2's heartbeat cable is pulled: d2 declares d1 dead and takes the VIP too (split brain,
    // nothing in this setup can prevent it: no ping targets, no fencing). c follows d2's burst.
    stdout_ok("cut", t.exec("d2", &["ip", "link", "set", "eth1", "down"]));
    wait_for("both hold web; c's entry names d2", &both, || {
        d2.holds_web() && has_vip(&t, "d2") && seen_by_c(&t).as_deref() == Some(m2.as_str())
    });
    assert!(d1.holds_web() && has_vip(&t, "d1"));
    // The armed process took it: one fakeip was started on d2 so far.
    let log2 = std::fs::read_to_string(&d2.log).unwrap();
    assert_eq!(
        log2.matches("armed: waiting for the go").count(),
        1,
        "{log2}"
    );
    assert_eq!(log2.matches("holding vips").count(), 1, "{log2}");

    // The cable returns: d2 (later in nodes) releases, d1 keeps and announces again.
    stdout_ok("heal", t.exec("d2", &["ip", "link", "set", "eth1", "up"]));
    wait_for("one holder: d1; c's entry names d1 again", &both, || {
        !has_vip(&t, "d2")
            && d2.status()["held"] == serde_json::json!([])
            && seen_by_c(&t).as_deref() == Some(m1.as_str())
    });
    assert!(d1.holds_web() && has_vip(&t, "d1"));
    wait_for("d2's fakeip armed again", &both, || armed_lines(&d2) == 2);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_vip(&t, "d2"), "the new armed fakeip touches nothing");
    let log1 = std::fs::read_to_string(&d1.log).unwrap();
    assert!(log1.contains("the group is mine alone again"), "{log1}");
    drop((d1, d2));
    t.down().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
