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
}

fn main() -> Exit {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match cli.command {
        Command::Check { config } => hbeat::check::run(&config, &mut out, &mut err),
    }
}
