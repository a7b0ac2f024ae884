//! EgressRouter: OpenShift's egress router in redirect mode
//! (`network.operator.openshift.io/v1`, docs/compatibility.md), on a plain
//! Linux host.
//!
//! The same kind is accepted under two apiVersions: OpenShift's, so a user
//! can paste the custom resource from a cluster unchanged, and ours, which
//! adds what a host without Kubernetes needs (`spec.listen`). The OpenShift
//! shape stays exactly OpenShift's; its listen set comes from the
//! [`LISTEN_ANNOTATION`] annotation instead.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// OpenShift's API group for the kind, accepted unchanged.
pub const OPENSHIFT_NETWORK_API: &str = "network.operator.openshift.io/v1";

/// The annotation that carries `spec.listen` for the OpenShift shape
/// (comma-separated interface names and/or local addresses), since that
/// shape has no field for it and must stay exactly OpenShift's.
pub const LISTEN_ANNOTATION: &str = "routerd.net/listen";

/// `spec` of an EgressRouter (OpenShift `EgressRouterSpec`, plus `listen`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterSpec {
    /// Reserved source addresses (CIDR form) with their next-hop gateways;
    /// every one is carried, not only the first.
    #[serde(default)]
    pub addresses: Vec<EgressRouterAddress>,
    /// `Redirect` (the default and the only mode OpenShift supports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The interface that carries the addresses (macvlan only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<EgressRouterInterface>,
    /// Redirect-mode parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<EgressRouterRedirect>,
    /// Where clients connect (routerd's apiVersion only): without it the
    /// redirect would capture the host's own services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<EgressRouterListen>,
}

/// One reserved address (OpenShift `EgressRouterAddress`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterAddress {
    /// Address and prefix length, e.g. `192.168.12.99/24` (required).
    #[serde(default)]
    pub ip: String,
    /// Next-hop gateway for the redirected traffic (same family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// `spec.networkInterface`: OpenShift supports macvlan only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterInterface {
    /// The macvlan's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macvlan: Option<EgressRouterMacvlan>,
}

/// `spec.networkInterface.macvlan`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterMacvlan {
    /// `Bridge` (default), `Private`, `VEPA` or `Passthru`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Kernel name of the master; inferred at plan time from the interface
    /// whose subnet holds the address when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

/// `spec.redirect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterRedirect {
    /// One DNAT per (port, protocol).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_rules: Vec<L4RedirectRule>,
    /// Destination of every other port and protocol; without it they are
    /// refused (TCP reset, ICMP port unreachable).
    #[serde(
        default,
        rename = "fallbackIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub fallback_ip: Option<String>,
    /// HealthCheck guarding the fallback (routerd's apiVersion only): while
    /// it fails, every port the fallback would take is refused instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_health_check: Option<String>,
}

/// One redirect rule (OpenShift `L4RedirectRule`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L4RedirectRule {
    /// Destination address (required unless `destinationIPs` is set).
    #[serde(default, rename = "destinationIP")]
    pub destination_ip: String,
    /// Several destinations balanced per client address (routerd's
    /// apiVersion only); exclusive with `destinationIP`, so a rule never has
    /// two ways of saying which destination comes first.
    #[serde(
        default,
        rename = "destinationIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub destination_ips: Vec<String>,
    /// HealthCheck guarding the destinations (routerd's apiVersion only):
    /// see [`L4RedirectRule::health_check_names`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// More HealthChecks, for rules with several destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<String>,
    /// Port clients connect to, 1-65535 (required). Wide so an out-of-range
    /// value gets the validation message instead of a type error.
    #[serde(default)]
    pub port: i64,
    /// `TCP`, `UDP` or `SCTP`, in any case, as OpenShift accepts.
    #[serde(default)]
    pub protocol: String,
    /// Port on the destination; `port` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
}

/// `spec.listen` (routerd's apiVersion): the traffic the redirect applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRouterListen {
    /// Kernel names of the interfaces clients arrive on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Local addresses clients connect to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

impl EgressRouterListen {
    /// Parses the [`LISTEN_ANNOTATION`] value: each comma-separated item
    /// that parses as an address is a local address, any other is an
    /// interface name.
    pub fn from_annotation(value: &str) -> EgressRouterListen {
        let mut l = EgressRouterListen::default();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.parse::<IpAddr>().is_ok() {
                l.addresses.push(item.to_string());
            } else {
                l.interfaces.push(item.to_string());
            }
        }
        l
    }

    /// Whether nothing is listed (the default applies).
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty() && self.addresses.is_empty()
    }
}

/// A redirect rule's protocol, parsed case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RedirectProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl RedirectProtocol {
    /// Parses `TCP`, `udp`, `Sctp`, ... (OpenShift accepts any case).
    pub fn parse(s: &str) -> Option<RedirectProtocol> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TCP" => Some(RedirectProtocol::Tcp),
            "UDP" => Some(RedirectProtocol::Udp),
            "SCTP" => Some(RedirectProtocol::Sctp),
            _ => None,
        }
    }

    /// OpenShift's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectProtocol::Tcp => "TCP",
            RedirectProtocol::Udp => "UDP",
            RedirectProtocol::Sctp => "SCTP",
        }
    }
}

/// The macvlan modes OpenShift lists, in its spelling.
pub const MACVLAN_MODES: &[&str] = &["Bridge", "Private", "VEPA", "Passthru"];

impl EgressRouterSpec {
    /// The mode, defaulted.
    pub fn mode(&self) -> &str {
        self.mode.as_deref().map(str::trim).unwrap_or("Redirect")
    }

    /// The macvlan mode, defaulted to `Bridge`.
    pub fn macvlan_mode(&self) -> &str {
        self.network_interface
            .as_ref()
            .and_then(|n| n.macvlan.as_ref())
            .and_then(|m| m.mode.as_deref())
            .map(str::trim)
            .unwrap_or("Bridge")
    }

    /// The declared master, if any.
    pub fn master(&self) -> Option<&str> {
        self.network_interface
            .as_ref()
            .and_then(|n| n.macvlan.as_ref())
            .and_then(|m| m.master.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The redirect rules (none when `redirect` is absent).
    pub fn rules(&self) -> &[L4RedirectRule] {
        self.redirect
            .as_ref()
            .map(|r| r.redirect_rules.as_slice())
            .unwrap_or(&[])
    }

    /// The fallback's HealthCheck, if set.
    pub fn fallback_health_check(&self) -> Option<&str> {
        self.redirect
            .as_ref()
            .and_then(|r| r.fallback_health_check.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The fallback destination, if set.
    pub fn fallback(&self) -> Option<&str> {
        self.redirect
            .as_ref()
            .and_then(|r| r.fallback_ip.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The effective listen set: `spec.listen` (routerd's apiVersion) or
    /// the [`LISTEN_ANNOTATION`] annotation (OpenShift's shape).
    pub fn effective_listen(
        &self,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> EgressRouterListen {
        if let Some(l) = &self.listen {
            return l.clone();
        }
        annotations
            .get(LISTEN_ANNOTATION)
            .map(|v| EgressRouterListen::from_annotation(v))
            .unwrap_or_default()
    }
}

impl L4RedirectRule {
    /// The destination port: `targetPort`, else `port`.
    pub fn effective_target_port(&self) -> i64 {
        self.target_port.unwrap_or(self.port)
    }

    /// The destinations as written: `destinationIP` (OpenShift's single
    /// destination) when set, else `destinationIPs`.
    pub fn destinations(&self) -> Vec<&str> {
        let one = self.destination_ip.trim();
        if !one.is_empty() {
            return vec![one];
        }
        self.destination_ips
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
            .collect()
    }

    /// Every HealthCheck named by the rule (`healthCheck`, then
    /// `healthChecks`), without duplicates. A check whose `spec.target` is
    /// one of the rule's destinations guards that destination only; any
    /// other check (a service endpoint, a shared dependency) guards every
    /// destination of the rule.
    pub fn health_check_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for n in self
            .health_check
            .iter()
            .chain(self.health_checks.iter())
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// Whether any of routerd's additions is used (they are refused in
    /// OpenShift's shape).
    pub fn uses_routerd_fields(&self) -> bool {
        !self.destination_ips.is_empty()
            || self.health_check.is_some()
            || !self.health_checks.is_empty()
    }
}
