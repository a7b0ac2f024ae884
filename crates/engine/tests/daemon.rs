#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The reconcile loop on an in-memory dataplane and store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{self, Handler, Key, NoHealth, Options, Shared, WallClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::{ApplyError, Dataplane, DataplaneError, MemDataplane, Observed, Plan};
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

#[derive(Clone, Default)]
struct SharedDp(Arc<Mutex<MemDataplane>>);
impl Dataplane for SharedDp {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.0.lock().unwrap().observe()
    }
    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        self.0.lock().unwrap().apply(plan)
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
    dp: SharedDp,
    wan1_up: bool,
) -> (Arc<Shared>, Vec<usize>) {
    let clock = Arc::new(Clock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
    )));
    let options = Options {
        config_path: dir.join("config.yaml"),
        resync: Duration::from_secs(3600),
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
    let dp = SharedDp::default();

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
        let mem = dp.0.lock().unwrap();
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
    let executed_before = dp.0.lock().unwrap().ops_executed;
    let (_shared, ops) = run_once(dir.path(), store.clone(), dp.clone(), true).await;
    assert_eq!(
        ops.iter().sum::<usize>(),
        0,
        "restart must not flap owned state: {ops:?}"
    );
    assert_eq!(dp.0.lock().unwrap().ops_executed, executed_before);
}

#[tokio::test]
async fn carrier_loss_moves_the_default_route_to_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let dp = SharedDp::default();
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
    let mem = dp.0.lock().unwrap();
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
    let (shared, _) = run_once(dir.path(), store.clone(), SharedDp::default(), true).await;
    daemon::commit_generation(&shared).await;
    drop(shared);
    std::fs::write(dir.path().join("config.yaml"), "apiVersion: bogus\n").unwrap();
    let clock = Arc::new(Clock(Mutex::new(Utc::now())));
    let options = Options {
        config_path: dir.path().join("config.yaml"),
        resync: Duration::from_secs(60),
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

#[test]
fn a_failed_apply_leaves_the_last_good_dataplane_in_place() {
    use routerd_engine::core::Core;
    let old_route = "    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {name: bh}\n      spec: {type: blackhole, destination: 10.9.0.0/16}\n";
    let new_nat = "    - apiVersion: net.routerd.net/v1alpha1\n      kind: NAT44Rule\n      metadata: {name: lan2}\n      spec: {type: masquerade, egressInterface: wan2, sourceRanges: [192.168.60.0/24]}\n";
    let store = Store::in_memory();
    let mut core = Core::new(daemon::load_config("c", &format!("{CONFIG}{old_route}")).unwrap());
    let mut links = BTreeMap::new();
    links.insert(
        "wan1".to_string(),
        LinkInfo {
            index: 2,
            up: true,
            carrier: true,
            ..Default::default()
        },
    );
    links.insert(
        "wan2".to_string(),
        LinkInfo {
            index: 3,
            up: true,
            carrier: true,
            ..Default::default()
        },
    );
    core.observe(routerd_engine::links::statuses(core.startup(), &links));
    let mut dp = MemDataplane::new();
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap();
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(r.dataplane_error.is_none());
    let good_routes = dp.routes.clone();
    let good_nft = dp.nft_text();

    // New config: the NAT table changes (replaced first) and the blackhole
    // route goes (deleted after the tables); the delete fails.
    core.set_startup(daemon::load_config("c", &format!("{CONFIG}{new_nat}")).unwrap());
    dp.fail_at = Some(1);
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(
        r.dataplane_error.is_some(),
        "the injected failure must surface"
    );
    assert_eq!(dp.routes, good_routes, "routes must be the last good ones");
    assert_eq!(
        dp.nft_text(),
        good_nft,
        "the replaced nft table must be restored"
    );
    // The next step (no fault) converges on the new config.
    let r = core.step(&mut dp, &store, now).unwrap();
    assert!(r.dataplane_error.is_none());
    assert!(
        !dp.routes
            .iter()
            .any(|x| x.destination.to_string() == "10.9.0.0/16")
    );
    assert!(
        dp.nft_text()
            .iter()
            .any(|(_, t)| t.contains("192.168.60.0/24"))
    );
}
