//! `hybrid.routerd.net/v1alpha1` kinds: overlay peers and the routes,
//! tunnels and cloud profiles around them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! opt_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[allow(missing_docs)]
                pub $field: Option<$ty>,
            )*
        }
    };
}

opt_struct!(
    /// How an overlay peer is reached.
    Underlay {
        #[serde(rename = "type")]
        type_: String,
        interface: String,
        address: String,
    }
);

opt_struct!(
    /// The far side of an overlay peer (informative; ipsec uses `address`).
    RemotePeer {
        #[serde(rename = "nodeID")]
        node_id: String,
        address: String,
    }
);

opt_struct!(
    /// Path-MTU handling.
    PathMtu {
        #[serde(rename = "forceFragmentIPv4")]
        force_fragment_ipv4: bool,
    }
);

/// An overlay peer (on-prem or cloud node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverlayPeerSpec {
    /// `onprem` or `cloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, rename = "nodeID", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub underlay: Option<Underlay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub remote: Option<RemotePeer>,
    #[serde(default, rename = "pathMTU", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub path_mtu: Option<PathMtu>,
}

opt_struct!(
    /// Where a hybrid route is installed.
    RouteInstall {
        table: String,
        metric: i64,
    }
);

/// Prefixes reached through an overlay peer; lowered to IPv4Routes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HybridRouteSpec {
    #[serde(
        default,
        rename = "destinationCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub destination_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub peer_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub install: Option<RouteInstall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub health_check_ref: Option<String>,
}

opt_struct!(
    /// Cloud credentials helper.
    ProviderAuth {
        mode: String,
        command: String,
    }
);

/// A cloud provider account routerd's plugins may observe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudProviderProfileSpec {
    /// `azure`, `aws`, `oci` or `gcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(
        default,
        rename = "subscriptionID",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub resource_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub auth: Option<ProviderAuth>,
}

opt_struct!(
    /// FOU/GUE encapsulation ports.
    TunnelEncap {
        #[serde(rename = "type")]
        type_: String,
        sport: i64,
        dport: i64,
    }
);

/// A point-to-point tunnel link used as an overlay underlay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TunnelInterfaceSpec {
    /// `ipip`, `gre`, `fou` or `gue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Kernel name (default the resource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// Local outer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Remote outer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// GRE key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub encap: Option<TunnelEncap>,
    /// Local outer address read from another resource's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_from: Option<super::common::StatusValueSource>,
    /// Remote outer address read from another resource's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_from: Option<super::common::StatusValueSource>,
    /// Inner IPv4 prefix assigned to the tunnel link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Point-to-point peer (FreeBSD only in routerd; refused here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Underlay link the outer packets leave by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay_interface: Option<String>,
    /// FOU/GUE source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap_sport: Option<i64>,
    /// FOU/GUE destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap_dport: Option<i64>,
    /// The operator asserts the underlay is trusted (the tunnel is
    /// unencrypted and unauthenticated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_underlay: Option<bool>,
    /// Path MTU handling.
    #[serde(default, rename = "pathMTU", skip_serializing_if = "Option::is_none")]
    pub path_mtu: Option<TunnelPathMtu>,
}

opt_struct!(
    /// Path MTU options of a tunnel.
    TunnelPathMtu {
        #[serde(rename = "forceFragmentIPv4")]
        force_fragment_ipv4: bool,
    }
);

/// Selective address mobility over an overlay (removed upstream; kept for
/// configs written against it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressMobilityDomainSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub prefix: Option<String>,
    /// Only `selective-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub peer_ref: Option<String>,
}

opt_struct!(
    /// When a capture is active.
    ActiveWhen {
        #[serde(rename = "type")]
        type_: String,
        virtual_address_ref: String,
    }
);

/// How a claimed address is captured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimCapture {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub provider_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub provider_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub capture_strategy: Option<String>,
    /// Legacy alias of `captureStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub nic_ref: Option<String>,
    #[serde(
        default,
        rename = "configureOSAddress",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub configure_os_address: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub exclude_addresses: Vec<String>,
    #[serde(
        default,
        rename = "gratuitousARP",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub gratuitous_arp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub active_when: Option<ActiveWhen>,
}

opt_struct!(
    /// How traffic for a claimed address is delivered.
    ClaimDelivery {
        peer_ref: String,
        mode: String,
        tunnel_interface: String,
    }
);

/// One address claimed in a mobility domain (removed upstream).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAddressClaimSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub domain_ref: Option<String>,
    /// IPv4 /32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `cloud` or `onprem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_side: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub capture: Option<ClaimCapture>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub delivery: Option<ClaimDelivery>,
}
