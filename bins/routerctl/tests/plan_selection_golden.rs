//! Golden test of `routerctl plan -o json` for the selection stage: the
//! `status`, `events` and `decisions` of examples/dslite-static-egress.yaml
//! replayed against its state snapshot at fixed instants.
//! `ROUTERD_BLESS=1` rewrites the golden files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plan(state: &Path, now: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .current_dir(root())
        .args([
            "plan",
            "-f",
            "examples/dslite-static-egress.yaml",
            "--state",
        ])
        .arg(state)
        .args(["--now", now, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "routerctl plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut picked = serde_json::Map::new();
    for k in ["status", "events", "decisions"] {
        picked.insert(k.to_string(), doc[k].clone());
    }
    Value::Object(picked)
}

fn check(name: &str, got: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    if std::env::var("ROUTERD_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ROUTERD_BLESS=1 creates it)", path.display()));
    assert!(
        want == text,
        "{name} differs (ROUTERD_BLESS=1 re-blesses)\n--- want\n{want}\n--- got\n{text}"
    );
}

fn example_state() -> PathBuf {
    root().join("examples/state/dslite-static-egress.state.yaml")
}

#[test]
fn plan_selects_the_dslite_tunnel_and_routes_follow() {
    let got = plan(&example_state(), "2026-11-21T09:00:00Z");
    check("plan-dslite-static-egress.json", &got);
}

#[test]
fn plan_fails_over_when_the_health_check_goes_stale() {
    // The router applied the 09:00 plan; nothing was probed since
    // (lastCheckedAt 08:59:55, freshness 2m: stale from 09:01:55).
    let first = plan(&example_state(), "2026-11-21T09:00:00Z");
    let (_dir, state) = next_state(&first);
    let got = plan(&state, "2026-11-21T09:05:00Z");
    let policy = "net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default";
    assert_eq!(got["status"][policy]["selectedCandidate"], "static-gateway");
    assert_eq!(got["decisions"][policy]["rule"], "Failover");
    check("plan-dslite-static-egress-stale.json", &got);
}

/// The snapshot of the next step: the example state plus everything planned.
fn next_state(planned: &Value) -> (tempfile::TempDir, PathBuf) {
    let base: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(example_state()).unwrap()).unwrap();
    let mut state: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::to_value(base).unwrap()).unwrap();
    for (k, v) in planned["status"].as_object().unwrap() {
        state.insert(k.clone(), v.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    std::fs::write(&file, serde_json::to_string(&state).unwrap()).unwrap();
    (dir, file)
}

#[test]
fn replaying_the_planned_state_is_a_no_op() {
    let first = plan(&example_state(), "2026-11-21T09:00:00Z");
    let (_dir, file) = next_state(&first);
    let second = plan(&file, "2026-11-21T09:00:20Z");
    assert_eq!(
        second["events"],
        Value::Array(vec![]),
        "no event on a no-op reconcile"
    );
    let policy = "net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default";
    assert_eq!(
        second["status"][policy], first["status"][policy],
        "no status churn on a no-op reconcile"
    );
    let route = "net.routerd.net/v1alpha1/IPv4Route/default";
    assert_eq!(second["status"][route]["changed"], Value::Bool(false));
    assert_eq!(
        second["status"][route]["installedAt"],
        first["status"][route]["installedAt"]
    );
    assert_eq!(second["decisions"][policy]["rule"], "BestReady");
    assert_eq!(second["decisions"][policy]["changed"], Value::Bool(false));
}
