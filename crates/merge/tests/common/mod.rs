#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! Shared helpers: YAML fixtures in, parts and results out.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_merge::{Effective, Part, PartReport, PartState, Startup};
use routerd_model::{Loaded, Resource, ResourceId};

pub fn load(yaml: &str) -> Vec<Resource> {
    let mut l = Loaded::new();
    l.add_file("fixture.yaml", yaml);
    let errors: Vec<String> = l
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "fixture does not decode: {errors:?}");
    l.resources
}

pub fn parts(yaml: &str) -> Vec<Part> {
    load(yaml)
        .into_iter()
        .map(|r| Part::from_resource(r).unwrap())
        .collect()
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn now() -> DateTime<Utc> {
    t("2026-05-29T12:00:00Z")
}

pub fn startup(yaml: &str) -> Arc<Startup> {
    let rs = load(yaml);
    let diags =
        routerd_model::validate::diagnostics(&rs, routerd_model::validate::Context::Startup);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "startup fixture invalid: {errors:?}");
    Arc::new(Startup::new(rs))
}

pub fn build(startup: &Arc<Startup>, parts: Vec<Part>, now: DateTime<Utc>) -> Effective {
    Effective::build(startup.clone(), parts, now).unwrap()
}

pub fn id(kind: &str, name: &str) -> ResourceId {
    let k = routerd_model::Kind::parse(kind).unwrap();
    ResourceId::of(k, name)
}

pub fn plain(v: &[routerd_merge::SharedId]) -> Vec<ResourceId> {
    v.iter().map(|x| (**x).clone()).collect()
}

pub fn names(e: &Effective) -> Vec<String> {
    e.iter()
        .map(|x| format!("{}/{}", x.resource.kind(), x.resource.name()))
        .collect()
}

pub fn report<'a>(reports: &'a [PartReport], name: &str) -> &'a PartReport {
    reports
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no part {name} in {reports:?}"))
}

pub fn state(e: &Effective, name: &str) -> (PartState, String) {
    let r = e.parts();
    let p = report(&r, name);
    (p.state, p.reason.clone())
}

/// Startup used by most rule tests: three interfaces, a tunnel on `wan`,
/// and permissions for `Plugin/a`, `Plugin/b` and `Plugin/c`.
pub const STARTUP: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: test}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan}
      spec: {ifname: ens18}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec: {ifname: ens19}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: spare}
      spec: {ifname: ens20}
    - apiVersion: net.routerd.net/v1alpha1
      kind: DSLiteTunnel
      metadata: {name: tun}
      spec: {interface: wan, aftrIPv6: "2001:db8::1"}
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {name: cloud}
      spec:
        allow:
          - source: Plugin/a
            operations: [mask]
            targets:
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: spare}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: wan}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: lan}
              - {apiVersion: net.routerd.net/v1alpha1, kind: DSLiteTunnel, name: tun}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: ghost}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: dyn}
          - source: Plugin/b
            operations: [mask]
            targets:
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: spare}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: lan}
          - source: Plugin/c
            operations: [mask]
            targets:
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: spare}
"#;

/// A part document. `body` is YAML for `resources:`/`directives:` lines,
/// indented by four spaces.
pub fn part_yaml(
    name: &str,
    source: &str,
    generation: i64,
    expires: Option<&str>,
    body: &str,
) -> String {
    let exp = expires
        .map(|e| format!("  expiresAt: \"{e}\"\n"))
        .unwrap_or_default();
    format!(
        "---\napiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {{name: {name}}}\nspec:\n  source: {source}\n  generation: {generation}\n  observedAt: \"2026-05-29T11:00:00Z\"\n{exp}{body}"
    )
}

pub fn iface(name: &str, ifname: &str) -> String {
    format!(
        "    - apiVersion: net.routerd.net/v1alpha1\n      kind: Interface\n      metadata: {{name: {name}}}\n      spec: {{ifname: \"{ifname}\"}}\n"
    )
}

pub fn mask(kind: &str, name: &str, reason: &str) -> String {
    format!(
        "    - op: mask\n      target: {{apiVersion: net.routerd.net/v1alpha1, kind: {kind}, name: {name}}}\n      reason: \"{reason}\"\n"
    )
}

/// One part: `resources` and `directives` are lists of item snippets.
pub fn part(
    name: &str,
    source: &str,
    generation: i64,
    expires: Option<&str>,
    resources: &[String],
    directives: &[String],
) -> Part {
    let mut body = String::new();
    if !resources.is_empty() {
        body.push_str("  resources:\n");
        for r in resources {
            body.push_str(r);
        }
    }
    if !directives.is_empty() {
        body.push_str("  directives:\n");
        for d in directives {
            body.push_str(d);
        }
    }
    let y = part_yaml(name, source, generation, expires, &body);
    let mut ps = parts(&y);
    assert_eq!(ps.len(), 1);
    ps.remove(0)
}
