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
        probe: Probe,
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
            probe,
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
                    let probe = Arc::new(probe);
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
