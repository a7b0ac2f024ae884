//! Read-only routes: status, get, describe, explain, events, dynamic.

use std::collections::HashMap;
use std::time::Duration;

use routerd_store::{EventQuery, PartRecord};
use serde_json::{Value, json};

use super::Shared;
use crate::control::ApiError;

fn internal(e: routerd_store::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `GET /status`: the daemon's phase from the last step, and what is wrong.
pub(super) async fn status(s: &Shared) -> Result<Value, ApiError> {
    let core = s.core.lock().await;
    let last = s.steps.borrow().clone();
    let issues: Vec<Value> = core
        .reported_statuses()
        .iter()
        .filter(|(_, st)| {
            matches!(
                st.get("phase").and_then(Value::as_str),
                Some("Pending" | "Error" | "Unhealthy" | "Down" | "Degraded")
            )
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
            "orphans": core.orphans.describe().len(),
            "storeError": store_error.map(|(at, message)| json!({"at": at, "message": message})),
            "resourceCount": core.effective().len(),
            "resourcePhaseIssues": issues,
            "queue": s.queue.len(),
            "lastReload": s
                .last_reload
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }))
}

/// `GET /get?subject=`: resources, statuses, events, the ledger or parts.
pub(super) async fn get(
    s: &Shared,
    subject: &str,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    let core = s.core.lock().await;
    match subject {
        // The intended statuses: the `--state` snapshot `routerctl plan`
        // renders from (faults laid over would change what it renders).
        "status" => Ok(serde_json::to_value(&core.statuses).unwrap_or_default()),
        "ledger" => Ok(serde_json::to_value(&core.ledger).unwrap_or_default()),
        "orphans" => Ok(json!({
            "kind": "Orphans",
            "items": core.orphans.describe(),
            "remedy": "routerctl delete orphans removes them; spec.reconcile.mode: strict removes them on every step",
        })),
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
            let mut list = items(&core, other);
            drop(core);
            if list.is_empty() && other.contains('/') {
                return Err(ApiError::not_found(format!("{other} not found")));
            }
            s.add_history(&mut list).await;
            Ok(json!({"items": list}))
        }
    }
}

/// `GET /describe?target=`: one resource, its status and recent events.
pub(super) async fn describe(
    s: &Shared,
    target: String,
    events_limit: usize,
) -> Result<Value, ApiError> {
    let core = s.core.lock().await;
    let mut list = items(&core, &target);
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

/// `GET /explain?policy=`: a policy's decision record.
pub(super) async fn explain(s: &Shared, policy: &str) -> Result<Value, ApiError> {
    let core = s.core.lock().await;
    let id = format!("{}/EgressRoutePolicy/{policy}", routerd_model::id::NET_API);
    match core.decision(&id) {
        // The decision is what selection intends; `installed` says whether
        // the kernel carries it, and `fault` why not.
        Some(d) => {
            let fault = core.faults().find(|f| f.owner == id).cloned();
            Ok(json!({
                "policy": id,
                "decision": d,
                "status": core.reported_status(&id),
                "installed": fault.is_none(),
                "fault": fault,
            }))
        }
        None => Err(ApiError::not_found(format!(
            "EgressRoutePolicy/{policy} has no decision record"
        ))),
    }
}

/// `GET /events`: events after a cursor, long-polling up to `wait` for
/// the first one.
pub(super) async fn events(
    s: &Shared,
    since_id: u64,
    topic: Option<String>,
    resource: Option<String>,
    limit: usize,
    wait: Duration,
) -> Result<Value, ApiError> {
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
            return Ok(json!({"items": ev, "lastId": s.store.last_event_id().map_err(internal)?}));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// `GET /dynamic?source=`: stored parts. For one source (`routerctl
/// dynamic describe`) also what its parts put into the effective
/// configuration, and what that brought in turn: the chain part →
/// HybridRoute → lowered IPv4Routes.
pub(super) async fn dynamic(s: &Shared, source: Option<&str>) -> Result<Value, ApiError> {
    let parts: Vec<PartRecord> = match source {
        Some(src) => s.store.parts_of(src),
        None => s.store.parts(),
    }
    .map_err(internal)?;
    let Some(src) = source else {
        return Ok(json!({"items": parts}));
    };
    let core = s.core.lock().await;
    let effective = core.effective();
    let brought: Vec<&routerd_model::Resource> = effective
        .iter()
        .filter(|r| {
            r.metadata
                .annotations
                .get(routerd_merge::ANNOTATION_SOURCE)
                .map(String::as_str)
                == Some(src)
                && routerd_model::lower::owner_of(r).is_none()
        })
        .collect();
    let chain: Vec<Value> = brought
        .iter()
        .map(|r| {
            let lowered: Vec<String> = effective
                .iter()
                .filter(|l| {
                    r.kind() == routerd_model::Kind::HybridRoute
                        && routerd_model::lower::owner_of(l) == Some(r.name())
                })
                .map(|l| format!("IPv4Route/{}", l.name()))
                .collect();
            let mut v = json!({
                "resource": format!("{}/{}", r.kind().as_str(), r.name()),
                "part": r.metadata.annotations.get(routerd_merge::ANNOTATION_PART),
                "generation": r.metadata.annotations.get(routerd_merge::ANNOTATION_GENERATION),
            });
            if !lowered.is_empty()
                && let Some(o) = v.as_object_mut()
            {
                o.insert("lowered".into(), json!(lowered));
            }
            v
        })
        .collect();
    Ok(json!({"items": parts, "effective": chain}))
}

/// Listed resources with their statuses as reported (faults laid over, see
/// [`crate::core::Core::reported_status`]): what the kernel carries, not
/// only what selection intends.
fn items(core: &crate::core::Core, filter: &str) -> Vec<Value> {
    let (kind, name) = match filter.split_once('/') {
        Some((k, n)) => (Some(k), Some(n)),
        None if filter == "resources" || filter == "all" => (None, None),
        None => (Some(filter), None),
    };
    core.effective()
        .iter()
        .filter(|r| kind.is_none_or(|k| r.kind().as_str().eq_ignore_ascii_case(k)))
        .filter(|r| name.is_none_or(|n| r.name() == n))
        .map(|r| {
            let id = r.id().to_string();
            let spec = serde_json::to_value(r)
                .ok()
                .and_then(|v| v.get("spec").cloned());
            let mut item = json!({
                "apiVersion": r.api_version,
                "kind": r.kind().as_str(),
                "name": r.name(),
                "spec": spec,
                "status": core.reported_status(&id),
            });
            // Where a resource came from: the HybridRoute a lowered route
            // belongs to, the dynamic part that brought it.
            if let Some(o) = item.as_object_mut() {
                if !r.metadata.owner_refs.is_empty() {
                    o.insert("ownerRefs".into(), json!(r.metadata.owner_refs));
                }
                if !r.metadata.annotations.is_empty() {
                    o.insert("annotations".into(), json!(r.metadata.annotations));
                }
            }
            item
        })
        .collect()
}
