//! One reconcile step, synchronous and free of I/O except through the
//! [`Dataplane`] and [`Store`] it is handed: effective config → selection
//! and follower statuses → desired dataplane → diff and apply → statuses and
//! events persisted in one batch, flushed at the commit point.
//!
//! The stages are the ones `routerctl plan` runs (routerd-api's
//! [`merge_view`], [`follow_all`], `render`), so what the plan shows is what
//! the daemon does. Unlike the plan, the step is incremental: the effective
//! configuration and the selection index are kept between steps and rebuilt
//! only when the configuration or the dynamic parts change; a health or
//! link change re-evaluates only the policies that read it (the selection
//! reverse index), and a step in which no status moved touches neither the
//! dataplane nor the store. Statuses live in one map, never copied whole.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use routerd_api::{MergeView, build_effective, follow_all, view_of};
use routerd_merge::{Change, ChangeSet, Effective, Part};
use routerd_model::{Event, Kind, ObjectRef, Resource, StateSnapshot, Status};
use routerd_render::{Dataplane, DesiredState, Ledger, ReconcileOptions, reconcile, render};
use routerd_select::{Evaluation, PolicySet, SelectOptions, SetState};
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
    /// Resource ids whose stored status changed.
    pub changed: Vec<String>,
    /// Dataplane operations carried out.
    pub applied_ops: usize,
    /// The dataplane error, if the apply failed (statuses still persisted).
    pub dataplane_error: Option<String>,
    /// Owners whose kernel state is not what they asked for after this
    /// step (rejected operations, missing devices, foreign conflicts).
    pub faults: Vec<routerd_render::Fault>,
    /// How long the dataplane part took.
    pub apply_duration: std::time::Duration,
    /// Whether the step rebuilt the effective configuration and evaluated
    /// everything (configuration change, first step, resync).
    pub full: bool,
    /// Policies evaluated.
    pub evaluated: usize,
    /// Whether the dataplane was reconciled at all.
    pub reconciled: bool,
    /// Whether the dynamic parts' states (active, expired, superseded,
    /// rejected) may have changed, so the daemon records them.
    pub parts_changed: bool,
    /// What the merge changed in the effective configuration (part
    /// arrivals and expiries applied incrementally).
    pub merge_changes: ChangeSet,
}

/// What the step keeps between runs for one effective configuration.
#[derive(Debug)]
struct View {
    /// The merge, kept so part arrivals and expiries apply incrementally.
    effective: Effective,
    merged: MergeView,
    set: PolicySet,
    state: SetState,
    /// Per policy: when its evaluation can change without new observations.
    wake: Vec<Option<DateTime<Utc>>>,
}

impl View {
    fn new(effective: Effective, statuses: &StateSnapshot) -> View {
        let mut v = View {
            merged: view_of(&effective),
            effective,
            set: PolicySet::default(),
            state: SetState::default(),
            wake: Vec::new(),
        };
        v.reindex(statuses);
        v
    }

    /// Rebuilds the selection index over `merged` (after a change to what
    /// selection reads); previous policy statuses come from `statuses`.
    fn reindex(&mut self, statuses: &StateSnapshot) {
        self.set = PolicySet::new(&self.merged.effective);
        self.state = self.set.new_state(statuses);
        self.wake = vec![None; self.set.len()];
    }
}

/// The daemon's in-memory state between steps.
#[derive(Debug, Default)]
pub struct Core {
    startup: Vec<Resource>,
    /// Config generation the startup resources belong to.
    pub generation: u64,
    parts: Vec<Resource>,
    /// Every known status: observed (links, health) and computed. The step
    /// updates it in place.
    pub statuses: StateSnapshot,
    /// What routerd created in the kernel.
    pub ledger: Ledger,
    /// Reconcile options (ownership markers, verification retries).
    pub options: ReconcileOptions,
    /// The last desired state the kernel verifiably matched: a failed
    /// apply is rolled back to it (an nft table replaced before the failing
    /// operation would otherwise stay new).
    pub last_good: Option<DesiredState>,
    view: Option<View>,
    /// Observed statuses that changed since the last step.
    changed: BTreeSet<String>,
    /// The next step must rebuild, evaluate and reconcile everything.
    full: bool,
    /// The last step's dataplane apply failed: retry it even if nothing moved.
    dataplane_pending: bool,
    /// Part changes not yet applied to the merge.
    pending: Vec<Change>,
}

impl Core {
    /// A core for `startup` resources.
    pub fn new(startup: Vec<Resource>) -> Core {
        let mut c = Core::default();
        c.set_startup(startup);
        c
    }

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
        self.view = None;
        Ok(())
    }

    /// The validated startup resources (the applied configuration).
    pub fn startup(&self) -> &[Resource] {
        &self.startup
    }

    /// Replaces the startup configuration; the next step rebuilds.
    pub fn set_startup(&mut self, startup: Vec<Resource>) {
        self.startup = startup;
        self.view = None;
    }

    /// The dynamic parts the merge considers.
    pub fn parts(&self) -> &[Resource] {
        &self.parts
    }

    /// Replaces the dynamic parts; the next step rebuilds.
    pub fn set_parts(&mut self, parts: Vec<Resource>) {
        self.parts = parts;
        self.view = None;
    }

    /// Adds a dynamic part, replacing one of the same name. The next step
    /// applies it to the kept merge and acts on its change set only.
    pub fn upsert_part(&mut self, part: Resource) {
        match Part::from_resource(part.clone()) {
            Ok(p) => {
                self.parts.retain(|x| x.name() != part.name());
                self.parts.push(part);
                self.pending.push(Change::Upsert(p));
            }
            Err(e) => tracing::warn!(part = part.name(), error = %e, "dynamic part ignored"),
        }
    }

    /// Lets parts whose `expiresAt` passed expire at the next step (their
    /// masks lift, their resources go; the merge reports them `expired`, so
    /// `dynamic list` says so). The store keeps every generation.
    pub fn expire_parts(&mut self, now: DateTime<Utc>) {
        // The merge keeps and reports the expired parts; this list (what a
        // rebuild starts from) drops them.
        let before = self.parts.len();
        self.parts
            .retain(|p| !p.as_dynamic_part().is_some_and(|d| d.is_expired(now)));
        if self.parts.len() != before {
            self.pending.push(Change::Tick(now));
        }
    }

    /// Makes the next step evaluate and reconcile everything (the periodic
    /// resync, dataplane drift).
    pub fn request_full(&mut self) {
        self.full = true;
    }

    /// Records observed statuses (links, health checks); the next step
    /// re-evaluates what reads the ones that changed.
    pub fn observe(&mut self, statuses: StateSnapshot) {
        for (id, st) in statuses {
            self.observe_one(id, st);
        }
    }

    /// [`Core::observe`] for one status.
    pub fn observe_one(&mut self, id: String, status: Status) {
        if self.statuses.get(&id) != Some(&status) {
            self.changed.insert(id.clone());
            self.statuses.insert(id, status);
        }
    }

    /// Records a status that moves on every probe without changing any
    /// selection (`lastCheckedAt`, counters): kept for readers, no step.
    pub fn refresh_quietly(&mut self, id: String, status: Status) {
        self.statuses.insert(id, status);
    }

    /// When the next step is due without new observations: a policy's
    /// hold ends or its health goes stale, or a dynamic part expires.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let v = self.view.as_ref()?;
        v.wake
            .iter()
            .flatten()
            .copied()
            .chain(v.effective.next_expiry())
            .min()
    }

    /// Runs one step at `now`.
    pub fn step<D: Dataplane + ?Sized>(
        &mut self,
        dataplane: &mut D,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<StepReport, StepError> {
        let mut report = StepReport::default();
        let mut events: Vec<Event> = Vec::new();
        let rebuilt = self.view.is_none();
        let mut full = rebuilt || std::mem::take(&mut self.full);
        let mut moved: BTreeSet<String> = BTreeSet::new();
        if rebuilt {
            self.pending.clear();
            let effective = build_effective(&self.startup, &self.parts, now)
                .map_err(|e| StepError::Plan(e.to_string()))?;
            self.view = Some(View::new(effective, &self.statuses));
            report.parts_changed = true;
        } else if !self.pending.is_empty()
            && let Some(view) = self.view.as_mut()
        {
            // Part arrivals and expiries: apply them to the kept merge and
            // act on the change set. Routes and NAT rules that came or went
            // only need the followers and the render; anything selection
            // indexes (policies, health checks, interfaces, ...) rebuilds
            // the selection index.
            let mut cs = ChangeSet::default();
            for change in std::mem::take(&mut self.pending) {
                match view.effective.apply(change) {
                    Ok(c) => cs.absorb(c),
                    Err(e) => tracing::warn!(error = %e, "dynamic part change rejected"),
                }
            }
            report.parts_changed = true;
            view.merged = view_of(&view.effective);
            let touched = || cs.added.iter().chain(&cs.removed).chain(&cs.changed);
            let selection_neutral = touched().all(|id| {
                id.kind == Kind::IPv4Route.as_str() || id.kind == Kind::NAT44Rule.as_str()
            });
            if !selection_neutral {
                view.reindex(&self.statuses);
                full = true;
            }
            moved.extend(touched().map(ToString::to_string));
            report.merge_changes = cs;
        }
        report.full = full;
        let changed_observed = std::mem::take(&mut self.changed);
        let Some(view) = self.view.as_mut() else {
            return Err(StepError::Plan("no effective configuration".into()));
        };
        let options = SelectOptions {
            terse: true,
            ..SelectOptions::default()
        };

        // Selection: everything, or what changed plus the policies whose
        // holds ended or whose health went stale.
        let evaluations: Vec<(usize, Evaluation)> = if full {
            view.set
                .refresh(&mut view.state, &self.statuses, now, options)
        } else {
            let due: Vec<usize> = (0..view.wake.len())
                .filter(|&i| view.wake[i].is_some_and(|t| t <= now))
                .collect();
            let mut out =
                view.set
                    .refresh_some(&mut view.state, &due, &self.statuses, now, options);
            out.extend(view.set.on_change(
                &mut view.state,
                changed_observed.iter().map(String::as_str),
                &self.statuses,
                now,
                options,
            ));
            out
        };
        report.evaluated = evaluations.len();
        moved.extend(changed_observed);
        for (i, ev) in evaluations {
            if let Some(w) = view.wake.get_mut(i) {
                *w = ev.wake_at;
            }
            events.extend(ev.events);
            let (Some(id), Some(st)) = (view.set.id(i), view.state.status(i)) else {
                continue;
            };
            if ev.status_changed || self.statuses.get(id) != Some(st) {
                self.statuses.insert(id.to_string(), st.clone());
                moved.insert(id.to_string());
            }
        }

        // Followers read policy, interface and other statuses; there are
        // few of them and they are cheap, so all are evaluated whenever
        // anything moved.
        if full || !moved.is_empty() {
            for (id, o) in follow_all(
                &view.merged.effective,
                view.set.world(),
                &self.statuses,
                &self.statuses,
                now,
            ) {
                events.extend(o.events);
                if self.statuses.get(&id) != Some(&o.status) {
                    self.statuses.insert(id.clone(), o.status);
                    moved.insert(id);
                }
            }
        }

        // Dataplane: only when a status moved, on a full step, or to retry.
        let started = std::time::Instant::now();
        let before = self.ledger.clone();
        if full || !moved.is_empty() || self.dataplane_pending {
            report.reconciled = true;
            let desired = render(&view.merged.effective, &self.statuses).desired;
            match reconcile(dataplane, &desired, &mut self.ledger, &self.options) {
                Ok(outcome) => {
                    self.dataplane_pending = false;
                    self.last_good = Some(desired);
                    report.applied_ops = outcome.plan.ops.len()
                        + outcome.retries.iter().map(|p| p.ops.len()).sum::<usize>();
                    if report.applied_ops > 0 {
                        let mut e =
                            Event::info("routerd.dataplane.applied", ObjectRef::default(), now);
                        e.message = format!("{} operation(s)", report.applied_ops);
                        e.reason = "DataplaneApplied".into();
                        events.push(e.attr("operations", report.applied_ops.to_string()));
                    }
                }
                Err(err) => {
                    self.dataplane_pending = true;
                    if let Some(good) = &self.last_good
                        && let Err(rollback) =
                            reconcile(dataplane, good, &mut self.ledger, &self.options)
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
        }
        report.apply_duration = started.elapsed();

        // Persist: every status on a full step (the store skips identical
        // ones), else only what moved.
        let mut w = store.writer();
        let to_save: Vec<&String> = if full {
            self.statuses.keys().collect()
        } else {
            moved.iter().collect()
        };
        for id in to_save {
            if let Some(st) = self.statuses.get(id)
                && w.save_status(id, st, Some(self.generation), now)?
            {
                report.changed.push(id.clone());
            }
        }
        if rebuilt || !report.merge_changes.removed.is_empty() {
            // Statuses of resources that left the effective config go away.
            let live: HashSet<String> = view
                .merged
                .effective
                .iter()
                .map(|r| r.id().to_string())
                .collect();
            let stale: Vec<String> = self
                .statuses
                .keys()
                .filter(|id| !live.contains(*id) && is_computed(id))
                .cloned()
                .collect();
            for id in &stale {
                w.delete_status(id);
                self.statuses.remove(id);
            }
        }
        if self.ledger != before {
            let v = serde_json::to_value(&self.ledger)
                .map_err(|e| StepError::Plan(format!("ledger: {e}")))?;
            w.ledger_put(LEDGER_KEY, &v)?;
        }
        let dirty = !report.changed.is_empty() || !events.is_empty() || self.ledger != before;
        for e in events {
            w.append_event(e);
        }
        report.events = w.commit()?;
        if dirty || full {
            store.flush()?;
        }
        Ok(report)
    }

    /// The effective resources of the last step.
    pub fn effective(&self) -> &[Resource] {
        self.view
            .as_ref()
            .map_or(&[], |v| v.merged.effective.as_slice())
    }

    /// Every dynamic part with the merge's verdict (state and reason), as
    /// of the last step.
    pub fn part_reports(&self) -> &[Value] {
        self.view
            .as_ref()
            .map_or(&[], |v| v.merged.dynamic_parts.as_slice())
    }

    /// The decision record of policy `id` as of its last evaluation, built
    /// on demand (the step evaluates tersely).
    pub fn decision(&self, id: &str) -> Option<Value> {
        let v = self.view.as_ref()?;
        let i = v.set.index_of(id)?;
        let d = v.set.decision(&v.state, i)?;
        serde_json::to_value(d).ok()
    }
    /// Takes the dynamic part named `name` out of the merge now (an
    /// operator's `dynamic drop`); the next step removes what it brought
    /// and lifts its masks. Whether it was there.
    pub fn revoke_part(&mut self, name: &str) -> bool {
        let before = self.parts.len();
        self.parts.retain(|p| p.name() != name);
        if self.parts.len() == before {
            return false;
        }
        self.pending.push(Change::Remove(name.to_string()));
        true
    }
}

/// Statuses the step computes (and may delete when the resource goes).
fn is_computed(id: &str) -> bool {
    ["/EgressRoutePolicy/", "/IPv4Route/", "/NAT44Rule/"]
        .iter()
        .any(|k| id.contains(k))
}
