//! Scenarios over virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

/// A primary that fails and recovers every 20 s, probed every 10 s.
fn flap(sim: &mut Sim, from: i64, to: i64) -> Vec<(i64, String)> {
    let mut picks = Vec::new();
    let mut t = from;
    while t <= to {
        if (t / 20) % 2 == 0 {
            sim.healthy("hc-primary", at(t));
        } else {
            sim.down("hc-primary", at(t));
        }
        sim.healthy("hc-backup", at(t));
        let o = sim.step(at(t));
        picks.push((t, selected(&o).unwrap_or("").to_string()));
        t += 10;
    }
    picks
}

#[test]
fn flapping_primary_without_hold_down_follows_every_flap() {
    let mut sim = Sim::two(json!({"hysteresis": "0s"}));
    let picks = flap(&mut sim, 0, 110);
    let flips = picks.windows(2).filter(|w| w[0].1 != w[1].1).count();
    // Up at 0-19, down at 20-39, up at 40-59, ...: a switch on every flap.
    assert_eq!(flips, 5, "{picks:?}");
    assert_eq!(sim.events.len(), 6, "startup plus one event per switch");
}

#[test]
fn flapping_primary_with_routerd_hysteresis_still_flaps_once_the_dwell_passed() {
    let mut sim = Sim::two(json!({"hysteresis": "30s"}));
    let picks = flap(&mut sim, 0, 110);
    // Failover is immediate; failback waits only for 30 s after the last
    // change: switches at 20, 50 (held at 40), 60, 90 (held at 80), 100.
    let flips: Vec<i64> = picks
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].0)
        .collect();
    assert_eq!(flips, vec![20, 50, 60, 90, 100], "{picks:?}");
}

#[test]
fn flapping_primary_with_hold_down_stays_on_backup_until_primary_is_stable() {
    let mut sim = Sim::two(json!({"hysteresis": "0s", "preemptDelay": "60s"}));
    let picks = flap(&mut sim, 0, 110);
    // Startup picks primary; it fails at 20 and never stays up for 60 s.
    assert_eq!(picks[0].1, "primary");
    assert!(picks[2..].iter().all(|(_, p)| p == "backup"), "{picks:?}");
    // Now the primary stays up: it takes over 60 s after it became ready.
    for t in (120..=200).step_by(10) {
        sim.healthy("hc-primary", at(t));
        sim.healthy("hc-backup", at(t));
        let o = sim.step(at(t));
        let want = if t < 180 { "backup" } else { "primary" };
        assert_eq!(selected(&o), Some(want), "t={t}");
        if t == 170 {
            let held = o.decision.candidates[0].held.as_ref().unwrap();
            assert_eq!(held.by, "preemptDelay");
            assert_eq!(held.until.as_deref(), Some(rfc(at(180)).as_str()));
            assert_eq!(o.decision.rule, "HeldByPreemptDelay");
        }
        if t == 180 {
            assert_eq!(o.decision.rule, "Preempt");
            assert!(o.selection_changed);
        }
    }
    assert_eq!(sim.events.len(), 3, "startup, failover, one failback");
}

#[test]
fn startup_with_only_the_weaker_candidate_ready_then_failback_after_the_dwell() {
    let mut sim = Sim::two(json!({"hysteresis": "30s"}));
    sim.healthy("hc-backup", at(0));
    let o = sim.step(at(0));
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(o.decision.rule, "Startup");
    assert_eq!(reason_codes(&o, "primary"), vec!["HealthNoStatus"]);

    sim.healthy("hc-primary", at(10));
    sim.healthy("hc-backup", at(10));
    let o = sim.step(at(10));
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(o.decision.rule, "HeldByHysteresis");
    let held = o.decision.candidates[0].held.as_ref().unwrap();
    assert_eq!(held.by, "hysteresis");
    assert_eq!(held.until.as_deref(), Some(rfc(at(30)).as_str()));
    assert!(o.events.is_empty());

    sim.healthy("hc-primary", at(30));
    sim.healthy("hc-backup", at(30));
    let o = sim.step(at(30));
    assert_eq!(selected(&o), Some("primary"));
    assert_eq!(o.decision.rule, "Preempt");
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.status["lastTransitionAt"], json!(rfc(at(30))));
}

#[test]
fn candidate_disabled_while_selected_fails_over_at_once() {
    let mut sim = Sim::two(json!({"hysteresis": "5m"}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    assert_eq!(selected(&sim.step(at(0))), Some("primary"));

    // The operator disables the primary (a new configuration, same state).
    let mut spec = sim
        .resources
        .last()
        .unwrap()
        .as_egress_policy()
        .unwrap()
        .clone();
    spec.candidates[0].enabled = Some(false);
    let last = sim.resources.len() - 1;
    sim.resources[last].spec = routerd_model::Spec::EgressRoutePolicy(spec);
    sim.set = routerd_select::PolicySet::new(&sim.resources);

    let o = sim.step(at(5));
    assert_eq!(
        selected(&o),
        Some("backup"),
        "hysteresis never keeps a candidate that is not ready"
    );
    assert_eq!(o.decision.rule, "Failover");
    assert_eq!(reason_codes(&o, "primary"), vec!["Disabled"]);
    let c0 = &o.status["candidates"][0];
    assert_eq!(c0["disabled"], json!(true));
    assert_eq!(c0["ready"], json!(false));
    assert_eq!(o.events.len(), 1);
}

#[test]
fn health_going_stale_makes_the_candidate_not_ready() {
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    assert_eq!(selected(&sim.step(at(0))), Some("primary"));
    // Freshness is max(2m, 3 x 10s + 1s) = 2m; only the backup keeps probing.
    sim.healthy("hc-backup", at(120));
    let o = sim.step(at(120));
    assert_eq!(
        selected(&o),
        Some("primary"),
        "exactly at the freshness limit it still counts"
    );
    sim.healthy("hc-backup", at(121));
    let o = sim.step(at(121));
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(reason_codes(&o, "primary"), vec!["HealthStale"]);
    let msg = &o.decision.candidates[0].reasons[0].message;
    assert!(msg.contains("2m0s"), "{msg}");
}

#[test]
fn preempt_false_stays_on_the_current_path_while_it_is_healthy() {
    let mut sim = Sim::two(json!({"hysteresis": "0s", "preempt": false}));
    sim.down("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    assert_eq!(selected(&sim.step(at(0))), Some("backup"));
    for t in [10, 100, 1000] {
        sim.healthy("hc-primary", at(t));
        sim.healthy("hc-backup", at(t));
        let o = sim.step(at(t));
        assert_eq!(selected(&o), Some("backup"));
        assert_eq!(o.decision.rule, "HeldByNoPreempt");
        assert_eq!(
            o.decision.candidates[0].held.as_ref().unwrap().by,
            "preempt"
        );
    }
    sim.healthy("hc-primary", at(1010));
    sim.down("hc-backup", at(1010));
    let o = sim.step(at(1010));
    assert_eq!(selected(&o), Some("primary"));
    assert_eq!(o.decision.rule, "Failover");
}

#[test]
fn failure_grace_keeps_the_candidate_until_the_threshold() {
    let mut sim = Sim::two(json!({}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    sim.step(at(0));
    sim.health("hc-primary", "Failing", 2, at(10));
    let o = sim.step(at(10));
    assert_eq!(selected(&o), Some("primary"));
    let notes: Vec<_> = o.decision.candidates[0]
        .notes
        .iter()
        .map(|n| n.code)
        .collect();
    assert_eq!(notes, vec!["HealthFailureGrace"]);
    sim.health("hc-primary", "Failing", 3, at(20));
    let o = sim.step(at(20));
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(reason_codes(&o, "primary"), vec!["HealthNotPassing"]);
}

#[test]
fn a_repeated_reconcile_changes_nothing() {
    let mut sim = Sim::two(json!({"mode": "priority", "preemptDelay": "1m"}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    let first = sim.step(at(0));
    assert!(first.status_changed);
    let again = sim.step(at(0));
    assert!(!again.status_changed);
    assert!(!again.selection_changed);
    assert!(again.events.is_empty());
    assert_eq!(first.status, again.status);
    // Later, with fresh health and nothing else changed: still no churn
    // (`updatedAt` stays because nothing else moved).
    sim.healthy("hc-primary", at(50));
    sim.healthy("hc-backup", at(50));
    let later = sim.step(at(50));
    assert!(!later.status_changed);
    assert_eq!(later.status["updatedAt"], json!(rfc(at(0))));
}

#[test]
fn weighted_ecmp_members_leave_at_once_and_rejoin_after_hold_down() {
    let mut sim =
        Sim::two(json!({"selection": "weighted-ecmp", "hysteresis": "0s", "preemptDelay": "30s"}));
    sim.healthy("hc-primary", at(0));
    sim.healthy("hc-backup", at(0));
    let o = sim.step(at(0));
    assert_eq!(
        o.status["members"],
        json!([
            {"name": "primary", "device": "wan0", "gateway": "192.0.2.1", "weight": 100},
            {"name": "backup", "device": "wan1", "gateway": "198.51.100.1", "weight": 50}
        ])
    );
    assert_eq!(o.decision.rule, "WeightedEcmp");

    sim.down("hc-primary", at(10));
    sim.healthy("hc-backup", at(10));
    let o = sim.step(at(10));
    assert_eq!(o.status["members"].as_array().unwrap().len(), 1);
    assert_eq!(selected(&o), Some("backup"));
    assert_eq!(o.events.len(), 1);

    sim.healthy("hc-primary", at(20));
    sim.healthy("hc-backup", at(20));
    let o = sim.step(at(20));
    assert_eq!(
        o.status["members"].as_array().unwrap().len(),
        1,
        "held by preemptDelay"
    );
    assert_eq!(
        o.decision.candidates[0].held.as_ref().unwrap().by,
        "preemptDelay"
    );

    sim.healthy("hc-primary", at(50));
    sim.healthy("hc-backup", at(50));
    let o = sim.step(at(50));
    assert_eq!(o.status["members"].as_array().unwrap().len(), 2);
    assert_eq!(selected(&o), Some("primary"));
}
