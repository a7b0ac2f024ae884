//! `routerd demo cloudedge`: CloudEdge L3 in a namespace lab (root). The
//! router (on-prem) reaches the "cloud" upstream through a vxlan tunnel
//! routerd creates; the cloud host 10.20.0.1 sits behind both upstreams.
//! A plugin part brings a HybridRoute for the cloud prefix and masks the
//! static route through the backup path; a client reaches the cloud host
//! over the overlay; the overlay's HealthCheck fails and the covering
//! fallback carries the traffic; the plugin stops, its part expires and the
//! startup configuration returns. Timeline printed; every namespace removed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use routerd_lab::cloudedge::{CLOUD_HOST, cloud_side, overlay_config, reached};
use routerd_lab::{ChildOutput, Lab, Node, Timeline, wait_until};

const PLUGIN: &str = include_str!("../../../examples/plugins/cloud-hybrid.py");

/// The overlay, a static route to the cloud prefix through upstream 2
/// (masked by the plugin while the overlay is healthy), a wider fallback,
/// and the cloud-hybrid example plugin allowed to mask the static route.
fn config(plugin: &Path) -> String {
    format!(
        "{}    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-static}}
      spec: {{destination: 10.20.0.0/16, device: wan2, gateway: 198.18.2.2, metric: 200}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-fallback}}
      spec: {{destination: 10.0.0.0/8, device: wan2, gateway: 198.18.2.2, metric: 500}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: cloud-hybrid}}
      spec:
        executable: {}
        timeout: 5s
        env: {{CLOUD_PREFIXES: 10.20.0.0/16, OVERLAY_PEER: cloud, HEALTH_CHECK: overlay, FALLBACK_ROUTE: cloud-static, PLUGIN_TTL: 4s}}
        triggers: [{{type: interval, every: 1s}}]
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {{name: allow-mask}}
      spec:
        allow:
          - source: Plugin/cloud-hybrid
            operations: [mask]
            targets: [{{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: cloud-static}}]
",
        overlay_config(),
        plugin.display()
    )
}

/// The router's route to the cloud host, as `ip route get` says.
fn route_to_cloud(lab: &Lab) -> String {
    lab.exec(
        Node::Router,
        "ip",
        ["-4", "route", "show", "match", "10.20.0.1"],
    )
    .map(|s| s.lines().map(str::trim).collect::<Vec<_>>().join("; "))
    .unwrap_or_default()
}

pub(crate) fn run(verbose: bool) -> Result<i32> {
    let _ = routerd_lab::cleanup_stale("rcedge");
    let lab = Lab::build("rcedge").context("build the namespace lab")?;
    lab.install_ctrlc_cleanup()
        .context("install Ctrl-C cleanup")?;
    let result = demo(&lab, verbose);
    if let Err(e) = lab.teardown() {
        eprintln!("routerd demo: cleanup: {e}");
    }
    result
}

fn demo(lab: &Lab, verbose: bool) -> Result<i32> {
    cloud_side(lab).context("set up the cloud side")?;
    let dir = tempfile::tempdir()?;
    // The plugin runner refuses executables others can write.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let plugin = dir.path().join("cloud-hybrid");
    std::fs::write(&plugin, PLUGIN)?;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config(&plugin))?;
    let log = dir.path().join("routerd.log");
    let mut tl = Timeline::new();
    println!(
        "lab: on-prem router {} (wan1 → cloud over vxlan vx0, wan2 → backup path), cloud host {CLOUD_HOST}",
        lab.ns(Node::Router)
    );
    let exe = std::env::current_exe()?;
    let daemon = lab.spawn(
        Node::Router,
        &exe,
        [
            "serve".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            "--state-dir".as_ref(),
            dir.path().join("state").as_os_str(),
            "--socket".as_ref(),
            dir.path().join("routerd.sock").as_os_str(),
        ],
        if verbose {
            ChildOutput::Inherit
        } else {
            ChildOutput::File(log.clone())
        },
    )?;
    tl.record("routerd serve started; the cloud-hybrid plugin runs every second (TTL 4 s)");

    let step = |tl: &mut Timeline, want: Node, what: &str, limit: u64| -> bool {
        let ok = wait_until(
            || reached(lab) == Some(want),
            Duration::from_secs(limit),
            Duration::from_millis(50),
        )
        .is_ok();
        if ok {
            tl.record(format!("{what}: route {}", route_to_cloud(lab)));
        } else {
            tl.record(format!("{what}: NOT SEEN within {limit} s"));
        }
        ok
    };
    let mut ok = step(
        &mut tl,
        Node::Up1,
        "the plugin's HybridRoute carries the client to the cloud host over the vxlan (static route masked)",
        30,
    );
    lab.ip(Node::Up1, &["link", "set", "vx0", "down"])?;
    tl.record("the overlay breaks (vx0 down on the cloud side)");
    ok &= step(
        &mut tl,
        Node::Up2,
        "the overlay's HealthCheck fails: the lowered route is withdrawn, the covering fallback carries the traffic",
        20,
    );
    std::fs::write(dir.path().join("cloud-hybrid.new"), "#!/bin/sh\nexit 1\n")?;
    std::fs::set_permissions(
        dir.path().join("cloud-hybrid.new"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::fs::rename(dir.path().join("cloud-hybrid.new"), &plugin)?;
    tl.record("the plugin stops delivering");
    let returned = wait_until(
        || route_to_cloud(lab).contains("10.20.0.0/16 via 198.18.2.2"),
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .is_ok();
    tl.record(if returned {
        format!(
            "its part expired: the HybridRoute is gone and the startup static route is back: route {}",
            route_to_cloud(lab)
        )
    } else {
        "the startup static route did NOT return within 20 s".to_string()
    });
    ok &= returned && reached(lab) == Some(Node::Up2);
    let _ = lab.stop_child(daemon, Duration::from_secs(5));
    tl.record("routerd stopped");
    println!("\n{tl}");
    if !ok {
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        bail!("the CloudEdge demo did not go as described");
    }
    println!("cloudedge: overlay, fallback and expiry as described");
    Ok(0)
}
