//! Routes that read or change the configuration (validate, plan, apply,
//! delete) and the SIGHUP reload (docs/adr/0008-api-applied-config.md).
//!
//! apply, delete and reload hold one lock from reading the files to
//! installing the result, and apply and delete keep it until the reconcile
//! step that ran their generation finished, so each reports what that step
//! did to the kernel. A change goes to the store first, then to the managed
//! file, then into the running daemon: a failure at any point leaves the
//! files and the running configuration as they were.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use routerd_api::control::{
    ApplyRequest, CandidateRequest, DEFAULT_APPLY_TIMEOUT_SECONDS, DeleteRequest,
    MAX_APPLY_TIMEOUT_SECONDS,
};
use routerd_model::{Event, ObjectRef, Resource};
use routerd_render::DesiredState;
use serde_json::{Value, json};

use super::{Key, Shared, StepSummary, config_hash};
use crate::configfile::{self, Assembled, ConfigError, Layout, Sources};
use crate::control::ApiError;

fn config_error(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Invalid(_) => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

fn layout(s: &Shared) -> Layout {
    Layout::for_config(&s.options.config_path).with_unknown_fields(s.options.unknown_fields)
}

/// Decodes an applied document: its resources, and warnings about what of
/// it is not used. Ids it defines twice are refused (which one was meant?).
fn decode_candidate(
    name: Option<&str>,
    text: &str,
) -> Result<(Vec<Resource>, Vec<String>), ApiError> {
    // The operator's own name for the document, so positions point into
    // the file they sent.
    let name = name.filter(|n| !n.is_empty()).unwrap_or("<candidate>");
    let (resources, router) =
        configfile::decode(name, text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for r in &resources {
        if !seen.insert(r.id()) {
            return Err(ApiError::bad_request(format!(
                "{name}: duplicate resource {}",
                r.id()
            )));
        }
    }
    let mut warnings = Vec::new();
    if router {
        warnings.push(
            "the Router envelope of the applied document is ignored: metadata and spec.reconcile \
             come from the operator's file"
                .to_string(),
        );
    }
    Ok((resources, warnings))
}

/// The managed layer after upserting `candidate` (or replacing the layer
/// with it).
fn upsert(mut managed: Vec<Resource>, candidate: Vec<Resource>, replace: bool) -> Vec<Resource> {
    if replace {
        return candidate;
    }
    for r in candidate {
        match managed.iter_mut().find(|c| c.id() == r.id()) {
            Some(slot) => *slot = r,
            None => managed.push(r),
        }
    }
    managed
}

/// The configuration a candidate request would make: the files with the
/// candidate upserted into (or replacing) the managed layer.
fn assemble_candidate(
    sources: &Sources,
    name: Option<&str>,
    text: &str,
    replace: bool,
) -> Result<(Assembled, Vec<String>), ApiError> {
    let (candidate, mut warnings) = decode_candidate(name, text)?;
    let ids: Vec<String> = candidate.iter().map(|r| r.id().to_string()).collect();
    let managed = sources.managed_resources().map_err(config_error)?;
    let assembled = sources
        .assemble(Some(upsert(managed, candidate, replace)))
        .map_err(|e| match (e, name.filter(|n| !n.is_empty())) {
            // A rule a resource of the candidate breaks is the operator's
            // file's: say which file.
            (ConfigError::Invalid(lines), Some(name)) => config_error(ConfigError::Invalid(
                lines
                    .into_iter()
                    .map(|l| {
                        if ids.iter().any(|id| l.starts_with(&format!("{id} "))) {
                            format!("{name}: {l}")
                        } else {
                            l
                        }
                    })
                    .collect(),
            )),
            (e, _) => config_error(e),
        })?;
    warnings.extend(assembled.warnings.iter().cloned());
    Ok((assembled, warnings))
}

/// `POST /validate`: the candidate as `apply` would combine it with the
/// files; without a candidate, the files as they are now.
pub(super) async fn validate(s: &Shared, req: CandidateRequest) -> Result<Value, ApiError> {
    let result = configfile::read(&layout(s))
        .map_err(config_error)
        .and_then(|sources| {
            if req.candidate_yaml.is_empty() {
                sources
                    .assemble(None)
                    .map(|a| a.warnings)
                    .map_err(config_error)
            } else {
                assemble_candidate(
                    &sources,
                    req.source.as_deref(),
                    &req.candidate_yaml,
                    req.replace,
                )
                .map(|(_, w)| w)
            }
        });
    match result {
        Ok(warnings) => Ok(json!({"kind": "ValidateResult", "valid": true, "warnings": warnings})),
        Err(e) if e.status == 400 => {
            Ok(json!({"kind": "ValidateResult", "valid": false, "error": e.message}))
        }
        Err(e) => Err(e),
    }
}

/// `POST /plan`: the plan of the candidate combined as `apply` would.
pub(super) async fn plan(s: &Shared, req: CandidateRequest) -> Result<Value, ApiError> {
    let (startup, parts, state) = snapshot(s).await;
    let startup = if req.candidate_yaml.is_empty() {
        startup
    } else {
        let sources = configfile::read(&layout(s)).map_err(config_error)?;
        assemble_candidate(
            &sources,
            req.source.as_deref(),
            &req.candidate_yaml,
            req.replace,
        )?
        .0
        .resources
    };
    let mut doc = routerd_api::build_plan(&routerd_api::PlanInputs {
        startup,
        dynamic_parts: parts,
        state,
        now: s.clock.now(),
    })
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    doc.unmanaged = lock(&s.unmanaged).clone();
    serde_json::to_value(doc).map_err(|e| ApiError::internal(e.to_string()))
}

async fn snapshot(s: &Shared) -> (Vec<Resource>, Vec<Resource>, routerd_model::StateSnapshot) {
    let core = s.core.lock().await;
    (
        core.startup().to_vec(),
        core.parts().to_vec(),
        core.statuses.clone(),
    )
}

fn timeout_of(seconds: Option<u64>) -> Duration {
    Duration::from_secs(
        seconds
            .unwrap_or(DEFAULT_APPLY_TIMEOUT_SECONDS)
            .min(MAX_APPLY_TIMEOUT_SECONDS),
    )
}

/// `POST /apply`: upserts the candidate's resources into the managed file
/// (with `replace`, makes them the managed file's whole content).
pub(super) async fn apply(s: &Shared, req: ApplyRequest) -> Result<Value, ApiError> {
    let _serial = s.config_lock.lock().await;
    let layout = layout(s);
    let sources = configfile::read(&layout).map_err(config_error)?;
    let (assembled, warnings) = assemble_candidate(
        &sources,
        req.source.as_deref(),
        &req.candidate_yaml,
        req.replace,
    )?;
    if req.dry_run {
        let preview = preview(s, &assembled.resources).await?;
        return Ok(json!({
            "kind": "ApplyResult",
            "dryRun": true,
            "result": {
                "phase": "Planned",
                "resources": assembled.resources.len(),
                "changes": preview["changes"],
                "dataplane": preview["dataplane"],
            },
            "warnings": warnings,
        }));
    }
    let changes = resource_changes(s.core.lock().await.startup(), &assembled.resources);
    let installed = install(s, &assembled, Some(&layout)).await?;
    let outcome = finish(s, &installed, timeout_of(req.timeout_seconds), "apply").await;
    Ok(json!({
        "kind": "ApplyResult",
        "result": outcome.to_json(&installed, assembled.resources.len(), changes),
        "warnings": warnings,
    }))
}

/// `POST /delete`: removes a resource from the managed file. A resource
/// the operator's files define is refused (routerd does not edit them);
/// one the managed file overrides goes back to the operator's definition.
pub(super) async fn delete(s: &Shared, req: DeleteRequest) -> Result<Value, ApiError> {
    if req.target == "orphans" {
        return delete_orphans(s, req.dry_run).await;
    }
    let (kind, name) = routerd_model::id::split_kind_name(&req.target)
        .ok_or_else(|| ApiError::bad_request("target must be Kind/name"))?;
    let is_target = |r: &Resource| {
        r.kind().as_str() == kind
            && r.name() == name
            && req
                .target_api_version
                .as_deref()
                .is_none_or(|a| a == r.api_version)
    };
    let _serial = s.config_lock.lock().await;
    let layout = layout(s);
    let sources = configfile::read(&layout).map_err(config_error)?;
    let mut managed = sources.managed_resources().map_err(config_error)?;
    let before = managed.len();
    let removed: Vec<String> = managed
        .iter()
        .filter(|r| is_target(r))
        .map(|r| r.id().to_string())
        .collect();
    managed.retain(|r| !is_target(r));
    let operator = sources.operator_ids();
    if managed.len() == before {
        let defined = operator.iter().find(|(id, _)| {
            routerd_model::ResourceId::parse(id).is_some_and(|rid| {
                rid.kind == kind
                    && rid.name == name
                    && req
                        .target_api_version
                        .as_deref()
                        .is_none_or(|a| a == rid.api_version)
            })
        });
        return Err(match defined {
            Some((_, file)) => ApiError::conflict(format!(
                "{} is defined in {file}, which routerd never rewrites: remove it there and \
                 reload (systemctl reload routerd)",
                req.target
            )),
            None => ApiError::not_found(format!("{} not found", req.target)),
        });
    }
    let restored: Vec<Value> = removed
        .iter()
        .filter_map(|id| {
            operator
                .get(id)
                .map(|file| json!({"id": id, "definedIn": file}))
        })
        .collect();
    let assembled = sources.assemble(Some(managed)).map_err(config_error)?;
    if req.dry_run {
        let preview = preview(s, &assembled.resources).await?;
        return Ok(json!({
            "kind": "DeleteResult",
            "deleted": [req.target],
            "restored": restored,
            "dryRun": true,
            "result": {
                "phase": "Planned",
                "resources": assembled.resources.len(),
                "changes": preview["changes"],
                "dataplane": preview["dataplane"],
            },
        }));
    }
    let changes = resource_changes(s.core.lock().await.startup(), &assembled.resources);
    let installed = install(s, &assembled, Some(&layout)).await?;
    let outcome = finish(s, &installed, timeout_of(req.timeout_seconds), "delete").await;
    Ok(json!({
        "kind": "DeleteResult",
        "deleted": [req.target],
        "restored": restored,
        "generation": installed.generation,
        "result": outcome.to_json(&installed, assembled.resources.len(), changes),
    }))
}

/// Queues a reload of the files (SIGHUP) on its own task.
pub(super) fn spawn_reload(shared: &Arc<Shared>) {
    let s = shared.clone();
    tokio::spawn(async move { reload(&s).await });
}

/// Re-reads the files. A valid configuration becomes the running one (a
/// new generation unless nothing changed); an invalid one is rejected as a
/// whole and the running one stays. Either way the outcome is an event and
/// `status.lastReload`.
async fn reload(s: &Shared) {
    let serial = s.config_lock.lock().await;
    let now = s.clock.now();
    let mut warnings = Vec::new();
    let result = match configfile::read(&layout(s)).and_then(|src| src.assemble(None)) {
        Ok(a) => {
            warnings.clone_from(&a.warnings);
            install(s, &a, None).await.map_err(|e| e.message)
        }
        Err(e) => Err(e.to_string()),
    };
    let mut w = s.store.writer();
    super::config_warnings(&mut w, &warnings, now);
    let installed = match result {
        Ok(installed) => {
            tracing::info!(
                generation = installed.generation,
                unchanged = installed.unchanged,
                "reload: configuration accepted"
            );
            *lock(&s.last_reload) = Some(json!({
                "time": now,
                "result": "Accepted",
                "generation": installed.generation,
                "unchanged": installed.unchanged,
            }));
            let mut e = Event::info("routerd.config.reloaded", ObjectRef::daemon(), now);
            e.reason = "ConfigReloaded".into();
            e.message = if installed.unchanged {
                format!(
                    "configuration unchanged (generation {})",
                    installed.generation
                )
            } else {
                format!("generation {}", installed.generation)
            };
            w.append_event(e.attr("generation", installed.generation.to_string()));
            Some(installed)
        }
        Err(errors) => {
            tracing::error!(%errors, "reload: configuration rejected; keeping the current one");
            let generation = s.core.lock().await.generation;
            let list: Vec<&str> = errors.lines().collect();
            *lock(&s.last_reload) = Some(json!({
                "time": now,
                "result": "Rejected",
                "generation": generation,
                "errors": list,
            }));
            let mut e = Event::info("routerd.config.rejected", ObjectRef::daemon(), now);
            e.severity = "error".into();
            e.reason = "ConfigRejected".into();
            e.message = format!("reload rejected; generation {generation} keeps running: {errors}");
            w.append_event(e.attr("generation", generation.to_string()));
            None
        }
    };
    if let Err(e) = w.commit() {
        tracing::warn!(error = %e, "storing the reload event failed");
    }
    s.events.notify_waiters();
    drop(serial);
    // The generation's record says how its first step went; nobody waits
    // for the answer, so the lock is not held for it.
    if let Some(installed) = installed
        && !installed.unchanged
    {
        let summary = await_step(s, &installed, timeout_of(None)).await;
        if let Some(summary) = summary {
            record_generation(s, installed.generation, &Outcome::of(Some(summary), true));
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A configuration made the running one.
#[derive(Debug, Clone, Copy)]
struct Installed {
    generation: u64,
    /// Steps published before it was installed.
    seq: u64,
    /// The configuration was the running one already (no new generation).
    unchanged: bool,
}

/// Makes `a` the running configuration: the generation goes to the store
/// (committed and flushed), then the managed file is written (`layout`),
/// then the core takes it and a step is queued. A failure before the core
/// took it changes nothing (a stored generation is marked `Failed`).
async fn install(
    s: &Shared,
    a: &Assembled,
    layout: Option<&Layout>,
) -> Result<Installed, ApiError> {
    let managed = match layout {
        Some(_) => Some(configfile::managed_text(&a.managed).map_err(config_error)?),
        None => None,
    };
    let write = |layout: &Layout, text: &str| -> Result<(), ConfigError> {
        let current = std::fs::read_to_string(layout.managed()).ok();
        // An unchanged managed file (or none needed) is left alone.
        if current.as_deref() == Some(text) || (current.is_none() && a.managed.is_empty()) {
            return Ok(());
        }
        configfile::write_managed(layout, text)
    };
    let unchanged = *s.config_text.lock().await == a.text;
    if unchanged {
        if let (Some(layout), Some(text)) = (layout, &managed) {
            write(layout, text).map_err(|e| {
                ApiError::internal(format!("{e}; the running configuration is unchanged"))
            })?;
        }
        let mut core = s.core.lock().await;
        core.request_full();
        let installed = Installed {
            generation: core.generation,
            seq: s.steps.borrow().seq,
            unchanged: true,
        };
        drop(core);
        s.queue.add(Key::Step);
        return Ok(installed);
    }
    let now = s.clock.now();
    let store_failed = |e: routerd_store::StoreError| {
        ApiError::internal(format!(
            "state store: {e}; nothing was changed (files and running configuration are as before)"
        ))
    };
    let mut w = s.store.writer();
    let generation = w
        .begin_generation_if_changed(&config_hash(&a.text), &a.text, now)
        .map_err(store_failed)?
        .generation;
    w.commit().map_err(store_failed)?;
    s.store.flush().map_err(store_failed)?;
    if let (Some(layout), Some(text)) = (layout, &managed)
        && let Err(e) = write(layout, text)
    {
        let mut w = s.store.writer();
        if w.finish_generation(generation, "Failed", vec![e.to_string()], now)
            .is_ok()
        {
            let _ = w.commit();
        }
        return Err(ApiError::internal(format!(
            "{e}; nothing was changed (generation {generation} is recorded as Failed)"
        )));
    }
    let mut core = s.core.lock().await;
    core.set_startup(a.resources.clone());
    core.set_reconcile(a.reconcile.clone());
    core.generation = generation;
    let seq = s.steps.borrow().seq;
    drop(core);
    *s.config_text.lock().await = a.text.clone();
    *lock(&s.unmanaged) = a.unmanaged.clone();
    s.queue.add(Key::Links);
    s.queue.add(Key::Step);
    Ok(Installed {
        generation,
        seq,
        unchanged: false,
    })
}

/// Waits for the first step that ran with the installed generation.
async fn await_step(s: &Shared, installed: &Installed, timeout: Duration) -> Option<StepSummary> {
    let mut rx = s.steps();
    let wanted = |x: &StepSummary| x.seq > installed.seq && x.generation == installed.generation;
    match tokio::time::timeout(timeout, rx.wait_for(wanted)).await {
        Ok(Ok(summary)) => Some(summary.clone()),
        _ => None,
    }
}

/// How the step that ran a generation went.
#[derive(Debug, Clone)]
struct Outcome {
    phase: &'static str,
    summary: Option<StepSummary>,
    message: String,
}

impl Outcome {
    fn of(summary: Option<StepSummary>, waited: bool) -> Outcome {
        let Some(sum) = summary else {
            return if waited {
                Outcome {
                    phase: "Pending",
                    summary: None,
                    message: "the step running this generation did not finish in time; the \
                              configuration is stored and the daemon keeps applying it (see \
                              `routerctl status`)"
                        .into(),
                }
            } else {
                Outcome {
                    phase: "Accepted",
                    summary: None,
                    message: "stored; not waiting for the step (timeout 0)".into(),
                }
            };
        };
        let (phase, message) = if let Some(err) = &sum.error {
            ("Failed", format!("the step failed: {err}"))
        } else if !sum.faults.is_empty() {
            (
                "Degraded",
                format!(
                    "{} owner(s) are not as configured in the kernel",
                    sum.faults.len()
                ),
            )
        } else {
            ("Applied", String::new())
        };
        Outcome {
            phase,
            summary: Some(sum),
            message,
        }
    }

    fn to_json(&self, installed: &Installed, resources: usize, changes: Value) -> Value {
        let faults = self
            .summary
            .as_ref()
            .map(|s| s.faults.clone())
            .unwrap_or_default();
        json!({
            "phase": self.phase,
            "generation": installed.generation,
            "unchanged": installed.unchanged,
            "resources": resources,
            "changes": changes,
            "stepAt": self.summary.as_ref().and_then(|s| s.at),
            "error": self.summary.as_ref().and_then(|s| s.error.clone()),
            "failedOwners": faults,
            "message": self.message,
        })
    }
}

/// Waits for the step, records the outcome on the generation and as an
/// event, and returns it.
async fn finish(s: &Shared, installed: &Installed, timeout: Duration, verb: &str) -> Outcome {
    let waited = !timeout.is_zero();
    let summary = if waited {
        await_step(s, installed, timeout).await
    } else {
        None
    };
    let outcome = Outcome::of(summary, waited);
    if !installed.unchanged && outcome.summary.is_some() {
        record_generation(s, installed.generation, &outcome);
    }
    let now = s.clock.now();
    let mut e = Event::info("routerd.config.applied", ObjectRef::daemon(), now);
    e.reason = if verb == "delete" {
        "ResourceDeleted".into()
    } else {
        "ConfigApplied".into()
    };
    if matches!(outcome.phase, "Failed" | "Degraded") {
        e.severity = "warning".into();
    }
    e.message = format!(
        "{verb}: generation {} {}",
        installed.generation, outcome.phase
    );
    let mut w = s.store.writer();
    w.append_event(
        e.attr("generation", installed.generation.to_string())
            .attr("phase", outcome.phase),
    );
    if let Err(err) = w.commit() {
        tracing::warn!(error = %err, "storing the apply event failed");
    }
    s.events.notify_waiters();
    outcome
}

/// Marks a generation by its first step: `Applied` (with the failed owners
/// as warnings when some failed) or `Failed`.
fn record_generation(s: &Shared, generation: u64, outcome: &Outcome) {
    let Some(sum) = &outcome.summary else { return };
    let phase = if sum.error.is_some() {
        "Failed"
    } else {
        "Applied"
    };
    let warnings: Vec<String> = sum
        .error
        .iter()
        .cloned()
        .chain(
            sum.faults
                .iter()
                .map(|f| format!("{}: {}: {}", f.owner, f.reason, f.message)),
        )
        .collect();
    let mut w = s.store.writer();
    match w.finish_generation(generation, phase, warnings, s.clock.now()) {
        Ok(()) => {
            if let Err(e) = w.commit() {
                tracing::warn!(generation, error = %e, "recording the generation's outcome failed");
            }
        }
        Err(e) => {
            tracing::warn!(generation, error = %e, "recording the generation's outcome failed")
        }
    }
}

/// Ids added, changed and removed between two startup configurations.
fn resource_changes(current: &[Resource], next: &[Resource]) -> Value {
    let index = |list: &[Resource]| -> BTreeMap<String, Resource> {
        list.iter()
            .map(|r| (r.id().to_string(), r.clone()))
            .collect()
    };
    let (cur, new) = (index(current), index(next));
    let added: Vec<&String> = new.keys().filter(|k| !cur.contains_key(*k)).collect();
    let removed: Vec<&String> = cur.keys().filter(|k| !new.contains_key(*k)).collect();
    let changed: Vec<&String> = new
        .iter()
        .filter(|(k, r)| cur.get(*k).is_some_and(|c| c != *r))
        .map(|(k, _)| k)
        .collect();
    json!({"added": added, "changed": changed, "removed": removed})
}

/// What a candidate startup configuration changes: resource ids, and the
/// kernel operations between the dataplane the running configuration
/// renders and the one the candidate renders (same statuses and parts).
async fn preview(s: &Shared, candidate: &[Resource]) -> Result<Value, ApiError> {
    let (startup, parts, state) = snapshot(s).await;
    let now = s.clock.now();
    let candidate = candidate.to_vec();
    // Two full plans: CPU work, kept off the async workers.
    tokio::task::spawn_blocking(move || {
        let desired = |startup: Vec<Resource>| {
            routerd_api::build_plan_with_desired(&routerd_api::PlanInputs {
                startup,
                dynamic_parts: parts.clone(),
                state: state.clone(),
                now,
            })
            .map(|(_, d)| d)
            .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        let changes = resource_changes(&startup, &candidate);
        let ops = dataplane_ops(&desired(startup)?, &desired(candidate)?);
        Ok(json!({"changes": changes, "dataplane": ops}))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// The operations that turn dataplane `from` into `to`, as command lines.
fn dataplane_ops(from: &DesiredState, to: &DesiredState) -> Vec<String> {
    use routerd_render::Op;
    let mut ops: Vec<Op> = Vec::new();
    let old_routes: BTreeMap<_, _> = from.routes.iter().map(|r| (r.key(), r)).collect();
    let new_routes: BTreeMap<_, _> = to.routes.iter().map(|r| (r.key(), r)).collect();
    for (k, r) in &old_routes {
        if !new_routes.contains_key(k) {
            ops.push(Op::DeleteRoute {
                route: (*r).clone(),
            });
        }
    }
    for (k, r) in &new_routes {
        match old_routes.get(k) {
            None => ops.push(Op::AddRoute {
                route: (*r).clone(),
            }),
            Some(old) if old != r => ops.push(Op::ReplaceRoute {
                old: (*old).clone(),
                new: (*r).clone(),
            }),
            Some(_) => {}
        }
    }
    for r in from.rules.iter().filter(|r| !to.rules.contains(r)) {
        ops.push(Op::DeleteRule { rule: r.clone() });
    }
    for r in to.rules.iter().filter(|r| !from.rules.contains(r)) {
        ops.push(Op::AddRule { rule: r.clone() });
    }
    for t in &from.nft {
        if !to.nft.iter().any(|n| n.key() == t.key()) {
            ops.push(Op::DeleteNftTable { key: t.key() });
        }
    }
    for t in &to.nft {
        if !from.nft.contains(t) {
            ops.push(Op::ReplaceNftTable { table: t.clone() });
        }
    }
    ops.iter().map(ToString::to_string).collect()
}

/// `routerctl delete orphans`: the operator's request to remove the marked
/// kernel objects nobody claims; they are claimed and the next step
/// removes them, with an audit event.
async fn delete_orphans(s: &Shared, dry_run: bool) -> Result<Value, ApiError> {
    let mut core = s.core.lock().await;
    let listed = core.orphans.describe();
    if dry_run {
        return Ok(
            json!({"kind": "DeleteResult", "deleted": listed, "dryRun": true,
            "result": {"phase": "Planned"}}),
        );
    }
    let n = core.remove_orphans();
    drop(core);
    let mut e = Event::info(
        "routerd.dataplane.orphans.removed",
        ObjectRef::daemon(),
        s.clock.now(),
    );
    e.reason = "OperatorRequest".into();
    e.message = format!("{n} unclaimed routerd object(s) removed on request");
    let mut w = s.store.writer();
    w.append_event(e.attr("count", n.to_string()));
    let _ = w.commit();
    s.queue.add(Key::Step);
    Ok(json!({"kind": "DeleteResult", "deleted": listed,
        "result": {"phase": "Accepted", "message": format!("{n} object(s) are removed by the next step")}}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn resources(text: &str) -> Vec<Resource> {
        configfile::decode("t", text).unwrap().0
    }

    /// Errors point into the file the operator sent, by its name.
    #[test]
    fn candidate_errors_cite_the_operators_file() {
        let bad = "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: a}\nspec: {type: blackhole, destinaton: 10.0.0.0/8}\n";
        let e = decode_candidate(Some("site/extra.yaml"), bad).unwrap_err();
        assert!(e.message.contains("site/extra.yaml:4:"), "{}", e.message);
        assert!(!e.message.contains("<candidate>"), "{}", e.message);
        let e = decode_candidate(None, bad).unwrap_err();
        assert!(e.message.contains("<candidate>:4:"), "{}", e.message);
    }

    /// A rule the candidate's resource breaks names the operator's file
    /// too (validation runs on the assembled configuration).
    #[test]
    fn candidate_rule_violations_cite_the_operators_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n").unwrap();
        let sources = configfile::read(&Layout::for_config(&config)).unwrap();
        let bad = "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: r}\nspec: {type: sideways, destination: 10.0.0.0/8}\n";
        let Err(e) = assemble_candidate(&sources, Some("site/extra.yaml"), bad, false) else {
            panic!("accepted");
        };
        assert!(
            e.message
                .starts_with("site/extra.yaml: net.routerd.net/v1alpha1/IPv4Route/r spec.type"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_candidate_defining_an_id_twice_is_refused() {
        let r = "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: a}\nspec: {type: blackhole, destination: 10.0.0.0/8}\n";
        let e = decode_candidate(Some("extra.yaml"), &format!("{r}---\n{r}")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("extra.yaml: duplicate resource"),
            "{}",
            e.message
        );
    }

    #[test]
    fn changes_and_operations_between_two_configurations() {
        let a = resources(
            "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: a}\nspec: {type: blackhole, destination: 10.1.0.0/16}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: b}\nspec: {type: blackhole, destination: 10.2.0.0/16}\n",
        );
        let b = resources(
            "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: a}\nspec: {type: blackhole, destination: 10.1.0.0/16, metric: 5}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: c}\nspec: {type: blackhole, destination: 10.3.0.0/16}\n",
        );
        let c = resource_changes(&a, &b);
        assert_eq!(c["added"], json!(["net.routerd.net/v1alpha1/IPv4Route/c"]));
        assert_eq!(
            c["changed"],
            json!(["net.routerd.net/v1alpha1/IPv4Route/a"])
        );
        assert_eq!(
            c["removed"],
            json!(["net.routerd.net/v1alpha1/IPv4Route/b"])
        );
        let desired = |r: &[Resource]| {
            routerd_api::build_plan_with_desired(&routerd_api::PlanInputs {
                startup: r.to_vec(),
                ..Default::default()
            })
            .unwrap()
            .1
        };
        let ops = dataplane_ops(&desired(&a), &desired(&b));
        assert_eq!(ops.len(), 4, "{ops:?}");
        assert!(
            ops.iter()
                .any(|o| o.starts_with("ip route del blackhole 10.2.0.0/16")),
            "{ops:?}"
        );
        assert!(
            ops.iter()
                .any(|o| o.starts_with("ip route add blackhole 10.3.0.0/16")),
            "{ops:?}"
        );
        assert!(dataplane_ops(&desired(&a), &desired(&a)).is_empty());
    }
}
