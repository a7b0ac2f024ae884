//! routerd's effective-config engine: startup + dynamic parts − masks.
//!
//! The startup config belongs to the operator; dynamic parts come from
//! trusted local plugins and expire. Controllers reconcile exactly one
//! effective config, and every difference from startup must be explainable,
//! so the result records where each resource came from, what is suppressed
//! and why, and the state of every part (`active`, `expired`, `superseded`,
//! `rejected` with a reason).
//!
//! Unlike routerd, one bad part never blocks the rest: it is rejected on its
//! own and everything else merges. The newest active generation of a source
//! supersedes the older ones instead of clashing with them. Which part loses
//! a clash between sources is decided by one documented rule (the smaller
//! source name wins; docs/merge.md).
//!
//! The merge is a hot path (it runs whenever a part arrives or expires), so
//! the result is also the state of an incremental engine:
//! [`Effective::apply`] folds one change in and returns a [`ChangeSet`]
//! without a rebuild. Pure: time is an input, there is no I/O.
//!
//! ```
//! use std::sync::Arc;
//! use routerd_merge::{Change, Effective, Startup, synth};
//!
//! let s = synth::gen_merge(1_000, 10, 100);
//! let startup = Arc::new(Startup::new(s.startup));
//! let mut eff = Effective::build(startup, s.parts, s.now).unwrap();
//! assert_eq!(eff.len(), s.expected.effective);
//! let cs = eff.apply(Change::Remove("bench-src-000".into())).unwrap();
//! assert_eq!(cs.removed.len(), 100);
//! ```

#![deny(missing_docs)]

mod engine;
mod id;
mod part;
mod report;
mod startup;
mod strings;
pub mod synth;

pub use engine::{Change, ChangeSet, Effective, diff, merge};
pub use id::SharedId;
pub use part::Part;
pub use report::{
    ANNOTATION_DIGEST, ANNOTATION_GENERATION, ANNOTATION_PART, ANNOTATION_SOURCE, Document, Entry,
    PartReport, PartState, Provenance, Suppressed,
};
pub use startup::Startup;

/// Why a merge could not be computed at all. Problems of single parts are
/// never errors: they make the part `rejected` and the merge goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A resource handed in as a part is of another kind.
    #[error("{0} is not a DynamicConfigPart")]
    NotAPart(String),
    /// Two parts share a name, so neither can be chosen without looking at
    /// input order.
    #[error("duplicate dynamic config part \"{0}\"")]
    DuplicatePart(String),
    /// A removal named a part the engine does not hold.
    #[error("unknown dynamic config part \"{0}\"")]
    UnknownPart(String),
}
