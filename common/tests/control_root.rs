//! The control socket against callers of another uid: the test re-runs itself as uid 1001 with
//! chosen supplementary groups (setgroups/setgid/setuid before exec) and checks what the file
//! mode and the credential check let through, and that refusals are logged with uid and pid.
//! Needs root: a `*_root` target, run by `cargo test --workspace --test '*_root'` (`tests/lab all`).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::control::{self, Access, Group, Listener, Reply};
use serde_json::{Value, json};

const TEST: &str = "cross_uid_requests";
const CHILD_SOCKET: &str = "CONTROL_ROOT_CHILD_SOCKET";
const CHILD_CMD: &str = "CONTROL_ROOT_CHILD_CMD";
const CHILD_UID: u32 = 1001;
const TIMEOUT: Duration = Duration::from_secs(30);

fn writers() -> Group {
    Group {
        gid: 2000,
        name: "ctl-writers".into(),
    }
}

fn readers() -> Group {
    Group {
        gid: 2001,
        name: "ctl-readers".into(),
    }
}

/// The child's part: one request, its outcome on one line of stdout.
fn child(socket: &str) {
    let cmd = std::env::var(CHILD_CMD).expect("CONTROL_ROOT_CHILD_CMD");
    let line = match control::request_blocking::<_, Value>(socket, &json!({"cmd": cmd}), TIMEOUT) {
        Ok(v) => format!("CHILD-RESULT ok {v}"),
        Err(e) => format!("CHILD-RESULT err {e}"),
    };
    println!("{line}");
}

/// Runs this test binary as uid 1001 (gid 1001, supplementary `groups`) sending `cmd`; returns
/// its pid and the outcome line without its marker.
async fn run_as(socket: &Path, cmd: &str, groups: &[u32]) -> (u32, String) {
    let groups: Vec<nix::unistd::Gid> = groups.iter().map(|&g| g.into()).collect();
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_SOCKET, socket)
        .env(CHILD_CMD, cmd)
        .stdout(std::process::Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only makes three system
    // calls (no allocation, no locks), which is what `pre_exec` allows.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(CHILD_UID.into())?;
            nix::unistd::setuid(CHILD_UID.into())?;
            Ok(())
        });
    }
    let child = command.spawn().expect("start the child client");
    let pid = child.id().expect("the child's pid");
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("the child client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        // libtest may have started the line with the test's name.
        .find_map(|l| l.split_once("CHILD-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result from the child ({}): {stdout}", out.status))
        .to_string();
    (pid, line)
}

/// A daemon answering `status` with the caller's credentials and anything else with ok.
fn serve(mut listener: Listener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(req) = listener.accept().await {
            let p = req.peer().clone();
            let reply = match req.cmd() {
                "status" => Reply::ok(json!({"uid": p.uid, "pid": p.pid, "groups": p.groups})),
                _ => Reply::ok(json!({"done": req.cmd()})),
            };
            req.reply(reply);
        }
    })
}

fn changes_state(cmd: &str) -> bool {
    cmd != "status"
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn cross_uid_requests() {
    if let Ok(socket) = std::env::var(CHILD_SOCKET) {
        return child(&socket);
    }
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "needs root (runs clients as uid 1001 via setuid): run as root `cargo test -p common --test control_root` (part of `tests/lab all`)"
        );
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log_guard = tracing::subscriber::set_default(subscriber);

    let dir =
        TempDir(std::env::temp_dir().join(format!("common-control-root-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Root only (the default): the file's mode keeps uid 1001 out before any request.
    let path = dir.0.join("root-only.sock");
    let daemon = serve(Listener::bind(&path, Access::default(), changes_state).unwrap());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o660, 0, 0));
    let (_, got) = run_as(&path, "status", &[]).await;
    assert_eq!(
        got,
        format!(
            "err permission denied: cannot connect to {} (needs root or group root)",
            path.display()
        )
    );
    daemon.abort();

    // A writers group owns the file: a supplementary membership opens it and allows changes.
    let path = dir.0.join("writers.sock");
    let access = Access {
        group: Some(writers()),
        read_group: None,
    };
    let daemon = serve(Listener::bind(&path, access, changes_state).unwrap());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid(), meta.gid()),
        (0o660, 0, 2000)
    );
    let (_, got) = run_as(&path, "drain", &[2000]).await;
    assert_eq!(got, r#"ok {"done":"drain"}"#);
    let (_, got) = run_as(&path, "drain", &[2001]).await;
    assert!(
        got.starts_with("err permission denied: cannot connect to ")
            && got.ends_with("(needs root or group 2000)"),
        "{got}"
    );
    daemon.abort();

    // With a read-only group the file is open to all and the credentials decide.
    let path = dir.0.join("readers.sock");
    let access = Access {
        group: Some(writers()),
        read_group: Some(readers()),
    };
    let daemon = serve(Listener::bind(&path, access, changes_state).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o666);

    let (pid, got) = run_as(&path, "status", &[]).await;
    assert_eq!(
        got,
        "err permission denied: uid 1001 is not root or in group ctl-writers or ctl-readers"
    );
    let logged = log.text();
    let refused = logged
        .lines()
        .find(|l| l.contains("control request refused"))
        .unwrap_or_else(|| panic!("refusal not logged:\n{logged}"));
    assert!(
        refused.contains("uid=1001") && refused.contains(&format!("pid={pid}")),
        "{refused}"
    );
    assert!(
        refused.contains("cmd=\"status\"") || refused.contains("cmd=status"),
        "{refused}"
    );

    let (pid, got) = run_as(&path, "status", &[2001]).await;
    let reply: Value = serde_json::from_str(got.strip_prefix("ok ").expect(&got)).unwrap();
    assert_eq!(reply, json!({"uid": 1001, "pid": pid, "groups": [2001]}));
    let (_, got) = run_as(&path, "drain", &[2001]).await;
    assert_eq!(
        got,
        "err permission denied: uid 1001 is not root or in group ctl-writers"
    );
    let (_, got) = run_as(&path, "drain", &[5, 2000]).await;
    assert_eq!(got, r#"ok {"done":"drain"}"#);
    daemon.abort();
}
