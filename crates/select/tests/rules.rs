//! One test per rule, reason and status shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use routerd_model::{Resource, Spec};
use routerd_select::observe::{CandidateObservation, HealthObservation, SourceObservation};
use routerd_select::{PolicyInput, SelectOptions, select};
use serde_json::{Value, json};

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort_unstable();
    v.into_iter().map(String::from).collect()
}

#[test]
fn advisory_status_has_routerd_keys_and_no_dry_run() {
    let mut sim = Sim::two(json!({"hysteresis": "1m"}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    let o = sim.step(at(0));
    let st = Value::Object(o.status.clone());
    assert_eq!(
        keys(&st),
        sorted(vec![
            "phase",
            "family",
            "destinationCIDRs",
            "selectedCandidate",
            "selectedSource",
            "selectedDevice",
            "selectedGateway",
            "selectedGatewaySource",
            "selectedRouteTable",
            "selectedMetric",
            "selectedWeight",
            "lastTransitionAt",
            "hysteresis",
            "role",
            "advisory",
            "candidates",
        ])
    );
    assert_eq!(st["phase"], "Applied");
    assert_eq!(st["family"], "ipv4");
    assert_eq!(st["destinationCIDRs"], json!(["0.0.0.0/0"]));
    assert_eq!(st["hysteresis"], "1m0s");
    assert_eq!(st["role"], "advisory");
    assert_eq!(st["advisory"], json!(true));
    assert_eq!(st["selectedDevice"], "wan0");
    assert_eq!(st["selectedGateway"], "192.0.2.1");
    assert_eq!(st["selectedGatewaySource"], "static");
    assert_eq!(st["lastTransitionAt"], json!(rfc(at(0))));
    assert_eq!(
        keys(&st["candidates"][0]),
        sorted(vec![
            "name",
            "source",
            "device",
            "gateway",
            "gatewaySource",
            "routeTable",
            "metric",
            "weight",
            "ready",
            "disabled",
            "readySince",
        ])
    );
    assert!(keys(&st["candidates"][1]).contains(&"readySince".to_string()));
}

#[test]
fn ipv6_destination_defaults_to_all() {
    let mut sim = Sim::new(
        json!({"family": "ipv6", "candidates": [{"name": "a", "device": "wan0"}]}),
        vec![],
    );
    let o = sim.step(at(0));
    assert_eq!(o.status["destinationCIDRs"], json!(["::/0"]));
    assert_eq!(o.status["family"], "ipv6");
}

#[test]
fn advisory_change_publishes_route_changed_with_exact_attributes() {
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    let o = sim.step(at(0));
    assert_eq!(o.events.len(), 1);
    let e = &o.events[0];
    assert_eq!(e.type_, "routerd.lan.route.changed");
    assert_eq!(e.severity, "info");
    assert_eq!(e.daemon.name, "routerd");
    assert_eq!(e.daemon.instance, "controller");
    assert_eq!(e.resource.kind, "EgressRoutePolicy");
    assert_eq!(e.resource.name, "p");
    assert_eq!(e.resource.api_version, NET);
    let attrs: Vec<(&str, &str)> = e
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        vec![
            ("advisory", "true"),
            // An addition to routerd's attributes: where traffic came from.
            ("previousCandidate", ""),
            ("role", "advisory"),
            ("selectedCandidate", "primary"),
            ("selectedDevice", "wan0"),
            ("selectedGateway", "192.0.2.1"),
            ("selectedGatewaySource", "static"),
        ]
    );
    assert_eq!(e.reason, "Startup");
    assert_eq!(e.message, "primary selected: nothing was selected before");
}

#[test]
fn selected_weight_alone_is_not_a_selection_change() {
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    sim.step(at(0));
    let mut spec = sim
        .resources
        .last()
        .unwrap()
        .as_egress_policy()
        .unwrap()
        .clone();
    spec.candidates[0].weight = Some(90);
    let last = sim.resources.len() - 1;
    sim.resources[last].spec = Spec::EgressRoutePolicy(spec);
    sim.set = routerd_select::PolicySet::new(&sim.resources);
    sim.healthy("hc-primary", at(1));
    let o = sim.step(at(1));
    assert!(o.status_changed);
    assert!(!o.selection_changed);
    assert!(o.events.is_empty());
    assert_eq!(o.status["lastTransitionAt"], json!(rfc(at(0))));
}

#[test]
fn policy_route_shape_for_priority_mark_and_hash() {
    for mode in ["priority", "mark", "hash"] {
        let mut sim = Sim::two(json!({"mode": mode, "hashFields": ["sourceAddress"]}));
        sim.options = SelectOptions {
            dry_run: true,
            ..SelectOptions::default()
        };
        sim.healthy("hc-primary", at(0));
        let o = sim.step(at(0));
        let st = Value::Object(o.status.clone());
        assert_eq!(
            keys(&st),
            sorted(vec![
                "phase",
                "family",
                "selectedCandidate",
                "selectedTargets",
                "selectedInterface",
                "selectedSource",
                "selectedDevice",
                "selectedGateway",
                "selectedGatewaySource",
                "selectedRouteTable",
                "selectedMetric",
                "selectedWeight",
                "dryRun",
                "updatedAt",
                "lastTransitionAt",
                "candidates",
            ]),
            "{mode}"
        );
        assert_eq!(st["dryRun"], json!(true));
        assert_eq!(st["updatedAt"], json!(rfc(at(0))));
        assert_eq!(st["selectedInterface"], "wan0");
        assert_eq!(st["candidates"][0]["priority"], json!(0));
        assert_eq!(st["candidates"][0]["targets"], json!(0));
        // Policy-route modes publish routerd's status.changed, not
        // route.changed.
        let types: Vec<&str> = o.events.iter().map(|e| e.type_.as_str()).collect();
        assert_eq!(types, ["routerd.resource.status.changed"], "{mode}");
        assert_eq!(o.events[0].attributes["selectedCandidate"], "primary");
        assert_eq!(o.events[0].attributes["mode"], mode);
        assert_eq!(o.decision.mode, mode);
    }
}

#[test]
fn updated_at_moves_only_with_the_status() {
    let mut sim = Sim::two(json!({"mode": "priority"}));
    sim.healthy("hc-primary", at(0));
    sim.step(at(0));
    sim.healthy("hc-primary", at(10));
    let o = sim.step(at(10));
    assert_eq!(o.status["updatedAt"], json!(rfc(at(0))));
    sim.healthy("hc-primary", at(20));
    sim.healthy("hc-backup", at(20));
    let o = sim.step(at(20));
    assert_eq!(
        o.status["updatedAt"],
        json!(rfc(at(20))),
        "backup became ready"
    );
    assert_eq!(
        o.status["lastTransitionAt"],
        json!(rfc(at(0))),
        "selection did not change"
    );
}

#[test]
fn hysteresis_is_honoured_in_priority_mode() {
    let mut sim = Sim::two(json!({"mode": "priority", "hysteresis": "30s"}));
    sim.healthy("hc-backup", at(0));
    assert_eq!(selected(&sim.step(at(0))), Some("backup"));
    sim.healthy("hc-primary", at(10));
    sim.healthy("hc-backup", at(10));
    let o = sim.step(at(10));
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(o.decision.rule, "HeldByHysteresis");
}

#[test]
fn target_candidates_report_targets_and_no_device() {
    let hcs = vec![Resource::new("hc-t", Spec::HealthCheck(hc_spec(json!({}))))];
    let mut sim = Sim::new(
        json!({"mode": "hash", "hashFields": ["sourceAddress"], "candidates": [{
        "name": "spread", "targets": [
            {"interface": "wan0", "mark": 1, "table": 101, "priority": 101, "healthCheck": "hc-t"},
            {"interface": "wan1", "mark": 2, "table": 102, "priority": 102}
        ]}]}),
        hcs,
    );
    let o = sim.step(at(0));
    assert_eq!(
        selected(&o),
        Some("spread"),
        "the target without a HealthCheck is ready"
    );
    assert_eq!(o.status["selectedTargets"], json!(2));
    assert!(o.status.get("selectedDevice").is_none());
    assert!(o.status["candidates"][0].get("device").is_none());
    // A second identical evaluation is not a change.
    let again = sim.step(at(0));
    assert!(!again.selection_changed && !again.status_changed);
}

#[test]
fn no_ready_target_reason() {
    let hcs = vec![Resource::new("hc-t", Spec::HealthCheck(hc_spec(json!({}))))];
    let mut sim = Sim::new(
        json!({"mode": "hash", "hashFields": ["sourceAddress"], "candidates": [{
            "name": "spread", "targets": [{"interface": "wan0", "mark": 1, "table": 101, "priority": 101, "healthCheck": "hc-t"}]}]}),
        hcs,
    );
    let o = sim.step(at(0));
    assert_eq!(reason_codes(&o, "spread"), vec!["NoReadyTarget"]);
}

#[test]
fn pending_no_ready_candidates_in_both_shapes() {
    let mut sim = Sim::two(json!({}));
    let o = sim.step(at(0));
    assert_eq!(o.status["phase"], "Pending");
    assert_eq!(o.status["reason"], "NoReadyCandidates");
    assert_eq!(o.status["candidates"].as_array().unwrap().len(), 2);
    assert!(o.status.get("dryRun").is_none());
    assert!(o.events.is_empty());
    assert_eq!(o.decision.reason.as_deref(), Some("NoReadyCandidates"));

    // The policy-route shape lists its candidates too (an extension): the
    // renderer needs their `pathReady` to install probe paths.
    let mut sim = Sim::two(json!({"mode": "priority"}));
    let o = sim.step(at(0));
    let st = Value::Object(o.status.clone());
    assert_eq!(
        keys(&st),
        sorted(vec!["phase", "reason", "dryRun", "updatedAt", "candidates"])
    );
    assert_eq!(st["candidates"][0]["ready"], json!(false));
    assert_eq!(st["candidates"][0]["pathReady"], json!(true));
    assert!(o.events.is_empty());
}

#[test]
fn pending_after_applied_publishes_nothing_and_reapplies_as_a_change() {
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    sim.step(at(0));
    sim.down("hc-primary", at(10));
    let o = sim.step(at(10));
    assert_eq!(o.status["reason"], "NoReadyCandidates");
    assert!(o.events.is_empty());
    sim.healthy("hc-primary", at(20));
    let o = sim.step(at(20));
    assert!(o.selection_changed, "previous phase was not Applied");
    assert_eq!(o.events.len(), 1);
}

#[test]
fn unsupported_selection_is_pending_with_routerd_message() {
    let mut sim = Sim::two(json!({"selection": "round-robin"}));
    sim.healthy("hc-primary", at(0));
    let o = sim.step(at(0));
    assert_eq!(o.status["phase"], "Pending");
    assert_eq!(o.status["reason"], "UnsupportedSelection");
    assert_eq!(
        o.status["message"],
        "selection \"round-robin\" is reserved but not implemented"
    );
    assert!(o.events.is_empty());
    let mut sim = Sim::two(json!({"selection": "round-robin", "mode": "priority"}));
    let o = sim.step(at(0));
    assert_eq!(o.status["dryRun"], json!(false));
}

#[test]
fn names_default_per_mode() {
    let spec = json!({"candidates": [
        {"device": "d0", "source": "Interface/wan"},
        {"device": "d1"},
        {"interface": "wan", "weight": 1}
    ]});
    let extra = || {
        vec![Resource::new(
            "wan",
            Spec::Interface(serde_json::from_value(json!({"ifname": "ens18"})).unwrap()),
        )]
    };
    let mut sim = Sim::new(spec.clone(), extra());
    let o = sim.step(at(0));
    let names: Vec<_> = o
        .decision
        .candidates
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["Interface/wan", "candidate-1", "candidate-2"]);
    let mut spec = spec;
    spec["mode"] = json!("priority");
    let mut sim = Sim::new(spec, extra());
    let o = sim.step(at(0));
    let names: Vec<_> = o
        .decision
        .candidates
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["d0", "d1", "wan"]);
}

#[test]
fn interface_counts_in_advisory_mode() {
    // routerd ignores `interface` in advisory mode, so this is never ready
    // there (§8.1.5). Here it resolves through the Interface's ifname.
    let mut sim = Sim::new(
        json!({"candidates": [{"name": "wan", "interface": "wan"}]}),
        vec![Resource::new(
            "wan",
            Spec::Interface(serde_json::from_value(json!({"ifname": "ens18"})).unwrap()),
        )],
    );
    let o = sim.step(at(0));
    assert_eq!(selected(&o), Some("wan"));
    assert_eq!(o.status["selectedDevice"], "ens18");
}

#[test]
fn device_resolution_order_and_unresolved_reasons() {
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "from", "deviceFrom": {"resource": "DSLiteTunnel/t", "field": "device"}, "device": "literal"},
            {"name": "nothing", "deviceFrom": {"resource": "DSLiteTunnel/u", "field": "device"}},
            {"name": "gw", "device": "x", "gatewaySource": "static", "gatewayFrom": {"resource": "Interface/g", "field": "gateway"}},
            {"name": "gw-optional", "device": "y", "gatewaySource": "static", "gatewayFrom": {"resource": "Interface/g", "field": "gateway", "optional": true}}
        ]}),
        vec![],
    );
    sim.status_of(
        id("DSLiteTunnel", "t"),
        json!({"phase": "Up", "device": "ds-lite0"}),
    );
    let o = sim.step(at(0));
    assert_eq!(o.decision.candidates[0].device, "ds-lite0");
    assert_eq!(reason_codes(&o, "nothing"), vec!["DeviceUnresolved"]);
    assert_eq!(reason_codes(&o, "gw"), vec!["GatewayUnresolved"]);
    assert!(reason_codes(&o, "gw-optional").is_empty());
}

#[test]
fn source_rules() {
    let hc = vec![Resource::new("hc", Spec::HealthCheck(hc_spec(json!({}))))];
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "down", "device": "a", "source": "Interface/a"},
            {"name": "vouched", "device": "b", "source": "Interface/b", "healthCheck": "hc"},
            {"name": "up", "device": "c", "source": "Interface/c"},
            {"name": "observed", "device": "d", "source": "Interface/d"}
        ]}),
        hc,
    );
    sim.status_of(id("Interface", "a"), json!({"phase": "Down"}));
    sim.status_of(id("Interface", "c"), json!({"phase": "Up"}));
    sim.status_of(
        id("Interface", "d"),
        json!({"phase": "Down", "observed": {"phase": "Running"}}),
    );
    sim.healthy("hc", at(0));
    let o = sim.step(at(0));
    assert_eq!(reason_codes(&o, "down"), vec!["SourceNotReady"]);
    assert!(reason_codes(&o, "vouched").is_empty());
    assert_eq!(
        o.decision.candidates[1].notes[0].code,
        "SourceVouchedByHealth"
    );
    assert!(reason_codes(&o, "up").is_empty());
    assert!(reason_codes(&o, "observed").is_empty());
}

#[test]
fn disabled_rules() {
    let hcs = vec![
        Resource::new(
            "hc-off",
            Spec::HealthCheck(hc_spec(json!({"enabled": false}))),
        ),
        Resource::new("hc-standby", Spec::HealthCheck(hc_spec(json!({})))),
        Resource::new(
            "ppp",
            Spec::PPPoESession(
                serde_json::from_value(json!({"interface": "wan", "enabled": false})).unwrap(),
            ),
        ),
    ];
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "off", "device": "a", "enabled": false},
            {"name": "hc-off", "device": "b", "healthCheck": "hc-off"},
            {"name": "hc-standby", "device": "c", "healthCheck": "hc-standby"},
            {"name": "ppp", "device": "d", "source": "PPPoESession/ppp"},
            {"name": "ok", "device": "e"}
        ]}),
        hcs,
    );
    sim.health("hc-standby", "Standby", 0, at(0));
    let o = sim.step(at(0));
    assert_eq!(reason_codes(&o, "off"), vec!["Disabled"]);
    assert_eq!(reason_codes(&o, "hc-off"), vec!["HealthCheckDisabled"]);
    assert_eq!(reason_codes(&o, "hc-standby"), vec!["HealthCheckDisabled"]);
    assert_eq!(reason_codes(&o, "ppp"), vec!["SourceDisabled"]);
    for c in &o.decision.candidates[..4] {
        assert!(c.disabled && !c.ready, "{}", c.name);
    }
    assert_eq!(selected(&o), Some("ok"));
}

#[test]
fn dependency_reason() {
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "a", "device": "a", "weight": 9, "dependsOn": [{"resource": "Interface/x", "phase": "Up"}]},
            {"name": "b", "device": "b"}
        ]}),
        vec![],
    );
    sim.status_of(id("Interface", "x"), json!({"phase": "Down"}));
    let o = sim.step(at(0));
    assert_eq!(reason_codes(&o, "a"), vec!["DependencyNotReady"]);
    assert_eq!(selected(&o), Some("b"));
    sim.status_of(id("Interface", "x"), json!({"phase": "Up"}));
    // Hysteresis (default 30s) holds the switch back.
    assert_eq!(selected(&sim.step(at(1))), Some("b"));
    assert_eq!(selected(&sim.step(at(30))), Some("a"));
}

#[test]
fn health_reasons_are_specific() {
    let hcs = vec![
        Resource::new("never", Spec::HealthCheck(hc_spec(json!({})))),
        Resource::new("bad-time", Spec::HealthCheck(hc_spec(json!({})))),
        Resource::new("unhealthy", Spec::HealthCheck(hc_spec(json!({})))),
    ];
    let mut sim = Sim::new(
        json!({"candidates": [
            {"name": "never", "device": "a", "healthCheck": "never"},
            {"name": "bad-time", "device": "b", "healthCheck": "bad-time"},
            {"name": "unhealthy", "device": "c", "healthCheck": "unhealthy"}
        ]}),
        hcs,
    );
    sim.status_of(
        id("HealthCheck", "bad-time"),
        json!({"phase": "Healthy", "lastCheckedAt": "soon"}),
    );
    sim.health("unhealthy", "Unhealthy", 4, at(0));
    let o = sim.step(at(0));
    assert_eq!(reason_codes(&o, "never"), vec!["HealthNoStatus"]);
    assert_eq!(reason_codes(&o, "bad-time"), vec!["HealthStale"]);
    assert_eq!(reason_codes(&o, "unhealthy"), vec!["HealthNotPassing"]);
    let msg = &o.decision.candidates[2].reasons[0].message;
    assert!(
        msg.contains("Unhealthy")
            && msg.contains("consecutiveFailed 4")
            && msg.contains("unhealthyThreshold 3"),
        "{msg}"
    );
}

#[test]
fn weighted_ecmp_weights() {
    let run = |spec: Value| {
        let mut sim = Sim::new(spec, vec![]);
        sim.step(at(0))
    };
    let o = run(json!({"selection": "weighted-ecmp", "candidates": [
        {"name": "a", "device": "a", "weight": 3}, {"name": "b", "device": "b", "weight": 0}, {"name": "c", "device": "c", "weight": 1}
    ]}));
    let names: Vec<_> = o
        .decision
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.weight))
        .collect();
    assert_eq!(names, vec![("a", 3), ("c", 1)], "weight 0 gets no share");
    let o = run(json!({"selection": "weighted-ecmp", "candidates": [
        {"name": "a", "device": "a"}, {"name": "b", "device": "b"}
    ]}));
    let names: Vec<_> = o
        .decision
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.weight))
        .collect();
    assert_eq!(names, vec![("a", 1), ("b", 1)], "all zero: equal shares");
}

#[test]
fn routerd_written_previous_status_without_ready_since_is_not_held() {
    // A previous status from routerd itself has no readySince: candidates it
    // listed as ready count as past their hold-down.
    let spec = policy_spec(
        json!({"hysteresis": "0s", "preemptDelay": "5m", "candidates": [
            {"name": "a", "device": "a", "weight": 9}, {"name": "b", "device": "b", "weight": 1}
        ]}),
    );
    let prev = obj(json!({
        "phase": "Applied", "selectedCandidate": "b", "selectedDevice": "b", "selectedGateway": "",
        "selectedGatewaySource": "none", "selectedRouteTable": 0, "selectedMetric": 0,
        "lastTransitionAt": rfc(at(-100)),
        "candidates": [{"name": "a", "ready": true}, {"name": "b", "ready": true}]
    }));
    let obs = vec![
        CandidateObservation::default(),
        CandidateObservation::default(),
    ];
    let o = select(&PolicyInput {
        api_version: NET,
        name: "p",
        spec: &spec,
        observations: &obs,
        previous: Some(&prev),
        now: at(0),
        options: SelectOptions::default(),
    });
    assert_eq!(selected(&o), Some("a"));
    assert_eq!(o.decision.rule, "Preempt");
}

#[test]
fn observations_can_be_given_directly() {
    let spec = policy_spec(json!({"candidates": [
        {"name": "a", "source": "DSLiteTunnel/t", "healthCheck": "h", "weight": 5}
    ]}));
    let obs = vec![CandidateObservation {
        source: Some(SourceObservation {
            reference: "DSLiteTunnel/t".into(),
            phase: "Up".into(),
            spec_disabled: false,
            tunnel: true,
        }),
        health: Some(HealthObservation::from_status(
            "h",
            None,
            Some(&obj(
                json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))}),
            )),
        )),
        device_from: None,
        interface_device: Some("ds-lite0".into()),
        ..CandidateObservation::default()
    }];
    let o = select(&PolicyInput {
        api_version: NET,
        name: "p",
        spec: &spec,
        observations: &obs,
        previous: None,
        now: at(1),
        options: SelectOptions::default(),
    });
    assert_eq!(o.status["selectedDevice"], "ds-lite0");
    assert_eq!(o.decision.rule, "Startup");
    assert!(
        o.decision.explanation.contains("the only ready candidate"),
        "{}",
        o.decision.explanation
    );
}

#[test]
fn a_status_of_another_shape_is_rewritten_without_stale_keys() {
    // The policy switches from advisory to priority mode and back: the
    // status is patched in place, so keys of the old shape must go.
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    sim.step(at(0));
    let mut spec = sim
        .resources
        .last()
        .unwrap()
        .as_egress_policy()
        .unwrap()
        .clone();
    spec.mode = Some("priority".into());
    let last = sim.resources.len() - 1;
    sim.resources[last].spec = Spec::EgressRoutePolicy(spec.clone());
    sim.set = routerd_select::PolicySet::new(&sim.resources);
    let o = sim.step(at(1));
    for k in ["role", "advisory", "hysteresis", "destinationCIDRs"] {
        assert!(o.status.get(k).is_none(), "{k} left over");
    }
    assert!(o.status["candidates"][0].get("priority").is_some());
    // A fresh evaluation from the same previous status gives the same keys.
    let fresh = sim.step(at(1));
    assert_eq!(
        keys(&Value::Object(fresh.status.clone())),
        keys(&Value::Object(o.status.clone()))
    );
    spec.mode = None;
    sim.resources[last].spec = Spec::EgressRoutePolicy(spec);
    sim.set = routerd_select::PolicySet::new(&sim.resources);
    sim.down("hc-primary", at(2));
    let o = sim.step(at(2));
    assert_eq!(
        keys(&Value::Object(o.status.clone())),
        sorted(vec!["phase", "reason", "candidates"])
    );
    for c in o.status["candidates"].as_array().unwrap() {
        assert!(c.get("priority").is_none() && c.get("readySince").is_none());
    }
}

/// Every selection change in every mode is an event about the policy,
/// with where traffic went from and to and why: health, preemption after
/// a hold, carrier loss, and no path at all.
#[test]
fn every_mode_publishes_selection_changes_with_their_cause() {
    for mode in ["", "priority", "mark", "hash"] {
        let (topic, extra) = if mode.is_empty() {
            ("routerd.lan.route.changed", json!({"hysteresis": "0s"}))
        } else {
            (
                "routerd.resource.status.changed",
                json!({"mode": mode, "hashFields": ["sourceAddress"], "preemptDelay": "30s"}),
            )
        };
        let mut sim = Sim::two(extra);
        let mut t = 0;
        let mut step = |sim: &mut Sim, primary: bool, backup: bool| {
            for (hc, up) in [("hc-primary", primary), ("hc-backup", backup)] {
                if up {
                    sim.healthy(hc, at(t));
                } else {
                    sim.down(hc, at(t));
                }
            }
            let o = sim.step(at(t));
            t += 60;
            o.events
                .iter()
                .map(|e| {
                    assert_eq!(e.type_, topic, "{mode}");
                    assert_eq!(e.resource.kind, "EgressRoutePolicy", "{mode}");
                    assert_eq!(e.resource.name, "p", "{mode}");
                    let a = |k: &str| e.attributes.get(k).cloned().unwrap_or_default();
                    (
                        a("previousCandidate"),
                        a("selectedCandidate"),
                        e.reason.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let ev = |from: &str, to: &str, why: &str| vec![(from.into(), to.into(), why.into())];
        assert_eq!(
            step(&mut sim, true, true),
            ev("", "primary", "Startup"),
            "{mode}"
        );
        assert_eq!(
            step(&mut sim, true, true),
            vec![],
            "{mode}: no change, no event"
        );
        assert_eq!(
            step(&mut sim, false, true),
            ev("primary", "backup", "HealthFailing"),
            "{mode}"
        );
        // primary recovers; in the policy-route modes it waits out
        // preemptDelay (30s) and then preempts.
        let back = step(&mut sim, true, true);
        if mode.is_empty() {
            assert_eq!(back, ev("backup", "primary", "Preempt"), "{mode}");
        } else {
            assert_eq!(back, vec![], "{mode}: held by preemptDelay");
            assert_eq!(
                step(&mut sim, true, true),
                ev("backup", "primary", "HoldEnded"),
                "{mode}"
            );
        }
        let lost = step(&mut sim, false, false);
        if mode.is_empty() {
            // routerd publishes no route.changed on a transition to Pending.
            assert_eq!(lost, vec![], "{mode}");
        } else {
            assert_eq!(lost, ev("primary", "", "HealthFailing"), "{mode}");
        }
    }
}

/// A candidate whose link lost carrier fails over with "carrier lost on
/// <device>", not a health-check story.
#[test]
fn carrier_loss_is_named_as_the_cause() {
    let ifaces = ["wan1", "wan2"].map(|n| {
        Resource::new(
            n,
            Spec::Interface(serde_json::from_value(json!({"ifname": format!("eth-{n}")})).unwrap()),
        )
    });
    let mut sim = Sim::new(
        json!({"mode": "priority", "candidates": [
            {"name": "a", "interface": "wan1", "gateway": "192.0.2.1", "weight": 100},
            {"name": "b", "interface": "wan2", "gateway": "198.51.100.1", "weight": 50}
        ]}),
        ifaces.to_vec(),
    );
    for n in ["wan1", "wan2"] {
        sim.status_of(id("Interface", n), json!({"phase": "Up"}));
    }
    sim.step(at(0));
    assert_eq!(sim.policy_status()["selectedCandidate"], "a");
    sim.status_of(
        id("Interface", "wan1"),
        json!({"phase": "Down", "reason": "NoCarrier"}),
    );
    let o = sim.step(at(1));
    assert_eq!(o.events.len(), 1, "{:?}", o.events);
    let e = &o.events[0];
    assert_eq!(e.reason, "CarrierLost");
    assert!(
        e.message
            .starts_with("b takes over from a: carrier lost on eth-wan1"),
        "{}",
        e.message
    );
}
