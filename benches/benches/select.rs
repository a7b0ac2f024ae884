//! Selection benchmarks with the input shapes of bench-inputs.md:
//! `GenCandidates(C)` for the pure argmax, `GenPolicySet(P, C, H, hcFirst)`
//! for one policy end to end and for a 1,000-policy set after one health
//! change. Documented winners are checked before timing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use routerd_benches::CpuTime;
use routerd_model::{Resource, Spec, Status};
use routerd_select::time::format_rfc3339_nano;
use routerd_select::{CandidateState, PolicySet, SelectOptions, best_ready};
use serde_json::json;

const NET: &str = "net.routerd.net/v1alpha1";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-29T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// `GenCandidates(C)`.
fn gen_candidates(c: usize) -> Vec<CandidateState> {
    (0..c)
        .map(|i| CandidateState {
            name: format!("c-{i:04}"),
            source: format!("Link/uplink-{i:04}"),
            device: format!("wan{i}"),
            gateway: format!("192.0.2.{}", i % 254 + 1),
            gateway_source: "static".into(),
            route_table: 100 + i as i64,
            metric: 10 * (i as i64 + 1),
            weight: ((i * 37) % 16) as i64,
            priority: ((i * 11) % 7) as i64,
            index: i,
            ready: i % 4 != 3,
            disabled: false,
        })
        .collect()
}

/// `GenPolicySet(P, C, H, hcFirst)`: resources and the status store.
fn gen_policy_set(
    p: usize,
    c: usize,
    h: usize,
    hc_first: bool,
) -> (Vec<Resource>, HashMap<String, Status>) {
    let hcs: Vec<Resource> = (0..h)
        .map(|i| {
            let spec = serde_json::from_value(json!({
                "type": "ping", "target": format!("198.51.100.{}", i % 254 + 1),
                "interval": "10s", "timeout": "1s", "unhealthyThreshold": 3
            }))
            .unwrap();
            Resource::new(format!("hc-{i:03}"), Spec::HealthCheck(spec))
        })
        .collect();
    let policies: Vec<Resource> = (0..p)
        .map(|pi| {
            let cands: Vec<_> = (0..c)
                .map(|j| {
                    json!({
                        "name": format!("p{pi:04}-c{j}"),
                        "source": format!("Link/uplink-{j:03}"),
                        "deviceFrom": {"resource": format!("Link/uplink-{j:03}"), "field": "ifname"},
                        "gateway": format!("192.0.2.{}", j + 1),
                        "gatewaySource": "static",
                        "routeTable": 100 + j,
                        "metric": 10 * (j + 1),
                        "weight": 10 * (c - j),
                        "priority": j,
                        "healthCheck": format!("hc-{:03}", (pi + j) % h),
                    })
                })
                .collect();
            let spec = serde_json::from_value(json!({
                "family": "ipv4",
                "destinationCIDRs": [format!("10.{}.{}.0/24", pi / 256, pi % 256)],
                "selection": "highest-weight-ready",
                "hysteresis": "0s",
                "candidates": cands,
            }))
            .unwrap();
            Resource::new(format!("egress-{pi:04}"), Spec::EgressRoutePolicy(spec))
        })
        .collect();
    let resources = if hc_first {
        hcs.into_iter().chain(policies).collect()
    } else {
        policies.into_iter().chain(hcs).collect()
    };
    let mut store = HashMap::new();
    for j in 0..c {
        store.insert(
            format!("{NET}/Link/uplink-{j:03}"),
            obj(json!({"phase": "Up", "ifname": format!("wan{j}")})),
        );
    }
    for i in 0..h {
        store.insert(format!("{NET}/HealthCheck/hc-{i:03}"), hc_status(true));
    }
    (resources, store)
}

fn obj(v: serde_json::Value) -> Status {
    v.as_object().cloned().unwrap()
}

fn hc_status(healthy: bool) -> Status {
    let checked = format_rfc3339_nano(now() - TimeDelta::seconds(5));
    if healthy {
        obj(json!({"phase": "Healthy", "consecutiveFailed": 0, "lastCheckedAt": checked}))
    } else {
        obj(json!({"phase": "Failing", "consecutiveFailed": 3, "lastCheckedAt": checked}))
    }
}

fn pure_selection<M: Measurement>(cr: &mut Criterion<M>) {
    let mut g = cr.benchmark_group(group::<M>("select/best_ready"));
    for (c, ready, winner) in [
        (2, 2, "c-0001"),
        (8, 6, "c-0006"),
        (64, 48, "c-0006"),
        (1024, 768, "c-0070"),
    ] {
        let cands = gen_candidates(c);
        assert_eq!(cands.iter().filter(|x| x.ready).count(), ready);
        assert_eq!(best_ready(&cands).unwrap().name, winner, "C={c}");
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("C={c}")),
            &cands,
            |b, cs| b.iter(|| best_ready(black_box(cs)).map(|w| w.index)),
        );
    }
    g.finish();
}

/// One policy reconciled in place with nothing changed (the steady state of
/// every periodic reconcile).
fn single_policy<M: Measurement>(cr: &mut Criterion<M>) {
    let mut g = cr.benchmark_group(group::<M>("select/policy"));
    for c in [2, 8, 64, 1024] {
        let (resources, store) = gen_policy_set(1, c, 32, true);
        let set = PolicySet::new(&resources);
        let obs = set.observe(0, &store);
        let mut status = Status::new();
        set.evaluate_in_place(0, &obs, &mut status, now(), SelectOptions::default())
            .unwrap();
        assert_eq!(status["selectedCandidate"], "p0000-c0");
        g.bench_function(BenchmarkId::from_parameter(format!("C={c}")), |b| {
            b.iter(|| {
                let obs = set.observe(0, &store);
                set.evaluate_in_place(0, &obs, &mut status, now(), SelectOptions::default())
            })
        });
        if c == 8 {
            g.bench_function("C=8/observe-only", |b| b.iter(|| set.observe(0, &store)));
            let obs = set.observe(0, &store);
            let terse = SelectOptions {
                terse: true,
                ..SelectOptions::default()
            };
            g.bench_function("C=8/select-only/terse", |b| {
                b.iter(|| set.evaluate_in_place(0, &obs, &mut status, now(), terse))
            });
        }
    }
    g.finish();
}

fn evaluate_all(
    set: &PolicySet,
    store: &mut HashMap<String, Status>,
    opts: SelectOptions,
) -> usize {
    let mut events = 0;
    for i in 0..set.len() {
        events += step(set, store, i, opts);
    }
    events
}

/// Evaluates policy `i` in place in `store`; returns the number of events.
fn step(
    set: &PolicySet,
    store: &mut HashMap<String, Status>,
    i: usize,
    opts: SelectOptions,
) -> usize {
    let obs = set.observe(i, store);
    let id = set.id(i).unwrap();
    let status = store.get_mut(id).unwrap();
    set.evaluate_in_place(i, &obs, status, now(), opts)
        .unwrap()
        .events
        .len()
}

/// One op = toggle hc-000, then `PolicySet::on_change`: the candidates that
/// read hc-000 are observed and assessed again (candidate-level reverse
/// index), and only their policies are evaluated, statuses patched in place.
/// `/terse` leaves the decision record to `PolicySet::decision`, which
/// rebuilds the full record on demand (checked before timing).
fn policy_set<M: Measurement>(cr: &mut Criterion<M>) {
    let mut g = cr.benchmark_group(group::<M>("select/policy_set_after_health_change"));
    for (c, terse) in [(2, false), (8, false), (8, true)] {
        let opts = SelectOptions {
            terse,
            ..SelectOptions::default()
        };
        let (resources, mut store) = gen_policy_set(1000, c, 32, true);
        let set = PolicySet::new(&resources);
        let mut state = set.new_state(&store);
        set.refresh(&mut state, &store, now(), opts);
        set.refresh(&mut state, &store, now(), opts);
        let hc0 = format!("{NET}/HealthCheck/hc-000");
        if terse {
            // The terse record is enough on the hot path because the full
            // one can be rebuilt on demand: check it against a non-terse
            // evaluation of the same two toggles.
            let full = SelectOptions::default();
            let mut shadow = set.new_state(&store);
            set.refresh(&mut shadow, &store, now(), full);
            set.refresh(&mut shadow, &store, now(), full);
            for healthy in [false, true] {
                store.insert(hc0.clone(), hc_status(healthy));
                let want = set.on_change(&mut shadow, [hc0.as_str()], &store, now(), full);
                let got = set.on_change(&mut state, [hc0.as_str()], &store, now(), opts);
                assert_eq!(want.len(), got.len());
                for (i, e) in &want {
                    assert_eq!(set.decision(&state, *i).as_ref(), Some(&e.decision));
                    assert_eq!(state.status(*i), shadow.status(*i));
                }
            }
        }
        let affected = set.affected([hc0.as_str()]);
        let mut healthy = true;
        let mut events = None;
        let label = if terse { "/terse" } else { "" };
        g.bench_function(
            BenchmarkId::from_parameter(format!(
                "P=1000/C={c}/H=32/hcFirst/affected={}{label}",
                affected.len()
            )),
            |b| {
                b.iter(|| {
                    healthy = !healthy;
                    store.insert(hc0.clone(), hc_status(healthy));
                    let out = set.on_change(&mut state, [hc0.as_str()], &store, now(), opts);
                    events = Some(out.iter().map(|(_, e)| e.events.len()).sum::<usize>());
                })
            },
        );
        // Every policy selects candidate 0, or candidate 1 when candidate 0's
        // check is hc-000 and hc-000 is failing.
        for i in (0..set.len()).filter(|_| events.is_some()) {
            let st = state.status(i).unwrap();
            let want = if !healthy && i % 32 == 0 { 1 } else { 0 };
            assert_eq!(
                st["selectedCandidate"],
                format!("p{i:04}-c{want}"),
                "policy {i}"
            );
        }
        if let Some(events) = events {
            assert_eq!(events, 32, "32 policies change selection per toggle");
        }
        if terse {
            // What `routerctl explain` pays for one policy's full record.
            g.bench_function("P=1000/C=8/decision-on-demand", |b| {
                b.iter(|| set.decision(&state, black_box(0)))
            });
        }
    }
    g.finish();

    // Without candidate-level caching: the dependents (through the policy
    // reverse index) are observed in one batch and evaluated whole.
    let mut g = cr.benchmark_group(group::<M>(
        "select/policy_set_after_health_change_whole_policies",
    ));
    let (resources, mut store) = gen_policy_set(1000, 8, 32, true);
    let set = PolicySet::new(&resources);
    for i in 0..set.len() {
        store.insert(set.id(i).unwrap().to_string(), Status::new());
    }
    evaluate_all(&set, &mut store, SelectOptions::default());
    let hc0 = format!("{NET}/HealthCheck/hc-000");
    let mut healthy = true;
    g.bench_function("P=1000/C=8/H=32", |b| {
        b.iter(|| {
            healthy = !healthy;
            store.insert(hc0.clone(), hc_status(healthy));
            let affected = set.affected([hc0.as_str()]);
            let observed = set.observe_many(&affected, &store);
            for (&i, obs) in affected.iter().zip(&observed) {
                let status = store.get_mut(set.id(i).unwrap()).unwrap();
                set.evaluate_in_place(i, obs, status, now(), SelectOptions::default());
            }
        })
    });
    g.finish();

    // The same toggle with every policy re-evaluated (routerd's approach),
    // to show what the reverse index saves.
    let mut g = cr.benchmark_group(group::<M>("select/policy_set_full_reevaluation"));
    let (resources, mut store) = gen_policy_set(1000, 8, 32, true);
    let set = PolicySet::new(&resources);
    for i in 0..set.len() {
        store.insert(set.id(i).unwrap().to_string(), Status::new());
    }
    evaluate_all(&set, &mut store, SelectOptions::default());
    let hc0 = format!("{NET}/HealthCheck/hc-000");
    let mut healthy = true;
    g.bench_function("P=1000/C=8/H=32", |b| {
        b.iter(|| {
            healthy = !healthy;
            store.insert(hc0.clone(), hc_status(healthy));
            evaluate_all(&set, &mut store, SelectOptions::default())
        })
    });
    g.finish();
}

/// Whether `M` is the CPU-time measurement (reported next to wall-clock,
/// never instead of it).
fn is_cpu_time<M: Measurement>() -> bool {
    std::any::type_name::<M>().ends_with("CpuTime")
}

/// Group names carry the measurement, so wall-clock and CPU-time results
/// are stored (and compared between runs) separately.
fn group<M: Measurement>(name: &str) -> String {
    if is_cpu_time::<M>() {
        format!("cpu/{name}")
    } else {
        name.to_string()
    }
}

fn cpu_time() -> Criterion<CpuTime> {
    Criterion::default().with_measurement(CpuTime)
}

criterion_group!(benches, pure_selection, single_policy, policy_set);
criterion_group! {
    name = cpu;
    config = cpu_time();
    targets = pure_selection, single_policy, policy_set
}
criterion_main!(benches, cpu);
