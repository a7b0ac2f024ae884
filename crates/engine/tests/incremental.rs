#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon's step is incremental: a health change re-evaluates only the
//! policies that read it, a step in which nothing moved touches neither the
//! dataplane nor the store, holds end by themselves (the step says when to
//! wake), and what it converges to equals the plan `routerctl plan` computes
//! from the same inputs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routerd_engine::core::Core;
use routerd_engine::daemon::load_config;
use routerd_engine::links::{LinkInfo, statuses as link_statuses};
use routerd_model::Status;
use routerd_render::MemDataplane;
use routerd_store::Store;
use serde_json::json;

const POLICIES: usize = 40;

/// `POLICIES` policies, each with a primary and a backup candidate checked
/// by its own pair of HealthChecks, and an IPv4Route following each.
fn config() -> String {
    let mut c = String::from(
        "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: lab}\nspec:\n  resources:\n",
    );
    for w in ["wan1", "wan2"] {
        let _ = writeln!(
            c,
            "    - apiVersion: net.routerd.net/v1alpha1\n      kind: Interface\n      metadata: {{name: {w}}}\n      spec: {{ifname: {w}}}"
        );
    }
    for i in 0..POLICIES {
        for side in ["a", "b"] {
            let _ = writeln!(
                c,
                "    - apiVersion: net.routerd.net/v1alpha1\n      kind: HealthCheck\n      metadata: {{name: hc-{i}-{side}}}\n      spec: {{target: 203.0.113.1, protocol: tcp, port: 443, interval: 1s, timeout: 500ms}}"
            );
        }
        let _ = writeln!(
            c,
            "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {{name: p{i}}}
      spec:
        hysteresis: 0s
        preemptDelay: 30s
        candidates:
          - {{name: primary, interface: wan1, device: wan1, gatewaySource: static, gateway: 192.0.2.1, weight: 80, healthCheck: hc-{i}-a}}
          - {{name: backup, interface: wan2, device: wan2, gatewaySource: static, gateway: 198.51.100.1, weight: 50, healthCheck: hc-{i}-b}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: r{i}}}
      spec:
        destination: 10.{i}.0.0/16
        deviceFrom: {{resource: EgressRoutePolicy/p{i}, field: selectedDevice}}
        gatewayFrom: {{resource: EgressRoutePolicy/p{i}, field: selectedGateway}}"
        );
    }
    c
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn hc_id(name: &str) -> String {
    format!("net.routerd.net/v1alpha1/HealthCheck/{name}")
}

fn hc(phase: &str, failed: i64, now: DateTime<Utc>) -> Status {
    let v = json!({"phase": phase, "consecutiveFailed": failed, "lastResult": if failed > 0 { "failed" } else { "passed" }, "lastCheckedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)});
    serde_json::from_value(v).unwrap()
}

fn route_device(dp: &MemDataplane, prefix: &str) -> Option<String> {
    dp.routes
        .iter()
        .find(|r| r.destination.to_string() == prefix)
        .and_then(|r| r.device.clone())
}

fn up_links() -> BTreeMap<String, LinkInfo> {
    let mut links = BTreeMap::new();
    for (i, w) in ["wan1", "wan2"].iter().enumerate() {
        links.insert(
            (*w).to_string(),
            LinkInfo {
                index: 2 + i as u32,
                up: true,
                carrier: true,
                ..Default::default()
            },
        );
    }
    links
}

#[test]
fn a_health_change_wakes_only_its_policy_and_holds_end_by_themselves() {
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", &config()).unwrap());
    core.observe(link_statuses(core.startup(), &up_links()));
    for i in 0..POLICIES {
        for side in ["a", "b"] {
            core.observe_one(hc_id(&format!("hc-{i}-{side}")), hc("Healthy", 0, t(0)));
        }
    }
    let mut dp = MemDataplane::new();

    // First step: everything is evaluated and applied.
    let r = core.step(&mut dp, &store, t(0)).unwrap();
    assert!(r.full && r.reconciled);
    assert_eq!(r.evaluated, POLICIES);
    assert!(r.dataplane_error.is_none(), "{:?}", r.dataplane_error);
    for i in 0..POLICIES {
        assert_eq!(
            route_device(&dp, &format!("10.{i}.0.0/16")).as_deref(),
            Some("wan1")
        );
    }

    // Nothing changed: nothing evaluated, no dataplane pass, no writes.
    let r = core.step(&mut dp, &store, t(1)).unwrap();
    assert!(!r.full && !r.reconciled, "{r:?}");
    assert_eq!(r.evaluated, 0);
    assert!(r.changed.is_empty() && r.events.is_empty(), "{r:?}");

    // One primary fails: one policy evaluated, its route moves, no other.
    core.observe_one(hc_id("hc-7-a"), hc("Unhealthy", 3, t(2)));
    let r = core.step(&mut dp, &store, t(2)).unwrap();
    assert!(!r.full && r.reconciled);
    assert_eq!(r.evaluated, 1, "only p7 reads hc-7-a");
    assert_eq!(route_device(&dp, "10.7.0.0/16").as_deref(), Some("wan2"));
    assert_eq!(route_device(&dp, "10.8.0.0/16").as_deref(), Some("wan1"));
    assert!(
        r.changed
            .iter()
            .any(|id| id.ends_with("/EgressRoutePolicy/p7"))
    );
    assert!(r.changed.iter().any(|id| id.ends_with("/IPv4Route/r7")));
    assert!(
        !r.changed
            .iter()
            .any(|id| id.ends_with("/EgressRoutePolicy/p8"))
    );
    let stored = store.status_snapshot().unwrap();
    assert_eq!(
        stored[&"net.routerd.net/v1alpha1/EgressRoutePolicy/p7".to_string()]["selectedCandidate"],
        "backup"
    );

    // It recovers: preemptDelay holds the backup, and the step says when
    // the hold ends.
    core.observe_one(hc_id("hc-7-a"), hc("Healthy", 0, t(10)));
    let r = core.step(&mut dp, &store, t(10)).unwrap();
    assert_eq!(r.evaluated, 1);
    assert_eq!(
        route_device(&dp, "10.7.0.0/16").as_deref(),
        Some("wan2"),
        "held"
    );
    assert_eq!(
        core.next_wake(),
        Some(t(40)),
        "ready at 10 s + preemptDelay 30 s"
    );

    // No new observation; stepping at the wake-up fails back.
    let r = core.step(&mut dp, &store, t(39)).unwrap();
    assert_eq!(r.evaluated, 0, "nothing is due before the wake-up");
    let r = core.step(&mut dp, &store, t(40)).unwrap();
    assert!(r.evaluated >= 1);
    assert_eq!(route_device(&dp, "10.7.0.0/16").as_deref(), Some("wan1"));

    // The explain record is built on demand from the terse evaluation.
    let d = core
        .decision("net.routerd.net/v1alpha1/EgressRoutePolicy/p7")
        .unwrap();
    assert_eq!(d["selected"], "primary", "{d}");

    // Converged (a resync settles the followers' `changed` flags), the
    // daemon's statuses are a fixed point of the full plan pipeline.
    core.request_full();
    let r = core.step(&mut dp, &store, t(41)).unwrap();
    assert!(r.full && r.applied_ops == 0, "{r:?}");
    let plan = routerd_api::build_plan(&routerd_api::PlanInputs {
        startup: core.startup().to_vec(),
        dynamic_parts: Vec::new(),
        state: core.statuses.clone(),
        now: t(41),
    })
    .unwrap();
    for (id, st) in &plan.status {
        assert_eq!(core.statuses.get(id), Some(st), "{id}");
    }
    let planned: Vec<_> = plan
        .dataplane
        .routes
        .iter()
        .map(|r| (r["destination"].clone(), r["device"].clone()))
        .collect();
    let applied: Vec<_> = dp
        .routes
        .iter()
        .map(|r| (json!(r.destination.to_string()), json!(r.device)))
        .collect();
    assert_eq!(planned.len(), applied.len());
    for p in &planned {
        assert!(applied.contains(p), "{p:?} not applied");
    }
}

/// A plugin part is applied to the kept merge: a part that only adds and
/// masks routes re-evaluates no policy, its change set names exactly what
/// moved, and when it expires the masked route returns and the part is
/// reported `expired`.
#[test]
fn a_part_applies_through_the_merge_change_set_and_expires() {
    let extra = "    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: fallback}
      spec: {destination: 10.200.0.0/16, device: wan2, gateway: 198.51.100.1, metric: 200}
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {name: cloud}
      spec:
        allow:
          - source: Plugin/cloud
            operations: [mask]
            targets:
              - {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: fallback}
";
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", &format!("{}{extra}", config())).unwrap());
    core.observe(link_statuses(core.startup(), &up_links()));
    let mut dp = MemDataplane::new();
    let r = core.step(&mut dp, &store, t(0)).unwrap();
    assert!(r.full);
    assert_eq!(route_device(&dp, "10.200.0.0/16").as_deref(), Some("wan2"));

    let part = format!(
        "apiVersion: config.routerd.net/v1alpha1
kind: DynamicConfigPart
metadata: {{name: Plugin-cloud-1}}
spec:
  source: Plugin/cloud
  generation: 1
  observedAt: \"{}\"
  expiresAt: \"{}\"
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-vpc}}
      spec: {{destination: 10.200.0.0/16, device: wan1, gateway: 192.0.2.9, metric: 50}}
  directives:
    - op: mask
      target: {{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: fallback}}
      reason: the VPC is reachable directly
",
        t(10).to_rfc3339(),
        t(100).to_rfc3339()
    );
    let mut loaded = routerd_model::Loaded::new();
    loaded.add_file("part.yaml", &part);
    assert!(
        loaded.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        loaded.diagnostics
    );
    let part = loaded.resources.remove(0);
    core.upsert_part(part);
    let r = core.step(&mut dp, &store, t(10)).unwrap();
    assert!(!r.full, "routes only: no selection rebuild");
    assert_eq!(r.evaluated, 0);
    assert!(r.parts_changed);
    let added: Vec<String> = r
        .merge_changes
        .added
        .iter()
        .map(ToString::to_string)
        .collect();
    let removed: Vec<String> = r
        .merge_changes
        .removed
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(added, ["net.routerd.net/v1alpha1/IPv4Route/cloud-vpc"]);
    assert_eq!(removed, ["net.routerd.net/v1alpha1/IPv4Route/fallback"]);
    let vpc: Vec<_> = dp
        .routes
        .iter()
        .filter(|r| r.destination.to_string() == "10.200.0.0/16")
        .map(|r| (r.device.clone(), r.metric))
        .collect();
    assert_eq!(
        vpc,
        [(Some("wan1".to_string()), 50)],
        "the fallback is masked"
    );
    assert_eq!(core.part_reports()[0]["state"], "active");

    // Expiry: the mask lifts, the fallback returns, the part says expired.
    core.expire_parts(t(99));
    let r = core.step(&mut dp, &store, t(99)).unwrap();
    assert!(!r.parts_changed, "nothing due before expiresAt");
    core.expire_parts(t(100));
    let r = core.step(&mut dp, &store, t(100)).unwrap();
    assert!(r.parts_changed && !r.full);
    let vpc: Vec<_> = dp
        .routes
        .iter()
        .filter(|r| r.destination.to_string() == "10.200.0.0/16")
        .map(|r| (r.device.clone(), r.metric))
        .collect();
    assert_eq!(vpc, [(Some("wan2".to_string()), 200)]);
    assert_eq!(
        core.part_reports()[0]["state"],
        "expired",
        "{:?}",
        core.part_reports()
    );
    assert!(
        !store
            .status_snapshot()
            .unwrap()
            .contains_key("net.routerd.net/v1alpha1/IPv4Route/cloud-vpc"),
        "the expired route's status goes"
    );
}
