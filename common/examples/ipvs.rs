//! A small driver of `common::ipvs` for the benchmark (`tests/lab bench ipvs`) and for capturing the
//! golden fixture (`common/tests/fixtures/ipvs/capture.sh`). Not a user tool: `ldir` is.
//!
//! ```text
//! ipvs apply S D      cold-apply the synthetic table of S services × D destinations (plan against a dump)
//! ipvs change S D     set the weight of one destination of that table to 2 (plan against a dump)
//! ipvs restore S D    print the same table as ipvsadm-restore input
//! ipvs wait S D MS    poll every MS ms until the kernel holds that table's services and destinations
//!                     with their weights (put there by another tool); print when the poll that saw
//!                     it began
//! ipvs wait-dest SERVICE DEST WEIGHT MS
//!                     (tcp SERVICE, e.g. 198.18.0.1:80) poll every MS ms until SERVICE has DEST at
//!                     WEIGHT; print `absent` after the first poll (which must not see it), then the
//!                     time the poll that saw it began (for `tests/lab bench ldir`'s reload figure)
//! ipvs capture        print the raw reply bytes of a table dump as hex
//! ```
//! `apply` and `change` print `ops=N sends=N plan_ms=N apply_ms=N dump_ms=N`.

#[path = "../tests/ipvs_util/mod.rs"]
mod ipvs_util;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ipvs::{NetlinkIpvs, ServiceKey, plan};

fn size(args: &[String]) -> Result<(usize, usize), String> {
    match args {
        [s, d] => Ok((
            s.parse().map_err(|_| format!("services: {s}"))?,
            d.parse().map_err(|_| format!("destinations: {d}"))?,
        )),
        _ => Err("expected SERVICES DESTINATIONS".into()),
    }
}

fn sync(desired: &common::ipvs::Table) -> Result<(), String> {
    let mut ipvs = NetlinkIpvs::connect().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let actual = ipvs.table().map_err(|e| e.to_string())?;
    let dump = t.elapsed();
    let t = Instant::now();
    let ops = plan(desired, &actual, |k| desired.services.contains_key(k));
    let planned = t.elapsed();
    let t = Instant::now();
    let report = ipvs.apply(&ops).map_err(|e| e.to_string())?;
    println!(
        "ops={} sends={} dump_ms={} plan_ms={} apply_ms={}",
        report.operations,
        report.sends,
        dump.as_millis(),
        planned.as_millis(),
        t.elapsed().as_millis()
    );
    Ok(())
}

/// Polls until the kernel table has `desired`'s services with their destination addresses and
/// weights (a tool that adds destinations at weight 0 first is not done until they carry theirs), and
/// prints the wall-clock time (`SECONDS.MICROS`, as bash's `$EPOCHREALTIME`) at which the poll that
/// saw it began. A poll is one dump of the last service's destinations (the one a tool that adds in
/// order adds last): cheap, so the poller takes little CPU from the tool it watches; only when that
/// one is complete is the whole table dumped. Gives up after ten minutes.
fn wait(desired: &common::ipvs::Table, every: Duration) -> Result<(), String> {
    let (last, vs) = desired.services.iter().next_back().ok_or("no service")?;
    let mut ipvs = NetlinkIpvs::connect().map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        let began = SystemTime::now();
        let n = ipvs.destinations(last).map_err(|e| e.to_string())?.len();
        if n == vs.destinations.len() {
            let actual = ipvs.table().map_err(|e| e.to_string())?;
            let complete = actual.services.len() == desired.services.len()
                && desired.services.iter().all(|(k, want)| {
                    actual.services.get(k).is_some_and(|got| {
                        got.destinations.len() == want.destinations.len()
                            && got
                                .destinations
                                .iter()
                                .zip(&want.destinations)
                                .all(|((ga, g), (wa, w))| ga == wa && g.weight == w.weight)
                    })
                });
            if complete {
                let t = began
                    .duration_since(UNIX_EPOCH)
                    .map_err(|e| e.to_string())?;
                println!("{}.{:06}", t.as_secs(), t.subsec_micros());
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err("the table was not complete after 600 s".into());
        }
        std::thread::sleep(every);
    }
}

/// Polls one service until it has `dest` at `weight`; prints `absent` after the first poll (an error
/// if that one already sees it: the caller must start this before the change), then the wall-clock
/// time at which the poll that saw it began. Gives up after ten minutes.
fn wait_dest(
    service: SocketAddr,
    dest: SocketAddr,
    weight: u32,
    every: Duration,
) -> Result<(), String> {
    let key = ServiceKey::tcp(service);
    let mut ipvs = NetlinkIpvs::connect().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut first = true;
    loop {
        let began = SystemTime::now();
        let found = ipvs
            .destinations(&key)
            .map_err(|e| e.to_string())?
            .iter()
            .any(|d| d.destination.addr == dest && d.destination.weight == weight);
        if found {
            if first {
                return Err(format!("{dest} is already in {service} at weight {weight}"));
            }
            let t = began
                .duration_since(UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            println!("{}.{:06}", t.as_secs(), t.subsec_micros());
            return Ok(());
        }
        if first {
            println!("absent");
            first = false;
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(format!("{dest} was not in {service} after 600 s"));
        }
        std::thread::sleep(every);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("apply") => {
            size(&args[1..]).and_then(|(s, d)| sync(&ipvs_util::synthetic_table(s, d)))
        }
        Some("change") => size(&args[1..]).and_then(|(s, d)| {
            let mut t = ipvs_util::synthetic_table(s, d);
            let vs = t.services.values_mut().nth(s / 2).ok_or("no service")?;
            let dest = vs
                .destinations
                .values_mut()
                .nth(d / 2)
                .ok_or("no destination")?;
            dest.weight = 2;
            sync(&t)
        }),
        Some("restore") => size(&args[1..]).map(|(s, d)| {
            print!(
                "{}",
                ipvs_util::restore_input(&ipvs_util::synthetic_table(s, d))
            )
        }),
        Some("wait") => match args.get(1..4) {
            Some([s, d, ms]) => size(&[s.clone(), d.clone()]).and_then(|(s, d)| {
                let ms: u64 = ms.parse().map_err(|_| format!("poll milliseconds: {ms}"))?;
                wait(&ipvs_util::synthetic_table(s, d), Duration::from_millis(ms))
            }),
            _ => Err("usage: ipvs wait S D POLL_MS".into()),
        },
        Some("wait-dest") => match args.get(1..5) {
            Some([s, d, w, ms]) => (|| {
                let s: SocketAddr = s.parse().map_err(|_| format!("service: {s}"))?;
                let d: SocketAddr = d.parse().map_err(|_| format!("destination: {d}"))?;
                let w: u32 = w.parse().map_err(|_| format!("weight: {w}"))?;
                let ms: u64 = ms.parse().map_err(|_| format!("poll milliseconds: {ms}"))?;
                wait_dest(s, d, w, Duration::from_millis(ms))
            })(),
            _ => Err("usage: ipvs wait-dest SERVICE DEST WEIGHT POLL_MS".into()),
        },
        Some("capture") => NetlinkIpvs::connect()
            .and_then(|mut i| i.raw_table_dump())
            .map(|raw| {
                for chunk in raw.chunks(32) {
                    println!(
                        "{}",
                        chunk.iter().map(|b| format!("{b:02x}")).collect::<String>()
                    );
                }
            })
            .map_err(|e| e.to_string()),
        _ => Err(
            "usage: ipvs apply|change|restore S D | ipvs wait S D POLL_MS | \
             ipvs wait-dest SERVICE DEST WEIGHT POLL_MS | ipvs capture"
                .into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvs: {e}");
            ExitCode::FAILURE
        }
    }
}
