#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! CloudEdge L3 end to end in a namespace lab (root only), against the real
//! `routerd serve`: routerd creates a vxlan TunnelInterface to the "cloud"
//! (upstream 1), lowers a HybridRoute for the cloud prefix through it, and
//! a client reaches a cloud host over the overlay; when the overlay's
//! HealthCheck fails the lowered route is withdrawn and the covering static
//! fallback (through upstream 2) carries the traffic. Then a plugin part
//! brings a second HybridRoute and, when it expires, it goes and the
//! fallback returns.
//!
//! The lab's upstreams are the two sites: upstream 1 ends the vxlan
//! (10.255.0.2) and hosts the cloud address 10.20.0.1; upstream 2 hosts the
//! same address behind the fallback path.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Daemon, lab, sh};
use routerd_api::client::Client;
use routerd_lab::cloudedge::{cloud_side, overlay_config, reached};
use routerd_lab::{Node, wait_until};
use serde_json::Value;

/// The overlay, a HybridRoute to the cloud prefix through it, and a
/// fallback route through upstream 2.
fn config() -> String {
    format!(
        "{}    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {{name: cloud-private}}
      spec: {{peerRef: cloud, healthCheckRef: overlay, install: {{metric: 10}}, destinationCIDRs: [10.20.0.0/16]}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: fallback}}
      spec: {{destination: 10.0.0.0/8, device: wan2, gateway: 198.18.2.2, metric: 500}}
",
        overlay_config()
    )
}

fn get(d: &Daemon<'_>, subject: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: Value = rt
        .block_on(
            Client::new(d.socket())
                .get::<Value>(&format!("/get?subject={}", subject.replace('/', "%2F"))),
        )
        .unwrap_or_default();
    doc["items"][0].clone()
}

fn wait(what: &str, d: &Daemon<'_>, limit: Duration, f: impl FnMut() -> bool) {
    wait_until(f, limit, Duration::from_millis(100)).unwrap_or_else(|_| {
        panic!(
            "{what} never happened; HybridRoute: {}\nTunnelInterface: {}\nlog:\n{}",
            get(d, "HybridRoute/cloud-private"),
            get(d, "TunnelInterface/vx-cloud"),
            d.log()
        )
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn lowered_routes_over_vxlan_carry_traffic_and_health_hands_over_to_the_fallback() {
    let lab = lab("rce");
    cloud_side(&lab).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), config()).unwrap();
    d.start();

    let ok = wait_until(
        || reached(&lab) == Some(Node::Up1),
        Duration::from_secs(20),
        Duration::from_millis(100),
    );
    if ok.is_err() {
        panic!(
            "no traffic over the vxlan; reached {:?}; hr {} hc {}; routes:\n{}\nlinks:\n{}\nup1:\n{}",
            reached(&lab),
            get(&d, "HybridRoute/cloud-private"),
            get(&d, "HealthCheck/overlay"),
            sh(&lab, "ip", &["-4", "route"]),
            sh(&lab, "ip", &["-d", "addr"]),
            lab.exec(Node::Up1, "ip", ["-d", "addr"])
                .unwrap_or_default(),
        );
    }
    let routes = sh(&lab, "ip", &["-4", "route", "show", "10.20.0.0/16"]);
    assert!(
        routes.contains("dev vx0") && routes.contains("metric 10"),
        "{routes}"
    );
    let link = sh(&lab, "ip", &["-d", "link", "show", "vx0"]);
    assert!(link.contains("vxlan id 42"), "{link}");
    let hr = get(&d, "HybridRoute/cloud-private");
    assert_eq!(hr["status"]["phase"], "Ready", "{hr}");
    assert_eq!(hr["status"]["routes"][0]["phase"], "Installed", "{hr}");
    assert_eq!(hr["status"]["underlayMTU"], 1450, "{hr}");
    let route = get(&d, "IPv4Route/cloud-private-10-20-0-0-16");
    assert_eq!(route["ownerRefs"][0]["kind"], "HybridRoute", "{route}");

    // The overlay breaks: its check fails, the lowered route is withdrawn
    // and the covering fallback through upstream 2 takes the traffic.
    lab.ip(Node::Up1, &["link", "set", "vx0", "down"]).unwrap();
    wait(
        "the fallback carrying the cloud prefix",
        &d,
        Duration::from_secs(20),
        || reached(&lab) == Some(Node::Up2),
    );
    let routes = sh(&lab, "ip", &["-4", "route", "show", "10.20.0.0/16"]);
    assert!(routes.trim().is_empty(), "withdrawn: {routes}");
    wait("HybridRoute Degraded", &d, Duration::from_secs(5), || {
        get(&d, "HybridRoute/cloud-private")["status"]["reason"] == "HealthCheckUnhealthy"
    });

    d.stop();
    drop(d);
    // The lab removes every namespace (and the tunnel with it).
    lab.teardown().unwrap();
}

/// The startup half of the plugin scenario: the overlay without a
/// HybridRoute, a static route to the cloud prefix through upstream 2, and
/// the cloud-hybrid example plugin allowed to mask it.
fn plugin_config(plugin: &std::path::Path) -> String {
    format!(
        "{}    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-fallback}}
      spec: {{destination: 10.20.0.0/16, device: wan2, gateway: 198.18.2.2, metric: 200}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: cloud-hybrid}}
      spec:
        executable: {}
        timeout: 5s
        env: {{CLOUD_PREFIXES: 10.20.0.0/16, OVERLAY_PEER: cloud, HEALTH_CHECK: overlay, FALLBACK_ROUTE: cloud-fallback, PLUGIN_TTL: 4s}}
        triggers: [{{type: interval, every: 1s}}]
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {{name: allow-mask}}
      spec:
        allow:
          - source: Plugin/cloud-hybrid
            operations: [mask]
            targets: [{{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: cloud-fallback}}]
",
        overlay_config(),
        plugin.display()
    )
}

fn dynamic(d: &Daemon<'_>, source: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        Client::new(d.socket())
            .get::<Value>(&format!("/dynamic?source={}", source.replace('/', "%2F"))),
    )
    .unwrap_or_default()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_plugin_part_brings_a_hybrid_route_and_its_expiry_returns_the_fallback() {
    let lab = lab("rcp");
    cloud_side(&lab).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The runner refuses executables others can write (and their directory).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.path().join("cloud-hybrid");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/plugins/cloud-hybrid.py"
        ),
        &plugin,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), plugin_config(&plugin)).unwrap();
    d.start();

    // The part brings the HybridRoute and masks the fallback: traffic to
    // the cloud goes over the vxlan, and describe shows the chain.
    wait(
        "traffic over the overlay from the plugin's HybridRoute",
        &d,
        Duration::from_secs(30),
        || reached(&lab) == Some(Node::Up1),
    );
    let routes = sh(&lab, "ip", &["-4", "route", "show", "10.20.0.0/16"]);
    assert!(
        routes.contains("dev vx0") && !routes.contains("wan2"),
        "{routes}"
    );
    let doc = dynamic(&d, "Plugin/cloud-hybrid");
    let chain = &doc["effective"][0];
    assert_eq!(chain["resource"], "HybridRoute/cloud-vpc", "{doc}");
    assert_eq!(
        chain["lowered"][0], "IPv4Route/cloud-vpc-10-20-0-0-16",
        "{doc}"
    );

    // The plugin stops delivering: its last part expires, the HybridRoute
    // and its route go, the mask lifts and the fallback returns.
    let tmp = dir.path().join("cloud-hybrid.new");
    std::fs::write(&tmp, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &plugin).unwrap();
    wait(
        "the fallback after the part expired",
        &d,
        Duration::from_secs(30),
        || reached(&lab) == Some(Node::Up2),
    );
    let routes = sh(&lab, "ip", &["-4", "route", "show", "10.20.0.0/16"]);
    assert!(
        routes.contains("dev wan2") && !routes.contains("vx0"),
        "{routes}"
    );
    assert!(get(&d, "HybridRoute/cloud-vpc").is_null());

    d.stop();
    drop(d);
    lab.teardown().unwrap();
}
