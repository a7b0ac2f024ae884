#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Namespace measurements (root) of whole reconcile steps with 10,000
//! IPv4Routes on the real dataplane and a sled store: the first apply, a
//! clean full step, and a full step while one owner among the 10,000 is
//! refused by the kernel. Run in release:
//! `cargo test --release -p routerd --test netns_step_perf -- --ignored --nocapture --test-threads=1`.
//! Bounds asserted are loose sanity limits; docs/performance.md records the
//! measured medians.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use routerd_engine::core::Core;
use routerd_engine::daemon::load_config;
use routerd_render::Ownership;
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_store::Store;

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    assert!(
        Command::new("ip").args(args).status().unwrap().success(),
        "ip {args:?}"
    );
}

fn setup(tag: &str) -> Ns {
    let ns = Ns(format!("rdtstep{}{tag}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "pr0", "type", "veth", "peer", "name", "pr1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "pr0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "pr1", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", "pr0"]);
    ns
}

/// 10,000 host routes via an on-link gateway, plus `broken` routes whose
/// gateway is not on-link (the kernel refuses them).
fn config(broken: usize) -> String {
    let mut s = String::from(
        "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: perf}\nspec:\n  resources:\n",
    );
    for i in 0..10_000u32 {
        let _ = writeln!(
            s,
            "    - {{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, metadata: {{name: r{i}}}, spec: {{destination: 198.18.{}.{}/32, device: pr0, gateway: 192.0.2.2}}}}",
            i / 256,
            i % 256
        );
    }
    for i in 0..broken {
        let _ = writeln!(
            s,
            "    - {{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, metadata: {{name: broken{i}}}, spec: {{destination: 198.19.0.{i}/32, device: pr0, gateway: 203.0.113.9}}}}"
        );
    }
    s
}

/// Repetitions: the measurement wants release and many runs; the test
/// suite (debug, CI) only checks the path works.
const RUNS: usize = if cfg!(debug_assertions) { 1 } else { 3 };
const STEADY: usize = if cfg!(debug_assertions) { 2 } else { 15 };

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs `f` on a thread inside namespace `ns`.
fn inside<T: Send + 'static>(ns: &Ns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.0.clone();
    std::thread::spawn(move || {
        netns::enter(&name).unwrap();
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// (first step, clean full steps, faults after the last step).
fn measure(tag: &str, broken: usize) -> (Duration, Vec<Duration>, usize) {
    let ns = setup(tag);
    let text = config(broken);
    inside(&ns, move || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sled(&dir.path().join("store")).unwrap();
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let mut core = Core::new(load_config("perf.yaml", &text).unwrap());
        let t0 = Instant::now();
        let r = core.step(&mut dp, &store, Utc::now()).unwrap();
        let first = t0.elapsed();
        assert!(r.applied_ops >= 10_000, "{}", r.applied_ops);
        let mut steady = Vec::new();
        let mut faults = 0;
        for _ in 0..STEADY {
            core.request_full();
            let t = Instant::now();
            let r = core.step(&mut dp, &store, Utc::now()).unwrap();
            steady.push(t.elapsed());
            faults = r.faults.len();
        }
        (first, steady, faults)
    })
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_step_with_ten_thousand_routes_and_one_refused_owner() {
    let mut firsts = Vec::new();
    let mut clean = Vec::new();
    for run in 0..RUNS {
        let (first, steady, faults) = measure(&format!("c{run}"), 0);
        assert_eq!(faults, 0);
        firsts.push(first);
        clean.extend(steady);
    }
    let mut failing = Vec::new();
    for run in 0..RUNS {
        let (_, steady, faults) = measure(&format!("f{run}"), 1);
        assert_eq!(faults, 1, "the refused owner is reported");
        failing.extend(steady);
    }
    let (f, c, x) = (median(firsts.clone()), median(clean), median(failing));
    println!(
        "first step applying 10k routes: median {f:?} (runs {firsts:?}); clean full step: median {c:?}; full step with one refused owner: median {x:?}"
    );
    assert!(f < Duration::from_secs(10), "{f:?}");
    assert!(x < Duration::from_secs(10), "{x:?}");
}
