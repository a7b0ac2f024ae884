//! Arbitrary dynamic parts through the merge: it must never panic, the
//! result must not depend on part order, and folding the parts in one at a
//! time (with time moving on) must equal a full rebuild.
#![no_main]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use routerd_merge::{Change, Effective, Part, Startup};
use routerd_model::spec::{
    AllowRule, DSLiteTunnelSpec, Directive, DynamicConfigPartSpec, DynamicOverridePolicySpec,
    InterfaceSpec,
};
use routerd_model::{Kind, ObjectRef, Resource, Spec};

const NAMES: &[&str] = &["wan", "lan", "spare", "tun", "x", "y", ""];
const SOURCES: &[&str] = &["Plugin/a", "Plugin/b", "Plugin/c", "", "MobilityPool/m"];

fn iface(name: &str, ifname: &str) -> Resource {
    Resource::new(
        name,
        Spec::Interface(InterfaceSpec {
            ifname: ifname.into(),
            ..InterfaceSpec::default()
        }),
    )
}

fn tunnel(name: &str, on: &str) -> Resource {
    Resource::new(
        name,
        Spec::DSLiteTunnel(DSLiteTunnelSpec {
            interface: on.into(),
            aftr_ipv6: Some("2001:db8::1".into()),
            ..DSLiteTunnelSpec::default()
        }),
    )
}

fn target(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: Kind::parse(kind).map_or("x/v1", |k| k.api_version()).into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn startup() -> Vec<Resource> {
    let targets: Vec<ObjectRef> = ["wan", "lan", "spare"]
        .iter()
        .map(|n| target("Interface", n))
        .chain([target("DSLiteTunnel", "tun")])
        .collect();
    vec![
        iface("wan", "e0"),
        iface("lan", "e1"),
        iface("spare", "e2"),
        tunnel("tun", "wan"),
        Resource::new(
            "policy",
            Spec::DynamicOverridePolicy(DynamicOverridePolicySpec {
                allow: ["Plugin/a", "Plugin/b"]
                    .iter()
                    .map(|s| AllowRule {
                        source: (*s).into(),
                        operations: vec!["mask".into()],
                        targets: targets.clone(),
                    })
                    .collect(),
            }),
        ),
    ]
}

fn name(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary::<String>()?
    } else {
        (*u.choose(NAMES)?).to_string()
    })
}

fn resource(u: &mut Unstructured<'_>) -> Result<Resource> {
    let n = name(u)?;
    Ok(match u.int_in_range(0..=3)? {
        0 => iface(&n, &name(u)?),
        1 => tunnel(&n, &name(u)?),
        2 => Resource::new(
            n,
            Spec::DynamicOverridePolicy(DynamicOverridePolicySpec::default()),
        ),
        _ => {
            let mut r = iface(&n, "e9");
            r.api_version = u.arbitrary()?;
            r
        }
    })
}

fn part(u: &mut Unstructured<'_>, t0: DateTime<Utc>) -> Result<Part> {
    let mut resources = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        resources.push(resource(u)?);
    }
    let mut directives = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        directives.push(Directive {
            op: if u.ratio(9, 10)? {
                "mask".into()
            } else {
                u.arbitrary()?
            },
            target: target(
                u.choose(&["Interface", "DSLiteTunnel", "Bogus"])?,
                &name(u)?,
            ),
            reason: u.arbitrary()?,
        });
    }
    let expires = if u.ratio(1, 5)? {
        None
    } else {
        t0.checked_add_signed(TimeDelta::minutes(i64::from(u.int_in_range(-3i8..=6)?)))
    };
    Ok(Part::new(
        format!("p{}", u.int_in_range(0u8..=5)?),
        DynamicConfigPartSpec {
            source: (*u.choose(SOURCES)?).to_string(),
            generation: u.arbitrary()?,
            observed_at: Some(t0),
            expires_at: expires,
            digest: if u.arbitrary()? {
                Some(u.arbitrary()?)
            } else {
                None
            },
            resources,
            directives,
            action_plans: Vec::new(),
        },
    ))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let t0 = Utc
        .with_ymd_and_hms(2026, 5, 29, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let s = Arc::new(Startup::new(startup()));
    let mut parts: Vec<Part> = Vec::new();
    // Bounded: an exhausted Unstructured keeps returning the same defaults.
    for _ in 0..8 {
        if u.is_empty() {
            break;
        }
        match part(&mut u, t0) {
            Ok(p) => {
                if !parts.iter().any(|q| q.name == p.name) {
                    parts.push(p);
                }
            }
            Err(_) => break,
        }
    }
    let at = t0 + TimeDelta::minutes(2);
    let full = Effective::build(s.clone(), parts.clone(), at).expect("unique names");
    let mut rev = parts.clone();
    rev.reverse();
    let back = Effective::build(s.clone(), rev, at).expect("unique names");
    assert_eq!(full.document(), back.document(), "order dependence");
    let mut inc = Effective::build(s.clone(), Vec::new(), t0).expect("empty");
    for p in parts {
        inc.apply(Change::Upsert(p)).expect("upsert");
    }
    inc.apply(Change::Tick(at)).expect("tick");
    assert_eq!(
        inc.document(),
        full.document(),
        "incremental differs from rebuild"
    );
    let _ = routerd_merge::diff(&inc, &full);
});
