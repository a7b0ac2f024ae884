//! Subcommands, one module each.

mod claim;
pub(crate) mod daemon;
mod dynamic;
mod egress_router;
mod generate;
mod plan;
mod plugin;
mod probe;
mod schema;
pub(crate) mod text;
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
    /// Run a plugin now (`run NAME --dry-run`) or list Plugin resources.
    Plugin(plugin::Args),
    /// Run one HealthCheck in the foreground over the path the daemon would
    /// pin it to; print each result, its evidence and phase transitions.
    Probe(probe::Args),
    /// Daemon status (needs a running routerd).
    Status(daemon::StatusArgs),
    /// List resources, statuses (`get status -o yaml` is the --state format), events or the ledger.
    Get(daemon::GetArgs),
    /// Spec, status and recent events of one resource.
    Describe(daemon::DescribeArgs),
    /// Show events; `--follow` waits for new ones.
    Events(daemon::EventsArgs),
    /// Explain a decision: `explain egress <policy>` prints the decision
    /// record, `explain gateway <name>` this node's part in a gateway group,
    /// `explain claim <name>` why an address is captured here or not.
    Explain(daemon::ExplainArgs),
    /// Cordon this node in its gateway groups (maintenance: it steps down).
    Cordon(daemon::CordonArgs),
    /// Uncordon this node in its gateway groups.
    Uncordon(daemon::CordonArgs),
    /// Apply a configuration through the daemon.
    Apply(daemon::ApplyArgs),
    /// Delete a resource from the daemon's configuration.
    Delete(daemon::DeleteArgs),
    /// Print a shell completion script.
    Completions(generate::CompletionsArgs),
    /// Write man pages.
    Man(generate::ManArgs),
    /// The effective configuration offline: `render` it, or `diff` it against startup.
    Dynamic(dynamic::Args),
}

pub fn run(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Plugin(a) => plugin::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Status(a) => daemon::status(a),
        Command::Get(a) => daemon::get(a),
        Command::Describe(a) => daemon::describe(a),
        Command::Events(a) => daemon::events(a),
        Command::Explain(a) => daemon::explain(a),
        Command::Cordon(a) => daemon::cordon(a, true),
        Command::Uncordon(a) => daemon::cordon(a, false),
        Command::Apply(a) => daemon::apply(a),
        Command::Delete(a) => daemon::delete(a),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
        Command::Dynamic(a) => dynamic::run(a),
    }
}
