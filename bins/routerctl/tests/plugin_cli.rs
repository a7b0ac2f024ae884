//! `routerctl plugin run|list` end to end, with the example plugin.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn routerctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(args)
        .output()
        .unwrap()
}

/// The example config with the plugin path pointing at the checked-out
/// example plugin.
fn example_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/plugins/cloud-edge.yaml")).unwrap();
    let plugin = repo()
        .join("examples/plugins/cloud-inventory.py")
        .canonicalize()
        .unwrap();
    let text = text.replace(
        "/usr/local/libexec/routerd/plugins/cloud-inventory",
        &plugin.display().to_string(),
    );
    let p = dir.join("cloud-edge.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn example_config_validates() {
    let o = routerctl(&[
        "validate",
        "-f",
        repo()
            .join("examples/plugins/cloud-edge.yaml")
            .to_str()
            .unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn dry_run_prints_the_candidate_part_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_config(dir.path());
    let before = listing(dir.path());
    let o = routerctl(&[
        "plugin",
        "run",
        "cloud-inventory",
        "-f",
        cfg.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["mode"], "dry-run");
    assert_eq!(doc["accepted"], true);
    assert_eq!(doc["source"], "Plugin/cloud-inventory");
    let part = &doc["part"];
    assert_eq!(part["apiVersion"], "config.routerd.net/v1alpha1");
    assert_eq!(part["kind"], "DynamicConfigPart");
    assert_eq!(part["metadata"]["name"], "Plugin-cloud-inventory-1");
    assert_eq!(part["spec"]["generation"], 1);
    assert_eq!(
        part["spec"]["resources"][0]["metadata"]["name"],
        "cloud-vpc"
    );
    assert_eq!(part["spec"]["directives"][0]["op"], "mask");
    assert_eq!(
        part["spec"]["directives"][0]["target"]["name"],
        "cloud-fallback"
    );
    assert_eq!(part["spec"]["actionPlans"][0]["name"], "enable-forwarding");
    assert_eq!(doc["actionPlans"]["count"], 1);
    assert_eq!(doc["actionPlans"]["executed"], false);
    let types: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "routerd.plugin.run.started",
            "routerd.dynamic.part.accepted",
            "routerd.plugin.run.succeeded"
        ]
    );
    // The plugin's stderr is passed on, not mixed into the document.
    assert!(String::from_utf8_lossy(&o.stderr).contains("cloud-inventory: 1 VPC route(s)"));
    assert_eq!(listing(dir.path()), before, "a dry run wrote a file");

    let o = routerctl(&[
        "plugin",
        "run",
        "cloud-inventory",
        "-f",
        cfg.to_str().unwrap(),
        "--dry-run",
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("Mode:         dry-run"), "{text}");
    assert!(
        text.contains("Action Plans: 1 display-only; not executed"),
        "{text}"
    );
    assert!(text.contains("mask net.routerd.net/v1alpha1/IPv4Route/cloud-fallback"));
}

fn marker_plugin(dir: &Path, marker: &Path) -> PathBuf {
    let p = dir.join("marker.sh");
    std::fs::write(
        &p,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn config_with_plugin(dir: &Path, exe: &Path) -> PathBuf {
    let text = format!(
        "apiVersion: plugin.routerd.net/v1alpha1\nkind: Plugin\nmetadata: {{name: probe}}\nspec: {{executable: {}}}\n",
        exe.display()
    );
    let p = dir.join("probe.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn storing_without_a_daemon_fails_clearly_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let exe = marker_plugin(dir.path(), &marker);
    let cfg = config_with_plugin(dir.path(), &exe);
    let sock = dir.path().join("no-daemon.sock");
    let o = routerctl(&[
        "plugin",
        "run",
        "probe",
        "-f",
        cfg.to_str().unwrap(),
        "--socket",
        sock.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(69));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("storing a part needs the routerd daemon (or use --dry-run)")
    );
    assert!(
        !marker.exists(),
        "the plugin ran although nothing could be stored"
    );
}

#[test]
fn a_failing_plugin_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let exe = marker_plugin(dir.path(), &marker);
    let cfg = config_with_plugin(dir.path(), &exe);
    let o = routerctl(&[
        "plugin",
        "run",
        "probe",
        "-f",
        cfg.to_str().unwrap(),
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(marker.exists());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["accepted"], false);
    assert_eq!(doc["error"], "plugin probe failed: exit status 1");
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("plugin probe rejected: plugin probe failed: exit status 1")
    );
}

#[test]
fn unknown_plugin_is_a_data_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = example_config(dir.path());
    let o = routerctl(&[
        "plugin",
        "run",
        "nope",
        "-f",
        cfg.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Plugin \"nope\" not found in startup config")
    );
}

#[test]
fn list_shows_plugins_and_triggers() {
    let cfg = repo().join("examples/plugins/cloud-edge.yaml");
    let o = routerctl(&["plugin", "list", "-f", cfg.to_str().unwrap(), "-o", "json"]);
    assert!(o.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc[0]["name"], "cloud-inventory");
    assert_eq!(doc[0]["timeout"], "10s");
    assert_eq!(doc[0]["triggers"][0]["type"], "interval");
    assert_eq!(doc[0]["triggers"][0]["every"], "2m");
    assert_eq!(doc[0]["triggers"][1]["topic"], "routerd.lan.route.changed");
    let o = routerctl(&["plugin", "list", "-f", cfg.to_str().unwrap()]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("every 2m, on routerd.lan.route.changed"),
        "{text}"
    );
}

/// Answers one control request with `status` and an error body `message`.
fn fake_daemon(sock: &Path, status: &str, message: &str) -> std::thread::JoinHandle<String> {
    use std::io::{Read as _, Write as _};
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    let body = serde_json::json!({
        "apiVersion": "control.routerd.net/v1alpha1",
        "kind": "Error",
        "error": {"message": message},
    })
    .to_string();
    let status = status.to_string();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers and the small JSON body arrive together or soon after.
        while !String::from_utf8_lossy(&req).contains("\"name\"") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&req).into_owned()
    })
}

#[test]
fn a_plugin_that_is_already_running_is_a_temporary_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("routerd.sock");
    let msg = "plugin probe is already running (interval run started at 2026-01-01T00:00:00Z); its result is stored when it finishes, try again after that";
    let server = fake_daemon(&sock, "409 Conflict", msg);
    let o = routerctl(&["plugin", "run", "probe", "--socket", sock.to_str().unwrap()]);
    let req = server.join().unwrap();
    assert!(req.starts_with("POST "), "{req}");
    assert!(req.contains("/plugin/run"), "{req}");
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(msg), "{stderr}");
}
