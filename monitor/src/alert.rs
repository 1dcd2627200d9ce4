//! Alert commands, called exactly as mon calls them so that Debian mon's alert scripts
//! (`/usr/lib/mon/alert.d/*.alert`) work unchanged:
//!
//! - argv: `ALERT -s SERVICE -g GROUP -h "HOST1 HOST2" [-l ALERTEVERY] -t TIME [-u] ARGS...` —
//!   mon 1.3.6 (`call_alert` in `/usr/sbin/mon`) passes `-s -g -h -t`, then the type flag (`-u`
//!   for an upalert), then the configured arguments; mon(8) also documents `-l alertevery` (the
//!   seconds until the next alert), which is passed here when the service sets `alert_every`.
//!   `-h` is the host group's hosts, space-separated, in one word; TIME is `time(2)`.
//! - environment: mon's `MON_*` variables (those mon sets when it knows the value):
//!   `MON_LAST_SUMMARY`, `MON_LAST_OUTPUT`, `MON_LAST_FAILURE`, `MON_FIRST_FAILURE`,
//!   `MON_LAST_SUCCESS`, `MON_DESCRIPTION`, `MON_GROUP`, `MON_SERVICE`, `MON_RETVAL`,
//!   `MON_OPSTATUS` (mon's numbers: fail 0, ok 1, untested 7), `MON_ACK`, `MON_ALERTTYPE`
//!   (`failure`, `up`, `startup`), `MON_STATEDIR`.
//! - standard input: the probe's output, the summary line then the detail.
//!
//! The program is an absolute path, or a name looked up in the alert directories in order (ours
//! `/etc/monitor/alert.d`, then mon's `/usr/lib/mon/alert.d`). A missing or non-executable one is
//! an error for this call only. Each call is bounded: its standard input is written without
//! waiting on a full pipe forever, it is killed (with its process group) after a timeout, and at
//! most [`OUTPUT_LIMIT`] bytes of what it prints are kept for the log. A variable's value is cut
//! at [`ENV_LIMIT`] bytes and the input at [`INPUT_LIMIT`] (a probe that printed megabytes must
//! not make the exec fail).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::rules::{AlertKind, OpStatus, ServiceId};

/// How much of an alert's output is kept (the rest is read and dropped).
pub const OUTPUT_LIMIT: usize = 4096;
/// The longest value of one `MON_*` variable (the kernel refuses an exec with a string over
/// 128 KiB); longer ones are cut at a character boundary.
pub const ENV_LIMIT: usize = 32 * 1024;
/// The most of the probe's output an alert gets on its standard input.
pub const INPUT_LIMIT: usize = 1024 * 1024;
/// How long an alert may run when the caller gives no timeout (mon waits forever; a stuck mail
/// relay must not pile up processes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What an alert call is about: the service, its state and the probe's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    pub id: &'a ServiceId,
    pub kind: AlertKind,
    /// Every host of the service's group.
    pub hosts: &'a [std::net::IpAddr],
    /// The service's `alert_every`, for `-l`.
    pub alert_every: Option<Duration>,
    /// Now, as `time(2)`.
    pub time: u64,
    /// The probe's output: the summary line, then the detail.
    pub summary: &'a str,
    pub detail: &'a str,
    /// The probe's exit code (mon's `MON_RETVAL`; 0 for success).
    pub retval: i32,
    pub status: OpStatus,
    pub description: Option<&'a str>,
    pub ack: Option<&'a str>,
    /// `time(2)` of the first failure of this episode, the last failure and the last success.
    pub first_failure: Option<u64>,
    pub last_failure: Option<u64>,
    pub last_success: Option<u64>,
    pub state_dir: Option<&'a Path>,
}

/// One alert call, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// argv, the program first (as found).
    pub argv: Vec<String>,
    /// Variables set on top of the daemon's environment.
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

/// Why an alert call did not run to success.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert {name:?} not found in {dirs}")]
    NotFound { name: String, dirs: String },
    #[error("{} is not executable (mode {mode:04o}): chmod +x it", path.display())]
    NotExecutable { path: PathBuf, mode: u32 },
    #[error("cannot run {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} did not finish within {timeout:?}: killed", path.display())]
    TimedOut { path: PathBuf, timeout: Duration },
    #[error("{} failed ({status}){}", path.display(), if output.is_empty() { String::new() } else { format!(": {output}") })]
    Failed {
        path: PathBuf,
        status: String,
        output: String,
    },
}

/// mon's `MON_OPSTATUS` numbers.
fn opstatus(s: OpStatus) -> u8 {
    match s {
        OpStatus::Fail => 0,
        OpStatus::Ok => 1,
        OpStatus::Untested => 7,
    }
}

/// The call of alert command `cmd` (its program, as found, then its arguments) for `ctx`.
pub fn invocation(program: &Path, args: &[String], ctx: &Context<'_>) -> Invocation {
    let mut argv = vec![
        program.display().to_string(),
        "-s".into(),
        ctx.id.service.clone(),
        "-g".into(),
        ctx.id.group.clone(),
        "-h".into(),
        ctx.hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    ];
    if let Some(every) = ctx.alert_every {
        argv.extend(["-l".into(), every.as_secs().to_string()]);
    }
    argv.extend(["-t".into(), ctx.time.to_string()]);
    if ctx.kind == AlertKind::Up {
        argv.push("-u".into());
    }
    argv.extend(args.iter().cloned());

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), cut(v, ENV_LIMIT)));
    set("MON_LAST_SUMMARY", ctx.summary.to_string());
    set("MON_LAST_OUTPUT", output(ctx.summary, ctx.detail));
    if let Some(t) = ctx.last_failure {
        set("MON_LAST_FAILURE", t.to_string());
    }
    if let Some(t) = ctx.first_failure {
        set("MON_FIRST_FAILURE", t.to_string());
    }
    if let Some(t) = ctx.last_success {
        set("MON_LAST_SUCCESS", t.to_string());
    }
    if let Some(d) = ctx.description {
        set("MON_DESCRIPTION", d.to_string());
    }
    set("MON_GROUP", ctx.id.group.clone());
    set("MON_SERVICE", ctx.id.service.clone());
    set("MON_RETVAL", ctx.retval.to_string());
    set("MON_OPSTATUS", opstatus(ctx.status).to_string());
    if let Some(a) = ctx.ack.filter(|a| !a.is_empty()) {
        set("MON_ACK", a.to_string());
    }
    set("MON_ALERTTYPE", ctx.kind.as_str().to_string());
    if let Some(d) = ctx.state_dir {
        set("MON_STATEDIR", d.display().to_string());
    }
    Invocation {
        argv,
        env,
        stdin: cut(output(ctx.summary, ctx.detail), INPUT_LIMIT).into_bytes(),
    }
}

/// `s` cut to at most `limit` bytes, at a character boundary.
fn cut(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut at = limit;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

/// The summary line and the detail as mon hands them on: one text, lines ended with `\n`.
fn output(summary: &str, detail: &str) -> String {
    let mut s = format!("{summary}\n");
    if !detail.is_empty() {
        s.push_str(detail);
        if !detail.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// Finds alert program `name`: a path as it is, a bare name in `dirs` in order.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, AlertError> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        dirs.iter().map(|d| d.join(name)).collect()
    };
    for path in candidates {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o111 == 0 {
            return Err(AlertError::NotExecutable { path, mode });
        }
        return Ok(path);
    }
    Err(AlertError::NotFound {
        name: name.to_string(),
        dirs: if name.contains('/') {
            "the file system".to_string()
        } else {
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Runs one alert call to its end (or kills it with its process group after `timeout`); returns
/// what it printed (at most [`OUTPUT_LIMIT`] bytes, stdout then stderr).
pub async fn run(inv: &Invocation, timeout: Duration) -> Result<String, AlertError> {
    let path = PathBuf::from(&inv.argv[0]);
    let mut cmd = tokio::process::Command::new(&inv.argv[0]);
    cmd.args(&inv.argv[1..])
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| AlertError::Spawn {
        path: path.clone(),
        source,
    })?;
    let pgid = child.id();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let input = inv.stdin.clone();
    let work = async {
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // An alert that does not read its input gets EPIPE: not an error of ours.
                let _ = s.write_all(&input).await;
            }
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(o) = stdout.as_mut() {
                read_capped(o, &mut out).await;
            }
        };
        let read_err = async {
            if let Some(e) = stderr.as_mut() {
                read_capped(e, &mut err).await;
            }
        };
        tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        out.extend_from_slice(&err[..err.len().min(OUTPUT_LIMIT.saturating_sub(out.len()))]);
        (status, out)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), out)) => {
            let output = String::from_utf8_lossy(&out).trim().to_string();
            if status.success() {
                Ok(output)
            } else {
                let status = match (status.code(), status.signal()) {
                    (Some(c), _) => format!("exit status {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    _ => status.to_string(),
                };
                Err(AlertError::Failed {
                    path,
                    status,
                    output,
                })
            }
        }
        Ok((Err(source), _)) => Err(AlertError::Spawn { path, source }),
        Err(_) => {
            if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(AlertError::TimedOut { path, timeout })
        }
    }
}

/// Reads `r` to its end, keeping at most [`OUTPUT_LIMIT`] bytes in `out` in all.
async fn read_capped(r: &mut (impl AsyncReadExt + Unpin), out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
