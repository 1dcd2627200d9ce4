//! The `hbeat` command line: arguments in, the library does the work.

use clap::Parser;

#[derive(Parser)]
#[command(name = "hbeat", version, about = hbeat::ABOUT, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}
