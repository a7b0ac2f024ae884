//! Properties of selection over random candidate sets and histories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use proptest::prelude::*;
use routerd_model::Status;
use routerd_select::observe::{CandidateObservation, HealthObservation};
use routerd_select::{Outcome, PolicyInput, SelectOptions, select};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Cand {
    weight: i64,
    priority: i64,
    enabled: bool,
    device: bool,
    /// 0 healthy, 1 grace, 2 unhealthy, 3 stale, 4 no health check
    health: u8,
}

fn cand() -> impl Strategy<Value = Cand> {
    (
        0i64..4,
        0i64..3,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        0u8..5,
    )
        .prop_map(|(weight, priority, enabled, device, health)| Cand {
            weight,
            priority,
            enabled,
            device,
            health,
        })
}

fn policy(
    cands: &[Cand],
    names: &[String],
    extra: &Value,
) -> routerd_model::spec::EgressRoutePolicySpec {
    let cs: Vec<Value> = cands
        .iter()
        .zip(names)
        .map(|(c, n)| {
            let mut v = json!({"name": n, "weight": c.weight, "priority": c.priority, "enabled": c.enabled});
            if c.device {
                v["device"] = json!(format!("dev-{n}"));
            }
            if c.health != 4 {
                v["healthCheck"] = json!(format!("hc-{n}"));
            }
            v
        })
        .collect();
    let mut p = json!({"candidates": cs});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    policy_spec(p)
}

fn observations(cands: &[Cand], names: &[String]) -> Vec<CandidateObservation> {
    cands
        .iter()
        .zip(names)
        .map(|(c, n)| {
            let status = match c.health {
                0 => Some(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})),
                1 => Some(json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(at(0))})),
                2 => Some(json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(at(0))})),
                3 => Some(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(-3600))})),
                _ => None,
            };
            CandidateObservation {
                health: status.map(|s| HealthObservation::from_status(&format!("hc-{n}"), None, Some(&obj(s)))),
                ..CandidateObservation::default()
            }
        })
        .collect()
}

fn run(
    spec: &routerd_model::spec::EgressRoutePolicySpec,
    obs: &[CandidateObservation],
    previous: Option<&Status>,
    now_secs: i64,
) -> Outcome {
    select(&PolicyInput {
        api_version: NET,
        name: "p",
        spec,
        observations: obs,
        previous,
        now: at(now_secs),
        options: SelectOptions::default(),
    })
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

fn extra() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["0s", "30s"]),
        prop::sample::select(vec!["0s", "1m"]),
        any::<bool>(),
        prop::sample::select(vec!["", "priority"]),
        prop::sample::select(vec!["highest-weight-ready", "weighted-ecmp"]),
    )
        .prop_map(|(h, d, preempt, mode, sel)| {
            let mut v =
                json!({"hysteresis": h, "preemptDelay": d, "preempt": preempt, "selection": sel});
            if !mode.is_empty() {
                v["mode"] = json!(mode);
            }
            v
        })
}

fn winner_is_ready(o: &Outcome) -> Result<(), TestCaseError> {
    if let Some(name) = o.status.get("selectedCandidate").and_then(Value::as_str) {
        let c = o.decision.candidates.iter().find(|c| c.name == name);
        prop_assert!(c.is_some_and(|c| c.ready), "winner {name} not ready");
        for m in &o.decision.members {
            let c = o.decision.candidates.iter().find(|c| c.name == m.name);
            prop_assert!(c.is_some_and(|c| c.ready), "member {} not ready", m.name);
        }
    } else {
        prop_assert!(
            o.decision.candidates.iter().all(|c| !c.ready)
                || o.status["reason"] == "UnsupportedSelection"
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_winner_is_always_ready(
        first in prop::collection::vec(cand(), 1..8),
        second in prop::collection::vec(cand(), 8),
        extra in extra(),
        gap in 0i64..120,
    ) {
        let n = names(first.len());
        let spec = policy(&first, &n, &extra);
        let o1 = run(&spec, &observations(&first, &n), None, 0);
        winner_is_ready(&o1)?;
        // A later evaluation with different health, from that history.
        let later: Vec<Cand> = first
            .iter()
            .zip(&second)
            .map(|(a, b)| Cand { health: b.health, ..a.clone() })
            .collect();
        let o2 = run(&spec, &observations(&later, &n), Some(&o1.status), gap);
        winner_is_ready(&o2)?;
    }

    #[test]
    fn candidate_order_does_not_matter_beyond_the_tie_breaks(
        cands in prop::collection::vec(cand(), 1..8),
        extra in extra(),
        seed in any::<u64>(),
    ) {
        let n = names(cands.len());
        let spec = policy(&cands, &n, &extra);
        let o = run(&spec, &observations(&cands, &n), None, 0);
        // Shuffle deterministically (names stay unique, so index never decides).
        let mut order: Vec<usize> = (0..cands.len()).collect();
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (s >> 33) as usize % (i + 1);
            order.swap(i, j);
        }
        let c2: Vec<Cand> = order.iter().map(|&i| cands[i].clone()).collect();
        let n2: Vec<String> = order.iter().map(|&i| n[i].clone()).collect();
        let spec2 = policy(&c2, &n2, &extra);
        let o2 = run(&spec2, &observations(&c2, &n2), None, 0);
        prop_assert_eq!(o.status.get("selectedCandidate"), o2.status.get("selectedCandidate"));
        prop_assert_eq!(o.status.get("members"), o2.status.get("members"));
        prop_assert_eq!(&o.decision.rule, &o2.decision.rule);
    }

    #[test]
    fn nothing_changed_means_no_event_and_the_same_status(
        cands in prop::collection::vec(cand(), 1..8),
        extra in extra(),
        gap in 0i64..60,
    ) {
        let n = names(cands.len());
        let spec = policy(&cands, &n, &extra);
        let obs = observations(&cands, &n);
        let first = run(&spec, &obs, None, 0);
        // Same observations a little later: hold-downs and dwell may expire,
        // so evaluate until the result settles, then once more.
        let mut prev = first.status.clone();
        let mut settled = None;
        for t in [gap, gap + 60, gap + 61] {
            let o = run(&spec, &obs, Some(&prev), t);
            prev = o.status.clone();
            settled = Some(o);
        }
        let settled = settled.unwrap();
        let again = run(&spec, &obs, Some(&settled.status), gap + 61);
        prop_assert!(again.events.is_empty());
        prop_assert!(!again.status_changed);
        prop_assert!(!again.selection_changed);
        prop_assert_eq!(again.status, settled.status);
    }
}
