//! The director's pure core: from the configuration, each real's health, drains and the
//! maintenance directory to the IPVS operations that make the kernel agree — no sockets, no clock.
//!
//! A [`Director`] keeps the table as ldir last applied it (`applied`, its own services only) and
//! plans every change against that cache, one service at a time: a check result that changes a
//! weight is one operation, a reload that adds one real to a 10k table is one operation, and no
//! full kernel dump is on the hot path. [`Director::reconcile`] compares with a kernel dump (the
//! daemon's periodic drift check) and repairs what others changed.
//!
//! Rules (ldirectord's, with keepalived's reported problems fixed):
//! - Health has hysteresis: `rise` consecutive successes to come up, `fall` failures to go down.
//!   A real's first result decides at once (the daemon runs every first check immediately), so a
//!   cold start is right within one check timeout.
//! - A real gets its weight only once a check said it is up. Until its first result, a real the
//!   kernel already holds keeps what it has there (a restart under traffic changes nothing), and a
//!   new one is added at weight 0 (`quiescent`) or not at all.
//! - Down: weight 0 (`quiescent = true`) or removed. Drained or in the maintenance directory: weight
//!   0, whatever the checks say, until undrained.
//! - The fallback server is in the table while no real serves (weight above 0) and no real is still
//!   waiting for its first result.
//! - Health survives reloads: a real that stays in the configuration keeps its state, so a weight
//!   changed while it is down takes effect when it comes up, and nothing flaps because of a reload.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::ipvs::{self, Destination, Ipvs, Op, RecordingIpvs, ServiceKey, Table, VirtualService};
use common::probe::Outcome;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{CheckMode, Config, Virtual};
/// The director's maps, looked up on every check result (thousands a second): SipHash cost ~1,100
/// instructions a result for its two lookups, about a tenth of a whole check (callgrind,
/// `ldir/examples/check_load.rs`); foldhash's unkeyed hasher is enough since the keys come from
/// the configuration files, never from the network.
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// A real of a virtual: the service and the real's address.
pub type RealId = (ServiceKey, SocketAddr);

/// What the checks say about a real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No result yet.
    Unknown,
    /// Up (rise successes in a row, or the first result).
    Up,
    /// Down (fall failures in a row, or the first result).
    Down,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        })
    }
}

/// The last check of a real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    /// Its verdict.
    pub up: bool,
    /// Its one-line reason.
    pub reason: String,
    /// How long it took.
    pub latency: Duration,
    /// When it ended.
    pub at: Instant,
    /// Time since the result before it: the interval checks actually run at.
    pub interval: Option<Duration>,
}

/// One real's health with its hysteresis counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The current verdict.
    pub state: State,
    /// Consecutive successes while down.
    pub successes: u32,
    /// Consecutive failures while up.
    pub failures: u32,
    /// The last result, if any.
    pub last: Option<LastCheck>,
    /// When the state last changed.
    pub since: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: State::Unknown,
            successes: 0,
            failures: 0,
            last: None,
            since: None,
        }
    }
}

impl Health {
    /// Records one result; returns the new state when it changed.
    pub fn record(&mut self, up: bool, rise: u32, fall: u32, now: Instant) -> Option<State> {
        let next = match (self.state, up) {
            (State::Unknown, true) => Some(State::Up),
            (State::Unknown, false) => Some(State::Down),
            (State::Up, true) => {
                self.failures = 0;
                None
            }
            (State::Up, false) => {
                self.failures += 1;
                (self.failures >= fall).then_some(State::Down)
            }
            (State::Down, false) => {
                self.successes = 0;
                None
            }
            (State::Down, true) => {
                self.successes += 1;
                (self.successes >= rise).then_some(State::Up)
            }
        };
        if let Some(s) = next {
            self.state = s;
            self.successes = 0;
            self.failures = 0;
            self.since = Some(now);
        }
        next
    }
}

/// A drain: one real (any port, or one port) in every virtual, or in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Drain {
    /// The real's address.
    pub ip: IpAddr,
    /// Its port; `None` matches every port.
    pub port: Option<u16>,
    /// One virtual only; `None` matches every virtual.
    pub service: Option<ServiceKey>,
}

impl Drain {
    /// Whether the drain covers `addr` in the service `key`.
    pub fn matches(&self, key: &ServiceKey, addr: &SocketAddr) -> bool {
        self.ip == addr.ip()
            && self.port.is_none_or(|p| p == addr.port())
            && self.service.is_none_or(|s| s == *key)
    }
}

/// A real that changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The virtual's name.
    pub virtual_name: String,
    /// The service.
    pub service: ServiceKey,
    /// The real.
    pub real: SocketAddr,
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// The check's reason.
    pub reason: String,
}

/// The fallback server came (`active`) or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackEdge {
    /// The virtual's name.
    pub virtual_name: String,
    /// The service.
    pub service: ServiceKey,
    /// In the table now.
    pub active: bool,
}

/// What the daemon must do after an event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    /// Kernel operations, in order.
    pub ops: Vec<Op>,
    /// Reals that changed state.
    pub transitions: Vec<Transition>,
    /// Fallback servers that came or went.
    pub fallbacks: Vec<FallbackEdge>,
}

impl Effects {
    /// Appends `other`'s operations and events after this one's.
    pub fn extend(&mut self, other: Effects) {
        // Most check results change nothing: nothing to move (and free) then.
        if other.ops.is_empty() && other.transitions.is_empty() && other.fallbacks.is_empty() {
            return;
        }
        self.ops.extend(other.ops);
        self.transitions.extend(other.transitions);
        self.fallbacks.extend(other.fallbacks);
    }
}

/// The director's state.
#[derive(Debug)]
pub struct Director {
    config: Arc<Config>,
    index: FastMap<ServiceKey, usize>,
    /// Every real of the configuration, with its virtual's place in `config.virtuals`: a check
    /// result finds its real with one lookup, not a scan of the virtual's reals.
    reals: FastMap<RealId, usize>,
    health: FastMap<RealId, Health>,
    drains: BTreeSet<Drain>,
    maintenance: HashSet<(IpAddr, Option<u16>)>,
    /// The table as last applied: ldir's services only.
    applied: RecordingIpvs,
    /// Services ldir deletes when they leave the configuration.
    owned: BTreeSet<ServiceKey>,
    fallback_on: HashSet<ServiceKey>,
    /// `applied` holds what the kernel holds (false after a failed apply, until a reconcile).
    synced: bool,
}

fn one(vs: Option<&VirtualService>) -> Table {
    let mut t = Table::new();
    if let Some(vs) = vs {
        t.services.insert(vs.service.key, vs.clone());
    }
    t
}

impl Director {
    /// A director for `config`, starting from the kernel's `table`. `prior` lists services an
    /// earlier run created (the state file): those not in `config` any more are deleted. Returns
    /// the operations of the first apply.
    pub fn start(
        config: Arc<Config>,
        prior: &BTreeSet<ServiceKey>,
        kernel: &Table,
    ) -> (Director, Effects) {
        let mut owned: BTreeSet<ServiceKey> = prior.clone();
        owned.extend(config.virtuals.iter().map(|v| v.service.key));
        let mut applied = Table::new();
        for (k, vs) in &kernel.services {
            if owned.contains(k) {
                applied.services.insert(*k, vs.clone());
            }
        }
        let mut d = Director {
            index: index(&config),
            reals: reals(&config),
            config,
            health: FastMap::default(),
            drains: BTreeSet::new(),
            maintenance: HashSet::new(),
            applied: RecordingIpvs::with_table(applied),
            owned,
            fallback_on: HashSet::new(),
            synced: true,
        };
        let effects = d.plan_everything();
        (d, effects)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Services ldir owns (for the state file).
    pub fn owned(&self) -> &BTreeSet<ServiceKey> {
        &self.owned
    }

    /// The table as ldir last applied it.
    pub fn applied(&self) -> &Table {
        &self.applied.table
    }

    /// A real's health.
    pub fn health(&self, id: &RealId) -> Option<&Health> {
        self.health.get(id)
    }

    /// Drains in force.
    pub fn drains(&self) -> &BTreeSet<Drain> {
        &self.drains
    }

    fn virt(&self, key: &ServiceKey) -> Option<&Virtual> {
        self.index.get(key).map(|&i| &self.config.virtuals[i])
    }

    /// Whether a real is held at weight 0 by a drain or the maintenance directory.
    pub fn held(&self, key: &ServiceKey, addr: &SocketAddr) -> bool {
        self.drains.iter().any(|d| d.matches(key, addr))
            || self.maintenance.contains(&(addr.ip(), None))
            || self.maintenance.contains(&(addr.ip(), Some(addr.port())))
    }

    /// What one virtual's service should look like now.
    pub fn desired(&self, v: &Virtual) -> VirtualService {
        let key = v.service.key;
        let kept = self.applied.table.services.get(&key);
        let mut dests = BTreeMap::new();
        let mut serving = false;
        let mut waiting = false;
        for r in &v.reals {
            let addr = r.dest.addr;
            let state = match v.check {
                CheckMode::Off => continue,
                CheckMode::On => State::Up,
                CheckMode::Probe => self
                    .health
                    .get(&(key, addr))
                    .map_or(State::Unknown, |h| h.state),
            };
            let dest = match state {
                _ if self.held(&key, &addr) => Some(r.dest.clone().weight(0)),
                State::Up => Some(r.dest.clone()),
                State::Unknown => {
                    waiting = true;
                    match kept.and_then(|vs| vs.destinations.get(&addr)) {
                        Some(d) => Some(d.clone()),
                        None => v.quiescent.then(|| r.dest.clone().weight(0)),
                    }
                }
                State::Down => v.quiescent.then(|| r.dest.clone().weight(0)),
            };
            if let Some(d) = dest {
                serving |= d.weight > 0;
                dests.insert(addr, d);
            }
        }
        if let Some(fb) = &v.fallback
            && !serving
            && !waiting
        {
            dests.insert(fb.addr, fb.clone());
        }
        VirtualService {
            service: v.service.clone(),
            destinations: dests,
        }
    }

    /// The whole desired table.
    pub fn desired_table(&self) -> Table {
        let mut t = Table::new();
        for v in &self.config.virtuals {
            t.services.insert(v.service.key, self.desired(v));
        }
        t
    }

    /// Operations for one service, applied to the cache, with the fallback edge if any.
    fn settle(&mut self, key: ServiceKey) -> Effects {
        let Some(v) = self.virt(&key) else {
            return Effects::default();
        };
        let want = self.desired(v);
        let fallback = v
            .fallback
            .as_ref()
            .is_some_and(|fb| want.destinations.get(&fb.addr) == Some(fb));
        let name = v.name.clone();
        let mut desired = Table::new();
        desired.services.insert(key, want);
        let cached = self.applied.table.services.get(&key);
        let ops = ipvs::plan(&desired, &one(cached), |_| true);
        if cached.is_some() {
            self.cache(&ops);
        } else if let Some(want) = desired.services.remove(&key) {
            // A service the cache lacks is added whole (the service, then every destination of
            // `want`): the cache becomes `want` without replaying 11,000 operations on a cold start.
            self.applied.table.services.insert(key, want);
        }
        let mut effects = Effects {
            ops,
            ..Effects::default()
        };
        if fallback != self.fallback_on.contains(&key) {
            if fallback {
                self.fallback_on.insert(key);
            } else {
                self.fallback_on.remove(&key);
            }
            effects.fallbacks.push(FallbackEdge {
                virtual_name: name,
                service: key,
                active: fallback,
            });
        }
        effects
    }

    /// Records operations in the cache (the daemon calls this for what it applies; the planning
    /// methods already did for their own operations).
    fn cache(&mut self, ops: &[Op]) {
        for op in ops {
            // An operation the cache refuses (it mirrors the kernel's answers) leaves it as it was;
            // the next reconcile reads the kernel.
            let _ = self.applied.apply(std::slice::from_ref(op));
        }
        self.applied.applied.clear();
    }

    fn plan_everything(&mut self) -> Effects {
        let mut effects = self.delete_gone();
        let keys: Vec<ServiceKey> = self.config.virtuals.iter().map(|v| v.service.key).collect();
        for k in keys {
            effects.extend(self.settle(k));
        }
        self.owned = self.index.keys().copied().collect();
        effects
    }

    /// Deletes the services applied but no longer configured (they go first in a plan).
    fn delete_gone(&mut self) -> Effects {
        let mut effects = Effects::default();
        let gone: Vec<ServiceKey> = self
            .applied
            .table
            .services
            .keys()
            .filter(|k| !self.index.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            let op = Op::DelService(k);
            self.cache(std::slice::from_ref(&op));
            effects.ops.push(op);
        }
        effects
    }

    /// A check result for a real.
    pub fn on_result(&mut self, id: RealId, outcome: &Outcome, now: Instant) -> Effects {
        let Some(&i) = self.reals.get(&id) else {
            return Effects::default();
        };
        let v = &self.config.virtuals[i];
        if v.check != CheckMode::Probe {
            return Effects::default();
        }
        let (rise, fall) = (v.rise, v.fall);
        let h = self.health.entry(id).or_default();
        match &mut h.last {
            Some(last) => {
                // The reason's buffer is used again: one result a check, thousands a second.
                last.reason.clone_from(&outcome.reason);
                last.interval = Some(now.saturating_duration_since(last.at));
                last.up = outcome.up;
                last.latency = outcome.latency;
                last.at = now;
            }
            None => {
                h.last = Some(LastCheck {
                    up: outcome.up,
                    reason: outcome.reason.clone(),
                    latency: outcome.latency,
                    at: now,
                    interval: None,
                })
            }
        }
        let from = h.state;
        let Some(to) = h.record(outcome.up, rise, fall, now) else {
            return Effects::default();
        };
        let name = v.name.clone();
        let mut effects = self.settle(id.0);
        effects.transitions.push(Transition {
            virtual_name: name,
            service: id.0,
            real: id.1,
            from,
            to,
            reason: outcome.reason.clone(),
        });
        effects
    }

    /// Adds or removes a drain; the operations for every service it touches.
    pub fn set_drain(&mut self, drain: Drain, on: bool) -> Effects {
        let changed = if on {
            self.drains.insert(drain)
        } else {
            self.drains.remove(&drain)
        };
        if !changed {
            return Effects::default();
        }
        self.settle_all()
    }

    /// Replaces the set of reals named in the maintenance directory (`IP` or `IP:PORT`).
    pub fn set_maintenance(&mut self, names: HashSet<(IpAddr, Option<u16>)>) -> Effects {
        if names == self.maintenance {
            return Effects::default();
        }
        self.maintenance = names;
        self.settle_all()
    }

    fn settle_all(&mut self) -> Effects {
        let keys: Vec<ServiceKey> = self.config.virtuals.iter().map(|v| v.service.key).collect();
        let mut effects = Effects::default();
        for k in keys {
            effects.extend(self.settle(k));
        }
        effects
    }

    /// Takes a new configuration: health kept for every real that stays, services that left the
    /// configuration deleted, everything planned against the cache (no kernel dump).
    pub fn reload(&mut self, config: Arc<Config>) -> Effects {
        let old = std::mem::replace(&mut self.config, config);
        let old_index = std::mem::replace(&mut self.index, index(&self.config));
        self.reals = reals(&self.config);
        let (reals, index) = (&self.reals, &self.index);
        self.health.retain(|id, _| reals.contains_key(id));
        self.fallback_on.retain(|k| index.contains_key(k));
        if !self.synced {
            return self.plan_everything();
        }
        // Only what changed: an unchanged virtual's desired service is what was applied (health,
        // drains and maintenance did not move), so a one-real edit in a 10k table plans one
        // service, not a thousand.
        let mut added = false;
        let changed: Vec<ServiceKey> = self
            .config
            .virtuals
            .iter()
            .filter(|v| match old_index.get(&v.service.key) {
                Some(&i) => old.virtuals[i] != **v,
                None => {
                    added = true;
                    true
                }
            })
            .map(|v| v.service.key)
            .collect();
        let mut effects = self.delete_gone();
        let gone = !effects.ops.is_empty();
        for k in changed {
            effects.extend(self.settle(k));
        }
        if added || gone || self.owned.len() != self.index.len() {
            self.owned = self.index.keys().copied().collect();
        }
        effects
    }

    /// Compares the kernel's `kernel` table with the desired one and returns what repairs the
    /// drift (others' changes to ldir's services), with the cache set to the kernel's view first.
    pub fn reconcile(&mut self, kernel: &Table) -> Effects {
        let mut mine = Table::new();
        for (k, vs) in &kernel.services {
            if self.owned.contains(k) {
                mine.services.insert(*k, vs.clone());
            }
        }
        self.applied.table = mine;
        self.synced = true;
        let desired = self.desired_table();
        let owned = &self.owned;
        let mut ops = ipvs::plan(&desired, &self.applied.table, |k| owned.contains(k));
        // Without readd_quiescent, a down real that someone removed stays out until it comes up
        // (ldirectord's behaviour); with it, it comes back at weight 0.
        ops.retain(|op| match op {
            Op::AddDestination(k, d) if d.weight == 0 => self.virt(k).is_none_or(|v| {
                v.readd_quiescent
                    || !self.applied.table.services.contains_key(k)
                    || self.held(k, &d.addr)
                    || self
                        .health
                        .get(&(*k, d.addr))
                        .is_none_or(|h| h.state == State::Up)
            }),
            _ => true,
        });
        self.cache(&ops);
        Effects {
            ops,
            ..Effects::default()
        }
    }

    /// The operations of a clean stop: delete each owned service whose virtual has `cleanstop`.
    pub fn stop_ops(&self) -> Vec<Op> {
        self.owned
            .iter()
            .filter(|k| self.virt(k).is_none_or(|v| v.cleanstop))
            .filter(|k| self.applied.table.services.contains_key(k))
            .map(|k| Op::DelService(*k))
            .collect()
    }

    /// Forgets what was applied (after a failed apply, the kernel's state is unknown until the
    /// next reconcile reads it).
    pub fn invalidate(&mut self) {
        self.applied.table = Table::new();
        self.synced = false;
    }

    /// Counts for the status line: virtuals, reals up, reals.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut up = 0;
        let mut all = 0;
        for v in &self.config.virtuals {
            for r in &v.reals {
                all += 1;
                let is_up = match v.check {
                    CheckMode::On => true,
                    CheckMode::Off => false,
                    CheckMode::Probe => self
                        .health
                        .get(&(v.service.key, r.dest.addr))
                        .is_some_and(|h| h.state == State::Up),
                };
                up += usize::from(is_up);
            }
        }
        (self.config.virtuals.len(), up, all)
    }

    /// The destination as applied, if any.
    pub fn applied_dest(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<&Destination> {
        self.applied.table.services.get(key)?.destinations.get(addr)
    }

    /// Whether the fallback of `key` is in the table.
    pub fn fallback_active(&self, key: &ServiceKey) -> bool {
        self.fallback_on.contains(key)
    }
}

fn index(config: &Config) -> FastMap<ServiceKey, usize> {
    config
        .virtuals
        .iter()
        .enumerate()
        .map(|(i, v)| (v.service.key, i))
        .collect()
}

/// Every real of `config` with its virtual's place in `config.virtuals`.
fn reals(config: &Config) -> FastMap<RealId, usize> {
    config
        .virtuals
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            v.reals
                .iter()
                .map(move |r| ((v.service.key, r.dest.addr), i))
        })
        .collect()
}

#[cfg(test)]
mod tests;
