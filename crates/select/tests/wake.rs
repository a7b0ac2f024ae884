//! `Evaluation::wake_at` is a sound bound: with no new observation, a
//! policy evaluated again at any instant before its wake-up comes out the
//! same. A daemon that sleeps until then misses nothing, and the bound is
//! not vacuous: holds and staleness do produce wake-ups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use chrono::TimeDelta;
use common::*;
use proptest::prelude::*;
use routerd_model::Status;
use routerd_select::{PolicySet, SelectOptions};
use serde_json::json;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn nothing_changes_before_the_wake_up(
        seed in any::<u64>(),
        extra in prop::sample::select(vec![
            json!({"hysteresis": "0s", "preemptDelay": "20s"}),
            json!({"hysteresis": "15s"}),
            json!({"hysteresis": "0s", "selection": "weighted-ecmp", "preemptDelay": "10s"}),
            json!({"mode": "priority", "hysteresis": "5s", "preemptDelay": "10s"}),
        ]),
    ) {
        let rs = world(12, &extra);
        let set = PolicySet::new(&rs);
        let opts = SelectOptions { terse: true, ..SelectOptions::default() };
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        for h in 0..HCS {
            statuses.insert(id("HealthCheck", &format!("hc-{h}")), obj(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})));
        }
        let mut state = set.new_state(&statuses);
        set.refresh(&mut state, &statuses, at(0), opts);
        let mut s = seed;
        let mut wakes = 0;
        for step in 1..40i64 {
            let now = at(step * 3);
            let h = (lcg(&mut s) as usize) % HCS;
            let hc = id("HealthCheck", &format!("hc-{h}"));
            let st = match lcg(&mut s) % 3 {
                0 => json!({"phase": "Healthy", "lastCheckedAt": rfc(now)}),
                1 => json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(now)}),
                _ => json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(now)}),
            };
            statuses.insert(hc.clone(), obj(st));
            for (i, e) in set.on_change(&mut state, [hc.as_str()], &statuses, now, opts) {
                let limit = now + TimeDelta::seconds(600);
                let wake = e.wake_at.unwrap_or(limit).min(limit);
                prop_assert!(wake > now, "a wake-up lies in the future");
                wakes += usize::from(e.wake_at.is_some());
                // Just before the wake-up, nothing has moved.
                let probe = wake - TimeDelta::milliseconds(1);
                let mut copy = state.clone();
                let before = copy.status(i).cloned();
                let again = set.refresh_some(&mut copy, &[i], &statuses, probe, opts);
                prop_assert_eq!(again.len(), 1);
                prop_assert!(!again[0].1.selection_changed, "step {} policy {}: selection moved before {:?}", step, i, e.wake_at);
                prop_assert_eq!(copy.status(i).cloned(), before, "step {} policy {}", step, i);
            }
        }
        prop_assert!(wakes > 0, "holds and health freshness must produce wake-ups");
    }
}

/// A hold's end is the wake-up: preemptDelay keeps a recovered better
/// candidate out until it has been ready for the delay, and the evaluation
/// says exactly when that is; re-evaluated then, it preempts.
#[test]
fn a_preempt_delay_wakes_the_policy_when_it_ends() {
    let mut sim = Sim::two(json!({"hysteresis": "0s", "preemptDelay": "30s"}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    let o = sim.step(at(0));
    assert_eq!(selected(&o), Some("primary"));
    sim.down("hc-primary", at(10));
    let o = sim.step(at(10));
    assert_eq!(selected(&o), Some("backup"));
    sim.healthy("hc-primary", at(20));
    let o = sim.step(at(20));
    assert_eq!(selected(&o), Some("backup"), "held by preemptDelay");
    assert_eq!(
        o.wake_at,
        Some(at(50)),
        "the hold ends 30 s after primary is ready again"
    );
    sim.healthy("hc-primary", at(50));
    sim.healthy("hc-backup", at(50));
    let o = sim.step(at(50));
    assert_eq!(
        selected(&o),
        Some("primary"),
        "preempts once the delay is served"
    );
}
