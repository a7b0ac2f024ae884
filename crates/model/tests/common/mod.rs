//! Helpers shared by the model's integration tests.
//!
//! `BASE` is a small valid configuration that every reference in the rule
//! tests can point at; a test adds one resource named `t` in its own file
//! (`t.yaml`) and asserts exactly which diagnostics come back.

#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_model::{Diagnostic, Kind, Severity, load_and_validate};

/// A valid configuration with one resource of each kind references point at.
pub const BASE: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: DSLiteTunnel
metadata: {name: dsl}
spec: {interface: wan, aftrFQDN: gw.example.net}
---
apiVersion: net.routerd.net/v1alpha1
kind: PPPoESession
metadata: {name: ppp}
spec: {interface: wan, username: user, passwordFile: /etc/routerd/ppp.secret}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {target: 1.1.1.1}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: pol}
spec:
  candidates:
    - {name: a, interface: wan}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPAddressSet
metadata: {name: set1}
spec: {addresses: [10.0.0.0/8]}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPAddressSet
metadata: {name: set2}
spec: {addresses: [172.16.0.0/12]}
---
apiVersion: plugin.routerd.net/v1alpha1
kind: Plugin
metadata: {name: plug}
spec: {executable: /usr/libexec/routerd/plug}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: peer}
spec: {role: cloud, nodeID: n1, underlay: {type: route}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: tun}
spec: {trustedUnderlay: true, mode: gre, local: 192.0.2.1, remote: 192.0.2.2}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: CloudProviderProfile
metadata: {name: prof}
spec: {provider: azure, capabilities: [privateIP]}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: AddressMobilityDomain
metadata: {name: dom}
spec: {prefix: 10.50.0.0/16, mode: selective-address}
";

/// `apiVersion/Kind/name` of a known kind.
pub fn id(kind: &str, name: &str) -> String {
    let k = Kind::parse(kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
    format!("{}/{kind}/{name}", k.api_version())
}

/// One resource document named `name` with `spec` (YAML at column 0).
pub fn doc(kind: &str, name: &str, spec: &str) -> String {
    let k = Kind::parse(kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
    let mut s = format!(
        "apiVersion: {}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n",
        k.api_version()
    );
    if spec.trim().is_empty() {
        s.pop();
        s.push_str(" {}\n");
    }
    for line in spec.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Every diagnostic of `BASE` plus `text` loaded as `t.yaml`.
pub fn with_base(text: &str) -> Vec<Diagnostic> {
    let (_, d) = load_and_validate(&[("base.yaml", BASE), ("t.yaml", text)]);
    d
}

/// Every diagnostic of `BASE` plus resource `t` of `kind` with `spec`.
pub fn diags(kind: &str, spec: &str) -> Vec<Diagnostic> {
    with_base(&doc(kind, "t", spec))
}

fn show(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(|d| format!("  [{:?}] {:?} {d}", d.path, d.resource))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts the diagnostics of `severity` are exactly `expected` (path,
/// message after `<id> `), all about resource `t` in `t.yaml` with a line
/// and column.
fn assert_exact(kind: &str, ds: &[Diagnostic], severity: Severity, expected: &[(&str, &str)]) {
    let rid = id(kind, "t");
    let got: Vec<&Diagnostic> = ds.iter().filter(|d| d.severity == severity).collect();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), format!("{rid} {m}")))
        .collect();
    let mut have: Vec<(String, String)> = got
        .iter()
        .map(|d| (d.path.clone().unwrap_or_default(), d.message.clone()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "diagnostics were:\n{}", show(ds));
    for d in got {
        assert_eq!(d.resource.as_deref(), Some(rid.as_str()), "{d}");
        assert_eq!(d.file.as_deref(), Some("t.yaml"), "{d}");
        assert!(d.line.is_some() && d.column.is_some(), "no position: {d}");
    }
}

/// Resource `t` of `kind` with `spec` has exactly these errors.
pub fn expect_errors(kind: &str, spec: &str, expected: &[(&str, &str)]) {
    let ds = diags(kind, spec);
    assert_exact(kind, &ds, Severity::Error, expected);
}

/// Resource `t` of `kind` with `spec` has exactly one error.
pub fn expect_error(kind: &str, spec: &str, path: &str, message: &str) {
    expect_errors(kind, spec, &[(path, message)]);
}

/// Resource `t` of `kind` with `spec` has no error and exactly these warnings.
pub fn expect_warnings(kind: &str, spec: &str, expected: &[(&str, &str)]) {
    let ds = diags(kind, spec);
    assert_exact(kind, &ds, Severity::Error, &[]);
    assert_exact(kind, &ds, Severity::Warning, expected);
}

/// Resource `t` of `kind` with `spec` is valid (warnings allowed).
pub fn expect_valid(kind: &str, spec: &str) {
    let ds = diags(kind, spec);
    let errors: Vec<_> = ds.iter().filter(|d| d.is_error()).cloned().collect();
    assert!(errors.is_empty(), "unexpected errors:\n{}", show(&errors));
}

/// The errors only (for decode tests that look at several resources).
pub fn errors(ds: &[Diagnostic]) -> Vec<Diagnostic> {
    ds.iter().filter(|d| d.is_error()).cloned().collect()
}
