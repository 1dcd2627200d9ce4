//! The alert rules of the `monitor` daemon, as mon applies them: a pure state machine driven with
//! `now` (no clock, no I/O). The daemon feeds it probe results, acknowledgements and enable/disable
//! requests and carries out the alerts it returns.
//!
//! Per service (mon's "watch group / service"):
//! - **State**: untested until its first result, then ok or failing. A failure episode starts at
//!   the first failed result after ok/untested and ends at the next success.
//! - **`alert_after`**: no failure alert before N consecutive failures (`Count`) or before the
//!   episode has lasted a duration (`Time`). mon's `alertafter N` / `alertafter t`.
//! - **`alert_every`**: after an alert, no repeat for that long unless the summary changed (mon's
//!   `alertevery t`; with `strict`, a changed summary does not count). Without it, every failed
//!   result past `alert_after` alerts again, as mon does.
//! - **`num_alerts`**: at most N failure alerts per episode.
//! - **`period`**: alerts only inside the period (local weekday and time of day).
//! - **`depends`**: no alerts while a service it depends on is failing (mon's `depend`, alert
//!   suppression).
//! - **Acknowledged** failures alert no more until the service recovers (the ack ends with the
//!   episode). A **disabled** service alerts not at all.
//! - **`upalert`** on recovery, only after a failure alert was sent in the episode (mon without
//!   `no_comp_alerts`); **`startupalert`** once when the daemon starts.
//!
//! Every suppressed alert is returned too, with the reason, for the log and `monitor status`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A service's name as `group/service` (mon's `watch group` + `service name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId {
    pub group: String,
    pub service: String,
}

impl ServiceId {
    pub fn new(group: &str, service: &str) -> ServiceId {
        ServiceId {
            group: group.to_string(),
            service: service.to_string(),
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.service)
    }
}

/// When the first failure alert of an episode may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAfter {
    /// After this many consecutive failed results (1: at the first).
    Count(u32),
    /// Once the episode has lasted this long (its first failure counts from its own time).
    Time(Duration),
}

/// Local time as the period needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    /// Minutes since local midnight, 0..1440.
    pub minute: u16,
}

/// When alerts may be sent: one or more `DAYS TIME` specs, e.g. `Mon-Fri 07:00-22:00` or
/// `Mon-Fri 07:00-22:00; Sat,Sun 09:00-12:00`. DAYS is a comma list of days or ranges (`Mon`,
/// `Fri-Mon` wraps), TIME is `HH:MM-HH:MM` (end excluded; `22:00-06:00` wraps past midnight);
/// either may be left out (every day, all day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    specs: Vec<PeriodSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PeriodSpec {
    days: [bool; 7],
    /// Minutes since midnight: from (included), to (excluded). `None`: all day.
    hours: Option<(u16, u16)>,
}

/// Why a period does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {text:?}: {why} (write e.g. \"Mon-Fri 07:00-22:00\", several joined with \";\")")]
pub struct PeriodError {
    pub text: String,
    pub why: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Period {
    /// Parses the period syntax described on [`Period`].
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let err = |why: String| PeriodError {
            text: text.to_string(),
            why,
        };
        let mut specs = Vec::new();
        for part in text.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            if words.is_empty() {
                return Err(err("an empty spec".into()));
            }
            if words.len() > 2 {
                return Err(err(format!(
                    "{:?} has more than days and a time",
                    part.trim()
                )));
            }
            let mut spec = PeriodSpec {
                days: [true; 7],
                hours: None,
            };
            let mut seen_days = false;
            for w in words {
                if w.starts_with(|c: char| c.is_ascii_digit()) {
                    if spec.hours.is_some() {
                        return Err(err(format!("two times in {:?}", part.trim())));
                    }
                    spec.hours = Some(parse_hours(w).map_err(err)?);
                } else {
                    if seen_days || spec.hours.is_some() {
                        return Err(err(format!(
                            "the days come first, once, in {:?}",
                            part.trim()
                        )));
                    }
                    spec.days = parse_days(w).map_err(err)?;
                    seen_days = true;
                }
            }
            specs.push(spec);
        }
        Ok(Period { specs })
    }

    /// Whether `t` is inside the period.
    pub fn contains(&self, t: LocalTime) -> bool {
        self.specs.iter().any(|s| s.contains(t))
    }
}

impl PeriodSpec {
    fn contains(&self, t: LocalTime) -> bool {
        let day = usize::from(t.weekday % 7);
        match self.hours {
            None => self.days[day],
            Some((from, to)) if from < to => self.days[day] && (from..to).contains(&t.minute),
            // Wraps past midnight: the part after midnight belongs to the day it started.
            Some((from, to)) => {
                (self.days[day] && t.minute >= from) || (self.days[(day + 6) % 7] && t.minute < to)
            }
        }
    }
}

fn parse_days(w: &str) -> Result<[bool; 7], String> {
    let day = |s: &str| -> Result<usize, String> {
        let l = s.to_ascii_lowercase();
        DAYS.iter()
            .position(|d| l == *d)
            .or_else(|| DAY_NAMES.iter().position(|d| l == *d))
            .ok_or_else(|| format!("{s:?} is not a day (Mon Tue Wed Thu Fri Sat Sun)"))
    };
    let mut days = [false; 7];
    for item in w.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_hours(w: &str) -> Result<(u16, u16), String> {
    let (a, b) = w
        .split_once('-')
        .ok_or_else(|| format!("{w:?} is not a time range HH:MM-HH:MM"))?;
    let minute = |s: &str| -> Result<u16, String> {
        let bad = || format!("{s:?} is not a time HH:MM (00:00 to 24:00)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) || s.len() > 5 {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (from, to) = (minute(a)?, minute(b)?);
    if from == to {
        return Err(format!("{w:?} is an empty time range"));
    }
    Ok((from, to))
}

/// The rules of one service (from its config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub alert_after: AlertAfter,
    pub alert_every: Option<Duration>,
    /// mon's `alertevery t strict`: a changed summary does not allow an early repeat.
    pub alert_every_strict: bool,
    pub num_alerts: Option<u32>,
    pub period: Option<Period>,
    pub depends: Vec<ServiceId>,
    /// The service has up-alert commands.
    pub upalert: bool,
    /// The service has startup-alert commands.
    pub startupalert: bool,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            alert_after: AlertAfter::Count(1),
            alert_every: None,
            alert_every_strict: false,
            num_alerts: None,
            period: None,
            depends: Vec::new(),
            upalert: false,
            startupalert: false,
        }
    }
}

/// A service's operational state (mon's opstatus, the part that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    Untested,
    Ok,
    Fail,
}

/// Which alert (mon's `MON_ALERTTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Failure,
    Up,
    Startup,
}

impl AlertKind {
    /// mon's `MON_ALERTTYPE` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "failure",
            AlertKind::Up => "up",
            AlertKind::Startup => "startup",
        }
    }
}

/// Why an alert that was due did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suppressed {
    Disabled,
    Acknowledged,
    OutsidePeriod,
    /// A service it depends on is failing.
    Dependency(ServiceId),
    /// `num_alerts` reached in this episode.
    NumAlerts(u32),
    /// `alert_every` not over since the last alert (and the summary unchanged, or strict).
    AlertEvery,
    /// `alert_after` not reached yet.
    AlertAfter,
}

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suppressed::Disabled => write!(f, "alerts disabled"),
            Suppressed::Acknowledged => write!(f, "failure acknowledged"),
            Suppressed::OutsidePeriod => write!(f, "outside the alert period"),
            Suppressed::Dependency(d) => write!(f, "{d} (a dependency) is failing"),
            Suppressed::NumAlerts(n) => write!(f, "{n} alerts sent already (num_alerts)"),
            Suppressed::AlertEvery => write!(f, "repeat not due yet (alert_every)"),
            Suppressed::AlertAfter => write!(f, "not failing long enough yet (alert_after)"),
        }
    }
}

/// What the engine decided on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the service's alerts of `kind` with this summary and detail.
    Alert {
        id: ServiceId,
        kind: AlertKind,
        summary: String,
        detail: String,
    },
    /// An alert was due and was not sent.
    Suppressed {
        id: ServiceId,
        kind: AlertKind,
        why: Suppressed,
    },
    /// The service changed state (for `--events json`, the log and the state file).
    Changed {
        id: ServiceId,
        from: OpStatus,
        to: OpStatus,
    },
}

/// One service's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub status: OpStatus,
    /// Since when it is failing (the first failure of the episode).
    pub failing_since: Option<Duration>,
    pub consecutive_failures: u32,
    /// Failure alerts sent in this episode.
    pub alerts_sent: u32,
    /// The last failure alert: when, and its summary.
    pub last_alert: Option<(Duration, String)>,
    pub acked: Option<String>,
    pub disabled: bool,
    pub last_summary: String,
    pub last_detail: String,
}

impl ServiceState {
    fn new() -> ServiceState {
        ServiceState {
            status: OpStatus::Untested,
            failing_since: None,
            consecutive_failures: 0,
            alerts_sent: 0,
            last_alert: None,
            acked: None,
            disabled: false,
            last_summary: String::new(),
            last_detail: String::new(),
        }
    }
}

/// Why an ack or enable/disable was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no service {0}")]
    NoService(String),
    #[error("{0} is not failing: nothing to acknowledge")]
    NotFailing(ServiceId),
}

/// The rules engine for every service.
#[derive(Debug, Clone)]
pub struct Engine {
    services: BTreeMap<ServiceId, (Rules, ServiceState)>,
}

impl Engine {
    /// An engine for these services, all untested.
    pub fn new(services: impl IntoIterator<Item = (ServiceId, Rules)>) -> Engine {
        Engine {
            services: services
                .into_iter()
                .map(|(id, r)| (id, (r, ServiceState::new())))
                .collect(),
        }
    }

    /// A service's state.
    pub fn state(&self, id: &ServiceId) -> Option<&ServiceState> {
        self.services.get(id).map(|(_, s)| s)
    }

    pub(crate) fn state_mut(&mut self, id: &ServiceId) -> Option<&mut ServiceState> {
        self.services.get_mut(id).map(|(_, s)| s)
    }

    /// Every service and its state, by name.
    pub fn states(&self) -> impl Iterator<Item = (&ServiceId, &ServiceState)> {
        self.services.iter().map(|(id, (_, s))| (id, s))
    }

    /// The daemon started: the startup alerts (each subject to period and disable only).
    pub fn startup(&self, local: LocalTime) -> Vec<Decision> {
        let mut out = Vec::new();
        for (id, (rules, state)) in &self.services {
            if !rules.startupalert {
                continue;
            }
            out.push(decision(
                id,
                AlertKind::Startup,
                quiet(rules, state, local),
                "",
                "",
            ));
        }
        out
    }

    /// A probe result for `id` at `now` (monotonic, since any fixed start) and local time `local`.
    pub fn result(
        &mut self,
        id: &ServiceId,
        now: Duration,
        local: LocalTime,
        ok: bool,
        summary: &str,
        detail: &str,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        let Some((rules, state)) = self.services.get(id) else {
            return out;
        };
        let from = state.status;
        // Dependencies are judged before this result changes anything.
        let failing_dep = rules
            .depends
            .iter()
            .find(|d| self.state(d).is_some_and(|s| s.status == OpStatus::Fail))
            .cloned();
        let rules = rules.clone();
        let Some((_, state)) = self.services.get_mut(id) else {
            return out;
        };
        state.last_summary = summary.to_string();
        state.last_detail = detail.to_string();
        if ok {
            state.status = OpStatus::Ok;
            if from == OpStatus::Fail {
                out.push(Decision::Changed {
                    id: id.clone(),
                    from,
                    to: OpStatus::Ok,
                });
                if rules.upalert && state.alerts_sent > 0 {
                    let why = quiet(&rules, state, local);
                    out.push(decision(id, AlertKind::Up, why, summary, detail));
                }
            } else if from == OpStatus::Untested {
                out.push(Decision::Changed {
                    id: id.clone(),
                    from,
                    to: OpStatus::Ok,
                });
            }
            state.failing_since = None;
            state.consecutive_failures = 0;
            state.alerts_sent = 0;
            state.last_alert = None;
            state.acked = None;
            return out;
        }

        if from != OpStatus::Fail {
            state.status = OpStatus::Fail;
            state.failing_since = Some(now);
            state.consecutive_failures = 0;
            state.alerts_sent = 0;
            state.last_alert = None;
            out.push(Decision::Changed {
                id: id.clone(),
                from,
                to: OpStatus::Fail,
            });
        }
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let since = state.failing_since.unwrap_or(now);
        let why = if state.disabled {
            Some(Suppressed::Disabled)
        } else if match rules.alert_after {
            AlertAfter::Count(n) => state.consecutive_failures < n.max(1),
            AlertAfter::Time(t) => now.saturating_sub(since) < t,
        } {
            Some(Suppressed::AlertAfter)
        } else if state.acked.is_some() {
            Some(Suppressed::Acknowledged)
        } else if let Some(d) = failing_dep {
            Some(Suppressed::Dependency(d))
        } else if rules.num_alerts.is_some_and(|n| state.alerts_sent >= n) {
            Some(Suppressed::NumAlerts(state.alerts_sent))
        } else if let (Some(every), Some((at, last))) = (rules.alert_every, &state.last_alert)
            && now.saturating_sub(*at) < every
            && (rules.alert_every_strict || last == summary)
        {
            Some(Suppressed::AlertEvery)
        } else if rules.period.as_ref().is_some_and(|p| !p.contains(local)) {
            Some(Suppressed::OutsidePeriod)
        } else {
            None
        };
        if why.is_none() {
            state.alerts_sent += 1;
            state.last_alert = Some((now, summary.to_string()));
        }
        // Not failing long enough is the normal start of an episode, not worth a line.
        if why != Some(Suppressed::AlertAfter) {
            out.push(decision(id, AlertKind::Failure, why, summary, detail));
        }
        out
    }

    /// Acknowledges the current failure of `id`: no more failure alerts until it recovers.
    pub fn ack(&mut self, id: &ServiceId, comment: &str) -> Result<(), RequestError> {
        let (_, state) = self
            .services
            .get_mut(id)
            .ok_or_else(|| RequestError::NoService(id.to_string()))?;
        if state.status != OpStatus::Fail {
            return Err(RequestError::NotFailing(id.clone()));
        }
        state.acked = Some(comment.to_string());
        Ok(())
    }

    /// Disables (`true`) or enables the alerts of every service of `group`, or of one service.
    /// Returns how many services it touched.
    pub fn set_disabled(
        &mut self,
        group: &str,
        service: Option<&str>,
        disabled: bool,
    ) -> Result<usize, RequestError> {
        let mut n = 0;
        for (id, (_, state)) in &mut self.services {
            if id.group == group && service.is_none_or(|s| s == id.service) {
                state.disabled = disabled;
                n += 1;
            }
        }
        if n == 0 {
            let name = match service {
                Some(s) => format!("{group}/{s}"),
                None => group.to_string(),
            };
            return Err(RequestError::NoService(name));
        }
        Ok(n)
    }
}

/// Why an up or startup alert is not sent now: the service is disabled, or outside its period.
fn quiet(rules: &Rules, state: &ServiceState, local: LocalTime) -> Option<Suppressed> {
    if state.disabled {
        Some(Suppressed::Disabled)
    } else if rules.period.as_ref().is_some_and(|p| !p.contains(local)) {
        Some(Suppressed::OutsidePeriod)
    } else {
        None
    }
}

fn decision(
    id: &ServiceId,
    kind: AlertKind,
    why: Option<Suppressed>,
    summary: &str,
    detail: &str,
) -> Decision {
    match why {
        Some(why) => Decision::Suppressed {
            id: id.clone(),
            kind,
            why,
        },
        None => Decision::Alert {
            id: id.clone(),
            kind,
            summary: summary.to_string(),
            detail: detail.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
