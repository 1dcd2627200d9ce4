//! The subcommands' work, called by `main.rs`: `check`, `apply`, `sync`, the daemon's set-up
//! (`run`: kernel, control socket, metrics endpoint), and the control socket's clients (`status`,
//! `drain`, `undrain`, `reload`).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::control::{self, Access, Group, Listener, Reply};
use common::daemon::{Exit, Notifier};
use common::ipvs::{self, DaemonRole, Ipvs, NetlinkIpvs, Op, Table};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, CheckMode, Config};
use crate::daemon::{self, Deps, Event, SyncDaemons};
use crate::{state, status};

/// How long a client waits for the daemon.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads the configuration, printing every error; `Err` carries the exit code.
pub fn load(dir: &Path, err: &mut dyn Write) -> Result<Config, Exit> {
    load_cached(dir, &mut config::Cache::default(), err)
}

/// [`load`], keeping what was read in `cache` (for the daemon's reloads).
pub fn load_cached(
    dir: &Path,
    cache: &mut config::Cache,
    err: &mut dyn Write,
) -> Result<Config, Exit> {
    config::load_cached(dir, cache).map_err(|errors| {
        for e in errors.errors() {
            let _ = writeln!(err, "ldir: {e}");
        }
        let _ = writeln!(err, "ldir: {} error(s); nothing was changed", errors.len());
        Exit::Usage
    })
}

/// `ldir check`.
pub fn check(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    match load(dir, err) {
        Ok(c) => {
            let reals: usize = c.virtuals.iter().map(|v| v.reals.len()).sum();
            let _ = writeln!(
                out,
                "{}: ok, {} virtuals, {reals} reals",
                dir.display(),
                c.virtuals.len()
            );
            Exit::Ok
        }
        Err(code) => code,
    }
}

/// The table `ldir apply` programs: every real at its configured weight, no checks, no fallback.
pub fn static_table(c: &Config) -> Table {
    let mut t = Table::new();
    for v in &c.virtuals {
        t.insert_service(v.service.clone());
        if v.check == CheckMode::Off {
            continue;
        }
        for r in &v.reals {
            t.insert_destination(&v.service.key, r.dest.clone());
        }
    }
    t
}

/// `ldir apply`: one shot, for scripts and cron.
pub fn apply(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let c = match load(dir, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut kernel = match NetlinkIpvs::connect() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "ldir: {e}");
            return Exit::TempFail;
        }
    };
    let state_path = state::path(&c.global.state_dir);
    let mut st = state::read(&state_path).unwrap_or_else(|e| {
        let _ = writeln!(err, "ldir: warning: {e}");
        state::State::default()
    });
    let desired = static_table(&c);
    let actual = match kernel.table() {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "ldir: cannot read the IPVS table: {e}");
            return Exit::TempFail;
        }
    };
    let owned: BTreeSet<_> = st
        .owned
        .iter()
        .copied()
        .chain(desired.services.keys().copied())
        .collect();
    let ops = ipvs::plan(&desired, &actual, |k| owned.contains(k));
    match kernel.apply(&ops) {
        Ok(report) => {
            st.owned = desired.services.keys().copied().collect();
            if let Err(e) = state::write(&state_path, &st) {
                let _ = writeln!(err, "ldir: warning: {e}");
            }
            let _ = writeln!(
                out,
                "applied {} operations in {} sends: {} virtuals, {} reals",
                report.operations,
                report.sends,
                desired.services.len(),
                desired.destination_count()
            );
            Exit::Ok
        }
        Err(e) => {
            let _ = writeln!(err, "ldir: {e}");
            Exit::TempFail
        }
    }
}

/// What `ldir sync` leaves running. The backup daemon runs on every node (`ldir run` starts it),
/// so that the node that becomes active already has the connections; the active node runs the
/// master daemon beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTarget {
    /// Backup and master.
    Master,
    /// Backup only.
    Backup,
    /// Neither.
    Stop,
}

impl SyncTarget {
    /// The roles wanted, in the order they are started.
    pub fn roles(self) -> &'static [DaemonRole] {
        match self {
            SyncTarget::Master => &[DaemonRole::Backup, DaemonRole::Master],
            SyncTarget::Backup => &[DaemonRole::Backup],
            SyncTarget::Stop => &[],
        }
    }
}

impl std::fmt::Display for SyncTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyncTarget::Master => "master",
            SyncTarget::Backup => "backup",
            SyncTarget::Stop => "stopped",
        })
    }
}

/// `ldir sync master|backup|stop`: makes the kernel's sync daemons match `target`, with the
/// settings of `[sync]`; before starting any, writes `[sync]`'s sysctls under `sysctl_dir`.
pub fn sync(
    dir: &Path,
    target: SyncTarget,
    sysctl_dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let c = match load(dir, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(sync) = &c.sync else {
        let _ = writeln!(
            err,
            "ldir: {}: no [sync] table: say which interface and sync id to use",
            dir.join(config::GLOBAL_FILE).display()
        );
        return Exit::Usage;
    };
    let mut kernel = match NetlinkIpvs::connect() {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "ldir: {e}");
            return Exit::TempFail;
        }
    };
    sync_kernel(sync, target, &mut kernel, sysctl_dir, out, err)
}

/// [`sync`] once `[sync]` is read, against `kernel`.
pub fn sync_kernel<I: Ipvs + SyncDaemons>(
    sync: &config::SyncConfig,
    target: SyncTarget,
    kernel: &mut I,
    sysctl_dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let running = match kernel.daemons() {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "ldir: cannot read the sync daemons: {e}");
            return Exit::TempFail;
        }
    };
    let want: Vec<ipvs::SyncDaemon> = target.roles().iter().map(|r| sync.daemon(*r)).collect();
    let sysctls = if want.is_empty() {
        Vec::new()
    } else {
        sync.sysctls.pairs()
    };
    // Read before anything changes: a sysctl that cannot be read will not be written either, and
    // the daemons must not be stopped for nothing.
    let mut current = Vec::new();
    for (name, _) in &sysctls {
        if config::START_TIME_SYSCTLS.contains(name) {
            match daemon::read_sysctl(sysctl_dir, name) {
                Ok(v) => current.push((*name, v)),
                Err(e) => {
                    let _ = writeln!(err, "ldir: {e}");
                    return Exit::TempFail;
                }
            }
        }
    }
    let plan = sync_plan(&running, &want, sysctls, &current);
    let write = |sysctls: &[(&str, String)], err: &mut dyn Write| {
        for (name, value) in sysctls {
            if let Err(e) = daemon::write_sysctl(sysctl_dir, name, value) {
                let _ = writeln!(err, "ldir: {e}");
                return false;
            }
        }
        true
    };
    if !write(&plan.sysctls, err) {
        return Exit::TempFail;
    }
    if let Err(e) = kernel.apply(&plan.stop) {
        let _ = writeln!(err, "ldir: {e}");
        return Exit::TempFail;
    }
    if !write(&plan.start_sysctls, err) {
        return Exit::TempFail;
    }
    if let Err(e) = kernel.apply(&plan.start) {
        let _ = writeln!(err, "ldir: {e}");
        return Exit::TempFail;
    }
    let _ = writeln!(
        out,
        "sync: {target} ({} changes)",
        plan.stop.len() + plan.start.len()
    );
    Exit::Ok
}

/// `ldir sync status`: prints the running daemons, one a line; [`Exit::Ok`] while a master
/// runs, [`Exit::NotRunning`] when none does (LSB, for hbeat's heartbeat-style scripts).
pub fn sync_status(out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let running = match NetlinkIpvs::connect().and_then(|mut k| NetlinkIpvs::daemons(&mut k)) {
        Ok(d) => d,
        // Without IPVS in the kernel no daemon can run: that is an answer, not a failure.
        Err(ipvs::IpvsError::Unavailable) => Vec::new(),
        Err(e) => {
            let _ = writeln!(err, "ldir: cannot read the sync daemons: {e}");
            return Exit::TempFail;
        }
    };
    let (text, code) = sync_status_text(&running);
    let _ = out.write_all(text.as_bytes());
    code
}

/// [`sync_status`]'s output and exit code for `running`.
pub fn sync_status_text(running: &[ipvs::SyncDaemon]) -> (String, Exit) {
    let mut daemons: Vec<&ipvs::SyncDaemon> = running.iter().collect();
    daemons.sort_by_key(|d| d.role);
    let mut text = String::new();
    for d in &daemons {
        text += &format!("{} interface {} sync_id {}", d.role, d.interface, d.sync_id);
        if let Some(g) = d.group {
            text += &format!(" group {g}");
        }
        if let Some(p) = d.port {
            text += &format!(" port {p}");
        }
        if let Some(t) = d.ttl {
            text += &format!(" ttl {t}");
        }
        if let Some(m) = d.max_len {
            text += &format!(" max_len {m}");
        }
        text.push('\n');
    }
    if daemons.is_empty() {
        text += "no sync daemon running\n";
    }
    let code = if daemons.iter().any(|d| d.role == DaemonRole::Master) {
        Exit::Ok
    } else {
        Exit::NotRunning
    };
    (text, code)
}

/// What `ldir sync` does, in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// First the sysctls a running daemon follows (file name, value): one the kernel refuses
    /// stops `ldir sync` before any daemon is stopped.
    pub sysctls: Vec<(&'static str, String)>,
    /// Then the daemons to stop, master before backup.
    pub stop: Vec<Op>,
    /// Then, with no daemon running, the [`config::START_TIME_SYSCTLS`] that differ.
    pub start_sysctls: Vec<(&'static str, String)>,
    /// Then the daemons to start, backup before master.
    pub start: Vec<Op>,
}

/// Plans `ldir sync`: leave exactly `want` running with `sysctls` written. `current` holds the
/// kernel's values of the [`config::START_TIME_SYSCTLS`] among `sysctls`: a running daemon does
/// not follow those (the kernel reads them when a daemon starts), so when one differs every
/// running daemon is stopped before it is written and the wanted ones start again after; one
/// equal to the kernel's value is not written at all.
pub fn sync_plan(
    running: &[ipvs::SyncDaemon],
    want: &[ipvs::SyncDaemon],
    sysctls: Vec<(&'static str, String)>,
    current: &[(&str, String)],
) -> SyncPlan {
    let differs = |name: &str, value: &str| {
        current
            .iter()
            .find(|(n, _)| *n == name)
            .is_none_or(|(_, v)| v.trim() != value.trim())
    };
    let (start_sysctls, sysctls): (Vec<_>, Vec<_>) = sysctls
        .into_iter()
        .partition(|(name, _)| config::START_TIME_SYSCTLS.contains(name));
    let start_sysctls: Vec<(&'static str, String)> = start_sysctls
        .into_iter()
        .filter(|(name, value)| differs(name, value))
        .collect();
    let restart = !running.is_empty() && !start_sysctls.is_empty();
    let ops = if restart {
        let mut ops = sync_ops(running, &[]);
        ops.extend(sync_ops(&[], want));
        ops
    } else {
        sync_ops(running, want)
    };
    let (stop, start) = ops
        .into_iter()
        .partition(|op| matches!(op, Op::StopDaemon(_)));
    SyncPlan {
        sysctls,
        stop,
        start_sysctls,
        start,
    }
}

/// The operations that leave exactly `want` running: stops first (master, then backup), then
/// starts (backup, then master). A running daemon whose settings differ from its wanted one's is
/// stopped and started again; one that matches is left alone, so a second call plans nothing.
pub fn sync_ops(running: &[ipvs::SyncDaemon], want: &[ipvs::SyncDaemon]) -> Vec<Op> {
    const STOP_ORDER: [DaemonRole; 2] = [DaemonRole::Master, DaemonRole::Backup];
    const START_ORDER: [DaemonRole; 2] = [DaemonRole::Backup, DaemonRole::Master];
    let wanted = |role: DaemonRole| want.iter().find(|w| w.role == role);
    let mut ops = Vec::new();
    let mut kept = Vec::new();
    for role in STOP_ORDER {
        let mut have = running.iter().filter(|d| d.role == role).peekable();
        if have.peek().is_none() {
            continue;
        }
        match wanted(role) {
            Some(w) if have.all(|d| same_settings(w, d)) => kept.push(role),
            _ => ops.push(Op::StopDaemon(role)),
        }
    }
    for role in START_ORDER {
        if let Some(w) = wanted(role)
            && !kept.contains(&role)
        {
            ops.push(Op::StartDaemon(w.clone()));
        }
    }
    ops
}

/// Whether the running daemon `have` has the settings of `want`. What `want` leaves to the
/// kernel is compared with the kernel's default (`ip_vs_sync.c`: `start_sync_thread`), except the
/// message length, which depends on the interface's MTU; what the kernel did not report is taken
/// to match.
fn same_settings(want: &ipvs::SyncDaemon, have: &ipvs::SyncDaemon) -> bool {
    /// `ip_vs.h`: `IP_VS_SYNC_GROUP` (224.0.0.81), `IP_VS_SYNC_PORT`; the TTL defaults to 1.
    const GROUP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(224, 0, 0, 81));
    const PORT: u16 = 8848;
    const TTL: u8 = 1;
    fn same<T: PartialEq>(want: Option<T>, default: Option<T>, have: Option<T>) -> bool {
        match (want.or(default), have) {
            (Some(w), Some(h)) => w == h,
            _ => true,
        }
    }
    want.role == have.role
        && want.interface == have.interface
        && want.sync_id == have.sync_id
        && same(want.group, Some(GROUP), have.group)
        && same(want.port, Some(PORT), have.port)
        && same(want.ttl, Some(TTL), have.ttl)
        && same(want.max_len, None, have.max_len)
}

/// A control request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// The report.
    Status,
    /// Drain a real.
    Drain {
        /// `IP` or `IP:PORT`.
        real: String,
        /// A virtual's name or address.
        #[serde(default, rename = "virtual")]
        virtual_name: Option<String>,
    },
    /// Undrain a real.
    Undrain {
        /// `IP` or `IP:PORT`.
        real: String,
        /// A virtual's name or address.
        #[serde(default, rename = "virtual")]
        virtual_name: Option<String>,
    },
    /// Reload the configuration.
    Reload,
}

/// `IP` or `IP:PORT` (`[v6]:port`).
pub fn parse_real(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    s.parse::<SocketAddr>()
        .map(|a| (a.ip(), Some(a.port())))
        .map_err(|_| format!("{s:?} is not IP or IP:PORT"))
}

/// Serves the control socket: turns requests into [`Event`]s.
pub async fn serve_control(mut listener: Listener, events: mpsc::Sender<Event>) {
    while let Some(req) = listener.accept().await {
        let events = events.clone();
        tokio::spawn(async move {
            let parsed: Result<Request, String> = req.parse();
            let reply = match parsed {
                Err(e) => Reply::error(e),
                Ok(Request::Status) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = events.send(Event::Status(tx)).await;
                    match rx.await {
                        Ok(r) => Reply::ok(r),
                        Err(_) => Reply::error("the daemon is stopping"),
                    }
                }
                Ok(Request::Drain { real, virtual_name })
                | Ok(Request::Undrain { real, virtual_name }) => {
                    let on = req.cmd() == "drain";
                    match parse_real(&real) {
                        Err(e) => Reply::error(e),
                        Ok((ip, port)) => {
                            let (tx, rx) = oneshot::channel();
                            let _ = events
                                .send(Event::Drain {
                                    ip,
                                    port,
                                    virtual_name,
                                    on,
                                    reply: tx,
                                })
                                .await;
                            match rx.await {
                                Ok(Ok(n)) => Reply::ok(serde_json::json!({ "reals": n })),
                                Ok(Err(e)) => Reply::error(e),
                                Err(_) => Reply::error("the daemon is stopping"),
                            }
                        }
                    }
                }
                Ok(Request::Reload) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = events.send(Event::Reload(tx)).await;
                    match rx.await {
                        Ok(Ok(())) => Reply::ok(()),
                        Ok(Err(lines)) => Reply::error(format!(
                            "the configuration is invalid, nothing changed:\n{}",
                            lines.join("\n")
                        )),
                        Err(_) => Reply::error("the daemon is stopping"),
                    }
                }
            };
            req.reply(reply);
        });
    }
}

/// Serves `GET /metrics` in Prometheus' text format on `addr`.
pub async fn serve_metrics(listener: tokio::net::TcpListener, events: mpsc::Sender<Event>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: wait instead of spinning on the error.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            // The request head: at most 8 KiB within 5 s.
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    let m = sock.read(&mut buf[n..]).await.ok()?;
                    if m == 0 {
                        return None;
                    }
                    n += m;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            })
            .await;
            if !matches!(head, Ok(Some(()))) {
                return;
            }
            let (code, body) =
                if buf.starts_with(b"GET /metrics ") || buf.starts_with(b"GET /metrics?") {
                    let (tx, rx) = oneshot::channel();
                    let _ = events.send(Event::Status(tx)).await;
                    match rx.await {
                        Ok(r) => ("200 OK", status::metrics(&r)),
                        Err(_) => ("503 Service Unavailable", "stopping\n".to_string()),
                    }
                } else {
                    ("404 Not Found", "see /metrics\n".to_string())
                };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ =
                tokio::time::timeout(Duration::from_secs(5), sock.write_all(resp.as_bytes())).await;
        });
    }
}

/// `ldir run`: sets up the kernel, control socket and metrics, then runs the daemon.
pub async fn run(
    c: Config,
    cache: config::Cache,
    watcher: crate::watch::Watcher,
    metrics: Option<SocketAddr>,
    notifier: Arc<dyn Notifier>,
) -> Exit {
    common::daemon::raise_nofile();
    let kernel = match NetlinkIpvs::connect() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the IPVS netlink socket");
            return Exit::TempFail;
        }
    };
    let (events_tx, events) = mpsc::channel(64);
    match common::daemon::signals() {
        Ok(s) => s.forward(events_tx.clone(), Event::Signal),
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return Exit::TempFail;
        }
    }
    let group = match &c.global.socket_group {
        Some(name) => match Group::lookup(name) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::error!(error = %e, "socket_group");
                return Exit::Usage;
            }
        },
        None => None,
    };
    let listener = match Listener::bind(
        &c.global.socket,
        Access {
            group,
            read_group: None,
        },
        |cmd| cmd != "status",
    ) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the control socket");
            return e.exit();
        }
    };
    tokio::spawn(serve_control(listener, events_tx.clone()));
    if let Some(addr) = metrics.or(c.global.metrics) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "serving metrics at /metrics");
                tokio::spawn(serve_metrics(l, events_tx.clone()));
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot serve metrics");
                return Exit::TempFail;
            }
        }
    }
    drop(events_tx);
    let deps = Deps {
        ipvs: ipvs::AsyncIpvs::new(kernel),
        runner: Arc::new(common::probe::Prober::new()),
        notifier,
        sysctl_dir: daemon::SYSCTL_DIR.into(),
        watcher,
    };
    match daemon::run(c, cache, deps, events).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            Exit::TempFail
        }
    }
}

/// The control socket's path: from the configuration when it loads, else the default.
pub fn socket_path(dir: &Path) -> std::path::PathBuf {
    config::load(dir)
        .map(|c| c.global.socket)
        .unwrap_or_else(|_| "/run/ldir/ldir.sock".into())
}

/// A client call; prints the error and returns its exit code.
pub fn call<Rep: serde::de::DeserializeOwned>(
    socket: &Path,
    req: &Request,
    err: &mut dyn Write,
) -> Result<Rep, Exit> {
    control::request_blocking(socket, req, CLIENT_TIMEOUT).map_err(|e| {
        let _ = writeln!(err, "ldir: {e}");
        e.exit()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ipvs::{RecordingIpvs, SyncDaemon};

    fn daemon(role: DaemonRole) -> SyncDaemon {
        SyncDaemon::new(role, "eth1", 1)
    }

    /// Both roles from `[sync]` as the target asks, in start order.
    fn want(target: SyncTarget) -> Vec<SyncDaemon> {
        target.roles().iter().map(|r| daemon(*r)).collect()
    }

    /// A daemon as the kernel reports it: the defaults filled in.
    fn reported(role: DaemonRole) -> SyncDaemon {
        SyncDaemon {
            group: Some("224.0.0.81".parse().unwrap()),
            port: Some(8848),
            ttl: Some(1),
            max_len: Some(1472),
            ..daemon(role)
        }
    }

    /// Applies `ops` to the recording fake holding `running`, as the kernel would; the result.
    fn after(running: &[SyncDaemon], ops: &[Op]) -> Vec<SyncDaemon> {
        let mut k = RecordingIpvs {
            daemons: running.to_vec(),
            ..Default::default()
        };
        k.apply(ops).unwrap();
        k.daemons
    }

    #[test]
    fn sync_roles_are_backup_everywhere_and_master_on_top() {
        use DaemonRole::{Backup, Master};
        assert_eq!(SyncTarget::Master.roles(), [Backup, Master]);
        assert_eq!(SyncTarget::Backup.roles(), [Backup]);
        assert!(SyncTarget::Stop.roles().is_empty());
        assert_eq!(SyncTarget::Stop.to_string(), "stopped");
    }

    #[test]
    fn sync_ops_reach_each_target_from_each_state_and_then_do_nothing() {
        use DaemonRole::{Backup, Master};
        let (m, b) = (daemon(Master), daemon(Backup));
        let states: [Vec<SyncDaemon>; 5] = [
            vec![],
            vec![b.clone()],
            vec![m.clone()],
            vec![m.clone(), b.clone()],
            vec![reported(Backup), reported(Master)],
        ];
        for target in [SyncTarget::Master, SyncTarget::Backup, SyncTarget::Stop] {
            for running in &states {
                let ops = sync_ops(running, &want(target));
                // Stops come first, then starts, backup before master.
                let first_start = ops
                    .iter()
                    .position(|o| matches!(o, Op::StartDaemon(_)))
                    .unwrap_or(ops.len());
                assert!(
                    ops[first_start..]
                        .iter()
                        .all(|o| matches!(o, Op::StartDaemon(_))),
                    "{ops:?}"
                );
                let now = after(running, &ops);
                let mut roles: Vec<DaemonRole> = now.iter().map(|d| d.role).collect();
                roles.sort();
                let mut wanted = target.roles().to_vec();
                wanted.sort();
                assert_eq!(roles, wanted, "{target} from {running:?}: {ops:?}");
                assert_eq!(
                    sync_ops(&now, &want(target)),
                    vec![],
                    "a second call changes nothing"
                );
            }
        }
        // The exact plans.
        assert_eq!(
            sync_ops(&[], &want(SyncTarget::Master)),
            vec![Op::StartDaemon(b.clone()), Op::StartDaemon(m.clone())]
        );
        assert_eq!(
            sync_ops(std::slice::from_ref(&b), &want(SyncTarget::Master)),
            vec![Op::StartDaemon(m.clone())]
        );
        assert_eq!(
            sync_ops(&[b.clone(), m.clone()], &want(SyncTarget::Backup)),
            vec![Op::StopDaemon(Master)]
        );
        assert_eq!(
            sync_ops(std::slice::from_ref(&m), &want(SyncTarget::Backup)),
            vec![Op::StopDaemon(Master), Op::StartDaemon(b.clone())]
        );
        assert_eq!(
            sync_ops(&[b.clone(), m.clone()], &want(SyncTarget::Stop)),
            vec![Op::StopDaemon(Master), Op::StopDaemon(Backup)]
        );
        // The kernel's report of defaults matches a [sync] that leaves them out.
        assert_eq!(
            sync_ops(
                &[reported(Master), reported(Backup)],
                &want(SyncTarget::Master)
            ),
            vec![]
        );
    }

    #[test]
    fn sync_ops_restart_only_the_daemon_whose_settings_differ() {
        use DaemonRole::{Backup, Master};
        let (m, b) = (daemon(Master), daemon(Backup));
        let target = want(SyncTarget::Master);
        let cases = [
            SyncDaemon {
                interface: "eth2".into(),
                ..daemon(Master)
            },
            SyncDaemon {
                sync_id: 2,
                ..daemon(Master)
            },
            SyncDaemon {
                port: Some(8849),
                ..reported(Master)
            },
            SyncDaemon {
                ttl: Some(2),
                ..reported(Master)
            },
            SyncDaemon {
                group: Some("224.0.0.82".parse().unwrap()),
                ..reported(Master)
            },
        ];
        for other in cases {
            assert_eq!(
                sync_ops(&[other.clone(), b.clone()], &target),
                vec![Op::StopDaemon(Master), Op::StartDaemon(m.clone())],
                "{other:?}"
            );
        }
        // A configured value differs from the running one: just that role restarts.
        let configured: Vec<SyncDaemon> = target
            .iter()
            .map(|d| SyncDaemon {
                max_len: Some(1400),
                ..d.clone()
            })
            .collect();
        assert_eq!(
            sync_ops(&[reported(Master), reported(Backup)], &configured),
            vec![
                Op::StopDaemon(Master),
                Op::StopDaemon(Backup),
                Op::StartDaemon(configured[0].clone()),
                Op::StartDaemon(configured[1].clone())
            ]
        );
        let backup_other = SyncDaemon {
            port: Some(9000),
            ..reported(Backup)
        };
        assert_eq!(
            sync_ops(&[reported(Master), backup_other], &target),
            vec![Op::StopDaemon(Backup), Op::StartDaemon(b)]
        );
    }

    #[test]
    fn sync_plan_restarts_running_daemons_around_a_new_sync_ports() {
        use DaemonRole::{Backup, Master};
        let (m, b) = (daemon(Master), daemon(Backup));
        let sysctls = || {
            vec![
                ("sync_version", "1".to_string()),
                ("sync_ports", "4".to_string()),
            ]
        };
        // Daemons run with 1 port: both stop, the sysctls are written, both start again.
        let plan = sync_plan(
            &[b.clone(), m.clone()],
            &want(SyncTarget::Master),
            sysctls(),
            &[("sync_ports", "1".into())],
        );
        assert_eq!(
            plan,
            SyncPlan {
                sysctls: vec![("sync_version", "1".to_string())],
                stop: vec![Op::StopDaemon(Master), Op::StopDaemon(Backup)],
                start_sysctls: vec![("sync_ports", "4".to_string())],
                start: vec![Op::StartDaemon(b.clone()), Op::StartDaemon(m.clone())],
            }
        );
        // Already 4: sync_ports is not written, the daemons stay.
        let same = sync_plan(
            &[b.clone(), m.clone()],
            &want(SyncTarget::Master),
            sysctls(),
            &[("sync_ports", "4".into())],
        );
        assert_eq!(
            same,
            SyncPlan {
                sysctls: vec![("sync_version", "1".to_string())],
                ..SyncPlan::default()
            }
        );
        // Nothing runs: written, then started.
        let cold = sync_plan(
            &[],
            &want(SyncTarget::Backup),
            sysctls(),
            &[("sync_ports", "1".into())],
        );
        assert_eq!(
            cold,
            SyncPlan {
                sysctls: vec![("sync_version", "1".to_string())],
                stop: vec![],
                start_sysctls: vec![("sync_ports", "4".to_string())],
                start: vec![Op::StartDaemon(b.clone())],
            }
        );
        // To backup with a new sock_size while the master runs: both stop, the backup starts.
        let to_backup = sync_plan(
            &[m.clone(), b.clone()],
            &want(SyncTarget::Backup),
            vec![("sync_sock_size", "65536".to_string())],
            &[("sync_sock_size", "0".into())],
        );
        assert_eq!(
            to_backup.stop,
            vec![Op::StopDaemon(Master), Op::StopDaemon(Backup)]
        );
        assert_eq!(to_backup.start, vec![Op::StartDaemon(b.clone())]);
        // Other sysctls never restart anything.
        let plain = sync_plan(
            &[m.clone(), b.clone()],
            &want(SyncTarget::Master),
            vec![("sync_threshold", "3 50".to_string())],
            &[],
        );
        assert_eq!(
            plain,
            SyncPlan {
                sysctls: vec![("sync_threshold", "3 50".to_string())],
                ..SyncPlan::default()
            }
        );
    }

    #[test]
    fn ldir_sync_writes_sysctls_before_starting_and_is_idempotent() {
        use DaemonRole::{Backup, Master};
        let d = std::env::temp_dir().join(format!("ldir-cli-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (name, value) in [("sync_ports", "1\n"), ("sync_retries", "0\n")] {
            std::fs::write(d.join(name), value).unwrap();
        }
        let c = config::build(
            Path::new("/etc/ldir"),
            Some((
                "/etc/ldir/ldir.toml".into(),
                Ok("[sync]\ninterface = \"eth1\"\nsync_id = 1\nports = 2\nretries = 3\n".into()),
            )),
            vec![("/etc/ldir/web.toml".into(), Ok(config::tests::WEB.into()))],
        )
        .unwrap();
        let sync = c.sync.unwrap();
        let mut k = RecordingIpvs {
            daemons: vec![daemon(Backup)],
            ..Default::default()
        };
        let run = |k: &mut RecordingIpvs, target, dir: &Path| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = sync_kernel(&sync, target, k, dir, &mut out, &mut err);
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        // The backup runs with 1 port: stopped, sysctls written, backup and master started.
        let (code, out, err) = run(&mut k, SyncTarget::Master, &d);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Exit::Ok, "sync: master (3 changes)\n", "")
        );
        assert_eq!(
            k.applied,
            vec![
                Op::StopDaemon(Backup),
                Op::StartDaemon(daemon(Backup)),
                Op::StartDaemon(daemon(Master))
            ]
        );
        assert_eq!(
            std::fs::read_to_string(d.join("sync_ports")).unwrap(),
            "2\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("sync_retries")).unwrap(),
            "3\n"
        );
        // Again: nothing to do.
        let (code, out, _) = run(&mut k, SyncTarget::Master, &d);
        assert_eq!(
            (code, out.as_str()),
            (Exit::Ok, "sync: master (0 changes)\n")
        );
        let (_, out, _) = run(&mut k, SyncTarget::Backup, &d);
        assert_eq!(out, "sync: backup (1 changes)\n");
        assert_eq!(k.daemons, vec![daemon(Backup)]);
        let (_, out, _) = run(&mut k, SyncTarget::Stop, &d);
        assert_eq!(out, "sync: stopped (1 changes)\n");
        assert!(k.daemons.is_empty());
        // A sysctl that cannot be written: temporary failure naming the file, nothing started.
        std::fs::remove_file(d.join("sync_retries")).unwrap();
        let (code, out, err) = run(&mut k, SyncTarget::Master, &d);
        assert_eq!((code, out.as_str()), (Exit::TempFail, ""));
        assert!(
            err.starts_with(&format!(
                "ldir: cannot write \"3\" to {}: no such sysctl",
                d.join("sync_retries").display()
            )),
            "{err}"
        );
        assert!(k.daemons.is_empty());
        // Refused while the daemons run and sync_ports differs: written before any stop, so they
        // stay as they are.
        std::fs::write(d.join("sync_retries"), "0\n").unwrap();
        assert_eq!(run(&mut k, SyncTarget::Master, &d).0, Exit::Ok);
        std::fs::write(d.join("sync_ports"), "1\n").unwrap();
        std::fs::remove_file(d.join("sync_retries")).unwrap();
        let (code, ..) = run(&mut k, SyncTarget::Master, &d);
        assert_eq!(code, Exit::TempFail);
        assert_eq!(k.daemons, vec![daemon(Backup), daemon(Master)]);
        assert_eq!(
            std::fs::read_to_string(d.join("sync_ports")).unwrap(),
            "1\n"
        );
        // sync_ports unreadable: nothing is stopped for it.
        std::fs::write(d.join("sync_retries"), "0\n").unwrap();
        std::fs::remove_file(d.join("sync_ports")).unwrap();
        let (code, _, err) = run(&mut k, SyncTarget::Backup, &d);
        assert_eq!(code, Exit::TempFail);
        assert!(
            err.contains(&format!("cannot read {}", d.join("sync_ports").display())),
            "{err}"
        );
        assert_eq!(
            k.daemons,
            vec![daemon(Backup), daemon(Master)],
            "left as it was"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn sync_status_lists_daemons_and_says_whether_a_master_runs() {
        use DaemonRole::{Backup, Master};
        let (text, code) = sync_status_text(&[reported(Backup), reported(Master)]);
        assert_eq!(
            text,
            "master interface eth1 sync_id 1 group 224.0.0.81 port 8848 ttl 1 max_len 1472\n\
             backup interface eth1 sync_id 1 group 224.0.0.81 port 8848 ttl 1 max_len 1472\n"
        );
        assert_eq!(code, Exit::Ok);
        let (text, code) = sync_status_text(&[daemon(Backup)]);
        assert_eq!(text, "backup interface eth1 sync_id 1\n");
        assert_eq!(code, Exit::NotRunning);
        let (text, code) = sync_status_text(&[]);
        assert_eq!(text, "no sync daemon running\n");
        assert_eq!(code, Exit::NotRunning);
    }

    #[test]
    fn static_table_has_every_real_at_its_weight() {
        let c = config::build(
            Path::new("/etc/ldir"),
            None,
            vec![("/etc/ldir/web.toml".into(), Ok(config::tests::WEB.into()))],
        )
        .unwrap();
        let t = static_table(&c);
        assert_eq!(t.destination_count(), 11);
        let vs = t.services.values().next().unwrap();
        assert_eq!(
            vs.destinations[&"192.0.2.13:80".parse().unwrap()].weight,
            10
        );
        assert!(
            !vs.destinations
                .contains_key(&"192.0.2.50:80".parse().unwrap()),
            "no fallback"
        );
    }

    #[test]
    fn real_arguments() {
        assert_eq!(
            parse_real("192.0.2.13").unwrap(),
            ("192.0.2.13".parse().unwrap(), None)
        );
        assert_eq!(
            parse_real("[2001:db8::1]:80").unwrap(),
            ("2001:db8::1".parse().unwrap(), Some(80))
        );
        assert!(parse_real("web1").is_err());
    }
}
