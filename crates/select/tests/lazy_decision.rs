//! A terse incremental evaluation keeps what the decision record is made
//! of: `PolicySet::decision` must rebuild exactly the record a non-terse
//! evaluation returns, and terse evaluation must leave the same statuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use routerd_model::Status;
use routerd_select::{PolicySet, SelectOptions};
use serde_json::json;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn rebuilt_decision_equals_full(
        seed in any::<u64>(),
        extra in prop::sample::select(vec![
            json!({"hysteresis": "0s", "preemptDelay": "20s"}),
            json!({"hysteresis": "15s"}),
            json!({"hysteresis": "0s", "selection": "weighted-ecmp", "preemptDelay": "10s"}),
            json!({"mode": "priority", "hysteresis": "0s", "preempt": false}),
            json!({"mode": "priority", "hysteresis": "5s", "preemptDelay": "10s"}),
        ]),
    ) {
        let rs = world(12, &extra);
        let set = PolicySet::new(&rs);
        let full = SelectOptions::default();
        let terse = SelectOptions { terse: true, ..SelectOptions::default() };
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        for h in 0..HCS {
            statuses.insert(id("HealthCheck", &format!("hc-{h}")), obj(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})));
        }
        let mut a = set.new_state(&statuses);
        let mut b = set.new_state(&statuses);
        prop_assert!(set.decision(&a, 0).is_none());
        let fa = set.refresh(&mut a, &statuses, at(0), full);
        set.refresh(&mut b, &statuses, at(0), terse);
        for (i, e) in fa {
            prop_assert_eq!(set.decision(&a, i), Some(e.decision.clone()));
            prop_assert_eq!(set.decision(&b, i), Some(e.decision.clone()));
        }
        let mut s = seed;
        for step in 1..50i64 {
            let now = at(step * 7);
            let h = (lcg(&mut s) as usize) % HCS;
            let hc = id("HealthCheck", &format!("hc-{h}"));
            let st = match lcg(&mut s) % 4 {
                0 => json!({"phase": "Healthy", "lastCheckedAt": rfc(now)}),
                1 => json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(now)}),
                2 => json!({"phase": "Disabled"}),
                _ => json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(now)}),
            };
            statuses.insert(hc.clone(), obj(st));
            let fa = set.on_change(&mut a, [hc.as_str()], &statuses, now, full);
            let tb = set.on_change(&mut b, [hc.as_str()], &statuses, now, terse);
            prop_assert_eq!(fa.len(), tb.len());
            for ((i, e), (j, t)) in fa.into_iter().zip(tb) {
                prop_assert_eq!(i, j);
                prop_assert_eq!(a.status(i), b.status(i), "step {} policy {}", step, i);
                prop_assert_eq!(e.status_changed, t.status_changed);
                prop_assert_eq!(e.selection_changed, t.selection_changed);
                prop_assert_eq!(&e.events, &t.events);
                prop_assert_eq!(e.decision.rule, t.decision.rule);
                prop_assert_eq!(set.decision(&a, i), Some(e.decision.clone()));
                prop_assert_eq!(set.decision(&b, i), Some(e.decision.clone()), "step {} policy {}", step, i);
            }
            if step % 10 == 0 {
                let later = now + chrono::TimeDelta::seconds(200);
                let fa = set.refresh(&mut a, &statuses, later, full);
                set.refresh(&mut b, &statuses, later, terse);
                for (i, e) in fa {
                    prop_assert_eq!(a.status(i), b.status(i));
                    prop_assert_eq!(set.decision(&b, i), Some(e.decision.clone()));
                }
            }
        }
    }
}
