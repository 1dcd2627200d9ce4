//! systemd's notify protocol (`sd_notify(3)`): readiness, status line, reload and stop
//! announcements, watchdog keepalives.
//!
//! Daemons talk to a [`Notifier`]: [`SdNotifier`] is the real one, [`RecordingNotifier`] the fake
//! that records calls for unit tests. [`SdNotifier::from_env`] reads `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC` and `WATCHDOG_PID` once (the `sd-notify` crate rereads the environment on
//! every call and cannot be pointed at a socket, so only its message formatting and monotonic
//! clock are used here); without `NOTIFY_SOCKET` every call is a successful no-op, so a daemon
//! started by hand or by s6 needs no special case. Paths and Linux abstract sockets (`@name`)
//! are supported.
//!
//! The watchdog period is half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)` recommends; no
//! watchdog when the variable is unset, zero or unparsable, when `WATCHDOG_PID` names another
//! process, or when `NOTIFY_SOCKET` is unset. Send keepalives either from the daemon's main loop with a [`WatchdogTicker`] (a hung
//! loop then stops them, which is the point of a watchdog) or from [`spawn_watchdog`]'s task (only
//! proves the runtime is alive).
//!
//! Deliberately not here: file-descriptor store, `MAINPID` (we never fork), unsetting the
//! variables (not sound in a threaded process). Code that spawns children should remove
//! [`INHERITED_VARS`] from their environment so that they do not notify on our behalf.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd_notify::NotifyState;

/// Environment variables systemd passes for this protocol; remove them from spawned children.
pub const INHERITED_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How long one send may block when the manager's socket queue is full.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// One notification, as a daemon states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Notification {
    /// `READY=1`: start-up finished (after the first successful apply).
    Ready,
    /// `STATUS=<line>`: free-form one-line status; line breaks are replaced by spaces.
    Status(String),
    /// `RELOADING=1` plus `MONOTONIC_USEC=<now>` (required by `Type=notify-reload`). Send
    /// [`Notification::Ready`] when the reload is done.
    Reloading,
    /// `STOPPING=1`: orderly shutdown has begun.
    Stopping,
    /// `WATCHDOG=1`: keepalive.
    Watchdog,
}

impl Notification {
    /// The datagram for this notification; `monotonic_usec` is `CLOCK_MONOTONIC` in microseconds
    /// and only used by [`Notification::Reloading`]. Every assignment ends with a newline.
    pub fn encode(&self, monotonic_usec: i128) -> String {
        match self {
            Notification::Ready => format!("{}\n", NotifyState::Ready),
            Notification::Status(s) => format!("{}\n", NotifyState::Status(&status_line(s))),
            Notification::Reloading => format!(
                "{}\n{}\n",
                NotifyState::Reloading,
                NotifyState::MonotonicUsec(monotonic_usec)
            ),
            Notification::Stopping => format!("{}\n", NotifyState::Stopping),
            Notification::Watchdog => format!("{}\n", NotifyState::Watchdog),
        }
    }
}

/// `s` on one line: CR and LF become spaces, so a status text cannot smuggle in other
/// assignments such as `READY=1`.
pub fn status_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Sending the datagram failed.
    #[error("sd-notify: cannot send {what} to NOTIFY_SOCKET {socket}: {source}")]
    Send {
        /// The assignment being sent, e.g. `READY=1`.
        what: String,
        /// The socket, as given in `NOTIFY_SOCKET`.
        socket: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `NOTIFY_SOCKET` holds something that is not a unix socket address.
    #[error("sd-notify: NOTIFY_SOCKET {socket}: {reason}")]
    BadSocket {
        /// The value.
        socket: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Talks to the service manager. Object-safe: daemons hold an `Arc<dyn Notifier>`.
pub trait Notifier: Send + Sync {
    /// Sends one notification. Implementations without a manager succeed doing nothing.
    fn notify(&self, n: Notification) -> Result<(), NotifyError>;

    /// Keepalive period (half the manager's watchdog timeout), `None` without a watchdog.
    fn watchdog_period(&self) -> Option<Duration>;

    /// `READY=1`.
    fn ready(&self) -> Result<(), NotifyError> {
        self.notify(Notification::Ready)
    }
    /// `STATUS=<line>`.
    fn status(&self, line: &str) -> Result<(), NotifyError> {
        self.notify(Notification::Status(line.to_owned()))
    }
    /// `RELOADING=1` and `MONOTONIC_USEC`.
    fn reloading(&self) -> Result<(), NotifyError> {
        self.notify(Notification::Reloading)
    }
    /// `STOPPING=1`.
    fn stopping(&self) -> Result<(), NotifyError> {
        self.notify(Notification::Stopping)
    }
    /// `WATCHDOG=1`.
    fn watchdog(&self) -> Result<(), NotifyError> {
        self.notify(Notification::Watchdog)
    }
}

/// The inputs [`SdNotifier`] reads from the environment, separated out to keep the decision pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyEnv {
    /// `NOTIFY_SOCKET`.
    pub notify_socket: Option<OsString>,
    /// `WATCHDOG_USEC`.
    pub watchdog_usec: Option<String>,
    /// `WATCHDOG_PID`.
    pub watchdog_pid: Option<String>,
}

impl NotifyEnv {
    /// Reads the three variables from this process.
    pub fn from_process() -> NotifyEnv {
        NotifyEnv {
            notify_socket: std::env::var_os("NOTIFY_SOCKET"),
            watchdog_usec: std::env::var("WATCHDOG_USEC").ok(),
            watchdog_pid: std::env::var("WATCHDOG_PID").ok(),
        }
    }
}

/// Keepalive period for `WATCHDOG_USEC`/`WATCHDOG_PID` as seen by process `my_pid`: half the
/// timeout; `None` if unset, zero, unparsable, or meant for another process. Pure.
pub fn watchdog_period(
    watchdog_usec: Option<&str>,
    watchdog_pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    let usec: u64 = watchdog_usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = watchdog_pid
        && pid.trim().parse::<u32>().ok()? != my_pid
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

/// The real notifier: datagrams to `NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct SdNotifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    display: String,
    addr: Result<SocketAddr, String>,
    socket: Mutex<Option<UnixDatagram>>,
}

impl SdNotifier {
    /// Reads the environment of this process once.
    pub fn from_env() -> SdNotifier {
        SdNotifier::new(&NotifyEnv::from_process(), std::process::id())
    }

    /// A notifier for the given variables, as process `my_pid` sees them.
    pub fn new(env: &NotifyEnv, my_pid: u32) -> SdNotifier {
        let target = env
            .notify_socket
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| Target {
                display: s.to_string_lossy().into_owned(),
                addr: socket_addr(s),
                socket: Mutex::new(None),
            });
        // Keepalives without a socket to send them to would be pointless work.
        let watchdog = target.as_ref().and_then(|_| {
            watchdog_period(
                env.watchdog_usec.as_deref(),
                env.watchdog_pid.as_deref(),
                my_pid,
            )
        });
        SdNotifier { target, watchdog }
    }

    /// A notifier that never sends anything and has no watchdog.
    pub fn disabled() -> SdNotifier {
        SdNotifier {
            target: None,
            watchdog: None,
        }
    }

    /// True when `NOTIFY_SOCKET` was set.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }
}

fn socket_addr(s: &OsStr) -> Result<SocketAddr, String> {
    let bytes = s.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name).map_err(|e| e.to_string())
    } else if bytes.starts_with(b"/") {
        SocketAddr::from_pathname(s).map_err(|e| e.to_string())
    } else {
        Err("expected an absolute path or @abstract-name".to_owned())
    }
}

fn first_assignment(datagram: &str) -> String {
    datagram.lines().next().unwrap_or_default().to_owned()
}

impl Notifier for SdNotifier {
    fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let addr = target
            .addr
            .as_ref()
            .map_err(|reason| NotifyError::BadSocket {
                socket: target.display.clone(),
                reason: reason.clone(),
            })?;
        let now = match n {
            Notification::Reloading => monotonic_usec(),
            _ => 0,
        };
        let msg = n.encode(now);
        let send_err = |source| NotifyError::Send {
            what: first_assignment(&msg),
            socket: target.display.clone(),
            source,
        };
        let mut guard = target.socket.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let sock = UnixDatagram::unbound().map_err(send_err)?;
            sock.set_write_timeout(Some(SEND_TIMEOUT))
                .map_err(send_err)?;
            *guard = Some(sock);
        }
        let sock = guard.as_ref().expect("socket created above");
        let sent = sock.send_to_addr(msg.as_bytes(), addr).map_err(send_err)?;
        if sent != msg.len() {
            return Err(send_err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short datagram write",
            )));
        }
        Ok(())
    }

    fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }
}

fn monotonic_usec() -> i128 {
    // Falls back to 0 only if clock_gettime(CLOCK_MONOTONIC) fails, which Linux never does.
    match NotifyState::monotonic_usec_now() {
        Ok(NotifyState::MonotonicUsec(u)) => u,
        _ => 0,
    }
}

/// The fake: records every call, never fails, reports the watchdog period it was given.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    calls: Mutex<Vec<Notification>>,
    watchdog: Option<Duration>,
}

impl RecordingNotifier {
    /// A fake without watchdog.
    pub fn new() -> RecordingNotifier {
        RecordingNotifier::default()
    }

    /// A fake that reports `period` as its watchdog period.
    pub fn with_watchdog(period: Duration) -> RecordingNotifier {
        RecordingNotifier {
            calls: Mutex::default(),
            watchdog: Some(period),
        }
    }

    /// Everything sent so far, in order.
    pub fn calls(&self) -> Vec<Notification> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything sent so far except [`Notification::Watchdog`].
    pub fn calls_without_watchdog(&self) -> Vec<Notification> {
        self.calls()
            .into_iter()
            .filter(|n| *n != Notification::Watchdog)
            .collect()
    }
}

impl Notifier for RecordingNotifier {
    fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(n);
        Ok(())
    }

    fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn notify(&self, n: Notification) -> Result<(), NotifyError> {
        (**self).notify(n)
    }
    fn watchdog_period(&self) -> Option<Duration> {
        (**self).watchdog_period()
    }
}

/// Keepalive timer for a daemon's main loop: [`WatchdogTicker::tick`] completes every period, or
/// never when there is no watchdog, so it can sit in a `select!` unconditionally.
///
/// ```no_run
/// # async fn demo(notifier: &dyn common::daemon::Notifier) {
/// use common::daemon::WatchdogTicker;
/// let mut wd = WatchdogTicker::new(notifier.watchdog_period());
/// loop {
///     tokio::select! {
///         _ = wd.tick() => { let _ = notifier.watchdog(); }
///         // ... the daemon's own events
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct WatchdogTicker {
    interval: Option<tokio::time::Interval>,
}

impl WatchdogTicker {
    /// A ticker with the given period (`None`: never ticks). The first tick is immediate.
    pub fn new(period: Option<Duration>) -> WatchdogTicker {
        WatchdogTicker {
            interval: period.filter(|p| !p.is_zero()).map(|p| {
                let mut i = tokio::time::interval(p);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            }),
        }
    }

    /// Completes at the next keepalive time; pending forever without a watchdog.
    pub async fn tick(&mut self) {
        match &mut self.interval {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Spawns a tokio task that sends `WATCHDOG=1` every [`Notifier::watchdog_period`]; `None` (and
/// no task) without a watchdog. Send failures are logged at warn and the task goes on. Abort the
/// returned handle to stop it.
pub fn spawn_watchdog<N>(notifier: Arc<N>) -> Option<tokio::task::JoinHandle<()>>
where
    N: Notifier + ?Sized + 'static,
{
    let period = notifier.watchdog_period()?;
    let mut ticker = WatchdogTicker::new(Some(period));
    Some(tokio::spawn(async move {
        loop {
            ticker.tick().await;
            if let Err(e) = notifier.watchdog() {
                tracing::warn!(error = %e, "watchdog keepalive failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_exact_datagrams() {
        assert_eq!(Notification::Ready.encode(0), "READY=1\n");
        assert_eq!(Notification::Stopping.encode(0), "STOPPING=1\n");
        assert_eq!(Notification::Watchdog.encode(0), "WATCHDOG=1\n");
        assert_eq!(
            Notification::Reloading.encode(1_234_567),
            "RELOADING=1\nMONOTONIC_USEC=1234567\n"
        );
        assert_eq!(
            Notification::Status("3 virtuals, 7 reals up".into()).encode(0),
            "STATUS=3 virtuals, 7 reals up\n"
        );
    }

    #[test]
    fn status_cannot_inject_assignments() {
        assert_eq!(
            Notification::Status("ok\nREADY=1\r\nX".into()).encode(0),
            "STATUS=ok READY=1  X\n"
        );
    }

    #[test]
    fn watchdog_period_rules() {
        let ms = Duration::from_millis;
        let cases: [(Option<&str>, Option<&str>, Option<Duration>); 9] = [
            (None, None, None),
            (Some("200000"), None, Some(ms(100))),
            (Some("200000"), Some("42"), Some(ms(100))),
            (Some(" 200000 "), Some(" 42 "), Some(ms(100))),
            (Some("200000"), Some("43"), None),
            (Some("200000"), Some("self"), None),
            (Some("0"), None, None),
            (Some("-5"), None, None),
            (Some("20s"), None, None),
        ];
        for (usec, pid, want) in cases {
            assert_eq!(watchdog_period(usec, pid, 42), want, "{usec:?} {pid:?}");
        }
    }

    #[test]
    fn without_notify_socket_everything_is_a_quiet_success() {
        for env in [
            NotifyEnv::default(),
            NotifyEnv {
                notify_socket: Some(OsString::new()),
                ..NotifyEnv::default()
            },
        ] {
            let n = SdNotifier::new(&env, 1);
            assert!(!n.is_enabled());
            n.ready().unwrap();
            n.status("x").unwrap();
            n.reloading().unwrap();
            n.stopping().unwrap();
            n.watchdog().unwrap();
            assert_eq!(n.watchdog_period(), None);
        }
        SdNotifier::disabled().ready().unwrap();
    }

    #[test]
    fn errors_name_the_socket_and_the_message() {
        let n = SdNotifier::new(
            &NotifyEnv {
                notify_socket: Some("/nonexistent/dir/notify".into()),
                ..NotifyEnv::default()
            },
            1,
        );
        let err = n.ready().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "sd-notify: cannot send READY=1 to NOTIFY_SOCKET /nonexistent/dir/notify: "
            ),
            "{err}"
        );
        let n = SdNotifier::new(
            &NotifyEnv {
                notify_socket: Some("relative/path".into()),
                ..NotifyEnv::default()
            },
            1,
        );
        let err = n.ready().unwrap_err().to_string();
        assert!(err.contains("expected an absolute path"), "{err}");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("common-daemon-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        let n = SdNotifier::new(
            &NotifyEnv {
                notify_socket: Some(format!("@{name}").into()),
                ..NotifyEnv::default()
            },
            1,
        );
        n.ready().unwrap();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\n");
    }

    #[test]
    fn recording_notifier_records_in_order() {
        let fake = RecordingNotifier::new();
        let dyn_fake: &dyn Notifier = &fake;
        dyn_fake.ready().unwrap();
        dyn_fake.status("up").unwrap();
        dyn_fake.watchdog().unwrap();
        dyn_fake.stopping().unwrap();
        assert_eq!(
            fake.calls_without_watchdog(),
            [
                Notification::Ready,
                Notification::Status("up".into()),
                Notification::Stopping
            ]
        );
        assert_eq!(fake.calls().len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_task_ticks_at_its_period() {
        let fake = Arc::new(RecordingNotifier::with_watchdog(Duration::from_millis(100)));
        let task = spawn_watchdog(fake.clone()).expect("watchdog enabled");
        // Ticks at 0, 100, ..., 1000 ms.
        tokio::time::sleep(Duration::from_millis(1050)).await;
        task.abort();
        assert_eq!(fake.calls().len(), 11);
        assert!(fake.calls().iter().all(|n| *n == Notification::Watchdog));
        assert!(spawn_watchdog(Arc::new(RecordingNotifier::new())).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn ticker_without_watchdog_never_ticks() {
        let mut t = WatchdogTicker::new(None);
        let r = tokio::time::timeout(Duration::from_secs(3600), t.tick()).await;
        assert!(r.is_err());
    }
}
