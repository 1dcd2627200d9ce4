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
    Probe(ProbeArgs),
}

fn main() -> Exit {
    let cli = Cli::parse();
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
        Command::Probe(args) => runtime.block_on(monitor::probe::run(
            args,
            tokio::io::BufReader::new(tokio::io::stdin()),
            // Buffered: `run` flushes whenever no further result is waiting.
            std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock()),
            std::io::stderr(),
        )),
    }
}
