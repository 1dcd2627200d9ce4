//! The async faces of the real address and ARP edges ([`AsyncAddresses`] over [`Rtnetlink`],
//! [`AsyncGarp`] over [`PacketGarp`]) and the [`LinkWatcher`] on a veth pair between two network namespaces this test
//! creates on the host kernel. Needs root; not part of a plain `cargo test` (`test = false`), run by
//! `tests/lab all` (`cargo test --workspace --test '*_root'`). `ip` (iproute2) is the witness.
//!
//! The runtime runs on a thread that entered namespace A with `setns`; tokio's blocking-pool
//! threads are started from it and so live in A too.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::net::{
    AsyncAddresses, AsyncGarp, Change, Interfaces, LinkEvent, LinkWatcher, PacketGarp, Rtnetlink,
    SystemInterfaces,
};
use nix::sched::{CloneFlags, setns};

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (install iproute2)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces `edges-a-PID` and `edges-b-PID` joined by veth `va` (in A) and `vb` (in B), deleted
/// on drop.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let uid = run(&["id", "-u"]);
        assert_eq!(
            uid.trim(),
            "0",
            "net_root needs root (it creates network namespaces): run `tests/lab all` or `cargo test -p common --test net_root` as root"
        );
        let pid = std::process::id();
        let p = Pair {
            a: format!("edges-{tag}-a-{pid}"),
            b: format!("edges-{tag}-b-{pid}"),
        };
        // Made before the namespaces exist, so that a failure below still deletes them.
        run(&["ip", "netns", "add", &p.a]);
        run(&["ip", "netns", "add", &p.b]);
        run(&[
            "ip", "-n", &p.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &p.b,
        ]);
        for (ns, dev) in [(&p.a, "va"), (&p.b, "vb")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // Carrier comes a moment after both ends are up; sending before fails with ENETDOWN.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !run(&["ip", "-n", &p.a, "link", "show", "va"]).contains("LOWER_UP") {
            assert!(
                std::time::Instant::now() < deadline,
                "veth va has no carrier after 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// Runs `f` on a one-worker tokio runtime inside namespace A.
    fn in_a<T: Send>(&self, f: impl AsyncFnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(format!("/var/run/netns/{}", self.a)).unwrap();
                setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(f())
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

#[test]
fn async_addresses_add_list_remove_on_a_veth() {
    let p = Pair::new("addr");
    let shown = p.in_a(async || {
        let va = SystemInterfaces.interface("va").unwrap();
        let addrs = AsyncAddresses::new(Arc::new(Rtnetlink::default()));
        let vip = "192.0.2.100/24".parse().unwrap();
        let vip6 = "2001:db8::100/64".parse().unwrap();
        assert_eq!(
            addrs
                .add(va.clone(), vip, Some("va:vip".into()))
                .await
                .unwrap(),
            Change::Done
        );
        assert_eq!(
            addrs.add(va.clone(), vip, None).await.unwrap(),
            Change::Unchanged
        );
        assert_eq!(
            addrs.add(va.clone(), vip6, None).await.unwrap(),
            Change::Done
        );
        let listed = addrs.list(va.clone()).await.unwrap();
        let v4 = listed
            .iter()
            .find(|a| a.addr == vip.addr())
            .expect("listed");
        assert_eq!((v4.prefix_len, v4.label.as_deref()), (24, Some("va:vip")));
        let v6 = listed
            .iter()
            .find(|a| a.addr == vip6.addr())
            .expect("listed");
        assert!(!v6.is_tentative(), "added with nodad: {v6:?}");
        let shown = run(&["ip", "-o", "addr", "show", "dev", "va"]);
        assert_eq!(
            addrs.remove(va.clone(), vip.addr(), 24).await.unwrap(),
            Change::Done
        );
        assert_eq!(
            addrs.remove(va.clone(), vip.addr(), 24).await.unwrap(),
            Change::Unchanged
        );
        shown
    });
    // The witness, from the test thread (host namespace): ip -n A.
    assert!(
        shown.contains("inet 192.0.2.100/24 brd 192.0.2.255 scope global va:vip"),
        "{shown}"
    );
    assert!(
        shown.contains("inet6 2001:db8::100/64 scope global nodad"),
        "{shown}"
    );
    let after = run(&["ip", "-n", &p.a, "-o", "addr", "show", "dev", "va"]);
    assert!(!after.contains("192.0.2.100"), "{after}");
    assert!(after.contains("2001:db8::100/64"), "{after}");
}

#[test]
fn async_probe_finds_the_holder_across_the_veth_and_nobody_for_a_free_address() {
    let p = Pair::new("probe");
    run(&["ip", "-n", &p.b, "addr", "add", "192.0.2.2/24", "dev", "vb"]);
    let mac_b = run(&[
        "ip",
        "netns",
        "exec",
        &p.b,
        "cat",
        "/sys/class/net/vb/address",
    ]);
    let (holder, free) = p.in_a(async || {
        let va = SystemInterfaces.interface("va").unwrap();
        let garp = AsyncGarp::new(Arc::new(PacketGarp::open().unwrap()));
        let wait = Duration::from_secs(2);
        // While the probe listens, the runtime's only worker is free for other tasks.
        let ticker = tokio::spawn(async {
            let mut ticks = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks += 1;
                if ticks == 5 {
                    return ticks;
                }
            }
        });
        let free = garp
            .probe(va.clone(), Ipv4Addr::new(192, 0, 2, 99), 2, wait)
            .await
            .unwrap();
        assert!(
            ticker.is_finished(),
            "the worker was blocked during a 2 s probe"
        );
        let holder = garp
            .probe(va.clone(), Ipv4Addr::new(192, 0, 2, 2), 3, wait)
            .await
            .unwrap();
        garp.announce(va, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
            .await
            .unwrap();
        (holder, free)
    });
    assert_eq!(free, None);
    assert_eq!(
        holder.map(|m| m.to_string()),
        Some(mac_b.trim().to_string())
    );
}

/// The watcher's events for `name` up to and including the first that satisfies `last`; fails
/// after 10 s showing what came.
async fn events_until(
    w: &mut LinkWatcher,
    name: &str,
    last: impl Fn(&LinkEvent) -> bool,
) -> Vec<LinkEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, w.next())
            .await
            .unwrap_or_else(|_| panic!("waited 10 s for an event of {name}; got {seen:#?}"))
            .unwrap();
        if ev.name != name {
            continue;
        }
        let done = last(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

/// Carrier follows the far end of the veth going down and up, and the veth being deleted and
/// created again with the same name: keepalived's `track_interface` stops there (its issues 2142
/// and 1823).
#[test]
fn the_link_watcher_follows_carrier_and_a_veth_deleted_and_created_again() {
    let p = Pair::new("links");
    p.in_a(async || {
        let mut w = LinkWatcher::open().unwrap();
        let snap = w.snapshot().await.unwrap();
        let va = snap.iter().find(|l| l.name == "va").cloned();
        let va = va.unwrap_or_else(|| panic!("va in the snapshot: {snap:#?}"));
        assert!(va.up && va.carrier && !va.deleted, "{va:?}");

        run(&["ip", "-n", &p.b, "link", "set", "vb", "down"]);
        let down = LinkEvent {
            carrier: false,
            ..va.clone()
        };
        assert_eq!(events_until(&mut w, "va", |_| true).await, vec![down]);
        run(&["ip", "-n", &p.b, "link", "set", "vb", "up"]);
        assert_eq!(events_until(&mut w, "va", |_| true).await, vec![va.clone()]);

        run(&["ip", "-n", &p.a, "link", "del", "va"]);
        // The kernel takes it down first, then deletes it.
        let gone = events_until(&mut w, "va", |e| e.deleted).await;
        assert_eq!(gone.last(), Some(&va.gone()), "{gone:#?}");
        assert!(gone.iter().all(|e| !e.carrier), "{gone:#?}");
        run(&[
            "ip", "-n", &p.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &p.b,
        ]);
        run(&["ip", "-n", &p.b, "link", "set", "vb", "up"]);
        run(&["ip", "-n", &p.a, "link", "set", "va", "up"]);
        let again = events_until(&mut w, "va", |e| e.carrier).await;
        // Created down, then up without carrier until both ends are up, then carrier.
        assert!(
            again[..again.len() - 1]
                .iter()
                .all(|e| !e.carrier && !e.deleted),
            "{again:#?}"
        );
        let last = again.last().unwrap();
        assert!(
            last.up && last.carrier && last.index != va.index,
            "{again:#?}"
        );
    });
}

/// A receive queue too small for a burst of notifications overflows (`ENOBUFS`): the watcher
/// takes a new snapshot and ends with the kernel's state instead of failing or keeping a stale one.
#[test]
fn the_link_watcher_recovers_from_an_overflowing_queue() {
    let p = Pair::new("flood");
    p.in_a(async || {
        let mut w = LinkWatcher::open_with_queue(4096).unwrap();
        w.snapshot().await.unwrap();
        // Unread: forty notifications (each MTU change sends one; carrier changes are coalesced
        // by the kernel's linkwatch) against room for a few, then the far end goes down.
        for i in 0..40 {
            run(&[
                "ip",
                "-n",
                &p.a,
                "link",
                "set",
                "va",
                "mtu",
                &(1280 + i).to_string(),
            ]);
        }
        run(&["ip", "-n", &p.b, "link", "set", "vb", "down"]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let va_has_no_carrier =
            |w: &LinkWatcher| w.links().any(|l| l.name == "va" && !l.carrier && l.up);
        while w.resyncs() == 0 || !va_has_no_carrier(&w) {
            let ev = tokio::time::timeout_at(deadline, w.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "after 10 s: {} resyncs, links {:#?}",
                        w.resyncs(),
                        w.links().collect::<Vec<_>>()
                    )
                });
            ev.unwrap();
        }
    });
}
