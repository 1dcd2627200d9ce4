//! The `monitor` command line: arguments in, the library does the work.

use clap::{Parser, Subcommand};
use common::daemon::Exit;
use monitor::probe::ProbeArgs;

#[derive(Parser)]
#[command(name = "monitor", version, about = monitor::ABOUT, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> Exit {
    let cli = Cli::parse();
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("monitor: cannot start the async runtime: {e}");
            return Exit::TempFail;
        }
    };
    match cli.command {
        // Handled above: no runtime needed.
        Command::Check { .. } | Command::Import { .. } => Exit::Ok,
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
