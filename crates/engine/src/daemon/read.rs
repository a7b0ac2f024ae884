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
    let (ready, scheduled) = s.queue.counts();
    let phase = s.phase();
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
            // The work queue (reload, links, step): `ready` is a backlog
            // (0 when the daemon keeps up); `scheduled` are wakes set for
            // later (a retry's backoff, a hold ending, health going stale).
            "work": {"ready": ready, "scheduled": scheduled},
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
        // What dynamic parts change in the running configuration (what
        // `routerctl dynamic diff` shows without files): resources they
        // add, and startup resources their masks suppress.
        "dynamic-diff" => {
            let added: Vec<Value> = core
                .effective()
                .iter()
                .filter_map(|r| {
                    let a = &r.metadata.annotations;
                    let source = a.get(routerd_merge::ANNOTATION_SOURCE)?;
                    Some(json!({
                        "id": r.id().to_string(),
                        "source": source,
                        "generation": a.get(routerd_merge::ANNOTATION_GENERATION),
                    }))
                })
                .collect();
            Ok(json!({"kind": "DynamicDiff", "added": added, "suppressed": core.suppressed()}))
        }
        other => {
            let kind = other.split_once('/').map_or(other, |(k, _)| k);
            if !matches!(kind, "resources" | "all") && !known_kind(kind) {
                return Err(ApiError::bad_request(format!(
                    "unknown kind {kind:?}: expected resources, status, events, ledger, orphans, dynamic, a kind or Kind/name"
                )));
            }
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
    // A policy's description leads with why traffic takes its path.
    let why = list.first().and_then(|item| {
        if item["kind"] != "EgressRoutePolicy" {
            return None;
        }
        let id = format!(
            "{}/EgressRoutePolicy/{}",
            routerd_model::id::NET_API,
            item["name"].as_str()?
        );
        let d = core.decision(&id)?;
        let health = health_of_candidates(&core, &id);
        let causes = causes(&d, &health, |hc| {
            core.reported_status(&format!("{}/HealthCheck/{hc}", routerd_model::id::NET_API))
        });
        Some((headline(&d), causes))
    });
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
    let mut out = json!({"kind": "DescribeResult", "resource": item, "events": ev});
    if let Some((headline, causes)) = why {
        out["headline"] = json!(headline);
        out["causes"] = json!(causes);
    }
    Ok(out)
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
            let health = health_of_candidates(&core, &id);
            let causes = causes(&d, &health, |hc| {
                core.reported_status(&format!("{}/HealthCheck/{hc}", routerd_model::id::NET_API))
            });
            let mut headline = headline(&d);
            if let Some(f) = &fault {
                headline = format!(
                    "{headline}; NOT installed: the kernel refused it ({}: {})",
                    f.reason, f.message
                );
            }
            Ok(json!({
                "policy": id,
                "headline": headline,
                "causes": causes,
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

/// The HealthCheck each candidate of policy `id` names, in spec order.
fn health_of_candidates(core: &crate::core::Core, id: &str) -> Vec<Option<String>> {
    core.effective()
        .iter()
        .find(|r| r.id().to_string() == id)
        .and_then(|r| r.as_egress_policy())
        .map(|p| {
            p.candidates
                .iter()
                .map(|c| c.health_check.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// One line an operator reads first: what carries traffic and why, or
/// why nothing does.
fn headline(d: &Value) -> String {
    let s = |k: &str| d[k].as_str().unwrap_or("");
    match d["selected"].as_str() {
        Some(sel) => {
            let c = d["candidates"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == sel));
            let path = c.map_or(String::new(), |c| {
                let dev = c["device"].as_str().unwrap_or("");
                let gw = c["gateway"].as_str().unwrap_or("");
                match (dev.is_empty(), gw.is_empty()) {
                    (false, false) => format!(" via {gw} dev {dev}"),
                    (false, true) => format!(" dev {dev}"),
                    _ => String::new(),
                }
            });
            let since = d["lastChangedAt"]
                .as_str()
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            format!(
                "{sel} selected{path}{since} ({}): {}",
                s("rule"),
                s("explanation")
            )
        }
        None => format!(
            "no path selected ({}): {}",
            d["reason"].as_str().unwrap_or(s("rule")),
            s("explanation")
        ),
    }
}

/// Per candidate that is not ready or is held: the real cause in words
/// (carrier lost on a device, DS-Lite tunnel down, health failing with the
/// last probe's evidence, dependsOn false, a hold and when it ends).
fn causes(
    d: &Value,
    health: &[Option<String>],
    status_of: impl Fn(&str) -> Option<routerd_model::Status>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for c in d["candidates"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("");
        let device = c["device"].as_str().unwrap_or("");
        if let Some(h) = c.get("held").filter(|h| !h.is_null()) {
            let until = h["until"].as_str().map_or_else(
                || "while the selected path stays ready".to_string(),
                |u| format!("until {u}"),
            );
            out.push(json!({
                "candidate": name,
                "cause": format!("held by {} {until}", h["by"].as_str().unwrap_or("")),
                "detail": h["message"],
            }));
        }
        let Some(r) = c["reasons"].as_array().and_then(|a| a.first()) else {
            continue;
        };
        let code = r["code"].as_str().unwrap_or("");
        let message = r["message"].as_str().unwrap_or("");
        let on = if device.is_empty() { name } else { device };
        let mut evidence = Value::Null;
        let cause = match code {
            "LinkDown" if message.contains("NoCarrier") => format!("carrier lost on {on}"),
            "LinkDown" => format!("link down on {on}"),
            "TunnelDown" => match message.split_whitespace().next() {
                Some(t) if t.contains('/') => format!("DS-Lite tunnel {t} down"),
                _ => "DS-Lite tunnel down".to_string(),
            },
            "DependencyNotReady" => "dependsOn false".to_string(),
            "Disabled" | "SourceDisabled" | "HealthCheckDisabled" => "disabled".to_string(),
            "DeviceUnresolved" => "no device resolved".to_string(),
            "GatewayUnresolved" => "no gateway resolved".to_string(),
            h if h.starts_with("Health") => {
                let hc = c["index"]
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| health.get(i))
                    .cloned()
                    .flatten();
                let st = hc.and_then(|h| status_of(&h));
                let ev = st.as_ref().and_then(|s| s.get("lastEvidence")).cloned();
                let kind = ev
                    .as_ref()
                    .and_then(|e| e.get("failureKind"))
                    .and_then(Value::as_str)
                    .map(|k| format!(", last probe: {k}"))
                    .unwrap_or_default();
                if let Some(st) = &st {
                    evidence = json!({
                        "lastResult": st.get("lastResult"),
                        "lastCheckedAt": st.get("lastCheckedAt"),
                        "consecutiveFailed": st.get("consecutiveFailed"),
                        "lastEvidence": ev,
                    });
                }
                format!("health failing{kind}")
            }
            _ => code.to_string(),
        };
        let mut v = json!({"candidate": name, "cause": cause, "detail": message, "code": code});
        if !evidence.is_null() {
            v["evidence"] = evidence;
        }
        out.push(v);
    }
    out
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

/// Whether `kind` names a resource kind (any case), so a typo is an error
/// rather than an empty list.
fn known_kind(kind: &str) -> bool {
    routerd_model::Kind::ALL
        .iter()
        .any(|k| k.as_str().eq_ignore_ascii_case(kind))
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
    let wanted = |k: &str, n: &str| {
        kind.is_none_or(|x| x.eq_ignore_ascii_case(k)) && name.is_none_or(|x| x == n)
    };
    // A startup resource masked by a dynamic part is not gone: it is listed
    // as Suppressed with the mask, so an operator sees why it is not in
    // the kernel.
    let suppressed = core.suppressed().iter().filter_map(|s| {
        let t = &s["target"];
        let k = t["kind"].as_str()?;
        let n = t["name"].as_str()?;
        wanted(k, n).then(|| {
            let by = s["maskedBy"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!({
                "apiVersion": t["apiVersion"],
                "kind": k,
                "name": n,
                "suppressed": s,
                "status": {
                    "phase": "Suppressed",
                    "reason": "MaskedByDynamicPart",
                    "message": format!(
                        "masked by {by} until {}{}",
                        s["maskedUntil"].as_str().unwrap_or("never"),
                        s["reason"].as_str().filter(|r| !r.is_empty()).map(|r| format!(": {r}")).unwrap_or_default()
                    ),
                },
            })
        })
    });
    let listed: Vec<Value> = core
        .effective()
        .iter()
        .filter(|r| wanted(r.kind().as_str(), r.name()))
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
        .collect();
    listed.into_iter().chain(suppressed).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Each readiness reason becomes the cause an operator reads first.
    #[test]
    fn causes_name_carrier_tunnel_health_dependencies_and_holds() {
        let d = json!({"candidates": [
            {"name": "a", "index": 0, "device": "wan1", "reasons": [{"code": "LinkDown", "message": "Interface/wan1 is Down (NoCarrier)"}]},
            {"name": "b", "index": 1, "device": "ds0", "reasons": [{"code": "TunnelDown", "message": "DSLiteTunnel/ds-a is Down; a DS-Lite tunnel must be Up"}]},
            {"name": "c", "index": 2, "device": "wan3", "reasons": [{"code": "HealthNotPassing", "message": "HealthCheck hc is Unhealthy (consecutiveFailed 3, unhealthyThreshold 3)"}]},
            {"name": "d", "index": 3, "device": "wan4", "reasons": [{"code": "DependencyNotReady", "message": "dependsOn[0] DHCPv4Client/x phase is Pending"}]},
            {"name": "e", "index": 4, "device": "wan5", "ready": true, "held": {"by": "preemptDelay", "until": "2026-01-01T00:00:30Z", "message": "ready since ..."}}
        ]});
        let health = vec![None, None, Some("hc".to_string()), None, None];
        let got = causes(&d, &health, |hc| {
            (hc == "hc").then(|| {
                serde_json::from_value(json!({
                    "lastResult": "timeout",
                    "lastEvidence": {"failureKind": "timeout", "egressInterface": "wan3"}
                }))
                .unwrap()
            })
        });
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|c| {
                (
                    c["candidate"].as_str().unwrap(),
                    c["cause"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("a", "carrier lost on wan1"),
                ("b", "DS-Lite tunnel DSLiteTunnel/ds-a down"),
                ("c", "health failing, last probe: timeout"),
                ("d", "dependsOn false"),
                ("e", "held by preemptDelay until 2026-01-01T00:00:30Z"),
            ]
        );
        assert_eq!(
            got[2]["evidence"]["lastEvidence"]["egressInterface"],
            "wan3"
        );
    }

    #[test]
    fn the_headline_says_what_carries_traffic_or_why_nothing_does() {
        let d = json!({"selected": "b", "rule": "Failover", "explanation": "a is no longer ready",
            "lastChangedAt": "T", "candidates": [{"name": "b", "device": "wan2", "gateway": "192.0.2.1"}]});
        assert_eq!(
            headline(&d),
            "b selected via 192.0.2.1 dev wan2 since T (Failover): a is no longer ready"
        );
        let d = json!({"rule": "NoReadyCandidates", "reason": "NoReadyCandidates", "explanation": "no candidate is ready"});
        assert_eq!(
            headline(&d),
            "no path selected (NoReadyCandidates): no candidate is ready"
        );
    }
}
