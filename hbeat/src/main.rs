//! The `hbeat` command line: arguments in, the library does the work.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hbeat", version, about = hbeat::ABOUT, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new key file with one random key (install it on every node, mode 0600).
    Keygen {
        /// The key's id (1-255): pick one not in the current file when rotating.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
        id: u8,
    },
}

fn main() {
    match Cli::parse().command {
        Command::Keygen { id } => match hbeat::keys::random_secret() {
            Ok(secret) => print!("{}", hbeat::keys::keygen(id, &secret)),
            Err(e) => {
                eprintln!("hbeat: cannot read /dev/urandom: {e}");
                // Temporary failure (see common::daemon::Exit): nothing was printed.
                std::process::exit(111);
            }
        },
    }
}
