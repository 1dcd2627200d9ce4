//! Running `monitor run` in tests: a scratch directory with a recording alert, the daemon with
//! `--events json`, its events as they come, the client commands.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn monitor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
}

/// A scratch directory: `alert.d/rec.alert` records each call in `calls/` (argv one per line,
/// the environment NUL-separated, stdin).
pub struct Scratch {
    pub dir: PathBuf,
}

pub const REC_ALERT: &str = r#"#!/bin/sh
c=$(mktemp -d "$REC_DIR/call.$(date +%s%N).XXXXXX")
printf '%s\n' "$@" > "$c/argv"
env -0 > "$c/env"
cat > "$c/stdin"
"#;

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("monitor-daemon-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("alert.d")).unwrap();
        std::fs::create_dir_all(dir.join("calls")).unwrap();
        let s = Scratch { dir };
        s.script("alert.d/rec.alert", REC_ALERT);
        s
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    /// The configuration: the settings every test shares, then `body`.
    pub fn config(&self, body: &str) -> PathBuf {
        let text = format!(
            "alert_dirs = [\"{d}/alert.d\", \"/usr/lib/mon/alert.d\"]\n\
             socket = \"{d}/monitor.sock\"\nstate_file = \"{d}/state.json\"\n{body}",
            d = self.dir.display()
        );
        let p = self.dir.join("monitor.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The recorded alert calls, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("calls"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs.iter()
            .filter(|d| d.join("stdin").exists())
            .map(|d| Call::read(d))
            .collect()
    }

    /// Waits up to `timeout` for a recorded call matching `pred`.
    pub fn wait_call(&self, what: &str, timeout: Duration, pred: impl Fn(&Call) -> bool) -> Call {
        let end = Instant::now() + timeout;
        loop {
            if let Some(c) = self.calls().into_iter().find(|c| pred(c)) {
                return c;
            }
            assert!(
                Instant::now() < end,
                "no alert call {what} within {timeout:?}; calls: {:#?}",
                self.calls()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One call of the recording alert.
#[derive(Debug, Clone)]
pub struct Call {
    pub argv: Vec<String>,
    /// The `MON_*` variables.
    pub env: std::collections::BTreeMap<String, String>,
    pub stdin: String,
}

impl Call {
    fn read(d: &Path) -> Call {
        // The script may still be writing stdin: read what is there (tests wait for content).
        let argv = std::fs::read_to_string(d.join("argv")).unwrap_or_default();
        let env = std::fs::read(d.join("env")).unwrap_or_default();
        Call {
            argv: argv.lines().map(String::from).collect(),
            env: env
                .split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
                .filter(|(k, _)| k.starts_with("MON_"))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdin: std::fs::read_to_string(d.join("stdin")).unwrap_or_default(),
        }
    }

    /// The argument after mon's options (the alert's own).
    pub fn last(&self) -> &str {
        self.argv.last().map_or("", String::as_str)
    }
}

/// A TCP server on 127.0.0.1 that accepts and closes, until stopped.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(port: u16) -> Server {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting and closes the port (connections are refused from now on).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A port on 127.0.0.1 nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `monitor run --events json` with its events and its log.
pub struct Daemon {
    child: Child,
    rx: Receiver<Value>,
    /// Every event seen so far.
    pub seen: Vec<Value>,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(scratch: &Scratch, config: &Path) -> Daemon {
        Daemon::start_with(scratch, config, &[])
    }

    /// With these environment variables too.
    pub fn start_with(scratch: &Scratch, config: &Path, env: &[(&str, &Path)]) -> Daemon {
        let mut child = monitor()
            .args([
                "run",
                "--events",
                "json",
                "--log-level",
                "debug",
                "--config",
            ])
            .arg(config)
            .env("REC_DIR", scratch.dir.join("calls"))
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON event line ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let l = log.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                l.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon {
            child,
            rx,
            seen: Vec::new(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for an event matching `pred` (earlier events are kept in `seen`).
    pub fn wait(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "no event {what} within {timeout:?}; events: {:#?}\nlog:\n{}",
                    self.seen,
                    self.log()
                ),
            }
        }
    }

    /// Takes in the events that came so far.
    pub fn drain(&mut self) {
        while let Ok(v) = self.rx.try_recv() {
            self.seen.push(v);
        }
    }

    /// Events matching `pred` seen so far.
    pub fn count(&mut self, pred: impl Fn(&Value) -> bool) -> usize {
        self.drain();
        self.seen.iter().filter(|v| pred(v)).count()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("monitor did not stop on SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The stderr thread ends with the process.
        std::thread::sleep(Duration::from_millis(50));
        (status, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Is this event `event` of `service` (and `kind` when given)?
pub fn is(v: &Value, event: &str, service: &str) -> bool {
    v["event"] == event && v["service"] == service
}

/// A client command against the daemon's socket.
pub fn client(scratch: &Scratch, args: &[&str]) -> Output {
    monitor()
        .args(args)
        .arg("--socket")
        .arg(scratch.socket())
        .output()
        .unwrap()
}

pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// `monitor status --json`, once the daemon answers (it may be starting).
pub fn status_json(scratch: &Scratch) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = client(scratch, &["status", "--json"]);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(Instant::now() < end, "the daemon does not answer: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
