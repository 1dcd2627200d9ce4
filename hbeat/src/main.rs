//! The `hbeat` command line: arguments in, the library does the work.

use std::path::PathBuf;

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::daemon::{self, Exit, LogArgs, LogEnv, SdNotifier};
use hbeat::daemon::{Request, Status};

#[derive(Parser)]
#[command(name = "hbeat", version, about = hbeat::ABOUT, arg_required_else_help = true)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground: heartbeats on every link, groups started and stopped.
    Run {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Show the running daemon's state, peers, links and groups.
    Status {
        /// The configuration file (for the control socket's path).
        #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH)]
        config: PathBuf,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hand this node's groups to a peer (request, ack, release, the peer acquires).
    Standby {
        /// The configuration file (for the control socket's path).
        #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Ask the peers to hand over every group this node may hold; ends standby.
    Takeover {
        /// The configuration file (for the control socket's path).
        #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate the configuration, every resource's executable and the key file (exit 2 on a problem).
    Check {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print a new key file with one random key (install it on every node, mode 0600).
    Keygen {
        /// The key's id (1-255): pick one not in the current file when rotating.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        id: u8,
    },
}

/// How long a control request may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Exit {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run { .. })
        && let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process())
    {
        eprintln!("hbeat: {e}");
        return Exit::Usage;
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Status { config, json } => match call(&config, &Request::Status) {
            Ok(s) if json => {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                Exit::Ok
            }
            Ok(s) => {
                print!("{}", text(&s));
                Exit::Ok
            }
            Err(code) => code,
        },
        Command::Standby { config } => {
            call(&config, &Request::Standby).map_or_else(|c| c, |_| Exit::Ok)
        }
        Command::Takeover { config } => {
            call(&config, &Request::Takeover).map_or_else(|c| c, |_| Exit::Ok)
        }
        Command::Check { config } => hbeat::check::run(&config, &mut out, &mut err),
        Command::Keygen { id } => match hbeat::keys::random_secret() {
            Ok(secret) => {
                print!("{}", hbeat::keys::keygen(id, &secret));
                Exit::Ok
            }
            Err(e) => {
                eprintln!("hbeat: cannot read /dev/urandom: {e}");
                // Nothing was printed: try again later.
                Exit::TempFail
            }
        },
    }
}

fn run(path: &std::path::Path) -> Exit {
    let config = match hbeat::config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.errors() {
                eprintln!("hbeat: {e}");
            }
            return Exit::Usage;
        }
    };
    let keys = match hbeat::keys::KeyRing::load(&config.key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hbeat: {e}");
            return Exit::Usage;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hbeat: cannot start the async runtime: {e}");
            return Exit::TempFail;
        }
    };
    runtime.block_on(async move {
        let mut signals = match common::daemon::signals() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return Exit::TempFail;
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(s) = signals.recv().await {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        });
        match hbeat::daemon::run(config, keys, Arc::new(SdNotifier::from_env()), rx).await {
            Ok(()) => Exit::Ok,
            Err(e) => {
                tracing::error!(error = %e, "hbeat cannot run");
                Exit::TempFail
            }
        }
    })
}

/// A control request to the node of the configuration at `path`.
fn call(path: &std::path::Path, req: &Request) -> Result<Status, Exit> {
    let socket = hbeat::config::load(path)
        .map(|c| c.socket)
        .map_err(|errors| {
            for e in errors.errors() {
                eprintln!("hbeat: {e}");
            }
            Exit::Usage
        })?;
    common::control::request_blocking(&socket, req, CLIENT_TIMEOUT).map_err(|e| {
        eprintln!("hbeat: {e}");
        e.exit()
    })
}

/// The status as text: one line for me, one per peer, link and group.
fn text(s: &Status) -> String {
    let mut out = format!(
        "{} ({}): {} {}{}, holds: {}\n",
        s.node,
        s.cluster,
        s.state,
        s.pair,
        if s.standby { ", standby" } else { "" },
        if s.held.is_empty() {
            "nothing".to_string()
        } else {
            s.held.join(", ")
        }
    );
    for p in &s.peers {
        out += &format!(
            "peer {}: {} {}, last seen {}, holds: {}{}\n",
            p.name,
            if p.up { "up" } else { "down" },
            p.state,
            p.last_seen_ms
                .map_or("never".to_string(), |m| format!("{m} ms ago")),
            if p.held.is_empty() {
                "nothing".to_string()
            } else {
                p.held.join(", ")
            },
            if p.groups_differ {
                " (its groups differ from mine!)"
            } else {
                ""
            }
        );
    }
    for l in &s.links {
        out += &format!(
            "link {} {}: {}, sent {}, received {}{}\n",
            l.id,
            l.what,
            if l.up { "up" } else { "down" },
            l.sent,
            l.received,
            l.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    for g in &s.groups {
        out += &format!(
            "group {}: {}\n",
            g.name,
            g.holder.as_deref().unwrap_or("nobody")
        );
    }
    if !s.rejected.is_empty() {
        let r: Vec<String> = s.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out += &format!("rejected frames: {}\n", r.join(", "));
    }
    out
}
