//! The probe engine: runs probes on schedules for many users at once.
//!
//! A user [`watch`](Engine::watch)es a probe at an interval and receives a [`Report`] after every
//! run. Identical probes (equal [`Probe`] values: same kind, target and parameters) are run once and
//! their results sent to every user watching them, at the shortest interval any of them asked for —
//! ldir's virtual services sharing a real server, and monitor's services, cause one connection per
//! interval, not one each (keepalived runs one checker per virtual/real pair, peers.md §1.7 #3).
//!
//! Scheduling: a probe's first run comes at a random point within its first interval, so probes
//! added together spread out instead of firing together (keepalived's `warmup`); later runs follow
//! at fixed intervals from that phase (no drift). A run never overlaps the previous run of the same
//! probe: a tick that comes while it still runs is skipped. At most
//! [`EngineOptions::max_concurrent`] runs are in flight at once; the others queue for a slot.
//! A new user of a probe that already ran gets its last report at once.
//!
//! The engine uses tokio's clock, so its logic is tested on paused time. It does not keep history,
//! count failures or decide anything: users do. A user that does not keep up with its reports
//! loses the oldest unread ones beyond [`QUEUE`] (results are state, not events to replay).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::{Outcome, Probe};

/// Reports a user may leave unread before older ones are dropped.
pub const QUEUE: usize = 64;

/// Runs one check; [`super::Prober`] is the real one, tests use a counting fake.
pub trait Runner: Send + Sync + 'static {
    /// Checks `probe` once; must finish by itself (the engine applies no timeout of its own).
    fn run(&self, probe: Arc<Probe>) -> impl Future<Output = Outcome> + Send;
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Runs in flight at once, at most.
    pub max_concurrent: usize,
    /// Spread first runs randomly over the first interval (on by default; off runs them at once).
    pub spread: bool,
}

impl Default for EngineOptions {
    /// 1024 runs in flight: far below the default open-file limit's reach with a margin (each run
    /// holds one socket or one child process), far above what thousands of checks per second need.
    fn default() -> Self {
        EngineOptions {
            max_concurrent: 1024,
            spread: true,
        }
    }
}

/// One result of one probe, as sent to every user watching it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The probe that ran.
    pub probe: Arc<Probe>,
    /// What it found.
    pub outcome: Outcome,
    /// When the run ended.
    pub at: Instant,
}

type SubId = u64;

enum Cmd {
    Watch {
        id: SubId,
        probe: Box<Probe>,
        interval: Duration,
        tx: mpsc::Sender<Report>,
    },
    Unwatch {
        id: SubId,
    },
}

/// A handle on a running engine; cloning it gives another handle on the same engine. The engine
/// stops when the last handle and the last [`Watch`] are gone.
#[derive(Clone)]
pub struct Engine {
    cmds: mpsc::UnboundedSender<Cmd>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl Engine {
    /// Starts an engine on the current tokio runtime.
    pub fn spawn<R: Runner>(runner: Arc<R>, options: EngineOptions) -> Engine {
        let (cmds, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_loop(runner, options, rx));
        Engine {
            cmds,
            next_id: Arc::new(0.into()),
        }
    }

    /// Runs `probe` every `interval` (shared with other users of the same probe) until the returned
    /// [`Watch`] is dropped. `interval` must be more than zero.
    pub fn watch(&self, probe: Probe, interval: Duration) -> Watch {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        let interval = interval.max(Duration::from_millis(1));
        let _ = self.cmds.send(Cmd::Watch {
            id,
            probe: Box::new(probe),
            interval,
            tx,
        });
        Watch {
            id,
            rx,
            cmds: self.cmds.clone(),
        }
    }
}

/// One user's subscription to a probe's reports.
pub struct Watch {
    id: SubId,
    rx: mpsc::Receiver<Report>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Watch {
    /// The next report; `None` once the engine is gone.
    pub async fn recv(&mut self) -> Option<Report> {
        self.rx.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Unwatch { id: self.id });
    }
}

struct Sub {
    id: SubId,
    interval: Duration,
    tx: mpsc::Sender<Report>,
}

struct Entry {
    probe: Arc<Probe>,
    subs: Vec<Sub>,
    interval: Duration,
    next_due: Instant,
    running: bool,
    last: Option<Report>,
}

impl Entry {
    fn recompute_interval(&mut self) {
        self.interval = self
            .subs
            .iter()
            .map(|s| s.interval)
            .min()
            .unwrap_or(self.interval);
    }
}

struct State {
    entries: HashMap<Arc<Probe>, Entry>,
    by_sub: HashMap<SubId, Arc<Probe>>,
    timers: BinaryHeap<Reverse<(Instant, u64, Arc<ProbeKey>)>>,
    seq: u64,
}

/// The heap holds probes by key; ordering among equal deadlines is by insertion (the `u64`).
struct ProbeKey(Arc<Probe>);

impl PartialEq for ProbeKey {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ProbeKey {}

impl PartialOrd for ProbeKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProbeKey {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl State {
    fn schedule(&mut self, probe: &Arc<Probe>, at: Instant) {
        self.seq += 1;
        self.timers
            .push(Reverse((at, self.seq, Arc::new(ProbeKey(probe.clone())))));
    }
}

fn first_offset(interval: Duration, spread: bool) -> Duration {
    if !spread {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..nanos.max(1)))
}

async fn run_loop<R: Runner>(
    runner: Arc<R>,
    options: EngineOptions,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let slots = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Report>();
    let mut st = State {
        entries: HashMap::new(),
        by_sub: HashMap::new(),
        timers: BinaryHeap::new(),
        seq: 0,
    };
    let mut cmds_open = true;

    loop {
        // Drop stale timers (probes no longer watched, or rescheduled) so the next deadline is real.
        while let Some(Reverse((at, _, key))) = st.timers.peek() {
            match st.entries.get(&key.0) {
                Some(e) if e.next_due == *at => break,
                _ => {
                    st.timers.pop();
                }
            }
        }
        let next = st.timers.peek().map(|Reverse((at, _, _))| *at);
        if !cmds_open && st.entries.is_empty() {
            return;
        }
        tokio::select! {
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(Cmd::Watch { id, probe, interval, tx }) => {
                    let now = Instant::now();
                    let probe = Arc::new(*probe);
                    st.by_sub.insert(id, probe.clone());
                    let reschedule = match st.entries.get_mut(&probe) {
                        Some(e) => {
                            if let Some(last) = &e.last {
                                let _ = tx.try_send(last.clone());
                            }
                            e.subs.push(Sub { id, interval, tx });
                            let old = e.interval;
                            e.recompute_interval();
                            // A shorter interval takes effect now, not after the old, longer one.
                            (e.interval < old && e.next_due > now + e.interval).then(|| {
                                e.next_due = now + first_offset(e.interval, options.spread);
                                e.next_due
                            })
                        }
                        None => {
                            let due = now + first_offset(interval, options.spread);
                            st.entries.insert(probe.clone(), Entry {
                                probe: probe.clone(),
                                subs: vec![Sub { id, interval, tx }],
                                interval,
                                next_due: due,
                                running: false,
                                last: None,
                            });
                            Some(due)
                        }
                    };
                    if let Some(due) = reschedule {
                        st.schedule(&probe, due);
                    }
                }
                Some(Cmd::Unwatch { id }) => unwatch(&mut st, id),
                None => cmds_open = false,
            },
            Some(report) = done_rx.recv() => {
                if let Some(e) = st.entries.get_mut(&report.probe) {
                    e.running = false;
                    e.subs.retain(|s| !s.tx.is_closed());
                    for s in &e.subs {
                        // A full queue means the user is behind; it sees later results instead.
                        let _ = s.tx.try_send(report.clone());
                    }
                    e.last = Some(report);
                }
            }
            () = sleep_until(next) => {
                let Some(Reverse((at, _, key))) = st.timers.pop() else { continue };
                let Some(e) = st.entries.get_mut(&key.0) else { continue };
                // Next tick on the fixed grid, skipping ticks already past (after a long stall).
                let now = Instant::now();
                let mut due = at + e.interval;
                while due <= now {
                    due += e.interval;
                }
                e.next_due = due;
                let probe = e.probe.clone();
                if !e.running {
                    e.running = true;
                    let (runner, slots, done) = (runner.clone(), slots.clone(), done_tx.clone());
                    let p = probe.clone();
                    tokio::spawn(async move {
                        let _slot = slots.acquire_owned().await;
                        let outcome = runner.run(p.clone()).await;
                        let _ = done.send(Report { probe: p, outcome, at: Instant::now() });
                    });
                }
                st.schedule(&probe, due);
            }
        }
    }
}

fn unwatch(st: &mut State, id: SubId) {
    let Some(probe) = st.by_sub.remove(&id) else {
        return;
    };
    if let Some(e) = st.entries.get_mut(&probe) {
        e.subs.retain(|s| s.id != id);
        if e.subs.is_empty() {
            st.entries.remove(&probe);
        } else {
            e.recompute_interval();
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::probe::{Check, Spec, tcp::Tcp};

    /// Records when each probe ran, takes `delay` per run, tracks runs in flight.
    struct Fake {
        delay: Duration,
        runs: Mutex<Vec<(Instant, IpAddr)>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl Fake {
        fn new(delay: Duration) -> Arc<Fake> {
            Arc::new(Fake {
                delay,
                runs: Mutex::default(),
                in_flight: 0.into(),
                max_in_flight: 0.into(),
            })
        }
        fn runs(&self, target: &str) -> Vec<Instant> {
            let ip: IpAddr = target.parse().unwrap();
            self.runs
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, t)| *t == ip)
                .map(|(at, _)| *at)
                .collect()
        }
    }

    impl Runner for Fake {
        async fn run(&self, probe: Arc<Probe>) -> Outcome {
            {
                self.runs
                    .lock()
                    .unwrap()
                    .push((Instant::now(), probe.target));
                let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Outcome {
                    up: true,
                    latency: self.delay,
                    reason: "fake".into(),
                }
            }
        }
    }

    fn probe(target: &str) -> Probe {
        let mut spec = Spec::new(Check::Tcp(Tcp {}));
        spec.port = Some(80);
        Probe::new(target.parse().unwrap(), spec)
    }

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn identical_probes_run_once_per_interval_for_all_users() {
        let fake = Fake::new(Duration::from_millis(10));
        let engine = Engine::spawn(fake.clone(), EngineOptions::default());
        let mut a = engine.watch(probe("192.0.2.13"), 2 * S);
        let mut b = engine.watch(probe("192.0.2.13"), 2 * S);
        let mut other = engine.watch(probe("192.0.2.14"), 2 * S);
        tokio::time::sleep(10 * S + Duration::from_millis(500)).await;
        // First run within the first interval, then every 2 s: 5 or 6 runs in 10.5 s, not twice that.
        let runs = fake.runs("192.0.2.13");
        assert!((5..=6).contains(&runs.len()), "{runs:?}");
        for w in runs.windows(2) {
            assert_eq!(w[1] - w[0], 2 * S);
        }
        assert!((5..=6).contains(&fake.runs("192.0.2.14").len()));
        for _ in 0..runs.len() {
            assert_eq!(
                a.recv().await.unwrap().probe.target.to_string(),
                "192.0.2.13"
            );
            assert!(b.recv().await.unwrap().outcome.up);
            other.recv().await.unwrap();
        }
        assert!(a.rx.try_recv().is_err() && b.rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn first_runs_spread_over_the_interval() {
        let fake = Fake::new(Duration::from_millis(1));
        let engine = Engine::spawn(fake.clone(), EngineOptions::default());
        let start = Instant::now();
        let watches: Vec<_> = (1..=50)
            .map(|i| engine.watch(probe(&format!("192.0.2.{i}")), 10 * S))
            .collect();
        // First offsets are drawn from [0, 10 s) and tokio's timers round up to the next millisecond,
        // so a first run may land exactly at 10 s: look just past it, before any second run can.
        tokio::time::sleep(10 * S + Duration::from_millis(1)).await;
        let all = fake.runs.lock().unwrap().clone();
        let runs: Vec<_> = all
            .iter()
            .filter(|(at, _)| *at - start <= 10 * S)
            .map(|(at, ip)| (*at, *ip))
            .collect();
        let targets: std::collections::HashSet<_> = runs.iter().map(|(_, ip)| *ip).collect();
        assert_eq!(
            targets.len(),
            50,
            "every probe runs within its first interval: {runs:?}"
        );
        for ip in &targets {
            let early = runs
                .iter()
                .filter(|(at, t)| t == ip && *at - start < 10 * S)
                .count();
            assert!(
                early <= 1,
                "{ip} ran twice within its first interval: {runs:?}"
            );
        }
        let mut offsets: Vec<_> = runs.iter().map(|(at, _)| *at - start).collect();
        offsets.sort();
        offsets.dedup();
        // 50 random points in 10 s: all equal would mean no spread at all.
        assert!(offsets.len() > 40, "{offsets:?}");
        assert!(offsets.iter().any(|o| *o > 5 * S) && offsets.iter().any(|o| *o < 5 * S));
        drop(watches);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_bounded() {
        let fake = Fake::new(3 * S);
        let options = EngineOptions {
            max_concurrent: 3,
            spread: false,
        };
        let engine = Engine::spawn(fake.clone(), options);
        let mut watches: Vec<_> = (1..=9)
            .map(|i| engine.watch(probe(&format!("192.0.2.{i}")), 60 * S))
            .collect();
        for w in &mut watches {
            w.recv().await.unwrap();
        }
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
        // 9 runs of 3 s, 3 at a time: the last result comes after 9 s.
        let last = fake
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .max()
            .unwrap();
        let first = fake
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|(at, _)| *at)
            .min()
            .unwrap();
        assert_eq!(last - first, 6 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_is_not_overlapped() {
        let fake = Fake::new(Duration::from_millis(2500));
        let engine = Engine::spawn(
            fake.clone(),
            EngineOptions {
                max_concurrent: 10,
                spread: false,
            },
        );
        let _w = engine.watch(probe("192.0.2.13"), S);
        tokio::time::sleep(10 * S).await;
        let runs = fake.runs("192.0.2.13");
        // Runs at 0, 3, 6, 9: the ticks at 1, 2, 4, 5, 7, 8 came while a run was in flight.
        assert_eq!(runs.len(), 4, "{runs:?}");
        assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
        for w in runs.windows(2) {
            assert_eq!(w[1] - w[0], 3 * S);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shortest_interval_wins_and_late_users_get_the_last_result() {
        let fake = Fake::new(Duration::from_millis(1));
        let engine = Engine::spawn(
            fake.clone(),
            EngineOptions {
                max_concurrent: 10,
                spread: false,
            },
        );
        let mut slow = engine.watch(probe("192.0.2.13"), 10 * S);
        slow.recv().await.unwrap();
        tokio::time::sleep(S).await;
        let joined = Instant::now();
        let mut fast = engine.watch(probe("192.0.2.13"), 2 * S);
        // The last report arrives at once: it is the one from before the user joined.
        let first = fast.recv().await.unwrap();
        assert!(first.at < joined);
        // The shorter interval applies at once (the next run is not 9 s away), then every 2 s.
        tokio::time::sleep(9 * S + Duration::from_millis(500)).await;
        let runs = fake.runs("192.0.2.13");
        assert_eq!(runs.len(), 1 + 5, "{runs:?}");
        assert_eq!(runs[1], joined);
        // When the fast user leaves, the slow interval is back.
        drop(fast);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let before = fake.runs("192.0.2.13").len();
        tokio::time::sleep(19 * S).await;
        let after = fake.runs("192.0.2.13").len();
        assert!((2..=3).contains(&(after - before)), "{before} -> {after}");
        drop(slow);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_every_watch_stops_the_runs() {
        let fake = Fake::new(Duration::from_millis(1));
        let engine = Engine::spawn(
            fake.clone(),
            EngineOptions {
                max_concurrent: 10,
                spread: false,
            },
        );
        let w = engine.watch(probe("192.0.2.13"), S);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        drop(w);
        let n = fake.runs("192.0.2.13").len();
        tokio::time::sleep(10 * S).await;
        assert_eq!(fake.runs("192.0.2.13").len(), n);
        assert_eq!(n, 4);
    }
}
