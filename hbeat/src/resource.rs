//! Resources: what a group starts and stops, parsed from the strings of `[[group]] resources`, checked
//! before any failover, and run by a [`GroupRunner`].
//!
//! A resource is either
//! - a **command** (`"fakeip hold 192.0.2.100/24 dev eth0"`): split into argv like a POSIX shell would
//!   (`shlex`), run without a shell unless it says `sh -c`. It is long-running and supervised: "held"
//!   while it runs, TERM on release (then KILL after `kill_after`), restarted with a bounded
//!   exponential backoff when it dies while held. It counts as started once it is still running after
//!   the settle time (`resource_settle`, default 200 ms); exiting earlier, with any status, is a failed
//!   start, because a command that ends by itself cannot be held (use a `script:` for one-shot
//!   actions);
//! - a **script** (`"script:/etc/hbeat/resource.d/ldir-sync::master"`), heartbeat's haresources
//!   style: the path, then arguments separated by `::`, called with `start`, `stop` or `status`
//!   appended. LSB exit codes: `start`/`stop` succeed with 0 within `resource_timeout`; `status` 0
//!   means running, 3 not running, anything else is a failure. A bare name (`script:IPaddr2::…`) is
//!   looked up in [`SCRIPT_DIRS`], as heartbeat looked in `/etc/ha.d/resource.d` and `/etc/init.d`.
//!
//! Every process gets `HBEAT_NODE`, `HBEAT_GROUP`, `HBEAT_PEER` and `HBEAT_REASON` (DESIGN.md,
//! "resources run by hbeat"), SIGHUP ignored (as under `nohup`: a re-announcement that comes
//! before a program installed its handler must not kill it; programs that handle SIGHUP install
//! their handler over it, but a POSIX shell cannot `trap` a signal ignored on entry), standard
//! input from `/dev/null`, and its own process group, so that TERM and KILL reach what a `sh -c`
//! started too: a release sends TERM to the group and KILL once `kill_after` has passed with
//! anything of it still running. Every wait is bounded; every child is reaped. Nothing is left
//! behind: a command's group is killed when the command dies (before its restart), when its start
//! fails, and when its supervisor is dropped (runtime shutdown); a script's group when it times
//! out or its call is dropped — but not when it ends, since heartbeat-style scripts start daemons
//! in the background. A supervisor whose [`GroupRunner`] is dropped stops its
//! command (TERM, then KILL).
//!
//! Not here: deciding *when* a group moves (the state machine), restarting a script resource (v1
//! heartbeat never monitored them; `status` is available to whoever wants to poll), and the policy
//! after a failed stop (heartbeat rebooted; that is the next hbeat issue's fencing).

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{AccessFlags, Pid, access};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};

/// The prefix of an armed command resource (`armed:fakeip hold 192.0.2.100/24 dev eth0`): on
/// every node that may hold the group it runs ahead of time, with `HBEAT_ARMED=1` and a pipe as
/// standard input, prepared but touching nothing; at acquire hbeat writes one byte (a newline)
/// to the pipe and the command takes its resource at once, so a failover costs no process start.
/// Closing the pipe (the group was taken here another way, or hbeat ended) makes it exit with
/// nothing changed. After a release a fresh one is armed. Only `fakeip hold` implements this;
/// any other program would act at once on every node, so the parser refuses it.
pub const ARMED: &str = "armed:";

/// Where a `script:` resource given by bare name is looked up, in order (heartbeat looked in
/// `/etc/ha.d/resource.d`, then `/etc/init.d`; ours comes first).
pub const SCRIPT_DIRS: [&str; 3] = [
    "/etc/hbeat/resource.d",
    "/etc/ha.d/resource.d",
    "/etc/init.d",
];

/// The search path for bare command names when the environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `status` exit code of an LSB script whose service is not running (LSB 3.0, "status").
pub const LSB_NOT_RUNNING: i32 = 3;

/// How long a killed child may take to be reaped before we stop waiting (a process in
/// uninterruptible sleep cannot be waited for forever; tokio reaps it later in the background).
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a spawn is retried when the executable is busy (ETXTBSY: a script being written while
/// another thread forks holds it open for writing for an instant).
const SPAWN_ATTEMPTS: usize = 5;
const SPAWN_RETRY: Duration = Duration::from_millis(20);

/// How often a stopping command's process group is looked at until it is empty (the kernel has no
/// notification for a group whose members are not our children).
const GROUP_POLL: Duration = Duration::from_millis(20);

/// One resource of a group, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A supervised long-running command; `argv[0]` is a path or a name looked up in `PATH`.
    /// `armed`: started ahead of time and told to go at acquire (see [`ARMED`]).
    Command { argv: Vec<String>, armed: bool },
    /// A heartbeat-style script called with `args` and then `start|stop|status`.
    Script { script: String, args: Vec<String> },
}

impl Resource {
    /// Parses one entry of `resources`; the error says what is wrong and how to write it.
    pub fn parse(spec: &str) -> Result<Resource, String> {
        if let Some(rest) = spec.strip_prefix(ARMED) {
            let Resource::Command { argv, .. } = Resource::parse(rest)? else {
                return Err(format!(
                    "{ARMED} applies to a command, not to a script: write \"{ARMED}fakeip hold …\""
                ));
            };
            if !is_fakeip_hold(&argv) {
                return Err(format!(
                    "{ARMED} is for `fakeip hold …`, the program that waits for hbeat's go \
                     (HBEAT_ARMED=1); any other would start at once on every node"
                ));
            }
            return Ok(Resource::Command { argv, armed: true });
        }
        if let Some(rest) = spec.strip_prefix("script:") {
            let mut parts = rest.split("::");
            let script = parts.next().unwrap_or_default();
            if script.is_empty() {
                return Err(
                    "a script resource needs a path: write \"script:/path/to/script::arg\"".into(),
                );
            }
            if script.contains('/') && !script.starts_with('/') {
                return Err(format!(
                    "script path {script:?} must be absolute, or a bare name looked up in {}",
                    SCRIPT_DIRS.join(", ")
                ));
            }
            let args: Vec<String> = parts.map(str::to_owned).collect();
            if args.iter().any(String::is_empty) {
                return Err(
                    "empty script argument (\"::::\" or a trailing \"::\"); remove it".into(),
                );
            }
            if script.contains('\0') || args.iter().any(|a| a.contains('\0')) {
                return Err("a NUL character cannot be passed to a program".into());
            }
            return Ok(Resource::Script {
                script: script.to_owned(),
                args,
            });
        }
        let argv = shlex::split(spec).ok_or_else(|| {
            "cannot split the command line: unterminated quote or a lone backslash at the end"
                .to_string()
        })?;
        if argv.is_empty() {
            return Err("the command is empty".into());
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err("a NUL character cannot be passed to a program".into());
        }
        Ok(Resource::Command { argv, armed: false })
    }

    /// `fakeip hold …` (armed or not): when it died while held, hbeat runs it once more with
    /// `HBEAT_CLEANUP=1` to remove the addresses it left ([`GroupRunner::release`]).
    pub fn cleans_up_after_death(&self) -> bool {
        matches!(self, Resource::Command { argv, .. } if is_fakeip_hold(argv))
    }

    /// The program as written: `argv[0]` of a command, or the script's path or name.
    pub fn program(&self) -> &str {
        match self {
            Resource::Command { argv, .. } => &argv[0],
            Resource::Script { script, .. } => script,
        }
    }

    /// The words that define the resource, for the group hash: a kind tag, then argv or the script
    /// and its arguments. Quoting and spacing of the configuration do not change them, nor does
    /// `armed:` (how this node starts the command, not what runs).
    pub fn canonical_words(&self) -> Vec<&str> {
        match self {
            Resource::Command { argv, .. } => std::iter::once("command")
                .chain(argv.iter().map(String::as_str))
                .collect(),
            Resource::Script { script, args } => ["script", script.as_str()]
                .into_iter()
                .chain(args.iter().map(String::as_str))
                .collect(),
        }
    }

    /// Finds the executable this resource runs, with `path_var` as `PATH` (the process's `PATH`
    /// when `None`, [`DEFAULT_PATH`] when that is unset too), and checks that it can be executed.
    pub fn resolve(&self, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
        match self {
            Resource::Command { argv, .. } => resolve_command(&argv[0], path_var),
            Resource::Script { script, .. } => resolve_script(script),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Command { argv, armed } => {
                let joined = shlex::try_join(argv.iter().map(String::as_str))
                    .unwrap_or_else(|_| argv.join(" "));
                if *armed {
                    f.write_str(ARMED)?;
                }
                f.write_str(&joined)
            }
            Resource::Script { script, args } => {
                write!(f, "script:{script}")?;
                for a in args {
                    write!(f, "::{a}")?;
                }
                Ok(())
            }
        }
    }
}

/// `argv` runs `fakeip hold` (hbeat's companion: it knows `HBEAT_ARMED` and `HBEAT_CLEANUP`).
fn is_fakeip_hold(argv: &[String]) -> bool {
    let name = Path::new(&argv[0]).file_name().and_then(OsStr::to_str);
    name == Some("fakeip") && argv.get(1).map(String::as_str) == Some("hold")
}

/// Why a resource's program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("`{program}` not found in {searched}")]
    NotFound { program: String, searched: String },
    #[error("{} is not executable (mode {mode:04o}); chmod +x it", path.display())]
    NotExecutable { path: PathBuf, mode: u32 },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
}

fn resolve_command(program: &str, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return check_executable(&path).map(|()| path);
    }
    let env_path = std::env::var_os("PATH");
    let search = path_var
        .or(env_path.as_deref())
        .unwrap_or(OsStr::new(DEFAULT_PATH));
    search_dirs(
        program,
        std::env::split_paths(search),
        format!("PATH ({})", search.to_string_lossy()),
    )
}

fn resolve_script(script: &str) -> Result<PathBuf, ProgramError> {
    if script.starts_with('/') {
        let path = PathBuf::from(script);
        return check_executable(&path).map(|()| path);
    }
    search_dirs(
        script,
        SCRIPT_DIRS.iter().map(PathBuf::from),
        SCRIPT_DIRS.join(", "),
    )
}

/// The first directory holding `name` decides: an existing but unusable file there is reported
/// rather than skipped, so that a chmod mistake is not hidden by another file further on.
fn search_dirs(
    name: &str,
    dirs: impl Iterator<Item = PathBuf>,
    searched: String,
) -> Result<PathBuf, ProgramError> {
    for dir in dirs {
        // An empty PATH element means the current directory (POSIX); the daemon's is `/`.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        if std::fs::symlink_metadata(&candidate).is_ok() {
            return check_executable(&candidate).map(|()| candidate);
        }
    }
    Err(ProgramError::NotFound {
        program: name.to_owned(),
        searched,
    })
}

fn check_executable(path: &Path) -> Result<(), ProgramError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProgramError::NotFound {
                program: path.display().to_string(),
                searched: "the file system (no such file)".into(),
            });
        }
        Err(e) => {
            return Err(ProgramError::Unusable {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if !meta.is_file() {
        return Err(ProgramError::NotAFile {
            path: path.to_owned(),
        });
    }
    // access(2) answers for the real uid, as exec would: root needs one x bit, others their own.
    if access(path, AccessFlags::X_OK).is_err() {
        return Err(ProgramError::NotExecutable {
            path: path.to_owned(),
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// Running

/// The time limits of a [`GroupRunner`]; the configuration's `resource_*` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// A command counts as started once it is still running after this long.
    pub settle: Duration,
    /// A script's `start`, `stop` or `status` must end within this long (it is killed after).
    pub script_timeout: Duration,
    /// A command still running this long after TERM gets KILL.
    pub kill_after: Duration,
    /// The first restart delay of a command that died; doubled at each death in a row.
    pub restart_min: Duration,
    /// The longest restart delay; a command that ran this long starts over at `restart_min`.
    pub restart_max: Duration,
    /// Restart a held command that died, here, by itself (with the backoff above). The daemon
    /// turns this off: a death is reported at once ([`Event::Died`]) and its policies decide
    /// between moving the group to a ready peer and restarting it here.
    pub self_restart: bool,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            settle: Duration::from_millis(200),
            script_timeout: Duration::from_secs(30),
            kill_after: Duration::from_secs(5),
            restart_min: Duration::from_millis(500),
            restart_max: Duration::from_secs(30),
            self_restart: true,
        }
    }
}

/// Why a group is being acquired or released: the `HBEAT_PEER` and `HBEAT_REASON` of its resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause {
    /// The peer the transition concerns (the dead one, the one asking), if any; empty otherwise.
    pub peer: Option<String>,
    /// A short reason, e.g. `deadtime expired`, `standby request`, `shutdown`.
    pub reason: String,
}

impl Cause {
    pub fn new(peer: Option<&str>, reason: &str) -> Cause {
        Cause {
            peer: peer.map(str::to_owned),
            reason: reason.to_owned(),
        }
    }
}

/// How a held resource ended on release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The command exited after TERM.
    Terminated,
    /// The command was still running `kill_after` after TERM and got KILL.
    Killed,
    /// The command was not running (it had died and was waiting for its restart).
    NotRunning,
    /// The script's `stop` exited 0.
    Script,
}

/// What a [`GroupRunner`] reports on its channel, besides the results of its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every resource of the group started.
    Acquired { group: String },
    /// Resource `index` did not start; those before it were stopped again, right to left.
    AcquireFailed {
        group: String,
        index: usize,
        error: String,
    },
    /// One resource was stopped during a release or a rollback.
    Stopped {
        group: String,
        index: usize,
        how: Stopped,
    },
    /// Every resource was stopped (`errors` lists the ones whose stop failed).
    Released { group: String, errors: Vec<String> },
    /// A held command exited by itself; it is restarted after `restart_in` (never, when
    /// `self_restart` is off: `restart_in` is zero and the command stays down until the group is
    /// released).
    Died {
        group: String,
        index: usize,
        status: String,
        restart_in: Duration,
    },
    /// A command that died runs again.
    Restarted {
        group: String,
        index: usize,
        pid: u32,
    },
    /// A command that died could not be started again; retried after `retry_in`.
    RestartFailed {
        group: String,
        index: usize,
        error: String,
        retry_in: Duration,
    },
}

/// A resource's state as `hbeat status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceState {
    /// Held: a command running (with its pid), or a script whose `status` exited 0.
    Running { pid: Option<u32> },
    /// A held command that died and waits for its restart.
    Restarting,
    /// Not held: a command not started, or a script whose `status` exited 3.
    NotRunning,
    /// A script's `status` failed (another exit code, a timeout, or it could not be run).
    Failed(String),
}

/// A resource that failed to start, or a stop that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("exited during the settle time ({status}); a command resource must keep running")]
    ExitedEarly { status: String },
    #[error("`{action}` did not finish within {timeout:?} and was killed")]
    TimedOut {
        action: &'static str,
        timeout: Duration,
    },
    #[error("`{action}` failed ({status})")]
    Failed {
        action: &'static str,
        status: String,
    },
    #[error("the supervisor of the command did not report back ({0})")]
    Supervisor(String),
}

/// A failed [`GroupRunner::acquire`]: which resource, why, and what went wrong rolling back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group}: resource {index} (`{resource}`): {error}{}",
    if rollback.is_empty() { String::new() } else { format!("; rollback: {}", rollback.join("; ")) })]
pub struct AcquireError {
    pub group: String,
    pub index: usize,
    pub resource: String,
    pub error: RunError,
    pub rollback: Vec<String>,
}

/// A release in which some stops failed; every resource was still tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group}: {}", errors.join("; "))]
pub struct ReleaseError {
    pub group: String,
    pub errors: Vec<String>,
}

enum Held {
    Command {
        stop: oneshot::Sender<()>,
        task: JoinHandle<Stopped>,
        state: watch::Receiver<ResourceState>,
    },
    Script,
}

/// Acquires and releases one group's resources, and supervises its commands in between.
///
/// `acquire` starts the resources left to right and `release` stops them right to left; both take
/// `&mut self`, so one group never runs two transitions at once (the caller runs different groups
/// concurrently if it wants). Dropping an `acquire` future midway leaves the resources it had
/// started held: a later `acquire` continues after them, `release` stops them. Dropping the runner
/// stops its commands (TERM, then KILL) as long as the tokio runtime runs; scripts are not stopped
/// then, since that needs a `stop` call to be awaited.
pub struct GroupRunner {
    node: String,
    group: String,
    resources: Vec<Resource>,
    timings: Timings,
    events: mpsc::UnboundedSender<Event>,
    /// The started resources, a prefix of `resources`.
    held: Vec<Held>,
    /// Per resource: the armed command waiting for its go ([`ARMED`]).
    armed: Vec<Option<Armed>>,
    /// Per resource: `status` checks in a row that did not answer within the script timeout.
    late: Vec<u32>,
}

/// How many `status` checks in a row may be late (killed at the script timeout) before that counts
/// as a failure: a check that is late once, on a loaded machine, is not a reason to fail over
/// (keepalived's forked track scripts time out spuriously and cause failovers).
pub const LATE_CHECKS: u32 = 3;

/// How many times a script's `stop` is called before the release counts as failed (the group then
/// stays here: both nodes running it is worse than neither).
pub const STOP_TRIES: u32 = 3;
/// The pause between two calls of a failing `stop`.
pub const STOP_PAUSE: Duration = Duration::from_millis(500);

/// An armed command: running, prepared, waiting for one byte on its standard input.
struct Armed {
    child: Child,
    go: tokio::process::ChildStdin,
    /// Kills its process group if it is dropped unused.
    guard: GroupGuard,
}

/// How long writing the go byte may take (a pipe with room for it takes it at once).
const GO_TIMEOUT: Duration = Duration::from_secs(1);

impl GroupRunner {
    pub fn new(
        node: &str,
        group: &str,
        resources: Vec<Resource>,
        timings: Timings,
        events: mpsc::UnboundedSender<Event>,
    ) -> GroupRunner {
        let armed = resources.iter().map(|_| None).collect();
        let late = vec![0; resources.len()];
        GroupRunner {
            node: node.to_owned(),
            group: group.to_owned(),
            resources,
            timings,
            events,
            held: Vec::new(),
            armed,
            late,
        }
    }

    /// Starts the armed commands ([`ARMED`]) that are not held, not armed yet, or whose armed
    /// process ended by itself (logged; called again at the next monitor round, which bounds how
    /// often a program that cannot arm is started). Returns how many run armed now.
    pub async fn arm(&mut self) -> usize {
        for index in self.held.len()..self.resources.len() {
            let Resource::Command { argv, armed: true } = &self.resources[index] else {
                continue;
            };
            if let Some(a) = &mut self.armed[index] {
                match a.child.try_wait() {
                    Ok(None) => continue,
                    Ok(Some(status)) => {
                        warn!(group = %self.group, resource = %self.resources[index], status = %describe_status(status), "armed command ended by itself; arming it again")
                    }
                    Err(e) => {
                        warn!(group = %self.group, resource = %self.resources[index], error = %e, "armed command lost; arming it again")
                    }
                }
                self.armed[index] = None;
            }
            let env = self.armed_env();
            match spawn_armed(argv, &env).await {
                Ok(a) => {
                    info!(group = %self.group, resource = %self.resources[index], pid = a.child.id().unwrap_or_default(), "armed");
                    self.armed[index] = Some(a);
                }
                Err(error) => {
                    warn!(group = %self.group, resource = %self.resources[index], %error, "cannot arm; it will be started at acquire")
                }
            }
        }
        self.armed.iter().filter(|a| a.is_some()).count()
    }

    /// Ends the armed commands: their pipe closes and they exit having changed nothing (what
    /// still runs `kill_after` later is killed).
    pub async fn disarm(&mut self) {
        for a in self.armed.iter_mut().filter_map(Option::take) {
            let Armed {
                mut child,
                go,
                guard,
            } = a;
            drop(go);
            let _ = timeout(self.timings.kill_after, child.wait()).await;
            drop(guard); // KILLs the group: nothing is left, or something hangs
        }
    }

    /// The pids of the armed commands waiting for their go.
    pub fn armed_pids(&self) -> Vec<u32> {
        self.armed
            .iter()
            .flatten()
            .filter_map(|a| a.child.id())
            .collect()
    }

    fn armed_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.env(&Cause::new(None, "armed"));
        env.push(("HBEAT_ARMED", "1".into()));
        env
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// True when every resource was started (and not released since).
    pub fn is_held(&self) -> bool {
        self.held.len() == self.resources.len()
    }

    /// Starts the resources that are not held yet, left to right. On the first failure the ones
    /// started are stopped again, right to left, and the group is not held.
    pub async fn acquire(&mut self, cause: &Cause) -> Result<(), AcquireError> {
        while self.held.len() < self.resources.len() {
            let index = self.held.len();
            info!(group = %self.group, resource = %self.resources[index], reason = %cause.reason, "starting resource");
            match self.start(index, cause).await {
                Ok(held) => self.held.push(held),
                Err(error) => {
                    warn!(group = %self.group, resource = %self.resources[index], %error, "resource did not start; rolling back");
                    let mut rollback = Vec::new();
                    // A `fakeip hold` that died while settling (killed, crashed) may have added
                    // its addresses: they go first, as in a release after its death.
                    if matches!(error, RunError::ExitedEarly { .. })
                        && self.resources[index].cleans_up_after_death()
                        && let Err(e) = self.clean_up(index, cause).await
                    {
                        warn!(group = %self.group, resource = %self.resources[index], error = %e, "cleanup after its death failed");
                        rollback.push(format!(
                            "resource {index} (`{}`): {e}",
                            self.resources[index]
                        ));
                    }
                    rollback.extend(
                        self.stop_held(&Cause::new(
                            cause.peer.as_deref(),
                            "rollback: a later resource failed to start",
                        ))
                        .await,
                    );
                    let error = AcquireError {
                        group: self.group.clone(),
                        index,
                        resource: self.resources[index].to_string(),
                        error,
                        rollback,
                    };
                    self.emit(Event::AcquireFailed {
                        group: self.group.clone(),
                        index,
                        error: error.to_string(),
                    });
                    return Err(error);
                }
            }
        }
        info!(group = %self.group, reason = %cause.reason, "group acquired");
        self.emit(Event::Acquired {
            group: self.group.clone(),
        });
        Ok(())
    }

    /// Stops every held resource, right to left; each is tried even when an earlier stop failed.
    pub async fn release(&mut self, cause: &Cause) -> Result<(), ReleaseError> {
        let errors = self.stop_held(cause).await;
        info!(group = %self.group, reason = %cause.reason, errors = errors.len(), "group released");
        self.emit(Event::Released {
            group: self.group.clone(),
            errors: errors.clone(),
        });
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ReleaseError {
                group: self.group.clone(),
                errors,
            })
        }
    }

    /// The monitor: runs `status` of every started script resource (commands are watched by
    /// their supervisors) and returns the first failure, `None` when all run. A script that
    /// reports "not running" (3) while held has failed too. A `status` that does not answer
    /// within the script timeout is killed and only warned about; [`LATE_CHECKS`] such in a row
    /// are a failure.
    pub async fn check_scripts(&mut self) -> Option<String> {
        for index in 0..self.held.len() {
            if !matches!(self.held[index], Held::Script) {
                continue;
            }
            let cause = Cause::new(None, "monitor");
            let result = self.run_script(index, "status", &cause).await;
            if let Err(RunError::TimedOut { timeout, .. }) = result {
                self.late[index] += 1;
                let late = self.late[index];
                if late < LATE_CHECKS {
                    warn!(group = %self.group, resource = %self.resources[index], ?timeout, late, "`status` did not answer in time: not a failure by itself");
                    continue;
                }
                return Some(format!(
                    "resource {index} (`{}`): `status` did not answer within {timeout:?} {late} times in a row",
                    self.resources[index]
                ));
            }
            self.late[index] = 0;
            let failure = match result {
                Ok(status) if status.success() => continue,
                Ok(status) if status.code() == Some(LSB_NOT_RUNNING) => {
                    "`status` says it is not running".to_string()
                }
                Ok(status) => format!("`status` {}", describe_status(status)),
                Err(e) => e.to_string(),
            };
            return Some(format!(
                "resource {index} (`{}`): {failure}",
                self.resources[index]
            ));
        }
        None
    }

    /// Sends `signal` to every held command that is running (SIGHUP makes `fakeip hold` announce
    /// its address again); returns how many got it.
    pub fn signal_commands(&self, signal: nix::sys::signal::Signal) -> usize {
        let mut sent = 0;
        for h in &self.held {
            if let Held::Command { state, .. } = h
                && let ResourceState::Running { pid: Some(pid) } = *state.borrow()
                && let Ok(pid) = i32::try_from(pid)
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).is_ok()
            {
                sent += 1;
            }
        }
        sent
    }

    /// Each resource's state: commands from their supervisor, scripts by calling `status`.
    pub async fn status(&self) -> Vec<ResourceState> {
        let mut out = Vec::with_capacity(self.resources.len());
        for (index, resource) in self.resources.iter().enumerate() {
            let state = match (resource, self.held.get(index)) {
                (Resource::Command { .. }, Some(Held::Command { state, .. })) => {
                    state.borrow().clone()
                }
                (Resource::Command { .. }, _) => ResourceState::NotRunning,
                (Resource::Script { .. }, _) => {
                    let cause = Cause::new(None, "status");
                    match self.run_script(index, "status", &cause).await {
                        Ok(status) if status.success() => ResourceState::Running { pid: None },
                        Ok(status) if status.code() == Some(LSB_NOT_RUNNING) => {
                            ResourceState::NotRunning
                        }
                        Ok(status) => {
                            ResourceState::Failed(format!("`status` {}", describe_status(status)))
                        }
                        Err(e) => ResourceState::Failed(e.to_string()),
                    }
                }
            };
            out.push(state);
        }
        out
    }

    async fn start(&mut self, index: usize, cause: &Cause) -> Result<Held, RunError> {
        match &self.resources[index] {
            Resource::Script { .. } => {
                let status = self.run_script(index, "start", cause).await?;
                if status.success() {
                    Ok(Held::Script)
                } else {
                    Err(RunError::Failed {
                        action: "start",
                        status: describe_status(status),
                    })
                }
            }
            Resource::Command { argv, armed } => {
                let argv = argv.clone();
                let (mut child, env, guard, pipe) = if *armed {
                    let env = self.armed_env();
                    let waiting = self.armed[index].take();
                    let (child, guard, pipe) = go(waiting, &argv, &env).await?;
                    (child, env, guard, Some(pipe))
                } else {
                    let env = self.env(cause);
                    let child = spawn(&argv, &env, false).await?;
                    // A failed start (or a dropped acquire) leaves nothing of the command's
                    // group behind; then the supervisor owns the guard, even before its first
                    // poll.
                    let guard = GroupGuard(group_of(&child));
                    (child, env, guard, None)
                };
                if let Ok(status) = timeout(self.timings.settle, child.wait()).await {
                    let status = status.map_or_else(|e| e.to_string(), describe_status);
                    return Err(RunError::ExitedEarly { status });
                }
                let (stop_tx, stop_rx) = oneshot::channel();
                let (state_tx, state_rx) =
                    watch::channel(ResourceState::Running { pid: child.id() });
                let supervisor = Supervisor {
                    group: self.group.clone(),
                    index,
                    armed: *armed,
                    argv,
                    env,
                    timings: self.timings,
                    events: self.events.clone(),
                    state: state_tx,
                };
                let task = tokio::spawn(supervisor.run(child, guard, pipe, stop_rx));
                Ok(Held::Command {
                    stop: stop_tx,
                    task,
                    state: state_rx,
                })
            }
        }
    }

    /// Stops the held resources right to left; returns one message per failed stop.
    async fn stop_held(&mut self, cause: &Cause) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(held) = self.held.pop() {
            let index = self.held.len();
            self.late[index] = 0;
            let resource = &self.resources[index];
            info!(group = %self.group, %resource, reason = %cause.reason, "stopping resource");
            let result = match held {
                Held::Command { stop, task, .. } => {
                    // The supervisor stops on the message or on the sender's drop alike.
                    let _ = stop.send(());
                    let limit =
                        self.timings.kill_after + REAP_TIMEOUT + self.timings.script_timeout;
                    match timeout(limit, task).await {
                        Ok(Ok(Stopped::NotRunning)) if resource.cleans_up_after_death() => {
                            self.clean_up(index, cause).await
                        }
                        Ok(Ok(how)) => Ok(how),
                        Ok(Err(e)) => Err(RunError::Supervisor(e.to_string())),
                        Err(_) => Err(RunError::Supervisor(format!("no answer within {limit:?}"))),
                    }
                }
                Held::Script => self.stop_script(index, cause).await,
            };
            match result {
                Ok(how) => {
                    if how == Stopped::Killed {
                        warn!(group = %self.group, %resource, "still running after TERM; killed");
                    }
                    self.emit(Event::Stopped {
                        group: self.group.clone(),
                        index,
                        how,
                    });
                }
                Err(e) => {
                    warn!(group = %self.group, %resource, error = %e, "resource did not stop cleanly");
                    errors.push(format!("resource {index} (`{resource}`): {e}"));
                }
            }
        }
        errors
    }

    /// Calls the script's `stop` until it succeeds, [`STOP_TRIES`] times at most, [`STOP_PAUSE`]
    /// apart (a service that is slow to go often stops at the second try).
    async fn stop_script(&self, index: usize, cause: &Cause) -> Result<Stopped, RunError> {
        let mut tries = 1;
        loop {
            let error = match self.run_script(index, "stop", cause).await {
                Ok(status) if status.success() => return Ok(Stopped::Script),
                Ok(status) => RunError::Failed {
                    action: "stop",
                    status: describe_status(status),
                },
                Err(e) => e,
            };
            if tries >= STOP_TRIES {
                return Err(error);
            }
            warn!(group = %self.group, resource = %self.resources[index], %error, tries, "`stop` failed: trying again");
            tokio::time::sleep(STOP_PAUSE).await;
            tries += 1;
        }
    }

    /// A `fakeip hold` that died (SIGKILL, a crash) could not remove its addresses: the same
    /// command with `HBEAT_CLEANUP=1` removes them (and announces nothing) before the release
    /// counts as done, so the peer never starts while they are still here.
    async fn clean_up(&self, index: usize, cause: &Cause) -> Result<Stopped, RunError> {
        let resource = &self.resources[index];
        let Resource::Command { argv, .. } = resource else {
            return Ok(Stopped::NotRunning);
        };
        let mut env = self.env(cause);
        env.push(("HBEAT_CLEANUP", "1".into()));
        let status = self.run_to_end(argv, &env, "cleanup").await?;
        if !status.success() {
            return Err(RunError::Failed {
                action: "cleanup",
                status: describe_status(status),
            });
        }
        info!(group = %self.group, %resource, "cleaned up after its death (HBEAT_CLEANUP=1)");
        Ok(Stopped::NotRunning)
    }

    async fn run_script(
        &self,
        index: usize,
        action: &'static str,
        cause: &Cause,
    ) -> Result<ExitStatus, RunError> {
        let Resource::Script { script, args } = &self.resources[index] else {
            unreachable!("run_script is only called for script resources");
        };
        let path = resolve_script(script).map_err(|e| RunError::Spawn {
            program: script.clone(),
            reason: e.to_string(),
        })?;
        let mut argv = vec![path.to_string_lossy().into_owned()];
        argv.extend(args.iter().cloned());
        argv.push(action.to_owned());
        self.run_to_end(&argv, &self.env(cause), action).await
    }

    /// Runs `argv` until it exits, within `script_timeout` (then its group is killed). A dropped
    /// call kills the group; one that ends keeps what it started in the background (heartbeat's
    /// scripts start daemons with `&`).
    async fn run_to_end(
        &self,
        argv: &[String],
        env: &[(&'static str, String)],
        action: &'static str,
    ) -> Result<ExitStatus, RunError> {
        let mut child = spawn(argv, env, false).await?;
        let mut guard = GroupGuard(group_of(&child));
        let result = timeout(self.timings.script_timeout, child.wait()).await;
        if matches!(result, Ok(Ok(_))) {
            guard.disarm();
        }
        match result {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(RunError::Spawn {
                program: argv[0].clone(),
                reason: e.to_string(),
            }),
            Err(_) => {
                kill_group(group_of(&child), Signal::SIGKILL);
                let _ = timeout(REAP_TIMEOUT, child.wait()).await;
                Err(RunError::TimedOut {
                    action,
                    timeout: self.timings.script_timeout,
                })
            }
        }
    }

    fn env(&self, cause: &Cause) -> Vec<(&'static str, String)> {
        vec![
            ("HBEAT_NODE", self.node.clone()),
            ("HBEAT_GROUP", self.group.clone()),
            ("HBEAT_PEER", cause.peer.clone().unwrap_or_default()),
            ("HBEAT_REASON", cause.reason.clone()),
        ]
    }

    fn emit(&self, event: Event) {
        // Nobody listening is fine: the results of the calls say the same.
        let _ = self.events.send(event);
    }
}

/// Starts an armed command: standard input a pipe, `HBEAT_ARMED=1` in `env`.
async fn spawn_armed(argv: &[String], env: &[(&'static str, String)]) -> Result<Armed, RunError> {
    let mut child = spawn(argv, env, true).await?;
    let guard = GroupGuard(group_of(&child));
    let go = child.stdin.take().ok_or_else(|| RunError::Spawn {
        program: argv[0].clone(),
        reason: "no pipe to its standard input".into(),
    })?;
    Ok(Armed { child, go, guard })
}

/// Tells an armed command to go: the one `waiting`, if it still runs and takes the byte, else a
/// fresh one (armed and told at once). Returns it running, with the guard of its group and its
/// pipe, which must stay open while it is held (`fakeip hold` releases when the pipe closes: hbeat
/// ended).
async fn go(
    waiting: Option<Armed>,
    argv: &[String],
    env: &[(&'static str, String)],
) -> Result<(Child, GroupGuard, tokio::process::ChildStdin), RunError> {
    use tokio::io::AsyncWriteExt;
    let mut fresh = false;
    let live = waiting.and_then(|mut a| matches!(a.child.try_wait(), Ok(None)).then_some(a));
    let mut a = match live {
        Some(a) => a,
        None => {
            fresh = true;
            spawn_armed(argv, env).await?
        }
    };
    loop {
        match timeout(GO_TIMEOUT, a.go.write_all(b"\n")).await {
            Ok(Ok(())) => return Ok((a.child, a.guard, a.go)),
            // It ended (or hangs) between the check and the write: once more with a fresh one.
            _ if !fresh => {
                fresh = true;
                a = spawn_armed(argv, env).await?;
            }
            Ok(Err(e)) => {
                return Err(RunError::Spawn {
                    program: argv[0].clone(),
                    reason: format!("cannot tell it to go: {e}"),
                });
            }
            Err(_) => {
                return Err(RunError::Spawn {
                    program: argv[0].clone(),
                    reason: format!("it did not take the go within {GO_TIMEOUT:?}"),
                });
            }
        }
    }
}

/// Spawns `argv` in its own process group with the `HBEAT_*` environment; standard input is a
/// pipe when `piped` (armed commands), else `/dev/null`.
async fn spawn(
    argv: &[String],
    env: &[(&'static str, String)],
    piped: bool,
) -> Result<Child, RunError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // sigaction(2), which is async-signal-safe; it touches no memory the parent shares.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::signal::signal(Signal::SIGHUP, nix::sys::signal::SigHandler::SigIgn)
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                    && attempt < SPAWN_ATTEMPTS =>
            {
                sleep(SPAWN_RETRY).await;
            }
            Err(e) => {
                return Err(RunError::Spawn {
                    program: argv[0].clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
}

/// The child's process group id: its pid, since every child leads its own group. `None` once the
/// child was reaped.
fn group_of(child: &Child) -> Option<Pid> {
    child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw)
}

/// Sends `signal` to the child's process group. Safe after the leader was reaped too: Linux does
/// not hand out a pid that is still some process group's id, so the group is ours or empty.
fn kill_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group {
        let _ = killpg(group, signal);
    }
}

/// Kills a process group with SIGKILL when dropped while it holds one.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0, Signal::SIGKILL);
    }
}

/// Waits until no process of `group` is left, or `deadline`; true when the group is empty.
async fn group_gone(group: Pid, deadline: Instant) -> bool {
    loop {
        if killpg(group, None) == Err(nix::errno::Errno::ESRCH) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(GROUP_POLL).await;
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => status.to_string(),
    }
}

/// Owns a held command's child process: restarts it when it dies, stops it when asked.
struct Supervisor {
    group: String,
    index: usize,
    /// Restarted as armed and told to go at once.
    armed: bool,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    timings: Timings,
    events: mpsc::UnboundedSender<Event>,
    state: watch::Sender<ResourceState>,
}

impl Supervisor {
    /// `guard` kills the group if the task is dropped (the runtime shuts down): `kill_on_drop`
    /// reaches the command only.
    async fn run(
        self,
        mut child: Child,
        mut guard: GroupGuard,
        mut pipe: Option<tokio::process::ChildStdin>,
        mut stop: oneshot::Receiver<()>,
    ) -> Stopped {
        let mut delay = self.timings.restart_min;
        let mut started = Instant::now();
        loop {
            // Held: wait for a stop request (or the runner's drop) or the command's death.
            let group = group_of(&child);
            guard.0 = group;
            let status = tokio::select! {
                _ = &mut stop => {
                    let how = self.terminate(child).await;
                    guard.disarm();
                    return how;
                }
                status = child.wait() => status,
            };
            // What the dead command left in its group would run twice after the restart.
            kill_group(group, Signal::SIGKILL);
            guard.disarm();
            let status = status.map_or_else(|e| e.to_string(), describe_status);
            if started.elapsed() >= self.timings.restart_max {
                delay = self.timings.restart_min;
            }
            if !self.timings.self_restart {
                warn!(group = %self.group, resource = %self.argv.join(" "), %status, "held command died");
                let _ = self
                    .state
                    .send(ResourceState::Failed(format!("died ({status})")));
                let _ = self.events.send(Event::Died {
                    group: self.group.clone(),
                    index: self.index,
                    status,
                    restart_in: Duration::ZERO,
                });
                let _ = stop.await;
                return Stopped::NotRunning;
            }
            warn!(group = %self.group, resource = %self.argv.join(" "), %status, restart_in = ?delay, "held command died");
            let _ = self.state.send(ResourceState::Restarting);
            let _ = self.events.send(Event::Died {
                group: self.group.clone(),
                index: self.index,
                status,
                restart_in: delay,
            });
            // Dead: wait out the backoff, then start it again, until it runs or we are stopped.
            loop {
                tokio::select! {
                    _ = &mut stop => return Stopped::NotRunning,
                    () = sleep(delay) => {}
                }
                let retry_in = (delay * 2).min(self.timings.restart_max);
                let restarted = if self.armed {
                    go(None, &self.argv, &self.env)
                        .await
                        .map(|(child, mut guard, go)| {
                            guard.disarm();
                            pipe = Some(go);
                            child
                        })
                } else {
                    spawn(&self.argv, &self.env, false).await
                };
                match restarted {
                    Ok(new) => {
                        child = new;
                        started = Instant::now();
                        delay = retry_in;
                        let pid = child.id().unwrap_or_default();
                        info!(group = %self.group, resource = %self.argv.join(" "), pid, "held command restarted");
                        let _ = self.state.send(ResourceState::Running { pid: Some(pid) });
                        let _ = self.events.send(Event::Restarted {
                            group: self.group.clone(),
                            index: self.index,
                            pid,
                        });
                        break;
                    }
                    Err(e) => {
                        delay = retry_in;
                        warn!(group = %self.group, resource = %self.argv.join(" "), error = %e, retry_in = ?delay, "cannot restart held command");
                        let _ = self.events.send(Event::RestartFailed {
                            group: self.group.clone(),
                            index: self.index,
                            error: e.to_string(),
                            retry_in: delay,
                        });
                    }
                }
            }
        }
    }

    /// TERM to the command's process group; KILL to the group if the command, or anything it
    /// started in its group, still runs `kill_after` later; the command reaped either way.
    async fn terminate(&self, mut child: Child) -> Stopped {
        let group = group_of(&child);
        kill_group(group, Signal::SIGTERM);
        let deadline = Instant::now() + self.timings.kill_after;
        let exited = tokio::time::timeout_at(deadline, child.wait())
            .await
            .is_ok();
        let how = match group {
            Some(group) if exited && group_gone(group, deadline).await => Stopped::Terminated,
            _ => {
                kill_group(group, Signal::SIGKILL);
                if !exited {
                    let _ = timeout(REAP_TIMEOUT, child.wait()).await;
                }
                Stopped::Killed
            }
        };
        let _ = self.state.send(ResourceState::NotRunning);
        how
    }
}

#[cfg(test)]
pub(crate) mod tests;
