//! Egress gateway groups across hosts (issue #18): `Node`, `ClientGroup`,
//! `EgressGateway` and `EgressGatewayPolicy`.
//!
//! `EgressGateway` and `EgressGatewayPolicy` are accepted under two
//! apiVersions: Deckhouse's (`network.deckhouse.io/v1alpha1`), so a
//! resource copied from a cluster loads unchanged, and ours, which adds
//! what a group of plain hosts needs (VRRP parameters, the clients' next
//! hop, uplink health checks, source CIDRs and ingress interfaces). The
//! Deckhouse shape stays exactly Deckhouse's; the few things it cannot say
//! come from annotations ([`INTERNAL_IP_ANNOTATION`]) or defaults.
//!
//! Kubernetes has Node objects and pod labels; a host group has neither,
//! so `Node` declares the members (the same file on every member) and
//! `ClientGroup` gives label-selectable names to source CIDRs or ingress
//! interfaces, which is what `podSelector.matchLabels` selects here.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use crate::id::Kind;
use crate::resource::Resource;
use serde::{Deserialize, Serialize};

/// Deckhouse's API group for the gateway kinds, accepted unchanged.
pub const DECKHOUSE_NETWORK_API: &str = "network.deckhouse.io/v1alpha1";

/// Annotation carrying the clients' next hop (`ip/prefix` or `ip`) for the
/// Deckhouse shape, which has no field for it: on Kubernetes Cilium
/// tunnels to the active node, on plain hosts clients need an address
/// that moves with the active role.
pub const INTERNAL_IP_ANNOTATION: &str = "routerd.net/internal-ip";

/// Annotation naming the interface of [`INTERNAL_IP_ANNOTATION`].
pub const INTERNAL_INTERFACE_ANNOTATION: &str = "routerd.net/internal-interface";

/// Annotation that sets the VRRP id of a Deckhouse-shaped gateway, whose
/// shape has no field for it (a derived id may clash).
pub const VRRP_ID_ANNOTATION: &str = "routerd.net/vrrp-id";

/// `sourceIP.mode` value: the active node's primary address on an interface.
pub const MODE_PRIMARY_IP: &str = "PrimaryIPFromEgressGatewayNodeInterface";
/// `sourceIP.mode` value: a virtual address that moves with the active role.
pub const MODE_VIRTUAL_IP: &str = "VirtualIPAddress";

/// Default VRRP advertisement interval: 100 ms (keepalived's default of
/// 1 s gives about 3.6 s failover; issue #18 asks for under 1 s).
pub const DEFAULT_ADVERT_INTERVAL: &str = "100ms";

/// `spec` of a Node: one member of a host group. Labels are the
/// resource's `metadata.labels`, which `nodeSelector` matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// Addresses other members reach this node at (VRRP unicast peers,
    /// conntrackd sync); the first is used. Bare or in CIDR form.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The node's interfaces with their addresses in CIDR form, so a
    /// virtual IP can be checked against the members' subnets and
    /// primary-IP mode knows the source address before the node reports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<NodeInterface>,
}

/// One interface of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInterface {
    /// Kernel name.
    #[serde(default)]
    pub name: String,
    /// Addresses in CIDR form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// `spec` of a ClientGroup: what a `podSelector` selects on plain hosts.
/// Labels are the resource's `metadata.labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientGroupSpec {
    /// Source prefixes of the clients.
    #[serde(default, rename = "sourceCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<String>,
    /// Interfaces the clients' traffic arrives on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// `spec` of an EgressGateway (Deckhouse's fields, then ours).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressGatewaySpec {
    /// Node labels a member must carry (every pair must match; an empty
    /// value matches an empty label, as in Kubernetes).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Where the egress traffic's source address comes from.
    #[serde(default, rename = "sourceIP", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<SourceIp>,
    /// The clients' next hop (routerd's apiVersion): an address that moves
    /// with the active role on the internal side. Without it clients use
    /// the virtual IP itself (one-armed gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalAddress>,
    /// VRRP parameters (routerd's apiVersion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VrrpParams>,
    /// HealthCheck names that must pass for this node to be suitable
    /// (routerd's apiVersion): the uplink's health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<String>,
    /// Whether conntrackd keeps established connections across a failover
    /// (VirtualIPAddress mode only; default true there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_sync: Option<bool>,
}

/// `spec.sourceIP`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceIp {
    /// `PrimaryIPFromEgressGatewayNodeInterface` or `VirtualIPAddress`.
    #[serde(default)]
    pub mode: String,
    /// Parameters of the primary-IP mode.
    #[serde(
        default,
        rename = "primaryIPFromEgressGatewayNodeInterface",
        skip_serializing_if = "Option::is_none"
    )]
    pub primary_ip: Option<PrimaryIpSource>,
    /// Parameters of the virtual-IP mode.
    #[serde(
        default,
        rename = "virtualIPAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_ip: Option<VirtualIpSource>,
}

/// `spec.sourceIP.primaryIPFromEgressGatewayNodeInterface`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryIpSource {
    /// The public interface, the same name on every member.
    #[serde(default)]
    pub interface_name: String,
}

/// `spec.sourceIP.virtualIPAddress`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpSource {
    /// The virtual address (bare or in CIDR form; the prefix length comes
    /// from the member's interface subnet when bare).
    #[serde(default)]
    pub ip: String,
    /// Routing table the egress traffic is routed by on the active node
    /// (Deckhouse's optional field): a number or a name from rt_tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_table_name: Option<String>,
    /// Interfaces the virtual address may be placed on (Deckhouse's
    /// optional field); the first is used, else the one whose subnet holds it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// `spec.internal`: the clients' next hop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalAddress {
    /// The address (bare or CIDR form).
    #[serde(default)]
    pub ip: String,
    /// Interface it is placed on; else the one whose subnet holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// `spec.vrrp`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VrrpParams {
    /// Virtual router id, 1-255, unique among gateways on the same links;
    /// derived from the gateway name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Advertisement interval (Go duration, default 100ms, 10ms steps
    /// because VRRPv3 counts centiseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<String>,
    /// Whether a returning higher-priority node takes the role back
    /// (default false: stickiness, unlike Deckhouse's immediate failback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    /// With `preempt`, how long a returning node waits before taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
}

/// `spec` of an EgressGatewayPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressGatewayPolicySpec {
    /// Destinations steered to the gateway.
    #[serde(default, rename = "destinationCIDRs")]
    pub destination_cidrs: Vec<String>,
    /// Destinations left out even inside `destinationCIDRs`.
    #[serde(
        default,
        rename = "excludedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_cidrs: Vec<String>,
    /// The EgressGateway by name (in either apiVersion).
    #[serde(default)]
    pub egress_gateway_name: String,
    /// Workload selectors; on plain hosts `podSelector.matchLabels`
    /// selects ClientGroups by their labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<PolicySelector>,
    /// Source prefixes selected directly (routerd's apiVersion).
    #[serde(default, rename = "sourceCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<String>,
    /// Ingress interfaces selected directly (routerd's apiVersion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_interfaces: Vec<String>,
}

/// One entry of `spec.selectors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySelector {
    /// Label selector over ClientGroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

/// A Kubernetes label selector (only `matchLabels`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Every pair must be present with the same value.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Whether `labels` carry every pair of `selector` (an empty selector
/// matches everything, as in Kubernetes).
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The source-IP mode, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    /// The active node's primary address on an interface.
    PrimaryIp,
    /// A virtual address moving with the role.
    VirtualIp,
}

impl EgressGatewaySpec {
    /// The mode, if it is one of the two known spellings.
    pub fn mode(&self) -> Option<SourceMode> {
        match self.source_ip.as_ref().map(|s| s.mode.trim()) {
            Some(MODE_PRIMARY_IP) => Some(SourceMode::PrimaryIp),
            Some(MODE_VIRTUAL_IP) => Some(SourceMode::VirtualIp),
            _ => None,
        }
    }

    /// The virtual address as written, in VirtualIPAddress mode.
    pub fn virtual_ip(&self) -> Option<&str> {
        self.source_ip
            .as_ref()
            .and_then(|s| s.virtual_ip.as_ref())
            .map(|v| v.ip.trim())
            .filter(|s| !s.is_empty())
    }

    /// The public interface in primary-IP mode.
    pub fn primary_interface(&self) -> Option<&str> {
        self.source_ip
            .as_ref()
            .and_then(|s| s.primary_ip.as_ref())
            .map(|p| p.interface_name.trim())
            .filter(|s| !s.is_empty())
    }

    /// The clients' next hop: `spec.internal` (ours) or the
    /// [`INTERNAL_IP_ANNOTATION`] annotation (Deckhouse's shape).
    pub fn effective_internal(
        &self,
        annotations: &BTreeMap<String, String>,
    ) -> Option<InternalAddress> {
        if let Some(i) = &self.internal {
            return Some(i.clone());
        }
        annotations
            .get(INTERNAL_IP_ANNOTATION)
            .map(|ip| InternalAddress {
                ip: ip.trim().to_string(),
                interface: annotations
                    .get(INTERNAL_INTERFACE_ANNOTATION)
                    .map(|s| s.trim().to_string()),
            })
    }

    /// Whether `preempt` is set (default false).
    pub fn preempt(&self) -> bool {
        self.vrrp.as_ref().and_then(|v| v.preempt).unwrap_or(false)
    }

    /// Whether conntrackd syncs this gateway's connections.
    pub fn connection_sync(&self) -> bool {
        self.mode() == Some(SourceMode::VirtualIp) && self.connection_sync.unwrap_or(true)
    }
}

/// The VRRP id derived from a gateway name when `spec.vrrp.id` is absent
/// (1-255, FNV-1a so every member derives the same one without config).
pub fn derived_vrrp_id(gateway: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in gateway.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // 1..=255
    (h % 255) as u8 + 1
}

/// The Nodes a gateway's selector picks, in file order.
pub fn members<'a>(s: &EgressGatewaySpec, resources: &'a [Resource]) -> Vec<&'a Resource> {
    resources
        .iter()
        .filter(|r| r.kind() == Kind::Node && labels_match(&s.node_selector, &r.metadata.labels))
        .collect()
}

/// The VRRP id a gateway uses: `spec.vrrp.id`, the
/// [`VRRP_ID_ANNOTATION`] annotation, else one derived from its name.
pub fn vrrp_id(r: &Resource, s: &EgressGatewaySpec) -> (u8, bool) {
    if let Some(id) = s.vrrp.as_ref().and_then(|v| v.id)
        && let Ok(id) = u8::try_from(id)
    {
        return (id, true);
    }
    if let Some(id) = r
        .metadata
        .annotations
        .get(VRRP_ID_ANNOTATION)
        .and_then(|v| v.trim().parse::<u8>().ok())
    {
        return (id, true);
    }
    (derived_vrrp_id(r.name()), false)
}

/// The ClientGroups a policy's selectors pick.
pub fn selected_groups<'a>(
    s: &EgressGatewayPolicySpec,
    resources: &'a [Resource],
) -> Vec<&'a Resource> {
    resources
        .iter()
        .filter(|r| r.kind() == Kind::ClientGroup)
        .filter(|r| {
            s.selectors.iter().any(|sel| {
                sel.pod_selector
                    .as_ref()
                    .is_some_and(|ps| labels_match(&ps.match_labels, &r.metadata.labels))
            })
        })
        .collect()
}
