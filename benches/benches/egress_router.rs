//! EgressRouter with 1,000 redirect rules: render and diff (issue #15
//! target: render and apply as one nft transaction in at most 20 ms; the
//! apply is measured in a namespace by
//! `crates/render/tests/netns_egress_health.rs`).
//!
//! Input: one EgressRouter (routerd's apiVersion), rules on TCP ports
//! 10000-10999, every fifth with two destinations (a jhash map), the rest
//! with one (rendered as one port map), and a fallback; an empty status
//! snapshot (every destination live).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use routerd_benches::CpuTime;
use routerd_model::{Resource, StateSnapshot, load_and_validate};
use routerd_render::dataplane::MemDataplane;
use routerd_render::{Dataplane, Ledger, diff, render};

const N: u32 = 1_000;

/// The configuration as YAML, so the bench goes through the same types
/// the daemon loads.
pub fn config(n: u32) -> String {
    let mut s = String::from(
        "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  networkInterface: {macvlan: {master: ext0}}\n  listen: {addresses: [10.1.0.1]}\n  redirect:\n    fallbackIP: 198.51.100.250\n    redirectRules:\n",
    );
    for i in 0..n {
        let a = 1 + i % 200;
        if i % 5 == 0 {
            let _ = writeln!(
                s,
                "      - {{destinationIPs: [198.51.100.{a}, 198.51.100.{}], port: {}, targetPort: 80, protocol: TCP}}",
                a + 1,
                10_000 + i
            );
        } else {
            let _ = writeln!(
                s,
                "      - {{destinationIP: 198.51.100.{a}, port: {}, targetPort: 80, protocol: TCP}}",
                10_000 + i
            );
        }
    }
    s
}

fn resources() -> Vec<Resource> {
    let text = config(N);
    let (loaded, ds) = load_and_validate(&[("er.yaml", &text)]);
    assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
    loaded.resources
}

fn benches(c: &mut Criterion) {
    run(c, "egress_router");
}

fn cpu_benches(c: &mut Criterion<CpuTime>) {
    run(c, "egress_router_cpu");
}

fn run<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let res = resources();
    let state = StateSnapshot::new();
    let rendered = render(&res, &state);
    assert!(rendered.problems.is_empty(), "{:?}", rendered.problems);
    // One table: 800 redirects in one port map, 200 balanced ones in one
    // bucket-keyed map, the fallback.
    assert_eq!(rendered.desired.nft.len(), 1);
    assert_eq!(rendered.desired.nft[0].chains[0].rules.len(), 3);

    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    routerd_render::reconcile(&mut dp, &rendered.desired, &mut ledger, &Default::default())
        .unwrap();
    let observed = dp.observe().unwrap();
    let empty = MemDataplane::new().observe().unwrap();

    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    g.bench_function("render_1k_redirect_rules", |b| {
        b.iter(|| render(black_box(&res), black_box(&state)))
    });
    g.bench_function("diff_1k_redirect_rules_unchanged", |b| {
        b.iter(|| diff(black_box(&rendered.desired), black_box(&observed), &ledger))
    });
    // The in-process backend's share before the kernel: the whole
    // replacement as one nf_tables batch.
    let table = &rendered.desired.nft[0];
    g.bench_function("encode_1k_redirect_rules_as_netlink_batch", |b| {
        b.iter(|| {
            routerd_render::nft_netlink::replace_batch(
                black_box(table),
                routerd_render::ir::NFT_OWNER_COMMENT,
                1,
            )
        })
    });
    g.bench_function("render_and_diff_1k_redirect_rules_from_empty", |b| {
        b.iter(|| {
            let r = render(black_box(&res), black_box(&state));
            diff(&r.desired, black_box(&empty), &Ledger::default())
        })
    });
    g.finish();
}

criterion_group!(egress_benches, benches);
criterion_group! {
    name = egress_cpu_benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu_benches
}
criterion_main!(egress_benches, egress_cpu_benches);
