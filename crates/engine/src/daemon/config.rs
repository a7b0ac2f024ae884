//! Routes that read or change the configuration: validate, plan, apply,
//! delete; and the SIGHUP reload.

use routerd_api::control::{ApplyRequest, CandidateRequest, DeleteRequest};
use routerd_model::{Event, ObjectRef, Resource};
use serde_json::{Value, json};

use super::{Key, Shared, config_hash, load_config};
use crate::control::ApiError;
use crate::queue::Outcome;

/// `POST /validate`.
pub(super) async fn validate(s: &Shared, req: CandidateRequest) -> Result<Value, ApiError> {
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

/// `POST /plan`.
pub(super) async fn plan(s: &Shared, req: CandidateRequest) -> Result<Value, ApiError> {
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
        load_config("<candidate>", &req.candidate_yaml).map_err(ApiError::bad_request)?
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

/// `POST /delete`.
pub(super) async fn delete(s: &Shared, req: DeleteRequest) -> Result<Value, ApiError> {
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
        return Ok(json!({"kind": "DeleteResult", "deleted": [req.target], "dryRun": true}));
    }
    let new_text = to_stream(&resources)?;
    write_config(&s.options.config_path, &new_text)?;
    let generation = apply_text(s, "<delete>", new_text).await?;
    Ok(json!({"kind": "DeleteResult", "deleted": [req.target], "generation": generation}))
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

pub(super) async fn apply(s: &Shared, req: ApplyRequest) -> Result<Value, ApiError> {
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

pub(super) async fn reload(shared: &Shared) -> Outcome {
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
        core.generation = generation;
    }
    *shared.config_text.lock().await = text;
    shared.queue.add(Key::Links);
    shared.queue.add(Key::Step);
    Ok(generation)
}
