#![allow(unreachable_pub)]
//! routerctl: parse arguments, call the library, map errors to exit codes
//! (docs/cli.md lists them).

mod cmd;
mod exit;
mod input;
mod output;

use clap::Parser;

use crate::exit::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "routerctl",
    version,
    about = "Inspect, validate and plan routerd configuration"
)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

/// The clap definition (completions and man pages are generated from it).
pub fn cli_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cmd::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            let code = err.downcast_ref::<Exit>().map_or(1, |e| e.code);
            eprintln!("routerctl: {err:#}");
            code
        }
    };
    std::process::exit(code);
}
