//! Probe evidence: "which path did the probe take when it failed".
//!
//! Operators asked for it after probes that escaped over the management path
//! reported dead uplinks as healthy (spec §8.4). The keys are routerd's, so
//! existing dashboards keep working.

use std::io;

use serde_json::{Map, Value};

/// Why a probe failed, in routerd's vocabulary (plus `carrier_lost`, which
/// routerd cannot produce because it has no link watcher).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// No answer within the timeout.
    Timeout,
    /// RST / ICMP port unreachable.
    ConnectionRefused,
    /// ENETUNREACH / ENETDOWN.
    NetworkUnreachable,
    /// EHOSTUNREACH.
    HostUnreachable,
    /// No route to the target.
    NoRoute,
    /// The DNS answer was an error or empty.
    DnsError,
    /// TLS failed (kept for routerd compatibility; no TLS prober yet).
    TlsError,
    /// EADDRINUSE (source address binding).
    AddressInUse,
    /// EPERM / EACCES (capabilities, ping_group_range).
    Permission,
    /// The bound device lost its carrier.
    CarrierLost,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// routerd's text.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::NetworkUnreachable => "network_unreachable",
            FailureKind::HostUnreachable => "host_unreachable",
            FailureKind::NoRoute => "no_route",
            FailureKind::DnsError => "dns_error",
            FailureKind::TlsError => "tls_error",
            FailureKind::AddressInUse => "address_in_use",
            FailureKind::Permission => "permission",
            FailureKind::CarrierLost => "carrier_lost",
            FailureKind::Other => "other",
        }
    }

    /// Classifies an I/O error the way routerd does: the error kind first,
    /// then substrings of the message.
    pub fn classify(err: &io::Error) -> FailureKind {
        match err.kind() {
            io::ErrorKind::TimedOut => return FailureKind::Timeout,
            io::ErrorKind::ConnectionRefused => return FailureKind::ConnectionRefused,
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::NetworkDown => {
                return FailureKind::NetworkUnreachable;
            }
            io::ErrorKind::HostUnreachable => return FailureKind::HostUnreachable,
            io::ErrorKind::AddrInUse => return FailureKind::AddressInUse,
            io::ErrorKind::PermissionDenied => return FailureKind::Permission,
            _ => {}
        }
        FailureKind::classify_message(&err.to_string())
    }

    /// Classifies by message text alone.
    pub fn classify_message(msg: &str) -> FailureKind {
        let m = msg.to_ascii_lowercase();
        if m.contains("timed out") || m.contains("timeout") {
            FailureKind::Timeout
        } else if m.contains("refused") {
            FailureKind::ConnectionRefused
        } else if m.contains("network is unreachable") || m.contains("network is down") {
            FailureKind::NetworkUnreachable
        } else if m.contains("no route") {
            FailureKind::NoRoute
        } else if m.contains("host is unreachable") || m.contains("host unreachable") {
            FailureKind::HostUnreachable
        } else if m.contains("address already in use") {
            FailureKind::AddressInUse
        } else if m.contains("permission") || m.contains("not permitted") {
            FailureKind::Permission
        } else {
            FailureKind::Other
        }
    }
}

/// What is known about the path of one probe. Every field is optional:
/// routerd records what it could find out, best effort.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Failure classification (failed and timed-out probes only).
    pub failure_kind: Option<FailureKind>,
    /// The device the socket was bound to (`SO_BINDTODEVICE`).
    pub egress_interface: Option<String>,
    /// The source address the socket actually used.
    pub source_address: Option<String>,
    /// Where the source address came from (`pd`, `ra`, `static`, `dynamic`).
    pub source_origin: Option<String>,
    /// Next hop, when known.
    pub next_hop: Option<String>,
    /// Output interface, when known.
    pub out_interface: Option<String>,
    /// Preferred source of the route, when known.
    pub route_source: Option<String>,
    /// DS-Lite local tunnel endpoint.
    pub tunnel_local: Option<String>,
    /// DS-Lite remote tunnel endpoint.
    pub tunnel_remote: Option<String>,
}

impl Evidence {
    fn fields(&self) -> [(&'static str, &'static str, Option<&str>); 9] {
        [
            (
                "failureKind",
                "routerd.healthcheck.failureKind",
                self.failure_kind.map(FailureKind::as_str),
            ),
            (
                "egressInterface",
                "network.egress.interface",
                self.egress_interface.as_deref(),
            ),
            (
                "sourceAddress",
                "network.source.address",
                self.source_address.as_deref(),
            ),
            (
                "sourceOrigin",
                "network.source.origin",
                self.source_origin.as_deref(),
            ),
            (
                "nextHop",
                "network.nexthop.address",
                self.next_hop.as_deref(),
            ),
            (
                "outInterface",
                "network.out.interface",
                self.out_interface.as_deref(),
            ),
            (
                "routeSource",
                "network.route.source",
                self.route_source.as_deref(),
            ),
            (
                "tunnelLocal",
                "network.tunnel.local",
                self.tunnel_local.as_deref(),
            ),
            (
                "tunnelRemote",
                "network.tunnel.remote",
                self.tunnel_remote.as_deref(),
            ),
        ]
    }

    /// The status form (`lastEvidence`, `history[].evidence`): set keys only.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, _, v) in self.fields() {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
        Value::Object(m)
    }

    /// The event attribute form (`network.egress.interface`, ...).
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.fields()
            .into_iter()
            .filter_map(|(_, attr, v)| v.filter(|v| !v.is_empty()).map(|v| (attr, v.to_string())))
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, _, v)| v.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors_by_kind_then_message() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(FailureKind::classify(&e), FailureKind::ConnectionRefused);
        let e = io::Error::from(io::ErrorKind::NetworkUnreachable);
        assert_eq!(FailureKind::classify(&e), FailureKind::NetworkUnreachable);
        let e = io::Error::other("dial: no route to host");
        assert_eq!(FailureKind::classify(&e), FailureKind::NoRoute);
        let e = io::Error::other("something odd");
        assert_eq!(FailureKind::classify(&e), FailureKind::Other);
    }

    #[test]
    fn json_and_attributes_carry_only_set_fields() {
        let ev = Evidence {
            failure_kind: Some(FailureKind::Timeout),
            egress_interface: Some("wan0".into()),
            source_address: Some(String::new()),
            ..Evidence::default()
        };
        assert_eq!(
            ev.to_json(),
            serde_json::json!({"failureKind": "timeout", "egressInterface": "wan0"})
        );
        let attrs: Vec<_> = ev.attributes().collect();
        assert_eq!(
            attrs,
            vec![
                ("routerd.healthcheck.failureKind", "timeout".to_string()),
                ("network.egress.interface", "wan0".to_string()),
            ]
        );
        assert!(Evidence::default().is_empty());
        assert!(!ev.is_empty());
    }
}
