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

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Daemon, lab, sh};
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, wait_until};
use serde_json::Value;

const CONFIG: &str = "\
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: cloudedge}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan2}
      spec: {ifname: wan2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec: {ifname: lan0}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: TunnelInterface
      metadata: {name: vx-cloud}
      spec: {trustedUnderlay: true, mode: vxlan, ifname: vx0, key: 42, local: 198.18.1.1, remote: 198.18.1.2, underlayInterface: wan1, address: 10.255.0.1/30, mtu: 1450}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: OverlayPeer
      metadata: {name: cloud}
      spec: {role: cloud, nodeID: cloud-1, underlay: {type: route, interface: vx-cloud}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: overlay}
      spec: {target: 10.255.0.2, protocol: tcp, port: 443, interval: 200ms, timeout: 200ms, healthyThreshold: 2, unhealthyThreshold: 2}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {name: cloud-private}
      spec: {peerRef: cloud, healthCheckRef: overlay, install: {metric: 10}, destinationCIDRs: [10.20.0.0/16]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: fallback}
      spec: {destination: 10.0.0.0/8, device: wan2, gateway: 198.18.2.2, metric: 500}
";

const CLOUD_HOST: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);

/// The cloud side: the vxlan end in upstream 1, the cloud host on both
/// upstreams (upstream 2 is the fallback path to it).
fn cloud_side(lab: &Lab) {
    let up1 = |args: &[&str]| lab.ip(Node::Up1, args).unwrap();
    up1(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "198.18.1.2",
        "remote",
        "198.18.1.1",
        "dstport",
        "4789",
        "dev",
        "eth0",
    ]);
    up1(&["addr", "add", "10.255.0.2/30", "dev", "vx0"]);
    up1(&["link", "set", "vx0", "up"]);
    up1(&["addr", "add", "10.20.0.1/32", "dev", "lo"]);
    up1(&[
        "route",
        "add",
        "192.168.50.0/24",
        "via",
        "10.255.0.1",
        "dev",
        "vx0",
    ]);
    lab.ip(Node::Up2, &["addr", "add", "10.20.0.1/32", "dev", "lo"])
        .unwrap();
}

/// Which upstream a new client connection to the cloud host reached.
fn reached(lab: &Lab) -> Option<Node> {
    lab.clear_sink_records();
    let dst = SocketAddr::V4(SocketAddrV4::new(CLOUD_HOST, routerd_lab::SINK_PORT));
    let out = lab
        .tcp_connect(Node::Client, dst, None, Duration::from_millis(500))
        .ok()?;
    if !out.is_connected() {
        return None;
    }
    std::thread::sleep(Duration::from_millis(50));
    lab.sink_records()
        .iter()
        .rev()
        .find(|r| r.port == routerd_lab::SINK_PORT && r.peer.ip().to_string() == "192.168.50.10")
        .map(|r| r.upstream)
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
    cloud_side(&lab);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
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
    let base = CONFIG
        .split("    - apiVersion: hybrid.routerd.net/v1alpha1\n      kind: HybridRoute")
        .next()
        .unwrap();
    format!(
        "{base}    - apiVersion: net.routerd.net/v1alpha1
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
    cloud_side(&lab);
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
