//! The control socket's requests and replies (`monitor status`, `list failures`, `ack`,
//! `disable`, `enable`), and how the command line shows them. The socket itself, its bounds and
//! the caller check are `common::control`'s; the daemon answers in [`crate::daemon`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::state::Status;

/// A request on the control socket: `{"cmd":"status"}`, `{"cmd":"ack","service":"web/http",
/// "comment":"..."}`, `{"cmd":"disable","target":"web"}`...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Every service's state.
    Status,
    /// The failing services only.
    Failures,
    /// Acknowledge a failing service: no more alerts until it recovers.
    Ack { service: String, comment: String },
    /// No alerts for a group or one service (`group` or `group/service`).
    Disable { target: String },
    /// Alerts again.
    Enable { target: String },
}

impl Request {
    /// Whether a command changes state (needs root or `socket_group`); unknown commands do.
    pub fn changes_state(cmd: &str) -> bool {
        !matches!(cmd, "status" | "failures")
    }
}

/// The reply to `status` and `failures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// `time(2)` when the report was made.
    pub time: u64,
    pub services: Vec<ServiceStatus>,
}

/// One service in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `group/service`.
    pub service: String,
    pub status: Status,
    /// `time(2)` of the first failure of the current episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<u64>,
    pub consecutive_failures: u32,
    /// Failure alerts sent in the current episode.
    pub alerts_sent: u32,
    /// `time(2)` of the last failure alert of the episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_alert: Option<u64>,
    /// The failing hosts (the summary mon's monitors print).
    pub summary: String,
    /// One `HOST: reason` line per failing host.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<String>,
    pub disabled: bool,
    pub hosts: Vec<String>,
    /// The probe's kind.
    pub probe: String,
    /// The interval in force (the failure interval while failing), in milliseconds.
    pub interval_ms: u64,
}

/// A duration in seconds as `1h 2m`, `3m 4s`, `5s`.
pub fn ago(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Untested => "untested",
        Status::Ok => "ok",
        Status::Fail => "FAIL",
    }
}

/// What is said of a failing service after its name: since when, counts, ack.
fn failing_note(r: &StatusReport, s: &ServiceStatus) -> String {
    let mut out = String::new();
    if let Some(since) = s.failing_since {
        let _ = write!(out, "failing for {}, ", ago(r.time.saturating_sub(since)));
    }
    let _ = write!(
        out,
        "{} failure{}, {} alert{}",
        s.consecutive_failures,
        if s.consecutive_failures == 1 { "" } else { "s" },
        s.alerts_sent,
        if s.alerts_sent == 1 { "" } else { "s" }
    );
    if let Some(a) = &s.acked {
        let _ = write!(out, ", acknowledged: {a}");
    }
    out
}

/// `monitor status`: one line per service, its failing hosts' reasons below it.
pub fn status_text(r: &StatusReport) -> String {
    let width = r
        .services
        .iter()
        .map(|s| s.service.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for s in &r.services {
        let mut line = format!("{:<width$}  {:<8}", s.service, status_word(s.status));
        if s.status == Status::Fail {
            let _ = write!(line, "  {}  ({})", s.summary, failing_note(r, s));
        }
        if s.disabled {
            line.push_str("  [alerts disabled]");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if s.status == Status::Fail {
            for line in s.detail.lines() {
                let _ = writeln!(out, "{:<width$}    {line}", "");
            }
        }
    }
    out
}

/// `monitor list failures`: one line per failing service, `group/service  hosts  (note)`, for
/// the shell (nothing when nothing fails).
pub fn failures_text(r: &StatusReport) -> String {
    let mut out = String::new();
    for s in r.services.iter().filter(|s| s.status == Status::Fail) {
        let _ = writeln!(
            out,
            "{}  {}  ({})",
            s.service,
            s.summary,
            failing_note(r, s)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, status: Status) -> ServiceStatus {
        ServiceStatus {
            service: name.into(),
            status,
            failing_since: None,
            consecutive_failures: 0,
            alerts_sent: 0,
            last_alert: None,
            summary: String::new(),
            detail: String::new(),
            acked: None,
            disabled: false,
            hosts: vec!["192.0.2.13".into()],
            probe: "tcp".into(),
            interval_ms: 10_000,
        }
    }

    #[test]
    fn requests_on_the_wire() {
        let r: Request =
            serde_json::from_str(r#"{"cmd":"ack","service":"web/http","comment":"on it"}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::Ack {
                service: "web/http".into(),
                comment: "on it".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Disable {
                target: "web".into()
            })
            .unwrap(),
            r#"{"cmd":"disable","target":"web"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"ack","service":"a/b"}"#).is_err());
        assert!(!Request::changes_state("status"));
        assert!(!Request::changes_state("failures"));
        assert!(Request::changes_state("ack"));
        assert!(Request::changes_state("anything-new"));
    }

    #[test]
    fn status_and_failures_as_text() {
        let mut http = svc("web/http", Status::Fail);
        http.failing_since = Some(1000);
        http.consecutive_failures = 3;
        http.alerts_sent = 1;
        http.summary = "192.0.2.13".into();
        http.detail = "192.0.2.13: connection refused\n".into();
        http.acked = Some("on it".into());
        let mut ping = svc("web/ping", Status::Ok);
        ping.disabled = true;
        let r = StatusReport {
            time: 1090,
            services: vec![http, ping, svc("db/mysql", Status::Untested)],
        };
        assert_eq!(
            status_text(&r),
            "web/http  FAIL      192.0.2.13  (failing for 1m 30s, 3 failures, 1 alert, acknowledged: on it)\n\
             \x20           192.0.2.13: connection refused\n\
             web/ping  ok        [alerts disabled]\n\
             db/mysql  untested\n"
        );
        assert_eq!(
            failures_text(&r),
            "web/http  192.0.2.13  (failing for 1m 30s, 3 failures, 1 alert, acknowledged: on it)\n"
        );
        assert_eq!(ago(7322), "2h 2m");
        assert_eq!(ago(5), "5s");
    }
}
