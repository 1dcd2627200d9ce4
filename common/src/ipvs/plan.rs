//! The planner: the minimal list of [`Op`]s that turns the kernel's `actual` table into `desired`,
//! touching only services the caller owns. Pure: no I/O, no clock.
//!
//! - A service in `desired` is owned by definition: it is created (`AddService`) or, when its
//!   configuration differs, edited in place (`EditService`, which carries the full record).
//! - A service only in `actual` is deleted only when `owned(key)` says so; others (added by an
//!   operator with `ipvsadm`, or by another tool) are left untouched, destinations included.
//! - Destinations are diffed by address: deleted, edited in place (`EditDestination`) or added.
//! - Order: destination deletions, then service deletions (which take their destinations with them,
//!   so those are not deleted one by one), then service creations and edits, then destination edits
//!   and additions: a service always exists before its destinations, and a capacity freed by a
//!   deletion is free before it is reused.
//!
//! Kernel-internal state (the `HASHED` flag, counters) is not part of the [model](super::model), so
//! it can never cause an edit. What it does not do: rename keys (a changed address is a delete and an
//! add), limit how much one plan may delete (the caller's policy), or validate values (the kernel
//! does, and its refusals come back in words).
//!
//! ```
//! use common::ipvs::{plan, Destination, Forward, Op, Scheduler, Service, ServiceKey, Table};
//!
//! let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
//! let mut actual = Table::new();
//! actual.insert_service(Service::new(key, Scheduler::Wlc));
//! actual.insert_destination(&key, Destination::new("192.0.2.11:80".parse().unwrap(), Forward::Route));
//! let mut desired = actual.clone();
//! desired.insert_destination(&key, Destination::new("192.0.2.11:80".parse().unwrap(), Forward::Route).weight(5));
//!
//! let ops = plan(&desired, &actual, |_| true);
//! assert_eq!(ops.len(), 1);
//! assert!(matches!(&ops[0], Op::EditDestination(k, d) if *k == key && d.weight == 5));
//! ```

use super::model::{Op, ServiceKey, Table};

/// The operations turning `actual` into `desired`; services only in `actual` are deleted when
/// `owned(key)` is true and left alone otherwise.
pub fn plan(desired: &Table, actual: &Table, owned: impl Fn(&ServiceKey) -> bool) -> Vec<Op> {
    let mut del_dests = Vec::new();
    let mut del_services = Vec::new();
    let mut services = Vec::new();
    let mut dests = Vec::new();

    for key in actual.services.keys() {
        if !desired.services.contains_key(key) && owned(key) {
            del_services.push(Op::DelService(*key));
        }
    }
    for (key, want) in &desired.services {
        match actual.services.get(key) {
            None => {
                services.push(Op::AddService(want.service.clone()));
                for d in want.destinations.values() {
                    dests.push(Op::AddDestination(*key, d.clone()));
                }
            }
            Some(have) => {
                if have.service != want.service {
                    services.push(Op::EditService(want.service.clone()));
                }
                for addr in have.destinations.keys() {
                    if !want.destinations.contains_key(addr) {
                        del_dests.push(Op::DelDestination(*key, *addr));
                    }
                }
                for (addr, d) in &want.destinations {
                    match have.destinations.get(addr) {
                        None => dests.push(Op::AddDestination(*key, d.clone())),
                        Some(h) if h != d => dests.push(Op::EditDestination(*key, d.clone())),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    let mut ops = del_dests;
    ops.extend(del_services);
    ops.extend(services);
    ops.extend(dests);
    ops
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::*;
    use crate::ipvs::codec;
    use crate::ipvs::model::*;
    use crate::ipvs::{Ipvs, RecordingIpvs};

    /// splitmix64: a deterministic generator, so every run checks the same cases and a failure
    /// names its seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    // Small pools so that random tables overlap a lot (same keys, same destinations).
    fn key(r: &mut Rng) -> ServiceKey {
        match r.below(6) {
            0 => ServiceKey::fwmark(
                if r.chance(50) {
                    Family::Inet
                } else {
                    Family::Inet6
                },
                1 + r.below(3) as u32,
            ),
            1 => ServiceKey::udp(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)),
                53,
            )),
            2 => ServiceKey::sctp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101)),
                5060,
            )),
            _ => ServiceKey::tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
                80 + r.below(4) as u16,
            )),
        }
    }

    fn service(r: &mut Rng, key: ServiceKey) -> Service {
        let sched = [Scheduler::Rr, Scheduler::Wlc, Scheduler::Sh, Scheduler::Mh]
            [r.below(4) as usize]
            .clone();
        let mut s = Service::new(key, sched);
        if r.chance(30) {
            s = s.persistent(300 + r.below(3) as u32);
        }
        s.flags.sched_fallback = r.chance(20);
        s.flags.one_packet = r.chance(10);
        if r.chance(20) {
            s.pe_name = Some("sip".into());
        }
        if r.chance(20) {
            s.netmask = match key.family() {
                Family::Inet => Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)),
                Family::Inet6 => Netmask::V6(64),
            };
        }
        s
    }

    fn destination(r: &mut Rng) -> Destination {
        let ip = if r.chance(20) {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                0x10 + r.below(4) as u16,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + r.below(6) as u8))
        };
        let forward = match r.below(5) {
            0 => Forward::Masq,
            1 => Forward::Tunnel(Encap::Gue {
                port: 6080,
                checksum: TunnelChecksum::None,
            }),
            2 => Forward::Tunnel(Encap::Ipip),
            _ => Forward::Route,
        };
        let upper = r.below(3) as u32 * 10;
        Destination {
            addr: SocketAddr::new(ip, 80 + r.below(2) as u16),
            forward,
            weight: r.below(4) as u32,
            upper_threshold: upper,
            lower_threshold: upper / 2,
        }
    }

    fn table(r: &mut Rng) -> Table {
        let mut t = Table::new();
        for _ in 0..r.below(6) {
            let k = key(r);
            t.insert_service(service(r, k));
            for _ in 0..r.below(5) {
                t.insert_destination(&k, destination(r));
            }
        }
        t
    }

    /// A variant of `t`: some services and destinations removed, changed, added.
    fn mutate(r: &mut Rng, t: &Table) -> Table {
        let mut out = Table::new();
        for (k, vs) in &t.services {
            if r.chance(15) {
                continue;
            }
            out.insert_service(if r.chance(20) {
                service(r, *k)
            } else {
                vs.service.clone()
            });
            for d in vs.destinations.values() {
                if r.chance(15) {
                    continue;
                }
                let mut d = d.clone();
                if r.chance(20) {
                    d.weight += 1;
                }
                out.insert_destination(k, d);
            }
        }
        let extra = table(r);
        for (k, vs) in extra.services {
            out.services.entry(k).or_insert(vs);
        }
        out
    }

    const CASES: u64 = 2000;

    #[test]
    fn applying_the_plan_yields_desired() {
        for seed in 0..CASES {
            let mut r = Rng(seed);
            let actual = table(&mut r);
            let desired = if r.chance(70) {
                mutate(&mut r, &actual)
            } else {
                table(&mut r)
            };
            let ops = plan(&desired, &actual, |_| true);
            let mut fake = RecordingIpvs::with_table(actual.clone());
            fake.apply(&ops)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\nops: {ops:#?}"));
            assert_eq!(fake.table, desired, "seed {seed}: ops {ops:#?}");
        }
    }

    #[test]
    fn plan_of_equal_tables_is_empty() {
        for seed in 0..CASES {
            let t = table(&mut Rng(seed));
            assert!(plan(&t, &t, |_| true).is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn kernel_internal_flags_and_counters_never_cause_edits() {
        // The table as the kernel would report it: HASHED set, mask ~0, counters running.
        for seed in 0..CASES / 4 {
            let mut r = Rng(seed);
            let t = table(&mut r);
            let mut dumped = Table::new();
            for (k, vs) in &t.services {
                let stats = Stats {
                    conns: r.next(),
                    in_bytes: r.next(),
                    ..Stats::default()
                };
                let msg = codec::kernel_service_reply(&ServiceStatus {
                    service: vs.service.clone(),
                    stats,
                });
                dumped.insert_service(codec::decode_service(&msg).unwrap().service);
                for d in vs.destinations.values() {
                    let st = DestinationStatus {
                        destination: d.clone(),
                        active_conns: r.next() as u32,
                        inactive_conns: 3,
                        persistent_conns: 1,
                        stats,
                    };
                    let msg = codec::kernel_destination_reply(&st);
                    dumped.insert_destination(
                        k,
                        codec::decode_destination(&msg, k.family())
                            .unwrap()
                            .destination,
                    );
                }
            }
            assert!(plan(&t, &dumped, |_| true).is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn services_not_owned_are_untouched() {
        for seed in 0..CASES {
            let mut r = Rng(seed);
            let actual = table(&mut r);
            let desired = mutate(&mut r, &actual);
            // Own only some of what is in actual and not desired.
            let owned: BTreeSet<ServiceKey> = actual
                .services
                .keys()
                .filter(|_| r.chance(50))
                .copied()
                .collect();
            let ops = plan(&desired, &actual, |k| owned.contains(k));
            let mut fake = RecordingIpvs::with_table(actual.clone());
            fake.apply(&ops)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for (k, vs) in &actual.services {
                if !desired.services.contains_key(k) && !owned.contains(k) {
                    assert_eq!(
                        fake.table.services.get(k),
                        Some(vs),
                        "seed {seed}: foreign service {k} changed"
                    );
                    assert!(
                        ops.iter().all(|op| op_key(op) != Some(*k)),
                        "seed {seed}: an op touches {k}"
                    );
                }
            }
            for (k, vs) in &desired.services {
                assert_eq!(fake.table.services.get(k), Some(vs), "seed {seed}");
            }
        }
    }

    #[test]
    fn order_and_minimality() {
        for seed in 0..CASES {
            let mut r = Rng(seed);
            let actual = table(&mut r);
            let desired = mutate(&mut r, &actual);
            let ops = plan(&desired, &actual, |_| true);
            let rank = |op: &Op| match op {
                Op::DelDestination(..) => 0,
                Op::DelService(_) => 1,
                Op::AddService(_) | Op::EditService(_) => 2,
                _ => 3,
            };
            assert!(
                ops.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
                "seed {seed}: {ops:#?}"
            );
            // No destination of a deleted service is deleted one by one; nothing is touched twice.
            let deleted: BTreeSet<ServiceKey> = ops
                .iter()
                .filter_map(|o| {
                    if let Op::DelService(k) = o {
                        Some(*k)
                    } else {
                        None
                    }
                })
                .collect();
            assert!(
                ops.iter()
                    .all(|o| !matches!(o, Op::DelDestination(k, _) if deleted.contains(k)))
            );
            let mut seen = BTreeSet::new();
            for o in &ops {
                assert!(seen.insert(format!("{o}")), "seed {seed}: {o} twice");
            }
        }
    }

    fn op_key(op: &Op) -> Option<ServiceKey> {
        match op {
            Op::AddService(s) | Op::EditService(s) => Some(s.key),
            Op::DelService(k)
            | Op::AddDestination(k, _)
            | Op::EditDestination(k, _)
            | Op::DelDestination(k, _) => Some(*k),
            _ => None,
        }
    }
}
