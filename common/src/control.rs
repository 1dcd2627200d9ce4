//! The control socket: one JSON request and one JSON reply per connection over a unix stream
//! socket (`/run/<tool>/<name>.sock`), with the caller's credentials checked by the kernel
//! (`SO_PEERCRED`, `SO_PEERGROUPS`). Daemons serve it with [`Listener`]; `status [--json]` and the
//! other subcommands are clients of it through [`request`] / [`request_blocking`].
//!
//! # Protocol
//! The client connects, sends one JSON object on one line (the request ends at the first newline
//! or when the client shuts down its writing side), and reads one JSON value followed by a newline;
//! then the daemon closes the connection. The envelope:
//!
//! - request: `{"cmd":"status", ...arguments}`;
//! - reply: `{"ok":true, ...fields}` or `{"ok":false,"error":"what went wrong"}`.
//!
//! So `echo '{"cmd":"status"}' | socat - UNIX-CONNECT:/run/ldir/ldir.sock` works by hand.
//!
//! # Who may do what (DESIGN.md)
//! The socket file is `0660`, owned by root and the configured [`Access::group`] (root's group by
//! default) when the daemon runs as root. Every request is checked again with the kernel's view of
//! the caller: a state-changing command needs uid 0 or membership of `group` (primary or
//! supplementary); a read-only command (the daemon says which, see [`Listener::bind`]) is also
//! allowed to members of [`Access::read_group`]. Because connecting to a unix socket needs write
//! permission on the file and a file has one group, a configured `read_group` makes the file
//! `0666`: the credential check is then the only gate, and it is applied to every request.
//! Refusals are answered by this module itself and logged with the caller's uid and pid: the
//! daemon only sees requests it may act on.
//!
//! # Bounds
//! A request is read for at most [`READ_TIMEOUT`] and [`MAX_REQUEST`] bytes; at most
//! [`MAX_CONNECTIONS`] connections are open at once (more are answered "busy" and closed); a
//! reply is written in its own task for at most [`WRITE_TIMEOUT`]. A slow or silent client costs
//! one task and one connection slot for a few seconds, never the daemon's loop.
//!
//! Deliberately not here: what the commands are and what they answer (each daemon's business),
//! and a lock against two daemons starting on the same path in the same instant (a daemon that
//! answers on the socket is detected; a simultaneous start is not).
//!
//! # Example
//! ```
//! use common::control::{self, Access, Group, Listener, Reply};
//! use serde::Deserialize;
//! use std::time::Duration;
//!
//! #[derive(Deserialize)]
//! #[serde(tag = "cmd", rename_all = "lowercase")]
//! enum Cmd {
//!     Status,
//!     Drain { real: String },
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # let dir = std::env::temp_dir().join(format!("control-doc-{}", std::process::id()));
//! let path = dir.join("ldir.sock");
//! // In real use `Group::lookup(&config.socket_group)`; here the caller's own group, so the
//! // example passes as any user.
//! # let gid = nix::unistd::getegid().as_raw();
//! let access = Access { group: Some(Group { gid, name: "ldir".into() }), read_group: None };
//! // Only `status` is read-only; anything else needs root or the group.
//! let mut listener = Listener::bind(&path, access, |cmd| cmd != "status").unwrap();
//! tokio::spawn(async move {
//!     while let Some(req) = listener.accept().await {
//!         let reply = match req.parse::<Cmd>() {
//!             Ok(Cmd::Status) => Reply::ok(serde_json::json!({"virtuals": 3})),
//!             Ok(Cmd::Drain { real }) => Reply::error(format!("no real server {real}")),
//!             Err(e) => Reply::error(e),
//!         };
//!         req.reply(reply);
//!     }
//! });
//!
//! #[derive(serde::Deserialize)]
//! struct Status {
//!     virtuals: u32,
//! }
//! let status: Status = control::request(&path, &serde_json::json!({"cmd": "status"}),
//!     Duration::from_secs(5)).await.unwrap();
//! assert_eq!(status.virtuals, 3);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::daemon::Exit;

/// Largest request accepted, in bytes (a request is a command and a few arguments).
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a client has to send its whole request before the connection is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the whole reply before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections handled at once; more are answered "busy" and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest reply a client accepts (a full `status --json` of a large director fits easily).
pub const MAX_REPLY: usize = 32 * 1024 * 1024;

/// A unix group: its id, and its name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group id.
    pub gid: u32,
    /// The name, as in messages ("not root or in group ldir").
    pub name: String,
}

impl Group {
    /// Group 0, `root`.
    pub fn root() -> Group {
        Group {
            gid: 0,
            name: "root".into(),
        }
    }

    /// The group called `name` (from the group database: blocking, do it at startup), or the
    /// numeric gid `name` spells.
    pub fn lookup(name: &str) -> Result<Group, ControlError> {
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(Group {
                gid: g.gid.as_raw(),
                name: g.name,
            }),
            Ok(None) => match name.parse::<u32>() {
                Ok(gid) => Ok(Group {
                    gid,
                    name: name.to_string(),
                }),
                Err(_) => Err(ControlError::NoGroup {
                    name: name.to_string(),
                    reason: "no such group".into(),
                }),
            },
            Err(e) => Err(ControlError::NoGroup {
                name: name.to_string(),
                reason: e.desc().to_string(),
            }),
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Who may use a control socket besides root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Members may send every command, and the socket file belongs to this group. `None`: root
    /// only (the file's group is then root's).
    pub group: Option<Group>,
    /// Members may also send the read-only commands (status and the like).
    pub read_group: Option<Group>,
}

/// The process at the other end of a connection, as the kernel saw it when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Process id (0 if the kernel could not tell, e.g. across pid namespaces).
    pub pid: i32,
    /// Supplementary groups (`SO_PEERGROUPS`); empty if the kernel could not tell.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Whether the peer has `gid` as its primary or one of its supplementary groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Whether `peer` may send a command that changes state (`changes_state`) or only reads it.
/// Root may do everything; so may the daemon's own user (it could signal or kill the daemon
/// anyway: a daemon run by a user for tests or by hand answers that user); members of
/// `access.group` too; members of `access.read_group` may read.
pub fn allowed(peer: &Peer, access: &Access, changes_state: bool) -> bool {
    allowed_for(peer, access, changes_state, nix::unistd::geteuid().as_raw())
}

/// [`allowed`] for a daemon running as `own_uid`.
fn allowed_for(peer: &Peer, access: &Access, changes_state: bool, own_uid: u32) -> bool {
    let member = |g: &Option<Group>| g.as_ref().is_some_and(|g| peer.in_group(g.gid));
    peer.uid == 0
        || peer.uid == own_uid
        || member(&access.group)
        || (!changes_state && member(&access.read_group))
}

/// The message for a refused request: `permission denied: uid 1001 is not root or in group ldir`.
pub fn refusal(peer: &Peer, access: &Access, changes_state: bool) -> String {
    let mut groups: Vec<&str> = Vec::new();
    if let Some(g) = &access.group {
        groups.push(&g.name);
    }
    if !changes_state && let Some(g) = &access.read_group {
        groups.push(&g.name);
    }
    match groups.as_slice() {
        [] => format!("permission denied: uid {} is not root", peer.uid),
        [g] => format!(
            "permission denied: uid {} is not root or in group {g}",
            peer.uid
        ),
        gs => format!(
            "permission denied: uid {} is not root or in group {}",
            peer.uid,
            gs.join(" or ")
        ),
    }
}

/// A reply in the envelope: `{"ok":true, ...}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply(Value);

impl Reply {
    /// A success. An object's fields go beside `"ok":true` (an `"ok"` field of its own is
    /// replaced); `()`/`null` gives `{"ok":true}`; any other value goes under `"value"`. A value
    /// that cannot be encoded becomes an error reply saying so.
    pub fn ok(value: impl Serialize) -> Reply {
        let value = match serde_json::to_value(value) {
            Ok(v) => v,
            Err(e) => return Reply::error(format!("internal error: cannot encode the reply: {e}")),
        };
        let mut map = match value {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        map.insert("ok".into(), Value::Bool(true));
        Reply(Value::Object(map))
    }

    /// A failure with its message.
    pub fn error(message: impl fmt::Display) -> Reply {
        Reply(serde_json::json!({"ok": false, "error": message.to_string()}))
    }

    /// Whether this is a success.
    pub fn is_ok(&self) -> bool {
        self.0.get("ok") == Some(&Value::Bool(true))
    }

    /// The JSON value sent.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The bytes on the wire: the value and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = self.0.to_string().into_bytes();
        line.push(b'\n');
        line
    }
}

/// Why a request is answered by this module rather than handed to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The answer.
    pub reply: Reply,
    /// The command, when the request got that far.
    pub cmd: Option<String>,
    /// Whether this is a permission refusal (logged as such).
    pub denied: bool,
}

impl Rejection {
    fn bad(msg: impl fmt::Display) -> Rejection {
        Rejection {
            reply: Reply::error(msg),
            cmd: None,
            denied: false,
        }
    }
}

/// The pure part of serving a connection: from the request's bytes (without the newline) and
/// the caller, the command and body the daemon gets, or the reply this module sends instead.
pub fn admit(
    line: &[u8],
    peer: &Peer,
    access: &Access,
    changes_state: &dyn Fn(&str) -> bool,
) -> Result<(String, Value), Rejection> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Err(Rejection::bad(
            r#"empty request: send one JSON object such as {"cmd":"status"}"#,
        ));
    }
    let body: Value = serde_json::from_slice(text)
        .map_err(|e| Rejection::bad(format!("malformed request: {e}")))?;
    let Some(cmd) = body.get("cmd").and_then(Value::as_str) else {
        return Err(Rejection::bad(
            r#"bad request: expected a JSON object with a "cmd" string, such as {"cmd":"status"}"#,
        ));
    };
    let cmd = cmd.to_string();
    let changes = changes_state(&cmd);
    if !allowed(peer, access, changes) {
        return Err(Rejection {
            reply: Reply::error(refusal(peer, access, changes)),
            cmd: Some(cmd),
            denied: true,
        });
    }
    Ok((cmd, body))
}

/// Everything that can go wrong on either side of a control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No socket file: the daemon is not running (LSB exit 3).
    #[error("not running (no socket at {})", path.display())]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// A socket file nobody listens on: the daemon died (LSB exit 3).
    #[error("not running (stale socket at {}: nothing listens on it)", path.display())]
    Stale {
        /// The socket path.
        path: PathBuf,
    },
    /// The caller may not connect, or the daemon refused the command.
    #[error("permission denied: {detail}")]
    Denied {
        /// The socket path.
        path: PathBuf,
        /// What was refused and who would be allowed.
        detail: String,
    },
    /// The daemon did not answer in time.
    #[error("{}: no reply within {timeout:?}", path.display())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The time allowed.
        timeout: Duration,
    },
    /// The daemon's reply was not a reply.
    #[error("{}: bad reply: {reason}", path.display())]
    BadReply {
        /// The socket path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The daemon answered `{"ok":false}`.
    #[error("{}", message)]
    Failed {
        /// The socket path.
        path: PathBuf,
        /// The daemon's error message.
        message: String,
    },
    /// A system call failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Binding: another daemon answers on the path.
    #[error(
        "{}: another daemon answers on this socket: stop it first or set another socket path",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding: the path holds something that is not a socket.
    #[error("{}: exists and is not a socket: refusing to remove it", path.display())]
    NotSocket {
        /// The path.
        path: PathBuf,
    },
    /// A group name that does not resolve.
    #[error("group {name:?}: {reason}")]
    NoGroup {
        /// The name given.
        name: String,
        /// Why it does not resolve.
        reason: String,
    },
}

impl ControlError {
    /// The exit status a client command should end with: 3 when the daemon is not running,
    /// 1 when it answered with an error, 125 when permission is missing (retrying will not help),
    /// 111 for time-outs and other temporary failures, 2 for a bad group name.
    pub fn exit(&self) -> Exit {
        match self {
            ControlError::NotRunning { .. } | ControlError::Stale { .. } => Exit::NotRunning,
            ControlError::Failed { .. } => Exit::Negative,
            ControlError::Denied { .. } | ControlError::NotSocket { .. } => Exit::PermFail,
            ControlError::NoGroup { .. } => Exit::Usage,
            ControlError::Timeout { .. }
            | ControlError::BadReply { .. }
            | ControlError::Io { .. }
            | ControlError::InUse { .. } => Exit::TempFail,
        }
    }

    fn io(path: &Path, what: &'static str, source: io::Error) -> ControlError {
        ControlError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server side.

/// What every connection task shares.
struct Shared {
    path: PathBuf,
    access: Access,
    changes_state: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

/// A bound control socket. Requests the caller may make arrive through [`Listener::accept`];
/// dropping it stops accepting and removes the socket file (if it is still this one).
pub struct Listener {
    path: PathBuf,
    /// Device and inode of the socket file bound, so drop never removes a successor's socket.
    ident: (u64, u64),
    rx: mpsc::Receiver<Request>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("path", &self.path)
            .finish()
    }
}

impl Listener {
    /// Binds the socket at `path` and starts accepting in a task of the current tokio runtime.
    ///
    /// A socket file left by a dead daemon (connecting is refused) is replaced; one a live daemon
    /// answers on is an error ([`ControlError::InUse`]), as is a path that is not a socket. The
    /// parent directory is created (0755) if missing. The file is made 0660 (0666 with a
    /// `read_group`, see the module doc) and, when running as root, owned by root and
    /// `access.group` (root's group by default).
    ///
    /// `changes_state(cmd)` says whether a command changes state; those need root or
    /// `access.group`, the others may also come from `access.read_group`. Answer `true` for
    /// commands you do not know, so a new command is guarded until declared read-only.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn bind(
        path: impl AsRef<Path>,
        access: Access,
        changes_state: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<Listener, ControlError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| ControlError::io(parent, "cannot create the directory", e))?;
        }
        remove_stale(&path)?;
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| ControlError::io(&path, "cannot bind the control socket", e))?;
        // From here on the file is ours; a failure below must not leave it behind.
        let cleanup = |e: ControlError| {
            let _ = std::fs::remove_file(&path);
            e
        };
        let mode = if access.read_group.is_some() {
            0o666
        } else {
            0o660
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| cleanup(ControlError::io(&path, "cannot set the socket's mode", e)))?;
        if nix::unistd::geteuid().is_root() {
            let gid = access.group.as_ref().map_or(0, |g| g.gid);
            std::os::unix::fs::chown(&path, Some(0), Some(gid)).map_err(|e| {
                cleanup(ControlError::io(
                    &path,
                    "cannot give the socket to its group",
                    e,
                ))
            })?;
        }
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| cleanup(ControlError::io(&path, "cannot stat the socket", e)))?;
        let shared = Arc::new(Shared {
            path: path.clone(),
            access,
            changes_state: Box::new(changes_state),
        });
        let (tx, rx) = mpsc::channel(MAX_CONNECTIONS);
        let acceptor = tokio::spawn(accept_loop(listener, shared, tx));
        Ok(Listener {
            path,
            ident: (meta.dev(), meta.ino()),
            rx,
            acceptor,
        })
    }

    /// The next request the caller may make. `None` only if the accepting task ended (it does
    /// not on its own).
    pub async fn accept(&mut self) -> Option<Request> {
        self.rx.recv().await
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.acceptor.abort();
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.ident
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket file nobody listens on; refuses if someone does or if it is not a socket.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ControlError::io(path, "cannot stat the socket path", e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotSocket {
            path: path.to_path_buf(),
        });
    }
    // Non-blocking, so a live daemon with a full backlog answers EAGAIN instead of stalling us.
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| ControlError::io(path, "cannot create a socket", e.into()))?;
    let addr =
        UnixAddr::new(path).map_err(|e| ControlError::io(path, "not a socket path", e.into()))?;
    match socket::connect(fd.as_raw_fd(), &addr) {
        Err(Errno::ECONNREFUSED) => std::fs::remove_file(path)
            .map_err(|e| ControlError::io(path, "cannot remove the stale socket", e)),
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Err(ControlError::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(ControlError::io(
            path,
            "cannot tell whether a daemon listens on the socket",
            e.into(),
        )),
    }
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(serve(stream, permit, shared.clone(), tx.clone()));
                }
                Err(_) => {
                    tracing::warn!(
                        socket = %shared.path.display(),
                        limit = MAX_CONNECTIONS,
                        "control connection refused: too many open"
                    );
                    // A fresh socket's buffer takes this small line without waiting.
                    let busy = Reply::error(format!(
                        "busy: {MAX_CONNECTIONS} control connections open, try again"
                    ));
                    let _ = stream.try_write(&busy.to_line());
                }
            },
            Err(e) => {
                // EMFILE and friends: wait for descriptors to free up rather than spin.
                tracing::warn!(socket = %shared.path.display(), error = %e, "control accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why reading a request ended without one.
enum ReadEnd {
    TooLarge,
    TimedOut,
    Io(io::Error),
}

/// Reads one request: bytes up to the first newline or the end of the client's writing.
async fn read_request(stream: &mut UnixStream) -> Result<Vec<u8>, ReadEnd> {
    let read = async {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await.map_err(ReadEnd::Io)?;
            if n == 0 {
                return Ok(buf);
            }
            if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                if buf.len() + i > MAX_REQUEST {
                    return Err(ReadEnd::TooLarge);
                }
                buf.extend_from_slice(&chunk[..i]);
                return Ok(buf);
            }
            if buf.len() + n > MAX_REQUEST {
                return Err(ReadEnd::TooLarge);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(ReadEnd::TimedOut))
}

fn peer_of(stream: &UnixStream) -> io::Result<Peer> {
    let cred = socket::getsockopt(stream, sockopt::PeerCredentials)?;
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
        groups: peer_groups(stream).unwrap_or_default(),
    })
}

/// The peer's supplementary groups as of its connect (`SO_PEERGROUPS`, Linux 4.13), read from
/// the socket rather than `/proc/<pid>` so a recycled pid cannot lend its groups.
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the descriptor is open for the call (borrowed from `stream`), `groups` is a
        // writable buffer of `len` bytes and `len` a valid socklen_t the kernel updates.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` now says how big it must be.
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
        } else {
            return Err(err);
        }
    }
}

/// Serves one connection: read, check, hand to the daemon (or answer here).
async fn serve(
    mut stream: UnixStream,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
) {
    let socket = shared.path.display();
    let peer = match peer_of(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!(socket = %socket, error = %e, "control connection without credentials dropped");
            return;
        }
    };
    let line = match read_request(&mut stream).await {
        Ok(line) => line,
        Err(ReadEnd::TooLarge) => {
            tracing::debug!(socket = %socket, uid = peer.uid, pid = peer.pid, "control request too large");
            let reply = Reply::error(format!("request too large (limit {MAX_REQUEST} bytes)"));
            write_reply(stream, &reply).await;
            return;
        }
        Err(ReadEnd::TimedOut) => {
            tracing::debug!(socket = %socket, uid = peer.uid, pid = peer.pid, "control request timed out");
            let reply = Reply::error(format!("no complete request within {READ_TIMEOUT:?}"));
            let _ = stream.try_write(&reply.to_line());
            return;
        }
        Err(ReadEnd::Io(e)) => {
            tracing::debug!(socket = %socket, uid = peer.uid, pid = peer.pid, error = %e, "control read failed");
            return;
        }
    };
    match admit(&line, &peer, &shared.access, &*shared.changes_state) {
        Ok((cmd, body)) => {
            let request = Request {
                peer,
                cmd,
                body,
                conn: Some(Conn {
                    stream,
                    _permit: permit,
                }),
            };
            // The daemon's loop is gone only while shutting down; the request's drop answers.
            let _ = tx.send(request).await;
        }
        Err(rejection) => {
            let message = rejection.reply.as_value()["error"].as_str().unwrap_or("");
            if rejection.denied {
                tracing::warn!(
                    socket = %socket,
                    uid = peer.uid,
                    pid = peer.pid,
                    cmd = rejection.cmd.as_deref().unwrap_or(""),
                    "control request refused: {message}"
                );
            } else {
                tracing::debug!(socket = %socket, uid = peer.uid, pid = peer.pid, "bad control request: {message}");
            }
            write_reply(stream, &rejection.reply).await;
        }
    }
}

/// Writes the reply and closes, within [`WRITE_TIMEOUT`].
async fn write_reply(mut stream: UnixStream, reply: &Reply) {
    let line = reply.to_line();
    let write = async {
        stream.write_all(&line).await?;
        stream.shutdown().await
    };
    if let Err(e) = tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(error = %e, "control reply not delivered");
    }
}

struct Conn {
    stream: UnixStream,
    /// Holds a connection slot until the reply is written.
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Sends `reply` from a task of its own, so the daemon never waits on a slow reader.
    fn send(self, reply: Reply) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let Conn { stream, _permit } = self;
                write_reply(stream, &reply).await;
            });
        }
    }
}

/// One request the caller is allowed to make, waiting for its reply.
///
/// Reply with [`Request::reply`]; a request dropped without a reply answers
/// `{"ok":false,"error":"internal error: ..."}` so the client is not left guessing.
pub struct Request {
    peer: Peer,
    cmd: String,
    body: Value,
    conn: Option<Conn>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.peer)
            .field("body", &self.body)
            .finish()
    }
}

impl Request {
    /// Who sent it.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The `cmd` field.
    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// The whole request object, `cmd` included.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The request as the daemon's own type (typically an enum with `#[serde(tag = "cmd")]`).
    /// The error is a message ready for [`Reply::error`]: `bad request: ...`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(&self.body).map_err(|e| format!("bad request: {}: {e}", self.cmd))
    }

    /// Sends the reply and closes the connection. Returns at once: the writing happens in a
    /// task of its own, bounded by [`WRITE_TIMEOUT`].
    pub fn reply(mut self, reply: Reply) {
        if let Some(conn) = self.conn.take() {
            conn.send(reply);
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.send(Reply::error(format!(
                "internal error: the daemon dropped the {} request without replying",
                self.cmd
            )));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side.

/// Sends `req` to the daemon at `path` and returns its reply's fields (without `"ok"`), all
/// within `timeout`. An `{"ok":false}` reply is an error ([`ControlError::Failed`], or
/// [`ControlError::Denied`] for a permission refusal).
pub async fn request<Req, Rep>(
    path: impl AsRef<Path>,
    req: &Req,
    timeout: Duration,
) -> Result<Rep, ControlError>
where
    Req: Serialize + ?Sized,
    Rep: DeserializeOwned,
{
    let path = path.as_ref();
    let line = encode_request(path, req)?;
    let exchange = async {
        let mut stream = match UnixStream::connect(path).await {
            Ok(s) => s,
            Err(e) => {
                let owned = path.to_path_buf();
                return Err(crate::blocking::off_runtime(move || connect_error(&owned, e)).await);
            }
        };
        // A daemon that refuses a long request closes early: its answer is still worth reading.
        let _ = stream.write_all(&line).await;
        let mut reply = Vec::new();
        let read = (&mut stream)
            .take(MAX_REPLY as u64 + 1)
            .read_to_end(&mut reply)
            .await;
        Ok((reply, read.err()))
    };
    let (reply, read_error) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            path: path.to_path_buf(),
            timeout,
        })??;
    decode_after(path, &reply, read_error)
}

/// Decodes what was read. A daemon that closes without reading the whole request (too large,
/// busy) makes the kernel report a reset after its reply: the reply still counts if complete.
fn decode_after<Rep: DeserializeOwned>(
    path: &Path,
    reply: &[u8],
    read_error: Option<io::Error>,
) -> Result<Rep, ControlError> {
    match (decode_reply(path, reply), read_error) {
        (Err(ControlError::BadReply { .. }), Some(e)) => {
            Err(ControlError::io(path, "cannot read the reply", e))
        }
        (decoded, _) => decoded,
    }
}

/// [`request`] for a command-line program without a runtime: plain blocking socket calls.
pub fn request_blocking<Req, Rep>(
    path: impl AsRef<Path>,
    req: &Req,
    timeout: Duration,
) -> Result<Rep, ControlError>
where
    Req: Serialize + ?Sized,
    Rep: DeserializeOwned,
{
    let path = path.as_ref();
    let line = encode_request(path, req)?;
    let deadline = Instant::now() + timeout;
    let timed_out = || ControlError::Timeout {
        path: path.to_path_buf(),
        timeout,
    };
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)
    };
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| ControlError::io(path, "cannot set a timeout", e))?;
    if let Err(e) = stream.write_all(&line)
        && matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    {
        return Err(timed_out());
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut read_error = None;
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| ControlError::io(path, "cannot set a timeout", e))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.len() > MAX_REPLY {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    decode_after(path, &reply, read_error)
}

fn encode_request<Req: Serialize + ?Sized>(
    path: &Path,
    req: &Req,
) -> Result<Vec<u8>, ControlError> {
    let mut line = serde_json::to_vec(req)
        .map_err(|e| ControlError::io(path, "cannot encode the request", io::Error::other(e)))?;
    line.push(b'\n');
    Ok(line)
}

/// The client's view of a failed connect. Looks up the socket's group (blocking).
fn connect_error(path: &Path, e: io::Error) -> ControlError {
    match e.kind() {
        io::ErrorKind::NotFound => ControlError::NotRunning {
            path: path.to_path_buf(),
        },
        io::ErrorKind::ConnectionRefused => ControlError::Stale {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => {
            let needs = match std::fs::metadata(path) {
                Ok(m) => {
                    let group = nix::unistd::Group::from_gid(m.gid().into())
                        .ok()
                        .flatten()
                        .map_or_else(|| m.gid().to_string(), |g| g.name);
                    format!("root or group {group}")
                }
                // The directory itself is closed to the caller.
                Err(_) => "root or the socket's group".to_string(),
            };
            ControlError::Denied {
                path: path.to_path_buf(),
                detail: format!("cannot connect to {} (needs {needs})", path.display()),
            }
        }
        _ => ControlError::io(path, "cannot connect", e),
    }
}

/// The pure part of the client: the reply's bytes to the caller's type or an error.
pub fn decode_reply<Rep: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Rep, ControlError> {
    let bad = |reason: String| ControlError::BadReply {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() > MAX_REPLY {
        return Err(bad(format!("longer than {MAX_REPLY} bytes")));
    }
    if bytes.trim_ascii().is_empty() {
        return Err(bad(
            "the daemon closed the connection without answering".into()
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(bad("not a JSON object".into()));
    };
    match map.remove("ok") {
        Some(Value::Bool(true)) => {
            Rep::deserialize(Value::Object(map)).map_err(|e| bad(format!("unexpected fields: {e}")))
        }
        Some(Value::Bool(false)) => {
            let message = match map.get("error") {
                Some(Value::String(s)) => s.clone(),
                _ => "the daemon reported an error without a message".into(),
            };
            Err(match message.strip_prefix("permission denied: ") {
                Some(detail) => ControlError::Denied {
                    path: path.to_path_buf(),
                    detail: detail.to_string(),
                },
                None => ControlError::Failed {
                    path: path.to_path_buf(),
                    message,
                },
            })
        }
        _ => Err(bad(r#"no "ok" true or false"#.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(gid: u32, name: &str) -> Option<Group> {
        Some(Group {
            gid,
            name: name.into(),
        })
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: 4242,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn allowed_table() {
        let root_only = Access::default();
        let ldir = Access {
            group: group(120, "ldir"),
            read_group: None,
        };
        let ldir_ro = Access {
            group: group(120, "ldir"),
            read_group: group(121, "ldir-ro"),
        };
        // (peer, access, changes_state, expected)
        let cases = [
            (peer(0, 0, &[]), &root_only, true, true),
            (peer(0, 5, &[]), &root_only, false, true),
            (peer(1001, 0, &[]), &root_only, true, false),
            (peer(1001, 1001, &[]), &root_only, false, false),
            (peer(1001, 1001, &[]), &ldir, true, false),
            (peer(1001, 1001, &[]), &ldir, false, false),
            (peer(1001, 120, &[]), &ldir, true, true),
            (peer(1001, 1001, &[27, 120]), &ldir, true, true),
            (peer(1001, 1001, &[121]), &ldir, false, false),
            (peer(1001, 1001, &[121]), &ldir_ro, false, true),
            (peer(1001, 121, &[]), &ldir_ro, false, true),
            (peer(1001, 1001, &[121]), &ldir_ro, true, false),
            (peer(1001, 1001, &[120]), &ldir_ro, true, true),
            (peer(1001, 1001, &[]), &ldir_ro, false, false),
        ];
        for (i, (p, a, changes, want)) in cases.iter().enumerate() {
            assert_eq!(
                allowed_for(p, a, *changes, 0),
                *want,
                "case {i}: {p:?} {a:?} changes={changes}"
            );
        }
        // A daemon run by uid 1001 answers uid 1001 in full, and nobody else more than before.
        assert!(allowed_for(&peer(1001, 1001, &[]), &root_only, true, 1001));
        assert!(!allowed_for(
            &peer(1002, 1002, &[]),
            &root_only,
            false,
            1001
        ));
    }

    #[test]
    fn refusal_names_the_groups() {
        let p = peer(1001, 1001, &[]);
        assert_eq!(
            refusal(&p, &Access::default(), true),
            "permission denied: uid 1001 is not root"
        );
        let a = Access {
            group: group(120, "ldir"),
            read_group: group(121, "ldir-ro"),
        };
        assert_eq!(
            refusal(&p, &a, true),
            "permission denied: uid 1001 is not root or in group ldir"
        );
        assert_eq!(
            refusal(&p, &a, false),
            "permission denied: uid 1001 is not root or in group ldir or ldir-ro"
        );
    }

    #[test]
    fn reply_envelope() {
        assert_eq!(Reply::ok(()).as_value(), &json!({"ok": true}));
        assert_eq!(
            Reply::ok(json!({"virtuals": 3, "ok": false})).as_value(),
            &json!({"ok": true, "virtuals": 3})
        );
        assert_eq!(Reply::ok(7).as_value(), &json!({"ok": true, "value": 7}));
        let e = Reply::error("no such real 192.0.2.1:80");
        assert_eq!(
            e.as_value(),
            &json!({"ok": false, "error": "no such real 192.0.2.1:80"})
        );
        assert!(!e.is_ok());
        assert!(Reply::ok(()).is_ok());
        let line = Reply::ok(json!({"a": "x\ny"})).to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert_eq!(line.last(), Some(&b'\n'));
        // A map with non-string keys cannot be JSON: an error reply, not a panic.
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        let r = Reply::ok(bad);
        assert!(!r.is_ok());
        assert!(
            r.as_value()["error"]
                .as_str()
                .unwrap()
                .contains("cannot encode")
        );
    }

    fn changes(cmd: &str) -> bool {
        cmd != "status"
    }

    #[test]
    fn admit_hands_over_allowed_requests() {
        let (cmd, body) = admit(
            br#" {"cmd":"drain","real":"192.0.2.1:80"} "#,
            &peer(0, 0, &[]),
            &Access::default(),
            &changes,
        )
        .unwrap();
        assert_eq!(cmd, "drain");
        assert_eq!(body["real"], "192.0.2.1:80");
    }

    #[test]
    fn admit_refuses_non_members() {
        let a = Access {
            group: group(120, "ldir"),
            read_group: group(121, "ldir-ro"),
        };
        let r = admit(
            br#"{"cmd":"drain"}"#,
            &peer(1001, 1001, &[121]),
            &a,
            &changes,
        )
        .unwrap_err();
        assert!(r.denied);
        assert_eq!(r.cmd.as_deref(), Some("drain"));
        assert_eq!(
            r.reply.as_value(),
            &json!({"ok": false, "error": "permission denied: uid 1001 is not root or in group ldir"})
        );
        // The same caller may read.
        assert!(
            admit(
                br#"{"cmd":"status"}"#,
                &peer(1001, 1001, &[121]),
                &a,
                &changes
            )
            .is_ok()
        );
    }

    #[test]
    fn admit_rejects_bad_requests_with_a_reason() {
        let p = peer(0, 0, &[]);
        let a = Access::default();
        let err = |line: &[u8]| {
            let r = admit(line, &p, &a, &changes).unwrap_err();
            assert!(!r.denied);
            assert!(!r.reply.is_ok());
            r.reply.as_value()["error"].as_str().unwrap().to_string()
        };
        assert!(err(b"").starts_with("empty request"));
        assert!(err(b"  ").starts_with("empty request"));
        assert!(
            err(b"{\"cmd\":").starts_with("malformed request: "),
            "{}",
            err(b"{\"cmd\":")
        );
        assert!(err(b"\xff\xfe").starts_with("malformed request: "));
        assert!(err(b"[1,2]").starts_with("bad request: expected a JSON object"));
        assert!(err(br#"{"cmd":7}"#).starts_with("bad request: expected a JSON object"));
        assert!(err(br#"{"command":"status"}"#).starts_with("bad request"));
    }

    #[test]
    fn decode_reply_maps_the_envelope() {
        let p = Path::new("/run/ldir/ldir.sock");
        #[derive(serde::Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct S {
            virtuals: u32,
        }
        let s: S = decode_reply(p, b"{\"ok\":true,\"virtuals\":3}\n").unwrap();
        assert_eq!(s, S { virtuals: 3 });
        let e = decode_reply::<S>(p, br#"{"ok":false,"error":"no such real"}"#).unwrap_err();
        assert!(matches!(e, ControlError::Failed { .. }), "{e:?}");
        assert_eq!(e.to_string(), "no such real");
        assert_eq!(e.exit(), Exit::Negative);
        let e = decode_reply::<S>(
            p,
            br#"{"ok":false,"error":"permission denied: uid 1001 is not root or in group ldir"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ControlError::Denied { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "permission denied: uid 1001 is not root or in group ldir"
        );
        for (bytes, want) in [
            (&b""[..], "closed the connection without answering"),
            (b"{\"ok\":tr", "not JSON"),
            (b"[]", "not a JSON object"),
            (b"{\"virtuals\":3}", "no \"ok\""),
            (b"{\"ok\":true,\"virtuals\":\"x\"}", "unexpected fields"),
        ] {
            let e = decode_reply::<S>(p, bytes).unwrap_err();
            assert!(matches!(e, ControlError::BadReply { .. }), "{e:?}");
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn error_words_and_exit_codes() {
        let path = PathBuf::from("/run/ldir/ldir.sock");
        let e = connect_error(&path, io::ErrorKind::NotFound.into());
        assert_eq!(
            e.to_string(),
            "not running (no socket at /run/ldir/ldir.sock)"
        );
        assert_eq!(e.exit(), Exit::NotRunning);
        let e = connect_error(&path, io::ErrorKind::ConnectionRefused.into());
        assert!(e.to_string().starts_with("not running (stale socket"));
        assert_eq!(e.exit(), Exit::NotRunning);
        let e = connect_error(&path, io::ErrorKind::PermissionDenied.into());
        assert!(
            e.to_string().starts_with(
                "permission denied: cannot connect to /run/ldir/ldir.sock (needs root or "
            ),
            "{e}"
        );
    }

    #[test]
    fn group_lookup() {
        assert_eq!(Group::lookup("root").unwrap(), Group::root());
        assert_eq!(Group::lookup("4711").unwrap().gid, 4711);
        let e = Group::lookup("no-such-group-here").unwrap_err();
        assert_eq!(e.to_string(), "group \"no-such-group-here\": no such group");
        assert_eq!(e.exit(), Exit::Usage);
    }
}
