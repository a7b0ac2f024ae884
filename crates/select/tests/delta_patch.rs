//! Warm evaluations patch only the candidate fields that moved: every
//! field a status entry holds (device and gateway from `deviceFrom` and
//! `gatewayFrom`, readiness, `readySince`) must end up exactly as a full
//! evaluation from the stored status writes it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use routerd_model::{Resource, Spec, Status};
use routerd_select::{PolicySet, SelectOptions};
use serde_json::json;

const LINKS: usize = 3;

fn world(policies: usize, extra: &serde_json::Value) -> Vec<Resource> {
    let mut rs: Vec<Resource> = (0..LINKS)
        .map(|h| {
            Resource::new(
                format!("hc-{h}"),
                Spec::HealthCheck(hc_spec(json!({"interval": "10s", "timeout": "1s"}))),
            )
        })
        .collect();
    for p in 0..policies {
        let cands: Vec<_> = (0..3)
            .map(|j| {
                let l = (p + j) % LINKS;
                json!({"name": format!("p{p}-c{j}"),
                       "source": format!("Link/uplink-{l}"),
                       "deviceFrom": {"resource": format!("Link/uplink-{l}"), "field": "ifname"},
                       "gatewayFrom": {"resource": format!("Link/uplink-{l}"), "field": "gateway"},
                       "weight": 10 * (3 - j), "healthCheck": format!("hc-{l}")})
            })
            .collect();
        let mut spec = json!({"candidates": cands});
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

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn warm_patches_equal_full_evaluation(
        seed in any::<u64>(),
        extra in prop::sample::select(vec![
            json!({"hysteresis": "0s", "preemptDelay": "20s"}),
            json!({"hysteresis": "0s", "selection": "weighted-ecmp"}),
            json!({"mode": "priority", "hysteresis": "0s"}),
        ]),
        terse in any::<bool>(),
    ) {
        let rs = world(6, &extra);
        let set = PolicySet::new(&rs);
        let opts = SelectOptions { terse, ..SelectOptions::default() };
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        for l in 0..LINKS {
            statuses.insert(id("HealthCheck", &format!("hc-{l}")), obj(json!({"phase": "Healthy", "lastCheckedAt": rfc(at(0))})));
            statuses.insert(id("Link", &format!("uplink-{l}")), obj(json!({"phase": "Up", "ifname": format!("wan{l}"), "gateway": "192.0.2.1"})));
        }
        let mut state = set.new_state(&statuses);
        set.refresh(&mut state, &statuses, at(0), opts);
        for i in 0..set.len() {
            statuses.insert(set.id(i).unwrap().to_string(), state.status(i).unwrap().clone());
        }
        let mut s = seed;
        for step in 1..40i64 {
            let now = at(step * 7);
            let l = (lcg(&mut s) as usize) % LINKS;
            let changed = if lcg(&mut s).is_multiple_of(2) {
                let st = match lcg(&mut s) % 3 {
                    0 => json!({"phase": "Healthy", "lastCheckedAt": rfc(now)}),
                    1 => json!({"phase": "Failing", "consecutiveFailed": 1, "lastCheckedAt": rfc(now)}),
                    _ => json!({"phase": "Unhealthy", "consecutiveFailed": 3, "lastCheckedAt": rfc(now)}),
                };
                let hc = id("HealthCheck", &format!("hc-{l}"));
                statuses.insert(hc.clone(), obj(st));
                hc
            } else {
                let dev = ["", "wan9", &format!("wan{l}")][(lcg(&mut s) % 3) as usize].to_string();
                let gw = ["", "192.0.2.1", "192.0.2.254"][(lcg(&mut s) % 3) as usize];
                let phase = ["Up", "Down"][(lcg(&mut s) % 2) as usize];
                let link = id("Link", &format!("uplink-{l}"));
                statuses.insert(link.clone(), obj(json!({"phase": phase, "ifname": dev, "gateway": gw})));
                link
            };
            let inc = set.on_change(&mut state, [changed.as_str()], &statuses, now, opts);
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
