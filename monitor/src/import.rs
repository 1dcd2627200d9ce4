//! `monitor import mon.cf`: mon's configuration converted into `monitor.toml`, the common subset,
//! with a warning (`FILE:LINE: DIRECTIVE: why`) for everything else.
//!
//! Converted:
//! - `alertdir` → `alert_dirs` (then mon's default directory);
//! - `hostgroup NAME HOST...` → `[hostgroup]` (names are kept: `monitor` resolves them);
//! - `watch GROUP` / `service NAME` → `[[watch]]` / `[[watch.service]]` with `description`,
//!   `interval`, `failure_interval`, `depend` (`group:service` words → `depends`);
//! - `monitor`: `fping.monitor`/`ping.monitor` → the `ping` probe, `tcp.monitor -p PORT` → `tcp`,
//!   `http.monitor [-p PORT] [-u PATH]` → `http`, `smtp.monitor [-t SECS]` → `smtp`; any other
//!   monitor → the `external` probe running it from the first `mondir` with mon's convention;
//! - `period` blocks: `wd {Mon-Fri} hr {7am-10pm}` → `Mon-Fri 07:00-22:00`, several periods joined
//!   with `;`; `alert`, `upalert`, `startupalert`, `alertevery` (`strict`), `alertafter` (a count or
//!   a time), `numalerts` from the first period that sets them (a later one that differs is
//!   warned about: `monitor` has one set of alert settings per service).
//!
//! Trap services (`traptimeout`, no `monitor`) have no equivalent and are left out, warned.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The result: the TOML text and the warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct Service {
    name: String,
    line: usize,
    description: Option<String>,
    interval: Option<String>,
    failure_interval: Option<String>,
    monitor: Option<(usize, String)>,
    depends: Vec<String>,
    periods: Vec<String>,
    any_period: bool,
    alert: Vec<String>,
    upalert: Vec<String>,
    startupalert: Vec<String>,
    alert_every: Option<(String, bool)>,
    alert_after: Option<String>,
    num_alerts: Option<u32>,
    trap: bool,
    /// Period blocks merged so far.
    merged: usize,
}

#[derive(Debug, Default)]
struct Watch {
    group: String,
    services: Vec<Service>,
}

/// Where a setting came from, for the "later period differs" warnings.
#[derive(Debug, Default)]
struct PeriodBlock {
    /// Its `period` line.
    line: usize,
    alert: Vec<String>,
    upalert: Vec<String>,
    startupalert: Vec<String>,
    alert_every: Option<(String, bool)>,
    alert_after: Option<String>,
    num_alerts: Option<u32>,
}

/// Converts mon.cf text (`name` is used in warnings).
pub fn import(name: &str, text: &str) -> Imported {
    let mut warnings = Vec::new();
    let mut warn = |line: usize, what: &str, why: String| {
        warnings.push(format!("{name}:{line}: {what}: {why}"));
    };
    let mut alert_dirs: Vec<String> = Vec::new();
    let mut mondir: Option<String> = None;
    let mut hostgroups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut watches: Vec<Watch> = Vec::new();
    let mut period: Option<PeriodBlock> = None;

    // Finish the open period block into the open service.
    fn close_period(
        period: &mut Option<PeriodBlock>,
        svc: Option<&mut Service>,
        warn: &mut dyn FnMut(usize, &str, String),
    ) {
        let (Some(p), Some(s)) = (period.take(), svc) else {
            return;
        };
        s.merged += 1;
        if s.merged == 1 {
            s.alert = p.alert;
            s.upalert = p.upalert;
            s.startupalert = p.startupalert;
            s.alert_every = p.alert_every;
            s.alert_after = p.alert_after;
            s.num_alerts = p.num_alerts;
            return;
        }
        let why = || {
            "differs from the first period's: the first is kept (one set per service)".to_string()
        };
        let at = p.line;
        if p.alert != s.alert {
            warn(at, "alert", why());
        }
        if p.upalert != s.upalert {
            warn(at, "upalert", why());
        }
        if p.startupalert != s.startupalert {
            warn(at, "startupalert", why());
        }
        if p.alert_every != s.alert_every {
            warn(at, "alertevery", why());
        }
        if p.alert_after != s.alert_after {
            warn(at, "alertafter", why());
        }
        if p.num_alerts != s.num_alerts {
            warn(at, "numalerts", why());
        }
    }

    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end();
        let (start, mut acc) = pending.take().unwrap_or((n, String::new()));
        if let Some(body) = line.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        logical.push((start, acc));
    }
    if let Some(p) = pending {
        logical.push(p);
    }

    for (n, line) in logical {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let key = words[0];
        let rest = t[key.len()..].trim();
        // Global `key = value`.
        if watches.is_empty()
            && let Some((k, v)) = t.split_once('=')
            && !k.trim().contains(' ')
        {
            let (k, v) = (k.trim(), v.trim());
            match k {
                "alertdir" => alert_dirs.extend(v.split(':').map(|d| d.trim().to_string())),
                "mondir" => mondir = v.split(':').next().map(|d| d.trim().to_string()),
                "logdir" | "statedir" | "cfbasedir" | "authfile" | "maxprocs" | "histlength"
                | "historicfile" | "dtlogging" | "dtlogfile" | "randstart" | "pidfile"
                | "basedir" | "syslog_facility" => warn(
                    n,
                    k,
                    "no equivalent in monitor (its own settings apply)".into(),
                ),
                "serverbind" | "trapbind" | "clientallow" | "serverport" | "trapport"
                | "authtype" | "userfile" | "pamservice" | "cltimeout" => warn(
                    n,
                    k,
                    "no network server: monitor answers on a unix socket only".into(),
                ),
                _ => warn(n, k, "not converted".into()),
            }
            continue;
        }
        match key {
            "hostgroup" => {
                let Some(group) = words.get(1) else {
                    warn(n, "hostgroup", "no name".into());
                    continue;
                };
                hostgroups.insert(
                    group.to_string(),
                    words[2..].iter().map(|h| h.to_string()).collect(),
                );
            }
            "watch" => {
                let last = watches.last_mut().and_then(|w| w.services.last_mut());
                close_period(&mut period, last, &mut warn);
                watches.push(Watch {
                    group: words.get(1).unwrap_or(&"").to_string(),
                    services: Vec::new(),
                });
            }
            "service" => {
                let Some(w) = watches.last_mut() else {
                    warn(n, "service", "outside a watch: left out".into());
                    continue;
                };
                close_period(&mut period, w.services.last_mut(), &mut warn);
                w.services.push(Service {
                    name: words.get(1).unwrap_or(&"").to_string(),
                    line: n,
                    ..Service::default()
                });
            }
            "period" => {
                let Some(s) = watches.last_mut().and_then(|w| w.services.last_mut()) else {
                    warn(n, "period", "outside a service: left out".into());
                    continue;
                };
                close_period(&mut period, Some(&mut *s), &mut warn);
                // An optional `label:` first.
                let spec = match rest.split_once(':') {
                    Some((label, spec)) if !label.contains(['{', ' ']) => spec.trim(),
                    _ => rest,
                };
                if spec.is_empty() {
                    s.any_period = true;
                } else {
                    match time_period(spec) {
                        Ok(p) => s.periods.push(p),
                        Err(why) => {
                            warn(
                                n,
                                "period",
                                format!("{why}: this period's alerts are sent at any time"),
                            );
                            s.any_period = true;
                        }
                    }
                }
                period = Some(PeriodBlock {
                    line: n,
                    ..PeriodBlock::default()
                });
            }
            _ => {
                let Some(s) = watches.last_mut().and_then(|w| w.services.last_mut()) else {
                    warn(n, key, "outside a watch and service: left out".into());
                    continue;
                };
                if let Some(p) = period.as_mut() {
                    match key {
                        "alert" | "upalert" | "startupalert" => {
                            if rest.starts_with("exit=") {
                                warn(n, key, "exit= ranges have no equivalent: the alert is sent for every failure".into());
                            }
                            let cmd = rest
                                .split_whitespace()
                                .filter(|w| !w.starts_with("exit="))
                                .collect::<Vec<_>>()
                                .join(" ");
                            match key {
                                "alert" => p.alert.push(cmd),
                                "upalert" => p.upalert.push(cmd),
                                _ => p.startupalert.push(cmd),
                            }
                        }
                        "alertevery" => match words.get(1).map(|t| duration(t)) {
                            Some(Ok(d)) => {
                                let strict = words.get(2) == Some(&"strict");
                                if words.get(2) == Some(&"observe_detail") {
                                    warn(
                                        n,
                                        key,
                                        "observe_detail: only the summary is compared".into(),
                                    );
                                }
                                p.alert_every = Some((d, strict));
                            }
                            Some(Err(why)) => warn(n, key, why),
                            None => warn(n, key, "no time".into()),
                        },
                        "alertafter" => {
                            match (words.get(1), words.get(2)) {
                                (Some(a), None) if a.parse::<u32>().is_ok() => {
                                    p.alert_after = Some(a.to_string())
                                }
                                (Some(a), None) => match duration(a) {
                                    Ok(d) => p.alert_after = Some(format!("\"{d}\"")),
                                    Err(why) => warn(n, key, why),
                                },
                                (Some(a), Some(_)) if a.parse::<u32>().is_ok() => {
                                    warn(n, key, "N failures within a time: converted to N consecutive failures".into());
                                    p.alert_after = Some(a.to_string());
                                }
                                _ => warn(n, key, "not understood".into()),
                            }
                        }
                        "numalerts" => match words.get(1).and_then(|v| v.parse().ok()) {
                            Some(v) => p.num_alerts = Some(v),
                            None => warn(n, key, "not a number".into()),
                        },
                        "no_comp_alerts" | "upalertafter" => warn(
                            n,
                            key,
                            "no equivalent (an upalert follows a sent alert)".into(),
                        ),
                        _ => warn(n, key, "not converted".into()),
                    }
                    continue;
                }
                match key {
                    "description" => s.description = Some(rest.to_string()),
                    "interval" | "failure_interval" => match duration(rest) {
                        Ok(d) if key == "interval" => s.interval = Some(d),
                        Ok(d) => s.failure_interval = Some(d),
                        Err(why) => warn(n, key, why),
                    },
                    "monitor" => s.monitor = Some((n, rest.to_string())),
                    "depend" => {
                        for w in rest.split_whitespace() {
                            match w.split_once(':') {
                                Some((g, sv))
                                    if !g.is_empty()
                                        && !sv.is_empty()
                                        && !w.contains(['(', ')', '&', '|', '!']) =>
                                {
                                    s.depends.push(format!("{g}/{sv}"))
                                }
                                _ => warn(
                                    n,
                                    "depend",
                                    format!(
                                        "{w:?} is not group:service (only those are converted)"
                                    ),
                                ),
                            }
                        }
                    }
                    "traptimeout" | "trapduration" => s.trap = true,
                    "allow_empty_group" | "randskew" | "dep_behavior" | "exclude_hosts"
                    | "exclude_period" | "redistribute" | "unack_summary" | "alertdepend"
                    | "monitordepend" | "hostdepend" | "dep_memory" => {
                        warn(n, key, "no equivalent: left out".into())
                    }
                    k if k.contains('=') => warn(
                        n,
                        k.split('=').next().unwrap_or(k),
                        "service variables are not converted".into(),
                    ),
                    _ => warn(n, key, "not converted".into()),
                }
            }
        }
    }
    let last = watches.last_mut().and_then(|w| w.services.last_mut());
    close_period(&mut period, last, &mut warn);

    // The text.
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Converted from {name} by `monitor import`: check it with `monitor check`."
    );
    let mut dirs = alert_dirs;
    if !dirs.iter().any(|d| d == "/usr/lib/mon/alert.d") {
        dirs.push("/usr/lib/mon/alert.d".into());
    }
    let _ = writeln!(out, "alert_dirs = {}\n", list(&dirs));
    let _ = writeln!(out, "[hostgroup]");
    for (g, hosts) in &hostgroups {
        let _ = writeln!(out, "{} = {}", q(g), list(hosts));
    }
    let mondir = mondir.unwrap_or_else(|| "/usr/lib/mon/mon.d".into());
    for w in &watches {
        let services: Vec<&Service> = w
            .services
            .iter()
            .filter(|s| {
                if s.trap && s.monitor.is_none() {
                    warn(
                        s.line,
                        &format!("service {}", s.name),
                        "a trap service has no equivalent: left out".into(),
                    );
                    false
                } else if s.monitor.is_none() {
                    warn(
                        s.line,
                        &format!("service {}", s.name),
                        "no monitor: left out".into(),
                    );
                    false
                } else {
                    true
                }
            })
            .collect();
        if services.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n[[watch]]\ngroup = {}", q(&w.group));
        for s in services {
            let _ = writeln!(out, "\n[[watch.service]]\nname = {}", q(&s.name));
            if let Some(d) = &s.description {
                let _ = writeln!(out, "description = {}", q(d));
            }
            if let Some((n, m)) = &s.monitor {
                let _ = writeln!(out, "probe = {}", probe(m, &mondir, *n, &mut warn));
            }
            for (k, v) in [
                ("interval", &s.interval),
                ("failure_interval", &s.failure_interval),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{k} = {}", q(v));
                }
            }
            if !s.depends.is_empty() {
                let _ = writeln!(out, "depends = {}", list(&s.depends));
            }
            if !s.periods.is_empty() && !s.any_period {
                let _ = writeln!(out, "period = {}", q(&s.periods.join("; ")));
            }
            if let Some(a) = &s.alert_after {
                let _ = writeln!(out, "alert_after = {a}");
            }
            if let Some((d, strict)) = &s.alert_every {
                let _ = writeln!(out, "alert_every = {}", q(d));
                if *strict {
                    let _ = writeln!(out, "alert_every_strict = true");
                }
            }
            if let Some(n) = s.num_alerts {
                let _ = writeln!(out, "num_alerts = {n}");
            }
            for (k, v) in [
                ("alert", &s.alert),
                ("upalert", &s.upalert),
                ("startupalert", &s.startupalert),
            ] {
                if !v.is_empty() {
                    let _ = writeln!(out, "{k} = {}", list(v));
                }
            }
        }
    }
    Imported {
        toml: out,
        warnings,
    }
}

/// mon's time (`30s`, `5m`, `1h`, `1d`, a bare number of seconds) as ours.
fn duration(t: &str) -> Result<String, String> {
    let t = t.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("{t:?} is not a time"))?;
    match unit {
        "" | "s" => Ok(format!("{n}s")),
        "m" => Ok(format!("{n}m")),
        "h" => Ok(format!("{n}h")),
        "d" => Ok(format!("{}h", n * 24)),
        _ => Err(format!("{t:?} is not a time")),
    }
}

/// Time::Period's `wd {..} hr {..}` (sub-periods joined with `,`) as ours (joined with `;`).
fn time_period(spec: &str) -> Result<String, String> {
    spec.split(',')
        .map(sub_period)
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join("; "))
}

fn sub_period(spec: &str) -> Result<String, String> {
    let mut days = None;
    let mut hours = None;
    let mut rest = spec.trim();
    while !rest.is_empty() {
        let (scale, after) = rest
            .split_once('{')
            .ok_or_else(|| format!("{spec:?}: expected SCALE {{VALUES}}"))?;
        let (values, tail) = after
            .split_once('}')
            .ok_or_else(|| format!("{spec:?}: an unclosed {{"))?;
        match scale.trim() {
            "wd" | "wday" => days = Some(week_days(values)?),
            "hr" | "hour" => hours = Some(hour_range(values)?),
            other => {
                return Err(format!(
                    "{spec:?}: the scale {other:?} is not converted (only wd and hr)"
                ));
            }
        }
        rest = tail.trim();
    }
    Ok(match (days, hours) {
        (Some(d), Some(h)) => format!("{d} {h}"),
        (Some(d), None) => d,
        (None, Some(h)) => h,
        (None, None) => return Err(format!("{spec:?}: empty")),
    })
}

/// Time::Period's week days: names (only their first two letters count) or 1 (Sunday) to 7.
fn week_days(values: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let day = |d: &str| -> Result<&str, String> {
        let l = d.to_ascii_lowercase();
        if let Ok(i) = l.parse::<usize>() {
            return NAMES
                .get(i.wrapping_sub(1))
                .copied()
                .ok_or_else(|| format!("{d:?} is not a week day (1-7)"));
        }
        NAMES
            .iter()
            .find(|n| l.len() >= 2 && n.to_ascii_lowercase().starts_with(&l[..2]))
            .copied()
            .ok_or_else(|| format!("{d:?} is not a week day"))
    };
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        out.push(match item.split_once('-') {
            Some((a, b)) => format!("{}-{}", day(a)?, day(b)?),
            None => day(item)?.to_string(),
        });
    }
    Ok(out.join(","))
}

/// Time::Period's hour range (`7am-10pm`, `9-17`: through the last hour) as `HH:MM-HH:MM`.
fn hour_range(values: &str) -> Result<String, String> {
    let hour = |h: &str| -> Result<u32, String> {
        let l = h.to_ascii_lowercase();
        let bad = || format!("{h:?} is not an hour (0-23, 12am, 1am-11am, 12noon, 12pm, 1pm-11pm)");
        if l == "12noon" {
            return Ok(12);
        }
        let (num, pm) = if let Some(n) = l.strip_suffix("am") {
            (n, Some(false))
        } else if let Some(n) = l.strip_suffix("pm") {
            (n, Some(true))
        } else {
            (l.as_str(), None)
        };
        let n: u32 = num.parse().map_err(|_| bad())?;
        match pm {
            None if n <= 23 => Ok(n),
            Some(false) if (1..=12).contains(&n) => Ok(n % 12),
            Some(true) if (1..=12).contains(&n) => Ok(n % 12 + 12),
            _ => Err(bad()),
        }
    };
    let items: Vec<&str> = values.split_whitespace().collect();
    let [item] = items[..] else {
        return Err(format!(
            "{values:?}: one hour range per period is converted"
        ));
    };
    let (a, b) = match item.split_once('-') {
        Some((a, b)) => (hour(a)?, hour(b)?),
        None => {
            let h = hour(item)?;
            (h, h)
        }
    };
    // "9am-4pm" is 9am through 4pm: up to 17:00.
    Ok(format!("{a:02}:00-{:02}:00", b + 1))
}

/// A mon `monitor` line as a probe table.
fn probe(line: &str, mondir: &str, n: usize, warn: &mut dyn FnMut(usize, &str, String)) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let name = words.first().copied().unwrap_or("");
    let args = &words[words.len().min(1)..];
    let opt = |flag: &str| -> Option<&str> {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .copied()
    };
    let only = |allowed: &[&str]| -> bool {
        let mut i = 0;
        while i < args.len() {
            if allowed.contains(&args[i]) && i + 1 < args.len() {
                i += 2;
            } else {
                return false;
            }
        }
        true
    };
    let external = || {
        let q = toml::Value::String(format!("{mondir}/{line}")).to_string();
        format!("{{ type = \"external\", command = {q} }}")
    };
    match name {
        "fping.monitor" | "ping.monitor" if args.is_empty() => "{ type = \"ping\" }".to_string(),
        "tcp.monitor" if only(&["-p"]) => match opt("-p").and_then(|p| p.parse::<u16>().ok()) {
            Some(p) => format!("{{ type = \"tcp\", port = {p} }}"),
            None => external(),
        },
        "http.monitor" if only(&["-p", "-u"]) => {
            let mut t = "{ type = \"http\"".to_string();
            if let Some(p) = opt("-p").and_then(|p| p.parse::<u16>().ok()) {
                let _ = write!(t, ", port = {p}");
            }
            if let Some(u) = opt("-u") {
                let _ = write!(t, ", path = {}", toml::Value::String(u.to_string()));
            }
            t + " }"
        }
        "smtp.monitor" if only(&["-t"]) => match opt("-t").and_then(|t| t.parse::<u64>().ok()) {
            Some(s) => format!("{{ type = \"smtp\", timeout = \"{s}s\" }}"),
            None => "{ type = \"smtp\" }".to_string(),
        },
        _ => {
            if name.is_empty() {
                warn(n, "monitor", "empty".into());
            }
            external()
        }
    }
}

#[cfg(test)]
mod tests;
