//! Result → part conversion, merge pre-checks and per-source state (pure).

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::startup;
use routerd_plugin::part::{MAX_TTL, digest, part_name};
use routerd_plugin::{
    CheckError, PartError, PartInput, PartRules, SourceState, check_against_startup, decode_result,
    override_policies, part_from_result,
};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn route(name: &str, dest: &str) -> Value {
    json!({
        "apiVersion": "net.routerd.net/v1alpha1",
        "kind": "IPv4Route",
        "metadata": {"name": name},
        "spec": {"destination": dest, "device": "ens18", "gateway": "192.0.2.9"}
    })
}

fn mask(name: &str) -> Value {
    json!({"op": "mask", "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "name": name}, "reason": "cloud route present"})
}

fn result(status: Value) -> Value {
    json!({"apiVersion": "plugin.routerd.net/v1alpha1", "kind": "PluginResult", "status": status})
}

fn convert_at(
    doc: &Value,
    previous: i64,
    at: DateTime<Utc>,
) -> Result<routerd_plugin::CandidatePart, PartError> {
    let startup = startup();
    let rules = PartRules::default();
    let doc = decode_result("cloud", &serde_json::to_vec(doc).unwrap()).unwrap();
    part_from_result(
        doc,
        PartInput {
            source: "Plugin/cloud",
            previous_generation: previous,
            now: at,
            startup: &startup,
            rules: &rules,
        },
    )
}

fn convert(doc: &Value) -> Result<routerd_plugin::CandidatePart, PartError> {
    convert_at(doc, 6, now())
}

fn err(doc: &Value) -> String {
    convert(doc).unwrap_err().to_string()
}

#[test]
fn good_result_becomes_an_expiring_part() {
    let doc = result(json!({
        "observedAt": "2026-05-01T11:59:30Z",
        "ttl": "5m",
        "resources": [route("cloud-vpc", "10.40.0.0/16")],
        "directives": [mask("fallback")],
        "actionPlans": [{"name": "p", "provider": "aws", "action": "ensure-forwarding-enabled"}],
        "events": [{"type": "observed", "message": "1 route"}]
    }));
    let part = convert(&doc).unwrap();
    assert_eq!(part.name, "Plugin-cloud-7");
    assert_eq!(part.spec.source, "Plugin/cloud");
    assert_eq!(part.spec.generation, 7);
    let observed = DateTime::parse_from_rfc3339("2026-05-01T11:59:30Z").unwrap();
    assert_eq!(part.spec.observed_at.unwrap(), observed);
    assert_eq!(
        part.spec.expires_at.unwrap(),
        observed + TimeDelta::minutes(5)
    );
    assert_eq!(part.spec.resources.len(), 1);
    assert_eq!(part.spec.directives.len(), 1);
    assert_eq!(part.spec.action_plans.len(), 1);
    assert_eq!(part.events.len(), 1);
    assert!(part.warnings.is_empty());
    let d = part.spec.digest.clone().unwrap();
    assert_eq!(d.len(), 64);
    assert!(
        d.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    // The part is a valid runtime resource.
    let r = part.to_resource();
    assert_eq!(
        r.id().to_string(),
        "config.routerd.net/v1alpha1/DynamicConfigPart/Plugin-cloud-7"
    );
    // And it passes the merge's rules.
    check_against_startup(&part.spec, &startup(), &override_policies(&startup())).unwrap();
}

#[test]
fn observed_at_defaults_to_now() {
    let part = convert(&result(json!({"ttl": "30s"}))).unwrap();
    assert_eq!(part.spec.observed_at, Some(now()));
    assert_eq!(part.spec.expires_at, Some(now() + TimeDelta::seconds(30)));
}

#[test]
fn digest_is_stable_and_content_sensitive() {
    let a = result(
        json!({"ttl": "5m", "resources": [route("r", "10.40.0.0/16")], "directives": [mask("fallback")]}),
    );
    // Same content, different ttl/observedAt/generation: same digest.
    let b = result(
        json!({"ttl": "9m", "observedAt": "2026-05-01T11:58:00Z", "directives": [mask("fallback")], "resources": [route("r", "10.40.0.0/16")]}),
    );
    let c = result(
        json!({"ttl": "5m", "resources": [route("r", "10.41.0.0/16")], "directives": [mask("fallback")]}),
    );
    let da = convert(&a).unwrap().spec.digest;
    let db = convert_at(&b, 40, now()).unwrap().spec.digest;
    let dc = convert(&c).unwrap().spec.digest;
    assert_eq!(da, db);
    assert_ne!(da, dc);
    // The documented canonical form: compact JSON, resources then directives.
    assert_eq!(
        digest(&[], &[]),
        "4eda4ed6b7998102167365cc34ead3e8dfcee2865441335a3a70cac27e5367ac"
    );
}

#[test]
fn generation_is_previous_plus_one() {
    let doc = result(json!({"ttl": "1m"}));
    assert_eq!(convert_at(&doc, 0, now()).unwrap().spec.generation, 1);
    assert_eq!(convert_at(&doc, 41, now()).unwrap().spec.generation, 42);
    assert!(matches!(
        convert_at(&doc, i64::MAX, now()),
        Err(PartError::GenerationOverflow(_))
    ));
    assert_eq!(part_name("Plugin/cloud", 3), "Plugin-cloud-3");
    assert_eq!(part_name("/", 3), "dynamic-3");
}

#[test]
fn wrong_api_version_or_kind() {
    let mut doc = result(json!({"ttl": "1m"}));
    doc["apiVersion"] = json!("plugin.routerd.net/v1");
    assert_eq!(
        err(&doc),
        "PluginResult apiVersion must be plugin.routerd.net/v1alpha1"
    );
    let mut doc = result(json!({"ttl": "1m"}));
    doc["kind"] = json!("PluginRequest");
    assert_eq!(err(&doc), "PluginResult kind must be PluginResult");
}

#[test]
fn ttl_missing_zero_negative_invalid() {
    assert_eq!(
        err(&result(json!({}))),
        "PluginResult status.ttl is required"
    );
    assert_eq!(
        err(&result(json!({"ttl": ""}))),
        "PluginResult status.ttl is required"
    );
    assert_eq!(
        err(&result(json!({"ttl": "0s"}))),
        "PluginResult status.ttl must be greater than 0"
    );
    assert_eq!(
        err(&result(json!({"ttl": "-5m"}))),
        "PluginResult status.ttl must be greater than 0"
    );
    assert_eq!(
        err(&result(json!({"ttl": "5 minutes"}))),
        "PluginResult status.ttl must be a valid duration: time: unknown unit in duration \"5 minutes\""
    );
    assert!(
        err(&result(json!({"ttl": 300})))
            .starts_with("PluginResult status.ttl must be a valid duration: ")
    );
    // Beyond Go's range: not a duration at all.
    assert!(
        err(&result(json!({"ttl": "99999999999h"})))
            .starts_with("PluginResult status.ttl must be a valid duration: ")
    );
}

#[test]
fn absurd_ttl_is_capped_with_a_warning() {
    let part = convert(&result(json!({"ttl": "8760h"}))).unwrap();
    assert_eq!(part.spec.expires_at, Some(now() + MAX_TTL.to_chrono()));
    assert_eq!(part.warnings.len(), 1);
    assert!(part.warnings[0].contains("capped"), "{:?}", part.warnings);
}

#[test]
fn observed_at_in_the_future_or_already_expired() {
    let e = err(&result(
        json!({"ttl": "5m", "observedAt": "2027-01-01T00:00:00Z"}),
    ));
    assert!(e.starts_with("PluginResult status.observedAt "), "{e}");
    let e = err(&result(
        json!({"ttl": "5m", "observedAt": "2026-05-01T10:00:00Z"}),
    ));
    assert!(e.starts_with("PluginResult is already expired"), "{e}");
}

#[test]
fn resource_envelope_errors_are_routerds() {
    let mut r = route("x", "10.40.0.0/16");
    r.as_object_mut().unwrap().remove("apiVersion");
    let ok = route("ok", "10.41.0.0/16");
    assert_eq!(
        err(&result(json!({"ttl": "1m", "resources": [ok, r]}))),
        "PluginResult status.resources[1].apiVersion is required"
    );
    let mut r = route("x", "10.40.0.0/16");
    r["kind"] = json!("");
    assert_eq!(
        err(&result(json!({"ttl": "1m", "resources": [r]}))),
        "PluginResult status.resources[0].kind is required"
    );
    let mut r = route("x", "10.40.0.0/16");
    r["metadata"] = json!({});
    assert_eq!(
        err(&result(json!({"ttl": "1m", "resources": [r]}))),
        "PluginResult status.resources[0].metadata.name is required"
    );
    let mut r = route("x", "10.40.0.0/16");
    r.as_object_mut().unwrap().remove("spec");
    assert_eq!(
        err(&result(json!({"ttl": "1m", "resources": [r]}))),
        "PluginResult status.resources[0].spec is required"
    );
    let mut r = route("x", "10.40.0.0/16");
    r["spec"] = json!("text");
    assert!(
        err(&result(json!({"ttl": "1m", "resources": [r]})))
            .contains("spec decoded as untyped map")
    );
}

#[test]
fn resources_are_validated_like_startup_resources() {
    // Bad field value.
    let e = err(&result(
        json!({"ttl": "1m", "resources": [route("x", "10.40.0.0/99")]}),
    ));
    assert!(e.starts_with("PluginResult status.resources[0] is invalid: net.routerd.net/v1alpha1/IPv4Route/x spec.destination is invalid"), "{e}");
    // Unknown field (strict decoding).
    let mut r = route("x", "10.40.0.0/16");
    r["spec"]["nextHop"] = json!("1.2.3.4");
    let e = err(&result(json!({"ttl": "1m", "resources": [r]})));
    assert!(
        e.starts_with("PluginResult status.resources[0]: ") && e.contains("nextHop"),
        "{e}"
    );
    // Unknown kind.
    let r = json!({"apiVersion": "hybrid.routerd.net/v1alpha1", "kind": "AddressMobilityDomainX", "metadata": {"name": "m"}, "spec": {}});
    let e = err(&result(json!({"ttl": "1m", "resources": [r]})));
    assert!(
        e.contains("unsupported resource kind AddressMobilityDomainX"),
        "{e}"
    );
    // Wrong group for the kind.
    let mut r = route("x", "10.40.0.0/16");
    r["apiVersion"] = json!("hybrid.routerd.net/v1alpha1");
    let e = err(&result(json!({"ttl": "1m", "resources": [r]})));
    assert!(
        e.contains("must use apiVersion net.routerd.net/v1alpha1"),
        "{e}"
    );
    // Duplicate identity inside the result.
    let e = err(&result(
        json!({"ttl": "1m", "resources": [route("x", "10.40.0.0/16"), route("x", "10.41.0.0/16")]}),
    ));
    assert_eq!(
        e,
        "PluginResult status.resources[1]: duplicate resource net.routerd.net/v1alpha1/IPv4Route/x"
    );
}

#[test]
fn references_to_startup_resources_resolve() {
    let r = json!({
        "apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "metadata": {"name": "via-wan"},
        "spec": {"destination": "10.50.0.0/16", "deviceFrom": {"resource": "Interface/wan", "field": "ifname"}}
    });
    convert(&result(json!({"ttl": "1m", "resources": [r]}))).unwrap();
    let r = json!({
        "apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "metadata": {"name": "via-missing"},
        "spec": {"destination": "10.50.0.0/16", "deviceFrom": {"resource": "Interface/nope", "field": "ifname"}}
    });
    let e = err(&result(json!({"ttl": "1m", "resources": [r]})));
    assert!(e.contains("references missing Interface \"nope\""), "{e}");
}

#[test]
fn operator_only_kinds_cannot_come_from_a_plugin() {
    let policy = json!({"apiVersion": "config.routerd.net/v1alpha1", "kind": "DynamicOverridePolicy", "metadata": {"name": "grant"},
        "spec": {"allow": [{"source": "Plugin/cloud", "operations": ["mask"], "targets": [{"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "name": "pinned"}]}]}});
    let e = err(&result(json!({"ttl": "1m", "resources": [policy]})));
    assert_eq!(
        e,
        "PluginResult status.resources[0]: DynamicOverridePolicy is startup-only or runtime-only and cannot come from a plugin"
    );
    let plugin = json!({"apiVersion": "plugin.routerd.net/v1alpha1", "kind": "Plugin", "metadata": {"name": "evil"}, "spec": {"executable": "/bin/sh"}});
    assert!(
        err(&result(json!({"ttl": "1m", "resources": [plugin]})))
            .contains("Plugin is startup-only")
    );
}

#[test]
fn directives_are_masks_only() {
    let d = json!({"op": "delete", "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "name": "fallback"}});
    assert_eq!(
        err(&result(
            json!({"ttl": "1m", "directives": [mask("fallback"), d]})
        )),
        "PluginResult status.directives[1].op must be mask"
    );
    let d = json!({"op": "mask", "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route"}});
    assert_eq!(
        err(&result(json!({"ttl": "1m", "directives": [d]}))),
        "PluginResult status.directives[0].target.name is required"
    );
}

#[test]
fn action_plans_are_validated_and_never_execute() {
    let p = json!({"name": "p", "provider": "aws", "action": "assign-secondary-ip", "mode": "execute", "target": {"address": "10.0.0.5", "nicRef": "eni-1"}});
    assert_eq!(
        err(&result(json!({"ttl": "1m", "actionPlans": [p]}))),
        "PluginResult status.actionPlans[0]: actionPlan mode=execute is not supported; provider actions are dry-run/display-only in Phase 4.1"
    );
    let p = json!({"name": "p", "provider": "aws", "action": "assign-secondary-ip"});
    assert_eq!(
        err(&result(json!({"ttl": "1m", "actionPlans": [p]}))),
        "PluginResult status.actionPlans[0]: actionPlan \"p\" action \"assign-secondary-ip\" requires target.address"
    );
}

#[test]
fn list_sizes_are_bounded() {
    let many: Vec<Value> = (0..1025).map(|_| mask("fallback")).collect();
    assert_eq!(
        err(&result(json!({"ttl": "1m", "directives": many}))),
        "PluginResult status.directives has 1025 entries; at most 1024 are allowed"
    );
}

fn part_with(
    resources: Vec<Value>,
    directives: Vec<Value>,
) -> routerd_model::spec::DynamicConfigPartSpec {
    convert(&result(
        json!({"ttl": "1m", "resources": resources, "directives": directives}),
    ))
    .unwrap()
    .spec
}

#[test]
fn check_rejects_masks_the_policy_does_not_allow() {
    let s = startup();
    let part = part_with(vec![], vec![mask("pinned")]);
    let e = check_against_startup(&part, &s, &override_policies(&s)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "dynamic mask not allowed by DynamicOverridePolicy: source=\"Plugin/cloud\" target=net.routerd.net/v1alpha1/IPv4Route/pinned"
    );
    // Without any policy even the allowed target is refused.
    let part = part_with(vec![], vec![mask("fallback")]);
    assert!(matches!(
        check_against_startup(&part, &s, &[]).unwrap_err().0[0],
        CheckError::MaskNotAllowed { .. }
    ));
    // Another source may not use Plugin/cloud's permission.
    let mut other = part.clone();
    other.source = "Plugin/other".into();
    assert!(check_against_startup(&other, &s, &override_policies(&s)).is_err());
}

#[test]
fn check_rejects_missing_and_dynamic_mask_targets() {
    let s = startup();
    let mut policies = override_policies(&s);
    policies[0].allow[0].targets.push(routerd_model::ObjectRef {
        api_version: "net.routerd.net/v1alpha1".into(),
        kind: "IPv4Route".into(),
        name: "ghost".into(),
    });
    let part = part_with(vec![], vec![mask("ghost")]);
    assert_eq!(
        check_against_startup(&part, &s, &policies)
            .unwrap_err()
            .to_string(),
        "mask target not found: source=\"Plugin/cloud\" target=net.routerd.net/v1alpha1/IPv4Route/ghost"
    );
    // Startup without `ghost`, but the part itself adds it... and masks it:
    let mut s2 = s.clone();
    s2.push(serde_json::from_value(route("ghost", "10.60.0.0/16")).unwrap());
    let part = part_with(vec![route("ghost", "10.60.0.0/16")], vec![mask("ghost")]);
    let e = check_against_startup(&part, &s2, &policies).unwrap_err();
    assert_eq!(
        e.0,
        vec![
            CheckError::MaskTargetDynamic {
                source_id: "Plugin/cloud".into(),
                target: "net.routerd.net/v1alpha1/IPv4Route/ghost".into()
            },
            CheckError::ConflictsWithStartup {
                source_id: "Plugin/cloud".into(),
                id: "net.routerd.net/v1alpha1/IPv4Route/ghost".into()
            },
        ]
    );
}

#[test]
fn check_rejects_startup_identity() {
    let s = startup();
    let part = part_with(vec![route("fallback", "10.20.0.0/16")], vec![]);
    assert_eq!(
        check_against_startup(&part, &s, &override_policies(&s))
            .unwrap_err()
            .to_string(),
        "dynamic resource conflicts with startup resource: source=\"Plugin/cloud\" resource=net.routerd.net/v1alpha1/IPv4Route/fallback"
    );
    let mut d = routerd_model::spec::DynamicConfigPartSpec {
        source: "Plugin/cloud".into(),
        ..Default::default()
    };
    d.directives.push(routerd_model::spec::Directive {
        op: "unmask".into(),
        ..Default::default()
    });
    assert_eq!(
        check_against_startup(&d, &s, &[]).unwrap_err().to_string(),
        "unsupported dynamic directive op \"unmask\" from source \"Plugin/cloud\""
    );
}

#[test]
fn source_state_keeps_the_good_part_until_it_expires() {
    let mut st = SourceState::new("Plugin/cloud");
    let good = convert_at(
        &result(json!({"ttl": "5m", "resources": [route("r", "10.40.0.0/16")]})),
        st.generation(),
        now(),
    )
    .unwrap();
    st.accept(good.clone()).unwrap();
    assert_eq!(st.generation(), 1);
    // A later failure is recorded, the good part stays active.
    let later = now() + TimeDelta::minutes(2);
    st.reject("plugin cloud timed out after 10s", later);
    assert_eq!(st.active(later), Some(&good));
    assert_eq!(
        st.last_rejection().unwrap().reason,
        "plugin cloud timed out after 10s"
    );
    // ...until its own expiry.
    assert_eq!(st.active(now() + TimeDelta::minutes(5)), None);
    assert_eq!(st.last_accepted(), Some(&good));
    // A newer accepted part replaces it and clears the rejection.
    let newer = convert_at(&result(json!({"ttl": "5m"})), st.generation(), later).unwrap();
    st.accept(newer.clone()).unwrap();
    assert_eq!(st.generation(), 2);
    assert_eq!(st.active(later), Some(&newer));
    assert!(st.last_rejection().is_none());
    // Old generations and foreign sources are refused.
    assert!(st.accept(good).is_err());
    let mut foreign = newer;
    foreign.spec.source = "Plugin/other".into();
    foreign.spec.generation = 99;
    assert!(st.accept(foreign).is_err());
}
