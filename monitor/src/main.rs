//! The `monitor` command line: arguments in, the library does the work.

use clap::Parser;

#[derive(Parser)]
#[command(name = "monitor", version, about = monitor::ABOUT, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}
