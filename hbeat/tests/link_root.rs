//! The links that need root: multicast (IPv4 and IPv6) and broadcast between two network
//! namespaces this test creates (a veth pair), an interface that vanishes and comes back, and the
//! disk link on a real block device (a loop device) opened with `O_DIRECT`; and the ping targets'
//! round (ICMP through the probe engine) against a namespace that answers and an address that
//! does not; and interface tracking (carrier facts) across a veth deleted and created again. Not
//! part of a plain
//! `cargo test` (`test = false`); `tests/lab all` runs it (`cargo test --workspace --test '*_root'`),
//! or by hand as root: `cargo test -p hbeat --test link_root`.
//!
//! Each side runs its own tokio runtime on a thread that entered its namespace with `setns`.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hbeat::link::{Inbound, LinkSpec, LinkStatus, Links, Setup};
use nix::sched::{CloneFlags, setns};
use tokio::sync::mpsc;
use tokio::time::Instant;

mod support;
use support::{End, Netns, WAIT, run, veth, wait_status};

fn need_root() {
    support::need_root("link_root", "network namespaces, loop devices");
}

/// Namespaces `hb-TAG-a-PID` and `hb-TAG-b-PID` joined by veth `va` (A, 192.0.2.1/24,
/// 2001:db8::1/64) and `vb` (B, .2 and ::2); deleted on drop.
struct Pair {
    a: Netns,
    b: Netns,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        need_root();
        let p = Pair {
            a: Netns::new(&format!("{tag}-a")),
            b: Netns::new(&format!("{tag}-b")),
        };
        p.add_veth();
        p
    }

    fn add_veth(&self) {
        veth(
            End {
                ns: &self.a,
                dev: "va",
                addrs: &["192.0.2.1/24", "2001:db8::1/64"],
            },
            End {
                ns: &self.b,
                dev: "vb",
                addrs: &["192.0.2.2/24", "2001:db8::2/64"],
            },
        );
    }
}

/// Runs `f` on a current-thread runtime on a new thread inside namespace `ns`.
fn in_ns<'s, T: Send + 's>(
    s: &'s std::thread::Scope<'s, '_>,
    ns: &str,
    f: impl AsyncFnOnce() -> T + Send + 's,
) -> std::thread::ScopedJoinHandle<'s, T> {
    let path = format!("/var/run/netns/{ns}");
    s.spawn(move || {
        setns(File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

fn setup(me: &str) -> Setup {
    let mut s = Setup::new(me, &["lb1", "lb2"]);
    s.retry = Duration::from_millis(100);
    s
}

const MCAST4: &str = "239.255.0.1:6940";
const MCAST6: &str = "[ff15::6862]:6941";
const BCAST_PORT: u16 = 6942;

fn specs(dev: &str, ttl: u8) -> Vec<(u8, LinkSpec)> {
    vec![
        (
            1,
            LinkSpec::Mcast {
                dev: dev.into(),
                group: MCAST4.parse().unwrap(),
                ttl,
            },
        ),
        (
            2,
            LinkSpec::Mcast {
                dev: dev.into(),
                group: MCAST6.parse().unwrap(),
                ttl,
            },
        ),
        (
            3,
            LinkSpec::Bcast {
                dev: dev.into(),
                port: BCAST_PORT,
            },
        ),
    ]
}

/// One side of the exchange: starts the three links, waits for the other side (and, on B, sends
/// junk unicast datagrams at A's group ports first), then sends `me` every 10 ms until frames from
/// the other side arrived on all three links and the other side is done too.
async fn side(
    dev: &str,
    me: &str,
    junk_to: Option<&str>,
    barrier: &Barrier,
    done: &AtomicUsize,
) -> (Vec<Inbound>, Vec<LinkStatus>) {
    let (tx, mut rx) = mpsc::channel(256);
    let links = Links::start(specs(dev, 1), setup(me), tx);
    wait_status(&links, "every link up", |s| s.iter().all(|l| l.up)).await;
    barrier.wait();
    if let Some(a) = junk_to {
        // Unicast to A's address on the groups' ports: a socket bound to its group never sees it.
        let v4 = UdpSocket::bind("192.0.2.2:0").unwrap();
        v4.send_to(b"JUNK", format!("{a}:6940")).unwrap();
        let v6 = UdpSocket::bind("[2001:db8::2]:0").unwrap();
        v6.send_to(b"JUNK", "[2001:db8::1]:6941").unwrap();
    }
    let mut got: Vec<Inbound> = Vec::new();
    let mut finished = false;
    let deadline = Instant::now() + WAIT;
    while done.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "{me}: waited {WAIT:?}; got {got:?}; {:#?}",
            links.status()
        );
        links.send(me.as_bytes());
        while let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(10), rx.recv()).await {
            got.push(i);
        }
        let from_other = |l: u8| got.iter().any(|i| i.link == l && i.bytes != me.as_bytes());
        if !finished && (1..=3).all(from_other) {
            finished = true;
            done.fetch_add(1, Ordering::SeqCst);
        }
    }
    (got, links.status())
}

#[test]
fn multicast_v4_v6_and_broadcast_between_two_namespaces() {
    let p = Pair::new("mb");
    let barrier = Barrier::new(2);
    let done = AtomicUsize::new(0);
    let ((got_a, st_a), (got_b, st_b)) = std::thread::scope(|s| {
        let a = in_ns(s, &p.a.name, async || {
            side("va", "lb1", None, &barrier, &done).await
        });
        let b = in_ns(s, &p.b.name, async || {
            side("vb", "lb2", Some("192.0.2.1"), &barrier, &done).await
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    for (me, other, other_ip4, other_ip6, got, st) in [
        ("lb1", "lb2", "192.0.2.2", "2001:db8::2", &got_a, &st_a),
        ("lb2", "lb1", "192.0.2.1", "2001:db8::1", &got_b, &st_b),
    ] {
        // Only the other side's frames: no own multicast looped back, no own broadcast, no junk.
        for i in got.iter() {
            assert_eq!(i.bytes, other.as_bytes(), "{me} got {i:?}");
            let from = i.from.unwrap();
            match i.link {
                1 => assert_eq!(
                    from,
                    format!("{other_ip4}:6940").parse::<SocketAddr>().unwrap()
                ),
                2 => assert_eq!(from.ip().to_string(), other_ip6, "{me}: {i:?}"),
                3 => assert_eq!(
                    from,
                    format!("{other_ip4}:{BCAST_PORT}")
                        .parse::<SocketAddr>()
                        .unwrap()
                ),
                l => panic!("{me}: frame on link {l}"),
            }
        }
        for l in st.iter() {
            assert!(
                l.up && l.frames_sent > 0 && l.frames_received > 0,
                "{me}: {l:?}"
            );
            assert_eq!(l.send_errors, 0, "{me}: {l:?}");
        }
        // Our own broadcasts come back to the socket and are dropped there, by its filter in
        // the kernel: none reaches the link's task (each would count as from a stranger).
        assert_eq!(
            (
                st[0].rejected_source,
                st[1].rejected_source,
                st[2].rejected_source
            ),
            (0, 0, 0),
            "{me}: {st:?}"
        );
    }
    assert_eq!(st_a[0].what, "mcast 239.255.0.1:6940 on va ttl 1");
}

#[test]
fn a_vanished_interface_takes_its_links_down_until_it_is_back() {
    let p = Pair::new("gone");
    std::thread::scope(|s| {
        in_ns(s, &p.a.name, async || {
            let (tx, _rx) = mpsc::channel(256);
            let links = Links::start(specs("va", 1), setup("lb1"), tx);
            wait_status(&links, "every link up", |s| s.iter().all(|l| l.up)).await;
            p.a.ip(&["link", "del", "va"]);
            // Heartbeats go on while the interface is gone: the sends fail and the links restart.
            let deadline = Instant::now() + WAIT;
            while !links.status().iter().all(|l| !l.up) {
                assert!(Instant::now() < deadline, "{:#?}", links.status());
                links.send(b"lb1");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            wait_status(&links, "the reason", |s| {
                s.iter()
                    .all(|l| l.last_error.as_deref() == Some("interface va does not exist"))
            })
            .await;
            p.add_veth();
            wait_status(&links, "every link up again", |s| s.iter().all(|l| l.up)).await;
            assert!(links.status().iter().all(|l| l.restarts >= 1));
        })
        .join()
        .unwrap();
    });
}

/// A loop device over a temporary file; detached on drop.
struct Loop {
    dev: String,
    file: std::path::PathBuf,
}

impl Loop {
    fn new() -> Loop {
        need_root();
        let file = std::env::temp_dir().join(format!("hbeat-link-loop-{}", std::process::id()));
        std::fs::write(&file, vec![0u8; 1 << 20]).unwrap();
        let dev = run(&["losetup", "-f", "--show", file.to_str().unwrap()])
            .trim()
            .to_string();
        Loop { dev, file }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Whether this process has `path` open with `O_DIRECT` (from /proc/self/fdinfo).
fn open_with_o_direct(path: &str) -> Option<bool> {
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(e.path()).ok()?.to_str() == Some(path) {
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                e.file_name().to_str().unwrap()
            ))
            .ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            let flags = u32::from_str_radix(flags, 8).ok()?;
            return Some(flags & nix::fcntl::OFlag::O_DIRECT.bits() as u32 != 0);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_link_on_a_loop_block_device_uses_o_direct() {
    let lo = Loop::new();
    let spec = || {
        vec![(
            4,
            LinkSpec::Disk {
                path: lo.dev.clone().into(),
            },
        )]
    };
    let (ta, mut ra) = mpsc::channel(64);
    let (tb, mut rb) = mpsc::channel(64);
    let la = Links::start(spec(), setup("lb1"), ta);
    let lb = Links::start(spec(), setup("lb2"), tb);
    wait_status(&la, "lb1's disk link up", |s| s[0].up).await;
    wait_status(&lb, "lb2's disk link up", |s| s[0].up).await;
    assert_eq!(
        open_with_o_direct(&lo.dev),
        Some(true),
        "{} is not open with O_DIRECT",
        lo.dev
    );
    for (from, name, rx) in [(&la, "lb1", &mut rb), (&lb, "lb2", &mut ra)] {
        let deadline = Instant::now() + WAIT;
        loop {
            from.send(name.as_bytes());
            if let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                assert_eq!((i.link, i.bytes.as_slice()), (4, name.as_bytes()));
                break;
            }
            assert!(Instant::now() < deadline, "{name}'s frame did not arrive");
        }
    }
    // The frame is on the device itself, in lb1's slot at offset 0.
    drop((la, lb));
    let mut dev = File::open(&lo.dev).unwrap();
    let mut slot = vec![0u8; hbeat::link::disk::SLOT];
    std::io::Read::read_exact(&mut dev, &mut slot).unwrap();
    assert!(matches!(
        hbeat::link::disk::decode_slot(&slot),
        hbeat::link::disk::Slot::Frame { frame: b"lb1", .. }
    ));
}

/// Receives one datagram on `group` joined on `dev` and returns the TTL (IPv4) or hop limit
/// (IPv6) it arrived with, or `None` after [`WAIT`].
fn received_ttl(dev: &str, group: SocketAddr) -> Option<i32> {
    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsRawFd;
    let index = nix::net::if_::if_nametoindex(dev).unwrap();
    let (s, bind) = match group {
        SocketAddr::V4(g) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.join_multicast_v4_n(g.ip(), &socket2::InterfaceIndexOrAddress::Index(index))
                .unwrap();
            setsockopt(&s, sockopt::Ipv4RecvTtl, &true).unwrap();
            (s, group)
        }
        SocketAddr::V6(g) => {
            let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.join_multicast_v6(g.ip(), index).unwrap();
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).unwrap();
            (
                s,
                SocketAddr::V6(std::net::SocketAddrV6::new(*g.ip(), g.port(), 0, index)),
            )
        }
    };
    s.set_reuse_address(true).unwrap();
    s.bind_device(Some(dev.as_bytes())).unwrap();
    s.bind(&bind.into()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(nix::libc::c_int);
    let msg =
        recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
            .ok()?;
    msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => Some(t),
        _ => None,
    })
}

#[test]
fn multicast_ttl_and_hop_limit_are_the_configured_ones() {
    let p = Pair::new("ttl");
    let stop = AtomicUsize::new(0);
    let (v4, v6) = std::thread::scope(|s| {
        let sender = in_ns(s, &p.a.name, async || {
            let (tx, _rx) = mpsc::channel(256);
            let links = Links::start(specs("va", 3)[..2].to_vec(), setup("lb1"), tx);
            let deadline = Instant::now() + WAIT;
            while stop.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                links.send(b"lb1");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let receiver = s.spawn(|| {
            setns(
                File::open(format!("/var/run/netns/{}", p.b.name)).unwrap(),
                CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
            let r = (
                received_ttl("vb", MCAST4.parse().unwrap()),
                received_ttl("vb", MCAST6.parse().unwrap()),
            );
            stop.store(1, Ordering::SeqCst);
            r
        });
        let r = receiver.join().unwrap();
        sender.join().unwrap();
        r
    });
    assert_eq!((v4, v6), (Some(3), Some(3)));
}

#[test]
fn a_ping_round_counts_the_targets_that_answer() {
    let p = Pair::new("ping");
    let targets: Vec<std::net::IpAddr> = ["192.0.2.2", "192.0.2.99", "2001:db8::2"]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    std::thread::scope(|s| {
        let r = in_ns(s, &p.a.name, async || {
            let prober = std::sync::Arc::new(common::probe::Prober::new());
            let first =
                hbeat::facts::ping_round(&prober, &targets, Duration::from_millis(500)).await;
            // b stops answering (its address gone): the next round sees it.
            p.b.ip(&["addr", "del", "192.0.2.2/24", "dev", "vb"]);
            let second =
                hbeat::facts::ping_round(&prober, &targets, Duration::from_millis(500)).await;
            (first, second)
        });
        assert_eq!(r.join().unwrap(), ((2, 3), (1, 3)));
    });
}

/// The next fact, within [`WAIT`].
async fn fact(rx: &mut mpsc::Receiver<hbeat::facts::Fact>) -> hbeat::facts::Fact {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no fact within {WAIT:?}"))
        .expect("the carrier task ended")
}

fn carrier(iface: &str, up: bool) -> hbeat::facts::Fact {
    hbeat::facts::Fact::Carrier {
        iface: iface.into(),
        up,
    }
}

/// Interface tracking reports every tracked interface at start (one that does not exist has no
/// carrier), then each change: the veth deleted, created again, its far end down and up.
#[test]
fn carrier_facts_follow_a_veth_deleted_created_again_and_its_far_end() {
    let p = Pair::new("carrier");
    std::thread::scope(|s| {
        in_ns(s, &p.a.name, async || {
            let (tx, mut rx) = mpsc::channel(16);
            hbeat::facts::spawn_carrier(vec!["va".into(), "ghost".into(), "va".into()], tx);
            assert_eq!(fact(&mut rx).await, carrier("ghost", false));
            assert_eq!(fact(&mut rx).await, carrier("va", true));
            p.a.ip(&["link", "del", "va"]);
            assert_eq!(fact(&mut rx).await, carrier("va", false));
            p.add_veth();
            assert_eq!(fact(&mut rx).await, carrier("va", true));
            p.b.ip(&["link", "set", "vb", "down"]);
            assert_eq!(fact(&mut rx).await, carrier("va", false));
            p.b.ip(&["link", "set", "vb", "up"]);
            assert_eq!(fact(&mut rx).await, carrier("va", true));
            // Nothing else: no repeated or spurious facts.
            assert!(rx.try_recv().is_err());
        })
        .join()
        .unwrap();
    });
}
