//! `common::ipvs` against a real kernel: the lab VM (`tests/lab test ipvs-lab`, which builds this
//! binary on the host and runs it inside the VM). Not part of `cargo test` (`test = false` in
//! `common/Cargo.toml`): every case needs root and the `ip_vs` module, and fails loudly without them.
//!
//! Each case works in its own network namespace (`ip netns add`), so cases run in parallel and
//! leave nothing behind; `ipvsadm`, run in the same namespace, is the independent witness.

mod ipvs_util;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use common::ipvs::*;
use ipvs_util::*;

/// A network namespace for one case, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        assert!(
            std::path::Path::new("/proc/net/ip_vs").exists(),
            "/proc/net/ip_vs is missing: these tests need a kernel with IPVS (run them with `tests/lab test ipvs-lab`, \
             or load the ip_vs module: modprobe ip_vs)"
        );
        let name = format!("ipvs-{name}");
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    fn ipvs(&self) -> NetlinkIpvs {
        NetlinkIpvs::in_netns(&self.0).unwrap_or_else(|e| panic!("open IPVS in {}: {e}", self.0))
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(args);
        run(&full)
    }

    fn ipvsadm_table(&self) -> Table {
        parse_ipvsadm_save(&self.exec(&["ipvsadm", "-Sn"])).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (install it: tests/lab deps)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sync(ipvs: &mut NetlinkIpvs, desired: &Table) -> ApplyReport {
    let actual = ipvs.table().unwrap();
    let ops = plan(desired, &actual, |k| desired.services.contains_key(k));
    ipvs.apply(&ops).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn bulk_1000_services_x_10_destinations_dump_back_equal_and_ipvsadm_agrees() {
    let ns = Netns::new("bulk");
    let mut ipvs = ns.ipvs();
    let desired = synthetic_table(1000, 10);
    assert_eq!(desired.destination_count(), 10_000);

    let t = Instant::now();
    let report = sync(&mut ipvs, &desired);
    let applied = t.elapsed();
    assert_eq!(report.operations, 11_000);
    assert!(
        report.sends > 1 && report.sends < 100,
        "batched: {report:?}"
    );

    let t = Instant::now();
    let dumped = ipvs.table().unwrap();
    println!(
        "applied 11000 operations in {applied:?} ({} sends), dumped in {:?}",
        report.sends,
        t.elapsed()
    );
    assert_eq!(dumped, desired);
    assert_eq!(ns.ipvsadm_table(), desired, "ipvsadm -Sn disagrees");
    assert!(plan(&desired, &dumped, |_| true).is_empty());

    // One weight change is one SET_DEST.
    let mut changed = desired.clone();
    let key = *changed.services.keys().nth(500).unwrap();
    let vs = changed.services.get_mut(&key).unwrap();
    let d = vs.destinations.values_mut().nth(3).unwrap();
    d.weight = 7;
    let addr = d.addr;
    let ops = plan(&changed, &dumped, |_| true);
    assert_eq!(ops.len(), 1);
    assert_eq!(
        ipvs.apply(&ops).unwrap(),
        ApplyReport {
            operations: 1,
            sends: 1
        }
    );
    let st = ipvs.destinations(&key).unwrap();
    assert_eq!(
        st.iter()
            .find(|s| s.destination.addr == addr)
            .unwrap()
            .destination
            .weight,
        7
    );
    assert_eq!(ipvs.table().unwrap(), changed);

    ipvs.apply(&[Op::Flush]).unwrap();
    assert_eq!(ipvs.table().unwrap(), Table::new());
}

fn variety() -> Table {
    let mut t = Table::new();
    // IPv6 persistent service with a prefix netmask
    let v6 = ServiceKey::tcp(sa("[2001:db8::100]:443"));
    let mut s = Service::new(v6, Scheduler::Wrr).persistent(600);
    s.netmask = Netmask::V6(64);
    t.insert_service(s);
    t.insert_destination(
        &v6,
        Destination::new(sa("[2001:db8::11]:443"), Forward::Route).weight(3),
    );
    t.insert_destination(
        &v6,
        Destination::new(sa("[2001:db8::12]:8443"), Forward::Masq).weight(0),
    );
    // fwmark services, IPv4 and IPv6 with the same mark
    let fw4 = ServiceKey::fwmark(Family::Inet, 7);
    t.insert_service(Service::new(fw4, Scheduler::Rr).persistent(300));
    t.insert_destination(&fw4, Destination::new(sa("192.0.2.11:0"), Forward::Route));
    let fw6 = ServiceKey::fwmark(Family::Inet6, 7);
    t.insert_service(Service::new(fw6, Scheduler::Lc));
    t.insert_destination(
        &fw6,
        Destination::new(sa("[2001:db8::11]:0"), Forward::Route),
    );
    // SCTP with tunnels: GUE with checksum, GRE, IPIP; a v4 network netmask
    let sctp = ServiceKey::sctp(sa("192.0.2.100:5060"));
    let mut s = Service::new(sctp, Scheduler::Wlc).persistent(30);
    s.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
    t.insert_service(s);
    let gue = Encap::Gue {
        port: 6080,
        checksum: TunnelChecksum::Checksum,
    };
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.13:5060"), Forward::Tunnel(gue)),
    );
    let gre = Encap::Gre {
        checksum: TunnelChecksum::None,
    };
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.14:5060"), Forward::Tunnel(gre)).weight(2),
    );
    t.insert_destination(
        &sctp,
        Destination::new(sa("192.0.2.15:5060"), Forward::Tunnel(Encap::Ipip)),
    );
    // UDP, source hashing with both scheduler flags, one-packet scheduling
    let udp = ServiceKey::udp(sa("192.0.2.100:53"));
    let mut s = Service::new(udp, Scheduler::Sh);
    s.flags.sched_fallback = true;
    s.flags.sched_port = true;
    s.flags.one_packet = true;
    t.insert_service(s);
    // thresholds
    t.insert_destination(
        &udp,
        Destination {
            addr: sa("192.0.2.11:53"),
            forward: Forward::Masq,
            weight: 5,
            upper_threshold: 100,
            lower_threshold: 60,
        },
    );
    // persistence engine
    let sip = ServiceKey::udp(sa("192.0.2.100:5060"));
    let mut s = Service::new(sip, Scheduler::Rr).persistent(60);
    s.pe_name = Some("sip".into());
    t.insert_service(s);
    t
}

#[test]
fn ipv6_fwmark_sctp_gue_thresholds_flags_round_trip_and_edit_in_place() {
    let ns = Netns::new("variety");
    let mut ipvs = ns.ipvs();
    let desired = variety();
    sync(&mut ipvs, &desired);
    assert_eq!(ipvs.table().unwrap(), desired);
    assert_eq!(
        ns.ipvsadm_table(),
        without_thresholds(&desired),
        "ipvsadm -Sn disagrees"
    );
    let thresholds = ns.exec(&["ipvsadm", "-Ln", "--thresholds"]);
    assert!(
        thresholds
            .lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["->", "192.0.2.11:53", "100"]
                && l.split_whitespace().nth(3) == Some("60")),
        "ipvsadm -Ln --thresholds does not show 100/60:\n{thresholds}"
    );

    // Edits in place: scheduler, flags, forwarding method, weight, a tunnel's port.
    let mut changed = desired.clone();
    let udp = ServiceKey::udp(sa("192.0.2.100:53"));
    let vs = changed.services.get_mut(&udp).unwrap();
    vs.service.scheduler = Scheduler::Mh;
    vs.service.flags.one_packet = false;
    let d = vs.destinations.values_mut().next().unwrap();
    d.forward = Forward::Route;
    d.weight = 9;
    let sctp = ServiceKey::sctp(sa("192.0.2.100:5060"));
    let d = changed
        .services
        .get_mut(&sctp)
        .unwrap()
        .destinations
        .get_mut(&sa("192.0.2.13:5060"))
        .unwrap();
    d.forward = Forward::Tunnel(Encap::Gue {
        port: 6081,
        checksum: TunnelChecksum::Remote,
    });
    let ops = plan(&changed, &desired, |_| true);
    assert_eq!(ops.len(), 3, "{ops:#?}");
    assert!(
        ops.iter()
            .all(|o| matches!(o, Op::EditService(_) | Op::EditDestination(..)))
    );
    assert_eq!(sync(&mut ipvs, &changed).operations, 3);
    assert_eq!(ipvs.table().unwrap(), changed);
    assert_eq!(ns.ipvsadm_table(), without_thresholds(&changed));

    // Stats are read (64-bit set), service lookup by key works, absent is None.
    let st = ipvs.service(&udp).unwrap().unwrap();
    assert_eq!(st.service, changed.services[&udp].service);
    assert_eq!(
        ipvs.service(&ServiceKey::udp(sa("192.0.2.100:54")))
            .unwrap(),
        None
    );
    ipvs.apply(&[Op::Zero(Some(udp)), Op::Zero(None)]).unwrap();

    // Back to nothing: the planner deletes owned services.
    let ops = plan(&Table::new(), &changed, |_| true);
    assert!(ops.iter().all(|o| matches!(o, Op::DelService(_))));
    ipvs.apply(&ops).unwrap();
    assert_eq!(ipvs.table().unwrap(), Table::new());
    assert_eq!(ns.exec(&["ipvsadm", "-Sn"]), "");
}

#[test]
fn cross_family_tunnel_destination() {
    let ns = Netns::new("xfamily");
    let mut ipvs = ns.ipvs();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    let mut t = Table::new();
    t.insert_service(Service::new(key, Scheduler::Rr));
    t.insert_destination(
        &key,
        Destination::new(sa("[2001:db8::11]:80"), Forward::Tunnel(Encap::Ipip)),
    );
    t.insert_destination(&key, Destination::new(sa("192.0.2.11:80"), Forward::Route));
    sync(&mut ipvs, &t);
    assert_eq!(ipvs.table().unwrap(), t);
    ipvs.apply(&[Op::DelDestination(key, sa("[2001:db8::11]:80"))])
        .unwrap();
    assert_eq!(ipvs.destinations(&key).unwrap().len(), 1);
}

/// The schedulers loaded in the VM (its init loads every `ip_vs_*` module the kernel ships).
fn kernel_schedulers() -> Vec<Scheduler> {
    let modules = std::fs::read_to_string("/proc/modules").expect("/proc/modules");
    let mut v: Vec<Scheduler> = modules
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("ip_vs_"))
        .filter(|m| !matches!(*m, "ftp" | "pe_sip"))
        .map(Scheduler::from_name)
        .collect();
    v.sort();
    v
}

#[test]
fn every_scheduler_the_kernel_has() {
    let scheds = kernel_schedulers();
    println!(
        "kernel schedulers: {}",
        scheds
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for s in [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Wlc,
        Scheduler::Sh,
        Scheduler::Mh,
    ] {
        assert!(
            scheds.contains(&s),
            "{s} is not loaded: the lab VM's init loads every ip_vs_* module"
        );
    }
    let ns = Netns::new("scheds");
    let mut ipvs = ns.ipvs();
    let mut t = Table::new();
    for (i, s) in scheds.iter().chain([&Scheduler::None]).enumerate() {
        assert!(
            !matches!(s, Scheduler::Other(_)),
            "unknown scheduler module ip_vs_{s}: add it to the model"
        );
        let key = ServiceKey::tcp(SocketAddr::new(
            "192.0.2.100".parse().unwrap(),
            1000 + i as u16,
        ));
        t.insert_service(Service::new(key, s.clone()));
        t.insert_destination(&key, Destination::new(sa("192.0.2.11:80"), Forward::Masq));
    }
    sync(&mut ipvs, &t);
    assert_eq!(ipvs.table().unwrap(), t);
    assert_eq!(ns.ipvsadm_table(), t);
}

#[test]
fn sync_daemons_timeouts_and_info() {
    let ns = Netns::new("daemons");
    let mut ipvs = ns.ipvs();
    let info = ipvs.info().unwrap();
    assert_eq!(info.version >> 16, 1);
    let ln = ns.exec(&["ipvsadm", "-Ln"]);
    assert_eq!(
        ln.lines().next().unwrap(),
        info.to_string(),
        "ipvsadm -Ln header"
    );

    let master = SyncDaemon::new(DaemonRole::Master, "lo", 3);
    let mut backup = SyncDaemon::new(DaemonRole::Backup, "lo", 4);
    backup.port = Some(8849);
    backup.ttl = Some(2);
    backup.group = Some("239.1.2.3".parse().unwrap());
    ipvs.apply(&[
        Op::StartDaemon(master.clone()),
        Op::StartDaemon(backup.clone()),
    ])
    .unwrap();
    let mut got = ipvs.daemons().unwrap();
    got.sort_by_key(|d| d.role);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].role, got[0].interface.as_str(), got[0].sync_id),
        (DaemonRole::Master, "lo", 3)
    );
    assert_eq!(got[0].port, Some(8848), "kernel default port");
    assert_eq!(
        got[0].group,
        Some("224.0.0.81".parse().unwrap()),
        "kernel default group"
    );
    assert_eq!(
        (got[1].role, got[1].sync_id, got[1].port, got[1].ttl),
        (DaemonRole::Backup, 4, Some(8849), Some(2))
    );
    assert_eq!(got[1].group, backup.group);
    let witness = ns.exec(&["ipvsadm", "-L", "--daemon"]);
    assert!(
        witness.contains("master sync daemon (mcast=lo, syncid=3,"),
        "{witness}"
    );
    assert!(
        witness.contains("backup sync daemon (mcast=lo, syncid=4,")
            && witness.contains("group=239.1.2.3, port=8849, ttl=2"),
        "{witness}"
    );

    ipvs.apply(&[
        Op::StopDaemon(DaemonRole::Master),
        Op::StopDaemon(DaemonRole::Backup),
    ])
    .unwrap();
    assert_eq!(ipvs.daemons().unwrap(), vec![]);
    assert_eq!(ns.exec(&["ipvsadm", "-L", "--daemon"]), "");

    let t = Timeouts {
        tcp: 901,
        tcp_fin: 121,
        udp: 301,
    };
    ipvs.apply(&[Op::SetTimeouts(t)]).unwrap();
    assert_eq!(ipvs.timeouts().unwrap(), t);
    assert_eq!(
        ns.exec(&["ipvsadm", "-L", "--timeout"]).trim(),
        "Timeout (tcp tcpfin udp): 901 121 301"
    );
    ipvs.apply(&[Op::SetTimeouts(Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 55,
    })])
    .unwrap();
    assert_eq!(
        ipvs.timeouts().unwrap(),
        Timeouts { udp: 55, ..t },
        "0 keeps the current value"
    );
}

fn apply_err(ipvs: &mut NetlinkIpvs, ops: &[Op]) -> String {
    match ipvs.apply(ops) {
        Ok(r) => panic!("{ops:?} succeeded: {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn kernel_errors_are_reported_in_words() {
    let ns = Netns::new("errors");
    let mut ipvs = ns.ipvs();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    let d = Destination::new(sa("192.0.2.13:80"), Forward::Route);
    ipvs.apply(&[
        Op::AddService(Service::new(key, Scheduler::Rr)),
        Op::AddDestination(key, d.clone()),
    ])
    .unwrap();

    let cases: Vec<(Vec<Op>, &str)> = vec![
        (
            vec![Op::AddService(Service::new(key, Scheduler::Wlc))],
            "add service tcp 192.0.2.100:80: already exists",
        ),
        (
            vec![Op::AddDestination(key, d.clone())],
            "add destination 192.0.2.13:80 to tcp 192.0.2.100:80: already exists",
        ),
        (
            vec![Op::EditService(Service::new(
                ServiceKey::udp(sa("192.0.2.100:80")),
                Scheduler::Rr,
            ))],
            "edit service udp 192.0.2.100:80: no such service",
        ),
        (
            vec![Op::AddDestination(
                ServiceKey::fwmark(Family::Inet, 9),
                d.clone(),
            )],
            "add destination 192.0.2.13:80 to fwmark 9: no such service",
        ),
        (
            vec![Op::EditService(Service::new(
                key,
                Scheduler::Other("nosuch".into()),
            ))],
            "edit service tcp 192.0.2.100:80: scheduler or persistence engine not available in this kernel (no such module)",
        ),
        (
            vec![Op::EditDestination(
                key,
                Destination::new(sa("192.0.2.99:80"), Forward::Route),
            )],
            "edit destination 192.0.2.99:80 of tcp 192.0.2.100:80: no such destination",
        ),
        (
            vec![Op::DelDestination(key, sa("192.0.2.99:80"))],
            "delete destination 192.0.2.99:80 from tcp 192.0.2.100:80: no such destination",
        ),
        (
            vec![Op::AddDestination(
                key,
                Destination {
                    lower_threshold: 10,
                    upper_threshold: 5,
                    ..Destination::new(sa("192.0.2.20:80"), Forward::Route)
                },
            )],
            "add destination 192.0.2.20:80 to tcp 192.0.2.100:80: value out of range (weight above 2147483647, or lower threshold above upper threshold)",
        ),
        (
            vec![Op::AddDestination(
                key,
                Destination::new(sa("192.0.2.21:80"), Forward::Route).weight(u32::MAX),
            )],
            "add destination 192.0.2.21:80 to tcp 192.0.2.100:80: value out of range",
        ),
        (
            vec![Op::AddDestination(
                key,
                Destination::new(sa("224.0.0.1:80"), Forward::Route),
            )],
            "add destination 224.0.0.1:80 to tcp 192.0.2.100:80: invalid argument: the kernel rejected the destination",
        ),
        (
            vec![Op::AddDestination(
                key,
                Destination::new(
                    sa("192.0.2.22:80"),
                    Forward::Tunnel(Encap::Gue {
                        port: 0,
                        checksum: TunnelChecksum::None,
                    }),
                ),
            )],
            "add destination 192.0.2.22:80 to tcp 192.0.2.100:80: invalid argument",
        ),
        (
            vec![Op::AddDestination(
                key,
                Destination::new(sa("[2001:db8::23]:80"), Forward::Route),
            )],
            "add destination [2001:db8::23]:80 to tcp 192.0.2.100:80: invalid argument",
        ),
        (
            vec![Op::DelService(ServiceKey::sctp(sa("192.0.2.1:1")))],
            "delete service sctp 192.0.2.1:1: no such service",
        ),
        (
            vec![Op::StopDaemon(DaemonRole::Backup)],
            "stop sync daemon backup: not running",
        ),
        (
            vec![Op::StartDaemon(SyncDaemon::new(
                DaemonRole::Master,
                "nosuch0",
                1,
            ))],
            "start sync daemon master on nosuch0: no such network interface",
        ),
    ];
    for (ops, want) in &cases {
        let got = apply_err(&mut ipvs, ops);
        assert!(
            got.starts_with(want),
            "{ops:?}:\n  got  {got}\n  want {want}"
        );
    }
    ipvs.apply(&[Op::StartDaemon(SyncDaemon::new(
        DaemonRole::Master,
        "lo",
        1,
    ))])
    .unwrap();
    assert_eq!(
        apply_err(
            &mut ipvs,
            &[Op::StartDaemon(SyncDaemon::new(
                DaemonRole::Master,
                "lo",
                1
            ))]
        ),
        "start sync daemon master on lo: already running"
    );

    // A batch: every failure is reported with its own operation; the good ones are applied.
    let ops = vec![
        Op::AddDestination(key, Destination::new(sa("192.0.2.30:80"), Forward::Route)),
        Op::AddDestination(key, d.clone()),
        Op::AddDestination(key, Destination::new(sa("192.0.2.31:80"), Forward::Route)),
        Op::DelService(ServiceKey::udp(sa("192.0.2.1:2"))),
    ];
    let got = apply_err(&mut ipvs, &ops);
    assert_eq!(
        got,
        "2 of 4 operations failed: add destination 192.0.2.13:80 to tcp 192.0.2.100:80: already exists; \
         delete service udp 192.0.2.1:2: no such service"
    );
    assert_eq!(ipvs.destinations(&key).unwrap().len(), 3);

    // A failure stops the batch after its chunk (1,000 requests): later chunks are not sent.
    let fresh = ServiceKey::tcp(sa("192.0.2.101:80"));
    let mut ops = vec![Op::AddService(Service::new(fresh, Scheduler::Rr))];
    for i in 0..1499u32 {
        let ip = std::net::Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8);
        ops.push(Op::AddDestination(
            fresh,
            Destination::new(SocketAddr::new(ip.into(), 80), Forward::Route),
        ));
    }
    ops[10] = Op::AddService(Service::new(fresh, Scheduler::Rr));
    let got = apply_err(&mut ipvs, &ops);
    assert_eq!(
        got,
        "add service tcp 192.0.2.101:80: already exists (999 of 1500 operations applied before stopping)"
    );
    assert_eq!(ipvs.destinations(&fresh).unwrap().len(), 998);

    // Without CAP_NET_ADMIN (dropped in a thread that then opens its own socket): EPERM in words.
    let name = ns.0.clone();
    let got = std::thread::spawn(move || {
        drop_cap_net_admin();
        let mut ipvs = NetlinkIpvs::in_netns(&name).unwrap();
        apply_err(&mut ipvs, &[Op::DelService(key)])
    })
    .join()
    .unwrap();
    assert_eq!(
        got,
        "delete service tcp 192.0.2.100:80: permission denied: needs CAP_NET_ADMIN in the initial user namespace"
    );
    assert!(ipvs.service(&key).unwrap().is_some());
}

/// Drops CAP_NET_ADMIN from the calling thread's effective and permitted sets (capset(2) is per
/// thread; `linux/capability.h` v3 layout).
fn drop_cap_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut h = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: header and a 2-element data array as capget/capset expect for version 3.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()),
            0,
            "capget"
        );
        d[0].effective &= !(1 << CAP_NET_ADMIN);
        d[0].permitted &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
            0,
            "capset"
        );
    }
}

#[test]
fn a_service_added_by_ipvsadm_is_left_untouched() {
    let ns = Netns::new("foreign");
    ns.exec(&["ipvsadm", "-A", "-u", "192.0.2.200:53", "-s", "rr"]);
    ns.exec(&[
        "ipvsadm",
        "-a",
        "-u",
        "192.0.2.200:53",
        "-r",
        "192.0.2.11:53",
        "-m",
        "-w",
        "4",
    ]);
    let foreign = ServiceKey::udp(sa("192.0.2.200:53"));
    let mut ipvs = ns.ipvs();
    let before = ipvs.table().unwrap();
    assert!(before.services.contains_key(&foreign));

    let desired = variety();
    let owned: BTreeSet<ServiceKey> = desired.services.keys().copied().collect();
    let ops = plan(&desired, &before, |k| owned.contains(k));
    assert!(
        ops.iter().all(|o| !format!("{o}").contains("192.0.2.200")),
        "{ops:#?}"
    );
    ipvs.apply(&ops).unwrap();
    // Shrink what we own: only our services go.
    let ops = plan(&Table::new(), &ipvs.table().unwrap(), |k| owned.contains(k));
    ipvs.apply(&ops).unwrap();
    let after = ipvs.table().unwrap();
    assert_eq!(after, before);
    let saved = ns.exec(&["ipvsadm", "-Sn"]);
    assert_eq!(
        saved,
        "-A -u 192.0.2.200:53 -s rr\n-a -u 192.0.2.200:53 -r 192.0.2.11:53 -m -w 4\n"
    );
}

/// Kernel 6.1 resumes a services dump by position in the table all namespaces share: while
/// another namespace adds and removes services, a dump of this namespace's 10k services repeats or
/// misses some. `services()` must never return such a dump: each one it returns equals the table
/// (witness: what was applied, and `ipvsadm -Sn`), the others are a worded error.
#[test]
fn dumps_during_changes_in_another_namespace_are_right_or_an_error() {
    const ROUNDS: usize = 4;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    let t0 = Instant::now();
    let ns = Netns::new("dumpquirk");
    let other = Netns::new("churn");
    let mut ipvs = ns.ipvs();
    let desired = synthetic_table(10_000, 0);
    sync(&mut ipvs, &desired);
    eprintln!("{:?}: 10k services applied", t0.elapsed());
    assert_eq!(ns.ipvsadm_table(), desired, "ipvsadm -Sn disagrees");
    eprintln!("{:?}: ipvsadm -Sn agrees", t0.elapsed());
    let want: Vec<Service> = desired
        .services
        .values()
        .map(|v| v.service.clone())
        .collect();
    let sorted = |mut v: Vec<Service>| {
        v.sort_by_key(|s| s.key);
        v
    };

    // The other namespace adds and removes a service again and again while `churn_until` (ms
    // since t0) lies ahead: through the whole unchecked dump, and through the first half-dump's
    // time of each checked call, which must then dump again until two dumps agree.
    let stop = Arc::new(AtomicBool::new(false));
    let churn_until = Arc::new(AtomicU64::new(0));
    let changes = Arc::new(AtomicUsize::new(0));
    let ms = move || t0.elapsed().as_millis() as u64;
    let churn = {
        let (stop, until, changes) = (stop.clone(), churn_until.clone(), changes.clone());
        let mut theirs = other.ipvs();
        std::thread::spawn(move || {
            let key = ServiceKey::tcp(SocketAddr::from(([198, 18, 7, 1], 1000)));
            while !stop.load(Ordering::Relaxed) {
                if ms() >= until.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                theirs
                    .apply(&[Op::AddService(Service::new(key, Scheduler::Rr))])
                    .unwrap();
                theirs.apply(&[Op::DelService(key)]).unwrap();
                changes.fetch_add(2, Ordering::Relaxed);
            }
        })
    };

    let (mut right, mut raw_wrong) = (0, 0);
    for round in 0..ROUNDS {
        eprintln!("{:?}: round {round}", t0.elapsed());
        churn_until.store(u64::MAX, Ordering::Relaxed);
        let start = ms();
        let raw: Vec<Service> = ipvs
            .services_unchecked()
            .unwrap()
            .into_iter()
            .map(|s| s.service)
            .collect();
        let one_dump = ms() - start;
        churn_until.store(ms() + one_dump / 2, Ordering::Relaxed);
        if sorted(raw) != want {
            raw_wrong += 1;
        }
        let list = ipvs
            .services()
            .unwrap_or_else(|e| panic!("round {round}: dump services: {e}"));
        churn_until.store(0, Ordering::Relaxed);
        let got: Vec<Service> = list.into_iter().map(|s| s.service).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "round {round}: a checked dump has the wrong number of services"
        );
        assert!(
            sorted(got) == want,
            "round {round}: a checked dump differs from the table"
        );
        right += 1;
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    println!(
        "{ROUNDS} checked dumps: {right} equal to the table; {ROUNDS} unchecked dumps: {raw_wrong} wrong; \
         {} changes in the other namespace",
        changes.load(Ordering::Relaxed)
    );
    assert!(
        raw_wrong > 0,
        "no unchecked dump was disturbed: the churn did not exercise the quirk"
    );
    assert_eq!(
        ns.ipvsadm_table(),
        desired,
        "ipvsadm -Sn disagrees after the churn"
    );
    ipvs.apply(&[Op::Flush]).unwrap();
}

/// The available half of family resolution (the unavailable half, nlctrl's `ENOENT`, is a unit
/// test in `common/src/ipvs/socket.rs`): on a kernel with IPVS the lookup gives a dynamic id.
#[test]
fn family_resolves_on_a_kernel_with_ipvs() {
    let ns = Netns::new("family");
    let ipvs = ns.ipvs();
    assert!(
        ipvs.family_id() >= 16,
        "generic netlink ids start at GENL_MIN_ID (16), got {}",
        ipvs.family_id()
    );
    assert_eq!(ipvs.timeout(), std::time::Duration::from_secs(5));
}

#[test]
fn namespaces_are_separate() {
    let a = Netns::new("ns-a");
    let b = Netns::new("ns-b");
    let mut ia = a.ipvs();
    let mut ib = b.ipvs();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    ia.apply(&[Op::AddService(Service::new(key, Scheduler::Rr))])
        .unwrap();
    assert_eq!(ia.table().unwrap().services.len(), 1);
    assert_eq!(ib.table().unwrap(), Table::new());
    assert_eq!(a.exec(&["ipvsadm", "-Sn"]), "-A -t 192.0.2.100:80 -s rr\n");
    assert_eq!(b.exec(&["ipvsadm", "-Sn"]), "");
    // The same key can exist in both.
    ib.apply(&[Op::AddService(Service::new(key, Scheduler::Wlc))])
        .unwrap();
    assert_eq!(
        ib.service(&key).unwrap().unwrap().service.scheduler,
        Scheduler::Wlc
    );
    assert_eq!(
        ia.service(&key).unwrap().unwrap().service.scheduler,
        Scheduler::Rr
    );
    let e = NetlinkIpvs::in_netns("ipvs-nosuch")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("network namespace /var/run/netns/ipvs-nosuch: No such file"),
        "{e}"
    );
}
