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

/// Upper bounds (seconds) of the probe latency histogram: from a LAN
/// next hop (sub-millisecond) to a slow path near a probe's timeout.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Per bucket (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Round-trip times of passed probes per HealthCheck, fed by the health
/// runtime with every result (also those the loop never sees: results
/// that move nothing are not forwarded), rendered at scrape time.
#[derive(Debug, Default)]
pub struct ProbeLatency {
    checks: std::sync::Mutex<std::collections::BTreeMap<String, Histogram>>,
}

impl ProbeLatency {
    /// Records one passed probe of `check`.
    pub fn observe(&self, check: &str, rtt: std::time::Duration) {
        let secs = rtt.as_secs_f64();
        let mut m = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = m.entry(check.to_string()).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b)
            && let Some(slot) = h.buckets.get_mut(i)
        {
            *slot += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP routerd_probe_latency_seconds Round-trip time of passed health probes."
        );
        let _ = writeln!(o, "# TYPE routerd_probe_latency_seconds histogram");
        let m = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (check, h) in m.iter() {
            let c = esc(check);
            let mut cumulative = 0;
            for (b, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    o,
                    "routerd_probe_latency_seconds_bucket{{check=\"{c}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                o,
                "routerd_probe_latency_seconds_bucket{{check=\"{c}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                o,
                "routerd_probe_latency_seconds_sum{{check=\"{c}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                o,
                "routerd_probe_latency_seconds_count{{check=\"{c}\"}} {}",
                h.count
            );
        }
    }
}

/// The daemon's phases, exported one-hot so an alert can say which.
pub const DAEMON_PHASES: &[&str] = &["Starting", "Ready", "Degraded"];

/// What the scrape adds beyond statuses and counters.
#[derive(Debug)]
pub struct Extra<'a> {
    /// The daemon's phase (`routerctl status`).
    pub phase: &'a str,
    /// Owners the kernel refused: (owner id, reason).
    pub degraded: Vec<(String, String)>,
    /// Probe round-trip times.
    pub latency: &'a ProbeLatency,
}

/// [`render`] plus the daemon phase, degraded owners and the probe
/// latency histogram.
pub fn render_all(
    statuses: &StateSnapshot,
    c: &Counters,
    parts: &[(String, usize)],
    extra: &Extra<'_>,
) -> String {
    let mut o = render(statuses, c, parts);
    let _ = writeln!(
        o,
        "# HELP routerd_daemon_phase The daemon's phase (one-hot): Starting before the first step, Degraded while a step, the store or an owner fails."
    );
    let _ = writeln!(o, "# TYPE routerd_daemon_phase gauge");
    for p in DAEMON_PHASES {
        let _ = writeln!(
            o,
            "routerd_daemon_phase{{phase=\"{p}\"}} {}",
            u8::from(*p == extra.phase)
        );
    }
    let _ = writeln!(
        o,
        "# HELP routerd_owner_degraded Resources whose kernel objects were refused or do not match (1 per owner), with the reason."
    );
    let _ = writeln!(o, "# TYPE routerd_owner_degraded gauge");
    for (owner, reason) in &extra.degraded {
        let (kind, name) = split_id(owner).unwrap_or(("", owner.as_str()));
        let _ = writeln!(
            o,
            "routerd_owner_degraded{{kind=\"{}\",name=\"{}\",reason=\"{}\"}} 1",
            esc(kind),
            esc(name),
            esc(reason)
        );
    }
    extra.latency.render(&mut o);
    o
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
    }
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

    #[test]
    fn probe_latency_is_a_histogram_per_check() {
        let l = ProbeLatency::default();
        l.observe("wan1", std::time::Duration::from_micros(300));
        l.observe("wan1", std::time::Duration::from_millis(20));
        l.observe("wan1", std::time::Duration::from_secs(9));
        let extra = Extra {
            phase: "Degraded",
            degraded: vec![(
                "net.routerd.net/v1alpha1/IPv4Route/r".into(),
                "ApplyFailed".into(),
            )],
            latency: &l,
        };
        let text = render_all(&StateSnapshot::default(), &Counters::default(), &[], &extra);
        for line in [
            "# TYPE routerd_probe_latency_seconds histogram",
            "routerd_probe_latency_seconds_bucket{check=\"wan1\",le=\"0.0005\"} 1",
            "routerd_probe_latency_seconds_bucket{check=\"wan1\",le=\"0.01\"} 1",
            "routerd_probe_latency_seconds_bucket{check=\"wan1\",le=\"0.025\"} 2",
            "routerd_probe_latency_seconds_bucket{check=\"wan1\",le=\"2.5\"} 2",
            "routerd_probe_latency_seconds_bucket{check=\"wan1\",le=\"+Inf\"} 3",
            "routerd_probe_latency_seconds_count{check=\"wan1\"} 3",
            "routerd_daemon_phase{phase=\"Degraded\"} 1",
            "routerd_daemon_phase{phase=\"Ready\"} 0",
            "routerd_owner_degraded{kind=\"IPv4Route\",name=\"r\",reason=\"ApplyFailed\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }
}

#[cfg(test)]
mod dashboard {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The example dashboard only queries metrics the daemon exports.
    #[test]
    fn example_dashboard_queries_exported_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/grafana/routerd-dashboard.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let _: serde_json::Value = serde_json::from_str(&text).unwrap();
        let latency = super::ProbeLatency::default();
        latency.observe("c", std::time::Duration::from_millis(1));
        let extra = super::Extra {
            phase: "Ready",
            degraded: Vec::new(),
            latency: &latency,
        };
        let exported = super::render_all(
            &routerd_model::StateSnapshot::default(),
            &super::Counters::default(),
            &[],
            &extra,
        );
        let mut names: Vec<&str> = text
            .match_indices("routerd_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| *n != "routerd_")
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 5, "{names:?}");
        for n in names {
            let base = n
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                exported.contains(&format!("# TYPE {base} ")),
                "the dashboard queries {n}, which is not exported"
            );
        }
    }
}
