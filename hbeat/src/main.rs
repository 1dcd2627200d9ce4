//! The `hbeat` command line: arguments in, the library does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::daemon::Exit;

#[derive(Parser)]
#[command(name = "hbeat", version, about = hbeat::ABOUT, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> Exit {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match Cli::parse().command {
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
