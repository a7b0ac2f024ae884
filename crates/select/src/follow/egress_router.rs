//! The status of an EgressRouter, in OpenShift's condition shape
//! (`status.conditions[]` of type Available, Progressing and Degraded, each
//! with status, reason, message and lastTransitionTime) plus one entry per
//! redirect rule.
//!
//! The follower states what routerd intends: a router whose master is
//! declared or can be inferred is `Available` (its macvlan, addresses,
//! route, rule and table are rendered); one whose master cannot be found
//! is `Degraded` ([`MASTER_NOT_FOUND`]). Whether the kernel carries it is
//! laid over this by the reconcile (crates/render `fault::overlay`): any
//! object of the router kept back or refused turns `Available` False and
//! `Degraded` True with the kernel's reason, so `Available` True is only
//! ever reported for a router the kernel carries.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use routerd_model::spec::egress_router::{
    EgressRouterSpec, MasterCandidate, infer_master, macvlan_name,
};
use routerd_model::{Event, Resource, Status};
use serde_json::{Value, json};

use super::egress_router_health::{DestinationVerdict, RouterVerdicts, RuleAction, rule_verdicts};
use super::{FollowOutcome, Subject, outcome};
use crate::observe::StatusSource;
use crate::set::World;
use crate::time::format_rfc3339_nano;

/// Reason of Available False / Degraded True when the master is neither
/// declared nor inferable (the render reports the same reason).
pub const MASTER_NOT_FOUND: &str = "MasterNotFound";

/// Reason of Available True: the router is rendered and carried.
pub const CARRIED: &str = "Carried";

/// The event published when a condition changes status.
pub const EGRESS_ROUTER_CONDITION_EVENT: &str = "routerd.egressrouter.condition";

/// The master: declared, or inferred from the Interfaces' observed
/// subnets (the sentence says which and why).
fn master_of(
    spec: &EgressRouterSpec,
    world: &World,
    statuses: &dyn StatusSource,
) -> Option<(String, Option<String>)> {
    if let Some(m) = spec.master() {
        return Some((m.to_string(), None));
    }
    let reserved: Vec<IpNet> = spec
        .addresses
        .iter()
        .filter_map(|a| a.ip.trim().parse().ok())
        .collect();
    let mut candidates: Vec<MasterCandidate> = world
        .links
        .iter()
        .filter(|(_, (kind_name, _, _))| kind_name.starts_with("Interface/"))
        .filter_map(|(name, (_, id, _))| {
            let st = statuses.status(id)?;
            Some(MasterCandidate {
                resource: name.clone(),
                ifname: st
                    .get("ifname")
                    .and_then(Value::as_str)
                    .map_or_else(|| world.device_of(name), str::to_string),
                addresses: st
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str()?.parse().ok())
                    .collect(),
            })
        })
        .collect();
    // The render walks Interfaces by name; so does this.
    candidates.sort_by(|a, b| a.resource.cmp(&b.resource));
    infer_master(&reserved, &candidates).map(|(m, why)| (m, Some(why)))
}

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
    let master = master_of(spec, world, statuses);
    let device = macvlan_name(r.name());
    let gateway = spec.addresses.iter().find_map(|a| {
        a.gateway
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
    });
    let (available, reason, message) = match &master {
        Some((m, _)) => (
            true,
            CARRIED,
            format!(
                "macvlan {device} on {m} carries {}; redirected traffic leaves from it{}",
                addresses.join(", "),
                gateway.map(|g| format!(" via {g}")).unwrap_or_default()
            ),
        ),
        None => (
            false,
            MASTER_NOT_FOUND,
            format!(
                "spec.networkInterface.macvlan.master is not set and no Interface's observed subnet holds {}",
                addresses.join(", ")
            ),
        ),
    };
    let tf = |b: bool| if b { "True" } else { "False" };
    let wanted = [
        ("Available", tf(available), reason, message.as_str()),
        (
            "Progressing",
            "False",
            "AsExpected",
            "the dataplane is what the spec asks for",
        ),
        (
            "Degraded",
            tf(!available),
            if available { "AsExpected" } else { reason },
            if available {
                "nothing has failed"
            } else {
                message.as_str()
            },
        ),
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
    st.insert(
        "phase".into(),
        json!(if available { "Available" } else { "Degraded" }),
    );
    st.insert("reason".into(), json!(reason));
    if !available {
        st.insert("message".into(), json!(message));
    }
    st.insert("conditions".into(), Value::Array(conditions));
    st.insert("addresses".into(), json!(addresses));
    st.insert("addressesCarried".into(), json!(available));
    st.insert(
        "master".into(),
        json!(master.as_ref().map_or("", |(m, _)| m.as_str())),
    );
    if let Some((_, Some(why))) = &master {
        st.insert("masterInferred".into(), json!(why));
    }
    st.insert("device".into(), json!(device));
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
    use routerd_model::{StateSnapshot, load_and_validate};

    const CR: &str = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata: {name: er, namespace: egress}\nspec:\n  addresses: [{ip: 192.168.12.99/24, gateway: 192.168.12.1}]\n  redirect:\n    redirectRules:\n      - {destinationIP: 203.0.113.26, port: 8080, targetPort: 80, protocol: tcp}\n";
    const IFACE: &str = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: ens19}\n";
    const IFACE_ID: &str = "net.routerd.net/v1alpha1/Interface/wan";

    fn eval(statuses: &StateSnapshot, previous: Option<&Status>, secs: i64) -> FollowOutcome {
        let (l, ds) = load_and_validate(&[("er.yaml", CR), ("if.yaml", IFACE)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let r = l.resources.iter().find(|r| r.name() == "er").unwrap();
        let spec = r.as_egress_router().unwrap();
        let world = World::new(&l.resources);
        let who = Subject {
            api_version: &r.api_version,
            name: r.name(),
        };
        let now = Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap();
        egress_router(who, r, spec, &world, statuses, previous, now)
    }

    fn observed(addresses: &[&str]) -> StateSnapshot {
        let mut s = StateSnapshot::new();
        s.insert(
            IFACE_ID.into(),
            serde_json::from_value(
                json!({"phase": "Up", "ifname": "ens19", "addresses": addresses}),
            )
            .unwrap(),
        );
        s
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
    fn an_inferred_master_makes_it_available_and_says_why() {
        let o = eval(&observed(&["192.168.12.5/24"]), None, 0);
        assert_eq!(condition(&o.status, "Available")["status"], "True");
        assert_eq!(condition(&o.status, "Available")["reason"], CARRIED);
        assert_eq!(condition(&o.status, "Degraded")["status"], "False");
        assert_eq!(o.status["master"], "ens19");
        assert_eq!(o.status["device"], "rde-er");
        assert!(
            o.status["masterInferred"]
                .as_str()
                .unwrap()
                .contains("Interface/wan carries 192.168.12.5/24")
        );
        assert_eq!(o.status["addressesCarried"], true);
        assert_eq!(o.status["namespace"], "egress");
        let rule = &o.status["rules"][0];
        assert_eq!(rule["protocol"], "TCP");
        assert_eq!(rule["targetPort"], 80);
        assert_eq!(o.events.len(), 3, "one event per new condition");
    }

    #[test]
    fn a_master_that_disappears_degrades_with_a_reason_and_an_event() {
        let up = eval(&observed(&["192.168.12.5/24"]), None, 0);
        let gone = eval(&observed(&[]), Some(&up.status), 60);
        assert_eq!(gone.status["phase"], "Degraded");
        assert_eq!(condition(&gone.status, "Available")["status"], "False");
        assert_eq!(condition(&gone.status, "Degraded")["status"], "True");
        assert_eq!(
            condition(&gone.status, "Degraded")["reason"],
            MASTER_NOT_FOUND
        );
        assert_eq!(gone.events.len(), 2, "Available and Degraded changed");
        assert!(
            gone.events
                .iter()
                .all(|e| e.type_ == EGRESS_ROUTER_CONDITION_EVENT)
        );
    }

    #[test]
    fn transition_times_stay_while_nothing_changes() {
        let obs = observed(&["192.168.12.5/24"]);
        let first = eval(&obs, None, 0);
        let again = eval(&obs, Some(&first.status), 60);
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
