#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon's step deletes the connections of a dead path
//! (`flushOnFailover: deadPath`) through the flusher it is given, reports
//! it as an event and in the policy's `lastFlush`, and never fails a step
//! over a flush. The in-memory flusher stands in for the kernel table.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routerd_conntrack::MemoryFlusher;
use routerd_engine::core::Core;
use routerd_engine::daemon::load_config;
use routerd_engine::flush::{FLUSH_FAILED_EVENT, FLUSHED_EVENT, LAST_FLUSH_KEY};
use routerd_engine::links::{LinkInfo, statuses as link_statuses};
use routerd_model::{Event, Status};
use routerd_render::MemDataplane;
use routerd_store::Store;
use serde_json::json;

fn policy(name: &str, flush: &str, marks: (u32, u32), hcs: (&str, &str)) -> String {
    format!(
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {{name: {name}}}
      spec:
        mode: priority
        hysteresis: 0s
{flush}        sourceCIDRs: [192.168.{m}.0/24]
        candidates:
          - {{name: primary, interface: wan1, device: wan1, gatewaySource: static, gateway: 192.0.2.1, weight: 80, mark: {a}, table: {a}, priority: {pa}, healthCheck: {ha}}}
          - {{name: backup, interface: wan2, device: wan2, gatewaySource: static, gateway: 198.51.100.1, weight: 50, mark: {b}, table: {b}, priority: {pb}, healthCheck: {hb}}}
",
        m = marks.0,
        a = marks.0,
        b = marks.1,
        pa = 10000 + marks.0,
        pb = 10000 + marks.1,
        ha = hcs.0,
        hb = hcs.1,
    )
}

fn config() -> String {
    let mut c = String::from(
        "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: lab}\nspec:\n  resources:\n",
    );
    for w in ["wan1", "wan2"] {
        c.push_str(&format!(
            "    - apiVersion: net.routerd.net/v1alpha1\n      kind: Interface\n      metadata: {{name: {w}}}\n      spec: {{ifname: {w}}}\n"
        ));
    }
    for h in ["hc-a1", "hc-a2", "hc-c1", "hc-c2"] {
        c.push_str(&format!(
            "    - apiVersion: net.routerd.net/v1alpha1\n      kind: HealthCheck\n      metadata: {{name: {h}}}\n      spec: {{target: 203.0.113.1, protocol: tcp, port: 443, interval: 1s, timeout: 500ms}}\n"
        ));
    }
    c.push_str(&policy(
        "a",
        "        flushOnFailover: deadPath\n",
        (16, 32),
        ("hc-a1", "hc-a2"),
    ));
    c.push_str(&policy("c", "", (64, 80), ("hc-c1", "hc-c2")));
    c
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn hc_id(name: &str) -> String {
    format!("net.routerd.net/v1alpha1/HealthCheck/{name}")
}

const POLICY_A: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/a";

fn hc(phase: &str, now: DateTime<Utc>) -> Status {
    let failed = i64::from(phase != "Healthy") * 3;
    let v = json!({"phase": phase, "consecutiveFailed": failed, "lastResult": if failed > 0 { "failed" } else { "passed" }, "lastCheckedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)});
    serde_json::from_value(v).unwrap()
}

fn links() -> BTreeMap<String, LinkInfo> {
    let mut links = BTreeMap::new();
    for (i, w) in ["wan1", "wan2"].iter().enumerate() {
        links.insert(
            (*w).to_string(),
            LinkInfo {
                index: 2 + u32::try_from(i).unwrap(),
                up: true,
                carrier: true,
                ..Default::default()
            },
        );
    }
    links
}

fn of_type<'a>(events: &'a [Event], topic: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.type_ == topic).collect()
}

fn ids(f: &MemoryFlusher) -> Vec<String> {
    f.entries().into_iter().map(|e| e.id).collect()
}

#[test]
fn a_dead_primary_loses_only_its_connections() {
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", &config()).unwrap());
    let flusher = Arc::new(MemoryFlusher::new());
    for (id, mark) in [
        ("a-primary-1", 16),
        ("a-primary-2", 16),
        ("a-backup", 32),
        ("c-primary", 64),
        ("unmarked", 0),
    ] {
        flusher.insert(id, mark);
    }
    core.set_flusher(flusher.clone());
    core.observe(link_statuses(core.startup(), &links()));
    for h in ["hc-a1", "hc-a2", "hc-c1", "hc-c2"] {
        core.observe_one(hc_id(h), hc("Healthy", t(0)));
    }
    let mut dp = MemDataplane::new();
    let r = core.step(&mut dp, &store, t(0)).unwrap();
    assert!(r.dataplane_error.is_none(), "{:?}", r.dataplane_error);
    assert!(flusher.calls().is_empty(), "startup flushes nothing");

    // The primary of policy a dies: only mark 16 is flushed, once.
    core.observe_one(hc_id("hc-a1"), hc("Unhealthy", t(2)));
    let r = core.step(&mut dp, &store, t(2)).unwrap();
    assert_eq!(flusher.calls(), [(16, u32::MAX)]);
    assert_eq!(ids(&flusher), ["a-backup", "c-primary", "unmarked"]);
    let ev = of_type(&r.events, FLUSHED_EVENT);
    assert_eq!(ev.len(), 1, "{:?}", r.events);
    assert_eq!(ev[0].attributes["policy"], POLICY_A);
    assert_eq!(ev[0].attributes["candidate"], "primary");
    assert_eq!(ev[0].attributes["mark"], "16");
    assert_eq!(ev[0].attributes["deleted"], "2");
    let stored = store.status_snapshot().unwrap();
    let st = &stored[POLICY_A];
    assert_eq!(st["selectedCandidate"], "backup");
    assert_eq!(st[LAST_FLUSH_KEY]["candidate"], "primary");
    assert_eq!(st[LAST_FLUSH_KEY]["mark"], 16);
    assert_eq!(st[LAST_FLUSH_KEY]["deleted"], 2);

    // A quiet step keeps the record and flushes nothing more.
    let r = core.step(&mut dp, &store, t(3)).unwrap();
    assert!(of_type(&r.events, FLUSHED_EVENT).is_empty());
    assert_eq!(flusher.calls().len(), 1);
    assert_eq!(
        core.reported_status(POLICY_A).unwrap()[LAST_FLUSH_KEY]["deleted"],
        2
    );

    // The primary recovers and takes over again (preempt): no flush, the
    // backup is still ready.
    flusher.insert("a-primary-3", 16);
    core.observe_one(hc_id("hc-a1"), hc("Healthy", t(5)));
    core.step(&mut dp, &store, t(5)).unwrap();
    let st = core.reported_status(POLICY_A).unwrap();
    assert_eq!(st["selectedCandidate"], "primary");
    assert_eq!(flusher.calls().len(), 1, "preemptive switch never flushes");

    // The backup (not carrying new flows) fails: no flush.
    core.observe_one(hc_id("hc-a2"), hc("Unhealthy", t(6)));
    core.step(&mut dp, &store, t(6)).unwrap();
    assert_eq!(flusher.calls().len(), 1);
    core.observe_one(hc_id("hc-a2"), hc("Healthy", t(7)));
    core.step(&mut dp, &store, t(7)).unwrap();

    // Policy c has no flushOnFailover: its primary dies, nothing flushed.
    core.observe_one(hc_id("hc-c1"), hc("Unhealthy", t(8)));
    let r = core.step(&mut dp, &store, t(8)).unwrap();
    assert_eq!(
        core.reported_status("net.routerd.net/v1alpha1/EgressRoutePolicy/c")
            .unwrap()["selectedCandidate"],
        "backup"
    );
    assert_eq!(flusher.calls().len(), 1);
    assert!(of_type(&r.events, FLUSHED_EVENT).is_empty());
    assert!(ids(&flusher).contains(&"c-primary".to_string()));

    // A flush the kernel refuses: an event and a status message, the step
    // itself succeeds and the failover happens.
    flusher.fail_with(Some(1));
    core.observe_one(hc_id("hc-a1"), hc("Unhealthy", t(10)));
    let r = core.step(&mut dp, &store, t(10)).unwrap();
    assert!(r.dataplane_error.is_none());
    assert_eq!(flusher.calls().len(), 2);
    let ev = of_type(&r.events, FLUSH_FAILED_EVENT);
    assert_eq!(ev.len(), 1, "{:?}", r.events);
    assert_eq!(ev[0].severity, "warning");
    let stored = store.status_snapshot().unwrap();
    let st = &stored[POLICY_A];
    assert_eq!(st["selectedCandidate"], "backup");
    let msg = st[LAST_FLUSH_KEY]["message"].as_str().unwrap();
    assert!(msg.contains("conntrack flush failed"), "{msg}");
    assert!(ids(&flusher).contains(&"a-primary-3".to_string()));

    // A restarted daemon reports the last flush and does not let it leak
    // into selection.
    let mut again = Core::new(load_config("c.yaml", &config()).unwrap());
    again.restore(&store).unwrap();
    assert!(again.statuses[POLICY_A].get(LAST_FLUSH_KEY).is_none());
    assert!(
        again.reported_status(POLICY_A).unwrap()[LAST_FLUSH_KEY]
            .get("message")
            .is_some()
    );
}

/// Without a flusher (no conntrack access) a dead path is reported, not
/// fatal.
#[test]
fn no_flusher_is_reported_not_fatal() {
    let store = Store::in_memory();
    let mut core = Core::new(load_config("c.yaml", &config()).unwrap());
    core.observe(link_statuses(core.startup(), &links()));
    for h in ["hc-a1", "hc-a2", "hc-c1", "hc-c2"] {
        core.observe_one(hc_id(h), hc("Healthy", t(0)));
    }
    let mut dp = MemDataplane::new();
    core.step(&mut dp, &store, t(0)).unwrap();
    core.observe_one(hc_id("hc-a1"), hc("Unhealthy", t(2)));
    let r = core.step(&mut dp, &store, t(2)).unwrap();
    let ev = of_type(&r.events, FLUSH_FAILED_EVENT);
    assert_eq!(ev.len(), 1, "{:?}", r.events);
    assert!(
        ev[0].message.contains("no conntrack access"),
        "{}",
        ev[0].message
    );
}
