//! CloudEdge L3: lowering 10,000 prefixes across 100 HybridRoutes and
//! rendering them (target: at most 20 ms CPU together), and the in-memory
//! apply of the lowered routes next to the same number of plain IPv4Routes
//! (target: within 20 %; the lowered routes take the IPv4Route path).
//!
//! Input: 10 OverlayPeers (wireguard, `wg0`..`wg9`), 100 HybridRoutes of 100
//! /24 prefixes each, metric 50, with an empty status snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use routerd_benches::CpuTime;
use routerd_model::lower::with_lowered;
use routerd_model::spec::{
    HybridRouteSpec, IPv4RouteSpec, OverlayPeerSpec, RouteInstall, Underlay,
};
use routerd_model::{Resource, Spec, StateSnapshot};
use routerd_render::dataplane::MemDataplane;
use routerd_render::{Ledger, reconcile, render};

const ROUTES: u32 = 100;
const PREFIXES: u32 = 100;

fn prefix(i: u32) -> String {
    // 10.0.0.0/24, 10.0.1.0/24, ...: 10,000 distinct /24s.
    format!("{}/24", Ipv4Addr::from(0x0A00_0000 + (i << 8)))
}

fn hybrid_config() -> Vec<Resource> {
    let mut v: Vec<Resource> = (0..10)
        .map(|p| {
            Resource::new(
                format!("peer{p}"),
                Spec::OverlayPeer(OverlayPeerSpec {
                    role: Some("cloud".into()),
                    node_id: Some(format!("n{p}")),
                    underlay: Some(Underlay {
                        type_: Some("wireguard".into()),
                        interface: Some(format!("wg{p}")),
                        address: None,
                    }),
                    ..OverlayPeerSpec::default()
                }),
            )
        })
        .collect();
    for h in 0..ROUTES {
        v.push(Resource::new(
            format!("hr{h:03}"),
            Spec::HybridRoute(HybridRouteSpec {
                destination_cidrs: (0..PREFIXES).map(|j| prefix(h * PREFIXES + j)).collect(),
                peer_ref: Some(format!("peer{}", h % 10)),
                install: Some(RouteInstall {
                    table: None,
                    metric: Some(50),
                }),
                health_check_ref: None,
            }),
        ));
    }
    v
}

fn plain_config() -> Vec<Resource> {
    (0..ROUTES * PREFIXES)
        .map(|i| {
            Resource::new(
                format!("r{i:05}"),
                Spec::IPv4Route(IPv4RouteSpec {
                    destination: prefix(i),
                    device: Some(format!("wg{}", (i / PREFIXES) % 10)),
                    metric: Some(50),
                    ..IPv4RouteSpec::default()
                }),
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    run(c, "hybrid");
}

fn cpu_benches(c: &mut Criterion<CpuTime>) {
    run(c, "hybrid_cpu");
}

fn run<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let cfg = hybrid_config();
    let plain = plain_config();
    let state = StateSnapshot::new();
    let (lowered, _) = with_lowered(cfg.clone());
    let desired = render(&lowered, &state).desired;
    assert_eq!(desired.routes.len(), (ROUTES * PREFIXES) as usize);
    let plain_desired = render(&plain, &state).desired;
    assert_eq!(plain_desired.routes.len(), (ROUTES * PREFIXES) as usize);

    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("lower_10k_prefixes_100_hybrid_routes", |b| {
        b.iter(|| with_lowered(black_box(cfg.clone())))
    });
    g.bench_function("lower_and_render_10k_prefixes", |b| {
        b.iter(|| {
            let (eff, _) = with_lowered(black_box(cfg.clone()));
            render(&eff, black_box(&state))
        })
    });
    g.bench_function("apply_10k_lowered_routes_mem", |b| {
        b.iter(|| {
            let mut dp = MemDataplane::new();
            let mut ledger = Ledger::default();
            reconcile(
                &mut dp,
                black_box(&desired),
                &mut ledger,
                &Default::default(),
            )
            .unwrap()
        })
    });
    g.bench_function("apply_10k_ipv4routes_mem", |b| {
        b.iter(|| {
            let mut dp = MemDataplane::new();
            let mut ledger = Ledger::default();
            reconcile(
                &mut dp,
                black_box(&plain_desired),
                &mut ledger,
                &Default::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(hybrid_benches, benches);
criterion_group! {
    name = hybrid_cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu_benches
}
criterion_main!(hybrid_benches, hybrid_cpu_benches);
