//! Address capture in the IR (neighbour proxy entries and the forwarding
//! they need), against the in-memory dataplane: capture starts only after
//! the delivery route, stops first, owns only what the ledger records, and
//! gives forwarding back as it found it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use routerd_render::capture::{Forwarding, NeighProxy};
use routerd_render::dataplane::MemDataplane;
use routerd_render::ir::{Route, RouteKind};
use routerd_render::plan::Op;
use routerd_render::{DesiredState, Ledger, ReconcileOptions, reconcile};

const OWNER: &str = "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web";

fn kernel() -> MemDataplane {
    let mut dp = MemDataplane::new();
    dp.links = Some(
        ["lo", "lan0", "vx0"]
            .into_iter()
            .map(String::from)
            .collect(),
    );
    dp
}

fn capture(addr: &str) -> DesiredState {
    let mut r = Route::new(
        254,
        format!("{addr}/32").parse().unwrap(),
        120,
        RouteKind::Unicast,
    );
    r.device = Some("vx0".into());
    r.owner = OWNER.into();
    let mut p = NeighProxy::new("lan0", addr.parse().unwrap());
    p.owner = OWNER.into();
    let mut d = DesiredState {
        routes: vec![r],
        neigh_proxies: vec![p],
        forwarding: ["lan0", "vx0"]
            .into_iter()
            .map(|dev| Forwarding {
                device: dev.into(),
                owner: OWNER.into(),
            })
            .collect(),
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

fn pos(ops: &[Op], f: impl Fn(&Op) -> bool) -> usize {
    ops.iter().position(f).expect("op in plan")
}

#[test]
fn capture_starts_after_delivery_and_stops_first() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    let out = reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    let ops = &out.plan.ops;
    let route = pos(ops, |o| matches!(o, Op::AddRoute { .. }));
    let fwd = pos(ops, |o| {
        matches!(o, Op::SetForwarding { enabled: true, .. })
    });
    let proxy = pos(ops, |o| matches!(o, Op::AddNeighProxy { .. }));
    assert!(route < fwd && fwd < proxy, "{ops:?}");
    assert_eq!(dp.neigh_proxies.len(), 1);
    assert_eq!(dp.ipv4_forwarding.get("lan0"), Some(&true));
    assert_eq!(dp.ipv4_forwarding.get("vx0"), Some(&true));
    assert_eq!(ledger.neigh_proxies.len(), 1);
    assert_eq!(
        ledger.forwarding.get("lan0").map(|e| e.previous),
        Some(false)
    );

    // Steady state: nothing to do.
    let again = reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    assert!(again.plan.ops.is_empty(), "{:?}", again.plan.ops);

    // The claim goes: capture stops before the route goes, forwarding is
    // written back after it.
    let out = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    let ops = &out.plan.ops;
    let stop = pos(ops, |o| matches!(o, Op::DeleteNeighProxy { .. }));
    let route = pos(ops, |o| matches!(o, Op::DeleteRoute { .. }));
    let restore = pos(ops, |o| {
        matches!(o, Op::SetForwarding { restore: true, .. })
    });
    assert!(stop < route && route < restore, "{ops:?}");
    assert_eq!(stop, 0, "capture stops before anything else: {ops:?}");
    assert!(dp.neigh_proxies.is_empty());
    assert_eq!(dp.ipv4_forwarding.get("lan0"), Some(&false));
    assert!(ledger.is_empty(), "{ledger:?}");
}

/// The owning side of `addr`: the /32 on the LAN device (its local
/// route, same key as the delivery route) and the overlay answer.
fn owning(addr: &str) -> DesiredState {
    let mut r = Route::new(
        254,
        format!("{addr}/32").parse().unwrap(),
        120,
        RouteKind::Unicast,
    );
    r.device = Some("lan0".into());
    r.owner = "net.routerd.net/v1alpha1/IPv4Route/sam-web-local".into();
    let mut p = NeighProxy::new("vx0", addr.parse().unwrap());
    p.owner = OWNER.into();
    let mut d = DesiredState {
        routes: vec![r],
        neigh_proxies: vec![p],
        forwarding: ["lan0", "vx0"]
            .into_iter()
            .map(|dev| Forwarding {
                device: dev.into(),
                owner: OWNER.into(),
            })
            .collect(),
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

#[test]
fn owner_flip_puts_the_local_route_in_before_capture_stops() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    // ownerSide flips to this node's side.
    let out = reconcile(&mut dp, &owning("192.0.2.50"), &mut ledger, &opts).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    let ops = &out.plan.ops;
    let local = pos(
        ops,
        |o| matches!(o, Op::ReplaceRoute { new, .. } if new.device.as_deref() == Some("lan0")),
    );
    let stop = pos(
        ops,
        |o| matches!(o, Op::DeleteNeighProxy { proxy } if proxy.device == "lan0"),
    );
    let answer = pos(
        ops,
        |o| matches!(o, Op::AddNeighProxy { proxy } if proxy.device == "vx0"),
    );
    assert!(local < stop && stop < answer, "{ops:?}");
    assert_eq!(dp.neigh_proxies.len(), 1);
    assert_eq!(dp.neigh_proxies[0].device, "vx0");

    // Fencing is unchanged: a closed gate (capture goes, delivery stays)
    // still stops capture before anything else.
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    let mut gated = capture("192.0.2.50");
    gated.neigh_proxies.clear();
    let out = reconcile(&mut dp, &gated, &mut ledger, &opts).unwrap();
    assert!(
        matches!(out.plan.ops.first(), Some(Op::DeleteNeighProxy { .. })),
        "{:?}",
        out.plan.ops
    );
}

#[test]
fn forwarding_already_on_is_never_turned_off() {
    let mut dp = kernel();
    dp.ipv4_forwarding.insert("lan0".into(), true);
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    assert!(!ledger.forwarding.contains_key("lan0"));
    assert!(ledger.forwarding.contains_key("vx0"));
    reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    assert_eq!(dp.ipv4_forwarding.get("lan0"), Some(&true));
    assert_eq!(dp.ipv4_forwarding.get("vx0"), Some(&false));
}

#[test]
fn foreign_proxy_entry_is_used_never_removed() {
    let mut dp = kernel();
    dp.neigh_proxies
        .push(NeighProxy::new("lan0", "192.0.2.50".parse().unwrap()));
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    let out = reconcile(&mut dp, &capture("192.0.2.50"), &mut ledger, &opts).unwrap();
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|o| matches!(o, Op::AddNeighProxy { .. }))
    );
    assert!(ledger.neigh_proxies.is_empty());
    reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    assert_eq!(dp.neigh_proxies.len(), 1, "the operator's entry stays");
}

#[test]
fn capture_on_absent_device_waits() {
    let mut dp = MemDataplane::new();
    dp.links = Some(["lo", "vx0"].into_iter().map(String::from).collect());
    let mut ledger = Ledger::default();
    let out = reconcile(
        &mut dp,
        &capture("192.0.2.50"),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(dp.neigh_proxies.is_empty());
    assert!(
        out.faults
            .iter()
            .any(|f| f.owner == OWNER && f.reason == "DeviceNotReady"),
        "{:?}",
        out.faults
    );
}

#[test]
fn ledger_round_trips_capture_entries() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    reconcile(
        &mut dp,
        &capture("192.0.2.50"),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_string(&ledger).unwrap();
    let back: Ledger = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ledger);
}
