//! routerd's control API types.
//!
//! The plan document (`routerctl plan`, `POST /plan`) is assembled here from
//! the pure crates, so the offline CLI and the daemon compute exactly the
//! same thing.

#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod control;
pub mod plan;

pub use plan::{
    DataplaneView, MergeView, PlanDocument, PlanError, PlanInputs, build_effective, build_plan,
    build_plan_with_desired, dataplane_view, follow_all, follow_all_with_wake, merge_view, view_of,
};
