//! One test per validation rule of the config, plugin and hybrid kinds
//! (routerd-spec §1.8), status references (§1.1 "Status references") and
//! the checks every resource gets (group, runtime-only kinds, duplicates).

mod common;

use common::*;

// ---- DynamicOverridePolicy ----

#[test]
fn override_policy_rules() {
    expect_valid("DynamicOverridePolicy", "allow: []");
    expect_valid(
        "DynamicOverridePolicy",
        "allow:\n  - source: Plugin/cloud\n    operations: [mask]\n    targets:\n      - {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: not-checked}",
    );
    // Empty operations and targets are accepted.
    expect_valid("DynamicOverridePolicy", "allow: [{source: Plugin/cloud}]");
    expect_error(
        "DynamicOverridePolicy",
        "allow: [{operations: [mask]}]",
        "spec.allow[0].source",
        "spec.allow[0].source is required",
    );
    expect_error(
        "DynamicOverridePolicy",
        "allow: [{source: s, operations: [mask, replace]}]",
        "spec.allow[0].operations[1]",
        "spec.allow[0].operations[1] must be mask",
    );
    expect_errors(
        "DynamicOverridePolicy",
        "allow: [{source: s}, {source: s, targets: [{kind: IPv4Route, name: x}, {}]}]",
        &[
            (
                "spec.allow[1].targets[0].apiVersion",
                "spec.allow[1].targets[0].apiVersion is required",
            ),
            (
                "spec.allow[1].targets[1].apiVersion",
                "spec.allow[1].targets[1].apiVersion is required",
            ),
            (
                "spec.allow[1].targets[1].kind",
                "spec.allow[1].targets[1].kind is required",
            ),
            (
                "spec.allow[1].targets[1].name",
                "spec.allow[1].targets[1].name is required",
            ),
        ],
    );
}

// ---- Plugin ----

#[test]
fn plugin_minimal_is_valid() {
    expect_valid(
        "Plugin",
        "executable: /usr/libexec/p\ntimeout: 30s\nenv: {REGION: eu}\ncapabilities: [observe.cloud, propose.dynamicConfig]\ntriggers:\n  - {type: interval, every: 1m}\n  - {type: event, topic: routerd.tunnel.ds-lite.up}\ncontext:\n  resources:\n    - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: need-not-exist}",
    );
}

#[test]
fn plugin_executable_rules() {
    expect_error(
        "Plugin",
        "timeout: 5s",
        "spec.executable",
        "spec.executable is required",
    );
    expect_error(
        "Plugin",
        "executable: bin/p",
        "spec.executable",
        "spec.executable must be an absolute path",
    );
}

#[test]
fn plugin_timeout_rules() {
    expect_error(
        "Plugin",
        "executable: /p\ntimeout: soon",
        "spec.timeout",
        "spec.timeout must be a valid duration: time: invalid duration \"soon\"",
    );
    expect_error(
        "Plugin",
        "executable: /p\ntimeout: 0s",
        "spec.timeout",
        "spec.timeout must be greater than 0",
    );
}

#[test]
fn plugin_capabilities_enum() {
    expect_error(
        "Plugin",
        "executable: /p\ncapabilities: [observe.cloud, execute.anything]",
        "spec.capabilities[1]",
        "spec.capabilities[1] must be observe.cloud, observe.providerPrivateIPs, propose.dynamicConfig, propose.providerAction, or execute.providerAction",
    );
}

#[test]
fn plugin_env_keys() {
    expect_error(
        "Plugin",
        "executable: /p\nenv: {\"A=B\": x}",
        "spec.env",
        "spec.env key \"A=B\" must be non-empty and must not contain '='",
    );
}

#[test]
fn plugin_trigger_rules() {
    expect_error(
        "Plugin",
        "executable: /p\ntriggers: [{type: cron}]",
        "spec.triggers[0].type",
        "spec.triggers[0].type must be interval or event",
    );
    expect_error(
        "Plugin",
        "executable: /p\ntriggers: [{type: interval}]",
        "spec.triggers[0].every",
        "spec.triggers[0].every is required for interval triggers",
    );
    for every in ["0s", "-1m", "often"] {
        expect_error(
            "Plugin",
            &format!("executable: /p\ntriggers: [{{type: interval, every: {every}}}]"),
            "spec.triggers[0].every",
            "spec.triggers[0].every must be a positive duration",
        );
    }
    expect_error(
        "Plugin",
        "executable: /p\ntriggers: [{type: event}]",
        "spec.triggers[0].topic",
        "spec.triggers[0].topic is required for event triggers",
    );
}

#[test]
fn plugin_context_resources_need_identity() {
    expect_errors(
        "Plugin",
        "executable: /p\ncontext: {resources: [{}]}",
        &[
            (
                "spec.context.resources[0].apiVersion",
                "spec.context.resources[0].apiVersion is required",
            ),
            (
                "spec.context.resources[0].kind",
                "spec.context.resources[0].kind is required",
            ),
            (
                "spec.context.resources[0].name",
                "spec.context.resources[0].name is required",
            ),
        ],
    );
}

// ---- DynamicConfigSource ----

#[test]
fn dynamic_source_rules() {
    expect_valid(
        "DynamicConfigSource",
        "pluginRef: plug\nttl: 5m\nmergePolicy: {conflict: reject}\ntriggers: [{type: interval, every: 1m}]",
    );
    expect_error(
        "DynamicConfigSource",
        "ttl: 5m",
        "spec.pluginRef",
        "spec.pluginRef is required",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: nope\nttl: 5m",
        "spec.pluginRef",
        "spec.pluginRef references missing Plugin \"nope\"",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: plug",
        "spec.ttl",
        "spec.ttl is required",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: plug\nttl: 5 minutes",
        "spec.ttl",
        "spec.ttl must be a valid duration: time: unknown unit in duration \"5 minutes\"",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: plug\nttl: \"-5m\"",
        "spec.ttl",
        "spec.ttl must be greater than 0",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: plug\nttl: 5m\nmergePolicy: {conflict: merge}",
        "spec.mergePolicy.conflict",
        "spec.mergePolicy.conflict must be reject",
    );
    expect_error(
        "DynamicConfigSource",
        "pluginRef: plug\nttl: 5m\ntriggers: [{type: interval}]",
        "spec.triggers[0].every",
        "spec.triggers[0].every is required for interval triggers",
    );
}

// ---- OverlayPeer ----

#[test]
fn overlay_peer_minimal_is_valid() {
    expect_valid(
        "OverlayPeer",
        "role: onprem\nnodeID: n2\nunderlay: {type: wireguard, interface: wg0, address: 100.64.0.1}\npathMTU: {forceFragmentIPv4: true}",
    );
    expect_valid(
        "OverlayPeer",
        "role: cloud\nnodeID: n2\nunderlay: {type: ipsec}\nremote: {nodeID: n1, address: 203.0.113.1}",
    );
    expect_valid(
        "OverlayPeer",
        "role: cloud\nnodeID: n2\nunderlay: {type: gre, interface: tun}",
    );
}

#[test]
fn overlay_peer_role_enum() {
    for role in ["", "role: edge\n"] {
        expect_error(
            "OverlayPeer",
            &format!("{role}nodeID: n\nunderlay: {{type: route}}"),
            "spec.role",
            "spec.role must be onprem or cloud",
        );
    }
}

#[test]
fn overlay_peer_node_id_is_required() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nunderlay: {type: route}",
        "spec.nodeID",
        "spec.nodeID is required",
    );
}

#[test]
fn overlay_peer_underlay_type_enum() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nnodeID: n\nunderlay: {type: vxlan}",
        "spec.underlay.type",
        "spec.underlay.type must be wireguard, tailscale, ipsec, route, ipip, gre, fou, or gue",
    );
}

#[test]
fn overlay_peer_underlay_interface_required_for_links() {
    for ty in ["wireguard", "ipip", "gre", "fou", "gue"] {
        expect_error(
            "OverlayPeer",
            &format!("role: cloud\nnodeID: n\nunderlay: {{type: {ty}}}"),
            "spec.underlay.interface",
            &format!("spec.underlay.interface is required when spec.underlay.type is {ty}"),
        );
    }
}

#[test]
fn overlay_peer_tunnel_underlay_must_name_a_tunnel_interface() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nnodeID: n\nunderlay: {type: ipip, interface: wan}",
        "spec.underlay.interface",
        "spec.underlay.interface references missing TunnelInterface \"wan\"",
    );
}

#[test]
fn overlay_peer_underlay_address_must_be_an_ip() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nnodeID: n\nunderlay: {type: route, address: peer.example}",
        "spec.underlay.address",
        "spec.underlay.address must be an IP address",
    );
}

#[test]
fn overlay_peer_ipsec_remote_address_must_be_ipv4() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nnodeID: n\nunderlay: {type: ipsec}\nremote: {address: 2001:db8::1}",
        "spec.remote.address",
        "spec.remote.address must be an IPv4 address when spec.underlay.type is ipsec",
    );
}

#[test]
fn overlay_peer_force_fragment_only_for_encapsulating_underlays() {
    expect_error(
        "OverlayPeer",
        "role: cloud\nnodeID: n\nunderlay: {type: tailscale}\npathMTU: {forceFragmentIPv4: true}",
        "spec.pathMTU.forceFragmentIPv4",
        "spec.pathMTU.forceFragmentIPv4 is supported only for underlay.type wireguard, ipip, gre, fou, or gue",
    );
}

// ---- HybridRoute ----

#[test]
fn hybrid_route_minimal_is_valid() {
    expect_valid(
        "HybridRoute",
        "destinationCIDRs: [10.20.0.0/16, 10.30.1.0/24]\npeerRef: peer\ninstall: {table: main, metric: 0}\nhealthCheckRef: hc",
    );
}

#[test]
fn hybrid_route_destination_cidrs_required() {
    expect_error(
        "HybridRoute",
        "peerRef: peer",
        "spec.destinationCIDRs",
        "spec.destinationCIDRs is required",
    );
}

#[test]
fn hybrid_route_rejects_default_routes() {
    for d in ["default", "0.0.0.0/0"] {
        expect_error(
            "HybridRoute",
            &format!("destinationCIDRs: [10.0.0.0/8, {d}]\npeerRef: peer"),
            "spec.destinationCIDRs[1]",
            "spec.destinationCIDRs[1]: default routes are not allowed",
        );
    }
}

#[test]
fn hybrid_route_destination_must_be_a_cidr() {
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.1]\npeerRef: peer",
        "spec.destinationCIDRs[0]",
        "spec.destinationCIDRs[0]: must be a valid CIDR: invalid IP address syntax",
    );
}

#[test]
fn hybrid_route_destination_must_be_ipv4() {
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [\"2001:db8::/32\"]\npeerRef: peer",
        "spec.destinationCIDRs[0]",
        "spec.destinationCIDRs[0]: must be an IPv4 CIDR; HybridRoute MVP lowers to IPv4Route",
    );
}

#[test]
fn hybrid_route_peer_ref_rules() {
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.0/8]",
        "spec.peerRef",
        "spec.peerRef is required",
    );
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.0/8]\npeerRef: nope",
        "spec.peerRef",
        "spec.peerRef references missing OverlayPeer \"nope\"",
    );
}

#[test]
fn hybrid_route_install_rules() {
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.0/8]\npeerRef: peer\ninstall: {table: \"100\"}",
        "spec.install.table",
        "spec.install.table must be empty or main; HybridRoute MVP lowers to IPv4Route, which installs only in the main table",
    );
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.0/8]\npeerRef: peer\ninstall: {metric: -1}",
        "spec.install.metric",
        "spec.install.metric must be >= 0",
    );
}

#[test]
fn hybrid_route_health_check_must_exist() {
    expect_error(
        "HybridRoute",
        "destinationCIDRs: [10.0.0.0/8]\npeerRef: peer\nhealthCheckRef: nope",
        "spec.healthCheckRef",
        "spec.healthCheckRef references missing HealthCheck \"nope\"",
    );
}

// ---- CloudProviderProfile ----

#[test]
fn cloud_profile_rules() {
    expect_valid(
        "CloudProviderProfile",
        "provider: aws\ncapabilities: [secondaryIP]\nauth: {mode: external-command, command: /usr/bin/creds}",
    );
    expect_error(
        "CloudProviderProfile",
        "provider: ibm\ncapabilities: [x]",
        "spec.provider",
        "spec.provider must be azure, aws, oci, or gcp",
    );
    expect_error(
        "CloudProviderProfile",
        "provider: gcp",
        "spec.capabilities",
        "spec.capabilities is required",
    );
    expect_error(
        "CloudProviderProfile",
        "provider: oci\ncapabilities: [x, \"\"]",
        "spec.capabilities[1]",
        "spec.capabilities[1] must not be empty",
    );
    expect_error(
        "CloudProviderProfile",
        "provider: oci\ncapabilities: [x]\nauth: {mode: managed-identity}",
        "spec.auth.mode",
        "spec.auth.mode must be external-command",
    );
    expect_error(
        "CloudProviderProfile",
        "provider: oci\ncapabilities: [x]\nauth: {mode: external-command}",
        "spec.auth.command",
        "spec.auth.command is required when spec.auth.mode is external-command",
    );
}

// ---- TunnelInterface (defined here; routerd-spec only names it) ----

#[test]
fn tunnel_interface_rules() {
    expect_valid(
        "TunnelInterface",
        "mode: fou\nlocal: 192.0.2.1\nremote: 192.0.2.2\nttl: 64\nmtu: 1400\nencap: {dport: 5555}\ntrustedUnderlay: true",
    );
    expect_valid(
        "TunnelInterface",
        "mode: gre\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 7\ntrustedUnderlay: true",
    );
    expect_error(
        "TunnelInterface",
        "mode: geneve\nlocal: 192.0.2.1\nremote: 192.0.2.2\ntrustedUnderlay: true",
        "spec.mode",
        "spec.mode must be ipip, gre, fou, gue, or vxlan",
    );
    // routerd's acknowledgement for unencrypted tunnels, vxlan included.
    expect_error(
        "TunnelInterface",
        "mode: gre\nlocal: 192.0.2.1\nremote: 192.0.2.2",
        "spec.trustedUnderlay",
        "spec.trustedUnderlay must be true; ipip/gre/fou/gue tunnels are unencrypted and unauthenticated and require a trusted underlay",
    );
    expect_error(
        "TunnelInterface",
        "mode: vxlan\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 1\ntrustedUnderlay: false",
        "spec.trustedUnderlay",
        "spec.trustedUnderlay must be true; vxlan tunnels are unencrypted and unauthenticated and require a trusted underlay",
    );
    // vxlan is ours: the VNI is spec.key, the UDP port spec.encapDport.
    expect_valid(
        "TunnelInterface",
        "mode: vxlan\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 42\nencapDport: 4789\nunderlayInterface: eth0\naddress: 10.255.0.1/30\nmtu: 1450\ntrustedUnderlay: true",
    );
    expect_error(
        "TunnelInterface",
        "mode: vxlan\nlocal: 192.0.2.1\nremote: 192.0.2.2\ntrustedUnderlay: true",
        "spec.key",
        "spec.key is required when spec.mode is vxlan (the VNI)",
    );
    expect_error(
        "TunnelInterface",
        "mode: vxlan\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 16777216\ntrustedUnderlay: true",
        "spec.key",
        "spec.key must be within 0-16777215 when spec.mode is vxlan",
    );
    expect_error(
        "TunnelInterface",
        "mode: vxlan\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 1\nencapSport: 5555\ntrustedUnderlay: true",
        "spec.encapSport",
        "spec.encapSport/spec.encapDport are only supported when spec.mode is fou or gue",
    );
    expect_error(
        "TunnelInterface",
        "mode: ipip\nremote: 192.0.2.2\ntrustedUnderlay: true",
        "spec.local",
        "spec.local or spec.localFrom is required",
    );
    // routerd's fields: endpoints from status, inner address, FOU ports.
    expect_valid(
        "TunnelInterface",
        "mode: fou\nlocalFrom: {resource: Interface/wan, field: primaryIPv4}\nremote: 192.0.2.2\naddress: 10.255.0.1/30\nunderlayInterface: wan\nencapSport: 5555\nencapDport: 5555\ntrustedUnderlay: true\npathMTU: {forceFragmentIPv4: true}",
    );
    expect_errors(
        "TunnelInterface",
        "mode: ipip\nlocal: 192.0.2.1\nlocalFrom: {resource: Interface/wan, field: primaryIPv4}\nremote: 192.0.2.2\naddress: 2001:db8::/64\npeerAddress: 10.0.0.2\nencapSport: 5555\ntrustedUnderlay: true",
        &[
            (
                "spec.local",
                "spec.local and spec.localFrom are mutually exclusive",
            ),
            ("spec.address", "spec.address: must be an IPv4 prefix"),
            (
                "spec.peerAddress",
                "spec.peerAddress is supported only on FreeBSD TunnelInterface; Linux address semantics are unchanged",
            ),
            (
                "spec.encapSport",
                "spec.encapSport/spec.encapDport are only supported when spec.mode is fou or gue",
            ),
        ],
    );
    expect_error(
        "TunnelInterface",
        "mode: ipip\nlocal: 192.0.2.1\nremote: 2001:db8::2\ntrustedUnderlay: true",
        "spec.remote",
        "spec.remote must be an IPv4 address",
    );
    expect_error(
        "TunnelInterface",
        "mode: ipip\nlocal: 192.0.2.1\nremote: 192.0.2.2\nkey: 1\ntrustedUnderlay: true",
        "spec.key",
        "spec.key is only valid when spec.mode is gre",
    );
    expect_error(
        "TunnelInterface",
        "mode: ipip\nlocal: 192.0.2.1\nremote: 192.0.2.2\nttl: 256\ntrustedUnderlay: true",
        "spec.ttl",
        "spec.ttl must be within 0-255",
    );
    expect_error(
        "TunnelInterface",
        "mode: ipip\nlocal: 192.0.2.1\nremote: 192.0.2.2\nmtu: 100\ntrustedUnderlay: true",
        "spec.mtu",
        "spec.mtu must be within 576-9216",
    );
    expect_error(
        "TunnelInterface",
        "mode: gue\nlocal: 192.0.2.1\nremote: 192.0.2.2\ntrustedUnderlay: true",
        "spec.encap.dport",
        "spec.encap.dport must be within 1-65535 when spec.mode is fou or gue",
    );
}

// ---- AddressMobilityDomain / RemoteAddressClaim (removed upstream, kept here) ----

#[test]
fn mobility_domain_rules() {
    expect_valid(
        "AddressMobilityDomain",
        "prefix: 10.60.0.0/16\npeerRef: peer",
    );
    expect_error(
        "AddressMobilityDomain",
        "mode: selective-address",
        "spec.prefix",
        "spec.prefix: is required",
    );
    expect_error(
        "AddressMobilityDomain",
        "prefix: 10.60.0.0",
        "spec.prefix",
        "spec.prefix: must be a valid IPv4 CIDR: invalid IP address syntax",
    );
    expect_error(
        "AddressMobilityDomain",
        "prefix: 2001:db8::/32",
        "spec.prefix",
        "spec.prefix: must be an IPv4 CIDR",
    );
    expect_error(
        "AddressMobilityDomain",
        "prefix: 10.60.0.0/16\nmode: full-l2",
        "spec.mode",
        "spec.mode full L2 extension is not supported; routerd implements Selective Address Mobility",
    );
    expect_error(
        "AddressMobilityDomain",
        "prefix: 10.60.0.0/16\npeerRef: nope",
        "spec.peerRef",
        "spec.peerRef references missing OverlayPeer \"nope\"",
    );
}

const CLAIM_OK: &str = "domainRef: dom\naddress: 10.50.0.10/32\nownerSide: cloud\ncapture: {type: proxy-arp, interface: eth1}\ndelivery: {mode: route, peerRef: peer}";

fn claim(replace: &str, with: &str) -> String {
    assert!(CLAIM_OK.contains(replace), "{replace}");
    CLAIM_OK.replace(replace, with)
}

#[test]
fn address_claim_minimal_is_valid() {
    expect_valid("RemoteAddressClaim", CLAIM_OK);
    expect_valid(
        "RemoteAddressClaim",
        &claim(
            "capture: {type: proxy-arp, interface: eth1}",
            "capture: {type: provider-secondary-ip, providerRef: prof, providerMode: secondary-ip, nicRef: nic0, captureStrategy: route-table, activeWhen: {type: single-router}}",
        ),
    );
}

#[test]
fn address_claim_domain_rules() {
    expect_error(
        "RemoteAddressClaim",
        &claim("domainRef: dom\n", ""),
        "spec.domainRef",
        "spec.domainRef is required",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim("domainRef: dom", "domainRef: nope"),
        "spec.domainRef",
        "spec.domainRef references missing AddressMobilityDomain \"nope\"",
    );
}

#[test]
fn address_claim_address_rules() {
    expect_error(
        "RemoteAddressClaim",
        &claim("address: 10.50.0.10/32\n", ""),
        "spec.address",
        "spec.address: is required",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim("10.50.0.10/32", "10.50.0.10"),
        "spec.address",
        "spec.address: must be a valid IPv4 /32 CIDR: invalid IP address syntax",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim("10.50.0.10/32", "10.50.0.0/24"),
        "spec.address",
        "spec.address: must be an IPv4 /32 CIDR",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim("10.50.0.10/32", "10.99.0.10/32"),
        "spec.address",
        "spec.address \"10.99.0.10/32\" is outside AddressMobilityDomain \"dom\" prefix \"10.50.0.0/16\"",
    );
}

#[test]
fn address_claim_owner_side_enum() {
    expect_error(
        "RemoteAddressClaim",
        &claim("ownerSide: cloud", "ownerSide: both"),
        "spec.ownerSide",
        "spec.ownerSide must be cloud or onprem",
    );
}

#[test]
fn address_claim_capture_rules() {
    let cap = "capture: {type: proxy-arp, interface: eth1}";
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, "capture: {interface: eth1}"),
        "spec.capture.type",
        "spec.capture.type is required",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, "capture: {type: bgp-anycast}"),
        "spec.capture.type",
        "spec.capture.type \"bgp-anycast\" is reserved/not implemented in MVP",
    );
    expect_errors(
        "RemoteAddressClaim",
        &claim(cap, "capture: {type: provider-secondary-ip}"),
        &[
            (
                "spec.capture.providerRef",
                "spec.capture.providerRef is required when spec.capture.type is provider-secondary-ip",
            ),
            (
                "spec.capture.providerMode",
                "spec.capture.providerMode is required when spec.capture.type is provider-secondary-ip",
            ),
            (
                "spec.capture.nicRef",
                "spec.capture.nicRef is required when spec.capture.type is provider-secondary-ip",
            ),
            (
                "spec.capture.nicRef",
                "spec.capture.nicRef is required when spec.capture.captureStrategy is route-table",
            ),
        ]
        .into_iter()
        .filter(|(_, m)| !m.contains("route-table"))
        .collect::<Vec<_>>(),
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(
            cap,
            "capture: {type: provider-secondary-ip, providerRef: nope, providerMode: m, nicRef: n}",
        ),
        "spec.capture.providerRef",
        "spec.capture.providerRef references missing CloudProviderProfile \"nope\"",
    );
    expect_errors(
        "RemoteAddressClaim",
        &claim(
            cap,
            "capture: {type: provider-secondary-ip, providerRef: prof, providerMode: m, strategy: route-table}",
        ),
        &[
            (
                "spec.capture.nicRef",
                "spec.capture.nicRef is required when spec.capture.type is provider-secondary-ip",
            ),
            (
                "spec.capture.nicRef",
                "spec.capture.nicRef is required when spec.capture.captureStrategy is route-table",
            ),
        ],
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(
            cap,
            "capture: {type: provider-secondary-ip, providerRef: prof, providerMode: m, nicRef: n, configureOSAddress: true}",
        ),
        "spec.capture.interface",
        "spec.capture.interface is required when spec.capture.configureOSAddress is true",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, "capture: {type: proxy-arp}"),
        "spec.capture.interface",
        "spec.capture.interface is required when spec.capture.type is proxy-arp",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(
            cap,
            "capture: {type: proxy-arp, interface: eth1, captureStrategy: addr-add}",
        ),
        "spec.capture.captureStrategy",
        "spec.capture.captureStrategy must be proxy-arp when spec.capture.type is proxy-arp",
    );
}

#[test]
fn address_claim_active_when_rules() {
    let cap = "capture: {type: proxy-arp, interface: eth1}";
    let aw = |a: &str| format!("capture: {{type: proxy-arp, interface: eth1, activeWhen: {a}}}");
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, &aw("{type: vrrp-master}")),
        "spec.capture.activeWhen.virtualAddressRef",
        "spec.capture.activeWhen.virtualAddressRef is required when type is vrrp-master",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, &aw("{type: vrrp-master, virtualAddressRef: vip}")),
        "spec.capture.activeWhen.virtualAddressRef",
        "spec.capture.activeWhen.virtualAddressRef references missing VirtualAddress \"vip\"",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, &aw("{type: single-router, virtualAddressRef: vip}")),
        "spec.capture.activeWhen.virtualAddressRef",
        "spec.capture.activeWhen.virtualAddressRef must be empty when type is single-router",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(cap, &aw("{type: always}")),
        "spec.capture.activeWhen.type",
        "spec.capture.activeWhen.type must be single-router or vrrp-master",
    );
}

#[test]
fn address_claim_vrrp_master_names_an_existing_virtual_address() {
    let aw = "capture: {type: proxy-arp, interface: eth1, activeWhen: {type: vrrp-master, virtualAddressRef: vip}}";
    let text = format!(
        "{}---\n{}",
        doc(
            "VirtualAddress",
            "vip",
            "family: ipv4\ninterface: lan\naddress: 10.50.0.254/32\nmode: vrrp\nvrrp: {virtualRouterID: 7, priority: 150, peers: [10.50.0.2], preempt: true, authentication: change-me}",
        ),
        doc(
            "RemoteAddressClaim",
            "t",
            &claim("capture: {type: proxy-arp, interface: eth1}", aw)
        )
    );
    let ds = with_base(&text);
    assert!(errors(&ds).is_empty(), "{:?}", errors(&ds));
}

#[test]
fn virtual_address_rules() {
    expect_valid(
        "VirtualAddress",
        "family: ipv6\ninterface: lan\naddress: fd00::10/128\nmode: vrrp\nvrrp: {virtualRouterID: 71, priority: 150, peers: [fd00::3]}\ntrack: [{resource: BGPRouter/lan, unhealthyPenalty: 40}]",
    );
    expect_error(
        "VirtualAddress",
        "family: ipv4",
        "spec.address",
        "spec.address is required",
    );
    expect_error(
        "VirtualAddress",
        "address: 10.0.0.300",
        "spec.address",
        "spec.address must be an IP address",
    );
    expect_error(
        "VirtualAddress",
        "family: ipv4\naddress: fd00::1",
        "spec.address",
        "spec.address must be an IPv4 address when family is ipv4",
    );
    expect_error(
        "VirtualAddress",
        "family: ip\naddress: 10.0.0.1",
        "spec.family",
        "spec.family must be ipv4 or ipv6",
    );
    expect_error(
        "VirtualAddress",
        "mode: carp\naddress: 10.0.0.1",
        "spec.mode",
        "spec.mode must be static or vrrp",
    );
}

#[test]
fn address_claim_delivery_rules() {
    let d = "delivery: {mode: route, peerRef: peer}";
    expect_error(
        "RemoteAddressClaim",
        &claim(d, "delivery: {mode: l2, peerRef: peer}"),
        "spec.delivery.mode",
        "spec.delivery.mode must be route or bgp",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(d, "delivery: {mode: bgp}"),
        "spec.delivery.peerRef",
        "spec.delivery.peerRef is required",
    );
    expect_error(
        "RemoteAddressClaim",
        &claim(d, "delivery: {mode: route, peerRef: nope}"),
        "spec.delivery.peerRef",
        "spec.delivery.peerRef references missing OverlayPeer \"nope\"",
    );
}

// ---- status references (`*From`, `dependsOn`) ----

fn route_with(extra: &str) -> String {
    format!("destination: 10.0.0.0/8\n{extra}")
}

#[test]
fn status_reference_resource_must_be_kind_slash_name() {
    for r in ["wan", "Interface/", "/wan", "Interface/wan/x"] {
        expect_error(
            "IPv4Route",
            &route_with(&format!("deviceFrom: {{resource: \"{r}\", field: ifname}}")),
            "spec.deviceFrom.resource",
            "spec.deviceFrom.resource: must be Kind/name",
        );
    }
}

#[test]
fn status_reference_resource_required_when_field_is_set() {
    expect_error(
        "IPv4Route",
        &route_with("deviceFrom: {field: ifname}"),
        "spec.deviceFrom.resource",
        "spec.deviceFrom.resource is required when field is set",
    );
}

#[test]
fn dependency_resource_is_required() {
    expect_error(
        "IPv4Route",
        &route_with("dependsOn: [{phase: Up}]"),
        "spec.dependsOn[0].resource",
        "spec.dependsOn[0].resource is required",
    );
}

#[test]
fn status_value_source_field_is_required() {
    expect_error(
        "IPv4Route",
        &route_with("gatewayFrom: {resource: Interface/wan}"),
        "spec.gatewayFrom.field",
        "spec.gatewayFrom.field is required",
    );
    // Dependencies default their field to `phase`.
    expect_valid(
        "IPv4Route",
        &route_with("dependsOn: [{resource: Interface/wan}]"),
    );
}

#[test]
fn status_reference_must_exist_unless_optional() {
    expect_error(
        "IPv4Route",
        &route_with("deviceFrom: {resource: Interface/nope, field: ifname}"),
        "spec.deviceFrom",
        "spec.deviceFrom references missing Interface \"nope\"",
    );
    expect_error(
        "IPv4Route",
        &route_with("dependsOn: [{resource: DHCPv4Lease/wan, field: address}]"),
        "spec.dependsOn[0]",
        "spec.dependsOn[0] references missing DHCPv4Lease \"wan\"",
    );
    expect_valid(
        "IPv4Route",
        &route_with("deviceFrom: {resource: Interface/nope, field: ifname, optional: true}"),
    );
    expect_valid(
        "IPv4Route",
        &route_with("dependsOn: [{resource: Interface/nope, optional: true}]"),
    );
}

#[test]
fn status_reference_field_must_be_provided() {
    expect_error(
        "IPv4Route",
        &route_with("deviceFrom: {resource: EgressRoutePolicy/pol, field: selectedDev}"),
        "spec.deviceFrom",
        "spec.deviceFrom references EgressRoutePolicy/pol.selectedDev, but EgressRoutePolicy does not provide field \"selectedDev\"",
    );
    expect_error(
        "DSLiteTunnel",
        "interface: wan\naftrFrom: {resource: Interface/wan, field: aftr}",
        "spec.aftrFrom",
        "spec.aftrFrom references Interface/wan.aftr, but Interface does not provide field \"aftr\"",
    );
    expect_error(
        "IPv4Route",
        &route_with("dependsOn: [{resource: HealthCheck/hc, field: healthy}]"),
        "spec.dependsOn[0]",
        "spec.dependsOn[0] references HealthCheck/hc.healthy, but HealthCheck does not provide field \"healthy\"",
    );
    // `phase` is provided by every kind, and `phase:` forces it.
    expect_valid(
        "IPv4Route",
        &route_with("dependsOn: [{resource: HealthCheck/hc, field: healthy, phase: Healthy}]"),
    );
}

/// Every provides-table entry of routerd-spec §1.1 is accepted as a field.
#[test]
fn provides_tables_match_the_spec() {
    use routerd_model::Kind;
    let table: &[(Kind, &[&str])] = &[
        (
            Kind::Interface,
            &[
                "ifname",
                "addresses",
                "ipv4Addresses",
                "ipv6Addresses",
                "primaryIPv4",
                "primaryIPv6",
                "macAddress",
            ],
        ),
        (
            Kind::DSLiteTunnel,
            &[
                "interface",
                "device",
                "tunnelName",
                "localIPv6",
                "innerLocalIPv4",
                "innerRemoteIPv4",
                "localInterface",
                "aftrName",
                "aftrIPv6",
                "mtu",
                "dryRun",
            ],
        ),
        (
            Kind::HealthCheck,
            &[
                "role",
                "target",
                "sourceAddress",
                "sourceInterface",
                "protocol",
                "consecutiveFailed",
                "lastCheckedAt",
            ],
        ),
        (
            Kind::EgressRoutePolicy,
            &[
                "family",
                "selectedCandidate",
                "selectedSource",
                "selectedDevice",
                "selectedGateway",
                "selectedGatewaySource",
                "selectedRouteTable",
                "selectedMetric",
                "selectedWeight",
                "selectedTargets",
                "selectedInterface",
                "candidates",
                "role",
                "advisory",
                "lastTransitionAt",
                "updatedAt",
                "dryRun",
            ],
        ),
        (
            Kind::IPv4Route,
            &[
                "type",
                "destination",
                "device",
                "gateway",
                "preferredSource",
                "metric",
                "dryRun",
            ],
        ),
        (
            Kind::NAT44Rule,
            &["egressInterface", "snatAddress", "dryRun"],
        ),
        (
            Kind::OverlayPeer,
            &["nodeID", "role", "underlayType", "underlayInterface"],
        ),
        (
            Kind::HybridRoute,
            &["routes", "peerRef", "defaultRouteUntouched", "estimatedMTU"],
        ),
        (Kind::CloudProviderProfile, &["provider", "capabilities"]),
    ];
    for (kind, fields) in table {
        assert!(kind.provides_field("phase"));
        for f in *fields {
            assert!(kind.provides_field(f), "{kind} should provide {f}");
        }
        assert!(!kind.provides_field("noSuchField"));
    }
}

// ---- checks every resource gets ----

#[test]
fn wrong_group_is_reported() {
    let text = "apiVersion: hybrid.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: t}\nspec: {ifname: eth5}\n";
    let ds = with_base(text);
    let rid = "hybrid.routerd.net/v1alpha1/Interface/t";
    let errs = errors(&ds);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        format!("{rid} must use apiVersion net.routerd.net/v1alpha1")
    );
    assert_eq!(errs[0].resource.as_deref(), Some(rid));
    assert_eq!(errs[0].path.as_deref(), Some("apiVersion"));
    assert_eq!((errs[0].line, errs[0].column), (Some(1), Some(1)));
}

#[test]
fn dynamic_config_part_is_runtime_only() {
    let ds = diags("DynamicConfigPart", "source: Plugin/plug\ngeneration: 1");
    let errs = errors(&ds);
    let rid = id("DynamicConfigPart", "t");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].message,
        format!(
            "{rid} DynamicConfigPart is runtime-only: plugins produce it and `routerctl plan --dynamic` reads it; it cannot appear in startup config"
        )
    );
    assert_eq!(errs[0].path.as_deref(), Some("kind"));
    assert_eq!(errs[0].line, Some(2));
}

#[test]
fn duplicate_resource_is_reported_on_the_second() {
    let text = format!(
        "{}---\n{}",
        doc("Interface", "t", "ifname: a"),
        doc("Interface", "t", "ifname: b")
    );
    let ds = with_base(&text);
    let errs = errors(&ds);
    let rid = id("Interface", "t");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].message, format!("duplicate resource {rid}"));
    assert_eq!(errs[0].resource.as_deref(), Some(rid.as_str()));
    assert_eq!(errs[0].file.as_deref(), Some("t.yaml"));
    // The second document starts on line 8.
    assert_eq!((errs[0].line, errs[0].column), (Some(8), Some(1)));
}

#[test]
fn same_name_in_another_kind_is_not_a_duplicate() {
    let text = format!(
        "{}---\n{}",
        doc("Interface", "t", "ifname: a"),
        doc("IPv4Route", "t", "destination: 10.0.0.0/8")
    );
    assert!(errors(&with_base(&text)).is_empty());
}

// ---- `when` gates (§1.1) ----

#[test]
fn when_gates_are_valid() {
    expect_valid(
        "Interface",
        "ifname: e\nwhen:\n  state:\n    Interface/wan: {status: set, for: 30s, maxAge: 5m}",
    );
    expect_valid(
        "IPv4Route",
        "destination: 10.0.0.0/8\nwhen:\n  any:\n    - state: {HealthCheck/hc: {equals: Healthy}}\n    - all: [{state: {Interface/wan: {exists: true}}}]",
    );
}

#[test]
fn when_must_set_exactly_one_of_state_all_any() {
    expect_error(
        "Interface",
        "ifname: e\nwhen: {}",
        "spec.when",
        "spec.when must set exactly one of state, all, or any",
    );
    expect_error(
        "NAT44Rule",
        "type: masquerade\negressInterface: wan\nsourceRanges: [10.0.0.0/8]\nwhen: {state: {}, any: []}",
        "spec.when",
        "spec.when must set exactly one of state, all, or any",
    );
    expect_error(
        "IPv4Route",
        "destination: 10.0.0.0/8\nwhen:\n  all:\n    - state: {Interface/wan: {exists: true}}\n    - {}",
        "spec.when.all[1]",
        "spec.when.all[1] must set exactly one of state, all, or any",
    );
    expect_error(
        "EgressRoutePolicy",
        "candidates:\n  - name: a\n    when: {}",
        "spec.candidates[0].when",
        "spec.candidates[0].when must set exactly one of state, all, or any",
    );
}

#[test]
fn when_match_fields_are_checked() {
    expect_error(
        "HealthCheck",
        "when: {state: {Interface/wan: {status: up}}}",
        "spec.when.state.Interface/wan.status",
        "spec.when.state.Interface/wan.status must be set, unset, or unknown",
    );
    expect_error(
        "HealthCheck",
        "when: {state: {Interface/wan: {for: soon}}}",
        "spec.when.state.Interface/wan.for",
        "spec.when.state.Interface/wan.for must be a non-negative duration",
    );
    expect_error(
        "HealthCheck",
        "when: {state: {Interface/wan: {maxAge: 0s}}}",
        "spec.when.state.Interface/wan.maxAge",
        "spec.when.state.Interface/wan.maxAge must be a positive duration",
    );
}
