//! Effective-config merge on the Go baseline's inputs `GenMerge(N, D, K)`
//! (shared/reference/bench-inputs.md). Counts are checked before timing.
//!
//! `cargo bench -p routerd-benches --bench merge -- --warm-up-time 1 --measurement-time 3`
//!
//! * `merge/full`: `Effective::build` with a prebuilt startup index: every
//!   part's checks, validation of every dynamic resource, conflict
//!   decisions, masks. Inputs are cloned outside the timed region.
//! * `merge/startup_index`: `Startup::new` (sorting, name index, reference
//!   index, permissions), paid once per startup-config change.
//! * `merge/incremental`: one 100-resource part replaced (new generation,
//!   every resource changed) on an existing N=100k result, with change set.
//! * `*_cpu`: the same work measured in on-CPU time of the benchmark thread
//!   (the 2-core machine is shared; wall time also counts waiting for a core).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use routerd_benches::thread_cpu_ns as cpu_ns;
use routerd_merge::{Change, Effective, PartState, Startup, synth};

const SHAPES: &[(usize, usize, usize)] = &[
    (1_000, 10, 100),
    (1_000, 100, 100),
    (10_000, 10, 100),
    (10_000, 100, 100),
    (100_000, 10, 100),
    (100_000, 100, 100),
];

fn check(e: &Effective, want: synth::Expected) {
    let parts = e.parts();
    let count = |s: PartState| parts.iter().filter(|p| p.state == s).count();
    assert_eq!(e.len(), want.effective, "effective resources");
    assert_eq!(e.suppressed().len(), want.suppressed, "suppressed");
    assert_eq!(count(PartState::Active), want.active, "active parts");
    assert_eq!(count(PartState::Expired), want.expired, "expired parts");
    let added = e
        .iter()
        .filter(|x| !matches!(x.provenance, routerd_merge::Provenance::Startup))
        .count();
    assert_eq!(added, want.added, "added resources");
}

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge/full");
    g.sample_size(10);
    for &(n, d, k) in SHAPES {
        let s = synth::gen_merge(n, d, k);
        let startup = Arc::new(Startup::new(s.startup.clone()));
        let e = Effective::build(startup.clone(), s.parts.clone(), s.now).unwrap();
        check(&e, s.expected);
        drop(e);
        g.bench_function(format!("N={n}/D={d}/K={k}"), |b| {
            b.iter_batched(
                || s.parts.clone(),
                |parts| black_box(Effective::build(startup.clone(), parts, s.now).unwrap()),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn startup_index(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge/startup_index");
    g.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let s = synth::gen_merge(n, 100, 100);
        g.bench_function(format!("N={n}"), |b| {
            b.iter_batched(
                || s.startup.clone(),
                |rs| black_box(Startup::new(rs)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge/incremental");
    let (n, d, k) = (100_000, 100, 100);
    let s = synth::gen_merge(n, d, k);
    let mut e = Effective::build(Arc::new(Startup::new(s.startup)), s.parts, s.now).unwrap();
    check(&e, s.expected);
    let later = s.now + chrono::TimeDelta::hours(1);
    let a = synth::bench_part(0, k, s.now, later);
    let mut b = synth::bench_part(0, k, s.now, later);
    b.spec.generation += 1;
    for r in &mut b.spec.resources {
        if let routerd_model::Spec::Interface(i) = &mut r.spec {
            i.mtu = Some(1400);
        }
    }
    let first = e.apply(Change::Upsert(b.clone())).unwrap();
    assert_eq!(first.changed.len(), k, "every resource of the part changes");
    let mut flip = false;
    g.bench_function(format!("upsert_part/N={n}/K={k}"), |bch| {
        bch.iter_batched(
            || {
                flip = !flip;
                if flip { a.clone() } else { b.clone() }
            },
            |p| black_box(e.apply(Change::Upsert(p)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    // The same work timed in on-CPU time of this thread: the machine is
    // shared, so wall time also counts waiting for a core.
    let mut flip = false;
    g.bench_function(format!("upsert_part_cpu/N={n}/K={k}"), |bch| {
        bch.iter_custom(|iters| {
            let mut inputs: Vec<_> = (0..iters)
                .map(|_| {
                    flip = !flip;
                    if flip { a.clone() } else { b.clone() }
                })
                .collect();
            inputs.reverse();
            let c0 = cpu_ns();
            while let Some(p) = inputs.pop() {
                black_box(e.apply(Change::Upsert(p)).unwrap());
            }
            Duration::from_nanos(cpu_ns().saturating_sub(c0))
        })
    });
    g.finish();
}

fn full_cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge/full_cpu");
    g.sample_size(10);
    let (n, d, k) = (100_000, 100, 100);
    let s = synth::gen_merge(n, d, k);
    let startup = Arc::new(Startup::new(s.startup.clone()));
    g.bench_function(format!("N={n}/D={d}/K={k}"), |b| {
        b.iter_custom(|iters| {
            let mut total = 0;
            for _ in 0..iters {
                let parts = s.parts.clone();
                let c0 = cpu_ns();
                let e = black_box(Effective::build(startup.clone(), parts, s.now).unwrap());
                total += cpu_ns().saturating_sub(c0);
                drop(e);
            }
            Duration::from_nanos(total)
        })
    });
    g.bench_function(format!("startup_index+merge/N={n}/D={d}/K={k}"), |b| {
        b.iter_custom(|iters| {
            let mut total = 0;
            for _ in 0..iters {
                let (rs, parts) = (s.startup.clone(), s.parts.clone());
                let c0 = cpu_ns();
                let e =
                    black_box(Effective::build(Arc::new(Startup::new(rs)), parts, s.now).unwrap());
                total += cpu_ns().saturating_sub(c0);
                drop(e);
            }
            Duration::from_nanos(total)
        })
    });
    g.finish();
}

criterion_group!(benches, full, startup_index, incremental, full_cpu);
criterion_main!(benches);
