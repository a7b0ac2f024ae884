//! routerd: parse arguments, run the subcommand, map errors to an exit
//! status. Subcommands live in their own modules.

mod apply;
mod demo;
mod demo_cloudedge;
mod demo_egress;
mod demo_gateway;
mod demo_mobility;
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
    /// L3 overlay, (`demo mobility`) a claimed address captured, fenced and
    /// moved (root).
    Demo(demo::Args),
    /// Write man pages (routerd.1 and one per subcommand) into DIR.
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
struct ManArgs {
    /// Directory to write the pages into.
    #[arg(default_value = ".")]
    dir: std::path::PathBuf,
}

/// Man pages generated from the same clap definition as the parser, as
/// routerctl's are, so they never drift from it.
fn man(a: &ManArgs) -> anyhow::Result<i32> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("create {}", a.dir.display()))?;
    clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &a.dir)
        .with_context(|| format!("write man pages to {}", a.dir.display()))?;
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(args) => apply::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Man(args) => man(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("routerd: {e:#}");
            let code = e.downcast_ref::<apply::Exit>().map_or(1, |x| x.code);
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        super::man(&super::ManArgs {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        for page in [
            "routerd.1",
            "routerd-serve.1",
            "routerd-apply.1",
            "routerd-demo.1",
        ] {
            assert!(dir.path().join(page).exists(), "{page}");
        }
        let serve = std::fs::read_to_string(dir.path().join("routerd-serve.1")).unwrap();
        assert!(serve.contains("socket\\-read\\-group"), "{serve}");
    }
}
