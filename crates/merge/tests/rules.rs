//! One test per merge rule (docs/merge.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use common::*;
use routerd_merge::{Change, MergeError, PartState, Provenance};

fn tunnel(name: &str, iface: &str) -> String {
    format!(
        "    - apiVersion: net.routerd.net/v1alpha1\n      kind: DSLiteTunnel\n      metadata: {{name: {name}}}\n      spec: {{interface: {iface}, aftrIPv6: \"2001:db8::2\"}}\n"
    )
}

const LATER: &str = "2026-05-29T13:00:00Z";

#[test]
fn no_parts_gives_startup_sorted_by_id() {
    let s = startup(STARTUP);
    let e = build(&s, vec![], now());
    assert_eq!(
        names(&e),
        vec![
            "DynamicOverridePolicy/cloud",
            "DSLiteTunnel/tun",
            "Interface/lan",
            "Interface/spare",
            "Interface/wan"
        ]
    );
    assert!(e.suppressed().is_empty());
    assert!(e.iter().all(|x| x.provenance == Provenance::Startup));
}

#[test]
fn dynamic_resources_are_added_with_provenance() {
    let s = startup(STARTUP);
    let p = part(
        "p1",
        "Plugin/a",
        7,
        Some(LATER),
        &[iface("dyn", "ens30")],
        &[],
    );
    let e = build(&s, vec![p], now());
    let got = e.get(&id("Interface", "dyn")).expect("dyn is effective");
    match got.provenance {
        Provenance::Dynamic {
            part,
            source,
            generation,
            digest,
        } => {
            assert_eq!((part, source, generation), ("p1", "Plugin/a", 7));
            // No digest in the part: the SHA-256 of its content is recorded.
            assert_eq!(digest.len(), 64);
            assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        }
        other => panic!("expected dynamic provenance, got {other:?}"),
    }
    let doc = e.document();
    let r = doc.effective.iter().find(|r| r.name() == "dyn").unwrap();
    assert_eq!(
        r.metadata
            .annotations
            .get("routerd.net/dynamic-source")
            .map(String::as_str),
        Some("Plugin/a")
    );
    assert_eq!(state(&e, "p1"), (PartState::Active, String::new()));
}

#[test]
fn newest_active_generation_supersedes_older_ones() {
    let s = startup(STARTUP);
    let g1 = part(
        "a-1",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("dyn", "ens30")],
        &[],
    );
    let g2 = part(
        "a-2",
        "Plugin/a",
        2,
        Some(LATER),
        &[iface("dyn", "ens31")],
        &[],
    );
    let e = build(&s, vec![g1, g2], now());
    let r = e.get(&id("Interface", "dyn")).unwrap();
    assert_eq!(r.resource.as_interface().unwrap().ifname, "ens31");
    let (st, reason) = state(&e, "a-1");
    assert_eq!(st, PartState::Superseded);
    assert_eq!(reason, "superseded by generation 2 (part a-2)");
    assert_eq!(state(&e, "a-2").0, PartState::Active);
}

#[test]
fn an_expired_newer_generation_does_not_supersede() {
    let s = startup(STARTUP);
    let g1 = part(
        "a-1",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("dyn", "ens30")],
        &[],
    );
    let g2 = part(
        "a-2",
        "Plugin/a",
        2,
        Some("2026-05-29T12:00:00Z"),
        &[iface("dyn", "ens31")],
        &[],
    );
    let e = build(&s, vec![g1, g2], now());
    assert_eq!(
        e.get(&id("Interface", "dyn"))
            .unwrap()
            .resource
            .as_interface()
            .unwrap()
            .ifname,
        "ens30"
    );
    assert_eq!(state(&e, "a-2").0, PartState::Expired);
    assert_eq!(state(&e, "a-1").0, PartState::Active);
}

#[test]
fn expiry_is_inclusive_and_missing_expiry_never_expires() {
    let s = startup(STARTUP);
    let at_now = part(
        "x",
        "Plugin/a",
        1,
        Some("2026-05-29T12:00:00Z"),
        &[iface("dyn", "e1")],
        &[],
    );
    let forever = part("y", "Plugin/b", 1, None, &[iface("dyn2", "e2")], &[]);
    let e = build(&s, vec![at_now, forever], now());
    let (st, reason) = state(&e, "x");
    assert_eq!(st, PartState::Expired);
    assert_eq!(reason, "expired at 2026-05-29T12:00:00Z");
    assert!(e.get(&id("Interface", "dyn")).is_none());
    let far = t("2100-01-01T00:00:00Z");
    let e = build(
        &s,
        vec![part("y", "Plugin/b", 1, None, &[iface("dyn2", "e2")], &[])],
        far,
    );
    assert!(e.get(&id("Interface", "dyn2")).is_some());
    assert_eq!(e.next_expiry(), None);
}

#[test]
fn expired_parts_need_no_permission() {
    let s = startup(STARTUP);
    let p = part(
        "x",
        "Plugin/unknown",
        1,
        Some("2026-05-29T11:59:59Z"),
        &[],
        &[mask("Interface", "wan", "no permission")],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(state(&e, "x").0, PartState::Expired);
    assert!(e.get(&id("Interface", "wan")).is_some());
}

#[test]
fn disallowed_mask_rejects_only_that_part() {
    let s = startup(STARTUP);
    let bad = part(
        "bad",
        "Plugin/c",
        1,
        Some(LATER),
        &[iface("c1", "e1")],
        &[mask("Interface", "lan", "")],
    );
    let good = part(
        "good",
        "Plugin/b",
        1,
        Some(LATER),
        &[iface("b1", "e2")],
        &[],
    );
    let e = build(&s, vec![bad, good], now());
    assert_eq!(
        state(&e, "bad"),
        (
            PartState::Rejected,
            "dynamic mask not allowed by DynamicOverridePolicy: source=\"Plugin/c\" target=net.routerd.net/v1alpha1/Interface/lan".into()
        )
    );
    assert!(e.get(&id("Interface", "c1")).is_none());
    assert!(e.get(&id("Interface", "lan")).is_some());
    assert!(e.get(&id("Interface", "b1")).is_some());
}

#[test]
fn mask_of_a_missing_target_is_rejected() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[],
        &[mask("Interface", "ghost", "")],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "mask target not found: source=\"Plugin/a\" target=net.routerd.net/v1alpha1/Interface/ghost".into()
        )
    );
}

#[test]
fn mask_of_a_dynamic_resource_is_rejected() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("dyn", "e1")],
        &[mask("Interface", "dyn", "")],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "mask target names a dynamic resource: source=\"Plugin/a\" target=net.routerd.net/v1alpha1/Interface/dyn".into()
        )
    );
}

#[test]
fn unsupported_directive_is_rejected() {
    let s = startup(STARTUP);
    let d = "    - op: delete\n      target: {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: spare}\n".to_string();
    let p = part("p", "Plugin/a", 1, Some(LATER), &[], &[d]);
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "unsupported dynamic directive op \"delete\" from source \"Plugin/a\"".into()
        )
    );
}

#[test]
fn identity_clash_with_startup_is_rejected_even_when_masked() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("spare", "e9")],
        &[mask("Interface", "spare", "")],
    );
    let e = build(&s, vec![p], now());
    let (st, reason) = state(&e, "p");
    assert_eq!(st, PartState::Rejected);
    assert_eq!(
        reason,
        "mask target names a dynamic resource: source=\"Plugin/a\" target=net.routerd.net/v1alpha1/Interface/spare"
    );
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("spare", "e9")],
        &[],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "dynamic resource conflicts with startup resource: source=\"Plugin/a\" resource=net.routerd.net/v1alpha1/Interface/spare".into()
        )
    );
    assert_eq!(
        e.get(&id("Interface", "spare"))
            .unwrap()
            .resource
            .as_interface()
            .unwrap()
            .ifname,
        "ens20"
    );
}

#[test]
fn cross_source_clash_smaller_source_wins_in_any_order() {
    let s = startup(STARTUP);
    let a = part(
        "pa",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("dyn", "from-a")],
        &[],
    );
    let b = part(
        "pb",
        "Plugin/b",
        9,
        Some(LATER),
        &[iface("dyn", "from-b"), iface("b-only", "e")],
        &[],
    );
    for order in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let e = build(&s, order, now());
        assert_eq!(
            e.get(&id("Interface", "dyn"))
                .unwrap()
                .resource
                .as_interface()
                .unwrap()
                .ifname,
            "from-a"
        );
        assert_eq!(
            state(&e, "pb"),
            (
                PartState::Rejected,
                "dynamic resource conflicts with another dynamic resource: source=\"Plugin/b\" resource=net.routerd.net/v1alpha1/Interface/dyn existingSource=\"Plugin/a\"".into()
            )
        );
        assert!(e.get(&id("Interface", "b-only")).is_none());
    }
}

#[test]
fn a_rejected_part_does_not_knock_out_later_sources() {
    // a clashes with b, b clashes with c, a and c do not clash: b loses to
    // a, and c stays because b is not merged.
    let s = startup(STARTUP);
    let a = part("pa", "Plugin/a", 1, Some(LATER), &[iface("x", "1")], &[]);
    let b = part(
        "pb",
        "Plugin/b",
        1,
        Some(LATER),
        &[iface("x", "2"), iface("y", "2")],
        &[],
    );
    let c = part("pc", "Plugin/c", 1, Some(LATER), &[iface("y", "3")], &[]);
    let e = build(&s, vec![c, b, a], now());
    assert_eq!(state(&e, "pa").0, PartState::Active);
    assert_eq!(state(&e, "pb").0, PartState::Rejected);
    assert_eq!(state(&e, "pc").0, PartState::Active);
    assert_eq!(
        e.get(&id("Interface", "y"))
            .unwrap()
            .resource
            .as_interface()
            .unwrap()
            .ifname,
        "3"
    );
}

#[test]
fn invalid_dynamic_resource_is_rejected_with_the_validation_message() {
    let s = startup(STARTUP);
    let bad = "    - apiVersion: net.routerd.net/v1alpha1\n      kind: Interface\n      metadata: {name: dyn}\n      spec: {ifname: e1, mtu: 100}\n".to_string();
    let p = part("p", "Plugin/a", 1, Some(LATER), &[bad], &[]);
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "dynamic resource is invalid: source=\"Plugin/a\" resource=net.routerd.net/v1alpha1/Interface/dyn: net.routerd.net/v1alpha1/Interface/dyn spec.mtu must be within 576-9216".into()
        )
    );
}

#[test]
fn references_resolve_against_startup_and_the_same_part_only() {
    let s = startup(STARTUP);
    let to_startup = part(
        "p1",
        "Plugin/a",
        1,
        Some(LATER),
        &[tunnel("t1", "lan")],
        &[],
    );
    let to_own = part(
        "p2",
        "Plugin/b",
        1,
        Some(LATER),
        &[iface("own", "e5"), tunnel("t2", "own")],
        &[],
    );
    let to_other = part(
        "p3",
        "Plugin/c",
        1,
        Some(LATER),
        &[tunnel("t3", "own")],
        &[],
    );
    let missing = part(
        "p4",
        "Plugin/d",
        1,
        Some(LATER),
        &[tunnel("t4", "nowhere")],
        &[],
    );
    let e = build(&s, vec![to_startup, to_own, to_other, missing], now());
    assert_eq!(state(&e, "p1").0, PartState::Active);
    assert_eq!(state(&e, "p2").0, PartState::Active);
    let (st, reason) = state(&e, "p3");
    assert_eq!(st, PartState::Rejected);
    assert!(
        reason.ends_with("DSLiteTunnel/t3 references missing Interface \"own\""),
        "{reason}"
    );
    let (st, reason) = state(&e, "p4");
    assert_eq!(st, PartState::Rejected);
    assert!(
        reason.contains("references missing Interface \"nowhere\""),
        "{reason}"
    );
}

#[test]
fn a_mask_that_breaks_a_startup_reference_is_rejected() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[],
        &[mask("Interface", "wan", "")],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p"),
        (
            PartState::Rejected,
            "dynamic mask would break startup resource: source=\"Plugin/a\" target=net.routerd.net/v1alpha1/Interface/wan referencedBy=net.routerd.net/v1alpha1/DSLiteTunnel/tun: net.routerd.net/v1alpha1/DSLiteTunnel/tun references missing Interface \"wan\"".into()
        )
    );
    assert!(e.get(&id("Interface", "wan")).is_some());
    // Masking the referrer too is consistent.
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[],
        &[
            mask("Interface", "wan", ""),
            mask("DSLiteTunnel", "tun", ""),
        ],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(state(&e, "p").0, PartState::Active);
    assert!(e.get(&id("Interface", "wan")).is_none());
    assert!(e.get(&id("DSLiteTunnel", "tun")).is_none());
}

#[test]
fn a_mask_and_a_reference_from_different_sources_clash_by_source_order() {
    let s = startup(STARTUP);
    // Plugin/a masks spare; Plugin/b's tunnel needs spare: b is later, b loses.
    let a = part(
        "pa",
        "Plugin/a",
        1,
        Some(LATER),
        &[],
        &[mask("Interface", "spare", "")],
    );
    let b = part(
        "pb",
        "Plugin/b",
        1,
        Some(LATER),
        &[tunnel("tb", "spare")],
        &[],
    );
    let e = build(&s, vec![b, a], now());
    assert_eq!(state(&e, "pa").0, PartState::Active);
    assert_eq!(
        state(&e, "pb"),
        (
            PartState::Rejected,
            "dynamic resource references a resource masked by another source: source=\"Plugin/b\" resource=net.routerd.net/v1alpha1/DSLiteTunnel/tb target=net.routerd.net/v1alpha1/Interface/spare maskedBy=\"Plugin/a\"".into()
        )
    );
    // Reversed roles: Plugin/a needs spare, Plugin/b masks it: the mask loses.
    let a = part(
        "pa",
        "Plugin/a",
        1,
        Some(LATER),
        &[tunnel("ta", "spare")],
        &[],
    );
    let b = part(
        "pb",
        "Plugin/b",
        1,
        Some(LATER),
        &[],
        &[mask("Interface", "spare", "")],
    );
    let e = build(&s, vec![b, a], now());
    assert_eq!(state(&e, "pa").0, PartState::Active);
    assert_eq!(
        state(&e, "pb"),
        (
            PartState::Rejected,
            "dynamic mask would break a resource of another source: source=\"Plugin/b\" target=net.routerd.net/v1alpha1/Interface/spare referencedBy=net.routerd.net/v1alpha1/DSLiteTunnel/ta existingSource=\"Plugin/a\"".into()
        )
    );
    assert!(e.get(&id("Interface", "spare")).is_some());
}

#[test]
fn suppression_lists_every_mask_and_lifts_with_the_last() {
    let s = startup(STARTUP);
    let a = part(
        "pa",
        "Plugin/a",
        3,
        Some("2026-05-29T12:30:00Z"),
        &[],
        &[mask("Interface", "spare", " maintenance ")],
    );
    let b = part(
        "pb",
        "Plugin/b",
        5,
        Some("2026-05-29T13:00:00Z"),
        &[],
        &[mask("Interface", "spare", "cost")],
    );
    let mut e = build(&s, vec![a, b], now());
    let sup = e.suppressed();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0].target.name, "spare");
    assert_eq!(sup[0].masked_by, vec!["Plugin/a#3", "Plugin/b#5"]);
    assert_eq!(sup[0].masked_until, Some(t("2026-05-29T13:00:00Z")));
    assert_eq!(sup[0].reason, "cost; maintenance");
    assert!(e.get(&id("Interface", "spare")).is_none());

    let cs = e.apply(Change::Tick(t("2026-05-29T12:30:00Z"))).unwrap();
    assert!(cs.is_empty(), "one mask remains: {cs:?}");
    assert_eq!(e.suppressed()[0].masked_by, vec!["Plugin/b#5"]);
    let cs = e.apply(Change::Tick(t("2026-05-29T13:00:00Z"))).unwrap();
    assert_eq!(plain(&cs.added), vec![id("Interface", "spare")]);
    assert!(e.suppressed().is_empty());
    assert!(e.get(&id("Interface", "spare")).is_some());
}

#[test]
fn masked_until_is_absent_when_a_mask_never_expires() {
    let s = startup(STARTUP);
    let a = part(
        "pa",
        "Plugin/a",
        1,
        None,
        &[],
        &[mask("Interface", "spare", "")],
    );
    let b = part(
        "pb",
        "Plugin/b",
        1,
        Some(LATER),
        &[],
        &[mask("Interface", "spare", "")],
    );
    let e = build(&s, vec![a, b], now());
    assert_eq!(e.suppressed()[0].masked_until, None);
}

#[test]
fn parts_cannot_grant_themselves_permissions() {
    let s = startup(STARTUP);
    let pol = "    - apiVersion: config.routerd.net/v1alpha1\n      kind: DynamicOverridePolicy\n      metadata: {name: mine}\n      spec:\n        allow:\n          - source: Plugin/c\n            operations: [mask]\n            targets: [{apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: lan}]\n".to_string();
    let p = part(
        "p",
        "Plugin/c",
        1,
        Some(LATER),
        &[pol],
        &[mask("Interface", "lan", "")],
    );
    let e = build(&s, vec![p], now());
    let (st, reason) = state(&e, "p");
    assert_eq!(st, PartState::Rejected);
    assert!(reason.starts_with("dynamic mask not allowed"), "{reason}");
    let pol = "    - apiVersion: config.routerd.net/v1alpha1\n      kind: DynamicOverridePolicy\n      metadata: {name: mine}\n      spec: {allow: []}\n".to_string();
    let p = part("p", "Plugin/c", 1, Some(LATER), &[pol], &[]);
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p").1,
        "dynamic resource kind DynamicOverridePolicy is not allowed in a dynamic part: source=\"Plugin/c\" resource=config.routerd.net/v1alpha1/DynamicOverridePolicy/mine"
    );
}

#[test]
fn duplicate_resources_in_one_part_are_rejected() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "Plugin/a",
        1,
        Some(LATER),
        &[iface("d", "1"), iface("d", "2")],
        &[],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(
        state(&e, "p").1,
        "duplicate resource net.routerd.net/v1alpha1/Interface/d: source=\"Plugin/a\""
    );
}

#[test]
fn mobility_pool_sources_are_not_merged() {
    let s = startup(STARTUP);
    let p = part(
        "p",
        "MobilityPool/x",
        1,
        Some(LATER),
        &[iface("d", "1")],
        &[],
    );
    let e = build(&s, vec![p], now());
    assert_eq!(state(&e, "p").0, PartState::Rejected);
    assert!(e.get(&id("Interface", "d")).is_none());
}

#[test]
fn duplicate_part_names_are_an_error() {
    let s = startup(STARTUP);
    let a = part("same", "Plugin/a", 1, Some(LATER), &[], &[]);
    let b = part("same", "Plugin/b", 1, Some(LATER), &[], &[]);
    let err = routerd_merge::Effective::build(s, vec![a, b], now()).unwrap_err();
    assert_eq!(err, MergeError::DuplicatePart("same".into()));
}

#[test]
fn change_set_reports_added_removed_changed_and_provenance() {
    let s = startup(STARTUP);
    let mut e = build(&s, vec![], now());
    let cs = e
        .apply(Change::Upsert(part(
            "a-1",
            "Plugin/a",
            1,
            Some(LATER),
            &[iface("d1", "e1"), iface("d2", "e2")],
            &[mask("Interface", "spare", "")],
        )))
        .unwrap();
    assert_eq!(
        plain(&cs.added),
        vec![id("Interface", "d1"), id("Interface", "d2")]
    );
    assert_eq!(plain(&cs.removed), vec![id("Interface", "spare")]);
    // Generation 2: d1 unchanged, d2 changed, d3 new, the mask is gone.
    let cs = e
        .apply(Change::Upsert(part(
            "a-2",
            "Plugin/a",
            2,
            Some(LATER),
            &[iface("d1", "e1"), iface("d2", "e9"), iface("d3", "e3")],
            &[],
        )))
        .unwrap();
    assert_eq!(
        plain(&cs.added),
        vec![id("Interface", "d3"), id("Interface", "spare")]
    );
    assert_eq!(plain(&cs.changed), vec![id("Interface", "d2")]);
    assert_eq!(plain(&cs.provenance_changed), vec![id("Interface", "d1")]);
    assert!(cs.removed.is_empty());
    assert_eq!(state(&e, "a-1").0, PartState::Superseded);
    // Removing the newest generation falls back to generation 1.
    let cs = e.apply(Change::Remove("a-2".into())).unwrap();
    assert_eq!(
        plain(&cs.removed),
        vec![id("Interface", "d3"), id("Interface", "spare")]
    );
    assert_eq!(plain(&cs.changed), vec![id("Interface", "d2")]);
    assert_eq!(
        e.apply(Change::Remove("nope".into())).unwrap_err(),
        MergeError::UnknownPart("nope".into())
    );
    // Expiry removes everything the part contributed.
    let cs = e.apply(Change::Tick(t(LATER))).unwrap();
    assert_eq!(
        plain(&cs.removed),
        vec![id("Interface", "d1"), id("Interface", "d2")]
    );
    assert_eq!(plain(&cs.added), vec![id("Interface", "spare")]);
    assert_eq!(state(&e, "a-1").0, PartState::Expired);
}

#[test]
fn incremental_cascade_matches_rebuild() {
    // Adding Plugin/a later rejects Plugin/b, which re-admits Plugin/c.
    let s = startup(STARTUP);
    let b = part(
        "pb",
        "Plugin/b",
        1,
        Some(LATER),
        &[iface("x", "2"), iface("y", "2")],
        &[],
    );
    let c = part("pc", "Plugin/c", 1, Some(LATER), &[iface("y", "3")], &[]);
    let a = part("pa", "Plugin/a", 1, Some(LATER), &[iface("x", "1")], &[]);
    let mut e = build(&s, vec![b.clone(), c.clone()], now());
    assert_eq!(state(&e, "pc").0, PartState::Rejected);
    let cs = e.apply(Change::Upsert(a.clone())).unwrap();
    assert_eq!(
        plain(&cs.changed),
        vec![id("Interface", "x"), id("Interface", "y")]
    );
    let full = build(&s, vec![a, b, c], now());
    assert_eq!(e.document(), full.document());
}
