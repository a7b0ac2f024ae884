//! EgressRouter carrying (issue #15 phase 2a): the macvlan, the reserved
//! addresses, the router's table and rule, and the master inferred from
//! the Interfaces' observed subnets when the OpenShift YAML names none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::ir::{LinkKind, MacvlanMode};
use routerd_render::render;
use routerd_render::render::egress_router::{MASTER_NOT_FOUND, RULE_PRIORITY, mark_and_table};

/// Seed 001's `egress-router-redirect` example, unchanged.
const SEED: &str = include_str!("data/seed001-egress-router-redirect.yaml");
const OWNER: &str = "network.operator.openshift.io/v1/EgressRouter/egress-router-redirect";
const WAN: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: ens19}
";

fn rendered(state: &str) -> routerd_render::Rendered {
    let (l, ds) = load_and_validate(&[("seed.yaml", SEED), ("wan.yaml", WAN)]);
    assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
    let state: StateSnapshot = serde_yaml::from_str(state).unwrap();
    render(&l.resources, &state)
}

#[test]
fn the_seed_yaml_gets_its_master_from_the_interface_whose_subnet_holds_the_address() {
    let r = rendered(
        "net.routerd.net/v1alpha1/Interface/wan: {phase: Up, ifname: ens19, addresses: [192.168.12.5/24]}",
    );
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let d = &r.desired;
    assert_eq!(d.links.len(), 1);
    let link = &d.links[0];
    assert_eq!(link.name, "rde-egress-1a3f");
    assert!(link.name.len() <= 15);
    assert_eq!(
        link.kind,
        LinkKind::Macvlan {
            master: "ens19".into(),
            mode: MacvlanMode::Bridge
        }
    );
    assert!(link.announce && link.up);
    assert_eq!(d.addresses.len(), 1);
    assert!(d.addresses[0].no_prefix_route, "main stays untouched");
    assert_eq!(d.addresses[0].device, link.name);
    let id = mark_and_table("egress-router-redirect");
    assert!(d.routes.iter().all(|r| r.table == id && r.owner == OWNER));
    assert!(
        d.routes.iter().any(|r| r.destination.prefix_len() == 0
            && r.gateway == Some("192.168.12.1".parse().unwrap()))
    );
    assert_eq!(d.rules.len(), 1);
    assert_eq!(
        (d.rules[0].priority, d.rules[0].fwmark, d.rules[0].table),
        (RULE_PRIORITY, id, id)
    );
    // The listen default excludes the inferred master, as a declared one.
    let text = routerd_render::nft_text::table_text(&d.nft[0]);
    assert!(
        text.contains("iifname != \"ens19\" fib daddr type local"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ct status dnat ip daddr @destinations meta mark set 0x{id:x}"
        )),
        "{text}"
    );
    let set = text.lines().find(|l| l.contains("set destinations"));
    assert!(set.is_some_and(|l| l.contains("203.0.113.26")), "{text}");
    assert_eq!(
        r.notes
            .iter()
            .map(|n| n.message.as_str())
            .collect::<Vec<_>>(),
        [
            "master ens19 inferred: Interface/wan carries 192.168.12.5/24, whose subnet 192.168.12.0/24 holds the reserved address 192.168.12.99"
        ]
    );
}

#[test]
fn without_a_master_to_infer_the_router_is_kept_as_it_is_and_says_why() {
    let r = rendered(
        "net.routerd.net/v1alpha1/Interface/wan: {phase: Down, reason: InterfaceNotFound, ifname: ens19}",
    );
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].reason, MASTER_NOT_FOUND);
    assert!(
        r.problems[0]
            .message
            .contains("no Interface's observed subnet holds 192.168.12.99"),
        "{}",
        r.problems[0].message
    );
    // Fail-static: what the kernel carries for it stays, nothing new goes in.
    assert!(r.desired.retained.contains(OWNER));
    assert!(r.desired.links.is_empty() && r.desired.addresses.is_empty());
    assert_eq!(r.desired.nft.len(), 1, "the redirect table still renders");
}

#[test]
fn two_routers_get_distinct_devices_marks_and_tables() {
    let two = "apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: a}
spec:
  networkInterface: {macvlan: {master: eth0, mode: Private}}
  addresses: [{ip: 192.0.2.10/24, gateway: 192.0.2.1}, {ip: 198.51.100.10/24, gateway: 198.51.100.1}]
  redirect: {fallbackIP: 203.0.113.9}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: b}
spec:
  networkInterface: {macvlan: {master: eth0}}
  addresses: [{ip: 192.0.2.11/24, gateway: 192.0.2.1}]
  redirect: {fallbackIP: 203.0.113.9}
";
    let (l, ds) = load_and_validate(&[("two.yaml", two)]);
    assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
    let r = render(&l.resources, &StateSnapshot::new());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let d = &r.desired;
    let names: Vec<&str> = d.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["rde-a", "rde-b"]);
    assert!(matches!(
        d.links[0].kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Private,
            ..
        }
    ));
    // Every address, not only the first, and each subnet routed.
    assert_eq!(
        d.addresses.iter().filter(|a| a.device == "rde-a").count(),
        2
    );
    assert_eq!(
        d.routes
            .iter()
            .filter(|r| r.device.as_deref() == Some("rde-a"))
            .count(),
        3
    );
    assert_ne!(mark_and_table("a"), mark_and_table("b"));
    // One default route per router: a second gateway is named, not dropped
    // silently.
    assert_eq!(
        r.notes
            .iter()
            .map(|n| n.message.as_str())
            .collect::<Vec<_>>(),
        [
            "spec.addresses[1].gateway 198.51.100.1 is not used: the router's table has one default route, via 192.0.2.1 (the first gateway)"
        ]
    );
    assert_eq!(d.rules.len(), 2);
}
