//! The one availability rule: DS-Lite tunnels must be `Up`, an interface
//! that lost carrier takes its candidate out at once, and targets are
//! judged by the same rule as candidates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use routerd_model::{Resource, Spec};
use serde_json::{Value, json};

fn res(kind: &str, name: &str, spec: Value) -> Resource {
    let doc = json!({
        "apiVersion": NET, "kind": kind, "metadata": {"name": name}, "spec": spec
    });
    serde_json::from_value(doc).unwrap()
}

fn links() -> Vec<Resource> {
    vec![
        res("Interface", "wan", json!({"ifname": "ens18"})),
        res("Interface", "lte", json!({"ifname": "wwan0"})),
        res(
            "DSLiteTunnel",
            "ds-lite",
            json!({"interface": "wan", "tunnelName": "ds-lite0", "aftrIPv6": "2001:db8::1"}),
        ),
        Resource::new("hc-a", Spec::HealthCheck(hc_spec(json!({})))),
        Resource::new("hc-b", Spec::HealthCheck(hc_spec(json!({})))),
    ]
}

fn up(sim: &mut Sim, kind: &str, name: &str) {
    sim.status_of(id(kind, name), json!({"phase": "Up"}));
}

fn down(sim: &mut Sim, kind: &str, name: &str, reason: &str) {
    sim.status_of(id(kind, name), json!({"phase": "Down", "reason": reason}));
}

fn entry(o: &routerd_select::Outcome, i: usize) -> &Value {
    o.status
        .get("candidates")
        .and_then(|c| c.get(i))
        .unwrap_or(&Value::Null)
}

#[test]
fn a_candidate_on_a_down_dslite_interface_is_not_ready_even_when_its_check_passes() {
    let mut sim = Sim::new(
        json!({"mode": "priority", "candidates": [
            {"name": "dslite", "interface": "ds-lite", "table": 100, "priority": 100, "mark": 16, "weight": 80, "healthCheck": "hc-a"},
            {"name": "lte", "interface": "lte", "table": 101, "priority": 101, "mark": 17, "weight": 10}
        ]}),
        links(),
    );
    sim.healthy("hc-a", at(0));
    up(&mut sim, "DSLiteTunnel", "ds-lite");
    up(&mut sim, "Interface", "lte");
    assert_eq!(selected(&sim.step(at(0))), Some("dslite"));
    down(&mut sim, "DSLiteTunnel", "ds-lite", "InterfaceNotFound");
    let o = sim.step(at(1));
    assert_eq!(selected(&o), Some("lte"));
    assert_eq!(reason_codes(&o, "dslite"), vec!["TunnelDown"]);
    assert_eq!(entry(&o, 0)["ready"], json!(false));
    assert_eq!(entry(&o, 0)["pathReady"], json!(false));
    assert_eq!(o.decision.rule, "Failover");
}

#[test]
fn a_dslite_without_status_is_down_and_a_health_check_cannot_vouch_for_a_tunnel_source() {
    let mut sim = Sim::new(
        json!({"hysteresis": "0s", "candidates": [
            {"name": "dslite", "source": "DSLiteTunnel/ds-lite", "deviceFrom": {"resource": "DSLiteTunnel/ds-lite", "field": "device"}, "healthCheck": "hc-a", "weight": 80},
            {"name": "lte", "device": "wwan0", "weight": 10}
        ]}),
        links(),
    );
    sim.healthy("hc-a", at(0));
    let o = sim.step(at(0));
    assert_eq!(selected(&o), Some("lte"));
    assert_eq!(
        reason_codes(&o, "dslite"),
        vec!["TunnelDown", "DeviceUnresolved"]
    );
    sim.status_of(
        id("DSLiteTunnel", "ds-lite"),
        json!({"phase": "Up", "device": "ds-lite0"}),
    );
    let o = sim.step(at(1));
    assert_eq!(selected(&o), Some("dslite"));
    assert_eq!(o.status["selectedDevice"], "ds-lite0");
}

#[test]
fn carrier_loss_takes_an_interface_candidate_out_at_once() {
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "wan", "interface": "wan", "weight": 80},
            {"name": "lte", "interface": "lte", "weight": 10}
        ]}),
        links(),
    );
    up(&mut sim, "Interface", "wan");
    up(&mut sim, "Interface", "lte");
    assert_eq!(selected(&sim.step(at(0))), Some("wan"));
    down(&mut sim, "Interface", "wan", "NoCarrier");
    let o = sim.step(at(1));
    assert_eq!(selected(&o), Some("lte"));
    let c = o
        .decision
        .candidates
        .iter()
        .find(|c| c.name == "wan")
        .unwrap();
    assert_eq!(c.reasons[0].code, "LinkDown");
    assert!(
        c.reasons[0]
            .message
            .contains("Interface/wan is Down (NoCarrier)"),
        "{:?}",
        c.reasons
    );
    // An interface nobody reported on is not held against the candidate:
    // only a status saying it is down is.
    let mut sim = Sim::new(
        json!({"candidates": [{"name": "wan", "interface": "wan"}]}),
        links(),
    );
    assert_eq!(selected(&sim.step(at(0))), Some("wan"));
}

#[test]
fn a_change_of_a_link_status_reevaluates_the_policies_that_run_over_it() {
    let sim = Sim::new(
        json!({"candidates": [
            {"name": "wan", "interface": "wan", "weight": 80},
            {"name": "dslite", "deviceFrom": {"resource": "DSLiteTunnel/ds-lite", "field": "device"}}
        ]}),
        links(),
    );
    assert_eq!(sim.set.affected([id("Interface", "wan").as_str()]), vec![0]);
    assert_eq!(
        sim.set.affected([id("DSLiteTunnel", "ds-lite").as_str()]),
        vec![0]
    );
    assert!(
        sim.set
            .affected([id("Interface", "lte").as_str()])
            .is_empty()
    );
}

fn targets_policy(extra: Value) -> Value {
    let mut p = json!({"mode": "hash", "hashFields": ["sourceAddress"], "candidates": [
        {"name": "spread", "targets": [
            {"name": "t-dslite", "interface": "ds-lite", "mark": 1, "table": 101, "priority": 101, "healthCheck": "hc-a"},
            {"interface": "lte", "mark": 2, "table": 102, "priority": 102, "healthCheck": "hc-b"}
        ]},
        {"name": "plain", "interface": "wan", "mark": 3, "table": 103, "priority": 103, "weight": 0}
    ]});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

#[test]
fn targets_are_judged_by_the_same_rule_and_published() {
    let mut sim = Sim::new(targets_policy(json!({})), links());
    sim.healthy("hc-a", at(0));
    sim.healthy("hc-b", at(0));
    up(&mut sim, "Interface", "lte");
    up(&mut sim, "Interface", "wan");
    down(&mut sim, "DSLiteTunnel", "ds-lite", "NoCarrier");
    let o = sim.step(at(0));
    assert_eq!(selected(&o), Some("spread"));
    let ts = &entry(&o, 0)["targetStates"];
    assert_eq!(ts[0]["name"], "t-dslite");
    assert_eq!(ts[0]["ready"], json!(false));
    assert_eq!(ts[0]["pathReady"], json!(false));
    assert_eq!(ts[0]["inUse"], json!(false));
    assert_eq!(ts[1]["name"], "spread-1");
    assert_eq!(ts[1]["ready"], json!(true));
    assert_eq!(ts[1]["inUse"], json!(true));
    let d = &o.decision.candidates[0].targets;
    assert_eq!(d[0].reasons[0].code, "TunnelDown");

    // Every target down: the candidate is not ready and the plain one wins.
    sim.down("hc-b", at(1));
    let o = sim.step(at(1));
    assert_eq!(selected(&o), Some("plain"));
    assert_eq!(reason_codes(&o, "spread"), vec!["NoReadyTarget"]);
    let ts = &entry(&o, 0)["targetStates"];
    assert_eq!(ts[1]["ready"], json!(false));
    assert_eq!(
        ts[1]["pathReady"],
        json!(true),
        "only its check fails: the path exists for its probe"
    );
    assert_eq!(ts[1]["inUse"], json!(false));
}

#[test]
fn a_recovering_target_rejoins_the_hash_only_when_its_hold_ends() {
    let mut sim = Sim::new(
        targets_policy(json!({"hysteresis": "0s", "preemptDelay": "30s"})),
        links(),
    );
    sim.healthy("hc-a", at(0));
    sim.healthy("hc-b", at(0));
    up(&mut sim, "DSLiteTunnel", "ds-lite");
    let o = sim.step(at(0));
    let use_of = |o: &routerd_select::Outcome| -> Vec<bool> {
        entry(o, 0)["targetStates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["inUse"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(use_of(&o), vec![true, true], "startup: every ready target");
    sim.down("hc-a", at(10));
    let o = sim.step(at(10));
    assert_eq!(
        use_of(&o),
        vec![false, true],
        "a failed target leaves at once"
    );
    assert!(o.selection_changed);
    sim.healthy("hc-a", at(20));
    sim.healthy("hc-b", at(20));
    let o = sim.step(at(20));
    assert_eq!(use_of(&o), vec![false, true], "held by preemptDelay");
    let held = o.decision.candidates[0].targets[0].held.clone().unwrap();
    assert_eq!(held.by, "preemptDelay");
    assert_eq!(o.wake_at, Some(at(50)));
    assert!(!o.selection_changed);
    sim.healthy("hc-a", at(50));
    sim.healthy("hc-b", at(50));
    let o = sim.step(at(50));
    assert_eq!(use_of(&o), vec![true, true], "the hold ended");
    assert!(o.selection_changed);
    assert_eq!(o.status["lastTransitionAt"], json!(rfc(at(50))));
}

#[test]
fn preempt_false_keeps_a_recovered_target_out_while_others_carry_the_hash() {
    let mut sim = Sim::new(
        targets_policy(json!({"hysteresis": "0s", "preempt": false})),
        links(),
    );
    sim.healthy("hc-a", at(0));
    sim.healthy("hc-b", at(0));
    up(&mut sim, "DSLiteTunnel", "ds-lite");
    sim.step(at(0));
    down(&mut sim, "DSLiteTunnel", "ds-lite", "NoCarrier");
    sim.step(at(1));
    up(&mut sim, "DSLiteTunnel", "ds-lite");
    let o = sim.step(at(100));
    let ts = &entry(&o, 0)["targetStates"];
    assert_eq!(ts[0]["ready"], json!(true));
    assert_eq!(ts[0]["inUse"], json!(false));
    assert_eq!(
        o.decision.candidates[0].targets[0]
            .held
            .as_ref()
            .unwrap()
            .by,
        "preempt"
    );
}

#[test]
fn hysteresis_holds_a_recovering_target() {
    let mut sim = Sim::new(targets_policy(json!({"hysteresis": "30s"})), links());
    sim.healthy("hc-a", at(0));
    sim.healthy("hc-b", at(0));
    up(&mut sim, "DSLiteTunnel", "ds-lite");
    sim.step(at(0));
    sim.down("hc-a", at(40));
    sim.step(at(40));
    sim.healthy("hc-a", at(50));
    sim.healthy("hc-b", at(50));
    let o = sim.step(at(50));
    assert_eq!(
        o.decision.candidates[0].targets[0]
            .held
            .as_ref()
            .unwrap()
            .by,
        "hysteresis"
    );
    assert_eq!(o.wake_at, Some(at(70)));
    sim.healthy("hc-a", at(70));
    sim.healthy("hc-b", at(70));
    let o = sim.step(at(70));
    assert_eq!(entry(&o, 0)["targetStates"][0]["inUse"], json!(true));
}
