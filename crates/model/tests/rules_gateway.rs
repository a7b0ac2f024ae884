//! Egress gateway validation (issue #18): Deckhouse's EgressGateway and
//! EgressGatewayPolicy load unchanged, routerd's apiVersion adds its
//! fields, and every problem is named by file, line, resource id and path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::errors;
use routerd_model::spec::gateway::{
    SourceMode, derived_vrrp_id, labels_match, members, selected_groups, vrrp_id,
};
use routerd_model::{Diagnostic, Severity, Spec, load_and_validate};

/// Three members carrying Deckhouse's egress label, their interface
/// subnets declared; two client groups; an uplink health check.
const GROUP: &str = r#"
apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata:
  name: gw-a
  labels: {node-role.deckhouse.io/egress: ""}
spec:
  addresses: [10.0.0.11]
  interfaces:
    - {name: eth0, addresses: [10.0.0.11/24]}
    - {name: eth1, addresses: [172.18.18.11/24]}
---
apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata:
  name: gw-b
  labels: {node-role.deckhouse.io/egress: ""}
spec:
  addresses: [10.0.0.12]
  interfaces:
    - {name: eth0, addresses: [10.0.0.12/24]}
    - {name: eth1, addresses: [172.18.18.12/24]}
---
apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata:
  name: gw-c
  labels: {node-role.deckhouse.io/egress: "", zone: b}
spec:
  addresses: [10.0.0.13]
---
apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata: {name: client}
spec: {addresses: [10.0.0.20]}
---
apiVersion: net.routerd.net/v1alpha1
kind: ClientGroup
metadata:
  name: backend
  labels: {app: backend, io.kubernetes.pod.namespace: default}
spec:
  sourceCIDRs: [10.1.0.0/24]
---
apiVersion: net.routerd.net/v1alpha1
kind: ClientGroup
metadata:
  name: frontend
  labels: {app: frontend}
spec:
  interfaces: [veth-fe]
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: uplink}
spec: {target: 172.18.18.1}
"#;

/// The seed's PrimaryIPFromEgressGatewayNodeInterface example, verbatim
/// apart from the comments.
const SEED_PRIMARY: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: EgressGateway
metadata:
  name: egress-gw
spec:
  nodeSelector:
    node-role.deckhouse.io/egress: ""
  sourceIP:
    # The primary IP address bound to the public network interface of the node will be used as the IP address
    mode: PrimaryIPFromEgressGatewayNodeInterface
    primaryIPFromEgressGatewayNodeInterface:
      # Since the "public" interface must have the same name on all nodes in the group (for example, eth1),
      # make sure to configure the network subsystem first on all Egress nodes
      interfaceName: eth1
"#;

/// The seed's VirtualIPAddress example, verbatim.
const SEED_VIP: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: EgressGateway
metadata:
  name: egress-gw
spec:
  nodeSelector:
    node-role.deckhouse.io/egress: ""
  sourceIP:
    # The primary IP address bound to the public network interface of the node will be used as the IP address
    mode: VirtualIPAddress
    virtualIPAddress:
      # All routes required to access external public services must be configured on every node
      # The "public" interface must be prepared to automatically configure the "virtual" IP address as a secondary IP address
      ip: 172.18.18.242
"#;

/// The seed's EgressGatewayPolicy, verbatim.
const SEED_POLICY: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: EgressGatewayPolicy
metadata:
  name: egress-gw-policy
spec:
  destinationCIDRs:
    - 0.0.0.0/0
  egressGatewayName: egress-gw
  selectors:
    - podSelector:
        matchLabels:
          # This policy will be applied to all virtual machines with the app=backend label in the default namespace
          app: backend
          io.kubernetes.pod.namespace: default
"#;

fn load(files: &[(&str, &str)]) -> (routerd_model::Loaded, Vec<Diagnostic>) {
    let mut all = vec![("group.yaml", GROUP)];
    all.extend_from_slice(files);
    load_and_validate(&all)
}

/// Exactly one error, at `path` in `t.yaml` with a line, whose message
/// contains `needle` and starts with the resource id.
fn one_error(ds: &[Diagnostic], id: &str, path: &str, needle: &str) {
    let e = errors(ds);
    assert_eq!(e.len(), 1, "{e:#?}");
    let d = &e[0];
    assert_eq!(d.path.as_deref(), Some(path), "{d}");
    assert_eq!(d.resource.as_deref(), Some(id), "{d}");
    assert!(d.message.starts_with(id), "{d}");
    assert!(d.message.contains(needle), "{d}");
    assert_eq!(d.file.as_deref(), Some("t.yaml"), "{d}");
    assert!(d.line.is_some(), "no line: {d}");
}

const OURS: &str = "net.routerd.net/v1alpha1";
const DH: &str = "network.deckhouse.io/v1alpha1";

#[test]
fn the_seed_examples_load_unchanged() {
    for gw in [SEED_PRIMARY, SEED_VIP] {
        let (loaded, ds) = load(&[("gw.yaml", gw), ("pol.yaml", SEED_POLICY)]);
        assert!(errors(&ds).is_empty(), "{ds:#?}");
        let g = loaded
            .resources
            .iter()
            .find(|r| r.name() == "egress-gw")
            .expect("gateway");
        assert_eq!(g.api_version, DH);
        let Spec::EgressGateway(s) = &g.spec else {
            panic!("{g:?}")
        };
        let names: Vec<&str> = members(s, &loaded.resources)
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, ["gw-a", "gw-b", "gw-c"]);
        let pol = loaded
            .resources
            .iter()
            .find(|r| r.name() == "egress-gw-policy")
            .expect("policy");
        let Spec::EgressGatewayPolicy(p) = &pol.spec else {
            panic!("{pol:?}")
        };
        assert_eq!(p.destination_cidrs, ["0.0.0.0/0"]);
        assert_eq!(p.egress_gateway_name, "egress-gw");
        let groups: Vec<&str> = selected_groups(p, &loaded.resources)
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(groups, ["backend"]);
    }
    let (loaded, _) = load(&[("gw.yaml", SEED_VIP)]);
    let s = loaded
        .resources
        .iter()
        .find_map(|r| r.as_egress_gateway())
        .expect("gw");
    assert_eq!(s.mode(), Some(SourceMode::VirtualIp));
    assert_eq!(s.virtual_ip(), Some("172.18.18.242"));
    assert!(s.connection_sync());
    assert!(!s.preempt(), "nopreempt by default: no immediate failback");
    let (loaded, _) = load(&[("gw.yaml", SEED_PRIMARY)]);
    let s = loaded
        .resources
        .iter()
        .find_map(|r| r.as_egress_gateway())
        .expect("gw");
    assert_eq!(s.mode(), Some(SourceMode::PrimaryIp));
    assert_eq!(s.primary_interface(), Some("eth1"));
    assert!(
        !s.connection_sync(),
        "the source IP changes: nothing to keep"
    );
}

#[test]
fn deckhouse_optional_vip_fields_are_accepted() {
    let gw = format!(
        "{}\n      routingTableName: egress\n      interfaces: [eth1]\n",
        SEED_VIP.trim_end()
    );
    let (loaded, ds) = load(&[("t.yaml", &gw)]);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    let s = loaded
        .resources
        .iter()
        .find_map(|r| r.as_egress_gateway())
        .expect("gw");
    let v = s
        .source_ip
        .as_ref()
        .and_then(|s| s.virtual_ip.as_ref())
        .expect("vip");
    assert_eq!(v.routing_table_name.as_deref(), Some("egress"));
    assert_eq!(v.interfaces, ["eth1"]);
}

#[test]
fn routerd_api_version_takes_vrrp_internal_health_and_sources() {
    let gw = r#"
apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {name: t}
spec:
  nodeSelector: {node-role.deckhouse.io/egress: ""}
  sourceIP:
    mode: VirtualIPAddress
    virtualIPAddress: {ip: 172.18.18.242/24}
  internal: {ip: 10.0.0.254/24, interface: eth0}
  vrrp: {id: 42, advertInterval: 100ms, preempt: true, preemptDelay: 5s}
  healthChecks: [uplink]
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressGatewayPolicy
metadata: {name: p}
spec:
  destinationCIDRs: [0.0.0.0/0]
  excludedCIDRs: [10.0.0.0/8]
  egressGatewayName: t
  sourceCIDRs: [10.2.0.0/16]
  ingressInterfaces: [eth2]
"#;
    let (loaded, ds) = load(&[("t.yaml", gw)]);
    assert!(ds.is_empty(), "{ds:#?}");
    let r = loaded
        .resources
        .iter()
        .find(|r| r.name() == "t")
        .expect("t");
    let s = r.as_egress_gateway().expect("gw");
    assert_eq!(vrrp_id(r, s), (42, true));
    assert!(s.preempt());
    let i = s
        .effective_internal(&r.metadata.annotations)
        .expect("internal");
    assert_eq!(i.ip, "10.0.0.254/24");
}

#[test]
fn selector_matching_no_node_is_an_error_with_position() {
    let gw = SEED_PRIMARY.replace("node-role.deckhouse.io/egress: \"\"", "role: egress");
    let (_, ds) = load(&[("t.yaml", &gw)]);
    one_error(
        &ds,
        &format!("{DH}/EgressGateway/egress-gw"),
        "spec.nodeSelector",
        "{role=egress} matches no Node",
    );
}

#[test]
fn vip_outside_every_members_subnet_is_an_error() {
    let gw = SEED_VIP.replace("172.18.18.242", "192.0.2.10");
    let (_, ds) = load(&[("t.yaml", &gw)]);
    one_error(
        &ds,
        &format!("{DH}/EgressGateway/egress-gw"),
        "spec.sourceIP.virtualIPAddress.ip",
        "192.0.2.10 is outside every member's interface subnet (gw-a, gw-b)",
    );
}

#[test]
fn vip_outside_one_members_subnet_warns() {
    // gw-b has no eth1 address in 172.18.19.0/24 but gw-a does.
    let group2 = GROUP.replacen("172.18.18.11/24", "172.18.19.11/24", 1);
    let gw = SEED_VIP.replace("172.18.18.242", "172.18.19.242");
    let (_, ds) = load_and_validate(&[("group.yaml", &group2), ("t.yaml", &gw)]);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    let w: Vec<&Diagnostic> = ds
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].message
            .contains("outside the interface subnets of gw-b"),
        "{}",
        w[0]
    );
}

#[test]
fn duplicate_vrrp_ids_name_the_first_gateway() {
    let two = r#"
apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {name: one}
spec:
  nodeSelector: {zone: b}
  sourceIP: {mode: VirtualIPAddress, virtualIPAddress: {ip: 172.18.18.240}}
  vrrp: {id: 7}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {name: two}
spec:
  nodeSelector: {zone: b}
  sourceIP: {mode: VirtualIPAddress, virtualIPAddress: {ip: 172.18.18.241}}
  vrrp: {id: 7}
"#;
    let (_, ds) = load(&[("t.yaml", two)]);
    one_error(
        &ds,
        &format!("{OURS}/EgressGateway/two"),
        "spec.vrrp.id",
        &format!("spec.vrrp.id 7 is also used by {OURS}/EgressGateway/one"),
    );
}

#[test]
fn derived_vrrp_ids_are_stable_and_in_range() {
    assert_eq!(derived_vrrp_id("egress-gw"), derived_vrrp_id("egress-gw"));
    for n in ["a", "b", "egress-gw", "x".repeat(300).as_str()] {
        let id = derived_vrrp_id(n);
        assert!(id >= 1, "{n}: {id}");
    }
}

#[test]
fn policy_naming_a_missing_gateway_is_an_error() {
    let pol = SEED_POLICY.replace("egressGatewayName: egress-gw", "egressGatewayName: nope");
    let (_, ds) = load(&[("gw.yaml", SEED_VIP), ("t.yaml", &pol)]);
    one_error(
        &ds,
        &format!("{DH}/EgressGatewayPolicy/egress-gw-policy"),
        "spec.egressGatewayName",
        "references missing EgressGateway \"nope\"",
    );
}

#[test]
fn routerd_fields_are_refused_in_the_deckhouse_shape() {
    let pol = format!(
        "{}  sourceCIDRs: [10.9.0.0/16]\n",
        SEED_POLICY.trim_end().to_string() + "\n"
    );
    let (_, ds) = load(&[("gw.yaml", SEED_VIP), ("t.yaml", &pol)]);
    one_error(
        &ds,
        &format!("{DH}/EgressGatewayPolicy/egress-gw-policy"),
        "spec.sourceCIDRs",
        "is routerd's field",
    );
    let gw = format!("{}\n  vrrp: {{id: 3}}\n", SEED_VIP.trim_end());
    let (_, ds) = load(&[("t.yaml", &gw)]);
    one_error(
        &ds,
        &format!("{DH}/EgressGateway/egress-gw"),
        "spec.vrrp",
        "use apiVersion net.routerd.net/v1alpha1",
    );
}

#[test]
fn field_rules_report_each_problem() {
    let gw = r#"
apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {name: t}
spec:
  nodeSelector: {zone: b}
  sourceIP: {mode: Primary}
  vrrp: {id: 300, advertInterval: 105ms}
  healthChecks: [missing]
"#;
    let (_, ds) = load(&[("t.yaml", gw)]);
    let mut paths: Vec<String> = errors(&ds)
        .iter()
        .map(|d| d.path.clone().unwrap_or_default())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "spec.healthChecks[0]",
            "spec.sourceIP.mode",
            "spec.vrrp.advertInterval",
            "spec.vrrp.id",
        ],
        "{ds:#?}"
    );
}

#[test]
fn a_selector_matching_no_client_group_warns_and_an_empty_policy_errs() {
    let pol = SEED_POLICY.replace("app: backend", "app: nothing");
    let (_, ds) = load(&[("gw.yaml", SEED_VIP), ("t.yaml", &pol)]);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    assert!(ds.iter().any(|d| d.severity == Severity::Warning
        && d.path.as_deref() == Some("spec.selectors[0].podSelector.matchLabels")));
    let empty = r#"
apiVersion: net.routerd.net/v1alpha1
kind: EgressGatewayPolicy
metadata: {name: t}
spec: {destinationCIDRs: [0.0.0.0/0], egressGatewayName: egress-gw}
"#;
    let (_, ds) = load(&[("gw.yaml", SEED_VIP), ("t.yaml", empty)]);
    one_error(
        &ds,
        &format!("{OURS}/EgressGatewayPolicy/t"),
        "spec.selectors",
        "selects no clients",
    );
}

#[test]
fn node_and_client_group_rules() {
    let bad = r#"
apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata: {name: t}
spec:
  addresses: [not-an-ip]
  interfaces: [{name: eth0, addresses: [10.0.0.1]}]
"#;
    let (_, ds) = load(&[("t.yaml", bad)]);
    let mut paths: Vec<String> = errors(&ds)
        .iter()
        .map(|d| d.path.clone().unwrap_or_default())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["spec.addresses[0]", "spec.interfaces[0].addresses[0]"],
        "{ds:#?}"
    );
    let cg = r#"
apiVersion: net.routerd.net/v1alpha1
kind: ClientGroup
metadata: {name: t}
spec: {}
"#;
    let (_, ds) = load(&[("t.yaml", cg)]);
    one_error(
        &ds,
        &format!("{OURS}/ClientGroup/t"),
        "spec",
        "selects no traffic",
    );
}

#[test]
fn empty_node_selector_matches_every_node_like_kubernetes() {
    let sel = Default::default();
    let mut labels = std::collections::BTreeMap::new();
    assert!(labels_match(&sel, &labels));
    labels.insert("a".to_string(), "1".to_string());
    let mut want = std::collections::BTreeMap::new();
    want.insert("a".to_string(), String::new());
    assert!(!labels_match(&want, &labels), "an empty value is a value");
}
