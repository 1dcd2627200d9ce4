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
        // A task rather than block_on's own future: a task woken from inside the runtime (a result
        // for it) is queued there, while block_on's future is woken through the I/O driver's eventfd
        // (a write system call per wake-up: ~600 for 1,000 results, measured with strace).
        Command::Probe(args) => runtime.block_on(async {
            tokio::spawn(monitor::probe::run(
                args,
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

// Checks allocate small, short-lived buffers in bursts (slack starts many together); glibc's
// malloc spends a fifth of the prober's instructions on them (callgrind), mimalloc a fraction.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
