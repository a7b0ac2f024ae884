//! EgressRouter validation (issue #15): OpenShift's field rules and the
//! checks routerd adds, each named by file, line, resource id and path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use routerd_model::spec::egress_router::RedirectProtocol;
use routerd_model::{Spec, load_and_validate};

/// The `egress-router-redirect` example of seed 001 (OpenShift's
/// documentation), byte for byte.
const OPENSHIFT_EXAMPLE: &str = r#"
apiVersion: network.operator.openshift.io/v1
kind: EgressRouter
metadata:
  name: egress-router-redirect
spec:
  networkInterface: {
    macvlan: {
      mode: "Bridge"
    }
  }
  addresses: [
    {
      ip: "192.168.12.99/24",
      gateway: "192.168.12.1"
    }
  ]
  mode: Redirect
  redirect: {
    redirectRules: [
      {
        destinationIP: "10.0.0.99",
        port: 80,
        protocol: UDP
      },
      {
        destinationIP: "203.0.113.26",
        port: 8080,
        targetPort: 80,
        protocol: TCP
      },
      {
        destinationIP: "203.0.113.27",
        port: 8443,
        targetPort: 443,
        protocol: TCP
      }
    ]
  }
"#;

const K: &str = "EgressRouter";

#[test]
fn the_openshift_example_loads_unchanged() {
    let (loaded, ds) = load_and_validate(&[("er.yaml", OPENSHIFT_EXAMPLE)]);
    let errors = errors(&ds);
    assert!(errors.is_empty(), "{errors:?}");
    let r = loaded
        .resources
        .iter()
        .find(|r| r.name() == "egress-router-redirect")
        .expect("loaded");
    assert_eq!(r.api_version, "network.operator.openshift.io/v1");
    let Spec::EgressRouter(s) = &r.spec else {
        panic!("not an EgressRouter: {r:?}")
    };
    assert_eq!(s.mode(), "Redirect");
    assert_eq!(s.macvlan_mode(), "Bridge");
    assert_eq!(s.addresses[0].ip, "192.168.12.99/24");
    assert_eq!(s.addresses[0].gateway.as_deref(), Some("192.168.12.1"));
    let rules = s.rules();
    assert_eq!(rules.len(), 3);
    assert_eq!(
        RedirectProtocol::parse(&rules[0].protocol),
        Some(RedirectProtocol::Udp)
    );
    assert_eq!(rules[0].effective_target_port(), 80);
    assert_eq!(rules[1].effective_target_port(), 80);
    assert_eq!(rules[2].port, 8443);
    assert_eq!(s.fallback(), None);
}

#[test]
fn metadata_namespace_is_accepted_and_kept() {
    let text = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata:\n  name: er\n  namespace: egress\nspec:\n  addresses: [{ip: 192.168.12.99/24}]\n  redirect: {fallbackIP: 10.0.0.1}\n";
    let (loaded, ds) = load_and_validate(&[("er.yaml", text)]);
    assert!(errors(&ds).is_empty(), "{ds:?}");
    let r = &loaded.resources.iter().find(|r| r.name() == "er").unwrap();
    assert_eq!(r.metadata.namespace.as_deref(), Some("egress"));
    let yaml = serde_yaml::to_string(&r).unwrap();
    assert!(yaml.contains("namespace: egress"), "{yaml}");
}

#[test]
fn routerd_api_version_with_listen_is_valid() {
    expect_valid(
        K,
        "addresses: [{ip: 192.0.2.10/24, gateway: 192.0.2.1}, {ip: 192.0.2.11/24}]\nlisten: {interfaces: [eth1], addresses: [10.1.0.1]}\nredirect:\n  redirectRules:\n    - {destinationIP: 198.51.100.7, port: 80, protocol: tcp}\n    - {destinationIP: 198.51.100.7, port: 80, protocol: Udp}\n    - {destinationIP: 198.51.100.8, port: 9, protocol: SCTP, targetPort: 99}\n  fallbackIP: 198.51.100.9\n",
    );
    expect_valid(
        K,
        "addresses: [{ip: \"2001:db8::10/64\", gateway: \"2001:db8::1\"}]\nredirect: {redirectRules: [{destinationIP: \"2001:db8:1::7\", port: 443, protocol: TCP}]}\n",
    );
}

#[test]
fn duplicate_port_protocol_names_both_positions() {
    expect_error(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nredirect:\n  redirectRules:\n    - {destinationIP: 198.51.100.7, port: 80, protocol: TCP}\n    - {destinationIP: 198.51.100.8, port: 81, protocol: TCP}\n    - {destinationIP: 198.51.100.9, port: 80, protocol: tcp}\n",
        "spec.redirect.redirectRules[2].port",
        "spec.redirect.redirectRules[2].port 80/TCP is also redirected by spec.redirect.redirectRules[0]: each (port, protocol) pair may appear once (positions 0 and 2)",
    );
}

#[test]
fn ports_must_be_in_range_and_protocols_known() {
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nredirect:\n  redirectRules:\n    - {destinationIP: 198.51.100.7, port: 0, protocol: TCP}\n    - {destinationIP: 198.51.100.7, port: 65536, protocol: UDP, targetPort: 70000}\n    - {destinationIP: 198.51.100.7, port: 53, protocol: ICMP}\n",
        &[
            (
                "spec.redirect.redirectRules[0].port",
                "spec.redirect.redirectRules[0].port must be within 1-65535, not 0",
            ),
            (
                "spec.redirect.redirectRules[1].port",
                "spec.redirect.redirectRules[1].port must be within 1-65535, not 65536",
            ),
            (
                "spec.redirect.redirectRules[1].targetPort",
                "spec.redirect.redirectRules[1].targetPort must be within 1-65535, not 70000",
            ),
            (
                "spec.redirect.redirectRules[2].protocol",
                "spec.redirect.redirectRules[2].protocol must be TCP, UDP or SCTP, not \"ICMP\"",
            ),
        ],
    );
}

#[test]
fn address_families_must_agree() {
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10/24, gateway: \"2001:db8::1\"}, {ip: \"2001:db8::5/64\"}]\nredirect:\n  redirectRules: [{destinationIP: \"2001:db8:1::7\", port: 80, protocol: TCP}]\n  fallbackIP: \"2001:db8:1::8\"\n",
        &[
            (
                "spec.addresses[0].gateway",
                "spec.addresses[0].gateway 2001:db8::1 is IPv6 but the address 192.0.2.10 is IPv4",
            ),
            (
                "spec.addresses[1].ip",
                "spec.addresses[1].ip 2001:db8::5 is IPv6 but spec.addresses[0].ip is IPv4: an EgressRouter carries one address family",
            ),
            (
                "spec.redirect.redirectRules[0].destinationIP",
                "spec.redirect.redirectRules[0].destinationIP 2001:db8:1::7 is IPv6 but spec.addresses[0].ip is IPv4: an EgressRouter carries one address family",
            ),
            (
                "spec.redirect.fallbackIP",
                "spec.redirect.fallbackIP 2001:db8:1::8 is IPv6 but spec.addresses[0].ip is IPv4: an EgressRouter carries one address family",
            ),
        ],
    );
}

#[test]
fn addresses_are_required_in_cidr_form_and_distinct() {
    expect_errors(
        K,
        "redirect: {fallbackIP: 198.51.100.9}\n",
        &[(
            "spec.addresses",
            "spec.addresses is required: list at least one reserved address (ip in CIDR form)",
        )],
    );
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10}, {ip: 192.0.2.11/24}, {ip: 192.0.2.11/25}]\nredirect: {fallbackIP: 198.51.100.9}\n",
        &[
            (
                "spec.addresses[0].ip",
                "spec.addresses[0].ip must be an IP address in CIDR form (like 192.168.12.99/24), not \"192.0.2.10\"",
            ),
            (
                "spec.addresses[2].ip",
                "spec.addresses[2].ip 192.0.2.11 is also spec.addresses[1].ip: each reserved address is listed once",
            ),
        ],
    );
}

#[test]
fn other_modes_are_refused_with_a_clear_message() {
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nmode: HTTPProxy\nnetworkInterface: {macvlan: {mode: Trunk}}\nredirect: {fallbackIP: 198.51.100.9}\n",
        &[
            (
                "spec.mode",
                "spec.mode \"HTTPProxy\" is not supported: Redirect is the default and only mode (OpenShift's HTTP and DNS proxy modes are not implemented)",
            ),
            (
                "spec.networkInterface.macvlan.mode",
                "spec.networkInterface.macvlan.mode must be one of Bridge, Private, VEPA or Passthru, not \"Trunk\"",
            ),
        ],
    );
    for m in ["Bridge", "Private", "VEPA", "Passthru"] {
        expect_valid(
            K,
            &format!(
                "addresses: [{{ip: 192.0.2.10/24}}]\nnetworkInterface: {{macvlan: {{mode: {m}, master: eth0}}}}\nredirect: {{fallbackIP: 198.51.100.9}}\n"
            ),
        );
    }
}

#[test]
fn neither_rules_nor_fallback_warns_that_everything_is_refused() {
    expect_warnings(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\n",
        &[(
            "spec.redirect",
            "has no redirect rules and no fallbackIP: every connection to it is refused",
        )],
    );
}

#[test]
fn listen_belongs_to_routerd_api_and_the_annotation_to_openshift_shape() {
    let bad = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  listen: {interfaces: [eth1]}\n  redirect: {fallbackIP: 198.51.100.9}\n";
    let (_, ds) = load_and_validate(&[("er.yaml", bad)]);
    let e = errors(&ds);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path.as_deref(), Some("spec.listen"));
    assert!(e[0].message.contains("routerd.net/listen"), "{}", e[0]);
    assert_eq!(e[0].file.as_deref(), Some("er.yaml"));
    assert!(e[0].line.is_some());

    let good = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata:\n  name: er\n  annotations: {routerd.net/listen: \"eth1, 10.1.0.1\"}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  redirect: {fallbackIP: 198.51.100.9}\n";
    let (loaded, ds) = load_and_validate(&[("er.yaml", good)]);
    assert!(errors(&ds).is_empty(), "{ds:?}");
    let r = loaded.resources.iter().find(|r| r.name() == "er").unwrap();
    let Spec::EgressRouter(s) = &r.spec else {
        panic!()
    };
    let l = s.effective_listen(&r.metadata.annotations);
    assert_eq!(l.interfaces, vec!["eth1".to_string()]);
    assert_eq!(l.addresses, vec!["10.1.0.1".to_string()]);
}

#[test]
fn other_api_versions_are_refused() {
    let text = "apiVersion: hybrid.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n";
    let (_, ds) = load_and_validate(&[("er.yaml", text)]);
    let e = errors(&ds);
    assert!(
        e.iter().any(|d| d.path.as_deref() == Some("apiVersion")
            && d.message
                .contains("must use apiVersion net.routerd.net/v1alpha1")),
        "{e:?}"
    );
}

#[test]
fn health_checks_and_several_destinations_are_valid_in_routerd_api() {
    expect_valid(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nredirect:\n  redirectRules:\n    - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP, healthChecks: [hc]}\n    - {destinationIP: 198.51.100.9, port: 53, protocol: UDP, healthCheck: hc}\n  fallbackIP: 198.51.100.10\n  fallbackHealthCheck: hc\n",
    );
}

#[test]
fn several_destinations_are_exclusive_with_one_distinct_and_of_one_family() {
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nredirect:\n  redirectRules:\n    - {destinationIP: 198.51.100.6, destinationIPs: [198.51.100.7], port: 80, protocol: TCP}\n    - {destinationIPs: [198.51.100.7, \"2001:db8::7\", 198.51.100.7, nope], port: 81, protocol: TCP}\n    - {port: 82, protocol: TCP}\n",
        &[
            (
                "spec.redirect.redirectRules[0].destinationIPs",
                "spec.redirect.redirectRules[0].destinationIPs is exclusive with destinationIP: list every destination in destinationIPs",
            ),
            (
                "spec.redirect.redirectRules[1].destinationIPs[1]",
                "spec.redirect.redirectRules[1].destinationIPs[1] 2001:db8::7 is IPv6 but spec.addresses[0].ip is IPv4: an EgressRouter carries one address family",
            ),
            (
                "spec.redirect.redirectRules[1].destinationIPs[2]",
                "spec.redirect.redirectRules[1].destinationIPs[2] 198.51.100.7 is also spec.redirect.redirectRules[1].destinationIPs[0]: each destination is listed once",
            ),
            (
                "spec.redirect.redirectRules[1].destinationIPs[3]",
                "spec.redirect.redirectRules[1].destinationIPs[3] must be an IP address, not \"nope\"",
            ),
            (
                "spec.redirect.redirectRules[2].destinationIP",
                "spec.redirect.redirectRules[2].destinationIP is required: set destinationIP, or destinationIPs for several destinations",
            ),
        ],
    );
}

#[test]
fn health_checks_must_exist_and_the_fallback_check_needs_a_fallback() {
    expect_errors(
        K,
        "addresses: [{ip: 192.0.2.10/24}]\nredirect:\n  redirectRules:\n    - {destinationIP: 198.51.100.7, port: 80, protocol: TCP, healthCheck: nope}\n    - {destinationIPs: [198.51.100.7], port: 81, protocol: TCP, healthChecks: [hc, gone]}\n  fallbackHealthCheck: hc\n",
        &[
            (
                "spec.redirect.redirectRules[0].healthCheck",
                "spec.redirect.redirectRules[0].healthCheck references missing HealthCheck \"nope\"",
            ),
            (
                "spec.redirect.redirectRules[1].healthChecks[1]",
                "spec.redirect.redirectRules[1].healthChecks[1] references missing HealthCheck \"gone\"",
            ),
            (
                "spec.redirect.fallbackHealthCheck",
                "spec.redirect.fallbackHealthCheck needs spec.redirect.fallbackIP: there is no fallback to guard",
            ),
        ],
    );
}

#[test]
fn routerd_additions_are_refused_in_the_openshift_shape() {
    let text = "apiVersion: network.operator.openshift.io/v1\nkind: EgressRouter\nmetadata: {name: t}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  redirect:\n    redirectRules:\n      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP}\n      - {destinationIP: 198.51.100.7, port: 81, protocol: TCP, healthCheck: hc}\n      - {destinationIP: 198.51.100.7, port: 82, protocol: TCP, healthChecks: [hc]}\n    fallbackIP: 198.51.100.9\n    fallbackHealthCheck: hc\n";
    let ds = with_base(text);
    let mut e: Vec<(String, String)> = errors(&ds)
        .into_iter()
        .map(|d| {
            assert_eq!(d.file.as_deref(), Some("t.yaml"));
            assert!(d.line.is_some(), "{d}");
            assert!(
                d.message
                    .contains("use apiVersion net.routerd.net/v1alpha1"),
                "{d}"
            );
            (d.path.unwrap_or_default(), d.resource.unwrap_or_default())
        })
        .collect();
    e.sort();
    let rid = "network.operator.openshift.io/v1/EgressRouter/t";
    let want: Vec<(String, String)> = [
        "spec.redirect.fallbackHealthCheck",
        "spec.redirect.redirectRules[0].destinationIPs",
        "spec.redirect.redirectRules[1].healthCheck",
        "spec.redirect.redirectRules[2].healthChecks",
    ]
    .iter()
    .map(|p| (p.to_string(), rid.to_string()))
    .collect();
    assert_eq!(e, want);
}

#[test]
fn destinations_and_checks_read_as_written() {
    let (loaded, ds) = load_and_validate(&[(
        "er.yaml",
        "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {name: a}\nspec: {target: 198.51.100.7}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  redirect:\n    redirectRules:\n      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP, healthCheck: a, healthChecks: [a]}\n",
    )]);
    assert!(errors(&ds).is_empty(), "{ds:?}");
    let r = loaded.resources.iter().find(|r| r.name() == "er").unwrap();
    let s = r.as_egress_router().unwrap();
    let rule = &s.rules()[0];
    assert_eq!(rule.destinations(), vec!["198.51.100.7", "198.51.100.8"]);
    assert_eq!(rule.health_check_names(), vec!["a"]);
}
