//! `ldir run`: the daemon's loop around the [`Director`](crate::director::Director).
//!
//! One task owns the director and waits on: check results (one [`Feed`] for every real),
//! signals and control requests ([`Event`]), file changes in the configuration and maintenance
//! directories (inotify, debounced), the drift check's timer and the watchdog's. Kernel calls go
//! to tokio's blocking pool ([`AsyncIpvs`]); commands (fallback command, alert mails) run as
//! child processes with a time limit, in their own tasks. Nothing here blocks the runtime.
//!
//! At start it writes the IPVS sysctls the configuration sets and, with `[sync]`, starts the
//! backup sync daemon when no sync daemon runs ([`sync_at_start`]); it never stops one: the
//! master role is hbeat's to switch (`ldir sync`).
//!
//! Deliberately not here: deciding weights (the director does), reading files (the config
//! module), the control socket's wire format (`main.rs` turns requests into [`Event`]s).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::daemon::{Notifier, SignalEvent, WatchdogTicker};
use common::ipvs::{
    AsyncIpvs, DaemonRole, IpvsError, NetlinkIpvs, Op, RecordingIpvs, SyncDaemon, Table,
};
use common::probe::{Engine, EngineOptions, Feed, Probe, Runner};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{self, CheckMode, Config, SyncConfig};
use crate::director::{Director, Drain, Effects, RealId, State};
use crate::state;
use crate::status::{self, KernelStats, Report};
use crate::watch::{Changed, Watcher};

/// Something from outside the loop.
#[derive(Debug)]
pub enum Event {
    /// A signal.
    Signal(SignalEvent),
    /// `ldir status`: the reply gets the report.
    Status(oneshot::Sender<Report>),
    /// `ldir drain|undrain`: the reply says how many reals it touched, or why none.
    Drain {
        /// The real's address.
        ip: IpAddr,
        /// Its port, or every port.
        port: Option<u16>,
        /// One virtual (its name or its address as configured), or every virtual.
        virtual_name: Option<String>,
        /// Drain (true) or undrain.
        on: bool,
        /// Reals matched, or an error.
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// A reload asked through the control socket.
    Reload(oneshot::Sender<Result<(), Vec<String>>>),
}

/// The daemon's fatal errors.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The kernel table could not be read or the first apply failed.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: IpvsError,
    },
}

/// What the daemon runs against.
pub struct Deps<I, R> {
    /// The kernel's IPVS table.
    pub ipvs: AsyncIpvs<I>,
    /// What runs checks.
    pub runner: Arc<R>,
    /// The service manager.
    pub notifier: Arc<dyn Notifier>,
    /// Where the IPVS sysctls are (`/proc/sys/net/ipv4/vs`).
    pub sysctl_dir: PathBuf,
    /// The watch on the configuration directory, started before the configuration was read.
    pub watcher: Watcher,
}

/// Where the IPVS sysctls are.
pub const SYSCTL_DIR: &str = "/proc/sys/net/ipv4/vs";
/// The most read from one sysctl file (they hold a number or two).
const MAX_SYSCTL_READ: u64 = 4096;

/// The kernel's running connection sync daemons, beside the table (a trait, so that the daemon
/// runs on the recording fake in tests).
pub trait SyncDaemons {
    /// The running daemons (at most a master and a backup).
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError>;
}

impl SyncDaemons for NetlinkIpvs {
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        NetlinkIpvs::daemons(self)
    }
}

impl SyncDaemons for RecordingIpvs {
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        Ok(self.daemons.clone())
    }
}

/// A sysctl file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// Writing failed.
    #[error("cannot write {value:?} to {}: {}", path.display(), io_words(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("cannot read {}: {}", path.display(), io_words(source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// An I/O error on a sysctl in words: what the errno means there.
fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => {
            "no such sysctl: the ip_vs module is not loaded, or this kernel does not have it".into()
        }
        ErrorKind::PermissionDenied => "permission denied: needs root".into(),
        ErrorKind::InvalidInput => "invalid argument: the kernel refused the value".into(),
        _ => {
            let s = e.to_string().replace("(os error", "(errno");
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
    }
}

/// Writes `value` to the sysctl `name` under `dir` (an existing file: it is never created).
pub fn write_sysctl(dir: &Path, name: &str, value: &str) -> Result<(), SysctlError> {
    use std::io::Write;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
        .map_err(|source| SysctlError::Write {
            path,
            value: value.to_string(),
            source,
        })
}

/// The value of the sysctl `name` under `dir`, its numbers separated by single spaces (the
/// kernel separates a vector's with tabs).
pub fn read_sysctl(dir: &Path, name: &str) -> Result<String, SysctlError> {
    use std::io::Read;
    let path = dir.join(name);
    let mut text = String::new();
    match std::fs::File::open(&path).and_then(|f| f.take(MAX_SYSCTL_READ).read_to_string(&mut text))
    {
        Ok(_) => Ok(text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Err(source) => Err(SysctlError::Read { path, source }),
    }
}

/// What `ldir run` does about connection sync when it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncAtStart {
    /// The `[sync]` sysctls to write.
    pub sysctls: Vec<(&'static str, String)>,
    /// Sysctls left unwritten because sync daemons run: a running daemon keeps the value it
    /// started with, and `ldir sync` restarts the daemons only when the value differs.
    pub held: Vec<&'static str>,
    /// The backup daemon to start: no sync daemon runs.
    pub start: Option<SyncDaemon>,
}

/// Decides [`SyncAtStart`] from `[sync]` and the running daemons (`None`: they could not be
/// read). The backup daemon runs on every node, so that the node that becomes active already
/// has the connections; the master role is hbeat's to give (`ldir sync master`), and nothing
/// here ever stops a daemon.
pub fn sync_at_start(sync: Option<&SyncConfig>, running: Option<&[SyncDaemon]>) -> SyncAtStart {
    let Some(sync) = sync else {
        return SyncAtStart::default();
    };
    let idle = running.is_some_and(|r| r.is_empty());
    let (sysctls, held) = sync
        .sysctls
        .pairs()
        .into_iter()
        .partition::<Vec<_>, _>(|(name, _)| idle || !config::START_TIME_SYSCTLS.contains(name));
    SyncAtStart {
        sysctls,
        held: held.into_iter().map(|(name, _)| name).collect(),
        start: idle.then(|| sync.daemon(DaemonRole::Backup)),
    }
}

/// Time to wait after a file change before reloading, so that an editor's several writes make one
/// reload.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// The longest a fallback command or alert mailer may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Check results taken from the queue for one kernel batch, at most.
const MAX_BATCH: usize = 4096;
/// Entries of the maintenance directory read, at most.
const MAX_MAINTENANCE: usize = 65_536;

/// Runs the daemon until a shutdown event (or the end of `events`).
pub async fn run<I, R>(
    config: Config,
    cache: config::Cache,
    deps: Deps<I, R>,
    mut events: mpsc::Receiver<Event>,
) -> Result<(), DaemonError>
where
    I: KernelStats + SyncDaemons + Send + 'static,
    R: Runner,
{
    let dir = config.dir.clone();
    let state_path = state::path(&config.global.state_dir);
    let prior = match state::read(&state_path) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "starting without the state file: services of an earlier run that left the configuration stay in the kernel");
            state::State::default()
        }
    };
    let running = match &config.sync {
        Some(_) => match deps.ipvs.with(|i| i.daemons()).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sync daemons: none started");
                None
            }
        },
        None => None,
    };
    let sync = sync_at_start(config.sync.as_ref(), running.as_deref());
    let mut sysctls = global_sysctls(&config);
    sysctls.extend(sync.sysctls);
    set_sysctls(&deps.sysctl_dir, &sysctls);
    for name in &sync.held {
        tracing::info!(
            sysctl = name,
            reason = "sync daemons run",
            "not set: a running sync daemon keeps its value; ldir sync restarts them when it differs"
        );
    }
    if let Some(backup) = sync.start {
        tracing::info!(interface = %backup.interface, sync_id = backup.sync_id, reason = "no sync daemon running", "starting the connection sync backup daemon");
        if let Err(e) = deps.ipvs.apply(vec![Op::StartDaemon(backup)]).await {
            tracing::warn!(error = %e, "cannot start the connection sync backup daemon");
        }
    }
    let kernel = deps
        .ipvs
        .table()
        .await
        .map_err(|source| DaemonError::Kernel {
            what: "cannot read the IPVS table",
            source,
        })?;
    let (mut director, mut effects) = Director::start(Arc::new(config), &prior.owned, &kernel);
    for d in &prior.drains {
        let e = director.set_drain(*d, true);
        effects.ops.extend(e.ops);
    }
    let maintenance_dir = director.config().global.maintenance_dir.clone();
    if let Some(m) = &maintenance_dir {
        let e = director.set_maintenance(scan_maintenance(m));
        effects.ops.extend(e.ops);
    }
    let count = effects.ops.len();
    deps.ipvs
        .apply(std::mem::take(&mut effects.ops))
        .await
        .map_err(|source| DaemonError::Kernel {
            what: "cannot program the IPVS table",
            source,
        })?;
    let mut d = Daemon {
        director,
        ipvs: deps.ipvs,
        notifier: deps.notifier,
        state_path,
        watches: Watches::default(),
        last_report: Instant::now(),
        reconcile_soon: None,
        repeats: HashMap::new(),
        cache,
        reload_refused: false,
    };
    d.after(effects);
    d.save_state();
    let (v, up, all) = d.director.counts();
    tracing::info!(virtuals = v, reals = all, operations = count, dir = %dir.display(), "table programmed; checking reals");
    let _ = d.notifier.ready();
    d.status_line();

    let engine = Engine::spawn(
        deps.runner,
        EngineOptions {
            // Every first check at once: a cold start is right within one check timeout; the
            // second checks are spread over an interval, so the checks do not stay in one burst.
            spread: false,
            stagger: true,
            ..EngineOptions::default()
        },
    );
    let mut feed = engine.feed(all.max(up).clamp(1024, 1 << 20) * 2);
    d.watches.sync(&mut feed, d.director.config());

    let mut inotify = deps.watcher;
    if let Some(m) = &maintenance_dir {
        inotify.watch_maintenance(m);
    }
    let mut reload_at: Option<Instant> = None;
    let mut reconcile = tokio::time::interval_at(
        Instant::now() + d.director.config().global.reconcile_interval,
        d.director.config().global.reconcile_interval,
    );
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = WatchdogTicker::new(d.notifier.watchdog_period());

    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None | Some(Event::Signal(SignalEvent::Shutdown)) => break,
                Some(Event::Signal(SignalEvent::Reload)) => {
                    tracing::info!(reason = "SIGHUP", "reloading");
                    let _ = d.reload(&dir, inotify.take_changes(), &mut feed).await;
                }
                Some(Event::Reload(reply)) => {
                    tracing::info!(reason = "control request", "reloading");
                    let r = d.reload(&dir, inotify.take_changes(), &mut feed).await;
                    let _ = reply.send(r);
                }
                Some(Event::Signal(SignalEvent::Dump)) => d.dump(),
                Some(Event::Status(reply)) => {
                    let keys: Vec<_> = d.director.owned().iter().copied().collect();
                    let kernel = d.ipvs.with(move |i| status::kernel_stats(i, keys)).await;
                    let _ = reply.send(status::report(&d.director, kernel.as_ref(), Instant::now()));
                }
                Some(Event::Drain { ip, port, virtual_name, on, reply }) => {
                    let r = d.drain(ip, port, virtual_name.as_deref(), on).await;
                    let _ = reply.send(r);
                }
            },
            Some(first) = feed.recv() => {
                d.last_report = Instant::now();
                // Every result already waiting joins this one: a burst (a switch port going down,
                // a cold start) is one batch to the kernel instead of one round trip per real,
                // and a lone result still goes out at once.
                let mut effects = Effects::default();
                let mut next = Some(first);
                let mut taken = 0;
                while let Some((tag, report)) = next {
                    if let Some(id) = d.watches.real(tag) {
                        effects.extend(d.director.on_result(id, &report.outcome, report.at));
                    }
                    taken += 1;
                    next = if taken < MAX_BATCH { feed.try_recv() } else { None };
                }
                d.apply(effects).await;
            }
            what = inotify.next() => match what {
                Some(Changed::Config) => reload_at = Some(Instant::now() + DEBOUNCE),
                Some(Changed::Maintenance) => {
                    if let Some(m) = &maintenance_dir {
                        let e = d.director.set_maintenance(scan_maintenance(m));
                        d.apply(e).await;
                    }
                }
                None => {}
            },
            _ = sleep_until(reload_at) => {
                reload_at = None;
                tracing::info!(reason = "files changed", "reloading");
                let _ = d.reload(&dir, inotify.take_changes(), &mut feed).await;
            }
            _ = reconcile.tick() => {
                if let Some(m) = &maintenance_dir {
                    let e = d.director.set_maintenance(scan_maintenance(m));
                    d.apply(e).await;
                }
                d.reconcile().await;
            }
            _ = sleep_until(d.next_repeat()) => d.send_repeats(),
            _ = sleep_until(d.reconcile_soon) => {
                d.reconcile_soon = None;
                d.reconcile().await;
            }
            _ = watchdog.tick() => {
                let limit = d.watches.stall_limit();
                match limit {
                    Some(limit) if d.last_report.elapsed() > limit => tracing::error!(
                        silent_for = ?d.last_report.elapsed(), "no check result for too long: withholding the watchdog so that the service manager restarts ldir"
                    ),
                    _ => { let _ = d.notifier.watchdog(); }
                }
            }
        }
    }

    let _ = d.notifier.stopping();
    drop(feed);
    drop(engine);
    let ops = d.director.stop_ops();
    if ops.is_empty() {
        tracing::info!("stopping; the table stays as it is (cleanstop = false)");
    } else {
        tracing::info!(
            services = ops.len(),
            reason = "cleanstop",
            "stopping; deleting ldir's services"
        );
        match d.ipvs.apply(ops.clone()).await {
            Ok(_) => {
                let mut s = state::State {
                    owned: d.director.owned().clone(),
                    drains: d.director.drains().clone(),
                };
                for op in &ops {
                    if let Op::DelService(k) = op {
                        s.owned.remove(k);
                    }
                }
                if let Err(e) = state::write(&d.state_path, &s) {
                    tracing::warn!(error = %e, "cannot write the state file");
                }
            }
            Err(e) => tracing::error!(error = %e, "clean stop failed"),
        }
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Daemon<I> {
    director: Director,
    ipvs: AsyncIpvs<I>,
    notifier: Arc<dyn Notifier>,
    state_path: PathBuf,
    watches: Watches,
    last_report: Instant,
    reconcile_soon: Option<Instant>,
    /// Down reals whose alert is sent again every `repeat` (ldirectord's `emailalertfreq`): when it
    /// was last sent, and the mail.
    repeats: HashMap<RealId, Repeat>,
    /// The files as last read, so that a reload reads only what changed.
    cache: config::Cache,
    /// The last reload was refused: the next one reads every file.
    reload_refused: bool,
}

impl<I: KernelStats + Send + 'static> Daemon<I> {
    /// Applies the operations at once, then logs and runs what the effects ask for.
    async fn apply(&mut self, mut effects: Effects) {
        if !effects.ops.is_empty() {
            // `after` reads the transitions and fallbacks, not the operations.
            if let Err(e) = self.ipvs.apply(std::mem::take(&mut effects.ops)).await {
                tracing::error!(error = %e, "changing the IPVS table failed; reading the kernel's table to repair it");
                self.director.invalidate();
                self.reconcile_soon = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        self.after(effects);
    }

    fn after(&mut self, effects: Effects) {
        let changed = !effects.transitions.is_empty();
        for t in &effects.transitions {
            let weight = self
                .director
                .applied_dest(&t.service, &t.real)
                .map_or("none".to_string(), |d| d.weight.to_string());
            match t.to {
                State::Up => {
                    tracing::info!(r#virtual = %t.virtual_name, real = %t.real, weight = %weight, reason = %t.reason, "real up")
                }
                _ => {
                    tracing::warn!(r#virtual = %t.virtual_name, real = %t.real, weight = %weight, reason = %t.reason, "real down")
                }
            }
            if let Some(v) = self
                .director
                .config()
                .virtuals
                .iter()
                .find(|v| v.service.key == t.service)
                && let Some(alert) = &v.alert
            {
                // A real found up by its first check is no news; one found down is.
                let send = match (t.from, t.to) {
                    (State::Unknown, State::Up) => false,
                    (_, State::Up) => alert.on.up,
                    _ => alert.on.down,
                };
                let id = (t.service, t.real);
                self.repeats.remove(&id);
                if send {
                    let subject = format!("ldir: {} real {} {}", v.name, t.real, t.to);
                    let body = format!(
                        "virtual {} ({})\nreal {}: {} -> {}\nreason: {}\n",
                        v.name, v.service.key, t.real, t.from, t.to, t.reason
                    );
                    if t.to == State::Down && !alert.repeat.is_zero() {
                        self.repeats.insert(
                            id,
                            Repeat {
                                sent: Instant::now(),
                                alert: alert.clone(),
                                subject: subject.clone(),
                                body: body.clone(),
                            },
                        );
                    }
                    spawn_mail(alert.clone(), subject, body);
                }
            }
        }
        for f in &effects.fallbacks {
            if f.active {
                tracing::warn!(r#virtual = %f.virtual_name, reason = "no real is up", "fallback server added");
            } else {
                tracing::info!(r#virtual = %f.virtual_name, reason = "a real is up", "fallback server removed");
            }
            if let Some(v) = self
                .director
                .config()
                .virtuals
                .iter()
                .find(|v| v.service.key == f.service)
            {
                if let Some(cmd) = &v.fallback_command {
                    let (vip, proto) = match v.service.key {
                        common::ipvs::ServiceKey::Addr { protocol, addr } => {
                            (addr.to_string(), protocol.to_string())
                        }
                        common::ipvs::ServiceKey::Fwmark { mark, .. } => {
                            (mark.to_string(), "fwm".to_string())
                        }
                    };
                    let mut argv = cmd.clone();
                    argv.extend([
                        if f.active { "start" } else { "stop" }.to_string(),
                        vip,
                        proto,
                    ]);
                    spawn_command(argv, None);
                }
                if let Some(alert) = &v.alert
                    && alert.on.fallback
                {
                    let what = if f.active {
                        "fallback server added: no real is up"
                    } else {
                        "fallback server removed: a real is up"
                    };
                    spawn_mail(
                        alert.clone(),
                        format!("ldir: {} {what}", v.name),
                        format!("virtual {} ({}): {what}\n", v.name, v.service.key),
                    );
                }
            }
        }
        if changed {
            self.status_line();
        }
    }

    async fn drain(
        &mut self,
        ip: IpAddr,
        port: Option<u16>,
        virtual_name: Option<&str>,
        on: bool,
    ) -> Result<usize, String> {
        let service = match virtual_name {
            None => None,
            Some(name) => Some(
                self.director
                    .config()
                    .virtuals
                    .iter()
                    .find(|v| v.name == name || v.service.key.to_string() == name || matches!(v.service.key, common::ipvs::ServiceKey::Addr { addr, .. } if addr.to_string() == name))
                    .map(|v| v.service.key)
                    .ok_or_else(|| format!("no virtual named {name:?}"))?,
            ),
        };
        let drain = Drain { ip, port, service };
        let matched = self
            .director
            .config()
            .virtuals
            .iter()
            .flat_map(|v| v.reals.iter().map(move |r| (v.service.key, r.dest.addr)))
            .filter(|(k, a)| drain.matches(k, a))
            .count();
        if matched == 0 && on {
            return Err(format!(
                "{ip}{} is not a real of {}",
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                virtual_name.unwrap_or("any virtual")
            ));
        }
        if on {
            tracing::info!(real = %ip, port = ?port, matched, reason = "control request", "draining");
        } else {
            tracing::info!(real = %ip, port = ?port, matched, reason = "control request", "undraining");
        }
        let e = self.director.set_drain(drain, on);
        self.apply(e).await;
        self.save_state();
        Ok(matched)
    }

    fn next_repeat(&self) -> Option<Instant> {
        self.repeats.values().map(|r| r.sent + r.alert.repeat).min()
    }

    fn send_repeats(&mut self) {
        let now = Instant::now();
        for r in self.repeats.values_mut() {
            if now >= r.sent + r.alert.repeat {
                r.sent = now;
                spawn_mail(
                    r.alert.clone(),
                    format!("{} (still)", r.subject),
                    r.body.clone(),
                );
            }
        }
    }

    fn status_line(&self) {
        let (v, up, all) = self.director.counts();
        let _ = self
            .notifier
            .status(&format!("{v} virtuals, {up}/{all} reals up"));
    }

    fn save_state(&self) {
        let s = state::State {
            owned: self.director.owned().clone(),
            drains: self.director.drains().clone(),
        };
        if let Err(e) = state::write(&self.state_path, &s) {
            tracing::warn!(error = %e, "cannot write the state file");
        }
    }

    /// Reads the files again (only `changed` when inotify knows what changed) and applies what
    /// differs.
    async fn reload(
        &mut self,
        dir: &Path,
        changed: Option<BTreeSet<OsString>>,
        feed: &mut Feed,
    ) -> Result<(), Vec<String>> {
        // After a refused reload the files it named are still wrong (or fixed since): read
        // everything again, so that a broken file is never taken as already read.
        let changed = if self.reload_refused { None } else { changed };
        let dir2 = dir.to_owned();
        let mut cache = std::mem::take(&mut self.cache);
        let (loaded, cache) = common::blocking::off_runtime(move || {
            let r = match &changed {
                Some(names) => config::load_changed(&dir2, &mut cache, names),
                None => config::load_cached(&dir2, &mut cache),
            };
            (r, cache)
        })
        .await;
        self.cache = cache;
        let new = match loaded {
            Ok(c) => c,
            Err(errors) => {
                let lines: Vec<String> = errors.errors().iter().map(|e| e.to_string()).collect();
                for l in &lines {
                    tracing::error!("{l}");
                }
                tracing::error!(
                    errors = lines.len(),
                    "reload refused: the configuration is invalid; the running one stays, the kernel is untouched"
                );
                self.reload_refused = true;
                return Err(lines);
            }
        };
        self.reload_refused = false;
        if new == **self.director.config() {
            // A second event for a change already read (SIGHUP and inotify for one edit).
            tracing::info!("reloaded: nothing changed");
            return Ok(());
        }
        let _ = self.notifier.reloading();
        let effects = self.director.reload(Arc::new(new));
        let director = &self.director;
        self.repeats
            .retain(|id, _| director.health(id).is_some_and(|h| h.state == State::Down));
        let n = effects.ops.len();
        self.apply(effects).await;
        self.watches.sync(feed, self.director.config());
        self.last_report = Instant::now();
        self.save_state();
        tracing::info!(operations = n, "reloaded");
        let _ = self.notifier.ready();
        self.status_line();
        Ok(())
    }

    async fn reconcile(&mut self) {
        let kernel: Result<Table, IpvsError> = self.ipvs.table().await;
        let kernel = match kernel {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "drift check: cannot read the IPVS table");
                return;
            }
        };
        let effects = self.director.reconcile(&kernel);
        for op in &effects.ops {
            tracing::warn!(change = %op, reason = "the kernel table differs from the configuration (changed by someone else)", "repairing drift");
        }
        self.apply(effects).await;
    }

    fn dump(&self) {
        let now = Instant::now();
        let r = status::report(&self.director, None, now);
        for v in &r.virtuals {
            tracing::info!(r#virtual = %v.name, service = %v.service, reals_up = v.reals.iter().filter(|x| x.state == State::Up).count(), reals = v.reals.len(), fallback = v.fallback_active, "state");
            for x in v.reals.iter().filter(|x| x.state != State::Up || x.held) {
                tracing::info!(r#virtual = %v.name, real = %x.address, state = %x.state, weight = ?x.weight, held = x.held, reason = x.last.as_ref().map(|l| l.reason.as_str()).unwrap_or(""), "state");
            }
        }
    }
}

/// An alert sent again while its real stays down.
struct Repeat {
    sent: Instant,
    alert: config::Alert,
    subject: String,
    body: String,
}

/// The engine subscriptions: one tag per (virtual, real).
#[derive(Default)]
struct Watches {
    by_id: HashMap<RealId, (usize, Arc<Probe>, Duration)>,
    /// The real of each tag, indexed by tag (the feed numbers its watches 0, 1, 2…): a result
    /// finds its real without hashing; `None` once unwatched.
    by_tag: Vec<Option<RealId>>,
}

impl Watches {
    /// The real watched under `tag`, if it still is.
    fn real(&self, tag: usize) -> Option<RealId> {
        self.by_tag.get(tag).copied().flatten()
    }

    fn sync(&mut self, feed: &mut Feed, config: &Config) {
        let mut want: HashMap<RealId, (Arc<Probe>, Duration)> = HashMap::new();
        for v in &config.virtuals {
            if v.check != CheckMode::Probe {
                continue;
            }
            for r in &v.reals {
                if let Some(p) = &r.probe {
                    want.insert((v.service.key, r.dest.addr), (p.clone(), v.interval));
                }
            }
        }
        let stale: Vec<RealId> = self
            .by_id
            .iter()
            .filter(|(id, (_, p, i))| want.get(id).is_none_or(|(wp, wi)| wp != p || wi != i))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some((tag, ..)) = self.by_id.remove(&id) {
                feed.unwatch(tag);
                if let Some(t) = self.by_tag.get_mut(tag) {
                    *t = None;
                }
            }
        }
        for (id, (p, interval)) in want {
            if self.by_id.contains_key(&id) {
                continue;
            }
            let tag = feed.watch((*p).clone(), interval);
            if self.by_tag.len() <= tag {
                self.by_tag.resize(tag + 1, None);
            }
            self.by_tag[tag] = Some(id);
            self.by_id.insert(id, (tag, p, interval));
        }
    }

    /// How long without any result means the engine is stuck.
    fn stall_limit(&self) -> Option<Duration> {
        let worst = self
            .by_id
            .values()
            .map(|(_, p, i)| *i + p.spec.timeout.as_std())
            .max()?;
        Some(worst * 2 + Duration::from_secs(5))
    }
}

/// The IPVS sysctls `[global]` asks for.
fn global_sysctls(config: &Config) -> Vec<(&'static str, String)> {
    [
        ("expire_nodest_conn", config.global.expire_nodest_conn),
        (
            "expire_quiescent_template",
            config.global.expire_quiescent_template,
        ),
    ]
    .into_iter()
    .filter_map(|(name, on)| Some((name, u8::from(on?).to_string())))
    .collect()
}

/// Writes the sysctls; failures are logged, not fatal.
fn set_sysctls(dir: &Path, sysctls: &[(&'static str, String)]) {
    for (name, value) in sysctls {
        match write_sysctl(dir, name, value) {
            Ok(()) => tracing::info!(sysctl = %dir.join(name).display(), value = %value, "set"),
            Err(e) => tracing::warn!(error = %e, "cannot set a sysctl"),
        }
    }
}

/// The reals named in the maintenance directory: files `IP`, `IP:PORT` or `[IPv6]:PORT`.
pub fn scan_maintenance(dir: &Path) -> HashSet<(IpAddr, Option<u16>)> {
    let mut out = HashSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten().take(MAX_MAINTENANCE) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Ok(ip) = name.parse::<IpAddr>() {
            out.insert((ip, None));
        } else if let Ok(a) = name.parse::<SocketAddr>() {
            out.insert((a.ip(), Some(a.port())));
        } else {
            tracing::debug!(file = %name, "maintenance directory: not IP or IP:PORT, ignored");
        }
    }
    out
}

/// Runs `argv` with a time limit, feeding `stdin` if given; failures are logged.
fn spawn_command(argv: Vec<String>, stdin: Option<String>) {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(command = %argv[0], error = %e, "cannot run");
                return;
            }
        };
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, pipe.write_all(text.as_bytes())).await;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await {
            Ok(Ok(s)) if s.success() => tracing::debug!(command = %argv[0], "done"),
            Ok(Ok(s)) => tracing::warn!(command = %argv[0], status = %s, "failed"),
            Ok(Err(e)) => tracing::warn!(command = %argv[0], error = %e, "failed"),
            Err(_) => tracing::warn!(command = %argv[0], "killed after 30s"),
        }
    });
}

fn spawn_mail(alert: config::Alert, subject: String, body: String) {
    let mut mail = format!("To: {}\n", alert.to);
    if let Some(from) = &alert.from {
        mail += &format!("From: {from}\n");
    }
    mail += &format!("Subject: {subject}\n\n{body}");
    spawn_command(alert.command.clone(), Some(mail));
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::daemon::RecordingNotifier;

    fn tempdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("ldir-daemon-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A sysctl directory holding the sync sysctls at the kernel's defaults.
    fn sysctl_dir(d: &Path) -> PathBuf {
        let sys = d.join("sys");
        std::fs::create_dir_all(&sys).unwrap();
        for (name, value) in [
            ("sync_version", "1"),
            ("sync_threshold", "3\t50"),
            ("sync_ports", "1"),
            ("sync_sock_size", "0"),
            ("sync_retries", "0"),
        ] {
            std::fs::write(sys.join(name), format!("{value}\n")).unwrap();
        }
        sys
    }

    fn sync_config(extra: &str) -> Config {
        config::build(
            Path::new("/etc/ldir"),
            Some((
                "/etc/ldir/ldir.toml".into(),
                Ok(format!(
                    "[sync]\ninterface = \"eth1\"\nsync_id = 4\n{extra}"
                )),
            )),
            vec![("/etc/ldir/web.toml".into(), Ok(config::tests::WEB.into()))],
        )
        .unwrap()
    }

    #[test]
    fn run_starts_the_backup_only_when_no_sync_daemon_runs() {
        let c = sync_config("ports = 2\nretries = 1\n");
        let sync = c.sync.as_ref();
        let backup = sync.unwrap().daemon(DaemonRole::Backup);
        let all = vec![
            ("sync_retries", "1".to_string()),
            ("sync_ports", "2".to_string()),
        ];
        // Nothing runs: every sysctl, then the backup.
        assert_eq!(
            sync_at_start(sync, Some(&[])),
            SyncAtStart {
                sysctls: all.clone(),
                held: vec![],
                start: Some(backup.clone()),
            }
        );
        // A daemon runs (either role): none started, none stopped, sync_ports left for `ldir sync`.
        for role in [DaemonRole::Master, DaemonRole::Backup] {
            let running = [sync.unwrap().daemon(role)];
            assert_eq!(
                sync_at_start(sync, Some(&running)),
                SyncAtStart {
                    sysctls: vec![("sync_retries", "1".to_string())],
                    held: vec!["sync_ports"],
                    start: None,
                }
            );
        }
        // The daemons could not be read: nothing started, the start-time sysctls left alone.
        assert_eq!(sync_at_start(sync, None).start, None);
        assert_eq!(sync_at_start(sync, None).held, vec!["sync_ports"]);
        // No [sync]: nothing at all.
        let plain = config::build(
            Path::new("/etc/ldir"),
            None,
            vec![("/etc/ldir/web.toml".into(), Ok(config::tests::WEB.into()))],
        )
        .unwrap();
        assert_eq!(
            sync_at_start(plain.sync.as_ref(), Some(&[])),
            SyncAtStart::default()
        );
    }

    #[test]
    fn sysctls_are_written_and_read_back_and_failures_name_the_file() {
        let d = tempdir("sysctl");
        let sys = sysctl_dir(&d);
        write_sysctl(&sys, "sync_threshold", "5 100").unwrap();
        assert_eq!(
            std::fs::read_to_string(sys.join("sync_threshold")).unwrap(),
            "5 100\n"
        );
        // The kernel separates a vector's numbers with a tab.
        std::fs::write(sys.join("sync_threshold"), "5\t100\n").unwrap();
        assert_eq!(read_sysctl(&sys, "sync_threshold").unwrap(), "5 100");
        // A sysctl this kernel does not have is never created.
        let e = write_sysctl(&sys, "sync_nosuch", "1").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot write \"1\" to {}: no such sysctl: the ip_vs module is not loaded, or this kernel does not have it",
                sys.join("sync_nosuch").display()
            )
        );
        assert!(!sys.join("sync_nosuch").exists());
        let e = read_sysctl(&sys, "sync_nosuch").unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot read {}: no such sysctl",
                sys.join("sync_nosuch").display()
            )),
            "{e}"
        );
        // A directory instead of a file: an error in words, with the path.
        std::fs::create_dir(sys.join("odd")).unwrap();
        let e = write_sysctl(&sys, "odd", "1").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot write \"1\" to {}: ",
                sys.join("odd").display()
            )),
            "{e}"
        );
        // Reads are bounded: a huge file yields at most MAX_SYSCTL_READ bytes.
        std::fs::write(sys.join("big"), "1 ".repeat(10_000)).unwrap();
        assert!(read_sysctl(&sys, "big").unwrap().len() <= MAX_SYSCTL_READ as usize);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn global_sysctls_are_only_those_set() {
        let c = sync_config("");
        assert!(global_sysctls(&c).is_empty());
        let mut c = c;
        c.global.expire_nodest_conn = Some(true);
        c.global.expire_quiescent_template = Some(false);
        assert_eq!(
            global_sysctls(&c),
            vec![
                ("expire_nodest_conn", "1".to_string()),
                ("expire_quiescent_template", "0".to_string())
            ]
        );
    }

    /// Runs the daemon on the recording fake from `kernel` with `ldir.toml`'s `[sync]` extra
    /// lines, stops it, and returns the kernel and the sysctl directory.
    async fn run_once(name: &str, kernel: RecordingIpvs, extra: &str) -> (RecordingIpvs, PathBuf) {
        let d = tempdir(name);
        let sys = sysctl_dir(&d);
        let conf = d.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("ldir.toml"),
            format!(
                "[global]\nstate_dir = \"{}\"\nreconcile_interval = \"1h\"\n[sync]\ninterface = \"eth1\"\n{extra}",
                d.join("state").display()
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("web.toml"),
            "[virtual]\naddress = \"192.0.2.100:80\"\n[check]\ntype = \"on\"\n[[real]]\naddress = \"192.0.2.13\"\n",
        )
        .unwrap();
        let watcher = Watcher::start(&conf);
        let mut cache = config::Cache::default();
        let config = config::load_cached(&conf, &mut cache).unwrap();
        let ipvs = AsyncIpvs::new(kernel);
        let (tx, rx) = mpsc::channel(4);
        let deps = Deps {
            ipvs: ipvs.clone(),
            runner: Arc::new(common::probe::Prober::new()),
            notifier: Arc::new(RecordingNotifier::default()),
            sysctl_dir: sys.clone(),
            watcher,
        };
        let task = tokio::spawn(run(config, cache, deps, rx));
        tx.send(Event::Signal(SignalEvent::Shutdown)).await.unwrap();
        task.await.unwrap().unwrap();
        let k = ipvs.with(|k| k.clone()).await;
        (k, sys)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_with_sync_writes_sysctls_starts_the_backup_and_leaves_it_at_exit() {
        let (k, sys) = run_once(
            "run-cold",
            RecordingIpvs::default(),
            "ports = 2\nthreshold = 4\n",
        )
        .await;
        let roles: Vec<DaemonRole> = k.daemons.iter().map(|d| d.role).collect();
        assert_eq!(
            roles,
            [DaemonRole::Backup],
            "started, and not stopped at exit"
        );
        assert_eq!(k.daemons[0].interface, "eth1");
        assert_eq!(read_sysctl(&sys, "sync_ports").unwrap(), "2");
        assert_eq!(read_sysctl(&sys, "sync_threshold").unwrap(), "4 50");
        let _ = std::fs::remove_dir_all(sys.parent().unwrap());

        // A master runs already (hbeat made this node active): nothing started or stopped, and
        // sync_ports waits for `ldir sync`.
        let master = SyncDaemon::new(DaemonRole::Master, "eth1", 0);
        let kernel = RecordingIpvs {
            daemons: vec![master.clone()],
            ..Default::default()
        };
        let (k, sys) = run_once("run-master", kernel, "ports = 2\nthreshold = 4\n").await;
        assert_eq!(k.daemons, vec![master]);
        assert!(
            !k.applied
                .iter()
                .any(|o| matches!(o, Op::StartDaemon(_) | Op::StopDaemon(_)))
        );
        assert_eq!(read_sysctl(&sys, "sync_ports").unwrap(), "1");
        assert_eq!(read_sysctl(&sys, "sync_threshold").unwrap(), "4 50");
        let _ = std::fs::remove_dir_all(sys.parent().unwrap());
    }
}
