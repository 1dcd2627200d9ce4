use super::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Tuesday 12:00.
const NOON: LocalTime = LocalTime {
    weekday: 1,
    minute: 12 * 60,
};

fn web() -> ServiceId {
    ServiceId::new("web", "http")
}

fn one(rules: Rules) -> Engine {
    Engine::new([(web(), rules)])
}

/// The kinds of alerts sent, in order.
fn sent(d: &[Decision]) -> Vec<AlertKind> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Alert { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

fn suppressed(d: &[Decision]) -> Vec<Suppressed> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Suppressed { why, .. } => Some(why.clone()),
            _ => None,
        })
        .collect()
}

/// Feeds results `ok` at times `at` (seconds); returns the alert kinds sent at each.
fn run(e: &mut Engine, results: &[(u64, bool, &str)]) -> Vec<(u64, Vec<AlertKind>)> {
    results
        .iter()
        .map(|&(at, ok, summary)| {
            let d = e.result(&web(), s(at), NOON, ok, summary, "detail");
            (at, sent(&d))
        })
        .filter(|(_, k)| !k.is_empty())
        .collect()
}

#[test]
fn without_alert_every_every_failed_result_alerts_as_mon_does() {
    let mut e = one(Rules::default());
    let got = run(
        &mut e,
        &[(0, true, "ok"), (10, false, "down"), (12, false, "down")],
    );
    assert_eq!(
        got,
        [
            (10, vec![AlertKind::Failure]),
            (12, vec![AlertKind::Failure])
        ]
    );
    let st = e.state(&web()).unwrap();
    assert_eq!(st.status, OpStatus::Fail);
    assert_eq!(st.failing_since, Some(s(10)));
    assert_eq!(st.alerts_sent, 2);
}

#[test]
fn alert_after_a_count_of_consecutive_failures() {
    let mut e = one(Rules {
        alert_after: AlertAfter::Count(3),
        ..Rules::default()
    });
    let got = run(
        &mut e,
        &[
            (0, false, "x"),
            (2, false, "x"),
            (4, true, "ok"), // the count starts again
            (6, false, "x"),
            (8, false, "x"),
            (10, false, "x"),
        ],
    );
    assert_eq!(got, [(10, vec![AlertKind::Failure])]);
}

#[test]
fn alert_after_a_time_counts_from_the_first_failure() {
    let mut e = one(Rules {
        alert_after: AlertAfter::Time(s(30)),
        ..Rules::default()
    });
    let got = run(
        &mut e,
        &[
            (0, false, "x"),
            (10, false, "x"),
            (29, false, "x"),
            (30, false, "x"),
        ],
    );
    assert_eq!(got, [(30, vec![AlertKind::Failure])]);
}

#[test]
fn alert_every_holds_repeats_unless_the_summary_changes() {
    let mut e = one(Rules {
        alert_every: Some(s(3600)),
        ..Rules::default()
    });
    let got = run(
        &mut e,
        &[
            (0, false, "refused"),
            (10, false, "refused"),
            (20, false, "timeout"), // changed: early
            (30, false, "timeout"),
            (3619, false, "timeout"),
            (3620, false, "timeout"), // an hour after the last
        ],
    );
    assert_eq!(
        got.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [0, 20, 3620]
    );
    let d = e.result(&web(), s(3630), NOON, false, "timeout", "");
    assert_eq!(suppressed(&d), [Suppressed::AlertEvery]);
}

#[test]
fn alert_every_strict_ignores_a_changed_summary() {
    let mut e = one(Rules {
        alert_every: Some(s(60)),
        alert_every_strict: true,
        ..Rules::default()
    });
    let got = run(
        &mut e,
        &[
            (0, false, "a"),
            (10, false, "b"),
            (59, false, "c"),
            (60, false, "d"),
        ],
    );
    assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 60]);
}

#[test]
fn num_alerts_caps_an_episode_and_a_new_episode_starts_fresh() {
    let mut e = one(Rules {
        num_alerts: Some(2),
        ..Rules::default()
    });
    let got = run(
        &mut e,
        &[
            (0, false, "x"),
            (1, false, "x"),
            (2, false, "x"),
            (3, false, "x"),
            (4, true, "ok"),
            (5, false, "x"),
        ],
    );
    assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [0, 1, 5]);
    let d = e.result(&web(), s(6), NOON, false, "x", "");
    assert!(sent(&d).contains(&AlertKind::Failure));
    let d = e.result(&web(), s(7), NOON, false, "x", "");
    assert_eq!(suppressed(&d), [Suppressed::NumAlerts(2)]);
}

#[test]
fn upalert_only_after_a_failure_alert_was_sent() {
    let mut e = one(Rules {
        alert_after: AlertAfter::Count(2),
        upalert: true,
        ..Rules::default()
    });
    // One failure, not alerted: its recovery sends no upalert.
    let got = run(&mut e, &[(0, true, "ok"), (1, false, "x"), (2, true, "ok")]);
    assert!(got.is_empty(), "{got:?}");
    // Two failures (alerted), then the recovery: the upalert, with the recovery's summary.
    let got = run(
        &mut e,
        &[(3, false, "x"), (4, false, "x"), (5, true, "back")],
    );
    assert_eq!(
        got,
        [(4, vec![AlertKind::Failure]), (5, vec![AlertKind::Up])]
    );
    // Without upalert commands: nothing on recovery.
    let mut e = one(Rules::default());
    let got = run(&mut e, &[(0, false, "x"), (1, true, "ok")]);
    assert_eq!(got, [(0, vec![AlertKind::Failure])]);
}

#[test]
fn an_acknowledged_failure_alerts_no_more_until_it_recovers() {
    let mut e = one(Rules {
        upalert: true,
        ..Rules::default()
    });
    assert_eq!(
        e.ack(&web(), "on it"),
        Err(RequestError::NotFailing(web())),
        "nothing to acknowledge yet"
    );
    run(&mut e, &[(0, false, "x")]);
    e.ack(&web(), "on it").unwrap();
    assert_eq!(e.state(&web()).unwrap().acked.as_deref(), Some("on it"));
    let d = e.result(&web(), s(1), NOON, false, "x", "");
    assert_eq!(suppressed(&d), [Suppressed::Acknowledged]);
    // The recovery ends the ack (and sends the upalert: a failure alert went out before it).
    let d = e.result(&web(), s(2), NOON, true, "ok", "");
    assert_eq!(sent(&d), [AlertKind::Up]);
    assert_eq!(e.state(&web()).unwrap().acked, None);
    let d = e.result(&web(), s(3), NOON, false, "x", "");
    assert_eq!(sent(&d), [AlertKind::Failure]);
    assert_eq!(
        e.ack(&ServiceId::new("web", "nope"), ""),
        Err(RequestError::NoService("web/nope".into()))
    );
}

#[test]
fn no_alerts_while_a_dependency_is_failing() {
    let ping = ServiceId::new("web", "ping");
    let mut e = Engine::new([
        (ping.clone(), Rules::default()),
        (
            web(),
            Rules {
                depends: vec![ping.clone()],
                ..Rules::default()
            },
        ),
    ]);
    e.result(&ping, s(0), NOON, false, "unreachable", "");
    let d = e.result(&web(), s(1), NOON, false, "x", "");
    assert_eq!(suppressed(&d), [Suppressed::Dependency(ping.clone())]);
    assert_eq!(
        e.state(&web()).unwrap().status,
        OpStatus::Fail,
        "still failing"
    );
    e.result(&ping, s(2), NOON, true, "ok", "");
    let d = e.result(&web(), s(3), NOON, false, "x", "");
    assert_eq!(sent(&d), [AlertKind::Failure]);
}

#[test]
fn alerts_only_inside_the_period() {
    let mut e = one(Rules {
        period: Some(Period::parse("Mon-Fri 07:00-22:00").unwrap()),
        upalert: true,
        ..Rules::default()
    });
    let night = LocalTime {
        weekday: 1,
        minute: 23 * 60,
    };
    let saturday = LocalTime {
        weekday: 5,
        minute: 12 * 60,
    };
    for t in [night, saturday] {
        let d = e.result(&web(), s(0), t, false, "x", "");
        assert_eq!(suppressed(&d), [Suppressed::OutsidePeriod], "{t:?}");
    }
    let d = e.result(&web(), s(1), NOON, false, "x", "");
    assert_eq!(sent(&d), [AlertKind::Failure]);
    let d = e.result(&web(), s(2), night, true, "ok", "");
    assert_eq!(suppressed(&d), [Suppressed::OutsidePeriod]);
}

#[test]
fn disabled_services_alert_not_at_all_and_enable_brings_them_back() {
    let mut e = Engine::new([
        (web(), Rules::default()),
        (ServiceId::new("web", "ping"), Rules::default()),
        (ServiceId::new("db", "mysql"), Rules::default()),
    ]);
    assert_eq!(e.set_disabled("web", None, true), Ok(2));
    let d = e.result(&web(), s(0), NOON, false, "x", "");
    assert_eq!(suppressed(&d), [Suppressed::Disabled]);
    assert_eq!(e.set_disabled("web", Some("http"), false), Ok(1));
    let d = e.result(&web(), s(1), NOON, false, "x", "");
    assert_eq!(sent(&d), [AlertKind::Failure]);
    assert_eq!(
        e.set_disabled("nope", None, true),
        Err(RequestError::NoService("nope".into()))
    );
}

#[test]
fn startup_alerts_once_for_services_that_have_them() {
    let mut e = Engine::new([
        (
            web(),
            Rules {
                startupalert: true,
                ..Rules::default()
            },
        ),
        (ServiceId::new("web", "ping"), Rules::default()),
    ]);
    let d = e.startup(NOON);
    assert_eq!(sent(&d), [AlertKind::Startup]);
    e.set_disabled("web", None, true).unwrap();
    assert_eq!(suppressed(&e.startup(NOON)), [Suppressed::Disabled]);
}

#[test]
fn state_changes_are_reported_once() {
    let mut e = one(Rules::default());
    let changes = |d: &[Decision]| {
        d.iter()
            .filter_map(|d| match d {
                Decision::Changed { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        changes(&e.result(&web(), s(0), NOON, true, "ok", "")),
        [(OpStatus::Untested, OpStatus::Ok)]
    );
    assert!(changes(&e.result(&web(), s(1), NOON, true, "ok", "")).is_empty());
    assert_eq!(
        changes(&e.result(&web(), s(2), NOON, false, "x", "")),
        [(OpStatus::Ok, OpStatus::Fail)]
    );
    assert!(changes(&e.result(&web(), s(3), NOON, false, "x", "")).is_empty());
    assert_eq!(
        changes(&e.result(&web(), s(4), NOON, true, "ok", "")),
        [(OpStatus::Fail, OpStatus::Ok)]
    );
}

#[test]
fn periods_parse_and_contain() {
    let at = |weekday, h: u16, m: u16| LocalTime {
        weekday,
        minute: h * 60 + m,
    };
    let p = Period::parse("Mon-Fri 07:00-22:00").unwrap();
    assert!(p.contains(at(0, 7, 0)) && p.contains(at(4, 21, 59)));
    assert!(!p.contains(at(0, 6, 59)) && !p.contains(at(4, 22, 0)) && !p.contains(at(5, 12, 0)));
    // Wrapping days and hours; several specs; full day names; days or hours alone.
    let p = Period::parse("Fri-Mon 22:00-06:00; wednesday").unwrap();
    assert!(p.contains(at(4, 23, 0)), "Friday night");
    assert!(
        p.contains(at(5, 3, 0)),
        "early Saturday belongs to Friday's night"
    );
    assert!(
        !p.contains(at(4, 3, 0)),
        "early Friday belongs to Thursday's night"
    );
    assert!(
        p.contains(at(1, 5, 0)),
        "early Tuesday belongs to Monday's night"
    );
    assert!(p.contains(at(2, 15, 0)), "all of Wednesday");
    let p = Period::parse("09:00-17:00").unwrap();
    assert!(p.contains(at(6, 9, 0)) && !p.contains(at(6, 17, 0)));
    let p = Period::parse("Sat,Sun").unwrap();
    assert!(p.contains(at(6, 0, 0)) && !p.contains(at(0, 0, 0)));
    assert!(
        Period::parse("Mon 00:00-24:00")
            .unwrap()
            .contains(at(0, 23, 59))
    );
}

#[test]
fn bad_periods_say_what_is_wrong() {
    for (text, why) in [
        ("", "an empty spec"),
        ("Mon-Fri;", "an empty spec"),
        ("Mon-Fry 07:00-22:00", "\"Fry\" is not a day"),
        ("Mon-Fri 7am-10pm", "\"7am\" is not a time HH:MM"),
        ("Mon-Fri 0700", "is not a time range"),
        ("Mon-Fri 07:00-25:00", "\"25:00\" is not a time"),
        ("Mon-Fri 07:60-08:00", "\"07:60\" is not a time"),
        ("Mon 08:00-08:00", "an empty time range"),
        ("Mon 08:00-09:00 extra", "more than days and a time"),
        ("08:00-09:00 Mon", "the days come first"),
        ("Mon 08:00-09:00 10:00-11:00", "more than days and a time"),
    ] {
        let e = Period::parse(text).unwrap_err();
        assert!(e.to_string().contains(why), "{text:?}: {e}");
        assert!(e.to_string().contains("Mon-Fri 07:00-22:00"), "{e}");
    }
}
