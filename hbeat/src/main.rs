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
    /// The daemon's control socket (`status`, `standby`, `takeover`, `reload`), instead of the
    /// configuration's.
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
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
        Command::Status { json } => match call(&cli, &Request::Status) {
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
        Command::Standby => call(&cli, &Request::Standby).map_or_else(|c| c, |_| Exit::Ok),
        Command::Takeover => call(&cli, &Request::Takeover).map_or_else(|c| c, |_| Exit::Ok),
        Command::Reload => call(&cli, &Request::Reload).map_or_else(|c| c, |_| Exit::Ok),
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

/// A control request to the daemon (see [`socket`]).
fn call(cli: &Cli, req: &Request) -> Result<Status, Exit> {
    let socket = socket(cli, matches!(req, Request::Reload))?;
    common::control::request_blocking(&socket, req, CLIENT_TIMEOUT).map_err(|e| {
        eprintln!("hbeat: {e}");
        e.exit()
    })
}

/// The daemon's control socket: `--socket`, else the configuration's. A configuration that does
/// not load is reported (file:line:col); a reload stops there (the daemon would refuse it), while
/// the other requests, which must reach a daemon whose file is being edited, still look for its
/// socket: the file's `socket` or `node` read leniently, else the only socket in /run/hbeat.
fn socket(cli: &Cli, strict: bool) -> Result<PathBuf, Exit> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let errors = match hbeat::config::load(&cli.config) {
        Ok(c) => return Ok(c.socket),
        Err(errors) => errors,
    };
    for e in errors.errors() {
        eprintln!("hbeat: {e}");
    }
    if strict {
        return Err(Exit::Usage);
    }
    let found = std::fs::read_to_string(&cli.config)
        .ok()
        .and_then(|t| hbeat::config::socket_hint(&t))
        .or_else(|| only_socket(std::path::Path::new(hbeat::config::DEFAULT_SOCKET_DIR)));
    match found {
        Some(s) => {
            eprintln!(
                "hbeat: the configuration does not load: asking the daemon at {}",
                s.display()
            );
            Ok(s)
        }
        None => {
            eprintln!("hbeat: the configuration does not load and names no socket: pass --socket");
            Err(Exit::Usage)
        }
    }
}

/// The one `*.sock` in `dir`, if there is exactly one.
fn only_socket(dir: &std::path::Path) -> Option<PathBuf> {
    let mut socks = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"));
    let first = socks.next()?;
    socks.next().is_none().then_some(first)
}
