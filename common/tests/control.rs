//! The control socket over real unix sockets in a temporary directory, as any user: round trips
//! with both clients, the bounds (size, silence, connection cap), bad requests, the socket file's
//! life (stale replaced, live refused, mode, removal). Cross-uid refusals need root:
//! `control_root.rs`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::control::{self, Access, ControlError, Group, Listener, MAX_CONNECTIONS, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Generous: only a broken implementation comes near it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("common-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn changes_state(cmd: &str) -> bool {
    cmd != "status"
}

/// A daemon answering: `status` with the caller's credentials, `echo` with the request,
/// `drop` by dropping the request unanswered, `typed` through a typed parse, anything else ok.
fn serve(mut listener: Listener) -> tokio::task::JoinHandle<()> {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        cmd: String,
        count: u32,
    }
    tokio::spawn(async move {
        while let Some(req) = listener.accept().await {
            let reply = match req.cmd() {
                "status" => Reply::ok(json!({
                    "uid": req.peer().uid,
                    "gid": req.peer().gid,
                    "pid": req.peer().pid,
                    "groups": req.peer().groups,
                })),
                "echo" => Reply::ok(json!({"body": req.body()})),
                "drop" => {
                    drop(req);
                    continue;
                }
                "typed" => match req.parse::<Typed>() {
                    Ok(t) => Reply::ok(json!({"count": t.count})),
                    Err(e) => Reply::error(e),
                },
                _ => Reply::ok(()),
            };
            req.reply(reply);
        }
    })
}

/// The test's own group may do everything, so these tests pass as any user.
fn own_access() -> Access {
    Access {
        group: Some(Group {
            gid: nix::unistd::getegid().as_raw(),
            name: "own".into(),
        }),
        read_group: None,
    }
}

fn bind(path: &Path) -> Listener {
    Listener::bind(path, own_access(), changes_state).unwrap()
}

async fn status(path: &Path) -> Result<Value, ControlError> {
    control::request(path, &json!({"cmd": "status"}), TIMEOUT).await
}

/// Sends raw bytes, shuts down writing, returns the raw answer.
async fn raw(path: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(TIMEOUT, s.read_to_string(&mut out))
        .await
        .expect("a reply in time")
        .unwrap();
    out
}

fn own_groups() -> Vec<u32> {
    let mut g: Vec<u32> = nix::unistd::getgroups()
        .unwrap()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    g.sort_unstable();
    g
}

#[tokio::test]
async fn round_trip_with_both_clients_and_the_callers_credentials() {
    let dir = TempDir::new("roundtrip");
    // The parent directory does not exist yet: bind creates it.
    let path = dir.join("run/ldir/ldir.sock");
    let _daemon = serve(bind(&path));
    let meta = std::fs::metadata(dir.join("run/ldir")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);

    let reply = status(&path).await.unwrap();
    assert_eq!(reply["uid"], nix::unistd::geteuid().as_raw());
    assert_eq!(reply["gid"], nix::unistd::getegid().as_raw());
    assert_eq!(reply["pid"], std::process::id());
    let mut groups: Vec<u32> = serde_json::from_value(reply["groups"].clone()).unwrap();
    groups.sort_unstable();
    assert_eq!(
        groups,
        own_groups(),
        "SO_PEERGROUPS gives the supplementary groups"
    );
    assert!(
        reply.get("ok").is_none(),
        "the envelope's ok is not handed to the caller"
    );

    // A typed reply, through the blocking client (off the runtime).
    #[derive(serde::Deserialize)]
    struct Echo {
        body: Value,
    }
    let p = path.clone();
    let echo: Echo = tokio::task::spawn_blocking(move || {
        control::request_blocking(&p, &json!({"cmd": "echo", "real": "192.0.2.1:80"}), TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(echo.body, json!({"cmd": "echo", "real": "192.0.2.1:80"}));

    // Typed parse on the daemon's side: a bad argument is the daemon's error reply.
    let e = control::request::<_, Value>(&path, &json!({"cmd": "typed", "count": "x"}), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, ControlError::Failed { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("bad request: typed: invalid type"),
        "{e}"
    );
    let ok: Value = control::request(&path, &json!({"cmd": "typed", "count": 4}), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(ok, json!({"count": 4}));

    // By hand, as with socat: one line, then the reply is one line and the connection closes.
    let out = raw(&path, b"{\"cmd\":\"drain\"}\n").await;
    assert_eq!(out, "{\"ok\":true}\n");
}

#[tokio::test]
async fn a_request_need_not_end_with_a_newline_if_the_client_shuts_down() {
    let dir = TempDir::new("eof");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let out = raw(&path, br#"{"cmd":"echo","x":1}"#).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, json!({"ok": true, "body": {"cmd": "echo", "x": 1}}));
}

#[tokio::test]
async fn a_huge_request_is_refused_and_the_daemon_keeps_serving() {
    let dir = TempDir::new("huge");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let big = "x".repeat(1024 * 1024);
    let e = control::request::<_, Value>(&path, &json!({"cmd": "echo", "pad": big}), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(e, ControlError::Failed { .. }), "{e:?}");
    assert_eq!(e.to_string(), "request too large (limit 65536 bytes)");
    // The same through the blocking client.
    let p = path.clone();
    let e = tokio::task::spawn_blocking(move || {
        control::request_blocking::<_, Value>(&p, &json!({"cmd": "echo", "pad": big}), TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.to_string(), "request too large (limit 65536 bytes)");
    status(&path).await.expect("still serving");
}

#[tokio::test]
async fn a_silent_client_does_not_block_others() {
    let dir = TempDir::new("silent");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let mut silent = UnixStream::connect(&path).await.unwrap();
    let mut partial = UnixStream::connect(&path).await.unwrap();
    partial.write_all(b"{\"cmd\":\"sta").await.unwrap();
    // Served while both are still open (a daemon that waited on them would answer only after
    // dropping them, which the checks below would see as end-of-file).
    status(&path).await.unwrap();
    let mut buf = [0u8; 64];
    for s in [&mut silent, &mut partial] {
        match s.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the slow connection was already answered or closed: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_read_timeout() {
    let dir = TempDir::new("timeout");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let mut silent = UnixStream::connect(&path).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut out = String::new();
    // Paused time: the runtime jumps to the daemon's timer when nothing else can happen (and to
    // ours, failing the test, if the daemon has none).
    tokio::time::timeout(TIMEOUT, silent.read_to_string(&mut out))
        .await
        .expect("the daemon never dropped a silent client")
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"ok": false, "error": "no complete request within 5s"})
    );
    assert!(started.elapsed() >= control::READ_TIMEOUT);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_answered_busy() {
    let dir = TempDir::new("busy");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(UnixStream::connect(&path).await.unwrap());
    }
    let e = status(&path).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("busy: {MAX_CONNECTIONS} control connections open, try again")
    );
    drop(held);
    // Slots come back when their connections end.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while let Err(e) = status(&path).await {
        assert!(tokio::time::Instant::now() < deadline, "still refused: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_requests_get_error_replies() {
    let dir = TempDir::new("bad");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let reply = |out: String| -> String {
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
        assert_eq!(v["ok"], false, "{out}");
        assert!(out.ends_with('\n'));
        v["error"].as_str().unwrap().to_string()
    };
    let e = reply(raw(&path, b"{not json\n").await);
    assert!(
        e.starts_with("malformed request: key must be a string"),
        "{e}"
    );
    let e = reply(raw(&path, b"\xff\xfe\n").await);
    assert!(e.starts_with("malformed request"), "{e}");
    let e = reply(raw(&path, b"\n").await);
    assert!(e.starts_with("empty request"), "{e}");
    let e = reply(raw(&path, b"").await);
    assert!(e.starts_with("empty request"), "{e}");
    let e = reply(raw(&path, b"[\"status\"]\n").await);
    assert!(e.starts_with("bad request: expected a JSON object"), "{e}");
    let e = control::request::<_, Value>(&path, &json!({"command": "status"}), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("bad request"), "{e}");
    // Dropped unanswered: the client still learns something.
    let e = control::request::<_, Value>(&path, &json!({"cmd": "drop"}), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "internal error: the daemon dropped the drop request without replying"
    );
    status(&path).await.expect("still serving");
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.join("s.sock");
    // A socket file nobody listens on, as a killed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let e = status(&path).await.unwrap_err();
    assert!(
        e.to_string().starts_with("not running (stale socket at "),
        "{e}"
    );
    assert_eq!(e.exit(), common::daemon::Exit::NotRunning);
    let _daemon = serve(bind(&path));
    status(&path).await.unwrap();
}

#[tokio::test]
async fn a_live_socket_is_not_taken_over() {
    let dir = TempDir::new("live");
    let path = dir.join("s.sock");
    let _daemon = serve(bind(&path));
    let e = Listener::bind(&path, own_access(), changes_state).unwrap_err();
    assert!(matches!(e, ControlError::InUse { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: another daemon answers on this socket: stop it first or set another socket path",
            path.display()
        )
    );
    status(&path).await.expect("the first daemon still answers");

    // Something that is not a socket is left alone.
    let file = dir.join("file");
    std::fs::write(&file, "keep me").unwrap();
    let e = Listener::bind(&file, Access::default(), changes_state).unwrap_err();
    assert!(matches!(e, ControlError::NotSocket { .. }), "{e:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn the_socket_file_is_0660_and_root_owned_under_root() {
    let dir = TempDir::new("mode");
    let path = dir.join("s.sock");
    let listener = Listener::bind(&path, Access::default(), changes_state).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    if nix::unistd::geteuid().is_root() {
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
    } else {
        // Not root: ownership stays the caller's.
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    }
    drop(listener);

    // A read-only group opens connecting to everyone; the credentials decide.
    let own = Group {
        gid: nix::unistd::getegid().as_raw(),
        name: "own".into(),
    };
    let access = Access {
        group: Some(own.clone()),
        read_group: Some(own),
    };
    let _listener = Listener::bind(&path, access, changes_state).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(meta.gid(), nix::unistd::getegid().as_raw());
    }
}

#[tokio::test]
async fn the_socket_file_is_removed_on_drop_but_not_a_successors() {
    let dir = TempDir::new("drop");
    let path = dir.join("s.sock");
    let daemon = serve(bind(&path));
    status(&path).await.unwrap();
    daemon.abort();
    let _ = daemon.await;
    assert!(!path.exists(), "socket file left behind");
    let e = status(&path).await.unwrap_err();
    assert!(matches!(e, ControlError::NotRunning { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("not running (no socket at {})", path.display())
    );
    assert_eq!(e.exit(), common::daemon::Exit::NotRunning);

    // An old listener whose file was replaced does not remove the new one.
    let old = bind(&path);
    std::fs::rename(&path, dir.join("old.sock")).unwrap();
    let _new = serve(bind(&path));
    drop(old);
    status(&path)
        .await
        .expect("the successor's socket survives");
}
