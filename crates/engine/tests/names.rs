#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! IPAddressSet names on a live loop with an in-memory resolver: the
//! answer moves the nft set, a failure keeps the last good members, and a
//! refresh that changes nothing wakes no step.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{self, Handler, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_engine::names::MEMBERS_CHANGED;
use routerd_render::SharedMemDataplane;
use routerd_resolve::{Family, MemoryResolver};
use routerd_store::{EventQuery, Store};
use serde_json::Value;

const CONFIG: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: lab}
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
      kind: IPAddressSet
      metadata: {name: svc}
      spec:
        addresses: [192.0.2.10]
        names: [svc.lab]
        refreshInterval: 30s
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: steer}
      spec:
        mode: mark
        destinationSetRefs: [IPAddressSet/svc]
        candidates:
          - name: alt
            interface: wan2
            gatewaySource: static
            gateway: 198.51.100.1
            table: 201
            priority: 10201
            mark: 32
"#;

const SET: &str = "net.routerd.net/v1alpha1/IPAddressSet/svc";

fn links() -> StaticLinks {
    let mut m = BTreeMap::new();
    for (name, index) in [("wan1", 2), ("wan2", 3)] {
        m.insert(
            name.to_string(),
            LinkInfo {
                index,
                up: true,
                carrier: true,
                ..Default::default()
            },
        );
    }
    StaticLinks(m)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The elements line of the set in the in-memory kernel.
fn set_text(dp: &SharedMemDataplane) -> String {
    dp.lock()
        .nft_text()
        .iter()
        .flat_map(|(_, t)| t.lines().map(str::to_string).collect::<Vec<_>>())
        .skip_while(|l| !l.contains("ip_address_set_svc"))
        .take(6)
        .collect::<Vec<_>>()
        .join("\n")
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn live_status(h: &Handler) -> Value {
    let v = h
        .handle(ControlRequest::Get {
            subject: "IPAddressSet/svc".into(),
            query: Default::default(),
        })
        .await
        .unwrap();
    let item = v
        .get("items")
        .and_then(|i| i.get(0))
        .cloned()
        .unwrap_or(v.clone());
    item.get("status").cloned().unwrap_or(Value::Null)
}

#[tokio::test(start_paused = true)]
async fn answers_move_the_set_failures_keep_it_and_quiet_refreshes_wake_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let resolver = Arc::new(MemoryResolver::new());
    resolver.set(
        "svc.lab",
        Family::V4,
        &[ip("203.0.113.10")],
        Some(Duration::from_secs(60)),
    );

    let options = Options {
        config_path: dir.path().join("config.yaml"),
        resync: Duration::from_secs(24 * 3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store.clone(), Arc::new(SystemClock)).unwrap();
    shared.set_resolver(resolver.clone());
    let steps = Arc::new(Mutex::new(0usize));
    let steps2 = steps.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s2 = shared.clone();
    let dp2 = dp.clone();
    let task = tokio::spawn(async move {
        daemon::run(
            s2,
            dp2,
            links(),
            NoHealth,
            None,
            move |_| *steps2.lock().unwrap() += 1,
            async {
                let _ = stop_rx.await;
            },
        )
        .await;
    });
    let h = Handler(shared.clone());

    // The first answer joins the literal address in the kernel's set.
    wait_for("the first answer in the set", || {
        let t = set_text(&dp);
        t.contains("203.0.113.10") && t.contains("192.0.2.10")
    })
    .await;
    let st = live_status(&h).await;
    assert_eq!(st["phase"], "Ready", "{st}");
    assert_eq!(
        st["addresses"],
        serde_json::json!(["192.0.2.10", "203.0.113.10"])
    );
    assert_eq!(st["names"], serde_json::json!(["svc.lab"]));
    let name = &st["resolved"]["svc.lab"];
    assert_eq!(name["addresses"], serde_json::json!(["203.0.113.10"]));
    assert_eq!(name["ttlSeconds"], 60);
    for k in ["resolvedAt", "lastAttemptAt", "nextRefreshAt"] {
        assert!(name[k].is_string(), "{k} missing: {st}");
    }
    assert!(st["resolvedAt"].is_string());
    assert_eq!(st["refreshInterval"], "30s");
    // Members changed: persisted with the step and announced.
    let stored = store.status_snapshot().unwrap();
    assert_eq!(stored[SET]["addresses"], st["addresses"]);

    // The same answer again, several refreshes (every 30 s): no step.
    let before = *steps.lock().unwrap();
    let calls = resolver.calls();
    tokio::time::sleep(Duration::from_secs(95)).await;
    assert!(resolver.calls() >= calls + 3, "refreshes did not run");
    assert_eq!(
        *steps.lock().unwrap(),
        before,
        "an unchanged answer woke a step"
    );

    // The answer changes: the set follows at the next refresh.
    resolver.set(
        "svc.lab",
        Family::V4,
        &[ip("203.0.113.20")],
        Some(Duration::from_secs(60)),
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    wait_for("the new answer in the set", || {
        let t = set_text(&dp);
        t.contains("203.0.113.20") && !t.contains("203.0.113.10")
    })
    .await;
    let events = store
        .events(&EventQuery {
            topic: Some(MEMBERS_CHANGED.into()),
            limit: Some(10),
            ascending: true,
            ..Default::default()
        })
        .unwrap();
    let last = events.last().expect("a members event");
    assert_eq!(last.resource.kind, "IPAddressSet");
    assert_eq!(last.resource.name, "svc");
    assert_eq!(last.attributes["added"], "1");
    assert_eq!(last.attributes["removed"], "1");

    // DNS fails: the last good members stay, the error is in the status,
    // and nothing in the kernel moves.
    resolver.fail("svc.lab", Family::V4, "SERVFAIL");
    let before = *steps.lock().unwrap();
    let executed = dp.lock().ops_executed;
    tokio::time::sleep(Duration::from_secs(65)).await;
    let st = live_status(&h).await;
    assert_eq!(st["reason"], "ResolveFailed", "{st}");
    assert_eq!(st["resolved"]["svc.lab"]["lastError"], "svc.lab: SERVFAIL");
    assert_eq!(
        st["resolved"]["svc.lab"]["addresses"],
        serde_json::json!(["203.0.113.20"])
    );
    assert!(set_text(&dp).contains("203.0.113.20"));
    assert_eq!(*steps.lock().unwrap(), before);
    assert_eq!(dp.lock().ops_executed, executed);

    // A resolver that never answers is cut off by the timeout, same result.
    resolver.hang("svc.lab", Family::V4);
    tokio::time::sleep(Duration::from_secs(65)).await;
    let st = live_status(&h).await;
    assert!(
        st["resolved"]["svc.lab"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no answer within")),
        "{st}"
    );
    assert!(set_text(&dp).contains("203.0.113.20"));

    let _ = stop_tx.send(());
    task.await.unwrap();
}

/// Runs the daemon on `store` and `dp` until `until` holds (or panics).
async fn run_until(
    dir: &std::path::Path,
    store: Arc<Store>,
    dp: SharedMemDataplane,
    resolver: Arc<MemoryResolver>,
    settle: Duration,
    until: impl Fn(&SharedMemDataplane) -> bool,
) {
    let options = Options {
        config_path: dir.join("config.yaml"),
        resync: Duration::from_secs(24 * 3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store, Arc::new(SystemClock)).unwrap();
    shared.set_resolver(resolver);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let dp2 = dp.clone();
    let task = tokio::spawn(async move {
        daemon::run(shared, dp2, links(), NoHealth, None, |_| {}, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    wait_for("the daemon to converge", || until(&dp)).await;
    tokio::time::sleep(settle).await;
    let _ = stop_tx.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restart_while_dns_is_down_keeps_the_last_good_members() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let resolver = Arc::new(MemoryResolver::new());
    resolver.set("svc.lab", Family::V4, &[ip("203.0.113.10")], None);
    run_until(
        dir.path(),
        store.clone(),
        dp.clone(),
        resolver,
        Duration::from_secs(1),
        |dp| set_text(dp).contains("203.0.113.10"),
    )
    .await;

    // A new daemon on the same store and kernel, DNS down from the start.
    let down = Arc::new(MemoryResolver::new());
    down.fail("svc.lab", Family::V4, "connection refused");
    let calls = down.clone();
    run_until(
        dir.path(),
        store.clone(),
        dp.clone(),
        down,
        Duration::from_secs(40),
        move |_| calls.calls() > 0,
    )
    .await;
    assert!(
        set_text(&dp).contains("203.0.113.10"),
        "a restart during a DNS outage emptied the set:\n{}",
        set_text(&dp)
    );
    let stored = store.status_snapshot().unwrap();
    assert_eq!(
        stored[SET]["resolved"]["svc.lab"]["addresses"],
        serde_json::json!(["203.0.113.10"])
    );
}
