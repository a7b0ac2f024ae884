//! One check's resolved configuration: what to probe, how often, and how
//! the result is judged.
//!
//! [`ProbeSpec`] is everything that determines a probe's outcome (target,
//! protocol, port, timeout, options, binding). Two checks with equal probe
//! specs would send identical packets, so the scheduler runs the probe once
//! and feeds both.

use std::net::IpAddr;
use std::time::Duration;

use routerd_model::spec::net::HealthCheckSpec;
use routerd_model::validate::parse_status_range;
use routerd_model::{Kind, Resource};

use crate::binding::{Binding, BindingOverride, Derivation, derive_binding};
use crate::machine::{Identity, Thresholds};

/// Why a HealthCheck could not be turned into a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No HealthCheck of that name.
    #[error("HealthCheck \"{0}\" not found")]
    NotFound(String),
    /// `spec.protocol` is not one we probe with.
    #[error("HealthCheck \"{name}\": unsupported healthcheck protocol \"{protocol}\"")]
    Protocol {
        /// Check name.
        name: String,
        /// The value.
        protocol: String,
    },
    /// `spec.target` does not parse.
    #[error("HealthCheck \"{name}\": spec.target must be an IP address, got \"{target}\"")]
    Target {
        /// Check name.
        name: String,
        /// The value.
        target: String,
    },
    /// An `http.expectedStatus` entry does not parse.
    #[error(
        "HealthCheck \"{name}\": spec.http.expectedStatus \"{range}\" is not a status or range"
    )]
    StatusRange {
        /// Check name.
        name: String,
        /// The value.
        range: String,
    },
    /// `dns.queryType` is not A or AAAA.
    #[error("HealthCheck \"{name}\": spec.dns.queryType must be A or AAAA, got \"{value}\"")]
    QueryType {
        /// Check name.
        name: String,
        /// The value.
        value: String,
    },
}

/// Probe protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// ICMP echo.
    Icmp,
    /// TCP connect.
    Tcp,
    /// DNS query.
    Dns,
    /// HTTP GET.
    Http,
}

impl Protocol {
    /// Parses routerd's names.
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "icmp" => Protocol::Icmp,
            "tcp" => Protocol::Tcp,
            "dns" => Protocol::Dns,
            "http" => Protocol::Http,
            _ => return None,
        })
    }

    /// routerd's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Tcp => "tcp",
            Protocol::Dns => "dns",
            Protocol::Http => "http",
        }
    }
}

/// DNS record type to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QueryType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    Aaaa,
}

/// HTTP probe options.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpOptions {
    /// Request path.
    pub path: String,
    /// Host header; the target when empty.
    pub host: Option<String>,
    /// Accepted status codes (inclusive ranges).
    pub expected: Vec<(u16, u16)>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            path: "/".into(),
            host: None,
            expected: vec![(200, 499)],
        }
    }
}

impl HttpOptions {
    /// Whether `code` is accepted.
    pub fn accepts(&self, code: u16) -> bool {
        self.expected.iter().any(|(a, b)| (*a..=*b).contains(&code))
    }
}

/// DNS probe options.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsOptions {
    /// Name to resolve.
    pub query_name: String,
    /// Record type.
    pub query_type: QueryType,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            query_name: "example.com".into(),
            query_type: QueryType::A,
        }
    }
}

/// Everything that determines one probe's outcome; equal specs are run once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeSpec {
    /// Target; `None` fails every probe with `target is required`.
    pub target: Option<IpAddr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Port (ignored for ICMP).
    pub port: u16,
    /// Deadline of one probe.
    pub timeout: Duration,
    /// Path pinning.
    pub binding: Binding,
    /// HTTP options (HTTP only; default otherwise so keys compare equal).
    pub http: HttpOptions,
    /// DNS options (DNS only; default otherwise).
    pub dns: DnsOptions,
}

impl ProbeSpec {
    /// A spec with default options.
    pub fn new(target: IpAddr, protocol: Protocol, port: u16, timeout: Duration) -> Self {
        ProbeSpec {
            target: Some(target),
            protocol,
            port,
            timeout,
            binding: Binding::default(),
            http: HttpOptions::default(),
            dns: DnsOptions::default(),
        }
    }

    /// With a binding.
    pub fn with_binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    /// `target:port` or the target alone, for messages.
    pub fn endpoint(&self) -> String {
        match (self.target, self.protocol) {
            (None, _) => "<no target>".into(),
            (Some(t), Protocol::Icmp) => t.to_string(),
            (Some(t), _) => std::net::SocketAddr::new(t, self.port).to_string(),
        }
    }
}

/// One check, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// HealthCheck name.
    pub name: String,
    /// `spec.role`, defaulted.
    pub role: String,
    /// `enabled`.
    pub enabled: bool,
    /// What to probe.
    pub probe: ProbeSpec,
    /// Tick interval.
    pub interval: Duration,
    /// Tick interval while Failing.
    pub failing_interval: Duration,
    /// Rise and fall. A fail-closed check has fall 1, as in routerd.
    pub thresholds: Thresholds,
    /// Set when the check must never probe (DS-Lite without full binding):
    /// every tick fails with this message.
    pub fail_closed: Option<String>,
    /// Binding derivation details, for explanations.
    pub derivation: Derivation,
}

impl CheckConfig {
    /// Resolves HealthCheck `name` from `resources` (the effective config),
    /// deriving its binding.
    pub fn from_resources(
        resources: &[Resource],
        name: &str,
        overrides: &BindingOverride,
    ) -> Result<CheckConfig, ConfigError> {
        let spec = resources
            .iter()
            .filter(|r| r.kind() == Kind::HealthCheck && r.name() == name)
            .find_map(Resource::as_health_check)
            .ok_or_else(|| ConfigError::NotFound(name.to_string()))?;
        let derivation = derive_binding(resources, name).with_override(overrides);
        CheckConfig::from_spec(name, spec, derivation)
    }

    /// Resolves one spec with a given derivation.
    pub fn from_spec(
        name: &str,
        spec: &HealthCheckSpec,
        derivation: Derivation,
    ) -> Result<CheckConfig, ConfigError> {
        let protocol = Protocol::parse(spec.protocol()).ok_or_else(|| ConfigError::Protocol {
            name: name.to_string(),
            protocol: spec.protocol().to_string(),
        })?;
        let target = match spec
            .target
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => None,
            Some(t) => Some(t.parse::<IpAddr>().map_err(|_| ConfigError::Target {
                name: name.to_string(),
                target: t.to_string(),
            })?),
        };
        let mut http = HttpOptions::default();
        let mut dns = DnsOptions::default();
        if protocol == Protocol::Http
            && let Some(h) = &spec.http
        {
            if let Some(p) = h.path.as_deref().filter(|p| !p.is_empty()) {
                p.clone_into(&mut http.path);
            }
            http.host = h.host.clone().filter(|h| !h.is_empty());
            if !h.expected_status.is_empty() {
                http.expected = h
                    .expected_status
                    .iter()
                    .map(|r| {
                        parse_status_range(r).ok_or_else(|| ConfigError::StatusRange {
                            name: name.to_string(),
                            range: r.clone(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
        }
        if protocol == Protocol::Dns
            && let Some(d) = &spec.dns
        {
            if let Some(q) = d.query_name.as_deref().filter(|q| !q.is_empty()) {
                q.clone_into(&mut dns.query_name);
            }
            dns.query_type = match d.query_type.as_deref().unwrap_or("") {
                "" | "A" => QueryType::A,
                "AAAA" => QueryType::Aaaa,
                other => {
                    return Err(ConfigError::QueryType {
                        name: name.to_string(),
                        value: other.to_string(),
                    });
                }
            };
        }
        let binding = derivation.binding.clone();
        let fail_closed = binding.fail_closed_reason().map(str::to_string);
        let mut thresholds = Thresholds {
            healthy: spec.healthy_threshold(),
            unhealthy: spec.unhealthy_threshold(),
        };
        if fail_closed.is_some() {
            thresholds.unhealthy = 1;
        }
        let interval = spec.interval().to_std();
        Ok(CheckConfig {
            name: name.to_string(),
            role: spec
                .role
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "next-hop".into()),
            enabled: spec.is_enabled(),
            probe: ProbeSpec {
                target,
                protocol,
                port: if protocol == Protocol::Icmp {
                    0
                } else {
                    spec.port()
                },
                timeout: spec.timeout().to_std(),
                binding,
                http,
                dns,
            },
            interval,
            failing_interval: spec.failing_interval().to_std(),
            thresholds,
            fail_closed,
            derivation,
        })
    }

    /// The identity its status and events carry.
    pub fn identity(&self) -> Identity {
        let b = &self.probe.binding;
        Identity {
            name: self.name.clone(),
            role: self.role.clone(),
            target: self.probe.target.map(|t| t.to_string()).unwrap_or_default(),
            protocol: self.probe.protocol.as_str().to_string(),
            port: self.probe.port,
            via: None,
            fwmark: b.mark,
            interface: b.device.clone(),
            local_address: b.source_address.map(|a| a.to_string()),
        }
    }

    /// The interval to wait after a result in `phase`: `failingInterval`
    /// while Failing (to confirm or clear a failure sooner), else `interval`.
    pub fn interval_in(&self, phase: crate::machine::Phase) -> Duration {
        if phase == crate::machine::Phase::Failing {
            self.failing_interval
        } else {
            self.interval
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Phase;
    use routerd_model::Loaded;

    fn load(yaml: &str) -> Vec<Resource> {
        let mut l = Loaded::new();
        l.add_file("t.yaml", yaml);
        l.resources
    }

    #[test]
    fn defaults_match_the_documented_decision() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: 192.0.2.1}
",
        );
        let c = CheckConfig::from_resources(&rs, "hc", &BindingOverride::default()).unwrap();
        assert_eq!(c.probe.protocol, Protocol::Tcp, "docs/adr/0005");
        assert_eq!(c.probe.port, 443);
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.failing_interval, Duration::from_secs(30));
        assert_eq!(c.probe.timeout, Duration::from_secs(3));
        assert_eq!(
            c.thresholds,
            Thresholds {
                healthy: 1,
                unhealthy: 3
            }
        );
        assert_eq!(c.role, "next-hop");
        assert!(c.enabled && c.fail_closed.is_none());
        assert_eq!(c.identity().target, "192.0.2.1");
    }

    #[test]
    fn options_and_fast_intervals_are_resolved() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec:
  target: 192.0.2.1
  protocol: http
  interval: 100ms
  failingInterval: 100ms
  timeout: 100ms
  unhealthyThreshold: 2
  http: {path: /health, expectedStatus: ['200', '300-399']}
",
        );
        let c = CheckConfig::from_resources(&rs, "hc", &BindingOverride::default()).unwrap();
        assert_eq!(c.probe.port, 80);
        assert_eq!(c.interval, Duration::from_millis(100));
        assert_eq!(c.probe.http.path, "/health");
        assert!(c.probe.http.accepts(200) && c.probe.http.accepts(302));
        assert!(!c.probe.http.accepts(404));
        assert_eq!(c.thresholds.unhealthy, 2);
        assert_eq!(c.interval_in(Phase::Failing), Duration::from_millis(100));
    }

    #[test]
    fn failing_interval_applies_only_while_failing() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: 192.0.2.1, protocol: dns, interval: 10s, failingInterval: 1s, dns: {queryName: probe.example, queryType: AAAA}}
",
        );
        let c = CheckConfig::from_resources(&rs, "hc", &BindingOverride::default()).unwrap();
        assert_eq!(c.interval_in(Phase::Healthy), Duration::from_secs(10));
        assert_eq!(c.interval_in(Phase::Failing), Duration::from_secs(1));
        assert_eq!(c.interval_in(Phase::Unhealthy), Duration::from_secs(10));
        assert_eq!(c.probe.dns.query_name, "probe.example");
        assert_eq!(c.probe.dns.query_type, QueryType::Aaaa);
        assert_eq!(c.probe.port, 53);
    }

    #[test]
    fn dslite_without_binding_fails_closed_with_fall_one() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: DSLiteTunnel
metadata: {name: ds1}
spec: {interface: wan, aftrIPv6: '2001:db8::1'}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: 192.0.2.1, interface: ds1}
",
        );
        let c = CheckConfig::from_resources(&rs, "hc", &BindingOverride::default()).unwrap();
        assert_eq!(
            c.fail_closed.as_deref(),
            Some(crate::binding::DSLITE_BINDING_INVALID)
        );
        assert_eq!(c.thresholds.unhealthy, 1);
        assert_eq!(c.probe.binding.device.as_deref(), Some("ds1"));
    }

    #[test]
    fn missing_check_and_bad_values_are_typed_errors() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: not-an-ip}
",
        );
        assert_eq!(
            CheckConfig::from_resources(&rs, "nope", &BindingOverride::default()),
            Err(ConfigError::NotFound("nope".into()))
        );
        assert!(matches!(
            CheckConfig::from_resources(&rs, "hc", &BindingOverride::default()),
            Err(ConfigError::Target { .. })
        ));
    }

    #[test]
    fn equal_probe_specs_share_a_key() {
        let a = ProbeSpec::new(
            "192.0.2.1".parse().unwrap(),
            Protocol::Tcp,
            443,
            Duration::from_secs(1),
        );
        let b = a.clone();
        assert_eq!(a, b);
        let c = a.clone().with_binding(Binding {
            mark: Some(1),
            ..Binding::default()
        });
        assert_ne!(a, c, "a different path is a different probe");
        assert_eq!(a.endpoint(), "192.0.2.1:443");
    }
}
