#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Plugin `event` triggers fire on the events the daemon itself emits
//! (here `routerd.ipv4.route.installed`, from the IPv4Route follower), not
//! only on events of plugin runs; the plugin is told the topic, the
//! resource and the event's attributes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use routerd_engine::daemon::{self, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::StaticLinks;
use routerd_render::MemDataplane;
use routerd_store::Store;

const RESULT: &str = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"5m","resources":[]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_event_triggers_the_plugin_with_its_topic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = d.join("listener");
    // Records the request it was given (the trigger is in it).
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ncat >> '{d}/requests'\necho >> '{d}/requests'\nprintf '%s\\n' '{RESULT}'\n",
            d = d.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: events}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: bh}}
      spec: {{type: blackhole, destination: 10.99.0.0/16}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: listener}}
      spec:
        executable: {plugin}
        timeout: 10s
        triggers: [{{type: event, topic: routerd.ipv4.route.installed}}]
"#,
        plugin = plugin.display()
    );
    std::fs::write(d.join("config.yaml"), config).unwrap();
    let options = Options {
        config_path: d.join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    };
    let shared = Shared::new(options, Arc::new(Store::in_memory()), Arc::new(SystemClock)).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        shared.clone(),
        MemDataplane::default(),
        StaticLinks(BTreeMap::new()),
        NoHealth,
        None,
        |_| {},
        async {
            let _ = stop_rx.await;
        },
    ));
    let requests = d.join("requests");
    let mut text = String::new();
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = std::fs::read_to_string(&requests).unwrap_or_default();
        if text.contains("routerd.ipv4.route.installed") {
            break;
        }
    }
    let _ = stop_tx.send(());
    task.await.unwrap();
    let trigger = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|req| req["spec"]["trigger"].clone())
        .find(|t| t["topic"] == "routerd.ipv4.route.installed")
        .unwrap_or_else(|| panic!("the plugin never ran for the core event; requests: {text}"));
    assert_eq!(trigger["type"], "event", "{trigger}");
    assert_eq!(trigger["resource"], "IPv4Route/bh", "{trigger}");
    assert_eq!(
        trigger["attributes"]["destination"], "10.99.0.0/16",
        "{trigger}"
    );
    assert_eq!(trigger["attributes"]["type"], "blackhole", "{trigger}");
}
