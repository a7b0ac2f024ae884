//! routerd compatibility: `--unknown-fields=warn`, the Router document's
//! `spec.unknownFields`, and routerd kinds kept without being managed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_model::compat::IGNORED_FIELD;
use routerd_model::{Diagnostic, Loaded, UnknownFields, load_and_validate, load_and_validate_with};

const ROUTERD_STYLE: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: edge}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec:
        ifname: eth1
        role: trust
    - apiVersion: firewall.routerd.net/v1alpha1
      kind: FirewallZone
      metadata: {name: trust}
      spec:
        interfaces: [lan]
    - apiVersion: net.routerd.net/v1alpha1
      kind: DHCPv6PrefixDelegation
      metadata: {name: wan-pd}
      spec: {interface: lan}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: r}
      spec:
        destination: 10.0.0.0/8
        device: eth1
        dependsOn:
          - {resource: DHCPv6PrefixDelegation/wan-pd, field: phase, equals: Bound}
";

fn errors(ds: &[Diagnostic]) -> Vec<&Diagnostic> {
    ds.iter().filter(|d| d.is_error()).collect()
}

#[test]
fn strict_mode_rejects_the_unknown_field_and_names_the_switch() {
    let (_, ds) = load_and_validate(&[("r.yaml", ROUTERD_STYLE)]);
    let errs = errors(&ds);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs[0];
    assert!(
        e.message
            .contains("spec.role is not a known field of Interface")
    );
    assert!(e.message.contains("--unknown-fields=warn"), "{}", e.message);
    assert_eq!(e.line, Some(11));
}

#[test]
fn warn_mode_turns_the_unknown_field_into_a_located_warning() {
    let (l, ds) = load_and_validate_with(&[("r.yaml", ROUTERD_STYLE)], UnknownFields::Warn);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    let w = ds
        .iter()
        .find(|d| d.path.as_deref() == Some("spec.role"))
        .expect("a warning for spec.role");
    assert!(!w.is_error());
    assert_eq!(w.file.as_deref(), Some("r.yaml"));
    assert_eq!((w.line, w.column), (Some(11), Some(9)));
    assert_eq!(
        w.resource.as_deref(),
        Some("net.routerd.net/v1alpha1/Interface/lan")
    );
    assert!(w.message.contains(IGNORED_FIELD), "{}", w.message);
    assert!(w.to_string().starts_with("r.yaml:11:9: warning: "), "{w}");
    assert_eq!(l.resources.len(), 2);
}

#[test]
fn the_router_document_can_ask_for_warn_itself() {
    let text = ROUTERD_STYLE.replace(
        "spec:\n  resources:",
        "spec:\n  unknownFields: warn\n  resources:",
    );
    let (l, ds) = load_and_validate(&[("r.yaml", &text)]);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    assert_eq!(l.routers[0].unknown_fields, Some(UnknownFields::Warn));
    let bad = ROUTERD_STYLE.replace(
        "spec:\n  resources:",
        "spec:\n  unknownFields: lenient\n  resources:",
    );
    let (_, ds) = load_and_validate_with(&[("r.yaml", &bad)], UnknownFields::Warn);
    assert!(
        errors(&ds)
            .iter()
            .any(|d| d.message == "router spec.unknownFields must be error or warn"),
        "{ds:#?}"
    );
}

#[test]
fn the_documents_setting_covers_only_its_own_resources() {
    let other = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0, role: untrust}\n";
    let text = ROUTERD_STYLE.replace(
        "spec:\n  resources:",
        "spec:\n  unknownFields: warn\n  resources:",
    );
    let (_, ds) = load_and_validate(&[("r.yaml", &text), ("other.yaml", other)]);
    let errs = errors(&ds);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].file.as_deref(), Some("other.yaml"));
}

#[test]
fn routerd_kinds_are_kept_unmanaged_with_one_warning_each() {
    let (l, ds) = load_and_validate_with(&[("r.yaml", ROUTERD_STYLE)], UnknownFields::Warn);
    let ids: Vec<String> = l.unmanaged.iter().map(|u| u.id().to_string()).collect();
    assert_eq!(
        ids,
        [
            "firewall.routerd.net/v1alpha1/FirewallZone/trust",
            "net.routerd.net/v1alpha1/DHCPv6PrefixDelegation/wan-pd"
        ]
    );
    assert_eq!(l.unmanaged[0].spec["interfaces"][0], "lan");
    for id in &ids {
        let warnings: Vec<&Diagnostic> = ds
            .iter()
            .filter(|d| d.resource.as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(
            warnings[0].message,
            format!("`{id}` is a routerd kind this daemon does not manage; it is kept and ignored")
        );
        assert!(!warnings[0].is_error());
        assert!(warnings[0].line.is_some());
    }
    // Managed resources never include them.
    assert!(
        l.resources
            .iter()
            .all(|r| r.kind().as_str() != "FirewallZone")
    );
}

#[test]
fn a_routerd_kind_in_the_wrong_group_or_twice_is_an_error() {
    let text = "apiVersion: net.routerd.net/v1alpha1\nkind: FirewallZone\nmetadata: {name: z}\n---\napiVersion: firewall.routerd.net/v1alpha1\nkind: FirewallRule\nmetadata: {name: a}\n---\napiVersion: firewall.routerd.net/v1alpha1\nkind: FirewallRule\nmetadata: {name: a}\n";
    let (_, ds) = load_and_validate(&[("f.yaml", text)]);
    let msgs: Vec<&str> = errors(&ds).iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "net.routerd.net/v1alpha1/FirewallZone/z must use apiVersion firewall.routerd.net/v1alpha1",
            "duplicate resource firewall.routerd.net/v1alpha1/FirewallRule/a"
        ]
    );
}

#[test]
fn a_reference_to_a_missing_unmanaged_resource_is_still_an_error() {
    let text = ROUTERD_STYLE.replace(
        "DHCPv6PrefixDelegation/wan-pd, field",
        "DHCPv6PrefixDelegation/nope, field",
    );
    let (_, ds) = load_and_validate_with(&[("r.yaml", &text)], UnknownFields::Warn);
    let errs = errors(&ds);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0]
            .message
            .contains("references missing DHCPv6PrefixDelegation \"nope\"")
    );
}

#[test]
fn kinds_routerd_does_not_define_or_removed_stay_errors() {
    for (kind, want) in [
        ("Frobnicator", "unsupported resource kind Frobnicator"),
        ("SystemdUnit", "is not supported; declare router intent"),
        (
            "DHCPv4Scope",
            "put the DHCPv4 address pool directly on DHCPv4Server",
        ),
    ] {
        let text =
            format!("apiVersion: net.routerd.net/v1alpha1\nkind: {kind}\nmetadata: {{name: x}}\n");
        let (_, ds) = load_and_validate_with(&[("f.yaml", &text)], UnknownFields::Warn);
        let errs = errors(&ds);
        assert_eq!(errs.len(), 1, "{kind}: {errs:#?}");
        assert!(errs[0].message.contains(want), "{}", errs[0].message);
    }
}

#[test]
fn routerd_group_kinds_are_not_misspelt_routers() {
    let text =
        "apiVersion: routerd.net/v1alpha1\nkind: Inventory\nmetadata: {name: host}\nspec: {}\n";
    let (l, ds) = load_and_validate(&[("f.yaml", text)]);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    assert_eq!(l.unmanaged.len(), 1);
}

#[test]
fn unknown_metadata_fields_warn_too() {
    let text = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan, namespace: x}\nspec: {ifname: eth0}\n";
    let mut l = Loaded::with_unknown_fields(UnknownFields::Warn);
    l.add_file("f.yaml", text);
    let ds = l.validate(routerd_model::validate::Context::Startup);
    assert!(errors(&ds).is_empty(), "{ds:#?}");
    assert!(
        ds.iter()
            .any(|d| d.path.as_deref() == Some("metadata.namespace"))
    );
    let (_, ds) = load_and_validate(&[("f.yaml", text)]);
    assert_eq!(errors(&ds).len(), 1);
}

#[test]
fn the_strict_decoder_refuses_unmanaged_kinds() {
    let v: serde_yaml::Value = serde_yaml::from_str(
        "apiVersion: firewall.routerd.net/v1alpha1\nkind: FirewallZone\nmetadata: {name: z}\n",
    )
    .unwrap();
    let err = routerd_model::Resource::from_value(v).unwrap_err();
    assert!(err.to_string().contains("does not manage"), "{err}");
}

/// Wrong types and values in the field-complete kinds are located (file,
/// line, resource id, path) whatever the unknown-field mode.
#[test]
fn bad_values_in_routerd_fields_are_located_in_both_modes() {
    let text = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: edge}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan}
      spec: {ifname: eth0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: PPPoESession
      metadata: {name: isp}
      spec:
        interface: wan
        username: u
        passwordFile: /etc/ppp/secret
        mru: lots
        lcpEchoFailure: -2
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPAddressSet
      metadata: {name: svc}
      spec:
        names: [\"a b\"]
        refreshInterval: [1m]
";
    for mode in [UnknownFields::Error, UnknownFields::Warn] {
        let (_, ds) = load_and_validate_with(&[("r.yaml", text)], mode);
        let got: Vec<(Option<&str>, Option<usize>, Option<&str>)> = errors(&ds)
            .iter()
            .map(|d| (d.resource.as_deref(), d.line, d.path.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("net.routerd.net/v1alpha1/PPPoESession/isp"),
                    Some(17),
                    Some("spec.mru")
                ),
                (
                    Some("net.routerd.net/v1alpha1/PPPoESession/isp"),
                    Some(18),
                    Some("spec.lcpEchoFailure")
                ),
                (
                    Some("net.routerd.net/v1alpha1/IPAddressSet/svc"),
                    Some(23),
                    Some("spec.names[0]")
                ),
                (
                    Some("net.routerd.net/v1alpha1/IPAddressSet/svc"),
                    Some(24),
                    Some("spec.refreshInterval")
                ),
            ],
            "{mode}: {ds:#?}"
        );
        assert!(
            errors(&ds)
                .iter()
                .all(|d| d.file.as_deref() == Some("r.yaml"))
        );
    }
}
