#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End to end (root only), with the real `routerd serve` in the lab's router
//! namespace: one plugin never runs twice at once through the control
//! socket, and a plugin run does not outlive a daemon killed with SIGKILL:
//! the plugin dies with it and what it forked is killed when routerd starts
//! again. A clean stop (SIGTERM) leaves nothing behind either.
//!
//! The same guarantees are tested without namespaces in
//! `crates/engine/tests/plugin_single_flight.rs` and
//! `crates/plugin/tests/lifetime.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Daemon;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use routerd_api::client::{Client, ClientError};
use routerd_api::control::PluginRunRequest;
use serde_json::Value;

/// SIGKILLs the plugin process groups seen, when the test ends.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pg in &self.0 {
            let _ = killpg(Pid::from_raw(*pg), Signal::SIGKILL);
        }
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn eventually(d: &Daemon<'_>, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let t = Instant::now();
    while !check() {
        assert!(
            t.elapsed() < limit,
            "{what} not seen within {limit:?}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `leader grandchild` pairs the forking plugin wrote, one per run.
fn runs(dir: &Path) -> Vec<(i32, i32)> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn plugin_runs_never_overlap_and_die_with_a_killed_daemon() {
    let lab = common::lab("rplife");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    // `forker` runs on a 1 s trigger, starts a long sleep and waits for it:
    // each run lasts until its 60 s timeout or until it is killed.
    executable(
        &d.join("forker"),
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho \"$$ $!\" >> '{}/runs'\nwait\n",
            d.display()
        ),
    );
    // `slow` runs only when asked, for 1 s, and notes any overlap.
    let result = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"5m","resources":[]}}"#;
    executable(
        &d.join("slow"),
        &format!(
            "#!/bin/sh\ncat >/dev/null\n\
             if ! mkdir '{d}/lock' 2>/dev/null; then echo overlap >> '{d}/overlaps'; exit 1; fi\n\
             sleep 1\nrmdir '{d}/lock'\nprintf '%s\\n' '{result}'\n",
            d = d.display()
        ),
    );
    let extra = format!(
        r#"    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: forker}}
      spec:
        executable: {d}/forker
        timeout: 60s
        triggers: [{{type: interval, every: 1s}}]
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: slow}}
      spec: {{executable: {d}/slow, timeout: 10s}}
"#,
        d = d.display()
    );
    let mut reap = Reap(Vec::new());
    let mut daemon = Daemon::new(&lab, d, &extra);
    daemon.start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let socket = daemon.socket();
    eventually(
        &daemon,
        "the control socket",
        Duration::from_secs(20),
        || {
            rt.block_on(Client::new(&socket).get::<Value>("/status"))
                .is_ok()
        },
    );

    // 1. Ten concurrent `plugin run slow` requests: one runs, nine are
    //    refused as already running.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = Client::new(&socket);
            rt.spawn(async move {
                c.post::<_, Value>(
                    "/plugin/run",
                    &PluginRunRequest {
                        api_version: None,
                        kind: None,
                        name: "slow".into(),
                    },
                )
                .await
            })
        })
        .collect();
    let results: Vec<Result<Value, ClientError>> =
        calls.into_iter().map(|c| rt.block_on(c).unwrap()).collect();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Ok(doc) if doc["accepted"] == true))
        .count();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(ClientError::Api { status: 409, message }) if message.contains("plugin slow is already running")))
        .count();
    assert_eq!((accepted, busy), (1, 9), "{results:?}");
    assert!(!d.join("overlaps").exists());

    // 2. A forker run is in progress and its process group is on record.
    eventually(&daemon, "a forker run", Duration::from_secs(20), || {
        !runs(d).is_empty()
    });
    let (leader, grandchild) = runs(d)[0];
    reap.0.push(leader);
    let records: Vec<_> = std::fs::read_dir(d.join("state/plugin-groups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(records, [format!("{leader}.json")]);

    // 3. SIGKILL: the plugin dies with routerd; its own child does not.
    daemon.kill9();
    eventually(
        &daemon,
        "the plugin's death",
        Duration::from_secs(5),
        || !alive(leader),
    );
    assert!(
        alive(grandchild),
        "the grandchild died with routerd; nothing is left for the sweep to prove"
    );

    // 4. The next routerd kills what the previous one's plugin left.
    daemon.start();
    eventually(
        &daemon,
        "the leftover grandchild's death",
        Duration::from_secs(20),
        || !alive(grandchild),
    );
    assert!(
        daemon
            .log()
            .contains("killed the process group of a plugin run left behind by a previous routerd"),
        "{}",
        daemon.log()
    );

    // 5. A clean stop kills the run in progress and everything it started.
    eventually(&daemon, "a new forker run", Duration::from_secs(20), || {
        runs(d).len() >= 2
    });
    let (leader2, grandchild2) = runs(d)[1];
    reap.0.push(leader2);
    daemon.stop();
    for pid in [leader2, grandchild2] {
        eventually(
            &daemon,
            "the end of the last run",
            Duration::from_secs(5),
            || !alive(pid),
        );
    }
    assert!(
        std::fs::read_dir(d.join("state/plugin-groups"))
            .unwrap()
            .next()
            .is_none(),
        "a clean stop left a process-group record"
    );
}
