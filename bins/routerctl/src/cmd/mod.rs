//! Subcommands, one module each.

mod plan;
mod schema;
mod validate;

use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check configuration files without a daemon; exit 65 when invalid.
    Validate(validate::Args),
    /// Show what routerd would do (offline; never touches the host).
    Plan(plan::Args),
    /// Print the JSON Schema of every kind, or of one.
    Schema(schema::Args),
}

pub fn run(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Schema(a) => schema::run(a),
    }
}
