//! One complete plugin run: request, process, decode, conversion, merge
//! pre-checks and events. The daemon's triggers and `routerctl plugin run`
//! both go through [`invoke`], so a part is accepted by exactly one set of
//! rules.

use chrono::{DateTime, Utc};
use routerd_model::spec::{DynamicOverridePolicySpec, PluginRequest, PluginSpec, RequestTrigger};
use routerd_model::{Event, EventSource, Resource};

use crate::check::{CheckErrors, check_against_startup};
use crate::decode::{DecodeError, decode_result};
use crate::events;
use crate::part::{CandidatePart, PartError, PartInput, PartRules, part_from_result};
use crate::request::build_request;
use crate::runner::{RunConfig, RunError, RunStats, run};
use crate::source::{SourceState, StateError};
use crate::source_for;

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// Plugin name (`metadata.name` of the Plugin resource).
    pub plugin: &'a str,
    /// Its spec.
    pub spec: &'a PluginSpec,
    /// Startup resources (context, validation, pre-checks).
    pub startup: &'a [Resource],
    /// DynamicOverridePolicies of the startup config.
    pub policies: &'a [DynamicOverridePolicySpec],
    /// What started the run.
    pub trigger: RequestTrigger,
    /// Highest accepted generation of `Plugin/<name>`.
    pub previous_generation: i64,
    /// Emitter of the run's events.
    pub events_from: EventSource,
    /// Result limits.
    pub rules: &'a PartRules,
}

/// Why a run produced no part.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The process was refused, failed or misbehaved.
    #[error(transparent)]
    Run(RunError),
    /// Stdout was not a result document.
    #[error(transparent)]
    Decode(DecodeError),
    /// The result broke a protocol rule.
    #[error(transparent)]
    Part(PartError),
    /// The part broke a merge rule.
    #[error(transparent)]
    Check(CheckErrors),
    /// The source already holds a newer part.
    #[error(transparent)]
    State(StateError),
}

/// The record of one run.
#[derive(Debug)]
pub struct Report {
    /// The request sent.
    pub request: PluginRequest,
    /// Process facts, when it started.
    pub stats: Option<RunStats>,
    /// The accepted candidate, or why there is none.
    pub outcome: Result<CandidatePart, Refusal>,
    /// Events, in order.
    pub events: Vec<Event>,
}

/// Runs the plugin once and judges its output. `clock` supplies `now` (at
/// the start for the request, at the end for the conversion).
pub async fn invoke(
    inv: Invocation<'_>,
    cfg: &RunConfig,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> Report {
    let source = source_for(inv.plugin);
    let started = clock();
    let request = build_request(
        inv.plugin,
        inv.spec,
        inv.startup,
        inv.trigger.clone(),
        inv.previous_generation,
        started,
    );
    let mut evs = vec![events::run_started(
        &inv.events_from,
        inv.plugin,
        &inv.trigger.type_,
        started,
    )];
    let from = &inv.events_from;
    let ran = run(inv.plugin, inv.spec, &request, cfg).await;
    let now = clock();
    let (stats, stdout) = match ran {
        Ok(o) => (o.stats, o.stdout),
        Err(f) => {
            let (code, ms) = f
                .stats
                .as_ref()
                .map_or((None, 0), |s| (s.exit_code, s.duration.as_millis()));
            evs.push(events::run_failed(
                from,
                inv.plugin,
                &f.error.to_string(),
                code,
                ms,
                now,
            ));
            return Report {
                request,
                stats: f.stats,
                outcome: Err(Refusal::Run(f.error)),
                events: evs,
            };
        }
    };
    let code = stats.exit_code;
    let ms = stats.duration.as_millis();
    let judged = decode_result(inv.plugin, &stdout)
        .map_err(Refusal::Decode)
        .and_then(|doc| {
            part_from_result(
                doc,
                PartInput {
                    source: &source,
                    previous_generation: inv.previous_generation,
                    now,
                    startup: inv.startup,
                    rules: inv.rules,
                },
            )
            .map_err(Refusal::Part)
        })
        .and_then(|part| {
            check_against_startup(&part.spec, inv.startup, inv.policies)
                .map(|()| part)
                .map_err(Refusal::Check)
        });
    match &judged {
        Ok(part) => {
            evs.push(events::part_accepted(from, inv.plugin, part, now));
            evs.push(events::run_succeeded(from, inv.plugin, code, ms, now));
        }
        Err(r) => {
            let reason = r.to_string();
            if !matches!(r, Refusal::Decode(_)) {
                evs.push(events::part_rejected(
                    from, inv.plugin, &source, &reason, now,
                ));
            }
            evs.push(events::run_failed(from, inv.plugin, &reason, code, ms, now));
        }
    }
    Report {
        request,
        stats: Some(stats),
        outcome: judged,
        events: evs,
    }
}

/// Runs the plugin for `state`'s source: the previous generation comes from
/// the state, an accepted part replaces the current one, and a refusal is
/// recorded while the current part keeps counting until its own expiry.
pub async fn invoke_into(
    state: &mut SourceState,
    mut inv: Invocation<'_>,
    cfg: &RunConfig,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> Report {
    inv.previous_generation = state.generation();
    let mut report = invoke(inv, cfg, clock).await;
    match &report.outcome {
        Ok(part) => {
            if let Err(e) = state.accept(part.clone()) {
                state.reject(e.to_string(), clock());
                report.outcome = Err(Refusal::State(e));
            }
        }
        Err(r) => state.reject(r.to_string(), clock()),
    }
    report
}
