//! Render and diff of 10,000 routes (target: at most 5 ms together).
//!
//! Input: 10,000 `IPv4Route`s, each `198.18.x.y/32 via 192.0.2.2 dev pr0`
//! (the shape deps.md §4 measured the kernel with), one NAT44Rule and a
//! mark-mode policy, with an empty status snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};
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

/// Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`): on a shared 2-core machine
/// wall time mostly measures the other tenants; CPU time measures us.
struct ThreadCpu;

fn cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (d, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "µs cpu")
        } else {
            (1e6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v /= d);
        unit
    }
    fn scale_throughputs(&self, _t: f64, _th: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = 1e9 / *v);
        "elem/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn benches(c: &mut Criterion) {
    run(c, "render");
}

fn cpu_benches(c: &mut Criterion<ThreadCpu>) {
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
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu_benches
}
criterion_main!(render_benches, render_cpu_benches);
