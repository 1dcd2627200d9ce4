//! `failover-probe ADDR:PORT`: what a client sees of a failover. Every `--every` (default 10 ms) it
//! starts one HTTP/1.0 `GET /` to ADDR:PORT on a new non-blocking connection (one thread polls
//! them all: cheap enough for the emulated lab VM, and a request lost in the outage never delays
//! the next one), bounded by `--timeout` (default 300 ms, shorter than TCP's first SYN
//! retransmission, so a request either gets through at once or counts as failed). It
//! stops after `--duration` (default 60 s) or on TERM/INT, waits for the requests in flight, and
//! prints the figures: the longest gap between two successful requests (by the time each one
//! completed), where it was, and whether the last request succeeded (the client is served again).
//!
//! Output, one `key=value` line each: `ready=<epoch>` as soon as the first request succeeded (a
//! caller waits for it before it breaks anything), then at the end `probes=… ok=… failed=…
//! skipped=…`, `longest_gap_ms=… from=<epoch> to=<epoch>`, `last_ok=true|false`. Epochs are
//! CLOCK_REALTIME seconds with microseconds, the clock of bash's `$EPOCHREALTIME`.
//!
//! A success is a `200` status line in the first bytes of the answer. Deliberately not here: keep-alive
//! connections (each request is a new connection, as a client arriving during a failover is).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Socket, Type};

/// Requests in flight at most: beyond this a tick is skipped (and counted), never queued.
const MAX_IN_FLIGHT: usize = 512;
/// The bytes of an answer read at most.
const MAX_ANSWER: usize = 4096;

struct Args {
    target: SocketAddr,
    every: Duration,
    timeout: Duration,
    duration: Duration,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "failover-probe: {why}\nusage: failover-probe ADDR:PORT [--every MS] [--timeout MS] [--duration S]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut target = None;
    let mut every = Duration::from_millis(10);
    let mut timeout = Duration::from_millis(300);
    let mut duration = Duration::from_secs(60);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |opt: &str| -> u64 {
            let v = it
                .next()
                .unwrap_or_else(|| usage(&format!("{opt} needs a value")));
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{opt}: not a whole number: {v}")))
        };
        match a.as_str() {
            "--every" => every = Duration::from_millis(number("--every").max(1)),
            "--timeout" => timeout = Duration::from_millis(number("--timeout").max(1)),
            "--duration" => duration = Duration::from_secs(number("--duration")),
            _ if target.is_none() => {
                target = Some(
                    a.parse()
                        .unwrap_or_else(|_| usage(&format!("not an ADDR:PORT: {a}"))),
                )
            }
            _ => usage(&format!("unexpected argument: {a}")),
        }
    }
    Args {
        target: target.unwrap_or_else(|| usage("ADDR:PORT is missing")),
        every,
        timeout,
        duration,
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether an answer starts like a `200` status line.
fn is_ok(answer: &[u8]) -> bool {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    matches!(words.next(), Some(v) if v.starts_with(b"HTTP/")) && words.next() == Some(b"200")
}

/// One request in flight.
struct Request {
    sock: Socket,
    deadline: Instant,
    /// The request is written (the connection is up); now reading the answer.
    sent: bool,
    answer: Vec<u8>,
}

/// How a step of a request ended.
enum Step {
    Pending,
    Done(bool),
}

impl Request {
    fn start(target: SocketAddr, timeout: Duration) -> Option<Request> {
        let sock = Socket::new(Domain::for_address(target), Type::STREAM, None).ok()?;
        sock.set_nonblocking(true).ok()?;
        match sock.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(_) => return None,
        }
        Some(Request {
            sock,
            deadline: Instant::now() + timeout,
            sent: false,
            answer: Vec::new(),
        })
    }

    /// What to wait for.
    fn events(&self) -> libc::c_short {
        if self.sent {
            libc::POLLIN
        } else {
            libc::POLLOUT
        }
    }

    /// Advances after poll said the socket is ready (or failed).
    fn step(&mut self) -> Step {
        if !self.sent {
            if !matches!(self.sock.take_error(), Ok(None)) {
                return Step::Done(false);
            }
            // 30 bytes on a fresh connection: one write, never partial.
            match self.sock.write(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n") {
                Ok(_) => self.sent = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Step::Done(false),
            }
            return Step::Pending;
        }
        let mut buf = [0u8; 1024];
        match self.sock.read(&mut buf) {
            Ok(0) => Step::Done(is_ok(&self.answer)),
            Ok(n) => {
                self.answer.extend_from_slice(&buf[..n]);
                if self.answer.contains(&b'\n') || self.answer.len() >= MAX_ANSWER {
                    Step::Done(is_ok(&self.answer))
                } else {
                    Step::Pending
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Step::Pending,
            Err(_) => Step::Done(false),
        }
    }
}

/// One request to the end (for the tests): connect, send, read, all within `timeout`.
#[cfg(test)]
fn request(target: SocketAddr, timeout: Duration) -> bool {
    let Some(mut r) = Request::start(target, timeout) else {
        return false;
    };
    loop {
        let left = r.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [libc::pollfd {
            fd: r.sock.as_raw_fd(),
            events: r.events(),
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, millis(left)) };
        if fds[0].revents != 0
            && let Step::Done(good) = r.step()
        {
            return good;
        }
    }
}

fn millis(d: Duration) -> libc::c_int {
    libc::c_int::try_from(d.as_millis().max(1)).unwrap_or(libc::c_int::MAX)
}

/// The longest gap between consecutive times (any order), as (from, to); `None` for fewer than two.
fn longest_gap(times: &[f64]) -> Option<(f64, f64)> {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t.windows(2)
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
}

fn main() {
    let args = parse_args();
    ::tests::stop_on_signals();
    let start = Instant::now();
    let mut next = start;
    let (mut probes, mut skipped, mut ok, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let mut done: Vec<f64> = Vec::new();
    let mut last: Option<(f64, bool)> = None;
    let mut ready = false;
    let mut record = |good: bool, done: &mut Vec<f64>| {
        let t = epoch();
        if good {
            ok += 1;
            done.push(t);
            if !ready {
                ready = true;
                println!("ready={t:.6}");
                let _ = std::io::stdout().flush();
            }
        } else {
            failed += 1;
        }
        last = Some((t, good));
    };
    let mut flight: Vec<Request> = Vec::new();
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if !stopping && (::tests::stopping() || start.elapsed() >= args.duration) {
            stopping = true;
        }
        if stopping && flight.is_empty() {
            break;
        }
        if !stopping && now >= next {
            if flight.len() >= MAX_IN_FLIGHT {
                skipped += 1;
            } else {
                probes += 1;
                match Request::start(args.target, args.timeout) {
                    Some(r) => flight.push(r),
                    None => record(false, &mut done),
                }
            }
            // Absolute ticks: a late wake-up shortens the next wait instead of shifting every
            // later tick; ticks missed entirely are skipped (and counted).
            next += args.every;
            while next < now {
                next += args.every;
                skipped += 1;
            }
        }
        // Requests past their deadline fail.
        let now = Instant::now();
        flight.retain(|r| {
            let alive = r.deadline > now;
            if !alive {
                record(false, &mut done);
            }
            alive
        });
        let mut wait = next.saturating_duration_since(now);
        for r in &flight {
            wait = wait.min(r.deadline.saturating_duration_since(now));
        }
        if stopping {
            wait = wait.min(Duration::from_millis(10));
        }
        let mut fds: Vec<libc::pollfd> = flight
            .iter()
            .map(|r| libc::pollfd {
                fd: r.sock.as_raw_fd(),
                events: r.events(),
                revents: 0,
            })
            .collect();
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
        // SAFETY: fds is a valid array of nfds pollfds; a signal ends the wait early (EINTR).
        unsafe { libc::poll(fds.as_mut_ptr(), nfds, millis(wait)) };
        let mut i = 0;
        flight.retain_mut(|r| {
            let revents = fds[i].revents;
            i += 1;
            if revents == 0 {
                return true;
            }
            match r.step() {
                Step::Pending => true,
                Step::Done(good) => {
                    record(good, &mut done);
                    false
                }
            }
        });
    }
    println!("probes={probes} ok={ok} failed={failed} skipped={skipped}");
    match longest_gap(&done) {
        Some((from, to)) => println!(
            "longest_gap_ms={:.1} from={from:.6} to={to:.6}",
            (to - from) * 1000.0
        ),
        None => println!("longest_gap_ms=none (fewer than two successful requests)"),
    }
    println!("last_ok={}", last.is_some_and(|(_, good)| good));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_is_found_in_any_order() {
        assert_eq!(longest_gap(&[]), None);
        assert_eq!(longest_gap(&[1.0]), None);
        assert_eq!(
            longest_gap(&[1.0, 1.01, 1.5, 1.02, 1.51]),
            Some((1.02, 1.5))
        );
    }

    #[test]
    fn only_a_200_status_line_counts() {
        assert!(is_ok(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"));
        assert!(is_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(!is_ok(b"HTTP/1.0 404 Not Found\r\n"));
        assert!(!is_ok(b"HTTP/1.0 2000\r\n"));
        assert!(!is_ok(b""));
        assert!(!is_ok(b"SSH-2.0-OpenSSH 200\r\n"));
    }

    #[test]
    fn a_real_server_on_loopback_is_ok_and_a_closed_port_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.0 200 OK\r\n\r\nr1\n").unwrap();
        });
        assert!(request(addr, Duration::from_secs(5)));
        server.join().unwrap();
        // The listener is gone: the port refuses.
        assert!(!request(addr, Duration::from_secs(5)));
    }
}
