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
    /// The configuration file (`status`, `standby` and `takeover` find the control socket in it).
    #[arg(long, value_name = "FILE", default_value = hbeat::config::DEFAULT_PATH, global = true)]
    config: PathBuf,
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground: heartbeats on every link, groups started and stopped.
    Run,
    /// Show the running daemon's state, peers, links and groups.
    Status {
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hand this node's groups to a peer (request, ack, release, the peer acquires).
    Standby,
    /// Ask the peers to hand over every group this node may hold; ends standby.
    Takeover,
    /// Make the daemon read its configuration and key file again (as SIGHUP does): all or
    /// nothing; the errors are printed and the daemon keeps its old settings (exit 1).
    Reload,
    /// Validate the configuration, every resource's executable and the key file (exit 2 on a problem).
    Check,
    /// Print a new key file with one random key (install it on every node, mode 0600).
    Keygen {
        /// The key's id (1-255): pick one not in the current file when rotating.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        id: u8,
    },
    /// Convert heartbeat v1's ha.cf, haresources and authkeys into hbeat.toml (printed, or to
    /// --out) and a key file (--key-out); warn for what has no equivalent.
    Import(hbeat::import::Args),
}

/// How long a control request may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Exit {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run)
        && let Err(e) = daemon::log::init(&cli.log, &LogEnv::from_process())
    {
        eprintln!("hbeat: {e}");
        return Exit::Usage;
    }
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Command::Run => run(&cli.config),
        Command::Status { json } => match call(&cli.config, &Request::Status) {
            Ok(s) if json => {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                Exit::Ok
            }
            Ok(s) => {
                print!("{}", hbeat::daemon::text(&s));
                Exit::Ok
            }
            Err(code) => code,
        },
        Command::Standby => call(&cli.config, &Request::Standby).map_or_else(|c| c, |_| Exit::Ok),
        Command::Takeover => call(&cli.config, &Request::Takeover).map_or_else(|c| c, |_| Exit::Ok),
        Command::Reload => call(&cli.config, &Request::Reload).map_or_else(|c| c, |_| Exit::Ok),
        Command::Check => hbeat::check::run(&cli.config, &mut out, &mut err),
        Command::Import(args) => hbeat::import::run(&args, &mut out, &mut err),
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
    let runtime = match common::daemon::runtime("hbeat") {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        match common::daemon::signals() {
            Ok(s) => s.forward(tx, |e| e),
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return Exit::TempFail;
            }
        }
        match hbeat::daemon::run(
            config,
            path.to_path_buf(),
            keys,
            Arc::new(SdNotifier::from_env()),
            rx,
        )
        .await
        {
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
