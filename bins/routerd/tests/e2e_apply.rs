#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `routerd serve` in a namespace lab (root only): parallel applies through
//! the control socket leave the kernel, the daemon and the files in
//! agreement, the operator's file untouched; SIGHUP outcomes show in
//! `status.lastReload`.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::time::Duration;

use common::{Daemon, sh};
use routerd_api::client::Client;
use routerd_api::control::ApplyRequest;
use routerd_lab::wait_until;
use serde_json::Value;

fn route(i: u32) -> String {
    format!(
        "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {{name: api-{i:02}}}\nspec: {{type: blackhole, destination: 10.200.{i}.0/24}}\n"
    )
}

fn kernel_api_routes(lab: &routerd_lab::Lab) -> Vec<String> {
    let mut v: Vec<String> = sh(lab, "ip", &["route", "show", "proto", "122"])
        .lines()
        .filter(|l| l.contains("10.200."))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs root: network namespaces"]
fn parallel_applies_agree_with_the_kernel_and_spare_the_operators_file() {
    let lab = common::lab("rapply");
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    let config = dir.path().join("config.yaml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&config, Some(0), Some(4242)).unwrap();
    let original = std::fs::read(&config).unwrap();
    d.start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = Client::new(d.socket());
    wait_until(
        || {
            rt.block_on(c.get::<Value>("/status"))
                .is_ok_and(|v| v["status"]["phase"] == "Ready")
        },
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("not ready; log:\n{}", d.log()));

    let results: Vec<Value> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            let c = Client::new(d.socket());
            set.spawn(async move {
                c.post::<_, Value>(
                    "/apply",
                    &ApplyRequest {
                        candidate_yaml: route(i),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap());
        }
        out
    });
    for r in &results {
        assert_eq!(r["result"]["phase"], "Applied", "{r:#}\nlog:\n{}", d.log());
    }
    let mut want: Vec<String> = (0..20).map(|i| format!("10.200.{i}.0/24")).collect();
    want.sort();
    assert_eq!(kernel_api_routes(&lab), want);
    let listed: Value = rt.block_on(c.get("/get?subject=IPv4Route")).unwrap();
    let api = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["name"].as_str().unwrap().starts_with("api-"))
        .count();
    assert_eq!(api, 20);
    let managed = std::fs::read_to_string(dir.path().join("config.d/50-routerctl.yaml")).unwrap();
    assert_eq!(managed.matches("kind: IPv4Route").count(), 20);
    assert_eq!(std::fs::read(&config).unwrap(), original);
    let m = std::fs::metadata(&config).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert_eq!(m.gid(), 4242);

    // SIGHUP with a broken file: rejected, visible in status; the kernel stays.
    std::fs::write(&config, b"apiVersion: routerd.net/v1alpha1\nkind: Router\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        || {
            rt.block_on(c.get::<Value>("/status"))
                .is_ok_and(|v| v["status"]["lastReload"]["result"] == "Rejected")
        },
        Duration::from_secs(10),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no rejected reload; log:\n{}", d.log()));
    assert_eq!(kernel_api_routes(&lab), want);
    // Restored: accepted.
    std::fs::write(&config, &original).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        || {
            rt.block_on(c.get::<Value>("/status"))
                .is_ok_and(|v| v["status"]["lastReload"]["result"] == "Accepted")
        },
        Duration::from_secs(10),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no accepted reload; log:\n{}", d.log()));
    d.stop();
}
