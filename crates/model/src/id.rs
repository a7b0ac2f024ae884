//! API groups, kinds and resource identity.
//!
//! Identity is the triple (apiVersion, kind, metadata.name), rendered the way
//! routerd renders it (`apiVersion/kind/name`) because users grep logs and
//! status for that exact string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `Router` document group.
pub const ROUTER_API: &str = "routerd.net/v1alpha1";
/// Data-plane resources.
pub const NET_API: &str = "net.routerd.net/v1alpha1";
/// Effective-config resources.
pub const CONFIG_API: &str = "config.routerd.net/v1alpha1";
/// Plugin manifests and wire objects.
pub const PLUGIN_API: &str = "plugin.routerd.net/v1alpha1";
/// Hybrid-cloud resources.
pub const HYBRID_API: &str = "hybrid.routerd.net/v1alpha1";
/// Control API and offline plan documents.
pub const CONTROL_API: &str = "control.routerd.net/v1alpha1";

macro_rules! kinds {
    ($($variant:ident => $group:expr, [$($field:literal),*];)*) => {
        /// Every resource kind routerd understands.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Kind {
            $(
                #[allow(missing_docs)]
                $variant,
            )*
        }

        impl Kind {
            /// All kinds, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The kind's name as written in YAML.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => stringify!($variant)),* }
            }

            /// The API group (apiVersion) the kind belongs to.
            pub fn api_version(self) -> &'static str {
                match self { $(Kind::$variant => $group),* }
            }

            /// Status fields other resources may reference through `*From` and
            /// `dependsOn` (every kind also provides `phase`).
            pub fn provides(self) -> &'static [&'static str] {
                match self { $(Kind::$variant => &[$($field),*]),* }
            }

            /// Parses a kind name exactly as written (case-sensitive).
            pub fn parse(s: &str) -> Option<Kind> {
                match s { $(stringify!($variant) => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    Interface => NET_API, ["ifname", "addresses", "ipv4Addresses", "ipv6Addresses", "primaryIPv4", "primaryIPv6", "macAddress"];
    DSLiteTunnel => NET_API, ["interface", "device", "tunnelName", "localIPv6", "innerLocalIPv4", "innerRemoteIPv4", "localInterface", "aftrName", "aftrIPv6", "mtu", "dryRun"];
    HealthCheck => NET_API, ["role", "target", "sourceAddress", "sourceInterface", "protocol", "consecutiveFailed", "lastCheckedAt"];
    EgressRoutePolicy => NET_API, ["family", "selectedCandidate", "selectedSource", "selectedDevice", "selectedGateway", "selectedGatewaySource", "selectedRouteTable", "selectedMetric", "selectedWeight", "selectedTargets", "selectedInterface", "candidates", "role", "advisory", "lastTransitionAt", "updatedAt", "dryRun", "members"];
    IPv4Route => NET_API, ["type", "destination", "device", "gateway", "preferredSource", "metric", "dryRun"];
    IPv6StaticRoute => NET_API, ["destination", "gateway", "interface"];
    NAT44Rule => NET_API, ["egressInterface", "snatAddress", "dryRun"];
    IPAddressSet => NET_API, ["addresses", "family", "ipv4Addresses", "ipv6Addresses", "updatedAt"];
    IPv4StaticAddress => NET_API, ["address", "interface", "ifname", "dryRun"];
    DHCPv4Client => NET_API, ["interface", "device", "currentAddress", "gateway", "defaultGateway", "dnsServers", "ntpServers", "domain", "leaseTime", "renewAt", "rebindAt", "expiresAt"];
    PPPoESession => NET_API, ["ifname", "localIPv4", "remoteIPv4", "interface", "device", "currentAddress", "peerAddress", "gateway", "dnsServers", "connectedAt", "dryRun"];
    DynamicOverridePolicy => CONFIG_API, [];
    DynamicConfigPart => CONFIG_API, [];
    Plugin => PLUGIN_API, [];
    DynamicConfigSource => PLUGIN_API, [];
    PluginRequest => PLUGIN_API, [];
    PluginResult => PLUGIN_API, [];
    OverlayPeer => HYBRID_API, ["nodeID", "role", "underlayType", "underlayInterface"];
    HybridRoute => HYBRID_API, ["routes", "peerRef", "defaultRouteUntouched", "estimatedMTU"];
    CloudProviderProfile => HYBRID_API, ["provider", "capabilities"];
    TunnelInterface => HYBRID_API, ["ifname", "mode", "local", "remote", "mtu", "interface", "peerAddress", "observedAddress", "observedPeerAddress", "underlayInterface", "underlayMTU", "tunnelOverhead", "ttl", "encapSport", "encapDport", "dryRun"];
    AddressMobilityDomain => HYBRID_API, ["prefix", "mode", "peerRef", "claims", "claimCount"];
    EgressRouter => NET_API, ["conditions", "rules", "addresses", "master", "listen"];
    Node => NET_API, ["ready", "cordoned", "addresses"];
    ClientGroup => NET_API, ["sourceCIDRs", "interfaces"];
    EgressGateway => NET_API, ["activeNodeName", "readyNodes", "vrrpState", "conditions", "virtualIP", "internalIP", "lastFailoverAt", "lastFailoverCause"];
    EgressGatewayPolicy => NET_API, ["conditions", "activeNodeName", "nextHop"];
    RemoteAddressClaim => HYBRID_API, ["domainRef", "address", "ownerSide", "captureType", "peerRef", "deliveryMode", "deliveryRouteName", "deliveryDevice", "deliveryMetric", "captureInterface", "captureStatus"];
    VirtualAddress => NET_API, ["address", "held", "device"];
}

impl Kind {
    /// Whether `field` may be referenced on this kind (`phase` always may).
    pub fn provides_field(self, field: &str) -> bool {
        field == "phase" || self.provides().contains(&field)
    }

    /// Whether `api` is an apiVersion this kind is accepted under: its own
    /// group, and for EgressRouter and the gateway kinds also OpenShift's
    /// or Deckhouse's, so a custom resource pasted from a cluster loads
    /// unchanged.
    pub fn accepts_api_version(self, api: &str) -> bool {
        api == self.api_version() || self.foreign_api_version() == Some(api)
    }

    /// The other project's apiVersion this kind is also accepted under,
    /// unchanged (OpenShift's EgressRouter, Deckhouse's gateway kinds).
    pub fn foreign_api_version(self) -> Option<&'static str> {
        match self {
            Kind::EgressRouter => Some(crate::spec::egress_router::OPENSHIFT_NETWORK_API),
            Kind::EgressGateway | Kind::EgressGatewayPolicy => {
                Some(crate::spec::gateway::DECKHOUSE_NETWORK_API)
            }
            _ => None,
        }
    }

    /// Kinds that are wire objects of the plugin protocol, never configuration.
    pub fn is_wire_object(self) -> bool {
        matches!(self, Kind::PluginRequest | Kind::PluginResult)
    }

    /// Kinds that exist only at runtime and may not appear in startup config.
    pub fn is_runtime_only(self) -> bool {
        matches!(self, Kind::DynamicConfigPart)
    }

    /// Kinds that can name an outbound link (`interface` fields).
    pub fn is_interface_like(self) -> bool {
        matches!(
            self,
            Kind::Interface | Kind::PPPoESession | Kind::DSLiteTunnel
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Legacy kinds that routerd removed, with the pointed advice it gives.
pub fn legacy_kind_advice(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "SystemdUnit" => {
            "is not supported; declare router intent and let routerd generate service units"
        }
        "KernelModule" => {
            "is not supported; routerd derives required kernel modules from declared resources"
        }
        "NetworkAdoption" => {
            "is not supported; routerd derives networkd/resolved adoption from Interface and service resources"
        }
        "StatePolicy" => {
            "is not supported; use spec.when any/all predicates on the dependent resources"
        }
        "DHCPv4Lease" => {
            "is not supported; use DHCPv4Client for routerd-managed DHCPv4 client intent"
        }
        "VirtualIPv4Address" => "is not supported; use VirtualAddress with spec.family: ipv4",
        "VirtualIPv6Address" => "is not supported; use VirtualAddress with spec.family: ipv6",
        "DHCPv4Scope" => "is not supported; put the DHCPv4 address pool directly on DHCPv4Server",
        "DHCPv6Scope" => {
            "is not supported; put the DHCPv6 delegatedAddress and options directly on DHCPv6Server"
        }
        "FirewallLog" => "is not supported; use FirewallEventLog for firewall event logging intent",
        "IPv4ReversePathFilter" => {
            "is not supported; routerd derives reverse path filter sysctls automatically"
        }
        "PathMTUPolicy" => {
            "is not supported; routerd derives path MTU and TCP MSS handling from tunnel and interface resources"
        }
        "IPv4DefaultRoutePolicy" => {
            "is not supported; use EgressRoutePolicy with candidates directly"
        }
        "IPv4PolicyRoute" => "is not supported; use EgressRoutePolicy with one marked candidate",
        "IPv4PolicyRouteSet" => {
            "is not supported; put hashFields and targets under EgressRoutePolicy candidates"
        }
        "IPv4SourceNAT" => "is not supported; use NAT44Rule for IPv4 source NAT intent",
        "Link" => "is not supported; use Interface resources as link status providers",
        "PPPoEInterface" => {
            "is not supported; use PPPoESession for routerd-managed PPPoE session intent"
        }
        "WANEgressPolicy" => "is not supported; the kind was renamed to EgressRoutePolicy",
        _ => return None,
    })
}

/// The identity of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    /// API group and version.
    pub api_version: String,
    /// Kind name.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl ResourceId {
    /// Builds an id from its three parts.
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ResourceId {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// Builds the id of a known kind in its own group.
    pub fn of(kind: Kind, name: impl Into<String>) -> Self {
        ResourceId::new(kind.api_version(), kind.as_str(), name)
    }

    /// Parses `apiVersion/Kind/name` (the apiVersion itself contains a slash).
    pub fn parse(s: &str) -> Option<Self> {
        let (rest, name) = s.rsplit_once('/')?;
        let (api, kind) = rest.rsplit_once('/')?;
        if api.is_empty() || kind.is_empty() || name.is_empty() || !api.contains('/') {
            return None;
        }
        Some(ResourceId::new(api, kind, name))
    }

    /// The `Kind/name` short form used by references.
    pub fn short(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.api_version, self.kind, self.name)
    }
}

/// A reference to a resource by apiVersion, kind and name, as used by masks,
/// allow rules and plugin context allowlists.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API group and version.
    #[serde(default)]
    pub api_version: String,
    /// Kind name.
    #[serde(default)]
    pub kind: String,
    /// Resource name.
    #[serde(default)]
    pub name: String,
}

impl ObjectRef {
    /// The daemon itself, the subject of events about the whole
    /// configuration, store or dataplane: every event names a resource
    /// (`routerctl events --resource Daemon/routerd` finds these).
    pub fn daemon() -> Self {
        ObjectRef {
            api_version: CONTROL_API.into(),
            kind: "Daemon".into(),
            name: "routerd".into(),
        }
    }

    /// The referenced identity.
    pub fn id(&self) -> ResourceId {
        ResourceId::new(&self.api_version, &self.kind, &self.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.api_version, self.kind, self.name)
    }
}

/// Splits a `Kind/name` reference.
pub fn split_kind_name(s: &str) -> Option<(&str, &str)> {
    let (k, n) = s.split_once('/')?;
    if k.is_empty() || n.is_empty() || n.contains('/') {
        return None;
    }
    Some((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_through_display_and_parse() {
        let id = ResourceId::of(Kind::EgressRoutePolicy, "ipv4-default");
        assert_eq!(
            id.to_string(),
            "net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default"
        );
        assert_eq!(ResourceId::parse(&id.to_string()), Some(id));
        assert_eq!(ResourceId::parse("Kind/name"), None);
    }

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
            assert!(k.provides_field("phase"));
        }
    }
}
