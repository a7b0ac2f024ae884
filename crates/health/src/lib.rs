//! routerd health checks.
//!
//! Failover is only as fast and as honest as its probes. This crate splits
//! the problem the way the rest of the workspace does:
//!
//! * a pure core, always built: the HealthCheck state machine of routerd
//!   (results in, phase transitions, status map and events out;
//!   [`machine`]), the derivation of a probe's path binding from the
//!   EgressRoutePolicy candidates that reference it ([`binding`]) and the
//!   resolved per-check configuration ([`check`]). It has no tokio and never
//!   reads a clock: time is always an argument, so tests and embedders drive
//!   it on virtual time;
//! * behind the `runtime` feature: tokio probers pinned to their path, one
//!   scheduler for every check, and a netlink carrier watcher
//!   ([`runtime`]).
//!
//! docs/health.md describes the design and its defaults.

#![deny(missing_docs)]

pub mod binding;
pub mod check;
pub mod evidence;
pub mod machine;
pub mod time;

#[cfg(feature = "runtime")]
pub mod runtime;

pub use binding::{
    Binding, BindingOverride, Derivation, SourceDerivation, SourceOrigin, derive_binding,
    derive_source, derive_sources,
};
pub use check::{
    CheckConfig, ConfigError, DnsOptions, HttpOptions, ProbeSpec, Protocol, QueryType,
};
pub use evidence::{Evidence, FailureKind};
pub use machine::{
    DEFAULT_HISTORY, HealthState, Identity, Outcome, Phase, ProbeReport, Thresholds, Transition,
};
