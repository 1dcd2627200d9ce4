//! `ldir status`: what the daemon knows about every virtual and real, with the kernel's counters,
//! as JSON (the control socket's reply) and as text; and the same figures as Prometheus metrics.

use std::collections::HashMap;
use std::fmt::Write as _;

use common::ipvs::{Ipvs, NetlinkIpvs, RecordingIpvs, ServiceKey};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::CheckMode;
use crate::director::{Director, RealId, State};

/// The kernel's counters of one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inactive_conns: u32,
    /// Connections scheduled since the counters were zeroed.
    pub conns: u64,
    /// Bytes in.
    pub in_bytes: u64,
    /// Bytes out.
    pub out_bytes: u64,
}

/// Destinations' counters, where the kernel can tell them.
pub trait KernelStats: Ipvs {
    /// Counters of every destination of `keys`; `None` when unavailable.
    fn counters(&mut self, keys: &[ServiceKey]) -> Option<HashMap<RealId, Counters>>;
}

impl KernelStats for NetlinkIpvs {
    fn counters(&mut self, keys: &[ServiceKey]) -> Option<HashMap<RealId, Counters>> {
        let mut out = HashMap::new();
        for k in keys {
            for d in self.destinations(k).ok()? {
                out.insert(
                    (*k, d.destination.addr),
                    Counters {
                        active_conns: d.active_conns,
                        inactive_conns: d.inactive_conns,
                        conns: d.stats.conns,
                        in_bytes: d.stats.in_bytes,
                        out_bytes: d.stats.out_bytes,
                    },
                );
            }
        }
        Some(out)
    }
}

/// The fake has no counters.
impl KernelStats for RecordingIpvs {
    fn counters(&mut self, _: &[ServiceKey]) -> Option<HashMap<RealId, Counters>> {
        None
    }
}

/// Reads the counters of every service ldir owns.
pub fn kernel_stats<I: KernelStats>(
    i: &mut I,
    keys: Vec<ServiceKey>,
) -> Option<HashMap<RealId, Counters>> {
    i.counters(&keys)
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Every virtual, in configuration order.
    pub virtuals: Vec<VirtualReport>,
}

/// One virtual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualReport {
    /// Its name.
    pub name: String,
    /// The service (`tcp 192.0.2.100:80`).
    pub service: String,
    /// The scheduler.
    pub scheduler: String,
    /// The check kind, `on` or `off`.
    pub check: String,
    /// The configured check interval in seconds.
    pub interval_s: f64,
    /// The fallback server, if configured.
    pub fallback: Option<String>,
    /// Whether it is in the table.
    pub fallback_active: bool,
    /// The reals.
    pub reals: Vec<RealReport>,
}

/// One real.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealReport {
    /// `192.0.2.13:80`.
    pub address: String,
    /// up, down, unknown.
    pub state: State,
    /// The weight in the table as applied (`None`: not in the table).
    pub weight: Option<u32>,
    /// The configured weight.
    pub configured_weight: u32,
    /// Held at weight 0 by a drain or the maintenance directory.
    pub held: bool,
    /// The last check.
    pub last: Option<LastReport>,
    /// The kernel's counters.
    pub counters: Option<Counters>,
}

/// The last check of a real.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReport {
    /// Its verdict.
    pub up: bool,
    /// Its reason.
    pub reason: String,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// How long ago it ended, in seconds.
    pub age_s: f64,
    /// The time between its result and the one before: the interval checks really run at.
    pub actual_interval_s: Option<f64>,
}

/// The report of `director`'s state, with `counters` if read.
pub fn report(
    director: &Director,
    counters: Option<&HashMap<RealId, Counters>>,
    now: Instant,
) -> Report {
    let mut virtuals = Vec::new();
    for v in &director.config().virtuals {
        let key = v.service.key;
        let check = match v.check {
            CheckMode::On => "on".to_string(),
            CheckMode::Off => "off".to_string(),
            CheckMode::Probe => v
                .reals
                .first()
                .and_then(|r| r.probe.as_ref())
                .map_or("probe".to_string(), |p| p.spec.check.name().to_string()),
        };
        let reals = v
            .reals
            .iter()
            .map(|r| {
                let id = (key, r.dest.addr);
                let h = director.health(&id);
                let state = match v.check {
                    CheckMode::On => State::Up,
                    CheckMode::Off => State::Down,
                    CheckMode::Probe => h.map_or(State::Unknown, |h| h.state),
                };
                RealReport {
                    address: r.dest.addr.to_string(),
                    state,
                    weight: director.applied_dest(&key, &r.dest.addr).map(|d| d.weight),
                    configured_weight: r.dest.weight,
                    held: director.held(&key, &r.dest.addr),
                    last: h.and_then(|h| h.last.as_ref()).map(|l| LastReport {
                        up: l.up,
                        reason: l.reason.clone(),
                        latency_ms: l.latency.as_secs_f64() * 1e3,
                        age_s: now.saturating_duration_since(l.at).as_secs_f64(),
                        actual_interval_s: l.interval.map(|i| i.as_secs_f64()),
                    }),
                    counters: counters.and_then(|c| c.get(&id).copied()),
                }
            })
            .collect();
        virtuals.push(VirtualReport {
            name: v.name.clone(),
            service: key.to_string(),
            scheduler: v.service.scheduler.to_string(),
            check,
            interval_s: v.interval.as_secs_f64(),
            fallback: v.fallback.as_ref().map(|f| f.addr.to_string()),
            fallback_active: director.fallback_active(&key),
            reals,
        });
    }
    Report { virtuals }
}

/// The report as text, one line per virtual and one per real.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.virtuals {
        let up = v.reals.iter().filter(|x| x.state == State::Up).count();
        let _ = writeln!(
            out,
            "{} {} {} check={} every {}s, {}/{} reals up{}",
            v.name,
            v.service,
            v.scheduler,
            v.check,
            v.interval_s,
            up,
            v.reals.len(),
            match (&v.fallback, v.fallback_active) {
                (Some(f), true) => format!(", fallback {f} ACTIVE"),
                _ => String::new(),
            }
        );
        for x in &v.reals {
            let weight = x.weight.map_or("-".to_string(), |w| w.to_string());
            let _ = write!(
                out,
                "  {:<24} {:<7} weight {weight}/{}",
                x.address,
                x.state.to_string(),
                x.configured_weight
            );
            if x.held {
                out.push_str(" HELD");
            }
            if let Some(l) = &x.last {
                let _ = write!(
                    out,
                    " last {:.1}s ago in {:.1}ms: {}",
                    l.age_s, l.latency_ms, l.reason
                );
                if let Some(i) = l.actual_interval_s {
                    let _ = write!(out, " (every {i:.1}s)");
                }
            }
            if let Some(c) = &x.counters {
                let _ = write!(
                    out,
                    " conns {}/{} bytes {}/{}",
                    c.active_conns, c.inactive_conns, c.in_bytes, c.out_bytes
                );
            }
            out.push('\n');
        }
    }
    out
}

/// The report as Prometheus text (exposition format 0.0.4).
pub fn metrics(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP ldir_real_up 1 when the real's checks say it is up.\n# TYPE ldir_real_up gauge\n",
    );
    let label = |v: &VirtualReport, x: &RealReport| {
        format!("virtual=\"{}\",real=\"{}\"", esc(&v.name), esc(&x.address))
    };
    for v in &r.virtuals {
        for x in &v.reals {
            let _ = writeln!(
                out,
                "ldir_real_up{{{}}} {}",
                label(v, x),
                u8::from(x.state == State::Up)
            );
        }
    }
    out.push_str("# HELP ldir_real_weight The real's weight in the IPVS table (-1: not in the table).\n# TYPE ldir_real_weight gauge\n");
    for v in &r.virtuals {
        for x in &v.reals {
            let _ = writeln!(
                out,
                "ldir_real_weight{{{}}} {}",
                label(v, x),
                x.weight.map_or(-1, i64::from)
            );
        }
    }
    out.push_str("# HELP ldir_check_latency_seconds The duration of the real's last check.\n# TYPE ldir_check_latency_seconds gauge\n");
    for v in &r.virtuals {
        for x in &v.reals {
            if let Some(l) = &x.last {
                let _ = writeln!(
                    out,
                    "ldir_check_latency_seconds{{{}}} {}",
                    label(v, x),
                    l.latency_ms / 1e3
                );
            }
        }
    }
    for (name, help, kind, get) in [
        (
            "ldir_real_active_connections",
            "Active connections to the real.",
            "gauge",
            (|c: &Counters| u64::from(c.active_conns)) as fn(&Counters) -> u64,
        ),
        (
            "ldir_real_inactive_connections",
            "Inactive connections to the real.",
            "gauge",
            |c| u64::from(c.inactive_conns),
        ),
        (
            "ldir_real_connections_total",
            "Connections scheduled to the real.",
            "counter",
            |c| c.conns,
        ),
        (
            "ldir_real_in_bytes_total",
            "Bytes from clients to the real.",
            "counter",
            |c| c.in_bytes,
        ),
        (
            "ldir_real_out_bytes_total",
            "Bytes from the real to clients.",
            "counter",
            |c| c.out_bytes,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for v in &r.virtuals {
            for x in &v.reals {
                if let Some(c) = &x.counters {
                    let _ = writeln!(out, "{name}{{{}}} {}", label(v, x), get(c));
                }
            }
        }
    }
    out
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
