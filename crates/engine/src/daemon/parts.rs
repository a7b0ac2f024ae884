//! Routes about dynamic parts: running a plugin now, dropping a part.

use routerd_model::{Event, ObjectRef};
use routerd_store::{PartRecord, PartState};
use serde_json::{Value, json};

use super::{Key, Shared};
use crate::control::ApiError;

/// Runs a plugin now on the daemon's behalf (`routerctl plugin run NAME`):
/// through the same per-plugin gate as triggered runs (409 while one is in
/// progress), and the part goes through the same checks and into the same
/// store as a triggered run.
pub(super) async fn run_plugin(s: &Shared, name: &str) -> Result<Value, ApiError> {
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
    let candidate = report.outcome.as_ref().ok();
    // The same facts `routerctl plugin run --dry-run` shows, plus whether
    // the part was stored: a refused part is not ("mode: refused").
    Ok(json!({
        "kind": "PluginRunResult",
        "plugin": name,
        "mode": if part.is_some() { "stored" } else { "refused" },
        "source": source,
        "accepted": part.is_some(),
        "error": error,
        "part": part,
        "warnings": candidate.map(|p| p.warnings.clone()).unwrap_or_default(),
        "pluginEvents": candidate.map(|p| p.events.clone()).unwrap_or_default(),
        "run": report.stats.as_ref().map(|st| json!({
            "exitCode": st.exit_code.unwrap_or(-1),
            "durationMs": st.duration.as_millis(),
            "stdoutDigest": st.stdout_digest,
        })),
        "events": report.events,
    }))
}

/// `POST /dynamic/drop`: revokes stored parts now. The store records them
/// `dropped`, with who and when, so neither the next step nor a restart
/// merges them again, and an audit event names the caller. A selector
/// naming a source drops every stored generation of it; naming one
/// generation drops that one only (an older unexpired generation of the
/// same source may then be what the merge uses).
pub(super) async fn drop_part(
    s: &Shared,
    selector: &str,
    uid: Option<u32>,
) -> Result<Value, ApiError> {
    let internal = |e: routerd_store::StoreError| ApiError::internal(e.to_string());
    let who = uid.map_or_else(
        || "an unidentified peer".to_string(),
        |u| format!("uid {u}"),
    );
    // The core stays locked until the store says `dropped`: a step in
    // between would record the part's merge state over it.
    let mut core = s.core.lock().await;
    let hits: Vec<PartRecord> = s
        .store
        .parts()
        .map_err(internal)?
        .into_iter()
        .filter(|rec| {
            let (source, generation) = source_generation(rec);
            rec.part.name() == selector
                || source == selector
                || format!("{source}#{generation}") == selector
        })
        .collect();
    if hits.is_empty() {
        return Err(ApiError::not_found(format!(
            "no stored dynamic part matches {selector:?} (`routerctl dynamic list` shows them)"
        )));
    }
    let now = s.clock.now();
    let mut w = s.store.writer();
    let mut dropped = Vec::new();
    let mut already = Vec::new();
    for mut rec in hits {
        let name = rec.part.name().to_string();
        if rec.state == PartState::Dropped {
            already.push(name);
            continue;
        }
        let (source, generation) = source_generation(&rec);
        let (source, generation) = (source.to_string(), generation.to_string());
        rec.state = PartState::Dropped;
        rec.reason = format!(
            "dropped by {who} at {} (routerctl dynamic drop)",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        rec.stored_at = now;
        w.put_part(&rec).map_err(internal)?;
        let target = ObjectRef {
            api_version: rec.part.api_version.clone(),
            kind: rec.part.kind().as_str().to_string(),
            name: name.clone(),
        };
        let mut e = Event::info("routerd.dynamic.part.dropped", target, now);
        e.severity = "warning".into();
        e.reason = "PartDropped".into();
        e.message = format!("dynamic part {name} ({source}#{generation}) dropped by {who}");
        w.append_event(
            e.attr("part", name.clone())
                .attr("source", source)
                .attr("generation", generation)
                .attr("uid", uid.map_or_else(String::new, |u| u.to_string())),
        );
        dropped.push(name);
    }
    w.commit().map_err(internal)?;
    s.store.flush().map_err(internal)?;
    for name in &dropped {
        core.revoke_part(name);
    }
    drop(core);
    s.events.notify_waiters();
    if !dropped.is_empty() {
        s.queue.add(Key::Step);
    }
    Ok(json!({
        "kind": "DynamicDropResult",
        "dropped": dropped,
        "alreadyDropped": already,
        "by": uid,
    }))
}

fn source_generation(rec: &PartRecord) -> (&str, i64) {
    rec.part
        .as_dynamic_part()
        .map_or(("", 0), |d| (d.source.as_str(), d.generation))
}
