#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One plugin never runs twice at once, whatever starts it: bursts of ten
//! concurrent control-API runs (`routerctl plugin run`) land on a plugin
//! that also runs every second on its trigger. The plugin takes a lock
//! directory for the length of its run and records an overlap if the lock
//! is taken; parts are numbered without a gap or a repeat across both paths.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerd_api::control::PluginRunRequest;
use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{self, Handler, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::MemDataplane;
use routerd_store::{EventQuery, Store};

const RESULT: &str = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"5m","resources":[]}}"#;

fn run_request() -> ControlRequest {
    ControlRequest::PluginRun(PluginRunRequest {
        api_version: None,
        kind: None,
        name: "slow".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_manual_and_triggered_runs_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = d.join("slow");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ncat >/dev/null\n\
             if ! mkdir '{d}/lock' 2>/dev/null; then echo overlap >> '{d}/overlaps'; exit 1; fi\n\
             echo start >> '{d}/log'\nsleep 0.5\necho end >> '{d}/log'\n\
             rmdir '{d}/lock'\nprintf '%s\\n' '{RESULT}'\n",
            d = d.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: single-flight}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan}}
      spec: {{ifname: ens18}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: slow}}
      spec:
        executable: {plugin}
        timeout: 10s
        triggers: [{{type: interval, every: 1s}}]
"#,
        plugin = plugin.display()
    );
    std::fs::write(d.join("config.yaml"), config).unwrap();
    let store = Arc::new(Store::in_memory());
    let options = Options {
        config_path: d.join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    };
    let shared = Shared::new(options, store.clone(), Arc::new(SystemClock)).unwrap();
    let mut links = BTreeMap::new();
    links.insert(
        "ens18".to_string(),
        LinkInfo {
            index: 2,
            up: true,
            carrier: true,
            ..Default::default()
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(
        shared.clone(),
        MemDataplane::default(),
        StaticLinks(links),
        NoHealth,
        None,
        |_| {},
        async {
            let _ = stop_rx.await;
        },
    ));

    // Bursts of ten concurrent manual runs, spread over the trigger's
    // period so some land while a triggered run is in progress.
    let mut accepted_manual = 0;
    let mut refused = 0;
    for burst in 0..8 {
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let h = Handler(shared.clone());
                tokio::spawn(async move { h.handle(run_request()).await })
            })
            .collect();
        let mut ok = 0;
        for c in calls {
            match c.await.unwrap() {
                Ok(doc) => {
                    assert_eq!(doc["accepted"], true, "{doc}");
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(e.status, 409, "{e:?}");
                    assert!(
                        e.message.starts_with("plugin slow is already running ("),
                        "{}",
                        e.message
                    );
                    refused += 1;
                }
            }
        }
        assert!(ok <= 1, "burst {burst}: {ok} of 10 concurrent runs ran");
        accepted_manual += ok;
        tokio::time::sleep(Duration::from_millis(170 * (burst % 3 + 1))).await;
    }
    // However the bursts fell, a manual run goes through once the plugin is
    // free.
    let t = Instant::now();
    while accepted_manual == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no manual run ever ran"
        );
        if Handler(shared.clone()).handle(run_request()).await.is_ok() {
            accepted_manual += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused >= 70, "{refused} refusals in 8 bursts of 10");

    // Let the trigger run at least twice more, then stop.
    let events = |ty: &str| {
        store
            .events(&EventQuery {
                limit: Some(1000),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .filter(|e| e.type_ == ty)
            .collect::<Vec<_>>()
    };
    let t = Instant::now();
    while events("routerd.plugin.run.started")
        .iter()
        .filter(|e| e.attributes.get("plugin.trigger").map(String::as_str) == Some("interval"))
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the trigger never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The runs' output reaches the store through the loop (slowly on a
    // loaded machine): wait for it rather than for a fixed time.
    let t = Instant::now();
    while events("routerd.dynamic.part.accepted").len() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the runs' parts never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap();

    assert!(
        !d.join("overlaps").exists(),
        "two runs of one plugin overlapped"
    );
    let log = std::fs::read_to_string(d.join("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    for pair in lines.chunks(2) {
        assert_eq!(pair.first().copied(), Some("start"), "{log}");
        // The very last run may have been cut short by the shutdown.
        if pair.len() == 2 {
            assert_eq!(pair[1], "end", "{log}");
        }
    }

    // Both paths ran, and every accepted part has its own generation: no
    // two runs were numbered from the same previous generation.
    let triggers: Vec<String> = events("routerd.plugin.run.started")
        .iter()
        .filter_map(|e| e.attributes.get("plugin.trigger").cloned())
        .collect();
    assert!(triggers.iter().any(|t| t == "manual"), "{triggers:?}");
    assert!(triggers.iter().any(|t| t == "interval"), "{triggers:?}");
    let mut generations: Vec<i64> = events("routerd.dynamic.part.accepted")
        .iter()
        .map(|e| e.attributes["dynamic.generation"].parse().unwrap())
        .collect();
    assert!(generations.len() >= 3, "{generations:?}");
    generations.sort_unstable();
    let want: Vec<i64> = (1..=i64::try_from(generations.len()).unwrap()).collect();
    assert_eq!(generations, want, "a generation was skipped or used twice");
}
