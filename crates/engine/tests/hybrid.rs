#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon's step carries a HybridRoute like any IPv4Route: the lowered
//! route reaches the dataplane, an unhealthy overlay check removes it (the
//! covering static fallback stays), and the route returns by itself when
//! the hysteresis hold ends (the step says when to wake).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routerd_engine::core::Core;
use routerd_engine::daemon::load_config;
use routerd_engine::links::{LinkInfo, statuses as link_statuses};
use routerd_model::Status;
use routerd_render::MemDataplane;
use routerd_store::Store;
use serde_json::json;

const CONFIG: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: overlay}
spec: {ifname: vx0}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: overlay-hc}
spec: {target: 10.20.0.1, interval: 1s, timeout: 500ms}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: azure}
spec: {role: cloud, nodeID: a1, underlay: {type: route, interface: vx0}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: cloud}
spec: {peerRef: azure, healthCheckRef: overlay-hc, install: {metric: 10}, destinationCIDRs: [10.20.0.0/16]}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: fallback}
spec: {destination: 10.0.0.0/8, device: eth1, metric: 500}
";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn hc(phase: &str, failed: i64, now: DateTime<Utc>) -> Status {
    serde_json::from_value(json!({"phase": phase, "consecutiveFailed": failed, "lastCheckedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)})).unwrap()
}

const HC: &str = "net.routerd.net/v1alpha1/HealthCheck/overlay-hc";
const HR: &str = "hybrid.routerd.net/v1alpha1/HybridRoute/cloud";

fn has(dp: &MemDataplane, prefix: &str) -> bool {
    dp.routes
        .iter()
        .any(|r| r.destination.to_string() == prefix)
}

#[test]
fn health_withdraws_the_lowered_route_and_the_hold_ends_by_itself() {
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", CONFIG).unwrap());
    let mut links = BTreeMap::new();
    for (i, n) in ["eth1", "vx0"].iter().enumerate() {
        links.insert(
            (*n).to_string(),
            LinkInfo {
                index: 2 + i as u32,
                up: true,
                carrier: true,
                mtu: Some(if *n == "vx0" { 1450 } else { 1500 }),
                ..Default::default()
            },
        );
    }
    core.observe(link_statuses(core.startup(), &links));
    core.observe_one(HC.into(), hc("Healthy", 0, t(0)));
    let mut dp = MemDataplane::new();

    let r = core.step(&mut dp, &store, t(0)).unwrap();
    assert!(r.dataplane_error.is_none(), "{:?}", r.dataplane_error);
    assert!(has(&dp, "10.20.0.0/16") && has(&dp, "10.0.0.0/8"));
    let st = core.reported_status(HR).unwrap();
    assert_eq!(st["phase"], "Ready", "{st:?}");
    assert_eq!(st["underlayMTU"], 1450);
    assert_eq!(
        st["mtuWarning"],
        "estimated MTU 1450 is below the LAN MTU 1500 (eth1); larger packets need path MTU discovery or fragmentation"
    );

    core.observe_one(HC.into(), hc("Unhealthy", 3, t(5)));
    let r = core.step(&mut dp, &store, t(5)).unwrap();
    assert!(!has(&dp, "10.20.0.0/16"), "withdrawn from the kernel");
    assert!(has(&dp, "10.0.0.0/8"), "the fallback stays");
    assert!(
        r.events
            .iter()
            .any(|e| e.type_ == "routerd.hybrid.routes.withdrawn")
    );
    assert_eq!(
        core.reported_status(HR).unwrap()["reason"],
        "HealthCheckUnhealthy"
    );

    core.observe_one(HC.into(), hc("Healthy", 0, t(10)));
    core.step(&mut dp, &store, t(10)).unwrap();
    assert!(!has(&dp, "10.20.0.0/16"), "held by the hysteresis");
    assert_eq!(core.next_wake(), Some(t(35)));

    let r = core.step(&mut dp, &store, t(35)).unwrap();
    assert!(has(&dp, "10.20.0.0/16"), "back when the hold ended");
    assert!(
        r.events
            .iter()
            .any(|e| e.type_ == "routerd.hybrid.routes.restored")
    );
    assert_eq!(core.reported_status(HR).unwrap()["phase"], "Ready");
}
