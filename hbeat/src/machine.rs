//! Membership and failover: a pure state machine `(now, event) -> actions`.
//!
//! The daemon feeds it ticks (at least every `keepalive`), authenticated fresh frames, the resource
//! runner's answers and the operator's commands; it returns what to do: send a message, acquire or
//! release a group, log a peer or link change, report a transition. It never reads the clock, never
//! touches a socket or a process, and holds no global state, so two or three of them are wired
//! together in memory in the tests (`machine/tests.rs`) with a fake clock and a lossy network.
//!
//! # States (the seed paper's N/T/R/D)
//! Each node computes its own letter; a peer's letter is what its last frame said, or `D` when it is
//! not up (dead, left, or not heard yet).
//! - **R** (Recover): `auto_failback` is on and one of my home groups (I am first in its `nodes`)
//!   is not yet held by me: I am back (or starting) and waiting for it. A node in standby, or one
//!   that handed its home group away on request, does not want it back and is not R.
//! - **T** (Takeover): I hold (or am acquiring) a group that I took because the node it belongs
//!   to was down or left. This is the only way into T: a group moved by a handshake between live
//!   nodes (standby, takeover, failback) never makes its taker T. T ends when I start releasing
//!   the group, or, without `auto_failback`, as soon as the group's home node is up again (nobody
//!   will ask for it back: the new placement is settled and both nodes are N).
//! - **N** (Normal): neither. R wins over T when both apply.
//!
//! The primary failing and returning with `auto_failback`: (N,N) → (D,N) → (D,T) (the standby
//! acquired) → (R,T) (the primary is back) → (R,N) (the standby released after the primary's
//! takeover request) → (N,N) (the primary acquired). Without `auto_failback`: (N,N) → (D,N) →
//! (D,T) → (N,N) with the groups staying on the standby (seen from outside, (N,T) lasts the one
//! frame's flight until the standby hears that the primary is back). With `auto_failback` a cold
//! start is (R,R) or (R,N) until each node holds its home groups.
//!
//! **TT is impossible while the nodes hear each other**: T is entered only by taking a group from a
//! node that is down in my view, so both being T needs each to have seen the other down, i.e. no
//! frame in either direction for `deadtime` (a partition: split brain, the next issue's policies).
//! When the partition heals, each node releases the groups it took in the very step in which it
//! first hears the other holding them (it comes later in their `nodes`), so two nodes that hear
//! each other are still never both T. (With three nodes, two live nodes that each took a group
//! from a dead third one are both T, which is fine: they did not take from each other.)
//!
//! # Rules
//! - A peer is up from its first frame (any link) and down after `deadtime` without one, or at
//!   once on `Leave`. A frame whose sequence is not newer than the last one acted on (the same
//!   frame on another link) only refreshes liveness. A larger incarnation is a restart: it holds
//!   nothing now. `warntime` without a frame on a link reports that link late.
//! - **Old frames**: a peer that is down and comes back in the same incarnation must have stamped
//!   a message per keepalive while silent; a frame whose sequence advanced less than a quarter of
//!   that was written long ago and delivered late (a write that hung in a suspended disk path, a
//!   node stopped with SIGSTOP) and says what the peer held then. It is set aside
//!   ([`Action::OldFrame`]), once: the next frame is believed.
//! - **Evidence**: I never acquire a group that a live peer says it holds (held includes groups
//!   being acquired or released), nor one that a peer not yet heard since my start may hold
//!   (during `initdead`); a node that hears nobody by `initdead` takes what it may hold.
//! - A free group is acquired by its *designated* node: the first node of its `nodes` that is up
//!   (in my view). A node in standby, not eligible, or whose acquire of the group failed skips
//!   itself while another allowed node is up, and offers the group with a standby request.
//! - Between live nodes a group moves only by the handshake: standby request → ack → the holder
//!   releases → the taker acquires once the holder's frames no longer list the group; or takeover
//!   request → ack (the holder releases) → the taker acquires likewise. Requests are repeated every
//!   keepalive until answered; answers are idempotent, so lost and duplicated frames are harmless.
//!   Crossing manual takeover requests: the node with the smaller name wins.
//! - **Conflict** (a live peer holds a group I hold: a healed partition, a one-way link, a
//!   suspended node waking up): the node later in the group's `nodes` releases at once; the
//!   earlier one keeps it, unless the peer still holds it `deadtime` later: then the peer
//!   evidently cannot hear me (one-way link) and I release too. On a one-way link (I hear the
//!   peer, it does not hear me) the peer declares me dead and takes my groups; the side that hears
//!   the conflict is the only one that can resolve it, so it yields and stays away while it hears
//!   the holder. Without quorum or fencing that is the best a pair can do.
//! - **Clock jumps**: a gap of more than `warntime` between two calls means this process was
//!   suspended or starved (the daemon ticks every keepalive), so it counts as one keepalive: the
//!   peers get a full `deadtime` to be heard before anything is concluded from the gap, and a node
//!   waking up does not take over groups whose holder is alive. The peer that saw it silent has
//!   taken its groups; the conflict rule gives them back to the earlier node in `nodes`.
//! - A handover or offer nobody takes within `request_timeout` (10 × deadtime, at least initdead)
//!   after the release lapses: a standby node then serves the group again rather than leave it
//!   down. A failed start is never retried on its own (it would loop at the runner's pace): the
//!   group is offered to the next node; `Takeover` clears the mark.
//!
//! # The daemon's side
//! Call `Tick` at least every keepalive, and hand over frames already received before the tick
//! (a tick after a long gap should not be the first thing to see a silence the sockets disprove).
//! Each `Send` is one message with one sequence number on every link: the codec's replay check
//! must accept a sequence once per link, or every link but the fastest would look dead. Fill the
//! message's `state` and `held` from [`Machine::state`] and [`Machine::held`] after `handle`
//! returns. `Leave` is sent once; if every copy is lost the peers wait deadtime.
//!
//! # Where the next issue's policies slot in
//! `Event::Eligible { ok }` is the hook: a policy (ping nodes or quorum lost, a tracked interface
//! down, fencing not yet confirmed) marks this node not eligible, which makes it behave like
//! standby — hand its groups to an eligible peer with the handshake, acquire nothing while another
//! allowed node is up. Split-brain handling and fencing add a gate before `Action::Acquire` on
//! failover (the `taken_over` path in `decide`); local restart vs failover is the `Acquired { ok:
//! false }` path, which today releases the group and offers it to the next node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::msg::{Health, Kind, Message, NodeState};

mod policy;
#[cfg(test)]
mod tests;

/// A resource group as the machine sees it: a name and who may hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    /// The nodes allowed to hold the group, in order of preference: the first is its home.
    pub nodes: Vec<String>,
    /// Interfaces that must have carrier for this node to serve the group.
    pub interfaces: Vec<String>,
}

/// The failover policies' settings; `Policy::default()` is the plain core (no ping targets, no
/// fencing, no local restarts, one vote each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// With three or more nodes, hold groups only while the nodes I hear have a majority of the
    /// votes (off: a lone survivor holds everything, the seeds' three-host mode).
    pub quorum: bool,
    /// Votes per node, me included; a node not listed has one.
    pub votes: BTreeMap<String, u32>,
    /// Ping targets are configured: reachability is compared with the peers' and isolation
    /// (no peer, no target) forbids taking over.
    pub ping: bool,
    /// A disk link is the quorum disk: a node that hears no peer may hold groups only while it
    /// sees its own writes on the disk (`Event::Disk`).
    pub quorum_disk: bool,
    /// Peers with a fence command: fenced before I take a group over from them.
    pub fence: BTreeSet<String>,
    /// Local restarts of a failed group allowed within `restart_window` (when no peer is ready
    /// to take it) before it is given up with an alert.
    pub restart_limit: u32,
    pub restart_window: Duration,
}

/// What the machine needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub me: String,
    /// The other nodes' names.
    pub peers: Vec<String>,
    pub keepalive: Duration,
    pub warntime: Duration,
    pub deadtime: Duration,
    pub initdead: Duration,
    pub auto_failback: bool,
    /// How long a returning home node waits (from its start) before it asks for its groups back.
    pub failback_holdoff: Duration,
    pub groups: Vec<GroupSpec>,
    /// This node's link ids (for per-link last-seen and late reports).
    pub links: Vec<u8>,
    /// This node's hash of its group definitions; compared with every peer's.
    pub groups_hash: u64,
    pub policy: Policy,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Time passed; the daemon calls this at least every keepalive.
    Tick,
    /// An authenticated, fresh frame arrived on one of my links.
    Frame { link: u8, msg: Message },
    /// The runner finished starting a group.
    Acquired { group: String, ok: bool },
    /// The runner finished stopping a group.
    Released { group: String, ok: bool },
    /// `hbeat standby`: hand my groups to a peer.
    Standby,
    /// `hbeat takeover`: ask the peers for every group I may hold; ends standby.
    Takeover,
    /// Graceful stop: release everything, then send `Leave`.
    Stop,
    /// A policy's verdict on whether this node may hold groups (see the module doc). Nodes
    /// start eligible.
    Eligible { ok: bool },
    /// The ping targets reached in a round that started `age` ago, of those configured.
    Ping {
        reached: u8,
        total: u8,
        age: Duration,
    },
    /// Whether this node still sees its own latest write on the quorum disk (read back within
    /// warntime). Nodes start without it.
    Disk { ok: bool },
    /// An interface gained or lost carrier (or was deleted: `up: false`).
    Carrier { iface: String, up: bool },
    /// A held group's resource failed (a supervised command died, a `status` check failed).
    ResourceFailed { group: String },
    /// The fence command for `peer` finished.
    Fenced { peer: String, ok: bool },
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a message on every link; the daemon fills in state, held groups and sequence from
    /// [`Machine::state`] and [`Machine::held`] after `handle` returns.
    Send {
        kind: Kind,
        to: Option<String>,
        groups: Vec<String>,
    },
    /// Start a group (its resources left to right); answer with `Event::Acquired`.
    Acquire(String),
    /// Stop a group (right to left); answer with `Event::Released`.
    Release(String),
    PeerDead {
        peer: String,
    },
    PeerUp {
        peer: String,
    },
    /// No frame from `peer` on `link` for warntime.
    LinkLate {
        peer: String,
        link: u8,
    },
    LinkBack {
        peer: String,
        link: u8,
    },
    /// My own letter changed (logs, the notify hook).
    Transition {
        from: NodeState,
        to: NodeState,
        reason: String,
    },
    /// The peer's group definitions differ from mine.
    GroupsDiffer {
        peer: String,
    },
    /// Graceful stop finished: everything released and `Leave` sent.
    Stopped,
    /// Run the fence command for `peer`; answer with `Event::Fenced`.
    Fence {
        peer: String,
    },
    /// Something needs a person (notify hook with an alert): a group given up after its restarts,
    /// a stop that failed, a fence that failed.
    Alert {
        group: Option<String>,
        reason: String,
    },
    /// A split brain ended with me keeping the group: announce it again (the VIP's neighbours may
    /// have learnt the other node's MAC).
    Reannounce(String),
    /// No peer heard for warntime while ping targets are configured: run a ping round now
    /// (answer with `Event::Ping`), so that a node cut off learns it before the peer's deadtime
    /// and one that is not may take over at deadtime (a result older than the silence is no
    /// evidence either way).
    PingNow,
    /// A frame of a dead peer was set aside: its sequence is at least `behind` messages older than
    /// the time it was silent allows (written long ago, delivered late).
    OldFrame {
        peer: String,
        link: u8,
        behind: u64,
    },
}

/// A peer's liveness in my view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Not heard since my start, `initdead` not over.
    Unknown,
    Up,
    /// No frame for deadtime (or never heard by initdead).
    Down,
    /// Said `Leave`: down until a new incarnation.
    Left,
}

/// My own hold on a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Free,
    Acquiring,
    Held,
    Releasing,
    /// The release failed: resources may still run, so I keep reporting it held (nobody else
    /// takes it) and do not retry on my own; `Stop` retries once.
    ReleaseFailed,
}

impl Hold {
    fn occupied(self) -> bool {
        !matches!(self, Hold::Free)
    }
}

/// One link of a peer, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    pub link: u8,
    /// Time since the last frame on this link (as of the last event handled).
    pub last_seen_ago: Option<Duration>,
    pub late: bool,
}

/// One peer, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub name: String,
    pub liveness: Liveness,
    /// Its letter: what it said while up, `D` otherwise.
    pub state: NodeState,
    pub incarnation: Option<u64>,
    pub last_seen_ago: Option<Duration>,
    pub links: Vec<LinkView>,
    pub held: Vec<String>,
    pub groups_differ: bool,
}

/// One group, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// Who holds it as far as I know: me (if occupied) or a live peer that says so.
    pub holder: Option<String>,
    pub mine: Hold,
}

#[derive(Debug)]
struct LinkSeen {
    last: Option<Duration>,
    late: bool,
}

#[derive(Debug)]
struct Peer {
    live: Liveness,
    incarnation: Option<u64>,
    /// The last sequence acted on in this incarnation.
    seq: Option<u64>,
    last_seen: Option<Duration>,
    up_since: Duration,
    /// A frame of it was set aside as old since it was last up: the next one is believed.
    doubted: bool,
    /// The groups that set-aside frame listed: a copy may still run there until the next frame.
    doubted_held: BTreeSet<String>,
    links: BTreeMap<u8, LinkSeen>,
    state: NodeState,
    held: BTreeSet<String>,
    groups_hash: Option<u64>,
    /// What its last frame said it can serve.
    health: Health,
}

#[derive(Debug)]
struct Slot {
    name: String,
    nodes: Vec<String>,
    hold: Hold,
    /// Acquired because its home was down or left (makes me T).
    taken_over: bool,
    /// The current hold came by a handshake.
    via_transfer: bool,
    /// Granted to this peer (standby ack or takeover grant): release it, do not acquire it again
    /// until that peer holds it, is down, or has not taken it for `request_timeout` after my
    /// release (the time is refreshed while I still hold it).
    handing_to: Option<(String, Duration)>,
    /// This peer agreed to give it to me: acquire once its frames no longer list it.
    pending_from: Option<(String, Duration)>,
    conflict_since: Option<Duration>,
    /// Since when nothing of the policy keeps me from serving it (`None` while something does;
    /// zero: from the start): a failback waits `failback_holdoff` from here.
    ready_since: Option<Duration>,
    /// My acquire failed: skip myself while another allowed node is up.
    failed: bool,
    /// I handed my home group away on request: no failback for it.
    waived: bool,
    /// `Takeover` command: ask its holder for it until this time.
    intent: Option<Duration>,
    /// When I first offered it (free, and I should not take it myself).
    offer_since: Option<Duration>,
    /// When I last sent that offer (a `StandbyRequest`): a peer may accept it until its frames
    /// say so, so I take the group myself no sooner than deadtime after it.
    offered_at: Option<Duration>,
    /// Interfaces that must have carrier for me to serve it.
    interfaces: Vec<String>,
    /// When its local restarts happened (within the restart window).
    restarts: Vec<Duration>,
    /// Released to be started again here (a local restart).
    restart_pending: bool,
    /// Released because a peer took it over while this process was suspended: say so (unready)
    /// until released, so the peer keeps it.
    yielding: bool,
}

/// The membership and failover state machine of one node.
#[derive(Debug)]
pub struct Machine {
    s: Settings,
    /// Machine time since `new` (gaps longer than warntime count as one keepalive).
    t: Duration,
    last_now: Instant,
    peers: BTreeMap<String, Peer>,
    slots: Vec<Slot>,
    standby: bool,
    eligible: bool,
    stopping: bool,
    stopped: bool,
    state: NodeState,
    last_sent: Option<Duration>,
    sent: Option<(NodeState, Vec<String>)>,
    req_sent: HashMap<(Kind, String), Duration>,
    reason: String,
    /// The last ping round: targets reached, of those configured (`None` before the first).
    ping: Option<(u8, u8)>,
    /// When that round started (machine time).
    ping_started: Duration,
    /// When I last asked for a round at once (`Action::PingNow`).
    ping_asked: Option<Duration>,
    /// The quorum disk shows my own writes (false before the first confirmation).
    disk: bool,
    /// Interfaces without carrier.
    carrier_down: BTreeSet<String>,
    /// Peers fenced since they were last up.
    fenced: BTreeSet<String>,
    /// Fence commands running (`None`) or failed and to be retried at this time.
    fencing: BTreeMap<String, Option<Duration>>,
    /// When this process last woke from a suspension (a gap longer than warntime).
    woke: Option<Duration>,
    /// Whether the nodes I heard had quorum at the last decision, and since when they have it
    /// again after a loss (or the start): acquiring waits a deadtime after that, so that every
    /// peer of the healed partition is heard (one may hold the group) before I take anything.
    had_quorum: bool,
    quorum_back: Option<Duration>,
}

impl Machine {
    /// A machine that starts now, holding nothing, with every peer unknown until heard or
    /// `initdead` passes.
    pub fn new(settings: Settings, now: Instant) -> Machine {
        let peers = settings
            .peers
            .iter()
            .map(|p| {
                let links = settings
                    .links
                    .iter()
                    .map(|&l| {
                        (
                            l,
                            LinkSeen {
                                last: None,
                                late: false,
                            },
                        )
                    })
                    .collect();
                let peer = Peer {
                    live: Liveness::Unknown,
                    incarnation: None,
                    seq: None,
                    last_seen: None,
                    up_since: Duration::ZERO,
                    doubted: false,
                    doubted_held: BTreeSet::new(),
                    links,
                    state: NodeState::Down,
                    held: BTreeSet::new(),
                    groups_hash: None,
                    health: Health::default(),
                };
                (p.clone(), peer)
            })
            .collect();
        let slots = settings
            .groups
            .iter()
            .map(|g| Slot {
                name: g.name.clone(),
                nodes: g.nodes.clone(),
                interfaces: g.interfaces.clone(),
                restarts: Vec::new(),
                restart_pending: false,
                yielding: false,
                hold: Hold::Free,
                taken_over: false,
                via_transfer: false,
                handing_to: None,
                pending_from: None,
                conflict_since: None,
                ready_since: Some(Duration::ZERO),
                failed: false,
                waived: false,
                intent: None,
                offer_since: None,
                offered_at: None,
            })
            .collect();
        let mut m = Machine {
            s: settings,
            t: Duration::ZERO,
            last_now: now,
            peers,
            slots,
            standby: false,
            eligible: true,
            stopping: false,
            stopped: false,
            state: NodeState::Normal,
            last_sent: None,
            sent: None,
            req_sent: HashMap::new(),
            reason: String::new(),
            ping: None,
            ping_started: Duration::ZERO,
            ping_asked: None,
            disk: false,
            carrier_down: BTreeSet::new(),
            fenced: BTreeSet::new(),
            fencing: BTreeMap::new(),
            woke: None,
            had_quorum: false,
            quorum_back: None,
        };
        m.had_quorum = m.quorum();
        m
    }

    /// Handle one event at `now` (monotonic) and return what to do, in order.
    pub fn handle(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        self.advance(now);
        let tick = matches!(ev, Event::Tick);
        match ev {
            Event::Tick => self.reason = "tick".into(),
            Event::Frame { link, msg } => self.on_frame(link, msg, &mut out),
            Event::Acquired { group, ok } => self.on_acquired(&group, ok),
            Event::Released { group, ok } => self.on_released(&group, ok, &mut out),
            Event::Standby => {
                self.reason = "standby requested".into();
                self.standby = true;
                for s in &mut self.slots {
                    s.intent = None;
                }
            }
            Event::Takeover => {
                self.reason = "takeover requested".into();
                self.standby = false;
                let deadline = self.t + self.request_timeout();
                let me = self.s.me.clone();
                for s in &mut self.slots {
                    s.failed = false;
                    s.waived = false;
                    if s.nodes.contains(&me) && s.hold == Hold::Free {
                        s.intent = Some(deadline);
                    }
                }
            }
            Event::Stop => {
                self.reason = "stopping".into();
                self.stopping = true;
                for s in &mut self.slots {
                    if s.hold == Hold::ReleaseFailed {
                        s.hold = Hold::Held;
                    }
                }
            }
            Event::Eligible { ok } => {
                self.reason = if ok { "eligible" } else { "not eligible" }.into();
                self.eligible = ok;
            }
            Event::Ping {
                reached,
                total,
                age,
            } => self.on_ping(reached, total, age),
            Event::Disk { ok } => self.on_disk(ok),
            Event::Carrier { iface, up } => self.on_carrier(iface, up),
            Event::ResourceFailed { group } => self.on_resource_failed(&group, &mut out),
            Event::Fenced { peer, ok } => self.on_fenced(peer, ok, &mut out),
        }
        self.liveness(&mut out);
        self.ask_ping(&mut out);
        self.decide(&mut out);
        self.finish(tick, &mut out);
        out
    }

    /// A reload's settings: new timings and failback policy take effect at the next event. The
    /// node, its peers, links and groups must be the same (a reload that changes them is refused
    /// before it gets here, [`crate::reload`]); if they differ, nothing changes and `false` says so.
    pub fn reconfigure(&mut self, new: Settings) -> bool {
        let same = new.me == self.s.me
            && new.peers == self.s.peers
            && new.links == self.s.links
            && new.groups == self.s.groups
            && new.groups_hash == self.s.groups_hash
            && new.policy == self.s.policy;
        if same {
            self.s = new;
        }
        same
    }

    // ---- accessors -------------------------------------------------------------------------

    /// My own letter.
    /// When the first live peer will be dead unless a frame arrives (its last frame plus
    /// deadtime): the daemon wakes then as well as at its keepalive ticks, so that a death is
    /// seen at deadtime, not up to a keepalive later.
    pub fn next_death(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|p| p.live == Liveness::Up)
            .filter_map(|p| p.last_seen)
            .map(|l| l + self.s.deadtime)
            .min()
            .map(|d| self.last_now + d.saturating_sub(self.t))
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    /// The groups I hold, including those being acquired or released (what frames must carry:
    /// a peer must not take a group whose resources may still run here).
    pub fn held(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.hold.occupied())
            .map(|s| s.name.clone())
            .collect()
    }

    /// True once a graceful stop finished.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// True after `Standby` (until `Takeover`).
    pub fn is_standby(&self) -> bool {
        self.standby
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Every peer's liveness, letter, last-seen and links.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .iter()
            .map(|(name, p)| PeerView {
                name: name.clone(),
                liveness: p.live,
                state: self.letter_of(name),
                incarnation: p.incarnation,
                last_seen_ago: p.last_seen.map(|l| self.t.saturating_sub(l)),
                links: p
                    .links
                    .iter()
                    .map(|(&link, l)| LinkView {
                        link,
                        last_seen_ago: l.last.map(|x| self.t.saturating_sub(x)),
                        late: l.late,
                    })
                    .collect(),
                held: p.held.iter().cloned().collect(),
                groups_differ: p.groups_hash.is_some_and(|h| h != self.s.groups_hash),
            })
            .collect()
    }

    /// Every group and its holder.
    pub fn groups(&self) -> Vec<GroupView> {
        self.slots
            .iter()
            .map(|s| GroupView {
                name: s.name.clone(),
                holder: if s.hold.occupied() {
                    Some(self.s.me.clone())
                } else {
                    self.live_holder(&s.name, None)
                },
                mine: s.hold,
            })
            .collect()
    }

    /// The holder of one group as far as I know.
    pub fn holder(&self, group: &str) -> Option<String> {
        self.groups()
            .into_iter()
            .find(|g| g.name == group)
            .and_then(|g| g.holder)
    }

    /// A node's letter in my view: mine, a live peer's last reported one, `D` otherwise.
    pub fn letter_of(&self, node: &str) -> NodeState {
        if node == self.s.me {
            return self.state;
        }
        match self.peers.get(node) {
            Some(p) if p.live == Liveness::Up => p.state,
            _ => NodeState::Down,
        }
    }

    /// The cluster's letters in node-name order, e.g. `(N,T)`; the same tuple on every node
    /// that sees the same thing.
    pub fn pair(&self) -> String {
        let mut names: Vec<&str> = self.peers.keys().map(String::as_str).collect();
        names.push(&self.s.me);
        names.sort_unstable();
        let letters: Vec<String> = names
            .iter()
            .map(|n| self.letter_of(n).letter().to_string())
            .collect();
        format!("({})", letters.join(","))
    }

    // ---- time and liveness -----------------------------------------------------------------

    fn advance(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_now);
        // A gap longer than warntime means this process did not run (suspend, a stop signal,
        // starvation): conclude nothing from it about the peers.
        self.t += if gap > self.s.warntime {
            self.s.keepalive
        } else {
            gap
        };
        if gap > self.s.warntime {
            self.woke = Some(self.t);
        }
        if now > self.last_now {
            self.last_now = now;
        }
    }

    fn request_timeout(&self) -> Duration {
        (self.s.deadtime * 10).max(self.s.initdead)
    }

    fn liveness(&mut self, out: &mut Vec<Action>) {
        let t = self.t;
        for (name, p) in &mut self.peers {
            match p.live {
                Liveness::Unknown if t >= self.s.initdead => {
                    p.live = Liveness::Down;
                    self.reason = format!("{name} not heard by initdead");
                    out.push(Action::PeerDead { peer: name.clone() });
                }
                Liveness::Up if p.last_seen.is_some_and(|l| t - l >= self.s.deadtime) => {
                    p.live = Liveness::Down;
                    p.held.clear();
                    p.health = Health::default();
                    self.reason = format!("{name} dead: no frame for deadtime");
                    out.push(Action::PeerDead { peer: name.clone() });
                }
                Liveness::Up => {
                    for (&link, l) in &mut p.links {
                        let since = l.last.unwrap_or(p.up_since);
                        if !l.late && t - since >= self.s.warntime {
                            l.late = true;
                            out.push(Action::LinkLate {
                                peer: name.clone(),
                                link,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn on_frame(&mut self, link: u8, msg: Message, out: &mut Vec<Action>) {
        let t = self.t;
        let name = msg.sender.clone();
        let Some(p) = self.peers.get_mut(&name) else {
            return; // myself (multicast loop) or a node not configured
        };
        match p.incarnation {
            Some(i) if msg.incarnation < i => return, // an earlier life of the peer
            Some(i) if msg.incarnation > i => {
                // Restarted: whatever it held died with it.
                if p.live == Liveness::Up {
                    out.push(Action::PeerDead { peer: name.clone() });
                }
                p.live = Liveness::Down;
                p.seq = None;
                p.held.clear();
                p.groups_hash = None;
                p.incarnation = Some(msg.incarnation);
                self.reason = format!("{name} restarted");
                for s in &mut self.slots {
                    if s.handing_to.as_ref().is_some_and(|(h, _)| *h == name) {
                        s.handing_to = None;
                    }
                    if s.pending_from.as_ref().is_some_and(|(f, _)| *f == name) {
                        s.pending_from = None;
                    }
                }
            }
            Some(_) => {}
            None => p.incarnation = Some(msg.incarnation),
        }
        if p.live == Liveness::Left {
            return; // a copy of its last frames; it comes back with a new incarnation
        }
        // A peer found dead comes back in the same life. A live node stamps at least one message
        // per keepalive, so its sequence advanced with the time it was silent; a frame that did
        // not (by a quarter of that, for slow ticks) was written long ago and delivered late — a
        // write that hung in a suspended disk path lands when the path returns, saying what the
        // peer held then. It is set aside, once: the next frame is believed, so a peer whose
        // keepalive differs from mine is at most one frame late in coming up.
        if p.live == Liveness::Down
            && !p.doubted
            && let (Some(seq), Some(seen)) = (p.seq, p.last_seen)
        {
            let silent = t.saturating_sub(seen).as_nanos();
            let per = (self.s.keepalive.as_nanos() * 4).max(1);
            let expected = u64::try_from(silent / per).unwrap_or(u64::MAX);
            if msg.seq < seq.saturating_add(expected) {
                p.doubted = true;
                p.doubted_held = msg.held.iter().cloned().collect();
                p.last_seen = Some(t);
                p.seq = Some(seq.max(msg.seq));
                out.push(Action::OldFrame {
                    peer: name.clone(),
                    link,
                    behind: seq.saturating_add(expected) - msg.seq,
                });
                // Mine that it listed: announced again once it is believed to have let go.
                for slot in &mut self.slots {
                    if slot.hold.occupied() && msg.held.contains(&slot.name) {
                        slot.conflict_since.get_or_insert(t);
                    }
                }
                return;
            }
        }
        p.last_seen = Some(t);
        if p.live != Liveness::Up {
            p.doubted = false;
            p.doubted_held.clear();
            p.live = Liveness::Up;
            p.up_since = t;
            for l in p.links.values_mut() {
                l.last = None;
                l.late = false;
            }
            self.reason = format!("{name} up");
            out.push(Action::PeerUp { peer: name.clone() });
            // Fencing done while it was down no longer counts.
            self.fenced.remove(&name);
            self.fencing.remove(&name);
        }
        let l = p.links.entry(link).or_insert(LinkSeen {
            last: None,
            late: false,
        });
        l.last = Some(t);
        if l.late {
            l.late = false;
            out.push(Action::LinkBack {
                peer: name.clone(),
                link,
            });
        }
        if p.seq.is_some_and(|s| msg.seq <= s) {
            return; // the same frame on another link, or an older one: liveness only
        }
        p.seq = Some(msg.seq);
        p.state = msg.state;
        p.held = msg.held.iter().cloned().collect();
        p.health = msg.health.clone();
        if msg.groups_hash != self.s.groups_hash && p.groups_hash != Some(msg.groups_hash) {
            out.push(Action::GroupsDiffer { peer: name.clone() });
        }
        p.groups_hash = Some(msg.groups_hash);
        let for_me = msg.to.as_deref() == Some(self.s.me.as_str());
        match msg.kind {
            Kind::Leave => {
                p.live = Liveness::Left;
                p.held.clear();
                self.reason = format!("{name} left");
                out.push(Action::PeerDead { peer: name });
            }
            Kind::StandbyRequest if for_me => self.on_standby_request(&name, &msg.groups, out),
            Kind::StandbyAck if for_me => self.on_standby_ack(&name, &msg.groups),
            Kind::TakeoverRequest if for_me => self.on_takeover_request(&name, &msg.groups, out),
            Kind::TakeoverAck if for_me => self.on_takeover_ack(&name, &msg.groups),
            _ => {}
        }
    }

    // ---- the handshakes --------------------------------------------------------------------

    /// `from` wants me to take `groups`: accept those I may hold and am free to take.
    fn on_standby_request(&mut self, from: &str, groups: &[String], out: &mut Vec<Action>) {
        if self.stopping {
            return;
        }
        let mut accepted = Vec::new();
        for i in 0..self.slots.len() {
            if !groups.contains(&self.slots[i].name) {
                continue;
            }
            let ok = self.allowed(i)
                && !self.excluded(i)
                && self.slots[i].hold == Hold::Free
                && self.slots[i].handing_to.is_none()
                && self.live_holder(&self.slots[i].name, Some(from)).is_none();
            if ok {
                self.slots[i].pending_from = Some((from.to_string(), self.t));
                accepted.push(self.slots[i].name.clone());
            }
        }
        if !accepted.is_empty() {
            self.reason = format!("taking {} from {from} (standby)", accepted.join(","));
            out.push(Action::Send {
                kind: Kind::StandbyAck,
                to: Some(from.to_string()),
                groups: accepted,
            });
        }
    }

    /// `from` will take `groups` once I released them.
    fn on_standby_ack(&mut self, from: &str, groups: &[String]) {
        for i in 0..self.slots.len() {
            if !groups.contains(&self.slots[i].name) || self.stopping {
                continue;
            }
            let giving = self.excluded(i) || self.slots[i].offer_since.is_some();
            let s = &mut self.slots[i];
            if giving
                && matches!(s.hold, Hold::Free | Hold::Acquiring | Hold::Held)
                && s.handing_to.is_none()
            {
                s.handing_to = Some((from.to_string(), self.t));
                self.reason = format!("handing {} to {from}", s.name);
            }
        }
    }

    /// `from` asks for `groups`: grant those I hold that it may hold.
    fn on_takeover_request(&mut self, from: &str, groups: &[String], out: &mut Vec<Action>) {
        if self.stopping {
            return;
        }
        // Crossing manual takeovers: the smaller name wins; the other side grants.
        let mine_crossing = self.slots.iter().any(|s| {
            s.intent.is_some()
                && self
                    .peers
                    .get(from)
                    .is_some_and(|p| p.held.contains(&s.name))
        });
        if mine_crossing {
            if self.s.me.as_str() < from {
                return;
            }
            for s in &mut self.slots {
                if s.intent.is_some()
                    && self
                        .peers
                        .get(from)
                        .is_some_and(|p| p.held.contains(&s.name))
                {
                    s.intent = None;
                }
            }
        }
        let me = self.s.me.clone();
        let mut granted = Vec::new();
        for s in &mut self.slots {
            if !groups.contains(&s.name) || !s.nodes.iter().any(|n| n == from) {
                continue;
            }
            let mine = matches!(s.hold, Hold::Acquiring | Hold::Held);
            let already = s.handing_to.as_ref().is_some_and(|(h, _)| h == from);
            if (mine && s.handing_to.is_none()) || already {
                s.handing_to = Some((from.to_string(), self.t));
                if s.nodes.first() == Some(&me) {
                    s.waived = true;
                }
                granted.push(s.name.clone());
            }
        }
        if !granted.is_empty() {
            self.reason = format!(
                "handing {} to {from} (its takeover request)",
                granted.join(",")
            );
            out.push(Action::Send {
                kind: Kind::TakeoverAck,
                to: Some(from.to_string()),
                groups: granted,
            });
        }
    }

    /// `from` granted `groups`: acquire each once its frames no longer list it.
    fn on_takeover_ack(&mut self, from: &str, groups: &[String]) {
        for i in 0..self.slots.len() {
            if !groups.contains(&self.slots[i].name) {
                continue;
            }
            let wanted = self.slots[i].intent.is_some() || self.wants_home(i);
            let s = &mut self.slots[i];
            if s.hold == Hold::Free && wanted {
                s.pending_from = Some((from.to_string(), self.t));
                s.intent = None;
            }
        }
    }

    fn on_acquired(&mut self, group: &str, ok: bool) {
        let Some(s) = self.slots.iter_mut().find(|s| s.name == group) else {
            return;
        };
        if s.hold != Hold::Acquiring {
            return;
        }
        // Held either way: after a failed start some resources may run, so stopping it (right
        // to left) is the cleanup; `failed` makes `decide` release it and offer it elsewhere.
        s.hold = Hold::Held;
        if ok {
            self.reason = format!("acquired {group}");
        } else {
            s.failed = true;
            self.reason = format!("acquiring {group} failed");
        }
    }

    fn on_released(&mut self, group: &str, ok: bool, out: &mut Vec<Action>) {
        let Some(s) = self.slots.iter_mut().find(|s| s.name == group) else {
            return;
        };
        if s.hold != Hold::Releasing {
            return;
        }
        let restart = std::mem::take(&mut s.restart_pending);
        s.yielding = false;
        if ok {
            s.hold = Hold::Free;
            s.taken_over = false;
            s.via_transfer = false;
            s.conflict_since = None;
            self.reason = if restart {
                format!("released {group} to start it again")
            } else {
                format!("released {group}")
            };
        } else {
            s.hold = Hold::ReleaseFailed;
            self.reason = format!("releasing {group} failed");
            out.push(Action::Alert {
                group: Some(group.to_string()),
                reason: format!(
                    "{group} did not stop cleanly: it stays here (no other node may start it) until it is stopped by hand"
                ),
            });
        }
    }

    // ---- decisions -------------------------------------------------------------------------

    fn peer_up(&self, n: &str) -> bool {
        self.peers.get(n).is_some_and(|p| p.live == Liveness::Up)
    }

    /// Whether a down peer's set-aside frame listed group `g` (no later frame yet).
    fn doubted_claim(&self, g: &str) -> bool {
        self.peers
            .values()
            .any(|p| p.live == Liveness::Down && p.doubted && p.doubted_held.contains(g))
    }

    fn peer_holds(&self, n: &str, g: &str) -> bool {
        self.peers
            .get(n)
            .is_some_and(|p| p.live == Liveness::Up && p.held.contains(g))
    }

    /// A live peer (other than `except`) that says it holds `g`.
    fn live_holder(&self, g: &str, except: Option<&str>) -> Option<String> {
        self.peers
            .iter()
            .find(|(n, p)| {
                p.live == Liveness::Up && p.held.contains(g) && Some(n.as_str()) != except
            })
            .map(|(n, _)| n.clone())
    }

    fn allowed(&self, i: usize) -> bool {
        self.slots[i].nodes.contains(&self.s.me)
    }

    fn excluded(&self, i: usize) -> bool {
        self.standby || !self.eligible || self.slots[i].failed || self.unready_policy(i).is_some()
    }

    fn wants_home(&self, i: usize) -> bool {
        let s = &self.slots[i];
        self.s.auto_failback
            && s.nodes.first() == Some(&self.s.me)
            && !self.standby
            && self.eligible
            && !self.stopping
            && !s.waived
            && !s.failed
            && self.unready_policy(i).is_none()
    }

    fn rank(&self, i: usize, n: &str) -> usize {
        self.slots[i]
            .nodes
            .iter()
            .position(|x| x == n)
            .unwrap_or(usize::MAX)
    }

    /// The first allowed node that is up (me included unless stopping).
    fn first_up(&self, i: usize) -> Option<&str> {
        self.slots[i]
            .nodes
            .iter()
            .find(|n| (**n == self.s.me && !self.stopping) || self.peer_up(n))
            .map(String::as_str)
    }

    /// The first allowed peer that is up and ready for the group.
    fn best_other(&self, i: usize) -> Option<String> {
        self.ready_other(i)
    }

    fn designated_me(&self, i: usize) -> bool {
        if self.slots[i].failed {
            // Never retry a failing start on my own (it would loop at the runner's pace); the
            // group is offered to the next node, and `Takeover` clears the mark. Local restart
            // vs failover is the next issue's policy.
            return false;
        }
        let me = self.s.me.as_str();
        for n in &self.slots[i].nodes {
            if n == me {
                // My offer went unanswered for request_timeout: its requests stop, and I serve
                // it myself (no sooner than deadtime after the last one, `may_acquire`).
                let offer_unanswered = self.slots[i]
                    .offer_since
                    .is_some_and(|o| self.t - o >= self.request_timeout());
                return !self.excluded(i) || self.best_other(i).is_none() || offer_unanswered;
            }
            if self.peer_up(n) {
                return false;
            }
        }
        false
    }

    fn may_acquire(&self, i: usize) -> bool {
        let s = &self.slots[i];
        if self.stopping || !self.allowed(i) || s.handing_to.is_some() {
            return false;
        }
        if self.live_holder(&s.name, None).is_some() {
            return false; // evidence that its holder is alive
        }
        if !self.quorum() || self.cut_off().is_some() || self.ping_unsettled() {
            return false; // a minority, or cut off from everything: cannot tell who is dead
        }
        if self.no_carrier(i).is_some() {
            return false; // it cannot be served through a dead interface
        }
        if self.slots[i]
            .ready_since
            .is_some_and(|r| r > Duration::ZERO && self.t - r < self.s.deadtime)
            && self.slots[i]
                .nodes
                .iter()
                .any(|n| self.peers.get(n).is_some_and(|p| p.live != Liveness::Up))
        {
            // Just able to serve it again (a cable back): a peer not heard yet may hold it.
            return false;
        }
        if self
            .quorum_back
            .is_some_and(|q| self.t - q < self.s.deadtime)
        {
            return false; // quorum just regained: the peers not heard yet may hold it
        }
        let unknown = s.nodes.iter().any(|n| {
            self.peers
                .get(n)
                .is_some_and(|p| p.live == Liveness::Unknown)
        });
        if unknown {
            return false; // initdead: a node not heard yet may hold it
        }
        let transfer = s
            .pending_from
            .as_ref()
            .is_some_and(|(f, _)| self.peer_up(f) && !self.peer_holds(f, &s.name));
        // An offer of mine sent less than deadtime ago may have been accepted: the taker's
        // frames say so within deadtime (or it is dead by then).
        let offer_in_flight = s.offered_at.is_some_and(|o| self.t - o < self.s.deadtime);
        (transfer && !self.excluded(i)) || (self.designated_me(i) && !offer_in_flight)
    }

    fn decide(&mut self, out: &mut Vec<Action>) {
        let t = self.t;
        let quorum = self.quorum();
        if quorum && !self.had_quorum {
            self.quorum_back = Some(t);
        }
        self.had_quorum = quorum;
        let timeout = self.request_timeout();
        let mut requests: BTreeMap<(u8, String), Vec<String>> = BTreeMap::new();
        for i in 0..self.slots.len() {
            let name = self.slots[i].name.clone();
            // Housekeeping: drop transfers whose other side is gone or done.
            if self.slots[i].hold.occupied()
                && let Some((_, since)) = &mut self.slots[i].handing_to
            {
                *since = t;
            }
            if let Some((h, since)) = self.slots[i].handing_to.clone()
                && (!self.peer_up(&h) || self.peer_holds(&h, &name) || t - since >= timeout)
            {
                self.slots[i].handing_to = None;
            }
            // A hand-over I cannot take now lapses: the giver may take the group back or offer
            // it elsewhere meanwhile, and a later start here on the old word would meet that.
            if let Some((f, since)) = self.slots[i].pending_from.clone()
                && (!self.peer_up(&f) || t - since >= timeout || self.excluded(i))
            {
                self.slots[i].pending_from = None;
            }
            if self.slots[i].intent.is_some_and(|d| t >= d) || self.slots[i].hold.occupied() {
                self.slots[i].intent = None;
            }
            let home = self.slots[i].nodes.first().cloned().unwrap_or_default();
            if self.slots[i].taken_over && !self.s.auto_failback && self.peer_up(&home) {
                self.slots[i].taken_over = false; // settled: nobody will ask for it back
            }
            let holder = self.live_holder(&name, None);
            if holder.is_some() || self.slots[i].hold.occupied() {
                self.slots[i].offer_since = None;
            }
            if self.unready_policy(i).is_some() {
                self.slots[i].ready_since = None;
            } else if self.slots[i].ready_since.is_none() {
                self.slots[i].ready_since = Some(t);
            }

            match self.slots[i].hold {
                Hold::Acquiring | Hold::Held => {
                    let mut why = None;
                    if self.stopping {
                        why = Some("stopping".to_string());
                    } else if self.slots[i].failed {
                        why = Some("its resources failed".to_string());
                    } else if !self.quorum() {
                        why = Some("no quorum".to_string());
                    } else if let Some(c) = self.cut_off() {
                        why = Some(c.to_string());
                    } else if let Some(iface) = self.no_carrier(i) {
                        // It cannot be served through a dead interface: let it go at once, rather
                        // than wait for a handshake a pulled cable may never carry, or meet the
                        // peer's copy when the cable returns. Handed to a ready peer, if any: not
                        // taken again here until that peer holds it, is down, or let it be.
                        why = Some(format!("{iface} has no carrier"));
                        if self.slots[i].handing_to.is_none()
                            && let Some(p) = self.best_other(i)
                        {
                            self.slots[i].handing_to = Some((p, t));
                        }
                    } else if let Some((h, _)) = &self.slots[i].handing_to {
                        why = Some(format!("handing over to {h}"));
                    } else if let Some(h) = &holder {
                        if self.peer_yields(h, &name) {
                            // It woke from a suspension and lets go: I keep it, and announce it
                            // again once its copy is gone.
                            self.slots[i].conflict_since.get_or_insert(t);
                        } else if self.just_woke() {
                            self.slots[i].yielding = true;
                            why =
                                Some(format!("{h} took it over while this process was suspended"));
                        } else if self.rank(i, &self.s.me) > self.rank(i, h) {
                            why = Some(format!("{h} holds it too and comes first"));
                        } else {
                            let since = *self.slots[i].conflict_since.get_or_insert(t);
                            if t - since >= self.s.deadtime {
                                why = Some(format!("{h} holds it too and does not hear me"));
                            }
                        }
                    } else if self.slots[i].hold == Hold::Held
                        && self.slots[i].conflict_since.is_some_and(|c| {
                            // An old frame's claim: announce once its sender's next frame is
                            // believed (its copy gone by then), or after deadtime without one.
                            !self.doubted_claim(&name) || t - c >= self.s.deadtime
                        })
                    {
                        self.slots[i].conflict_since = None;
                        self.reason = format!("{name} is mine alone again: announcing it");
                        out.push(Action::Reannounce(name.clone()));
                    }
                    match why {
                        Some(why) if self.slots[i].hold == Hold::Held => {
                            self.slots[i].hold = Hold::Releasing;
                            // My frames say I let it go while its resources stop (a slow stop
                            // must not look like a copy that does not hear the peer).
                            self.slots[i].yielding = true;
                            self.reason = format!("releasing {name}: {why}");
                            out.push(Action::Release(name.clone()));
                        }
                        // Still starting: it is released once started. Meanwhile my frames
                        // say I am letting go, so that a peer in conflict keeps its copy
                        // rather than concluding that I cannot hear it.
                        Some(_) => self.slots[i].yielding = true,
                        None => self.slots[i].yielding = false,
                    }
                }
                Hold::Free => {
                    if self.may_acquire(i)
                        && let Some(peer) = self.needs_fence(i)
                    {
                        self.fence(peer, out);
                    } else if self.may_acquire(i) {
                        let transfer = self.slots[i].pending_from.is_some();
                        let taken_over = !transfer && home != self.s.me && !self.peer_up(&home);
                        let s = &mut self.slots[i];
                        s.hold = Hold::Acquiring;
                        s.via_transfer = transfer;
                        s.taken_over = taken_over;
                        s.pending_from = None;
                        s.conflict_since = None;
                        s.offer_since = None;
                        self.reason = if taken_over {
                            format!("taking over {name}: {home} is down")
                        } else if transfer {
                            format!("acquiring {name} (handed over)")
                        } else {
                            format!("acquiring {name}")
                        };
                        out.push(Action::Acquire(name.clone()));
                    }
                }
                Hold::Releasing | Hold::ReleaseFailed => {}
            }

            // Requests, repeated every keepalive while they apply.
            if self.stopping {
                continue;
            }
            let s = &self.slots[i];
            match s.hold {
                Hold::Acquiring | Hold::Held if s.handing_to.is_none() && self.excluded(i) => {
                    if let Some(to) = self.best_other(i) {
                        requests.entry((0, to)).or_default().push(name.clone());
                    }
                }
                Hold::Free if holder.is_none() => {
                    let should_offer = self.excluded(i) || s.handing_to.is_some();
                    if should_offer
                        && self.first_up(i) == Some(self.s.me.as_str())
                        && let Some(to) = s
                            .handing_to
                            .clone()
                            .map(|(h, _)| h)
                            .or_else(|| self.best_other(i))
                    {
                        // Offered for request_timeout, then withdrawn (taken back here once the
                        // last offer is deadtime old); offered anew if it could not be.
                        let mut since = *self.slots[i].offer_since.get_or_insert(t);
                        if t - since >= timeout + self.s.deadtime {
                            since = t;
                            self.slots[i].offer_since = Some(t);
                        }
                        if t - since < timeout {
                            self.slots[i].offered_at = Some(t);
                            requests.entry((0, to)).or_default().push(name.clone());
                        }
                    }
                }
                Hold::Free if s.pending_from.is_none() => {
                    // Here a live peer holds it (the arm above took the other case). A failback
                    // waits failback_holdoff after I last became able to serve the group (the
                    // process start, or a cable back: time for state the holder sends, as IPVS
                    // connection sync, to reach me first).
                    let failback = self.wants_home(i)
                        && s.ready_since
                            .is_some_and(|r| t - r >= self.s.failback_holdoff);
                    if let Some(holder) = holder.clone()
                        && (s.intent.is_some() || failback)
                    {
                        requests.entry((1, holder)).or_default().push(name.clone());
                    }
                }
                _ => {}
            }
        }
        for ((k, to), groups) in requests {
            let kind = if k == 0 {
                Kind::StandbyRequest
            } else {
                Kind::TakeoverRequest
            };
            let key = (kind, to.clone());
            if self
                .req_sent
                .get(&key)
                .is_some_and(|&l| t - l < self.s.keepalive)
            {
                continue;
            }
            self.req_sent.insert(key, t);
            out.push(Action::Send {
                kind,
                to: Some(to),
                groups,
            });
        }
    }

    fn compute_state(&self) -> NodeState {
        let recovering =
            (0..self.slots.len()).any(|i| self.wants_home(i) && self.slots[i].hold != Hold::Held);
        if recovering {
            NodeState::Recover
        } else if self
            .slots
            .iter()
            .any(|s| matches!(s.hold, Hold::Acquiring | Hold::Held) && s.taken_over)
        {
            NodeState::Takeover
        } else {
            NodeState::Normal
        }
    }

    fn finish(&mut self, tick: bool, out: &mut Vec<Action>) {
        let state = self.compute_state();
        if state != self.state {
            out.push(Action::Transition {
                from: self.state,
                to: state,
                reason: self.reason.clone(),
            });
            self.state = state;
        }
        let held = self.held();
        if self.stopping && held.is_empty() {
            out.push(Action::Send {
                kind: Kind::Leave,
                to: None,
                groups: Vec::new(),
            });
            out.push(Action::Stopped);
            self.stopped = true;
            return;
        }
        let sent_now = out.iter().any(|a| matches!(a, Action::Send { .. }));
        let changed = self.sent.as_ref() != Some(&(state, held.clone()));
        if !sent_now && changed {
            out.push(Action::Send {
                kind: Kind::ResourceState,
                to: None,
                groups: Vec::new(),
            });
        } else if !sent_now
            && tick
            && self
                .last_sent
                .is_none_or(|l| self.t - l >= self.s.keepalive / 2)
        {
            out.push(Action::Send {
                kind: Kind::Alive,
                to: None,
                groups: Vec::new(),
            });
        }
        if out.iter().any(|a| matches!(a, Action::Send { .. })) {
            self.last_sent = Some(self.t);
            self.sent = Some((state, held));
        }
    }
}
