//! The `ldir` command line: arguments in, the library does the work.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use common::daemon::{self, Exit, LogArgs, LogEnv, SdNotifier};
use ldir::cli::{self, Request, SyncTarget};
use ldir::status::Report;

#[derive(Parser)]
#[command(name = "ldir", version, about = ldir::ABOUT, arg_required_else_help = true)]
struct Cli {
    /// The directory with ldir.toml and one *.toml file per virtual service.
    #[arg(long, value_name = "DIR", default_value = ldir::config::DEFAULT_DIR, global = true)]
    config_dir: PathBuf,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the director in the foreground: program the table, check the reals, follow the files.
    Run {
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate the files; exit 2 with every error.
    Check,
    /// Program the table once from the files, every real at its weight, no checks.
    Apply,
    /// Show the running daemon's virtuals and reals.
    Status {
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hold a real at weight 0 until undrained (REAL: IP or IP:PORT).
    Drain {
        /// The real.
        real: String,
        /// Only in this virtual (its name or address).
        #[arg(long = "virtual", value_name = "V")]
        virtual_name: Option<String>,
    },
    /// Give a drained real its weight back.
    Undrain {
        /// The real.
        real: String,
        /// Only in this virtual (its name or address).
        #[arg(long = "virtual", value_name = "V")]
        virtual_name: Option<String>,
    },
    /// Ask the running daemon to reload its files.
    Reload,
    /// Convert an ldirectord.cf into ldir's files (to DIR, or printed); warn for what has no equivalent.
    Import {
        /// The ldirectord configuration.
        file: PathBuf,
        /// Write the files into this directory (created if missing; existing files are not replaced).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Switch the kernel's connection sync daemons (settings from ldir.toml's [sync]): master runs
    /// the backup and master daemons, backup the backup daemon only, stop none; status lists them
    /// and exits 0 while a master runs, 3 when none does.
    Sync {
        /// master, backup, stop or status.
        role: SyncRole,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncRole {
    Master,
    Backup,
    Stop,
    Status,
}

fn main() -> Exit {
    let cli = Cli::parse();
    if let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process()) {
        eprintln!("ldir: {e}");
        return Exit::Usage;
    }
    let dir = cli.config_dir;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Command::Check => cli::check(&dir, &mut out, &mut err),
        Command::Import { file, out: to } => {
            ldir::import::run_import(&file, to.as_deref(), &mut out, &mut err)
        }
        Command::Apply => cli::apply(&dir, &mut out, &mut err),
        Command::Sync { role } => {
            let target = match role {
                SyncRole::Master => SyncTarget::Master,
                SyncRole::Backup => SyncTarget::Backup,
                SyncRole::Stop => SyncTarget::Stop,
                SyncRole::Status => return cli::sync_status(&mut out, &mut err),
            };
            let sysctl_dir = std::path::Path::new(ldir::daemon::SYSCTL_DIR);
            cli::sync(&dir, target, sysctl_dir, &mut out, &mut err)
        }
        Command::Status { json } => {
            let socket = cli::socket_path(&dir);
            match cli::call::<Report>(&socket, &Request::Status, &mut err) {
                Ok(r) if json => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    Exit::Ok
                }
                Ok(r) => {
                    print!("{}", ldir::status::text(&r));
                    Exit::Ok
                }
                Err(code) => code,
            }
        }
        Command::Drain { real, virtual_name } => {
            drain(&dir, Request::Drain { real, virtual_name }, &mut err)
        }
        Command::Undrain { real, virtual_name } => {
            drain(&dir, Request::Undrain { real, virtual_name }, &mut err)
        }
        Command::Reload => match cli::call::<serde_json::Value>(
            &cli::socket_path(&dir),
            &Request::Reload,
            &mut err,
        ) {
            Ok(_) => Exit::Ok,
            Err(code) => code,
        },
        Command::Run { metrics } => {
            // Watching first: no change slips between the read and the watch.
            let watcher = ldir::watch::Watcher::start(&dir);
            let mut cache = ldir::config::Cache::default();
            let config = match cli::load_cached(&dir, &mut cache, &mut err) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // One thread: checks are I/O-bound; the kernel calls run on the blocking pool.
            let runtime = match daemon::runtime("ldir") {
                Ok(r) => r,
                Err(code) => return code,
            };
            runtime.block_on(async move {
                tokio::spawn(cli::run(
                    config,
                    cache,
                    watcher,
                    metrics,
                    Arc::new(SdNotifier::from_env()),
                ))
                .await
                .unwrap_or_else(|e| {
                    eprintln!("ldir: internal error: {e}");
                    Exit::TempFail
                })
            })
        }
    }
}

fn drain(dir: &std::path::Path, req: Request, err: &mut dyn std::io::Write) -> Exit {
    let (Request::Drain { real, .. } | Request::Undrain { real, .. }) = &req else {
        return Exit::Usage;
    };
    if let Err(e) = cli::parse_real(real) {
        eprintln!("ldir: {e}");
        return Exit::Usage;
    }
    match cli::call::<serde_json::Value>(&cli::socket_path(dir), &req, err) {
        Ok(v) => {
            println!("{} real(s)", v["reals"]);
            Exit::Ok
        }
        Err(code) => code,
    }
}

// The same allocator as monitor: checks allocate small short-lived buffers in bursts, where
// glibc's malloc cost monitor a fifth of its instructions (callgrind).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
