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
    assert_eq!(a["routerd.net/lowered-from"], "HybridRoute/vnet");
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
