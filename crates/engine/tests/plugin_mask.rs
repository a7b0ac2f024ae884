#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A plugin's dynamic part masks a static fallback route; when the part
//! expires (the plugin keeps failing) the static route returns by itself.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerd_engine::daemon::{self, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::SharedMemDataplane;
use routerd_store::{PartState, Store};

fn routes_to_vpc(dp: &SharedMemDataplane) -> Vec<(u32, Option<String>)> {
    let mem = dp.lock();
    mem.routes
        .iter()
        .filter(|r| r.destination.to_string() == "10.40.0.0/16")
        .map(|r| (r.metric, r.device.clone()))
        .collect()
}

fn wait(dp: &SharedMemDataplane, want: &[(u32, Option<String>)], secs: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if routes_to_vpc(dp) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_mask_hides_the_fallback_until_its_part_expires() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.path().join("cloud-inventory");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/plugins/cloud-inventory.py"
        ),
        &plugin,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inventory = dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        r#"{"vpcs": [{"name": "cloud-vpc", "cidr": "10.40.0.0/16", "gateway": "192.0.2.9"}]}"#,
    )
    .unwrap();
    let config = format!(
        r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: cloud-edge}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan}}
      spec: {{ifname: ens18}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: overlay}}
      spec: {{ifname: wg0}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-fallback}}
      spec: {{destination: 10.40.0.0/16, device: ens18, gateway: 198.51.100.1, metric: 200}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: cloud-inventory}}
      spec:
        executable: {plugin}
        timeout: 5s
        env: {{OVERLAY_DEVICE: wg0, FALLBACK_ROUTE: cloud-fallback, PLUGIN_TTL: 3s, CLOUD_INVENTORY: {inventory}}}
        triggers: [{{type: interval, every: 1s}}]
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {{name: allow-mask}}
      spec:
        allow:
          - source: Plugin/cloud-inventory
            operations: [mask]
            targets: [{{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: cloud-fallback}}]
"#,
        plugin = plugin.display(),
        inventory = inventory.display()
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let store = Arc::new(Store::in_memory());
    let options = Options {
        config_path: dir.path().join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store.clone(), Arc::new(SystemClock)).unwrap();
    let dp = SharedMemDataplane::default();
    let mut links = BTreeMap::new();
    for (n, i) in [("ens18", 2), ("wg0", 3)] {
        links.insert(
            n.to_string(),
            LinkInfo {
                index: i,
                up: true,
                carrier: true,
                ..Default::default()
            },
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        shared.clone(),
        dp.clone(),
        StaticLinks(links),
        NoHealth,
        None,
        |_| {},
        async {
            let _ = stop_rx.await;
        },
    ));

    let dp2 = dp.clone();
    // The plugin's part masks the fallback and adds the overlay route.
    let masked = tokio::task::spawn_blocking(move || wait(&dp2, &[(50, Some("wg0".into()))], 15))
        .await
        .unwrap();
    assert!(masked, "mask not applied: {:?}", routes_to_vpc(&dp));
    let parts = store.parts_of("Plugin/cloud-inventory").unwrap();
    assert!(parts.iter().any(|p| p.state == PartState::Active));

    // The plugin starts failing: its last part stays until it expires (3 s),
    // then the fallback returns.
    std::fs::write(&inventory, "not json").unwrap();
    let t = Instant::now();
    let dp2 = dp.clone();
    let restored =
        tokio::task::spawn_blocking(move || wait(&dp2, &[(200, Some("ens18".into()))], 15))
            .await
            .unwrap();
    assert!(
        restored,
        "fallback did not return: {:?}",
        routes_to_vpc(&dp)
    );
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "the previous good part must be kept until its expiry"
    );
    let events = store
        .events(&routerd_store::EventQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert!(
        events.iter().any(|e| e.type_ == "routerd.plugin.run.failed"
            || e.type_ == "routerd.dynamic.part.rejected")
    );
    let _ = stop_tx.send(());
    task.await.unwrap();
}
