//! routerd's plugin protocol (`plugin.routerd.net/v1alpha1`).
//!
//! Plugins are trusted to run but not to be right. This crate is the wall
//! between a plugin's stdout and the effective configuration: everything a
//! plugin says is decoded strictly, validated like operator input and turned
//! into an expiring `DynamicConfigPart` candidate, or rejected with a reason
//! an operator can act on. Action plans are carried for display and are never
//! executed here.
//!
//! The pure half (request building, context redaction, result decoding,
//! result-to-part conversion, merge pre-checks, per-source state, triggers)
//! has no I/O and takes the time as an input, so the daemon, `routerctl` and
//! tests share exactly one implementation. The process runner and the trigger
//! scheduler need tokio and sit behind the `runner` feature.
//!
//! The normative protocol is `docs/plugin-protocol.md`.

#![deny(missing_docs)]

pub mod check;
pub mod context;
pub mod decode;
pub mod env;
pub mod events;
pub mod part;
pub mod request;
pub mod source;
pub mod triggers;

#[cfg(feature = "runner")]
pub mod gate;
#[cfg(feature = "runner")]
pub mod groups;
#[cfg(feature = "runner")]
pub mod invoke;
#[cfg(feature = "runner")]
pub mod runner;
#[cfg(feature = "runner")]
pub mod scheduler;

pub use check::{CheckError, CheckErrors, check_against_startup, override_policies};
pub use decode::{DecodeError, ResultDocument, decode_result};
pub use part::{CandidatePart, PartError, PartInput, PartRules, part_from_result};
pub use request::{build_request, encode_request, startup_config_hash};
pub use source::SourceState;
pub use triggers::{TriggerError, TriggerPlan};

/// The protocol's API group and version; requests and results carry it.
pub const API_VERSION: &str = routerd_model::id::PLUGIN_API;
/// `kind` of the object written to a plugin's stdin.
pub const REQUEST_KIND: &str = "PluginRequest";
/// `kind` of the object a plugin prints on stdout.
pub const RESULT_KIND: &str = "PluginResult";

/// The dynamic source id of a plugin, `Plugin/<name>`; policies and parts
/// name sources this way.
pub fn source_for(plugin: &str) -> String {
    format!("Plugin/{plugin}")
}
