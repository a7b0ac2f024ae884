//! `net.routerd.net/v1alpha1` kinds.
//!
//! Addresses, prefixes and durations are kept as the operator wrote them and
//! checked by validation, so every mistake gets routerd's message (and all
//! mistakes are reported, not just the first serde trips over). Typed
//! accessors parse them for the controllers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ResourceDependency, StatusValueSource, WhenSpec};
use crate::GoDuration;

/// A kernel link routerd observes (and optionally manages).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// Kernel interface name.
    #[serde(default)]
    pub ifname: String,
    /// Bring the link up when managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_up: Option<bool>,
    /// MTU (576-9216); unset leaves the kernel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// routerd may change the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
    /// `routerd` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

/// A DS-Lite (IPv4-in-IPv6) tunnel to an AFTR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DSLiteTunnelSpec {
    /// Underlay Interface name.
    #[serde(default)]
    pub interface: String,
    /// Kernel name of the tunnel (defaults to the resource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_name: Option<String>,
    /// routerd's legacy status reference for the local IPv6 address
    /// (`localAddressFrom` replaces it).
    #[serde(
        default,
        rename = "localIPv6Source",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_ipv6_source: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, rename = "aftrFQDN", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aftr_fqdn: Option<String>,
    #[serde(default, rename = "aftrIPv6", skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aftr_ipv6: Option<String>,
    #[serde(
        default,
        rename = "aftrDNSServers",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub aftr_dns_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aftr_address_ordinal: Option<i64>,
    /// `ordinal` (default) or `ordinalModulo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aftr_address_selection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub aftr_from: Option<StatusValueSource>,
    /// AFTR IPv6 address given directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// Local IPv6 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address: Option<String>,
    /// Inner IPv4 source (default 192.0.0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address_from: Option<StatusValueSource>,
    /// `interface` (default), `static` or `delegatedAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub local_delegated_address: Option<String>,
    /// IPv6 suffix such as `::100`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub default_route: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_metric: Option<i64>,
    /// 1280-65535 (runtime default 1460).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub encapsulation_limit: Option<String>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
    /// Readiness dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceDependency>,
}

impl DSLiteTunnelSpec {
    /// Kernel device name: `tunnelName`, else the resource name (the alias every
    /// renderer uses; see docs/resources.md on routerd's inconsistency).
    pub fn device_name<'a>(&'a self, resource_name: &'a str) -> &'a str {
        match self.tunnel_name.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => resource_name,
        }
    }
}

/// HTTP probe options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbeSpec {
    /// Request path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host header (default the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Accepted status codes as `200-499` style ranges (default `200-499`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<String>,
}

/// DNS probe options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsProbeSpec {
    /// Name to resolve (default `example.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_name: Option<String>,
    /// Record type, `A` (default) or `AAAA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_type: Option<String>,
}

/// A health probe; routerd derives its mark and source binding from the
/// candidates that reference it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Only `ping` (the historical name for "a probe").
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `link`, `next-hop` (default), `internet`, `service` or `policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `ipv4` (default) or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_family: Option<String>,
    /// IP address to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `auto`, `static`, `defaultGateway` or `dsliteRemote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_source: Option<String>,
    /// Interface-like resource the probe belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// `tcp` (default), `icmp`, `dns` or `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port (default per protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Probe interval (default 30s, at least 100ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Faster interval while Failing (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_interval: Option<String>,
    /// Probe timeout (default 3s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Rise: passes needed for Healthy (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<i64>,
    /// Fall: failures needed for Unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<i64>,
    /// HTTP options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeSpec>,
    /// DNS options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsProbeSpec>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

/// Defaults that apply to a HealthCheck when a field is unset.
pub mod health_defaults {
    use crate::GoDuration;
    /// `interval`.
    pub const INTERVAL: GoDuration = GoDuration::from_secs(30);
    /// `timeout`.
    pub const TIMEOUT: GoDuration = GoDuration::from_secs(3);
    /// Smallest accepted interval.
    pub const MIN_INTERVAL: GoDuration = GoDuration::from_millis(100);
    /// `healthyThreshold` (rise).
    pub const HEALTHY_THRESHOLD: u32 = 1;
    /// `unhealthyThreshold` (fall).
    pub const UNHEALTHY_THRESHOLD: u32 = 3;
    /// `protocol`: TCP, the protocol routerd's probe daemon really runs when
    /// none is given (docs/adr/0005-health-defaults.md).
    pub const PROTOCOL: &str = "tcp";
}

impl HealthCheckSpec {
    /// Whether the check runs at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
    /// Probe interval, defaulted.
    pub fn interval(&self) -> GoDuration {
        parse_or(self.interval.as_deref(), health_defaults::INTERVAL)
    }
    /// Probe timeout, defaulted.
    pub fn timeout(&self) -> GoDuration {
        parse_or(self.timeout.as_deref(), health_defaults::TIMEOUT)
    }
    /// Interval while Failing (defaults to `interval`).
    pub fn failing_interval(&self) -> GoDuration {
        parse_or(self.failing_interval.as_deref(), self.interval())
    }
    /// Rise threshold, defaulted (0 and unset both mean the default).
    pub fn healthy_threshold(&self) -> u32 {
        threshold(self.healthy_threshold, health_defaults::HEALTHY_THRESHOLD)
    }
    /// Fall threshold, defaulted.
    pub fn unhealthy_threshold(&self) -> u32 {
        threshold(
            self.unhealthy_threshold,
            health_defaults::UNHEALTHY_THRESHOLD,
        )
    }
    /// Probe protocol, defaulted.
    pub fn protocol(&self) -> &str {
        match self.protocol.as_deref() {
            Some(p) if !p.is_empty() => p,
            _ => health_defaults::PROTOCOL,
        }
    }
    /// Port, defaulted per protocol (0 for ICMP).
    pub fn port(&self) -> u16 {
        match self.port {
            Some(p) if p > 0 => u16::try_from(p).unwrap_or(0),
            _ => match self.protocol() {
                "tcp" => 443,
                "dns" => 53,
                "http" => 80,
                _ => 0,
            },
        }
    }
    /// Address family, defaulted.
    pub fn address_family(&self) -> &str {
        self.address_family
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("ipv4")
    }
    /// How long a Healthy result stays usable for selection:
    /// `max(2m, 3 x interval + timeout)`.
    pub fn freshness(&self) -> GoDuration {
        let d = self
            .interval()
            .0
            .saturating_mul(3)
            .saturating_add(self.timeout().0);
        GoDuration(d.max(GoDuration::from_secs(120).0))
    }
}

fn threshold(v: Option<i64>, default: u32) -> u32 {
    match v {
        Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
        _ => default,
    }
}

pub(crate) fn parse_or(v: Option<&str>, default: GoDuration) -> GoDuration {
    match v {
        Some(s) if !s.is_empty() => GoDuration::parse(s).unwrap_or(default),
        _ => default,
    }
}

/// One path of a multi-target (hash or priority) candidate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub name: Option<String>,
    /// Logical outbound interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Overrides `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway_from: Option<StatusValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub table: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_table: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub mark: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_metric: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub metric: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub health_check: Option<String>,
}

impl EgressTarget {
    /// `outboundInterface` if set, else `interface`.
    pub fn effective_interface(&self) -> Option<&str> {
        non_empty(self.outbound_interface.as_deref()).or(non_empty(self.interface.as_deref()))
    }
    /// `table` or `routeTable`.
    pub fn route_table(&self) -> i64 {
        self.table.or(self.route_table).unwrap_or(0)
    }
    /// `routeMetric` or `metric`.
    pub fn metric(&self) -> i64 {
        self.route_metric.or(self.metric).unwrap_or(0)
    }
}

/// One possible path of an EgressRoutePolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressCandidate {
    /// Status name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Readiness source, `Kind/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Logical interface name (must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Raw kernel device name (not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub device_from: Option<StatusValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway_from: Option<StatusValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway: Option<String>,
    /// `none` (default), `static`, `dhcpv4`, `dhcpv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_source: Option<String>,
    /// Only `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub table: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_table: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_metric: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub metric: Option<i64>,
    /// ip-rule priority and selection tie-breaker (1-32765).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// fwmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<i64>,
    /// Higher wins (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// HealthCheck name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// Multi-target paths (hash or priority mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<EgressTarget>,
    /// Readiness dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceDependency>,
    /// Candidate-level gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

impl EgressCandidate {
    /// Whether the candidate takes part.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
    /// `interface` if set, else `device`.
    pub fn effective_interface(&self) -> Option<&str> {
        non_empty(self.interface.as_deref()).or(non_empty(self.device.as_deref()))
    }
    /// The status name: `name`, else `source`, else `candidate-<index>`.
    pub fn status_name(&self, index: usize) -> String {
        non_empty(self.name.as_deref())
            .or(non_empty(self.source.as_deref()))
            .map_or_else(|| format!("candidate-{index}"), str::to_string)
    }
    /// `table` or `routeTable`.
    pub fn route_table(&self) -> i64 {
        self.table.or(self.route_table).unwrap_or(0)
    }
    /// `routeMetric` or `metric`.
    pub fn metric(&self) -> i64 {
        self.route_metric.or(self.metric).unwrap_or(0)
    }
    /// `gatewaySource`, defaulted to `none`.
    pub fn gateway_source(&self) -> &str {
        non_empty(self.gateway_source.as_deref()).unwrap_or("none")
    }
}

/// Chooses the outbound path of new flows among health-checked candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRoutePolicySpec {
    /// `ipv4` (default) or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Locally originated IPv6 only (one candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_traffic: Option<bool>,
    /// Omitted (advisory selection), `priority`, `mark` or `hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, rename = "sourceCIDRs", skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub source_cidrs: Vec<String>,
    #[serde(
        default,
        rename = "destinationCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub destination_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub destination_set_refs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub exclude_destination_set_refs: Vec<String>,
    #[serde(
        default,
        rename = "excludeDestinationCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub exclude_destination_cidrs: Vec<String>,
    /// `sourceAddress` and/or `destinationAddress` (hash mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_fields: Vec<String>,
    /// `highest-weight-ready` (default) or `weighted-ecmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
    /// Minimum dwell after a switch (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<String>,
    /// Hold-down before a recovering better candidate takes over (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
    /// Whether a better candidate takes over from a healthy current one
    /// (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    /// `weighted-ecmp` in mode `priority`: the route table that holds the
    /// members' weighted multipath default route. New connections are
    /// marked `multipathMark`, and `ip rule priority multipathPriority
    /// fwmark multipathMark` sends them to this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_table: Option<i64>,
    /// The `ip rule` priority of the multipath table (1-32765).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_priority: Option<i64>,
    /// The fwmark of connections steered to the multipath table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath_mark: Option<i64>,
    /// What happens to the connections of a path that fails while it
    /// carries flows: omitted or `none` (default) keeps them (they time
    /// out on their own); `deadPath` deletes the conntrack entries whose
    /// ct mark is the dead path's mark, and only those, so NAT and routing
    /// are decided afresh on their next packet (docs/adr/0011).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_on_failover: Option<String>,
    /// The paths.
    #[serde(default)]
    pub candidates: Vec<EgressCandidate>,
    /// What the policy's forwarded traffic meets while no candidate is
    /// ready: `main` (default: it falls through to the main table, as in
    /// routerd), `reject` (ICMP admin-prohibited, TCP reset) or `drop`. A
    /// routerd-rs extension; routerd has no such field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_no_candidate: Option<String>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

/// Default minimum dwell after a selection change.
pub const DEFAULT_HYSTERESIS: GoDuration = GoDuration::from_secs(30);

impl EgressRoutePolicySpec {
    /// Family, defaulted.
    pub fn family(&self) -> &str {
        non_empty(self.family.as_deref()).unwrap_or("ipv4")
    }
    /// Mode, `""` when advisory.
    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("")
    }
    /// Selection algorithm, defaulted.
    pub fn selection(&self) -> &str {
        non_empty(self.selection.as_deref()).unwrap_or("highest-weight-ready")
    }
    /// Hysteresis, defaulted (an unparsable value also gives the default,
    /// though validation rejects it).
    pub fn hysteresis(&self) -> GoDuration {
        parse_or(self.hysteresis.as_deref(), DEFAULT_HYSTERESIS)
    }
    /// Preempt delay, defaulted to zero.
    pub fn preempt_delay(&self) -> GoDuration {
        parse_or(self.preempt_delay.as_deref(), GoDuration::ZERO)
    }
    /// Whether better candidates preempt a healthy current one.
    pub fn preempt(&self) -> bool {
        self.preempt.unwrap_or(true)
    }
    /// `hostTraffic`, defaulted.
    pub fn host_traffic(&self) -> bool {
        self.host_traffic.unwrap_or(false)
    }
    /// `whenNoCandidate`, defaulted to `main`.
    pub fn when_no_candidate(&self) -> &str {
        non_empty(self.when_no_candidate.as_deref()).unwrap_or("main")
    }
    /// Whether the policy's traffic is refused (`reject`, `drop`) rather
    /// than left to the main table while no candidate is ready.
    pub fn fails_closed(&self) -> bool {
        matches!(self.when_no_candidate(), "reject" | "drop")
    }
    /// `flushOnFailover`, defaulted to never flushing (an unknown value
    /// also never flushes, though validation rejects it).
    pub fn flush_on_failover(&self) -> FlushOnFailover {
        match self.flush_on_failover.as_deref().map(str::trim) {
            Some("deadPath") => FlushOnFailover::DeadPath,
            _ => FlushOnFailover::None,
        }
    }
}

/// `spec.flushOnFailover` of an EgressRoutePolicy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushOnFailover {
    /// Never touch conntrack (routerd's behaviour).
    #[default]
    None,
    /// Delete the conntrack entries of a path that became unavailable.
    DeadPath,
}

/// A route in the main table, possibly following a policy's selection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPv4RouteSpec {
    /// Prefix; `default` means 0.0.0.0/0.
    #[serde(default)]
    pub destination: String,
    /// `unicast` (default) or `blackhole`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub device_from: Option<StatusValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gateway_from: Option<StatusValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub preferred_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub metric: Option<i64>,
    /// Readiness dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceDependency>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

impl IPv4RouteSpec {
    /// Route type, defaulted.
    pub fn route_type(&self) -> &str {
        non_empty(self.type_.as_deref()).unwrap_or("unicast")
    }
}

/// Address translation of a source-NAT shaped NAT44Rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatTranslation {
    /// `interfaceAddress`, `address` or `pool`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// For `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// For `pool`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Port handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mapping: Option<PortMapping>,
}

/// Source-port handling of a translation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// `auto` (default), `preserve` or `range`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub end: Option<i64>,
}

/// IPv4 source NAT, in the egress shape (`type`/`egressInterface`/`sourceRanges`)
/// or the source-NAT shape (`outboundInterface`/`sourceCIDRs`/`translation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NAT44RuleSpec {
    /// `masquerade` or `snat` (egress shape).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub egress_interface: Option<String>,
    /// EgressRoutePolicy whose selection gives the egress interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_policy_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub source_ranges: Vec<String>,
    #[serde(
        default,
        rename = "destinationCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub destination_cidrs: Vec<String>,
    #[serde(
        default,
        rename = "excludeDestinationCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[allow(missing_docs)]
    pub exclude_destination_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub destination_set_refs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub exclude_destination_set_refs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub snat_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub snat_address_from: Option<StatusValueSource>,
    /// Source-NAT shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_interface: Option<String>,
    /// Source-NAT shape.
    #[serde(default, rename = "sourceCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<String>,
    /// Source-NAT shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<NatTranslation>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

impl NAT44RuleSpec {
    /// Whether the rule uses the source-NAT shape.
    pub fn is_source_nat_shape(&self) -> bool {
        self.outbound_interface.is_some()
            || !self.source_cidrs.is_empty()
            || self.translation.as_ref().is_some_and(|t| t.type_.is_some())
    }
}

/// A named set of addresses or prefixes, referenced by policies and NAT rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressSetSpec {
    /// `ipv4` (default) or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Addresses or prefixes of the family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Exact DNS names whose A (ipv4) or AAAA (ipv6) records join the set
    /// while the daemon runs (routerd's FQDN sets; no wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Go duration capping how long resolved names go unrefreshed (the
    /// record TTL applies when it is sooner); empty: TTL only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_interval: String,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

/// A static IPv4 address on an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPv4StaticAddressSpec {
    /// Interface-like resource name.
    #[serde(default)]
    pub interface: String,
    /// Address with prefix length, e.g. `192.168.10.1/24`.
    #[serde(default)]
    pub address: String,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
    /// routerd removes other IPv4 addresses from the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    /// The address may overlap another resource's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overlap: Option<bool>,
    /// Why an overlap is intended (required with `allowOverlap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overlap_reason: Option<String>,
}

/// A PPPoE session, used here as a readiness source and a link alias.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PPPoESessionSpec {
    /// Underlay Interface name.
    #[serde(default)]
    pub interface: String,
    /// Kernel name of the ppp link (default `ppp-<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub username: Option<String>,
    /// The password inline. A [`Secret`]: it never leaves the daemon in
    /// output, logs, events or plugin requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// File holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// `chap`, `pap` or `both` (empty: pppd's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub service_name: Option<String>,
    /// Access concentrator name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ac_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub mru: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub default_route: Option<bool>,
    #[serde(
        default,
        rename = "usePeerDNS",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub use_peer_dns: Option<bool>,
    /// Redial after a drop (routerd's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<bool>,
    #[serde(
        default,
        rename = "lcpInterval",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub lcp_interval: Option<i64>,
    #[serde(
        default,
        rename = "lcpFailure",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub lcp_failure: Option<i64>,
    #[serde(
        default,
        rename = "lcpEchoInterval",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub lcp_echo_interval: Option<i64>,
    #[serde(
        default,
        rename = "lcpEchoFailure",
        skip_serializing_if = "Option::is_none"
    )]
    #[allow(missing_docs)]
    pub lcp_echo_failure: Option<i64>,
    /// Negotiate IPv6CP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
    /// routerd runs the session (pppd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
    /// Only `plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_encoding: Option<String>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

impl PPPoESessionSpec {
    /// Kernel name: `ifname` or `ppp-<name>`.
    pub fn device_name(&self, resource_name: &str) -> String {
        match self.ifname.as_deref() {
            Some(i) if !i.is_empty() => i.to_string(),
            _ => format!("ppp-{resource_name}"),
        }
    }
    /// Whether the session is wanted.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
    /// Whether the session redials after a drop (routerd's default: yes).
    pub fn persists(&self) -> bool {
        self.persist.unwrap_or(true)
    }
}

pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// A DHCPv4 client on an interface. routerd runs the client; this daemon
/// reads its status (`currentAddress`, `gateway`, ...) through `*From`
/// references and `dependsOn`, and never runs a client itself
/// (docs/compatibility.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DHCPv4ClientSpec {
    /// Interface-like resource name.
    #[serde(default)]
    pub interface: String,
    /// Hostname sent to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Address to ask the server for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_address: Option<String>,
    /// Vendor class identifier (option 60).
    #[serde(default, rename = "classID", skip_serializing_if = "Option::is_none")]
    pub class_id: Option<String>,
    /// Client identifier (option 61).
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Install the server's routes (routerd's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_routes: Option<bool>,
    /// Use the server's DNS servers (routerd's default true).
    #[serde(default, rename = "useDNS", skip_serializing_if = "Option::is_none")]
    pub use_dns: Option<bool>,
    /// Metric of the installed routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_metric: Option<i64>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
}

impl DHCPv4ClientSpec {
    /// Whether the server's routes are installed (routerd's default: yes).
    pub fn uses_routes(&self) -> bool {
        self.use_routes.unwrap_or(true)
    }
    /// Whether the server's DNS servers are used (routerd's default: yes).
    pub fn uses_dns(&self) -> bool {
        self.use_dns.unwrap_or(true)
    }
}

/// A secret value (a PPPoE password). It decodes from a string like any
/// other field, but never prints: `Debug` and serialization (plan, `get`,
/// `describe`, the stored generation, events, plugin requests) show
/// [`Secret::REDACTED`] instead, so a value typed into a config file never
/// leaves the daemon. Nothing in this daemon uses the value itself
/// (docs/compatibility.md).
#[derive(Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// What every output shows in place of the value.
    pub const REDACTED: &'static str = "<redacted>";

    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the code that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (after trimming).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Secret::REDACTED)
    }
}

/// VRRP settings of a VirtualAddress (routerd's `VirtualAddressVRRP`).
/// Typed so a file written for routerd loads strictly; this daemon runs no
/// VRRP and reads none of them (ADR 0018: it only observes whether the
/// address is held, whoever runs VRRP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualAddressVrrp {
    /// VRID (1–255).
    #[serde(
        default,
        rename = "virtualRouterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_router_id: Option<i64>,
    /// VRRP priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Whether a higher priority takes over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    /// Delay before preempting (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<String>,
    /// Unicast peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Advertisement interval (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<String>,
    /// Authentication password; a [`Secret`], never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Secret>,
    /// Where the password is read from (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_from: Option<serde_json::Value>,
}

/// An address that moves between routers (routerd's `VirtualAddress`,
/// `net.routerd.net/v1alpha1`). routerd runs VRRP for it; this daemon does
/// not. It is typed here because a RemoteAddressClaim's `activeWhen:
/// vrrp-master` names one: the daemon publishes whether this host holds
/// `address` (it is assigned to a kernel interface, by keepalived or any
/// other VRRP speaker) and capture follows that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualAddressSpec {
    /// `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Interface-like resource the address lives on (informative here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The address, with or without a prefix length (`192.0.2.10/32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// DNS name published for the address (not acted on here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// External DNS publication (kept as written).
    #[serde(
        default,
        rename = "externalDNS",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_dns: Option<serde_json::Value>,
    /// `static` or `vrrp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// VRRP settings (not acted on here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VirtualAddressVrrp>,
    /// Tracked resources and penalties (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<serde_json::Value>,
    /// Gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<WhenSpec>,
    /// Where the address is read from (kept as written; this daemon only
    /// observes a literal `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_from: Option<serde_json::Value>,
}

impl VirtualAddressSpec {
    /// The address without its prefix length, when it parses.
    pub fn host(&self) -> Option<std::net::IpAddr> {
        let a = self.address.as_deref()?.trim();
        a.split_once('/').map_or(a, |(h, _)| h).parse().ok()
    }
}
