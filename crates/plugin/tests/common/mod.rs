//! Helpers shared by the runner tests: throwaway plugin scripts and a fixed
//! startup config.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use routerd_model::Resource;
use routerd_model::spec::PluginSpec;

pub const STARTUP: &str = r#"
- apiVersion: net.routerd.net/v1alpha1
  kind: Interface
  metadata: {name: wan}
  spec: {ifname: ens18}
- apiVersion: net.routerd.net/v1alpha1
  kind: IPv4Route
  metadata: {name: fallback}
  spec: {destination: 10.20.0.0/16, device: ens18, gateway: 192.0.2.1}
- apiVersion: net.routerd.net/v1alpha1
  kind: IPv4Route
  metadata: {name: pinned}
  spec: {destination: 10.30.0.0/16, device: ens18, gateway: 192.0.2.1}
- apiVersion: config.routerd.net/v1alpha1
  kind: DynamicOverridePolicy
  metadata: {name: cloud}
  spec:
    allow:
      - source: Plugin/cloud
        operations: [mask]
        targets:
          - {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: fallback}
"#;

pub fn startup() -> Vec<Resource> {
    serde_yaml::from_str(STARTUP).unwrap()
}

/// A valid result: one route and a mask of `fallback`, TTL 5 minutes.
pub const GOOD_JSON: &str = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"5m","resources":[{"apiVersion":"net.routerd.net/v1alpha1","kind":"IPv4Route","metadata":{"name":"cloud-vpc"},"spec":{"destination":"10.40.0.0/16","device":"ens18","gateway":"192.0.2.9"}}],"directives":[{"op":"mask","target":{"apiVersion":"net.routerd.net/v1alpha1","kind":"IPv4Route","name":"fallback"},"reason":"cloud route present"}]}}"#;

/// Writes an executable script (mode 0755) into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A shell plugin that prints `json` after reading its request.
pub fn printing(dir: &Path, name: &str, json: &str) -> PathBuf {
    script(
        dir,
        name,
        &format!("#!/bin/sh\ncat >/dev/null\ncat <<'EOF'\n{json}\nEOF\n"),
    )
}

pub fn spec(path: &Path) -> PluginSpec {
    PluginSpec {
        executable: path.display().to_string(),
        ..PluginSpec::default()
    }
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits up to 3 s for `pid` to be gone.
pub fn gone(pid: i32) -> bool {
    for _ in 0..60 {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}
