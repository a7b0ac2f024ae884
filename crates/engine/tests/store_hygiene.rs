#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon stores an unchanged configuration once, however often it is
//! restarted with it or it is applied again (issue #12, item 6).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerd_api::control::ApplyRequest;
use routerd_engine::control::{ControlHandler, ControlRequest};
use routerd_engine::daemon::{Handler, Options, Shared, WallClock};
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
      kind: IPv4Route
      metadata: {name: bh}
      spec: {type: blackhole, destination: 10.9.0.0/16}
"#;

struct Clock;
impl WallClock for Clock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

fn options(dir: &std::path::Path) -> Options {
    Options {
        config_path: dir.join("config.yaml"),
        resync: Duration::from_secs(3600),
        ..Options::default()
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

#[test]
fn a_thousand_restarts_with_the_same_file_store_one_generation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let state = dir.path().join("state");
    let store = Arc::new(Store::open_sled(&state).unwrap());
    let first = Shared::new(options(dir.path()), store.clone(), Arc::new(Clock)).unwrap();
    drop(first);
    store.flush().unwrap();
    let before = dir_size(&state);
    for _ in 0..1000 {
        let shared = Shared::new(options(dir.path()), store.clone(), Arc::new(Clock)).unwrap();
        drop(shared);
        store.flush().unwrap();
    }
    let after = dir_size(&state);
    assert_eq!(store.generations(10).unwrap().len(), 1);
    assert!(
        after <= before + 64 * 1024,
        "the store grew from {before} to {after} bytes over 1,000 restarts"
    );
}

#[tokio::test]
async fn applying_the_same_configuration_again_keeps_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
    let store = Arc::new(Store::in_memory());
    let shared = Shared::new(options(dir.path()), store.clone(), Arc::new(Clock)).unwrap();
    let h = Handler(shared);
    let candidate = "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: bh2}\nspec: {type: blackhole, destination: 10.10.0.0/16}\n";
    let mut generations = Vec::new();
    for _ in 0..20 {
        let v = h
            .handle(ControlRequest::Apply(ApplyRequest {
                candidate_yaml: candidate.into(),
                replace: true,
                // No loop runs here: do not wait for a step.
                timeout_seconds: Some(0),
                ..Default::default()
            }))
            .await
            .unwrap();
        generations.push(v["result"]["generation"].as_u64().unwrap());
    }
    assert!(
        generations.iter().all(|g| *g == generations[0]),
        "{generations:?}"
    );
    // The startup generation and the applied one.
    assert_eq!(store.generations(100).unwrap().len(), 2);
}
