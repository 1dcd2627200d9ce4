//! `[check]`: ldir's own keys (`type`, `interval`, `rise`, `fall`) and the probe kind's fields,
//! merged from `ldir.toml`'s defaults, the virtual's table and a real's overrides, then read by
//! the kind's own schema (`common::probe::Spec`) with every error placed at the key that holds it.

use std::time::Duration;

use common::probe::Spec;
use toml::Spanned;

use super::schema::CheckTable;
use super::{Problems, Src};

/// Keys `ldir.toml`'s `[check]` may set for every virtual.
pub const DEFAULTABLE: &[&str] = &["interval", "timeout", "rise", "fall"];
/// Keys that are ldir's, not the probe kind's.
const OWN: &[&str] = &["type", "interval", "rise", "fall"];
/// ldir's own check types besides the probe kinds (`common::probe::KINDS`).
const OWN_TYPES: &[&str] = &["on", "off"];

fn is_type(t: &str) -> bool {
    OWN_TYPES.contains(&t) || common::probe::KINDS.contains(&t)
}

fn types() -> impl Iterator<Item = &'static str> {
    OWN_TYPES.iter().chain(common::probe::KINDS).copied()
}
/// Without a `[check]`: a TCP connection to the real's port (ldirectord's `connect`).
const DEFAULT_TYPE: &str = "tcp";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How a virtual's reals are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// Always up, never probed (ldirectord `checktype = on`).
    On,
    /// Never added (ldirectord `checktype = off`).
    Off,
    /// Up or down by probe results.
    Probe,
}

type Layer<'a> = (&'a Spanned<CheckTable>, &'a Src);

fn field_name(layer: &str, key: &str) -> String {
    format!("{layer}check.{key}")
}

/// The virtual-wide settings: mode, interval, rise, fall.
pub fn settings(
    global: Option<(&CheckTable, &Src)>,
    own: Option<Layer>,
    p: &mut Problems,
) -> (CheckMode, Duration, u32, u32) {
    let lookup = |key: &str| -> Option<(&Spanned<toml::Value>, &Src)> {
        own.and_then(|(t, s)| t.get_ref().get(key).map(|v| (v, s)))
            .or_else(|| global.and_then(|(t, s)| t.get(key).map(|v| (v, s))))
    };
    let mode = match own.and_then(|(t, s)| t.get_ref().get("type").map(|v| (v, s))) {
        Some((v, src)) => match v.get_ref().as_str() {
            Some("on") => CheckMode::On,
            Some("off") => CheckMode::Off,
            Some(t) if is_type(t) => CheckMode::Probe,
            Some(t) => {
                let hint = common::config::did_you_mean(t, types())
                    .map(|k| format!("did you mean {k:?}? "))
                    .unwrap_or_default();
                p.at(
                    src,
                    Some(v.span()),
                    "check.type",
                    format!(
                        "{t:?} is not a check type: {hint}use one of {}",
                        types().collect::<Vec<_>>().join(", ")
                    ),
                );
                CheckMode::Probe
            }
            None => {
                p.at(
                    src,
                    Some(v.span()),
                    "check.type",
                    "must be a string such as \"http\"",
                );
                CheckMode::Probe
            }
        },
        None => CheckMode::Probe,
    };
    let interval = match lookup("interval") {
        None => DEFAULT_INTERVAL,
        Some((v, src)) => match v
            .get_ref()
            .as_str()
            .map(str::parse::<common::config::Duration>)
        {
            Some(Ok(d)) if !d.as_std().is_zero() => d.as_std(),
            Some(Ok(_)) => {
                p.at(
                    src,
                    Some(v.span()),
                    "check.interval",
                    "must be more than 0s",
                );
                DEFAULT_INTERVAL
            }
            Some(Err(e)) => {
                p.at(src, Some(v.span()), "check.interval", e);
                DEFAULT_INTERVAL
            }
            None => {
                p.at(
                    src,
                    Some(v.span()),
                    "check.interval",
                    "must be a duration string such as \"2s\"",
                );
                DEFAULT_INTERVAL
            }
        },
    };
    let mut count = |key: &str| match lookup(key) {
        None => 1,
        Some((v, src)) => match v.get_ref().as_integer() {
            Some(n) if (1..=1000).contains(&n) => n as u32,
            _ => {
                p.at(
                    src,
                    Some(v.span()),
                    &format!("check.{key}"),
                    format!("must be a whole number 1..=1000, got {}", v.get_ref()),
                );
                1
            }
        },
    };
    let rise = count("rise");
    let fall = count("fall");
    (mode, interval, rise, fall)
}

/// What [`compile`] makes of a real's check: how it is judged, and the probe when it is probed;
/// `None` when the check has errors.
pub type Compiled = Option<(CheckMode, Option<Spec>)>;

/// The probe spec for one `[[real]]` entry (`None` inside for `on`/`off`), or `None` after
/// reporting why there is none. `real` is the real's override table and its index.
pub fn compile(
    global: Option<(&CheckTable, &Src)>,
    own: Option<Layer>,
    real: Option<(&Spanned<CheckTable>, &Src, usize)>,
    real_port: u16,
    virt: (&Src, std::ops::Range<usize>),
    p: &mut Problems,
) -> Compiled {
    // Every entry with where it was written; later layers win.
    let mut merged: Vec<(String, &Spanned<toml::Value>, &Src, String)> = Vec::new();
    let mut put = |key: &str, value, src, layer: String| {
        merged.retain(|(k, ..)| k != key);
        merged.push((key.to_string(), value, src, layer));
    };
    if let Some((t, s)) = global {
        for (k, v) in &t.entries {
            if k == "timeout" {
                put(k, v, s, String::new());
            }
        }
    }
    if let Some((t, s)) = own {
        for (k, v) in &t.get_ref().entries {
            put(k, v, s, String::new());
        }
    }
    let mut ok = true;
    if let Some((t, s, i)) = real {
        for (k, v) in &t.get_ref().entries {
            if OWN.contains(&k.as_str()) {
                p.at(
                    s,
                    Some(v.span()),
                    &format!("real[{i}].check.{k}"),
                    "set per virtual in its [check], not per real",
                );
                ok = false;
                continue;
            }
            put(k, v, s, format!("real[{i}]."));
        }
    }
    if let Some((_, v, s, layer)) = merged.iter().find(|(k, ..)| k == "kind") {
        p.at(
            s,
            Some(v.span()),
            &field_name(layer, "kind"),
            "write type = \"...\" for the kind of check",
        );
        return None;
    }
    let kind = match merged.iter().find(|(k, ..)| k == "type") {
        Some((_, v, ..)) => match v.get_ref().as_str() {
            Some(t) if is_type(t) => t.to_string(),
            _ => return None, // reported by `settings`
        },
        None => DEFAULT_TYPE.to_string(),
    };
    if kind == "on" || kind == "off" {
        for (k, v, s, layer) in &merged {
            if !OWN.contains(&k.as_str()) && k != "timeout" {
                p.at(
                    s,
                    Some(v.span()),
                    &field_name(layer, k),
                    format!("type = {kind:?} checks nothing: leave {k} out"),
                );
                ok = false;
            }
        }
        let mode = if kind == "on" {
            CheckMode::On
        } else {
            CheckMode::Off
        };
        return ok.then_some((mode, None));
    }
    if !ok {
        return None;
    }

    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(kind.clone()));
    for (k, v, s, layer) in &merged {
        if k == "record_type" {
            // `type` is ldir's kind of check, so the dns kind's own `type` (the record type) is
            // written `record_type` here.
            if kind == "dns" {
                table.insert("type".into(), v.get_ref().clone());
            } else {
                p.at(
                    s,
                    Some(v.span()),
                    &field_name(layer, k),
                    "only for type = \"dns\" (the DNS record type to ask for)",
                );
                return None;
            }
        } else if !OWN.contains(&k.as_str()) {
            table.insert(k.clone(), v.get_ref().clone());
        }
    }
    if !table.contains_key("port") && real_port != 0 && kind != "ping" {
        table.insert("port".into(), toml::Value::Integer(i64::from(real_port)));
    }
    // Where to place a problem: the key that holds it, else the `type` key, else the table.
    let place = |field: &str, p: &mut Problems, message: String| {
        let mut first = field.split(['.', '[']).next().unwrap_or("").to_string();
        if first.is_empty()
            && let Some(key) = message
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
        {
            first = key.to_string();
        }
        if first.is_empty() {
            // Inside the kind's (internally tagged) fields serde loses the path: the key is the one
            // whose value the message quotes.
            first = merged
                .iter()
                .filter(|(k, ..)| !OWN.contains(&k.as_str()))
                .filter_map(|(k, v, ..)| Some((k, v.get_ref().as_str().filter(|s| !s.is_empty())?)))
                .filter(|(_, s)| {
                    message.contains(&format!("{s:?}")) || message.contains(&format!("`{s}`"))
                })
                .max_by_key(|(_, s)| s.len())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
        }
        let first = if first == "kind" {
            "type"
        } else {
            first.as_str()
        };
        let at = merged
            .iter()
            .find(|(k, ..)| k == first)
            .or_else(|| merged.iter().find(|(k, ..)| k == "type"));
        match (at, own) {
            (Some((_, v, s, layer)), _) => {
                let shown = if first == "type" {
                    "type".to_string()
                } else if field.is_empty() {
                    first.to_string()
                } else {
                    field.to_string()
                };
                p.at(s, Some(v.span()), &field_name(layer, &shown), message)
            }
            (None, Some((t, s))) => p.at(s, Some(t.span()), "check", message),
            // No [check]: the default TCP check; point at the [virtual] table.
            (None, None) => p.at(virt.0, Some(virt.1.clone()), "check", message),
        }
    };
    let spec: Spec = match common::config::from_value(toml::Value::Table(table)) {
        Ok(spec) => spec,
        Err((field, message)) => {
            place(&field, p, message);
            return None;
        }
    };
    let problems = spec.problems();
    if !problems.is_empty() {
        for (field, message) in problems {
            let message = if field == "port" && real_port == 0 {
                format!(
                    "{message}: the reals have no port (a fwmark service), so give [check] port"
                )
            } else {
                message
            };
            place(field, p, message);
        }
        return None;
    }
    Some((CheckMode::Probe, Some(spec)))
}
