#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What an operator sees after a failover, against a live daemon in a
//! namespace lab (root only): in every mode a carrier loss is an event
//! about the policy naming where traffic went from and to and why, and
//! `explain` names the cause ("carrier lost on wan1"), not a counter.

mod common;

use std::time::Duration;

use common::Daemon;
use routerd_api::client::Client;
use routerd_lab::{Lab, Uplink, wait_until};
use serde_json::Value;

const HEAD: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: operator}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan2}
      spec: {ifname: wan2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
";

fn policy(mode: &str) -> String {
    let mut p = String::new();
    if !mode.is_empty() {
        p.push_str(&format!("        mode: {mode}\n"));
    }
    if mode == "hash" {
        p.push_str("        hashFields: [sourceAddress]\n");
    }
    p.push_str(
        "        sourceCIDRs: [192.168.50.0/24]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: 198.18.1.2,
             mark: 0x10, table: 110, priority: 1100, weight: 80}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1200, weight: 50}
",
    );
    p
}

fn get(rt: &tokio::runtime::Runtime, c: &Client, path: &str) -> Value {
    rt.block_on(c.get::<Value>(path)).unwrap()
}

/// (previous, selected, reason) of the policy's selection events.
fn selection_events(rt: &tokio::runtime::Runtime, c: &Client) -> Vec<(String, String, String)> {
    let v = get(rt, c, "/events?resource=EgressRoutePolicy%2Flan&limit=100");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("routerd.lan.route.changed" | "routerd.resource.status.changed")
            )
        })
        .map(|e| {
            let a = |k: &str| e["attributes"][k].as_str().unwrap_or("").to_string();
            (
                a("previousCandidate"),
                a("selectedCandidate"),
                e["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn failover_in_every_mode_is_an_event_and_explain_names_the_carrier_loss() {
    for (i, mode) in ["priority", "mark", "hash", ""].into_iter().enumerate() {
        let prefix = format!("rop{i}");
        let _ = routerd_lab::cleanup_stale(&prefix);
        let lab = Lab::build(&prefix).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon::new(&lab, dir.path(), "");
        std::fs::write(
            dir.path().join("config.yaml"),
            format!("{HEAD}{}", policy(mode)),
        )
        .unwrap();
        d.start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = Client::new(d.socket());
        let topic = if mode.is_empty() {
            "routerd.lan.route.changed"
        } else {
            "routerd.resource.status.changed"
        };
        let start = vec![("".to_string(), "primary".to_string(), "Startup".to_string())];
        wait_until(
            || rt.block_on(c.get::<Value>("/status")).is_ok() && selection_events(&rt, &c) == start,
            Duration::from_secs(20),
            Duration::from_millis(100),
        )
        .unwrap_or_else(|_| {
            panic!(
                "{mode}: no startup event; events {:?}; log:\n{}",
                rt.block_on(c.get::<Value>("/events?limit=100")).ok(),
                d.log()
            )
        });

        lab.cut_carrier(Uplink::Wan1).unwrap();
        let mut want = start.clone();
        want.push(("primary".into(), "backup".into(), "CarrierLost".into()));
        wait_until(
            || selection_events(&rt, &c) == want,
            Duration::from_secs(10),
            Duration::from_millis(100),
        )
        .unwrap_or_else(|_| panic!("{mode}: {:?}; log:\n{}", selection_events(&rt, &c), d.log()));
        let ev = get(
            &rt,
            &c,
            "/events?resource=EgressRoutePolicy%2Flan&limit=100",
        );
        let last = ev["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["type"], topic, "{mode}: {last}");
        assert!(
            last["message"]
                .as_str()
                .unwrap()
                .starts_with("backup takes over from primary: carrier lost on wan1"),
            "{mode}: {last}"
        );

        // explain names the carrier loss on the device, with the headline
        // saying what carries traffic now.
        let x = get(&rt, &c, "/explain?policy=lan");
        assert!(
            x["headline"]
                .as_str()
                .unwrap()
                .starts_with("backup selected via 198.18.2.2 dev wan2"),
            "{mode}: {x}"
        );
        let causes = x["causes"].as_array().unwrap();
        assert_eq!(causes.len(), 1, "{mode}: {x}");
        assert_eq!(causes[0]["candidate"], "primary", "{mode}");
        assert_eq!(causes[0]["cause"], "carrier lost on wan1", "{mode}");

        // Every event names a resource; none is "/".
        let all = get(&rt, &c, "/events?limit=1000");
        for e in all["items"].as_array().unwrap() {
            assert!(
                !e["resource"]["kind"].as_str().unwrap_or("").is_empty(),
                "{mode}: an event without a resource: {e}"
            );
        }

        lab.restore(Uplink::Wan1).unwrap();
        want.push(("backup".into(), "primary".into(), "Preempt".into()));
        wait_until(
            || selection_events(&rt, &c) == want,
            Duration::from_secs(10),
            Duration::from_millis(100),
        )
        .unwrap_or_else(|_| panic!("{mode}: {:?}; log:\n{}", selection_events(&rt, &c), d.log()));
        d.stop();
        drop(d);
        lab.teardown().unwrap();
    }
}

/// `GET /metrics` from inside the router namespace (bash's /dev/tcp: no
/// HTTP client needed in the lab).
fn scrape(lab: &Lab, port: u16) -> String {
    lab.exec(
        routerd_lab::Node::Router,
        "bash",
        [
            "-c",
            &format!(
                "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /metrics HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3"
            ),
        ],
    )
    .unwrap_or_default()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn metrics_carry_probe_latency_daemon_phase_and_installed_selection() {
    let _ = routerd_lab::cleanup_stale("rmet");
    let lab = Lab::build("rmet").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The demo configuration: health-checked candidates probing through
    // both uplinks.
    let mut d = Daemon::new(&lab, dir.path(), "");
    d.args = vec!["--metrics-listen".into(), "127.0.0.1:9469".into()];
    d.start();
    let mut text = String::new();
    wait_until(
        || {
            text = scrape(&lab, 9469);
            text.lines().any(|l| {
                l.starts_with("routerd_probe_latency_seconds_count{check=\"internet-wan1\"}")
                    && !l.ends_with(" 0")
            }) && text.contains("routerd_daemon_phase{phase=\"Ready\"} 1")
                && text.contains("candidate=\"primary\"")
        },
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| panic!("metrics:\n{text}\nlog:\n{}", d.log()));
    assert!(
        text.contains("# TYPE routerd_probe_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("routerd_probe_latency_seconds_bucket{check=\"internet-wan1\",le=\"+Inf\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "routerd_egress_selected{policy=\"ipv4-default\",candidate=\"primary\",device=\"wan1\",phase=\"Applied\",installed=\"true\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE routerd_owner_degraded gauge"),
        "{text}"
    );
    assert!(!text.contains("routerd_owner_degraded{"), "{text}");
    d.stop();
    drop(d);
    lab.teardown().unwrap();
}
