//! The failover policies with real `hbeat run` processes, each in a network namespace this test
//! creates ([`CALM_TIMINGS`], see `daemon_root.rs` for why):
//! - ping nodes: both heartbeat links cut while only one side still reaches its ping target (a
//!   router namespace): that side holds the group, the other lets go — one holder, and nothing
//!   moves back when the links return; a standby that is cut off takes nothing;
//! - quorum: three nodes on a bridge, one cut off: it releases what it holds, the two others
//!   (the majority) hold everything; it gets quorum back when its cable returns.
//!
//! Not part of a plain `cargo test` (`test = false`); `tests/lab all` runs it (`cargo test
//! --workspace --test '*_root'`), or by hand as root: `cargo test -p hbeat --test policy_root`.

use std::path::{Path, PathBuf};

use hbeat::daemon::Status;

mod support;
use support::{CALM_TIMINGS, End, Netns, Node, Site, veth, wait_for};

fn need_root() {
    support::need_root("policy_root", "network namespaces, veth, bridges");
}

fn holder(s: &Status, group: &str) -> Option<String> {
    s.groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.holder.clone())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Nodes a and b joined by a heartbeat cable `hb0` (192.0.2.1 and .2/24), each with a cable
/// `dev` to the router namespace r (198.18.N.2/24, r's ends `ra` and `rb` at 198.18.N.1).
fn two_with_router(tag: &str, dev: &str) -> (Netns, Netns, Netns) {
    let na = Netns::new(&format!("{tag}-a"));
    let nb = Netns::new(&format!("{tag}-b"));
    let nr = Netns::new(&format!("{tag}-r"));
    veth(
        End {
            ns: &na,
            dev: "hb0",
            addrs: &["192.0.2.1/24"],
        },
        End {
            ns: &nb,
            dev: "hb0",
            addrs: &["192.0.2.2/24"],
        },
    );
    for (n, ns, far) in [(1, &na, "ra"), (2, &nb, "rb")] {
        veth(
            End {
                ns,
                dev,
                addrs: &[&format!("198.18.{n}.2/24")],
            },
            End {
                ns: &nr,
                dev: far,
                addrs: &[&format!("198.18.{n}.1/24")],
            },
        );
    }
    (na, nb, nr)
}

#[test]
fn with_the_links_cut_only_the_side_that_reaches_its_ping_target_holds_the_group() {
    need_root();
    // The heartbeat cable, and each node's uplink to the router r (its ping target).
    let (na, nb, _nr) = two_with_router("ping", "up0");
    let mut site = Site::new("policy-ping");
    site.timings = CALM_TIMINGS;
    let groups = site.group("web", &["a", "b"]);
    let node = |me: &str, other: &str, n: u8, mine: &str, theirs: &str, ns: &Netns| -> Node {
        let extra = format!("[ping]\ntargets = [\"198.18.{n}.1\"]\ninterval = \"1s\"\n");
        let link = format!("udp = {{ bind = \"{mine}:694\", peer = \"{theirs}:694\" }}");
        site.node(me, &[other], &extra, &[link], &groups).inside(ns)
    };
    let mut a = node("a", "b", 1, "192.0.2.1", "192.0.2.2", &na);
    let mut b = node("b", "a", 2, "192.0.2.2", "192.0.2.1", &nb);
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();
    wait_for("a holds web, both reach their targets", &logs, || {
        site.events() == ["a start web"]
            && b.try_status().is_some_and(|s| {
                holder(&s, "web").as_deref() == Some("a") && s.ping == Some((1, 1))
            })
            && a.try_status().is_some_and(|s| s.ping == Some((1, 1)))
    });

    // The heartbeat cable and a's uplink go: b (reaching r) takes over, a (hearing nobody,
    // reaching nothing) lets go. One holder, never two: a's last periodic round (every second,
    // longer than deadtime) reached r before the cut, so a must ask for a round of its own when
    // the silence starts and stop web before b's deadtime.
    na.ip(&["link", "set", "hb0", "down"]);
    na.ip(&["link", "set", "up0", "down"]);
    wait_for("b holds web, a let go", &logs, || site.events().len() >= 3);
    assert_eq!(
        site.events(),
        ["a start web", "a stop web", "b start web"],
        "a stops before b starts"
    );
    let s = a.status();
    assert_eq!(s.ping, Some((0, 1)), "{s:?}");
    assert_eq!(
        s.groups[0].unready.as_deref(),
        Some("cut off: no peer heard, no ping target reached"),
        "{s:?}"
    );
    // Everything back: exactly one holder, nothing moves (no auto_failback).
    na.ip(&["link", "set", "hb0", "up"]);
    na.ip(&["link", "set", "up0", "up"]);
    wait_for("a hears b again and reaches r", &logs, || {
        a.try_status().is_some_and(|s| {
            s.peers[0].up && s.ping == Some((1, 1)) && holder(&s, "web").as_deref() == Some("b")
        })
    });
    assert_eq!(site.events().len(), 3, "{:?}", site.events());

    // Now a is the standby: cut off the same way, it takes nothing; b keeps web.
    na.ip(&["link", "set", "hb0", "down"]);
    na.ip(&["link", "set", "up0", "down"]);
    wait_for("a sees b dead and reaches nothing", &logs, || {
        a.try_status()
            .is_some_and(|s| !s.peers[0].up && s.ping == Some((0, 1)))
    });
    // Give a two ping rounds and three deadtimes to do something wrong.
    wait_for("two seconds of silence", &logs, || {
        a.status().peers[0].last_seen_ms.unwrap_or(0) > 2000
    });
    assert_eq!(site.events().len(), 3, "{:?}", site.events());
    assert_eq!(holder(&b.status(), "web").as_deref(), Some("b"));
}

#[test]
fn three_nodes_the_one_cut_off_holds_nothing_the_majority_holds_everything() {
    need_root();
    // A bridge in a hub namespace; each node's eth0 is a port of it.
    let names = ["a", "b", "c"];
    let (_hub, ns) = support::bridged("quorum", &names);
    let mut site = Site::new("policy-quorum");
    site.timings = CALM_TIMINGS;
    let links = ["bcast = { dev = \"eth0\", port = 694 }".to_string()];
    // web: a, then b; mail: b, then c. Quorum is on by default with three nodes.
    let groups = site.group("web", &["a", "b", "c"]) + &site.group("mail", &["b", "c", "a"]);
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let peers: Vec<&str> = names.iter().copied().filter(|n| *n != names[i]).collect();
            site.node(names[i], &peers, "", &links, &groups)
                .inside(&ns[i])
        })
        .collect();
    let logs: Vec<PathBuf> = nodes.iter().map(|n| n.log.clone()).collect();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    for n in &mut nodes {
        n.start();
    }
    wait_for("web on a, mail on b", &logs, || {
        sorted(site.events()) == ["a start web", "b start mail"]
            && nodes[2].try_status().is_some_and(|s| {
                s.quorum && s.peers.iter().all(|p| p.up) && holder(&s, "web").is_some()
            })
    });
    // a's cable goes: a (1 of 3 votes) lets web go; b takes it (b and c have 2 of 3).
    ns[0].ip(&["link", "set", "eth0", "down"]);
    wait_for("b holds web and mail, a nothing", &logs, || {
        sorted(site.events()) == ["a start web", "a stop web", "b start mail", "b start web"]
            && nodes[0].status().held.is_empty()
    });
    let s = nodes[0].status();
    assert!(!s.quorum, "{s:?}");
    assert_eq!(s.votes, (1, 3), "{s:?}");
    assert_eq!(nodes[1].status().votes, (2, 3));
    assert!(s.held.is_empty(), "{s:?}");
    assert_eq!(s.groups[0].unready.as_deref(), Some("no quorum"));
    assert!(nodes[1].status().quorum && nodes[2].status().quorum);
    // The cable back: a has quorum again and takes nothing back (no auto_failback).
    ns[0].ip(&["link", "set", "eth0", "up"]);
    wait_for("a has quorum again", &logs, || {
        nodes[0].try_status().is_some_and(|s| {
            s.quorum && s.peers.iter().all(|p| p.up) && holder(&s, "web").as_deref() == Some("b")
        })
    });
    assert_eq!(site.events().len(), 4, "{:?}", site.events());
}

#[test]
fn losing_carrier_on_the_groups_interface_hands_the_group_to_the_peer() {
    need_root();
    // The heartbeat cable, and each node's LAN interface (the VIP's), its far end in r.
    let (na, nb, nr) = two_with_router("carrier", "lan0");
    let mut site = Site::new("policy-carrier");
    site.timings = CALM_TIMINGS;
    let groups = site
        .group("web", &["a", "b"])
        .replace("resources", "interfaces = [\"lan0\"]\nresources");
    let node = |me: &str, other: &str, mine: &str, theirs: &str, ns: &Netns| -> Node {
        let link = format!("udp = {{ bind = \"{mine}:694\", peer = \"{theirs}:694\" }}");
        site.node(me, &[other], "", &[link], &groups).inside(ns)
    };
    let mut a = node("a", "b", "192.0.2.1", "192.0.2.2", &na);
    let mut b = node("b", "a", "192.0.2.2", "192.0.2.1", &nb);
    let logs = [a.log.clone(), b.log.clone()];
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    a.start();
    b.start();
    wait_for("a holds web, b sees it", &logs, || {
        site.events() == ["a start web"]
            && b.try_status()
                .is_some_and(|s| holder(&s, "web").as_deref() == Some("a"))
    });
    // The far end of a's LAN cable goes down: a loses carrier and hands web to b (stop, then
    // start: the handshake, both still hear each other).
    nr.ip(&["link", "set", "ra", "down"]);
    wait_for("web handed to b", &logs, || {
        site.events() == ["a start web", "a stop web", "b start web"]
    });
    let s = a.status();
    assert_eq!(
        s.groups[0].unready.as_deref(),
        Some("lan0 has no carrier"),
        "{s:?}"
    );
    // The interface deleted and created again (a networking restart): still tracked. b's goes
    // away for good: b is not ready either but nobody is better, so b keeps serving.
    na.ip(&["link", "del", "lan0"]);
    nb.ip(&["link", "set", "lan0", "down"]);
    veth(
        End {
            ns: &na,
            dev: "lan0",
            addrs: &["198.18.1.2/24"],
        },
        End {
            ns: &nr,
            dev: "ra",
            addrs: &["198.18.1.1/24"],
        },
    );
    // a has carrier again and b has none: web goes back to a.
    wait_for("web back on a", &logs, || {
        site.events()[3..] == ["b stop web", "a start web"]
    });
    assert_eq!(a.status().groups[0].unready, None);
}
