//! The one-shot commands: `up`, `down`, `status`, `announce`, `probe`, and the announcement
//! burst they share.
//!
//! Order of work in `up`: look the interface up (exists, up, Ethernet for announcing), read its
//! addresses, probe when asked, add, then announce at once and every interval. Nothing is changed
//! before every check passed, so a failure never leaves a half-applied state. The burst sleeps on
//! the tokio clock, so that unit tests run on paused time.
//!
//! Deliberately not here: printing (`main.rs` does), the long-running form ([`crate::hold`]).

use std::net::IpAddr;
use std::time::Duration;

use common::net::{Addresses, Change, IfAddr, Interface, Interfaces, MacAddr};
use tracing::{info, warn};

use crate::target::Spec;
use crate::{Burst, Deps, Error};

/// What `up` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpReport {
    /// The interface.
    pub iface: Interface,
    /// `Done`: added; `Unchanged`: it was there already.
    pub change: Change,
    /// Announcements sent (0 on a non-Ethernet interface such as `lo`).
    pub announced: u32,
    /// The answer of `--check-conflict` when `--force` overrode it.
    pub forced_over: Option<MacAddr>,
}

/// Options of `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpOptions {
    /// Full IPv4 label (`eth0:vip`), see [`crate::target::label`].
    pub label: Option<String>,
    /// Announcements.
    pub burst: Burst,
    /// Probe first (RFC 5227) and refuse an address in use.
    pub check_conflict: Option<ProbeOptions>,
    /// Take the address even when the probe says it is in use.
    pub force: bool,
}

/// How to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Probes to send.
    pub probes: u32,
    /// How long to listen in all.
    pub wait: Duration,
}

impl Default for ProbeOptions {
    /// RFC 5227 §1.1 `PROBE_NUM` 3 probes; listening 1 s in all rather than the RFC's 3–7 s, which
    /// is meant for hosts configuring themselves at boot (`--timeout 7s` gives the RFC's span).
    fn default() -> ProbeOptions {
        ProbeOptions {
            probes: 3,
            wait: Duration::from_secs(1),
        }
    }
}

/// Looks `name` up and checks it is up.
pub fn up_interface(deps: Deps<'_>, name: &str) -> Result<Interface, Error> {
    let iface = deps.interfaces.interface(name)?;
    iface.require_up()?;
    Ok(iface)
}

/// The entry for `addr` on `iface`, if there is one.
pub fn find(
    addresses: &dyn Addresses,
    iface: &Interface,
    addr: IpAddr,
) -> Result<Option<IfAddr>, Error> {
    Ok(addresses.list(iface)?.into_iter().find(|a| a.addr == addr))
}

/// Adds `cidr` unless it is there; a [`Error::PrefixMismatch`] when it is there with another
/// prefix length.
pub fn ensure(
    deps: Deps<'_>,
    iface: &Interface,
    spec: Spec,
    label: Option<&str>,
) -> Result<Change, Error> {
    let present = find(deps.addresses, iface, spec.addr)?;
    ensure_given(deps, iface, spec, label, present)
}

/// [`ensure`] with the interface's entry for the address already looked up (saves a netlink
/// round trip on the takeover path).
fn ensure_given(
    deps: Deps<'_>,
    iface: &Interface,
    spec: Spec,
    label: Option<&str>,
    present: Option<IfAddr>,
) -> Result<Change, Error> {
    let cidr = spec.cidr()?;
    if let Some(have) = present {
        return if have.prefix_len == cidr.prefix_len() {
            Ok(Change::Unchanged)
        } else {
            Err(Error::PrefixMismatch {
                addr: cidr.addr(),
                iface: iface.name.clone(),
                have: have.prefix_len,
                want: cidr.prefix_len(),
            })
        };
    }
    Ok(deps.addresses.add(iface, cidr, label)?)
}

/// Sends `burst.count` announcements of every address in `ips`, the first at once, then one
/// every `burst.interval` (scheduled from the start, so slow sends do not stretch the burst).
pub async fn announce_burst(
    deps: Deps<'_>,
    iface: &Interface,
    ips: &[IpAddr],
    burst: Burst,
) -> Result<u32, Error> {
    let start = tokio::time::Instant::now();
    for i in 0..burst.count {
        if i > 0 {
            tokio::time::sleep_until(start + burst.interval * i).await;
        }
        for ip in ips {
            deps.garp.announce(iface, *ip)?;
        }
    }
    Ok(burst.count)
}

/// `fakeip up`: add the address (if absent) and announce it.
pub async fn up(
    deps: Deps<'_>,
    iface: &str,
    spec: Spec,
    opts: &UpOptions,
) -> Result<UpReport, Error> {
    let cidr = spec.cidr()?;
    let iface = up_interface(deps, iface)?;
    let ethernet = iface.ethernet_mac().is_ok();
    if opts.check_conflict.is_some() && !cidr.addr().is_ipv4() {
        return Err(Error::Usage(
            "--check-conflict uses ARP (RFC 5227) and works for IPv4 only".into(),
        ));
    }
    let mut forced_over = None;
    let present = find(deps.addresses, &iface, cidr.addr())?;
    if present.is_none()
        && let (Some(p), IpAddr::V4(v4)) = (opts.check_conflict, cidr.addr())
        && let Some(mac) = deps.garp.probe(&iface, v4, p.probes, p.wait)?
    {
        if !opts.force {
            return Err(Error::InUse {
                ip: cidr.addr(),
                iface: iface.name.clone(),
                mac,
            });
        }
        warn!(vip = %cidr, iface = %iface.name, holder = %mac, reason = "--force", "taking an address in use");
        forced_over = Some(mac);
    }
    let change = ensure_given(deps, &iface, spec, opts.label.as_deref(), present)?;
    match change {
        Change::Done => info!(vip = %cidr, iface = %iface.name, "address added"),
        Change::Unchanged => info!(vip = %cidr, iface = %iface.name, "address already present"),
    }
    let announced = if ethernet {
        announce_burst(deps, &iface, &[cidr.addr()], opts.burst).await?
    } else {
        info!(iface = %iface.name, reason = "not an Ethernet interface", "no announcement");
        0
    };
    Ok(UpReport {
        iface,
        change,
        announced,
        forced_over,
    })
}

/// `fakeip down`: remove the address with whatever prefix length it has; absent is no error.
/// Returns the entry removed.
pub fn down(
    interfaces: &dyn Interfaces,
    addresses: &dyn Addresses,
    iface: &str,
    spec: Spec,
) -> Result<Option<IfAddr>, Error> {
    // A down interface still holds addresses and they can be removed.
    let iface = interfaces.interface(iface)?;
    let Some(have) = find(addresses, &iface, spec.addr)? else {
        return Ok(None);
    };
    if let Some(want) = spec.prefix_len
        && want != have.prefix_len
    {
        warn!(vip = %spec.addr, iface = %iface.name, have = have.prefix_len, want, "removing the address with the prefix length it has");
    }
    match addresses.remove(&iface, have.addr, have.prefix_len)? {
        Change::Done => {
            info!(vip = %have, iface = %iface.name, "address removed");
            Ok(Some(have))
        }
        // Removed by someone else between list and remove.
        Change::Unchanged => Ok(None),
    }
}

/// `fakeip status`: the entry when the address is on the interface.
pub fn status(
    interfaces: &dyn Interfaces,
    addresses: &dyn Addresses,
    iface: &str,
    spec: Spec,
) -> Result<Option<IfAddr>, Error> {
    let iface = interfaces.interface(iface)?;
    find(addresses, &iface, spec.addr)
}

/// `fakeip announce`: announcements only; the addresses are not touched (a warning when one is
/// not on the interface: announcing an address one does not hold steals its traffic).
pub async fn announce(
    deps: Deps<'_>,
    iface: &str,
    specs: &[Spec],
    burst: Burst,
) -> Result<u32, Error> {
    let iface = up_interface(deps, iface)?;
    iface.ethernet_mac()?;
    let held = deps.addresses.list(&iface)?;
    for s in specs {
        if !held.iter().any(|a| a.addr == s.addr) {
            warn!(vip = %s.addr, iface = %iface.name, "announcing an address that is not on the interface");
        }
    }
    let ips: Vec<IpAddr> = specs.iter().map(|s| s.addr).collect();
    announce_burst(deps, &iface, &ips, burst).await
}

/// `fakeip probe`: RFC 5227 probe; the MAC of whoever claims the address.
pub fn probe(
    deps: Deps<'_>,
    iface: &str,
    spec: Spec,
    opts: ProbeOptions,
) -> Result<Option<MacAddr>, Error> {
    let IpAddr::V4(v4) = spec.addr else {
        return Err(Error::Usage(format!(
            "{}: probe uses ARP (RFC 5227) and works for IPv4 only; for IPv6 the kernel's duplicate address detection does this job",
            spec.addr
        )));
    };
    if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
        return Err(Error::Usage(format!("{v4}: not a unicast address")));
    }
    let iface = up_interface(deps, iface)?;
    iface.ethernet_mac()?;
    Ok(deps.garp.probe(&iface, v4, opts.probes, opts.wait)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::net::{
        AddrCall, FakeInterfaces, GarpCall, Interface, NetError, RecordingAddresses, RecordingGarp,
    };
    use std::net::Ipv4Addr;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
    const OTHER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);

    struct World {
        ifaces: FakeInterfaces,
        addrs: RecordingAddresses,
        garp: RecordingGarp,
    }

    impl World {
        fn new() -> World {
            let mut lo = Interface::ethernet("lo", 1, MacAddr::ZERO);
            lo.mac = None;
            lo.link_type = 772;
            World {
                ifaces: FakeInterfaces::new(vec![lo, Interface::ethernet("eth0", 2, MAC)]),
                addrs: RecordingAddresses::new(),
                garp: RecordingGarp::new(),
            }
        }
        fn deps(&self) -> Deps<'_> {
            Deps {
                interfaces: &self.ifaces,
                addresses: &self.addrs,
                garp: &self.garp,
            }
        }
    }

    fn s(text: &str) -> Spec {
        crate::target::parse(
            &[text.to_owned(), "dev".into(), "eth0".into()],
            crate::target::Accept {
                many: false,
                prefix: false,
            },
        )
        .unwrap()
        .specs[0]
    }

    fn opts() -> UpOptions {
        UpOptions {
            label: None,
            burst: Burst::default(),
            check_conflict: None,
            force: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn up_adds_then_sends_five_announcements_200ms_apart() {
        let w = World::new();
        let t0 = tokio::time::Instant::now();
        let r = up(w.deps(), "eth0", s("192.0.2.100/24"), &opts())
            .await
            .unwrap();
        assert_eq!((r.change, r.announced), (Change::Done, 5));
        assert_eq!(
            w.addrs.changes(),
            [AddrCall::Add(
                "eth0".into(),
                "192.0.2.100/24".parse().unwrap(),
                None
            )]
        );
        let times: Vec<u128> = w
            .garp
            .timed_calls()
            .iter()
            .map(|(t, c)| {
                assert_eq!(*c, GarpCall::Announce("eth0".into(), s("192.0.2.100").addr));
                (*t - t0).as_millis()
            })
            .collect();
        assert_eq!(times, [0, 200, 400, 600, 800]);
    }

    #[tokio::test(start_paused = true)]
    async fn up_is_idempotent_and_says_already_present() {
        let w = World::new();
        w.addrs.preset(2, "192.0.2.100/24".parse().unwrap());
        let r = up(w.deps(), "eth0", s("192.0.2.100/24"), &opts())
            .await
            .unwrap();
        assert_eq!((r.change, r.announced), (Change::Unchanged, 5));
        assert!(w.addrs.changes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn up_refuses_another_prefix_and_changes_nothing() {
        let w = World::new();
        w.addrs.preset(2, "192.0.2.100/32".parse().unwrap());
        let err = up(w.deps(), "eth0", s("192.0.2.100/24"), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::Usage);
        assert!(
            err.to_string()
                .contains("already as 192.0.2.100/32, not /24"),
            "{err}"
        );
        assert!(w.addrs.changes().is_empty() && w.garp.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn check_conflict_refuses_unless_forced() {
        let w = World::new();
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        w.garp.answer(ip, OTHER);
        let mut o = opts();
        o.check_conflict = Some(ProbeOptions::default());
        let err = up(w.deps(), "eth0", s("192.0.2.100/24"), &o)
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::Negative);
        assert_eq!(
            err.to_string(),
            "192.0.2.100 is in use on eth0 by 02:00:00:00:00:0a: not taking it (--force takes it anyway)"
        );
        assert!(w.addrs.changes().is_empty());
        o.force = true;
        let r = up(w.deps(), "eth0", s("192.0.2.100/24"), &o).await.unwrap();
        assert_eq!(r.forced_over, Some(OTHER));
        assert_eq!(w.addrs.changes().len(), 1);
        // IPv6 has no ARP probe.
        let err = up(w.deps(), "eth0", s("2001:db8::100/64"), &o)
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::Usage);
    }

    #[tokio::test(start_paused = true)]
    async fn interface_errors_come_first_and_map_to_exit_codes() {
        let w = World::new();
        let err = up(w.deps(), "eth9", s("192.0.2.100/24"), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::Usage);
        w.ifaces.set_up("eth0", false);
        let err = up(w.deps(), "eth0", s("192.0.2.100/24"), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::TempFail);
        assert!(err.to_string().contains("eth0 is down"), "{err}");
        w.ifaces.set_up("eth0", true);
        w.addrs.fail_with(NetError::Privilege {
            op: "add 192.0.2.100/24 to eth0".into(),
        });
        let err = up(w.deps(), "eth0", s("192.0.2.100/24"), &opts())
            .await
            .unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::PermFail);
        assert!(
            err.to_string()
                .contains("needs CAP_NET_ADMIN and CAP_NET_RAW"),
            "{err}"
        );
        assert!(w.garp.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn up_on_loopback_adds_without_announcing() {
        let w = World::new();
        let r = up(w.deps(), "lo", s("192.0.2.100/32"), &opts())
            .await
            .unwrap();
        assert_eq!((r.change, r.announced), (Change::Done, 0));
        assert!(w.garp.calls().is_empty());
        let err = announce(w.deps(), "lo", &[s("192.0.2.100")], Burst::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not an Ethernet interface"),
            "{err}"
        );
    }

    #[test]
    fn down_removes_with_the_prefix_found_and_absent_is_fine() {
        let w = World::new();
        w.addrs.preset(2, "192.0.2.100/24".parse().unwrap());
        assert_eq!(
            status(&w.ifaces, &w.addrs, "eth0", s("192.0.2.100"))
                .unwrap()
                .unwrap()
                .prefix_len,
            24
        );
        let gone = down(&w.ifaces, &w.addrs, "eth0", s("192.0.2.100"))
            .unwrap()
            .unwrap();
        assert_eq!(gone.prefix_len, 24);
        assert_eq!(
            down(&w.ifaces, &w.addrs, "eth0", s("192.0.2.100/24")).unwrap(),
            None
        );
        assert_eq!(
            status(&w.ifaces, &w.addrs, "eth0", s("192.0.2.100")).unwrap(),
            None
        );
        assert_eq!(
            w.addrs.changes(),
            [AddrCall::Remove("eth0".into(), s("192.0.2.100").addr, 24)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn announce_touches_no_address() {
        let w = World::new();
        let n = announce(
            w.deps(),
            "eth0",
            &[s("192.0.2.100"), s("2001:db8::100")],
            Burst {
                count: 2,
                interval: Duration::from_millis(50),
            },
        )
        .await
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(w.garp.calls().len(), 4);
        assert!(w.addrs.changes().is_empty());
    }

    #[test]
    fn probe_is_ipv4_only_and_reports_the_holder() {
        let w = World::new();
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(
            probe(w.deps(), "eth0", s("192.0.2.1"), ProbeOptions::default()).unwrap(),
            None
        );
        w.garp.answer(ip, OTHER);
        assert_eq!(
            probe(w.deps(), "eth0", s("192.0.2.1"), ProbeOptions::default()).unwrap(),
            Some(OTHER)
        );
        let err = probe(w.deps(), "eth0", s("2001:db8::1"), ProbeOptions::default()).unwrap_err();
        assert_eq!(err.exit(), common::daemon::Exit::Usage);
    }
}
