//! Real processes: `sh` scripts written to a temporary directory record what they were asked in a
//! log file; the runner's channel says when something happened, so no test sleeps for a guess.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::*;

/// Generous: the machine is shared and slow; a deadline only turns a hang into a failure.
const DEADLINE: Duration = Duration::from_secs(20);

/// A scratch directory removed on drop (also used by other modules' tests).
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hbeat-resource-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes an executable `sh` script.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// A script resource that logs its name and all its arguments, and succeeds.
    fn recording_script(&self, name: &str) -> String {
        let log = self.path("log");
        self.script(name, &format!("echo \"{name} $*\" >> {}", log.display()))
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fast() -> Timings {
    Timings {
        settle: Duration::from_millis(100),
        script_timeout: Duration::from_secs(10),
        kill_after: Duration::from_secs(10),
        restart_min: Duration::from_millis(50),
        restart_max: Duration::from_secs(1),
        self_restart: true,
    }
}

/// A command resource that keeps the armed contract (`HBEAT_ARMED=1`: wait for a line on stdin,
/// end of file = exit 0 having done nothing), logging `armed PID`, `go PID` or `gave up PID`.
fn armed_command(log: &Path) -> Resource {
    let log = log.display();
    Resource::Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo armed $$ $HBEAT_ARMED >> {log}; if read -r go; then echo go $$ >> {log}; \
                 exec sleep 1000; else echo gave up $$ >> {log}; fi"
            ),
        ],
        armed: true,
    }
}

/// The pid in an `armed PID 1` or `go PID` line of [`armed_command`]'s log (its second
/// word).
fn armed_pid(line: &str) -> u32 {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

fn runner_of(
    resources: Vec<Resource>,
    timings: Timings,
) -> (GroupRunner, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (GroupRunner::new("lb1", "web", resources, timings, tx), rx)
}

fn runner(resources: &[&str], timings: Timings) -> (GroupRunner, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let resources = resources
        .iter()
        .map(|r| Resource::parse(r).unwrap())
        .collect();
    (GroupRunner::new("lb1", "web", resources, timings, tx), rx)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    match tokio::time::timeout(DEADLINE, rx.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("event channel closed"),
        Err(_) => panic!("no event within {DEADLINE:?}"),
    }
}

/// Kills what a failing test would otherwise leave behind (and keep cargo's output pipe open).
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

/// Waits (bounded) until `pid` is gone (or a zombie: not ours to reap).
async fn wait_gone(pid: u32) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while alive(pid) && !is_zombie(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pid {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

/// Waits (bounded) until `path` holds a line, and returns the first one.
async fn wait_for_line(path: &Path) -> String {
    wait_for_lines(path, 1).await.swap_remove(0)
}

/// Waits (bounded) until `path` holds `n` complete lines, and returns them.
async fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
            && s.lines().count() >= n
        {
            return s.lines().map(str::to_owned).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not get {n} line(s) within {DEADLINE:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A long-running command that logs its start and its TERM, then exits on TERM.
fn logging_command(dir: &TempDir, name: &str) -> String {
    let log = dir.path("log");
    format!(
        "sh -c 'trap \"echo {name} term >> {log}; exit 0\" TERM; echo {name} start >> {log}; \
         while :; do sleep 0.05; done'",
        log = log.display()
    )
}

#[test]
fn parse_commands_and_scripts() {
    assert_eq!(
        Resource::parse("fakeip hold 192.0.2.100/24 dev eth0").unwrap(),
        Resource::Command {
            argv: ["fakeip", "hold", "192.0.2.100/24", "dev", "eth0"]
                .map(String::from)
                .into(),
            armed: false,
        }
    );
    assert_eq!(
        Resource::parse("sh -c 'echo \"a b\" > /dev/null'").unwrap(),
        Resource::Command {
            argv: ["sh", "-c", "echo \"a b\" > /dev/null"]
                .map(String::from)
                .into(),
            armed: false,
        }
    );
    assert_eq!(
        Resource::parse("script:/etc/hbeat/resource.d/ldir-sync::master").unwrap(),
        Resource::Script {
            script: "/etc/hbeat/resource.d/ldir-sync".into(),
            args: vec!["master".into()]
        }
    );
    assert_eq!(
        Resource::parse("script:IPaddr2::192.0.2.100/24::eth0").unwrap(),
        Resource::Script {
            script: "IPaddr2".into(),
            args: vec!["192.0.2.100/24".into(), "eth0".into()]
        }
    );
    for (bad, wanted) in [
        ("", "the command is empty"),
        ("   ", "the command is empty"),
        ("sleep 'x", "unterminated quote"),
        ("script:", "needs a path"),
        ("script:::a", "needs a path"),
        ("script:rel/x", "must be absolute"),
        ("script:/x::", "empty script argument"),
        ("armed:sleep 1000", "is for `fakeip hold …`"),
        (
            "armed:fakeip up 192.0.2.100/24 dev eth0",
            "is for `fakeip hold …`",
        ),
        ("armed:script:/x::a", "applies to a command"),
        ("armed:", "the command is empty"),
    ] {
        let e = Resource::parse(bad).unwrap_err();
        assert!(e.contains(wanted), "{bad:?}: {e}");
    }
    // Display writes a form that parses back to the same resource.
    for spec in [
        "fakeip hold 192.0.2.100/24 dev eth0",
        "armed:/usr/sbin/fakeip hold 192.0.2.100/24 dev eth0",
        "sh -c 'exec sleep 10'",
        "script:/x/y::a::b",
    ] {
        let r = Resource::parse(spec).unwrap();
        assert_eq!(Resource::parse(&r.to_string()).unwrap(), r, "{spec}");
    }
}

#[test]
fn armed_fakeip_hold_parses_and_hashes_like_the_plain_command() {
    let armed = Resource::parse("armed:fakeip hold 192.0.2.100/24 dev eth0").unwrap();
    let plain = Resource::parse("fakeip hold 192.0.2.100/24 dev eth0").unwrap();
    assert!(matches!(armed, Resource::Command { armed: true, .. }));
    assert_eq!(
        armed.to_string(),
        "armed:fakeip hold 192.0.2.100/24 dev eth0"
    );
    assert_eq!(armed.program(), "fakeip");
    assert_eq!(armed.canonical_words(), plain.canonical_words());
}

#[test]
fn resolve_finds_programs_and_says_why_not() {
    let dir = TempDir::new("resolve");
    let exe = dir.script("tool", "exit 0");
    let plain = dir.path("plain");
    std::fs::write(&plain, "not a program").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path_var = dir.0.as_os_str();

    let r = Resource::parse("tool --flag").unwrap();
    assert_eq!(r.resolve(Some(path_var)).unwrap(), PathBuf::from(&exe));
    let r = Resource::parse("plain").unwrap();
    assert_eq!(
        r.resolve(Some(path_var)).unwrap_err(),
        ProgramError::NotExecutable {
            path: plain.clone(),
            mode: 0o644
        }
    );
    let e = Resource::parse("nosuchtool")
        .unwrap()
        .resolve(Some(OsStr::new("/nonexistent-a:/nonexistent-b")))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`nosuchtool` not found in PATH (/nonexistent-a:/nonexistent-b)"
    );
    let r = Resource::parse(&format!("script:{}::x", plain.display())).unwrap();
    assert!(
        r.resolve(None)
            .unwrap_err()
            .to_string()
            .contains("is not executable (mode 0644); chmod +x it")
    );
    let r = Resource::parse(&format!("{} x", dir.0.display())).unwrap();
    assert!(matches!(
        r.resolve(None).unwrap_err(),
        ProgramError::NotAFile { .. }
    ));
    let r = Resource::parse("script:/nonexistent/hbeat-script").unwrap();
    assert!(matches!(
        r.resolve(None).unwrap_err(),
        ProgramError::NotFound { .. }
    ));
    // A bare script name is looked up in the script directories, which do not hold this one.
    let e = Resource::parse("script:hbeat-no-such-script")
        .unwrap()
        .resolve(None)
        .unwrap_err();
    assert!(e.to_string().contains("/etc/hbeat/resource.d"), "{e}");
    // `sh` itself is found through the process's PATH.
    assert!(
        Resource::parse("sh -c 'exit 0'")
            .unwrap()
            .resolve(None)
            .is_ok()
    );
}

#[tokio::test]
async fn start_left_to_right_stop_right_to_left() {
    let dir = TempDir::new("order");
    let a = dir.recording_script("a");
    let c = dir.recording_script("c");
    let b = logging_command(&dir, "b");
    let (mut g, mut rx) = runner(
        &[&format!("script:{a}::x"), &b, &format!("script:{c}")],
        fast(),
    );
    g.acquire(&Cause::new(Some("lb2"), "deadtime expired"))
        .await
        .unwrap();
    assert!(g.is_held());
    assert_eq!(
        next_event(&mut rx).await,
        Event::Acquired {
            group: "web".into()
        }
    );
    // The script got its argument, then the action.
    assert_eq!(dir.log(), ["a x start", "b start", "c start"]);

    g.release(&Cause::new(None, "shutdown")).await.unwrap();
    assert!(!g.is_held());
    assert_eq!(
        dir.log(),
        [
            "a x start",
            "b start",
            "c start",
            "c stop",
            "b term",
            "a x stop"
        ]
    );
    let mut stopped = Vec::new();
    loop {
        match next_event(&mut rx).await {
            Event::Stopped { index, how, .. } => stopped.push((index, how)),
            Event::Released { errors, .. } => {
                assert!(errors.is_empty(), "{errors:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        stopped,
        [
            (2, Stopped::Script),
            (1, Stopped::Terminated),
            (0, Stopped::Script)
        ]
    );
}

#[tokio::test]
async fn a_command_that_ignores_term_gets_kill() {
    let dir = TempDir::new("kill");
    let pidfile = dir.path("pid");
    let cmd = format!(
        "sh -c 'trap \"\" TERM; echo $$ > {}; while :; do sleep 0.05; done'",
        pidfile.display()
    );
    let timings = Timings {
        kill_after: Duration::from_millis(300),
        ..fast()
    };
    let (mut g, mut rx) = runner(&[&cmd], timings);
    g.acquire(&Cause::default()).await.unwrap();
    let pid: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    assert!(alive(pid));
    g.release(&Cause::default()).await.unwrap();
    assert!(!alive(pid), "pid {pid} survived the release");
    assert_eq!(
        next_event(&mut rx).await,
        Event::Acquired {
            group: "web".into()
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        Event::Stopped {
            group: "web".into(),
            index: 0,
            how: Stopped::Killed
        }
    );
}

#[tokio::test]
async fn a_command_that_dies_is_restarted() {
    let dir = TempDir::new("restart");
    let log = dir.path("log");
    let cmd = format!("sh -c 'echo $$ >> {}; exec sleep 1000'", log.display());
    let (mut g, mut rx) = runner(&[&cmd], fast());
    g.acquire(&Cause::new(Some("lb2"), "takeover"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut rx).await,
        Event::Acquired {
            group: "web".into()
        }
    );
    let first: u32 = wait_for_line(&log).await.parse().unwrap();
    assert_eq!(
        g.status().await,
        [ResourceState::Running { pid: Some(first) }]
    );

    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    match next_event(&mut rx).await {
        Event::Died {
            index: 0,
            status,
            restart_in,
            ..
        } => {
            assert_eq!(status, "killed by SIGKILL");
            assert_eq!(restart_in, Duration::from_millis(50));
        }
        other => panic!("unexpected {other:?}"),
    }
    let second = match next_event(&mut rx).await {
        Event::Restarted { index: 0, pid, .. } => pid,
        other => panic!("unexpected {other:?}"),
    };
    assert_ne!(second, first);
    assert!(alive(second));
    // The restarted command ran (and got its environment): it logged its own pid.
    assert_eq!(wait_for_lines(&log, 2).await[1], second.to_string());
    assert_eq!(
        g.status().await,
        [ResourceState::Running { pid: Some(second) }]
    );
    // A second death in a row waits twice as long (bounded backoff).
    kill(Pid::from_raw(second as i32), Signal::SIGKILL).unwrap();
    match next_event(&mut rx).await {
        Event::Died { restart_in, .. } => assert_eq!(restart_in, Duration::from_millis(100)),
        other => panic!("unexpected {other:?}"),
    }
    let third = match next_event(&mut rx).await {
        Event::Restarted { pid, .. } => pid,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(wait_for_lines(&log, 3).await[2], third.to_string());
    g.release(&Cause::default()).await.unwrap();
    assert!(!alive(third));
}

#[tokio::test]
async fn a_failing_start_rolls_back_what_was_started() {
    let dir = TempDir::new("rollback");
    let a = dir.recording_script("a");
    let b = logging_command(&dir, "b");
    let log = dir.path("log");
    let fail = dir.script(
        "fail",
        &format!("echo \"fail $1\" >> {}; exit 1", log.display()),
    );
    let d = dir.recording_script("d");
    let (mut g, mut rx) = runner(
        &[
            &format!("script:{a}"),
            &b,
            &format!("script:{fail}"),
            &format!("script:{d}"),
        ],
        fast(),
    );
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert_eq!(e.index, 2);
    assert_eq!(
        e.error,
        RunError::Failed {
            action: "start",
            status: "exit status 1".into()
        }
    );
    assert!(e.rollback.is_empty(), "{:?}", e.rollback);
    assert!(
        e.to_string().starts_with("group web: resource 2 (`script:"),
        "{e}"
    );
    assert!(!g.is_held());
    // d never started; b and a stopped, right to left.
    assert_eq!(
        dir.log(),
        ["a start", "b start", "fail start", "b term", "a stop"]
    );
    let mut events = Vec::new();
    loop {
        let ev = next_event(&mut rx).await;
        let last = matches!(ev, Event::AcquireFailed { .. });
        events.push(ev);
        if last {
            break;
        }
    }
    assert!(
        matches!(
            events[0],
            Event::Stopped {
                index: 1,
                how: Stopped::Terminated,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(
            events[1],
            Event::Stopped {
                index: 0,
                how: Stopped::Script,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(&events[2], Event::AcquireFailed { index: 2, .. }),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_command_that_exits_during_the_settle_time_is_a_failed_start() {
    let dir = TempDir::new("early");
    let a = dir.recording_script("a");
    let (mut g, _rx) = runner(&[&format!("script:{a}"), "sh -c 'exit 0'"], fast());
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(
        e.error,
        RunError::ExitedEarly {
            status: "exit status 0".into()
        }
    );
    assert_eq!(dir.log(), ["a start", "a stop"]);
    // A program that does not exist fails the same way, at spawn.
    let (mut g, _rx) = runner(&["/nonexistent/hbeat-program"], fast());
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert!(matches!(e.error, RunError::Spawn { .. }), "{e}");
}

#[tokio::test]
async fn script_status_follows_lsb_exit_codes() {
    let dir = TempDir::new("status");
    let code = dir.path("code");
    let s = dir.script(
        "svc",
        &format!(
            "[ \"$1\" = status ] && exit $(cat {})\nexit 0",
            code.display()
        ),
    );
    let (g, _rx) = runner(&[&format!("script:{s}")], fast());
    for (c, wanted) in [
        ("0", ResourceState::Running { pid: None }),
        ("3", ResourceState::NotRunning),
        ("1", ResourceState::Failed("`status` exit status 1".into())),
        ("4", ResourceState::Failed("`status` exit status 4".into())),
    ] {
        std::fs::write(&code, c).unwrap();
        assert_eq!(g.status().await, [wanted], "status exit {c}");
    }
    // A command that was never started is not running.
    let (g, _rx) = runner(&["sleep 1000"], fast());
    assert_eq!(g.status().await, [ResourceState::NotRunning]);
}

#[tokio::test]
async fn a_script_that_hangs_is_killed_at_the_timeout() {
    let dir = TempDir::new("hang");
    let pidfile = dir.path("pid");
    let s = dir.script(
        "hang",
        &format!("echo $$ > {}; exec sleep 1000", pidfile.display()),
    );
    let timings = Timings {
        script_timeout: Duration::from_millis(500),
        ..fast()
    };
    let (mut g, _rx) = runner(&[&format!("script:{s}")], timings);
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert_eq!(
        e.error,
        RunError::TimedOut {
            action: "start",
            timeout: Duration::from_millis(500)
        }
    );
    let pid: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    let _cleanup = KillOnDrop(vec![pid]);
    assert!(!alive(pid), "the hung script {pid} was left behind");
}

#[tokio::test]
async fn resources_get_the_hbeat_environment() {
    let dir = TempDir::new("env");
    let s = dir.script(
        "env",
        &format!(
            "echo \"$1 node=$HBEAT_NODE group=$HBEAT_GROUP peer=$HBEAT_PEER reason=$HBEAT_REASON\" >> {}",
            dir.path("script.env").display()
        ),
    );
    let cmd = format!(
        "sh -c 'echo \"node=$HBEAT_NODE group=$HBEAT_GROUP peer=$HBEAT_PEER reason=$HBEAT_REASON\" > {}; exec sleep 1000'",
        dir.path("cmd.env").display()
    );
    let (mut g, _rx) = runner(&[&format!("script:{s}"), &cmd], fast());
    g.acquire(&Cause::new(Some("lb2"), "deadtime expired"))
        .await
        .unwrap();
    assert_eq!(
        wait_for_line(&dir.path("cmd.env")).await,
        "node=lb1 group=web peer=lb2 reason=deadtime expired"
    );
    g.release(&Cause::new(None, "standby")).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path("script.env")).unwrap(),
        "start node=lb1 group=web peer=lb2 reason=deadtime expired\n\
         stop node=lb1 group=web peer= reason=standby\n"
    );
}

#[tokio::test]
async fn dropping_the_runner_stops_its_commands() {
    let dir = TempDir::new("drop");
    let pidfile = dir.path("pid");
    let cmd = format!("sh -c 'echo $$ > {}; exec sleep 1000'", pidfile.display());
    let (mut g, _rx) = runner(&[&cmd], fast());
    g.acquire(&Cause::default()).await.unwrap();
    let pid: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    drop(g);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pid {pid} outlived its runner"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn term_reaches_the_whole_process_group() {
    // `sh -c 'sleep 1000; …'` runs sleep as a child of sh: TERM to sh alone would leave it behind.
    let dir = TempDir::new("group");
    let pidfile = dir.path("pid");
    let cmd = format!("sh -c 'sleep 1000 & echo $! > {}; wait'", pidfile.display());
    let (mut g, _rx) = runner(&[&cmd], fast());
    g.acquire(&Cause::default()).await.unwrap();
    let grandchild: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    let _cleanup = KillOnDrop(vec![grandchild]);
    assert!(alive(grandchild));
    g.release(&Cause::default()).await.unwrap();
    wait_gone(grandchild).await;
}

#[tokio::test]
async fn what_ignores_term_in_the_group_gets_kill_too() {
    // The command exits on TERM, but something it started ignores TERM: the group gets KILL.
    let dir = TempDir::new("stubborn");
    let pidfile = dir.path("pid");
    let stubborn = dir.script(
        "stubborn",
        &format!(
            "trap '' TERM; echo $$ > {}; while :; do sleep 0.05; done",
            pidfile.display()
        ),
    );
    let timings = Timings {
        kill_after: Duration::from_millis(300),
        ..fast()
    };
    let (mut g, mut rx) = runner(&[&format!("sh -c '{stubborn} & wait'")], timings);
    g.acquire(&Cause::default()).await.unwrap();
    let grandchild: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    let _cleanup = KillOnDrop(vec![grandchild]);
    g.release(&Cause::default()).await.unwrap();
    wait_gone(grandchild).await;
    assert_eq!(
        next_event(&mut rx).await,
        Event::Acquired {
            group: "web".into()
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        Event::Stopped {
            group: "web".into(),
            index: 0,
            how: Stopped::Killed
        }
    );
}

#[tokio::test]
async fn what_a_dead_command_left_behind_is_killed_before_the_restart() {
    let dir = TempDir::new("leftover");
    let log = dir.path("log");
    let cmd = format!(
        "sh -c 'sleep 1000 & echo \"$$ $!\" >> {}; wait'",
        log.display()
    );
    let (mut g, mut rx) = runner(&[&cmd], fast());
    g.acquire(&Cause::default()).await.unwrap();
    let first = wait_for_line(&log).await;
    let (leader, child) = first.split_once(' ').unwrap();
    let (leader, child): (u32, u32) = (leader.parse().unwrap(), child.parse().unwrap());
    let _cleanup = KillOnDrop(vec![child]);
    kill(Pid::from_raw(leader as i32), Signal::SIGKILL).unwrap();
    assert!(matches!(next_event(&mut rx).await, Event::Acquired { .. }));
    assert!(matches!(next_event(&mut rx).await, Event::Died { .. }));
    wait_gone(child).await;
    assert!(matches!(next_event(&mut rx).await, Event::Restarted { .. }));
    let lines = wait_for_lines(&log, 2).await;
    let new_child: u32 = lines[1].split_once(' ').unwrap().1.parse().unwrap();
    let _cleanup2 = KillOnDrop(vec![new_child]);
    g.release(&Cause::default()).await.unwrap();
    wait_gone(new_child).await;
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn a_failed_stop_is_reported_and_the_rest_still_stop() {
    let dir = TempDir::new("stopfail");
    let a = dir.recording_script("a");
    let log = dir.path("log");
    let bad = dir.script(
        "bad",
        &format!(
            "echo \"bad $1\" >> {}; [ \"$1\" = stop ] && exit 1; exit 0",
            log.display()
        ),
    );
    let (mut g, mut rx) = runner(&[&format!("script:{a}"), &format!("script:{bad}")], fast());
    g.acquire(&Cause::default()).await.unwrap();
    let e = g.release(&Cause::default()).await.unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert!(
        e.errors[0].contains("resource 1") && e.errors[0].contains("`stop` failed (exit status 1)"),
        "{e}"
    );
    // `stop` is tried STOP_TRIES times before the release counts as failed.
    assert_eq!(
        dir.log(),
        [
            "a start",
            "bad start",
            "bad stop",
            "bad stop",
            "bad stop",
            "a stop"
        ]
    );
    assert_eq!(STOP_TRIES, 3);
    assert!(!g.is_held());
    let _ = next_event(&mut rx).await; // acquired
    let _ = next_event(&mut rx).await; // a stopped
    match next_event(&mut rx).await {
        Event::Released { errors, .. } => assert_eq!(errors, e.errors),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_start_leaves_nothing_of_the_command_behind() {
    let dir = TempDir::new("early-leftover");
    let pidfile = dir.path("pid");
    let cmd = format!("sh -c 'sleep 1000 & echo $! > {}'", pidfile.display());
    let (mut g, _rx) = runner(&[&cmd], fast());
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert!(matches!(e.error, RunError::ExitedEarly { .. }), "{e}");
    let child: u32 = wait_for_line(&pidfile).await.parse().unwrap();
    let _cleanup = KillOnDrop(vec![child]);
    wait_gone(child).await;
}

#[test]
fn a_runtime_shutdown_kills_the_commands_groups() {
    let dir = TempDir::new("shutdown");
    let pidfile = dir.path("pid");
    let cmd = format!("sh -c 'sleep 1000 & echo $! > {}; wait'", pidfile.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (child, runner) = rt.block_on(async {
        let (mut g, _rx) = runner(&[&cmd], fast());
        g.acquire(&Cause::default()).await.unwrap();
        let child: u32 = wait_for_line(&pidfile).await.parse().unwrap();
        (child, g)
    });
    let _cleanup = KillOnDrop(vec![child]);
    assert!(alive(child));
    // The runtime goes first: the supervisor task is dropped, not asked to stop.
    drop(rt);
    drop(runner);
    let deadline = std::time::Instant::now() + DEADLINE;
    while alive(child) && !is_zombie(child) {
        assert!(
            std::time::Instant::now() < deadline,
            "{child} outlived the runtime"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn without_self_restart_a_death_is_reported_at_once_and_the_command_stays_down() {
    let dir = TempDir::new("norestart");
    let log = dir.path("log");
    let cmd = format!("sh -c 'echo $$ >> {}; exec sleep 1000'", log.display());
    let timings = Timings {
        self_restart: false,
        ..fast()
    };
    let (mut g, mut rx) = runner(&[&cmd], timings);
    g.acquire(&Cause::default()).await.unwrap();
    assert!(matches!(next_event(&mut rx).await, Event::Acquired { .. }));
    let first: u32 = wait_for_line(&log).await.parse().unwrap();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    match next_event(&mut rx).await {
        Event::Died {
            index: 0,
            restart_in,
            ..
        } => assert_eq!(restart_in, Duration::ZERO),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        g.status().await,
        [ResourceState::Failed("died (killed by SIGKILL)".into())]
    );
    // Well past the restart delay: nothing started again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wait_for_lines(&log, 1).await.len(), 1);
    // The release still works (and reports the rest of the group stopped).
    g.release(&Cause::default()).await.unwrap();
    // The next acquire starts it again.
    g.acquire(&Cause::default()).await.unwrap();
    assert_eq!(wait_for_lines(&log, 2).await.len(), 2);
    g.release(&Cause::default()).await.unwrap();
}

#[tokio::test]
async fn the_monitor_runs_status_of_held_scripts_and_names_the_failure() {
    let dir = TempDir::new("monitor");
    let flag = dir.path("ok");
    let s = dir.script(
        "svc",
        &format!(
            "case \"$1\" in start) touch {f} ;; stop) rm -f {f} ;; status) [ -e {f} ] && exit 0; exit 3 ;; esac",
            f = flag.display()
        ),
    );
    let (mut g, _rx) = runner(&["sleep 1000", &format!("script:{s}")], fast());
    assert_eq!(
        g.check_scripts().await,
        None,
        "nothing held: nothing to check"
    );
    g.acquire(&Cause::default()).await.unwrap();
    assert_eq!(g.check_scripts().await, None);
    std::fs::remove_file(&flag).unwrap();
    let failure = g.check_scripts().await.unwrap();
    assert!(
        failure.starts_with("resource 1 (`script:") && failure.contains("not running"),
        "{failure}"
    );
    g.release(&Cause::default()).await.unwrap();
}

#[tokio::test]
async fn a_reannouncement_does_not_kill_a_command_without_a_sighup_handler() {
    // `sleep` installs no handler: SIGHUP's default action would end it. Commands start with
    // SIGHUP ignored, so a re-announcement that comes before a program set up its handler (a
    // slow start) leaves it running (`fakeip hold` sets its handler over the ignore: the lab's
    // hbeat scenario re-announces through it).
    let timings = Timings {
        self_restart: false,
        ..fast()
    };
    let (mut g, mut rx) = runner(&["sleep 1000"], timings);
    g.acquire(&Cause::default()).await.unwrap();
    assert!(matches!(next_event(&mut rx).await, Event::Acquired { .. }));
    assert_eq!(g.signal_commands(Signal::SIGHUP), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "nothing died");
    assert!(matches!(
        g.status().await[..],
        [ResourceState::Running { .. }]
    ));
    g.release(&Cause::default()).await.unwrap();
}

#[tokio::test]
async fn an_armed_command_waits_for_the_go_and_the_same_process_takes_the_group() {
    let dir = TempDir::new("armed");
    let log = dir.path("log");
    let timings = Timings {
        self_restart: false,
        ..fast()
    };
    let (mut g, mut rx) = runner_of(vec![armed_command(&log)], timings);
    assert_eq!(g.arm().await, 1);
    let first = wait_for_line(&log).await;
    let pid = armed_pid(&first);
    assert_eq!(first, format!("armed {pid} 1"));
    assert_eq!(g.armed_pids(), [pid]);
    // Armed, it does nothing else, however long it waits; arming again changes nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(g.arm().await, 1);
    assert_eq!(wait_for_lines(&log, 1).await.len(), 1);
    assert!(g.status().await == [ResourceState::NotRunning]);

    g.acquire(&Cause::default()).await.unwrap();
    assert!(matches!(next_event(&mut rx).await, Event::Acquired { .. }));
    assert_eq!(wait_for_lines(&log, 2).await[1], format!("go {pid}"));
    assert_eq!(
        g.status().await,
        [ResourceState::Running { pid: Some(pid) }]
    );
    assert!(g.armed_pids().is_empty());

    // Released: stopped like any command, and a fresh one is armed for next time.
    g.release(&Cause::default()).await.unwrap();
    wait_gone(pid).await;
    assert_eq!(g.arm().await, 1);
    let third = wait_for_lines(&log, 3).await.swap_remove(2);
    assert!(
        third.starts_with("armed ") && !third.contains(&pid.to_string()),
        "{third}"
    );
    // Disarmed (the pipe closes): it gives up, having done nothing.
    let next = armed_pid(&third);
    g.disarm().await;
    assert_eq!(wait_for_lines(&log, 4).await[3], format!("gave up {next}"));
    wait_gone(next).await;
}

#[tokio::test]
async fn an_armed_command_that_died_is_armed_again_and_one_never_armed_starts_at_once() {
    let dir = TempDir::new("rearm");
    let log = dir.path("log");
    let timings = Timings {
        self_restart: false,
        ..fast()
    };
    let (mut g, mut rx) = runner_of(vec![armed_command(&log)], timings);
    g.arm().await;
    let pid = armed_pid(&wait_for_line(&log).await);
    let _cleanup = KillOnDrop(vec![pid]);
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    wait_gone(pid).await;
    // The acquire finds it gone: a fresh one is armed and told to go at once.
    g.acquire(&Cause::default()).await.unwrap();
    assert!(matches!(next_event(&mut rx).await, Event::Acquired { .. }));
    let lines = wait_for_lines(&log, 3).await;
    let fresh = armed_pid(&lines[1]);
    assert_ne!(fresh, pid);
    assert_eq!(lines[2], format!("go {fresh}"));
    g.release(&Cause::default()).await.unwrap();
    // Armed again; killed; the next arm() (the monitor round) arms another.
    g.arm().await;
    let armed = armed_pid(&wait_for_lines(&log, 4).await[3]);
    kill(Pid::from_raw(armed as i32), Signal::SIGKILL).unwrap();
    wait_gone(armed).await;
    assert_eq!(g.arm().await, 1);
    let again = armed_pid(&wait_for_lines(&log, 5).await[4]);
    assert_ne!(again, armed);
    drop(g);
    wait_gone(again).await;
}

#[tokio::test]
async fn a_fakeip_hold_that_dies_while_settling_is_cleaned_up_before_the_rollback() {
    // A stand-in named `fakeip`: the hold adds nothing and dies at once (as when killed while
    // settling); the cleanup run (HBEAT_CLEANUP=1) is recorded.
    let dir = TempDir::new("settle-cleanup");
    let log = dir.path("log");
    let fakeip = dir.script(
        "fakeip",
        &format!(
            "echo \"$1 cleanup=${{HBEAT_CLEANUP:-0}}\" >> {}; [ \"${{HBEAT_CLEANUP:-0}}\" = 1 ] && exit 0; kill -KILL $$",
            log.display()
        ),
    );
    let a = dir.recording_script("a");
    let (mut g, _rx) = runner(
        &[
            &format!("script:{a}"),
            &format!("{fakeip} hold 192.0.2.100/24 dev eth0"),
        ],
        fast(),
    );
    let e = g.acquire(&Cause::default()).await.unwrap_err();
    assert!(matches!(e.error, RunError::ExitedEarly { .. }), "{e}");
    assert!(e.rollback.is_empty(), "{e}");
    // The dead hold's cleanup first, then the resources before it, right to left.
    assert_eq!(
        dir.log(),
        ["a start", "hold cleanup=0", "hold cleanup=1", "a stop"]
    );
    assert!(!g.is_held());
}

#[tokio::test]
async fn a_late_status_check_is_not_a_failure_until_it_is_late_three_times_in_a_row() {
    let dir = TempDir::new("late-status");
    let slow = dir.path("slow");
    let s = dir.script(
        "svc",
        &format!(
            "[ \"$1\" = status ] && [ -e {f} ] && exec sleep 1000; exit 0",
            f = slow.display()
        ),
    );
    let timings = Timings {
        script_timeout: Duration::from_millis(200),
        ..fast()
    };
    let (mut g, _rx) = runner(&[&format!("script:{s}")], timings);
    g.acquire(&Cause::default()).await.unwrap();
    std::fs::write(&slow, "").unwrap();
    assert_eq!(g.check_scripts().await, None, "late once");
    assert_eq!(g.check_scripts().await, None, "late twice");
    // An answer in time in between starts the count again.
    std::fs::remove_file(&slow).unwrap();
    assert_eq!(g.check_scripts().await, None);
    std::fs::write(&slow, "").unwrap();
    assert_eq!(g.check_scripts().await, None);
    assert_eq!(g.check_scripts().await, None);
    let failure = g.check_scripts().await.expect("late three times in a row");
    assert!(
        failure.starts_with("resource 0 (`script:")
            && failure.contains(&format!(
                "did not answer within 200ms {LATE_CHECKS} times in a row"
            )),
        "{failure}"
    );
    std::fs::remove_file(&slow).unwrap();
    g.release(&Cause::default()).await.unwrap();
}

#[tokio::test]
async fn a_stop_that_fails_once_is_tried_again_and_the_release_succeeds() {
    let dir = TempDir::new("stop-again");
    let log = dir.path("log");
    let once = dir.path("failed-once");
    let slow = dir.script(
        "slow",
        &format!(
            "echo \"slow $1\" >> {log}; [ \"$1\" = stop ] && [ ! -e {once} ] && touch {once} && exit 1; exit 0",
            log = log.display(),
            once = once.display()
        ),
    );
    let (mut g, _rx) = runner(&[&format!("script:{slow}")], fast());
    g.acquire(&Cause::default()).await.unwrap();
    g.release(&Cause::default()).await.unwrap();
    assert_eq!(dir.log(), ["slow start", "slow stop", "slow stop"]);
    assert!(!g.is_held());
}
