#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `whenNoCandidate` through the daemon's step: the policy starts closed
//! on the first step (no probe has answered), opens once its candidate is
//! ready, closes again when it is lost; the reported and stored statuses
//! and the events say so, and a restart reads the intended status back.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routerd_engine::core::Core;
use routerd_engine::daemon::load_config;
use routerd_engine::links::{LinkInfo, statuses as link_statuses};
use routerd_model::Status;
use routerd_render::MemDataplane;
use routerd_store::Store;
use serde_json::json;

const POLICY: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/lan";
const TABLE: &str = "routerd_failclosed_lan";

const CONFIG: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: lab}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: hc}
      spec: {target: 203.0.113.1, protocol: tcp, port: 443, interval: 1s, timeout: 500ms}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
        mode: mark
        whenNoCandidate: reject
        sourceCIDRs: [192.168.50.0/24]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: 192.0.2.1,
             mark: 0x10, table: 110, priority: 1100, healthCheck: hc}
";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn hc(phase: &str, failed: i64, now: DateTime<Utc>) -> Status {
    let v = json!({"phase": phase, "consecutiveFailed": failed,
        "lastResult": if failed > 0 { "failed" } else { "passed" },
        "lastCheckedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)});
    serde_json::from_value(v).unwrap()
}

fn closed(dp: &MemDataplane) -> bool {
    dp.nft.keys().any(|k| k.name == TABLE)
}

fn marks(dp: &MemDataplane) -> bool {
    dp.nft.keys().any(|k| k.name == "routerd_policy")
}

#[test]
fn starts_closed_opens_when_ready_and_closes_again_when_lost() {
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", CONFIG).unwrap());
    let mut links = std::collections::BTreeMap::new();
    links.insert(
        "wan1".to_string(),
        LinkInfo {
            index: 2,
            up: true,
            carrier: true,
            ..Default::default()
        },
    );
    core.observe(link_statuses(core.startup(), &links));
    let mut dp = MemDataplane::new();

    // First step: the check has not answered, nothing is ready: closed.
    let r = core.step(&mut dp, &store, t(0)).unwrap();
    assert!(closed(&dp) && !marks(&dp), "{:?}", dp.nft.keys());
    let shown = core.reported_status(POLICY).unwrap();
    assert_eq!(shown["failClosed"], "reject");
    assert_eq!(shown["reason"], "NoReadyCandidates");
    let types: Vec<&str> = r.events.iter().map(|e| e.type_.as_str()).collect();
    assert!(
        types.contains(&"routerd.egress.policy.failclosed"),
        "{types:?}"
    );
    let stored = store.status_snapshot().unwrap();
    assert_eq!(stored[POLICY]["failClosed"], "reject");

    // The candidate is ready: marks in, filter out, status and event say so.
    core.observe_one(
        "net.routerd.net/v1alpha1/HealthCheck/hc".into(),
        hc("Healthy", 0, t(1)),
    );
    let r = core.step(&mut dp, &store, t(1)).unwrap();
    assert!(!closed(&dp) && marks(&dp), "{:?}", dp.nft.keys());
    assert!(
        core.reported_status(POLICY)
            .unwrap()
            .get("failClosed")
            .is_none()
    );
    assert!(
        r.events
            .iter()
            .any(|e| e.type_ == "routerd.egress.policy.reopened")
    );
    let stored = store.status_snapshot().unwrap();
    assert!(stored[POLICY].get("failClosed").is_none());

    // Lost again: closed again (the stale marks stay, fail-static, but
    // the forward filter refuses the traffic they would carry).
    core.observe_one(
        "net.routerd.net/v1alpha1/HealthCheck/hc".into(),
        hc("Unhealthy", 3, t(2)),
    );
    core.step(&mut dp, &store, t(2)).unwrap();
    assert!(closed(&dp));
    assert_eq!(core.fail_closed()[POLICY], "reject");

    // A restart reads the intended status back, without the overlay, and
    // the kernel's filter stays owned.
    let mut again = Core::new(load_config("c.yaml", CONFIG).unwrap());
    again.restore(&store).unwrap();
    assert!(again.statuses[POLICY].get("failClosed").is_none());
    again.observe(link_statuses(again.startup(), &links));
    again.step(&mut dp, &store, t(3)).unwrap();
    assert!(closed(&dp));
    assert_eq!(
        again.reported_status(POLICY).unwrap()["failClosed"],
        "reject"
    );
}
