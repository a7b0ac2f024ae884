//! Decoding: unknown fields, type errors, removed kinds and fields, the
//! Router envelope, and combining several files. Every diagnostic is
//! checked for its message, resource id, field path and position.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use routerd_model::{Diagnostic, load_and_validate};

/// Loads one file `f.yaml` (without BASE) and returns every diagnostic.
fn load(text: &str) -> Vec<Diagnostic> {
    load_and_validate(&[("f.yaml", text)]).1
}

/// Asserts `d` is exactly (message, resource, path, line, column) in f.yaml.
#[track_caller]
fn assert_diag(
    d: &Diagnostic,
    message: &str,
    resource: Option<&str>,
    path: Option<&str>,
    line: usize,
    column: usize,
) {
    assert_eq!(d.message, message, "{d:?}");
    assert_eq!(d.resource.as_deref(), resource, "{d:?}");
    assert_eq!(d.path.as_deref(), path, "{d:?}");
    assert_eq!(d.file.as_deref(), Some("f.yaml"), "{d:?}");
    assert_eq!((d.line, d.column), (Some(line), Some(column)), "{d:?}");
    assert!(d.is_error(), "{d:?}");
}

#[track_caller]
fn only(ds: &[Diagnostic]) -> &Diagnostic {
    assert_eq!(ds.len(), 1, "expected one diagnostic, got {ds:#?}");
    &ds[0]
}

const IFACE: &str = "net.routerd.net/v1alpha1/Interface/wan";
const H: &str = routerd_model::compat::UNKNOWN_FIELD_HINT;

/// (message, path, line, column).
type Located = (String, Option<String>, Option<usize>, Option<usize>);

// ---- unknown fields ----

#[test]
fn unknown_spec_field_is_an_error_with_path_and_position() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec:
  ifname: eth0
  role: trust
",
    );
    assert_diag(
        only(&ds),
        &format!("{IFACE} spec.role is not a known field of Interface {H}"),
        Some(IFACE),
        Some("spec.role"),
        6,
        3,
    );
}

#[test]
fn every_unknown_field_is_reported_including_nested_ones() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: p}
spec:
  famly: ipv4
  candidates:
    - name: a
      interface: wan
    - name: b
      weigth: 10
      targets:
        - {interface: wan, tabel: 5}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
",
    );
    let id = "net.routerd.net/v1alpha1/EgressRoutePolicy/p";
    let unknown: Vec<Located> = ds
        .iter()
        .filter(|d| d.message.contains("is not a known field"))
        .map(|d| (d.message.clone(), d.path.clone(), d.line, d.column))
        .collect();
    assert_eq!(
        unknown,
        vec![
            (
                format!("{id} spec.famly is not a known field of EgressRoutePolicy {H}"),
                Some("spec.famly".into()),
                Some(5),
                Some(3)
            ),
            (
                format!(
                    "{id} spec.candidates[1].weigth is not a known field of EgressRoutePolicy {H}"
                ),
                Some("spec.candidates[1].weigth".into()),
                Some(10),
                Some(7)
            ),
            (
                format!(
                    "{id} spec.candidates[1].targets[0].tabel is not a known field of EgressRoutePolicy {H}"
                ),
                Some("spec.candidates[1].targets[0].tabel".into()),
                Some(12),
                Some(28)
            ),
        ]
    );
}

#[test]
fn unknown_top_level_resource_field() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
labels: {a: b}
spec: {ifname: eth0}
",
    );
    assert_diag(
        only(&ds),
        &format!("{IFACE} labels is not a known field {H}"),
        Some(IFACE),
        Some("labels"),
        4,
        1,
    );
}

#[test]
fn unknown_metadata_field_drops_the_resource() {
    let (l, ds) = load_and_validate(&[(
        "f.yaml",
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata:
  name: wan
  namespace: x
spec: {ifname: eth0}
",
    )]);
    let d = only(&ds);
    assert!(
        d.message
            .starts_with("net.routerd.net/v1alpha1/Interface metadata"),
        "{d}"
    );
    assert!(d.message.contains("unknown field `namespace`"), "{d}");
    // Positions point at the key that is wrong (or at the nearest
    // ancestor key present).
    assert_eq!((d.line, d.column), (Some(5), Some(3)));
    assert!(l.resources.is_empty());
}

// ---- type errors ----

#[test]
fn every_type_error_of_a_resource_is_reported() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec:
  ifname: eth0
  mtu: big
  adminUp: maybe
  managed: [true]
",
    );
    let got: Vec<(String, Option<String>, Option<usize>)> = ds
        .iter()
        .map(|d| (d.message.clone(), d.path.clone(), d.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                format!("{IFACE} spec.mtu: invalid type: string \"big\", expected i64"),
                Some("spec.mtu".into()),
                Some(6)
            ),
            (
                format!("{IFACE} spec.adminUp: invalid type: string \"maybe\", expected a boolean"),
                Some("spec.adminUp".into()),
                Some(7)
            ),
            (
                format!("{IFACE} spec.managed: invalid type: sequence, expected a boolean"),
                Some("spec.managed".into()),
                Some(8)
            ),
        ]
    );
}

#[test]
fn a_number_where_a_duration_string_is_expected_is_a_type_error() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec: {interval: 10}
",
    );
    assert_diag(
        only(&ds),
        "net.routerd.net/v1alpha1/HealthCheck/hc spec.interval: invalid type: integer `10`, expected a string",
        Some("net.routerd.net/v1alpha1/HealthCheck/hc"),
        Some("spec.interval"),
        4,
        8,
    );
}

#[test]
fn a_mistyped_field_is_not_also_reported_as_missing() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: p}
spec:
  candidates: none
",
    );
    let d = only(&ds);
    assert_eq!(d.path.as_deref(), Some("spec.candidates"));
    assert!(d.message.contains("invalid type"), "{d}");
    assert!(!ds.iter().any(|d| d.message.ends_with("is required")));
}

// ---- identity ----

#[test]
fn resource_api_version_is_required() {
    let ds = load("kind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n");
    assert_diag(
        only(&ds),
        "resource apiVersion is required",
        None,
        Some("apiVersion"),
        1,
        1,
    );
}

#[test]
fn resource_kind_is_required() {
    let ds = load("apiVersion: net.routerd.net/v1alpha1\nmetadata: {name: wan}\n");
    assert_diag(
        only(&ds),
        "resource kind is required",
        None,
        Some("kind"),
        1,
        1,
    );
}

#[test]
fn resource_metadata_name_is_required() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {}\nspec: {ifname: eth0}\n",
    );
    assert_diag(
        only(&ds),
        "net.routerd.net/v1alpha1/Interface metadata.name is required",
        None,
        Some("metadata.name"),
        3,
        1,
    );
}

#[test]
fn unsupported_kind() {
    let ds =
        load("apiVersion: net.routerd.net/v1alpha1\nkind: Frobnicator\nmetadata: {name: blue}\n");
    let id = "net.routerd.net/v1alpha1/Frobnicator/blue";
    assert_diag(
        only(&ds),
        &format!("unsupported resource kind Frobnicator in {id}"),
        Some(id),
        Some("kind"),
        2,
        1,
    );
}

#[test]
fn legacy_kinds_get_pointed_advice() {
    let cases = [
        (
            "IPv4DefaultRoutePolicy",
            "is not supported; use EgressRoutePolicy with candidates directly",
        ),
        (
            "IPv4PolicyRoute",
            "is not supported; use EgressRoutePolicy with one marked candidate",
        ),
        (
            "IPv4PolicyRouteSet",
            "is not supported; put hashFields and targets under EgressRoutePolicy candidates",
        ),
        (
            "IPv4SourceNAT",
            "is not supported; use NAT44Rule for IPv4 source NAT intent",
        ),
        (
            "Link",
            "is not supported; use Interface resources as link status providers",
        ),
        (
            "PPPoEInterface",
            "is not supported; use PPPoESession for routerd-managed PPPoE session intent",
        ),
        (
            "WANEgressPolicy",
            "is not supported; the kind was renamed to EgressRoutePolicy",
        ),
    ];
    for (kind, advice) in cases {
        let ds = load(&format!(
            "apiVersion: net.routerd.net/v1alpha1\nkind: {kind}\nmetadata: {{name: old}}\nspec: {{}}\n"
        ));
        let id = format!("net.routerd.net/v1alpha1/{kind}/old");
        assert_diag(
            only(&ds),
            &format!("{id} {advice}"),
            Some(&id),
            Some("kind"),
            2,
            1,
        );
    }
}

#[test]
fn plugin_wire_objects_are_not_configuration() {
    let ds = load(
        "apiVersion: plugin.routerd.net/v1alpha1\nkind: PluginResult\nmetadata: {name: r}\nspec: {}\n",
    );
    let id = "plugin.routerd.net/v1alpha1/PluginResult/r";
    let d = only(&ds);
    assert_eq!(
        d.message,
        format!("{id} PluginResult is a plugin protocol wire object, not a configuration resource")
    );
    assert_eq!(d.resource.as_deref(), Some(id));
}

// ---- removed fields ----

#[test]
fn removed_health_check_fields_get_advice() {
    for (field, value) in [
        ("daemon", "routerd-healthd"),
        ("socketSource", "x"),
        ("fwmark", "256"),
        ("fwMark", "256"),
        ("sourceInterface", "wan"),
        ("sourceAddress", "192.0.2.1"),
        (
            "sourceAddressFrom",
            "{resource: Interface/wan, field: primaryIPv4}",
        ),
        ("via", "192.0.2.254"),
    ] {
        let ds = load(&format!(
            "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {{name: hc}}\nspec:\n  target: 1.1.1.1\n  {field}: {value}\n"
        ));
        let id = "net.routerd.net/v1alpha1/HealthCheck/hc";
        assert_diag(
            only(&ds),
            &format!(
                "{id} spec.{field} is not supported; routerd derives health-check daemon, source binding, and fwmark from referenced route/interface resources"
            ),
            Some(id),
            Some(&format!("spec.{field}")),
            6,
            3,
        );
    }
}

#[test]
fn removed_candidate_ready_when_gets_advice() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: p}
spec:
  candidates:
    - name: a
    - name: b
      ready_when: {resource: Interface/wan}
",
    );
    let id = "net.routerd.net/v1alpha1/EgressRoutePolicy/p";
    assert_diag(
        only(&ds),
        &format!("{id} spec.candidates[1].ready_when was removed; use dependsOn"),
        Some(id),
        Some("spec.candidates[1].ready_when"),
        8,
        7,
    );
}

#[test]
fn removed_route_ready_when_gets_advice() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: r}
spec:
  destination: 10.0.0.0/8
  ready_when: []
",
    );
    let id = "net.routerd.net/v1alpha1/IPv4Route/r";
    assert_diag(
        only(&ds),
        &format!("{id} spec.ready_when was removed; use spec.dependsOn"),
        Some(id),
        Some("spec.ready_when"),
        6,
        3,
    );
}

#[test]
fn removed_dslite_fields_get_advice() {
    let text = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
---
apiVersion: net.routerd.net/v1alpha1
kind: DSLiteTunnel
metadata: {name: d}
spec:
  interface: wan
  aftrFQDN: gw
  aftrSource: dhcpv6
  ready_when: []
";
    let ds = load(text);
    let id = "net.routerd.net/v1alpha1/DSLiteTunnel/d";
    assert_eq!(ds.len(), 2, "{ds:#?}");
    assert_diag(
        &ds[0],
        &format!(
            "{id} spec.aftrSource was removed; use spec.aftrFrom, spec.aftrFQDN, spec.aftrIPv6, or spec.remoteAddress"
        ),
        Some(id),
        Some("spec.aftrSource"),
        12,
        3,
    );
    assert_diag(
        &ds[1],
        &format!("{id} spec.ready_when was removed; use spec.dependsOn"),
        Some(id),
        Some("spec.ready_when"),
        13,
        3,
    );
}

// ---- documents ----

#[test]
fn invalid_yaml_is_reported_with_position() {
    let ds = load("apiVersion: net.routerd.net/v1alpha1\nkind: [Interface\n");
    let d = only(&ds);
    assert!(d.message.starts_with("invalid YAML: "), "{d}");
    assert_eq!(d.file.as_deref(), Some("f.yaml"));
    assert!(d.line.is_some() && d.column.is_some(), "{d:?}");
}

#[test]
fn a_document_must_be_a_mapping() {
    let ds = load("- a\n- b\n");
    assert_diag(only(&ds), "document must be a mapping", None, None, 1, 1);
    // Empty documents are fine.
    assert!(load("---\n---\n").is_empty());
}

#[test]
fn a_router_resource_must_be_a_mapping() {
    let ds = load(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: r}
spec:
  resources:
    - just-a-string
",
    );
    assert_diag(only(&ds), "resource must be a mapping", None, None, 6, 7);
}

// ---- the Router envelope ----

const ROUTER_OK: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: edge}
spec:
  reconcile:
    mode: progressive
    protectedInterfaces: [eth9]
    protectedZones: [mgmt]
    autoTuneConntrack: false
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan}
      spec: {ifname: eth0}
";

#[test]
fn router_envelope_valid() {
    let (l, ds) = load_and_validate(&[("f.yaml", ROUTER_OK)]);
    assert!(ds.is_empty(), "{ds:#?}");
    assert_eq!(l.routers.len(), 1);
    assert_eq!(l.routers[0].name, "edge");
    assert_eq!(l.routers[0].reconcile_mode.as_deref(), Some("progressive"));
    assert_eq!(l.resources.len(), 1);
}

#[test]
fn router_api_version_must_be_routerd_net() {
    let ds = load(&ROUTER_OK.replace(
        "routerd.net/v1alpha1\nkind: Router",
        "routerd.net/v1\nkind: Router",
    ));
    assert_diag(
        only(&ds),
        "router apiVersion must be routerd.net/v1alpha1",
        None,
        Some("apiVersion"),
        1,
        1,
    );
}

#[test]
fn router_kind_must_be_router() {
    // A document in the Router group is a Router document whatever its kind.
    let ds = load(&ROUTER_OK.replace("kind: Router", "kind: router"));
    assert_diag(
        only(&ds),
        "router kind must be Router",
        None,
        Some("kind"),
        2,
        1,
    );
}

#[test]
fn router_metadata_name_is_required() {
    let ds = load(&ROUTER_OK.replace("metadata: {name: edge}", "metadata: {}"));
    assert_diag(
        only(&ds),
        "router metadata.name is required",
        None,
        Some("metadata"),
        3,
        1,
    );
}

#[test]
fn router_reconcile_mode_enum() {
    let ds = load(&ROUTER_OK.replace("mode: progressive", "mode: eager"));
    assert_diag(
        only(&ds),
        "spec.reconcile.mode must be strict or progressive",
        None,
        Some("spec.reconcile.mode"),
        6,
        5,
    );
    assert!(load(&ROUTER_OK.replace("mode: progressive", "mode: strict")).is_empty());
}

#[test]
fn router_unsupported_reconcile_settings_are_refused_not_ignored() {
    let ds = load(&ROUTER_OK.replace("autoTuneConntrack: false", "autoTuneConntrack: true"));
    assert!(
        only(&ds)
            .message
            .contains("autoTuneConntrack is not supported"),
        "{ds:?}"
    );
    let (l, _) = load_and_validate(&[("f.yaml", ROUTER_OK)]);
    assert_eq!(l.routers[0].protected_interfaces, ["eth9"]);
}

#[test]
fn router_protected_names_must_not_be_empty() {
    let ds = load(&ROUTER_OK.replace("[eth9]", "[eth9, \"\"]"));
    assert_diag(
        only(&ds),
        "spec.reconcile.protectedInterfaces must not contain empty names",
        None,
        Some("spec.reconcile.protectedInterfaces"),
        7,
        5,
    );
    let ds = load(&ROUTER_OK.replace("[mgmt]", "[\"\"]"));
    assert_eq!(
        only(&ds).message,
        "spec.reconcile.protectedZones must not contain empty names"
    );
}

#[test]
fn router_unknown_fields_are_errors() {
    let ds = load(&ROUTER_OK.replace(
        "  reconcile:\n",
        "  reconcil: {}\n  reconcile:\n    dryRun: true\n",
    ));
    let got: Vec<(&str, Option<&str>, Option<usize>)> = ds
        .iter()
        .map(|d| (d.message.as_str(), d.path.as_deref(), d.line))
        .collect();
    let a = format!("router spec.reconcil is not a known field {H}");
    let b = format!("router spec.reconcile.dryRun is not a known field {H}");
    assert_eq!(
        got,
        vec![
            (a.as_str(), Some("spec.reconcil"), Some(5)),
            (b.as_str(), Some("spec.reconcile.dryRun"), Some(7)),
        ]
    );
    let ds = load(&ROUTER_OK.replace(
        "metadata: {name: edge}",
        "metadata: {name: edge}\nstatus: {}",
    ));
    assert_eq!(
        only(&ds).message,
        format!("router status is not a known field {H}")
    );
}

#[test]
fn router_resources_must_be_a_list() {
    let text = "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: r}\nspec:\n  resources: {a: b}\n";
    assert_diag(
        only(&load(text)),
        "router spec.resources must be a list",
        None,
        Some("spec.resources"),
        5,
        3,
    );
}

#[test]
fn positions_inside_a_router_document_point_into_spec_resources() {
    let text = ROUTER_OK.replace("spec: {ifname: eth0}", "spec: {ifname: eth0, mtu: 100}");
    let d = only(&load(&text)).clone();
    assert_eq!(
        d.message,
        format!("{IFACE} spec.mtu must be within 576-9216")
    );
    assert_eq!(d.path.as_deref(), Some("spec.mtu"));
    assert_eq!((d.line, d.column), (Some(14), Some(28)));
}

// ---- several files ----

#[test]
fn references_resolve_across_files() {
    let a = "apiVersion: net.routerd.net/v1alpha1
kind: NAT44Rule
metadata: {name: masq}
spec: {type: masquerade, egressInterface: wan, sourceRanges: [192.168.0.0/16]}
";
    let b = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
";
    let (_, ds) = load_and_validate(&[("a.yaml", a), ("b.yaml", b)]);
    assert!(ds.is_empty(), "{ds:#?}");
    // Without b.yaml the reference is missing, reported in a.yaml.
    let (_, ds) = load_and_validate(&[("a.yaml", a)]);
    let d = only(&ds);
    assert_eq!(
        d.message,
        "net.routerd.net/v1alpha1/NAT44Rule/masq references missing egress Interface, PPPoESession, or DSLiteTunnel \"wan\""
    );
    assert_eq!(d.file.as_deref(), Some("a.yaml"));
    assert_eq!(d.line, Some(4));
}

#[test]
fn duplicates_across_files_are_reported_at_the_second_file() {
    let a = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
";
    let b = "# the same interface again
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth1}
";
    let (_, ds) = load_and_validate(&[("a.yaml", a), ("b.yaml", b)]);
    let d = only(&ds);
    assert_eq!(d.message, format!("duplicate resource {IFACE}"));
    assert_eq!(d.resource.as_deref(), Some(IFACE));
    assert_eq!(d.file.as_deref(), Some("b.yaml"));
    assert_eq!((d.line, d.column), (Some(2), Some(1)));
}

#[test]
fn diagnostics_are_sorted_by_file_then_position() {
    let a = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: x}
spec: {mtu: 1}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: y}
spec: {ifname: e, bogus: 1}
";
    let b =
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: z}\nspec: {}\n";
    let (_, ds) = load_and_validate(&[("b.yaml", b), ("a.yaml", a)]);
    let got: Vec<(Option<&str>, Option<usize>)> =
        ds.iter().map(|d| (d.file.as_deref(), d.line)).collect();
    assert_eq!(
        got,
        vec![
            (Some("b.yaml"), Some(4)),
            (Some("a.yaml"), Some(4)),
            (Some("a.yaml"), Some(4)),
            (Some("a.yaml"), Some(9)),
        ]
    );
}

#[test]
fn display_has_file_line_column_id_and_path() {
    let ds = diags("Interface", "ifname: eth5\nmtu: 10");
    let d = only(&ds);
    assert_eq!(
        d.to_string(),
        "t.yaml:7:3: net.routerd.net/v1alpha1/Interface/t spec.mtu must be within 576-9216"
    );
}

#[test]
fn warnings_display_with_a_prefix() {
    let ds = diags("HealthCheck", "dns: {queryName: a}");
    let d = only(&ds);
    assert!(!d.is_error());
    assert_eq!(
        d.to_string(),
        "t.yaml:6:3: warning: net.routerd.net/v1alpha1/HealthCheck/t spec.dns is ignored unless spec.protocol is dns"
    );
}

#[test]
fn envelope_strings_must_be_strings() {
    let ds = load("apiVersion: 1\nkind: Interface\nmetadata: {name: a}\n");
    let d = only(&ds);
    assert_eq!(
        d.message,
        "resource apiVersion must be a string, not a number"
    );
    assert_eq!((d.line, d.column), (Some(1), Some(1)));
    let ds = load("apiVersion: net.routerd.net/v1alpha1\nkind: [Interface]\nmetadata: {name: a}\n");
    assert_eq!(
        only(&ds).message,
        "resource kind must be a string, not a sequence"
    );
}

#[test]
fn status_must_be_a_mapping() {
    let ds = load(
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: e}\nstatus: [Up]\n",
    );
    assert_diag(
        only(&ds),
        &format!("{IFACE} status must be a mapping"),
        Some(IFACE),
        Some("status"),
        5,
        1,
    );
}

#[test]
fn status_in_a_file_is_kept() {
    let (l, ds) = load_and_validate(&[(
        "f.yaml",
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: e}\nstatus: {phase: Up, ifname: e}\n",
    )]);
    assert!(ds.is_empty(), "{ds:?}");
    let st = l.resources[0].status.as_ref().unwrap();
    assert_eq!(st["phase"], "Up");
}

#[test]
fn a_known_kind_in_the_router_group_is_a_resource_in_the_wrong_group() {
    let ds = load(
        "apiVersion: routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: e}\n",
    );
    let id = "routerd.net/v1alpha1/Interface/wan";
    assert_diag(
        only(&ds),
        &format!("{id} must use apiVersion net.routerd.net/v1alpha1"),
        Some(id),
        Some("apiVersion"),
        1,
        1,
    );
    // Without a kind, the document is a broken Router envelope.
    let ds = load("apiVersion: routerd.net/v1alpha1\nmetadata: {name: r}\n");
    assert_diag(
        only(&ds),
        "router kind must be Router",
        None,
        Some("kind"),
        1,
        1,
    );
}
