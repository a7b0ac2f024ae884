//! Peak-RSS driver for docs/performance.md: generates `GenMerge(N, D, K)`,
//! runs the full merge (startup index + parts + validation of the dynamic
//! resources) `iters` times, checks the counts, and prints VmHWM.
//!
//! `/usr/bin/time -v target/release/examples/merge_rss 100000 100 100 1`

use std::sync::Arc;
use std::time::Instant;

use routerd_merge::{Effective, PartState, Startup, synth};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let d = args.get(1).copied().unwrap_or(100);
    let k = args.get(2).copied().unwrap_or(100);
    let iters = args.get(3).copied().unwrap_or(1);
    let mode = args.get(4).copied().unwrap_or(0);
    let inputs_only = mode == 1;
    let s = synth::gen_merge(n, d, k);
    let want = s.expected;
    if inputs_only {
        println!(
            "inputs only: {} startup, {} parts",
            s.startup.len(),
            s.parts.len()
        );
        print_hwm();
        return;
    }
    let mut startup = Some(s.startup);
    let mut parts = Some(s.parts);
    for i in 0..iters {
        // Later iterations merge copies so every iteration does the same work.
        let st = if i + 1 == iters {
            startup.take().unwrap_or_default()
        } else {
            startup.clone().unwrap_or_default()
        };
        let ps = if i + 1 == iters {
            parts.take().unwrap_or_default()
        } else {
            parts.clone().unwrap_or_default()
        };
        let c0 = cpu_ns();
        let t0 = Instant::now();
        let startup = Arc::new(Startup::new(st));
        let t1 = Instant::now();
        let c1 = cpu_ns();
        let e = match Effective::build(startup, ps, s.now) {
            Ok(e) => e,
            Err(err) => {
                eprintln!("merge failed: {err}");
                std::process::exit(1);
            }
        };
        let t2 = Instant::now();
        let c2 = cpu_ns();
        let reports = e.parts();
        let active = reports
            .iter()
            .filter(|p| p.state == PartState::Active)
            .count();
        let expired = reports
            .iter()
            .filter(|p| p.state == PartState::Expired)
            .count();
        let ok = e.len() == want.effective
            && e.suppressed().len() == want.suppressed
            && active == want.active
            && expired == want.expired;
        println!(
            "iter {i}: startup index {:?} (cpu {:.1} ms), merge {:?} (cpu {:.1} ms), effective {} suppressed {} active {} expired {} ok={ok}",
            t1 - t0,
            (c1 - c0) as f64 / 1e6,
            t2 - t1,
            (c2 - c1) as f64 / 1e6,
            e.len(),
            e.suppressed().len(),
            active,
            expired
        );
        if !ok {
            eprintln!("unexpected counts, want {want:?}");
            std::process::exit(1);
        }
    }
    if mode == 2 {
        incremental(n, d, k);
    }
    print_hwm();
}

/// Replaces one active 100-resource part over and over (alternating two
/// generations with different content) and prints the mean on-CPU time.
fn incremental(n: usize, d: usize, k: usize) {
    use routerd_merge::Change;
    let s = synth::gen_merge(n, d, k);
    let now = s.now;
    let Ok(mut e) = Effective::build(Arc::new(Startup::new(s.startup)), s.parts, now) else {
        return;
    };
    let later = now + chrono::TimeDelta::hours(1);
    let a = synth::bench_part(0, k, now, later);
    let mut b = synth::bench_part(0, k, now, later);
    b.spec.generation += 1;
    for r in &mut b.spec.resources {
        if let Some(routerd_model::Spec::Interface(i)) = Some(&mut r.spec) {
            i.mtu = Some(1400);
        }
    }
    let rounds: u32 = 1000;
    // Parts are cloned before timing: a daemon receives them owned.
    let mut inputs: Vec<_> = (0..rounds)
        .map(|i| if i % 2 == 0 { b.clone() } else { a.clone() })
        .collect();
    inputs.reverse();
    let c0 = cpu_ns();
    let t0 = Instant::now();
    let mut changed = 0;
    while let Some(p) = inputs.pop() {
        if let Ok(cs) = e.apply(Change::Upsert(p)) {
            changed += cs.changed.len();
        }
    }
    let c1 = cpu_ns();
    println!(
        "incremental upsert of one {k}-resource part at N={n}: {:.1} us cpu, {:.1} us wall per op ({changed} changed ids)",
        (c1 - c0) as f64 / 1e3 / f64::from(rounds),
        t0.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
}

/// On-CPU time of this thread (first field of /proc/thread-self/schedstat):
/// the machine is shared, so wall time includes waiting for a core.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn print_hwm() {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        for l in s
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!("{l}");
        }
    }
}
