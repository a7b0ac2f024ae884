//! CloudEdge L3 in the plan: HybridRoutes lowered on the effective config
//! appear in `effective` (owned by their HybridRoute, with the dynamic
//! provenance of a part that brought it) and in `dataplane.routes`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use routerd_api::{PlanInputs, build_plan};
use routerd_model::{Loaded, Resource, load_and_validate};

pub const CONFIG: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: azure}
spec: {role: cloud, nodeID: a1, underlay: {type: route, interface: vx0}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: cloud-private}
spec: {peerRef: azure, install: {metric: 50}, destinationCIDRs: [10.20.0.0/16, 10.21.0.0/16]}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: static-cloud}
spec: {destination: 10.30.0.0/16, device: eth1, metric: 200}
---
apiVersion: config.routerd.net/v1alpha1
kind: DynamicOverridePolicy
metadata: {name: cloud}
spec:
  allow:
    - source: Plugin/cloud
      operations: [mask]
      targets: [{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: static-cloud}]
";

const PART: &str = "\
apiVersion: config.routerd.net/v1alpha1
kind: DynamicConfigPart
metadata: {name: Plugin-cloud-3}
spec:
  source: Plugin/cloud
  generation: 3
  expiresAt: \"2026-05-29T13:00:00Z\"
  resources:
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {name: vnet}
      spec: {peerRef: azure, destinationCIDRs: [10.30.0.0/16]}
  directives:
    - op: mask
      target: {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: static-cloud}
      reason: overlay route replaces the static fallback
";

fn now() -> DateTime<Utc> {
    "2026-05-29T12:00:00Z".parse().unwrap()
}

fn startup() -> Vec<Resource> {
    let (loaded, diags) = load_and_validate(&[("router.yaml", CONFIG)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    loaded.resources
}

fn part() -> Vec<Resource> {
    let mut l = Loaded::new();
    l.add_file("part.yaml", PART);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    l.resources
}

#[test]
fn lowered_routes_are_effective_owned_and_rendered() {
    let doc = build_plan(&PlanInputs {
        startup: startup(),
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap();
    let r = doc
        .effective
        .iter()
        .find(|r| r.name() == "cloud-private-10-20-0-0-16")
        .expect("lowered route in effective");
    assert_eq!(r.metadata.owner_refs[0].kind, "HybridRoute");
    assert_eq!(r.metadata.owner_refs[0].name, "cloud-private");
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["spec"]["device"], "vx0");
    assert_eq!(json["spec"]["metric"], 50);
    let routes: Vec<String> = doc
        .dataplane
        .routes
        .iter()
        .map(|r| format!("{} {}", r["destination"], r["owner"]))
        .collect();
    assert!(
        routes.iter().any(|r| r.contains("10.20.0.0/16")
            && r.contains("net.routerd.net/v1alpha1/IPv4Route/cloud-private-10-20-0-0-16")),
        "{routes:?}"
    );
    let st = &doc.status["net.routerd.net/v1alpha1/IPv4Route/cloud-private-10-21-0-0-16"];
    assert_eq!(st["phase"], "Installed");
}

#[test]
fn a_part_brings_a_hybrid_route_and_masks_the_static_fallback() {
    let doc = build_plan(&PlanInputs {
        startup: startup(),
        dynamic_parts: part(),
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap();
    assert_eq!(
        doc.dynamic_parts[0]["state"], "active",
        "{:?}",
        doc.dynamic_parts
    );
    assert!(doc.effective.iter().all(|r| r.name() != "static-cloud"));
    let r = doc
        .effective
        .iter()
        .find(|r| r.name() == "vnet-10-30-0-0-16")
        .expect("the part's HybridRoute lowers");
    let a = &r.metadata.annotations;
    assert_eq!(a["routerd.net/dynamic-part"], "Plugin-cloud-3");
    assert_eq!(r.metadata.owner_refs[0].name, "vnet");
    // Expired: the fallback returns and the lowered route goes.
    let later = build_plan(&PlanInputs {
        startup: startup(),
        dynamic_parts: part(),
        now: "2026-05-29T13:00:01Z".parse().unwrap(),
        ..PlanInputs::default()
    })
    .unwrap();
    assert!(later.effective.iter().any(|r| r.name() == "static-cloud"));
    assert!(
        later
            .effective
            .iter()
            .all(|r| r.name() != "vnet-10-30-0-0-16")
    );
}

const HEALTH: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1, mtu: 1500}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: overlay}
spec: {ifname: vx0, mtu: 1450}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: overlay-hc}
spec: {target: 10.20.0.1, interval: 5s}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: azure}
spec: {role: cloud, nodeID: a1, underlay: {type: route, interface: vx0}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: cloud}
spec: {peerRef: azure, healthCheckRef: overlay-hc, destinationCIDRs: [10.20.0.0/16]}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: fallback}
spec: {destination: 10.0.0.0/8, device: eth1, metric: 500}
";

fn health_state(phase: &str) -> routerd_model::StateSnapshot {
    let mut st = routerd_model::Status::new();
    st.insert("phase".into(), serde_json::json!(phase));
    st.insert(
        "lastCheckedAt".into(),
        serde_json::json!("2026-05-29T11:59:58Z"),
    );
    let mut snap = routerd_model::StateSnapshot::new();
    snap.insert("net.routerd.net/v1alpha1/HealthCheck/overlay-hc".into(), st);
    snap
}

fn health_plan(phase: &str) -> routerd_api::PlanDocument {
    let (loaded, diags) = load_and_validate(&[("router.yaml", HEALTH)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    build_plan(&PlanInputs {
        startup: loaded.resources,
        state: health_state(phase),
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap()
}

const HR: &str = "hybrid.routerd.net/v1alpha1/HybridRoute/cloud";
const ROUTE: &str = "net.routerd.net/v1alpha1/IPv4Route/cloud-10-20-0-0-16";

#[test]
fn healthy_overlay_carries_the_prefix_and_reports_mtu() {
    let doc = health_plan("Healthy");
    let st = &doc.status[HR];
    assert_eq!(st["phase"], "Ready", "{st:?}");
    assert_eq!(st["defaultRouteUntouched"], true);
    assert_eq!(st["routes"][0]["phase"], "Installed");
    assert_eq!(st["healthCheckPhase"], "Healthy");
    assert_eq!(st["underlayMTU"], 1450);
    assert_eq!(st["estimatedMTU"], 1450);
    assert!(
        st["mtuWarning"]
            .as_str()
            .unwrap()
            .contains("below the LAN MTU 1500")
    );
    let peer = &doc.status["hybrid.routerd.net/v1alpha1/OverlayPeer/azure"];
    assert_eq!(peer["hybridRoutes"], serde_json::json!(["cloud"]));
    let dests: Vec<&str> = doc
        .dataplane
        .routes
        .iter()
        .filter_map(|r| r["destination"].as_str())
        .collect();
    assert!(dests.contains(&"10.20.0.0/16"), "{dests:?}");
    assert!(dests.contains(&"10.0.0.0/8"), "{dests:?}");
}

#[test]
fn an_unhealthy_overlay_withdraws_the_prefix_and_the_fallback_stays() {
    let doc = health_plan("Unhealthy");
    let st = &doc.status[HR];
    assert_eq!(st["phase"], "Degraded");
    assert_eq!(st["reason"], "HealthCheckUnhealthy");
    assert_eq!(doc.status[ROUTE]["phase"], "Withdrawn");
    let dests: Vec<&str> = doc
        .dataplane
        .routes
        .iter()
        .filter_map(|r| r["destination"].as_str())
        .collect();
    assert!(!dests.contains(&"10.20.0.0/16"), "{dests:?}");
    assert!(dests.contains(&"10.0.0.0/8"), "{dests:?}");
    assert!(
        doc.events
            .iter()
            .any(|e| e.type_ == "routerd.hybrid.routes.withdrawn")
    );
}

#[test]
fn a_hybrid_route_that_cannot_lower_is_reported_alone() {
    // Two sources: one brings a HybridRoute, the other a route on the same
    // destination. The merge accepts both (they are in different parts);
    // the lowering refuses the HybridRoute, and everything else works.
    let parts = "\
apiVersion: config.routerd.net/v1alpha1
kind: DynamicConfigPart
metadata: {name: a-1}
spec:
  source: Plugin/a
  generation: 1
  resources:
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {name: x}
      spec: {peerRef: azure, destinationCIDRs: [10.40.0.0/16]}
---
apiVersion: config.routerd.net/v1alpha1
kind: DynamicConfigPart
metadata: {name: b-1}
spec:
  source: Plugin/b
  generation: 1
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: static-b}
      spec: {destination: 10.40.0.0/16, device: eth1}
";
    let mut l = Loaded::new();
    l.add_file("parts.yaml", parts);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let doc = build_plan(&PlanInputs {
        startup: startup(),
        dynamic_parts: l.resources,
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap();
    let st = &doc.status["hybrid.routerd.net/v1alpha1/HybridRoute/x"];
    assert_eq!(st["phase"], "Degraded");
    assert_eq!(st["reason"], "SpecInvalid");
    assert_eq!(
        st["message"],
        "hybrid.routerd.net/v1alpha1/HybridRoute/x destination 10.40.0.0/16 collides with user IPv4Route/static-b"
    );
    assert_eq!(
        doc.status["hybrid.routerd.net/v1alpha1/HybridRoute/cloud-private"]["phase"],
        "Ready"
    );
    assert_eq!(
        doc.status["net.routerd.net/v1alpha1/IPv4Route/static-b"]["phase"],
        "Installed"
    );
}
