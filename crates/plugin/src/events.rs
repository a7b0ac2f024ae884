//! The events of a plugin run, named and shaped like routerd's (spec §6.7)
//! because operators' tooling filters on these names and attributes.

use chrono::{DateTime, Utc};
use routerd_model::id::PLUGIN_API;
use routerd_model::{Event, EventSource, ObjectRef};

use crate::part::CandidatePart;

/// A run began.
pub const RUN_STARTED: &str = "routerd.plugin.run.started";
/// A run ended with usable output.
pub const RUN_SUCCEEDED: &str = "routerd.plugin.run.succeeded";
/// A run failed before its output could be used.
pub const RUN_FAILED: &str = "routerd.plugin.run.failed";
/// A part was accepted.
pub const PART_ACCEPTED: &str = "routerd.dynamic.part.accepted";
/// A result was rejected.
pub const PART_REJECTED: &str = "routerd.dynamic.part.rejected";

/// The emitter routerctl uses: `{routerctl, routerctl, plugin}`.
pub fn routerctl_source() -> EventSource {
    EventSource {
        name: "routerctl".into(),
        kind: "routerctl".into(),
        instance: "plugin".into(),
    }
}

fn plugin_ref(plugin: &str) -> ObjectRef {
    ObjectRef {
        api_version: PLUGIN_API.into(),
        kind: "Plugin".into(),
        name: plugin.into(),
    }
}

fn event(
    from: &EventSource,
    type_: &str,
    severity: &str,
    plugin: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Event {
    let mut e = Event::info(type_, plugin_ref(plugin), now);
    e.daemon = from.clone();
    e.severity = severity.into();
    e.reason = reason.into();
    e
}

/// `routerd.plugin.run.started`.
pub fn run_started(from: &EventSource, plugin: &str, trigger: &str, now: DateTime<Utc>) -> Event {
    event(from, RUN_STARTED, "info", plugin, "PluginRunStarted", now)
        .attr("plugin.name", plugin)
        .attr("plugin.trigger", trigger)
}

/// `routerd.plugin.run.succeeded`; `exit_code` is `-1` when there was none.
pub fn run_succeeded(
    from: &EventSource,
    plugin: &str,
    exit_code: Option<i32>,
    duration_ms: u128,
    now: DateTime<Utc>,
) -> Event {
    event(
        from,
        RUN_SUCCEEDED,
        "info",
        plugin,
        "PluginRunSucceeded",
        now,
    )
    .attr("plugin.name", plugin)
    .attr("plugin.exitCode", exit_code.unwrap_or(-1).to_string())
    .attr("plugin.durationMs", duration_ms.to_string())
}

/// `routerd.plugin.run.failed`.
pub fn run_failed(
    from: &EventSource,
    plugin: &str,
    error: &str,
    exit_code: Option<i32>,
    duration_ms: u128,
    now: DateTime<Utc>,
) -> Event {
    let mut e = event(from, RUN_FAILED, "warning", plugin, "PluginRunFailed", now)
        .attr("plugin.name", plugin)
        .attr("plugin.exitCode", exit_code.unwrap_or(-1).to_string())
        .attr("plugin.durationMs", duration_ms.to_string())
        .attr("error", error);
    e.message = error.to_string();
    e
}

/// `routerd.dynamic.part.accepted`.
pub fn part_accepted(
    from: &EventSource,
    plugin: &str,
    part: &CandidatePart,
    now: DateTime<Utc>,
) -> Event {
    let s = &part.spec;
    event(
        from,
        PART_ACCEPTED,
        "info",
        plugin,
        "DynamicPartAccepted",
        now,
    )
    .attr("dynamic.source", &s.source)
    .attr("dynamic.generation", s.generation.to_string())
    .attr(
        "dynamic.expiresAt",
        s.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
    )
    .attr("dynamic.resources", s.resources.len().to_string())
    .attr("dynamic.directives", s.directives.len().to_string())
}

/// `routerd.dynamic.part.rejected`.
pub fn part_rejected(
    from: &EventSource,
    plugin: &str,
    source: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Event {
    let mut e = event(
        from,
        PART_REJECTED,
        "warning",
        plugin,
        "DynamicPartRejected",
        now,
    )
    .attr("dynamic.source", source)
    .attr("error", error);
    e.message = error.to_string();
    e
}
