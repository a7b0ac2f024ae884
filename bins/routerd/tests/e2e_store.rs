#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end (root): a damaged state store stops `routerd serve` with one
//! paragraph naming the directory and the remedy (no panic, no restart
//! loop material), and `--recover-state` starts afresh and converges.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, sh};
use routerd_lab::{ChildId, ChildOutput, Lab, Node, wait_until};

fn converged(lab: &Lab) -> bool {
    let routes = sh(lab, "ip", &["route", "show", "table", "all"]);
    let tables = sh(lab, "nft", &["list", "tables"]);
    routes.contains("default via 198.18.1.2 dev wan1")
        && routes.contains("table 110")
        && tables.contains("routerd_nat")
        && tables.contains("routerd_default_route")
}

fn owned_routes(lab: &Lab) -> Vec<String> {
    let mut v: Vec<String> = sh(
        lab,
        "ip",
        &["route", "show", "table", "all", "proto", "122"],
    )
    .lines()
    .map(str::to_string)
    .collect();
    v.sort();
    v
}

/// `routerd serve` as `Daemon::start` runs it, plus `extra` arguments, with
/// its output in `log`.
fn serve(lab: &Lab, dir: &Path, extra: &[&str], log: &Path) -> ChildId {
    let mut args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--config".into(),
        dir.join("config.yaml").into(),
        "--state-dir".into(),
        dir.join("state").into(),
        "--socket".into(),
        dir.join("routerd.sock").into(),
    ];
    args.extend(extra.iter().map(Into::into));
    lab.spawn(
        Node::Router,
        env!("CARGO_BIN_EXE_routerd"),
        args,
        ChildOutput::File(log.to_path_buf()),
    )
    .unwrap()
}

/// Starts `routerd serve` on the damaged store and checks that it refuses
/// to start with the paragraph and without a panic.
fn refuses(lab: &Lab, dir: &Path, what: &str) {
    let log = dir.join(format!("refused-{what}.log"));
    let id = serve(lab, dir, &[], &log);
    let mut status = None;
    wait_until(
        || {
            status = lab.child_status(id).unwrap();
            status.is_some()
        },
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("{what}: routerd kept running on a damaged store"));
    let status = status.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{what}: {status}; log:\n{text}");
    let store = dir.join("state").join("store");
    assert!(
        text.contains(&format!(
            "cannot open the state store in {}",
            store.display()
        )),
        "{what}: log:\n{text}"
    );
    assert!(
        text.contains("routerd serve --recover-state"),
        "{what}: log:\n{text}"
    );
    assert!(
        !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
        "{what}: a panic escaped; log:\n{text}"
    );
    eprintln!("{what}: {}", text.trim());
    let _ = lab.stop_child(id, Duration::from_secs(1));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_damaged_store_is_reported_and_recover_state_starts_afresh() {
    let lab = common::lab("rstore");
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    d.start();
    wait_until(
        || converged(&lab),
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no convergence; log:\n{}", d.log()));
    let before = owned_routes(&lab);
    d.stop();

    let db = dir.path().join("state").join("store").join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0x5a; len]).unwrap();
    refuses(&lab, dir.path(), "garbage");
    std::fs::write(&db, b"").unwrap();
    refuses(&lab, dir.path(), "truncated");

    let log = dir.path().join("recover.log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    // The kernel routes and the socket file are left from the run before:
    // only this run's "ready" says it listens.
    let readies = || text().matches("routerd::serve: ready").count();
    let id = serve(&lab, dir.path(), &["--recover-state"], &log);
    let ok = wait_until(
        || readies() > 0 && converged(&lab),
        Duration::from_secs(20),
        Duration::from_millis(50),
    );
    assert!(
        ok.is_ok(),
        "no convergence after recovery; log:\n{}",
        text()
    );
    let moved: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store.broken-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = routerd_api::client::Client::new(dir.path().join("routerd.sock"));
    let ev: serde_json::Value = rt
        .block_on(c.get("/events?since-id=0&topic=routerd.store.recovered&limit=10"))
        .unwrap();
    let items = ev["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{ev}");
    assert_eq!(items[0]["severity"], "warning");
    assert!(
        items[0]["attributes"]["movedTo"]
            .as_str()
            .unwrap()
            .ends_with(&moved[0]),
        "{ev}"
    );
    // The kernel ends as before: nothing duplicated, nothing left behind.
    assert_eq!(owned_routes(&lab), before);
    let st = lab.stop_child(id, Duration::from_secs(10)).unwrap();
    assert!(st.success(), "{st}; log:\n{}", text());

    // The flag left in place does nothing to a healthy store. The log and
    // the socket file are still there from the run before: wait for this
    // run's own "ready" (stopped earlier, it dies of SIGTERM before its
    // handler is installed).
    let before_ready = readies();
    let id = serve(&lab, dir.path(), &["--recover-state"], &log);
    wait_until(
        || readies() > before_ready,
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no ready; log:\n{}", text()));
    let st = lab.stop_child(id, Duration::from_secs(10)).unwrap();
    assert!(st.success(), "{st}; log:\n{}", text());
    let moved_now = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("store.broken-")
        })
        .count();
    assert_eq!(moved_now, 1, "a healthy store must not be moved");
    assert!(text().contains("nothing to recover"), "log:\n{}", text());
}
