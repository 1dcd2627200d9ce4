//! The failover policies on top of the core rules: ping nodes, quorum, interface tracking,
//! resource failures (local restart or move), fencing, and what a node says about itself in
//! every frame ([`Health`]). Pure like the rest of the machine: the daemon feeds the facts
//! (`Ping`, `Carrier`, `ResourceFailed`, `Fenced`) and carries out the actions.
//!
//! # Rules
//! - **Ping nodes**: a node that reaches none of its ping targets while a live peer reaches some
//!   must not hold groups (it hands them over); a node that hears no peer and reaches no target
//!   (or has no ping result yet) is cut off: it cannot tell a dead peer from its own isolation, so
//!   it acquires nothing and releases what it holds (the side that still reaches the targets
//!   takes over: one holder). Only a round started after the peers went silent counts: at
//!   warntime the node asks for one at once (`Action::PingNow`) and, until it answers, keeps
//!   what it holds and takes nothing. So the isolated side learns it within warntime plus one
//!   round, before the other side's deadtime, whatever the ping interval.
//! - **Quorum disk** (a disk link with `quorum = true`): the same for a node that hears no peer
//!   and does not see its own latest write on the disk within warntime (its path to the shared
//!   storage is gone or hung): it acquires nothing and releases what it holds, while the peer that
//!   still writes and reads its slot takes over. Warntime is shorter than the peer's deadtime, so
//!   the cut-off node lets go before the other takes over.
//! - **Quorum** (three or more nodes, unless turned off): a node may hold groups only while the
//!   nodes it hears, itself included, have more than half of all votes; a minority releases
//!   everything. Two nodes always have quorum; ping targets and the disk link break their ties.
//! - **Readiness**: a node is ready for a group when it is not in standby, eligible, has quorum,
//!   does not lose on ping, every interface the group needs has carrier, and the group did not
//!   fail there. Frames carry the groups a node is *not* ready for; a group moves only to a ready
//!   peer, and a node that is not ready hands its groups to a ready peer (or keeps serving when
//!   there is none).
//! - **Resource failure**: a ready peer takes the group (release here, handshake); with none,
//!   the group is restarted here up to `restart_limit` times per `restart_window`, then given up
//!   with an alert (offered again as soon as a peer is ready).
//! - **Fencing**: before acquiring a group while a node allowed to hold it is down (not left
//!   cleanly) and has a fence command, that node is fenced; the acquire waits for success. A
//!   failed fence raises an alert and is retried after `FENCE_RETRY` deadtimes.
//! - **Suspension**: for deadtime after waking from a suspension (a gap longer than warntime) a
//!   node's frames mark every group it holds as unready; a peer that took one over meanwhile
//!   keeps it (even if it comes later in the group's `nodes`), and the woken node releases its
//!   copy as soon as it hears the peer hold it.
//!   Otherwise a conflict (split brain healed) leaves the group with the earlier node, which
//!   announces it again once the other has released.

use std::time::Duration;

use super::{Action, Hold, Liveness, Machine};
use crate::msg::Health;

/// A failed fence is retried after this many deadtimes.
const FENCE_RETRY: u32 = 10;

impl Machine {
    pub(super) fn on_ping(&mut self, reached: u8, total: u8, age: Duration) {
        let reached = reached.min(total);
        let started = self.t.saturating_sub(age);
        if started < self.ping_started {
            return; // an older round that took longer than the one already counted
        }
        if self.ping != Some((reached, total)) {
            self.reason = format!("ping targets reached: {reached} of {total}");
        }
        self.ping = Some((reached, total));
        self.ping_started = started;
    }

    /// Since when no peer is heard (none within warntime): the latest frame of any peer, or my
    /// start if none ever came. `None` while one is heard.
    pub(super) fn silent_since(&self) -> Option<Duration> {
        let t = self.t;
        let heard = self.peers.values().any(|p| {
            p.live == Liveness::Up && p.last_seen.is_some_and(|l| t - l < self.s.warntime)
        });
        (!heard).then(|| {
            self.peers
                .values()
                .filter_map(|p| p.last_seen)
                .max()
                .unwrap_or(Duration::ZERO)
        })
    }

    /// The last ping round's targets reached, if that round started after the silence that began
    /// at `since`: after the first frame that did not come was due (`since` + keepalive), so
    /// after whatever cut the heartbeats. An older success says nothing about a cut since.
    fn ping_after(&self, since: Duration) -> Option<u8> {
        let fresh = since.is_zero() || self.ping_started >= since + self.s.keepalive;
        self.ping.filter(|_| fresh).map(|(reached, _)| reached)
    }

    /// No peer heard and the last ping round is older than the silence: whether I am cut off is
    /// not known yet (`Action::PingNow` asked). I keep what I hold and take nothing.
    pub(super) fn ping_unsettled(&self) -> bool {
        self.s.policy.ping
            && self.ping.is_some()
            && self
                .silent_since()
                .is_some_and(|since| self.ping_after(since).is_none())
    }

    /// Asks for a ping round once per silence (see `Action::PingNow`).
    pub(super) fn ask_ping(&mut self, out: &mut Vec<Action>) {
        if !self.s.policy.ping || self.stopping {
            return;
        }
        if let Some(since) = self.silent_since()
            && self.ping_asked.is_none_or(|a| a < since)
        {
            self.ping_asked = Some(self.t);
            out.push(Action::PingNow);
        }
    }

    pub(super) fn on_carrier(&mut self, iface: String, up: bool) {
        self.reason = format!("{iface} carrier {}", if up { "up" } else { "down" });
        if up {
            self.carrier_down.remove(&iface);
        } else {
            self.carrier_down.insert(iface);
        }
    }

    pub(super) fn on_resource_failed(&mut self, group: &str, out: &mut Vec<Action>) {
        let Some(i) = self.slots.iter().position(|s| s.name == group) else {
            return;
        };
        if self.slots[i].hold != Hold::Held {
            return; // starting or stopping: the runner's answer says how that went
        }
        if let Some(peer) = self.ready_other(i) {
            self.reason = format!("{group} failed here; {peer} is ready to take it");
            self.slots[i].failed = true;
            return;
        }
        let t = self.t;
        let window = self.s.policy.restart_window;
        let s = &mut self.slots[i];
        s.restarts.retain(|&r| t.saturating_sub(r) < window);
        if (s.restarts.len() as u64) < u64::from(self.s.policy.restart_limit) {
            s.restarts.push(t);
            s.restart_pending = true;
            s.hold = Hold::Releasing;
            self.reason = format!(
                "{group} failed; no peer is ready: restarting it here ({} of {} within {:?})",
                s.restarts.len(),
                self.s.policy.restart_limit,
                window
            );
            out.push(Action::Release(group.to_string()));
        } else {
            s.failed = true;
            self.reason = format!("{group} failed; no peer is ready and it may not restart again");
            out.push(Action::Alert {
                group: Some(group.to_string()),
                reason: format!(
                    "{group} failed {} times within {:?} and no peer is ready: it is stopped",
                    self.s.policy.restart_limit + 1,
                    window
                ),
            });
        }
    }

    pub(super) fn on_fenced(&mut self, peer: String, ok: bool, out: &mut Vec<Action>) {
        if !self.fencing.contains_key(&peer) {
            return; // it came back meanwhile, or a stale answer
        }
        if ok {
            self.reason = format!("{peer} fenced");
            self.fencing.remove(&peer);
            self.fenced.insert(peer);
        } else {
            let retry = self.t + self.s.deadtime * FENCE_RETRY;
            self.reason = format!("fencing {peer} failed");
            out.push(Action::Alert {
                group: None,
                reason: format!(
                    "fencing {peer} failed: its groups stay down until a fence succeeds (next try in {:?})",
                    self.s.deadtime * FENCE_RETRY
                ),
            });
            self.fencing.insert(peer, Some(retry));
        }
    }

    /// The nodes I hear (me included) have more than half of all votes. Always true for two
    /// nodes.
    pub(super) fn quorum(&self) -> bool {
        if !self.s.policy.quorum || self.peers.len() < 2 {
            return true;
        }
        let (seen, total) = self.votes();
        seen * 2 > total
    }

    /// The votes of the nodes I hear (me included), and of all nodes (for status).
    pub fn votes(&self) -> (u64, u64) {
        let votes = |n: &str| u64::from(self.s.policy.votes.get(n).copied().unwrap_or(1));
        let total = std::iter::once(self.s.me.as_str())
            .chain(self.peers.keys().map(String::as_str))
            .map(votes)
            .sum();
        let seen = votes(&self.s.me)
            + self
                .peers
                .iter()
                .filter(|(_, p)| p.live == Liveness::Up)
                .map(|(n, _)| votes(n))
                .sum::<u64>();
        (seen, total)
    }

    /// I reach no ping target while a live peer reaches some.
    pub(super) fn ping_lost(&self) -> bool {
        self.s.policy.ping
            && self.ping.is_some_and(|(reached, _)| reached == 0)
            && self
                .peers
                .values()
                .any(|p| p.live == Liveness::Up && p.health.ping_reached > 0)
    }

    /// I hear no peer and a tie-breaker fails: a ping round started since reached no target (or
    /// I have no result at all yet), or I do not see my own writes on the quorum disk. I may be
    /// the one cut off.
    ///
    /// "Hear" means a frame within warntime, not "not yet declared dead": the side that is cut
    /// off lets go of its groups at warntime (plus the round it asks for then, see
    /// `Action::PingNow`), before the other side's deadtime makes it take them over.
    pub(super) fn cut_off(&self) -> Option<&'static str> {
        let since = self.silent_since()?;
        if self.s.policy.ping && (self.ping.is_none() || self.ping_after(since) == Some(0)) {
            return Some("cut off: no peer heard, no ping target reached");
        }
        if self.s.policy.quorum_disk && !self.disk {
            return Some("cut off: no peer heard, my writes to the quorum disk are not seen");
        }
        None
    }

    pub(super) fn on_disk(&mut self, ok: bool) {
        if self.disk != ok {
            self.reason = format!(
                "quorum disk {}",
                if ok { "confirms my writes" } else { "lost" }
            );
        }
        self.disk = ok;
    }

    /// Why I am not ready for slot `i` apart from standby and eligibility, if I am not.
    pub(super) fn unready_policy(&self, i: usize) -> Option<String> {
        if !self.quorum() {
            return Some("no quorum".into());
        }
        if self.ping_lost() {
            return Some("no ping target reached, a peer reaches some".into());
        }
        if let Some(c) = self.cut_off() {
            return Some(c.into());
        }
        self.no_carrier(i).map(|n| format!("{n} has no carrier"))
    }

    /// The first of slot `i`'s needed interfaces that has no carrier.
    pub(super) fn no_carrier(&self, i: usize) -> Option<&str> {
        self.slots[i]
            .interfaces
            .iter()
            .find(|n| self.carrier_down.contains(*n))
            .map(String::as_str)
    }

    /// The first allowed live peer that says it is ready for slot `i`.
    pub(super) fn ready_other(&self, i: usize) -> Option<String> {
        let g = &self.slots[i].name;
        self.slots[i]
            .nodes
            .iter()
            .find(|n| {
                **n != self.s.me
                    && self
                        .peers
                        .get(*n)
                        .is_some_and(|p| p.live == Liveness::Up && !p.health.unready.contains(g))
            })
            .cloned()
    }

    /// A live peer holding `g` that says it is letting go of it (it woke from a suspension).
    pub(super) fn peer_yields(&self, peer: &str, g: &str) -> bool {
        self.peers.get(peer).is_some_and(|p| {
            p.live == Liveness::Up && p.held.contains(g) && p.health.unready.iter().any(|u| u == g)
        })
    }

    /// True within deadtime after waking from a suspension.
    pub(super) fn just_woke(&self) -> bool {
        self.woke.is_some_and(|w| self.t - w < self.s.deadtime)
    }

    /// The first node allowed to hold slot `i` that is down (not left cleanly), has a fence
    /// command and is not fenced yet.
    pub(super) fn needs_fence(&self, i: usize) -> Option<String> {
        self.slots[i]
            .nodes
            .iter()
            .find(|n| {
                self.s.policy.fence.contains(*n)
                    && !self.fenced.contains(*n)
                    && self
                        .peers
                        .get(*n)
                        .is_some_and(|p| matches!(p.live, Liveness::Down))
            })
            .cloned()
    }

    /// Asks for `peer` to be fenced unless that is running or waiting to be retried.
    pub(super) fn fence(&mut self, peer: String, out: &mut Vec<Action>) {
        let due = match self.fencing.get(&peer) {
            None => true,
            Some(None) => false,
            Some(Some(retry)) => self.t >= *retry,
        };
        if due {
            self.reason = format!("fencing {peer} before taking over");
            self.fencing.insert(peer.clone(), None);
            out.push(Action::Fence { peer });
        }
    }

    /// What my frames say about me.
    pub fn health(&self) -> Health {
        let (ping_reached, ping_total) = self.ping.unwrap_or((0, 0));
        Health {
            ping_reached,
            ping_total,
            // Just after a suspension every group I still hold is marked too: a peer that took
            // one over meanwhile keeps it, and I let go as soon as I hear that.
            unready: (0..self.slots.len())
                .filter(|&i| {
                    let s = &self.slots[i];
                    (self.allowed(i) && self.excluded(i))
                        || s.yielding
                        || (self.just_woke() && s.hold.occupied())
                })
                .map(|i| self.slots[i].name.clone())
                .collect(),
        }
    }

    /// Why I am not ready for `group` (for status), `None` when I am.
    pub fn unready_reason(&self, group: &str) -> Option<String> {
        let i = self.slots.iter().position(|s| s.name == group)?;
        if !self.allowed(i) {
            return Some("not one of its nodes".into());
        }
        if self.standby {
            return Some("standby".into());
        }
        if !self.eligible {
            return Some("not eligible".into());
        }
        if self.slots[i].failed {
            return Some("its resources failed here".into());
        }
        self.unready_policy(i)
    }

    /// Whether the quorum disk shows my writes (for status); `None` without a quorum disk.
    pub fn disk_ok(&self) -> Option<bool> {
        self.s.policy.quorum_disk.then_some(self.disk)
    }

    /// Whether the nodes I hear have quorum (for status).
    pub fn has_quorum(&self) -> bool {
        self.quorum()
    }

    /// The last ping round (for status).
    pub fn ping_result(&self) -> Option<(u8, u8)> {
        self.ping
    }
}
