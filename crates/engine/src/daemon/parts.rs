//! Routes about dynamic parts: running a plugin now.

use routerd_model::Resource;
use serde_json::{Value, json};

use super::Shared;
use crate::control::ApiError;
use crate::plugins::PluginOutput;

/// Runs a plugin now on the daemon's behalf (`routerctl plugin run NAME`):
/// the part goes through the same checks and into the same store as a
/// triggered run.
pub(super) async fn run_plugin(s: &Shared, name: &str) -> Result<Value, ApiError> {
    use routerd_plugin::invoke::{Invocation, invoke};
    let startup = s.core.lock().await.startup().to_vec();
    let spec = startup
        .iter()
        .find(|r| r.kind() == routerd_model::Kind::Plugin && r.name() == name)
        .and_then(Resource::as_plugin)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!("Plugin \"{name}\" not found in startup config"))
        })?;
    let source = routerd_plugin::source_for(name);
    let previous = s
        .store
        .max_generation(&source)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let policies = routerd_plugin::override_policies(&startup);
    let rules = routerd_plugin::PartRules::default();
    let inv = Invocation {
        plugin: name,
        spec: &spec,
        startup: &startup,
        policies: &policies,
        trigger: routerd_plugin::request::manual_trigger(),
        previous_generation: previous,
        events_from: routerd_model::EventSource {
            name: "routerd".into(),
            kind: "routerd".into(),
            instance: "plugin".into(),
        },
        rules: &rules,
    };
    let cfg = routerd_plugin::runner::RunConfig::from_process_env();
    let clock = || s.clock.now();
    let report = invoke(inv, &cfg, &clock).await;
    let part = report
        .outcome
        .as_ref()
        .ok()
        .map(routerd_plugin::CandidatePart::to_resource);
    let error = report.outcome.as_ref().err().map(ToString::to_string);
    let tx = s
        .plugin_tx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(tx) = tx {
        let _ = tx
            .send(PluginOutput {
                part: part.clone(),
                events: report.events.clone(),
            })
            .await;
    }
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
