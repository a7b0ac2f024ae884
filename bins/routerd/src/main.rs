//! routerd: parse arguments, run the subcommand, map errors to an exit
//! status. Subcommands live in their own modules.

mod apply;
mod demo;
mod demo_cloudedge;
mod demo_egress;
mod demo_gateway;
mod gwlab;
mod memory;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "routerd",
    version,
    about = "Declarative egress routing for Linux"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render, diff and apply a configuration against the kernel.
    Apply(apply::Args),
    /// Run the daemon.
    Serve(serve::Args),
    /// Build a namespace lab, run the daemon in it and show a failover, or
    /// (`demo egress-router`) an egress router's redirects, (`demo gateway`)
    /// an egress gateway group's failover, (`demo cloudedge`) the CloudEdge
    /// L3 overlay (root).
    Demo(demo::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(args) => apply::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("routerd: {e:#}");
            std::process::exit(1);
        }
    }
}
