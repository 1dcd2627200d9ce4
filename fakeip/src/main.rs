//! The `fakeip` command line: arguments in, the library does the work, results out (stdout for
//! answers, stderr for logs and errors), exit codes from `common::daemon::Exit`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::config::Duration as Dur;
use common::daemon::{self, Exit, LogArgs, LogEnv, SdNotifier};
use common::net::{Change, Interfaces, NetError, PacketGarp, Rtnetlink, SystemInterfaces};
use fakeip::hold::{HoldOptions, hold};
use fakeip::ops::{self, ProbeOptions, UpOptions};
use fakeip::target::{self, Accept, Target};
use fakeip::{Burst, Deps, Error};

const AFTER_HELP: &str = "\
Addresses are written as `ip addr` does: ADDR/PREFIX dev IFACE, e.g. `192.0.2.100/24 dev eth0`.

From the classic tools:
  fake 192.0.2.100               ->  fakeip hold 192.0.2.100/24 dev eth0 --refresh 2s
  fake remove 192.0.2.100        ->  fakeip down 192.0.2.100 dev eth0  (or TERM the hold)
  IPaddr2 ip=... start           ->  fakeip up 192.0.2.100/24 dev eth0 [--label vip]
  IPaddr2 stop / monitor         ->  fakeip down ... / fakeip status ...
  send_arp -i 200 -r 5 eth0 VIP  ->  fakeip announce 192.0.2.100 dev eth0

Each IPv4 announcement is a gratuitous ARP request and a gratuitous ARP reply (sender IP = target
IP = the address, sender MAC = the interface's, to broadcast), like heartbeat's send_arp; IPv6
sends an unsolicited Neighbor Advertisement with the Override flag to all nodes (ff02::1).
Default: 5 announcements 200 ms apart (IPaddr2's arp_count and arp_interval).

Needs CAP_NET_ADMIN and CAP_NET_RAW (root), except `status`.
Exit codes: 0 ok (status: held); 1 probe: address in use; 2 usage error, unknown interface;
3 status: not held; 111 temporary failure (interface down, kernel refused); 125 missing privileges.";

#[derive(Parser)]
#[command(name = "fakeip", version, about = fakeip::ABOUT, after_help = AFTER_HELP,
          arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Take an address: add it to the interface (already there: say so, still announce) and
    /// announce it. IPaddr2 `start`.
    #[command(after_help = "Example: fakeip up 192.0.2.100/24 dev eth0 --label vip")]
    #[command(
        override_usage = "fakeip up ADDR/PREFIX dev IFACE [--label L] [--count N] [--interval D] [--check-conflict [--force]]"
    )]
    Up {
        /// ADDR/PREFIX dev IFACE
        #[arg(value_name = "ADDR/PREFIX dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
        /// IPv4 label, `eth0:vip` or just `vip` (shown by `ip addr` and ifconfig as an alias).
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        #[command(flatten)]
        burst: BurstArgs,
        /// First probe the address (RFC 5227 ARP probe, IPv4) and refuse it when someone
        /// answers (exit 1).
        #[arg(long)]
        check_conflict: bool,
        /// With --check-conflict: take the address even when it is in use.
        #[arg(long, requires = "check_conflict")]
        force: bool,
    },
    /// Release an address: remove it from the interface. Absent is not an error. IPaddr2 `stop`,
    /// `fake remove`.
    #[command(override_usage = "fakeip down ADDR[/PREFIX] dev IFACE")]
    Down {
        /// ADDR[/PREFIX] dev IFACE (the prefix length found on the interface is used)
        #[arg(value_name = "ADDR dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
    },
    /// Is the address on the interface? Exit 0 yes, 3 no (LSB), 2 usage error. IPaddr2
    /// `monitor`.
    #[command(override_usage = "fakeip status ADDR dev IFACE [--json]")]
    Status {
        /// ADDR dev IFACE
        #[arg(value_name = "ADDR dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Take one or more addresses and keep them until told to stop (the form hbeat and systemd
    /// supervise): add, announce, READY to systemd once the first burst is out; SIGHUP
    /// re-announces, SIGTERM/SIGINT remove the addresses and exit 0. Like `fake`.
    #[command(
        after_help = "Example: fakeip hold 192.0.2.100/24 2001:db8::100/64 dev eth0 --refresh 10s"
    )]
    #[command(
        override_usage = "fakeip hold ADDR/PREFIX... dev IFACE [--label L] [--count N] [--interval D] [--refresh D]"
    )]
    Hold {
        /// ADDR/PREFIX... dev IFACE
        #[arg(value_name = "ADDR/PREFIX... dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
        /// IPv4 label for the IPv4 addresses, `eth0:vip` or just `vip`.
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        #[command(flatten)]
        burst: BurstArgs,
        /// Also re-announce every D (e.g. `10s`), as `fake` does forever; default: only at
        /// start and on SIGHUP.
        #[arg(long, value_name = "D")]
        refresh: Option<Dur>,
    },
    /// Is someone using this IPv4 address? RFC 5227 ARP probes (sender IP 0.0.0.0), so no
    /// neighbour cache learns anything. Exit 0 free, 1 in use (the holder's MAC is printed).
    #[command(override_usage = "fakeip probe ADDR dev IFACE [--timeout D] [--probes N]")]
    Probe {
        /// ADDR dev IFACE
        #[arg(value_name = "ADDR dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
        /// How long to listen for an answer in all.
        #[arg(long, value_name = "D", default_value = "1s")]
        timeout: Dur,
        /// Probes to send, spread over the timeout (RFC 5227 PROBE_NUM).
        #[arg(long, value_name = "N", default_value_t = 3,
              value_parser = clap::value_parser!(u32).range(1..=100))]
        probes: u32,
    },
    /// Only announce an address (gratuitous ARP / unsolicited NA); the interface's addresses
    /// are not touched. heartbeat's send_arp.
    #[command(override_usage = "fakeip announce ADDR dev IFACE [--count N] [--interval D]")]
    Announce {
        /// ADDR dev IFACE
        #[arg(value_name = "ADDR dev IFACE", num_args = 1.., required = true)]
        target: Vec<String>,
        #[command(flatten)]
        burst: BurstArgs,
    },
}

#[derive(Args)]
struct BurstArgs {
    /// Announcements to send (each IPv4 one: an ARP request and an ARP reply).
    #[arg(long, value_name = "N", default_value_t = fakeip::DEFAULT_COUNT,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    count: u32,
    /// Time between announcements, e.g. `200ms`, `1s`.
    #[arg(long, value_name = "D", default_value = "200ms")]
    interval: Dur,
}

impl BurstArgs {
    fn burst(&self) -> Burst {
        Burst {
            count: self.count,
            interval: self.interval.as_std(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process()) {
        eprintln!("fakeip: {e}");
        return Exit::Usage.into();
    }
    match run(cli.cmd) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("fakeip: {e}");
            e.exit().into()
        }
    }
}

fn parse(words: &[String], many: bool, prefix: bool) -> Result<Target, Error> {
    target::parse(words, Accept { many, prefix })
}

/// hbeat's `armed:` resources (`hbeat::resource::ARMED`): with `HBEAT_ARMED=1` in the
/// environment, `hold` prepares and waits; one byte on standard input is the go, end of file (hbeat
/// gave up on this process, or died) means "not needed".
fn armed_go() -> Option<impl std::future::Future<Output = bool>> {
    if std::env::var_os("HBEAT_ARMED").is_none_or(|v| v != "1") {
        return None;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain blocking read on its own thread: the runtime needs no I/O driver for one byte.
    // After the go the pipe stays open as long as hbeat runs: its end (hbeat died, and its peer
    // takes the group over) stops the hold like TERM, so the addresses go with hbeat.
    std::thread::spawn(move || {
        use std::io::Read;
        let mut b = [0u8; 1];
        let go = matches!(std::io::stdin().read(&mut b), Ok(1));
        let _ = tx.send(go);
        if go {
            while matches!(std::io::stdin().read(&mut b), Ok(n) if n > 0) {}
            tracing::warn!("hbeat's pipe closed (hbeat ended): releasing as on TERM");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
        }
    });
    Some(async move { rx.await.unwrap_or(false) })
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Error::Start(format!("tokio runtime: {e}")))
}

fn run(cmd: Cmd) -> Result<Exit, Error> {
    let interfaces = SystemInterfaces;
    let addresses = Rtnetlink::default();
    match cmd {
        Cmd::Status { target, json } => {
            let t = parse(&target, false, false)?;
            let spec = t.specs[0];
            let found = ops::status(&interfaces, &addresses, &t.iface, spec)?;
            if json {
                let v = serde_json::json!({
                    "address": spec.addr.to_string(),
                    "interface": t.iface,
                    "held": found.is_some(),
                    "prefix_len": found.as_ref().map(|a| a.prefix_len),
                    "label": found.as_ref().and_then(|a| a.label.clone()),
                });
                println!("{v}");
            } else {
                match &found {
                    Some(a) => println!("{a} is on {}", t.iface),
                    None => println!("{} is not on {}", spec.addr, t.iface),
                }
            }
            Ok(if found.is_some() {
                Exit::Ok
            } else {
                Exit::NotRunning
            })
        }
        Cmd::Down { target } => {
            let t = parse(&target, false, false)?;
            match ops::down(&interfaces, &addresses, &t.iface, t.specs[0])? {
                Some(a) => println!("{a} removed from {}", t.iface),
                None => println!("{} was not on {}", t.specs[0].addr, t.iface),
            }
            Ok(Exit::Ok)
        }
        Cmd::Up {
            target,
            label,
            burst,
            check_conflict,
            force,
        } => {
            let t = parse(&target, false, true)?;
            let label = label
                .map(|l| target::label(&t.iface, &l, &t.specs))
                .transpose()?;
            // Opened first: without CAP_NET_RAW nothing is changed.
            let garp = PacketGarp::open()?;
            let deps = Deps {
                interfaces: &interfaces,
                addresses: &addresses,
                garp: &garp,
            };
            let opts = UpOptions {
                label,
                burst: burst.burst(),
                check_conflict: check_conflict.then(ProbeOptions::default),
                force,
            };
            let report = runtime()?.block_on(ops::up(deps, &t.iface, t.specs[0], &opts))?;
            let what = match report.change {
                Change::Done => format!("{} added to {}", t.specs[0], t.iface),
                Change::Unchanged => format!("{} already on {}", t.specs[0], t.iface),
            };
            let forced = report
                .forced_over
                .map(|m| format!(" (forced: it was in use by {m})"))
                .unwrap_or_default();
            println!("{what}{forced}, announced {} times", report.announced);
            Ok(Exit::Ok)
        }
        Cmd::Hold {
            target,
            label,
            burst,
            refresh,
        } => {
            // First: a SIGHUP (hbeat re-announcing) or TERM that comes while the rest starts up
            // is then queued, not fatal.
            let mut signals = daemon::signals().map_err(|e| Error::Start(e.to_string()))?;
            let t = parse(&target, true, true)?;
            if std::env::var_os("HBEAT_CLEANUP").is_some_and(|v| v == "1") {
                // hbeat releasing a group whose `fakeip hold` died without removing its
                // addresses (SIGKILL, a crash): remove them, announce nothing.
                let iface = match interfaces.interface(&t.iface) {
                    Ok(i) => i,
                    // Gone with its interface: nothing is left to remove.
                    Err(NetError::NoSuchInterface { .. }) => return Ok(Exit::Ok),
                    Err(e) => return Err(e.into()),
                };
                fakeip::hold::release(&addresses, &iface, &t.specs)?;
                return Ok(Exit::Ok);
            }
            // The label applies to the IPv4 addresses of the group.
            let v4: Vec<_> = t
                .specs
                .iter()
                .copied()
                .filter(|s| s.addr.is_ipv4())
                .collect();
            if label.is_some() && v4.is_empty() {
                return Err(Error::Usage(
                    "--label: no IPv4 address given, and IPv6 addresses have no labels".into(),
                ));
            }
            let label = label
                .map(|l| target::label(&t.iface, &l, &v4))
                .transpose()?;
            if refresh.is_some_and(|r| r.as_std() < Duration::from_millis(100)) {
                return Err(Error::Usage("--refresh must be at least 100ms".into()));
            }
            let garp = PacketGarp::open()?;
            let deps = Deps {
                interfaces: &interfaces,
                addresses: &addresses,
                garp: &garp,
            };
            let notifier = SdNotifier::from_env();
            let opts = HoldOptions {
                label,
                burst: burst.burst(),
                refresh: refresh.map(|r| r.as_std()),
            };
            let go = armed_go();
            runtime()?.block_on(hold(
                deps,
                &t.iface,
                &t.specs,
                &opts,
                &notifier,
                &mut signals,
                go,
            ))?;
            Ok(Exit::Ok)
        }
        Cmd::Probe {
            target,
            timeout,
            probes,
        } => {
            let t = parse(&target, false, false)?;
            let garp = PacketGarp::open()?;
            let deps = Deps {
                interfaces: &interfaces,
                addresses: &addresses,
                garp: &garp,
            };
            let opts = ProbeOptions {
                probes,
                wait: timeout.as_std(),
            };
            match ops::probe(deps, &t.iface, t.specs[0], opts)? {
                Some(mac) => {
                    println!("{} is in use by {mac}", t.specs[0].addr);
                    Ok(Exit::Negative)
                }
                None => {
                    println!("{} is free on {}", t.specs[0].addr, t.iface);
                    Ok(Exit::Ok)
                }
            }
        }
        Cmd::Announce { target, burst } => {
            let t = parse(&target, false, false)?;
            let garp = PacketGarp::open()?;
            let deps = Deps {
                interfaces: &interfaces,
                addresses: &addresses,
                garp: &garp,
            };
            let n = runtime()?.block_on(ops::announce(deps, &t.iface, &t.specs, burst.burst()))?;
            println!("{} announced {n} times on {}", t.specs[0].addr, t.iface);
            Ok(Exit::Ok)
        }
    }
}
