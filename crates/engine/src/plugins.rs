//! Plugins of a live daemon: every Plugin resource with triggers runs on
//! them (interval and event topics; routerd documents these but never runs
//! them), and `routerctl plugin run` runs one at once through the control
//! API. Each accepted part reaches the loop, which stores it and merges it.
//! A refused run keeps the source's previous part until its own expiry.
//!
//! Both paths share one [`PluginHost`]: a plugin never runs twice at once,
//! across configuration reloads too (see `routerd_plugin::gate`), and every
//! running plugin's process group is recorded for the start-up sweep.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use routerd_model::{Event, EventSource, Kind, Resource};
use routerd_plugin::groups::{self, SweepReport};
use routerd_plugin::invoke::{Invocation, Report, invoke};
use routerd_plugin::request::manual_trigger;
use routerd_plugin::runner::RunConfig;
use routerd_plugin::scheduler::{Busy, Gates, Holder, PluginTask, serve};
use routerd_plugin::{PartRules, SourceState, override_policies, source_for};
use tokio::sync::{broadcast, mpsc};

/// What one plugin run produced.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    /// The accepted part, as a DynamicConfigPart resource.
    pub part: Option<Resource>,
    /// The run's events (`routerd.plugin.run.*`, `routerd.dynamic.part.*`).
    pub events: Vec<Event>,
}

/// What every plugin run of one daemon shares, whatever started it. Cloning
/// shares it.
#[derive(Debug, Clone, Default)]
pub struct PluginHost {
    gates: Gates,
    group_dir: Arc<Mutex<Option<PathBuf>>>,
}

impl PluginHost {
    /// A host that records no process groups (until
    /// [`track_groups`](Self::track_groups)).
    pub fn new() -> Self {
        PluginHost::default()
    }

    /// Kills the process groups that runs of an earlier daemon left behind
    /// in `dir` (it died before they ended), then records the groups of
    /// this daemon's runs there. Call it once at start-up, before any plugin
    /// runs.
    pub fn track_groups(&self, dir: PathBuf) -> std::io::Result<SweepReport> {
        let report = groups::sweep(&dir)?;
        std::fs::create_dir_all(&dir)?;
        *self
            .group_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dir);
        Ok(report)
    }

    /// The per-plugin gates.
    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// Runner settings for a run of this daemon.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            group_dir: self
                .group_dir
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ..RunConfig::from_process_env()
        }
    }
}

/// Why a manual run did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManualRunError {
    /// No Plugin of that name in the startup configuration.
    #[error("Plugin \"{0}\" not found in startup config")]
    NotFound(String),
    /// The plugin is running (from a trigger or another manual run). A
    /// manual run is refused rather than queued: the caller learns at once,
    /// and the run in progress stores its own result.
    #[error(transparent)]
    Busy(Busy),
}

/// Runs plugin `name` of `startup` now (`routerctl plugin run NAME`), unless
/// it is already running. `stored_generation` is the highest generation of
/// its source in the store; the part is numbered after it and after any run
/// of this process. The output goes to `out` (the loop) before the plugin's
/// gate opens again, so the next run of the plugin comes after it.
pub async fn run_manual(
    host: &PluginHost,
    startup: &[Resource],
    name: &str,
    stored_generation: i64,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    out: Option<mpsc::Sender<PluginOutput>>,
) -> Result<Report, ManualRunError> {
    let spec = startup
        .iter()
        .find(|r| r.kind() == Kind::Plugin && r.name() == name)
        .and_then(Resource::as_plugin)
        .ok_or_else(|| ManualRunError::NotFound(name.to_string()))?;
    let mut permit = host
        .gates
        .try_acquire(
            name,
            Holder {
                trigger: manual_trigger().type_,
                since: clock(),
            },
        )
        .map_err(ManualRunError::Busy)?;
    let policies = override_policies(startup);
    let rules = PartRules::default();
    let inv = Invocation {
        plugin: name,
        spec,
        startup,
        policies: &policies,
        trigger: manual_trigger(),
        previous_generation: stored_generation.max(permit.generation()),
        events_from: daemon_source(),
        rules: &rules,
    };
    let report = invoke(inv, &host.run_config(), clock).await;
    if let Ok(part) = &report.outcome {
        permit.record_generation(part.spec.generation);
    }
    if let Some(tx) = out {
        let _ = tx
            .send(PluginOutput {
                part: report.outcome.as_ref().ok().map(|p| p.to_resource()),
                events: report.events.clone(),
            })
            .await;
    }
    drop(permit);
    Ok(report)
}

fn daemon_source() -> EventSource {
    EventSource {
        name: "routerd".into(),
        kind: "routerd".into(),
        instance: "plugin".into(),
    }
}

/// Running plugin tasks; dropping it stops them.
#[derive(Debug, Default)]
pub struct Plugins {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    topics: Option<broadcast::Sender<Event>>,
}

impl Drop for Plugins {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Plugins {
    /// Starts every triggered plugin of `startup`. `generation_of` gives the
    /// highest stored generation per source, so numbering continues across
    /// restarts. The tasks of a previous configuration may still be ending:
    /// their runs hold the plugins' gates in `host`, so a new task waits for
    /// them instead of overlapping.
    pub fn start(
        host: &PluginHost,
        startup: &[Resource],
        generation_of: impl Fn(&str) -> i64,
        out: mpsc::Sender<PluginOutput>,
    ) -> Plugins {
        let (topics, _) = broadcast::channel(256);
        let startup: Arc<Vec<Resource>> = Arc::new(startup.to_vec());
        let policies = Arc::new(override_policies(&startup));
        let mut tasks = Vec::new();
        for r in startup.iter().filter(|r| r.kind() == Kind::Plugin) {
            let Some(spec) = r.as_plugin().cloned() else {
                continue;
            };
            if spec.triggers.is_empty() {
                continue;
            }
            let name = r.name().to_string();
            let mut state =
                SourceState::with_generation(source_for(&name), generation_of(&source_for(&name)));
            let startup = startup.clone();
            let policies = policies.clone();
            let gates = host.gates.clone();
            let run_config = host.run_config();
            let out = out.clone();
            let rx = topics.subscribe();
            tasks.push(tokio::spawn(async move {
                let rules = PartRules::default();
                let task = PluginTask {
                    plugin: &name,
                    spec: &spec,
                    startup: &startup,
                    policies: &policies,
                    rules: &rules,
                    run_config: &run_config,
                };
                let from = daemon_source();
                let clock = || Utc::now();
                let res = serve(task, &mut state, Some(rx), &gates, &from, std::future::pending(), &clock, |_, report| {
                    let part = report.outcome.as_ref().ok().map(|p| p.to_resource());
                    let _ = out.try_send(PluginOutput { part, events: report.events.clone() });
                })
                .await;
                if let Err(e) = res {
                    tracing::error!(plugin = %name, error = %e, "plugin triggers are invalid; plugin not scheduled");
                }
            }));
        }
        Plugins {
            tasks,
            topics: Some(topics),
        }
    }

    /// Publishes an event to plugins with event triggers; each plugin
    /// matches the topic and is told the event's resource and attributes.
    pub fn publish(&self, event: &Event) {
        if let Some(t) = &self.topics {
            let _ = t.send(event.clone());
        }
    }
}
