//! Followers (IPv4Route, NAT44Rule) and the policy set's reverse index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use routerd_model::spec::{IPv4RouteSpec, NAT44RuleSpec};
use routerd_model::{Resource, Spec, Status};
use routerd_select::follow::{FollowOptions, Subject, ipv4_route, nat44};
use routerd_select::set::World;
use routerd_select::{PolicySet, SelectOptions};
use serde_json::{Value, json};

fn route(v: Value) -> IPv4RouteSpec {
    serde_json::from_value(v).unwrap()
}

fn nat(v: Value) -> NAT44RuleSpec {
    serde_json::from_value(v).unwrap()
}

const WHO: Subject<'static> = Subject {
    api_version: NET,
    name: "r",
};

fn following() -> IPv4RouteSpec {
    route(json!({
        "destination": "0.0.0.0/0",
        "deviceFrom": {"resource": "EgressRoutePolicy/p", "field": "selectedDevice"},
        "gatewayFrom": {"resource": "EgressRoutePolicy/p", "field": "selectedGateway", "optional": true}
    }))
}

#[test]
fn route_follows_the_policy_and_keeps_installed_at() {
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    st.insert(
        id("EgressRoutePolicy", "p"),
        obj(json!({"phase": "Applied", "selectedDevice": "ds-lite0", "selectedGateway": ""})),
    );
    let opts = FollowOptions::default();
    let o = ipv4_route(WHO, &following(), &st, None, at(0), &opts);
    assert_eq!(o.status["phase"], "Installed");
    assert_eq!(o.status["device"], "ds-lite0");
    assert_eq!(o.status["gateway"], "");
    assert_eq!(o.status["changed"], json!(true));
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.events[0].type_, "routerd.ipv4.route.installed");
    assert_eq!(o.events[0].attributes["device"], "ds-lite0");

    let again = ipv4_route(WHO, &following(), &st, Some(&o.status), at(10), &opts);
    assert_eq!(again.status["installedAt"], json!(rfc(at(0))));
    assert_eq!(again.status["changed"], json!(false));
    assert!(again.events.is_empty());
    let third = ipv4_route(WHO, &following(), &st, Some(&again.status), at(20), &opts);
    assert!(!third.status_changed);

    st.insert(
        id("EgressRoutePolicy", "p"),
        obj(
            json!({"phase": "Applied", "selectedDevice": "ens19", "selectedGateway": "172.17.0.1"}),
        ),
    );
    let moved = ipv4_route(WHO, &following(), &st, Some(&third.status), at(30), &opts);
    assert_eq!(moved.status["gateway"], "172.17.0.1");
    assert_eq!(moved.status["installedAt"], json!(rfc(at(30))));
    assert_eq!(moved.events.len(), 1);
}

#[test]
fn route_without_device_is_pending_device_missing() {
    let st: BTreeMap<String, Status> = BTreeMap::new();
    let o = ipv4_route(
        WHO,
        &following(),
        &st,
        None,
        at(0),
        &FollowOptions::default(),
    );
    assert_eq!(o.status["phase"], "Pending");
    assert_eq!(o.status["reason"], "DeviceMissing");
    assert!(o.events.is_empty());
}

#[test]
fn blackhole_needs_no_device() {
    let st: BTreeMap<String, Status> = BTreeMap::new();
    let spec = route(json!({"type": "blackhole", "destination": "10.0.0.0/8"}));
    let o = ipv4_route(WHO, &spec, &st, None, at(0), &FollowOptions::default());
    assert_eq!(o.status["phase"], "Installed");
    assert_eq!(o.status["type"], "blackhole");
    assert_eq!(o.status["destination"], "10.0.0.0/8");
}

#[test]
fn route_dependencies() {
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    let spec = route(
        json!({"destination": "default", "device": "eth0", "dependsOn": [{"resource": "Interface/wan", "phase": "Up"}]}),
    );
    let o = ipv4_route(WHO, &spec, &st, None, at(0), &FollowOptions::default());
    assert_eq!(o.status["phase"], "Pending");
    assert_eq!(o.status["reason"], "DependsOnFalse");
    assert_eq!(o.status["dependencies"][0]["ready"], json!(false));
    st.insert(id("Interface", "wan"), obj(json!({"phase": "Disabled"})));
    let o = ipv4_route(WHO, &spec, &st, None, at(0), &FollowOptions::default());
    assert_eq!(o.status["phase"], "NotApplicable");
    let o = ipv4_route(
        Subject {
            api_version: NET,
            name: "healthcheck-route",
        },
        &spec,
        &st,
        None,
        at(0),
        &FollowOptions::default(),
    );
    assert_eq!(o.status["phase"], "Standby");
    st.insert(id("Interface", "wan"), obj(json!({"phase": "Up"})));
    let o = ipv4_route(WHO, &spec, &st, None, at(0), &FollowOptions::default());
    assert_eq!(o.status["phase"], "Installed");
    assert_eq!(o.status["destination"], "0.0.0.0/0");
}

fn world(policies: &[&str]) -> World {
    let mut rs: Vec<Resource> = policies
        .iter()
        .map(|p| {
            Resource::new(
                *p,
                Spec::EgressRoutePolicy(policy_spec(json!({"candidates": [{"device": "x"}]}))),
            )
        })
        .collect();
    rs.push(Resource::new(
        "wan",
        Spec::Interface(serde_json::from_value(json!({"ifname": "ens18"})).unwrap()),
    ));
    World::new(&rs)
}

#[test]
fn nat_egress_resolution_reasons() {
    let opts = FollowOptions::default();
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    let spec = nat(
        json!({"type": "masquerade", "egressPolicyRef": "p", "sourceRanges": ["192.168.10.0/24"]}),
    );
    let w = world(&["p"]);
    let reason = |o: &routerd_select::follow::FollowOutcome| {
        o.status["reason"].as_str().unwrap_or("").to_string()
    };

    let o = nat44(WHO, &spec, &world(&[]), &st, None, at(0), &opts);
    assert_eq!(reason(&o), "EgressPolicyMissing");
    assert_eq!(o.status["conditions"][0]["type"], "EgressResolved");
    assert_eq!(o.status["conditions"][0]["status"], "False");

    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(reason(&o), "EgressPolicyNotApplied");

    st.insert(
        id("EgressRoutePolicy", "p"),
        obj(json!({"phase": "Applied", "selectedDevice": ""})),
    );
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(reason(&o), "SelectedDeviceMissing");

    st.insert(
        id("EgressRoutePolicy", "p"),
        obj(json!({"phase": "Applied", "selectedDevice": "ds-lite0"})),
    );
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["phase"], "Active");
    assert_eq!(o.status["activeEgressInterface"], "ds-lite0");
    assert_eq!(o.status["conditions"][0]["reason"], "Rendered");
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.events[0].type_, "routerd.nat44.rule.applied");
    let again = nat44(WHO, &spec, &w, &st, Some(&o.status), at(5), &opts);
    assert!(again.events.is_empty() && !again.status_changed);

    // Without a ref, the only policy is used.
    let spec = nat(json!({"type": "masquerade", "sourceRanges": ["192.168.10.0/24"]}));
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["activeEgressInterface"], "ds-lite0");
    let o = nat44(WHO, &spec, &world(&["p", "q"]), &st, None, at(0), &opts);
    assert_eq!(reason(&o), "EgressPolicyMissing");

    // egressInterface resolves through the alias.
    let spec = nat(
        json!({"type": "masquerade", "egressInterface": "wan", "sourceRanges": ["192.168.10.0/24"]}),
    );
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["activeEgressInterface"], "ens18");
}

#[test]
fn nat_snat_address_reasons() {
    let opts = FollowOptions::default();
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    let w = world(&[]);
    let spec = nat(
        json!({"type": "snat", "egressInterface": "wan", "sourceRanges": ["192.168.10.0/24"],
        "snatAddressFrom": {"resource": "Interface/wan", "field": "primaryIPv4"}}),
    );
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["reason"], "SNATAddressSourcePending");
    assert_eq!(o.status["conditions"][0]["type"], "SNATAddressResolved");
    st.insert(
        id("Interface", "wan"),
        obj(json!({"primaryIPv4": "203.0.113.5/24"})),
    );
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["snatAddress"], "203.0.113.5");
    let spec =
        nat(json!({"type": "snat", "egressInterface": "wan", "sourceRanges": ["192.168.10.0/24"]}));
    let o = nat44(WHO, &spec, &w, &st, None, at(0), &opts);
    assert_eq!(o.status["reason"], "SNATAddressMissing");
}

#[test]
fn reverse_index_selects_only_dependent_policies() {
    let mut rs = vec![
        Resource::new("hc-a", Spec::HealthCheck(hc_spec(json!({})))),
        Resource::new("hc-b", Spec::HealthCheck(hc_spec(json!({})))),
    ];
    for (name, hc) in [("one", "hc-a"), ("two", "hc-b"), ("three", "hc-a")] {
        rs.push(Resource::new(
            name,
            Spec::EgressRoutePolicy(policy_spec(json!({"candidates": [
                {"name": "x", "healthCheck": hc, "deviceFrom": {"resource": "DSLiteTunnel/t", "field": "device"}},
                {"name": "y", "device": "eth1", "source": "Interface/wan"}
            ]}))),
        ));
    }
    let set = PolicySet::new(&rs);
    assert_eq!(set.len(), 3);
    assert_eq!(set.dependents(&id("HealthCheck", "hc-a")), &[0, 2]);
    assert_eq!(set.dependents(&id("HealthCheck", "hc-b")), &[1]);
    assert_eq!(set.dependents(&id("DSLiteTunnel", "t")), &[0, 1, 2]);
    assert_eq!(set.dependents(&id("Interface", "wan")), &[0, 1, 2]);
    assert!(set.dependents(&id("HealthCheck", "other")).is_empty());
    assert_eq!(
        set.affected([
            id("HealthCheck", "hc-b").as_str(),
            id("HealthCheck", "hc-a").as_str()
        ]),
        vec![0, 1, 2]
    );
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    st.insert(id("Interface", "wan"), obj(json!({"phase": "Up"})));
    let out = set.evaluate_affected(
        [id("HealthCheck", "hc-b").as_str()],
        &st,
        at(0),
        SelectOptions::default(),
    );
    let ids: Vec<&str> = out.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, vec![format!("{NET}/EgressRoutePolicy/two").as_str()]);
    assert_eq!(out[0].1.status["selectedCandidate"], "y");
}

#[test]
fn batch_observation_equals_one_by_one() {
    let rs = vec![
        Resource::new(
            "hc-a",
            Spec::HealthCheck(hc_spec(json!({"interval": "1m"}))),
        ),
        Resource::new(
            "one",
            Spec::EgressRoutePolicy(policy_spec(
                json!({"candidates": [{"name": "x", "device": "a", "healthCheck": "hc-a"}]}),
            )),
        ),
        Resource::new(
            "two",
            Spec::EgressRoutePolicy(policy_spec(
                json!({"candidates": [{"name": "y", "device": "b", "healthCheck": "hc-a", "source": "Interface/wan"}]}),
            )),
        ),
    ];
    let set = PolicySet::new(&rs);
    let mut st: BTreeMap<String, Status> = BTreeMap::new();
    st.insert(
        id("HealthCheck", "hc-a"),
        obj(json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(at(0))})),
    );
    st.insert(id("Interface", "wan"), obj(json!({"phase": "Up"})));
    let batch = set.observe_many(&[0, 1], &st);
    assert_eq!(batch, vec![set.observe(0, &st), set.observe(1, &st)]);
    let h = batch[1][0].health.as_ref().unwrap();
    assert_eq!(h.freshness.to_string(), "3m3s", "interval 1m: 3 x 1m + 3s");
    assert_eq!(batch[1][0].source.as_ref().unwrap().phase, "Up");
}
