//! observe → diff → apply → verify, with rollback of a failed apply.

use crate::dataplane::{ApplyError, Dataplane, DataplaneError};
use crate::diff::diff_with;
use crate::ir::DesiredState;
use crate::ledger::{Ledger, Ownership};
use crate::plan::{Op, Plan};

/// Reconcile settings.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Which objects routerd may own.
    pub ownership: Ownership,
    /// How many times a non-empty verification diff is applied again.
    pub verify_retries: u32,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            ownership: Ownership::default(),
            verify_retries: 2,
        }
    }
}

/// Why one owner's part of the dataplane is not what it asked for. The
/// step turns each into the owner's status (phase, reason, the kernel's
/// message) and an event; every other owner's operations still apply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Resource id of the owner (`apiVersion/Kind/name`).
    pub owner: String,
    /// routerd-style reason: `ApplyFailed`, `DeviceNotReady`, `Conflict`, ...
    pub reason: String,
    /// What the kernel (or the check that kept the operation back) said.
    pub message: String,
}

/// A successful reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The plan that was carried out (first attempt).
    pub plan: Plan,
    /// Further plans verification needed (empty when the first one stuck).
    pub retries: Vec<Plan>,
}

/// Why a reconcile failed. The ledger still records exactly what exists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Reading the kernel failed.
    #[error("observe: {0}")]
    Observe(#[source] DataplaneError),
    /// An operation failed; the applied ones were rolled back where possible.
    #[error("{0}")]
    Apply(#[source] Box<ApplyFailure>),
    /// The kernel still differs after the bounded retries.
    #[error("verification failed: {} operation(s) still pending, first: {}", .remaining.ops.len(),
        .remaining.ops.first().map(ToString::to_string).unwrap_or_default())]
    Verify {
        /// What still differs.
        remaining: Plan,
    },
}

/// A failed apply and what its rollback did.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", rollback_note(.rollback_failed.as_ref()))]
pub struct ApplyFailure {
    /// The failure.
    #[source]
    pub error: ApplyError,
    /// The plan that was attempted.
    pub plan: Plan,
    /// Why the rollback failed, if it did.
    pub rollback_failed: Option<ApplyError>,
}

fn rollback_note(e: Option<&ApplyError>) -> String {
    match e {
        None => "; rolled back to the last good state".to_string(),
        Some(e) => format!("; rollback also failed: {e}"),
    }
}

/// Makes the kernel's owned state equal `desired`.
///
/// On an apply failure the operations that took effect are undone in
/// reverse order (nft replacements are atomic per table, so a failed one
/// left the previous table intact), and the ledger records whatever could
/// not be undone.
pub fn reconcile<D: Dataplane + ?Sized>(
    dp: &mut D,
    desired: &DesiredState,
    ledger: &mut Ledger,
    opts: &ReconcileOptions,
) -> Result<Outcome, ReconcileError> {
    let observed = dp.observe().map_err(ReconcileError::Observe)?;
    let plan = diff_with(desired, &observed, ledger, &opts.ownership);
    if !plan.is_empty() {
        apply_or_rollback(dp, &plan, ledger)?;
    }
    let mut retries = Vec::new();
    loop {
        let observed = dp.observe().map_err(ReconcileError::Observe)?;
        let mut next = ledger.clone();
        next.commit(desired, &observed, &opts.ownership);
        let remaining = diff_with(desired, &observed, &next, &opts.ownership);
        if remaining.is_empty() {
            *ledger = next;
            return Ok(Outcome { plan, retries });
        }
        if retries.len() >= opts.verify_retries as usize {
            return Err(ReconcileError::Verify { remaining });
        }
        apply_or_rollback(dp, &remaining, ledger)?;
        retries.push(remaining);
    }
}

fn apply_or_rollback<D: Dataplane + ?Sized>(
    dp: &mut D,
    plan: &Plan,
    ledger: &mut Ledger,
) -> Result<(), ReconcileError> {
    match dp.apply(plan) {
        Ok(()) => {
            ledger.record_ops(&plan.ops);
            Ok(())
        }
        Err(error) => {
            let undo: Vec<Op> = error
                .succeeded
                .iter()
                .rev()
                .filter_map(|i| plan.ops.get(*i).and_then(Op::inverse))
                .collect();
            // What cannot be undone (nft replacements) stays and is owned.
            let kept: Vec<&Op> = error
                .succeeded
                .iter()
                .filter_map(|i| plan.ops.get(*i))
                .filter(|op| op.inverse().is_none())
                .collect();
            ledger.record_ops(kept);
            let undo = Plan {
                ops: undo,
                conflicts: Vec::new(),
            };
            let rollback_failed = match dp.apply(&undo) {
                Ok(()) => None,
                Err(e) => {
                    // Record what the failed rollback left in place.
                    let left: Vec<&Op> = error
                        .succeeded
                        .iter()
                        .filter_map(|i| plan.ops.get(*i))
                        .collect();
                    ledger.record_ops(left);
                    ledger.record_applied(&undo, &e.succeeded);
                    Some(e)
                }
            };
            Err(ReconcileError::Apply(Box::new(ApplyFailure {
                error,
                plan: plan.clone(),
                rollback_failed,
            })))
        }
    }
}
