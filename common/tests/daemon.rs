//! Process-level tests of `common::daemon`: logging output, signal delivery and sd-notify
//! datagrams, each observed from outside a real child process.
//!
//! The child is the fixture binary `daemon-test-child` (`tests/bin/daemon_child.rs`), started with
//! its role as argument. Its environment is built from scratch for the variables that matter, so the
//! tests neither mutate this process's environment nor depend on where they run (e.g. under systemd
//! with `JOURNAL_STREAM` set). Every wait is on an event (a line, a datagram, an exit) with a
//! generous deadline that fails naming the event.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD: &str = env!("CARGO_BIN_EXE_daemon-test-child");
const ARGS_ENV: &str = "COMMON_DAEMON_TEST_ARGS";
const MARK: &str = "child: ";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Variables the children must not inherit from whatever runs the tests.
const SCRUBBED: [&str; 7] = [
    "RUST_LOG",
    "JOURNAL_STREAM",
    "NO_COLOR",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    ARGS_ENV,
];

// ---------------------------------------------------------------------------------------------
// Parent side: harness

fn child(role: &str, args: &str, envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(CHILD);
    c.arg(role);
    for v in SCRUBBED {
        c.env_remove(v);
    }
    c.env(ARGS_ENV, args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

struct Output {
    code: Option<i32>,
    marks: Vec<String>,
    stderr: String,
}

/// Runs a child to completion (killing it after [`TIMEOUT`]).
fn run(cmd: Command) -> Output {
    let mut live = Live::spawn(cmd);
    let code = live.wait();
    // The reader threads end at EOF, which follows the child's exit.
    let marks = live.marks.iter().collect();
    let stderr = live.stderr.iter().map(|l| l + "\n").collect();
    Output {
        code,
        marks,
        stderr,
    }
}

fn mark_of(line: &str) -> Option<&str> {
    line.strip_prefix(MARK)
}

/// A running child whose stdout marks and stderr lines arrive on channels.
struct Live {
    child: Child,
    marks: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Live {
    fn spawn(mut cmd: Command) -> Live {
        let mut child = cmd.spawn().expect("spawn child");
        let (mtx, marks) = mpsc::channel();
        let (etx, stderr) = mpsc::channel();
        let so = BufReader::new(child.stdout.take().unwrap());
        let se = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in so.lines().map_while(Result::ok) {
                if let Some(m) = mark_of(&line) {
                    let _ = mtx.send(m.to_owned());
                }
            }
        });
        std::thread::spawn(move || {
            for line in se.lines().map_while(Result::ok) {
                let _ = etx.send(line);
            }
        });
        Live {
            child,
            marks,
            stderr,
        }
    }

    fn expect_mark(&mut self, want: &str) {
        match self.marks.recv_timeout(TIMEOUT) {
            Ok(m) => assert_eq!(m, want),
            Err(e) => panic!("waiting for {want:?}: {e}"),
        }
    }

    fn expect_stderr_containing(&mut self, want: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(want) => return,
                Ok(_) => {}
                Err(e) => panic!("waiting for stderr {want:?}: {e}"),
            }
        }
        panic!("timed out waiting for stderr {want:?}");
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits for the child's exit status; kills it and fails after [`TIMEOUT`]. The child is
    /// only reaped here, so `kill` can never hit a recycled pid.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("child did not exit within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "common-daemon-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    // e.g. 2025-01-31T12:34:56.789012Z
    let b = s.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
}

// ---------------------------------------------------------------------------------------------
// Logging

#[test]
fn log_text_has_timestamps_outside_the_journal() {
    let out = run(child("log", "", &[]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let l = lines[0];
    assert!(looks_like_timestamp(l), "{l}");
    assert!(l.contains(" INFO "), "{l}");
    assert!(l.contains("taking over"), "{l}");
    assert!(
        l.contains("vip=\"192.0.2.100\"") || l.contains("vip=192.0.2.100"),
        "{l}"
    );
    assert!(!l.contains('\u{1b}'), "no colours on a pipe: {l:?}");
}

#[test]
fn log_text_has_no_timestamps_under_the_journal() {
    let out = run(child("log", "", &[("JOURNAL_STREAM", "8:123456")]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].trim_start().starts_with("INFO "), "{}", lines[0]);
    assert!(lines[0].contains("taking over"), "{}", lines[0]);
}

fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn log_json_is_one_object_per_line() {
    for (journal, has_ts) in [(false, true), (true, false)] {
        let envs: &[(&str, &str)] = if journal {
            &[("JOURNAL_STREAM", "8:123456")]
        } else {
            &[]
        };
        let out = run(child("log", "--log-format json", envs));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let v = json_lines(&out.stderr);
        assert_eq!(v.len(), 1, "{}", out.stderr);
        let v = &v[0];
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "taking over");
        assert_eq!(v["fields"]["vip"], "192.0.2.100");
        assert_eq!(v["fields"]["reason"], "deadtime expired");
        assert_eq!(
            v.get("timestamp").is_some(),
            has_ts,
            "journal={journal}: {v}"
        );
        if has_ts {
            assert!(
                looks_like_timestamp(v["timestamp"].as_str().unwrap()),
                "{v}"
            );
        }
    }
}

#[test]
fn log_level_flag_wins_over_rust_log() {
    let out = run(child(
        "log",
        "--log-format json --log-level debug",
        &[("RUST_LOG", "error")],
    ));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let levels: Vec<_> = json_lines(&out.stderr)
        .iter()
        .map(|v| v["level"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(levels, ["DEBUG", "INFO"]);
}

#[test]
fn log_rust_log_applies_without_flag() {
    let out = run(child("log", "", &[("RUST_LOG", "warn")]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[test]
fn log_invalid_filter_is_a_clear_error_not_a_panic() {
    let out = run(child("log", "", &[("RUST_LOG", "info,ldir=loud")]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("RUST_LOG \"info,ldir=loud\""),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    let out = run(child("log", "--log-level infoo", &[]));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--log-level \"infoo\": unknown level"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Signals

#[test]
fn signals_hup_usr1_term_arrive_as_reload_dump_shutdown() {
    let mut ch = Live::spawn(child("signals", "", &[]));
    ch.expect_mark("second install refused");
    ch.expect_mark("ready");
    ch.signal("HUP");
    ch.expect_mark("reload");
    ch.signal("USR1");
    ch.expect_mark("dump");
    ch.signal("HUP");
    ch.expect_mark("reload");
    ch.signal("TERM");
    ch.expect_mark("shutdown");
    assert_eq!(ch.wait(), Some(0));
}

#[test]
fn signals_int_is_shutdown() {
    let mut ch = Live::spawn(child("signals", "", &[]));
    ch.expect_mark("second install refused");
    ch.expect_mark("ready");
    ch.signal("INT");
    ch.expect_mark("shutdown");
    assert_eq!(ch.wait(), Some(0));
}

#[test]
fn signals_shutdown_future_ignores_reload_and_ends_on_term() {
    let mut ch = Live::spawn(child("shutdown-future", "", &[]));
    ch.expect_mark("ready");
    ch.signal("HUP");
    ch.expect_stderr_containing("signal ignored");
    ch.signal("TERM");
    ch.expect_mark("stopped");
    assert_eq!(ch.wait(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// sd-notify

/// Runs the notify child against a fresh datagram socket; returns its marks and every datagram
/// received, in order. After each of the child's four messages the child waits for a go-ahead on
/// stdin: it is given once that message has arrived and, with `keepalives`, once a `WATCHDOG=1` has
/// arrived after it, so keepalives are proven to run alongside the main flow by events, not by time.
fn notify_session(extra_env: &[(&str, &str)], keepalives: bool) -> (Vec<String>, Vec<String>) {
    const STEPS: [&str; 4] = ["READY=1\n", "STATUS=", "RELOADING=1\n", "STOPPING=1\n"];
    let dir = TempDir::new("notify");
    let path = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut envs = vec![("NOTIFY_SOCKET", path.to_str().unwrap())];
    envs.extend_from_slice(extra_env);
    let mut cmd = child("notify", "", &envs);
    cmd.stdin(Stdio::piped());
    let mut ch = Live::spawn(cmd);
    let mut go = ch.child.stdin.take().unwrap();
    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut recv_until = |got: &mut Vec<String>, what: &str, pred: &dyn Fn(&str) -> bool| loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
                if pred(got.last().unwrap()) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("waiting {TIMEOUT:?} for the datagram {what}: {e}; got {got:?}"),
        }
    };
    for step in STEPS {
        recv_until(&mut got, step, &|d| d.starts_with(step));
        if keepalives {
            recv_until(&mut got, &format!("WATCHDOG=1 after {step:?}"), &|d| {
                d == "WATCHDOG=1\n"
            });
        }
        writeln!(go, "go").expect("give the child its go-ahead");
    }
    drop(go);
    let code = ch.wait();
    // Everything the child sent is queued on the socket by now: read what is left without waiting.
    sock.set_nonblocking(true).unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    // The reader thread ends at the child's end of output: every mark is in.
    let marks: Vec<String> = ch.marks.iter().collect();
    assert_eq!(code, Some(0), "{marks:?}");
    (marks, got)
}

#[test]
fn notify_sends_exact_datagrams_and_watchdog_keepalives() {
    let before = monotonic_usec();
    let (marks, got) = notify_session(&[("WATCHDOG_USEC", "200000")], true);
    let after = monotonic_usec();
    assert_eq!(
        marks,
        [
            "watchdog Some(100ms)",
            "sent 0",
            "sent 1",
            "sent 2",
            "sent 3",
            "done"
        ]
    );

    let (keepalives, others): (Vec<_>, Vec<_>) = got.iter().partition(|d| *d == "WATCHDOG=1\n");
    assert_eq!(others.len(), 4, "{got:?}");
    assert_eq!(others[0], "READY=1\n");
    assert_eq!(others[1], "STATUS=serving 2 virtuals READY=1\n");
    let usec: i128 = others[2]
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{:?}", others[2]))
        .parse()
        .unwrap();
    assert!(
        before <= usec && usec <= after,
        "{before} <= {usec} <= {after}"
    );
    assert_eq!(others[3], "STOPPING=1\n");

    // Keepalives run alongside the main flow, not only at its ends: the session waited for one
    // after each message, so at least three lie between READY and STOPPING.
    assert!(keepalives.len() >= 4, "{got:?}");
    let pos = |d: &str| got.iter().position(|g| g.as_str() == d).unwrap();
    let between = got[pos("READY=1\n")..pos("STOPPING=1\n")]
        .iter()
        .filter(|d| *d == "WATCHDOG=1\n")
        .count();
    assert!(between >= 3, "{got:?}");
}

#[test]
fn notify_watchdog_pid_of_another_process_means_no_keepalives() {
    let parent = std::process::id().to_string();
    let (marks, got) = notify_session(
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", &parent)],
        false,
    );
    assert_eq!(
        marks,
        [
            "watchdog None",
            "sent 0",
            "sent 1",
            "sent 2",
            "sent 3",
            "done"
        ]
    );
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(!got.iter().any(|d| d.contains("WATCHDOG")), "{got:?}");
}

#[test]
fn notify_without_socket_succeeds_silently() {
    let out = run(child("notify", "", &[("WATCHDOG_USEC", "200000")]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.marks,
        [
            "watchdog None",
            "sent 0",
            "sent 1",
            "sent 2",
            "sent 3",
            "done"
        ]
    );
}

fn monotonic_usec() -> i128 {
    match sd_notify::NotifyState::monotonic_usec_now().unwrap() {
        sd_notify::NotifyState::MonotonicUsec(u) => u,
        other => panic!("{other:?}"),
    }
}
