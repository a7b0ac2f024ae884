//! HybridRoute lowering: goldens (names, devices, gateways, metrics, owner
//! references, refusals) and properties (deterministic, never a default
//! route, never a duplicate name). `ROUTERD_BLESS=1` rewrites the goldens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use routerd_model::lower::{lower, owner_of, with_lowered};
use routerd_model::spec::{
    HybridRouteSpec, IPv4RouteSpec, OverlayPeerSpec, RouteInstall, Underlay,
};
use routerd_model::{Loaded, Resource, Spec};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lower")
}

fn describe(resources: Vec<Resource>) -> String {
    let (all, lowering) = with_lowered(resources);
    let mut out = String::from("## lowered IPv4Routes\n");
    for r in all.iter().filter(|r| owner_of(r).is_some()) {
        let s = r.as_ipv4_route().unwrap();
        let o = &r.metadata.owner_refs[0];
        let _ = writeln!(
            out,
            "{} dst={} dev={} gw={} metric={} owner={}/{}/{}",
            r.name(),
            s.destination,
            s.device.as_deref().unwrap_or("-"),
            s.gateway.as_deref().unwrap_or("-"),
            s.metric.unwrap_or(0),
            o.api_version,
            o.kind,
            o.name
        );
    }
    out.push_str("## refused\n");
    for p in lowering.problems() {
        let _ = writeln!(out, "{} (at {})", p.message, p.path);
    }
    out
}

#[test]
fn goldens() {
    let mut failures = Vec::new();
    let mut cases: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    for input in cases {
        let mut l = Loaded::new();
        l.add_file("in.yaml", &std::fs::read_to_string(&input).unwrap());
        assert!(l.diagnostics.is_empty(), "{input:?}: {:?}", l.diagnostics);
        let actual = describe(l.resources);
        let golden = input.with_extension("golden");
        if std::env::var_os("ROUTERD_BLESS").is_some() {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{golden:?}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn peer(name: &str, ty: &str) -> Resource {
    Resource::new(
        name,
        Spec::OverlayPeer(OverlayPeerSpec {
            role: Some("cloud".into()),
            node_id: Some("n".into()),
            underlay: Some(Underlay {
                type_: Some(ty.into()),
                interface: Some(format!("{name}0")),
                address: None,
            }),
            ..OverlayPeerSpec::default()
        }),
    )
}

fn cidr() -> impl Strategy<Value = String> {
    // Small octets and prefix lengths so collisions and defaults happen.
    (0u8..4, 0u8..3, 0u8..=32).prop_map(|(a, b, len)| format!("10.{a}.{b}.0/{len}"))
}

fn config() -> impl Strategy<Value = Vec<Resource>> {
    let hybrids = prop::collection::vec(
        (
            "[a-c]{1,2}(-10)?",
            prop::collection::vec(prop_oneof![cidr(), Just("default".to_string())], 0..4),
            0usize..3,
            prop::option::of(0i64..3),
        ),
        0..6,
    );
    let routes = prop::collection::vec(("[a-c]{1,2}(-10-0-0-0-8)?", cidr(), 0i64..3), 0..4);
    (hybrids, routes).prop_map(|(hs, rs)| {
        let mut out = vec![peer("p0", "wireguard"), peer("p1", "ipsec")];
        for (name, cidrs, p, metric) in hs {
            out.push(Resource::new(
                format!("h{name}"),
                Spec::HybridRoute(HybridRouteSpec {
                    destination_cidrs: cidrs,
                    peer_ref: Some(format!("p{p}")),
                    install: metric.map(|m| RouteInstall {
                        table: None,
                        metric: Some(m),
                    }),
                    health_check_ref: None,
                }),
            ));
        }
        for (name, dest, metric) in rs {
            out.push(Resource::new(
                format!("h{name}"),
                Spec::IPv4Route(IPv4RouteSpec {
                    destination: dest,
                    device: Some("eth0".into()),
                    metric: Some(metric),
                    ..IPv4RouteSpec::default()
                }),
            ));
        }
        // Identities must be unique, as validation guarantees.
        let mut seen = HashSet::new();
        out.retain(|r| seen.insert(r.id()));
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn lowering_is_deterministic_never_default_never_duplicate(cfg in config(), seed in any::<u64>()) {
        let a = lower(&cfg);
        let mut shuffled = cfg.clone();
        // A deterministic permutation of the input.
        let n = shuffled.len();
        if n > 1 {
            for i in 0..n {
                let j = (seed.wrapping_mul(i as u64 + 1) % n as u64) as usize;
                shuffled.swap(i, j);
            }
        }
        let b = lower(&shuffled);
        prop_assert_eq!(&a, &b);

        let (all, _) = with_lowered(cfg.clone());
        let mut names = HashSet::new();
        let mut kernel = HashSet::new();
        for r in &all {
            if r.kind() != routerd_model::Kind::IPv4Route {
                continue;
            }
            prop_assert!(names.insert(r.name().to_string()), "duplicate IPv4Route name {}", r.name());
            if owner_of(r).is_some() {
                let s = r.as_ipv4_route().unwrap();
                let net: ipnet::Ipv4Net = s.destination.parse().unwrap();
                prop_assert!(net.prefix_len() > 0, "default route lowered: {}", s.destination);
                prop_assert!(kernel.insert((net, s.metric)), "two lowered routes on {}", s.destination);
            }
        }
        // Lowering the lowered configuration again changes nothing.
        let (again, _) = with_lowered(all.clone());
        prop_assert_eq!(again, all);
    }
}
