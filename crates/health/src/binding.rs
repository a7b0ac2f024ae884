//! Which path a probe must take (spec §4.4).
//!
//! A probe that escapes over the management path reports a dead uplink as
//! healthy, and users may not set marks or devices on a HealthCheck. So the
//! binding is derived from the EgressRoutePolicy candidates (and targets)
//! that reference the check: their `mark` becomes `SO_MARK`, their interface
//! (through the logical-name alias map) becomes `SO_BINDTODEVICE`. A check
//! that guards a DS-Lite tunnel and cannot be fully pinned fails closed.

use std::collections::BTreeSet;
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
}
