//! `fakeip hold`: the long-running form that hbeat (or systemd, s6) supervises. It adds the
//! addresses, announces them, tells the supervisor READY once the first burst is out, then waits:
//! SIGHUP re-announces at once (a fresh burst), `--refresh D` re-announces every D, SIGUSR1 logs
//! the state, and SIGTERM/SIGINT remove the addresses and end it with success.
//!
//! While holding, an address that someone removed is added back at the next re-announcement, and
//! a failed announcement (the link went down) is logged and retried at the next one: `hold` only
//! ends on a signal. The loop is a small scheduler on the tokio clock (never blocked by a burst,
//! so TERM is handled at once even mid-burst) and is tested on paused time with the fakes.
//!
//! Deliberately not here: reading a config file, watching the addresses through netlink
//! notifications, talking to the peer (hbeat's job).

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use common::daemon::{Notifier, SignalEvent, Signals};
use common::net::{Addresses, Change, Interface, NetError};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::ops::{ensure, up_interface};
use crate::target::Spec;
use crate::{Burst, Deps, Error};

/// Where `hold` gets its signals from: [`Signals`] in the binary, a channel in tests.
pub trait Events {
    /// The next event; `None` when the source has ended (treated as shutdown).
    fn next(&mut self) -> impl Future<Output = Option<SignalEvent>>;
}

impl Events for Signals {
    fn next(&mut self) -> impl Future<Output = Option<SignalEvent>> {
        self.recv()
    }
}

impl Events for tokio::sync::mpsc::Receiver<SignalEvent> {
    fn next(&mut self) -> impl Future<Output = Option<SignalEvent>> {
        self.recv()
    }
}

/// Options of `hold`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HoldOptions {
    /// Full IPv4 label for the IPv4 addresses.
    pub label: Option<String>,
    /// Each burst: at start, on SIGHUP, on refresh.
    pub burst: Burst,
    /// Re-announce every this long (from the start of the previous burst); `None`: never.
    pub refresh: Option<Duration>,
}

/// `fakeip hold` (see the [module docs](self)). Returns when told to stop, after removing the
/// addresses; an error before READY when the addresses cannot be taken (anything added by then
/// is removed again), or [`Error::Release`] when removing failed.
///
/// `go`, when given, makes it *armed* (hbeat's `armed:` resources, `hbeat::resource::ARMED`):
/// everything is prepared (the process, its sockets, the interface looked up) and nothing is
/// touched until `go` resolves: `true` takes the addresses as above; `false` (hbeat gave up on it, or died) or a
/// stop signal ends it with success, nothing changed.
pub async fn hold<E: Events, G: Future<Output = bool>>(
    deps: Deps<'_>,
    iface: &str,
    specs: &[Spec],
    opts: &HoldOptions,
    notifier: &dyn Notifier,
    events: &mut E,
    go: Option<G>,
) -> Result<(), Error> {
    let cidrs = specs
        .iter()
        .map(|s| s.cidr())
        .collect::<Result<Vec<_>, _>>()?;
    let iface = up_interface(deps, iface)?;
    if let Some(go) = go
        && !armed(specs, &iface, events, go).await
    {
        return Ok(());
    }
    let ethernet = iface.ethernet_mac().is_ok();
    let mut added = Vec::new();
    for spec in specs {
        let label = opts.label.as_deref().filter(|_| spec.addr.is_ipv4());
        match ensure(deps, &iface, *spec, label) {
            Ok(Change::Done) => added.push(*spec),
            Ok(Change::Unchanged) => {
                info!(vip = %spec, iface = %iface.name, "address already present")
            }
            Err(e) => {
                // Give back what this call added: no half-taken group.
                let _ = release(deps.addresses, &iface, &added);
                return Err(e);
            }
        }
    }
    let ips: Vec<IpAddr> = cidrs.iter().map(|c| c.addr()).collect();
    let names = cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    info!(vips = %names, iface = %iface.name, "holding");

    let burst = if ethernet {
        opts.burst
    } else {
        info!(iface = %iface.name, reason = "not an Ethernet interface", "no announcement");
        Burst {
            count: 0,
            ..opts.burst
        }
    };
    let start = Instant::now();
    let mut sched = Schedule {
        pending: burst.count,
        next: start,
        refresh_at: opts.refresh.filter(|_| ethernet).map(|r| start + r),
    };
    let mut ready = false;
    let mut sent: u64 = 0;
    loop {
        if sched.pending == 0 && !ready {
            ready = true;
            if let Err(e) = notifier.ready() {
                warn!(error = %e, "cannot tell the supervisor we are ready");
            }
            let _ = notifier.status(&format!("holding {names} on {}", iface.name));
            info!(vips = %names, iface = %iface.name, announcements = sent, "ready");
        }
        let wake = sched.wake();
        tokio::select! {
            ev = events.next() => match ev {
                Some(SignalEvent::Reload) => {
                    info!(vips = %names, reason = "SIGHUP", "re-announcing");
                    reensure(deps, &iface, specs, opts);
                    sched.restart(Instant::now(), burst.count);
                }
                Some(SignalEvent::Dump) => {
                    info!(vips = %names, iface = %iface.name, announcements = sent, pending = sched.pending, "state");
                }
                Some(SignalEvent::Shutdown) | None => break,
            },
            () = sleep_until(wake) => {
                if sched.pending > 0 {
                    for ip in &ips {
                        match deps.garp.announce(&iface, *ip) {
                            Ok(()) => sent += 1,
                            Err(e) => warn!(vip = %ip, error = %e, "announcement failed; retrying at the next one"),
                        }
                    }
                    sched.pending -= 1;
                    sched.next += burst.interval;
                } else if let (Some(at), Some(every)) = (sched.refresh_at, opts.refresh) {
                    debug!(vips = %names, reason = "refresh", "re-announcing");
                    reensure(deps, &iface, specs, opts);
                    sched.restart(at, burst.count);
                    sched.refresh_at = Some(at + every);
                }
            }
        }
    }
    let _ = notifier.stopping();
    info!(vips = %names, iface = %iface.name, reason = "signal", "releasing");
    release(deps.addresses, &iface, specs)
}

/// Waits for `go` while armed; false when it said no or a stop signal came first.
async fn armed<E: Events, G: Future<Output = bool>>(
    specs: &[Spec],
    iface: &Interface,
    events: &mut E,
    go: G,
) -> bool {
    let names = specs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    info!(vips = %names, iface = %iface.name, "armed: waiting for the go");
    tokio::pin!(go);
    loop {
        tokio::select! {
            g = &mut go => {
                if !g {
                    info!(vips = %names, reason = "the go channel closed", "not needed; nothing changed");
                }
                return g;
            }
            ev = events.next() => match ev {
                Some(SignalEvent::Shutdown) | None => {
                    info!(vips = %names, reason = "signal", "stopped while armed; nothing changed");
                    return false;
                }
                Some(SignalEvent::Dump) => info!(vips = %names, iface = %iface.name, "state: armed"),
                Some(SignalEvent::Reload) => {}
            },
        }
    }
}

struct Schedule {
    /// Announcements left in the current burst.
    pending: u32,
    /// When the next one is due.
    next: Instant,
    /// When the next refresh burst starts.
    refresh_at: Option<Instant>,
}

impl Schedule {
    fn wake(&self) -> Option<Instant> {
        if self.pending > 0 {
            Some(self.next)
        } else {
            self.refresh_at
        }
    }

    fn restart(&mut self, at: Instant, count: u32) {
        self.pending = count;
        self.next = at;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Puts back any address that went missing; failures are logged, holding goes on.
fn reensure(deps: Deps<'_>, iface: &Interface, specs: &[Spec], opts: &HoldOptions) {
    for spec in specs {
        let label = opts.label.as_deref().filter(|_| spec.addr.is_ipv4());
        match ensure(deps, iface, *spec, label) {
            Ok(Change::Done) => {
                warn!(vip = %spec, iface = %iface.name, reason = "it was gone", "address added again")
            }
            Ok(Change::Unchanged) => {}
            Err(e) => warn!(vip = %spec, error = %e, "cannot put the address back"),
        }
    }
}

/// Removes every address in `specs`, trying each; all failures are reported together. Also what
/// `fakeip hold` does under `HBEAT_CLEANUP=1` (what a dead hold left).
pub fn release(addresses: &dyn Addresses, iface: &Interface, specs: &[Spec]) -> Result<(), Error> {
    let mut errors: Vec<NetError> = Vec::new();
    for spec in specs {
        let found = match addresses.list(iface) {
            Ok(list) => list.into_iter().find(|a| a.addr == spec.addr),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(have) = found else {
            continue;
        };
        match addresses.remove(iface, have.addr, have.prefix_len) {
            Ok(_) => info!(vip = %have, iface = %iface.name, "address removed"),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Release(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::daemon::{Notification, RecordingNotifier};
    use common::net::Addresses;
    use common::net::{
        AddrCall, FakeInterfaces, GarpCall, MacAddr, RecordingAddresses, RecordingGarp,
    };
    use std::sync::Arc;
    use tokio::sync::mpsc;

    struct World {
        ifaces: FakeInterfaces,
        addrs: RecordingAddresses,
        garp: RecordingGarp,
    }

    fn world() -> World {
        World {
            ifaces: FakeInterfaces::new(vec![Interface::ethernet(
                "eth0",
                2,
                MacAddr([2, 0, 0, 0, 0, 0xb]),
            )]),
            addrs: RecordingAddresses::new(),
            garp: RecordingGarp::new(),
        }
    }

    fn specs(words: &str) -> Vec<Spec> {
        let mut w: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
        w.extend(["dev".into(), "eth0".into()]);
        crate::target::parse(
            &w,
            crate::target::Accept {
                many: true,
                prefix: true,
            },
        )
        .unwrap()
        .specs
    }

    const NOT_ARMED: Option<std::future::Ready<bool>> = None;

    async fn settle() {
        // Let the hold task run up to its next wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn holds_announces_reannounces_on_hup_and_releases_on_term() {
        let w = Arc::new(world());
        let notifier = Arc::new(RecordingNotifier::new());
        let (tx, mut rx) = mpsc::channel(4);
        let t0 = Instant::now();
        let task = {
            let (w, notifier) = (w.clone(), notifier.clone());
            tokio::spawn(async move {
                let deps = Deps {
                    interfaces: &w.ifaces,
                    addresses: &w.addrs,
                    garp: &w.garp,
                };
                let opts = HoldOptions::default();
                hold(
                    deps,
                    "eth0",
                    &specs("192.0.2.100/24 2001:db8::100/64"),
                    &opts,
                    &*notifier,
                    &mut rx,
                    NOT_ARMED,
                )
                .await
            })
        };
        settle().await;
        assert_eq!(w.addrs.addresses(2).len(), 2);
        tokio::time::sleep(Duration::from_millis(700)).await;
        settle().await;
        // Not ready before the fifth announcement (at 800 ms).
        assert!(notifier.calls().is_empty());
        tokio::time::sleep(Duration::from_millis(150)).await;
        settle().await;
        assert_eq!(notifier.calls()[0], Notification::Ready);
        assert_eq!(w.garp.calls().len(), 10);

        // SIGHUP: an address removed behind our back comes back, a fresh burst goes out.
        w.addrs
            .remove(
                &common::net::Interfaces::interface(&w.ifaces, "eth0").unwrap(),
                "192.0.2.100".parse().unwrap(),
                24,
            )
            .unwrap();
        tx.send(SignalEvent::Reload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        settle().await;
        assert_eq!(w.garp.calls().len(), 20);
        assert_eq!(w.addrs.addresses(2).len(), 2);
        let hup_times: Vec<u128> = w.garp.timed_calls()[10..]
            .iter()
            .step_by(2)
            .map(|(t, _)| (*t - t0).as_millis())
            .collect();
        assert_eq!(hup_times, [850, 1050, 1250, 1450, 1650]);

        // TERM mid-burst: stops at once and removes both.
        tx.send(SignalEvent::Reload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send(SignalEvent::Shutdown).await.unwrap();
        let r = task.await.unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert!(w.addrs.addresses(2).is_empty());
        assert_eq!(w.garp.calls().len(), 22);
        assert_eq!(notifier.calls().last(), Some(&Notification::Stopping));
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_reannounces_periodically() {
        let w = world();
        let notifier = RecordingNotifier::new();
        let (tx, mut rx) = mpsc::channel(4);
        let deps = Deps {
            interfaces: &w.ifaces,
            addresses: &w.addrs,
            garp: &w.garp,
        };
        let opts = HoldOptions {
            burst: Burst {
                count: 2,
                interval: Duration::from_millis(100),
            },
            refresh: Some(Duration::from_secs(10)),
            ..HoldOptions::default()
        };
        let t0 = Instant::now();
        let sp = specs("192.0.2.100/24");
        let run = hold(deps, "eth0", &sp, &opts, &notifier, &mut rx, NOT_ARMED);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(25_050)).await;
            tx.send(SignalEvent::Shutdown).await.unwrap();
        };
        let (r, ()) = tokio::join!(run, stop);
        r.unwrap();
        let times: Vec<u128> = w
            .garp
            .timed_calls()
            .iter()
            .map(|(t, c)| {
                assert!(matches!(c, GarpCall::Announce(..)));
                (*t - t0).as_millis()
            })
            .collect();
        assert_eq!(times, [0, 100, 10_000, 10_100, 20_000, 20_100]);
        assert_eq!(
            w.addrs.changes().last(),
            Some(&AddrCall::Remove(
                "eth0".into(),
                "192.0.2.100".parse().unwrap(),
                24
            ))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_take_gives_back_what_it_added() {
        let w = world();
        // The second address is there with another prefix: the first must not stay behind.
        w.addrs.preset(2, "192.0.2.101/32".parse().unwrap());
        let notifier = RecordingNotifier::new();
        let (_tx, mut rx) = mpsc::channel(1);
        let deps = Deps {
            interfaces: &w.ifaces,
            addresses: &w.addrs,
            garp: &w.garp,
        };
        let err = hold(
            deps,
            "eth0",
            &specs("192.0.2.100/24 192.0.2.101/24"),
            &HoldOptions::default(),
            &notifier,
            &mut rx,
            NOT_ARMED,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::PrefixMismatch { .. }), "{err}");
        assert_eq!(w.addrs.addresses(2).len(), 1);
        assert!(notifier.calls().is_empty() && w.garp.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn armed_it_touches_nothing_until_the_go_then_holds() {
        let w = Arc::new(world());
        let notifier = Arc::new(RecordingNotifier::new());
        let (tx, mut rx) = mpsc::channel(4);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<bool>();
        let task = {
            let (w, notifier) = (w.clone(), notifier.clone());
            tokio::spawn(async move {
                let deps = Deps {
                    interfaces: &w.ifaces,
                    addresses: &w.addrs,
                    garp: &w.garp,
                };
                let go = async move { go_rx.await.unwrap_or(false) };
                let sp = specs("192.0.2.100/24");
                hold(
                    deps,
                    "eth0",
                    &sp,
                    &HoldOptions::default(),
                    &*notifier,
                    &mut rx,
                    Some(go),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        // A SIGHUP while armed is no go either.
        tx.send(SignalEvent::Reload).await.unwrap();
        settle().await;
        assert!(w.addrs.changes().is_empty() && w.garp.calls().is_empty());
        assert!(notifier.calls().is_empty());
        go_tx.send(true).unwrap();
        settle().await;
        assert_eq!(w.addrs.addresses(2).len(), 1);
        assert_eq!(w.garp.calls().len(), 1, "the first announcement at once");
        tx.send(SignalEvent::Shutdown).await.unwrap();
        task.await.unwrap().unwrap();
        assert!(w.addrs.addresses(2).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn armed_a_closed_go_or_a_stop_ends_it_with_nothing_changed() {
        for by_signal in [false, true] {
            let w = world();
            let notifier = RecordingNotifier::new();
            let (tx, mut rx) = mpsc::channel(4);
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<bool>();
            let deps = Deps {
                interfaces: &w.ifaces,
                addresses: &w.addrs,
                garp: &w.garp,
            };
            let sp = specs("192.0.2.100/24");
            let go = async move { go_rx.await.unwrap_or(false) };
            let opts = HoldOptions::default();
            let run = hold(deps, "eth0", &sp, &opts, &notifier, &mut rx, Some(go));
            let end = async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if by_signal {
                    tx.send(SignalEvent::Shutdown).await.unwrap();
                    std::future::pending::<()>().await;
                } else {
                    drop(go_tx);
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = run => r.unwrap(),
                () = end => unreachable!(),
            }
            assert!(w.addrs.changes().is_empty() && w.garp.calls().is_empty());
            assert!(notifier.calls().is_empty());
        }
    }
}
