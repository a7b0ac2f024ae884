//! One test per validation rule of the `net.routerd.net` kinds other than
//! EgressRoutePolicy (routerd-spec §1.2-§1.4, §1.6, §1.7 and the kinds the
//! spec only references). Each test asserts the exact set of errors: the
//! message, the resource id and the field path.

mod common;

use common::*;

#[test]
fn base_config_is_valid() {
    let (l, d) = routerd_model::load_and_validate(&[("base.yaml", BASE)]);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(l.resources.len(), 13);
}

// ---- Interface (§1.2) ----

#[test]
fn interface_minimal_is_valid() {
    expect_valid("Interface", "ifname: eth9\nmtu: 576\nowner: routerd");
    expect_valid("Interface", "ifname: eth9\nmtu: 9216\nowner: external");
    expect_valid("Interface", "ifname: eth9\nmtu: 0");
}

#[test]
fn interface_ifname_is_required() {
    expect_error(
        "Interface",
        "adminUp: true",
        "spec.ifname",
        "spec.ifname is required",
    );
}

#[test]
fn interface_mtu_must_be_within_576_9216() {
    for mtu in ["575", "9217", "-1"] {
        expect_error(
            "Interface",
            &format!("ifname: eth9\nmtu: {mtu}"),
            "spec.mtu",
            "spec.mtu must be within 576-9216",
        );
    }
}

/// Stricter than routerd, whose validator does not check the schema enum.
#[test]
fn interface_owner_must_be_routerd_or_external() {
    expect_error(
        "Interface",
        "ifname: eth9\nowner: kernel",
        "spec.owner",
        "spec.owner must be routerd or external",
    );
}

// ---- DSLiteTunnel (§1.3) ----

#[test]
fn dslite_minimal_is_valid() {
    expect_valid("DSLiteTunnel", "interface: wan\naftrFQDN: gw.example.net");
    expect_valid("DSLiteTunnel", "interface: wan\naftrIPv6: 2001:db8::1");
    expect_valid("DSLiteTunnel", "interface: wan\nremoteAddress: 2001:db8::1");
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFrom: {resource: Interface/wan, field: primaryIPv6}",
    );
}

#[test]
fn dslite_interface_is_required() {
    expect_error(
        "DSLiteTunnel",
        "aftrFQDN: gw.example.net",
        "spec.interface",
        "spec.interface is required",
    );
}

#[test]
fn dslite_interface_must_name_an_interface() {
    // A PPPoESession is interface-like but not an Interface: DS-Lite needs one.
    expect_error(
        "DSLiteTunnel",
        "interface: ppp\naftrFQDN: gw.example.net",
        "spec.interface",
        "references missing Interface \"ppp\"",
    );
}

#[test]
fn dslite_aftr_fqdn_rejects_whitespace_and_slash() {
    for v in ["\"gw example\"", "gw/example"] {
        expect_error(
            "DSLiteTunnel",
            &format!("interface: wan\naftrFQDN: {v}"),
            "spec.aftrFQDN",
            "spec.aftrFQDN contains invalid whitespace or slash",
        );
    }
}

#[test]
fn dslite_aftr_ipv6_must_be_ipv6() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrIPv6: 192.0.2.1",
        "spec.aftrIPv6",
        "spec.aftrIPv6 must be an IPv6 address",
    );
}

#[test]
fn dslite_aftr_dns_servers_must_be_addresses() {
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrDNSServers: [2001:db8::53, 192.0.2.53]",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrDNSServers: [2001:db8::53, dns.example]",
        "spec.aftrDNSServers",
        "spec.aftrDNSServers contains invalid address \"dns.example\"",
    );
}

#[test]
fn dslite_aftr_address_ordinal_must_not_be_negative() {
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrAddressOrdinal: 2",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrAddressOrdinal: -1",
        "spec.aftrAddressOrdinal",
        "spec.aftrAddressOrdinal must be greater than 0",
    );
}

#[test]
fn dslite_aftr_address_selection_enum() {
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrAddressSelection: ordinalModulo",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\naftrAddressSelection: random",
        "spec.aftrAddressSelection",
        "spec.aftrAddressSelection must be ordinal or ordinalModulo",
    );
}

#[test]
fn dslite_needs_an_aftr_source() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan",
        "spec",
        "spec.aftrFrom, spec.aftrFQDN, spec.aftrIPv6, or spec.remoteAddress is required",
    );
}

#[test]
fn dslite_remote_address_must_be_ipv6() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\nremoteAddress: 192.0.2.1",
        "spec.remoteAddress",
        "spec.remoteAddress must be an IPv6 address",
    );
}

#[test]
fn dslite_local_address_must_be_ipv6() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddress: 192.0.2.1",
        "spec.localAddress",
        "spec.localAddress must be an IPv6 address",
    );
}

#[test]
fn dslite_local_address_from_needs_field() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressFrom: {resource: Interface/wan}",
        "spec.localAddressFrom.field",
        "spec.localAddressFrom.field is required",
    );
}

#[test]
fn dslite_static_local_address_source_needs_local_address() {
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSource: static\nlocalAddress: 2001:db8::2",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSource: static",
        "spec.localAddress",
        "spec.localAddress is required when localAddressSource is static",
    );
}

#[test]
fn dslite_delegated_local_address_source_needs_delegated_address() {
    expect_valid(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSource: delegatedAddress\nlocalDelegatedAddress: pd\nlocalAddressSuffix: \"::100\"",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSource: delegatedAddress",
        "spec.localDelegatedAddress",
        "spec.localDelegatedAddress is required when localAddressSource is delegatedAddress",
    );
}

#[test]
fn dslite_local_address_source_enum() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSource: dhcp",
        "spec.localAddressSource",
        "spec.localAddressSource must be interface, static, or delegatedAddress",
    );
}

#[test]
fn dslite_local_address_suffix_must_be_ipv6_like() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nlocalAddressSuffix: \"100\"",
        "spec.localAddressSuffix",
        "spec.localAddressSuffix must be an IPv6 suffix such as ::100",
    );
}

#[test]
fn dslite_route_metric_must_not_be_negative() {
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFQDN: gw\nrouteMetric: -5",
        "spec.routeMetric",
        "spec.routeMetric must be non-negative",
    );
}

#[test]
fn dslite_mtu_must_be_within_1280_65535() {
    expect_valid("DSLiteTunnel", "interface: wan\naftrFQDN: gw\nmtu: 1280");
    for mtu in ["1279", "65536"] {
        expect_error(
            "DSLiteTunnel",
            &format!("interface: wan\naftrFQDN: gw\nmtu: {mtu}"),
            "spec.mtu",
            "spec.mtu must be within 1280-65535",
        );
    }
}

// ---- HealthCheck (§1.4) ----

#[test]
fn health_check_minimal_is_valid() {
    expect_valid("HealthCheck", "");
    expect_valid(
        "HealthCheck",
        "type: ping\nrole: link\naddressFamily: ipv6\ntarget: 2001:db8::1\ntargetSource: static\ninterface: dsl\nprotocol: icmp\nport: 0\ninterval: 100ms\nfailingInterval: 1s\ntimeout: 1s\nhealthyThreshold: 0\nunhealthyThreshold: 5",
    );
    expect_valid("HealthCheck", "interface: ppp\ntargetSource: dsliteRemote");
}

#[test]
fn health_check_type_must_be_ping() {
    expect_error(
        "HealthCheck",
        "type: tcp",
        "spec.type",
        "spec.type must be ping",
    );
}

#[test]
fn health_check_role_enum() {
    expect_error(
        "HealthCheck",
        "role: uplink",
        "spec.role",
        "spec.role must be link, next-hop, internet, service, or policy",
    );
}

#[test]
fn health_check_address_family_enum() {
    expect_error(
        "HealthCheck",
        "addressFamily: inet",
        "spec.addressFamily",
        "spec.addressFamily must be ipv4 or ipv6",
    );
}

#[test]
fn health_check_target_must_be_an_ip() {
    expect_error(
        "HealthCheck",
        "target: one.one.one.one",
        "spec.target",
        "spec.target must be an IP address",
    );
}

#[test]
fn health_check_target_must_match_family() {
    expect_error(
        "HealthCheck",
        "addressFamily: ipv6\ntarget: 1.1.1.1",
        "spec.target",
        "spec.target must be an IPv6 address",
    );
    expect_error(
        "HealthCheck",
        "target: 2606:4700::1111",
        "spec.target",
        "spec.target must be an IPv4 address",
    );
}

#[test]
fn health_check_static_target_source_needs_target() {
    expect_error(
        "HealthCheck",
        "targetSource: static",
        "spec.target",
        "spec.target is required when targetSource is static",
    );
}

#[test]
fn health_check_target_source_enum() {
    expect_error(
        "HealthCheck",
        "targetSource: dns",
        "spec.targetSource",
        "spec.targetSource must be auto, static, defaultGateway, or dsliteRemote",
    );
}

#[test]
fn health_check_interface_must_exist() {
    expect_error(
        "HealthCheck",
        "interface: wlan0",
        "spec.interface",
        "references missing Interface, PPPoESession, or DSLiteTunnel \"wlan0\"",
    );
}

#[test]
fn health_check_protocol_enum() {
    expect_error(
        "HealthCheck",
        "protocol: udp",
        "spec.protocol",
        "spec.protocol must be icmp, tcp, dns, or http",
    );
}

#[test]
fn health_check_port_range() {
    expect_valid("HealthCheck", "port: 65535");
    for port in ["-1", "65536"] {
        expect_error(
            "HealthCheck",
            &format!("port: {port}"),
            "spec.port",
            "spec.port must be within 0-65535",
        );
    }
}

#[test]
fn health_check_durations_must_be_positive() {
    for (field, v) in [
        ("interval", "0s"),
        ("interval", "-1s"),
        ("interval", "abc"),
        ("failingInterval", "\"10\""),
        ("timeout", "\"0\""),
        ("timeout", "-3s"),
    ] {
        let path = format!("spec.{field}");
        expect_error(
            "HealthCheck",
            &format!("{field}: {v}"),
            &path,
            &format!("{path} must be a positive duration"),
        );
    }
}

/// Our floor: sub-100ms probing would flood the uplink (routerd has none).
#[test]
fn health_check_interval_must_be_at_least_100ms() {
    for field in ["interval", "failingInterval"] {
        let path = format!("spec.{field}");
        expect_error(
            "HealthCheck",
            &format!("{field}: 99ms"),
            &path,
            &format!("{path} must be at least 100ms"),
        );
    }
    expect_valid("HealthCheck", "timeout: 10ms");
}

#[test]
fn health_check_thresholds_must_not_be_negative() {
    for spec in ["healthyThreshold: -1", "unhealthyThreshold: -1"] {
        expect_error(
            "HealthCheck",
            spec,
            "spec.healthyThreshold",
            "spec.healthyThreshold and spec.unhealthyThreshold must be non-negative",
        );
    }
}

#[test]
fn health_check_http_block_without_http_protocol_warns() {
    expect_warnings("HealthCheck", "protocol: http\nhttp: {path: /}", &[]);
    expect_warnings(
        "HealthCheck",
        "protocol: tcp\nhttp: {path: /}",
        &[(
            "spec.http",
            "spec.http is ignored unless spec.protocol is http",
        )],
    );
}

#[test]
fn health_check_http_expected_status_must_be_codes_or_ranges() {
    expect_valid(
        "HealthCheck",
        "protocol: http\nhttp: {expectedStatus: [\"200\", \"300-399\"]}",
    );
    for bad in ["\"99\"", "\"400-300\"", "ok", "\"200-700\""] {
        expect_error(
            "HealthCheck",
            &format!("protocol: http\nhttp: {{expectedStatus: [\"204\", {bad}]}}"),
            "spec.http.expectedStatus[1]",
            "spec.http.expectedStatus[1] must be a status code or range such as 200-399",
        );
    }
}

#[test]
fn health_check_dns_block_without_dns_protocol_warns() {
    expect_warnings(
        "HealthCheck",
        "dns: {queryName: example.com}",
        &[(
            "spec.dns",
            "spec.dns is ignored unless spec.protocol is dns",
        )],
    );
}

#[test]
fn health_check_dns_query_type_enum() {
    expect_valid("HealthCheck", "protocol: dns\ndns: {queryType: AAAA}");
    expect_error(
        "HealthCheck",
        "protocol: dns\ndns: {queryType: MX}",
        "spec.dns.queryType",
        "spec.dns.queryType must be A or AAAA",
    );
}

// ---- IPv4Route (§1.6) ----

#[test]
fn ipv4_route_minimal_is_valid() {
    expect_valid("IPv4Route", "destination: 0.0.0.0/0");
    // A unicast route without a device is valid; it stays Pending at runtime.
    expect_valid(
        "IPv4Route",
        "destination: 198.51.100.0/24\ngateway: 192.0.2.1",
    );
    expect_valid(
        "IPv4Route",
        "destination: default\ntype: blackhole\nmetric: 0",
    );
}

#[test]
fn ipv4_routes_writing_the_same_kernel_route_are_refused_naming_both() {
    let text = [
        doc("IPv4Route", "a", "destination: 10.7.0.0/16\ndevice: eth1"),
        doc("IPv4Route", "b", "destination: 10.7.1.0/16\ndevice: eth2"),
        doc("IPv4Route", "c", "destination: 10.7.0.0/16\nmetric: 5"),
    ]
    .join("---\n");
    let ds = errors(&with_base(&text));
    assert_eq!(ds.len(), 1, "{ds:#?}");
    assert_eq!(
        ds[0].resource.as_deref(),
        Some(id("IPv4Route", "b").as_str())
    );
    assert_eq!(ds[0].path.as_deref(), Some("spec.destination"));
    assert_eq!(
        ds[0].message,
        format!(
            "{} spec.destination 10.7.0.0/16 metric 0 is also routed by {}: both would write the same kernel route",
            id("IPv4Route", "b"),
            id("IPv4Route", "a")
        )
    );
    assert_eq!(ds[0].file.as_deref(), Some("t.yaml"));
}

#[test]
fn ipv4_route_destination_is_required() {
    expect_error(
        "IPv4Route",
        "device: eth0",
        "spec.destination",
        "spec.destination is required",
    );
}

#[test]
fn ipv4_route_destination_must_be_a_prefix() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/33",
        "spec.destination",
        "spec.destination is invalid: netip.ParsePrefix(\"10.0.0.0/33\"): not a valid prefix",
    );
}

#[test]
fn ipv4_route_type_enum() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\ntype: prohibit",
        "spec.type",
        "spec.type must be unicast or blackhole",
    );
}

#[test]
fn ipv4_route_device_expressions_were_removed() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\ndevice: \"${EgressRoutePolicy/pol.selectedDevice}\"",
        "spec.device",
        "spec.device status expressions were removed; use deviceFrom",
    );
}

#[test]
fn ipv4_route_gateway_expressions_were_removed() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\ngateway: \"${x}\"",
        "spec.gateway",
        "spec.gateway status expressions were removed; use gatewayFrom",
    );
}

#[test]
fn ipv4_route_gateway_must_be_ipv4() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\ngateway: fe80::1",
        "spec.gateway",
        "spec.gateway must be an IPv4 address",
    );
}

#[test]
fn ipv4_route_preferred_source_expressions_are_not_supported() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\npreferredSource: \"${x}\"",
        "spec.preferredSource",
        "spec.preferredSource status expressions are not supported",
    );
}

#[test]
fn ipv4_route_preferred_source_must_be_ipv4() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\npreferredSource: 2001:db8::1",
        "spec.preferredSource",
        "spec.preferredSource must be an IPv4 address",
    );
}

#[test]
fn ipv4_route_metric_must_not_be_negative() {
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\nmetric: -1",
        "spec.metric",
        "spec.metric must be non-negative",
    );
}

#[test]
fn ipv4_route_blackhole_forbids_next_hop_fields() {
    for extra in [
        "device: eth0",
        "deviceFrom: {resource: Interface/wan, field: ifname}",
        "gateway: 192.0.2.1",
        "gatewayFrom: {resource: Interface/wan, field: primaryIPv4}",
        "preferredSource: 192.0.2.2",
    ] {
        expect_error(
            "IPv4Route",
            &format!("destination: 10.0.0.0/8\ntype: blackhole\n{extra}"),
            "spec.type",
            "spec.device, spec.deviceFrom, spec.gateway, spec.gatewayFrom, and spec.preferredSource are not valid when spec.type is blackhole",
        );
    }
}

// ---- NAT44Rule (§1.7) ----

#[test]
fn nat44_minimal_shapes_are_valid() {
    expect_valid(
        "NAT44Rule",
        "type: masquerade\negressInterface: wan\nsourceRanges: [192.168.0.0/16]",
    );
    expect_valid(
        "NAT44Rule",
        "type: masquerade\negressInterface: dsl\nsourceRanges: [192.168.0.0/16]\ndestinationCIDRs: [0.0.0.0/0]\nexcludeDestinationCIDRs: [10.0.0.0/8]\ndestinationSetRefs: [IPAddressSet/set1]\nexcludeDestinationSetRefs: [IPAddressSet/set2]",
    );
    expect_valid(
        "NAT44Rule",
        "type: snat\negressPolicyRef: pol\nsourceRanges: [192.168.0.0/16]\nsnatAddress: 192.0.2.10",
    );
    expect_valid(
        "NAT44Rule",
        "type: snat\negressInterface: ppp\nsourceRanges: [192.168.0.0/16]\nsnatAddressFrom: {resource: Interface/wan, field: primaryIPv4}",
    );
    expect_valid(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: interfaceAddress}",
    );
}

#[test]
fn nat44_must_not_mix_shapes() {
    expect_error(
        "NAT44Rule",
        "type: masquerade\noutboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: interfaceAddress}",
        "spec",
        "NAT44Rule must not mix outboundInterface/sourceCIDRs/translation with type/egressInterface/sourceRanges fields",
    );
}

#[test]
fn nat44_type_enum() {
    expect_error(
        "NAT44Rule",
        "type: dnat\negressInterface: wan\nsourceRanges: [192.168.0.0/16]",
        "spec.type",
        "spec.type must be masquerade or snat",
    );
}

#[test]
fn nat44_needs_egress_interface_or_policy() {
    expect_error(
        "NAT44Rule",
        "type: masquerade\nsourceRanges: [192.168.0.0/16]",
        "spec",
        "spec.egressInterface or spec.egressPolicyRef is required",
    );
}

#[test]
fn nat44_egress_interface_must_exist() {
    expect_error(
        "NAT44Rule",
        "type: masquerade\negressInterface: wan9\nsourceRanges: [192.168.0.0/16]",
        "spec.egressInterface",
        "references missing egress Interface, PPPoESession, or DSLiteTunnel \"wan9\"",
    );
}

/// routerd accepts a dangling egressPolicyRef (a dynamic part may bring the
/// policy); the rule is Pending/EgressPolicyMissing meanwhile. A typo looks
/// the same, so it is a warning.
#[test]
fn nat44_dangling_egress_policy_ref_validates_with_a_warning() {
    expect_warnings(
        "NAT44Rule",
        "type: masquerade\negressPolicyRef: ipv4-defualt\nsourceRanges: [192.168.0.0/16]",
        &[(
            "spec.egressPolicyRef",
            "spec.egressPolicyRef references missing EgressRoutePolicy \"ipv4-defualt\"; the rule stays Pending (EgressPolicyMissing) until the policy appears",
        )],
    );
}

#[test]
fn nat44_source_ranges_are_required() {
    expect_error(
        "NAT44Rule",
        "type: masquerade\negressInterface: wan",
        "spec.sourceRanges",
        "spec.sourceRanges is required",
    );
}

#[test]
fn nat44_prefix_lists_must_be_ipv4() {
    for field in [
        "sourceRanges",
        "destinationCIDRs",
        "excludeDestinationCIDRs",
    ] {
        let mut spec = "type: masquerade\negressInterface: wan\n".to_string();
        if field != "sourceRanges" {
            spec.push_str("sourceRanges: [192.168.0.0/16]\n");
        }
        spec.push_str(&format!("{field}: [10.0.0.0/8, 2001:db8::/32]"));
        expect_error(
            "NAT44Rule",
            &spec,
            &format!("spec.{field}[1]"),
            &format!("spec.{field} entries must be IPv4 prefixes"),
        );
    }
}

#[test]
fn nat44_destination_set_refs_must_reference_existing_sets() {
    let base = "type: masquerade\negressInterface: wan\nsourceRanges: [192.168.0.0/16]\n";
    expect_error(
        "NAT44Rule",
        &format!("{base}destinationSetRefs: [IPAddressSet/set1, Interface/wan]"),
        "spec.destinationSetRefs[1]",
        "spec.destinationSetRefs[1] must reference IPAddressSet",
    );
    expect_error(
        "NAT44Rule",
        &format!("{base}excludeDestinationSetRefs: [IPAddressSet/set1, IPAddressSet/set1]"),
        "spec.excludeDestinationSetRefs[1]",
        "spec.excludeDestinationSetRefs[1] duplicates IPAddressSet reference \"IPAddressSet/set1\"",
    );
    expect_error(
        "NAT44Rule",
        &format!("{base}destinationSetRefs: [IPAddressSet/nope]"),
        "spec.destinationSetRefs[0]",
        "spec.destinationSetRefs[0] references missing IPAddressSet \"nope\"",
    );
}

#[test]
fn nat44_snat_address_and_from_are_mutually_exclusive() {
    expect_error(
        "NAT44Rule",
        "type: snat\negressInterface: wan\nsourceRanges: [192.168.0.0/16]\nsnatAddress: 192.0.2.1\nsnatAddressFrom: {resource: Interface/wan, field: primaryIPv4}",
        "spec.snatAddress",
        "spec.snatAddress and spec.snatAddressFrom are mutually exclusive",
    );
}

#[test]
fn nat44_snat_needs_an_address() {
    expect_error(
        "NAT44Rule",
        "type: snat\negressInterface: wan\nsourceRanges: [192.168.0.0/16]",
        "spec.snatAddress",
        "spec.snatAddress or spec.snatAddressFrom is required when type is snat",
    );
}

#[test]
fn nat44_snat_address_must_be_ipv4() {
    expect_error(
        "NAT44Rule",
        "type: snat\negressInterface: wan\nsourceRanges: [192.168.0.0/16]\nsnatAddress: 2001:db8::1",
        "spec.snatAddress",
        "spec.snatAddress must be an IPv4 address when type is snat",
    );
}

#[test]
fn nat44_snat_address_from_needs_field() {
    expect_error(
        "NAT44Rule",
        "type: snat\negressInterface: wan\nsourceRanges: [192.168.0.0/16]\nsnatAddressFrom: {resource: Interface/wan}",
        "spec.snatAddressFrom.field",
        "spec.snatAddressFrom.field is required",
    );
}

#[test]
fn nat44_snat_address_only_with_snat() {
    for extra in [
        "snatAddress: 192.0.2.1",
        "snatAddressFrom: {resource: Interface/wan, field: primaryIPv4}",
    ] {
        expect_error(
            "NAT44Rule",
            &format!(
                "type: masquerade\negressInterface: wan\nsourceRanges: [192.168.0.0/16]\n{extra}"
            ),
            "spec.snatAddress",
            "spec.snatAddress and spec.snatAddressFrom are only valid when type is snat",
        );
    }
}

#[test]
fn nat44_source_nat_needs_outbound_interface() {
    expect_error(
        "NAT44Rule",
        "sourceCIDRs: [192.168.0.0/16]\ntranslation: {type: interfaceAddress}",
        "spec.outboundInterface",
        "spec.outboundInterface is required when using source NAT fields on NAT44Rule",
    );
}

#[test]
fn nat44_source_nat_needs_source_cidrs() {
    expect_error(
        "NAT44Rule",
        "outboundInterface: wan\ntranslation: {type: interfaceAddress}",
        "spec.sourceCIDRs",
        "spec.sourceCIDRs is required when using source NAT fields on NAT44Rule",
    );
}

#[test]
fn nat44_source_nat_cidrs_must_be_ipv4() {
    expect_error(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [fd00::/8]\ntranslation: {type: interfaceAddress}",
        "spec.sourceCIDRs[0]",
        "spec.sourceCIDRs entries must be IPv4 prefixes",
    );
}

#[test]
fn nat44_translation_address_must_be_ipv4() {
    expect_valid(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: address, address: 192.0.2.7}",
    );
    expect_error(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: address}",
        "spec.translation.address",
        "spec.translation.address must be an IPv4 address",
    );
}

#[test]
fn nat44_translation_pool_needs_ipv4_addresses() {
    expect_error(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: pool}",
        "spec.translation.addresses",
        "spec.translation.addresses is required when translation.type is pool",
    );
    expect_error(
        "NAT44Rule",
        "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation: {type: pool, addresses: [192.0.2.1, 2001:db8::1]}",
        "spec.translation.addresses[1]",
        "spec.translation.addresses[1] must be an IPv4 address",
    );
}

#[test]
fn nat44_translation_type_enum() {
    for t in ["", "translation: {type: masquerade}"] {
        expect_error(
            "NAT44Rule",
            &format!("outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\n{t}"),
            "spec.translation.type",
            "spec.translation.type must be interfaceAddress, address, or pool",
        );
    }
}

#[test]
fn nat44_port_mapping_rules() {
    let base = "outboundInterface: wan\nsourceCIDRs: [192.168.0.0/16]\ntranslation:\n  type: interfaceAddress\n  portMapping: ";
    expect_valid(
        "NAT44Rule",
        &format!("{base}{{type: range, start: 1024, end: 65535}}"),
    );
    expect_valid("NAT44Rule", &format!("{base}{{type: preserve}}"));
    expect_error(
        "NAT44Rule",
        &format!("{base}{{type: auto, start: 1024}}"),
        "spec.translation.portMapping",
        "spec.translation.portMapping start/end are only valid when type is range",
    );
    for r in [
        "start: 2000, end: 1000",
        "start: 0, end: 10",
        "start: 10, end: 65536",
        "start: 10",
    ] {
        expect_error(
            "NAT44Rule",
            &format!("{base}{{type: range, {r}}}"),
            "spec.translation.portMapping",
            "spec.translation.portMapping range must be within 1-65535 and start must be <= end",
        );
    }
    expect_error(
        "NAT44Rule",
        &format!("{base}{{type: random}}"),
        "spec.translation.portMapping.type",
        "spec.translation.portMapping.type must be auto, preserve, or range",
    );
}

// ---- Kinds routerd-spec only references: IPAddressSet, IPv4StaticAddress, PPPoESession ----

#[test]
fn address_set_rules() {
    expect_valid(
        "IPAddressSet",
        "family: ipv6\naddresses: [2001:db8::/32, 2001:db8::1]",
    );
    expect_valid("IPAddressSet", "addresses: [10.0.0.0/8, 192.0.2.1]");
    expect_error(
        "IPAddressSet",
        "family: ip\naddresses: [10.0.0.0/8]",
        "spec.family",
        "spec.family must be ipv4 or ipv6",
    );
    // routerd's FQDN sets: names alone are enough, refreshInterval is a Go duration.
    expect_valid(
        "IPAddressSet",
        "names: [service.example.com]\nrefreshInterval: 10m",
    );
    expect_valid(
        "IPAddressSet",
        "addresses: [192.0.2.1]\nnames: [a.example, b.example]",
    );
    expect_error(
        "IPAddressSet",
        "family: ipv4",
        "spec.addresses",
        "spec.addresses or spec.names is required",
    );
    expect_error(
        "IPAddressSet",
        "names: [a.example, '  ']",
        "spec.names[1]",
        "spec.names[1] must not be empty",
    );
    expect_error(
        "IPAddressSet",
        "names: ['a.example/24']",
        "spec.names[0]",
        "spec.names[0] is invalid: must be a single DNS domain",
    );
    expect_error(
        "IPAddressSet",
        "names: [a.example, a.example]",
        "spec.names[1]",
        "spec.names[1] duplicates name \"a.example\"",
    );
    expect_error(
        "IPAddressSet",
        "names: [a.example]\nrefreshInterval: soon",
        "spec.refreshInterval",
        "spec.refreshInterval is invalid: time: invalid duration \"soon\"",
    );
    expect_error(
        "IPAddressSet",
        "addresses: [10.0.0.0/8, 2001:db8::/32]",
        "spec.addresses[1]",
        "spec.addresses[1] must be an IPv4 address or prefix",
    );
    expect_error(
        "IPAddressSet",
        "family: ipv6\naddresses: [bogus]",
        "spec.addresses[0]",
        "spec.addresses[0] must be an IPv6 address or prefix",
    );
}

#[test]
fn static_address_rules() {
    expect_valid(
        "IPv4StaticAddress",
        "interface: lan\naddress: 192.168.10.1/24",
    );
    expect_error(
        "IPv4StaticAddress",
        "address: 192.168.10.1/24",
        "spec.interface",
        "spec.interface is required",
    );
    expect_error(
        "IPv4StaticAddress",
        "interface: lan9\naddress: 192.168.10.1/24",
        "spec.interface",
        "references missing Interface, PPPoESession, or DSLiteTunnel \"lan9\"",
    );
    expect_error(
        "IPv4StaticAddress",
        "interface: lan",
        "spec.address",
        "spec.address is required",
    );
    for a in ["192.168.10.1", "2001:db8::1/64"] {
        expect_error(
            "IPv4StaticAddress",
            &format!("interface: lan\naddress: {a}"),
            "spec.address",
            "spec.address must be an IPv4 address with prefix length, such as 192.168.10.1/24",
        );
    }
}

#[test]
fn pppoe_session_rules() {
    expect_valid(
        "PPPoESession",
        "interface: wan\nmtu: 1454\nusername: u\npasswordFile: /etc/ppp/secret",
    );
    let creds = "username: u\npasswordFile: /etc/ppp/secret";
    expect_error(
        "PPPoESession",
        &format!("mtu: 1454\n{creds}"),
        "spec.interface",
        "spec.interface is required",
    );
    expect_error(
        "PPPoESession",
        &format!("interface: dsl\n{creds}"),
        "spec.interface",
        "references missing Interface \"dsl\"",
    );
    expect_error(
        "PPPoESession",
        &format!("interface: wan\nmtu: 1501\n{creds}"),
        "spec.mtu",
        "spec.mtu must be within 576-1500",
    );
    // Every field routerd defines is accepted.
    expect_valid(
        "PPPoESession",
        "interface: wan\nusername: u\npassword: hunter2\nauthMethod: chap\nmtu: 1454\nmru: 1454\nserviceName: isp\nacName: ac1\ndefaultRoute: true\nusePeerDNS: false\npersist: true\nlcpInterval: 10\nlcpFailure: 3\nlcpEchoInterval: 10\nlcpEchoFailure: 3\nipv6: true\nmanaged: true\nsecretEncoding: plain",
    );
    expect_errors(
        "PPPoESession",
        "interface: wan\npassword: a\npasswordFile: /x\nauthMethod: mschap\nmru: 100\nlcpFailure: -1\nlcpEchoInterval: -1\nsecretEncoding: base64\nifname: ppp-this-is-too-long\nacName: \"a\\nb\"",
        &[
            ("spec.username", "spec.username is required"),
            (
                "spec.password",
                "spec.password and spec.passwordFile are mutually exclusive",
            ),
            (
                "spec.authMethod",
                "spec.authMethod must be chap, pap, or both",
            ),
            ("spec.mru", "spec.mru must be within 576-1500"),
            (
                "spec.lcpFailure",
                "spec.lcpInterval and spec.lcpFailure must be non-negative",
            ),
            (
                "spec.lcpEchoInterval",
                "spec.lcpEchoInterval and spec.lcpEchoFailure must be non-negative",
            ),
            ("spec.secretEncoding", "spec.secretEncoding must be plain"),
            ("spec.ifname", "spec.ifname must be 15 characters or fewer"),
            ("spec.acName", "spec.acName contains invalid newline"),
        ],
    );
    expect_error(
        "PPPoESession",
        "interface: wan\nusername: u",
        "spec.password",
        "spec.password or spec.passwordFile is required",
    );
}

#[test]
fn pppoe_password_never_prints() {
    let text = "apiVersion: net.routerd.net/v1alpha1\nkind: PPPoESession\nmetadata: {name: isp}\nspec: {interface: wan, username: u, password: hunter2}\n";
    let (l, d) = routerd_model::load_and_validate(&[("base.yaml", common::BASE), ("t.yaml", text)]);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let r = l.resources.iter().find(|r| r.name() == "isp").unwrap();
    assert_eq!(
        r.as_pppoe().unwrap().password.as_ref().unwrap().expose(),
        "hunter2"
    );
    let shown = [
        serde_json::to_string(r).unwrap(),
        serde_yaml::to_string(r).unwrap(),
        format!("{r:?}"),
    ];
    for s in shown {
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("<redacted>"), "{s}");
    }
}

#[test]
fn static_address_overlap_needs_a_reason() {
    expect_valid(
        "IPv4StaticAddress",
        "interface: lan\naddress: 192.168.10.1/24\nexclusive: true\nallowOverlap: true\nallowOverlapReason: anycast",
    );
    expect_error(
        "IPv4StaticAddress",
        "interface: lan\naddress: 192.168.10.1/24\nallowOverlap: true",
        "spec.allowOverlapReason",
        "spec.allowOverlapReason is required when allowOverlap is true",
    );
}

#[test]
fn dhcpv4_client_rules() {
    expect_valid(
        "DHCPv4Client",
        "interface: wan\nhostname: edge\nrequestedAddress: 192.0.2.10\nclassID: routerd\nclientID: \"01:02\"\nuseRoutes: false\nuseDNS: true\nrouteMetric: 100",
    );
    expect_errors(
        "DHCPv4Client",
        "requestedAddress: 2001:db8::1\nhostname: my edge",
        &[
            ("spec.interface", "spec.interface is required"),
            (
                "spec.requestedAddress",
                "spec.requestedAddress must be an IPv4 address",
            ),
            ("spec.hostname", "spec.hostname must not contain whitespace"),
        ],
    );
    expect_error(
        "DHCPv4Client",
        "interface: wan9",
        "spec.interface",
        "references missing Interface \"wan9\"",
    );
}
