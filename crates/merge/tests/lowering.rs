//! A dynamic part whose HybridRoute would lower onto a startup route (or
//! whose route sits where a startup HybridRoute lowers) is rejected alone
//! with routerd's collision message; masking the colliding static route in
//! the same part is the seed's selective suppression and is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use routerd_merge::PartState;

const START: &str = "\
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: azure}
spec: {role: cloud, nodeID: a1, underlay: {type: wireguard, interface: wg0}}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: static-cloud}
spec: {destination: 10.20.0.0/16, device: eth1, metric: 200}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: onprem-dc}
spec: {peerRef: azure, destinationCIDRs: [10.99.0.0/16]}
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

fn hybrid(name: &str, cidr: &str) -> String {
    format!(
        "    - apiVersion: hybrid.routerd.net/v1alpha1\n      kind: HybridRoute\n      metadata: {{name: {name}}}\n      spec: {{peerRef: azure, destinationCIDRs: [{cidr}]}}\n"
    )
}

fn route(name: &str, cidr: &str) -> String {
    format!(
        "    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {{name: {name}}}\n      spec: {{destination: {cidr}, device: eth2}}\n"
    )
}

const MASK: &str = "    - op: mask\n      target: {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: static-cloud}\n      reason: overlay healthy\n";

#[test]
fn a_part_colliding_with_a_startup_route_is_rejected_alone() {
    let s = startup(START);
    let bad = part(
        "bad",
        "Plugin/cloud",
        1,
        None,
        &[hybrid("vnet", "10.20.0.0/16")],
        &[],
    );
    let good = part(
        "good",
        "Plugin/other",
        1,
        None,
        &[hybrid("other", "10.30.0.0/16")],
        &[],
    );
    let e = build(&s, vec![bad, good], now());
    let (st, reason) = state(&e, "bad");
    assert_eq!(st, PartState::Rejected);
    assert_eq!(
        reason,
        "dynamic resource collides with a lowered route: source=\"Plugin/cloud\": hybrid.routerd.net/v1alpha1/HybridRoute/vnet destination 10.20.0.0/16 collides with user IPv4Route/static-cloud"
    );
    assert_eq!(state(&e, "good").0, PartState::Active);
}

#[test]
fn a_part_route_where_a_startup_hybrid_route_lowers_is_rejected() {
    let s = startup(START);
    let p = part(
        "p",
        "Plugin/cloud",
        1,
        None,
        &[route("onprem-dc-10-99-0-0-16", "192.0.2.0/24")],
        &[],
    );
    let e = build(&s, vec![p], now());
    let (st, reason) = state(&e, "p");
    assert_eq!(st, PartState::Rejected);
    assert!(
        reason.ends_with("synthetic IPv4Route name \"onprem-dc-10-99-0-0-16\" collides with a user-authored IPv4Route"),
        "{reason}"
    );
}

#[test]
fn masking_the_static_fallback_makes_room_for_the_hybrid_route() {
    let s = startup(START);
    let p = part(
        "p",
        "Plugin/cloud",
        1,
        None,
        &[hybrid("vnet", "10.20.0.0/16")],
        &[MASK.to_string()],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(state(&e, "p"), (PartState::Active, String::new()));
    assert_eq!(e.suppressed().len(), 1);
}
