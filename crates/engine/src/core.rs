//! One reconcile step, synchronous and free of I/O except through the
//! [`Dataplane`] and [`Store`] it is handed: effective config → selection
//! and follower statuses → desired dataplane → diff and apply → statuses and
//! events persisted in one batch, flushed at the commit point.
//!
//! The step is the same pipeline `routerctl plan` runs (routerd-api's
//! `build_plan`), so what the plan shows is what the daemon does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use routerd_api::{PlanDocument, PlanInputs, build_plan_with_desired};
use routerd_model::{Event, ObjectRef, Resource, StateSnapshot};
use routerd_render::{Dataplane, Ledger, ReconcileOptions, reconcile};
use routerd_store::{Store, StoreError};
use serde_json::Value;

/// Store key of the ownership ledger.
pub const LEDGER_KEY: &str = "dataplane";

/// Why a step could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The plan could not be computed.
    #[error("plan: {0}")]
    Plan(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one step did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// Events published (with store ids).
    pub events: Vec<Event>,
    /// Resource ids whose status changed.
    pub changed: Vec<String>,
    /// Dataplane operations carried out.
    pub applied_ops: usize,
    /// The dataplane error, if the apply failed (statuses still persisted).
    pub dataplane_error: Option<String>,
    /// How long the dataplane part took.
    pub apply_duration: std::time::Duration,
}

/// The daemon's in-memory state between steps.
#[derive(Debug, Default)]
pub struct Core {
    /// Validated startup resources (the applied configuration).
    pub startup: Vec<Resource>,
    /// Config generation they belong to.
    pub generation: u64,
    /// Dynamic parts to merge (every stored generation; the merge decides).
    pub parts: Vec<Resource>,
    /// Every known status: observed (links, health) and computed.
    pub statuses: StateSnapshot,
    /// What routerd created in the kernel.
    pub ledger: Ledger,
    /// Selection decision records by policy id.
    pub decisions: BTreeMap<String, Value>,
    /// The last plan document.
    pub last: Option<PlanDocument>,
    /// Reconcile options (ownership markers, verification retries).
    pub options: ReconcileOptions,
    /// The last desired state the kernel verifiably matched: a failed
    /// apply is rolled back to it (an nft table replaced before the failing
    /// operation would otherwise stay new).
    pub last_good: Option<routerd_render::DesiredState>,
}

impl Core {
    /// Restores statuses and the ledger from the store, so a restarted daemon
    /// continues where it stopped (dwell and hold-down timers included) and
    /// adopts the kernel state it owns instead of re-creating it.
    pub fn restore(&mut self, store: &Store) -> Result<(), StoreError> {
        self.statuses = store.status_snapshot()?;
        for (k, v) in store.ledger()? {
            if k == LEDGER_KEY
                && let Ok(l) = serde_json::from_value::<Ledger>(v)
            {
                self.ledger = l;
            }
        }
        Ok(())
    }

    /// Records observed statuses (links, health checks).
    pub fn observe(&mut self, statuses: StateSnapshot) {
        self.statuses.extend(statuses);
    }

    /// Runs one step at `now`.
    pub fn step<D: Dataplane + ?Sized>(
        &mut self,
        dataplane: &mut D,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<StepReport, StepError> {
        let (doc, desired) = build_plan_with_desired(&PlanInputs {
            startup: self.startup.clone(),
            dynamic_parts: self.parts.clone(),
            state: self.statuses.clone(),
            now,
        })
        .map_err(|e| StepError::Plan(e.to_string()))?;

        let mut report = StepReport::default();
        let mut statuses = self.statuses.clone();
        statuses.extend(doc.status.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Statuses of resources that left the effective config go away.
        let live: std::collections::HashSet<String> =
            doc.effective.iter().map(|r| r.id().to_string()).collect();

        let started = std::time::Instant::now();
        let before = self.ledger.clone();
        let mut events = doc.events.clone();
        match reconcile(dataplane, &desired, &mut self.ledger, &self.options) {
            Ok(outcome) => {
                self.last_good = Some(desired.clone());
                report.applied_ops = outcome.plan.ops.len()
                    + outcome.retries.iter().map(|p| p.ops.len()).sum::<usize>();
                if report.applied_ops > 0 {
                    let mut e = Event::info("routerd.dataplane.applied", ObjectRef::default(), now);
                    e.message = format!("{} operation(s)", report.applied_ops);
                    e.reason = "DataplaneApplied".into();
                    events.push(e.attr("operations", report.applied_ops.to_string()));
                }
            }
            Err(err) => {
                if let Some(good) = self.last_good.clone()
                    && let Err(rollback) =
                        reconcile(dataplane, &good, &mut self.ledger, &self.options)
                {
                    tracing::error!(error = %rollback, "restoring the last good dataplane failed");
                }
                let mut e = Event::info("routerd.dataplane.failed", ObjectRef::default(), now);
                e.severity = "error".into();
                e.reason = "DataplaneApplyFailed".into();
                e.message = err.to_string();
                events.push(e);
                report.dataplane_error = Some(err.to_string());
            }
        }
        report.apply_duration = started.elapsed();

        let mut w = store.writer();
        // Observed statuses (links, health) are persisted too, so `get
        // status` shows them and a restart resumes from them; identical
        // writes are skipped by the store.
        for (id, st) in &statuses {
            // Probe history stays in memory (describe shows it); persisting
            // it would rewrite every check's 20 records on every step.
            let stripped;
            let st = if st.contains_key("history") {
                let mut s = st.clone();
                s.remove("history");
                stripped = s;
                &stripped
            } else {
                st
            };
            if w.save_status(id, st, Some(self.generation), now)? {
                report.changed.push(id.clone());
            }
        }
        let stale: Vec<String> = self
            .statuses
            .keys()
            .filter(|id| !live.contains(*id) && !doc.status.contains_key(*id) && is_computed(id))
            .cloned()
            .collect();
        for id in &stale {
            w.delete_status(id);
            statuses.remove(id);
        }
        if self.ledger != before {
            let v = serde_json::to_value(&self.ledger)
                .map_err(|e| StepError::Plan(format!("ledger: {e}")))?;
            w.ledger_put(LEDGER_KEY, &v)?;
        }
        for e in events {
            w.append_event(e);
        }
        report.events = w.commit()?;
        store.flush()?;

        self.statuses = statuses;
        self.decisions = doc.decisions.clone();
        self.last = Some(doc);
        Ok(report)
    }

    /// The effective resources of the last step.
    pub fn effective(&self) -> &[Resource] {
        self.last.as_ref().map_or(&[], |d| d.effective.as_slice())
    }
}

/// Statuses the step computes (and may delete when the resource goes).
fn is_computed(id: &str) -> bool {
    ["/EgressRoutePolicy/", "/IPv4Route/", "/NAT44Rule/"]
        .iter()
        .any(|k| id.contains(k))
}
