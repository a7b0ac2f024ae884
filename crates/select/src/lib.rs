//! Egress candidate selection for `EgressRoutePolicy`.
//!
//! Selection decides which path new flows take while candidate health keeps
//! changing, so it has to be predictable and explainable. Everything here is
//! a pure function of the policy spec, what is known about each candidate,
//! the previous status and `now`: no I/O and no clock, so the daemon, the
//! offline `routerctl plan` and the tests all compute the same answer.
//!
//! * [`observe`] turns status maps into typed observations (readiness inputs).
//! * [`readiness`] is the one readiness rule shared by every mode.
//! * [`rank`] is the candidate order (weight, priority, name, index).
//! * [`select()`] applies failback control (hysteresis, preemptDelay,
//!   preempt) and writes the status, events and a [`Decision`].
//! * [`PolicySet`] keeps reverse indexes so a health or source change
//!   re-evaluates only the policies, and within them only the candidates,
//!   that depend on it ([`SetState`] holds the incremental state).
//! * [`flush`] decides which dead paths' connections a failover deletes
//!   (`flushOnFailover: deadPath`).
//! * [`follow`] computes the statuses of the resources that follow a
//!   selection (IPv4Route, NAT44Rule).

#![deny(missing_docs)]

pub mod decision;
pub mod flush;
pub mod follow;
pub mod mobility;
pub mod observe;
pub mod rank;
pub mod readiness;
pub mod select;
pub mod set;
pub mod status;
pub mod time;

pub use decision::{CandidateDecision, Decision, Hold, Reason, TargetDecision};
pub use observe::{
    CandidateObservation, DependencyObservation, HealthObservation, LinkObservation,
    SourceObservation, StatusSource, TargetObservation,
};
pub use rank::{CandidateState, best_ready, rank_cmp};
pub use readiness::{Assessment, TargetAssessment};
pub use select::{Evaluation, Outcome, PolicyInput, SelectOptions, select, select_in_place};
pub use set::{PolicySet, SetState, World};

/// The event topic of an advisory selection change.
pub const ROUTE_CHANGED_EVENT: &str = "routerd.lan.route.changed";

/// The topic a policy-route mode (`priority`, `mark`, `hash`) publishes
/// its selection changes under (routerd's evented store publishes it for
/// every status change; here only a change of what carries traffic).
pub const STATUS_CHANGED_EVENT: &str = "routerd.resource.status.changed";
