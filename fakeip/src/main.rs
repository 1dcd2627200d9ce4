//! The `fakeip` command line: arguments in, the library does the work.

use clap::Parser;

#[derive(Parser)]
#[command(name = "fakeip", version, about = fakeip::ABOUT, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}
