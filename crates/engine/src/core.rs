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
//!
//! The kernel decides per owner: an operation it refuses, a route whose
//! device is absent, or an object held by a foreign one becomes a fault of
//! its owner only (reported over its status, with an event), and every
//! other owner's operations apply in the same step.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use routerd_api::{MergeView, build_effective, follow_all_with_wake, view_of};
use routerd_merge::{Change, ChangeSet, Effective, Part};
use routerd_model::{Event, Kind, ObjectRef, Resource, StateSnapshot, Status};
use routerd_render::render::failclosed as fail_closed;
use routerd_render::{Dataplane, Fault, Ledger, Plan, ReconcileOptions, reconcile_with, render};
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
    /// Some fault may clear without any new observation (a refused
    /// operation, a device that may appear): the daemon runs the step again
    /// with backoff.
    pub retry: bool,
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

/// Store key of the intent: the objects a step is about to create, written
/// before the kernel is touched and cleared with the ledger commit.
pub const INTENT_KEY: &str = "intent";

/// Owner recorded for orphans an operator asked to remove.
pub const ORPHAN_OWNER: &str = "routerd/orphan";

/// The `Router`'s `spec.reconcile` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// Interfaces routerd never touches (`protectedInterfaces`).
    pub protected_interfaces: Vec<String>,
    /// `mode: strict`: marked objects nobody claims (orphans) are removed
    /// as if the operator had asked; `progressive` (the default) only
    /// reports them.
    pub remove_orphans: bool,
}

impl ReconcileSettings {
    /// The settings of the `Router` documents loaded (every file's).
    pub fn from_routers<'a>(
        routers: impl IntoIterator<Item = &'a routerd_model::load::RouterInfo>,
    ) -> Self {
        let mut out = ReconcileSettings::default();
        for r in routers {
            out.protected_interfaces
                .extend(r.protected_interfaces.iter().cloned());
            out.remove_orphans |= r.reconcile_mode.as_deref() == Some("strict");
        }
        out
    }
}

/// What the stages of one step hand each other.
#[derive(Default)]
struct StepState {
    report: StepReport,
    events: Vec<Event>,
    /// Resource ids whose status (intended or reported) moved.
    moved: BTreeSet<String>,
    /// The effective configuration was rebuilt.
    rebuilt: bool,
    /// The ledger before the reconcile (`None`: no reconcile ran).
    ledger_before: Option<Ledger>,
    /// An intent may be in the store and is cleared with this commit.
    intent_written: bool,
    /// Dead paths whose connections the conntrack stage deletes.
    flushes: Vec<crate::flush::Pending>,
}

/// Records, durably and before anything is sent, which objects a plan is
/// about to create and for whom.
fn write_intent(store: &Store, plan: &Plan) -> Result<(), String> {
    let mut intent = Ledger::default();
    intent.record_ops(&plan.ops);
    if intent.is_empty() {
        return Ok(());
    }
    let v = serde_json::to_value(&intent).map_err(|e| e.to_string())?;
    let mut w = store.writer();
    w.ledger_put(INTENT_KEY, &v).map_err(|e| e.to_string())?;
    w.commit().map_err(|e| e.to_string())?;
    store.flush().map_err(|e| e.to_string())
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
    /// When a follower can change without new observations (a
    /// HybridRoute's health gate ends its hysteresis hold).
    follow_wake: Option<DateTime<Utc>>,
    /// Policies with `flushOnFailover: deadPath`, by id (few or none, so
    /// the select stage looks at nothing else). Copies: positions in
    /// `merged` shift when routes come and go without a reindex.
    flush_policies: BTreeMap<String, routerd_model::spec::EgressRoutePolicySpec>,
}

impl View {
    fn new(effective: Effective, statuses: &StateSnapshot) -> View {
        let mut v = View {
            merged: view_of(&effective),
            effective,
            set: PolicySet::default(),
            state: SetState::default(),
            wake: Vec::new(),
            follow_wake: None,
            flush_policies: BTreeMap::new(),
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
        self.flush_policies = self
            .merged
            .effective
            .iter()
            .filter_map(|r| {
                let s = r.as_egress_policy()?;
                (s.flush_on_failover() == routerd_model::spec::FlushOnFailover::DeadPath)
                    .then(|| (r.id().to_string(), s.clone()))
            })
            .collect();
    }

    /// The spec of policy `id` if it asks for dead-path flushes.
    fn flush_spec(&self, id: &str) -> Option<&routerd_model::spec::EgressRoutePolicySpec> {
        self.flush_policies.get(id)
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
    /// Owners whose kernel state is not what they asked for, as of the
    /// last reconcile (laid over their statuses when reported).
    faults: BTreeMap<String, Fault>,
    /// What owners were told although nothing failed (an address that was
    /// already on its device, `exclusive` neighbours), as of the last
    /// reconcile: a `note` in their reported status.
    notes: BTreeMap<String, String>,
    /// Objects with routerd's markers that nobody claims (last reconcile).
    pub orphans: Ledger,
    /// Policies failing closed (`whenNoCandidate`) as of the last render:
    /// id → `reject` / `drop`, laid over their statuses when reported.
    fail_closed: BTreeMap<String, String>,
    /// `spec.reconcile` of the startup configuration.
    reconcile: ReconcileSettings,
    view: Option<View>,
    /// Observed statuses that changed since the last step.
    changed: BTreeSet<String>,
    /// The next step must rebuild, evaluate and reconcile everything.
    full: bool,
    /// The last step's dataplane apply failed: retry it even if nothing moved.
    dataplane_pending: bool,
    /// Part changes not yet applied to the merge.
    pending: Vec<Change>,
    /// The last step's store commit failed.
    persist_failed: bool,
    /// Deletes the connections of dead paths (`flushOnFailover`); `None`
    /// when the daemon has no conntrack access (flushes then fail, visibly).
    flusher: Option<std::sync::Arc<dyn routerd_conntrack::ConntrackFlusher>>,
    /// Per policy: its last flush, laid over its reported status.
    last_flush: BTreeMap<String, Value>,
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
    ///
    /// An intent left by a step that crashed between the kernel change and
    /// the ledger commit is folded into the ledger: what it names and the
    /// kernel holds is owned again, so the first step keeps it if desired
    /// and removes it if not, instead of leaving an orphan.
    pub fn restore(&mut self, store: &Store) -> Result<(), StoreError> {
        self.statuses = store
            .status_snapshot()?
            .into_iter()
            .map(|(id, st)| {
                let mut st = fail_closed::strip(crate::faults::strip(st));
                if let Some(v) = crate::flush::strip(&mut st) {
                    self.last_flush.insert(id.clone(), v);
                }
                (id, st)
            })
            .collect();
        let mut intent = None;
        for (k, v) in store.ledger()? {
            let parsed = || serde_json::from_value::<Ledger>(v.clone()).ok();
            if k == LEDGER_KEY
                && let Some(l) = parsed()
            {
                self.ledger = l;
            } else if k == INTENT_KEY && !v.is_null() {
                intent = parsed();
            }
        }
        if let Some(intent) = intent {
            self.ledger.absorb(intent);
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
            .chain(v.follow_wake)
            .min()
    }

    /// Runs one step at `now`: the named stages in order. A new kind
    /// plugs in as a follower (in `follow_all`) and a render module; the
    /// stages themselves stay as they are.
    pub fn step<D: Dataplane + ?Sized>(
        &mut self,
        dataplane: &mut D,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<StepReport, StepError> {
        let mut st = StepState::default();
        self.merge_stage(now, &mut st)?;
        self.select_stage(now, &mut st);
        self.follow_stage(now, &mut st);
        self.dataplane_stage(dataplane, store, now, &mut st)?;
        self.conntrack_stage(now, &mut st);
        let persisted = self.persist_stage(store, now, st);
        // What a failed commit did not write is written by the next step:
        // every status (the store skips identical ones) and the ledger.
        self.persist_failed = persisted.is_err();
        persisted
    }

    /// Merge: rebuilds the effective configuration, or applies part
    /// arrivals and expiries to the kept merge and acts on its change set.
    fn merge_stage(&mut self, now: DateTime<Utc>, st: &mut StepState) -> Result<(), StepError> {
        st.rebuilt = self.view.is_none();
        st.report.full = st.rebuilt || std::mem::take(&mut self.full);
        if st.rebuilt {
            self.pending.clear();
            let effective = build_effective(&self.startup, &self.parts, now)
                .map_err(|e| StepError::Plan(e.to_string()))?;
            self.view = Some(View::new(effective, &self.statuses));
            st.report.parts_changed = true;
        } else if !self.pending.is_empty()
            && let Some(view) = self.view.as_mut()
        {
            // Routes and NAT rules that came or went only need the
            // followers and the render; anything selection indexes
            // (policies, health checks, interfaces, ...) rebuilds the
            // selection index.
            let mut cs = ChangeSet::default();
            for change in std::mem::take(&mut self.pending) {
                match view.effective.apply(change) {
                    Ok(c) => cs.absorb(c),
                    Err(e) => tracing::warn!(error = %e, "dynamic part change rejected"),
                }
            }
            st.report.parts_changed = true;
            view.merged = view_of(&view.effective);
            let touched = || cs.added.iter().chain(&cs.removed).chain(&cs.changed);
            let selection_neutral = touched().all(|id| {
                id.kind == Kind::IPv4Route.as_str()
                    || id.kind == Kind::IPv6StaticRoute.as_str()
                    || id.kind == Kind::NAT44Rule.as_str()
            });
            if !selection_neutral {
                view.reindex(&self.statuses);
                st.report.full = true;
            }
            st.moved.extend(touched().map(ToString::to_string));
            st.report.merge_changes = cs;
        }
        Ok(())
    }

    /// Selection: everything on a full step, else what read a changed
    /// observation plus the policies whose holds ended or whose health
    /// went stale.
    fn select_stage(&mut self, now: DateTime<Utc>, st: &mut StepState) {
        let changed_observed = std::mem::take(&mut self.changed);
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let options = SelectOptions {
            terse: true,
            ..SelectOptions::default()
        };
        let evaluations: Vec<(usize, Evaluation)> = if st.report.full {
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
        st.report.evaluated = evaluations.len();
        st.moved.extend(changed_observed);
        for (i, ev) in evaluations {
            if let Some(w) = view.wake.get_mut(i) {
                *w = ev.wake_at;
            }
            st.events.extend(ev.events);
            let (Some(id), Some(status)) = (view.set.id(i), view.state.status(i)) else {
                continue;
            };
            if ev.status_changed || self.statuses.get(id) != Some(status) {
                if let Some(spec) = view.flush_spec(id) {
                    let dead =
                        routerd_select::flush::dead_paths(spec, self.statuses.get(id), status);
                    st.flushes
                        .extend(dead.into_iter().map(|path| crate::flush::Pending {
                            policy: id.to_string(),
                            path,
                        }));
                }
                self.statuses.insert(id.to_string(), status.clone());
                st.moved.insert(id.to_string());
            }
        }
    }

    /// Followers (IPv4Route, NAT44Rule, ...) read policy, interface and
    /// other statuses; there are few of them and they are cheap, so all
    /// are evaluated whenever anything moved.
    fn follow_stage(&mut self, now: DateTime<Utc>, st: &mut StepState) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let due = view.follow_wake.is_some_and(|t| t <= now);
        if !st.report.full && st.moved.is_empty() && !due {
            return;
        }
        let (outcomes, wake) = follow_all_with_wake(
            &view.merged.effective,
            view.set.world(),
            &self.statuses,
            &self.statuses,
            now,
        );
        view.follow_wake = wake;
        for (id, o) in outcomes {
            st.events.extend(o.events);
            if self.statuses.get(&id) != Some(&o.status) {
                self.statuses.insert(id.clone(), o.status);
                st.moved.insert(id);
            }
        }
    }

    /// Render and reconcile, only when a status moved, on a full step, or
    /// to retry. Each owner gets what the kernel accepted; what it refused
    /// or what had to wait becomes that owner's fault, and everyone else's
    /// operations still apply.
    fn dataplane_stage<D: Dataplane + ?Sized>(
        &mut self,
        dataplane: &mut D,
        store: &Store,
        now: DateTime<Utc>,
        st: &mut StepState,
    ) -> Result<(), StepError> {
        if !st.report.full && st.moved.is_empty() && !self.dataplane_pending {
            return Ok(());
        }
        // Only a reconcile changes the ledger, so only a reconcile pays for
        // the copy it is compared with (10,000 routes: a quiet health step
        // used to clone them all).
        st.ledger_before = Some(self.ledger.clone());
        let Some(view) = self.view.as_ref() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        st.report.reconciled = true;
        let rendered = render(&view.merged.effective, &self.statuses);
        let mut options = self.options.clone();
        options.ownership.protected_devices = self.protected_devices(&view.merged.effective);
        let mut record_intent = |plan: &Plan| write_intent(store, plan);
        match reconcile_with(
            dataplane,
            &rendered.desired,
            &mut self.ledger,
            &options,
            &mut record_intent,
        ) {
            Ok(outcome) => {
                // What the kernel holds after the apply, not what was
                // asked: a filter kept by a fail-static policy still
                // refuses, and one the kernel refused does not.
                let held = fail_closed_held(&self.ledger, &rendered.fail_closed, view);
                note_fail_closed(&mut self.fail_closed, &held, now, st);
                st.report.applied_ops = outcome.ops_sent();
                if st.report.applied_ops > 0 {
                    let mut e = Event::info("routerd.dataplane.applied", ObjectRef::daemon(), now);
                    e.message = format!("{} operation(s)", st.report.applied_ops);
                    e.reason = "DataplaneApplied".into();
                    st.events
                        .push(e.attr("operations", st.report.applied_ops.to_string()));
                }
                let mut faults: BTreeMap<String, Fault> = BTreeMap::new();
                for p in rendered.problems {
                    faults.entry(p.owner.clone()).or_insert(Fault {
                        owner: p.owner,
                        reason: p.reason,
                        message: p.message,
                    });
                }
                for f in outcome.faults {
                    faults.entry(f.owner.clone()).or_insert(f);
                }
                st.events
                    .extend(crate::faults::transitions(&self.faults, &faults, now));
                for owner in self.faults.keys().chain(faults.keys()) {
                    if self.faults.get(owner) != faults.get(owner) {
                        st.moved.insert(owner.clone());
                    }
                }
                // A HybridRoute reports its lowered routes' faults.
                if self
                    .faults
                    .keys()
                    .chain(faults.keys())
                    .any(|o| o.contains("/IPv4Route/") && self.faults.get(o) != faults.get(o))
                {
                    st.moved.extend(
                        self.statuses
                            .keys()
                            .filter(|id| id.contains("/HybridRoute/"))
                            .cloned(),
                    );
                }
                // Kernel refusals and devices that may appear are retried
                // (with the queue's backoff); a conflict or a protected
                // interface waits for a configuration change.
                self.dataplane_pending = faults.values().any(|f| {
                    matches!(
                        f.reason.as_str(),
                        "ApplyFailed" | "VerifyFailed" | "DeviceNotReady" | "HostPolicyApplyFailed"
                    )
                });
                self.faults = faults;
                let mut notes: BTreeMap<String, String> = BTreeMap::new();
                for n in outcome.notes {
                    let text = notes.entry(n.owner).or_default();
                    if !text.is_empty() {
                        text.push_str("; ");
                    }
                    text.push_str(&n.message);
                }
                for owner in self.notes.keys().chain(notes.keys()) {
                    if self.notes.get(owner) != notes.get(owner) {
                        st.moved.insert(owner.clone());
                    }
                }
                self.notes = notes;
                self.orphans = outcome.orphans;
                if self.reconcile.remove_orphans && !self.orphans.is_empty() {
                    let n = self.remove_orphans();
                    let mut e = Event::info(
                        "routerd.dataplane.orphans.removed",
                        ObjectRef::daemon(),
                        now,
                    );
                    e.reason = "StrictReconcile".into();
                    e.message = format!(
                        "{n} unclaimed routerd object(s) removed (spec.reconcile.mode: strict)"
                    );
                    st.events.push(e.attr("count", n.to_string()));
                    self.dataplane_pending = true;
                }
                st.intent_written = true;
            }
            Err(err) => {
                self.dataplane_pending = true;
                let mut e = Event::info("routerd.dataplane.failed", ObjectRef::daemon(), now);
                e.severity = "error".into();
                e.reason = "DataplaneApplyFailed".into();
                e.message = err.to_string();
                st.events.push(e);
                st.report.dataplane_error = Some(err.to_string());
            }
        }
        st.report.apply_duration = started.elapsed();
        Ok(())
    }

    /// Conntrack: after the new path is programmed, deletes the connections
    /// of the paths that died in this step's selection (policies with
    /// `flushOnFailover: deadPath`). A failure is an event and a status
    /// message on the policy, never a step failure.
    fn conntrack_stage(&mut self, now: DateTime<Utc>, st: &mut StepState) {
        let pending = std::mem::take(&mut st.flushes);
        if pending.is_empty() {
            return;
        }
        let effective = self
            .view
            .as_ref()
            .map_or(&[][..], |v| v.merged.effective.as_slice());
        let (events, last) = crate::flush::run(
            pending,
            self.flusher.as_deref(),
            effective,
            &self.statuses,
            now,
        );
        st.events.extend(events);
        for (id, v) in last {
            st.moved.insert(id.clone());
            self.last_flush.insert(id, v);
        }
    }

    /// Sets what deletes the connections of dead paths.
    pub fn set_flusher(
        &mut self,
        flusher: std::sync::Arc<dyn routerd_conntrack::ConntrackFlusher>,
    ) {
        self.flusher = Some(flusher);
    }

    /// Persist: statuses as reported (faults laid over), events, and the
    /// ledger, in one batch; the intent is cleared in the same batch, so
    /// after a crash either the ledger or the intent names every object
    /// routerd created.
    fn persist_stage(
        &mut self,
        store: &Store,
        now: DateTime<Utc>,
        mut st: StepState,
    ) -> Result<StepReport, StepError> {
        let mut w = store.writer();
        let full = st.report.full || self.persist_failed;
        let to_save: Vec<String> = if full {
            self.statuses.keys().cloned().collect()
        } else {
            st.moved.iter().cloned().collect()
        };
        for id in to_save {
            if let Some(status) = self.reported_status(&id)
                && w.save_status(&id, &status, Some(self.generation), now)?
            {
                st.report.changed.push(id);
            }
        }
        if st.rebuilt || !st.report.merge_changes.removed.is_empty() {
            // Statuses of resources that left the effective config go away.
            let live: HashSet<String> = self
                .effective()
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
                self.last_flush.remove(id);
            }
        }
        let ledger_moved = st
            .ledger_before
            .as_ref()
            .is_some_and(|before| before != &self.ledger)
            || self.persist_failed;
        if ledger_moved {
            let v = serde_json::to_value(&self.ledger)
                .map_err(|e| StepError::Plan(format!("ledger: {e}")))?;
            w.ledger_put(LEDGER_KEY, &v)?;
        }
        if st.intent_written {
            w.ledger_put(INTENT_KEY, &Value::Null)?;
        }
        let dirty = !st.report.changed.is_empty() || !st.events.is_empty() || ledger_moved;
        for e in st.events {
            w.append_event(e);
        }
        st.report.events = w.commit()?;
        if dirty || full {
            store.flush()?;
        }
        st.report.faults = self.faults.values().cloned().collect();
        st.report.retry = self.dataplane_pending;
        Ok(st.report)
    }

    /// Kernel names of `spec.reconcile.protectedInterfaces` (an Interface
    /// resource's name stands for its `ifname`).
    fn protected_devices(&self, effective: &[Resource]) -> BTreeSet<String> {
        self.reconcile
            .protected_interfaces
            .iter()
            .map(|name| {
                effective
                    .iter()
                    .find(|r| r.kind() == Kind::Interface && r.name() == name)
                    .and_then(Resource::as_interface)
                    .map(|i| i.ifname.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| name.clone())
            })
            .collect()
    }

    /// Sets `spec.reconcile`; the next step reconciles everything.
    pub fn set_reconcile(&mut self, settings: ReconcileSettings) {
        if self.reconcile != settings {
            self.reconcile = settings;
            self.full = true;
        }
    }

    /// The status of `id` as reported: the intended one with its fault and
    /// its fail-closed state, if any, laid over.
    pub fn reported_status(&self, id: &str) -> Option<Status> {
        let st = self.statuses.get(id)?;
        let st = match self.fail_closed.get(id) {
            Some(how) => fail_closed::overlay(st, how),
            None => st.clone(),
        };
        let mut out = match (self.faults.get(id), self.notes.get(id)) {
            (Some(f), _) => crate::faults::overlay(&st, f),
            (None, Some(n)) => crate::faults::with_note(&st, n),
            (None, None) => st,
        };
        crate::flush::overlay(&mut out, self.last_flush.get(id));
        if id.contains("/HybridRoute/")
            && let Some(o) = self.route_faults_over(&out)
        {
            out = o;
        }
        Some(out)
    }

    /// A HybridRoute's status with its lowered routes' faults laid over
    /// `routes[]` (the follower ran before the kernel answered).
    fn route_faults_over(&self, st: &Status) -> Option<Status> {
        routerd_select::follow::hybrid::overlay_route_faults(st, |route| {
            self.faults.get(route).map(|f| {
                (
                    crate::faults::phase_for(route, &f.reason).to_string(),
                    f.reason.clone(),
                )
            })
        })
    }

    /// Every status as reported (see [`Core::reported_status`]).
    pub fn reported_statuses(&self) -> StateSnapshot {
        let mut out = self.statuses.clone();
        for (id, how) in &self.fail_closed {
            if let Some(st) = out.get_mut(id) {
                *st = fail_closed::overlay(st, how);
            }
        }
        for (id, f) in &self.faults {
            if let Some(st) = out.get_mut(id) {
                *st = crate::faults::overlay(st, f);
            }
        }
        for (id, n) in &self.notes {
            if !self.faults.contains_key(id)
                && let Some(st) = out.get_mut(id)
            {
                *st = crate::faults::with_note(st, n);
            }
        }
        for (id, v) in &self.last_flush {
            if let Some(st) = out.get_mut(id) {
                crate::flush::overlay(st, Some(v));
            }
        }
        if !self.faults.is_empty() {
            for (id, st) in out.iter_mut() {
                if id.contains("/HybridRoute/")
                    && let Some(o) = self.route_faults_over(st)
                {
                    *st = o;
                }
            }
        }
        out
    }

    /// Policies failing closed (`whenNoCandidate`), by id, as of the last
    /// render: `reject` or `drop`.
    pub fn fail_closed(&self) -> &BTreeMap<String, String> {
        &self.fail_closed
    }

    /// Owners whose kernel state is not what they asked for.
    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.faults.values()
    }

    /// Marks every orphan (a marked kernel object nobody claims) for
    /// removal by the next step; returns how many.
    pub fn remove_orphans(&mut self) -> usize {
        let mut claimed = std::mem::take(&mut self.orphans);
        claimed
            .routes
            .values_mut()
            .for_each(|o| *o = ORPHAN_OWNER.into());
        claimed
            .rules
            .values_mut()
            .for_each(|o| *o = ORPHAN_OWNER.into());
        for e in claimed.nft.values_mut() {
            e.owners = [ORPHAN_OWNER.to_string()].into();
        }
        let n = claimed.describe().len();
        self.ledger.absorb(claimed);
        self.full = true;
        n
    }

    /// The effective resources of the last step.
    pub fn effective(&self) -> &[Resource] {
        self.view
            .as_ref()
            .map_or(&[], |v| v.merged.effective.as_slice())
    }

    /// Startup resources masked by dynamic parts (target, maskedBy,
    /// maskedUntil, reason), as of the last step.
    pub fn suppressed(&self) -> &[Value] {
        self.view
            .as_ref()
            .map_or(&[], |v| v.merged.suppressed.as_slice())
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

/// The policies whose fail-closed table the kernel holds (per the ledger
/// after the apply), with how they refuse: as rendered, else as their spec
/// says.
fn fail_closed_held(
    ledger: &Ledger,
    rendered: &BTreeMap<String, String>,
    view: &View,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, entry) in &ledger.nft {
        if !key.name.starts_with(fail_closed::FAIL_CLOSED_TABLE_PREFIX) {
            continue;
        }
        for owner in &entry.owners {
            let how = rendered.get(owner).cloned().or_else(|| {
                view.merged
                    .effective
                    .iter()
                    .find(|r| r.kind() == Kind::EgressRoutePolicy && r.id().to_string() == *owner)
                    .and_then(Resource::as_egress_policy)
                    .filter(|p| p.fails_closed())
                    .map(|p| p.when_no_candidate().to_string())
            });
            if let Some(how) = how {
                out.insert(owner.clone(), how);
            }
        }
    }
    out
}

/// Records which policies fail closed now, with an event for each that
/// closed or opened, and marks their statuses for persisting.
fn note_fail_closed(
    was: &mut BTreeMap<String, String>,
    now_closed: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    st: &mut StepState,
) {
    if was == now_closed {
        return;
    }
    st.events
        .extend(crate::faults::fail_closed_transitions(was, now_closed, now));
    for id in was.keys().chain(now_closed.keys()) {
        if was.get(id) != now_closed.get(id) {
            st.moved.insert(id.clone());
        }
    }
    was.clone_from(now_closed);
}

/// Statuses the step computes (and may delete when the resource goes).
fn is_computed(id: &str) -> bool {
    [
        "/EgressRoutePolicy/",
        "/IPv4Route/",
        "/IPv6StaticRoute/",
        "/IPv4StaticAddress/",
        "/NAT44Rule/",
        "/IPAddressSet/",
        "/HybridRoute/",
        "/OverlayPeer/",
    ]
    .iter()
    .any(|k| id.contains(k))
}
