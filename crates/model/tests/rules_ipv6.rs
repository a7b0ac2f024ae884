//! One test per validation rule of the IPv6 kinds (routerd
//! `pkg/config/validate.go` and `validate_wan.go`).

mod common;

use common::*;

#[test]
fn ipv6_static_route_minimal_is_valid() {
    expect_valid(
        "IPv6StaticRoute",
        "{interface: wan, destination: \"2001:db8:1::/64\", via: \"fe80::1\"}",
    );
    expect_valid(
        "IPv6StaticRoute",
        "{interface: wan, destination: \"::/0\", via: \"2001:db8::1\", metric: 200}",
    );
}

#[test]
fn ipv6_static_route_requires_an_existing_interface() {
    expect_error(
        "IPv6StaticRoute",
        "{destination: \"2001:db8:1::/64\", via: \"fe80::1\"}",
        "spec.interface",
        "spec.interface is required",
    );
    expect_error(
        "IPv6StaticRoute",
        "{interface: nope, destination: \"2001:db8:1::/64\", via: \"fe80::1\"}",
        "spec.interface",
        "references missing Interface \"nope\"",
    );
}

#[test]
fn ipv6_static_route_destination_must_be_an_ipv6_cidr() {
    for d in ["10.0.0.0/8", "2001:db8::1", "default", ""] {
        expect_error(
            "IPv6StaticRoute",
            &format!("{{interface: wan, destination: \"{d}\", via: \"fe80::1\"}}"),
            "spec.destination",
            "spec.destination must be an IPv6 CIDR",
        );
    }
}

#[test]
fn ipv6_static_route_via_must_be_an_ipv6_address() {
    for v in ["192.0.2.1", "", "fe80::1/64"] {
        expect_error(
            "IPv6StaticRoute",
            &format!("{{interface: wan, destination: \"2001:db8::/32\", via: \"{v}\"}}"),
            "spec.via",
            "spec.via must be an IPv6 address",
        );
    }
}

#[test]
fn ipv6_static_route_metric_is_non_negative() {
    expect_error(
        "IPv6StaticRoute",
        "{interface: wan, destination: \"2001:db8::/32\", via: \"fe80::1\", metric: -1}",
        "spec.metric",
        "spec.metric must be non-negative",
    );
}
