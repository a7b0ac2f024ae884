//! A plugin run does not outlive the daemon that started it, even one
//! killed with SIGKILL: the plugin dies with it (parent-death signal), and
//! what the plugin forked is killed by the next start-up's sweep of the
//! recorded process groups.
//!
//! The daemon is played by this test binary itself, started again as a
//! child that runs one plugin (`harness_runs_a_plugin_until_killed`), so
//! that it can be killed with SIGKILL without killing the test.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use routerd_model::spec::PluginSpec;
use routerd_plugin::groups::{self, GroupRecord};
use routerd_plugin::request::manual_trigger;
use routerd_plugin::runner::{RunConfig, run};

const HARNESS_DIR: &str = "ROUTERD_TEST_LIFETIME_HARNESS_DIR";
const HARNESS: &str = "harness_runs_a_plugin_until_killed";

/// SIGKILLs process groups when the test ends, passed or not.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pg in &self.0 {
            let _ = killpg(Pid::from_raw(*pg), Signal::SIGKILL);
        }
    }
}

/// Waits up to 20 s for `path` to hold a pid.
fn wait_pid(path: &Path) -> i32 {
    let t = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn records(dir: &Path) -> Vec<GroupRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())
        .collect()
}

/// A plugin that starts a long sleep (its child, a grandchild of the
/// daemon), writes both pids and waits.
fn forking_plugin(dir: &Path) -> PathBuf {
    let d = dir.display();
    script(
        dir,
        "forking",
        &format!(
            "#!/bin/sh\necho $$ > '{d}/leader.tmp'; mv '{d}/leader.tmp' '{d}/leader'\n\
             sleep 1000 &\necho $! > '{d}/grandchild.tmp'; mv '{d}/grandchild.tmp' '{d}/grandchild'\n\
             wait\n"
        ),
    )
}

/// The stand-in daemon: runs the plugin of `$ROUTERD_TEST_LIFETIME_HARNESS_DIR`
/// with process groups recorded there, until killed. Does nothing when
/// started as an ordinary test.
#[test]
#[ignore = "harness: started by a_plugin_dies_with_a_killed_daemon_and_the_sweep_kills_what_it_forked"]
fn harness_runs_a_plugin_until_killed() {
    let Some(dir) = std::env::var_os(HARNESS_DIR).map(PathBuf::from) else {
        return;
    };
    let spec = PluginSpec {
        executable: dir.join("forking").display().to_string(),
        timeout: Some("60s".into()),
        ..PluginSpec::default()
    };
    let cfg = RunConfig {
        group_dir: Some(dir.join("groups")),
        ..RunConfig::from_process_env()
    };
    let req =
        routerd_plugin::build_request("lifetime", &spec, &[], manual_trigger(), 0, Utc::now());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rt.block_on(run("lifetime", &spec, &req, &cfg));
    std::fs::write(dir.join("harness-ended"), "").unwrap();
}

#[test]
fn a_plugin_dies_with_a_killed_daemon_and_the_sweep_kills_what_it_forked() {
    let dir = tempfile::tempdir().unwrap();
    forking_plugin(dir.path());
    let groups_dir = dir.path().join("groups");
    let mut daemon = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", HARNESS, "--include-ignored", "--nocapture"])
        .env(HARNESS_DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let leader = wait_pid(&dir.path().join("leader"));
    let grandchild = wait_pid(&dir.path().join("grandchild"));
    let _reap = Reap(vec![leader]);

    // While the plugin runs, its group is on record.
    let recorded = records(&groups_dir);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].pgid, leader);
    assert_eq!(recorded[0].plugin, "lifetime");

    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(!dir.path().join("harness-ended").exists());

    // The parent-death signal kills the plugin with its daemon...
    assert!(
        gone(leader),
        "plugin {leader} outlived its SIGKILLed parent"
    );
    // ...but the kernel gives it to no process the plugin forks. Without
    // the sweep this sleep would live on.
    assert!(
        alive(grandchild),
        "grandchild {grandchild} died without the sweep; this test no longer shows what the sweep does"
    );
    assert_eq!(records(&groups_dir).len(), 1);

    // The next start-up sweeps the record and kills the rest of the group.
    let report = groups::sweep(&groups_dir).unwrap();
    assert_eq!(report.killed.len(), 1, "{report:?}");
    assert_eq!(report.killed[0].pgid, leader);
    assert!(gone(grandchild), "the sweep left grandchild {grandchild}");
    assert!(records(&groups_dir).is_empty());
}

/// Starts `sh` leading a new process group, with a sleeping child; returns
/// the group id and the child's pid.
fn live_group(dir: &Path, name: &str) -> (i32, i32, std::process::Child) {
    let pidfile = dir.join(name);
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "sleep 1000 & echo $! > '{}'; wait",
            pidfile.display()
        ))
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pg = i32::try_from(child.id()).unwrap();
    (pg, wait_pid(&pidfile), child)
}

#[test]
fn the_sweep_kills_only_groups_that_are_still_the_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let groups_dir = dir.path().join("groups");
    let exe = Path::new("/bin/sh");
    let (ours, ours_child, mut ours_leader) = live_group(dir.path(), "ours");
    let (reused, reused_child, mut reused_leader) = live_group(dir.path(), "reused");
    let (old_boot, old_boot_child, mut old_boot_leader) = live_group(dir.path(), "old-boot");
    let _reap = Reap(vec![ours, reused, old_boot]);

    groups::write(&groups_dir, &groups::capture(ours, "cloud", exe).unwrap()).unwrap();
    // The same pid, started at another time: someone else's process now.
    let mut rec = groups::capture(reused, "cloud", exe).unwrap();
    rec.start_ticks += 1;
    groups::write(&groups_dir, &rec).unwrap();
    // Recorded before a reboot: the numbers mean nothing any more.
    let mut rec = groups::capture(old_boot, "cloud", exe).unwrap();
    rec.boot_id = "00000000-0000-0000-0000-000000000000".into();
    groups::write(&groups_dir, &rec).unwrap();
    // A group with nothing left in it.
    let done = Command::new("/bin/true").spawn().unwrap();
    let done_pid = i32::try_from(done.id()).unwrap();
    let mut rec = groups::capture(done_pid, "cloud", exe).unwrap_or(GroupRecord {
        pgid: done_pid,
        plugin: "cloud".into(),
        executable: "/bin/true".into(),
        start_ticks: 1,
        boot_id: String::new(),
    });
    rec.pgid = done_pid;
    groups::write(&groups_dir, &rec).unwrap();
    let _ = done.wait_with_output();
    // Garbage, and a record that was being written when the daemon died.
    std::fs::write(groups_dir.join("77.json"), "{not json").unwrap();
    std::fs::write(groups_dir.join(".78.json.tmp"), "{").unwrap();

    let report = groups::sweep(&groups_dir).unwrap();
    let killed: Vec<i32> = report.killed.iter().map(|r| r.pgid).collect();
    assert_eq!(killed, [ours], "{report:?}");
    assert_eq!(report.skipped.len(), 4, "{report:?}");
    let reasons: Vec<&str> = report.skipped.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("pid reused")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("before a reboot")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("nothing left")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("unreadable")),
        "{reasons:?}"
    );
    assert!(std::fs::read_dir(&groups_dir).unwrap().next().is_none());

    assert!(gone(ours_child));
    ours_leader.wait().unwrap();
    assert!(alive(reused_child), "a recycled pid's group was killed");
    assert!(
        alive(old_boot_child),
        "a group recorded before a reboot was killed"
    );
    let _ = kill(Pid::from_raw(reused), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(old_boot), Signal::SIGKILL);
    reused_leader.wait().unwrap();
    old_boot_leader.wait().unwrap();
}

#[tokio::test]
async fn a_finished_run_leaves_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let groups_dir = dir.path().join("groups");
    let p = printing(dir.path(), "good", GOOD_JSON);
    let spec = spec(&p);
    let cfg = RunConfig {
        group_dir: Some(groups_dir.clone()),
        ..RunConfig::from_process_env()
    };
    let req = routerd_plugin::build_request("cloud", &spec, &[], manual_trigger(), 0, Utc::now());
    run("cloud", &spec, &req, &cfg).await.unwrap();
    assert!(groups_dir.is_dir());
    assert!(records(&groups_dir).is_empty());
}
