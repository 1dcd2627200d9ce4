//! The `monitor` command line: arguments in, the library does the work.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use common::daemon::{self, Exit, LogArgs, LogEnv, SdNotifier};
use monitor::control::{Request, StatusReport};
use monitor::probe::ProbeArgs;

#[derive(Parser)]
#[command(name = "monitor", version, about = monitor::ABOUT, arg_required_else_help = true)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where a client finds the daemon.
#[derive(clap::Args)]
struct Client {
    /// The configuration file (its `socket` is the daemon's)
    #[arg(long, default_value = monitor::config::DEFAULT_PATH)]
    config: PathBuf,
    /// The control socket (instead of the configuration's)
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventFormat {
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListWhat {
    /// The failing services
    Failures,
}

#[derive(Subcommand)]
enum Command {
    /// Check targets once (or every --every) with any probe kind; one line per result.
    Probe(Box<ProbeArgs>),
    /// Convert mon's mon.cf into monitor.toml (printed, or to --out, never overwritten); warn for what has no equivalent
    Import {
        /// mon's configuration file
        mon_cf: std::path::PathBuf,
        /// Write here instead of standard output (refused if it exists)
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Validate the configuration file (exit 2 with every problem, each at file:line:col)
    Check {
        /// The configuration file
        #[arg(long, default_value = monitor::config::DEFAULT_PATH)]
        config: std::path::PathBuf,
    },
    /// Run the daemon in the foreground: probe every service, alert as mon would
    Run {
        /// The configuration file
        #[arg(long, default_value = monitor::config::DEFAULT_PATH)]
        config: PathBuf,
        /// Write one line per event (state change, alert, suppressed alert, ack, disable, enable) to standard output
        #[arg(long, value_enum, value_name = "FORMAT")]
        events: Option<EventFormat>,
    },
    /// Show every service's state
    Status {
        #[command(flatten)]
        client: Client,
        /// The report as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the failing services, one per line
    List {
        /// What to list
        #[arg(value_enum)]
        what: ListWhat,
        #[command(flatten)]
        client: Client,
    },
    /// Acknowledge a failing service: no more alerts until it recovers
    Ack {
        /// GROUP/SERVICE
        service: String,
        /// Why (given to alerts as MON_ACK)
        comment: String,
        #[command(flatten)]
        client: Client,
    },
    /// Stop alerts for a group or one service (GROUP or GROUP/SERVICE); probing goes on
    Disable {
        target: String,
        #[command(flatten)]
        client: Client,
    },
    /// Alerts again for a group or one service
    Enable {
        target: String,
        #[command(flatten)]
        client: Client,
    },
}

/// How long a client waits for the daemon.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket: `--socket`, else the configuration's, else the default.
fn socket_of(client: &Client) -> PathBuf {
    if let Some(s) = &client.socket {
        return s.clone();
    }
    monitor::config::load(&client.config)
        .map(|c| c.socket)
        .unwrap_or_else(|_| monitor::config::DEFAULT_SOCKET.into())
}

fn call<Rep: serde::de::DeserializeOwned>(client: &Client, req: &Request) -> Result<Rep, Exit> {
    common::control::request_blocking(socket_of(client), req, CLIENT_TIMEOUT).map_err(|e| {
        eprintln!("monitor: {e}");
        e.exit()
    })
}

fn client(command: Command) -> Exit {
    match command {
        Command::Status { client, json } => match call::<StatusReport>(&client, &Request::Status) {
            Ok(r) if json => {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                Exit::Ok
            }
            Ok(r) => {
                print!("{}", monitor::control::status_text(&r));
                Exit::Ok
            }
            Err(code) => code,
        },
        Command::List {
            what: ListWhat::Failures,
            client,
        } => match call::<StatusReport>(&client, &Request::Failures) {
            Ok(r) => {
                print!("{}", monitor::control::failures_text(&r));
                Exit::Ok
            }
            Err(code) => code,
        },
        Command::Ack {
            service,
            comment,
            client,
        } => match call::<serde_json::Value>(&client, &Request::Ack { service, comment }) {
            Ok(_) => Exit::Ok,
            Err(code) => code,
        },
        Command::Disable { target, client } => toggle(&client, Request::Disable { target }),
        Command::Enable { target, client } => toggle(&client, Request::Enable { target }),
        _ => Exit::Usage,
    }
}

fn toggle(client: &Client, req: Request) -> Exit {
    match call::<serde_json::Value>(client, &req) {
        Ok(v) => {
            println!("{} service(s)", v["services"]);
            Exit::Ok
        }
        Err(code) => code,
    }
}

fn run(config_path: &Path, events: Option<EventFormat>) -> Exit {
    let config = match monitor::config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("monitor: {e}");
            }
            return Exit::Usage;
        }
    };
    let runtime = match daemon::runtime("monitor") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let opts = monitor::daemon::Options {
        config_path: config_path.to_path_buf(),
        events_json: events.is_some(),
    };
    runtime.block_on(async move {
        tokio::spawn(monitor::daemon::run(
            config,
            opts,
            Arc::new(common::probe::Prober::new()),
            Arc::new(SdNotifier::from_env()),
        ))
        .await
        .unwrap_or_else(|e| {
            eprintln!("monitor: internal error: {e}");
            Exit::TempFail
        })
    })
}

fn main() -> Exit {
    let cli = Cli::parse();
    if let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process()) {
        eprintln!("monitor: {e}");
        return Exit::Usage;
    }
    if let Command::Run { config, events } = &cli.command {
        return run(config, *events);
    }
    if matches!(
        cli.command,
        Command::Status { .. }
            | Command::List { .. }
            | Command::Ack { .. }
            | Command::Disable { .. }
            | Command::Enable { .. }
    ) {
        return client(cli.command);
    }
    if let Command::Import { mon_cf, out } = &cli.command {
        return import(mon_cf, out.as_deref());
    }
    if let Command::Check { config } = &cli.command {
        return match monitor::config::load(config) {
            Ok(c) => {
                let groups: std::collections::BTreeSet<&str> =
                    c.services.iter().map(|s| s.id.group.as_str()).collect();
                println!(
                    "{}: ok, {} service(s) in {} group(s)",
                    config.display(),
                    c.services.len(),
                    groups.len()
                );
                Exit::Ok
            }
            Err(errors) => {
                for e in errors.errors() {
                    eprintln!("monitor: {e}");
                }
                Exit::Usage
            }
        };
    }
    // One thread: checks are I/O-bound and cheap, and cross-thread wake-ups (futexes) cost more CPU
    // than they save here (tests/bench/probe-keepalived.sh measured it). Nothing in a check blocks.
    let runtime = match daemon::runtime("monitor") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match cli.command {
        // Handled above.
        Command::Check { .. }
        | Command::Import { .. }
        | Command::Run { .. }
        | Command::Status { .. }
        | Command::List { .. }
        | Command::Ack { .. }
        | Command::Disable { .. }
        | Command::Enable { .. } => Exit::Ok,
        // A task rather than block_on's own future: a task woken from inside the runtime (a result
        // for it) is queued there, while block_on's future is woken through the I/O driver's eventfd
        // (a write system call per wake-up: ~600 for 1,000 results, measured with strace).
        Command::Probe(args) => runtime.block_on(async {
            tokio::spawn(monitor::probe::run(
                *args,
                tokio::io::BufReader::new(tokio::io::stdin()),
                // Buffered: `run` flushes whenever no further result is waiting.
                std::io::BufWriter::with_capacity(64 << 10, std::io::stdout()),
                std::io::stderr(),
            ))
            .await
            .unwrap_or_else(|e| {
                // The panic message is already out (the default hook printed it).
                eprintln!("monitor: internal error: {e}");
                Exit::TempFail
            })
        }),
    }
}

fn import(mon_cf: &std::path::Path, out: Option<&std::path::Path>) -> Exit {
    let text = match std::fs::read_to_string(mon_cf) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("monitor: cannot read {}: {e}", mon_cf.display());
            return Exit::Usage;
        }
    };
    let imported = monitor::import::import(&mon_cf.display().to_string(), &text);
    for w in &imported.warnings {
        eprintln!("monitor: warning: {w}");
    }
    match out {
        None => print!("{}", imported.toml),
        Some(path) => {
            use std::io::Write;
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut f| f.write_all(imported.toml.as_bytes()));
            if let Err(e) = written {
                eprintln!(
                    "monitor: cannot write {} (an existing file is never overwritten): {e}",
                    path.display()
                );
                return Exit::Usage;
            }
        }
    }
    Exit::Ok
}

// Checks allocate small, short-lived buffers in bursts (slack starts many together); glibc's
// malloc spends a fifth of the prober's instructions on them (callgrind), mimalloc a fraction.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
