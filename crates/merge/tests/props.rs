//! Property tests: the invariants of docs/merge.md over random parts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{STARTUP, now, startup};
use proptest::prelude::*;
use routerd_merge::{Change, Effective, Part, Startup, diff};
use routerd_model::spec::{DSLiteTunnelSpec, Directive, DynamicConfigPartSpec, InterfaceSpec};
use routerd_model::{Kind, ObjectRef, Resource, ResourceId, Spec};

const SOURCES: &[&str] = &["Plugin/a", "Plugin/b", "Plugin/c", "Plugin/d"];
const TARGETS: &[(&str, &str)] = &[
    ("Interface", "spare"),
    ("Interface", "lan"),
    ("Interface", "wan"),
    ("DSLiteTunnel", "tun"),
    ("Interface", "ghost"),
    ("Interface", "x"),
];

#[derive(Debug, Clone)]
enum Res {
    Iface(u8, u8),
    Tunnel(u8, u8),
}

fn res_strategy() -> impl Strategy<Value = Res> {
    prop_oneof![
        (0u8..4, 0u8..3).prop_map(|(n, v)| Res::Iface(n, v)),
        (0u8..2, 0u8..5).prop_map(|(n, i)| Res::Tunnel(n, i)),
    ]
}

fn to_resource(r: &Res) -> Resource {
    match r {
        Res::Iface(n, v) => Resource::new(
            ["x", "y", "z", "spare"][*n as usize],
            Spec::Interface(InterfaceSpec {
                ifname: format!("eth{v}"),
                ..InterfaceSpec::default()
            }),
        ),
        Res::Tunnel(n, i) => Resource::new(
            format!("t{n}"),
            Spec::DSLiteTunnel(DSLiteTunnelSpec {
                interface: ["lan", "spare", "wan", "x", "nowhere"][*i as usize].into(),
                aftr_ipv6: Some("2001:db8::1".into()),
                ..DSLiteTunnelSpec::default()
            }),
        ),
    }
}

#[derive(Debug, Clone)]
struct PartGen {
    name: u8,
    source: u8,
    generation: i64,
    expires: Option<i64>,
    resources: Vec<Res>,
    masks: Vec<(u8, bool)>,
}

fn part_strategy() -> impl Strategy<Value = PartGen> {
    (
        0u8..6,
        0u8..4,
        1i64..4,
        proptest::option::weighted(0.8, -2i64..8),
        proptest::collection::vec(res_strategy(), 0..3),
        proptest::collection::vec((0u8..6, proptest::bool::weighted(0.95)), 0..3),
    )
        .prop_map(
            |(name, source, generation, expires, resources, masks)| PartGen {
                name,
                source,
                generation,
                expires,
                resources,
                masks,
            },
        )
}

fn to_part(g: &PartGen, t0: DateTime<Utc>) -> Part {
    let source = SOURCES[g.source as usize].to_string();
    Part::new(
        format!("p{}", g.name),
        DynamicConfigPartSpec {
            source,
            generation: g.generation,
            observed_at: Some(t0),
            expires_at: g.expires.map(|m| t0 + TimeDelta::minutes(m)),
            digest: None,
            resources: g.resources.iter().map(to_resource).collect(),
            directives: g
                .masks
                .iter()
                .map(|(t, ok)| {
                    let (kind, name) = TARGETS[*t as usize];
                    Directive {
                        op: if *ok { "mask".into() } else { "hide".into() },
                        target: ObjectRef {
                            api_version: Kind::parse(kind).unwrap().api_version().into(),
                            kind: kind.into(),
                            name: name.into(),
                        },
                        reason: Some(format!("r{t}")),
                    }
                })
                .collect(),
            action_plans: Vec::new(),
        },
    )
}

/// The startup fixture, with permissions for every generated source.
fn fixture() -> Arc<Startup> {
    let extra = r#"
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {name: d}
      spec:
        allow:
          - source: Plugin/d
            operations: [mask]
            targets:
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: spare}
              - {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: lan}
"#;
    startup(&format!("{STARTUP}{extra}"))
}

fn full(s: &Arc<Startup>, parts: &BTreeMap<String, Part>, at: DateTime<Utc>) -> Effective {
    Effective::build(s.clone(), parts.values().cloned(), at).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(PartGen),
    Remove(u8),
    Tick(i64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => part_strategy().prop_map(Op::Upsert),
        2 => (0u8..6).prop_map(Op::Remove),
        2 => (0i64..4).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_parts_gives_the_startup(at in -100i64..100) {
        let s = fixture();
        let e = Effective::build(s.clone(), Vec::new(), now() + TimeDelta::minutes(at)).unwrap();
        let ids: Vec<ResourceId> = s.iter().map(Resource::id).collect();
        prop_assert_eq!(e.ids(), ids);
        prop_assert!(e.suppressed().is_empty());
        prop_assert!(e.parts().is_empty());
    }

    #[test]
    fn the_result_does_not_depend_on_part_order(
        gens in proptest::collection::vec(part_strategy(), 0..7)
            .prop_flat_map(|v| Just(v).prop_shuffle().prop_map(|s| s))
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
    ) {
        let (a, b) = gens;
        let s = fixture();
        let mut seen = std::collections::BTreeSet::new();
        let dedup = |v: &Vec<PartGen>| -> Vec<Part> {
            // Part names must be unique; keep one generator per name, the
            // same one for both orders.
            let mut by: BTreeMap<u8, &PartGen> = BTreeMap::new();
            for g in v {
                by.entry(g.name).or_insert(g);
            }
            by.values().map(|g| to_part(g, now())).collect()
        };
        let pa = dedup(&a);
        // The same generators in another order (ties broken by the first
        // occurrence in `a`).
        let mut pb: Vec<Part> = Vec::new();
        for g in &b {
            if seen.insert(g.name)
                && let Some(p) = pa.iter().find(|p| p.name == format!("p{}", g.name)) {
                    pb.push(p.clone());
                }
        }
        let ea = Effective::build(s.clone(), pa, now()).unwrap();
        let eb = Effective::build(s.clone(), pb, now()).unwrap();
        prop_assert_eq!(ea.document(), eb.document());
    }

    #[test]
    fn a_masked_resource_returns_exactly_when_its_last_mask_expires(
        expiries in proptest::collection::vec(proptest::option::weighted(0.8, 1i64..10), 1..4),
        probe in 0i64..12,
    ) {
        let s = fixture();
        let parts: Vec<Part> = expiries
            .iter()
            .enumerate()
            .map(|(i, e)| to_part(&PartGen {
                name: u8::try_from(i).unwrap(),
                source: u8::try_from(i).unwrap(),
                generation: 1,
                expires: *e,
                resources: Vec::new(),
                masks: vec![(0, true)],
            }, now()))
            .collect();
        let at = now() + TimeDelta::minutes(probe);
        let spare = ResourceId::of(Kind::Interface, "spare");
        let masked = expiries.iter().any(|e| e.is_none_or(|m| m > probe));
        let e = Effective::build(s.clone(), parts.clone(), at).unwrap();
        prop_assert_eq!(e.get(&spare).is_none(), masked);
        // The same answer when time advances minute by minute.
        let mut inc = Effective::build(s, parts, now()).unwrap();
        for m in 1..=probe {
            let cs = inc.apply(Change::Tick(now() + TimeDelta::minutes(m))).unwrap();
            let lifted = cs.added.iter().any(|x| **x == spare);
            let last = expiries.iter().filter_map(|e| *e).max();
            let all_expire = expiries.iter().all(Option::is_some);
            prop_assert_eq!(lifted, all_expire && last == Some(m));
        }
        prop_assert_eq!(inc.get(&spare).is_none(), masked);
    }

    #[test]
    fn incremental_updates_equal_a_full_rebuild(ops in proptest::collection::vec(op_strategy(), 1..25)) {
        let s = fixture();
        let mut at = now();
        let mut parts: BTreeMap<String, Part> = BTreeMap::new();
        let mut inc = Effective::build(s.clone(), Vec::new(), at).unwrap();
        let mut before = full(&s, &parts, at);
        for op in ops {
            let change = match op {
                Op::Upsert(g) => {
                    let p = to_part(&g, now());
                    parts.insert(p.name.clone(), p.clone());
                    Change::Upsert(p)
                }
                Op::Remove(n) => {
                    let name = format!("p{n}");
                    if parts.remove(&name).is_none() {
                        prop_assert!(inc.apply(Change::Remove(name)).is_err());
                        continue;
                    }
                    Change::Remove(name)
                }
                Op::Tick(m) => {
                    at += TimeDelta::minutes(m);
                    Change::Tick(at)
                }
            };
            let cs = inc.apply(change).unwrap();
            let after = full(&s, &parts, at);
            prop_assert_eq!(inc.document(), after.document());
            prop_assert_eq!(cs, diff(&before, &after));
            before = after;
        }
    }
}
