//! Validation of the egress gateway kinds (issue #18): Node, ClientGroup,
//! EgressGateway and EgressGatewayPolicy. Everything that can be known
//! from the file is checked here (membership, subnets, VRRP ids,
//! references); what depends on live membership is a status reason.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Finding;
use crate::diag::Diagnostic;
use crate::id::{Kind, NET_API};
use crate::resource::Resource;
use crate::spec::gateway::{
    ClientGroupSpec, DECKHOUSE_NETWORK_API, EgressGatewayPolicySpec, EgressGatewaySpec,
    MODE_PRIMARY_IP, MODE_VIRTUAL_IP, NodeSpec, SourceMode, VRRP_ID_ANNOTATION, labels_match,
    members, vrrp_id,
};
use crate::{GoDuration, Problems};

use super::refs::NameIndex;

fn bad_ifname(n: &str) -> bool {
    n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace)
}

/// An address bare or in CIDR form.
fn addr_or_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<IpNet>().ok().map(|n| n.addr()))
}

pub(super) fn node(s: &NodeSpec, p: &mut Problems<'_>) {
    if s.addresses.is_empty() {
        p.field(
            "spec.addresses",
            "is required: list the address other members reach this node at (VRRP and conntrackd peers)",
        );
    }
    for (i, a) in s.addresses.iter().enumerate() {
        if addr_or_cidr(a).is_none() {
            p.field(
                &format!("spec.addresses[{i}]"),
                format!("must be an IP address, not \"{}\"", a.trim()),
            );
        }
    }
    for (i, ifc) in s.interfaces.iter().enumerate() {
        if bad_ifname(ifc.name.trim()) {
            p.field(
                &format!("spec.interfaces[{i}].name"),
                format!(
                    "\"{}\" is not a valid kernel interface name",
                    ifc.name.trim()
                ),
            );
        }
        for (j, a) in ifc.addresses.iter().enumerate() {
            let a = a.trim();
            if !(a.contains('/') && a.parse::<IpNet>().is_ok()) {
                p.field(
                    &format!("spec.interfaces[{i}].addresses[{j}]"),
                    format!("must be an IP address in CIDR form (like 192.0.2.11/24), not \"{a}\""),
                );
            }
        }
    }
}

pub(super) fn client_group(s: &ClientGroupSpec, p: &mut Problems<'_>) {
    if s.source_cidrs.is_empty() && s.interfaces.is_empty() {
        p.at(
            "spec",
            "selects no traffic: set spec.sourceCIDRs or spec.interfaces",
        );
    }
    cidrs(&s.source_cidrs, "spec.sourceCIDRs", p);
    for (i, n) in s.interfaces.iter().enumerate() {
        if bad_ifname(n.trim()) {
            p.field(
                &format!("spec.interfaces[{i}]"),
                format!("\"{}\" is not a valid kernel interface name", n.trim()),
            );
        }
    }
}

fn cidrs(list: &[String], path: &str, p: &mut Problems<'_>) {
    for (i, c) in list.iter().enumerate() {
        if c.trim().parse::<IpNet>().is_err() {
            p.field(
                &format!("{path}[{i}]"),
                format!(
                    "must be a prefix in CIDR form (like 10.0.0.0/8), not \"{}\"",
                    c.trim()
                ),
            );
        }
    }
}

/// Subnets a node declares, optionally only on the named interfaces.
fn node_subnets(n: &NodeSpec, only: &[String]) -> Vec<IpNet> {
    n.interfaces
        .iter()
        .filter(|i| only.is_empty() || only.iter().any(|o| o.trim() == i.name.trim()))
        .flat_map(|i| i.addresses.iter())
        .filter_map(|a| a.trim().parse::<IpNet>().ok())
        .map(|n| n.trunc())
        .collect()
}

/// Reports an address outside the subnets of every member that declares
/// its interfaces (unknowable members are skipped; if none is knowable
/// nothing is said).
fn check_subnet(
    path: &str,
    what: &str,
    addr: IpAddr,
    only: &[String],
    members: &[&Resource],
    p: &mut Problems<'_>,
) {
    let mut knowable = Vec::new();
    let mut inside = Vec::new();
    for m in members {
        let Some(n) = m.as_node() else { continue };
        let subnets = node_subnets(n, only);
        if subnets.is_empty() {
            continue;
        }
        knowable.push(m.name());
        if subnets.iter().any(|s| s.contains(&addr)) {
            inside.push(m.name());
        }
    }
    if knowable.is_empty() {
        return;
    }
    if inside.is_empty() {
        p.field(
            path,
            format!(
                "{addr} is outside every member's interface subnet ({}): the {what} could not be placed on any member",
                knowable.join(", ")
            ),
        );
    } else if inside.len() < knowable.len() {
        let outside: Vec<&str> = knowable
            .iter()
            .filter(|k| !inside.contains(k))
            .copied()
            .collect();
        p.warn(
            path,
            format!(
                "{path} {addr} is outside the interface subnets of {}: those members could not take the role",
                outside.join(", ")
            ),
        );
    }
}

pub(super) fn gateway(
    r: &Resource,
    s: &EgressGatewaySpec,
    resources: &[Resource],
    idx: &NameIndex<'_>,
    p: &mut Problems<'_>,
) {
    let deckhouse = r.api_version == DECKHOUSE_NETWORK_API;
    if deckhouse {
        for (set, field) in [
            (s.internal.is_some(), "spec.internal"),
            (s.vrrp.is_some(), "spec.vrrp"),
            (!s.health_checks.is_empty(), "spec.healthChecks"),
            (s.connection_sync.is_some(), "spec.connectionSync"),
        ] {
            if set {
                p.field(
                    field,
                    format!("is routerd's field and not part of {DECKHOUSE_NETWORK_API}: use apiVersion {NET_API}"),
                );
            }
        }
    }

    let members = members(s, resources);
    if members.is_empty() {
        let selector: Vec<String> = s
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        p.field(
            "spec.nodeSelector",
            format!(
                "{{{}}} matches no Node: declare the members as Node resources carrying these labels",
                selector.join(", ")
            ),
        );
    }

    let Some(src) = &s.source_ip else {
        p.field(
            "spec.sourceIP",
            format!("is required: mode {MODE_PRIMARY_IP} or {MODE_VIRTUAL_IP}"),
        );
        return;
    };
    match s.mode() {
        None => p.field(
            "spec.sourceIP.mode",
            format!(
                "must be {MODE_PRIMARY_IP} or {MODE_VIRTUAL_IP}, not \"{}\"",
                src.mode.trim()
            ),
        ),
        Some(SourceMode::PrimaryIp) => {
            match s.primary_interface() {
                None => p.field(
                    "spec.sourceIP.primaryIPFromEgressGatewayNodeInterface.interfaceName",
                    format!("is required in mode {MODE_PRIMARY_IP}"),
                ),
                Some(n) if bad_ifname(n) => p.field(
                    "spec.sourceIP.primaryIPFromEgressGatewayNodeInterface.interfaceName",
                    format!("\"{n}\" is not a valid kernel interface name"),
                ),
                Some(_) => {}
            }
            if src.virtual_ip.is_some() {
                p.warn(
                    "spec.sourceIP.virtualIPAddress",
                    format!("spec.sourceIP.virtualIPAddress is ignored in mode {MODE_PRIMARY_IP}"),
                );
            }
            if s.effective_internal(&r.metadata.annotations).is_none() {
                p.warn(
                    "spec.sourceIP",
                    "clients have no next hop that moves with the active role: set spec.internal (or the routerd.net/internal-ip annotation)",
                );
            }
        }
        Some(SourceMode::VirtualIp) => {
            let path = "spec.sourceIP.virtualIPAddress.ip";
            match s.virtual_ip() {
                None => p.field(path, format!("is required in mode {MODE_VIRTUAL_IP}")),
                Some(v) => match addr_or_cidr(v) {
                    None => p.field(path, format!("must be an IP address, not \"{v}\"")),
                    Some(a) => {
                        let only = src
                            .virtual_ip
                            .as_ref()
                            .map(|v| v.interfaces.as_slice())
                            .unwrap_or(&[]);
                        check_subnet(path, "virtual IP", a, only, &members, p);
                    }
                },
            }
            if let Some(v) = &src.virtual_ip {
                for (i, n) in v.interfaces.iter().enumerate() {
                    if bad_ifname(n.trim()) {
                        p.field(
                            &format!("spec.sourceIP.virtualIPAddress.interfaces[{i}]"),
                            format!("\"{}\" is not a valid kernel interface name", n.trim()),
                        );
                    }
                }
                if let Some(t) = v.routing_table_name.as_deref().map(str::trim)
                    && (t.is_empty() || t.contains(char::is_whitespace))
                {
                    p.field(
                        "spec.sourceIP.virtualIPAddress.routingTableName",
                        format!("\"{t}\" is not a table number or rt_tables name"),
                    );
                }
            }
            if src.primary_ip.is_some() {
                p.warn(
                    "spec.sourceIP.primaryIPFromEgressGatewayNodeInterface",
                    format!("spec.sourceIP.primaryIPFromEgressGatewayNodeInterface is ignored in mode {MODE_VIRTUAL_IP}"),
                );
            }
        }
    }

    if let Some(i) = s.effective_internal(&r.metadata.annotations) {
        let path = if s.internal.is_some() {
            "spec.internal.ip"
        } else {
            "metadata.annotations"
        };
        match addr_or_cidr(&i.ip) {
            None => p.field(path, format!("must be an IP address, not \"{}\"", i.ip)),
            Some(a) => {
                let only: Vec<String> = i.interface.iter().cloned().collect();
                check_subnet(path, "internal address", a, &only, &members, p);
            }
        }
    }

    if let Some(v) = &s.vrrp {
        if let Some(id) = v.id
            && !(1..=255).contains(&id)
        {
            p.field("spec.vrrp.id", format!("must be within 1-255, not {id}"));
        }
        if let Some(a) = v.advert_interval.as_deref() {
            match GoDuration::parse(a.trim()) {
                Err(e) => p.field("spec.vrrp.advertInterval", e),
                Ok(d) => {
                    let ms = d.as_nanos() / 1_000_000;
                    if !(10..=40_950).contains(&ms) || d.as_nanos() % 10_000_000 != 0 {
                        p.field(
                            "spec.vrrp.advertInterval",
                            format!("must be a multiple of 10ms within 10ms-40.95s (VRRPv3 counts centiseconds), not {a}"),
                        );
                    }
                }
            }
        }
        if let Some(d) = v.preempt_delay.as_deref() {
            match GoDuration::parse(d.trim()) {
                Err(e) => p.field("spec.vrrp.preemptDelay", e),
                Ok(x) if x.as_nanos() < 0 || x.as_nanos() > 1_000 * 1_000_000_000 => p.field(
                    "spec.vrrp.preemptDelay",
                    format!("must be within 0s-1000s, not {d}"),
                ),
                Ok(_) if !s.preempt() => p.warn(
                    "spec.vrrp.preemptDelay",
                    "spec.vrrp.preemptDelay has no effect without spec.vrrp.preempt: true",
                ),
                Ok(_) => {}
            }
        }
    }
    if let Some(v) = r.metadata.annotations.get(VRRP_ID_ANNOTATION)
        && !v.trim().parse::<u8>().is_ok_and(|n| n >= 1)
    {
        p.field(
            "metadata.annotations",
            format!("{VRRP_ID_ANNOTATION} must be within 1-255, not \"{v}\""),
        );
    }
    for (i, h) in s.health_checks.iter().enumerate() {
        if !idx.contains(Kind::HealthCheck, h.trim()) {
            p.field(
                &format!("spec.healthChecks[{i}]"),
                format!("references missing HealthCheck \"{}\"", h.trim()),
            );
        }
    }
}

/// Two gateways with the same VRRP id would fight over one virtual
/// router (keepalived drops adverts of the other instance as foreign), so
/// the second is an error naming the first.
pub(super) fn vrrp_id_clashes(resources: &[Resource]) -> Vec<Finding> {
    let mut first: HashMap<u8, &Resource> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let Some(s) = r.as_egress_gateway() else {
            continue;
        };
        let (id, explicit) = vrrp_id(r, s);
        match first.get(&id) {
            None => {
                first.insert(id, r);
            }
            Some(other) => {
                let rid = r.id().to_string();
                let how = if explicit {
                    String::new()
                } else {
                    format!(
                        " (derived from the name; set spec.vrrp.id or the {VRRP_ID_ANNOTATION} annotation)"
                    )
                };
                out.push(Finding {
                    index: Some(i),
                    diagnostic: Diagnostic::error(format!(
                        "{rid} spec.vrrp.id {id} is also used by {}{how}: each gateway needs its own virtual router id",
                        other.id()
                    ))
                    .with_resource(&rid)
                    .with_path("spec.vrrp.id"),
                });
            }
        }
    }
    out
}

pub(super) fn policy(
    r: &Resource,
    s: &EgressGatewayPolicySpec,
    resources: &[Resource],
    p: &mut Problems<'_>,
) {
    let deckhouse = r.api_version == DECKHOUSE_NETWORK_API;
    let gw = s.egress_gateway_name.trim();
    if gw.is_empty() {
        p.field("spec.egressGatewayName", "is required");
    } else if !resources
        .iter()
        .any(|o| o.kind() == Kind::EgressGateway && o.name() == gw)
    {
        p.field(
            "spec.egressGatewayName",
            format!("references missing EgressGateway \"{gw}\""),
        );
    }
    if s.destination_cidrs.is_empty() {
        p.field(
            "spec.destinationCIDRs",
            "is required: list the destinations to steer (0.0.0.0/0 for all)",
        );
    }
    cidrs(&s.destination_cidrs, "spec.destinationCIDRs", p);
    cidrs(&s.excluded_cidrs, "spec.excludedCIDRs", p);
    cidrs(&s.source_cidrs, "spec.sourceCIDRs", p);
    for (i, n) in s.ingress_interfaces.iter().enumerate() {
        if bad_ifname(n.trim()) {
            p.field(
                &format!("spec.ingressInterfaces[{i}]"),
                format!("\"{}\" is not a valid kernel interface name", n.trim()),
            );
        }
    }
    if deckhouse {
        for (set, field) in [
            (!s.source_cidrs.is_empty(), "spec.sourceCIDRs"),
            (!s.ingress_interfaces.is_empty(), "spec.ingressInterfaces"),
        ] {
            if set {
                p.field(
                    field,
                    format!("is routerd's field and not part of {DECKHOUSE_NETWORK_API}: use apiVersion {NET_API}"),
                );
            }
        }
    }
    for (i, sel) in s.selectors.iter().enumerate() {
        let Some(ps) = &sel.pod_selector else {
            p.field(
                &format!("spec.selectors[{i}]"),
                "needs podSelector.matchLabels (matched against ClientGroup labels)",
            );
            continue;
        };
        let any = resources.iter().any(|g| {
            g.kind() == Kind::ClientGroup && labels_match(&ps.match_labels, &g.metadata.labels)
        });
        if !any {
            p.warn(
                &format!("spec.selectors[{i}].podSelector.matchLabels"),
                format!("spec.selectors[{i}].podSelector.matchLabels matches no ClientGroup: the selector steers no traffic until one carries these labels"),
            );
        }
    }
    if s.selectors.is_empty() && s.source_cidrs.is_empty() && s.ingress_interfaces.is_empty() {
        p.at(
            "spec.selectors",
            "selects no clients: set spec.selectors (ClientGroup labels), spec.sourceCIDRs or spec.ingressInterfaces",
        );
    }
}
