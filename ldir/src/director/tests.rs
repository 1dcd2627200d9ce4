use super::*;
use crate::config::{self, tests::WEB};
use common::ipvs::{Forward, Scheduler, Service};
use std::path::Path;

fn cfg(files: &[(&str, &str)]) -> Arc<Config> {
    Arc::new(
        config::build(
            Path::new("/etc/ldir"),
            None,
            files
                .iter()
                .map(|(n, t)| (format!("/etc/ldir/{n}").into(), Ok(t.to_string())))
                .collect(),
        )
        .unwrap(),
    )
}

fn web() -> Arc<Config> {
    cfg(&[("web.toml", WEB)])
}

fn key() -> ServiceKey {
    ServiceKey::tcp("192.0.2.100:80".parse().unwrap())
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn up() -> Outcome {
    Outcome {
        up: true,
        latency: Duration::from_millis(1),
        reason: "200 OK".into(),
    }
}

fn down() -> Outcome {
    Outcome {
        up: false,
        latency: Duration::from_millis(1),
        reason: "connection refused".into(),
    }
}

/// Applies effects to a fake kernel, as the daemon does.
fn apply(k: &mut RecordingIpvs, e: &Effects) {
    k.apply(&e.ops).unwrap();
}

fn weight(k: &RecordingIpvs, real: &str) -> Option<u32> {
    k.table
        .services
        .get(&key())?
        .destinations
        .get(&a(real))
        .map(|d| d.weight)
}

fn all_results(d: &mut Director, k: &mut RecordingIpvs, o: &Outcome, now: Instant) {
    let reals: Vec<SocketAddr> = d.config().virtuals[0]
        .reals
        .iter()
        .map(|r| r.dest.addr)
        .collect();
    for r in reals {
        let e = d.on_result((key(), r), o, now);
        apply(k, &e);
    }
}

#[tokio::test(start_paused = true)]
async fn cold_start_adds_reals_at_weight_zero_then_first_results_decide() {
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(web(), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    // The cache of a service added whole is the kernel's table, not replayed operations.
    assert_eq!(k.table, d.applied().clone(), "the cache after the start");
    assert_eq!(
        e.ops.len(),
        1 + 11,
        "the service and 11 reals at weight 0: {:?}",
        e.ops
    );
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(0));
    assert_eq!(
        weight(&k, "192.0.2.50:80"),
        None,
        "no fallback while reals wait for a first result"
    );
    // The first success brings a real up at once (rise applies after that).
    let e = d.on_result((key(), a("192.0.2.13:80")), &up(), Instant::now());
    assert_eq!(
        e.ops,
        vec![Op::EditDestination(
            key(),
            Destination::new(a("192.0.2.13:80"), Forward::Route).weight(10)
        )]
    );
    assert_eq!(e.transitions[0].to, State::Up);
    apply(&mut k, &e);
    assert_eq!(
        k.table,
        d.applied().clone(),
        "the cache is what the kernel holds"
    );
}

#[tokio::test(start_paused = true)]
async fn fall_and_rise_hysteresis_then_fallback_comes_and_goes() {
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(web(), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    let now = Instant::now();
    all_results(&mut d, &mut k, &up(), now);
    assert_eq!(weight(&k, "192.0.2.20:80"), Some(5));
    let r = (key(), a("192.0.2.13:80"));
    // fall = 3: two failures change nothing.
    for _ in 0..2 {
        assert_eq!(d.on_result(r, &down(), now), Effects::default());
    }
    let e = d.on_result(r, &down(), now);
    assert_eq!(e.ops.len(), 1);
    apply(&mut k, &e);
    assert_eq!(
        weight(&k, "192.0.2.13:80"),
        Some(0),
        "quiescent: weight 0, not removed"
    );
    // rise = 2: one success is not enough, a failure in between starts over.
    assert!(d.on_result(r, &up(), now).ops.is_empty());
    assert!(d.on_result(r, &down(), now).ops.is_empty());
    assert!(d.on_result(r, &up(), now).ops.is_empty());
    let e = d.on_result(r, &up(), now);
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(10));

    // Every real down: the fallback comes, as one more operation after the last weight change.
    let mut fallback_edges = Vec::new();
    for _ in 0..3 {
        let reals: Vec<SocketAddr> = d.config().virtuals[0]
            .reals
            .iter()
            .map(|r| r.dest.addr)
            .collect();
        for real in reals {
            let e = d.on_result((key(), real), &down(), now);
            fallback_edges.extend(e.fallbacks.clone());
            apply(&mut k, &e);
        }
    }
    assert_eq!(weight(&k, "192.0.2.50:80"), Some(1));
    assert_eq!(fallback_edges.len(), 1);
    assert!(fallback_edges[0].active);
    // One real back: the fallback goes in the same step.
    d.on_result(r, &up(), now);
    let e = d.on_result(r, &up(), now);
    assert_eq!(e.ops.len(), 2, "{:?}", e.ops);
    assert!(!e.fallbacks[0].active);
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.50:80"), None);
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(10));
}

#[tokio::test(start_paused = true)]
async fn without_quiescent_down_reals_are_removed_and_only_added_once_up() {
    let t = WEB.replace("quiescent = true", "quiescent = false");
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(cfg(&[("web.toml", &t)]), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    assert_eq!(
        e.ops.len(),
        1,
        "only the service: no real before its first success"
    );
    let r = (key(), a("192.0.2.13:80"));
    let e = d.on_result(r, &up(), Instant::now());
    assert!(matches!(&e.ops[..], [Op::AddDestination(_, dst)] if dst.weight == 10));
    apply(&mut k, &e);
    for _ in 0..3 {
        let e = d.on_result(r, &down(), Instant::now());
        apply(&mut k, &e);
    }
    assert_eq!(weight(&k, "192.0.2.13:80"), None);
}

#[tokio::test(start_paused = true)]
async fn a_restart_under_traffic_keeps_kernel_weights_until_the_first_result() {
    // The kernel holds the service from the previous run, every real serving.
    let c = web();
    let mut kernel = Table::new();
    kernel.insert_service(c.virtuals[0].service.clone());
    for r in &c.virtuals[0].reals {
        kernel.insert_destination(&key(), r.dest.clone());
    }
    let mut k = RecordingIpvs::with_table(kernel);
    let (mut d, e) = Director::start(c, &[key()].into(), &k.table);
    assert!(
        e.ops.is_empty(),
        "nothing changes before checks say so: {:?}",
        e.ops
    );
    let e = d.on_result((key(), a("192.0.2.13:80")), &down(), Instant::now());
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(0));
    assert_eq!(weight(&k, "192.0.2.20:80"), Some(5));
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_health_and_a_weight_changed_while_down_applies_when_up() {
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(web(), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    all_results(&mut d, &mut k, &up(), Instant::now());
    let r = (key(), a("192.0.2.13:80"));
    for _ in 0..3 {
        apply(&mut k, &d.on_result(r, &down(), Instant::now()));
    }
    // Reload with r1's weight changed from 10 to 7 and one real added.
    let t = WEB.replace("weight = 10", "weight = 7") + "\n[[real]]\naddress = \"192.0.2.40:80\"\n";
    let e = d.reload(cfg(&[("web.toml", &t)]));
    assert_eq!(
        e.ops,
        vec![Op::AddDestination(
            key(),
            Destination::new(a("192.0.2.40:80"), Forward::Route).weight(0)
        )],
        "one operation, nothing else moves"
    );
    assert!(e.transitions.is_empty());
    apply(&mut k, &e);
    assert_eq!(
        weight(&k, "192.0.2.13:80"),
        Some(0),
        "still down after the reload"
    );
    assert_eq!(
        weight(&k, "192.0.2.20:80"),
        Some(5),
        "still up after the reload"
    );
    d.on_result(r, &up(), Instant::now());
    apply(&mut k, &d.on_result(r, &up(), Instant::now()));
    assert_eq!(
        weight(&k, "192.0.2.13:80"),
        Some(7),
        "the new weight once it is up"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_edits_scheduler_and_persistence_in_place_and_deletes_removed_virtuals() {
    let other = "[virtual]\naddress = \"192.0.2.101:443\"\n[check]\ntype = \"on\"\n[[real]]\naddress = \"192.0.2.13\"\n";
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(
        cfg(&[("web.toml", WEB), ("tls.toml", other)]),
        &BTreeSet::new(),
        &k.table,
    );
    apply(&mut k, &e);
    let t = WEB
        .replace("scheduler = \"wrr\"", "scheduler = \"wlc\"")
        .replace("persistent = \"300s\"", "persistent = \"600s\"");
    let e = d.reload(cfg(&[("web.toml", &t)]));
    let tls = ServiceKey::tcp(a("192.0.2.101:443"));
    assert_eq!(
        e.ops,
        vec![
            Op::DelService(tls),
            Op::EditService(Service::new(key(), Scheduler::Wlc).persistent(600))
        ]
    );
    apply(&mut k, &e);
    assert!(d.owned().contains(&key()) && !d.owned().contains(&tls));
}

#[tokio::test(start_paused = true)]
async fn one_real_added_to_a_ten_thousand_real_table_is_one_operation() {
    let mut files = Vec::new();
    for i in 0..1000u32 {
        let mut t = format!(
            "[virtual]\naddress = \"198.18.{}.{}:80\"\n[check]\ntype = \"on\"\n",
            i / 250,
            i % 250 + 1
        );
        for j in 0..10u32 {
            t += &format!("[[real]]\naddress = \"198.19.{}.{}:80\"\n", j, i % 250 + 1);
        }
        files.push((format!("v{i:04}.toml"), t));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(cfg(&refs), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    assert_eq!(k.table.destination_count(), 10_000);
    files[500].1 += "[[real]]\naddress = \"198.19.200.1:80\"\n";
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let e = d.reload(cfg(&refs));
    assert_eq!(e.ops.len(), 1, "{:?}", e.ops);
    assert!(
        matches!(&e.ops[0], Op::AddDestination(_, dst) if dst.addr == a("198.19.200.1:80") && dst.weight == 1)
    );
    apply(&mut k, &e);
    // After a failed apply the cache is not trusted: a reload plans every service again (against
    // nothing, until the drift check reads the kernel)...
    d.invalidate();
    files[501].1 += "[[real]]\naddress = \"198.19.200.2:80\"\n";
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let e = d.reload(cfg(&refs));
    let services = e
        .ops
        .iter()
        .filter(|op| matches!(op, Op::AddService(_)))
        .count();
    assert_eq!(services, 1000, "every service planned");
    // ... and once the drift check has read the kernel, one change is one operation again.
    let e = d.reconcile(&k.table);
    assert_eq!(
        e.ops.len(),
        1,
        "only the real added while the cache was not trusted: {:?}",
        e.ops
    );
    apply(&mut k, &e);
    files[502].1 += "[[real]]\naddress = \"198.19.200.3:80\"\n";
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(d.reload(cfg(&refs)).ops.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn drains_and_maintenance_hold_weight_zero_whatever_the_checks_say() {
    let mut k = RecordingIpvs::default();
    let (mut d, e) = Director::start(web(), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    all_results(&mut d, &mut k, &up(), Instant::now());
    let drain = Drain {
        ip: "192.0.2.13".parse().unwrap(),
        port: None,
        service: None,
    };
    let e = d.set_drain(drain, true);
    assert_eq!(e.ops.len(), 1);
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(0));
    assert!(
        d.on_result((key(), a("192.0.2.13:80")), &up(), Instant::now())
            .ops
            .is_empty()
    );
    apply(&mut k, &d.set_drain(drain, false));
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(10));
    // The maintenance directory, by IP:PORT.
    let e = d.set_maintenance([("192.0.2.21".parse().unwrap(), Some(80))].into());
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.21:80"), Some(0));
    assert_eq!(weight(&k, "192.0.2.22:80"), Some(5));
    // A drain for another virtual does not touch this one.
    let other = Drain {
        ip: "192.0.2.22".parse().unwrap(),
        port: None,
        service: Some(ServiceKey::udp(a("192.0.2.100:53"))),
    };
    assert!(d.set_drain(other, true).ops.is_empty());
}

#[tokio::test(start_paused = true)]
async fn reconcile_repairs_drift_and_leaves_foreign_services_alone() {
    let mut k = RecordingIpvs::default();
    let foreign = ServiceKey::udp(a("192.0.2.200:53"));
    k.table.insert_service(Service::new(foreign, Scheduler::Rr));
    let (mut d, e) = Director::start(web(), &BTreeSet::new(), &k.table);
    apply(&mut k, &e);
    all_results(&mut d, &mut k, &up(), Instant::now());
    // Someone deletes a real and changes a weight by hand.
    k.apply(&[Op::DelDestination(key(), a("192.0.2.13:80"))])
        .unwrap();
    k.apply(&[Op::EditDestination(
        key(),
        Destination::new(a("192.0.2.20:80"), Forward::Route).weight(99),
    )])
    .unwrap();
    let e = d.reconcile(&k.table);
    assert_eq!(e.ops.len(), 2, "{:?}", e.ops);
    apply(&mut k, &e);
    assert_eq!(weight(&k, "192.0.2.13:80"), Some(10));
    assert_eq!(weight(&k, "192.0.2.20:80"), Some(5));
    assert!(k.table.services.contains_key(&foreign));
    assert!(d.reconcile(&k.table).ops.is_empty());
    assert!(!d.stop_ops().contains(&Op::DelService(foreign)));
}

#[tokio::test(start_paused = true)]
async fn readd_quiescent_decides_whether_a_removed_down_real_comes_back_at_zero() {
    for (readd, back) in [(false, None), (true, Some(0))] {
        let t = WEB.replace(
            "quiescent = true",
            &format!("quiescent = true\nreadd_quiescent = {readd}"),
        );
        let mut k = RecordingIpvs::default();
        let (mut d, e) = Director::start(cfg(&[("web.toml", &t)]), &BTreeSet::new(), &k.table);
        apply(&mut k, &e);
        all_results(&mut d, &mut k, &down(), Instant::now());
        k.apply(&[Op::DelDestination(key(), a("192.0.2.13:80"))])
            .unwrap();
        let e = d.reconcile(&k.table);
        apply(&mut k, &e);
        assert_eq!(
            weight(&k, "192.0.2.13:80"),
            back,
            "readd_quiescent = {readd}"
        );
        // Either way it returns with its weight once up.
        apply(
            &mut k,
            &d.on_result((key(), a("192.0.2.13:80")), &up(), Instant::now()),
        );
        apply(
            &mut k,
            &d.on_result((key(), a("192.0.2.13:80")), &up(), Instant::now()),
        );
        assert_eq!(weight(&k, "192.0.2.13:80"), Some(10));
    }
}

#[tokio::test(start_paused = true)]
async fn services_from_a_previous_run_are_deleted_and_cleanstop_is_per_virtual() {
    let old = ServiceKey::tcp(a("192.0.2.150:80"));
    let foreign = ServiceKey::tcp(a("192.0.2.151:80"));
    let mut k = RecordingIpvs::default();
    k.table.insert_service(Service::new(old, Scheduler::Rr));
    k.table.insert_service(Service::new(foreign, Scheduler::Rr));
    let keep = "[virtual]\naddress = \"192.0.2.101:80\"\ncleanstop = false\n[check]\ntype = \"on\"\n[[real]]\naddress = \"192.0.2.13\"\n";
    let (d, e) = Director::start(
        cfg(&[("web.toml", WEB), ("keep.toml", keep)]),
        &[old].into(),
        &k.table,
    );
    assert_eq!(e.ops[0], Op::DelService(old));
    apply(&mut k, &e);
    assert!(k.table.services.contains_key(&foreign));
    assert_eq!(d.stop_ops(), vec![Op::DelService(key())]);
}

#[test]
fn hysteresis_table() {
    let now = Instant::now();
    // (rise, fall, results, states after each)
    let cases: &[(u32, u32, &[bool], &[State])] = &[
        (
            1,
            1,
            &[true, false, true],
            &[State::Up, State::Down, State::Up],
        ),
        (
            2,
            3,
            &[false, true, true],
            &[State::Down, State::Down, State::Up],
        ),
        (
            2,
            3,
            &[true, false, false, true, false, false, false],
            &[
                State::Up,
                State::Up,
                State::Up,
                State::Up,
                State::Up,
                State::Up,
                State::Down,
            ],
        ),
    ];
    for (rise, fall, results, states) in cases {
        let mut h = Health::default();
        for (i, (&r, &s)) in results.iter().zip(states.iter()).enumerate() {
            h.record(r, *rise, *fall, now);
            assert_eq!(h.state, s, "rise {rise} fall {fall} step {i}");
        }
    }
}

/// A result for a real the configuration does not have (another port, another service, or one a
/// reload removed while its result was still queued) changes nothing and keeps no health.
#[tokio::test(start_paused = true)]
async fn results_for_reals_not_in_the_configuration_change_nothing() {
    let (mut d, _) = Director::start(web(), &BTreeSet::new(), &Table::new());
    let now = Instant::now();
    let other = ServiceKey::tcp(a("192.0.2.101:80"));
    for id in [
        (key(), a("192.0.2.99:80")),
        (key(), a("192.0.2.13:81")),
        (other, a("192.0.2.13:80")),
    ] {
        assert_eq!(d.on_result(id, &up(), now), Effects::default(), "{id:?}");
        assert!(d.health(&id).is_none(), "{id:?}");
    }
    let r13 = (key(), a("192.0.2.13:80"));
    assert_eq!(d.on_result(r13, &up(), now).transitions.len(), 1);
    let without = WEB.replace("address = \"192.0.2.13:80\"", "address = \"192.0.2.14:80\"");
    d.reload(cfg(&[("web.toml", &without)]));
    assert!(
        d.health(&r13).is_none(),
        "health of a removed real is dropped"
    );
    assert_eq!(d.on_result(r13, &down(), now), Effects::default());
    assert!(d.health(&r13).is_none());
    // The real that stayed kept its health through the reload; the new one has none yet.
    assert!(d.health(&(key(), a("192.0.2.20:80"))).is_none());
    let r20 = (key(), a("192.0.2.20:80"));
    assert_eq!(d.on_result(r20, &up(), now).transitions.len(), 1);
    d.reload(cfg(&[("web.toml", WEB)]));
    assert_eq!(d.health(&r20).map(|h| h.state), Some(State::Up));
}
