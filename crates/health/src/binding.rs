//! Which path a probe must take (spec §4.4).
//!
//! A probe that escapes over the management path reports a dead uplink as
//! healthy, and users may not set marks or devices on a HealthCheck. So the
//! binding is derived from the EgressRoutePolicy candidates (and targets)
//! that reference the check: their `mark` becomes `SO_MARK`, their interface
//! (through the logical-name alias map) becomes `SO_BINDTODEVICE`. A check
//! that guards a DS-Lite tunnel and cannot be fully pinned fails closed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use routerd_model::Resource;
use routerd_model::id::split_kind_name;

/// Message of a DS-Lite check without a full binding (routerd's text).
pub const DSLITE_BINDING_INVALID: &str =
    "DSLiteProbeBindingInvalid: source-interface and fwmark are required";

/// The socket options a probe is pinned with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    /// `SO_MARK`.
    pub mark: Option<u32>,
    /// `SO_BINDTODEVICE` (kernel name).
    pub device: Option<String>,
    /// Local address to bind before connecting.
    pub source_address: Option<IpAddr>,
    /// The check guards a DS-Lite tunnel: probe only when both mark and
    /// device are known.
    pub require_dslite: bool,
}

impl Binding {
    /// Why probing must not happen at all, if it must not: a DS-Lite check
    /// without mark or device would probe over the management path.
    pub fn fail_closed_reason(&self) -> Option<&'static str> {
        (self.require_dslite && (self.mark.is_none() || self.device.is_none()))
            .then_some(DSLITE_BINDING_INVALID)
    }

    /// Whether any socket option is set.
    pub fn is_pinned(&self) -> bool {
        self.mark.is_some() || self.device.is_some() || self.source_address.is_some()
    }

    /// Human-readable summary (`mark 0x10 dev wan0 src 192.0.2.2`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.mark {
            parts.push(format!("mark {m:#x}"));
        }
        if let Some(d) = &self.device {
            parts.push(format!("dev {d}"));
        }
        if let Some(a) = self.source_address {
            parts.push(format!("src {a}"));
        }
        if parts.is_empty() {
            "unpinned (main routing table)".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// Internal values that win over derived ones (routerd's `daemon`
/// internals: never accepted from YAML, set by the daemon, e.g. a source
/// address taken from an Interface's status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingOverride {
    /// Mark.
    pub mark: Option<u32>,
    /// Kernel device.
    pub device: Option<String>,
    /// Source address.
    pub source_address: Option<IpAddr>,
}

/// The derived binding together with what could not be agreed on, so the
/// daemon and `routerctl probe` can explain an unpinned probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derivation {
    /// The result.
    pub binding: Binding,
    /// Distinct non-zero marks seen when they conflicted.
    pub conflicting_marks: Vec<u32>,
    /// Distinct devices seen when they conflicted.
    pub conflicting_devices: Vec<String>,
    /// Candidate paths (`policy/candidate[/target]`) that reference the check.
    pub referenced_by: Vec<String>,
}

impl Derivation {
    /// Applies internal overrides (they win).
    pub fn with_override(mut self, o: &BindingOverride) -> Self {
        if o.mark.is_some() {
            self.binding.mark = o.mark;
        }
        if o.device.is_some() {
            self.binding.device.clone_from(&o.device);
        }
        if o.source_address.is_some() {
            self.binding.source_address = o.source_address;
        }
        self
    }
}

/// Kernel name of a logical interface name (the alias map every renderer
/// uses): Interface → `ifname`, DSLiteTunnel → `tunnelName` or its name,
/// PPPoESession → `ifname` or `ppp-<name>`; anything else is taken as a raw
/// kernel name.
pub fn kernel_name(resources: &[Resource], logical: &str) -> String {
    for r in resources.iter().filter(|r| r.name() == logical) {
        if let Some(i) = r.as_interface() {
            if !i.ifname.trim().is_empty() {
                return i.ifname.trim().to_string();
            }
        } else if let Some(d) = r.as_dslite() {
            return d.device_name(r.name()).to_string();
        } else if let Some(p) = r.as_pppoe() {
            return p.device_name(r.name());
        }
    }
    logical.to_string()
}

fn is_dslite(resources: &[Resource], name: &str) -> bool {
    resources
        .iter()
        .any(|r| r.as_dslite().is_some() && r.name() == name)
}

/// Derives the binding of HealthCheck `check` from `resources` (the
/// effective configuration).
///
/// Marks: every non-zero `mark` of a candidate or target whose
/// `healthCheck` is `check`; all equal gives that mark, a conflict gives
/// none. Devices: the same walk over effective interfaces, through
/// [`kernel_name`]. When no candidate names a device, the check's own
/// `spec.interface` is used (routerd leaves such a probe unpinned).
///
/// DS-Lite: the check requires a full binding when a referencing candidate
/// or target has an interface, name, `source` (`DSLiteTunnel/x`) or the
/// check's own `interface` naming a DSLiteTunnel. routerd matches only
/// interface and name (spec §8.1.11), which silently loses fail-closed
/// protection for a differently named candidate.
pub fn derive_binding(resources: &[Resource], check: &str) -> Derivation {
    let mut marks = BTreeSet::new();
    let mut devices = BTreeSet::new();
    let mut referenced_by = Vec::new();
    let mut dslite = false;
    for r in resources {
        let Some(p) = r.as_egress_policy() else {
            continue;
        };
        for (ci, c) in p.candidates.iter().enumerate() {
            let cname = c.status_name(ci);
            if c.health_check.as_deref().map(str::trim) == Some(check) {
                referenced_by.push(format!("{}/{cname}", r.name()));
                if let Some(m) = c.mark.filter(|m| *m != 0) {
                    marks.insert(m);
                }
                if let Some(i) = c.effective_interface() {
                    devices.insert(kernel_name(resources, i));
                    dslite |= is_dslite(resources, i);
                }
                dslite |= c.name.as_deref().is_some_and(|n| is_dslite(resources, n));
                dslite |= c
                    .source
                    .as_deref()
                    .and_then(split_kind_name)
                    .is_some_and(|(k, n)| k == "DSLiteTunnel" && is_dslite(resources, n));
            }
            for (ti, t) in c.targets.iter().enumerate() {
                if t.health_check.as_deref().map(str::trim) != Some(check) {
                    continue;
                }
                let tname = t.name.clone().unwrap_or_else(|| format!("target-{ti}"));
                referenced_by.push(format!("{}/{cname}/{tname}", r.name()));
                if let Some(m) = t.mark.filter(|m| *m != 0) {
                    marks.insert(m);
                }
                if let Some(i) = t.effective_interface() {
                    devices.insert(kernel_name(resources, i));
                    dslite |= is_dslite(resources, i);
                }
                dslite |= t.name.as_deref().is_some_and(|n| is_dslite(resources, n));
            }
        }
    }
    let own_interface = resources
        .iter()
        .find(|r| r.name() == check)
        .and_then(Resource::as_health_check)
        .and_then(|h| h.interface.as_deref())
        .map(str::trim)
        .filter(|i| !i.is_empty());
    if let Some(i) = own_interface {
        dslite |= is_dslite(resources, i);
        if devices.is_empty() {
            devices.insert(kernel_name(resources, i));
        }
    }
    let mut d = Derivation {
        referenced_by,
        ..Derivation::default()
    };
    // Marks are i64 in YAML; a value that does not fit a u32 cannot be an
    // SO_MARK and is dropped (validation reports it).
    let marks: Vec<i64> = marks.into_iter().collect();
    match marks.as_slice() {
        [m] => d.binding.mark = u32::try_from(*m).ok(),
        [] => {}
        many => {
            d.conflicting_marks = many.iter().filter_map(|m| u32::try_from(*m).ok()).collect();
        }
    }
    let devices: Vec<String> = devices.into_iter().collect();
    match devices.as_slice() {
        [one] => d.binding.device = Some(one.clone()),
        [] => {}
        many => d.conflicting_devices = many.to_vec(),
    }
    d.binding.require_dslite = dslite;
    d
}

/// Where a probe's derived source address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceOrigin {
    /// The candidate's `source` is an IPv4StaticAddress.
    Source,
    /// An IPv4StaticAddress on the candidate's interface.
    Static,
    /// The primary IPv4 address on the candidate's device, as the kernel
    /// reports it.
    Device,
    /// The reserved address of the EgressRouter whose rule or fallback
    /// names the check: its probe must leave the way redirected traffic
    /// does, so a destination that only answers the reserved address is
    /// judged as the clients' connections will find it.
    Reserved,
}

impl SourceOrigin {
    /// routerd's `sourceOrigin` word (`static` or `dynamic`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceOrigin::Source | SourceOrigin::Static | SourceOrigin::Reserved => "static",
            SourceOrigin::Device => "dynamic",
        }
    }
}

/// The source address one check's probes bind to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceDerivation {
    /// The address; `None` leaves the choice to the kernel.
    pub address: Option<IpAddr>,
    /// Where it came from.
    pub origin: Option<SourceOrigin>,
    /// Distinct addresses the referencing candidates disagreed on.
    pub conflicting: Vec<IpAddr>,
}

/// The address part of `a.b.c.d[/len]` when it is IPv4.
fn ipv4_of(text: &str) -> Option<IpAddr> {
    let addr = text.trim().split('/').next()?;
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// What source derivation reads, indexed once: every reference looks
/// things up by name, and a full configuration has thousands of both.
struct SourceIndex<'a> {
    /// Logical interface name -> kernel device (the alias map).
    devices: std::collections::HashMap<&'a str, String>,
    /// IPv4StaticAddress name -> address.
    by_name: std::collections::HashMap<&'a str, IpAddr>,
    /// (kernel device, address) of every IPv4StaticAddress, in order.
    statics: Vec<(String, IpAddr)>,
    addresses: &'a BTreeMap<String, Vec<IpAddr>>,
}

impl<'a> SourceIndex<'a> {
    fn new(resources: &'a [Resource], addresses: &'a BTreeMap<String, Vec<IpAddr>>) -> Self {
        let mut devices = std::collections::HashMap::new();
        for r in resources {
            if r.as_interface().is_some() || r.as_dslite().is_some() || r.as_pppoe().is_some() {
                devices
                    .entry(r.name())
                    .or_insert_with(|| kernel_name(resources, r.name()));
            }
        }
        let mut idx = SourceIndex {
            devices,
            by_name: std::collections::HashMap::new(),
            statics: Vec::new(),
            addresses,
        };
        for r in resources {
            if let Some(a) = r.as_static_address()
                && let Some(ip) = ipv4_of(&a.address)
            {
                idx.by_name.entry(r.name()).or_insert(ip);
                let dev = idx.device(&a.interface);
                idx.statics.push((dev, ip));
            }
        }
        idx
    }

    fn device(&self, logical: &str) -> String {
        self.devices
            .get(logical)
            .cloned()
            .unwrap_or_else(|| logical.to_string())
    }

    /// The source address one reference (candidate or target) asks for.
    fn reference(
        &self,
        source: Option<&str>,
        interface: Option<&str>,
    ) -> Option<(IpAddr, SourceOrigin)> {
        // 1. `source: IPv4StaticAddress/x` names the address outright.
        if let Some((kind, name)) = source.and_then(split_kind_name)
            && kind == "IPv4StaticAddress"
            && let Some(a) = self.by_name.get(name)
        {
            return Some((*a, SourceOrigin::Source));
        }
        let device = self.device(interface?);
        let carried = self.addresses.get(&device);
        // 2. An IPv4StaticAddress on that interface, once the device
        //    carries it: binding an address the device lacks fails every
        //    probe, and the path may still be fine.
        for (dev, ip) in &self.statics {
            if *dev == device && carried.is_some_and(|c| c.contains(ip)) {
                return Some((*ip, SourceOrigin::Static));
            }
        }
        // 3. The device's primary IPv4 address (the kernel lists primaries
        //    first).
        carried?
            .iter()
            .find(|a| a.is_ipv4())
            .map(|a| (*a, SourceOrigin::Device))
    }
}

/// Derives the source address of every HealthCheck's probes from the
/// candidates and targets that reference it (spec §4.4 derives mark and
/// device the same way; routerd passes `--source-address` only when a
/// daemon internal sets it, so a probe on a multi-address uplink leaves
/// with whatever the kernel picks).
///
/// Per reference, the first that applies: its `source` is an
/// IPv4StaticAddress; an IPv4StaticAddress on its effective interface
/// that the device carries; the primary IPv4 address on its device.
/// `addresses` holds the addresses of every kernel device (netlink's
/// view). All references agreeing gives that address, a conflict gives
/// none. Only IPv4 targets get one: an IPv6 probe on its pinned device
/// gets the kernel's RFC 6724 choice.
pub fn derive_sources(
    resources: &[Resource],
    addresses: &BTreeMap<String, Vec<IpAddr>>,
) -> BTreeMap<String, SourceDerivation> {
    let idx = SourceIndex::new(resources, addresses);
    // check -> what its references ask for (None: nothing derivable).
    let mut asked: BTreeMap<&str, Vec<Option<(IpAddr, SourceOrigin)>>> = BTreeMap::new();
    for r in resources {
        let Some(p) = r.as_egress_policy() else {
            continue;
        };
        for c in &p.candidates {
            if let Some(check) = c.health_check.as_deref().map(str::trim) {
                let s = idx.reference(c.source.as_deref(), c.effective_interface());
                asked.entry(check).or_default().push(s);
            }
            for t in &c.targets {
                if let Some(check) = t.health_check.as_deref().map(str::trim) {
                    let s = idx.reference(None, t.effective_interface());
                    asked.entry(check).or_default().push(s);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for r in resources {
        let Some(hc) = r.as_health_check() else {
            continue;
        };
        let ipv4_target = hc
            .target
            .as_deref()
            .and_then(|t| t.trim().parse::<IpAddr>().ok())
            .is_some_and(|t| t.is_ipv4());
        let mut d = SourceDerivation::default();
        if ipv4_target {
            let refs = asked.get(r.name()).map(Vec::as_slice).unwrap_or_default();
            let own = hc
                .interface
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty());
            let derived: Vec<Option<(IpAddr, SourceOrigin)>> = if refs.is_empty() {
                // Like the device: the check's own interface when no
                // candidate references it.
                own.map(|i| vec![idx.reference(None, Some(i))])
                    .unwrap_or_default()
            } else {
                refs.to_vec()
            };
            let distinct: BTreeSet<IpAddr> = derived.iter().flatten().map(|(a, _)| *a).collect();
            // A reference with nothing to derive leaves its probes to the
            // kernel too: pinning them to another reference's address
            // could not be right for both.
            if distinct.len() == 1 && derived.iter().all(Option::is_some) {
                if let Some(Some((a, o))) = derived.first() {
                    d.address = Some(*a);
                    d.origin = Some(*o);
                }
            } else if distinct.len() > 1 {
                d.conflicting = distinct.into_iter().collect();
            }
        }
        out.insert(r.name().to_string(), d);
    }
    pin_to_reserved(resources, &mut out);
    out
}

/// Checks named by an EgressRouter (a redirect rule's `healthCheck` /
/// `healthChecks`, or `fallbackHealthCheck`) probe from the router's
/// reserved address of the check target's family (the first listed), both
/// families, since the address is known from the spec. A check also named
/// by candidates that derived another address, or by two routers with
/// different addresses, is left to the kernel, like any conflict.
fn pin_to_reserved(resources: &[Resource], out: &mut BTreeMap<String, SourceDerivation>) {
    let mut asked: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    for r in resources {
        let Some(er) = r.as_egress_router() else {
            continue;
        };
        let reserved: Vec<IpAddr> = er
            .addresses
            .iter()
            .filter_map(|a| a.ip.trim().split('/').next()?.parse::<IpAddr>().ok())
            .collect();
        let names = er
            .rules()
            .iter()
            .flat_map(|rule| rule.health_check_names())
            .chain(er.fallback_health_check());
        for name in names {
            let target = resources
                .iter()
                .find(|h| h.name() == name)
                .and_then(Resource::as_health_check)
                .and_then(|h| h.target.as_deref())
                .and_then(|t| t.trim().parse::<IpAddr>().ok());
            let pick = reserved
                .iter()
                .find(|a| target.is_none_or(|t| t.is_ipv4() == a.is_ipv4()));
            if let Some(a) = pick {
                asked.entry(name).or_default().insert(*a);
            }
        }
    }
    for (name, addrs) in asked {
        let Some(d) = out.get_mut(name) else {
            continue;
        };
        let mut all: BTreeSet<IpAddr> = addrs;
        all.extend(d.address);
        all.extend(d.conflicting.iter().copied());
        if all.len() == 1 {
            d.address = all.into_iter().next();
            d.origin = Some(SourceOrigin::Reserved);
        } else {
            d.address = None;
            d.origin = None;
            d.conflicting = all.into_iter().collect();
        }
    }
}

/// [`derive_sources`] for one check.
pub fn derive_source(
    resources: &[Resource],
    check: &str,
    addresses: &BTreeMap<String, Vec<IpAddr>>,
) -> SourceDerivation {
    derive_sources(resources, addresses)
        .remove(check)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerd_model::Loaded;

    fn load(yaml: &str) -> Vec<Resource> {
        let mut l = Loaded::new();
        l.add_file("t.yaml", yaml);
        assert!(
            l.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            l.diagnostics
        );
        l.resources
    }

    const BASE: &str = r#"
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lte}
spec: {ifname: wwan0}
---
apiVersion: net.routerd.net/v1alpha1
kind: DSLiteTunnel
metadata: {name: ds1}
spec: {interface: wan, tunnelName: dslite0, aftrIPv6: "2001:db8::1"}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-wan}
spec: {target: 192.0.2.1}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-ds}
spec: {target: 192.0.2.2}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-lonely}
spec: {target: 192.0.2.3, interface: lte}
"#;

    #[test]
    fn mark_and_device_come_from_the_referencing_candidate() {
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
  - {{name: primary, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}}
  - {{name: backup, interface: lte, mark: 32, table: 200}}
"
        ));
        let d = derive_binding(&rs, "hc-wan");
        assert_eq!(d.binding.mark, Some(16));
        assert_eq!(d.binding.device.as_deref(), Some("eth1"), "alias to ifname");
        assert!(!d.binding.require_dslite);
        assert_eq!(d.referenced_by, vec!["p/primary".to_string()]);
        assert_eq!(d.binding.fail_closed_reason(), None);
    }

    #[test]
    fn conflicting_marks_or_devices_give_none() {
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
  - {{name: a, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}}
  - {{name: b, interface: lte, mark: 32, table: 200, healthCheck: hc-wan}}
"
        ));
        let d = derive_binding(&rs, "hc-wan");
        assert_eq!(d.binding.mark, None);
        assert_eq!(d.binding.device, None);
        assert_eq!(d.conflicting_marks, vec![16, 32]);
        assert_eq!(d.conflicting_devices, vec!["eth1", "wwan0"]);
    }

    #[test]
    fn zero_marks_are_ignored_and_equal_marks_agree() {
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
  - {{name: a, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}}
  - {{name: b, interface: wan, mark: 0, healthCheck: hc-wan}}
  - name: c
    targets:
    - {{name: t1, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}}
"
        ));
        let d = derive_binding(&rs, "hc-wan");
        assert_eq!(d.binding.mark, Some(16));
        assert_eq!(d.binding.device.as_deref(), Some("eth1"));
        assert_eq!(d.referenced_by, vec!["p/a", "p/b", "p/c/t1"]);
    }

    #[test]
    fn dslite_candidate_without_mark_fails_closed() {
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
  - {{name: tunnel, interface: ds1, healthCheck: hc-ds}}
"
        ));
        let d = derive_binding(&rs, "hc-ds");
        assert!(d.binding.require_dslite);
        assert_eq!(d.binding.device.as_deref(), Some("dslite0"));
        assert_eq!(d.binding.fail_closed_reason(), Some(DSLITE_BINDING_INVALID));
        // With the mark it may probe.
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
  - {{name: tunnel, interface: ds1, mark: 48, table: 300, healthCheck: hc-ds}}
"
        ));
        let d = derive_binding(&rs, "hc-ds");
        assert_eq!(d.binding.fail_closed_reason(), None);
        assert_eq!(d.binding.mark, Some(48));
    }

    #[test]
    fn dslite_source_reference_also_requires_binding() {
        // routerd misses this one (spec §8.1.11): named differently, no interface.
        let rs = load(&format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  candidates:
  - {{name: other-name, source: DSLiteTunnel/ds1, device: dslite0, healthCheck: hc-ds}}
"
        ));
        let d = derive_binding(&rs, "hc-ds");
        assert!(d.binding.require_dslite);
        assert_eq!(d.binding.fail_closed_reason(), Some(DSLITE_BINDING_INVALID));
    }

    #[test]
    fn own_interface_is_the_fallback_device_and_overrides_win() {
        let rs = load(BASE);
        let d = derive_binding(&rs, "hc-lonely");
        assert_eq!(d.binding.device.as_deref(), Some("wwan0"));
        assert_eq!(d.binding.mark, None);
        let o = BindingOverride {
            mark: Some(7),
            source_address: Some("192.0.2.9".parse().unwrap()),
            ..BindingOverride::default()
        };
        let d = d.with_override(&o);
        assert_eq!(d.binding.mark, Some(7));
        assert_eq!(d.binding.device.as_deref(), Some("wwan0"));
        assert_eq!(d.binding.describe(), "mark 0x7 dev wwan0 src 192.0.2.9");
        assert_eq!(
            derive_binding(&rs, "hc-wan").binding.describe(),
            "unpinned (main routing table)"
        );
    }

    fn addrs(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<IpAddr>> {
        list.iter()
            .map(|(d, a)| {
                (
                    d.to_string(),
                    a.iter().map(|x| x.parse().unwrap()).collect(),
                )
            })
            .collect()
    }

    fn policy(candidates: &str) -> String {
        format!(
            "{BASE}---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {{name: p}}
spec:
  mode: priority
  candidates:
{candidates}"
        )
    }

    const STATIC_ON_WAN: &str = "---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {name: wan-extra}
spec: {interface: wan, address: 198.51.100.3/24}
";

    #[test]
    fn static_address_on_the_interface_wins_over_the_primary_once_carried() {
        let rs = load(&format!(
            "{}{STATIC_ON_WAN}",
            policy(
                "  - {name: primary, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}\n"
            )
        ));
        let both = addrs(&[("eth1", &["fe80::1", "198.51.100.2", "198.51.100.3"])]);
        let d = derive_source(&rs, "hc-wan", &both);
        assert_eq!(d.address, Some("198.51.100.3".parse().unwrap()));
        assert_eq!(d.origin, Some(SourceOrigin::Static));
        // Not on the device (yet): the primary, not an address bind fails on.
        let primary_only = addrs(&[("eth1", &["fe80::1", "198.51.100.2"])]);
        let d = derive_source(&rs, "hc-wan", &primary_only);
        assert_eq!(d.address, Some("198.51.100.2".parse().unwrap()));
        assert_eq!(d.origin, Some(SourceOrigin::Device));
        assert_eq!(d.origin.map(SourceOrigin::as_str), Some("dynamic"));
    }

    #[test]
    fn without_a_static_address_the_first_ipv4_of_the_device() {
        let rs = load(&policy(
            "  - {name: primary, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}\n",
        ));
        let a = addrs(&[
            ("eth1", &["2001:db8::2", "203.0.113.7", "203.0.113.8"]),
            ("wwan0", &["10.0.0.2"]),
        ]);
        let d = derive_source(&rs, "hc-wan", &a);
        assert_eq!(d.address, Some("203.0.113.7".parse().unwrap()));
        // A device without addresses, or absent: the kernel chooses.
        assert_eq!(
            derive_source(&rs, "hc-wan", &addrs(&[("eth1", &[])])).address,
            None
        );
        assert_eq!(
            derive_source(&rs, "hc-wan", &BTreeMap::new()),
            SourceDerivation::default()
        );
    }

    #[test]
    fn a_source_naming_a_static_address_is_taken_as_written() {
        let rs = load(&format!(
            "{}{STATIC_ON_WAN}",
            policy(
                "  - {name: primary, source: IPv4StaticAddress/wan-extra, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}\n"
            )
        ));
        let d = derive_source(&rs, "hc-wan", &BTreeMap::new());
        assert_eq!(d.address, Some("198.51.100.3".parse().unwrap()));
        assert_eq!(d.origin, Some(SourceOrigin::Source));
    }

    #[test]
    fn disagreeing_references_and_ipv6_targets_get_no_source() {
        let rs = load(&policy(
            "  - {name: a, interface: wan, mark: 16, table: 100, healthCheck: hc-wan}
  - {name: b, interface: lte, mark: 32, table: 200, healthCheck: hc-wan}
",
        ));
        let a = addrs(&[("eth1", &["192.0.2.10"]), ("wwan0", &["10.0.0.2"])]);
        let d = derive_source(&rs, "hc-wan", &a);
        assert_eq!(d.address, None);
        assert_eq!(
            d.conflicting,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "192.0.2.10".parse().unwrap()
            ]
        );
        // One reference derivable, the other not: no source either.
        let d = derive_source(&rs, "hc-wan", &addrs(&[("eth1", &["192.0.2.10"])]));
        assert_eq!((d.address, d.conflicting.len()), (None, 0));
        let v6 = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc6}
spec: {target: '2001:db8::53'}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: p}
spec:
  mode: priority
  candidates:
  - {name: a, interface: wan, mark: 16, table: 100, healthCheck: hc6}
",
        );
        let a = addrs(&[("eth1", &["192.0.2.10", "2001:db8::2"])]);
        assert_eq!(derive_source(&v6, "hc6", &a).address, None);
    }

    #[test]
    fn tunnel_aliases_and_the_checks_own_interface_are_followed() {
        let rs = load(&policy(
            "  - {name: tunnel, interface: ds1, mark: 48, table: 300, healthCheck: hc-ds}\n",
        ));
        let a = addrs(&[("dslite0", &["192.0.0.2"]), ("wwan0", &["10.0.0.2"])]);
        assert_eq!(
            derive_source(&rs, "hc-ds", &a).address,
            Some("192.0.0.2".parse().unwrap())
        );
        // hc-lonely has no candidate; its own interface (lte -> wwan0) counts.
        assert_eq!(
            derive_source(&rs, "hc-lonely", &a).address,
            Some("10.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn egress_router_checks_probe_from_the_reserved_address() {
        let rs = load(
            "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: web}
spec: {target: 198.51.100.7, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: web6}
spec: {target: \"2001:db8:1::7\", addressFamily: ipv6, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: fb}
spec: {target: 198.51.100.9}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: er}
spec:
  addresses: [{ip: 192.0.2.10/24}, {ip: 192.0.2.11/24}]
  redirect:
    redirectRules: [{destinationIP: 198.51.100.7, port: 80, protocol: TCP, healthCheck: web}]
    fallbackIP: 198.51.100.9
    fallbackHealthCheck: fb
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: er6}
spec:
  addresses: [{ip: \"2001:db8::10/64\"}]
  redirect:
    redirectRules: [{destinationIP: \"2001:db8:1::7\", port: 80, protocol: TCP, healthCheck: web6}]
",
        );
        let d = derive_sources(&rs, &BTreeMap::new());
        let web = &d["web"];
        assert_eq!(web.address, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(web.origin, Some(SourceOrigin::Reserved));
        assert_eq!(d["fb"].address, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(d["web6"].address, Some("2001:db8::10".parse().unwrap()));
    }
}
