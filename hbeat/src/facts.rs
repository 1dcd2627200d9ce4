//! The facts the failover policies decide on, gathered at the I/O edge and handed to the state
//! machine as events: how many ping targets answer (ICMP echo through the shared probe engine,
//! surge-ping), and which tracked interfaces have carrier (rtnetlink link notifications through
//! [`common::net::LinkWatcher`], so an interface deleted and created again is followed: the
//! keepalived `track_interface` bug, its issues 2142 and 1823). Each fact arrives as a [`Fact`]
//! on a channel the daemon reads.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::net::{LinkEvent, LinkWatcher, NetError};
use common::probe::{Check, Probe, Prober, Spec};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::Ping;

/// A fact for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A round that started at `started`: targets that answered, of all targets.
    Ping {
        reached: u8,
        total: u8,
        started: Instant,
    },
    /// A tracked interface gained or lost carrier (a missing interface has none).
    Carrier { iface: String, up: bool },
}

/// One round: every target echoed once, concurrently, each within `timeout`. Returns how many
/// answered and how many there are (at most 255 are counted; the configuration allows 32).
pub async fn ping_round(prober: &Arc<Prober>, targets: &[IpAddr], timeout: Duration) -> (u8, u8) {
    let mut set = JoinSet::new();
    for &t in targets {
        let prober = Arc::clone(prober);
        let mut spec = Spec::new(Check::Ping(Default::default()));
        spec.timeout = timeout.into();
        let probe = Probe::new(t, spec);
        set.spawn(async move { prober.run(&probe).await.up });
    }
    let mut reached = 0u8;
    while let Some(r) = set.join_next().await {
        if r.unwrap_or(false) {
            reached = reached.saturating_add(1);
        }
    }
    let total = u8::try_from(targets.len()).unwrap_or(u8::MAX);
    (reached.min(total), total)
}

/// Pings the targets every interval for as long as `tx` is open; the first round starts at once.
/// A message on `now` starts a round at once, beside the periodic ones, with `urgent_timeout`:
/// the machine asks for it when the peers go silent (`Action::PingNow`) and must know before the
/// peer's deadtime. One such round runs at a time (a request while one runs is that one).
pub fn spawn_ping(
    ping: Ping,
    urgent_timeout: Duration,
    mut now: mpsc::Receiver<()>,
    tx: mpsc::Sender<Fact>,
) -> tokio::task::JoinHandle<()> {
    let prober = Arc::new(Prober::new());
    let targets: Arc<[IpAddr]> = ping.targets.into();
    let last = Arc::new(AtomicU16::new(u16::MAX));
    let round = move |timeout: Duration| {
        let (prober, targets, tx, last) = (
            Arc::clone(&prober),
            Arc::clone(&targets),
            tx.clone(),
            Arc::clone(&last),
        );
        async move {
            let started = Instant::now();
            let (reached, total) = ping_round(&prober, &targets, timeout).await;
            if last.swap(reached.into(), Ordering::Relaxed) != u16::from(reached) {
                tracing::info!(reached, total, "ping targets");
            }
            let fact = Fact::Ping {
                reached,
                total,
                started,
            };
            tx.send(fact).await.is_ok()
        }
    };
    let periodic = round.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ping.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = tokio::spawn(async move {
            loop {
                every.tick().await;
                if !periodic(ping.timeout).await {
                    return;
                }
            }
        });
        let mut urgent: Option<tokio::task::JoinHandle<bool>> = None;
        loop {
            tokio::select! {
                _ = &mut rounds => return,
                m = now.recv() => {
                    if m.is_none() {
                        rounds.abort();
                        return;
                    }
                    if urgent.as_ref().is_none_or(|h| h.is_finished()) {
                        urgent = Some(tokio::spawn(round(urgent_timeout)));
                    }
                }
            }
        }
    })
}

/// How long interface tracking waits before opening its socket again after a failure.
const CARRIER_RETRY: Duration = Duration::from_secs(1);

/// A tracked interface's carrier changed, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierChange {
    /// The interface.
    pub iface: String,
    /// Whether it has carrier now.
    pub up: bool,
    /// `carrier`, `no carrier`, `down`, `deleted`, `not found`.
    pub reason: &'static str,
}

/// The carrier of each tracked interface, from link snapshots and events; reports changes only.
/// Pure: the I/O is in [`spawn_carrier`].
#[derive(Debug, Clone)]
pub struct Carriers {
    /// `None` until the first snapshot.
    state: BTreeMap<String, Option<bool>>,
}

impl Carriers {
    /// Tracks `interfaces` (duplicates are one).
    pub fn new(interfaces: impl IntoIterator<Item = String>) -> Carriers {
        Carriers {
            state: interfaces.into_iter().map(|i| (i, None)).collect(),
        }
    }

    fn set(&mut self, iface: &str, up: bool, reason: &'static str) -> Option<CarrierChange> {
        let slot = self.state.get_mut(iface)?;
        if *slot == Some(up) {
            return None;
        }
        *slot = Some(up);
        Some(CarrierChange {
            iface: iface.to_owned(),
            up,
            reason,
        })
    }

    /// Every tracked interface whose carrier differs from what was last reported, after a
    /// snapshot of all links (the first one reports every tracked interface).
    pub fn sync(&mut self, links: &[LinkEvent]) -> Vec<CarrierChange> {
        let names: Vec<String> = self.state.keys().cloned().collect();
        names
            .iter()
            .filter_map(|name| match links.iter().find(|l| &l.name == name) {
                Some(l) => self.update(l),
                None => self.set(name, false, "not found"),
            })
            .collect()
    }

    /// The change a link event makes, if it is about a tracked interface and changes anything.
    pub fn update(&mut self, ev: &LinkEvent) -> Option<CarrierChange> {
        let (up, reason) = match ev {
            LinkEvent { deleted: true, .. } => (false, "deleted"),
            LinkEvent { up: false, .. } => (false, "down"),
            LinkEvent { carrier: false, .. } => (false, "no carrier"),
            _ => (true, "carrier"),
        };
        self.set(&ev.name, up, reason)
    }
}

/// Follows the carrier of `interfaces` (the union of every group's) for as long as `tx` is
/// open: each one's state at start (an interface that does not exist has no carrier), then
/// changes only. If the link socket fails, it is opened again and a new snapshot reports what
/// changed meanwhile.
pub fn spawn_carrier(
    interfaces: Vec<String>,
    tx: mpsc::Sender<Fact>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut carriers = Carriers::new(interfaces);
        loop {
            match track(&mut carriers, &tx).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(error = %e, retry = ?CARRIER_RETRY, "interface tracking failed");
                    tokio::select! {
                        _ = tokio::time::sleep(CARRIER_RETRY) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        }
    })
}

/// Sends one change as a fact; false when the receiver is gone.
async fn report(c: CarrierChange, tx: &mpsc::Sender<Fact>) -> bool {
    if c.reason == "not found" {
        tracing::warn!(iface = %c.iface, "tracked interface not found: no carrier until it appears");
    } else {
        tracing::info!(iface = %c.iface, up = c.up, reason = c.reason, "interface carrier");
    }
    tx.send(Fact::Carrier {
        iface: c.iface,
        up: c.up,
    })
    .await
    .is_ok()
}

/// One watcher's life: snapshot, then events until the socket fails (`Err`) or `tx` closes.
async fn track(carriers: &mut Carriers, tx: &mpsc::Sender<Fact>) -> Result<(), NetError> {
    let mut watcher = LinkWatcher::open()?;
    let links = watcher.snapshot().await?;
    for c in carriers.sync(&links) {
        if !report(c, tx).await {
            return Ok(());
        }
    }
    loop {
        let ev = tokio::select! {
            ev = watcher.next() => ev?,
            _ = tx.closed() => return Ok(()),
        };
        if let Some(c) = carriers.update(&ev)
            && !report(c, tx).await
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, up: bool, carrier: bool, deleted: bool) -> LinkEvent {
        LinkEvent {
            name: name.into(),
            index: 2,
            up,
            carrier,
            deleted,
        }
    }

    fn change(iface: &str, up: bool, reason: &'static str) -> CarrierChange {
        CarrierChange {
            iface: iface.into(),
            up,
            reason,
        }
    }

    #[test]
    fn the_first_snapshot_reports_every_tracked_interface_then_only_changes() {
        let mut c = Carriers::new(["eth1".into(), "eth0".into(), "eth0".into()]);
        let links = [
            link("eth0", true, true, false),
            link("lo", true, true, false),
        ];
        assert_eq!(
            c.sync(&links),
            vec![
                change("eth0", true, "carrier"),
                change("eth1", false, "not found")
            ]
        );
        assert_eq!(c.sync(&links), vec![], "nothing changed");
        assert_eq!(
            c.update(&link("lo", false, false, false)),
            None,
            "not tracked"
        );
        assert_eq!(c.update(&link("eth0", true, true, false)), None);
        assert_eq!(
            c.update(&link("eth0", true, false, false)),
            Some(change("eth0", false, "no carrier"))
        );
        assert_eq!(
            c.update(&link("eth0", false, false, false)),
            None,
            "still none"
        );
        assert_eq!(
            c.update(&link("eth1", true, true, false)),
            Some(change("eth1", true, "carrier")),
            "appeared"
        );
        assert_eq!(
            c.update(&link("eth1", true, true, true)),
            Some(change("eth1", false, "deleted"))
        );
        assert_eq!(
            c.update(&link("eth1", true, true, false)),
            Some(change("eth1", true, "carrier")),
            "created again"
        );
        assert_eq!(
            c.sync(&[link("eth1", false, false, false)]),
            vec![change("eth1", false, "down")],
            "a snapshot after a reconnect reports what changed; eth0 gone is already no carrier"
        );
    }
}
