use super::*;
use crate::rules::Suppressed;

const TOML: &str = r#"
state_file = "/var/lib/monitor-test/state.json"
[hostgroup]
web = ["192.0.2.13", "192.0.2.14"]
db = ["192.0.2.20"]

[[watch]]
group = "web"
[[watch.service]]
name = "http"
probe = { type = "tcp", port = 80 }
interval = "10s"
failure_interval = "2s"
alert_after = 2
depends = ["db/tcp"]
description = "the web farm"
alert = ["rec.alert one two", "/bin/true"]
upalert = ["rec.alert up"]

[[watch]]
group = "db"
[[watch.service]]
name = "tcp"
probe = { type = "tcp", port = 3306 }
alert = ["rec.alert db"]
"#;

fn monitor() -> Monitor {
    Monitor::new(Arc::new(config::parse("test.toml", TOML).unwrap()))
}

fn clock(secs: u64) -> Clock {
    Clock {
        now: Duration::from_secs(secs),
        wall: 1_700_000_000 + secs,
        wall_exact: Duration::from_secs(1_700_000_000 + secs),
        local: LocalTime {
            weekday: 2,
            minute: 720,
        },
    }
}

fn up() -> Outcome {
    Outcome {
        up: true,
        latency: Duration::from_millis(1),
        reason: "connected".into(),
    }
}

fn down(why: &str) -> Outcome {
    Outcome {
        up: false,
        latency: Duration::from_millis(1),
        reason: why.into(),
    }
}

#[test]
fn a_round_is_every_host_once_and_a_report_seen_twice_counts_once() {
    let mut m = monitor();
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Host 0 reports twice before host 1: no round until host 1 does, then its latest counts.
    assert_eq!(m.report(0, 0, &down("refused"), at(1), &clock(1)), None);
    assert_eq!(m.report(0, 0, &up(), at(2), &clock(1)), None);
    let r = m.report(0, 1, &up(), at(3), &clock(1)).unwrap();
    assert!(r.result.ok);
    assert_eq!(
        r.decisions,
        vec![Decision::Changed {
            id: ServiceId::new("web", "http"),
            from: OpStatus::Untested,
            to: OpStatus::Ok
        }]
    );
    // The same report through the failure-interval watch: not counted again.
    assert_eq!(m.report(0, 1, &up(), at(3), &clock(1)), None);
    assert_eq!(m.report(0, 0, &down("refused"), at(4), &clock(2)), None);
    assert_eq!(m.report(0, 1, &down("refused"), at(3), &clock(2)), None);
    let r = m
        .report(0, 1, &down("timeout after 5s"), at(5), &clock(2))
        .unwrap();
    assert_eq!(r.result.summary, "192.0.2.13 192.0.2.14");
    assert_eq!(
        r.result.detail,
        "192.0.2.13: refused\n192.0.2.14: timeout after 5s\n"
    );
    assert!(m.failing(0));
    // alert_after = 2: the first failed round does not alert.
    assert_eq!(r.decisions.len(), 1, "{:?}", r.decisions);
    m.report(0, 0, &down("refused"), at(6), &clock(4));
    let r = m.report(0, 1, &down("refused"), at(7), &clock(4)).unwrap();
    assert!(
        matches!(
            &r.decisions[..],
            [Decision::Alert {
                kind: AlertKind::Failure,
                ..
            }]
        ),
        "{:?}",
        r.decisions
    );
}

#[test]
fn a_failing_dependency_suppresses_and_the_status_shows_the_failure_interval() {
    let mut m = monitor();
    let t0 = Instant::now();
    let r = m.report(1, 0, &down("refused"), t0, &clock(1)).unwrap();
    assert!(matches!(&r.decisions[1], Decision::Alert { .. }));
    let mut rounds = Vec::new();
    for (i, ms) in [(0usize, 1u64), (1, 2), (0, 3), (1, 4)] {
        let at = t0 + Duration::from_millis(ms);
        rounds.extend(m.report(0, i, &down("refused"), at, &clock(2)));
    }
    assert_eq!(rounds.len(), 2);
    // The second failed round reaches alert_after = 2, and db/tcp fails.
    assert_eq!(
        rounds[1].decisions,
        vec![Decision::Suppressed {
            id: ServiceId::new("web", "http"),
            kind: AlertKind::Failure,
            why: Suppressed::Dependency(ServiceId::new("db", "tcp"))
        }]
    );
    let s = m.status(&clock(10), false);
    assert_eq!(s.services[0].service, "web/http");
    assert_eq!(s.services[0].interval_ms, 2000);
    assert_eq!(s.services[0].consecutive_failures, 2);
    assert_eq!(s.services[0].alerts_sent, 0);
    assert_eq!(s.services[0].failing_since, Some(1_700_000_002));
    assert_eq!(s.services[1].interval_ms, 60_000);
    assert_eq!(s.services[1].alerts_sent, 1);
    let f = m.status(&clock(10), true);
    assert_eq!(f.services.len(), 2);
}

#[test]
fn alert_calls_carry_mons_arguments_and_environment() {
    let mut m = monitor();
    let t0 = Instant::now();
    m.report(0, 0, &up(), t0, &clock(1));
    m.report(0, 1, &up(), t0, &clock(1));
    m.report(
        0,
        0,
        &down("refused"),
        t0 + Duration::from_millis(1),
        &clock(5),
    );
    m.report(0, 1, &up(), t0 + Duration::from_millis(1), &clock(5));
    let id = ServiceId::new("web", "http");
    let invs = m.invocations(
        &id,
        AlertKind::Failure,
        "192.0.2.13",
        "192.0.2.13: refused\n",
        &clock(7),
    );
    assert_eq!(invs.len(), 2);
    assert_eq!(
        invs[0].argv,
        [
            "rec.alert",
            "-s",
            "http",
            "-g",
            "web",
            "-h",
            "192.0.2.13 192.0.2.14",
            "-t",
            "1700000007",
            "one",
            "two"
        ]
    );
    assert_eq!(invs[1].argv[0], "/bin/true");
    let env: HashMap<_, _> = invs[0].env.iter().cloned().collect();
    assert_eq!(env["MON_FIRST_FAILURE"], "1700000005");
    assert_eq!(env["MON_LAST_FAILURE"], "1700000005");
    assert_eq!(env["MON_LAST_SUCCESS"], "1700000001");
    assert_eq!(env["MON_DESCRIPTION"], "the web farm");
    assert_eq!(env["MON_STATEDIR"], "/var/lib/monitor-test");
    assert_eq!(env["MON_OPSTATUS"], "0");
    assert_eq!(env["MON_RETVAL"], "1");
    assert_eq!(invs[0].stdin, b"192.0.2.13\n192.0.2.13: refused\n");
    let up = m.invocations(&id, AlertKind::Up, "", "", &clock(9));
    assert_eq!(up.len(), 1);
    assert!(up[0].argv.contains(&"-u".to_string()));
    assert_eq!(up[0].argv.last().unwrap(), "up");
}

#[test]
fn requests_ack_disable_and_enable() {
    let mut m = monitor();
    let c = clock(1);
    let ack = |service: &str| Request::Ack {
        service: service.into(),
        comment: "on it".into(),
    };
    assert_eq!(
        m.request(&ack("db/tcp"), &c),
        Err("db/tcp is not failing: nothing to acknowledge".into())
    );
    assert_eq!(
        m.request(&ack("db"), &c),
        Err("\"db\": write GROUP/SERVICE".into())
    );
    m.report(1, 0, &down("refused"), Instant::now(), &c);
    assert_eq!(
        m.request(&ack("db/tcp"), &c),
        Ok(json!({"service": "db/tcp"}))
    );
    assert_eq!(
        m.engine()
            .state(&ServiceId::new("db", "tcp"))
            .unwrap()
            .acked,
        Some("on it".into())
    );
    let dis = |t: &str| Request::Disable { target: t.into() };
    assert_eq!(m.request(&dis("web"), &c), Ok(json!({"services": 1})));
    assert_eq!(m.request(&dis("web/http"), &c), Ok(json!({"services": 1})));
    assert_eq!(m.request(&dis("nope"), &c), Err("no service nope".into()));
    assert!(m.status(&c, false).services[0].disabled);
    assert_eq!(
        m.request(
            &Request::Enable {
                target: "web".into()
            },
            &c
        ),
        Ok(json!({"services": 1}))
    );
    assert!(!m.status(&c, false).services[0].disabled);
    assert_eq!(m.summary_line(), "0 ok, 1 failing, 1 untested");
}

#[test]
fn local_time_is_a_weekday_and_a_minute() {
    // Whatever the time zone: a week later is the same weekday and minute, a day later the next
    // weekday (2026-01-05 12:00 UTC, no daylight saving change within the week in any zone).
    let t = 1_767_614_400;
    let a = local_time(t);
    assert_eq!(local_time(t + 7 * 86_400), a);
    assert_eq!(local_time(t + 86_400).weekday, (a.weekday + 1) % 7);
    assert_eq!(local_time(t + 60).minute, (a.minute + 1) % 1440);
    assert!(a.weekday < 7 && a.minute < 1440);
}
