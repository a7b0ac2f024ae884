//! Render and diff of 10,000 routes (target: at most 5 ms together).
//!
//! Input: 10,000 `IPv4Route`s, each `198.18.x.y/32 via 192.0.2.2 dev pr0`
//! (the shape deps.md §4 measured the kernel with), one NAT44Rule and a
//! mark-mode policy, with an empty status snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use routerd_benches::CpuTime;
use routerd_model::spec::net::{IPv4RouteSpec, NAT44RuleSpec};
use routerd_model::{Resource, Spec, StateSnapshot};
use routerd_render::dataplane::MemDataplane;
use routerd_render::{Dataplane, Ledger, diff, render};

const N: u32 = 10_000;

fn resources() -> Vec<Resource> {
    let mut v: Vec<Resource> = (0..N)
        .map(|i| {
            let dst = Ipv4Addr::from(0xC612_0000 + i);
            Resource::new(
                format!("r{i:05}"),
                Spec::IPv4Route(IPv4RouteSpec {
                    destination: format!("{dst}/32"),
                    device: Some("pr0".into()),
                    gateway: Some("192.0.2.2".into()),
                    ..IPv4RouteSpec::default()
                }),
            )
        })
        .collect();
    v.push(Resource::new(
        "lan",
        Spec::NAT44Rule(NAT44RuleSpec {
            type_: Some("masquerade".into()),
            egress_interface: Some("pr0".into()),
            source_ranges: vec!["192.168.10.0/24".into()],
            ..NAT44RuleSpec::default()
        }),
    ));
    v
}

fn benches(c: &mut Criterion) {
    run(c, "render");
}

fn cpu_benches(c: &mut Criterion<CpuTime>) {
    run(c, "render_cpu");
}

fn run<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let res = resources();
    let state = StateSnapshot::new();
    let rendered = render(&res, &state);
    assert_eq!(rendered.desired.routes.len(), N as usize);

    // A kernel that already holds everything (the steady state), and the
    // ledger after the first apply.
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    routerd_render::reconcile(&mut dp, &rendered.desired, &mut ledger, &Default::default())
        .unwrap();
    let observed = dp.observe().unwrap();
    let empty = MemDataplane::new().observe().unwrap();

    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("render_10k_routes", |b| {
        b.iter(|| render(black_box(&res), black_box(&state)))
    });
    g.bench_function("diff_10k_routes_unchanged", |b| {
        b.iter(|| diff(black_box(&rendered.desired), black_box(&observed), &ledger))
    });
    g.bench_function("diff_10k_routes_from_empty", |b| {
        b.iter(|| {
            diff(
                black_box(&rendered.desired),
                black_box(&empty),
                &Ledger::default(),
            )
        })
    });
    g.bench_function("render_and_diff_10k_routes", |b| {
        b.iter(|| {
            let r = render(black_box(&res), black_box(&state));
            diff(&r.desired, black_box(&observed), &ledger)
        })
    });
    g.finish();
}

criterion_group!(render_benches, benches);
criterion_group! {
    name = render_cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu_benches
}
criterion_main!(render_benches, render_cpu_benches);
