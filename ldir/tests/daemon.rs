//! The daemon's loop against the recording IPVS fake (no privileges): real files in a temporary
//! directory, real check servers on loopback where the point is the check itself (a server that
//! drips its answer), a scripted runner where the point is the loop's logic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::{Notification, RecordingNotifier, SignalEvent};
use common::ipvs::{AsyncIpvs, Op, RecordingIpvs, ServiceKey};
use common::probe::{Outcome, Probe, Prober, Runner};
use ldir::daemon::{self, Deps, Event};
use ldir::director::State;
use ldir::status::Report;
use tokio::sync::{mpsc, oneshot};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ldir-daemon-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("conf")).unwrap();
        std::fs::create_dir_all(d.join("sys")).unwrap();
        std::fs::write(
            d.join("conf/ldir.toml"),
            format!(
                "[global]\nstate_dir = \"{}\"\nreconcile_interval = \"1h\"\n",
                d.join("state").display()
            ),
        )
        .unwrap();
        Dir(d)
    }
    fn conf(&self) -> PathBuf {
        self.0.join("conf")
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.conf().join(name), text).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Up or down per target, as the test says; up unless told otherwise.
#[derive(Default)]
struct Script {
    down: Mutex<HashMap<SocketAddr, bool>>,
    crash: AtomicBool,
}

impl Script {
    fn set(&self, a: &str, up: bool) {
        self.down.lock().unwrap().insert(a.parse().unwrap(), !up);
    }
}

impl Runner for Script {
    fn run(&self, probe: Arc<Probe>) -> impl Future<Output = Outcome> + Send {
        let down = self
            .down
            .lock()
            .unwrap()
            .get(&probe.addr().unwrap())
            .copied()
            .unwrap_or(false);
        let crash = self.crash.load(Ordering::SeqCst);
        async move {
            // A checker that dies: the engine's task ends and no result comes any more.
            assert!(!crash, "the checker crashed (on purpose)");
            Outcome {
                up: !down,
                latency: Duration::from_millis(1),
                reason: if down {
                    "connection refused".into()
                } else {
                    "200 OK".into()
                },
            }
        }
    }
}

struct Running {
    kernel: AsyncIpvs<RecordingIpvs>,
    events: mpsc::Sender<Event>,
    task: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
    notifier: Arc<RecordingNotifier>,
}

fn start<R: Runner>(
    dir: &Path,
    runner: Arc<R>,
    notifier: RecordingNotifier,
    kernel: RecordingIpvs,
) -> Running {
    let watcher = ldir::watch::Watcher::start(dir);
    let mut cache = ldir::config::Cache::default();
    let config = ldir::config::load_cached(dir, &mut cache).unwrap();
    let kernel = AsyncIpvs::new(kernel);
    let notifier = Arc::new(notifier);
    let (events, rx) = mpsc::channel(16);
    let deps = Deps {
        ipvs: kernel.clone(),
        runner,
        notifier: notifier.clone(),
        sysctl_dir: dir.join("../sys"),
        watcher,
    };
    let task = tokio::spawn(daemon::run(config, cache, deps, rx));
    Running {
        kernel,
        events,
        task,
        notifier,
    }
}

impl Running {
    async fn status(&self) -> Report {
        let (tx, rx) = oneshot::channel();
        self.events.send(Event::Status(tx)).await.unwrap();
        rx.await.unwrap()
    }

    async fn weight(&self, real: &str) -> Option<u32> {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        let real: SocketAddr = real.parse().unwrap();
        self.kernel
            .with(move |k| {
                k.table
                    .services
                    .get(&key)
                    .and_then(|s| s.destinations.get(&real))
                    .map(|d| d.weight)
            })
            .await
    }

    async fn applied(&self) -> Vec<Op> {
        self.kernel.with(|k| k.applied.clone()).await
    }

    /// Waits (up to 20 s) until `f` holds for the status report.
    async fn until(&self, what: &str, f: impl Fn(&Report) -> bool) -> Report {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.status().await;
            if f(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 20 s; last report {r:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> RecordingIpvs {
        self.events
            .send(Event::Signal(SignalEvent::Shutdown))
            .await
            .unwrap();
        self.task.await.unwrap().unwrap();
        self.kernel.with(|k| k.clone()).await
    }
}

fn real<'a>(r: &'a Report, addr: &str) -> &'a ldir::status::RealReport {
    r.virtuals[0]
        .reals
        .iter()
        .find(|x| x.address == addr)
        .unwrap()
}

const TWO: &str = "[virtual]\naddress = \"192.0.2.100:80\"\nfallback = \"192.0.2.50:80\"\n[check]\ntype = \"http\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n[[real]]\naddress = \"192.0.2.11:80\"\nweight = 10\n[[real]]\naddress = \"192.0.2.12:80\"\nweight = 10\n";

/// keepalived 1822: a server that drips its answer kept a check running for 15 s. Here the check is
/// the real prober against real servers on loopback: the dripping one is down at its timeout while
/// the healthy one stays up.
#[tokio::test]
async fn a_server_that_drips_its_answer_is_down_at_the_check_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let drip = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (gp, dp) = (
        good.local_addr().unwrap().port(),
        drip.local_addr().unwrap().port(),
    );
    tokio::spawn(async move {
        loop {
            let (mut s, _) = good.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut s, _) = drip.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                    .iter()
                    .chain([b'x'; 1000].iter())
                {
                    if s.write_all(&[*b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    let d = Dir::new("drip");
    d.write(
        "web.toml",
        &format!("[virtual]\naddress = \"192.0.2.100:80\"\n[check]\ntype = \"http\"\ninterval = \"1s\"\ntimeout = \"1s\"\n[[real]]\naddress = \"127.0.0.1:{gp}\"\n[[real]]\naddress = \"127.0.0.1:{dp}\"\n"),
    );
    let started = std::time::Instant::now();
    let r = start(
        &d.conf(),
        Arc::new(Prober::new()),
        RecordingNotifier::new(),
        RecordingIpvs::default(),
    );
    let report = r
        .until("both reals judged", |rep| {
            rep.virtuals[0]
                .reals
                .iter()
                .all(|x| x.state != State::Unknown)
        })
        .await;
    let dripping = real(&report, &format!("127.0.0.1:{dp}"));
    assert_eq!(dripping.state, State::Down);
    assert_eq!(dripping.last.as_ref().unwrap().reason, "timeout after 1s");
    assert!(
        dripping.last.as_ref().unwrap().latency_ms < 1500.0,
        "{dripping:?}"
    );
    assert_eq!(real(&report, &format!("127.0.0.1:{gp}")).state, State::Up);
    // The first results came together, within about one timeout of the start (not an interval each).
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r.weight(&format!("127.0.0.1:{gp}")).await, Some(1));
    assert_eq!(r.weight(&format!("127.0.0.1:{dp}")).await, Some(0));
    r.stop().await;
}

#[tokio::test]
async fn results_drive_weights_and_the_fallback_with_one_operation_each() {
    let d = Dir::new("weights");
    d.write("web.toml", TWO);
    let script = Arc::new(Script::default());
    let r = start(
        &d.conf(),
        script.clone(),
        RecordingNotifier::new(),
        RecordingIpvs::default(),
    );
    r.until("both up", |rep| {
        rep.virtuals[0].reals.iter().all(|x| x.weight == Some(10))
    })
    .await;
    let before = r.applied().await.len();
    script.set("192.0.2.11:80", false);
    r.until("r1 quiesced", |rep| {
        real(rep, "192.0.2.11:80").weight == Some(0)
    })
    .await;
    let ops = r.applied().await;
    assert_eq!(
        ops.len(),
        before + 1,
        "one operation for one change: {:?}",
        &ops[before..]
    );
    script.set("192.0.2.12:80", false);
    let rep = r
        .until("the fallback comes", |rep| rep.virtuals[0].fallback_active)
        .await;
    assert_eq!(real(&rep, "192.0.2.12:80").weight, Some(0));
    assert_eq!(r.weight("192.0.2.50:80").await, Some(1));
    script.set("192.0.2.12:80", true);
    r.until("the fallback goes", |rep| !rep.virtuals[0].fallback_active)
        .await;
    assert_eq!(r.weight("192.0.2.50:80").await, None);
    let calls = r.notifier.calls_without_watchdog();
    assert_eq!(calls[0], Notification::Ready);
    assert!(
        calls.contains(&Notification::Status("1 virtuals, 1/2 reals up".into())),
        "{calls:?}"
    );
    // Clean stop: the service is gone, the state file says ldir owns nothing.
    let k = r.stop().await;
    assert!(k.table.services.is_empty());
}

#[tokio::test]
async fn reload_adds_one_real_with_one_operation_and_an_invalid_reload_changes_nothing() {
    let d = Dir::new("reload");
    d.write("web.toml", TWO);
    let script = Arc::new(Script::default());
    script.set("192.0.2.11:80", false);
    let r = start(
        &d.conf(),
        script.clone(),
        RecordingNotifier::new(),
        RecordingIpvs::default(),
    );
    r.until("judged", |rep| {
        rep.virtuals[0]
            .reals
            .iter()
            .all(|x| x.state != State::Unknown)
    })
    .await;
    let before = r.applied().await;

    d.write(
        "web.toml",
        &format!(
            "{}[[real]]\naddress = \"192.0.2.13:80\"\nweight = 4\n",
            TWO.replace("weight = 10\n[[real]]", "weight = 7\n[[real]]")
        ),
    );
    let (tx, rx) = oneshot::channel();
    r.events.send(Event::Reload(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    let after = r.applied().await;
    assert_eq!(
        after.len(),
        before.len() + 1,
        "one operation: {:?}",
        &after[before.len()..]
    );
    assert!(
        matches!(&after[before.len()], Op::AddDestination(_, dst) if dst.addr == "192.0.2.13:80".parse().unwrap())
    );
    let rep = r.status().await;
    assert_eq!(
        real(&rep, "192.0.2.11:80").state,
        State::Down,
        "health survives the reload"
    );
    assert_eq!(real(&rep, "192.0.2.11:80").configured_weight, 7);
    script.set("192.0.2.11:80", true);
    r.until("r1 up with its new weight", |rep| {
        real(rep, "192.0.2.11:80").weight == Some(7)
    })
    .await;

    let kernel_before = r.kernel.with(|k| k.table.clone()).await;
    let n = r.applied().await.len();
    d.write("broken.toml", "[virtual]\naddress = \"192.0.2.101:80\"\n[[real]]\naddress = \"192.0.2.11\"\nweight = 70000\n");
    let (tx, rx) = oneshot::channel();
    r.events.send(Event::Reload(tx)).await.unwrap();
    let errors = rx.await.unwrap().unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.ends_with("broken.toml:5:10: real[0].weight: must be 0..=65535, got 70000")),
        "{errors:?}"
    );
    assert_eq!(r.applied().await.len(), n, "nothing applied");
    assert_eq!(r.kernel.with(|k| k.table.clone()).await, kernel_before);
    // An existing file broken, asked twice (the second time with no new inotify event): refused
    // both times, never "nothing changed" as if the broken file had been read already.
    std::fs::remove_file(d.conf().join("broken.toml")).unwrap();
    let web = std::fs::read_to_string(d.conf().join("web.toml")).unwrap();
    d.write(
        "web.toml",
        &format!("{web}[[real]]\naddress = \"192.0.2.300:80\"\n"),
    );
    for _ in 0..2 {
        let (tx, rx) = oneshot::channel();
        r.events.send(Event::Reload(tx)).await.unwrap();
        let errors = rx.await.unwrap().unwrap_err();
        assert!(errors.iter().any(|e| e.contains("web.toml:")), "{errors:?}");
        assert_eq!(r.applied().await.len(), n, "nothing applied");
    }
    r.stop().await;
}

#[tokio::test]
async fn drains_survive_a_restart_through_the_state_file() {
    let d = Dir::new("drain");
    d.write(
        "web.toml",
        &TWO.replace("fallback = \"192.0.2.50:80\"\n", "cleanstop = false\n"),
    );
    let script = Arc::new(Script::default());
    let r = start(
        &d.conf(),
        script.clone(),
        RecordingNotifier::new(),
        RecordingIpvs::default(),
    );
    r.until("both up", |rep| {
        rep.virtuals[0].reals.iter().all(|x| x.weight == Some(10))
    })
    .await;
    let (tx, rx) = oneshot::channel();
    r.events
        .send(Event::Drain {
            ip: "192.0.2.12".parse().unwrap(),
            port: None,
            virtual_name: Some("web".into()),
            on: true,
            reply: tx,
        })
        .await
        .unwrap();
    assert_eq!(rx.await.unwrap(), Ok(1));
    assert_eq!(r.weight("192.0.2.12:80").await, Some(0));
    let (tx, rx) = oneshot::channel();
    r.events
        .send(Event::Drain {
            ip: "192.0.2.12".parse().unwrap(),
            port: None,
            virtual_name: Some("nope".into()),
            on: true,
            reply: tx,
        })
        .await
        .unwrap();
    assert_eq!(rx.await.unwrap(), Err("no virtual named \"nope\"".into()));
    let kernel = r.stop().await;
    assert_eq!(
        kernel.table.destination_count(),
        2,
        "cleanstop = false leaves the table"
    );

    // A new run on the same kernel: still drained, although its check says up.
    let r = start(&d.conf(), script, RecordingNotifier::new(), kernel);
    let rep = r
        .until("r2 judged", |rep| {
            real(rep, "192.0.2.12:80").state == State::Up
        })
        .await;
    assert!(real(&rep, "192.0.2.12:80").held);
    assert_eq!(r.weight("192.0.2.12:80").await, Some(0));
    r.stop().await;
}

#[tokio::test]
async fn the_watchdog_is_withheld_once_the_checks_stop_making_progress() {
    let d = Dir::new("watchdog");
    d.write(
        "web.toml",
        &TWO.replace("interval = \"50ms\"", "interval = \"100ms\"")
            .replace("timeout = \"1s\"", "timeout = \"100ms\""),
    );
    let script = Arc::new(Script::default());
    let r = start(
        &d.conf(),
        script.clone(),
        RecordingNotifier::with_watchdog(Duration::from_millis(100)),
        RecordingIpvs::default(),
    );
    r.until("both up", |rep| {
        rep.virtuals[0].reals.iter().all(|x| x.weight == Some(10))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watchdogs = || {
        r.notifier
            .calls()
            .iter()
            .filter(|n| **n == Notification::Watchdog)
            .count()
    };
    assert!(
        watchdogs() >= 2,
        "the watchdog is fed while checks run: {}",
        watchdogs()
    );
    script.crash.store(true, Ordering::SeqCst);
    // The stall limit is 2 × (interval + timeout) + 5 s = 5.4 s: well after it, no more keepalives,
    // although the loop itself still runs (it answers status requests).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let at_7s = watchdogs();
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.status().await;
    assert_eq!(
        at_7s,
        watchdogs(),
        "no WATCHDOG=1 once no check result comes"
    );
    r.stop().await;
}

/// Mail alerts through a command (ldirectord's emailalert*), repeated while the real stays down
/// (`repeat`, ldirectord's emailalertfreq); the fallback command with `start|stop VIP:PORT PROTO`.
#[tokio::test]
async fn alerts_repeat_while_down_and_the_fallback_command_runs_on_its_edges() {
    let d = Dir::new("alerts");
    let mails = d.0.join("mails");
    let edges = d.0.join("edges");
    let cfg = TWO.replace(
        "fallback = \"192.0.2.50:80\"\n",
        &format!(
            "fallback = \"192.0.2.50:80\"\nfallback_command = \"/bin/sh -c 'echo \\\"$*\\\" >> {}' fb\"\n",
            edges.display()
        ),
    ) + &format!(
        "[alert]\ncommand = \"/bin/sh -c 'cat >> {}; echo ==== >> {}'\"\nto = \"ops@example.org\"\nrepeat = \"300ms\"\n",
        mails.display(),
        mails.display()
    );
    d.write("web.toml", &cfg);
    let script = Arc::new(Script::default());
    let r = start(
        &d.conf(),
        script.clone(),
        RecordingNotifier::new(),
        RecordingIpvs::default(),
    );
    r.until("both up", |rep| {
        rep.virtuals[0].reals.iter().all(|x| x.weight == Some(10))
    })
    .await;
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let count = |p: &Path, s: &str| read(p).matches(s).count();
    let wait = |what: &'static str, f: Box<dyn Fn() -> bool>| async move {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 10 s");
    };
    script.set("192.0.2.11:80", false);
    let m = mails.clone();
    wait(
        "three repeats of r1's down mail",
        Box::new(move || count(&m, "Subject: ldir: web real 192.0.2.11:80 down (still)") >= 3),
    )
    .await;
    let text = read(&mails);
    assert!(text.starts_with("To: ops@example.org\nSubject: ldir: web real 192.0.2.11:80 down\n\nvirtual web (tcp 192.0.2.100:80)\nreal 192.0.2.11:80: up -> down\nreason: connection refused\n===="), "{text}");
    script.set("192.0.2.11:80", true);
    let m = mails.clone();
    wait(
        "r1's up mail",
        Box::new(move || count(&m, "Subject: ldir: web real 192.0.2.11:80 up") == 1),
    )
    .await;
    let repeats = count(&mails, "(still)");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(count(&mails, "(still)"), repeats, "no repeats once up");

    script.set("192.0.2.11:80", false);
    script.set("192.0.2.12:80", false);
    let e = edges.clone();
    wait(
        "the fallback command's start",
        Box::new(move || read(&e).contains("start 192.0.2.100:80 tcp")),
    )
    .await;
    script.set("192.0.2.12:80", true);
    let e = edges.clone();
    wait(
        "the fallback command's stop",
        Box::new(move || read(&e) == "start 192.0.2.100:80 tcp\nstop 192.0.2.100:80 tcp\n"),
    )
    .await;
    r.stop().await;
}
