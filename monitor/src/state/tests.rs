use super::*;
use crate::rules::{AlertKind, Decision, LocalTime, Rules};

const NOON: LocalTime = LocalTime {
    weekday: 1,
    minute: 720,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn web() -> ServiceId {
    ServiceId::new("web", "http")
}

fn engine() -> Engine {
    Engine::new([
        (
            web(),
            Rules {
                num_alerts: Some(2),
                upalert: true,
                ..Rules::default()
            },
        ),
        (ServiceId::new("web", "ping"), Rules::default()),
    ])
}

fn path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("monitor-state-{tag}-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn sent(d: &[Decision]) -> Vec<AlertKind> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Alert { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restart_keeps_failures_alert_counts_acks_and_disabled_services() {
    // Before: web/http failing since boot+1000 s, one alert sent, acknowledged; web/ping disabled.
    let mut before = engine();
    before.result(&web(), s(1000), NOON, false, "refused", "detail");
    before.ack(&web(), "on it").unwrap();
    before.set_disabled("web", Some("ping"), true).unwrap();
    let p = path("restart");
    // Saved at boot+1100 s = time(2) 1764001100.
    save(&p, &before.export(s(1100), s(1_764_001_100))).unwrap();

    // After a restart (same boot: the engine's clock is at 1200 s, time(2) 1764001200).
    let file = load(&p).unwrap().expect("a state file");
    let mut after = engine();
    assert!(after.restore(&file, s(1200), s(1_764_001_200)).is_empty());
    let st = after.state(&web()).unwrap();
    assert_eq!(st.status, OpStatus::Fail);
    // Kept to its second (placed in the middle of it).
    assert_eq!(
        st.failing_since,
        Some(ms(1_000_500)),
        "the episode's start kept"
    );
    assert_eq!(st.alerts_sent, 1);
    assert_eq!(st.last_alert, Some((ms(1_000_500), "refused".to_string())));
    assert_eq!(st.acked.as_deref(), Some("on it"));
    assert_eq!(st.last_summary, "refused");
    assert!(
        after
            .state(&ServiceId::new("web", "ping"))
            .unwrap()
            .disabled
    );
    // The rules go on from there: still acknowledged; the recovery sends the upalert (a failure
    // alert went out before the restart).
    let d = after.result(&web(), s(1210), NOON, false, "refused", "");
    assert!(sent(&d).is_empty(), "{d:?}");
    let d = after.result(&web(), s(1220), NOON, true, "ok", "");
    assert_eq!(sent(&d), [AlertKind::Up]);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn services_no_longer_configured_are_dropped_and_new_ones_start_untested() {
    let mut before = Engine::new([
        (ServiceId::new("old", "gone"), Rules::default()),
        (web(), Rules::default()),
    ]);
    before.result(&ServiceId::new("old", "gone"), s(5), NOON, false, "x", "");
    let file = before.export(s(10), s(1_764_000_000));
    let mut after = engine();
    assert_eq!(after.restore(&file, s(10), s(1_764_000_000)), ["old/gone"]);
    assert_eq!(
        after.state(&ServiceId::new("web", "ping")).unwrap().status,
        OpStatus::Untested
    );
}

#[test]
fn a_missing_corrupt_foreign_or_huge_file_is_reported_never_a_crash() {
    let p = path("bad");
    assert!(
        load(&p).unwrap().is_none(),
        "missing: fresh state, no error"
    );
    for (text, want) in [
        (
            "{\"version\": 1, \"services\": {\"web/http\": {\"status\": \"fail\"",
            "is corrupt",
        ),
        ("not json at all", "is corrupt"),
        (
            "{\"version\": 1, \"services\": {\"web/http\": {\"status\": \"sideways\"}}}",
            "is corrupt",
        ),
        (
            "{\"version\": 1, \"services\": {}, \"extra\": 1}",
            "is corrupt",
        ),
        (
            "{\"version\": 0, \"services\": []}",
            "is of version 0, this monitor writes version 1",
        ),
        ("", "is corrupt"),
        ("\u{0}\u{1}\u{2}", "is corrupt"),
    ] {
        std::fs::write(&p, text).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(MAX_SIZE + 1).unwrap();
    assert!(matches!(load(&p), Err(StateError::TooLarge { .. })));
    std::fs::remove_file(&p).unwrap();
    // A directory where the file should be: a read error, not a crash.
    let d = path("dir");
    std::fs::create_dir_all(&d).unwrap();
    assert!(load(&d).is_err());
    std::fs::remove_dir(&d).unwrap();
}

#[test]
fn times_before_the_clock_start_are_clamped() {
    // Saved an hour before this boot: placed at the boot.
    assert_eq!(to_mono(1_764_000_000, s(60), s(1_764_003_660)), ms(500));
    assert_eq!(to_mono(1_764_003_600, s(60), s(1_764_003_660)), ms(500));
    assert_eq!(to_mono(1_764_003_630, s(60), s(1_764_003_660)), ms(30_500));
    // A time in the future (the wall clock went back): now.
    assert_eq!(to_mono(1_764_999_999, s(60), s(1_764_003_660)), s(60));
    assert_eq!(to_wall(s(30), s(60), s(1_764_003_660)), 1_764_003_630);
}

#[test]
fn a_saved_time_reads_back_as_the_same_second_whatever_the_clocks_fractions() {
    // The failing_since shown before a restart and after it must be equal: with both clocks read
    // to the nanosecond, a time converted to time(2) and back is exact.
    for frac in [0, 1, 499_999_999, 999_999_999] {
        let wall = s(1_764_003_660) + Duration::from_nanos(frac);
        let now = s(60) + Duration::from_millis(700);
        let t = s(30) + Duration::from_millis(300);
        let w = to_wall(t, now, wall);
        // Later (a restart), both clocks moved on together, but for the microseconds between
        // reading one and the other (truncating to whole seconds dropped a second then).
        let d = Duration::from_millis(12_345);
        let jitter = Duration::from_micros(3);
        let back = to_mono(w, now + d, wall + d);
        assert_eq!(to_wall(back, now + d, wall + d), w, "{frac}");
        assert_eq!(to_wall(back, now + d + jitter, wall + d), w, "{frac}");
        assert_eq!(to_wall(back, now + d, wall + d + jitter), w, "{frac}");
    }
}
