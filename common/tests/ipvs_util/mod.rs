//! Helpers shared by the IPVS tests, the golden test and the `ipvs` example: a parser of
//! `ipvsadm -Sn` output into a [`Table`] (ipvsadm is the independent witness of the kernel table),
//! an `ipvsadm-restore` writer, and the synthetic tables of the lab tests and the benchmark.
#![allow(dead_code)] // each includer uses a different part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::ipvs::*;

/// `n_services` TCP services (198.18.x.y:80, wlc) with `n_dests` direct-routed destinations each
/// (198.19.x.y:80, weight 1, shared between services like real servers behind several VIPs).
pub fn synthetic_table(n_services: usize, n_dests: usize) -> Table {
    let mut t = Table::new();
    for i in 0..n_services {
        let vip = Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8);
        let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(vip), 80));
        t.insert_service(Service::new(key, Scheduler::Wlc));
        for k in 0..n_dests {
            let rip = Ipv4Addr::new(198, 19, (k / 250) as u8, (k % 250 + 1) as u8);
            t.insert_destination(
                &key,
                Destination::new(SocketAddr::new(IpAddr::V4(rip), 80), Forward::Route),
            );
        }
    }
    t
}

fn service_arg(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        } => format!("-t {addr}"),
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        } => format!("-u {addr}"),
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr,
        } => format!("--sctp-service {addr}"),
        ServiceKey::Addr {
            protocol: Protocol::Other(n),
            ..
        } => panic!("ipvsadm has no option for protocol {n}"),
        ServiceKey::Fwmark {
            family: Family::Inet,
            mark,
        } => format!("-f {mark}"),
        ServiceKey::Fwmark {
            family: Family::Inet6,
            mark,
        } => format!("-f {mark} -6"),
    }
}

/// The `ipvsadm-restore` input for a table (services with scheduler and persistence, destinations
/// with forwarding method and weight: what [`synthetic_table`] uses).
pub fn restore_input(t: &Table) -> String {
    let mut s = String::new();
    for (key, vs) in &t.services {
        s.push_str(&format!(
            "-A {} -s {}",
            service_arg(key),
            vs.service.scheduler
        ));
        if vs.service.flags.persistent {
            s.push_str(&format!(" -p {}", vs.service.timeout));
        }
        s.push('\n');
        for d in vs.destinations.values() {
            let fwd = match d.forward {
                Forward::Masq => "-m",
                Forward::Tunnel(_) => "-i",
                _ => "-g",
            };
            s.push_str(&format!(
                "-a {} -r {} {fwd} -w {}\n",
                service_arg(key),
                d.addr,
                d.weight
            ));
        }
    }
    s
}

fn parse_key(opt: &str, val: &str, v6: bool) -> Result<ServiceKey, String> {
    let addr = || {
        val.parse::<SocketAddr>()
            .map_err(|e| format!("address {val}: {e}"))
    };
    Ok(match opt {
        "-t" => ServiceKey::tcp(addr()?),
        "-u" => ServiceKey::udp(addr()?),
        "--sctp-service" => ServiceKey::sctp(addr()?),
        "-f" => ServiceKey::fwmark(
            if v6 { Family::Inet6 } else { Family::Inet },
            val.parse().map_err(|e| format!("mark {val}: {e}"))?,
        ),
        _ => return Err(format!("unknown service option {opt}")),
    })
}

/// Parses `ipvsadm -Sn` (ipvsadm 1.31) into a table. Thresholds are not in `-S` output: they stay 0.
pub fn parse_ipvsadm_save(text: &str) -> Result<Table, String> {
    let mut t = Table::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("ipvsadm -Sn line {}: {m}: {line}", n + 1);
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.is_empty() {
            continue;
        }
        let v6 = w.contains(&"-6");
        let get = |o: &str| {
            w.iter()
                .position(|x| *x == o)
                .and_then(|i| w.get(i + 1))
                .copied()
        };
        let svc_opt = ["-t", "-u", "--sctp-service", "-f"]
            .into_iter()
            .find(|o| w.contains(o))
            .ok_or_else(|| err("no service".into()))?;
        let key = parse_key(
            svc_opt,
            get(svc_opt).ok_or_else(|| err("no address".into()))?,
            v6,
        )
        .map_err(err)?;
        match w[0] {
            "-A" => {
                let sched =
                    Scheduler::from_name(get("-s").ok_or_else(|| err("no scheduler".into()))?);
                let mut s = Service::new(key, sched);
                if let Some(p) = get("-p") {
                    s = s.persistent(p.parse().map_err(|_| err(format!("timeout {p}")))?);
                }
                if let Some(m) = get("-M") {
                    s.netmask = match key.family() {
                        Family::Inet => {
                            Netmask::V4(m.parse().map_err(|_| err(format!("netmask {m}")))?)
                        }
                        Family::Inet6 => {
                            Netmask::V6(m.parse().map_err(|_| err(format!("netmask {m}")))?)
                        }
                    };
                }
                s.flags.one_packet = w.contains(&"-o");
                if let Some(b) = get("-b") {
                    for f in b.split(',') {
                        match f {
                            "sh-fallback" | "mh-fallback" | "flag-1" => {
                                s.flags.sched_fallback = true
                            }
                            "sh-port" | "mh-port" | "flag-2" => s.flags.sched_port = true,
                            "flag-3" => s.flags.sched3 = true,
                            _ => return Err(err(format!("scheduler flag {f}"))),
                        }
                    }
                }
                s.pe_name = get("--pe").map(str::to_string);
                t.insert_service(s);
            }
            "-a" => {
                let r = get("-r").ok_or_else(|| err("no -r".into()))?;
                let addr: SocketAddr = r
                    .parse()
                    .map_err(|e| err(format!("real server {r}: {e}")))?;
                let checksum = if w.contains(&"--tun-csum") {
                    TunnelChecksum::Checksum
                } else if w.contains(&"--tun-remcsum") {
                    TunnelChecksum::Remote
                } else {
                    TunnelChecksum::None
                };
                let forward = if w.contains(&"-m") {
                    Forward::Masq
                } else if w.contains(&"-i") {
                    Forward::Tunnel(match get("--tun-type") {
                        None | Some("ipip") => Encap::Ipip,
                        Some("gue") => Encap::Gue {
                            port: get("--tun-port")
                                .and_then(|p| p.parse().ok())
                                .ok_or_else(|| err("tun-port".into()))?,
                            checksum,
                        },
                        Some("gre") => Encap::Gre { checksum },
                        Some(o) => return Err(err(format!("tunnel type {o}"))),
                    })
                } else if w.contains(&"-g") {
                    Forward::Route
                } else {
                    return Err(err("no forwarding method".into()));
                };
                let num = |o: &str| -> Result<u32, String> {
                    get(o)
                        .map(|v| v.parse().map_err(|_| err(format!("{o} {v}"))))
                        .transpose()
                        .map(|v| v.unwrap_or(0))
                };
                let d = Destination {
                    addr,
                    forward,
                    weight: num("-w")?,
                    upper_threshold: num("-x")?,
                    lower_threshold: num("-y")?,
                };
                if !t.insert_destination(&key, d) {
                    return Err(err("destination before its service".into()));
                }
            }
            other => return Err(err(format!("unknown command {other}"))),
        }
    }
    Ok(t)
}

/// The table with every destination's thresholds zeroed (what `ipvsadm -S` can show).
pub fn without_thresholds(t: &Table) -> Table {
    let mut t = t.clone();
    for vs in t.services.values_mut() {
        for d in vs.destinations.values_mut() {
            d.upper_threshold = 0;
            d.lower_threshold = 0;
        }
    }
    t
}
