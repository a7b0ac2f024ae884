//! Incremental evaluation (`SetState`, candidate-level reverse index and
//! cache) must give exactly what a full evaluation from the stored status
//! gives.

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
    fn incremental_equals_full(
        seed in any::<u64>(),
        extra in prop::sample::select(vec![
            json!({"hysteresis": "0s", "preemptDelay": "20s"}),
            json!({"hysteresis": "15s"}),
            json!({"hysteresis": "0s", "selection": "weighted-ecmp", "preemptDelay": "10s"}),
            json!({"mode": "priority", "hysteresis": "0s", "preempt": false}),
        ]),
    ) {
        let rs = world(12, &extra);
        let set = PolicySet::new(&rs);
        let opts = SelectOptions::default();
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        for h in 0..HCS {
            statuses.insert(id("HealthCheck", &format!("hc-{h}")), obj(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})));
        }
        // Track A: incremental. Track B: full evaluation from stored status.
        let mut state = set.new_state(&statuses);
        set.refresh(&mut state, &statuses, at(0), opts);
        for i in 0..set.len() {
            let o = set.evaluate(i, &statuses, &statuses, at(0), opts).unwrap();
            statuses.insert(set.id(i).unwrap().to_string(), o.status);
        }
        let mut s = seed;
        for step in 1..50i64 {
            let now = at(step * 7);
            let h = (lcg(&mut s) as usize) % HCS;
            let hc = id("HealthCheck", &format!("hc-{h}"));
            let st = match lcg(&mut s) % 3 {
                0 => json!({"phase": "Healthy", "lastCheckedAt": rfc(now)}),
                1 => json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(now)}),
                _ => json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(now)}),
            };
            statuses.insert(hc.clone(), obj(st));
            let inc = set.on_change(&mut state, [hc.as_str()], &statuses, now, opts);
            let affected = set.affected([hc.as_str()]);
            prop_assert_eq!(inc.iter().map(|(i, _)| *i).collect::<Vec<_>>(), affected.clone());
            for (i, e) in inc {
                let o = set.evaluate(i, &statuses, &statuses, now, opts).unwrap();
                prop_assert_eq!(state.status(i).unwrap(), &o.status, "step {} policy {}", step, i);
                prop_assert_eq!(e.status_changed, o.status_changed);
                prop_assert_eq!(e.selection_changed, o.selection_changed);
                prop_assert_eq!(&e.events, &o.events);
                prop_assert_eq!(&e.decision, &o.decision);
                statuses.insert(set.id(i).unwrap().to_string(), o.status);
            }
        }
    }
}
