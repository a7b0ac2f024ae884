//! `routerctl describe EgressRouter/x` as text: the conditions, then one
//! line per redirect rule with its destinations' health and what new
//! connections get, so an operator sees at a glance which port is falling
//! back or refused and why (the YAML and JSON outputs carry the same
//! status unabridged).

use std::fmt::Write as _;

use serde_json::Value;

fn s<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The text of a `DescribeResult` whose resource is an EgressRouter, or
/// `None` for any other kind.
pub fn text(v: &Value) -> Option<String> {
    let r = v.get("resource")?;
    if s(r, "kind") != "EgressRouter" {
        return None;
    }
    let st = r.get("status").unwrap_or(&Value::Null);
    let mut o = String::new();
    let _ = writeln!(o, "EgressRouter/{} ({})", s(r, "name"), s(r, "apiVersion"));
    if let Some(ns) = st.get("namespace").and_then(Value::as_str) {
        let _ = writeln!(o, "namespace: {ns}");
    }
    let _ = writeln!(o, "phase: {}  reason: {}", s(st, "phase"), s(st, "reason"));
    o.push_str("conditions:\n");
    for c in st
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            o,
            "  {:<12} {:<7} {} since {}: {}",
            s(c, "type"),
            s(c, "status"),
            s(c, "reason"),
            s(c, "lastTransitionTime"),
            s(c, "message")
        );
    }
    o.push_str("rules:\n");
    let rules = st.get("rules").and_then(Value::as_array);
    if rules.is_none_or(|r| r.is_empty()) {
        o.push_str("  (none)\n");
    }
    for rule in rules.into_iter().flatten() {
        let port = rule.get("port").and_then(Value::as_i64).unwrap_or(0);
        let target = rule.get("targetPort").and_then(Value::as_i64).unwrap_or(0);
        let dests: Vec<String> = rule
            .get("destinations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                let health = match (
                    d.get("healthy").and_then(Value::as_bool),
                    d.get("healthChecks").is_some(),
                ) {
                    (Some(true), true) => "healthy",
                    (Some(true), false) => "unchecked",
                    _ => "unhealthy",
                };
                format!("{} {health}", s(d, "ip"))
            })
            .collect();
        let _ = writeln!(
            o,
            "  {port}/{} -> :{target} [{}] {}",
            s(rule, "protocol"),
            dests.join(", "),
            match s(rule, "action") {
                "Fallback" => "FALLING BACK",
                "Refused" => "REFUSED",
                "" => "",
                _ => "redirect",
            }
        );
        for d in rule
            .get("destinations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for why in d
                .get("reasons")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(o, "      {}: {}", s(d, "ip"), s(why, "message"));
            }
        }
    }
    if let Some(f) = st.get("fallback") {
        let h = if f.get("healthy").and_then(Value::as_bool) == Some(false) {
            "unhealthy"
        } else if f.get("healthChecks").is_some() {
            "healthy"
        } else {
            "unchecked"
        };
        let _ = writeln!(o, "fallback: {} {h}", s(f, "ip"));
    }
    let _ = writeln!(o, "other ports: {}", s(st, "unmatched"));
    let events = v.get("events").and_then(Value::as_array);
    if let Some(events) = events.filter(|e| !e.is_empty()) {
        o.push_str("events:\n");
        for e in events {
            let attrs: Vec<String> = e
                .get("attributes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            let _ = writeln!(o, "  {} {} {}", s(e, "time"), s(e, "type"), attrs.join(" "));
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn rules_show_their_health_and_what_new_connections_get() {
        let v = json!({
            "kind": "DescribeResult",
            "resource": {
                "apiVersion": "net.routerd.net/v1alpha1",
                "kind": "EgressRouter",
                "name": "er",
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "Available", "status": "False", "reason": "X", "message": "m", "lastTransitionTime": "t"}],
                    "rules": [
                        {"port": 80, "protocol": "TCP", "targetPort": 8080, "action": "Redirect",
                         "destinations": [
                            {"ip": "198.51.100.7", "healthy": false, "healthChecks": ["a"],
                             "reasons": [{"code": "HealthNotPassing", "message": "HealthCheck a is Unhealthy"}]},
                            {"ip": "198.51.100.8", "healthy": true}]},
                        {"port": 53, "protocol": "UDP", "targetPort": 53, "action": "Fallback",
                         "destinations": [{"ip": "198.51.100.53", "healthy": false, "healthChecks": ["d"]}]}
                    ],
                    "fallback": {"ip": "198.51.100.9", "healthy": true, "healthChecks": ["fb"]},
                    "unmatched": "fallback to 198.51.100.9"
                }
            },
            "events": [{"time": "t1", "type": "routerd.egressrouter.rule", "attributes": {"port": "53", "action": "Fallback"}}]
        });
        let t = text(&v).unwrap();
        assert!(
            t.contains("80/TCP -> :8080 [198.51.100.7 unhealthy, 198.51.100.8 unchecked] redirect"),
            "{t}"
        );
        assert!(
            t.contains("198.51.100.7: HealthCheck a is Unhealthy"),
            "{t}"
        );
        assert!(
            t.contains("53/UDP -> :53 [198.51.100.53 unhealthy] FALLING BACK"),
            "{t}"
        );
        assert!(t.contains("fallback: 198.51.100.9 healthy"), "{t}");
        assert!(
            t.contains("routerd.egressrouter.rule action=Fallback port=53"),
            "{t}"
        );
        assert!(text(&json!({"resource": {"kind": "IPv4Route"}})).is_none());
    }
}
