//! Namespace measurements (root): applying 10,000 routes to an empty table,
//! and replacing the selected default route. Run in release:
//! `cargo test --release -p routerd-render --test netns_perf -- --ignored --nocapture`.
//! The bounds asserted are loose sanity limits; docs/performance.md records
//! the measured numbers.

#![cfg(feature = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use routerd_render::ir::{Route, RouteKind};
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_render::{Dataplane, DesiredState, Ledger, Ownership, diff};

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
    let ns = Ns(format!("rdtperf{}{tag}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "pr0", "type", "veth", "peer", "name", "pr1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "pr0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "pr1", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", "pr0"]);
    ns
}

fn route(dst: Ipv4Addr, len: u8, gw: &str, table: u32) -> Route {
    let mut r = Route::new(
        table,
        ipnet::Ipv4Net::new(dst, len).unwrap().into(),
        0,
        RouteKind::Unicast,
    );
    r.gateway = Some(gw.parse().unwrap());
    r.device = Some("pr0".into());
    r.owner = "perf".into();
    r
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root: network namespaces"]
fn apply_10k_routes_to_an_empty_table() {
    let mut runs = Vec::new();
    let mut totals = Vec::new();
    for run in 0..5 {
        let ns = setup(&format!("a{run}"));
        let name = ns.0.clone();
        let (apply, total) = std::thread::spawn(move || {
            netns::enter(&name).unwrap();
            let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
            let mut d = DesiredState {
                routes: (0..10_000u32)
                    .map(|i| route(Ipv4Addr::from(0xC612_0000 + i), 32, "192.0.2.2", 100))
                    .collect(),
                ..DesiredState::default()
            };
            let _ = d.normalize();
            let t0 = Instant::now();
            let observed = dp.observe().unwrap();
            let plan = diff(&d, &observed, &Ledger::default());
            let t1 = Instant::now();
            dp.apply(&plan).unwrap();
            let apply = t1.elapsed();
            let total = t0.elapsed();
            assert_eq!(plan.ops.len(), 10_000);
            let after = dp.observe().unwrap();
            assert_eq!(
                after.routes.iter().filter(|r| r.table == 100).count(),
                10_000
            );
            (apply, total)
        })
        .join()
        .unwrap();
        runs.push(apply);
        totals.push(total);
    }
    let (m, t) = (median(runs.clone()), median(totals));
    println!("apply 10k routes: median {m:?} (runs {runs:?}); observe+diff+apply median {t:?}");
    assert!(m < Duration::from_secs(1), "{m:?}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn replace_selected_default_route() {
    let ns = setup("r");
    let name = ns.0.clone();
    let samples = std::thread::spawn(move || {
        netns::enter(&name).unwrap();
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let mut ledger = Ledger::default();
        let mut d = DesiredState {
            routes: vec![route(Ipv4Addr::UNSPECIFIED, 0, "192.0.2.2", 254)],
            ..DesiredState::default()
        };
        routerd_render::reconcile(&mut dp, &d, &mut ledger, &Default::default()).unwrap();
        let mut observed = dp.observe().unwrap();
        let mut samples = Vec::new();
        for i in 0..1000 {
            let gw = if i % 2 == 0 { "192.0.2.3" } else { "192.0.2.2" };
            // Decision: the selected gateway changes. From here to the
            // kernel's ACK is what an operator waits for.
            let t0 = Instant::now();
            d.routes[0].gateway = Some(gw.parse().unwrap());
            let plan = diff(&d, &observed, &ledger);
            dp.apply(&plan).unwrap();
            samples.push(t0.elapsed());
            assert_eq!(plan.ops.len(), 1);
            // The daemon learns the new state from its own apply.
            observed.routes[0] = d.routes[0].clone();
        }
        samples
    })
    .join()
    .unwrap();
    let mut s = samples.clone();
    s.sort();
    let p50 = s[s.len() / 2];
    let p99 = s[s.len() * 99 / 100];
    println!(
        "replace default route (decision → ACK): p50 {p50:?}, p99 {p99:?}, max {:?}",
        s[s.len() - 1]
    );
    assert!(p50 < Duration::from_millis(5), "{p50:?}");
}

/// 10,000 HybridRoute prefixes lowered through a `route` underlay, or the
/// same 10,000 prefixes as plain IPv4Routes: rendered from configuration
/// and applied into a fresh namespace, alternately, five times each.
/// Issue #16 asks the lowered install to be within 20 % of the IPv4Route
/// path; printed, not asserted (docs/performance.md records it).
#[test]
#[ignore = "needs root: network namespaces"]
fn lowered_and_plain_10k_routes_install_alike() {
    use std::fmt::Write as _;
    let prefix = |i: u32| format!("{}/24", Ipv4Addr::from(0x0A00_0000 + (i << 8)));
    let head = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: pr0}\nspec: {ifname: pr0}\n";
    let mut lowered = String::from(head);
    lowered.push_str("---\napiVersion: hybrid.routerd.net/v1alpha1\nkind: OverlayPeer\nmetadata: {name: dc}\nspec: {role: cloud, nodeID: dc1, underlay: {type: route, interface: pr0}}\n");
    for h in 0..100 {
        let cidrs: Vec<String> = (0..100).map(|j| prefix(h * 100 + j)).collect();
        let _ = write!(
            lowered,
            "---\napiVersion: hybrid.routerd.net/v1alpha1\nkind: HybridRoute\nmetadata: {{name: hr{h:03}}}\nspec: {{peerRef: dc, install: {{metric: 50}}, destinationCIDRs: [{}]}}\n",
            cidrs.join(", ")
        );
    }
    let mut plain = String::from(head);
    for i in 0..10_000 {
        let _ = write!(
            plain,
            "---\napiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {{name: r{i:05}}}\nspec: {{destination: {}, device: pr0, metric: 50}}\n",
            prefix(i)
        );
    }
    let desired = |yaml: &str| {
        let (loaded, diags) = routerd_model::load_and_validate(&[("c.yaml", yaml)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let (effective, _) = routerd_model::lower::with_lowered(loaded.resources);
        let r = routerd_render::render(&effective, &routerd_model::StateSnapshot::new());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.desired.routes.len(), 10_000);
        r.desired
    };
    let cases = [("lowered", desired(&lowered)), ("plain", desired(&plain))];
    let mut runs: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for run in 0..5 {
        for (k, (tag, d)) in cases.iter().enumerate() {
            let ns = setup(&format!("h{run}{k}"));
            let name = ns.0.clone();
            let d = d.clone();
            let apply = std::thread::spawn(move || {
                netns::enter(&name).unwrap();
                let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
                let observed = dp.observe().unwrap();
                let plan = diff(&d, &observed, &Ledger::default());
                let t = Instant::now();
                dp.apply(&plan).unwrap();
                let apply = t.elapsed();
                let after = dp.observe().unwrap();
                assert_eq!(
                    after.routes.iter().filter(|r| r.metric == 50).count(),
                    10_000
                );
                apply
            })
            .join()
            .unwrap();
            let _ = tag;
            runs[k].push(apply);
        }
    }
    let (l, p) = (median(runs[0].clone()), median(runs[1].clone()));
    println!(
        "install 10k routes: lowered median {l:?} (runs {:?}); IPv4Route median {p:?} (runs {:?}); ratio {:.2}",
        runs[0],
        runs[1],
        l.as_secs_f64() / p.as_secs_f64()
    );
    assert!(l < Duration::from_secs(2) && p < Duration::from_secs(2));
}
