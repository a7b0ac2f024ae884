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
use routerd_model::{Event, Resource, StateSnapshot};
use routerd_render::Dataplane;
use routerd_store::{PartRecord, Store};
use serde_json::Value;
use tokio::sync::{Mutex, Notify, mpsc};

use crate::core::Core;
use crate::links::LinkSource;
use crate::plugins::{PluginHost, PluginOutput, Plugins};
use crate::queue::{Backoff, Outcome, WorkQueue};

mod config;
mod handler;
mod parts;
mod read;

pub use handler::Handler;

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

    /// Where every probe's round-trip time goes (the metrics histogram);
    /// given once, before the first `configure`.
    fn record_latency(&mut self, _sink: Arc<crate::metrics::ProbeLatency>) {}

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
    /// `--unknown-fields`: whether a field no type declares rejects the
    /// configuration or only warns (routerd's own files rely on routerd
    /// dropping such fields).
    pub unknown_fields: routerd_model::UnknownFields,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_path: PathBuf::from("/etc/routerd/config.yaml"),
            resync: Duration::from_secs(30),
            unknown_fields: routerd_model::UnknownFields::Error,
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
    /// Resources of routerd kinds the files keep without this daemon
    /// managing them (listed by the control API's plan, never rendered).
    unmanaged: std::sync::Mutex<Vec<routerd_model::Unmanaged>>,
    /// Serializes apply, delete and reload from reading the files to the
    /// step that runs the result (docs/adr/0008-api-applied-config.md).
    config_lock: Mutex<()>,
    /// The outcome of the last SIGHUP reload (`status.lastReload`).
    last_reload: std::sync::Mutex<Option<Value>>,
    started: DateTime<Utc>,
    steps: tokio::sync::watch::Sender<StepSummary>,
    plugin_tx: std::sync::Mutex<Option<mpsc::Sender<PluginOutput>>>,
    plugins: PluginHost,
    counters: std::sync::Mutex<crate::metrics::Counters>,
    health_detail: std::sync::Mutex<Option<Arc<dyn HealthDetail>>>,
    /// Probe round-trip times, fed by the health driver.
    pub(crate) probe_latency: Arc<crate::metrics::ProbeLatency>,
    /// Resolves IPAddressSet names (none: names stay unresolved).
    resolver: std::sync::Mutex<Option<Arc<dyn routerd_resolve::Resolver>>>,
    /// The last store write that failed, until a step commits again.
    store_error: std::sync::Mutex<Option<(DateTime<Utc>, String)>>,
    heartbeat: crate::watchdog::Heartbeat,
    /// This node's part in EgressGateway groups (keepalived, conntrackd).
    gateway: std::sync::Mutex<Option<Arc<crate::gateway::GatewayAgent>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Parses and validates configuration text as startup configuration.
pub fn load_config(name: &str, text: &str) -> Result<Vec<Resource>, String> {
    load_config_with(name, text, routerd_model::UnknownFields::Error)
}

/// [`load_config`] with unknown fields reported per `mode`.
pub fn load_config_with(
    name: &str,
    text: &str,
    mode: routerd_model::UnknownFields,
) -> Result<Vec<Resource>, String> {
    let (loaded, diags) = routerd_model::load_and_validate_with(&[(name, text)], mode);
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

/// The `Router` documents' `spec.reconcile` settings of configuration text
/// (a stored generation, which keeps the operator's envelope).
pub fn reconcile_settings(name: &str, text: &str) -> crate::core::ReconcileSettings {
    let mut loaded = routerd_model::Loaded::new();
    loaded.add_file(name, text);
    crate::core::ReconcileSettings::from_routers(&loaded.routers)
}

/// Logs each configuration warning (an ignored routerd field, an
/// unmanaged routerd kind, ...) and records it as a
/// `routerd.config.warning` event, once per load of the files.
pub(crate) fn config_warnings(
    w: &mut routerd_store::Writer<'_>,
    warnings: &[String],
    now: DateTime<Utc>,
) {
    for text in warnings {
        tracing::warn!(warning = %text, "configuration");
        let mut e = Event::info(
            "routerd.config.warning",
            routerd_model::ObjectRef::daemon(),
            now,
        );
        e.severity = "warning".into();
        e.reason = "ConfigWarning".into();
        e.message = text.clone();
        w.append_event(e);
    }
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
        core.set_parts(
            store
                .parts()?
                .into_iter()
                .filter(|p| p.state != routerd_store::PartState::Dropped)
                .map(|p| p.part)
                .collect(),
        );
        // The operator's file, its drop-ins and the managed file, as one.
        let layout = crate::configfile::Layout::for_config(&options.config_path)
            .with_unknown_fields(options.unknown_fields);
        let mut warnings = Vec::new();
        let mut unmanaged = Vec::new();
        let (text, resources, settings) = match crate::configfile::read(&layout)
            .and_then(|s| s.assemble(None))
            .map(|a| {
                warnings = a.warnings;
                unmanaged = a.unmanaged;
                (a.text, a.resources, a.reconcile)
            })
            .map_err(|e| e.to_string())
        {
            Ok(ok) => ok,
            Err(err) => match store.last_good_generation()? {
                Some(g) => {
                    tracing::error!(%err, generation = g.generation, "configuration file unusable; using the last applied generation");
                    let r = load_config_with(
                        "<stored generation>",
                        &g.config_yaml,
                        options.unknown_fields,
                    )
                    .map_err(DaemonError::Config)?;
                    let settings = reconcile_settings("<stored generation>", &g.config_yaml);
                    (g.config_yaml, r, settings)
                }
                None => return Err(DaemonError::Config(err)),
            },
        };
        core.set_startup(resources);
        core.set_reconcile(settings);
        let now = clock.now();
        let mut w = store.writer();
        core.generation = w
            .begin_generation_if_changed(&config_hash(&text), &text, now)?
            .generation;
        config_warnings(&mut w, &warnings, now);
        w.commit()?;
        Ok(Arc::new(Shared {
            core: Mutex::new(core),
            store,
            queue: WorkQueue::new(Backoff::default()),
            events: Notify::new(),
            clock,
            options,
            config_text: Mutex::new(text),
            unmanaged: std::sync::Mutex::new(unmanaged),
            config_lock: Mutex::new(()),
            last_reload: std::sync::Mutex::new(None),
            started: now,
            steps: tokio::sync::watch::Sender::new(StepSummary::default()),
            plugin_tx: std::sync::Mutex::new(None),
            plugins: PluginHost::new(),
            counters: std::sync::Mutex::new(crate::metrics::Counters::default()),
            health_detail: std::sync::Mutex::new(None),
            probe_latency: Arc::default(),
            resolver: std::sync::Mutex::new(None),
            store_error: std::sync::Mutex::new(None),
            heartbeat: crate::watchdog::Heartbeat::default(),
            gateway: std::sync::Mutex::new(None),
        }))
    }

    /// Sets what deletes the connections of dead paths
    /// (`flushOnFailover: deadPath`).
    pub async fn set_conntrack_flusher(
        &self,
        flusher: Arc<dyn routerd_conntrack::ConntrackFlusher>,
    ) {
        self.core.lock().await.set_flusher(flusher);
    }

    /// Gives the daemon a DNS resolver for IPAddressSet names; [`run`]
    /// takes it when it starts (the binary passes hickory over
    /// resolv.conf, tests an in-memory one).
    pub fn set_resolver(&self, resolver: Arc<dyn routerd_resolve::Resolver>) {
        *self
            .resolver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(resolver);
    }

    /// Gives the daemon its gateway agent (`--node-name`); [`run`] feeds
    /// it after every step and takes its statuses as observations.
    pub fn set_gateway(&self, agent: Arc<crate::gateway::GatewayAgent>) {
        *self
            .gateway
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(agent);
    }

    /// Runs `f` on the core (read-only helpers of sibling modules).
    pub(crate) async fn with_core<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        f(&*self.core.lock().await)
    }

    /// The gateway agent, if this daemon has one.
    pub fn gateway(&self) -> Option<Arc<crate::gateway::GatewayAgent>> {
        self.gateway
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
        let mut e = Event::info(
            "routerd.store.failed",
            routerd_model::ObjectRef::daemon(),
            now,
        );
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

    /// `Starting` before the first step, `Degraded` while the last step
    /// failed, an owner is refused or the store cannot be written, else
    /// `Ready` (what `routerctl status` and `routerd_daemon_phase` say).
    pub(crate) fn phase(&self) -> &'static str {
        let last = self.steps.borrow();
        if last.seq == 0 {
            "Starting"
        } else if last.error.is_some() || !last.faults.is_empty() || self.store_error().is_some() {
            "Degraded"
        } else {
            "Ready"
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
        let degraded = self
            .core
            .lock()
            .await
            .faults()
            .map(|f| (f.owner.clone(), f.reason.clone()))
            .collect();
        let extra = crate::metrics::Extra {
            phase: self.phase(),
            degraded,
            latency: &self.probe_latency,
        };
        crate::metrics::render_all(&statuses, &counters, &parts, &extra)
    }
}

/// Runs the loop until `shutdown` resolves. The kernel state is left in
/// place on exit.
///
/// The loop only dispatches: each source of work has a named handler on
/// [`Loop`] (health results, plugin results, link refresh, the reconcile
/// step), so a new source plugs in as one more arm and one more handler.
pub async fn run<D, L, H>(
    shared: Arc<Shared>,
    dataplane: D,
    links: L,
    health: H,
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
    let resolver = shared
        .resolver
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(g) = shared.gateway() {
        g.set_observer(obs_tx.clone());
    }
    let mut health = health;
    health.record_latency(shared.probe_latency.clone());
    let mut lp = Loop {
        shared: shared.clone(),
        dataplane,
        links,
        health,
        names: crate::names::NameDriver::new(resolver),
        obs_tx,
        plugin_tx,
        plugins: Plugins::default(),
        plugins_generation: 0,
        last_effective: Vec::new(),
        on_step,
    };
    // Health checks start with the first step, from the effective config
    // and the statuses restored from the store.
    shared.queue.add(Key::Links);
    shared.queue.add(Key::Step);
    let mut resync = tokio::time::interval(shared.options.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        // Came round: the watchdog is fed from this, never from a timer.
        shared.heartbeat.beat();
        tokio::select! {
            _ = &mut shutdown => break,
            () = shared.heartbeat.poked() => {}
            _ = resync.tick() => lp.full_resync().await,
            Some(o) = obs_rx.recv() => {
                let mut batch = vec![o];
                while let Ok(more) = obs_rx.try_recv() {
                    batch.push(more);
                }
                lp.on_health(batch).await;
            }
            Some(out) = plugin_rx.recv() => lp.on_plugin_output(out).await,
            Some(()) = async {
                match dataplane_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => lp.full_resync().await,
            key = shared.queue.next() => {
                let outcome = match key {
                    Key::Reload => {
                        // Off the loop: a reload waits for an apply in
                        // progress, which waits for this loop's next step.
                        config::spawn_reload(&shared);
                        Outcome::Done
                    }
                    Key::Links => lp.refresh_links().await,
                    Key::Step => lp.step().await,
                };
                shared.queue.done(key, outcome);
            }
        }
    }
    if let Err(e) = shared.store.flush() {
        tracing::error!(error = %e, "final store flush failed");
    }
}

/// What the loop owns besides the shared state: the adapters and the
/// bookkeeping of the plugins and health checks it started.
struct Loop<D, L, H, F> {
    shared: Arc<Shared>,
    dataplane: D,
    links: L,
    health: H,
    /// Resolves IPAddressSet names off the loop.
    names: crate::names::NameDriver,
    obs_tx: mpsc::Sender<Observation>,
    plugin_tx: mpsc::Sender<PluginOutput>,
    plugins: Plugins,
    /// The configuration generation the plugins were started for.
    plugins_generation: u64,
    /// The effective resources the health checks were configured for.
    last_effective: Vec<routerd_model::ResourceId>,
    on_step: F,
}

impl<D, L, H, F> Loop<D, L, H, F>
where
    D: Dataplane,
    L: LinkSource,
    H: HealthDriver,
    F: Fn(&crate::core::StepReport) + Send,
{
    /// The periodic resync and kernel drift: links, then a full step.
    async fn full_resync(&mut self) {
        self.shared.core.lock().await.request_full();
        self.shared.queue.add(Key::Links);
        self.shared.queue.add(Key::Step);
    }

    /// Health results and IPAddressSet resolutions: those that can change
    /// a selection or a set's members wake a step; the rest only refresh
    /// what readers see.
    async fn on_health(&mut self, batch: Vec<Observation>) {
        let shared = &self.shared;
        shared.count(|c| c.health_updates += batch.len() as u64);
        let mut core = shared.core.lock().await;
        let mut events = Vec::new();
        let mut relevant = false;
        for o in batch {
            let moves = if crate::names::is_address_set(&o.id) {
                crate::names::members_changed(core.statuses.get(&o.id), &o.status)
            } else if crate::gateway::is_gateway_status(&o.id) {
                core.statuses.get(&o.id).map(crate::gateway::render_key)
                    != Some(crate::gateway::render_key(&o.status))
            } else {
                selection_relevant(core.statuses.get(&o.id), &o.status)
            };
            if moves {
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
                self.plugins.publish(&e);
                w.append_event(e);
            }
            if let Err(e) = w.commit() {
                shared.store_failed("storing health events", &e);
            }
            shared.events.notify_waiters();
        }
        // A probe that only refreshes lastCheckedAt and history changes no
        // selection; the fresh status is in memory for the next step and
        // the periodic resync persists it.
        if relevant {
            shared.queue.add(Key::Step);
        }
    }

    /// A plugin run's events and part: stored, published to the plugins'
    /// event triggers, and the part handed to the merge.
    async fn on_plugin_output(&mut self, out: PluginOutput) {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut w = shared.store.writer();
        for e in &out.events {
            w.append_event(e.clone());
        }
        if let Some(part) = &out.part {
            let rec = PartRecord {
                part: part.clone(),
                state: routerd_store::PartState::Active,
                reason: String::new(),
                stored_at: now,
            };
            if let Err(e) = w.put_part(&rec) {
                shared.store_failed("storing a dynamic part", &e);
            }
        }
        match w.commit() {
            Ok(stored) => {
                for e in &stored {
                    self.plugins.publish(e);
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

    /// Link statuses from the link source; a change wakes a step.
    async fn refresh_links(&mut self) -> Outcome {
        let mut core = self.shared.core.lock().await;
        let observed = crate::links::statuses(core.startup(), &self.links.links());
        let changed = observed
            .iter()
            .any(|(k, v)| core.statuses.get(k) != Some(v));
        core.observe(observed);
        drop(core);
        if changed {
            self.shared.queue.add(Key::Step);
        }
        Outcome::Done
    }

    /// One reconcile step and what follows from it: plugins and health
    /// checks (re)started for a new configuration, part states recorded,
    /// the next wake-up armed, the step summary published.
    async fn step(&mut self) -> Outcome {
        let shared = self.shared.clone();
        let now = shared.clock.now();
        let mut core = shared.core.lock().await;
        if core.generation != self.plugins_generation {
            self.plugins_generation = core.generation;
            let store = shared.store.clone();
            self.plugins = Plugins::start(
                &shared.plugins,
                core.startup(),
                move |src| store.max_generation(src).unwrap_or(0),
                self.plugin_tx.clone(),
            );
        }
        // Expired parts contribute nothing; the store keeps them.
        core.expire_parts(now);
        let res = core.step(&mut self.dataplane, &shared.store, now);
        if let Some(next) = core.next_wake().and_then(|t| (t - now).to_std().ok()) {
            shared.queue.add_after(Key::Step, next);
        }
        if res.as_ref().is_ok_and(|r| r.parts_changed) {
            record_part_states(&shared.store, core.part_reports(), now);
        }
        if res.as_ref().is_ok_and(|r| r.full) {
            self.configure_health(&core);
            self.names.configure(
                core.effective(),
                &core.statuses,
                shared.clock.clone(),
                self.obs_tx.clone(),
            );
        }
        if let Some(g) = shared.gateway() {
            crate::gateway::after_step(&g, &core, res.as_ref().ok(), now);
        }
        let generation = core.generation;
        drop(core);
        shared.count(|c| c.steps += 1);
        match res {
            Ok(report) => self.stepped(generation, now, &report),
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

    /// Health checks follow the effective configuration.
    fn configure_health(&mut self, core: &Core) {
        let effective: Vec<routerd_model::ResourceId> =
            core.effective().iter().map(Resource::id).collect();
        // A derived probe source that moved (an address added or removed)
        // reconfigures the checks too.
        if effective != self.last_effective || self.health.stale(core.effective()) {
            self.health
                .configure(core.effective(), &core.statuses, self.obs_tx.clone());
            *self
                .shared
                .health_detail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = self.health.detail();
            self.last_effective = effective;
        }
    }

    /// Counters, the step summary, and whether the step runs again.
    fn stepped(
        &self,
        generation: u64,
        now: DateTime<Utc>,
        report: &crate::core::StepReport,
    ) -> Outcome {
        let shared = &self.shared;
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
        // Plugins with `event` triggers hear every event the step emitted
        // (status, selection, route, fault and part changes), not only
        // plugin runs' own; a burst coalesces into one run per plugin.
        for e in &report.events {
            self.plugins.publish(e);
        }
        (self.on_step)(report);
        if let Some(err) = failed {
            tracing::warn!(error = %err, "dataplane step failed; retrying");
            Outcome::Retry
        } else if report.retry {
            // Refused operations and absent devices are tried again with
            // backoff (at most every 30 s), besides the link and route
            // events that usually clear them.
            Outcome::Retry
        } else {
            Outcome::Done
        }
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
        if rec.state == routerd_store::PartState::Dropped {
            continue;
        }
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
