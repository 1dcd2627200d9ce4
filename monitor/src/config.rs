//! `monitor.toml`: host groups and watches, as in the issue's example (mon's `hostgroup` and
//! `watch` → `service` blocks), read with `common::config` (every problem with `file:line:col` and
//! its field) and compiled into [`Config`]: per service its hosts, probe, intervals, alert commands
//! and [`Rules`].
//!
//! ```toml
//! [hostgroup]
//! web = ["192.0.2.13", "192.0.2.14"]
//!
//! [[watch]]
//! group = "web"
//!
//! [[watch.service]]
//! name = "http"
//! probe = { type = "http", port = 80, path = "/", expect = "200-299" }
//! interval = "10s"
//! failure_interval = "2s"
//! alert_after = 3          # or a time: "30s"
//! alert_every = "1h"
//! num_alerts = 10
//! depends = ["web/ping"]
//! period = "Mon-Fri 07:00-22:00"
//! alert = ["mail.alert ops@example.com"]
//! upalert = ["mail.alert ops@example.com"]
//! ```
//!
//! The probe table is `common::probe`'s spec with `type` for its kind (as in ldir's `[check]`);
//! a mon monitor script is `type = "external"` with mon's calling convention. Hosts are IP
//! addresses or names, resolved when the file is read (the first address, IPv4 first). Alert commands are command lines split like a shell's
//! (`shlex`); their program is looked up in the alert directories at alert time.
//! Top-level settings besides the example's: `alert_dirs` (default `/etc/monitor/alert.d`, then
//! mon's `/usr/lib/mon/alert.d`), `socket` (default `/run/monitor/monitor.sock`), `socket_group`
//! (may ack, disable and enable; root's group by default), `read_group` (may also read the
//! status) and `state_file` (default `/var/lib/monitor/state.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::config::{self, ConfigErrors, Duration, Validate, Validator};
use common::probe::Spec;
use serde::Deserialize;
use toml::Spanned;

use crate::rules::{AlertAfter, Period, Rules, ServiceId};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/monitor/monitor.toml";
/// Where alert commands are looked up when `alert_dirs` is not set: ours, then mon's.
pub const DEFAULT_ALERT_DIRS: [&str; 2] = ["/etc/monitor/alert.d", "/usr/lib/mon/alert.d"];
/// The control socket when `socket` is not set.
pub const DEFAULT_SOCKET: &str = "/run/monitor/monitor.sock";
/// The state file when `state_file` is not set.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/monitor/state.json";
/// A service's interval when it sets none (mon's examples use 1m–5m).
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    hostgroup: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    watch: Vec<Spanned<Watch>>,
    alert_dirs: Option<Vec<String>>,
    socket: Option<PathBuf>,
    socket_group: Option<String>,
    read_group: Option<String>,
    state_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Watch {
    group: Spanned<String>,
    #[serde(default)]
    service: Vec<Spanned<Service>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    name: Spanned<String>,
    probe: Spanned<toml::Table>,
    interval: Option<Spanned<Duration>>,
    failure_interval: Option<Spanned<Duration>>,
    alert_after: Option<Spanned<AfterValue>>,
    alert_every: Option<Spanned<Duration>>,
    #[serde(default)]
    alert_every_strict: bool,
    num_alerts: Option<Spanned<i64>>,
    #[serde(default)]
    depends: Vec<Spanned<String>>,
    period: Option<Spanned<String>>,
    #[serde(default)]
    alert: Vec<Spanned<String>>,
    #[serde(default)]
    upalert: Vec<Spanned<String>>,
    #[serde(default)]
    startupalert: Vec<Spanned<String>>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AfterValue {
    Count(i64),
    Time(Duration),
}

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub alert_dirs: Vec<PathBuf>,
    /// The control socket ([`DEFAULT_SOCKET`] unless set).
    pub socket: PathBuf,
    /// The group that may change state through the socket (ack, disable, enable); root's when
    /// unset.
    pub socket_group: Option<String>,
    /// A group that may also read (`status`, `list failures`).
    pub read_group: Option<String>,
    /// The state file ([`DEFAULT_STATE_FILE`] unless set).
    pub state_file: PathBuf,
    /// Every service, in file order.
    pub services: Vec<ServiceConfig>,
}

/// One service of one watch.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub id: ServiceId,
    pub description: Option<String>,
    pub hosts: Vec<std::net::IpAddr>,
    pub probe: Spec,
    pub interval: std::time::Duration,
    /// The interval while failing (mon's `failure_interval`; the interval when not set).
    pub failure_interval: std::time::Duration,
    pub rules: Rules,
    /// Command lines (argv), as written.
    pub alert: Vec<Vec<String>>,
    pub upalert: Vec<Vec<String>>,
    pub startupalert: Vec<Vec<String>>,
}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file: File = config::load_file(path)?;
    Ok(compile(file))
}

/// Parses and checks configuration text (`name` is shown in errors).
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigErrors> {
    let file: File = config::parse_str(name, text)?;
    Ok(compile(file))
}

/// The probe table as `common::probe` reads it: `type` is the kind (`kind` itself is refused, to
/// keep one spelling), and the dns kind's record type is written `record_type`.
fn probe_spec(t: &toml::Table) -> Result<Spec, (String, String)> {
    if t.contains_key("kind") {
        return Err((
            "kind".into(),
            "write type = \"...\" for the kind of probe".into(),
        ));
    }
    let Some(kind) = t.get("type").and_then(toml::Value::as_str) else {
        return Err((
            "type".into(),
            "missing: the kind of probe, e.g. type = \"http\"".into(),
        ));
    };
    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(kind.to_string()));
    for (k, v) in t {
        match k.as_str() {
            "type" => {}
            "record_type" => {
                table.insert("type".into(), v.clone());
            }
            _ => {
                table.insert(k.clone(), v.clone());
            }
        }
    }
    let spec: Spec =
        config::from_value(toml::Value::Table(table)).map_err(|(field, message)| {
            // The kind is serde's tag: an unknown one comes without a field name.
            let kind_named = message.contains(&format!("`{kind}`"));
            let field = if field == "kind" || (field.is_empty() && kind_named) {
                "type".to_string()
            } else {
                field
            };
            (field, message)
        })?;
    if let Some((field, message)) = spec.problems().into_iter().next() {
        return Err((field.to_string(), message));
    }
    Ok(spec)
}

/// A host as written: an IP address, or a name resolved now (the system's resolver:
/// `/etc/hosts`, DNS), its first address (IPv4 before IPv6). Probes need addresses; mon's host
/// groups usually hold names.
fn resolve_host(host: &str) -> Result<std::net::IpAddr, String> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    if host.is_empty() || host.contains([' ', '/', ':']) {
        return Err(format!("{host:?} is neither an IP address nor a host name"));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("the host name {host:?} does not resolve ({e})"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("the host name {host:?} has no address"))
}

fn argv(line: &str) -> Result<Vec<String>, String> {
    match shlex::split(line) {
        Some(words) if !words.is_empty() => Ok(words),
        Some(_) => Err("an empty command".into()),
        None => Err("unbalanced quotes or a trailing backslash".into()),
    }
}

impl Validate for File {
    fn validate(&self, v: &mut Validator) {
        v.field("hostgroup", |v| {
            for (name, hosts) in &self.hostgroup {
                if hosts.get_ref().is_empty() {
                    v.error(
                        name,
                        hosts,
                        "an empty host group: list at least one address",
                    );
                }
                v.field(name, |v| {
                    for (i, h) in hosts.get_ref().iter().enumerate() {
                        if let Err(e) = resolve_host(h.get_ref()) {
                            v.index(i, |v| v.error("", h, e));
                        }
                    }
                });
            }
        });
        // Every service's name, for `depends`.
        let mut all: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (w, watch) in self.watch.iter().enumerate() {
            for (s, svc) in watch.get_ref().service.iter().enumerate() {
                let id = format!(
                    "{}/{}",
                    watch.get_ref().group.get_ref(),
                    svc.get_ref().name.get_ref()
                );
                all.entry(id).or_insert((w, s));
            }
        }
        let mut seen = BTreeSet::new();
        v.field("watch", |v| {
            for (w, watch) in self.watch.iter().enumerate() {
                let watch_ref = watch.get_ref();
                v.index(w, |v| {
                    let group = watch_ref.group.get_ref();
                    if !self.hostgroup.contains_key(group) {
                        let known: Vec<&str> = self.hostgroup.keys().map(String::as_str).collect();
                        let hint = match config::did_you_mean(group, known.iter().copied()) {
                            Some(s) => format!("; did you mean {s:?}?"),
                            None => format!(" (known: {})", known.join(", ")),
                        };
                        v.error(
                            "group",
                            &watch_ref.group,
                            format!("no [hostgroup] {group:?}{hint}"),
                        );
                    }
                    v.field("service", |v| {
                        for (s, svc) in watch_ref.service.iter().enumerate() {
                            v.index(s, |v| {
                                let id = format!("{group}/{}", svc.get_ref().name.get_ref());
                                if !seen.insert(id.clone()) {
                                    v.error(
                                        "name",
                                        &svc.get_ref().name,
                                        format!("{id} is defined twice"),
                                    );
                                }
                                svc.get_ref().check(&all, v);
                            });
                        }
                    });
                });
            }
        });
        // Dependency cycles, each reported once at the first service of the cycle.
        let deps: BTreeMap<String, Vec<String>> = self
            .watch
            .iter()
            .flat_map(|w| {
                let g = w.get_ref().group.get_ref().clone();
                w.get_ref().service.iter().map(move |s| {
                    (
                        format!("{g}/{}", s.get_ref().name.get_ref()),
                        s.get_ref()
                            .depends
                            .iter()
                            .map(|d| d.get_ref().clone())
                            .collect(),
                    )
                })
            })
            .collect();
        let mut reported = BTreeSet::new();
        for (w, watch) in self.watch.iter().enumerate() {
            for (s, svc) in watch.get_ref().service.iter().enumerate() {
                let start = format!(
                    "{}/{}",
                    watch.get_ref().group.get_ref(),
                    svc.get_ref().name.get_ref()
                );
                if let Some(cycle) = find_cycle(&start, &deps)
                    && reported.insert(cycle.iter().cloned().collect::<BTreeSet<_>>())
                {
                    let mut shown = cycle.clone();
                    shown.push(start.clone());
                    v.field("watch", |v| {
                        v.index(w, |v| {
                            v.field("service", |v| {
                                v.index(s, |v| {
                                    v.error(
                                        "depends",
                                        &svc.get_ref().name,
                                        format!("a dependency cycle: {}", shown.join(" -> ")),
                                    )
                                })
                            })
                        })
                    });
                }
            }
        }
    }
}

/// The cycle through `start`, as the path from `start` back to just before it, if there is one.
fn find_cycle(start: &str, deps: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        deps: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> bool {
        path.push(at.to_string());
        for next in deps.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if done.insert(next.clone()) && walk(next, start, deps, path, done) {
                return true;
            }
        }
        path.pop();
        false
    }
    let mut path = Vec::new();
    let mut done = BTreeSet::new();
    walk(start, start, deps, &mut path, &mut done).then_some(path)
}

impl Service {
    fn check(&self, all: &BTreeMap<String, (usize, usize)>, v: &mut Validator) {
        if self.name.get_ref().is_empty() || self.name.get_ref().contains('/') {
            v.error("name", &self.name, "a non-empty name without \"/\"");
        }
        if let Err((field, message)) = probe_spec(self.probe.get_ref()) {
            let span = self
                .probe
                .get_ref()
                .get(&field)
                .map(|_| self.probe.span())
                .unwrap_or_else(|| self.probe.span());
            v.field("probe", |v| v.error_at(&field, Some(span), message));
        }
        for (key, d) in [
            ("interval", &self.interval),
            ("failure_interval", &self.failure_interval),
        ] {
            if let Some(d) = d
                && d.get_ref().as_std().is_zero()
            {
                v.error(key, d, "must be longer than 0s");
            }
        }
        if let Some(a) = &self.alert_after
            && let AfterValue::Count(n) = a.get_ref()
            && (*n < 1 || *n > i64::from(u32::MAX))
        {
            v.error(
                "alert_after",
                a,
                format!("a count of failures from 1, or a time like \"30s\"; got {n}"),
            );
        }
        if let Some(n) = &self.num_alerts
            && (*n.get_ref() < 1 || *n.get_ref() > i64::from(u32::MAX))
        {
            v.error(
                "num_alerts",
                n,
                format!("must be 1 or more, got {}", n.get_ref()),
            );
        }
        for (i, d) in self.depends.iter().enumerate() {
            if !all.contains_key(d.get_ref()) {
                let hint = config::did_you_mean(d.get_ref(), all.keys().map(String::as_str))
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_default();
                v.field("depends", |v| {
                    v.index(i, |v| {
                        v.error(
                            "",
                            d,
                            format!("no service {:?} (write group/service){hint}", d.get_ref()),
                        )
                    })
                });
            }
        }
        if let Some(p) = &self.period
            && let Err(e) = Period::parse(p.get_ref())
        {
            v.error("period", p, e);
        }
        for (key, lines) in [
            ("alert", &self.alert),
            ("upalert", &self.upalert),
            ("startupalert", &self.startupalert),
        ] {
            v.field(key, |v| {
                for (i, l) in lines.iter().enumerate() {
                    if let Err(e) = argv(l.get_ref()) {
                        v.index(i, |v| v.error("", l, e));
                    }
                }
            });
        }
    }
}

fn compile(file: File) -> Config {
    let argvs = |lines: &[Spanned<String>]| -> Vec<Vec<String>> {
        lines
            .iter()
            .filter_map(|l| argv(l.get_ref()).ok())
            .collect()
    };
    let mut services = Vec::new();
    for watch in &file.watch {
        let watch = watch.get_ref();
        let group = watch.group.get_ref();
        let hosts: Vec<std::net::IpAddr> = file
            .hostgroup
            .get(group)
            .map(|h| {
                h.get_ref()
                    .iter()
                    .filter_map(|h| resolve_host(h.get_ref()).ok())
                    .collect()
            })
            .unwrap_or_default();
        for svc in &watch.service {
            let svc = svc.get_ref();
            // Validated: the probe compiles.
            let Ok(probe) = probe_spec(svc.probe.get_ref()) else {
                continue;
            };
            let interval = svc
                .interval
                .as_ref()
                .map_or(DEFAULT_INTERVAL, |d| d.get_ref().as_std());
            let clamp = |n: i64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
            let rules = Rules {
                alert_after: match svc.alert_after.as_ref().map(Spanned::get_ref) {
                    None => AlertAfter::Count(1),
                    Some(AfterValue::Count(n)) => AlertAfter::Count(clamp(*n)),
                    Some(AfterValue::Time(t)) => AlertAfter::Time(t.as_std()),
                },
                alert_every: svc.alert_every.as_ref().map(|d| d.get_ref().as_std()),
                alert_every_strict: svc.alert_every_strict,
                num_alerts: svc.num_alerts.as_ref().map(|n| clamp(*n.get_ref())),
                period: svc
                    .period
                    .as_ref()
                    .and_then(|p| Period::parse(p.get_ref()).ok()),
                depends: svc
                    .depends
                    .iter()
                    .filter_map(|d| d.get_ref().split_once('/'))
                    .map(|(g, s)| ServiceId::new(g, s))
                    .collect(),
                upalert: !svc.upalert.is_empty(),
                startupalert: !svc.startupalert.is_empty(),
            };
            services.push(ServiceConfig {
                id: ServiceId::new(group, svc.name.get_ref()),
                description: svc.description.clone(),
                hosts: hosts.clone(),
                probe,
                interval,
                failure_interval: svc
                    .failure_interval
                    .as_ref()
                    .map_or(interval, |d| d.get_ref().as_std()),
                rules,
                alert: argvs(&svc.alert),
                upalert: argvs(&svc.upalert),
                startupalert: argvs(&svc.startupalert),
            });
        }
    }
    Config {
        alert_dirs: file
            .alert_dirs
            .unwrap_or_else(|| DEFAULT_ALERT_DIRS.iter().map(|s| s.to_string()).collect())
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        socket: file.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
        socket_group: file.socket_group,
        read_group: file.read_group,
        state_file: file.state_file.unwrap_or_else(|| DEFAULT_STATE_FILE.into()),
        services,
    }
}

#[cfg(test)]
mod tests;
