//! The incremental, terse and wake-up machinery stays exact with the parts
//! of the availability rule that read links and targets: worlds of
//! multi-target candidates over interfaces and DS-Lite tunnels whose
//! statuses (carrier, tunnel phase) and health checks change at random.
//!
//! * incremental evaluation equals a full evaluation from the stored status;
//! * a terse evaluation's record rebuilt on demand equals the full record;
//! * with nothing new observed, nothing moves before `wake_at` (target holds
//!   included).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use chrono::TimeDelta;
use common::*;
use proptest::prelude::*;
use routerd_model::{Resource, Spec, Status};
use routerd_select::{PolicySet, SelectOptions};
use serde_json::{Value, json};

const LINKS: [(&str, &str); 5] = [
    ("Interface", "if-0"),
    ("Interface", "if-1"),
    ("Interface", "if-2"),
    ("DSLiteTunnel", "ds-0"),
    ("DSLiteTunnel", "ds-1"),
];

fn res(kind: &str, name: &str, spec: Value) -> Resource {
    serde_json::from_value(json!({
        "apiVersion": NET, "kind": kind, "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// `policies` policies: a candidate with three targets, a plain candidate
/// on a tunnel and one on an interface, over `HCS` checks.
fn target_world(policies: usize, extra: &Value) -> Vec<Resource> {
    let mut rs: Vec<Resource> = (0..HCS)
        .map(|h| {
            Resource::new(
                format!("hc-{h}"),
                Spec::HealthCheck(hc_spec(json!({"interval": "10s", "timeout": "1s"}))),
            )
        })
        .collect();
    rs.push(res("Interface", "uplink", json!({"ifname": "uplink"})));
    for (kind, name) in LINKS {
        rs.push(if kind == "Interface" {
            res(kind, name, json!({"ifname": name}))
        } else {
            res(
                kind,
                name,
                json!({"interface": "uplink", "tunnelName": name, "aftrIPv6": "2001:db8::1"}),
            )
        });
    }
    for p in 0..policies {
        let hc = |k: usize| format!("hc-{}", (p + k) % HCS);
        let mut spec = json!({"mode": "hash", "hashFields": ["sourceAddress"], "candidates": [
            {"name": format!("p{p}-spread"), "weight": 30, "targets": [
                {"interface": "if-0", "mark": 1, "table": 101, "priority": 101, "healthCheck": hc(0)},
                {"name": "via-ds", "interface": "ds-0", "mark": 2, "table": 102, "priority": 102, "healthCheck": hc(1)},
                {"interface": "if-1", "mark": 3, "table": 103, "priority": 103}
            ]},
            {"name": format!("p{p}-tunnel"), "interface": "ds-1", "weight": 20, "healthCheck": hc(2)},
            {"name": format!("p{p}-wire"), "interface": "if-2", "weight": 10}
        ]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        rs.push(Resource::new(
            format!("egress-{p}"),
            Spec::EgressRoutePolicy(policy_spec(spec)),
        ));
    }
    rs
}

/// Changes one status at random and returns its id.
fn perturb(
    s: &mut u64,
    statuses: &mut BTreeMap<String, Status>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    if lcg(s).is_multiple_of(2) {
        let h = (lcg(s) as usize) % HCS;
        let key = id("HealthCheck", &format!("hc-{h}"));
        let st = match lcg(s) % 4 {
            0 => json!({"phase": "Healthy", "lastCheckedAt": rfc(now)}),
            1 => json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(now)}),
            2 => json!({"phase": "Disabled"}),
            _ => json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(now)}),
        };
        statuses.insert(key.clone(), obj(st));
        key
    } else {
        let (kind, name) = LINKS[(lcg(s) as usize) % LINKS.len()];
        let key = id(kind, name);
        match lcg(s) % 3 {
            0 => {
                statuses.remove(&key);
            }
            1 => {
                statuses.insert(
                    key.clone(),
                    obj(json!({"phase": "Down", "reason": "NoCarrier"})),
                );
            }
            _ => {
                statuses.insert(key.clone(), obj(json!({"phase": "Up"})));
            }
        }
        key
    }
}

fn start() -> BTreeMap<String, Status> {
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    for h in 0..HCS {
        statuses.insert(
            id("HealthCheck", &format!("hc-{h}")),
            obj(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})),
        );
    }
    for (kind, name) in LINKS {
        statuses.insert(id(kind, name), obj(json!({"phase": "Up"})));
    }
    statuses
}

fn extras() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!({"hysteresis": "0s", "preemptDelay": "20s"}),
        json!({"hysteresis": "15s"}),
        json!({"hysteresis": "0s", "preempt": false}),
        json!({"mode": "priority", "hysteresis": "5s", "preemptDelay": "10s"}),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn incremental_equals_full_with_targets_and_links(seed in any::<u64>(), extra in extras()) {
        let rs = target_world(6, &extra);
        let set = PolicySet::new(&rs);
        let opts = SelectOptions::default();
        let mut statuses = start();
        let mut state = set.new_state(&statuses);
        set.refresh(&mut state, &statuses, at(0), opts);
        for i in 0..set.len() {
            let o = set.evaluate(i, &statuses, &statuses, at(0), opts).unwrap();
            statuses.insert(set.id(i).unwrap().to_string(), o.status);
        }
        let mut s = seed;
        for step in 1..50i64 {
            let now = at(step * 7);
            let changed = perturb(&mut s, &mut statuses, now);
            let inc = set.on_change(&mut state, [changed.as_str()], &statuses, now, opts);
            prop_assert_eq!(inc.iter().map(|(i, _)| *i).collect::<Vec<_>>(), set.affected([changed.as_str()]));
            for (i, e) in inc {
                let o = set.evaluate(i, &statuses, &statuses, now, opts).unwrap();
                prop_assert_eq!(state.status(i).unwrap(), &o.status, "step {} policy {}", step, i);
                prop_assert_eq!(e.status_changed, o.status_changed);
                prop_assert_eq!(e.selection_changed, o.selection_changed);
                prop_assert_eq!(&e.decision, &o.decision);
                prop_assert_eq!(e.wake_at, o.wake_at);
                statuses.insert(set.id(i).unwrap().to_string(), o.status);
            }
        }
    }

    #[test]
    fn rebuilt_decision_equals_full_with_targets_and_links(seed in any::<u64>(), extra in extras()) {
        let rs = target_world(6, &extra);
        let set = PolicySet::new(&rs);
        let full = SelectOptions::default();
        let terse = SelectOptions { terse: true, ..SelectOptions::default() };
        let mut statuses = start();
        let mut a = set.new_state(&statuses);
        let mut b = set.new_state(&statuses);
        set.refresh(&mut a, &statuses, at(0), full);
        set.refresh(&mut b, &statuses, at(0), terse);
        let mut s = seed;
        for step in 1..50i64 {
            let now = at(step * 7);
            let changed = perturb(&mut s, &mut statuses, now);
            let fa = set.on_change(&mut a, [changed.as_str()], &statuses, now, full);
            let tb = set.on_change(&mut b, [changed.as_str()], &statuses, now, terse);
            prop_assert_eq!(fa.len(), tb.len());
            for ((i, e), (j, t)) in fa.into_iter().zip(tb) {
                prop_assert_eq!(i, j);
                prop_assert_eq!(a.status(i), b.status(i), "step {} policy {}", step, i);
                prop_assert_eq!(e.selection_changed, t.selection_changed);
                prop_assert_eq!(set.decision(&b, i), Some(e.decision.clone()), "step {} policy {}", step, i);
            }
        }
    }

    #[test]
    fn nothing_changes_before_the_wake_up_with_targets_and_links(seed in any::<u64>(), extra in extras()) {
        let rs = target_world(6, &extra);
        let set = PolicySet::new(&rs);
        let opts = SelectOptions { terse: true, ..SelectOptions::default() };
        let mut statuses = start();
        let mut state = set.new_state(&statuses);
        set.refresh(&mut state, &statuses, at(0), opts);
        let mut s = seed;
        for step in 1..40i64 {
            let now = at(step * 3);
            let changed = perturb(&mut s, &mut statuses, now);
            for (i, e) in set.on_change(&mut state, [changed.as_str()], &statuses, now, opts) {
                let limit = now + TimeDelta::seconds(600);
                let wake = e.wake_at.unwrap_or(limit).min(limit);
                prop_assert!(wake > now);
                let probe = wake - TimeDelta::milliseconds(1);
                let mut copy = state.clone();
                let before = copy.status(i).cloned();
                let again = set.refresh_some(&mut copy, &[i], &statuses, probe, opts);
                prop_assert_eq!(again.len(), 1);
                prop_assert!(!again[0].1.selection_changed, "step {} policy {}", step, i);
                prop_assert_eq!(copy.status(i).cloned(), before, "step {} policy {}", step, i);
            }
        }
    }
}
