//! The decision record: why each candidate is or is not usable, which rule
//! picked the winner and when the choice last changed.
//!
//! Operators of every multi-WAN system ask "why is traffic on this path?".
//! routerd only shows `ready: false`; the record names the exact cause
//! (health phase and counters, stale health, source phase, unresolved device
//! or gateway, disabled, held by hysteresis or hold-down).

use std::borrow::Cow;

use serde::Serialize;

/// A machine-readable code with a human explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable code, e.g. `HealthStale`.
    pub code: &'static str,
    /// What exactly was seen.
    pub message: String,
}

impl Reason {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
        }
    }
}

/// Why a ready candidate that would otherwise win is not (yet) used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// `hysteresis`, `preemptDelay` or `preempt`.
    pub by: &'static str,
    /// When the hold ends (RFC 3339); absent for `preempt: false`, which
    /// holds for as long as the current path stays ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Explanation.
    pub message: String,
}

/// One candidate in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateDecision {
    /// Status name.
    pub name: String,
    /// Position in `spec.candidates`.
    pub index: usize,
    /// Usable for new flows (readiness only; holds are separate).
    pub ready: bool,
    /// Taken out by configuration or by a disabled source or health check.
    pub disabled: bool,
    /// Rank among ready candidates (1 = best), absent when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// Ordering inputs.
    pub weight: i64,
    /// Ordering inputs.
    pub priority: i64,
    /// Resolved kernel device (`""` when unresolved).
    pub device: String,
    /// Resolved gateway (`""` when none).
    pub gateway: String,
    /// Since when the candidate has been continuously ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<String>,
    /// Why it is not ready (empty when ready).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Facts worth knowing that did not block it (e.g. failure grace).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Reason>,
    /// Ready and better than the winner, but held back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
    /// The targets of a multi-target candidate, in spec order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetDecision>,
}

/// One target in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetDecision {
    /// Status name.
    pub name: String,
    /// Position in the candidate's `targets`.
    pub index: usize,
    /// Usable for new flows (readiness only; holds are separate).
    pub ready: bool,
    /// New flows are hashed onto it now.
    pub in_use: bool,
    /// Since when the target has been continuously ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<String>,
    /// Why it is not ready, besides its candidate's reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// Ready but not yet back in the hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
}

/// A weighted-ECMP member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Candidate status name.
    pub name: String,
    /// Kernel device.
    pub device: String,
    /// Next hop (`""` for none).
    pub gateway: String,
    /// Share of new flows, relative to the other members.
    pub weight: i64,
}

/// The record for one policy evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Policy id (`apiVersion/Kind/name`).
    pub policy: String,
    /// `advisory`, `priority`, `mark` or `hash` (borrowed for the known
    /// values: the record is built on every evaluation).
    pub mode: Cow<'static, str>,
    /// `highest-weight-ready` or `weighted-ecmp` (or the unsupported value).
    pub selection: Cow<'static, str>,
    /// The evaluation instant.
    pub evaluated_at: String,
    /// Resulting phase (`Applied` or `Pending`).
    pub phase: Cow<'static, str>,
    /// Pending reason, when Pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rule that produced the result, e.g. `Startup`, `Failover`,
    /// `Preempt`, `HeldByHysteresis`.
    pub rule: &'static str,
    /// The rule applied to this situation, in words.
    pub explanation: String,
    /// The selected candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<String>,
    /// The previously selected candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Whether the selection (what downstream routes follow) changed now.
    pub changed: bool,
    /// When the selection last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_at: Option<String>,
    /// Weighted-ECMP members.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Every candidate, in spec order.
    pub candidates: Vec<CandidateDecision>,
}
