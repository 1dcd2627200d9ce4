//! The links: the transports that carry frames between nodes. A frame is opaque bytes here (at
//! most [`MAX_FRAME`]); the codec and the replay guard judge it after delivery.
//!
//! Each configured link ([`LinkSpec`]) runs as its own task under a supervisor: a link that cannot
//! start (interface missing, device absent, permission) or breaks later is reported down with the
//! reason in [`LinkStatus::last_error`] and started again every [`Setup::retry`]; the other links
//! keep working. [`Links::send`] never waits: it queues the frame on every link that is up, and a
//! full queue or a down link drops the frame and counts it.
//!
//! Media:
//! - [`LinkSpec::Udp`]: unicast datagrams to one peer; datagrams from any other source are dropped
//!   and counted ([`LinkStatus::rejected_source`]).
//! - [`LinkSpec::Mcast`]: an IPv4 or IPv6 group joined on one interface, bound to the group's
//!   address and port (so only that group's datagrams arrive), loopback of own packets off.
//! - [`LinkSpec::Bcast`]: the interface's IPv4 broadcast address, the socket bound to the device.
//! - [`LinkSpec::Serial`]: a raw tty at a baud rate, frames delimited with COBS ([`serial`]).
//! - [`LinkSpec::Disk`]: one slot per node on a shared block device or file ([`disk`]).
//!
//! Every read is bounded in size (a datagram buffer of `MAX_FRAME + 1` detects oversized ones, the
//! serial decoder's buffer holds one encoded frame, a disk slot is 4 KiB) and nothing blocks the
//! runtime: sockets and the tty are non-blocking, disk reads and writes run on the blocking pool.

pub mod disk;
pub mod serial;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::frame::MAX_FRAME;

/// One link as configured (the daemon converts the config's `[[link]]` tables into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// Unicast UDP: bound to `bind`, sends to and accepts only from `peer`.
    Udp { bind: SocketAddr, peer: SocketAddr },
    /// Multicast on interface `dev` to `group` (IPv4 or IPv6 address and port), TTL/hops `ttl`.
    Mcast {
        dev: String,
        group: SocketAddr,
        ttl: u8,
    },
    /// IPv4 broadcast on interface `dev` to UDP `port`.
    Bcast { dev: String, port: u16 },
    /// A serial line (or pty) in raw mode at `baud`.
    Serial { device: PathBuf, baud: u32 },
    /// A shared block device or file divided into one slot per node.
    Disk { path: PathBuf },
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::Udp { bind, peer } => write!(f, "udp {bind} -> {peer}"),
            LinkSpec::Mcast { dev, group, ttl } => write!(f, "mcast {group} on {dev} ttl {ttl}"),
            LinkSpec::Bcast { dev, port } => write!(f, "bcast port {port} on {dev}"),
            LinkSpec::Serial { device, baud } => write!(f, "serial {} {baud}", device.display()),
            LinkSpec::Disk { path } => write!(f, "disk {}", path.display()),
        }
    }
}

/// A frame that arrived on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The link's id (as given to [`Links::start`]).
    pub link: u8,
    /// The frame, 1..=[`MAX_FRAME`] bytes, not yet checked.
    pub bytes: Vec<u8>,
    /// The datagram's source (UDP links); `None` for serial and disk.
    pub from: Option<SocketAddr>,
}

/// What the links need to know beyond their specs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// This node's name.
    pub me: String,
    /// Every node's name, this one included (the disk link's slot order is these names sorted).
    pub nodes: Vec<String>,
    /// How often the disk link reads the other nodes' slots (the daemon passes its keepalive).
    pub disk_poll: Duration,
    /// How long a link that is down waits before it is started again.
    pub retry: Duration,
}

impl Setup {
    /// A setup with a 50 ms disk poll and a 3 s retry.
    pub fn new(me: &str, nodes: &[&str]) -> Setup {
        Setup {
            me: me.to_string(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            disk_poll: Duration::from_millis(50),
            retry: Duration::from_secs(3),
        }
    }
}

/// Why a link is down. The text is what `hbeat status` shows.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("interface {dev} does not exist")]
    NoInterface { dev: String },
    #[error("interface {dev} has no IPv4 broadcast address")]
    NoBroadcast { dev: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "baud rate {0} is not supported (one of 1200 2400 4800 9600 19200 38400 57600 115200 230400 460800 921600)"
    )]
    Baud(u32),
    #[error("{0}")]
    Other(String),
}

impl LinkError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> LinkError {
        LinkError::Io {
            what: what.into(),
            source,
        }
    }
    pub(crate) fn nix(what: impl Into<String>, e: nix::Error) -> LinkError {
        LinkError::io(what, std::io::Error::from(e))
    }
}

/// One link's state and counters, for `hbeat status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link's id.
    pub id: u8,
    /// What the link is, e.g. `udp 192.0.2.11:694 -> 192.0.2.12:694`.
    pub what: String,
    /// Set up and carrying frames (as far as this node can tell: a pulled cable is the state
    /// machine's business, seen as missing frames).
    pub up: bool,
    /// The last error, with what was being done; kept after the link comes back up.
    pub last_error: Option<String>,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Writes the kernel or device refused.
    pub send_errors: u64,
    /// Frames not sent because the link was down or its queue full.
    pub send_dropped: u64,
    /// Datagrams from an unexpected source (unicast: not `peer`; broadcast: ourselves).
    pub rejected_source: u64,
    /// Input that was not a frame: oversized datagrams, serial bytes between delimiters that do not
    /// decode, torn disk slots.
    pub garbage: u64,
    /// Frames received but dropped because the daemon's inbound queue was full.
    pub receive_dropped: u64,
    /// How many times the link was started after failing.
    pub restarts: u64,
    /// Disk links: when this node last read back its own latest write from its slot (the
    /// quorum disk's evidence that this node still reaches the shared storage).
    pub own_write_seen: Option<tokio::time::Instant>,
}

/// A link's status shared between its task and [`Links`].
#[derive(Debug, Default)]
pub(crate) struct Shared(Mutex<LinkStatus>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkStatus> {
        // A panic while holding this lock cannot leave counters inconsistent in a way that matters.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn set_up(&self) {
        let mut s = self.lock();
        if !s.up {
            tracing::info!(link = s.id, what = %s.what, "link up");
        }
        s.up = true;
    }
    pub(crate) fn sent(&self, n: usize) {
        let mut s = self.lock();
        s.frames_sent += 1;
        s.bytes_sent += n as u64;
    }
    pub(crate) fn send_error(&self, e: impl fmt::Display) {
        let mut s = self.lock();
        s.send_errors += 1;
        s.last_error = Some(e.to_string());
    }
    pub(crate) fn garbage(&self) {
        self.lock().garbage += 1;
    }
    pub(crate) fn rejected_source(&self) {
        self.lock().rejected_source += 1;
    }
    fn dropped(&self) {
        self.lock().send_dropped += 1;
    }
}

/// What a link task has in hand while it runs: its id, status, queue of frames to send, and the
/// daemon's inbound queue.
pub(crate) struct Ctx {
    pub(crate) id: u8,
    pub(crate) shared: Arc<Shared>,
    pub(crate) out: mpsc::Receiver<Arc<[u8]>>,
    inbound: mpsc::Sender<Inbound>,
}

/// The daemon stopped listening: the link task ends.
pub(crate) struct Closed;

impl Ctx {
    /// Hands a received frame to the daemon without waiting: a full queue drops it (and counts).
    pub(crate) fn deliver(&self, bytes: Vec<u8>, from: Option<SocketAddr>) -> Result<(), Closed> {
        let n = bytes.len();
        match self.inbound.try_send(Inbound {
            link: self.id,
            bytes,
            from,
        }) {
            Ok(()) => {
                let mut s = self.shared.lock();
                s.frames_received += 1;
                s.bytes_received += n as u64;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.lock().receive_dropped += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }
}

/// How a link's run ended.
pub(crate) enum Stop {
    /// The daemon dropped its side (inbound receiver or [`Links`]): the task ends.
    Closed,
    /// The link failed: down, then started again after the retry delay.
    Failed(LinkError),
}

impl From<LinkError> for Stop {
    fn from(e: LinkError) -> Stop {
        Stop::Failed(e)
    }
}

impl From<Closed> for Stop {
    fn from(_: Closed) -> Stop {
        Stop::Closed
    }
}

/// How many frames may wait for one link before [`Links::send`] drops: a heartbeat that cannot be
/// sent soon is worthless, a newer one follows.
const QUEUE: usize = 8;

struct Handle {
    id: u8,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Arc<[u8]>>,
    task: JoinHandle<()>,
}

/// The running links. Dropping it stops every link task.
pub struct Links {
    links: Vec<Handle>,
}

impl Links {
    /// Starts every link as its own task (call inside a tokio runtime with time and I/O enabled).
    /// Received frames go to `inbound` without waiting: when it is full they are dropped and
    /// counted. A link that cannot start is down and retried; `start` itself never fails.
    pub fn start(
        specs: Vec<(u8, LinkSpec)>,
        setup: Setup,
        inbound: mpsc::Sender<Inbound>,
    ) -> Links {
        let setup = Arc::new(setup);
        let links = specs
            .into_iter()
            .map(|(id, spec)| {
                let shared = Arc::new(Shared(Mutex::new(LinkStatus {
                    id,
                    what: spec.to_string(),
                    ..LinkStatus::default()
                })));
                let (tx, out) = mpsc::channel(QUEUE);
                let ctx = Ctx {
                    id,
                    shared: shared.clone(),
                    out,
                    inbound: inbound.clone(),
                };
                let task = tokio::spawn(supervise(spec, setup.clone(), ctx));
                Handle {
                    id,
                    shared,
                    tx,
                    task,
                }
            })
            .collect();
        Links { links }
    }

    /// Queues `frame` on every link that is up; returns on how many. Never waits.
    pub fn send(&self, frame: &[u8]) -> usize {
        let frame: Arc<[u8]> = frame.into();
        self.links.iter().filter(|l| queue(l, &frame)).count()
    }

    /// Queues `frame` on link `id` only (frames carry their link id, so the daemon encodes one per
    /// link). Returns whether it was queued; an unknown id queues nothing.
    pub fn send_on(&self, id: u8, frame: &[u8]) -> bool {
        let frame: Arc<[u8]> = frame.into();
        self.links
            .iter()
            .filter(|l| l.id == id)
            .any(|l| queue(l, &frame))
    }

    /// When link `id` (a disk link) last read back this node's own latest write.
    pub fn own_write_seen(&self, id: u8) -> Option<tokio::time::Instant> {
        self.links
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.shared.lock().own_write_seen)
    }

    /// Every link's status and counters, in the order given to [`Links::start`].
    pub fn status(&self) -> Vec<LinkStatus> {
        self.links.iter().map(|l| l.shared.lock().clone()).collect()
    }
}

fn queue(l: &Handle, frame: &Arc<[u8]>) -> bool {
    if frame.is_empty() || frame.len() > MAX_FRAME {
        l.shared.send_error(format!(
            "a frame of {} bytes was not sent: links carry 1 to {MAX_FRAME}",
            frame.len()
        ));
        return false;
    }
    if !l.shared.lock().up || l.tx.try_send(frame.clone()).is_err() {
        l.shared.dropped();
        return false;
    }
    true
}

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.links {
            l.task.abort();
        }
    }
}

/// Runs one link, starting it again after each failure.
async fn supervise(spec: LinkSpec, setup: Arc<Setup>, mut ctx: Ctx) {
    let mut first = true;
    loop {
        if !first {
            ctx.shared.lock().restarts += 1;
        }
        first = false;
        // Frames queued while the link was down are stale by now.
        while ctx.out.try_recv().is_ok() {}
        let stop = match &spec {
            LinkSpec::Udp { bind, peer } => udp::unicast(*bind, *peer, &mut ctx).await,
            LinkSpec::Mcast { dev, group, ttl } => udp::mcast(dev, *group, *ttl, &mut ctx).await,
            LinkSpec::Bcast { dev, port } => udp::bcast(dev, *port, &mut ctx).await,
            LinkSpec::Serial { device, baud } => serial::run(device, *baud, &mut ctx).await,
            LinkSpec::Disk { path } => disk::run(path, &setup, &mut ctx).await,
        };
        let e = match stop {
            Stop::Closed => return,
            Stop::Failed(e) => e,
        };
        {
            let mut s = ctx.shared.lock();
            if s.up {
                tracing::warn!(link = ctx.id, what = %spec, error = %e, "link down");
            } else if s.last_error.as_deref() != Some(&e.to_string()) {
                tracing::warn!(link = ctx.id, what = %spec, error = %e, "link cannot start");
            }
            s.up = false;
            s.last_error = Some(e.to_string());
        }
        // Wait for the retry, dropping what the daemon queues meanwhile; stop if it goes away.
        let retry = tokio::time::sleep(setup.retry);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = &mut retry => break,
                f = ctx.out.recv() => match f {
                    Some(_) => ctx.shared.dropped(),
                    None => return,
                },
            }
        }
        if ctx.inbound.is_closed() {
            return;
        }
    }
}
