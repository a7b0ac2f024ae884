#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The reconcile loop on an in-memory dataplane and store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{self, Handler, Key, NoHealth, Options, Shared, WallClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::{
    ApplyError, Dataplane, DataplaneError, MemDataplane, Observed, Plan, SharedMemDataplane,
};
use routerd_store::Store;

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
      kind: EgressRoutePolicy
      metadata: {name: ipv4-default}
      spec:
        hysteresis: 0s
        candidates:
          - name: primary
            source: Interface/wan1
            interface: wan1
            device: wan1
            gatewaySource: static
            gateway: 192.0.2.1
            weight: 80
          - name: backup
            source: Interface/wan2
            interface: wan2
            device: wan2
            gatewaySource: static
            gateway: 198.51.100.1
            weight: 50
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: default}
      spec:
        destination: 0.0.0.0/0
        deviceFrom: {resource: EgressRoutePolicy/ipv4-default, field: selectedDevice}
        gatewayFrom: {resource: EgressRoutePolicy/ipv4-default, field: selectedGateway}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan}
      spec: {type: masquerade, egressPolicyRef: ipv4-default, sourceRanges: [192.168.50.0/24]}
"#;

struct Clock(Mutex<DateTime<Utc>>);
impl WallClock for Clock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn links(wan1_up: bool) -> StaticLinks {
    let mut m = BTreeMap::new();
    m.insert(
        "wan1".to_string(),
        LinkInfo {
            index: 2,
            up: true,
            carrier: wan1_up,
            ..Default::default()
        },
    );
    m.insert(
        "wan2".to_string(),
        LinkInfo {
            index: 3,
            up: true,
            carrier: true,
            ..Default::default()
        },
    );
    StaticLinks(m)
}

async fn run_once(
    dir: &std::path::Path,
    store: Arc<Store>,
    dp: SharedMemDataplane,
    wan1_up: bool,
) -> (Arc<Shared>, Vec<usize>) {
    let clock = Arc::new(Clock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
    )));
    let options = Options {
        config_path: dir.join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store, clock).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ops = Arc::new(Mutex::new(Vec::new()));
    let ops2 = ops.clone();
    let s2 = shared.clone();
    let task = tokio::spawn(async move {
        daemon::run(
            s2,
            dp,
            links(wan1_up),
            NoHealth,
            None,
            move |r| ops2.lock().unwrap().push(r.applied_ops),
            async {
                let _ = stop_rx.await;
            },
        )
        .await;
    });
    // Let the loop converge.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if ops.lock().unwrap().len() >= 2 {
            break;
        }
    }
    let _ = stop_tx.send(());
    task.await.unwrap();
    let ops = ops.lock().unwrap().clone();
    (shared, ops)
}

#[tokio::test]
async fn converges_then_restart_adopts_without_touching_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::open_sled(&dir.path().join("state")).unwrap());
    let dp = SharedMemDataplane::default();

    let (shared, ops) = run_once(dir.path(), store.clone(), dp.clone(), true).await;
    assert!(
        ops.iter().sum::<usize>() > 0,
        "first run must program the kernel: {ops:?}"
    );
    let snap = shared.store().status_snapshot().unwrap();
    let pol = &snap["net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default"];
    assert_eq!(pol["phase"], "Applied");
    assert_eq!(pol["selectedDevice"], "wan1");
    let route = &snap["net.routerd.net/v1alpha1/IPv4Route/default"];
    assert_eq!(route["phase"], "Installed", "{route:?}");
    {
        let mem = dp.lock();
        let def: Vec<_> = mem
            .routes
            .iter()
            .filter(|r| r.destination.prefix_len() == 0)
            .collect();
        assert_eq!(def.len(), 1);
        assert_eq!(def[0].device.as_deref(), Some("wan1"));
        assert!(mem.nft_text().iter().any(|(_, t)| t.contains("masquerade")));
    }
    let h = Handler(shared.clone());
    let st = h.handle(ControlRequest::Status).await.unwrap();
    assert_eq!(st["status"]["phase"], "Ready");
    let ex = h
        .handle(ControlRequest::Explain {
            policy: "ipv4-default".into(),
        })
        .await
        .unwrap();
    assert!(ex["decision"].is_object());
    drop(shared);

    // Restart on the same store and kernel: nothing to change.
    let executed_before = dp.lock().ops_executed;
    let (_shared, ops) = run_once(dir.path(), store.clone(), dp.clone(), true).await;
    assert_eq!(
        ops.iter().sum::<usize>(),
        0,
        "restart must not flap owned state: {ops:?}"
    );
    assert_eq!(dp.lock().ops_executed, executed_before);
}

#[tokio::test]
async fn carrier_loss_moves_the_default_route_to_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let (shared, _) = run_once(dir.path(), store.clone(), dp.clone(), false).await;
    let snap = shared.store().status_snapshot().unwrap();
    assert_eq!(
        snap["net.routerd.net/v1alpha1/Interface/wan1"]["phase"],
        "Down"
    );
    assert_eq!(
        snap["net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default"]["selectedDevice"],
        "wan2"
    );
    let mem = dp.lock();
    let def: Vec<_> = mem
        .routes
        .iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .collect();
    assert_eq!(def[0].device.as_deref(), Some("wan2"));
    let _ = Key::Step;
}

#[tokio::test]
async fn an_invalid_config_file_falls_back_to_the_last_applied_generation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let (shared, _) = run_once(
        dir.path(),
        store.clone(),
        SharedMemDataplane::default(),
        true,
    )
    .await;
    daemon::commit_generation(&shared).await;
    drop(shared);
    std::fs::write(dir.path().join("config.yaml"), "apiVersion: bogus\n").unwrap();
    let clock = Arc::new(Clock(Mutex::new(Utc::now())));
    let options = Options {
        config_path: dir.path().join("config.yaml"),
        resync: Duration::from_secs(60),
        ..Options::default()
    };
    let shared = Shared::new(options, store.clone(), clock).unwrap();
    let h = Handler(shared);
    let v = h
        .handle(ControlRequest::Get {
            subject: "IPv4Route".into(),
            query: Default::default(),
        })
        .await
        .unwrap();
    // Effective list is empty until a step ran, but the startup config is the stored one.
    let _ = v;
    let good = store.last_good_generation().unwrap().unwrap();
    assert!(good.config_yaml.contains("ipv4-default"));
}

fn wan_links(wan1_carrier: bool) -> BTreeMap<String, LinkInfo> {
    let mut links = BTreeMap::new();
    for (name, index, carrier) in [("wan1", 2, wan1_carrier), ("wan2", 3, true)] {
        links.insert(
            name.to_string(),
            LinkInfo {
                index,
                up: true,
                carrier,
                ..Default::default()
            },
        );
    }
    links
}

const BROKEN: &str = "    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: no-device}
      spec: {destination: 10.9.0.0/16, device: wg0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: refused}
      spec: {destination: 10.8.0.0/16, device: wan2, gateway: 203.0.113.9}
";

const NO_DEVICE: &str = "net.routerd.net/v1alpha1/IPv4Route/no-device";
const REFUSED: &str = "net.routerd.net/v1alpha1/IPv4Route/refused";
const POLICY: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default";

#[test]
fn broken_owners_fail_alone_and_failover_still_works() {
    use routerd_engine::core::Core;
    let store = Store::in_memory();
    let mut core = Core::new(daemon::load_config("c", &format!("{CONFIG}{BROKEN}")).unwrap());
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let mut dp = MemDataplane::new();
    dp.links = Some(["wan1".to_string(), "wan2".to_string()].into());
    // A gateway that is not on-link: the kernel refuses the route.
    dp.refuse = vec!["10.8.0.0/16 via 203.0.113.9".into()];
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(r.dataplane_error.is_none(), "{:?}", r.dataplane_error);
    let faults: Vec<(&str, &str)> = r
        .faults
        .iter()
        .map(|f| (f.owner.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        faults,
        [(NO_DEVICE, "DeviceNotReady"), (REFUSED, "ApplyFailed")]
    );
    // Everyone else is installed.
    let default_via = |dp: &MemDataplane| {
        dp.routes
            .iter()
            .find(|x| x.destination.prefix_len() == 0 && x.table == 254)
            .and_then(|x| x.device.clone())
    };
    assert_eq!(default_via(&dp).as_deref(), Some("wan1"));
    assert!(!dp.nft.is_empty());
    // Reported statuses tell the truth, with the kernel's message.
    let snap = store.status_snapshot().unwrap();
    assert_eq!(snap[NO_DEVICE]["phase"], "Pending");
    assert_eq!(snap[NO_DEVICE]["reason"], "DeviceNotReady");
    assert_eq!(snap[REFUSED]["phase"], "Error");
    assert_eq!(snap[REFUSED]["reason"], "ApplyFailed");
    assert!(
        snap[REFUSED]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid argument"),
        "{:?}",
        snap[REFUSED]
    );
    assert_eq!(snap[REFUSED]["dataplane"]["intended"]["phase"], "Installed");
    assert_eq!(snap[POLICY]["phase"], "Applied");
    let failed: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.type_ == "routerd.dataplane.owner.failed")
        .map(|e| e.resource.name.clone())
        .collect();
    assert_eq!(failed, ["no-device", "refused"]);

    // Failover while both stay broken: the primary loses carrier.
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(false),
    ));
    let r = core
        .step(&mut dp, &store, now + chrono::Duration::seconds(1))
        .unwrap();
    assert_eq!(default_via(&dp).as_deref(), Some("wan2"), "{:?}", r.faults);
    assert_eq!(r.faults.len(), 2);
    // No new events for faults that did not change.
    assert!(
        !r.events
            .iter()
            .any(|e| e.type_ == "routerd.dataplane.owner.failed")
    );

    // The device appears and the kernel accepts: both recover.
    dp.links = Some(["wan1".to_string(), "wan2".to_string(), "wg0".to_string()].into());
    dp.refuse.clear();
    let r = core
        .step(&mut dp, &store, now + chrono::Duration::seconds(2))
        .unwrap();
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    let recovered = r
        .events
        .iter()
        .filter(|e| e.type_ == "routerd.dataplane.owner.recovered")
        .count();
    assert_eq!(recovered, 2);
    let snap = store.status_snapshot().unwrap();
    assert_eq!(snap[NO_DEVICE]["phase"], "Installed");
    assert_eq!(snap[REFUSED]["phase"], "Installed");
    assert!(snap[REFUSED].get("dataplane").is_none());
    assert!(
        dp.routes
            .iter()
            .any(|x| x.destination.to_string() == "10.9.0.0/16")
    );
}

#[test]
fn two_routes_for_one_kernel_route_the_second_is_a_conflict() {
    // Unconditional clashes are refused at validation; a `when`-gated route
    // (or a dynamic part) can still bring one at run time.
    use routerd_engine::core::Core;
    let dup = "    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: a}
      spec: {destination: 10.7.0.0/16, device: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: b}
      spec:
        destination: 10.7.0.0/16
        device: wan2
        when: {state: {Interface/wan2.phase: {exists: true}}}
";
    let store = Store::in_memory();
    let mut core = Core::new(daemon::load_config("c", &format!("{CONFIG}{dup}")).unwrap());
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let mut dp = MemDataplane::new();
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let r = core.step(&mut dp, &store, now).unwrap();
    assert_eq!(r.faults.len(), 1, "{:?}", r.faults);
    assert_eq!(r.faults[0].reason, "Conflict");
    let snap = store.status_snapshot().unwrap();
    let a = &snap["net.routerd.net/v1alpha1/IPv4Route/a"];
    let b = &snap["net.routerd.net/v1alpha1/IPv4Route/b"];
    let phases = [a["phase"].as_str().unwrap(), b["phase"].as_str().unwrap()];
    assert!(
        phases.contains(&"Installed") && phases.contains(&"Error"),
        "{phases:?}"
    );
    let loser = if a["phase"] == "Error" { a } else { b };
    assert!(
        loser["message"]
            .as_str()
            .unwrap()
            .contains("also wanted by")
    );
}

#[test]
fn a_crash_between_kernel_change_and_ledger_commit_leaves_no_orphan() {
    use routerd_engine::core::{Core, INTENT_KEY};
    let store = Store::in_memory();
    let cfg = format!(
        "{CONFIG}{}",
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: extra}
      spec: {destination: 10.6.0.0/16, device: wan2}
"
    );
    let mut core = Core::new(daemon::load_config("c", &cfg).unwrap());
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    // Simulate the crash: the intent is written and the kernel changed, but
    // the step never reached its commit (the store batch is dropped).
    let mut dp = MemDataplane::new();
    {
        let scratch = Store::in_memory();
        core.step(&mut dp, &scratch, now).unwrap();
        let intent = scratch
            .ledger()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == "dataplane")
            .unwrap()
            .1;
        let mut w = store.writer();
        w.ledger_put(INTENT_KEY, &intent).unwrap();
        w.commit().unwrap();
    }
    assert!(
        dp.routes
            .iter()
            .any(|x| x.destination.to_string() == "10.6.0.0/16")
    );
    // Restart with a config that no longer has the route.
    let mut core = Core::new(daemon::load_config("c", CONFIG).unwrap());
    core.restore(&store).unwrap();
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(r.faults.is_empty(), "{:?}", r.faults);
    assert!(
        !dp.routes
            .iter()
            .any(|x| x.destination.to_string() == "10.6.0.0/16"),
        "the intended route is owned again and removed"
    );
    assert!(core.orphans.is_empty(), "{:?}", core.orphans.describe());
    let intent = store
        .ledger()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == INTENT_KEY);
    assert!(intent.is_none_or(|(_, v)| v.is_null()), "intent cleared");
}

/// A dataplane that checks, at the moment the kernel would change, that the
/// store already names every object the plan creates.
struct IntentChecking {
    inner: MemDataplane,
    store: Arc<Store>,
    checked: usize,
}

impl Dataplane for IntentChecking {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.inner.observe()
    }
    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let intent: routerd_render::Ledger = self
            .store
            .ledger()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == routerd_engine::core::INTENT_KEY)
            .map(|(_, v)| serde_json::from_value(v).unwrap())
            .expect("intent recorded before apply");
        for op in &plan.ops {
            if let routerd_render::Op::AddRoute { route } = op {
                assert_eq!(intent.routes.get(&route.key()), Some(&route.owner));
                self.checked += 1;
            }
        }
        self.inner.apply(plan)
    }
}

#[test]
fn the_intent_is_durable_before_the_kernel_changes() {
    use routerd_engine::core::Core;
    let store = Arc::new(Store::in_memory());
    let mut core = Core::new(daemon::load_config("c", CONFIG).unwrap());
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let mut dp = IntentChecking {
        inner: MemDataplane::new(),
        store: store.clone(),
        checked: 0,
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    core.step(&mut dp, &store, now).unwrap();
    assert!(dp.checked > 0);
}

#[test]
fn orphans_are_reported_and_removed_only_when_asked_or_strict() {
    use routerd_engine::core::{Core, ReconcileSettings};
    let store = Store::in_memory();
    let mut dp = MemDataplane::new();
    let mut stray = routerd_render::ir::Route::new(
        150,
        "192.0.2.0/24".parse::<routerd_render::ir::IpNet>().unwrap(),
        0,
        routerd_render::ir::RouteKind::Blackhole,
    );
    stray.owner.clear();
    dp.routes.push(stray.clone());
    let mut core = Core::new(daemon::load_config("c", CONFIG).unwrap());
    core.observe(routerd_engine::links::statuses(
        core.startup(),
        &wan_links(true),
    ));
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    core.step(&mut dp, &store, now).unwrap();
    assert_eq!(core.orphans.describe().len(), 1);
    core.request_full();
    core.step(&mut dp, &store, now).unwrap();
    assert!(dp.routes.contains(&stray), "progressive: reported, kept");
    // strict: removed on the next step, with an event.
    core.set_reconcile(ReconcileSettings {
        remove_orphans: true,
        ..ReconcileSettings::default()
    });
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(
        r.events
            .iter()
            .any(|e| e.type_ == "routerd.dataplane.orphans.removed")
    );
    core.step(&mut dp, &store, now).unwrap();
    assert!(!dp.routes.contains(&stray));
    assert!(core.orphans.is_empty());
}

/// A store backend whose writes fail while `full` is set, like a state
/// directory on a full disk.
struct FullDisk {
    inner: routerd_store::MemBackend,
    full: std::sync::atomic::AtomicBool,
}

impl routerd_store::Backend for FullDisk {
    fn get(
        &self,
        ns: routerd_store::Namespace,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, routerd_store::StoreError> {
        self.inner.get(ns, key)
    }
    fn scan(
        &self,
        ns: routerd_store::Namespace,
        prefix: &[u8],
    ) -> Result<routerd_store::Entries, routerd_store::StoreError> {
        self.inner.scan(ns, prefix)
    }
    fn apply(&self, batch: routerd_store::Batch) -> Result<(), routerd_store::StoreError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(routerd_store::StoreError::Backend(
                "No space left on device (os error 28)".into(),
            ));
        }
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), routerd_store::StoreError> {
        self.inner.flush()
    }
}

#[tokio::test]
async fn a_full_state_dir_is_reported_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let backend = Arc::new(FullDisk {
        inner: routerd_store::MemBackend::new(),
        full: std::sync::atomic::AtomicBool::new(false),
    });
    let store = Arc::new(Store::open(backend.clone()).unwrap());
    let clock = Arc::new(Clock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
    )));
    let options = Options {
        config_path: dir.path().join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store, clock).unwrap();
    backend
        .full
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s2 = shared.clone();
    let task = tokio::spawn(async move {
        daemon::run(
            s2,
            SharedMemDataplane::default(),
            links(true),
            NoHealth,
            None,
            |_| {},
            async {
                let _ = stop_rx.await;
            },
        )
        .await;
    });
    let handler = Handler(shared.clone());
    let status = |h: Handler| async move {
        h.handle(ControlRequest::Status).await.unwrap()["status"].clone()
    };
    let mut st = serde_json::Value::Null;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        st = status(handler.clone()).await;
        if !st["storeError"].is_null() {
            break;
        }
    }
    assert_eq!(st["phase"], "Degraded", "{st}");
    assert!(
        st["storeError"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{st}"
    );
    assert!(
        shared
            .metrics()
            .await
            .contains("routerd_store_failures_total")
    );
    // Space comes back: the retried step writes everything it could not.
    backend
        .full
        .store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        st = status(handler.clone()).await;
        if st["storeError"].is_null() {
            break;
        }
    }
    assert!(st["storeError"].is_null(), "{st}");
    let snap = shared.store().status_snapshot().unwrap();
    assert_eq!(
        snap["net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default"]["phase"],
        "Applied"
    );
    let _ = stop_tx.send(());
    task.await.unwrap();
}

/// Two claims; `web.2` captures on a raw kernel name that does not exist.
const CLAIMS: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: onprem}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec: {ifname: lan0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: overlay-hc}
      spec: {target: 10.255.0.2, interval: 5s}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: OverlayPeer
      metadata: {name: cloud}
      spec: {role: onprem, nodeID: op1, underlay: {type: route, interface: vx0}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {name: cloud-net}
      spec: {peerRef: cloud, healthCheckRef: overlay-hc, destinationCIDRs: [10.20.0.0/16]}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: AddressMobilityDomain
      metadata: {name: lan}
      spec: {prefix: 192.168.10.0/24, mode: selective-address, peerRef: cloud}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {name: web.1}
      spec:
        domainRef: lan
        address: 192.168.10.50/32
        ownerSide: cloud
        capture: {type: proxy-arp, interface: lan}
        delivery: {peerRef: cloud, mode: route}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {name: web.2}
      spec:
        domainRef: lan
        address: 192.168.10.51/32
        ownerSide: cloud
        capture: {type: proxy-arp, interface: nosuch0}
        delivery: {peerRef: cloud, mode: route}
"#;

#[test]
fn a_claim_on_a_missing_device_is_reported_alone_and_the_other_is_captured() {
    use routerd_engine::core::Core;
    let store = Store::in_memory();
    let mut core = Core::new(daemon::load_config("c", CLAIMS).unwrap());
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let mut hc = routerd_model::Status::new();
    hc.insert("phase".into(), serde_json::json!("Healthy"));
    hc.insert(
        "lastCheckedAt".into(),
        serde_json::json!((now - chrono::Duration::seconds(1)).to_rfc3339()),
    );
    core.observe_one("net.routerd.net/v1alpha1/HealthCheck/overlay-hc".into(), hc);
    let mut dp = MemDataplane::new();
    dp.links = Some(["lo", "lan0", "vx0"].map(String::from).into());
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(r.dataplane_error.is_none(), "{:?}", r.dataplane_error);
    let bad = "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web.2";
    let good = "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web.1";
    // Only the good claim's entry is in the kernel.
    let entries: Vec<String> = dp
        .neigh_proxies
        .iter()
        .map(|p| format!("{} dev {}", p.address, p.device))
        .collect();
    assert_eq!(entries, ["192.168.10.50 dev lan0"]);
    let snap = store.status_snapshot().unwrap();
    assert_eq!(snap[good]["captureStatus"], "Captured", "{:?}", snap[good]);
    assert_eq!(snap[bad]["phase"], "Degraded", "{:?}", snap[bad]);
    assert_eq!(snap[bad]["reason"], "DeviceNotReady");
    assert_eq!(snap[bad]["captureStatus"], "Blocked");
    assert!(
        snap[bad]["message"]
            .as_str()
            .unwrap()
            .contains("\"nosuch0\" does not exist"),
        "{:?}",
        snap[bad]
    );
    let failed: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.type_ == "routerd.dataplane.owner.failed")
        .map(|e| e.resource.name.clone())
        .collect();
    assert_eq!(failed, ["web.2"]);
}
