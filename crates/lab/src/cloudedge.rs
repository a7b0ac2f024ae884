//! The CloudEdge lab's shared half, used by `routerd demo cloudedge` and its
//! end-to-end tests so they cannot drift: the router's overlay resources, the
//! cloud side (a vxlan end and the cloud host, on upstream 1, with upstream 2
//! as the other path to the same host), and which upstream a client reached.
//! Each scenario appends its own routes, plugins and policies to
//! [`overlay_config`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::{Lab, Node, Result, SINK_PORT};

/// The cloud host, on the loopback of both upstreams.
pub const CLOUD_HOST: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);

/// The lab router's interfaces, the vxlan TunnelInterface to the cloud
/// over `wan1`, the OverlayPeer on it and the health check through it; a
/// `Router` document whose resource list the scenario continues.
pub fn overlay_config() -> String {
    crate::router_config("cloudedge")
        + "    - apiVersion: hybrid.routerd.net/v1alpha1
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
"
}

/// The cloud side: the vxlan end in upstream 1 with a route back to the
/// LAN over it, and the cloud host on both upstreams.
pub fn cloud_side(lab: &Lab) -> Result<()> {
    for args in [
        &[
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
        ][..],
        &["addr", "add", "10.255.0.2/30", "dev", "vx0"],
        &["link", "set", "vx0", "up"],
        &["addr", "add", "10.20.0.1/32", "dev", "lo"],
        &[
            "route",
            "add",
            "192.168.50.0/24",
            "via",
            "10.255.0.1",
            "dev",
            "vx0",
        ],
    ] {
        lab.ip(Node::Up1, args)?;
    }
    lab.ip(Node::Up2, &["addr", "add", "10.20.0.1/32", "dev", "lo"])
}

/// Which upstream a new connection from the client to the cloud host
/// reached, if it connected.
pub fn reached(lab: &Lab) -> Option<Node> {
    lab.clear_sink_records();
    let dst = SocketAddr::V4(SocketAddrV4::new(CLOUD_HOST, SINK_PORT));
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
        .find(|r| r.port == SINK_PORT && r.peer.ip().to_string() == "192.168.50.10")
        .map(|r| r.upstream)
}
