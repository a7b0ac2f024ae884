//! The daemon: configuration in; link, health and plugin observations and
//! timers feeding one keyed work queue; the reconcile step; statuses and
//! events out through the store and the control socket.
//!
//! Everything with a side effect is handed in (dataplane, store, link
//! source, health driver, shutdown), so the loop runs in tests on an
//! in-memory dataplane and paused time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerd_api::control::ApplyRequest;
use routerd_model::{Event, ObjectRef, Resource, StateSnapshot};
use routerd_render::Dataplane;
use routerd_store::{EventQuery, PartRecord, Store};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, mpsc};

use crate::control::{ApiError, ControlHandler, ControlRequest};
use crate::core::Core;
use crate::links::LinkSource;
use crate::plugins::{PluginHost, PluginOutput, Plugins};
use crate::queue::{Backoff, Outcome, WorkQueue};

/// Work the loop does; each key runs at most once at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// Re-read the configuration file (SIGHUP).
    Reload,
    /// Refresh link statuses (link events, resync).
    Links,
    /// Run the reconcile step.
    Step,
}

/// Where the wall clock comes from (tests inject a fixed or stepping one).
pub trait WallClock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A status update from an observer (health checks).
#[derive(Debug, Clone)]
pub struct Observation {
    /// Resource id.
    pub id: String,
    /// Its new status.
    pub status: routerd_model::Status,
    /// An event to publish with it.
    pub event: Option<Event>,
}

/// Runs the health checks of the effective configuration.
pub trait HealthDriver: Send + 'static {
    /// (Re)configures the checks; observations go to `updates`. `previous`
    /// holds the statuses known so far (restored from the store after a
    /// restart), so checks can continue instead of starting from Unknown.
    fn configure(
        &mut self,
        effective: &[Resource],
        previous: &StateSnapshot,
        updates: mpsc::Sender<Observation>,
    );

    /// Where full statuses (probe history) come from, once configured.
    fn detail(&self) -> Option<Arc<dyn HealthDetail>> {
        None
    }

    /// Whether the checks must be configured again although the effective
    /// resources are the same ones: something they were derived from
    /// moved (a probe's source address on its device). Asked after every
    /// full step, which netlink address and link events cause.
    fn stale(&mut self, _effective: &[Resource]) -> bool {
        false
    }
}

/// Full health statuses, probe history included, fetched when someone
/// looks (describe, `get status`); the loop only carries summaries.
pub trait HealthDetail: Send + Sync {
    /// The full status maps of the named checks that exist.
    fn statuses(&self, names: Vec<String>) -> StatusesFuture<'_>;
}

/// What [`HealthDetail::statuses`] returns.
pub type StatusesFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<(String, routerd_model::Status)>> + Send + 'a>,
>;

/// A health driver that runs nothing (tests, or checks fed from outside).
#[derive(Debug, Default)]
pub struct NoHealth;

impl HealthDriver for NoHealth {
    fn configure(&mut self, _: &[Resource], _: &StateSnapshot, _: mpsc::Sender<Observation>) {}
}

/// Daemon settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The startup configuration file.
    pub config_path: PathBuf,
    /// Periodic full resync (drift repair even without events).
    pub resync: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_path: PathBuf::from("/etc/routerd/config.yaml"),
            resync: Duration::from_secs(30),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Neither the configuration file nor a stored generation is usable.
    #[error("no usable configuration: {0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] routerd_store::StoreError),
}

/// What the last reconcile step did, published after every step so that
/// `apply` can wait for the step that carries its generation and report
/// the owners the kernel refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepSummary {
    /// Counts steps since start (0: none yet).
    pub seq: u64,
    /// The configuration generation the step ran with.
    pub generation: u64,
    /// When it ran.
    pub at: Option<DateTime<Utc>>,
    /// Why the step failed as a whole (plan or store), if it did.
    pub error: Option<String>,
    /// Owners whose kernel state is not what they asked for.
    pub faults: Vec<routerd_render::Fault>,
}

/// State shared between the loop and the control handler.
pub struct Shared {
    core: Mutex<Core>,
    store: Arc<Store>,
    queue: WorkQueue<Key>,
    events: Notify,
    clock: Arc<dyn WallClock>,
    options: Options,
    config_text: Mutex<String>,
    started: DateTime<Utc>,
    steps: tokio::sync::watch::Sender<StepSummary>,
    plugin_tx: std::sync::Mutex<Option<mpsc::Sender<PluginOutput>>>,
    plugins: PluginHost,
    counters: std::sync::Mutex<crate::metrics::Counters>,
    health_detail: std::sync::Mutex<Option<Arc<dyn HealthDetail>>>,
    /// The last store write that failed, until a step commits again.
    store_error: std::sync::Mutex<Option<(DateTime<Utc>, String)>>,
    heartbeat: crate::watchdog::Heartbeat,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Parses and validates configuration text as startup configuration.
pub fn load_config(name: &str, text: &str) -> Result<Vec<Resource>, String> {
    let (loaded, diags) = routerd_model::load_and_validate(&[(name, text)]);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if errors.is_empty() {
        Ok(loaded.resources)
    } else {
        Err(errors.join("\n"))
    }
}

/// The `Router` documents' `spec.reconcile` settings of configuration text.
pub fn reconcile_settings(name: &str, text: &str) -> crate::core::ReconcileSettings {
    let mut loaded = routerd_model::Loaded::new();
    loaded.add_file(name, text);
    let mut out = crate::core::ReconcileSettings::default();
    for r in loaded.routers {
        out.protected_interfaces.extend(r.protected_interfaces);
        out.remove_orphans |= r.reconcile_mode.as_deref() == Some("strict");
    }
    out
}

/// Hex SHA-256 of the configuration text, as the generation record documents.
fn config_hash(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

impl Shared {
    /// Builds the shared state: restores statuses, ledger and parts from the
    /// store, then loads the configuration file, falling back to the last
    /// successfully applied generation when the file is missing or invalid.
    pub fn new(
        options: Options,
        store: Arc<Store>,
        clock: Arc<dyn WallClock>,
    ) -> Result<Arc<Shared>, DaemonError> {
        let mut core = Core::default();
        core.restore(&store)?;
        core.set_parts(store.parts()?.into_iter().map(|p| p.part).collect());
        let file = std::fs::read_to_string(&options.config_path);
        let name = options.config_path.display().to_string();
        let (text, resources) = match file
            .map_err(|e| e.to_string())
            .and_then(|t| load_config(&name, &t).map(|r| (t, r)))
        {
            Ok(ok) => ok,
            Err(err) => match store.last_good_generation()? {
                Some(g) => {
                    tracing::error!(%err, generation = g.generation, "configuration file unusable; using the last applied generation");
                    let r = load_config("<stored generation>", &g.config_yaml)
                        .map_err(DaemonError::Config)?;
                    (g.config_yaml, r)
                }
                None => return Err(DaemonError::Config(err)),
            },
        };
        core.set_startup(resources);
        core.set_reconcile(reconcile_settings(&name, &text));
        let now = clock.now();
        let mut w = store.writer();
        core.generation = w.begin_generation(&config_hash(&text), &text, now)?;
        w.commit()?;
        Ok(Arc::new(Shared {
            core: Mutex::new(core),
            store,
            queue: WorkQueue::new(Backoff::default()),
            events: Notify::new(),
            clock,
            options,
            config_text: Mutex::new(text),
            started: now,
            steps: tokio::sync::watch::Sender::new(StepSummary::default()),
            plugin_tx: std::sync::Mutex::new(None),
            plugins: PluginHost::new(),
            counters: std::sync::Mutex::new(crate::metrics::Counters::default()),
            health_detail: std::sync::Mutex::new(None),
            store_error: std::sync::Mutex::new(None),
            heartbeat: crate::watchdog::Heartbeat::default(),
        }))
    }

    /// Queues work (for signal handlers and event sources).
    pub fn trigger(&self, key: Key) {
        self.queue.add(key);
    }

    /// Follows the summaries of finished steps.
    pub fn steps(&self) -> tokio::sync::watch::Receiver<StepSummary> {
        self.steps.subscribe()
    }

    fn publish_step(
        &self,
        generation: u64,
        at: DateTime<Utc>,
        error: Option<String>,
        faults: Vec<routerd_render::Fault>,
    ) {
        self.steps.send_modify(|s| {
            s.seq += 1;
            s.generation = generation;
            s.at = Some(at);
            s.error = error;
            s.faults = faults;
        });
    }

    /// Records a failed store write: counted, logged, an event attempted,
    /// and `routerctl status` says Degraded with the error until a step
    /// commits again. A full state directory must never hide behind Ready.
    fn store_failed(&self, context: &str, error: &dyn std::fmt::Display) {
        let now = self.clock.now();
        let message = format!("{context}: {error}");
        tracing::error!(%message, "store write failed");
        self.count(|c| c.store_failures += 1);
        let mut e = Event::info("routerd.store.failed", ObjectRef::default(), now);
        e.severity = "error".into();
        e.reason = "StoreWriteFailed".into();
        e.message.clone_from(&message);
        let mut w = self.store.writer();
        w.append_event(e);
        let _ = w.commit();
        *self
            .store_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, message));
    }

    fn store_recovered(&self) {
        self.store_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// The last failed store write, if no step committed since.
    pub fn store_error(&self) -> Option<(DateTime<Utc>, String)> {
        self.store_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The loop's heartbeat, which the systemd watchdog is fed from
    /// ([`crate::watchdog::feed`]).
    pub fn heartbeat(&self) -> &crate::watchdog::Heartbeat {
        &self.heartbeat
    }

    /// What every plugin run shares (gates, process-group records).
    pub fn plugins(&self) -> &PluginHost {
        &self.plugins
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn count(&self, f: impl FnOnce(&mut crate::metrics::Counters)) {
        let mut c = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut c);
    }

    /// Puts the full status (probe history included) into listed
    /// HealthCheck items; the loop's statuses carry no history.
    async fn add_history(&self, items: &mut [Value]) {
        let detail = self
            .health_detail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(detail) = detail else { return };
        let names: Vec<String> = items
            .iter()
            .filter(|i| i.get("kind").and_then(Value::as_str) == Some("HealthCheck"))
            .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        if names.is_empty() {
            return;
        }
        let full: std::collections::HashMap<String, routerd_model::Status> =
            detail.statuses(names).await.into_iter().collect();
        for item in items.iter_mut() {
            let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
            if item.get("kind").and_then(Value::as_str) == Some("HealthCheck")
                && let Some(st) = full.get(name)
            {
                item["status"] = serde_json::to_value(st).unwrap_or_default();
            }
        }
    }

    /// Prometheus exposition of the current state.
    pub async fn metrics(&self) -> String {
        let statuses = self.core.lock().await.reported_statuses();
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut by_state: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for p in self.store.parts().unwrap_or_default() {
            let state = serde_json::to_value(p.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *by_state.entry(state).or_default() += 1;
        }
        let parts: Vec<(String, usize)> = by_state.into_iter().collect();
        crate::metrics::render(&statuses, &counters, &parts)
    }
}

/// Runs the loop until `shutdown` resolves. The kernel state is left in
/// place on exit.
pub async fn run<D, L, H>(
    shared: Arc<Shared>,
    mut dataplane: D,
    mut links: L,
    mut health: H,
    mut dataplane_events: Option<mpsc::Receiver<()>>,
    on_step: impl Fn(&crate::core::StepReport) + Send,
    shutdown: impl std::future::Future<Output = ()>,
) where
    D: Dataplane,
    L: LinkSource,
    H: HealthDriver,
{
    let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(4096);
    let (plugin_tx, mut plugin_rx) = mpsc::channel::<PluginOutput>(256);
    *shared
        .plugin_tx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(plugin_tx.clone());
    let mut plugins_generation = 0;
    let mut plugins = Plugins::default();
    // Health checks start with the first step, from the effective config
    // and the statuses restored from the store.
    shared.queue.add(Key::Links);
    shared.queue.add(Key::Step);
    let mut resync = tokio::time::interval(shared.options.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut last_effective: Vec<routerd_model::ResourceId> = Vec::new();
    loop {
        // Came round: the watchdog is fed from this, never from a timer.
        shared.heartbeat.beat();
        tokio::select! {
            _ = &mut shutdown => break,
            () = shared.heartbeat.poked() => {}
            _ = resync.tick() => {
                shared.core.lock().await.request_full();
                shared.queue.add(Key::Links);
                shared.queue.add(Key::Step);
            }
            Some(o) = obs_rx.recv() => {
                let mut batch = vec![o];
                while let Ok(more) = obs_rx.try_recv() {
                    batch.push(more);
                }
                shared.count(|c| c.health_updates += batch.len() as u64);
                let mut core = shared.core.lock().await;
                let mut events = Vec::new();
                let mut relevant = false;
                for o in batch {
                    if selection_relevant(core.statuses.get(&o.id), &o.status) {
                        relevant = true;
                        core.observe_one(o.id, o.status);
                    } else {
                        core.refresh_quietly(o.id, o.status);
                    }
                    events.extend(o.event);
                }
                drop(core);
                if !events.is_empty() {
                    let mut w = shared.store.writer();
                    for e in events {
                        w.append_event(e);
                    }
                    if let Err(e) = w.commit() {
                        shared.store_failed("storing health events", &e);
                    }
                    shared.events.notify_waiters();
                }
                // A probe that only refreshes lastCheckedAt and history changes
                // no selection; the fresh status is in memory for the next
                // step and the periodic resync persists it.
                if relevant {
                    shared.queue.add(Key::Step);
                }
            }
            Some(out) = plugin_rx.recv() => {
                let now = shared.clock.now();
                let mut w = shared.store.writer();
                for e in &out.events {
                    w.append_event(e.clone());
                }
                if let Some(part) = &out.part {
                    let rec = PartRecord { part: part.clone(), state: routerd_store::PartState::Active, reason: String::new(), stored_at: now };
                    if let Err(e) = w.put_part(&rec) {
                        shared.store_failed("storing a dynamic part", &e);
                    }
                }
                match w.commit() {
                    Ok(stored) => {
                        for e in &stored {
                            plugins.publish(&e.type_);
                        }
                        shared.events.notify_waiters();
                    }
                    Err(e) => shared.store_failed("storing plugin results", &e),
                }
                if let Some(part) = out.part {
                    shared.core.lock().await.upsert_part(part);
                    shared.queue.add(Key::Step);
                }
            }
            Some(()) = async {
                match dataplane_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                shared.core.lock().await.request_full();
                shared.queue.add(Key::Links);
                shared.queue.add(Key::Step);
            }
            key = shared.queue.next() => {
                let outcome = match key {
                    Key::Reload => reload(&shared).await,
                    Key::Links => {
                        let mut core = shared.core.lock().await;
                        let observed = crate::links::statuses(core.startup(), &links.links());
                        let changed = observed.iter().any(|(k, v)| core.statuses.get(k) != Some(v));
                        core.observe(observed);
                        drop(core);
                        if changed {
                            shared.queue.add(Key::Step);
                        }
                        Outcome::Done
                    }
                    Key::Step => {
                        let now = shared.clock.now();
                        let mut core = shared.core.lock().await;
                        if core.generation != plugins_generation {
                            plugins_generation = core.generation;
                            let store = shared.store.clone();
                            plugins = Plugins::start(
                                &shared.plugins,
                                core.startup(),
                                move |src| store.max_generation(src).unwrap_or(0),
                                plugin_tx.clone(),
                            );
                        }
                        // Expired parts contribute nothing; the store keeps them.
                        core.expire_parts(now);
                        let res = core.step(&mut dataplane, &shared.store, now);
                        if let Some(next) = core.next_wake().and_then(|t| (t - now).to_std().ok()) {
                            shared.queue.add_after(Key::Step, next);
                        }
                        if res.as_ref().is_ok_and(|r| r.parts_changed) {
                            record_part_states(&shared.store, core.part_reports(), now);
                        }
                        if res.as_ref().is_ok_and(|r| r.full) {
                            let effective: Vec<routerd_model::ResourceId> =
                                core.effective().iter().map(Resource::id).collect();
                            if effective != last_effective || health.stale(core.effective()) {
                                health.configure(core.effective(), &core.statuses, obs_tx.clone());
                                *shared
                                    .health_detail
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner) = health.detail();
                                last_effective = effective;
                            }
                        }
                        let generation = core.generation;
                        drop(core);
                        shared.count(|c| c.steps += 1);
                        match res {
                            Ok(report) => {
                                shared.store_recovered();
                                shared.count(|c| {
                                    let secs = report.apply_duration.as_secs_f64();
                                    c.dataplane_ops += report.applied_ops as u64;
                                    c.apply_seconds_sum += secs;
                                    c.apply_seconds_last = secs;
                                    c.apply_count += 1;
                                    if report.dataplane_error.is_some() {
                                        c.step_failures += 1;
                                    }
                                });
                                let failed = report.dataplane_error.clone();
                                shared.publish_step(generation, now, failed.clone(), report.faults.clone());
                                if !report.events.is_empty() {
                                    shared.events.notify_waiters();
                                }
                                on_step(&report);
                                if let Some(err) = failed {
                                    tracing::warn!(error = %err, "dataplane apply failed; keeping the last good state and retrying");
                                    Outcome::Retry
                                } else {
                                    Outcome::Done
                                }
                            }
                            Err(e) => {
                                if let crate::core::StepError::Store(se) = &e {
                                    shared.store_failed("reconcile step", se);
                                }
                                shared.count(|c| c.step_failures += 1);
                                tracing::error!(error = %e, "reconcile step failed");
                                shared.publish_step(generation, now, Some(e.to_string()), Vec::new());
                                Outcome::Retry
                            }
                        }
                    }
                };
                shared.queue.done(key, outcome);
            }
        }
    }
    if let Err(e) = shared.store.flush() {
        tracing::error!(error = %e, "final store flush failed");
    }
}

/// What of a health status selection reads, freshness aside: its phase,
/// its result, and its failure count while Failing (the grace below
/// unhealthyThreshold). `lastCheckedAt` is covered by the heartbeat and the
/// step's wake-up when health goes stale.
pub(crate) type SelectionKey = [Option<Value>; 3];

/// The [`SelectionKey`] of a health status.
pub(crate) fn selection_key(s: &routerd_model::Status) -> SelectionKey {
    let failing = s.get("phase").and_then(Value::as_str) == Some("Failing");
    [
        s.get("phase").cloned(),
        s.get("lastResult").cloned(),
        s.get("consecutiveFailed").filter(|_| failing).cloned(),
    ]
}

/// Whether a new health status can change a selection.
pub(crate) fn selection_relevant(
    old: Option<&routerd_model::Status>,
    new: &routerd_model::Status,
) -> bool {
    old.is_none_or(|old| selection_key(old) != selection_key(new))
}

/// Writes the merge's verdict (active, expired, superseded, rejected and
/// why) onto the stored parts, so `routerctl dynamic list` explains them.
fn record_part_states(store: &Store, reports: &[Value], now: DateTime<Utc>) {
    let Ok(stored) = store.parts() else { return };
    let mut w = store.writer();
    let mut dirty = false;
    for mut rec in stored {
        let name = rec.part.name().to_string();
        let Some(r) = reports
            .iter()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(&name))
        else {
            continue;
        };
        let state = match r.get("state").and_then(Value::as_str) {
            Some("active") => routerd_store::PartState::Active,
            Some("expired") => routerd_store::PartState::Expired,
            Some("superseded") => routerd_store::PartState::Superseded,
            Some("rejected") => routerd_store::PartState::Rejected,
            _ => continue,
        };
        let reason = r
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if rec.state != state || rec.reason != reason {
            rec.state = state;
            rec.reason = reason;
            rec.stored_at = now;
            dirty |= w.put_part(&rec).is_ok();
        }
    }
    if dirty {
        let _ = w.commit();
    }
}

async fn reload(shared: &Shared) -> Outcome {
    let path = &shared.options.config_path;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "reload: cannot read configuration; keeping the current one");
            return Outcome::Failed;
        }
    };
    match apply_text(shared, &path.display().to_string(), text).await {
        Ok(_) => Outcome::Done,
        Err(e) => {
            tracing::error!(error = %e.message, "reload: configuration rejected; keeping the current one");
            Outcome::Failed
        }
    }
}

/// Validates `text` and makes it the startup configuration (a new
/// generation). An invalid configuration changes nothing.
async fn apply_text(shared: &Shared, name: &str, text: String) -> Result<u64, ApiError> {
    let resources = load_config(name, &text).map_err(ApiError::bad_request)?;
    let now = shared.clock.now();
    let mut w = shared.store.writer();
    let generation = w
        .begin_generation(&config_hash(&text), &text, now)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    w.commit().map_err(|e| ApiError::internal(e.to_string()))?;
    {
        let mut core = shared.core.lock().await;
        core.set_startup(resources);
        core.set_reconcile(reconcile_settings(name, &text));
        core.generation = generation;
    }
    *shared.config_text.lock().await = text;
    shared.queue.add(Key::Links);
    shared.queue.add(Key::Step);
    Ok(generation)
}

/// Marks the current generation applied once a step succeeded with it.
pub async fn commit_generation(shared: &Shared) {
    let generation = shared.core.lock().await.generation;
    let now = shared.clock.now();
    let mut w = shared.store.writer();
    if w.finish_generation(generation, "Applied", Vec::new(), now)
        .is_ok()
    {
        let _ = w.commit();
    }
}

fn items(resources: &[Resource], statuses: &StateSnapshot, filter: &str) -> Vec<Value> {
    let (kind, name) = match filter.split_once('/') {
        Some((k, n)) => (Some(k), Some(n)),
        None if filter == "resources" || filter == "all" => (None, None),
        None => (Some(filter), None),
    };
    resources
        .iter()
        .filter(|r| kind.is_none_or(|k| r.kind().as_str().eq_ignore_ascii_case(k)))
        .filter(|r| name.is_none_or(|n| r.name() == n))
        .map(|r| {
            let id = r.id().to_string();
            let spec = serde_json::to_value(r)
                .ok()
                .and_then(|v| v.get("spec").cloned());
            json!({
                "apiVersion": r.api_version,
                "kind": r.kind().as_str(),
                "name": r.name(),
                "spec": spec,
                "status": statuses.get(&id),
            })
        })
        .collect()
}

/// The control handler of a running daemon.
#[derive(Debug, Clone)]
pub struct Handler(pub Arc<Shared>);

impl ControlHandler for Handler {
    async fn handle(&self, req: ControlRequest) -> Result<Value, ApiError> {
        let s = &self.0;
        let internal = |e: routerd_store::StoreError| ApiError::internal(e.to_string());
        match req {
            ControlRequest::Status => {
                let core = s.core.lock().await;
                let last = s.steps.borrow().clone();
                let issues: Vec<Value> = core
                    .statuses
                    .iter()
                    .filter(|(_, st)| {
                        matches!(st.get("phase").and_then(Value::as_str), Some("Pending" | "Error" | "Unhealthy" | "Down"))
                    })
                    .map(|(id, st)| json!({"id": id, "phase": st.get("phase"), "reason": st.get("reason")}))
                    .collect();
                let store_error = s.store_error();
                let phase = if last.seq == 0 {
                    "Starting"
                } else if last.error.is_some() || !last.faults.is_empty() || store_error.is_some() {
                    "Degraded"
                } else {
                    "Ready"
                };
                Ok(json!({
                    "apiVersion": routerd_model::id::CONTROL_API,
                    "kind": "Status",
                    "status": {
                        "phase": phase,
                        "generation": core.generation,
                        "startedAt": s.started,
                        "lastApplyTime": last.at,
                        "lastError": last.error,
                        "faults": last.faults,
                        "storeError": store_error.map(|(at, message)| json!({"at": at, "message": message})),
                        "resourceCount": core.effective().len(),
                        "resourcePhaseIssues": issues,
                        "queue": s.queue.len(),
                    }
                }))
            }
            ControlRequest::Get { subject, query } => {
                let core = s.core.lock().await;
                match subject.as_str() {
                    "status" => Ok(serde_json::to_value(&core.statuses).unwrap_or_default()),
                    "ledger" => Ok(serde_json::to_value(&core.ledger).unwrap_or_default()),
                    "events" => {
                        drop(core);
                        let q = EventQuery {
                            since_id: query
                                .get("since-id")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0),
                            topic: query.get("topic").cloned(),
                            resource: query.get("resource").cloned(),
                            limit: query.get("limit").and_then(|v| v.parse().ok()),
                            ascending: false,
                        };
                        let ev = s
                            .store
                            .events(&q)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?;
                        Ok(json!({"items": ev}))
                    }
                    "dynamic" => {
                        drop(core);
                        let parts = s.store.parts().map_err(internal)?;
                        Ok(json!({"items": parts}))
                    }
                    other => {
                        let mut list = items(core.effective(), &core.statuses, other);
                        drop(core);
                        if list.is_empty() && other.contains('/') {
                            return Err(ApiError::not_found(format!("{other} not found")));
                        }
                        s.add_history(&mut list).await;
                        Ok(json!({"items": list}))
                    }
                }
            }
            ControlRequest::Describe {
                target,
                events_limit,
            } => {
                let core = s.core.lock().await;
                let mut list = items(core.effective(), &core.statuses, &target);
                drop(core);
                list.truncate(1);
                s.add_history(&mut list).await;
                let Some(item) = list.into_iter().next() else {
                    return Err(ApiError::not_found(format!("{target} not found")));
                };
                let ev = s
                    .store
                    .events(&EventQuery {
                        resource: Some(target),
                        limit: Some(events_limit.min(1000)),
                        ..Default::default()
                    })
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Ok(json!({"kind": "DescribeResult", "resource": item, "events": ev}))
            }
            ControlRequest::Explain { policy } => {
                let core = s.core.lock().await;
                let id = format!("{}/EgressRoutePolicy/{policy}", routerd_model::id::NET_API);
                match core.decision(&id) {
                    Some(d) => {
                        Ok(json!({"policy": id, "decision": d, "status": core.statuses.get(&id)}))
                    }
                    None => Err(ApiError::not_found(format!(
                        "EgressRoutePolicy/{policy} has no decision record"
                    ))),
                }
            }
            ControlRequest::Events {
                since_id,
                topic,
                resource,
                limit,
                wait,
            } => {
                let q = EventQuery {
                    since_id,
                    topic,
                    resource,
                    limit: Some(limit.min(1000)),
                    ascending: true,
                };
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    let notified = s.events.notified();
                    let ev = s
                        .store
                        .events(&q)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                    if !ev.is_empty() || tokio::time::Instant::now() >= deadline {
                        return Ok(
                            json!({"items": ev, "lastId": s.store.last_event_id().map_err(internal)?}),
                        );
                    }
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
            }
            ControlRequest::Dynamic { source } => {
                let parts: Vec<PartRecord> = match &source {
                    Some(src) => s.store.parts_of(src),
                    None => s.store.parts(),
                }
                .map_err(internal)?;
                Ok(json!({"items": parts}))
            }
            ControlRequest::Validate(req) => {
                let text = if req.candidate_yaml.is_empty() {
                    s.config_text.lock().await.clone()
                } else {
                    req.candidate_yaml
                };
                match load_config("<candidate>", &text) {
                    Ok(_) => Ok(json!({"kind": "ValidateResult", "valid": true, "warnings": []})),
                    Err(e) => Ok(json!({"kind": "ValidateResult", "valid": false, "error": e})),
                }
            }
            ControlRequest::Plan(req) => {
                let (startup, parts, state) = {
                    let core = s.core.lock().await;
                    (
                        core.startup().to_vec(),
                        core.parts().to_vec(),
                        core.statuses.clone(),
                    )
                };
                let startup = if req.candidate_yaml.is_empty() {
                    startup
                } else {
                    load_config("<candidate>", &req.candidate_yaml)
                        .map_err(ApiError::bad_request)?
                };
                let doc = routerd_api::build_plan(&routerd_api::PlanInputs {
                    startup,
                    dynamic_parts: parts,
                    state,
                    now: s.clock.now(),
                })
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
                serde_json::to_value(doc).map_err(|e| ApiError::internal(e.to_string()))
            }
            ControlRequest::Apply(req) => apply(s, req).await,
            ControlRequest::PluginRun(req) => run_plugin(s, &req.name).await,
            ControlRequest::Delete(req) => {
                let (kind, name) = routerd_model::id::split_kind_name(&req.target)
                    .ok_or_else(|| ApiError::bad_request("target must be Kind/name"))?;
                let text = s.config_text.lock().await.clone();
                let mut resources = load_config("<current>", &text).map_err(ApiError::internal)?;
                let before = resources.len();
                resources.retain(|r| {
                    !(r.kind().as_str() == kind
                        && r.name() == name
                        && req
                            .target_api_version
                            .as_deref()
                            .is_none_or(|a| a == r.api_version))
                });
                if resources.len() == before {
                    return Err(ApiError::not_found(format!("{} not found", req.target)));
                }
                if req.dry_run {
                    return Ok(
                        json!({"kind": "DeleteResult", "deleted": [req.target], "dryRun": true}),
                    );
                }
                let new_text = to_stream(&resources)?;
                write_config(&s.options.config_path, &new_text)?;
                let generation = apply_text(s, "<delete>", new_text).await?;
                Ok(
                    json!({"kind": "DeleteResult", "deleted": [req.target], "generation": generation}),
                )
            }
        }
    }
}

fn to_stream(resources: &[Resource]) -> Result<String, ApiError> {
    let mut out = String::new();
    for r in resources {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(r).map_err(|e| ApiError::internal(e.to_string()))?);
    }
    Ok(out)
}

/// Writes the configuration file atomically (temp file, fsync, rename), so
/// a crash leaves either the old or the new file.
fn write_config(path: &std::path::Path, text: &str) -> Result<(), ApiError> {
    use std::io::Write;
    let tmp = path.with_extension("yaml.tmp");
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| ApiError::internal(format!("write {}: {e}", path.display())))
}

async fn apply(s: &Shared, req: ApplyRequest) -> Result<Value, ApiError> {
    let candidate =
        load_config("<candidate>", &req.candidate_yaml).map_err(ApiError::bad_request)?;
    let merged = if req.replace {
        candidate
    } else {
        let text = s.config_text.lock().await.clone();
        let mut current = load_config("<current>", &text).map_err(ApiError::internal)?;
        for r in candidate {
            match current.iter_mut().find(|c| c.id() == r.id()) {
                Some(slot) => *slot = r,
                None => current.push(r),
            }
        }
        current
    };
    let text = to_stream(&merged)?;
    // The merged config must itself be valid (references across old and new).
    load_config("<merged>", &text).map_err(ApiError::bad_request)?;
    if req.dry_run {
        return Ok(
            json!({"kind": "ApplyResult", "dryRun": true, "result": {"phase": "Planned", "resources": merged.len()}}),
        );
    }
    write_config(&s.options.config_path, &text)?;
    let generation = apply_text(s, "<apply>", text).await?;
    let mut ev = Event::info(
        "routerd.config.applied",
        ObjectRef::default(),
        s.clock.now(),
    );
    ev.reason = "ConfigApplied".into();
    ev.message = format!("generation {generation}");
    let mut w = s.store.writer();
    w.append_event(ev.attr("generation", generation.to_string()));
    w.commit().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(
        json!({"kind": "ApplyResult", "result": {"phase": "Applied", "generation": generation, "resources": merged.len()}}),
    )
}

/// Runs a plugin now on the daemon's behalf (`routerctl plugin run NAME`):
/// the part goes through the same checks and into the same store as a
/// triggered run. A plugin that is already running is refused with 409.
async fn run_plugin(s: &Shared, name: &str) -> Result<Value, ApiError> {
    use crate::plugins::{ManualRunError, run_manual};
    let startup = s.core.lock().await.startup().to_vec();
    let source = routerd_plugin::source_for(name);
    let previous = s
        .store
        .max_generation(&source)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let clock = || s.clock.now();
    let tx = s
        .plugin_tx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let report = run_manual(&s.plugins, &startup, name, previous, &clock, tx)
        .await
        .map_err(|e| match e {
            ManualRunError::NotFound(_) => ApiError::not_found(e.to_string()),
            other => ApiError {
                status: 409,
                message: other.to_string(),
            },
        })?;
    let part = report
        .outcome
        .as_ref()
        .ok()
        .map(routerd_plugin::CandidatePart::to_resource);
    let error = report.outcome.as_ref().err().map(ToString::to_string);
    Ok(json!({
        "kind": "PluginRunResult",
        "plugin": name,
        "mode": "stored",
        "source": source,
        "accepted": part.is_some(),
        "error": error,
        "part": part,
        "events": report.events,
    }))
}
