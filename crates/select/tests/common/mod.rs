//! Shared test helpers: a policy in a tiny simulated world over virtual time.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use routerd_model::spec::{EgressRoutePolicySpec, HealthCheckSpec};
use routerd_model::{Resource, Spec, Status};
use routerd_select::{Outcome, PolicySet, SelectOptions};
use serde_json::{Value, json};

pub const NET: &str = "net.routerd.net/v1alpha1";

pub fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-29T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `base + secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    base() + TimeDelta::seconds(secs)
}

pub fn rfc(t: DateTime<Utc>) -> String {
    routerd_select::time::format_rfc3339_nano(t)
}

pub fn obj(v: Value) -> Status {
    v.as_object().cloned().unwrap()
}

pub fn policy_spec(v: Value) -> EgressRoutePolicySpec {
    serde_json::from_value(v).unwrap()
}

pub fn hc_spec(v: Value) -> HealthCheckSpec {
    serde_json::from_value(v).unwrap()
}

pub fn id(kind: &str, name: &str) -> String {
    format!("{NET}/{kind}/{name}")
}

/// One policy named `p` plus extra resources, statuses and a clock.
pub struct Sim {
    pub resources: Vec<Resource>,
    pub statuses: BTreeMap<String, Status>,
    pub set: PolicySet,
    pub events: Vec<routerd_model::Event>,
    pub options: SelectOptions,
}

impl Sim {
    pub fn new(policy: Value, extra: Vec<Resource>) -> Sim {
        let mut resources = extra;
        resources.push(Resource::new(
            "p",
            Spec::EgressRoutePolicy(policy_spec(policy)),
        ));
        let set = PolicySet::new(&resources);
        Sim {
            resources,
            statuses: BTreeMap::new(),
            set,
            events: Vec::new(),
            options: SelectOptions::default(),
        }
    }

    /// A policy with two health-checked candidates on raw devices:
    /// `primary` (weight 100, hc-primary) and `backup` (weight 50, hc-backup).
    pub fn two(extra_spec: Value) -> Sim {
        let mut p = json!({
            "candidates": [
                {"name": "primary", "device": "wan0", "gatewaySource": "static", "gateway": "192.0.2.1", "healthCheck": "hc-primary", "weight": 100},
                {"name": "backup", "device": "wan1", "gatewaySource": "static", "gateway": "198.51.100.1", "healthCheck": "hc-backup", "weight": 50}
            ]
        });
        if let (Some(m), Some(e)) = (p.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let hcs = vec![
            Resource::new(
                "hc-primary",
                Spec::HealthCheck(hc_spec(json!({"interval": "10s", "timeout": "1s"}))),
            ),
            Resource::new(
                "hc-backup",
                Spec::HealthCheck(hc_spec(json!({"interval": "10s", "timeout": "1s"}))),
            ),
        ];
        Sim::new(p, hcs)
    }

    pub fn health(&mut self, name: &str, phase: &str, failed: i64, checked: DateTime<Utc>) {
        self.statuses.insert(
            id("HealthCheck", name),
            obj(
                json!({"phase": phase, "consecutiveFailed": failed, "lastCheckedAt": rfc(checked)}),
            ),
        );
    }

    pub fn healthy(&mut self, name: &str, now: DateTime<Utc>) {
        self.health(name, "Healthy", 0, now);
    }

    pub fn down(&mut self, name: &str, now: DateTime<Utc>) {
        self.health(name, "Unhealthy", 3, now);
    }

    pub fn status_of(&mut self, id: String, v: Value) {
        self.statuses.insert(id, obj(v));
    }

    /// Evaluates the policy at `now`, stores its status as the next
    /// previous status and collects events.
    pub fn step(&mut self, now: DateTime<Utc>) -> Outcome {
        let o = self
            .set
            .evaluate(0, &self.statuses, &self.statuses, now, self.options)
            .unwrap();
        self.statuses
            .insert(id("EgressRoutePolicy", "p"), o.status.clone());
        self.events.extend(o.events.clone());
        o
    }

    pub fn policy_status(&self) -> &Status {
        &self.statuses[&id("EgressRoutePolicy", "p")]
    }
}

pub fn selected(o: &Outcome) -> Option<&str> {
    o.status.get("selectedCandidate").and_then(Value::as_str)
}

pub fn reason_codes(o: &Outcome, candidate: &str) -> Vec<&'static str> {
    o.decision
        .candidates
        .iter()
        .find(|c| c.name == candidate)
        .map(|c| c.reasons.iter().map(|r| r.code).collect())
        .unwrap_or_default()
}

/// Health checks in the generated worlds.
pub const HCS: usize = 6;

/// `policies` advisory policies of four candidates over `HCS` health
/// checks, with `extra` merged into every policy spec.
pub fn world(policies: usize, extra: &serde_json::Value) -> Vec<Resource> {
    let mut rs: Vec<Resource> = (0..HCS)
        .map(|h| {
            Resource::new(
                format!("hc-{h}"),
                Spec::HealthCheck(hc_spec(json!({"interval": "10s", "timeout": "1s"}))),
            )
        })
        .collect();
    for p in 0..policies {
        let cands: Vec<_> = (0..4)
            .map(|j| {
                json!({"name": format!("p{p}-c{j}"), "device": format!("wan{j}"),
                       "weight": 10 * (4 - j), "healthCheck": format!("hc-{}", (p + j) % HCS)})
            })
            .collect();
        let mut spec = json!({"candidates": cands});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        rs.push(Resource::new(
            format!("egress-{p}"),
            Spec::EgressRoutePolicy(policy_spec(spec)),
        ));
    }
    rs
}

/// A tiny deterministic generator for the proptests' event sequences.
pub fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}
