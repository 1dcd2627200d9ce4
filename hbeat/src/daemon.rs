//! `hbeat run`: the daemon around the pure parts.
//!
//! Frames come in from the links; the codec authenticates them and the replay guard drops old
//! ones; the state machine decides; its actions go out as frames on every link (one sequence
//! number per message, the link id stamped per copy), as starts and stops handed to one runner
//! task per group (so a slow stop of one group never delays heartbeats or another group), as log
//! lines and as the notify hook. Ticks come every keepalive; the machine itself decides when an
//! `Alive` is due. The control socket answers `status`, `standby`, `takeover` and `reload`;
//! SIGHUP reloads too ([`crate::reload`]: all or nothing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::control::{self, Access, Listener, Reply};
use common::daemon::{Notifier, SignalEvent, WatchdogTicker};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, Link};
use crate::facts::{self, Fact};
use crate::frame::{self, Counters, Freshness, Reject, ReplayGuard};
use crate::keys::KeyRing;
use crate::link::{Inbound, LinkSpec, LinkStatus, Links, Setup};
use crate::linkstats::LinkStats;

use crate::machine::{Action, Event as MachineEvent, Liveness, Machine};
use crate::msg::{Kind, Message, NodeState};
use crate::reload::{self, Refused};
use crate::resource::{self, Cause, GroupRunner};

/// Frames waiting for the loop, at most (the links drop and count beyond).
const INBOUND_QUEUE: usize = 1024;
/// The shortest timeout of a ping round asked for at the start of a silence (`Action::PingNow`).
const URGENT_PING_MIN: Duration = Duration::from_millis(10);
/// How long a graceful stop may take beyond the resources' own limits before the daemon exits
/// anyway.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// A control request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// The report.
    Status,
    /// Hand my groups to a peer.
    Standby,
    /// Ask the peers for every group I may hold.
    Takeover,
    /// Read the configuration file again (all or nothing, [`crate::reload`]).
    Reload,
}

/// What `hbeat status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub node: String,
    pub cluster: String,
    pub incarnation: u64,
    /// My letter (N, T, R, D).
    pub state: char,
    /// Every node's letter, in node-name order, e.g. `(N,T)`.
    pub pair: String,
    pub standby: bool,
    /// The running timings (they change on reload).
    pub keepalive_ms: u64,
    pub deadtime_ms: u64,
    /// The key ids accepted, the sending one first (key rotation shows here).
    pub key_ids: Vec<u8>,
    /// Whether the nodes I hear have a majority of the votes (always with two nodes).
    pub quorum: bool,
    /// The votes of the nodes I hear (me included), and of all nodes.
    pub votes: (u64, u64),
    /// Ping targets reached in the last round, of those configured (none without `[ping]`).
    pub ping: Option<(u8, u8)>,
    /// Whether this node sees its own writes on the quorum disk (none without one).
    #[serde(default)]
    pub quorum_disk: Option<bool>,
    pub held: Vec<String>,
    pub groups: Vec<GroupStatus>,
    pub peers: Vec<PeerStatus>,
    pub links: Vec<LinkReport>,
    /// Rejected frames by reason.
    pub rejected: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    pub holder: Option<String>,
    /// Why this node could not serve it now (`None`: it could).
    pub unready: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    pub state: char,
    pub up: bool,
    /// `unknown` (not heard yet, initdead not over), `up`, `down` (dead) or `left` (said leave).
    pub liveness: String,
    /// Milliseconds since its last frame on any link.
    pub last_seen_ms: Option<u64>,
    pub held: Vec<String>,
    pub groups_differ: bool,
    /// Each of my links as this peer's frames arrive on it.
    pub links: Vec<PeerLinkStatus>,
}

/// One link of one peer: when its frames last arrived on it, and how well it carries them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerLinkStatus {
    pub id: u8,
    pub last_seen_ms: Option<u64>,
    /// Silent for longer than warntime.
    pub late: bool,
    /// Of the peer's last 128 messages, the percent this link did not deliver.
    pub loss_pct: f64,
    /// How far this link's copies arrive behind the first copy on any link (moving average).
    pub lag_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkReport {
    pub id: u8,
    pub what: String,
    pub up: bool,
    pub error: Option<String>,
    pub sent: u64,
    pub received: u64,
    /// Datagrams from a source that is not the link's peer (or our own broadcasts).
    pub rejected_source: u64,
    /// Input that was not a frame.
    pub garbage: u64,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{path}: cannot keep the incarnation: {source}")]
    Incarnation {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the control socket: {0}")]
    Control(#[from] control::ControlError),
}

/// What the loop hears besides frames and ticks.
enum Input {
    Signal(SignalEvent),
    Control(Request, oneshot::Sender<Reply>),
    /// A runner finished a start (`acquire: true`) or a stop.
    Done {
        group: String,
        acquire: bool,
        ok: bool,
    },
    /// A fence command finished.
    Fenced {
        peer: String,
        ok: bool,
    },
    /// A held group's resource failed: a command died, or a script's `status` failed.
    ResourceFailed {
        group: String,
        why: String,
    },
}

/// Asks a group's runner task to start or stop, or to have its commands announce again.
enum RunnerCmd {
    Run {
        acquire: bool,
        cause: Cause,
    },
    Reannounce,
    /// `status` of the held scripts; a failure comes back as `Input::ResourceFailed`.
    Monitor,
}

/// The next incarnation: larger than the one stored and than the clock's microseconds, so that a
/// lost state file or a clock stepped back still gives the peers a number they accept as newer.
pub fn next_incarnation(state_dir: &Path) -> Result<u64, DaemonError> {
    let path = state_dir.join("incarnation");
    let err = |source| DaemonError::Incarnation {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(err)?;
    let stored = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let next = stored.saturating_add(1).max(clock);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{next}\n")).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(next)
}

/// The link specs for [`Links::start`], ids by position in the file.
fn link_specs(links: &[Link]) -> Vec<(u8, LinkSpec)> {
    links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let spec = match l.clone() {
                Link::Udp { bind, peer } => LinkSpec::Udp { bind, peer },
                Link::Mcast { dev, group, ttl } => LinkSpec::Mcast { dev, group, ttl },
                Link::Bcast { dev, port } => LinkSpec::Bcast { dev, port },
                Link::Serial { device, baud } => LinkSpec::Serial { device, baud },
                Link::Disk { path, .. } => LinkSpec::Disk { path },
            };
            (u8::try_from(i).unwrap_or(u8::MAX), spec)
        })
        .collect()
}

/// Whether an authenticated frame comes from one of my peers: a key holder that is not one of
/// them, or my own frame looped back, is [`Reject::UnknownSender`]; one in my name from another
/// incarnation is [`Reject::SameName`] (a second node configured with my name).
fn check_sender(me: &str, incarnation: u64, peers: &[String], msg: &Message) -> Result<(), Reject> {
    if msg.sender == me {
        return Err(if msg.incarnation == incarnation {
            Reject::UnknownSender
        } else {
            Reject::SameName
        });
    }
    if peers.contains(&msg.sender) {
        Ok(())
    } else {
        Err(Reject::UnknownSender)
    }
}

/// The daemon's state between events.
struct Daemon {
    config: Config,
    /// The file `config` came from (read again on reload).
    config_path: PathBuf,
    keys: KeyRing,
    incarnation: u64,
    seq: u64,
    machine: Machine,
    links: Links,
    guard: ReplayGuard,
    /// Loss and lag per peer and link, for status.
    stats: LinkStats,
    /// The origin of the times given to `stats`.
    started: Instant,
    rejected: Counters,
    runners: HashMap<String, mpsc::UnboundedSender<RunnerCmd>>,
    notifier: Arc<dyn Notifier>,
    /// For tasks that answer the loop (fence commands).
    inputs: mpsc::Sender<Input>,
    /// Kept so that the facts channel stays open without a fact source.
    _facts: mpsc::Sender<Fact>,
    /// Asks the ping task for a round at once (`Action::PingNow`).
    ping_now: mpsc::Sender<()>,
    stopping: Option<Instant>,
    stopped: bool,
    /// The incarnation of the last frame in my name that was logged as another node's.
    same_name_logged: Option<u64>,
}

/// Runs the daemon until a graceful stop has finished (or its time is up).
pub async fn run(
    config: Config,
    config_path: PathBuf,
    keys: KeyRing,
    notifier: Arc<dyn Notifier>,
    mut signals: mpsc::Receiver<SignalEvent>,
) -> Result<(), DaemonError> {
    let incarnation = next_incarnation(&config.state_dir)?;
    let (inputs_tx, mut inputs) = mpsc::channel::<Input>(64);

    let group = match &config.socket_group {
        Some(name) => Some(control::Group::lookup(name)?),
        None => None,
    };
    if let Some(dir) = config.socket.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = Listener::bind(
        &config.socket,
        Access {
            group,
            read_group: None,
        },
        |cmd| cmd != "status",
    )?;
    tokio::spawn(serve_control(listener, inputs_tx.clone()));

    let tx = inputs_tx.clone();
    tokio::spawn(async move {
        while let Some(s) = signals.recv().await {
            if tx.send(Input::Signal(s)).await.is_err() {
                return;
            }
        }
    });

    // One task per group: starts and stops run there, answers come back as inputs.
    let (resource_events, mut resource_log) = mpsc::unbounded_channel();
    let tx = inputs_tx.clone();
    tokio::spawn(async move {
        while let Some(e) = resource_log.recv().await {
            log_resource(&e);
            // Seen at once (the child's exit), not at the next monitor round.
            if let resource::Event::Died {
                group,
                index,
                status,
                ..
            } = e
            {
                let why = format!("resource {index} died ({status})");
                if tx.send(Input::ResourceFailed { group, why }).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut runners = HashMap::new();
    for g in &config.groups {
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<RunnerCmd>();
        // The policies decide what a death means (move or restart), not the supervisor.
        let timings = resource::Timings {
            self_restart: false,
            ..config.resource_timings
        };
        let mut runner = GroupRunner::new(
            &config.node,
            &g.name,
            g.resources.clone(),
            timings,
            resource_events.clone(),
        );
        let tx = inputs_tx.clone();
        let name = g.name.clone();
        // Armed commands run ahead of time only where the group may come.
        let may_hold = g.nodes.contains(&config.node);
        tokio::spawn(async move {
            if may_hold {
                runner.arm().await;
            }
            while let Some(cmd) = cmd_rx.recv().await {
                let (acquire, cause) = match cmd {
                    RunnerCmd::Run { acquire, cause } => (acquire, cause),
                    RunnerCmd::Reannounce => {
                        let n = runner.signal_commands(nix::sys::signal::Signal::SIGHUP);
                        tracing::info!(group = %name, commands = n, "announcing again (SIGHUP to its commands)");
                        continue;
                    }
                    RunnerCmd::Monitor => {
                        if may_hold && !runner.is_held() {
                            runner.arm().await;
                        }
                        if let Some(why) = runner.check_scripts().await {
                            let failed = Input::ResourceFailed {
                                group: name.clone(),
                                why,
                            };
                            if tx.send(failed).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                };
                let ok = if acquire {
                    runner
                        .acquire(&cause)
                        .await
                        .map_err(
                            |e| tracing::error!(group = %name, error = %e, "group not started"),
                        )
                        .is_ok()
                } else {
                    runner
                        .release(&cause)
                        .await
                        .map_err(|e| tracing::error!(group = %name, error = %e, "group not stopped cleanly"))
                        .is_ok()
                };
                let done = Input::Done {
                    group: name.clone(),
                    acquire,
                    ok,
                };
                if tx.send(done).await.is_err() {
                    return;
                }
                if may_hold && !runner.is_held() {
                    // Released, or a start that failed and was rolled back: ready for next time.
                    runner.arm().await;
                }
            }
        });
        runners.insert(g.name.clone(), cmd_tx);
    }

    let (facts_tx, mut facts) = mpsc::channel::<Fact>(16);
    // A round asked for at the start of a silence must answer well before the peer's deadtime.
    let (ping_now, ping_now_rx) = mpsc::channel::<()>(1);
    if let Some(p) = &config.ping {
        let urgent = p
            .timeout
            .min((config.deadtime.saturating_sub(config.warntime)) / 2)
            .max(URGENT_PING_MIN);
        facts::spawn_ping(p.clone(), urgent, ping_now_rx, facts_tx.clone());
    }
    let tracked: Vec<String> = config
        .groups
        .iter()
        .flat_map(|g| g.interfaces.clone())
        .collect();
    if !tracked.is_empty() {
        facts::spawn_carrier(tracked, facts_tx.clone());
    }
    let (inbound_tx, mut inbound) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let mut nodes: Vec<&str> = config.peers.iter().map(String::as_str).collect();
    nodes.push(&config.node);
    let setup = Setup {
        disk_poll: config.keepalive,
        ..Setup::new(&config.node, &nodes)
    };
    let links = Links::start(link_specs(&config.links), setup, inbound_tx);

    let now = Instant::now();
    let machine = Machine::new(config.machine_settings(), now.into_std());
    let mut d = Daemon {
        keys,
        incarnation,
        seq: 0,
        machine,
        links,
        guard: ReplayGuard::new(),
        stats: LinkStats::new(),
        started: now,
        rejected: Counters::default(),
        runners,
        notifier,
        inputs: inputs_tx.clone(),
        _facts: facts_tx,
        ping_now,
        stopping: None,
        stopped: false,
        same_name_logged: None,
        config,
        config_path,
    };
    tracing::info!(node = %d.config.node, cluster = %d.config.cluster, incarnation, links = d.config.links.len(), "started");
    let _ = d.notifier.ready();
    d.status_line();

    let mut tick = Ticker::new(d.config.keepalive);
    let mut death_timer = Box::pin(tokio::time::sleep_until(Instant::now()));
    let mut watchdog = WatchdogTicker::new(d.notifier.watchdog_period());
    let mut monitor = tokio::time::interval(d.config.monitor_interval);
    monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop_limit = stop_limit(&d.config);
    loop {
        // A peer's deadtime ends between two ticks: wake then too (only while it is ahead: a
        // deadline already past is the next tick's business, never a busy loop). A deadline at or
        // after the next tick needs no timer of its own: the tick sees it. So in steady state, where
        // each frame moves the deadline, no timer is moved per frame.
        let death = d
            .machine
            .next_death()
            .map(Instant::from_std)
            .filter(|at| *at > Instant::now() && *at < tick.next());
        if let Some(at) = death
            && death_timer.deadline() != at
        {
            death_timer.as_mut().reset(at);
        }
        // Not biased: a flood of frames must not starve the ticks, signals or control requests.
        tokio::select! {
            () = &mut death_timer, if death.is_some() => {
                d.frames_queued(&mut inbound);
                d.handle(MachineEvent::Tick);
            }
            Some(i) = inbound.recv() => {
                d.frame(i);
                d.frames_queued(&mut inbound);
            }
            _ = tick.tick() => {
                // Frames already queued go first: a tick must not be the first to see a silence
                // the sockets disprove.
                d.frames_queued(&mut inbound);
                d.quorum_disk();
                d.handle(MachineEvent::Tick);
                if let Some(since) = d.stopping
                    && since.elapsed() > stop_limit
                {
                    tracing::error!(limit = ?stop_limit, "the graceful stop took too long; exiting with groups possibly held");
                    break;
                }
            }
            Some(input) = inputs.recv() => match input {
                Input::Signal(SignalEvent::Shutdown) => {
                    if d.stopping.is_none() {
                        tracing::info!(reason = "signal", "stopping: releasing every group, then leaving");
                        let _ = d.notifier.stopping();
                        d.stopping = Some(Instant::now());
                        d.handle(MachineEvent::Stop);
                    }
                }
                Input::Signal(SignalEvent::Dump) => {
                    tracing::info!(status = ?d.status(), "state");
                }
                Input::Signal(SignalEvent::Reload) => {
                    if d.reload("SIGHUP").is_ok() {
                        tick.retime(d.config.keepalive);
                    }
                }
                Input::Control(req, reply) => {
                    let r = match req {
                        Request::Status => Reply::ok(d.status()),
                        Request::Standby => {
                            tracing::info!(reason = "control request", "standby: handing my groups over");
                            d.handle(MachineEvent::Standby);
                            Reply::ok(d.status())
                        }
                        Request::Takeover => {
                            tracing::info!(reason = "control request", "takeover: asking for every group I may hold");
                            d.handle(MachineEvent::Takeover);
                            Reply::ok(d.status())
                        }
                        Request::Reload => match d.reload("control request") {
                            Ok(()) => {
                                tick.retime(d.config.keepalive);
                                Reply::ok(d.status())
                            }
                            Err(e) => Reply::error(e),
                        },
                    };
                    let _ = reply.send(r);
                }
                Input::Fenced { peer, ok } => d.handle(MachineEvent::Fenced { peer, ok }),
                Input::ResourceFailed { group, why } => {
                    tracing::warn!(%group, %why, "resource failed");
                    d.handle(MachineEvent::ResourceFailed { group });
                }
                Input::Done { group, acquire, ok } => {
                    let ev = if acquire {
                        MachineEvent::Acquired { group, ok }
                    } else {
                        MachineEvent::Released { group, ok }
                    };
                    d.handle(ev);
                }
            },
            Some(f) = facts.recv() => match f {
                Fact::Ping { reached, total, started } => d.handle(MachineEvent::Ping {
                    reached,
                    total,
                    age: started.elapsed(),
                }),
                Fact::Carrier { iface, up } => d.handle(MachineEvent::Carrier { iface, up }),
            },
            _ = monitor.tick() => d.monitor(),
            _ = watchdog.tick() => {
                let _ = d.notifier.watchdog();
            }
        }
        if d.stopped {
            break;
        }
    }
    // The last Leave copies are queued: give the link tasks a moment to send them.
    tokio::time::sleep(d.config.keepalive.min(Duration::from_millis(100))).await;
    tracing::info!("stopped");
    Ok(())
}

/// The keepalive tick: a fixed grid (one tick every `period`, the first at once), served by two
/// timers in turn, each set for the tick after the other's.
///
/// Why not `tokio::time::interval`: after a tick the interval is set again for one period later,
/// which is earlier than any other timer the daemon has (peers' deadtimes, the watchdog), and
/// tokio's time driver answers a timer set earlier than its next wake-up by waking its own thread
/// (an eventfd write and one more `epoll_wait`): one extra wake-up per tick, a quarter of hbeat's
/// system calls at 20 ms (strace: ~47 eventfd writes a second). Here, when one timer fires the
/// other is already set for the next tick, and the fired one is set for the tick after it: never
/// the earliest, so never that extra wake-up. (`tests/bench/hbeat-cpu.sh`, host: figures in
/// issue 12's note.)
struct Ticker {
    period: Duration,
    /// When the next tick is due, and which timer holds it.
    next: Instant,
    turn: usize,
    timers: [std::pin::Pin<Box<tokio::time::Sleep>>; 2],
}

impl Ticker {
    fn new(period: Duration) -> Ticker {
        let now = Instant::now();
        Ticker {
            period,
            next: now,
            turn: 0,
            timers: [
                Box::pin(tokio::time::sleep_until(now)),
                Box::pin(tokio::time::sleep_until(now + period)),
            ],
        }
    }

    /// When the next tick is due.
    fn next(&self) -> Instant {
        self.next
    }

    /// Waits for the next tick. Cancel safe: nothing changes until the timer has fired.
    async fn tick(&mut self) {
        self.timers[self.turn].as_mut().await;
        let fired = self.turn;
        let other = 1 - fired;
        let mut following = self.next + self.period;
        let now = Instant::now();
        if following <= now {
            // Late by a period or more (a stalled process): the grid starts again from now, as
            // `MissedTickBehavior::Delay` does; no burst of ticks to catch up.
            following = now + self.period;
            self.timers[other].as_mut().reset(following);
        }
        self.next = following;
        self.turn = other;
        self.timers[fired].as_mut().reset(following + self.period);
    }

    /// A new period (reload): the grid starts again, the next tick one new period from now.
    fn retime(&mut self, period: Duration) {
        if period == self.period {
            return;
        }
        let now = Instant::now();
        self.period = period;
        self.next = now + period;
        self.turn = 0;
        self.timers[0].as_mut().reset(now + period);
        self.timers[1].as_mut().reset(now + period * 2);
    }
}

/// How long a graceful stop may take: every resource's stop limit, plus a margin.
fn stop_limit(c: &Config) -> Duration {
    let per = c
        .resource_timings
        .script_timeout
        .max(c.resource_timings.kill_after);
    let n = c.groups.iter().map(|g| g.resources.len()).sum::<usize>();
    per * u32::try_from(n).unwrap_or(u32::MAX) + STOP_MARGIN
}

impl Daemon {
    /// The frames already waiting, at most one queue's worth (the rest waits for the next turn).
    fn frames_queued(&mut self, inbound: &mut mpsc::Receiver<Inbound>) {
        for _ in 0..INBOUND_QUEUE {
            match inbound.try_recv() {
                Ok(i) => self.frame(i),
                Err(_) => return,
            }
        }
    }

    /// One datagram or slot from a link.
    fn frame(&mut self, i: Inbound) {
        let msg = match frame::decode(&i.bytes, &self.keys, &self.config.cluster) {
            Ok(m) => m,
            Err(r) => {
                self.reject(r, i.link);
                return;
            }
        };
        if let Err(r) = check_sender(
            &self.config.node,
            self.incarnation,
            &self.config.peers,
            &msg,
        ) {
            if r == Reject::SameName && self.same_name_logged != Some(msg.incarnation) {
                // Loud, once per foreign incarnation: two nodes with one name each see the other
                // as nobody, so both may hold every group.
                self.same_name_logged = Some(msg.incarnation);
                tracing::error!(
                    node = %msg.sender,
                    incarnation = msg.incarnation,
                    link = i.link,
                    "another node uses my name: its frames are ignored; give every node its own `node` name"
                );
            }
            self.reject(r, i.link);
            return;
        }
        if msg.link != i.link {
            // The sender's link ids are its own; they match mine only when both files list the
            // links in the same order, which `hbeat check` on both nodes should show. Liveness is
            // per my link, so the machine is told the link it arrived on.
            tracing::trace!(theirs = msg.link, mine = i.link, "link ids differ");
        }
        match self.guard.check(&msg) {
            Freshness::Replay => self.reject(Reject::Replay, i.link),
            Freshness::Fresh | Freshness::Duplicate => {
                let at = self.started.elapsed();
                self.stats
                    .observe(&msg.sender, msg.incarnation, msg.seq, i.link, at);
                self.handle(MachineEvent::Frame { link: i.link, msg });
            }
        }
    }

    /// Tells the machine when the quorum disk starts or stops showing my writes: the last read
    /// of my slot that found my last write must be at most warntime old.
    fn quorum_disk(&mut self) {
        let Some(id) = self.config.quorum_disk_link() else {
            return;
        };
        let seen = self.links.own_write_seen(id);
        let ok = seen.is_some_and(|t| t.elapsed() <= self.config.warntime);
        if self.machine.disk_ok() != Some(ok) {
            if ok {
                tracing::info!(link = id, "quorum disk: my writes are seen");
            } else {
                tracing::warn!(link = id, last_seen = ?seen.map(|t| t.elapsed()), "quorum disk: my writes are not seen (if no peer is heard, this node holds nothing)");
            }
            self.handle(MachineEvent::Disk { ok });
        }
    }

    fn reject(&mut self, r: Reject, link: u8) {
        tracing::debug!(reason = r.as_str(), link, "frame rejected");
        self.rejected.add(r);
    }

    /// Feeds the machine and carries out what it says.
    fn handle(&mut self, ev: MachineEvent) {
        let actions = self.machine.handle(std::time::Instant::now(), ev);
        for a in actions {
            self.act(a);
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Send { kind, to, groups } => self.send(kind, to, groups),
            Action::Acquire(g) => self.run_group(&g, true),
            Action::Release(g) => self.run_group(&g, false),
            Action::PeerDead { peer } => {
                let reason = match self.machine.peers().iter().find(|p| p.name == peer) {
                    Some(p) if p.liveness == Liveness::Left => "it left (graceful stop)",
                    Some(p) if p.liveness == Liveness::Down && p.last_seen_ago.is_none() => {
                        "not heard by initdead"
                    }
                    // The machine marks a restarted peer down before it is up again in the
                    // same frame.
                    Some(p) if p.liveness == Liveness::Up => "it restarted",
                    _ => "no frame within deadtime",
                };
                tracing::warn!(%peer, reason, "peer dead");
                self.status_line();
            }
            Action::PeerUp { peer } => {
                tracing::info!(%peer, "peer up");
                self.status_line();
            }
            Action::LinkLate { peer, link } => {
                tracing::warn!(%peer, link, "link late: no frame within warntime")
            }
            Action::LinkBack { peer, link } => tracing::info!(%peer, link, "link back"),
            Action::Transition { from, to, reason } => {
                tracing::info!(from = %from.letter(), to = %to.letter(), pair = %self.machine.pair(), %reason, "transition");
                self.notify(from, to, &reason);
                self.status_line();
            }
            Action::GroupsDiffer { peer } => {
                tracing::error!(%peer, "the peer's group definitions differ from mine: compare the [[group]] sections of both nodes")
            }
            Action::Stopped => self.stopped = true,
            Action::Fence { peer } => self.fence(peer),
            Action::Alert { group, reason } => {
                tracing::error!(group = group.as_deref().unwrap_or(""), %reason, "ALERT");
                let state = self.machine.state();
                self.run_notify(state, state, &reason, Some((group.as_deref(), &reason)));
            }
            Action::OldFrame { peer, link, behind } => {
                tracing::warn!(%peer, link, behind, "a frame of the dead peer set aside: written long before it arrived (a hung disk write?); its next frame is believed")
            }
            Action::PingNow => {
                tracing::debug!("no peer heard: a ping round now");
                let _ = self.ping_now.try_send(());
            }
            Action::Reannounce(g) => {
                tracing::info!(group = %g, "the group is mine alone again: announcing it");
                if let Some(tx) = self.runners.get(&g) {
                    let _ = tx.send(RunnerCmd::Reannounce);
                }
            }
        }
    }

    /// Asks the runner of every group held here to check its scripts.
    /// Held groups: their scripts `status`-checked; free ones: armed commands that ended armed
    /// again.
    fn monitor(&self) {
        use crate::machine::Hold;
        for g in self.machine.groups() {
            if matches!(g.mine, Hold::Held | Hold::Free)
                && let Some(tx) = self.runners.get(&g.name)
            {
                let _ = tx.send(RunnerCmd::Monitor);
            }
        }
    }

    /// Runs the peer's fence command (argv, no shell) with `HBEAT_NODE` and `HBEAT_PEER`; its exit
    /// status (0 = fenced) comes back as `Input::Fenced`. No command configured is a failure.
    fn fence(&self, peer: String) {
        let tx = self.inputs.clone();
        let argv = self.config.fence.get(&peer).cloned();
        let limit = self.config.resource_timings.script_timeout;
        let node = self.config.node.clone();
        tracing::warn!(%peer, "fencing the peer before taking over");
        tokio::spawn(async move {
            let ok = match argv.as_deref().and_then(|a| a.split_first()) {
                None => {
                    tracing::error!(%peer, "no fence command for this peer");
                    false
                }
                Some((prog, args)) => {
                    let child = tokio::process::Command::new(prog)
                        .args(args)
                        .env("HBEAT_NODE", &node)
                        .env("HBEAT_PEER", &peer)
                        .stdin(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .spawn();
                    match child {
                        Err(e) => {
                            tracing::error!(%peer, error = %e, command = %prog, "cannot run the fence command");
                            false
                        }
                        Ok(mut child) => match tokio::time::timeout(limit, child.wait()).await {
                            Ok(Ok(s)) if s.success() => true,
                            Ok(Ok(s)) => {
                                tracing::error!(%peer, status = %s, "the fence command failed");
                                false
                            }
                            Ok(Err(e)) => {
                                tracing::error!(%peer, error = %e, "the fence command failed");
                                false
                            }
                            Err(_) => {
                                let _ = child.kill().await;
                                tracing::error!(%peer, limit = ?limit, "the fence command took too long: killed");
                                false
                            }
                        },
                    }
                }
            };
            let _ = tx.send(Input::Fenced { peer, ok }).await;
        });
    }

    fn send(&mut self, kind: Kind, to: Option<String>, groups: Vec<String>) {
        self.seq += 1;
        let mut msg = Message {
            cluster: self.config.cluster.clone(),
            sender: self.config.node.clone(),
            incarnation: self.incarnation,
            seq: self.seq,
            kind,
            state: self.machine.state(),
            held: self.machine.held(),
            groups_hash: self.machine.settings().groups_hash,
            link: 0,
            to,
            groups,
            health: self.machine.health(),
        };
        for id in 0..self.config.links.len() {
            msg.link = u8::try_from(id).unwrap_or(u8::MAX);
            match frame::encode(&msg, &self.keys) {
                Ok(bytes) => {
                    self.links.send_on(msg.link, &bytes);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode a heartbeat");
                    return;
                }
            }
        }
    }

    fn run_group(&mut self, group: &str, acquire: bool) {
        let peer = self
            .machine
            .peers()
            .into_iter()
            .find(|p| p.held.iter().any(|g| g == group) || !up(p))
            .map(|p| p.name);
        let cause = Cause::new(peer.as_deref(), if acquire { "acquire" } else { "release" });
        tracing::info!(%group, action = if acquire { "start" } else { "stop" }, "group");
        if let Some(tx) = self.runners.get(group) {
            let _ = tx.send(RunnerCmd::Run { acquire, cause });
        } else {
            tracing::error!(%group, "no such group here");
            let ev = if acquire {
                MachineEvent::Acquired {
                    group: group.to_string(),
                    ok: false,
                }
            } else {
                MachineEvent::Released {
                    group: group.to_string(),
                    ok: true,
                }
            };
            self.handle(ev);
        }
    }

    fn notify(&self, from: NodeState, to: NodeState, reason: &str) {
        self.run_notify(from, to, reason, None);
    }

    /// The notify hook; an alert adds `HBEAT_ALERT` (and `HBEAT_GROUP` when it is about one).
    fn run_notify(
        &self,
        from: NodeState,
        to: NodeState,
        reason: &str,
        alert: Option<(Option<&str>, &str)>,
    ) {
        let Some(argv) = self.config.notify.clone() else {
            return;
        };
        let Some((prog, args)) = argv.split_first() else {
            return;
        };
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .env("HBEAT_NODE", &self.config.node)
            .env("HBEAT_FROM", from.letter().to_string())
            .env("HBEAT_STATE", to.letter().to_string())
            .env("HBEAT_PAIR", self.machine.pair())
            .env("HBEAT_HELD", self.machine.held().join(" "))
            .env("HBEAT_REASON", reason)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some((group, text)) = alert {
            cmd.env("HBEAT_ALERT", text);
            if let Some(g) = group {
                cmd.env("HBEAT_GROUP", g);
            }
        }
        let limit = self.config.resource_timings.script_timeout;
        match cmd.spawn() {
            Ok(mut child) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, child.wait()).await {
                        Ok(Ok(s)) if s.success() => {}
                        Ok(Ok(s)) => tracing::warn!(status = %s, "the notify command failed"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "the notify command failed"),
                        Err(_) => {
                            let _ = child.kill().await;
                            tracing::warn!(limit = ?limit, "the notify command took too long: killed");
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, command = %prog, "cannot run the notify command"),
        }
    }

    /// Reads the configuration file again and switches to it, or changes nothing and logs why.
    fn reload(&mut self, why: &str) -> Result<(), Refused> {
        let _ = self.notifier.reloading();
        let result = reload::prepare(&self.config_path, &self.config).and_then(|r| {
            if self.machine.reconfigure(r.config.machine_settings()) {
                Ok(r)
            } else {
                // prepare() compared the same fields; kept as a guard, never half-applied.
                Err(Refused(vec![
                    "the membership settings differ: restart the node".into(),
                ]))
            }
        });
        let _ = self.notifier.ready();
        match result {
            Ok(r) => {
                tracing::info!(reason = why, changed = ?r.changed, key_ids = ?r.keys.ids().collect::<Vec<_>>(), "reloaded");
                self.config = r.config;
                self.keys = r.keys;
                Ok(())
            }
            Err(e) => {
                for problem in &e.0 {
                    tracing::error!(reason = why, error = %problem, "reload refused: nothing changed");
                }
                Err(e)
            }
        }
    }

    fn status(&self) -> Status {
        let links: Vec<LinkStatus> = self.links.status();
        Status {
            node: self.config.node.clone(),
            cluster: self.config.cluster.clone(),
            incarnation: self.incarnation,
            state: self.machine.state().letter(),
            pair: self.machine.pair(),
            standby: self.machine.is_standby(),
            keepalive_ms: millis(self.config.keepalive),
            deadtime_ms: millis(self.config.deadtime),
            key_ids: self.keys.ids().collect(),
            quorum: self.machine.has_quorum(),
            votes: self.machine.votes(),
            ping: self.machine.ping_result(),
            quorum_disk: self.machine.disk_ok(),
            held: self.machine.held(),
            groups: self
                .machine
                .groups()
                .into_iter()
                .map(|g| GroupStatus {
                    unready: self.machine.unready_reason(&g.name),
                    name: g.name,
                    holder: g.holder,
                })
                .collect(),
            peers: self
                .machine
                .peers()
                .into_iter()
                .map(|p| PeerStatus {
                    up: up(&p),
                    state: p.state.letter(),
                    liveness: match p.liveness {
                        Liveness::Unknown => "unknown",
                        Liveness::Up => "up",
                        Liveness::Down => "down",
                        Liveness::Left => "left",
                    }
                    .to_string(),
                    last_seen_ms: p.last_seen_ago.map(millis),
                    held: p.held,
                    groups_differ: p.groups_differ,
                    links: p
                        .links
                        .iter()
                        .map(|l| {
                            let f = self.stats.report(&p.name, l.link);
                            PeerLinkStatus {
                                id: l.link,
                                last_seen_ms: l.last_seen_ago.map(millis),
                                late: l.late,
                                loss_pct: f.map_or(0.0, |f| tenths(f.loss_pct)),
                                lag_ms: f.map_or(0.0, |f| tenths(f.lag_us as f64 / 1000.0)),
                            }
                        })
                        .collect(),
                    name: p.name,
                })
                .collect(),
            links: links
                .into_iter()
                .map(|l| LinkReport {
                    id: l.id,
                    what: l.what.clone(),
                    up: l.up,
                    error: l.last_error.clone(),
                    sent: l.frames_sent,
                    received: l.frames_received,
                    rejected_source: l.rejected_source,
                    garbage: l.garbage,
                })
                .collect(),
            rejected: self
                .rejected
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
        }
    }

    /// `active: web; lb2 up` for systemd.
    fn status_line(&self) {
        let held = self.machine.held();
        let mut line = if held.is_empty() {
            "standing by".to_string()
        } else {
            format!("active: {}", held.join(", "))
        };
        for p in self.machine.peers() {
            line += &format!("; {} {}", p.name, if up(&p) { "up" } else { "down" });
        }
        let _ = self.notifier.status(&line);
    }
}

/// The status as text: one line for me, one per peer, link and group.
pub fn text(s: &Status) -> String {
    let mut out = format!(
        "{} ({}): {} {}{}, holds: {}\n",
        s.node,
        s.cluster,
        s.state,
        s.pair,
        if s.standby { ", standby" } else { "" },
        if s.held.is_empty() {
            "nothing".to_string()
        } else {
            s.held.join(", ")
        }
    );
    for p in &s.peers {
        out += &format!(
            "peer {}: {} {}, last seen {}, holds: {}{}\n",
            p.name,
            p.liveness,
            p.state,
            p.last_seen_ms
                .map_or("never".to_string(), |m| format!("{m} ms ago")),
            if p.held.is_empty() {
                "nothing".to_string()
            } else {
                p.held.join(", ")
            },
            if p.groups_differ {
                " (its groups differ from mine!)"
            } else {
                ""
            }
        );
        for l in &p.links {
            out += &format!(
                "  via link {}: last {}{}, loss {}%, lag {} ms\n",
                l.id,
                l.last_seen_ms
                    .map_or("never".to_string(), |m| format!("{m} ms ago")),
                if l.late { " (late)" } else { "" },
                l.loss_pct,
                l.lag_ms
            );
        }
    }
    for l in &s.links {
        out += &format!(
            "link {} {}: {}, sent {}, received {}{}\n",
            l.id,
            l.what,
            if l.up { "up" } else { "down" },
            l.sent,
            l.received,
            l.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    for g in &s.groups {
        out += &format!(
            "group {}: {}{}\n",
            g.name,
            g.holder.as_deref().unwrap_or("nobody"),
            g.unready
                .as_deref()
                .map(|u| format!(" (not ready here: {u})"))
                .unwrap_or_default()
        );
    }
    if !s.quorum {
        out += &format!(
            "no quorum: the nodes heard have {} of {} votes\n",
            s.votes.0, s.votes.1
        );
    }
    if let Some((reached, total)) = s.ping {
        out += &format!("ping targets reached: {reached} of {total}\n");
    }
    match s.quorum_disk {
        Some(true) => out += "quorum disk: my writes are seen\n",
        Some(false) => out += "quorum disk: my writes are NOT seen (cut off if no peer is heard)\n",
        None => {}
    }
    if !s.rejected.is_empty() {
        let r: Vec<String> = s.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out += &format!("rejected frames: {}\n", r.join(", "));
    }
    let keys: Vec<String> = s.key_ids.iter().map(u8::to_string).collect();
    out += &format!(
        "keepalive {} ms, deadtime {} ms; key ids {} (the first sends)\n",
        s.keepalive_ms,
        s.deadtime_ms,
        keys.join(", ")
    );
    out
}

/// Rounded to one decimal, for people.
fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn up(p: &crate::machine::PeerView) -> bool {
    p.liveness == Liveness::Up
}

fn log_resource(e: &resource::Event) {
    tracing::info!(event = ?e, "resource");
}

/// Serves the control socket: turns requests into inputs.
async fn serve_control(mut listener: Listener, inputs: mpsc::Sender<Input>) {
    while let Some(req) = listener.accept().await {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let reply = match req.parse::<Request>() {
                Err(e) => Reply::error(e),
                Ok(r) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = inputs.send(Input::Control(r, tx)).await;
                    rx.await
                        .unwrap_or_else(|_| Reply::error("the daemon is stopping"))
                }
            };
            req.reply(reply);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticks fall on the grid (the first at once), one per period, however the two timers
    /// take turns.
    #[tokio::test(start_paused = true)]
    async fn ticks_fall_on_a_fixed_grid_of_one_per_period() {
        let period = Duration::from_millis(20);
        let start = Instant::now();
        let mut t = Ticker::new(period);
        for k in 0..10u32 {
            assert_eq!(t.next(), start + period * k);
            t.tick().await;
            assert_eq!(Instant::now(), start + period * k, "tick {k}");
        }
        assert_eq!(t.next(), start + period * 10);
    }

    /// Work between ticks does not shift the grid; a stall of more than a period starts it again
    /// from the late tick (no burst to catch up), as `MissedTickBehavior::Delay` did.
    #[tokio::test(start_paused = true)]
    async fn a_late_tick_starts_the_grid_again_without_a_burst() {
        let period = Duration::from_millis(20);
        let start = Instant::now();
        let mut t = Ticker::new(period);
        t.tick().await;
        tokio::time::advance(Duration::from_millis(7)).await;
        t.tick().await;
        assert_eq!(
            Instant::now(),
            start + period,
            "work shorter than a period: on the grid"
        );
        // A stall of 75 ms: the tick due at 40 ms comes at once (late), the next one period later.
        tokio::time::advance(Duration::from_millis(75)).await;
        let late = Instant::now();
        t.tick().await;
        assert_eq!(Instant::now(), late);
        assert_eq!(t.next(), late + period);
        t.tick().await;
        assert_eq!(
            Instant::now(),
            late + period,
            "one period after the late tick, not at once"
        );
        t.tick().await;
        assert_eq!(Instant::now(), late + period * 2);
    }

    /// A select that drops the tick before it fired changes nothing (the daemon's loop does so on
    /// every frame).
    #[tokio::test(start_paused = true)]
    async fn a_tick_dropped_before_it_fired_is_not_lost() {
        let period = Duration::from_millis(20);
        let start = Instant::now();
        let mut t = Ticker::new(period);
        t.tick().await;
        for _ in 0..3 {
            tokio::select! {
                () = t.tick() => panic!("the tick came before its time"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        t.tick().await;
        assert_eq!(Instant::now(), start + period);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_period_restarts_the_grid_from_now() {
        let mut t = Ticker::new(Duration::from_millis(20));
        t.tick().await;
        tokio::time::advance(Duration::from_millis(5)).await;
        let at = Instant::now();
        t.retime(Duration::from_millis(50));
        assert_eq!(t.next(), at + Duration::from_millis(50));
        t.tick().await;
        assert_eq!(Instant::now(), at + Duration::from_millis(50));
        t.tick().await;
        assert_eq!(Instant::now(), at + Duration::from_millis(100));
        t.retime(Duration::from_millis(50));
        assert_eq!(
            t.next(),
            at + Duration::from_millis(150),
            "the same period: unchanged"
        );
    }

    #[test]
    fn incarnations_grow_across_restarts_and_a_lost_file() {
        let dir = std::env::temp_dir().join(format!("hbeat-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = next_incarnation(&dir).unwrap();
        let second = next_incarnation(&dir).unwrap();
        assert!(second > first);
        // A stored value ahead of the clock (a clock stepped back) still grows by one.
        std::fs::write(dir.join("incarnation"), format!("{}\n", u64::MAX / 2)).unwrap();
        assert_eq!(next_incarnation(&dir).unwrap(), u64::MAX / 2 + 1);
        // A lost or garbled file: the clock keeps it above every earlier start's.
        std::fs::write(dir.join("incarnation"), "garbage").unwrap();
        assert!(next_incarnation(&dir).unwrap() > second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn from(sender: &str, incarnation: u64) -> Message {
        Message {
            cluster: "lb".into(),
            sender: sender.into(),
            incarnation,
            seq: 1,
            kind: Kind::Alive,
            state: NodeState::Normal,
            held: vec![],
            groups_hash: 0,
            link: 0,
            to: None,
            groups: vec![],
            health: Default::default(),
        }
    }

    #[test]
    fn a_frame_in_my_name_from_another_process_is_rejected_as_same_name() {
        let peers = vec!["lb2".to_string()];
        assert_eq!(check_sender("lb1", 7, &peers, &from("lb2", 3)), Ok(()));
        // Another process (any other incarnation, older or newer) configured with my name.
        assert_eq!(
            check_sender("lb1", 7, &peers, &from("lb1", 8)),
            Err(Reject::SameName)
        );
        assert_eq!(
            check_sender("lb1", 7, &peers, &from("lb1", 6)),
            Err(Reject::SameName)
        );
        // My own frame come back (a loop) and a key holder that is no peer of mine.
        assert_eq!(
            check_sender("lb1", 7, &peers, &from("lb1", 7)),
            Err(Reject::UnknownSender)
        );
        assert_eq!(
            check_sender("lb1", 7, &peers, &from("lb3", 1)),
            Err(Reject::UnknownSender)
        );
    }

    fn sample_status() -> Status {
        Status {
            node: "lb1".into(),
            cluster: "lb".into(),
            incarnation: 7,
            state: 'T',
            pair: "(T,D)".into(),
            standby: false,
            keepalive_ms: 20,
            deadtime_ms: 100,
            key_ids: vec![2, 1],
            quorum: false,
            votes: (1, 3),
            ping: Some((0, 2)),
            quorum_disk: Some(false),
            held: vec!["web".into()],
            groups: vec![
                GroupStatus {
                    name: "web".into(),
                    holder: Some("lb1".into()),
                    unready: None,
                },
                GroupStatus {
                    name: "mail".into(),
                    holder: None,
                    unready: Some("eth1 has no carrier".into()),
                },
            ],
            peers: vec![PeerStatus {
                name: "lb2".into(),
                state: 'D',
                up: false,
                liveness: "down".into(),
                last_seen_ms: None,
                held: vec![],
                groups_differ: true,
                links: vec![PeerLinkStatus {
                    id: 1,
                    last_seen_ms: Some(1500),
                    late: true,
                    loss_pct: 31.3,
                    lag_ms: 0.4,
                }],
            }],
            links: vec![LinkReport {
                id: 1,
                what: "mcast nosuch0 239.255.0.1:694".into(),
                up: false,
                error: Some("no such device".into()),
                sent: 0,
                received: 0,
                rejected_source: 0,
                garbage: 0,
            }],
            rejected: vec![("bad_mac".into(), 3)],
        }
    }

    #[test]
    fn the_status_text_has_a_line_per_peer_link_group_and_the_settings() {
        assert_eq!(
            text(&sample_status()),
            "lb1 (lb): T (T,D), holds: web\n\
             peer lb2: down D, last seen never, holds: nothing (its groups differ from mine!)\n\
             \x20 via link 1: last 1500 ms ago (late), loss 31.3%, lag 0.4 ms\n\
             link 1 mcast nosuch0 239.255.0.1:694: down, sent 0, received 0 (no such device)\n\
             group web: lb1\n\
             group mail: nobody (not ready here: eth1 has no carrier)\n\
             no quorum: the nodes heard have 1 of 3 votes\n\
             ping targets reached: 0 of 2\n\
             quorum disk: my writes are NOT seen (cut off if no peer is heard)\n\
             rejected frames: bad_mac 3\n\
             keepalive 20 ms, deadtime 100 ms; key ids 2, 1 (the first sends)\n"
        );
    }

    #[test]
    fn the_status_text_tells_a_peer_that_left_from_a_dead_one_and_counts_same_name() {
        let mut s = sample_status();
        s.peers[0].liveness = "left".into();
        s.rejected = vec![("same_name".into(), 2)];
        let t = text(&s);
        assert!(t.contains("\npeer lb2: left D, last seen never,"), "{t}");
        assert!(t.contains("\nrejected frames: same_name 2\n"), "{t}");
    }

    #[test]
    fn link_ids_follow_the_file_order() {
        let links = vec![
            Link::Udp {
                bind: "192.0.2.11:694".parse().unwrap(),
                peer: "192.0.2.12:694".parse().unwrap(),
            },
            Link::Disk {
                path: "/dev/sdb1".into(),
                quorum: true,
            },
        ];
        let specs = link_specs(&links);
        assert_eq!(specs.len(), 2);
        assert!(matches!(specs[0], (0, LinkSpec::Udp { .. })));
        assert!(matches!(specs[1], (1, LinkSpec::Disk { .. })));
    }
}
