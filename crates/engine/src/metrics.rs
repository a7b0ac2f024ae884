//! Prometheus metrics, computed at scrape time from the daemon's statuses
//! and counters.
//!
//! Everything exported is already in the status snapshot (selected
//! candidate, health phases) or in a handful of counters, so the text
//! exposition is rendered directly instead of mirroring state into a
//! metrics registry that could drift from it.

use std::fmt::Write as _;

use routerd_model::StateSnapshot;
use serde_json::Value;

/// Counters the loop maintains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Reconcile steps run.
    pub steps: u64,
    /// Steps that failed (plan, store or dataplane).
    pub step_failures: u64,
    /// Dataplane operations carried out.
    pub dataplane_ops: u64,
    /// Sum of apply durations, seconds.
    pub apply_seconds_sum: f64,
    /// Number of applies measured.
    pub apply_count: u64,
    /// The last apply duration, seconds.
    pub apply_seconds_last: f64,
    /// Health updates received.
    pub health_updates: u64,
    /// Store writes that failed (full disk, I/O errors).
    pub store_failures: u64,
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn split_id(id: &str) -> Option<(&str, &str)> {
    let (rest, name) = id.rsplit_once('/')?;
    let kind = rest.rsplit_once('/')?.1;
    Some((kind, name))
}

const HEALTH_PHASES: &[&str] = &[
    "Unknown",
    "Passing",
    "Healthy",
    "Failing",
    "Unhealthy",
    "Disabled",
];

/// Whether a reported status carries a dataplane fault.
fn is_fault(st: &routerd_model::Status) -> bool {
    st.get(crate::faults::DATAPLANE_KEY)
        .and_then(|d| d.get("installed"))
        .and_then(Value::as_bool)
        == Some(false)
}

/// Renders the exposition text.
pub fn render(statuses: &StateSnapshot, c: &Counters, parts: &[(String, usize)]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP routerd_egress_selected Candidate selected by each EgressRoutePolicy (1 = selected); installed=\"false\" when the kernel does not carry the selection."
    );
    let _ = writeln!(o, "# TYPE routerd_egress_selected gauge");
    for (id, st) in statuses {
        let Some(("EgressRoutePolicy", name)) = split_id(id) else {
            continue;
        };
        let cand = st
            .get("selectedCandidate")
            .and_then(Value::as_str)
            .unwrap_or("");
        let dev = st
            .get("selectedDevice")
            .and_then(Value::as_str)
            .unwrap_or("");
        let phase = st.get("phase").and_then(Value::as_str).unwrap_or("");
        let installed = !is_fault(st);
        let _ = writeln!(
            o,
            "routerd_egress_selected{{policy=\"{}\",candidate=\"{}\",device=\"{}\",phase=\"{}\",installed=\"{}\"}} {}",
            esc(name),
            esc(cand),
            esc(dev),
            esc(phase),
            installed,
            u8::from(!cand.is_empty())
        );
    }
    let _ = writeln!(
        o,
        "# HELP routerd_dataplane_faults Resources whose kernel state is not what they asked for, by reason."
    );
    let _ = writeln!(o, "# TYPE routerd_dataplane_faults gauge");
    let mut by_reason: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for st in statuses.values().filter(|st| is_fault(st)) {
        let reason = st.get("reason").and_then(Value::as_str).unwrap_or("");
        *by_reason.entry(reason).or_default() += 1;
    }
    for (reason, n) in by_reason {
        let _ = writeln!(
            o,
            "routerd_dataplane_faults{{reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    let _ = writeln!(
        o,
        "# HELP routerd_healthcheck_phase Current phase of each HealthCheck (one-hot)."
    );
    let _ = writeln!(o, "# TYPE routerd_healthcheck_phase gauge");
    let mut latency = String::new();
    for (id, st) in statuses {
        let Some(("HealthCheck", name)) = split_id(id) else {
            continue;
        };
        let phase = st.get("phase").and_then(Value::as_str).unwrap_or("Unknown");
        for p in HEALTH_PHASES {
            let _ = writeln!(
                o,
                "routerd_healthcheck_phase{{check=\"{}\",phase=\"{p}\"}} {}",
                esc(name),
                u8::from(*p == phase)
            );
        }
        let ms = st
            .get("lastLatencyMs")
            .or_else(|| st.get("lastEvidence").and_then(|e| e.get("latencyMs")))
            .and_then(Value::as_f64);
        if let Some(ms) = ms {
            let _ = writeln!(
                latency,
                "routerd_probe_latency_seconds{{check=\"{}\"}} {}",
                esc(name),
                ms / 1000.0
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP routerd_probe_latency_seconds Duration of each check's last probe."
    );
    let _ = writeln!(o, "# TYPE routerd_probe_latency_seconds gauge");
    o.push_str(&latency);
    let _ = writeln!(
        o,
        "# HELP routerd_apply_duration_seconds Time spent observing, diffing and applying the dataplane per step."
    );
    let _ = writeln!(o, "# TYPE routerd_apply_duration_seconds summary");
    let _ = writeln!(
        o,
        "routerd_apply_duration_seconds_sum {}",
        c.apply_seconds_sum
    );
    let _ = writeln!(o, "routerd_apply_duration_seconds_count {}", c.apply_count);
    let _ = writeln!(
        o,
        "# HELP routerd_apply_last_duration_seconds Duration of the last dataplane apply."
    );
    let _ = writeln!(o, "# TYPE routerd_apply_last_duration_seconds gauge");
    let _ = writeln!(
        o,
        "routerd_apply_last_duration_seconds {}",
        c.apply_seconds_last
    );
    for (name, help, v) in [
        (
            "routerd_reconcile_steps_total",
            "Reconcile steps run.",
            c.steps,
        ),
        (
            "routerd_reconcile_failures_total",
            "Reconcile steps that failed.",
            c.step_failures,
        ),
        (
            "routerd_store_failures_total",
            "Store writes that failed (statuses, events, ledger, parts).",
            c.store_failures,
        ),
        (
            "routerd_dataplane_operations_total",
            "Dataplane operations carried out.",
            c.dataplane_ops,
        ),
        (
            "routerd_health_updates_total",
            "Health results received.",
            c.health_updates,
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} counter");
        let _ = writeln!(o, "{name} {v}");
    }
    let _ = writeln!(
        o,
        "# HELP routerd_dynamic_parts Stored dynamic-config parts by state."
    );
    let _ = writeln!(o, "# TYPE routerd_dynamic_parts gauge");
    for (state, n) in parts {
        let _ = writeln!(o, "routerd_dynamic_parts{{state=\"{}\"}} {n}", esc(state));
    }
    crate::gateway::metrics(&mut o, statuses);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_selection_health_and_counters() {
        let snap: StateSnapshot = serde_json::from_value(serde_json::json!({
            "net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default": {"phase": "Applied", "selectedCandidate": "ds-lite", "selectedDevice": "ds-lite0"},
            "net.routerd.net/v1alpha1/HealthCheck/internet": {"phase": "Failing", "lastLatencyMs": 12.5}
        }))
        .unwrap();
        let c = Counters {
            steps: 3,
            apply_count: 2,
            apply_seconds_sum: 0.5,
            ..Counters::default()
        };
        let text = render(&snap, &c, &[("active".into(), 2)]);
        assert!(text.contains("routerd_egress_selected{policy=\"ipv4-default\",candidate=\"ds-lite\",device=\"ds-lite0\",phase=\"Applied\",installed=\"true\"} 1"));
        assert!(text.contains("routerd_healthcheck_phase{check=\"internet\",phase=\"Failing\"} 1"));
        assert!(text.contains("routerd_healthcheck_phase{check=\"internet\",phase=\"Healthy\"} 0"));
        assert!(text.contains("routerd_probe_latency_seconds{check=\"internet\"} 0.0125"));
        assert!(text.contains("routerd_reconcile_steps_total 3"));
        assert!(text.contains("routerd_dynamic_parts{state=\"active\"} 2"));
        assert_eq!(esc("a\"b"), "a\\\"b");
    }

    #[test]
    fn gateway_role_and_failovers_are_exposed() {
        let snap: StateSnapshot = serde_json::from_value(serde_json::json!({
            "network.deckhouse.io/v1alpha1/EgressGateway/egress-gw": {"vrrpState": "MASTER", "nodeName": "gw-a", "failoverCount": 3}
        }))
        .unwrap();
        let text = render(&snap, &Counters::default(), &[]);
        assert!(text.contains("routerd_egress_gateway_role{gateway=\"egress-gw\",node=\"gw-a\",state=\"MASTER\"} 1"), "{text}");
        assert!(text.contains("routerd_egress_gateway_role{gateway=\"egress-gw\",node=\"gw-a\",state=\"BACKUP\"} 0"), "{text}");
        assert!(
            text.contains(
                "routerd_egress_gateway_failovers_total{gateway=\"egress-gw\",node=\"gw-a\"} 3"
            ),
            "{text}"
        );
    }
}
