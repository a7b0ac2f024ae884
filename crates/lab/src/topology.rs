//! Fixed addresses and roles of the lab.
//!
//! The addresses are constants rather than configuration because the embedded demo config,
//! the end-to-end tests and `docs/lab.md` all quote them; one source keeps them in step.
//! They come from the documentation (RFC 5737) and benchmarking (RFC 2544, 198.18.0.0/15)
//! ranges, so nothing in the lab can be mistaken for a real network. The uplinks avoid
//! 192.0.2.0/24 because CI and dev machines may number their own interface from it; the
//! namespaces are isolated anyway, but logs stay unambiguous. Every address exists only
//! inside the lab's namespaces.

use std::fmt;
use std::net::Ipv4Addr;

/// The "internet" address both upstreams host on their loopback, as the same public
/// address is reachable through either uplink on the real internet.
pub const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Port of the plain-HTTP responder on the target (for HTTP health checks).
pub const HTTP_PORT: u16 = 80;
/// Port of the TCP listener on the target (for TCP health checks).
pub const TCP_PORT: u16 = 443;
/// Port of the traffic sink that client flows use; it answers each flow with the upstream
/// that saw it and the source address it arrived from.
pub const SINK_PORT: u16 = 5001;

/// The router's LAN address: the client's default gateway.
pub const LAN_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 1);
/// The LAN client's address.
pub const LAN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 10);
/// Prefix length of the LAN.
pub const LAN_PREFIX_LEN: u8 = 24;
/// Prefix length of both point-to-point uplink subnets.
pub const WAN_PREFIX_LEN: u8 = 30;

/// Interface name of the LAN side in the router namespace.
pub const LAN_IF: &str = "lan0";
/// Interface name of the single interface in the upstream and client namespaces.
pub const PEER_IF: &str = "eth0";

/// One of the lab's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Node {
    /// The router, where routerd runs.
    Router,
    /// The upstream behind `wan1`.
    Up1,
    /// The upstream behind `wan2`.
    Up2,
    /// The LAN client.
    Client,
}

impl Node {
    /// All nodes, in creation order.
    pub const ALL: [Node; 4] = [Node::Router, Node::Up1, Node::Up2, Node::Client];

    /// The suffix that ends the namespace name, so a leftover namespace in `ip netns list`
    /// tells which role it had.
    pub fn role(self) -> &'static str {
        match self {
            Node::Router => "rtr",
            Node::Up1 => "up1",
            Node::Up2 => "up2",
            Node::Client => "cli",
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.role())
    }
}

/// One of the router's two uplinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Uplink {
    /// `wan1` towards `up1` (the primary in the demo config).
    Wan1,
    /// `wan2` towards `up2`.
    Wan2,
}

impl Uplink {
    /// Both uplinks.
    pub const ALL: [Uplink; 2] = [Uplink::Wan1, Uplink::Wan2];

    /// The interface name in the router namespace.
    pub fn router_if(self) -> &'static str {
        match self {
            Uplink::Wan1 => "wan1",
            Uplink::Wan2 => "wan2",
        }
    }

    /// The router's address on this uplink: what a masqueraded flow's source becomes.
    pub fn router_addr(self) -> Ipv4Addr {
        match self {
            Uplink::Wan1 => Ipv4Addr::new(198, 18, 1, 1),
            Uplink::Wan2 => Ipv4Addr::new(198, 18, 2, 1),
        }
    }

    /// The upstream's address on this uplink: the router's gateway through it.
    pub fn gateway(self) -> Ipv4Addr {
        match self {
            Uplink::Wan1 => Ipv4Addr::new(198, 18, 1, 2),
            Uplink::Wan2 => Ipv4Addr::new(198, 18, 2, 2),
        }
    }

    /// The upstream namespace at the far end.
    pub fn upstream(self) -> Node {
        match self {
            Uplink::Wan1 => Node::Up1,
            Uplink::Wan2 => Node::Up2,
        }
    }

    /// The uplink whose far end is `node`, if `node` is an upstream.
    pub fn of_upstream(node: Node) -> Option<Uplink> {
        match node {
            Node::Up1 => Some(Uplink::Wan1),
            Node::Up2 => Some(Uplink::Wan2),
            Node::Router | Node::Client => None,
        }
    }
}

impl fmt::Display for Uplink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.router_if())
    }
}

/// A `Router` document named `name` holding the lab router's interfaces
/// (`wan1`, `wan2`, and `lan` on [`LAN_IF`]); a scenario continues its
/// resource list with items indented as these are (`    - apiVersion: ...`).
pub fn router_config(name: &str) -> String {
    format!(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: {name}}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan1}}
      spec: {{ifname: wan1}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan2}}
      spec: {{ifname: wan2}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: lan}}
      spec: {{ifname: {LAN_IF}}}
"
    )
}
