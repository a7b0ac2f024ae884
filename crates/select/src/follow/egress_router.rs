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
use routerd_model::spec::egress_router::{EgressRouterSpec, RedirectProtocol};
use routerd_model::{Event, Resource, Status};
use serde_json::{Value, json};

use super::{FollowOutcome, Subject, outcome};
use crate::time::format_rfc3339_nano;

/// Reason of Available False / Progressing True while the reserved
/// addresses have no macvlan to live on.
pub const MACVLAN_NOT_IMPLEMENTED: &str = "MacvlanNotImplemented";

/// The event published when a condition changes status.
pub const EGRESS_ROUTER_CONDITION_EVENT: &str = "routerd.egressrouter.condition";

/// The status of one EgressRouter. `previous` keeps each condition's
/// lastTransitionTime while its status does not change.
pub fn egress_router(
    who: Subject<'_>,
    r: &Resource,
    spec: &EgressRouterSpec,
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
    let fallback = spec.fallback();
    let rules: Vec<Value> = spec
        .rules()
        .iter()
        .map(|rule| {
            let protocol = RedirectProtocol::parse(&rule.protocol)
                .map(RedirectProtocol::as_str)
                .unwrap_or("");
            json!({
                "port": rule.port,
                "protocol": protocol,
                "destinationIP": rule.destination_ip.trim(),
                "targetPort": rule.effective_target_port(),
                // No health checks before phase 2: the destination's
                // health is not known, and nothing falls back because of it.
                "destinationHealth": "Unchecked",
                "fallingBack": false,
            })
        })
        .collect();
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
        json!(match fallback {
            Some(f) => format!("fallback to {f}"),
            None => "refused (tcp reset, icmp port unreachable)".to_string(),
        }),
    );
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
        egress_router(who, r, spec, previous, now)
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
}
