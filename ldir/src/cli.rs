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
use common::ipvs::{self, DaemonRole, NetlinkIpvs, Op, Table};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, CheckMode, Config};
use crate::daemon::{self, Deps, Event};
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

/// `ldir sync master|backup|stop`: makes the kernel's sync daemons match the role, from `[sync]`.
pub fn sync(
    dir: &Path,
    role: Option<DaemonRole>,
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
    let running = match kernel.daemons() {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "ldir: cannot read the sync daemons: {e}");
            return Exit::TempFail;
        }
    };
    let ops = sync_ops(&running, role.map(|r| sync.daemon(r)));
    if let Err(e) = kernel.apply(&ops) {
        let _ = writeln!(err, "ldir: {e}");
        return Exit::TempFail;
    }
    let _ = writeln!(
        out,
        "sync: {} ({} changes)",
        role.map_or("stopped".to_string(), |r| r.to_string()),
        ops.len()
    );
    Exit::Ok
}

/// The operations that leave exactly `want` running (or nothing).
pub fn sync_ops(running: &[ipvs::SyncDaemon], want: Option<ipvs::SyncDaemon>) -> Vec<Op> {
    let mut ops = Vec::new();
    for d in running {
        let same = want.as_ref().is_some_and(|w| {
            w.role == d.role
                && w.interface == d.interface
                && w.sync_id == d.sync_id
                && w.group.is_none_or(|g| Some(g) == d.group)
                && w.port.is_none_or(|p| Some(p) == d.port)
                && w.ttl.is_none_or(|t| Some(t) == d.ttl)
                && w.max_len.is_none_or(|m| Some(m) == d.max_len)
        });
        if !same {
            ops.push(Op::StopDaemon(d.role));
        }
    }
    if let Some(w) = want
        && !running
            .iter()
            .any(|d| d.role == w.role && !ops.contains(&Op::StopDaemon(d.role)))
    {
        ops.push(Op::StartDaemon(w));
    }
    ops
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
        sysctl_dir: "/proc/sys/net/ipv4/vs".into(),
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
    use common::ipvs::SyncDaemon;

    #[test]
    fn sync_switches_roles_and_is_idempotent() {
        let master = SyncDaemon::new(DaemonRole::Master, "eth1", 1);
        let backup = SyncDaemon::new(DaemonRole::Backup, "eth1", 1);
        assert_eq!(
            sync_ops(&[], Some(master.clone())),
            vec![Op::StartDaemon(master.clone())]
        );
        assert_eq!(
            sync_ops(std::slice::from_ref(&master), Some(master.clone())),
            vec![]
        );
        assert_eq!(
            sync_ops(std::slice::from_ref(&backup), Some(master.clone())),
            vec![
                Op::StopDaemon(DaemonRole::Backup),
                Op::StartDaemon(master.clone())
            ]
        );
        assert_eq!(
            sync_ops(&[master.clone(), backup.clone()], None),
            vec![
                Op::StopDaemon(DaemonRole::Master),
                Op::StopDaemon(DaemonRole::Backup)
            ]
        );
        // Another interface: restarted with the configured one.
        let other = SyncDaemon::new(DaemonRole::Master, "eth2", 1);
        assert_eq!(
            sync_ops(&[other], Some(master.clone())),
            vec![Op::StopDaemon(DaemonRole::Master), Op::StartDaemon(master)]
        );
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
