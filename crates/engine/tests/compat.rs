//! routerd compatibility in the daemon: `--unknown-fields=warn` loads a
//! routerd file, every warning reaches the event log, unmanaged routerd
//! kinds are listed by the control API's plan, and a PPPoE password never
//! leaves through `describe`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use routerd_api::control::CandidateRequest;
use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{self, Handler, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::StaticLinks;
use routerd_model::UnknownFields;
use routerd_render::SharedMemDataplane;
use routerd_store::{EventQuery, Store};

const CONFIG: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: edge}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan}
      spec:
        ifname: eth0
        role: untrust
    - apiVersion: net.routerd.net/v1alpha1
      kind: PPPoESession
      metadata: {name: isp}
      spec: {interface: wan, username: u, password: hunter2}
    - apiVersion: firewall.routerd.net/v1alpha1
      kind: FirewallZone
      metadata: {name: untrust}
      spec: {interfaces: [wan]}
";

fn options(dir: &std::path::Path, mode: UnknownFields) -> Options {
    Options {
        config_path: dir.join("config.yaml"),
        resync: Duration::from_secs(3600),
        unknown_fields: mode,
    }
}

#[tokio::test]
async fn warn_mode_loads_a_routerd_file_and_logs_each_warning_as_an_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();

    let err = Shared::new(
        options(dir.path(), UnknownFields::Error),
        Arc::new(Store::in_memory()),
        Arc::new(SystemClock),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("spec.role is not a known field"), "{err}");
    assert!(err.contains("--unknown-fields=warn"), "{err}");

    let store = Arc::new(Store::in_memory());
    let shared = Shared::new(
        options(dir.path(), UnknownFields::Warn),
        store.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let events = store
        .events(&EventQuery {
            topic: Some("routerd.config.warning".into()),
            ascending: true,
            ..EventQuery::default()
        })
        .unwrap();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].contains("config.yaml:11:9: warning:"),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("routerd ignores this field too; it has no effect"));
    assert!(messages[1].contains(
        "`firewall.routerd.net/v1alpha1/FirewallZone/untrust` is a routerd kind this daemon does not manage; it is kept and ignored"
    ));
    assert!(events.iter().all(|e| e.severity == "warning"));

    // One step, so describe sees the effective resources.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let steps = Arc::new(std::sync::Mutex::new(0usize));
    let steps2 = steps.clone();
    let s2 = shared.clone();
    let task = tokio::spawn(async move {
        daemon::run(
            s2,
            SharedMemDataplane::default(),
            StaticLinks(Default::default()),
            NoHealth,
            None,
            move |_| *steps2.lock().unwrap() += 1,
            async {
                let _ = stop_rx.await;
            },
        )
        .await;
    });
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if *steps.lock().unwrap() >= 1 {
            break;
        }
    }
    assert!(*steps.lock().unwrap() >= 1, "no step ran");
    let h = Handler(shared.clone());
    let plan = h
        .handle(ControlRequest::Plan(CandidateRequest::default()))
        .await
        .unwrap();
    assert_eq!(plan["unmanaged"][0]["kind"], "FirewallZone", "{plan}");
    let text = plan.to_string();
    assert!(!text.contains("hunter2"), "{text}");

    let described = h
        .handle(ControlRequest::Describe {
            target: "PPPoESession/isp".into(),
            events_limit: 10,
        })
        .await
        .unwrap()
        .to_string();
    assert!(described.contains("\"username\":\"u\""), "{described}");
    assert!(!described.contains("hunter2"), "{described}");
    let _ = stop_tx.send(());
    task.await.unwrap();
}
