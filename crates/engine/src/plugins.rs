//! Plugins of a live daemon: every Plugin resource with triggers runs on
//! them (interval and event topics; routerd documents these but never runs
//! them), never twice at once, and each accepted part reaches the loop,
//! which stores it and merges it. A refused run keeps the source's previous
//! part until its own expiry.

use std::sync::Arc;

use chrono::Utc;
use routerd_model::{Event, EventSource, Kind, Resource};
use routerd_plugin::runner::RunConfig;
use routerd_plugin::scheduler::{PluginTask, SingleFlight, serve};
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

/// Running plugin tasks; dropping it stops them.
#[derive(Debug, Default)]
pub struct Plugins {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    topics: Option<broadcast::Sender<String>>,
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
    /// restarts.
    pub fn start(
        startup: &[Resource],
        generation_of: impl Fn(&str) -> i64,
        out: mpsc::Sender<PluginOutput>,
    ) -> Plugins {
        let (topics, _) = broadcast::channel(256);
        let flights = Arc::new(SingleFlight::new());
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
            let flights = flights.clone();
            let out = out.clone();
            let rx = topics.subscribe();
            tasks.push(tokio::spawn(async move {
                let rules = PartRules::default();
                let run_config = RunConfig::from_process_env();
                let task = PluginTask {
                    plugin: &name,
                    spec: &spec,
                    startup: &startup,
                    policies: &policies,
                    rules: &rules,
                    run_config: &run_config,
                };
                let from = EventSource { name: "routerd".into(), kind: "routerd".into(), instance: "plugin".into() };
                let clock = || Utc::now();
                let res = serve(task, &mut state, Some(rx), &flights, &from, std::future::pending(), &clock, |_, report| {
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

    /// Publishes an event topic to plugins with event triggers.
    pub fn publish(&self, topic: &str) {
        if let Some(t) = &self.topics {
            let _ = t.send(topic.to_string());
        }
    }
}
