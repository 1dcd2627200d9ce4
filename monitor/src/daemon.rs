//! `monitor run`: the daemon. One task owns the [`Monitor`] (the configuration, the rules engine
//! and every host's last result) and waits on probe results (one [`Feed`] of the shared probe
//! engine for every service's hosts), control requests, signals, the state file's save timer and
//! the watchdog. Alerts run as child processes in their own tasks, at most [`ALERTS_AT_ONCE`] at
//! a time; the state file and the configuration are read and written on tokio's blocking pool;
//! `--events json` lines go through a bounded queue to a writer task. Nothing here blocks the
//! runtime.
//!
//! A service's **round**: each of its hosts is probed on its own schedule (the engine spreads
//! them); once every host has reported since the last round, the hosts' latest results make one
//! service result ([`service::aggregate`]) for the rules, as mon's monitor run over the host group
//! gives one result per interval. While the service fails, its hosts are watched at its
//! `failure_interval` too (the engine runs a probe at the shortest interval asked, counted from
//! its last run), and the extra watch ends when it recovers. A report seen through both watches
//! counts once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::control::{Access, Group, Listener, Reply};
use common::daemon::{Exit, Notifier, SignalEvent, WatchdogTicker};
use common::probe::{Engine as ProbeEngine, EngineOptions, Feed, Outcome, Probe, Runner};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::alert::{self, Context, Invocation};
use crate::config::{self, Config};
use crate::control::{Request, ServiceStatus, StatusReport};
use crate::rules::{AlertKind, Decision, Engine, LocalTime, OpStatus, ServiceId};
use crate::service::{self, ServiceResult};
use crate::state::{self, StateFile, Status};

/// Alert commands running at once, at most (more wait their turn).
pub const ALERTS_AT_ONCE: usize = 32;
/// Alert calls waiting for their turn, at most; more are dropped with an error in the log.
pub const ALERTS_QUEUED: usize = 10_000;
/// `--events json` lines waiting for the writer, at most; more are dropped (and counted).
pub const EVENTS_QUEUED: usize = 65_536;
/// How long after a change of state or an alert the state file is written (changes in a burst
/// make one write).
const SAVE_DELAY: Duration = Duration::from_secs(1);
/// How long after a result that only counts (another failed round of a failing service) it is
/// written: the count matters for `alert_after` across a restart, but rewriting every service's
/// state each second while anything fails is the daemon's largest cost with thousands of
/// services.
const SAVE_LATER: Duration = Duration::from_secs(60);
/// Probe results taken from the queue in one go, at most.
const MAX_BATCH: usize = 4096;

/// The clocks the rules and the alerts need, read once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The rules engine's clock: time since boot (`CLOCK_BOOTTIME`, counts suspend).
    pub now: Duration,
    /// `time(2)`.
    pub wall: u64,
    /// The time since the epoch, to the nanosecond: times converted between the two clocks with
    /// it come out the same at every conversion (whole seconds on both sides gave ±1 s).
    pub wall_exact: Duration,
    /// Local weekday and time of day, for periods.
    pub local: LocalTime,
}

impl Clock {
    /// The clocks now.
    pub fn read() -> Clock {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(Duration::from)
            .unwrap_or_default();
        let wall_exact = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let wall = wall_exact.as_secs();
        Clock {
            now,
            wall,
            wall_exact,
            local: local_time(wall),
        }
    }

    /// An engine time as `time(2)`.
    pub fn wall_of(&self, t: Duration) -> u64 {
        self.wall_exact
            .saturating_sub(self.now.saturating_sub(t))
            .as_secs()
    }
}

/// The local weekday and minute of `time(2)` `wall` (the system's time zone, `TZ`).
pub fn local_time(wall: u64) -> LocalTime {
    let t = libc::time_t::try_from(wall).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data (integers and a pointer that may be null); all-zero is a valid
    // value, which localtime_r overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types; localtime_r is the re-entrant
    // variant and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return LocalTime {
            weekday: 0,
            minute: 0,
        };
    }
    LocalTime {
        // tm_wday: 0 is Sunday.
        weekday: u8::try_from((tm.tm_wday + 6) % 7).unwrap_or(0),
        minute: u16::try_from(tm.tm_hour * 60 + tm.tm_min).unwrap_or(0),
    }
}

/// Each host's last result of one service.
#[derive(Debug, Clone)]
struct HostResults {
    results: Vec<Option<Result<(), String>>>,
    /// Reported since the last round.
    fresh: Vec<bool>,
    /// When the last counted report was made (a report seen twice counts once).
    last_at: Vec<Option<Instant>>,
    /// `time(2)` of the last ok and failed result, for the alerts' environment.
    last_success: Option<u64>,
    last_failure: Option<u64>,
}

/// One service result for the rules: every host reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub svc: usize,
    pub result: ServiceResult,
    pub decisions: Vec<Decision>,
}

/// The daemon's state without its I/O: the configuration, the rules engine and the hosts'
/// results. Driven with [`Clock`]s, so it is tested without waiting.
pub struct Monitor {
    config: Arc<Config>,
    engine: Engine,
    hosts: Vec<HostResults>,
    index: HashMap<ServiceId, usize>,
}

impl Monitor {
    pub fn new(config: Arc<Config>) -> Monitor {
        let engine = Engine::new(
            config
                .services
                .iter()
                .map(|s| (s.id.clone(), s.rules.clone())),
        );
        let hosts = config
            .services
            .iter()
            .map(|s| HostResults {
                results: vec![None; s.hosts.len()],
                fresh: vec![false; s.hosts.len()],
                last_at: vec![None; s.hosts.len()],
                last_success: None,
                last_failure: None,
            })
            .collect();
        let index = config
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Monitor {
            config,
            engine,
            hosts,
            index,
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether service number `svc` is failing.
    pub fn failing(&self, svc: usize) -> bool {
        self.config
            .services
            .get(svc)
            .and_then(|s| self.engine.state(&s.id))
            .is_some_and(|s| s.status == OpStatus::Fail)
    }

    /// The state for the state file.
    pub fn export(&self, clock: &Clock) -> StateFile {
        self.engine.export(clock.now, clock.wall_exact)
    }

    /// Takes over a state file's services; returns those no longer configured.
    pub fn restore(&mut self, file: &StateFile, clock: &Clock) -> Vec<String> {
        self.engine.restore(file, clock.now, clock.wall_exact)
    }

    /// A report of host `host` of service `svc`, made at `at`; the round's result and the rules'
    /// decisions when it completes a round.
    pub fn report(
        &mut self,
        svc: usize,
        host: usize,
        outcome: &Outcome,
        at: Instant,
        clock: &Clock,
    ) -> Option<Round> {
        let cfg = self.config.services.get(svc)?;
        let h = self.hosts.get_mut(svc)?;
        if host >= h.results.len() || h.last_at[host].is_some_and(|t| at <= t) {
            return None;
        }
        h.last_at[host] = Some(at);
        h.results[host] = Some(if outcome.up {
            Ok(())
        } else {
            Err(outcome.reason.clone())
        });
        h.fresh[host] = true;
        if !h.fresh.iter().all(|f| *f) {
            return None;
        }
        h.fresh.fill(false);
        let pairs: Vec<(IpAddr, Option<Result<(), String>>)> = cfg
            .hosts
            .iter()
            .copied()
            .zip(h.results.iter().cloned())
            .collect();
        let result = service::aggregate(&pairs)?;
        if result.ok {
            h.last_success = Some(clock.wall);
        } else {
            h.last_failure = Some(clock.wall);
        }
        let decisions = self.engine.result(
            &cfg.id,
            clock.now,
            clock.local,
            result.ok,
            &result.summary,
            &result.detail,
        );
        Some(Round {
            svc,
            result,
            decisions,
        })
    }

    /// The startup alerts (and those suppressed), once when the daemon starts.
    pub fn startup(&self, clock: &Clock) -> Vec<Decision> {
        self.engine.startup(clock.local)
    }

    /// The alert calls of an [`Decision::Alert`], each with its command's name as `argv[0]`
    /// (resolved in the alert directories when it runs).
    pub fn invocations(
        &self,
        id: &ServiceId,
        kind: AlertKind,
        summary: &str,
        detail: &str,
        clock: &Clock,
    ) -> Vec<Invocation> {
        let Some(&svc) = self.index.get(id) else {
            return Vec::new();
        };
        let cfg = &self.config.services[svc];
        let Some(state) = self.engine.state(id) else {
            return Vec::new();
        };
        let h = &self.hosts[svc];
        let state_dir = self.config.state_file.parent();
        let ctx = Context {
            id,
            kind,
            hosts: &cfg.hosts,
            alert_every: cfg.rules.alert_every,
            time: clock.wall,
            summary,
            detail,
            retval: if kind == AlertKind::Failure { 1 } else { 0 },
            status: state.status,
            description: cfg.description.as_deref(),
            ack: state.acked.as_deref(),
            first_failure: state.failing_since.map(|t| clock.wall_of(t)),
            last_failure: h.last_failure,
            last_success: h.last_success,
            state_dir,
        };
        let commands = match kind {
            AlertKind::Failure => &cfg.alert,
            AlertKind::Up => &cfg.upalert,
            AlertKind::Startup => &cfg.startupalert,
        };
        commands
            .iter()
            .filter_map(|argv| {
                let (name, args) = argv.split_first()?;
                Some(alert::invocation(name.as_ref(), args, &ctx))
            })
            .collect()
    }

    /// Every service's state (`only_failing`: the failing ones).
    pub fn status(&self, clock: &Clock, only_failing: bool) -> StatusReport {
        let services = self
            .config
            .services
            .iter()
            .filter_map(|cfg| {
                let s = self.engine.state(&cfg.id)?;
                if only_failing && s.status != OpStatus::Fail {
                    return None;
                }
                let failing = s.status == OpStatus::Fail;
                Some(ServiceStatus {
                    service: cfg.id.to_string(),
                    status: s.status.into(),
                    failing_since: s.failing_since.map(|t| clock.wall_of(t)),
                    consecutive_failures: s.consecutive_failures,
                    alerts_sent: s.alerts_sent,
                    last_alert: s.last_alert.as_ref().map(|(t, _)| clock.wall_of(*t)),
                    summary: if failing {
                        s.last_summary.clone()
                    } else {
                        String::new()
                    },
                    detail: if failing {
                        s.last_detail.clone()
                    } else {
                        String::new()
                    },
                    acked: s.acked.clone(),
                    disabled: s.disabled,
                    hosts: cfg.hosts.iter().map(ToString::to_string).collect(),
                    probe: cfg.probe.check.name().to_string(),
                    interval_ms: u64::try_from(
                        if failing {
                            cfg.failure_interval.min(cfg.interval)
                        } else {
                            cfg.interval
                        }
                        .as_millis(),
                    )
                    .unwrap_or(u64::MAX),
                })
            })
            .collect();
        StatusReport {
            time: clock.wall,
            services,
        }
    }

    /// Carries out a control request; the reply's fields, or why it was refused.
    pub fn request(&mut self, req: &Request, clock: &Clock) -> Result<Value, String> {
        let target = |t: &str| -> (String, Option<String>) {
            match t.split_once('/') {
                Some((g, s)) => (g.to_string(), Some(s.to_string())),
                None => (t.to_string(), None),
            }
        };
        match req {
            Request::Status => {
                serde_json::to_value(self.status(clock, false)).map_err(|e| e.to_string())
            }
            Request::Failures => {
                serde_json::to_value(self.status(clock, true)).map_err(|e| e.to_string())
            }
            Request::Ack { service, comment } => {
                let Some((g, s)) = service.split_once('/') else {
                    return Err(format!("{service:?}: write GROUP/SERVICE"));
                };
                let id = ServiceId::new(g, s);
                self.engine.ack(&id, comment).map_err(|e| e.to_string())?;
                Ok(json!({ "service": id.to_string() }))
            }
            Request::Disable { target: t } | Request::Enable { target: t } => {
                let on = matches!(req, Request::Disable { .. });
                let (g, s) = target(t);
                let n = self
                    .engine
                    .set_disabled(&g, s.as_deref(), on)
                    .map_err(|e| e.to_string())?;
                Ok(json!({ "services": n }))
            }
        }
    }

    /// The one-line summary for the service manager and the log.
    pub fn summary_line(&self) -> String {
        let (mut ok, mut fail, mut untested) = (0, 0, 0);
        for (_, s) in self.engine.states() {
            match s.status {
                OpStatus::Ok => ok += 1,
                OpStatus::Fail => fail += 1,
                OpStatus::Untested => untested += 1,
            }
        }
        format!("{ok} ok, {fail} failing, {untested} untested")
    }
}

/// Which service and host each feed tag is, and the extra failure-interval watches.
#[derive(Default)]
struct Watches {
    by_tag: HashMap<usize, (usize, usize)>,
    failure_tags: Vec<Vec<usize>>,
}

impl Watches {
    fn start(feed: &mut Feed, m: &Monitor) -> Watches {
        let mut w = Watches {
            by_tag: HashMap::new(),
            failure_tags: vec![Vec::new(); m.config.services.len()],
        };
        for (svc, cfg) in m.config.services.iter().enumerate() {
            for (host, ip) in cfg.hosts.iter().enumerate() {
                let tag = feed.watch(Probe::new(*ip, cfg.probe.clone()), cfg.interval);
                w.by_tag.insert(tag, (svc, host));
            }
            if m.failing(svc) {
                w.set_failing(feed, m, svc, true);
            }
        }
        w
    }

    fn set_failing(&mut self, feed: &mut Feed, m: &Monitor, svc: usize, on: bool) {
        let Some(cfg) = m.config.services.get(svc) else {
            return;
        };
        let tags = &mut self.failure_tags[svc];
        if on && tags.is_empty() && cfg.failure_interval < cfg.interval {
            for (host, ip) in cfg.hosts.iter().enumerate() {
                let tag = feed.watch(Probe::new(*ip, cfg.probe.clone()), cfg.failure_interval);
                self.by_tag.insert(tag, (svc, host));
                tags.push(tag);
            }
        } else if !on {
            for tag in tags.drain(..) {
                feed.unwatch(tag);
                self.by_tag.remove(&tag);
            }
        }
    }
}

/// Something from outside the loop.
#[derive(Debug)]
pub enum Event {
    Signal(SignalEvent),
    /// A control request the caller may make, with the caller's uid and pid for the log.
    Control {
        request: Request,
        uid: u32,
        pid: i32,
        reply: oneshot::Sender<Reply>,
    },
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file, read again on SIGHUP.
    pub config_path: PathBuf,
    /// Write one JSON line per event to standard output.
    pub events_json: bool,
}

/// Runs alert calls in their own tasks, bounded.
#[derive(Clone)]
struct Alerter {
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    dirs: Arc<Vec<PathBuf>>,
}

impl Alerter {
    fn spawn(&self, id: &ServiceId, kind: AlertKind, mut inv: Invocation) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= ALERTS_QUEUED {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(service = %id, alert = %inv.argv[0], "too many alerts waiting: this one is dropped");
            return;
        }
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let _slot = this.slots.acquire().await;
            let name = inv.argv[0].clone();
            match alert::resolve(&name, &this.dirs) {
                Err(e) => {
                    tracing::error!(service = %id, kind = kind.as_str(), error = %e, "alert not run")
                }
                Ok(path) => {
                    inv.argv[0] = path.display().to_string();
                    match alert::run(&inv, alert::DEFAULT_TIMEOUT).await {
                        Ok(out) => {
                            tracing::info!(service = %id, kind = kind.as_str(), alert = %inv.argv[0], output = %out, "alert ran")
                        }
                        Err(e) => {
                            tracing::error!(service = %id, kind = kind.as_str(), error = %e, "alert failed")
                        }
                    }
                }
            }
            this.queued.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// `--events json`: lines to a writer task through a bounded queue.
struct EventOut {
    tx: Option<mpsc::Sender<String>>,
    dropped: u64,
}

impl EventOut {
    fn start(on: bool) -> EventOut {
        let tx = on.then(|| {
            let (tx, mut rx) = mpsc::channel::<String>(EVENTS_QUEUED);
            tokio::spawn(async move {
                let mut out = tokio::io::stdout();
                while let Some(mut line) = rx.recv().await {
                    line.push('\n');
                    if out.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                    if rx.is_empty() && out.flush().await.is_err() {
                        return;
                    }
                }
            });
            tx
        });
        EventOut { tx, dropped: 0 }
    }

    fn emit(&mut self, v: Value) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(v.to_string()).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "the --events reader does not keep up (or is gone): events dropped"
                );
            }
        }
    }
}

fn status_name(s: OpStatus) -> &'static str {
    match Status::from(s) {
        Status::Untested => "untested",
        Status::Ok => "ok",
        Status::Fail => "fail",
    }
}

struct Daemon {
    m: Monitor,
    watches: Watches,
    alerter: Alerter,
    events: EventOut,
    notifier: Arc<dyn Notifier>,
    save_at: Option<Instant>,
}

impl Daemon {
    /// Logs, reports and carries out the rules' decisions.
    fn decide(&mut self, feed: &mut Feed, decisions: Vec<Decision>, clock: &Clock) {
        for d in decisions {
            match d {
                Decision::Changed { id, from, to } => {
                    let summary = self
                        .m
                        .engine
                        .state(&id)
                        .map(|s| s.last_summary.clone())
                        .unwrap_or_default();
                    tracing::info!(service = %id, from = status_name(from), to = status_name(to), summary = %summary, reason = "probe result", "service state changed");
                    self.events.emit(json!({
                        "time": clock.wall, "event": "change", "service": id.to_string(),
                        "from": status_name(from), "to": status_name(to), "summary": summary,
                    }));
                    if let Some(&svc) = self.m.index.get(&id) {
                        self.watches
                            .set_failing(feed, &self.m, svc, to == OpStatus::Fail);
                    }
                }
                Decision::Alert {
                    id,
                    kind,
                    summary,
                    detail,
                } => {
                    let invs = self.m.invocations(&id, kind, &summary, &detail, clock);
                    if invs.is_empty() {
                        tracing::debug!(service = %id, kind = kind.as_str(), summary = %summary, "alert due, no commands");
                    } else {
                        tracing::info!(service = %id, kind = kind.as_str(), summary = %summary, commands = invs.len(), "alerting");
                    }
                    self.events.emit(json!({
                        "time": clock.wall, "event": "alert", "service": id.to_string(),
                        "kind": kind.as_str(), "summary": summary,
                    }));
                    for inv in invs {
                        self.alerter.spawn(&id, kind, inv);
                    }
                }
                Decision::Suppressed { id, kind, why } => {
                    tracing::debug!(service = %id, kind = kind.as_str(), why = %why, "alert suppressed");
                    self.events.emit(json!({
                        "time": clock.wall, "event": "suppressed", "service": id.to_string(),
                        "kind": kind.as_str(), "why": why.to_string(),
                    }));
                }
            }
        }
    }

    /// The state file is to be written within `within`.
    fn changed(&mut self, within: Duration) {
        let at = Instant::now() + within;
        self.save_at = Some(self.save_at.map_or(at, |s| s.min(at)));
    }

    /// Writes the state file (on the blocking pool) and tells the service manager the summary.
    async fn save(&mut self) {
        self.save_at = None;
        let file = self.m.export(&Clock::read());
        let path = self.m.config.state_file.clone();
        let written = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            state::save(&path, &file)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "state not saved"),
            Err(e) => tracing::error!(error = %e, "state not saved"),
        }
        let _ = self.notifier.status(&self.m.summary_line());
    }

    fn dump(&self) {
        let clock = Clock::read();
        for s in self.m.status(&clock, false).services {
            tracing::info!(service = %s.service, status = ?s.status, summary = %s.summary, failures = s.consecutive_failures, alerts = s.alerts_sent, acked = ?s.acked, disabled = s.disabled, "state");
        }
    }

    fn control(&mut self, request: &Request, uid: u32, pid: i32) -> Reply {
        let clock = Clock::read();
        match self.m.request(request, &clock) {
            Ok(v) => {
                let changed = match request {
                    Request::Ack { service, .. } => Some(("ack", service)),
                    Request::Disable { target } => Some(("disable", target)),
                    Request::Enable { target } => Some(("enable", target)),
                    Request::Status | Request::Failures => None,
                };
                if let Some((event, target)) = changed {
                    tracing::info!(request = ?request, uid, pid, "control request carried out");
                    self.events.emit(json!({
                        "time": clock.wall, "event": event, "service": target, "uid": uid,
                    }));
                    // Saved at once: an acknowledgement must survive a crash right after it.
                    self.save_at = Some(Instant::now());
                }
                Reply::ok(v)
            }
            Err(e) => Reply::error(e),
        }
    }
}

/// Serves the control socket: requests become [`Event::Control`]s for the loop.
async fn serve_control(mut listener: Listener, events: mpsc::Sender<Event>) {
    while let Some(req) = listener.accept().await {
        let events = events.clone();
        tokio::spawn(async move {
            let reply = match req.parse::<Request>() {
                Err(e) => Reply::error(e),
                Ok(request) => {
                    let (tx, rx) = oneshot::channel();
                    let peer = req.peer();
                    let _ = events
                        .send(Event::Control {
                            request,
                            uid: peer.uid,
                            pid: peer.pid,
                            reply: tx,
                        })
                        .await;
                    rx.await
                        .unwrap_or_else(|_| Reply::error("the daemon is stopping"))
                }
            };
            req.reply(reply);
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads the configuration on the blocking pool (host names are resolved).
async fn load(path: PathBuf) -> Result<Config, Vec<String>> {
    tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|e| vec![e.to_string()])?
        .map_err(|errs| errs.errors().iter().map(ToString::to_string).collect())
}

fn feed_capacity(c: &Config) -> usize {
    let probes: usize = c.services.iter().map(|s| s.hosts.len()).sum();
    (probes * 2).clamp(1024, 1 << 20)
}

/// `monitor run`: serves the control socket, restores the state file, probes and alerts until
/// SIGTERM/SIGINT.
pub async fn run<R: Runner>(
    config: Config,
    opts: Options,
    runner: Arc<R>,
    notifier: Arc<dyn Notifier>,
) -> Exit {
    common::daemon::raise_nofile();
    let (events_tx, mut events) = mpsc::channel(64);
    match common::daemon::signals() {
        Ok(s) => s.forward(events_tx.clone(), Event::Signal),
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return Exit::TempFail;
        }
    }
    let lookup = |name: &Option<String>, field: &str| -> Result<Option<Group>, Exit> {
        match name {
            None => Ok(None),
            Some(n) => Group::lookup(n).map(Some).map_err(|e| {
                tracing::error!(error = %e, field, "unknown group");
                Exit::Usage
            }),
        }
    };
    let access = match (
        lookup(&config.socket_group, "socket_group"),
        lookup(&config.read_group, "read_group"),
    ) {
        (Ok(group), Ok(read_group)) => Access { group, read_group },
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let listener = match Listener::bind(&config.socket, access, Request::changes_state) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the control socket");
            return e.exit();
        }
    };
    tokio::spawn(serve_control(listener, events_tx.clone()));
    drop(events_tx);

    let clock = Clock::read();
    let mut m = Monitor::new(Arc::new(config));
    let path = m.config.state_file.clone();
    match tokio::task::spawn_blocking(move || state::load(&path)).await {
        Ok(Ok(Some(file))) => {
            let dropped = m.restore(&file, &clock);
            if !dropped.is_empty() {
                tracing::info!(services = ?dropped, "the state file names services no longer configured: dropped");
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "state file not used"),
        Err(e) => tracing::warn!(error = %e, "state file not read"),
    }
    let engine = ProbeEngine::spawn(
        runner,
        EngineOptions {
            // First probes spread over their first interval (mon's `randstart`): thousands of
            // probes started at once are a burst of replies that the sockets and the CPU take
            // badly (pings timed out, hosts falsely down, in tests/bench/monitor.sh).
            spread: true,
            ..EngineOptions::default()
        },
    );
    let mut feed = engine.feed(feed_capacity(&m.config));
    let watches = Watches::start(&mut feed, &m);
    let mut d = Daemon {
        alerter: Alerter {
            slots: Arc::new(Semaphore::new(ALERTS_AT_ONCE)),
            queued: Arc::new(AtomicUsize::new(0)),
            dirs: Arc::new(m.config.alert_dirs.clone()),
        },
        m,
        watches,
        events: EventOut::start(opts.events_json),
        notifier,
        save_at: None,
    };
    let startup = d.m.startup(&clock);
    d.decide(&mut feed, startup, &clock);
    let services = d.m.config.services.len();
    tracing::info!(services, socket = %d.m.config.socket.display(), "monitoring");
    let _ = d.notifier.ready();
    let _ = d.notifier.status(&d.m.summary_line());
    let mut watchdog = WatchdogTicker::new(d.notifier.watchdog_period());

    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None | Some(Event::Signal(SignalEvent::Shutdown)) => break,
                Some(Event::Signal(SignalEvent::Reload)) => {
                    tracing::info!(reason = "SIGHUP", "reloading");
                    match load(opts.config_path.clone()).await {
                        Err(errors) => {
                            for e in errors {
                                tracing::error!(error = %e, "the configuration is invalid: nothing changed");
                            }
                        }
                        Ok(c) => {
                            let _ = d.notifier.reloading();
                            if c.socket != d.m.config.socket {
                                tracing::warn!("a new control socket path takes effect at the next start");
                            }
                            let clock = Clock::read();
                            let file = d.m.export(&clock);
                            let capacity = feed_capacity(&c);
                            let mut m = Monitor::new(Arc::new(c));
                            m.restore(&file, &clock);
                            d.alerter.dirs = Arc::new(m.config.alert_dirs.clone());
                            feed = engine.feed(capacity);
                            d.watches = Watches::start(&mut feed, &m);
                            d.m = m;
                            d.changed(SAVE_DELAY);
                            tracing::info!(services = d.m.config.services.len(), "reloaded");
                            let _ = d.notifier.ready();
                        }
                    }
                }
                Some(Event::Signal(SignalEvent::Dump)) => d.dump(),
                Some(Event::Control { request, uid, pid, reply }) => {
                    let r = d.control(&request, uid, pid);
                    let _ = reply.send(r);
                }
            },
            Some(first) = feed.recv() => {
                let clock = Clock::read();
                let mut next = Some(first);
                let mut taken = 0;
                let (mut changed, mut counted) = (false, false);
                while let Some((tag, report)) = next {
                    if let Some(&(svc, host)) = d.watches.by_tag.get(&tag)
                        && let Some(round) = d.m.report(svc, host, &report.outcome, report.at, &clock)
                    {
                        counted |= !round.result.ok;
                        changed |= round.decisions.iter().any(|d| {
                            matches!(d, Decision::Changed { .. } | Decision::Alert { .. })
                        });
                        d.decide(&mut feed, round.decisions, &clock);
                    }
                    taken += 1;
                    next = if taken < MAX_BATCH { feed.try_recv() } else { None };
                }
                if changed {
                    d.changed(SAVE_DELAY);
                } else if counted {
                    d.changed(SAVE_LATER);
                }
            }
            _ = sleep_until(d.save_at) => d.save().await,
            _ = watchdog.tick() => { let _ = d.notifier.watchdog(); }
        }
    }
    let _ = d.notifier.stopping();
    drop(feed);
    drop(engine);
    d.save().await;
    tracing::info!("stopped; state saved");
    Exit::Ok
}

#[cfg(test)]
mod tests;
