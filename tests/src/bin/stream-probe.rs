//! `stream-probe ADDR:PORT`: long-lived TCP connections through a failover. It opens `--count`
//! connections (default 1) to an echo service at ADDR:PORT, one every `--every` ms (default 100),
//! and on each sends a numbered line every `--tick` ms (default 50) and waits for the same line
//! back. A connection is broken when a write fails, the echo is wrong, the peer closes or resets
//! it, or no echo comes within `--stall` ms (default 10,000). It stops on TERM/INT or after
//! `--duration` s (default 60) and prints one line per connection and a summary:
//!
//! `conn=I opened=<epoch> lines=N worst_ms=W alive` or `... broken=<epoch> why=...`
//! `connections=N alive=A broken=B worst_ms=W`
//!
//! `ready=<epoch>` is printed when the first connection is open and echoed once (a caller waits
//! for it before it breaks anything). Epochs are CLOCK_REALTIME seconds with microseconds, the clock
//! of bash's `$EPOCHREALTIME`. One thread per connection: this is a lab tool for a few dozen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    target: SocketAddr,
    count: u32,
    every: Duration,
    tick: Duration,
    stall: Duration,
    duration: Duration,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "stream-probe: {why}\nusage: stream-probe ADDR:PORT [--count N] [--every MS] [--tick MS] [--stall MS] [--duration S]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        target: "0.0.0.0:0".parse().expect("a valid address"),
        count: 1,
        every: Duration::from_millis(100),
        tick: Duration::from_millis(50),
        stall: Duration::from_secs(10),
        duration: Duration::from_secs(60),
    };
    let mut target = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |opt: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{opt} needs a number")))
        };
        match arg.as_str() {
            "--count" => a.count = number("--count").clamp(1, 1000) as u32,
            "--every" => a.every = Duration::from_millis(number("--every")),
            "--tick" => a.tick = Duration::from_millis(number("--tick").max(1)),
            "--stall" => a.stall = Duration::from_millis(number("--stall").max(1)),
            "--duration" => a.duration = Duration::from_secs(number("--duration")),
            t if target.is_none() && !t.starts_with('-') => {
                target = Some(
                    t.parse()
                        .unwrap_or_else(|_| usage(&format!("{t}: not ADDR:PORT"))),
                )
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a.target = target.unwrap_or_else(|| usage("no ADDR:PORT"));
    a
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What became of one connection.
#[derive(Default)]
struct Report {
    opened: f64,
    lines: u64,
    worst: Duration,
    broken: Option<(f64, String)>,
}

/// Streams on one connection until STOP or the end; `ready` is set after the first echo.
fn stream(args: &Args, end: Instant, ready: &AtomicBool) -> Report {
    let mut r = Report {
        opened: epoch(),
        ..Report::default()
    };
    let fail = |r: &mut Report, why: String| r.broken = Some((epoch(), why));
    let conn = match TcpStream::connect_timeout(&args.target, Duration::from_secs(3)) {
        Ok(c) => c,
        Err(e) => {
            fail(&mut r, format!("connect: {e}"));
            return r;
        }
    };
    r.opened = epoch();
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(args.stall));
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(e) => {
            fail(&mut r, format!("clone: {e}"));
            return r;
        }
    };
    let mut reader = BufReader::with_capacity(256, conn);
    let mut line = String::new();
    let mut last = Instant::now();
    while !::tests::stopping() && Instant::now() < end {
        let n = r.lines + 1;
        if let Err(e) = writer.write_all(format!("{n}\n").as_bytes()) {
            fail(&mut r, format!("write of line {n}: {e}"));
            return r;
        }
        line.clear();
        match (&mut reader).take(64).read_line(&mut line) {
            Ok(0) => {
                fail(
                    &mut r,
                    format!("closed by the peer before the echo of line {n}"),
                );
                return r;
            }
            Ok(_) if line.trim_end() == n.to_string() => {}
            Ok(_) => {
                fail(
                    &mut r,
                    format!("line {n} came back as {:?}", line.trim_end()),
                );
                return r;
            }
            Err(e) => {
                fail(&mut r, format!("no echo of line {n}: {e}"));
                return r;
            }
        }
        r.lines = n;
        let now = Instant::now();
        r.worst = r.worst.max(now - last);
        last = now;
        if n == 1 && !ready.swap(true, Ordering::SeqCst) {
            println!("ready={:.6}", epoch());
        }
        std::thread::sleep(args.tick);
    }
    r
}

fn main() {
    let args = Arc::new(parse_args());
    ::tests::stop_on_signals();
    let end = Instant::now() + args.duration;
    let ready = Arc::new(AtomicBool::new(false));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..args.count {
        if ::tests::stopping() {
            break;
        }
        let (a, ready, reports) = (args.clone(), ready.clone(), reports.clone());
        threads.push(std::thread::spawn(move || {
            let r = stream(&a, end, &ready);
            if let Ok(mut v) = reports.lock() {
                v.push((i, r));
            }
        }));
        std::thread::sleep(args.every);
    }
    for t in threads {
        let _ = t.join();
    }
    let mut v = reports
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    v.sort_by_key(|(i, _)| *i);
    let (mut alive, mut broken, mut worst) = (0, 0, Duration::ZERO);
    for (i, r) in &v {
        worst = worst.max(r.worst);
        let end = match &r.broken {
            Some((at, why)) => {
                broken += 1;
                format!("broken={at:.6} why={why}")
            }
            None => {
                alive += 1;
                "alive".to_string()
            }
        };
        println!(
            "conn={i} opened={:.6} lines={} worst_ms={} {end}",
            r.opened,
            r.lines,
            r.worst.as_millis()
        );
    }
    println!(
        "connections={} alive={alive} broken={broken} worst_ms={}",
        v.len(),
        worst.as_millis()
    );
}
