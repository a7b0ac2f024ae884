//! The routerd resource model.
//!
//! Operators describe a router as typed YAML resources. This crate owns
//! their types, defaults, loading (with file positions), and validation; it
//! has no I/O beyond parsing strings, so every other crate, the offline CLI
//! and embedders can share one model.

#![deny(missing_docs)]

pub mod compat;
pub mod diag;
pub mod duration;
pub mod event;
pub mod id;
pub mod load;
pub mod lower;
pub mod lower_claims;
pub mod position;
pub mod resource;
pub mod schema;
pub mod spec;
pub mod validate;

pub use compat::{UnknownFields, Unmanaged};
pub use diag::{Diagnostic, Problems, Severity};
pub use duration::GoDuration;
pub use event::{Event, EventSource};
pub use id::{Kind, ObjectRef, ResourceId};
pub use load::{Loaded, load_and_validate, load_and_validate_with};
pub use resource::{Metadata, Resource, Spec, Status};

/// A state snapshot: resource id (`apiVersion/Kind/name`) to status object.
/// This is the `--state` format of `routerctl plan` and the output of
/// `routerctl get status -o yaml`.
pub type StateSnapshot = std::collections::BTreeMap<String, Status>;
