//! The lab's error type.

use std::io;
use std::time::Duration;

/// Everything that can go wrong while building, driving or observing the lab.
///
/// Each variant names the command or object involved, because a failing lab step is
/// usually diagnosed from a CI log alone, without a chance to rerun it interactively.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A helper command (`ip`, `nft`, `sysctl`, `conntrack`, `kill`) exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, as it was run.
        command: String,
        /// The exit status as text (`exit status: 2`, `signal: 9`).
        status: String,
        /// What the command printed on stderr, trimmed.
        stderr: String,
    },
    /// A command could not be started, or a socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Entering a namespace with `setns(2)` failed.
    #[error("entering network namespace {ns}: {source}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A command's output did not have the expected shape.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// Which output was being parsed.
        what: String,
        /// Why it was rejected.
        detail: String,
    },
    /// A name prefix that could match namespaces the lab does not own.
    #[error("invalid lab prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A bounded wait ran out.
    #[error("{what} did not happen within {waited:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the lab waited.
        waited: Duration,
    },
    /// The sink answered a flow with something other than its greeting.
    #[error("unexpected answer from the traffic sink: {0:?}")]
    Protocol(String),
    /// A helper thread panicked; the lab turns that into an error instead of propagating
    /// the panic into the caller's (possibly async) context.
    #[error("lab helper thread panicked while {0}")]
    ThreadPanicked(String),
    /// Several independent cleanup steps failed; all of them are reported.
    #[error("{} teardown step(s) failed: {}", .0.len(), join_errors(.0))]
    Teardown(Vec<LabError>),
}

fn join_errors(errors: &[LabError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        LabError::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
