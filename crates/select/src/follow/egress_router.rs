//! The status of an EgressRouter, in OpenShift's condition shape
//! (`status.conditions[]` of type Available, Progressing and Degraded, each
//! with status, reason, message and lastTransitionTime) plus one entry per
//! redirect rule.
//!
//! Honest by construction: phase 1 renders the nft table but does not yet
//! create the macvlan that carries the reserved addresses, so no redirected
//! connection can be sourced from them. The status says exactly that
//! (Available False, Progressing True, reason [`MACVLAN_NOT_IMPLEMENTED`])
//! instead of claiming the router is available.

use chrono::{DateTime, Utc};
use routerd_model::spec::egress_router::EgressRouterSpec;
use routerd_model::{Event, Resource, Status};
use serde_json::{Value, json};

use super::egress_router_health::{DestinationVerdict, RouterVerdicts, RuleAction, rule_verdicts};
use super::{FollowOutcome, Subject, outcome};
use crate::observe::StatusSource;
use crate::set::World;
use crate::time::format_rfc3339_nano;

/// Reason of Available False / Progressing True while the reserved
/// addresses have no macvlan to live on.
pub const MACVLAN_NOT_IMPLEMENTED: &str = "MacvlanNotImplemented";

/// The event published when a condition changes status.
pub const EGRESS_ROUTER_CONDITION_EVENT: &str = "routerd.egressrouter.condition";

/// The event published when a rule's action or live destinations change.
pub const EGRESS_ROUTER_RULE_EVENT: &str = "routerd.egressrouter.rule";

/// The event published when the fallback's health changes.
pub const EGRESS_ROUTER_FALLBACK_EVENT: &str = "routerd.egressrouter.fallback";

fn destination_json(d: &DestinationVerdict) -> Value {
    let reasons: Vec<Value> = d
        .reasons
        .iter()
        .map(|r| json!({"code": r.code, "message": r.message}))
        .collect();
    let mut v = json!({"ip": d.ip, "healthy": d.live});
    if !d.checks.is_empty() {
        v["healthChecks"] = json!(d.checks);
    }
    if !reasons.is_empty() {
        v["reasons"] = Value::Array(reasons);
    }
    v
}

/// Per-rule state for the status (the renderer reads `destinations[].ip`,
/// `liveDestinations` and `fallback.healthy` from it), and one event per
/// rule or fallback whose state moved since `previous`. Without a previous
/// entry only a rule that is not fully live is announced, so a start with
/// 1,000 healthy rules publishes nothing.
fn rules_status(
    v: &RouterVerdicts,
    previous: Option<&Status>,
    who: &Subject<'_>,
    now: DateTime<Utc>,
    events: &mut Vec<Event>,
) -> (Vec<Value>, Option<Value>) {
    let prev_rules: Vec<&Value> = previous
        .and_then(|s| s.get("rules"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut rules = Vec::with_capacity(v.rules.len());
    for rule in &v.rules {
        let live = rule.live();
        let checked = rule.destinations.iter().any(|d| !d.checks.is_empty());
        let health = if !checked {
            "Unchecked"
        } else if live.len() == rule.destinations.len() {
            "Healthy"
        } else if live.is_empty() {
            "Unhealthy"
        } else {
            "Partial"
        };
        let prev = prev_rules.iter().find(|p| {
            p.get("port").and_then(Value::as_i64) == Some(rule.port)
                && p.get("protocol").and_then(Value::as_str) == Some(rule.protocol)
        });
        let prev_state = prev.map(|p| {
            (
                p.get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("Redirect")
                    .to_string(),
                p.get("liveDestinations").cloned().unwrap_or(Value::Null),
            )
        });
        let changed = match &prev_state {
            Some((a, l)) => a != rule.action.as_str() || *l != json!(live),
            None => live.len() != rule.destinations.len(),
        };
        if changed {
            events.push(
                Event::info(
                    EGRESS_ROUTER_RULE_EVENT,
                    who.object_ref("EgressRouter"),
                    now,
                )
                .attr("port", rule.port.to_string())
                .attr("protocol", rule.protocol)
                .attr("action", rule.action.as_str())
                .attr("liveDestinations", live.join(",")),
            );
        }
        rules.push(json!({
            "port": rule.port,
            "protocol": rule.protocol,
            "destinationIP": rule.destinations.first().map(|d| d.ip.as_str()).unwrap_or(""),
            "targetPort": rule.target_port,
            "destinations": rule.destinations.iter().map(destination_json).collect::<Vec<_>>(),
            "liveDestinations": live,
            "destinationHealth": health,
            "action": rule.action.as_str(),
            "fallingBack": rule.action == RuleAction::Fallback,
            "refused": rule.action == RuleAction::Refused,
        }));
    }
    let fallback = v.fallback.as_ref().map(|f| {
        let was = previous
            .and_then(|s| s.get("fallback"))
            .and_then(|f| f.get("healthy"))
            .and_then(Value::as_bool);
        if was.map_or(!f.live, |w| w != f.live) {
            events.push(
                Event::info(
                    EGRESS_ROUTER_FALLBACK_EVENT,
                    who.object_ref("EgressRouter"),
                    now,
                )
                .attr("ip", f.ip.as_str())
                .attr("healthy", f.live.to_string()),
            );
        }
        destination_json(f)
    });
    (rules, fallback)
}

/// The status of one EgressRouter. `previous` keeps each condition's
/// lastTransitionTime while its status does not change.
pub fn egress_router(
    who: Subject<'_>,
    r: &Resource,
    spec: &EgressRouterSpec,
    world: &World,
    statuses: &dyn StatusSource,
    previous: Option<&Status>,
    now: DateTime<Utc>,
) -> FollowOutcome {
    let addresses: Vec<&str> = spec.addresses.iter().map(|a| a.ip.trim()).collect();
    let carried = format!(
        "the nft redirect table is rendered, but the macvlan that carries {} is not created yet (phase 2 of issue #15): redirected traffic cannot leave from the reserved address",
        addresses.join(", ")
    );
    let wanted = [
        (
            "Available",
            "False",
            MACVLAN_NOT_IMPLEMENTED,
            carried.as_str(),
        ),
        (
            "Progressing",
            "True",
            MACVLAN_NOT_IMPLEMENTED,
            "waiting for the macvlan, the reserved addresses and the route via the gateway",
        ),
        ("Degraded", "False", "AsExpected", "nothing has failed"),
    ];
    let prev_conditions = previous
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    let prev_of = |t: &str| {
        prev_conditions
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
    };
    let mut events = Vec::new();
    let mut conditions = Vec::new();
    for (t, status, reason, message) in wanted {
        let prev = prev_of(t);
        let same = prev.and_then(|c| c.get("status")).and_then(Value::as_str) == Some(status);
        let since = match prev.and_then(|c| c.get("lastTransitionTime")) {
            Some(Value::String(s)) if same => s.clone(),
            _ => {
                events.push(
                    Event::info(
                        EGRESS_ROUTER_CONDITION_EVENT,
                        who.object_ref("EgressRouter"),
                        now,
                    )
                    .attr("type", t)
                    .attr("status", status)
                    .attr("reason", reason),
                );
                format_rfc3339_nano(now)
            }
        };
        conditions.push(json!({
            "type": t,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }));
    }
    let verdicts = rule_verdicts(spec, &world.health, statuses, now);
    let (rules, fallback) = rules_status(&verdicts, previous, &who, now, &mut events);
    let listen = spec.effective_listen(&r.metadata.annotations);
    let mut st = Status::new();
    st.insert("phase".into(), json!("Pending"));
    st.insert("reason".into(), json!(MACVLAN_NOT_IMPLEMENTED));
    st.insert("conditions".into(), Value::Array(conditions));
    st.insert("addresses".into(), json!(addresses));
    st.insert("addressesCarried".into(), json!(false));
    st.insert("master".into(), json!(spec.master().unwrap_or("")));
    st.insert("macvlanMode".into(), json!(spec.macvlan_mode()));
    st.insert(
        "listen".into(),
        json!({"interfaces": listen.interfaces, "addresses": listen.addresses}),
    );
    st.insert("rules".into(), Value::Array(rules));
    st.insert(
        "unmatched".into(),
        json!(match &verdicts.fallback {
            Some(f) if f.live => format!("fallback to {}", f.ip),
            Some(f) => format!(
                "refused (tcp reset, icmp port unreachable): fallback {} is unhealthy",
                f.ip
            ),
            None => "refused (tcp reset, icmp port unreachable)".to_string(),
        }),
    );
    if let Some(f) = fallback {
        st.insert("fallback".into(), f);
    }
    if let Some(ns) = r.metadata.namespace.as_deref() {
        st.insert("namespace".into(), json!(ns));
    }
    outcome(st, previous, events)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use chrono::TimeZone;
    use routerd_model::load_and_validate;

    const CR: &str = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata: {name: er, namespace: egress}\nspec:\n  addresses: [{ip: 192.168.12.99/24, gateway: 192.168.12.1}]\n  redirect:\n    redirectRules:\n      - {destinationIP: 203.0.113.26, port: 8080, targetPort: 80, protocol: tcp}\n";

    fn eval(previous: Option<&Status>, secs: i64) -> FollowOutcome {
        let (l, ds) = load_and_validate(&[("er.yaml", CR)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let r = l.resources.iter().find(|r| r.name() == "er").unwrap();
        let spec = r.as_egress_router().unwrap();
        let who = Subject {
            api_version: &r.api_version,
            name: r.name(),
        };
        let now = Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
        let world = World::new(&l.resources);
        let statuses = std::collections::BTreeMap::<String, Status>::new();
        egress_router(who, r, spec, &world, &statuses, previous, now)
    }

    fn condition<'a>(st: &'a Status, t: &str) -> &'a Value {
        st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
    }

    #[test]
    fn without_the_macvlan_it_never_claims_available() {
        let o = eval(None, 0);
        assert_eq!(condition(&o.status, "Available")["status"], "False");
        assert_eq!(
            condition(&o.status, "Available")["reason"],
            MACVLAN_NOT_IMPLEMENTED
        );
        assert_eq!(condition(&o.status, "Progressing")["status"], "True");
        assert_eq!(condition(&o.status, "Degraded")["status"], "False");
        assert_eq!(o.status["addressesCarried"], false);
        assert_eq!(o.status["namespace"], "egress");
        let rule = &o.status["rules"][0];
        assert_eq!(rule["protocol"], "TCP");
        assert_eq!(rule["targetPort"], 80);
        assert_eq!(rule["destinationHealth"], "Unchecked");
        assert_eq!(o.events.len(), 3, "one event per new condition");
    }

    #[test]
    fn transition_times_stay_while_nothing_changes() {
        let first = eval(None, 0);
        let again = eval(Some(&first.status), 60);
        assert!(!again.status_changed);
        assert!(again.events.is_empty());
        assert_eq!(
            condition(&again.status, "Available")["lastTransitionTime"],
            condition(&first.status, "Available")["lastTransitionTime"]
        );
    }

    #[test]
    fn rules_publish_health_and_every_change_is_an_event() {
        let cfg = "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {name: a}\nspec: {target: 198.51.100.7, protocol: tcp, port: 80}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {name: fb}\nspec: {target: 198.51.100.9}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  redirect:\n    redirectRules:\n      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP, healthCheck: a}\n      - {destinationIP: 198.51.100.7, port: 81, protocol: TCP, healthCheck: a}\n    fallbackIP: 198.51.100.9\n    fallbackHealthCheck: fb\n";
        let (l, ds) = load_and_validate(&[("er.yaml", cfg)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let r = l.resources.iter().find(|r| r.name() == "er").unwrap();
        let spec = r.as_egress_router().unwrap();
        let world = World::new(&l.resources);
        let at = |secs: i64| Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
        let hc = |phase: &str, secs: i64| {
            let mut s = Status::new();
            s.insert("phase".into(), json!(phase));
            s.insert(
                "consecutiveFailed".into(),
                json!(if phase == "Healthy" { 0 } else { 3 }),
            );
            s.insert("lastCheckedAt".into(), json!(format_rfc3339_nano(at(secs))));
            s
        };
        let mut st = std::collections::BTreeMap::<String, Status>::new();
        st.insert(
            "net.routerd.net/v1alpha1/HealthCheck/a".into(),
            hc("Healthy", 0),
        );
        st.insert(
            "net.routerd.net/v1alpha1/HealthCheck/fb".into(),
            hc("Healthy", 0),
        );
        let who = Subject {
            api_version: &r.api_version,
            name: r.name(),
        };
        let first = egress_router(who, r, spec, &world, &st, None, at(1));
        let rules = first.status["rules"].as_array().unwrap();
        assert_eq!(
            rules[0]["liveDestinations"],
            json!(["198.51.100.7", "198.51.100.8"])
        );
        assert_eq!(rules[0]["destinationHealth"], "Healthy");
        // `a` targets .7: it guards .7 only; .8 is unchecked.
        assert_eq!(rules[0]["destinations"][0]["healthChecks"], json!(["a"]));
        assert!(rules[0]["destinations"][1].get("healthChecks").is_none());
        assert_eq!(rules[1]["action"], "Redirect");
        assert_eq!(first.status["fallback"]["healthy"], true);
        assert!(
            first
                .events
                .iter()
                .all(|e| e.type_ == EGRESS_ROUTER_CONDITION_EVENT),
            "a healthy start announces only the conditions"
        );

        // The destination dies: port 80 keeps its other destination, port
        // 81 falls back; one event per rule that moved.
        st.insert(
            "net.routerd.net/v1alpha1/HealthCheck/a".into(),
            hc("Unhealthy", 2),
        );
        let second = egress_router(who, r, spec, &world, &st, Some(&first.status), at(3));
        let rules = second.status["rules"].as_array().unwrap();
        assert_eq!(rules[0]["liveDestinations"], json!(["198.51.100.8"]));
        assert_eq!(rules[0]["destinationHealth"], "Partial");
        assert_eq!(
            rules[0]["destinations"][0]["reasons"][0]["code"],
            "HealthNotPassing"
        );
        assert_eq!(rules[1]["action"], "Fallback");
        assert_eq!(rules[1]["fallingBack"], true);
        let moved: Vec<_> = second
            .events
            .iter()
            .filter(|e| e.type_ == EGRESS_ROUTER_RULE_EVENT)
            .map(|e| (e.attributes["port"].clone(), e.attributes["action"].clone()))
            .collect();
        assert_eq!(
            moved,
            vec![
                ("80".into(), "Redirect".into()),
                ("81".into(), "Fallback".into())
            ]
        );

        // The fallback dies too: port 81 is refused, the fallback event says so.
        st.insert(
            "net.routerd.net/v1alpha1/HealthCheck/fb".into(),
            hc("Unhealthy", 4),
        );
        let third = egress_router(who, r, spec, &world, &st, Some(&second.status), at(5));
        assert_eq!(third.status["rules"][1]["action"], "Refused");
        assert_eq!(third.status["rules"][1]["refused"], true);
        assert!(
            third
                .events
                .iter()
                .any(|e| e.type_ == EGRESS_ROUTER_FALLBACK_EVENT
                    && e.attributes["healthy"] == "false")
        );
        assert!(
            third.status["unmatched"]
                .as_str()
                .unwrap()
                .contains("unhealthy")
        );

        // Nothing moves: no event.
        let again = egress_router(who, r, spec, &world, &st, Some(&third.status), at(6));
        assert!(again.events.is_empty(), "{:?}", again.events);
    }
}
