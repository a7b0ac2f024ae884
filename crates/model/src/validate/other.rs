//! Field rules of the config, plugin and hybrid kinds (routerd-spec §1.8).

use super::refs::NameIndex;
use super::util::*;
use crate::spec::*;
use crate::{GoDuration, Kind, Problems};

pub(super) fn override_policy(s: &DynamicOverridePolicySpec, p: &mut Problems<'_>) {
    for (i, a) in s.allow.iter().enumerate() {
        let base = format!("spec.allow[{i}]");
        if a.source.trim().is_empty() {
            p.field(&format!("{base}.source"), "is required");
        }
        for (j, op) in a.operations.iter().enumerate() {
            if op != "mask" {
                p.field(&format!("{base}.operations[{j}]"), "must be mask");
            }
        }
        for (j, t) in a.targets.iter().enumerate() {
            for (f, v) in [
                ("apiVersion", &t.api_version),
                ("kind", &t.kind),
                ("name", &t.name),
            ] {
                if v.trim().is_empty() {
                    p.field(&format!("{base}.targets[{j}].{f}"), "is required");
                }
            }
        }
    }
}

fn positive_duration(p: &mut Problems<'_>, path: &str, v: &str, required: bool) {
    if v.trim().is_empty() {
        if required {
            p.field(path, "is required");
        }
        return;
    }
    match GoDuration::parse(v.trim()) {
        Err(e) => p.field(path, format!("must be a valid duration: {e}")),
        Ok(d) if !d.is_positive() => p.field(path, "must be greater than 0"),
        Ok(_) => {}
    }
}

fn triggers(p: &mut Problems<'_>, list: &[Trigger]) {
    for (i, t) in list.iter().enumerate() {
        let base = format!("spec.triggers[{i}]");
        match t.type_.as_str() {
            "interval" => match t.every.as_deref().map(str::trim) {
                None | Some("") => p.field(
                    &format!("{base}.every"),
                    "is required for interval triggers",
                ),
                Some(e) => match GoDuration::parse(e) {
                    Ok(d) if d.is_positive() => {}
                    _ => p.field(&format!("{base}.every"), "must be a positive duration"),
                },
            },
            "event" => {
                if !set(&t.topic) {
                    p.field(&format!("{base}.topic"), "is required for event triggers");
                }
            }
            _ => p.field(&format!("{base}.type"), "must be interval or event"),
        }
    }
}

const CAPABILITIES: &[&str] = &[
    "observe.cloud",
    "observe.providerPrivateIPs",
    "propose.dynamicConfig",
    "propose.providerAction",
    "execute.providerAction",
];

pub(super) fn plugin(s: &PluginSpec, p: &mut Problems<'_>) {
    let exe = s.executable.trim();
    if exe.is_empty() {
        p.field("spec.executable", "is required");
    } else if !exe.starts_with('/') {
        p.field("spec.executable", "must be an absolute path");
    }
    if let Some(t) = s.timeout.as_deref() {
        positive_duration(p, "spec.timeout", t, false);
    }
    for (i, c) in s.capabilities.iter().enumerate() {
        if !CAPABILITIES.contains(&c.as_str()) {
            p.field(
                &format!("spec.capabilities[{i}]"),
                "must be observe.cloud, observe.providerPrivateIPs, propose.dynamicConfig, propose.providerAction, or execute.providerAction",
            );
        }
    }
    for k in s.env.keys() {
        if k.trim().is_empty() || k.contains('=') {
            p.field(
                "spec.env",
                format!("key \"{k}\" must be non-empty and must not contain '='"),
            );
        }
    }
    triggers(p, &s.triggers);
    if let Some(ctx) = &s.context {
        for (i, r) in ctx.resources.iter().enumerate() {
            for (f, v) in [
                ("apiVersion", &r.api_version),
                ("kind", &r.kind),
                ("name", &r.name),
            ] {
                if v.trim().is_empty() {
                    p.field(&format!("spec.context.resources[{i}].{f}"), "is required");
                }
            }
        }
    }
}

pub(super) fn dynamic_source(
    s: &DynamicConfigSourceSpec,
    idx: &NameIndex<'_>,
    p: &mut Problems<'_>,
) {
    if s.plugin_ref.trim().is_empty() {
        p.field("spec.pluginRef", "is required");
    } else if !idx.contains(Kind::Plugin, s.plugin_ref.trim()) {
        p.field(
            "spec.pluginRef",
            format!("references missing Plugin \"{}\"", s.plugin_ref.trim()),
        );
    }
    positive_duration(p, "spec.ttl", &s.ttl, true);
    if let Some(mp) = &s.merge_policy
        && let Some(c) = mp.conflict.as_deref()
        && !c.is_empty()
        && c != "reject"
    {
        p.field("spec.mergePolicy.conflict", "must be reject");
    }
    triggers(p, &s.triggers);
}

pub(super) fn overlay_peer(s: &OverlayPeerSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    if let Some(r) = s.role.as_deref() {
        if r != "onprem" && r != "cloud" {
            p.field("spec.role", "must be onprem or cloud");
        }
    } else {
        p.field("spec.role", "must be onprem or cloud");
    }
    if !set(&s.node_id) {
        p.field("spec.nodeID", "is required");
    }
    let u = s.underlay.clone().unwrap_or_default();
    let ty = u.type_.as_deref().unwrap_or("");
    const TYPES: &[&str] = &[
        "wireguard",
        "tailscale",
        "ipsec",
        "route",
        "ipip",
        "gre",
        "fou",
        "gue",
    ];
    if !TYPES.contains(&ty) {
        p.field(
            "spec.underlay.type",
            "must be wireguard, tailscale, ipsec, route, ipip, gre, fou, or gue",
        );
    }
    let tunnel = matches!(ty, "ipip" | "gre" | "fou" | "gue");
    if matches!(ty, "wireguard") || tunnel {
        match u
            .interface
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            None => p.field(
                "spec.underlay.interface",
                format!("is required when spec.underlay.type is {ty}"),
            ),
            Some(i) if tunnel && !idx.contains(Kind::TunnelInterface, i) => p.field(
                "spec.underlay.interface",
                format!("references missing TunnelInterface \"{i}\""),
            ),
            _ => {}
        }
    }
    if let Some(a) = u.address.as_deref().filter(|a| !a.trim().is_empty())
        && ip(a).is_none()
    {
        p.field("spec.underlay.address", "must be an IP address");
    }
    if ty == "ipsec"
        && let Some(a) = s.remote.as_ref().and_then(|r| r.address.as_deref())
        && ipv4(a).is_none()
    {
        p.field(
            "spec.remote.address",
            "must be an IPv4 address when spec.underlay.type is ipsec",
        );
    }
    if s.path_mtu
        .as_ref()
        .and_then(|m| m.force_fragment_ipv4)
        .unwrap_or(false)
        && !(ty == "wireguard" || tunnel)
    {
        p.at("spec.pathMTU.forceFragmentIPv4", "spec.pathMTU.forceFragmentIPv4 is supported only for underlay.type wireguard, ipip, gre, fou, or gue");
    }
}

pub(super) fn hybrid_route(s: &HybridRouteSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    if s.destination_cidrs.is_empty() {
        p.field("spec.destinationCIDRs", "is required");
    }
    for (i, c) in s.destination_cidrs.iter().enumerate() {
        let path = format!("spec.destinationCIDRs[{i}]");
        let c = c.trim();
        if c == "default" {
            p.at(&path, format!("{path}: default routes are not allowed"));
            continue;
        }
        match c.parse::<ipnet::IpNet>() {
            Err(e) => p.at(&path, format!("{path}: must be a valid CIDR: {e}")),
            Ok(n) if n.prefix_len() == 0 => {
                p.at(&path, format!("{path}: default routes are not allowed"))
            }
            Ok(ipnet::IpNet::V6(_)) => p.at(
                &path,
                format!("{path}: must be an IPv4 CIDR; HybridRoute MVP lowers to IPv4Route"),
            ),
            Ok(_) => {}
        }
    }
    match s
        .peer_ref
        .as_deref()
        .map(crate::lower::peer_name)
        .filter(|x| !x.is_empty())
    {
        None => p.field("spec.peerRef", "is required"),
        Some(peer) if !idx.contains(Kind::OverlayPeer, peer) => p.field(
            "spec.peerRef",
            format!("references missing OverlayPeer \"{peer}\""),
        ),
        _ => {}
    }
    if let Some(inst) = &s.install {
        if let Some(t) = inst.table.as_deref()
            && !t.is_empty()
            && t != "main"
        {
            p.field("spec.install.table", "must be empty or main; HybridRoute MVP lowers to IPv4Route, which installs only in the main table");
        }
        if inst.metric.is_some_and(|m| m < 0) {
            p.field("spec.install.metric", "must be >= 0");
        }
    }
    if let Some(h) = s
        .health_check_ref
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        && !idx.contains(Kind::HealthCheck, h)
    {
        p.field(
            "spec.healthCheckRef",
            format!("references missing HealthCheck \"{h}\""),
        );
    }
}

pub(super) fn cloud_profile(s: &CloudProviderProfileSpec, p: &mut Problems<'_>) {
    match s.provider.as_deref() {
        Some("azure" | "aws" | "oci" | "gcp") => {}
        _ => p.field("spec.provider", "must be azure, aws, oci, or gcp"),
    }
    if s.capabilities.is_empty() {
        p.field("spec.capabilities", "is required");
    }
    for (i, c) in s.capabilities.iter().enumerate() {
        if c.trim().is_empty() {
            p.field(&format!("spec.capabilities[{i}]"), "must not be empty");
        }
    }
    if let Some(a) = &s.auth {
        match a.mode.as_deref() {
            Some("external-command") => {
                if !set(&a.command) {
                    p.field(
                        "spec.auth.command",
                        "is required when spec.auth.mode is external-command",
                    );
                }
            }
            _ => p.field("spec.auth.mode", "must be external-command"),
        }
    }
}

pub(super) fn tunnel_interface(s: &TunnelInterfaceSpec, p: &mut Problems<'_>) {
    // vxlan is ours (routerd has ipip, gre, fou and gue): the one tunnel
    // this project's kernels always have, carried live (docs/resources.md).
    match s.mode.as_deref() {
        Some("ipip" | "gre" | "fou" | "gue" | "vxlan") => {}
        _ => p.field("spec.mode", "must be ipip, gre, fou, gue, or vxlan"),
    }
    let vxlan = s.mode.as_deref() == Some("vxlan");
    for (f, v, from) in [
        ("local", &s.local, &s.local_from),
        ("remote", &s.remote, &s.remote_from),
    ] {
        let from = from.as_ref().filter(|x| !x.resource.trim().is_empty());
        match (v.as_deref().filter(|x| !x.trim().is_empty()), from) {
            (Some(_), Some(_)) => p.at(
                &format!("spec.{f}"),
                format!("spec.{f} and spec.{f}From are mutually exclusive"),
            ),
            (None, None) => p.at(
                &format!("spec.{f}"),
                format!("spec.{f} or spec.{f}From is required"),
            ),
            (Some(a), None) if ipv4(a).is_none() => {
                p.field(&format!("spec.{f}"), "must be an IPv4 address")
            }
            (None, Some(src)) if src.field.as_deref().is_none_or(|x| x.trim().is_empty()) => {
                p.field(&format!("spec.{f}From.field"), "is required")
            }
            _ => {}
        }
    }
    if let Some(a) = s.address.as_deref().filter(|x| !x.trim().is_empty())
        && !matches!(a.trim().parse::<ipnet::IpNet>(), Ok(ipnet::IpNet::V4(_)))
    {
        p.at("spec.address", "spec.address: must be an IPv4 prefix");
    }
    if s.peer_address
        .as_deref()
        .is_some_and(|x| !x.trim().is_empty())
    {
        p.field(
            "spec.peerAddress",
            "is supported only on FreeBSD TunnelInterface; Linux address semantics are unchanged",
        );
    }
    let fou = matches!(s.mode.as_deref(), Some("fou" | "gue"));
    for (f, v) in [("encapSport", s.encap_sport), ("encapDport", s.encap_dport)] {
        // A vxlan tunnel's UDP destination port is its encapDport.
        let udp = fou || (vxlan && f == "encapDport");
        if let Some(port) = v
            && port != 0
            && (!udp || !(1..=65535).contains(&port))
        {
            if udp {
                p.field(&format!("spec.{f}"), "must be within 1-65535");
            } else {
                p.at(
                    &format!("spec.{f}"),
                    "spec.encapSport/spec.encapDport are only supported when spec.mode is fou or gue",
                );
            }
        }
    }
    // routerd's acknowledgement, kept now that the tunnels are created
    // here: none of these modes encrypts or authenticates, so the operator
    // states that the underlay is trusted.
    if s.trusted_underlay != Some(true) {
        p.at(
            "spec.trustedUnderlay",
            if vxlan {
                "spec.trustedUnderlay must be true; vxlan tunnels are unencrypted and unauthenticated and require a trusted underlay"
            } else {
                "spec.trustedUnderlay must be true; ipip/gre/fou/gue tunnels are unencrypted and unauthenticated and require a trusted underlay"
            },
        );
    }
    if vxlan {
        // The VNI: a vxlan tunnel has no GRE key, and the key field says
        // the same thing (which tunnel of a pair of endpoints).
        match s.key {
            None => p.field("spec.key", "is required when spec.mode is vxlan (the VNI)"),
            Some(k) if !(0..=16_777_215).contains(&k) => p.field(
                "spec.key",
                "must be within 0-16777215 when spec.mode is vxlan",
            ),
            Some(_) => {}
        }
    } else if s.key.is_some() && s.mode.as_deref() != Some("gre") {
        p.field("spec.key", "is only valid when spec.mode is gre");
    }
    if s.ttl.is_some_and(|t| !(0..=255).contains(&t)) {
        p.field("spec.ttl", "must be within 0-255");
    }
    if let Some(m) = s.mtu
        && m != 0
        && !(576..=9216).contains(&m)
    {
        p.field("spec.mtu", "must be within 576-9216");
    }
    if matches!(s.mode.as_deref(), Some("fou" | "gue")) {
        let e = s.encap.clone().unwrap_or_default();
        // routerd spells it spec.encapDport; either is the destination port.
        if !e
            .dport
            .or(s.encap_dport)
            .is_some_and(|d| (1..=65535).contains(&d))
        {
            p.field(
                "spec.encap.dport",
                "must be within 1-65535 when spec.mode is fou or gue",
            );
        }
    }
}

pub(super) fn mobility_domain(
    s: &AddressMobilityDomainSpec,
    idx: &NameIndex<'_>,
    p: &mut Problems<'_>,
) {
    match s.prefix.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
        None => p.at("spec.prefix", "spec.prefix: is required"),
        Some(x) => match x.parse::<ipnet::IpNet>() {
            Err(e) => p.at(
                "spec.prefix",
                format!("spec.prefix: must be a valid IPv4 CIDR: {e}"),
            ),
            Ok(ipnet::IpNet::V6(_)) => p.at("spec.prefix", "spec.prefix: must be an IPv4 CIDR"),
            Ok(_) => {}
        },
    }
    if let Some(m) = s.mode.as_deref()
        && !m.is_empty()
        && m != "selective-address"
    {
        p.field(
            "spec.mode",
            "full L2 extension is not supported; routerd implements Selective Address Mobility",
        );
    }
    if let Some(peer) = s
        .peer_ref
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        && !idx.contains(Kind::OverlayPeer, peer)
    {
        p.field(
            "spec.peerRef",
            format!("references missing OverlayPeer \"{peer}\""),
        );
    }
}

pub(super) fn address_claim(
    s: &RemoteAddressClaimSpec,
    idx: &NameIndex<'_>,
    resources: &[crate::Resource],
    p: &mut Problems<'_>,
) {
    let domain = s
        .domain_ref
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty());
    match domain {
        None => p.field("spec.domainRef", "is required"),
        Some(d) if !idx.contains(Kind::AddressMobilityDomain, d) => p.field(
            "spec.domainRef",
            format!("references missing AddressMobilityDomain \"{d}\""),
        ),
        _ => {}
    }
    let mut addr = None;
    match s
        .address
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
    {
        None => p.at("spec.address", "spec.address: is required"),
        Some(a) => match a.parse::<ipnet::IpNet>() {
            Err(e) => p.at(
                "spec.address",
                format!("spec.address: must be a valid IPv4 /32 CIDR: {e}"),
            ),
            Ok(ipnet::IpNet::V4(n)) if n.prefix_len() == 32 => addr = Some(n.addr()),
            Ok(_) => p.at("spec.address", "spec.address: must be an IPv4 /32 CIDR"),
        },
    }
    if let (Some(d), Some(a)) = (domain, addr) {
        let prefix = idx
            .get(Kind::AddressMobilityDomain, d)
            .and_then(|i| resources.get(i))
            .and_then(|r| match &r.spec {
                crate::Spec::AddressMobilityDomain(m) => m.prefix.clone(),
                _ => None,
            });
        if let Some(pfx) = prefix
            && let Ok(ipnet::IpNet::V4(n)) = pfx.trim().parse::<ipnet::IpNet>()
            && !n.contains(&a)
        {
            p.field(
                "spec.address",
                format!("\"{a}/32\" is outside AddressMobilityDomain \"{d}\" prefix \"{pfx}\""),
            );
        }
    }
    match s.owner_side.as_deref() {
        Some("cloud" | "onprem") => {}
        _ => p.field("spec.ownerSide", "must be cloud or onprem"),
    }
    let c = s.capture.clone().unwrap_or_default();
    match c.type_.as_deref().map(str::trim).unwrap_or("") {
        "" => p.field("spec.capture.type", "is required"),
        "provider-secondary-ip" => {
            for (f, v) in [
                ("providerRef", &c.provider_ref),
                ("providerMode", &c.provider_mode),
                ("nicRef", &c.nic_ref),
            ] {
                if !set(v) {
                    p.field(
                        &format!("spec.capture.{f}"),
                        "is required when spec.capture.type is provider-secondary-ip",
                    );
                }
            }
            if let Some(pr) = c
                .provider_ref
                .as_deref()
                .map(str::trim)
                .filter(|x| !x.is_empty())
                && !idx.contains(Kind::CloudProviderProfile, pr)
            {
                p.field(
                    "spec.capture.providerRef",
                    format!("references missing CloudProviderProfile \"{pr}\""),
                );
            }
            let strategy = c
                .capture_strategy
                .as_deref()
                .or(c.strategy.as_deref())
                .unwrap_or("");
            if strategy == "route-table" && !set(&c.nic_ref) {
                p.field(
                    "spec.capture.nicRef",
                    "is required when spec.capture.captureStrategy is route-table",
                );
            }
            if c.configure_os_address == Some(true) && !set(&c.interface) {
                p.field(
                    "spec.capture.interface",
                    "is required when spec.capture.configureOSAddress is true",
                );
            }
        }
        "proxy-arp" => {
            if !set(&c.interface) {
                p.field(
                    "spec.capture.interface",
                    "is required when spec.capture.type is proxy-arp",
                );
            }
            let strategy = c
                .capture_strategy
                .as_deref()
                .or(c.strategy.as_deref())
                .unwrap_or("proxy-arp");
            if strategy != "proxy-arp" {
                p.field(
                    "spec.capture.captureStrategy",
                    "must be proxy-arp when spec.capture.type is proxy-arp",
                );
            }
        }
        other => p.field(
            "spec.capture.type",
            format!("\"{other}\" is reserved/not implemented in MVP"),
        ),
    }
    if let Some(aw) = &c.active_when {
        match aw.type_.as_deref().unwrap_or("") {
            "vrrp-master" => match aw
                .virtual_address_ref
                .as_deref()
                .filter(|x| !x.trim().is_empty())
            {
                None => p.field(
                    "spec.capture.activeWhen.virtualAddressRef",
                    "is required when type is vrrp-master",
                ),
                Some(v) if !idx.contains(Kind::VirtualAddress, v.trim()) => p.field(
                    "spec.capture.activeWhen.virtualAddressRef",
                    format!("references missing VirtualAddress \"{}\"", v.trim()),
                ),
                Some(_) => {}
            },
            "single-router" | "" => {
                if set(&aw.virtual_address_ref) {
                    p.field(
                        "spec.capture.activeWhen.virtualAddressRef",
                        "must be empty when type is single-router",
                    );
                }
            }
            _ => p.field(
                "spec.capture.activeWhen.type",
                "must be single-router or vrrp-master",
            ),
        }
    }
    let d = s.delivery.clone().unwrap_or_default();
    match d.mode.as_deref().unwrap_or("") {
        "route" | "bgp" => {}
        _ => p.field("spec.delivery.mode", "must be route or bgp"),
    }
    match d
        .peer_ref
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
    {
        None => p.field("spec.delivery.peerRef", "is required"),
        Some(peer) if !idx.contains(Kind::OverlayPeer, peer) => p.field(
            "spec.delivery.peerRef",
            format!("references missing OverlayPeer \"{peer}\""),
        ),
        _ => {}
    }
}

/// VirtualAddress: only what this daemon reads is checked (the address it
/// looks for on the host, its family and mode); VRRP settings are kept for
/// whoever runs VRRP (ADR 0018).
pub(super) fn virtual_address(s: &crate::spec::VirtualAddressSpec, p: &mut Problems<'_>) {
    let family = s.family.as_deref().map(str::trim).unwrap_or("");
    if !matches!(family, "" | "ipv4" | "ipv6") {
        p.field("spec.family", "must be ipv4 or ipv6");
    }
    if !matches!(
        s.mode.as_deref().map(str::trim).unwrap_or(""),
        "" | "static" | "vrrp"
    ) {
        p.field("spec.mode", "must be static or vrrp");
    }
    match s
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        None if s.address_from.is_none() => p.field("spec.address", "is required"),
        None => {}
        Some(_) => match s.host() {
            None => p.field("spec.address", "must be an IP address"),
            Some(ip) if family == "ipv4" && !ip.is_ipv4() => {
                p.field(
                    "spec.address",
                    "must be an IPv4 address when family is ipv4",
                );
            }
            Some(ip) if family == "ipv6" && !ip.is_ipv6() => {
                p.field(
                    "spec.address",
                    "must be an IPv6 address when family is ipv6",
                );
            }
            Some(_) => {}
        },
    }
}
