//! Golden plans of `selection: weighted-ecmp` in modes priority, mark and
//! hash (examples/weighted-ecmp.yaml): what selection publishes, why, and
//! what the kernel would carry, over three steps: eth3 without carrier
//! (two members), eth3 back but held by preemptDelay (still two members,
//! in the status and in the dataplane alike), and the hold over (three).
//! `ROUTERD_BLESS=1` rewrites the golden files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

const NET: &str = "net.routerd.net/v1alpha1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plan(state: &Path, now: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .current_dir(root())
        .args(["plan", "-f", "examples/weighted-ecmp.yaml", "--state"])
        .arg(state)
        .args(["--now", now, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "routerctl plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The parts a golden file keeps: policy statuses, decisions, dataplane.
fn picked(doc: &Value) -> Value {
    let mut status = Map::new();
    for (k, v) in doc["status"].as_object().unwrap() {
        if k.contains("/EgressRoutePolicy/") {
            status.insert(k.clone(), v.clone());
        }
    }
    json!({"status": status, "decisions": doc["decisions"], "dataplane": doc["dataplane"]})
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

fn example_state() -> Map<String, Value> {
    let text =
        std::fs::read_to_string(root().join("examples/state/weighted-ecmp.state.yaml")).unwrap();
    let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::from_value(serde_json::to_value(y).unwrap()).unwrap()
}

/// The snapshot after a step: what it planned, plus new observations.
fn write_state(dir: &Path, name: &str, state: &Map<String, Value>) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_string(state).unwrap()).unwrap();
    file
}

fn observe(state: &mut Map<String, Value>, planned: &Value, checked: &str, wan3: &str) {
    for (k, v) in planned["status"].as_object().unwrap() {
        state.insert(k.clone(), v.clone());
    }
    for hc in ["wan1-gw", "wan2-gw", "wan3-gw"] {
        state.insert(
            format!("{NET}/HealthCheck/{hc}"),
            json!({"phase": "Healthy", "consecutiveFailed": 0, "lastCheckedAt": checked}),
        );
    }
    let wan3 = match wan3 {
        "Up" => json!({"phase": "Up", "ifname": "eth3"}),
        _ => json!({"phase": "Down", "reason": "NoCarrier", "ifname": "eth3"}),
    };
    state.insert(format!("{NET}/Interface/wan3"), wan3);
}

fn members(doc: &Value, policy: &str) -> Vec<String> {
    doc["status"][format!("{NET}/EgressRoutePolicy/{policy}")]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

fn nft_text(doc: &Value, table: &str) -> String {
    doc["dataplane"]["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .map(|t| t["text"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn multipath_devices(doc: &Value) -> Vec<String> {
    let route = doc["dataplane"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == 300)
        .expect("multipath route");
    route["nexthops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["device"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn weighted_ecmp_plans_in_every_mode_follow_the_held_membership() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = example_state();
    let s0 = write_state(dir.path(), "s0.json", &state);

    // 09:00:00: eth3 has no carrier; wan1 and wan2 share 3:1.
    let first = plan(&s0, "2026-11-21T09:00:00Z");
    for p in ["office-priority", "guests-mark", "lab-hash"] {
        assert_eq!(members(&first, p), ["wan1", "wan2"], "{p}");
    }
    assert_eq!(multipath_devices(&first), ["eth1", "eth2"]);
    assert!(nft_text(&first, "routerd_policy").contains(
        "ip saddr 192.168.20.0/24 ct mark != { 0x111, 0x112 } meta mark set jhash ip saddr . ip daddr mod 4 map { 0 : 0x111, 1 : 0x111, 2 : 0x111, 3 : 0x112 }"
    ));
    check("plan-weighted-ecmp.json", &picked(&first));

    // 09:00:30: eth3 is back and its check passes, but preemptDelay 60s
    // holds it out: neither the members nor the dataplane take it in.
    observe(&mut state, &first, "2026-11-21T09:00:25Z", "Up");
    let s1 = write_state(dir.path(), "s1.json", &state);
    let held = plan(&s1, "2026-11-21T09:00:30Z");
    for p in ["office-priority", "guests-mark", "lab-hash"] {
        assert_eq!(members(&held, p), ["wan1", "wan2"], "{p}");
        let d = &held["decisions"][format!("{NET}/EgressRoutePolicy/{p}")];
        assert_eq!(d["candidates"][2]["held"]["by"], "preemptDelay", "{p}");
    }
    assert_eq!(multipath_devices(&held), ["eth1", "eth2"]);
    let policy = nft_text(&held, "routerd_policy");
    assert!(
        !policy.contains("map { 0 : 0x111, 1 : 0x111, 2 : 0x111, 3 : 0x112, 4 : 0x113"),
        "{policy}"
    );
    assert!(
        policy.contains("ct mark { 0x111, 0x112, 0x113 } meta mark set ct mark"),
        "a ready path keeps its connections: {policy}"
    );
    check("plan-weighted-ecmp-held.json", &picked(&held));

    // 09:01:35: the hold ended at 09:01:30; wan3 joins everywhere (3:1:2).
    observe(&mut state, &held, "2026-11-21T09:01:30Z", "Up");
    let s2 = write_state(dir.path(), "s2.json", &state);
    let joined = plan(&s2, "2026-11-21T09:01:35Z");
    for p in ["office-priority", "guests-mark", "lab-hash"] {
        assert_eq!(members(&joined, p), ["wan1", "wan3", "wan2"], "{p}");
    }
    assert_eq!(multipath_devices(&joined), ["eth1", "eth2", "eth3"]);
    assert!(nft_text(&joined, "routerd_policy").contains(
        "ip saddr 192.168.30.0/24 ct mark != { 0x121, 0x122, 0x123 } meta mark set jhash ip saddr mod 6 map { 0 : 0x121, 1 : 0x121, 2 : 0x121, 3 : 0x123, 4 : 0x123, 5 : 0x122 }"
    ));
    check("plan-weighted-ecmp-joined.json", &picked(&joined));
}
