//! One test per validation rule of EgressRoutePolicy, its candidates and
//! targets (routerd-spec §1.5), asserting message, resource id and path.

mod common;

use common::*;

const K: &str = "EgressRoutePolicy";

/// A policy whose first candidate is `cand` (YAML mapping body, one line
/// per field, at column 0) after `top` policy-level fields.
fn policy(top: &str, cand: &str) -> String {
    let mut s = String::from(top);
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("candidates:\n");
    for (i, line) in cand.lines().enumerate() {
        s.push_str(if i == 0 { "  - " } else { "    " });
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn minimal_policies_are_valid() {
    expect_valid(K, &policy("", "name: a\ninterface: wan"));
    expect_valid(K, &policy("", "source: DSLiteTunnel/dsl"));
    expect_valid(K, &policy("", "interface: ppp"));
    expect_valid(
        K,
        &policy(
            "family: ipv6\nsourceCIDRs: [\"2001:db8::/32\"]\ndestinationCIDRs: [\"::/0\"]\nexcludeDestinationCIDRs: [\"fd00::/8\"]\nselection: weighted-ecmp\nhysteresis: 10s\npreemptDelay: 0s",
            "name: v6\ninterface: wan\ngatewaySource: dhcpv6",
        ),
    );
    expect_valid(
        K,
        &policy(
            "mode: priority",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100\ngatewaySource: static\ngateway: 192.0.2.1",
        ),
    );
}

// ---- policy level ----

#[test]
fn family_enum() {
    expect_error(
        K,
        &policy("family: inet", "name: a"),
        "spec.family",
        "spec.family must be ipv4 or ipv6",
    );
}

#[test]
fn mode_enum() {
    expect_error(
        K,
        &policy("mode: ecmp", "name: a"),
        "spec.mode",
        "spec.mode must be priority, mark, or hash",
    );
}

#[test]
fn source_cidrs_must_match_family() {
    expect_error(
        K,
        &policy(
            "sourceCIDRs: [192.168.0.0/16, \"2001:db8::/32\"]",
            "name: a",
        ),
        "spec.sourceCIDRs[1]",
        "spec.sourceCIDRs entries must match family prefixes",
    );
}

#[test]
fn destination_cidrs_must_be_valid_prefixes() {
    expect_error(
        K,
        &policy("destinationCIDRs: [10.0.0.0/99]", "name: a"),
        "spec.destinationCIDRs[0]",
        "spec.destinationCIDRs entries must be valid prefixes",
    );
}

#[test]
fn destination_cidrs_must_match_family() {
    expect_error(
        K,
        &policy("destinationCIDRs: [\"::/0\"]", "name: a"),
        "spec.destinationCIDRs[0]",
        "spec.destinationCIDRs entries must be IPv4 prefixes when family is ipv4",
    );
    expect_error(
        K,
        &policy("family: ipv6\ndestinationCIDRs: [0.0.0.0/0]", "name: a"),
        "spec.destinationCIDRs[0]",
        "spec.destinationCIDRs entries must be IPv6 prefixes when family is ipv6",
    );
}

#[test]
fn exclude_destination_cidrs_must_match_family() {
    expect_error(
        K,
        &policy("excludeDestinationCIDRs: [10.0.0.0/8, nonsense]", "name: a"),
        "spec.excludeDestinationCIDRs[1]",
        "spec.excludeDestinationCIDRs entries must match family prefixes",
    );
}

#[test]
fn set_refs_must_reference_ip_address_sets() {
    expect_valid(
        K,
        &policy(
            "destinationSetRefs: [IPAddressSet/set1]\nexcludeDestinationSetRefs: [IPAddressSet/set2]",
            "name: a",
        ),
    );
    expect_error(
        K,
        &policy("destinationSetRefs: [set1]", "name: a"),
        "spec.destinationSetRefs[0]",
        "spec.destinationSetRefs[0] must reference IPAddressSet",
    );
    expect_error(
        K,
        &policy(
            "destinationSetRefs: [IPAddressSet/set1, IPAddressSet/set1]",
            "name: a",
        ),
        "spec.destinationSetRefs[1]",
        "spec.destinationSetRefs[1] duplicates IPAddressSet reference \"IPAddressSet/set1\"",
    );
    expect_error(
        K,
        &policy(
            "excludeDestinationSetRefs: [IPAddressSet/missing]",
            "name: a",
        ),
        "spec.excludeDestinationSetRefs[0]",
        "spec.excludeDestinationSetRefs[0] references missing IPAddressSet \"missing\"",
    );
}

#[test]
fn hash_mode_needs_hash_fields() {
    expect_error(
        K,
        &policy("mode: hash", "name: a"),
        "spec.hashFields",
        "spec.hashFields is required when mode is hash",
    );
}

#[test]
fn hash_fields_enum() {
    expect_error(
        K,
        &policy(
            "mode: hash\nhashFields: [sourceAddress, destinationPort]",
            "name: a",
        ),
        "spec.hashFields[1]",
        "spec.hashFields entries must be sourceAddress or destinationAddress",
    );
}

#[test]
fn selection_enum() {
    expect_error(
        K,
        &policy("selection: round-robin", "name: a"),
        "spec.selection",
        "spec.selection must be highest-weight-ready or weighted-ecmp",
    );
}

#[test]
fn hysteresis_and_preempt_delay_must_be_durations() {
    expect_error(
        K,
        &policy("hysteresis: abc", "name: a"),
        "spec.hysteresis",
        "spec.hysteresis is invalid: time: invalid duration \"abc\"",
    );
    expect_error(
        K,
        &policy("preemptDelay: \"5\"", "name: a"),
        "spec.preemptDelay",
        "spec.preemptDelay is invalid: time: missing unit in duration \"5\"",
    );
    expect_error(
        K,
        &policy("hysteresis: -5s", "name: a"),
        "spec.hysteresis",
        "spec.hysteresis must not be negative",
    );
}

#[test]
fn candidates_are_required() {
    expect_error(
        K,
        "family: ipv4",
        "spec.candidates",
        "spec.candidates is required",
    );
    expect_error(
        K,
        "candidates: []",
        "spec.candidates",
        "spec.candidates is required",
    );
}

fn host_candidate() -> &'static str {
    "name: lo\ninterface: wan\npreferredSource: interface\ngatewaySource: static\ngateway: fe80::1"
}

#[test]
fn host_traffic_valid_shape() {
    expect_valid(
        K,
        &policy("family: ipv6\nhostTraffic: true", host_candidate()),
    );
}

#[test]
fn host_traffic_requires_family_ipv6() {
    expect_errors(
        K,
        &policy(
            "hostTraffic: true",
            "name: lo\ninterface: wan\npreferredSource: interface\ngatewaySource: static\ngateway: 192.0.2.1",
        ),
        &[("spec.hostTraffic", "spec.hostTraffic requires family ipv6")],
    );
}

#[test]
fn host_traffic_requires_exactly_one_candidate() {
    let mut spec = policy("family: ipv6\nhostTraffic: true", host_candidate());
    spec.push_str(
        "  - name: lo2\n    interface: lan\n    preferredSource: interface\n    gatewaySource: static\n    gateway: fe80::2\n",
    );
    expect_error(
        K,
        &spec,
        "spec.hostTraffic",
        "spec.hostTraffic requires exactly one candidate",
    );
}

#[test]
fn host_traffic_candidate_mark_must_be_zero() {
    expect_error(
        K,
        &policy(
            "family: ipv6\nhostTraffic: true",
            &format!("{}\nmark: 7\npriority: 10\ntable: 100", host_candidate()),
        ),
        "spec.candidates[0].mark",
        "spec.candidates[0].mark must be 0 when hostTraffic is true",
    );
}

#[test]
fn host_traffic_candidate_needs_preferred_source_interface() {
    expect_error(
        K,
        &policy(
            "family: ipv6\nhostTraffic: true",
            "name: lo\ninterface: wan\ngatewaySource: static\ngateway: fe80::1",
        ),
        "spec.candidates[0]",
        "spec.candidates[0] hostTraffic requires preferredSource interface and no targets",
    );
}

#[test]
fn host_traffic_candidate_needs_static_gateway() {
    expect_error(
        K,
        &policy(
            "family: ipv6\nhostTraffic: true",
            "name: lo\ninterface: wan\npreferredSource: interface\ngatewaySource: dhcpv6",
        ),
        "spec.candidates[0]",
        "spec.candidates[0] hostTraffic requires a static gateway",
    );
}

#[test]
fn marks_without_mode_warn() {
    expect_warnings(
        K,
        &policy(
            "",
            "name: a\ninterface: wan\nmark: 1\npriority: 100\ntable: 100",
        ),
        &[(
            "spec.mode",
            "candidates set mark but spec.mode is omitted: marks are rendered but no route tables or rules follow them; set mode mark or priority",
        )],
    );
    expect_warnings(
        K,
        &policy(
            "mode: mark",
            "name: a\ninterface: wan\nmark: 1\npriority: 100\ntable: 100",
        ),
        &[],
    );
}

// ---- candidates ----

#[test]
fn candidate_requires_name_or_source() {
    expect_error(
        K,
        &policy("", "weight: 10"),
        "spec.candidates[0]",
        "spec.candidates[0] requires name or source",
    );
}

#[test]
fn candidate_must_not_set_both_table_and_route_table() {
    expect_error(
        K,
        &policy(
            "mode: priority",
            "name: a\ninterface: wan\nmark: 1\npriority: 10\ntable: 100\nrouteTable: 100",
        ),
        "spec.candidates[0]",
        "spec.candidates[0] must not set both table and routeTable",
    );
}

#[test]
fn candidate_must_not_set_both_route_metric_and_metric() {
    expect_error(
        K,
        &policy("", "name: a\ninterface: wan\nrouteMetric: 10\nmetric: 10"),
        "spec.candidates[0]",
        "spec.candidates[0] must not set both routeMetric and metric",
    );
}

#[test]
fn candidate_weight_must_not_be_negative() {
    expect_error(
        K,
        &policy("", "name: a\nweight: -1"),
        "spec.candidates[0].weight",
        "spec.candidates[0].weight must be non-negative",
    );
}

#[test]
fn candidate_gateway_expressions_were_removed() {
    expect_error(
        K,
        &policy(
            "",
            "name: a\ngatewaySource: static\ngateway: \"${EgressRoutePolicy/x.selectedGateway}\"",
        ),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway status expressions were removed; use gatewayFrom",
    );
}

#[test]
fn candidate_device_expressions_were_removed() {
    expect_error(
        K,
        &policy("", "name: a\ndevice: \"${DSLiteTunnel/dsl.device}\""),
        "spec.candidates[0].device",
        "spec.candidates[0].device status expressions were removed; use deviceFrom",
    );
}

#[test]
fn candidate_status_sources_need_fields() {
    for f in ["deviceFrom", "gatewayFrom"] {
        let mut cand = format!("name: a\n{f}: {{resource: DSLiteTunnel/dsl}}");
        if f == "gatewayFrom" {
            cand.push_str("\ngatewaySource: static");
        }
        expect_error(
            K,
            &policy("", &cand),
            &format!("spec.candidates[0].{f}.field"),
            &format!("spec.candidates[0].{f}.field is required"),
        );
    }
}

#[test]
fn candidate_preferred_source_must_be_interface() {
    expect_error(
        K,
        &policy("", "name: a\npreferredSource: address"),
        "spec.candidates[0].preferredSource",
        "spec.candidates[0].preferredSource must be interface",
    );
}

#[test]
fn candidate_source_must_be_kind_slash_name() {
    expect_error(
        K,
        &policy("", "name: a\nsource: dsl"),
        "spec.candidates[0].source",
        "spec.candidates[0].source must be Kind/name",
    );
}

#[test]
fn candidate_source_outside_the_config_warns() {
    expect_warnings(
        K,
        &policy("", "name: a\nsource: DHCPv4Lease/wan"),
        &[(
            "spec.candidates[0].source",
            "spec.candidates[0].source references DHCPv4Lease \"wan\", which is not in this config; the candidate is ready only through its health check",
        )],
    );
}

#[test]
fn candidate_interface_must_exist() {
    expect_error(
        K,
        &policy("", "name: a\ninterface: wan9"),
        "spec.candidates[0].interface",
        "spec.candidates[0] references missing Interface, PPPoESession, or DSLiteTunnel \"wan9\"",
    );
    // `device` is a raw kernel name and is not checked.
    expect_valid(K, &policy("", "name: a\ndevice: wan9"));
}

#[test]
fn candidate_health_check_must_exist() {
    expect_valid(K, &policy("", "name: a\nhealthCheck: hc"));
    expect_error(
        K,
        &policy("", "name: a\nhealthCheck: hc9"),
        "spec.candidates[0].healthCheck",
        "spec.candidates[0] references missing HealthCheck \"hc9\"",
    );
}

#[test]
fn marked_candidate_mark_must_be_positive() {
    expect_error(
        K,
        &policy("mode: mark", "name: a\nmark: 0\npriority: 10\ntable: 100"),
        "spec.candidates[0].mark",
        "spec.candidates[0].mark must be greater than 0",
    );
}

#[test]
fn marked_candidate_priority_range() {
    for prio in ["0", "32766"] {
        expect_error(
            K,
            &policy(
                "mode: mark",
                &format!("name: a\nmark: 1\npriority: {prio}\ntable: 100"),
            ),
            "spec.candidates[0].priority",
            "spec.candidates[0].priority must be within 1-32765",
        );
    }
}

#[test]
fn marked_candidate_table_must_be_positive() {
    expect_error(
        K,
        &policy("mode: mark", "name: a\nmark: 1\npriority: 10"),
        "spec.candidates[0].table",
        "spec.candidates[0].table must be greater than 0",
    );
    // routeTable is the same field under its other name.
    expect_valid(
        K,
        &policy(
            "mode: mark",
            "name: a\nmark: 1\npriority: 10\nrouteTable: 7",
        ),
    );
}

fn target(extra: &str) -> String {
    format!(
        "name: t\ntargets:\n  - interface: wan\n    table: 101\n    priority: 101\n    mark: 257{extra}"
    )
}

#[test]
fn target_candidates_valid_shape() {
    expect_valid(
        K,
        &policy("mode: hash\nhashFields: [sourceAddress]", &target("")),
    );
    expect_valid(
        K,
        &policy(
            "mode: priority",
            &target("\n    gatewaySource: static\n    gateway: 192.0.2.1\n    healthCheck: hc"),
        ),
    );
    expect_valid(
        K,
        &policy(
            "mode: priority",
            "name: t\ntargets:\n  - outboundInterface: dsl\n    routeTable: 5\n    priority: 5\n    mark: 5",
        ),
    );
}

#[test]
fn targets_require_mode_hash_or_priority() {
    expect_error(
        K,
        &policy("mode: mark", &target("")),
        "spec.candidates[0].targets",
        "spec.candidates[0].targets requires mode hash or priority",
    );
}

#[test]
fn target_candidates_cannot_set_link_fields_directly() {
    for f in [
        "interface: wan",
        "device: eth0",
        "deviceFrom: {resource: Interface/wan, field: ifname}",
        "gateway: 192.0.2.1",
        "gatewayFrom: {resource: Interface/wan, field: primaryIPv4}",
        "gatewaySource: none",
        "table: 5",
        "routeTable: 5",
        "mark: 5",
        "routeMetric: 5",
        "metric: 5",
    ] {
        let cand = format!("{f}\n{}", target(""));
        expect_error(
            K,
            &policy("mode: priority", &cand),
            "spec.candidates[0]",
            "spec.candidates[0] target candidates cannot set interface, gatewaySource, gateway, table, mark, or routeMetric directly",
        );
    }
}

#[test]
fn target_interface_is_required() {
    expect_error(
        K,
        &policy(
            "mode: priority",
            "name: t\ntargets:\n  - table: 5\n    priority: 5\n    mark: 5",
        ),
        "spec.candidates[0].targets[0].interface",
        "spec.candidates[0].targets[0].interface is required",
    );
}

#[test]
fn target_interface_must_exist() {
    expect_error(
        K,
        &policy(
            "mode: priority",
            "name: t\ntargets:\n  - interface: nope\n    table: 5\n    priority: 5\n    mark: 5",
        ),
        "spec.candidates[0].targets[0].interface",
        "spec.candidates[0].targets[0] references missing Interface, PPPoESession, or DSLiteTunnel \"nope\"",
    );
}

#[test]
fn target_must_not_set_both_table_and_route_table() {
    expect_error(
        K,
        &policy("mode: priority", &target("\n    routeTable: 101")),
        "spec.candidates[0].targets[0]",
        "spec.candidates[0].targets[0] must not set both table and routeTable",
    );
}

#[test]
fn target_table_priority_mark_ranges() {
    let p = "mode: priority";
    expect_error(
        K,
        &policy(
            p,
            "name: t\ntargets:\n  - interface: wan\n    priority: 5\n    mark: 5",
        ),
        "spec.candidates[0].targets[0].table",
        "spec.candidates[0].targets[0].table must be greater than 0",
    );
    expect_error(
        K,
        &policy(
            p,
            "name: t\ntargets:\n  - interface: wan\n    table: 5\n    priority: 40000\n    mark: 5",
        ),
        "spec.candidates[0].targets[0].priority",
        "spec.candidates[0].targets[0].priority must be within 1-32765",
    );
    expect_error(
        K,
        &policy(
            p,
            "name: t\ntargets:\n  - interface: wan\n    table: 5\n    priority: 5\n    mark: -1",
        ),
        "spec.candidates[0].targets[0].mark",
        "spec.candidates[0].targets[0].mark must be greater than 0",
    );
}

#[test]
fn target_health_check_must_exist() {
    expect_error(
        K,
        &policy("mode: priority", &target("\n    healthCheck: nope")),
        "spec.candidates[0].targets[0].healthCheck",
        "spec.candidates[0].targets[0] references missing HealthCheck \"nope\"",
    );
}

#[test]
fn target_gateway_requires_a_gateway_source() {
    expect_error(
        K,
        &policy("mode: priority", &target("\n    gateway: 192.0.2.1")),
        "spec.candidates[0].targets[0].gateway",
        "spec.candidates[0].targets[0].gateway and gatewayFrom require gatewaySource static, dhcpv4, or dhcpv6",
    );
}

#[test]
fn target_static_gateway_source_needs_exactly_one_gateway() {
    expect_error(
        K,
        &policy("mode: priority", &target("\n    gatewaySource: static")),
        "spec.candidates[0].targets[0]",
        "spec.candidates[0].targets[0] must set exactly one of gateway or gatewayFrom when gatewaySource is static",
    );
}

#[test]
fn target_gateway_from_needs_field() {
    expect_error(
        K,
        &policy(
            "mode: priority",
            &target("\n    gatewaySource: static\n    gatewayFrom: {resource: Interface/wan}"),
        ),
        "spec.candidates[0].targets[0].gatewayFrom.field",
        "spec.candidates[0].targets[0].gatewayFrom.field is required",
    );
}

// ---- gatewaySource rules (candidate) ----

#[test]
fn gateway_requires_a_gateway_source() {
    for g in [
        "gateway: 192.0.2.1",
        "gatewaySource: none\ngatewayFrom: {resource: Interface/wan, field: primaryIPv4}",
    ] {
        expect_error(
            K,
            &policy("", &format!("name: a\n{g}")),
            "spec.candidates[0].gateway",
            "spec.candidates[0].gateway and gatewayFrom are only valid when gatewaySource is static, dhcpv4, or dhcpv6",
        );
    }
}

#[test]
fn static_gateway_source_needs_exactly_one_gateway() {
    for g in [
        "",
        "\ngateway: 192.0.2.1\ngatewayFrom: {resource: Interface/wan, field: primaryIPv4}",
    ] {
        expect_error(
            K,
            &policy("", &format!("name: a\ngatewaySource: static{g}")),
            "spec.candidates[0]",
            "spec.candidates[0] must set exactly one of gateway or gatewayFrom when gatewaySource is static",
        );
    }
    expect_valid(
        K,
        &policy(
            "",
            "name: a\ngatewaySource: static\ngatewayFrom: {resource: Interface/wan, field: primaryIPv4}",
        ),
    );
}

#[test]
fn static_gateway_must_be_an_ip_of_the_family() {
    expect_error(
        K,
        &policy("", "name: a\ngatewaySource: static\ngateway: router.lan"),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway must be an IP address",
    );
    expect_error(
        K,
        &policy("", "name: a\ngatewaySource: static\ngateway: fe80::1"),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway must be an IPv4 address when family is ipv4",
    );
    expect_error(
        K,
        &policy(
            "family: ipv6",
            "name: a\ngatewaySource: static\ngateway: 192.0.2.1",
        ),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway must be an IPv6 address when family is ipv6",
    );
}

#[test]
fn dhcpv4_gateway_source_rules() {
    expect_valid(K, &policy("", "name: a\ngatewaySource: dhcpv4"));
    expect_error(
        K,
        &policy("family: ipv6", "name: a\ngatewaySource: dhcpv4"),
        "spec.candidates[0].gatewaySource",
        "spec.candidates[0].gatewaySource dhcpv4 requires family ipv4",
    );
    expect_error(
        K,
        &policy("", "name: a\ngatewaySource: dhcpv4\ngateway: 192.0.2.1"),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway must not be set when gatewaySource is dhcpv4",
    );
}

#[test]
fn dhcpv6_gateway_source_rules() {
    expect_error(
        K,
        &policy("", "name: a\ngatewaySource: dhcpv6"),
        "spec.candidates[0].gatewaySource",
        "spec.candidates[0].gatewaySource dhcpv6 requires family ipv6",
    );
    expect_error(
        K,
        &policy(
            "family: ipv6",
            "name: a\ngatewaySource: dhcpv6\ngateway: fe80::1",
        ),
        "spec.candidates[0].gateway",
        "spec.candidates[0].gateway must not be set when gatewaySource is dhcpv6",
    );
}

#[test]
fn gateway_source_enum() {
    expect_error(
        K,
        &policy("", "name: a\ngatewaySource: slaac"),
        "spec.candidates[0].gatewaySource",
        "spec.candidates[0].gatewaySource must be static, dhcpv4, dhcpv6, or none",
    );
}

#[test]
fn candidate_dependencies_are_checked() {
    expect_valid(
        K,
        &policy(
            "",
            "name: a\ndependsOn:\n  - {resource: Interface/wan, phase: Up}",
        ),
    );
    expect_error(
        K,
        &policy("", "name: a\ndependsOn:\n  - {resource: Interface/nope}"),
        "spec.candidates[0].dependsOn[0]",
        "spec.candidates[0].dependsOn[0] references missing Interface \"nope\"",
    );
}

#[test]
fn errors_are_reported_per_candidate_index() {
    let spec = "candidates:\n  - {name: a, interface: wan}\n  - {name: b, weight: -2}\n  - {name: c, preferredSource: x}\n";
    expect_errors(
        K,
        spec,
        &[
            (
                "spec.candidates[1].weight",
                "spec.candidates[1].weight must be non-negative",
            ),
            (
                "spec.candidates[2].preferredSource",
                "spec.candidates[2].preferredSource must be interface",
            ),
        ],
    );
}

// ---- weighted-ecmp: every accepted shape can be carried ----

const ECMP_PRIORITY: &str = "mode: priority\nselection: weighted-ecmp\nmultipathTable: 300\nmultipathPriority: 10300\nmultipathMark: 768";

#[test]
fn weighted_ecmp_shapes_that_the_kernel_carries_are_valid() {
    expect_valid(
        K,
        &policy(
            ECMP_PRIORITY,
            "name: a\ninterface: wan\nweight: 3\nmark: 256\npriority: 10000\ntable: 100",
        ),
    );
    for mode in ["mark", "hash"] {
        let top = format!("mode: {mode}\nselection: weighted-ecmp\nhashFields: [sourceAddress]");
        expect_valid(
            K,
            &policy(
                &top,
                "name: a\ninterface: wan\nweight: 256\nmark: 256\npriority: 10000\ntable: 100",
            ),
        );
    }
}

#[test]
fn weighted_ecmp_in_priority_mode_needs_the_multipath_table() {
    let msg = |f: &str| {
        format!(
            "spec.{f} is required when selection is weighted-ecmp and mode is priority: the members share a weighted multipath route in the table multipathTable, reached through multipathMark at rule multipathPriority; or use mode hash to spread connections by weight over the candidates' own marks"
        )
    };
    let (t, p, m) = (
        msg("multipathTable"),
        msg("multipathPriority"),
        msg("multipathMark"),
    );
    expect_errors(
        K,
        &policy(
            "mode: priority\nselection: weighted-ecmp",
            "name: a\ninterface: wan",
        ),
        &[
            ("spec.multipathTable", &t),
            ("spec.multipathPriority", &p),
            ("spec.multipathMark", &m),
        ],
    );
}

#[test]
fn weighted_ecmp_priority_members_are_next_hops() {
    expect_error(
        K,
        &policy(ECMP_PRIORITY, "name: a\nsource: DSLiteTunnel/dsl"),
        "spec.candidates[0]",
        "spec.candidates[0] needs interface, device or deviceFrom with selection weighted-ecmp and mode priority: each member is a next hop of the multipath route",
    );
}

#[test]
fn weighted_ecmp_mark_and_hash_members_need_marks() {
    for mode in ["mark", "hash"] {
        let top = format!("mode: {mode}\nselection: weighted-ecmp\nhashFields: [sourceAddress]");
        expect_error(
            K,
            &policy(&top, "name: a\ninterface: wan"),
            "spec.candidates[0].mark",
            &format!(
                "spec.candidates[0].mark is required with selection weighted-ecmp and mode {mode}: each member takes its share of new connections by its mark"
            ),
        );
    }
}

#[test]
fn weighted_ecmp_refuses_target_candidates() {
    expect_error(
        K,
        &policy(
            "mode: hash\nselection: weighted-ecmp\nhashFields: [sourceAddress]",
            "name: t\ntargets:\n  - interface: wan\n    table: 101\n    priority: 101\n    mark: 257",
        ),
        "spec.candidates[0].targets",
        "spec.candidates[0].targets cannot be used with selection weighted-ecmp: a target candidate already spreads its flows over its targets; use selection highest-weight-ready, or make each path a candidate of its own",
    );
}

#[test]
fn weighted_ecmp_weights_fit_a_multipath_next_hop() {
    expect_error(
        K,
        &policy(
            "selection: weighted-ecmp",
            "name: a\ninterface: wan\nweight: 257",
        ),
        "spec.candidates[0].weight",
        "spec.candidates[0].weight must be at most 256 with selection weighted-ecmp (the kernel's multipath weight limit); scale the weights down",
    );
}

#[test]
fn multipath_fields_only_with_priority_weighted_ecmp() {
    expect_errors(
        K,
        &policy(
            "mode: priority\nmultipathTable: 300\nmultipathMark: 1",
            "name: a\ninterface: wan",
        ),
        &[
            (
                "spec.multipathTable",
                "spec.multipathTable is only used with selection weighted-ecmp and mode priority",
            ),
            (
                "spec.multipathMark",
                "spec.multipathMark is only used with selection weighted-ecmp and mode priority",
            ),
        ],
    );
}

#[test]
fn multipath_field_ranges_and_clashes() {
    expect_errors(
        K,
        &policy(
            "mode: priority\nselection: weighted-ecmp\nmultipathTable: 254\nmultipathPriority: 40000\nmultipathMark: 0",
            "name: a\ninterface: wan",
        ),
        &[
            (
                "spec.multipathTable",
                "spec.multipathTable must not be a reserved table (253 default, 254 main, 255 local)",
            ),
            (
                "spec.multipathPriority",
                "spec.multipathPriority must be within 1-32765",
            ),
            (
                "spec.multipathMark",
                "spec.multipathMark must be greater than 0",
            ),
        ],
    );
    expect_errors(
        K,
        &policy(
            "mode: priority\nselection: weighted-ecmp\nmultipathTable: 100\nmultipathPriority: 10000\nmultipathMark: 256",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100",
        ),
        &[
            (
                "spec.multipathTable",
                "spec.multipathTable must differ from spec.candidates[0].table: the candidate's own path keeps its table",
            ),
            (
                "spec.multipathPriority",
                "spec.multipathPriority must differ from spec.candidates[0].priority: the candidate's own path keeps its priority",
            ),
            (
                "spec.multipathMark",
                "spec.multipathMark must differ from spec.candidates[0].mark: the candidate's own path keeps its mark",
            ),
        ],
    );
}

#[test]
fn weighted_ecmp_without_mode_marks_all_members_or_none() {
    let top = "selection: weighted-ecmp\ncandidates:\n  - {name: a, interface: wan, mark: 1, priority: 100, table: 100}\n  - {name: b, interface: lan}\n";
    expect_errors(
        K,
        top,
        &[(
            "spec.candidates[1].mark",
            "spec.candidates[1].mark is required with selection weighted-ecmp when other candidates set marks: each member takes its share of new connections by its mark; set marks on every candidate or on none",
        )],
    );
    expect_valid(
        K,
        "selection: weighted-ecmp\ncandidates:\n  - {name: a, interface: wan}\n  - {name: b, interface: lan}\n",
    );
}

// ---- whenNoCandidate ----

#[test]
fn when_no_candidate_values() {
    let cand = "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100";
    for v in ["main", "reject", "drop"] {
        expect_valid(
            K,
            &policy(&format!("mode: mark\nwhenNoCandidate: {v}"), cand),
        );
    }
    expect_valid(K, &policy("whenNoCandidate: main", "name: a"));
    expect_error(
        K,
        &policy("mode: mark\nwhenNoCandidate: refuse", cand),
        "spec.whenNoCandidate",
        "spec.whenNoCandidate must be one of main, reject, drop",
    );
}

#[test]
fn when_no_candidate_needs_a_steering_ipv4_policy() {
    expect_error(
        K,
        &policy("whenNoCandidate: reject", "name: a\ninterface: wan"),
        "spec.whenNoCandidate",
        "spec.whenNoCandidate reject requires mode priority, mark or hash: an advisory policy (mode omitted) steers no traffic, so there is nothing to close; set a mode or use main",
    );
    expect_error(
        K,
        &policy(
            "family: ipv6\nmode: priority\nwhenNoCandidate: drop",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100",
        ),
        "spec.whenNoCandidate",
        "spec.whenNoCandidate drop is carried for family ipv4 only (the fail-closed filter matches IPv4 sources); use main for family ipv6",
    );
    expect_error(
        K,
        &policy(
            "family: ipv6\nhostTraffic: true\nmode: priority\nwhenNoCandidate: reject",
            host_candidate(),
        ),
        "spec.whenNoCandidate",
        "spec.whenNoCandidate reject cannot be used with hostTraffic: the fail-closed filter sees forwarded traffic only, not the router's own; use main",
    );
}

// ---- flushOnFailover ----

#[test]
fn flush_on_failover_accepts_none_and_dead_path() {
    expect_valid(K, &policy("flushOnFailover: none", "name: a"));
    expect_valid(
        K,
        &policy(
            "mode: priority\nflushOnFailover: deadPath",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100",
        ),
    );
}

#[test]
fn flush_on_failover_enum() {
    expect_error(
        K,
        &policy(
            "mode: priority\nflushOnFailover: always",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100",
        ),
        "spec.flushOnFailover",
        "spec.flushOnFailover must be none or deadPath",
    );
}

#[test]
fn flush_on_failover_needs_marks() {
    expect_error(
        K,
        &policy("flushOnFailover: deadPath", "name: a\ninterface: wan"),
        "spec.flushOnFailover",
        "spec.flushOnFailover deadPath requires candidates or targets with a mark: a path's connections are found by their ct mark",
    );
}

#[test]
fn flush_on_failover_needs_connection_marks() {
    expect_error(
        K,
        &policy(
            "mode: mark\nflushOnFailover: deadPath",
            "name: a\ninterface: wan\nmark: 256\npriority: 10000\ntable: 100",
        ),
        "spec.flushOnFailover",
        "spec.flushOnFailover deadPath needs connections that carry their path's mark: mode mark marks packets, not connections; use mode priority, targets or weighted-ecmp",
    );
}
