//! Compatibility with routerd's configuration files (docs/adr/0012-unknown-fields-and-unmanaged-kinds.md).
//!
//! routerd decodes its YAML non-strictly: a field no type declares is
//! dropped without a word, and its own examples rely on that. This daemon
//! keeps strict decoding as the default because a silently dropped field is
//! a silent misconfiguration, but a routerd user must be able to load an
//! existing file unchanged: [`UnknownFields::Warn`] turns every unknown
//! field into a located warning instead of an error.
//!
//! routerd also defines far more kinds than this daemon manages (firewall,
//! DHCP servers, BGP, ...). Those are accepted by name ([`routerd_kind_api`])
//! and kept as data ([`Unmanaged`]) so a whole `router.yaml` loads, but they
//! are never interpreted or rendered.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::id::{CONFIG_API, HYBRID_API, NET_API, PLUGIN_API, ROUTER_API, ResourceId};
use crate::resource::Metadata;

/// routerd's system group (`Sysctl`, `NTPClient`, ...).
pub const SYSTEM_API: &str = "system.routerd.net/v1alpha1";
/// routerd's firewall group (`FirewallZone`, `PortForward`, ...).
pub const FIREWALL_API: &str = "firewall.routerd.net/v1alpha1";
/// routerd's observability group (`Telemetry`).
pub const OBSERVABILITY_API: &str = "observability.routerd.net/v1alpha1";
/// routerd's event federation group.
pub const FEDERATION_API: &str = "federation.routerd.net/v1alpha1";
/// routerd's address mobility group.
pub const MOBILITY_API: &str = "mobility.routerd.net/v1alpha1";

/// The words every ignored-field warning carries, so operators (and
/// tools) can tell a tolerated routerd field from a real problem.
pub const IGNORED_FIELD: &str = "routerd ignores this field too; it has no effect";

/// What to do with a field no type declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownFields {
    /// Reject the configuration (the default: a typo must not pass silently).
    #[default]
    Error,
    /// Accept it with one located warning per field, as routerd accepts it
    /// (without the warning).
    Warn,
}

impl UnknownFields {
    /// The mode as written on the command line and in `spec.unknownFields`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownFields::Error => "error",
            UnknownFields::Warn => "warn",
        }
    }

    /// The more lenient of two settings: either the command line or the
    /// `Router` document may ask for `warn`.
    pub fn or(self, other: UnknownFields) -> UnknownFields {
        if self == UnknownFields::Warn || other == UnknownFields::Warn {
            UnknownFields::Warn
        } else {
            UnknownFields::Error
        }
    }
}

impl fmt::Display for UnknownFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is neither `error` nor `warn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown-fields must be error or warn, not {0:?}")]
pub struct ParseUnknownFieldsError(pub String);

impl FromStr for UnknownFields {
    type Err = ParseUnknownFieldsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(UnknownFields::Error),
            "warn" => Ok(UnknownFields::Warn),
            other => Err(ParseUnknownFieldsError(other.to_string())),
        }
    }
}

/// The strict-mode hint appended to an unknown-field error: the file may
/// be a routerd file that relies on routerd dropping the field.
pub const UNKNOWN_FIELD_HINT: &str = "(routerd drops unknown fields silently; to load such a file unchanged use --unknown-fields=warn or spec.unknownFields: warn in the Router document)";

/// A resource of a kind routerd defines but this daemon does not manage:
/// its spec is kept as data, never interpreted, never rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unmanaged {
    /// apiVersion as written.
    pub api_version: String,
    /// Kind as written.
    pub kind: String,
    /// Metadata.
    pub metadata: Metadata,
    /// The spec, as data.
    #[serde(default)]
    pub spec: serde_json::Value,
}

impl Unmanaged {
    /// The identity triple.
    pub fn id(&self) -> ResourceId {
        ResourceId::new(&self.api_version, &self.kind, &self.metadata.name)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The warning each unmanaged resource gets once, at load.
    pub fn warning_text(&self) -> String {
        format!(
            "`{}` is a routerd kind this daemon does not manage; it is kept and ignored",
            self.id()
        )
    }
}

/// Every kind routerd defines (imksoo/routerd `pkg/api`, at b21abefe), with
/// its API group. Kinds this daemon manages are in the list too: a
/// [`crate::Kind`] wins over this table. Kinds routerd removed are not here
/// (they keep their pointed errors, [`crate::id::legacy_kind_advice`]).
const ROUTERD_KINDS: &[(&str, &str)] = &[
    ("BFD", NET_API),
    ("BGPDynamicPeer", NET_API),
    ("BGPPeer", NET_API),
    ("BGPRouter", NET_API),
    ("Bridge", NET_API),
    ("ClientPolicy", FIREWALL_API),
    ("CloudProviderProfile", HYBRID_API),
    ("ClusterNetworkRoute", NET_API),
    ("ControlAPI", SYSTEM_API),
    ("DHCPv4Client", NET_API),
    ("DHCPv4Relay", NET_API),
    ("DHCPv4Reservation", NET_API),
    ("DHCPv4Server", NET_API),
    ("DHCPv4ServerLeaseSync", NET_API),
    ("DHCPv6Address", NET_API),
    ("DHCPv6Information", NET_API),
    ("DHCPv6PrefixDelegation", NET_API),
    ("DHCPv6PrefixDelegationLeaseSync", NET_API),
    ("DHCPv6Server", NET_API),
    ("DHCPv6ServerLeaseSync", NET_API),
    ("DNSForwarder", NET_API),
    ("DNSResolver", NET_API),
    ("DNSUpstream", NET_API),
    ("DNSZone", NET_API),
    ("DSLiteTunnel", NET_API),
    ("DerivedEvent", NET_API),
    ("DynamicConfigSource", PLUGIN_API),
    ("DynamicOverridePolicy", CONFIG_API),
    ("EgressRoutePolicy", NET_API),
    ("EventGroup", FEDERATION_API),
    ("EventPeer", FEDERATION_API),
    ("EventRule", NET_API),
    ("EventSubscription", FEDERATION_API),
    ("FederationSLO", FEDERATION_API),
    ("FirewallEventLog", FIREWALL_API),
    ("FirewallFlowPinhole", FIREWALL_API),
    ("FirewallPolicy", FIREWALL_API),
    ("FirewallRule", FIREWALL_API),
    ("FirewallZone", FIREWALL_API),
    ("HealthCheck", NET_API),
    ("Hostname", NET_API),
    ("HybridRoute", HYBRID_API),
    ("IPAddressSet", NET_API),
    ("IPsecConnection", NET_API),
    ("IPv4Route", NET_API),
    ("IPv4StaticAddress", NET_API),
    ("IPv4StaticRoute", NET_API),
    ("IPv6DelegatedAddress", NET_API),
    ("IPv6RAAddress", NET_API),
    ("IPv6RouterAdvertisement", NET_API),
    ("IPv6StaticRoute", NET_API),
    ("IngressService", FIREWALL_API),
    ("Interface", NET_API),
    ("Inventory", ROUTER_API),
    ("LocalServiceRedirect", FIREWALL_API),
    ("LogRetention", SYSTEM_API),
    ("LogSink", SYSTEM_API),
    ("ManagementAccess", NET_API),
    ("MobilityPool", MOBILITY_API),
    ("NAT44FlowDNATPinhole", NET_API),
    ("NAT44Rule", NET_API),
    ("NAT44SessionSync", NET_API),
    ("NTPClient", SYSTEM_API),
    ("NTPServer", SYSTEM_API),
    ("ObservabilityPipeline", SYSTEM_API),
    ("OverlayPeer", HYBRID_API),
    ("PPPoESession", NET_API),
    ("Package", SYSTEM_API),
    ("Plugin", PLUGIN_API),
    ("PortForward", FIREWALL_API),
    ("ProviderActionPolicy", HYBRID_API),
    ("RouterdCluster", SYSTEM_API),
    ("SAMEnrollmentClaim", MOBILITY_API),
    ("SAMEnrollmentClient", MOBILITY_API),
    ("SAMEnrollmentPolicy", MOBILITY_API),
    ("SAMNodeSet", MOBILITY_API),
    ("SAMPeerGroup", MOBILITY_API),
    ("SAMRRSet", MOBILITY_API),
    ("SAMSubnetPolicy", MOBILITY_API),
    ("SAMTransportProfile", MOBILITY_API),
    ("SelfAddressPolicy", NET_API),
    ("Sysctl", SYSTEM_API),
    ("SysctlProfile", SYSTEM_API),
    ("TailscaleNode", NET_API),
    ("Telemetry", OBSERVABILITY_API),
    ("TrafficFlowLog", NET_API),
    ("TunnelInterface", HYBRID_API),
    ("VRF", NET_API),
    ("VXLANSegment", NET_API),
    ("VXLANTunnel", NET_API),
    ("VirtualAddress", NET_API),
    ("WebConsole", SYSTEM_API),
    ("WireGuardInterface", NET_API),
    ("WireGuardPeer", NET_API),
];

/// The API group of a kind routerd defines, or `None` for a kind routerd
/// does not know (which stays an error).
pub fn routerd_kind_api(kind: &str) -> Option<&'static str> {
    ROUTERD_KINDS
        .binary_search_by(|(k, _)| (*k).cmp(kind))
        .ok()
        .and_then(|i| ROUTERD_KINDS.get(i))
        .map(|(_, api)| *api)
}

/// Every kind routerd defines, with its group, sorted by name.
pub fn routerd_kinds() -> &'static [(&'static str, &'static str)] {
    ROUTERD_KINDS
}

/// Whether `kind` is a routerd kind this daemon keeps without managing.
pub fn is_unmanaged_kind(kind: &str) -> bool {
    crate::Kind::parse(kind).is_none() && routerd_kind_api(kind).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_so_lookups_find_every_kind() {
        assert!(ROUTERD_KINDS.windows(2).all(|w| w[0].0 < w[1].0));
        for (k, api) in ROUTERD_KINDS {
            assert_eq!(routerd_kind_api(k), Some(*api));
        }
        assert_eq!(routerd_kind_api("FirewallZone"), Some(FIREWALL_API));
        assert_eq!(routerd_kind_api("NoSuchKind"), None);
        assert!(is_unmanaged_kind("DHCPv4Server"));
        assert!(!is_unmanaged_kind("EgressRoutePolicy"));
    }

    #[test]
    fn modes_parse_and_the_lenient_one_wins() {
        assert_eq!("warn".parse(), Ok(UnknownFields::Warn));
        assert!("strict".parse::<UnknownFields>().is_err());
        assert_eq!(
            UnknownFields::Error.or(UnknownFields::Warn),
            UnknownFields::Warn
        );
        assert_eq!(
            UnknownFields::Error.or(UnknownFields::Error),
            UnknownFields::Error
        );
    }
}
