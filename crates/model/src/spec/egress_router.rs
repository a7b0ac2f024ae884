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

use ipnet::IpNet;

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

/// Prefix of the macvlan that carries a router's reserved addresses.
pub const MACVLAN_PREFIX: &str = "rde-";

/// 32-bit FNV-1a: a stable hash for names derived from resource names
/// (the same on every host and release, unlike `DefaultHasher`).
pub fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The kernel name of the macvlan of router `name`: `rde-<name>` when that
/// fits the kernel's 15 bytes (characters other than `a-z0-9-` become
/// `-`), else `rde-<first 6>-<4 hex digits of the FNV-1a hash of the full
/// name>`, so two long names that share a prefix still differ.
pub fn macvlan_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if MACVLAN_PREFIX.len() + clean.len() <= 15 {
        return format!("{MACVLAN_PREFIX}{clean}");
    }
    let head: String = clean.chars().take(6).collect();
    format!("{MACVLAN_PREFIX}{head}-{:04x}", fnv1a(name) & 0xffff)
}

/// An interface the master may be inferred from: resource name, kernel
/// name and the addresses (with prefix length) it carries now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterCandidate {
    /// The Interface resource's name.
    pub resource: String,
    /// Its kernel device.
    pub ifname: String,
    /// Its addresses.
    pub addresses: Vec<IpNet>,
}

/// The master when `spec.networkInterface.macvlan.master` is omitted: the
/// first interface (in the order given) one of whose subnets holds a
/// reserved address, with the sentence that says why.
pub fn infer_master(
    reserved: &[IpNet],
    candidates: &[MasterCandidate],
) -> Option<(String, String)> {
    for r in reserved {
        for c in candidates {
            if let Some(a) = c
                .addresses
                .iter()
                .find(|a| a.trunc().contains(&r.addr()) && a.addr() != r.addr())
            {
                return Some((
                    c.ifname.clone(),
                    format!(
                        "master {} inferred: Interface/{} carries {a}, whose subnet {} holds the reserved address {}",
                        c.ifname,
                        c.resource,
                        a.trunc(),
                        r.addr()
                    ),
                ));
            }
        }
    }
    None
}

/// A socket the host listens on (TCP `LISTEN`, or an unconnected UDP
/// socket), as `/proc/net/{tcp,tcp6,udp,udp6}` list them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListeningSocket {
    /// TCP or UDP.
    pub protocol: RedirectProtocol,
    /// Local address (`0.0.0.0` / `::` for any).
    pub address: IpAddr,
    /// Local port.
    pub port: u16,
}

fn proc_addr(hex: &str) -> Option<IpAddr> {
    // Each 32-bit word is printed in host byte order.
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// Parses one `/proc/net/{tcp,tcp6,udp,udp6}` text: the listening TCP
/// sockets (state `0A`) or the unconnected UDP ones (state `07`, remote
/// port 0). Lines that do not parse are skipped.
pub fn parse_proc_net(text: &str, protocol: RedirectProtocol) -> Vec<ListeningSocket> {
    let want = match protocol {
        RedirectProtocol::Tcp => "0A",
        _ => "07",
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_, local, remote, state) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if state != want || !remote.ends_with(":0000") {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(ListeningSocket {
                protocol,
                address: proc_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

/// Warnings for redirect ports the host already listens on: a matching
/// connection is redirected, never delivered to the host's service, which
/// an operator should know before the service seems to vanish. Each
/// warning is (field path, message).
pub fn port_collisions(
    spec: &EgressRouterSpec,
    sockets: &[ListeningSocket],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, rule) in spec.rules().iter().enumerate() {
        let Some(p) = RedirectProtocol::parse(&rule.protocol) else {
            continue;
        };
        let Ok(port) = u16::try_from(rule.port) else {
            continue;
        };
        let hits: Vec<String> = sockets
            .iter()
            .filter(|s| s.protocol == p && s.port == port)
            .map(|s| match s.address {
                IpAddr::V6(a) => format!("[{a}]:{port}"),
                IpAddr::V4(a) => format!("{a}:{port}"),
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        out.push((
            format!("spec.redirect.redirectRules[{i}].port"),
            format!(
                "redirect port {port}/{} collides with a socket this host listens on ({}): connections the redirect applies to go to {}, not to that service",
                p.as_str(),
                hits.join(", "),
                rule.destination_ip.trim()
            ),
        ));
    }
    out
}

/// [`port_collisions`] of every EgressRouter of `loaded`, as located
/// warnings (`routerctl validate` and `plan` read the host's sockets and
/// call this).
pub fn port_collision_warnings(
    loaded: &crate::Loaded,
    sockets: &[ListeningSocket],
) -> Vec<crate::Diagnostic> {
    let mut out = Vec::new();
    for (i, r) in loaded.resources.iter().enumerate() {
        let Some(spec) = r.as_egress_router() else {
            continue;
        };
        let id = r.id().to_string();
        for (path, message) in port_collisions(spec, sockets) {
            let mut d = crate::Diagnostic::warning(format!("{id} {message}"))
                .with_resource(id.clone())
                .with_path(path);
            loaded.locate(i, &mut d);
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proc_net_listeners_are_parsed_and_collisions_named() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
";
        let tcp6 =
            "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 0
";
        let mut sockets = parse_proc_net(tcp, RedirectProtocol::Tcp);
        sockets.extend(parse_proc_net(tcp6, RedirectProtocol::Tcp));
        assert_eq!(sockets.len(), 2, "{sockets:?}");
        assert_eq!(sockets[0].port, 8080);
        assert_eq!(sockets[0].address, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(sockets[1].port, 8443);
        let loopback = "   0: 0100007F:0035 00000000:0000 07 0\n";
        let udp = parse_proc_net(&format!("header\n{loopback}"), RedirectProtocol::Udp);
        assert_eq!(udp[0].address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(udp[0].port, 53);

        let spec = EgressRouterSpec {
            redirect: Some(EgressRouterRedirect {
                redirect_rules: vec![
                    L4RedirectRule {
                        destination_ip: "203.0.113.26".into(),
                        port: 8080,
                        protocol: "tcp".into(),
                        target_port: Some(80),
                        ..L4RedirectRule::default()
                    },
                    L4RedirectRule {
                        destination_ip: "10.0.0.99".into(),
                        port: 8080,
                        protocol: "UDP".into(),
                        target_port: None,
                        ..L4RedirectRule::default()
                    },
                ],
                fallback_ip: None,
                ..EgressRouterRedirect::default()
            }),
            ..EgressRouterSpec::default()
        };
        let w = port_collisions(&spec, &sockets);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, "spec.redirect.redirectRules[0].port");
        assert_eq!(
            w[0].1,
            "redirect port 8080/TCP collides with a socket this host listens on (0.0.0.0:8080): connections the redirect applies to go to 203.0.113.26, not to that service"
        );
    }

    #[test]
    fn macvlan_names_fit_the_kernel_and_stay_apart() {
        assert_eq!(macvlan_name("er"), "rde-er");
        assert_eq!(macvlan_name("Egress_1"), "rde-egress-1");
        let long = macvlan_name("egress-router-redirect");
        assert_eq!(long.len(), 15, "{long}");
        assert!(long.starts_with("rde-egress-"), "{long}");
        assert_ne!(long, macvlan_name("egress-router-other"));
        assert_eq!(
            long,
            macvlan_name("egress-router-redirect"),
            "deterministic"
        );
    }

    #[test]
    fn the_master_is_the_interface_whose_subnet_holds_the_address() {
        let c = |res: &str, dev: &str, a: &str| MasterCandidate {
            resource: res.into(),
            ifname: dev.into(),
            addresses: vec![a.parse().unwrap()],
        };
        let cands = [
            c("lan", "lan0", "10.1.0.1/24"),
            c("wan", "ens19", "192.168.12.5/24"),
        ];
        let (dev, why) = infer_master(&["192.168.12.99/24".parse().unwrap()], &cands).unwrap();
        assert_eq!(dev, "ens19");
        assert_eq!(
            why,
            "master ens19 inferred: Interface/wan carries 192.168.12.5/24, whose subnet 192.168.12.0/24 holds the reserved address 192.168.12.99"
        );
        assert!(infer_master(&["198.51.100.9/24".parse().unwrap()], &cands).is_none());
    }
}
