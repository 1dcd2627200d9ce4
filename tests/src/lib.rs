//! Harness for the integration tests that run on the host kernel in network namespaces (no VM): it builds
//! the lab topology of `tests/topo.sh` under a unique name prefix, runs commands in its nodes, and removes
//! it when dropped. Tests that need IPVS run in the lab VM instead (`tests/lab test`), not here.
//!
//! These tests need root (they create namespaces): they are the `*_root` test targets, which a plain
//! `cargo test` does not build; without root they fail at once and say so, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub mod wire;

/// Set once TERM or INT has arrived, after [`stop_on_signals`]: how the lab's probes
/// (`failover-probe`, `stream-probe`) learn to finish and report.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes TERM and INT set [`STOP`] instead of killing the process.
pub fn stop_on_signals() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// True once TERM or INT has arrived (see [`stop_on_signals`]).
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The workspace root (the checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of the workspace binary `name` (`fakeip`, `hbeat`, ...), built first with
/// `cargo build --workspace --bins` so that a test never runs a stale binary. The whole workspace,
/// as `tests/lab` builds it: `-p NAME` unifies features differently and rebuilds shared crates.
pub fn tool(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "--workspace", "--bins"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
        built.push(name.to_owned());
    }
    target.join("debug").join(name)
}

/// Fails the test at once, in one line, when not root, saying `why` root is needed.
pub fn require_root(why: &str) {
    let uid = Command::new("id").arg("-u").output().expect("run `id -u`");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        panic!(
            "needs root ({why}): run as root `cargo test --workspace --test '*_root'` (part of `tests/lab all`)"
        );
    }
}

/// Fails the test at once, in one line, when `tool` is not on the PATH (or in /usr/sbin, /sbin):
/// names the Debian `package` that has it.
pub fn require_tool(tool: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(tool).is_file());
    if !found {
        panic!(
            "{tool} is missing: install {package} (apt-get install {package}, or `tests/lab deps`)"
        );
    }
}

/// A lab topology (see `tests/topo.sh`) on the host kernel, removed on drop.
pub struct Topology {
    prefix: String,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Topology {
    /// Builds the topology with `args` (`--hb`, `--no-http`) under a prefix unique to this process and call.
    pub fn up(args: &[&str]) -> Topology {
        require_root("it creates network namespaces");
        require_tool("ip", "iproute2");
        let prefix = format!(
            "t{}-{}-",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let topo = Topology { prefix };
        let out = topo.script(&[&["up"], args].concat());
        assert!(
            out.status.success(),
            "topo.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        topo
    }

    /// The namespace prefix of this topology.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full namespace name of `node` (`d1`, `r1`, `c`, `sw`, ...).
    pub fn netns(&self, node: &str) -> String {
        format!("{}{}", self.prefix, node)
    }

    /// Runs `topo.sh ARGS` for this topology.
    pub fn script(&self, args: &[&str]) -> Output {
        Command::new(workspace_root().join("tests/topo.sh"))
            .args(args)
            .env("TOPO_PREFIX", &self.prefix)
            .output()
            .expect("run tests/topo.sh (bash and iproute2 are needed)")
    }

    /// Runs `cmd` in `node`'s namespace.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        self.script(&[&["exec", node], cmd].concat())
    }

    /// Removes the topology now, returning topo.sh's error output on failure.
    pub fn down(mut self) -> Result<(), String> {
        let r = self.remove();
        self.prefix.clear();
        r
    }

    fn remove(&self) -> Result<(), String> {
        let out = self.script(&["down"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.prefix.is_empty() {
            let _ = self.remove();
        }
    }
}

/// The namespaces that currently exist (`ip netns list`, names only).
pub fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run `ip netns list` (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Stdout of a command that must succeed, trimmed; panics with its stderr otherwise.
pub fn stdout_ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `node`'s neighbour entry for `ip` on eth0: (lladdr, state), as `ip neigh` shows it.
pub fn neigh(t: &Topology, node: &str, ip: &str) -> Option<(common::net::frame::MacAddr, String)> {
    let out = stdout_ok(
        "ip neigh",
        t.exec(node, &["ip", "neigh", "show", ip, "dev", "eth0"]),
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    Some((words.get(at + 1)?.parse().ok()?, words.last()?.to_string()))
}

/// Real traffic from `node` to `ip`: a TCP connection attempt (refused, but the neighbour entry
/// is resolved and confirmed on the way).
pub fn touch(t: &Topology, node: &str, ip: &str) {
    let out = t.exec(
        node,
        &[
            "bash",
            "-c",
            &format!("echo > /dev/tcp/{ip}/9 2>/dev/null; true"),
        ],
    );
    assert!(out.status.success());
}
