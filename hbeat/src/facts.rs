//! The facts the failover policies decide on, gathered at the I/O edge and handed to the state
//! machine as events: how many ping targets answer (ICMP echo through the shared probe engine,
//! surge-ping). Each fact arrives as a [`Fact`] on a channel the daemon reads.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::probe::{Check, Probe, Prober, Spec};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::Ping;

/// A fact for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The last round: targets that answered, of all targets.
    Ping { reached: u8, total: u8 },
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
pub fn spawn_ping(ping: Ping, tx: mpsc::Sender<Fact>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let prober = Arc::new(Prober::new());
        let mut every = tokio::time::interval(ping.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            every.tick().await;
            let (reached, total) = ping_round(&prober, &ping.targets, ping.timeout).await;
            if last != Some(reached) {
                tracing::info!(reached, total, "ping targets");
                last = Some(reached);
            }
            if tx.send(Fact::Ping { reached, total }).await.is_err() {
                return;
            }
        }
    })
}
