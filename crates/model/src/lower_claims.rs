//! RemoteAddressClaim delivery lowering (routerd-spec §1.8), beside the
//! HybridRoute lowering and applied by the same [`with_lowered`] step, so
//! one place turns CloudEdge intent into ordinary IPv4Routes.
//!
//! Route-mode delivery becomes one IPv4Route per claim, depending on this
//! node's side (the `role` of the claim's OverlayPeer, see
//! `routerd_select::mobility`):
//! * on the side that does not own the address (the capturing side):
//!   `sam-<safe name>-delivery`, the /32 through `delivery.tunnelInterface`
//!   or the peer's underlay, metric 120 — what captured traffic follows;
//! * on the owning side: `sam-<safe name>-local`, the /32 on
//!   `capture.interface` (this node's interface toward the address), metric
//!   120, so traffic arriving over the overlay, and return traffic, is
//!   delivered locally rather than sent back by a covering overlay route.
//!
//! The routes are lowered whether or not capture is active: a delivery
//! route only matters for packets a capture brought here, and keeping it
//! means capture can start the moment the gate opens. `bgp` delivery is
//! not implemented: nothing is lowered and the claim's status says so.
//!
//! [`with_lowered`]: crate::lower::with_lowered

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::id::{HYBRID_API, Kind, NET_API, ObjectRef};
use crate::lower::{LoweredRoute, cidr_slug, peer_name, route_target};
use crate::resource::{Metadata, Resource, Spec};
use crate::spec::{IPv4RouteSpec, OverlayPeerSpec, RemoteAddressClaimSpec};

/// The metric of claim routes (routerd's).
pub const CLAIM_ROUTE_METRIC: i64 = 120;

/// Which route a claim lowered to on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSide {
    /// This node does not own the address: it captures and delivers.
    Capturing,
    /// This node's side owns the address: a local host route.
    Owning,
}

/// The lowering of one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLowering {
    /// The delivery peer (`delivery.peerRef`, else the domain's).
    pub peer: String,
    /// This node's side (the peer's `role`), when known.
    pub local_side: Option<String>,
    /// Which side this node is on, when known.
    pub side: Option<ClaimSide>,
    /// The claimed address.
    pub address: Option<Ipv4Addr>,
    /// The lowered route (none for bgp delivery or a problem).
    pub route: Option<LoweredRoute>,
    /// `delivery.mode` (`route` when empty).
    pub mode: String,
    /// Why nothing was lowered (routerd-style, without the id).
    pub problem: Option<String>,
}

/// `sam-<safe name>-delivery`.
pub fn delivery_route_name(claim: &str) -> String {
    format!("sam-{}-delivery", cidr_slug(claim))
}

/// `sam-<safe name>-local`.
pub fn local_route_name(claim: &str) -> String {
    format!("sam-{}-local", cidr_slug(claim))
}

fn trimmed(s: &Option<String>) -> &str {
    s.as_deref().map(str::trim).unwrap_or("")
}

/// Lowers every RemoteAddressClaim of `resources`, by claim name. Of two
/// claims of one address the larger name is refused, alone.
pub fn lower_claims<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
) -> BTreeMap<String, ClaimLowering> {
    let mut peers: HashMap<&str, &OverlayPeerSpec> = HashMap::new();
    let mut tunnels: HashMap<&str, &str> = HashMap::new();
    let mut interfaces: HashMap<&str, &str> = HashMap::new();
    let mut domains: HashMap<&str, String> = HashMap::new();
    let mut claims: BTreeMap<&str, &RemoteAddressClaimSpec> = BTreeMap::new();
    let mut user_dest: HashMap<Ipv4Net, &str> = HashMap::new();
    for r in resources {
        match &r.spec {
            Spec::OverlayPeer(s) => {
                peers.insert(r.name(), s);
            }
            Spec::TunnelInterface(s) => {
                if let Some(i) = s.ifname.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
                    tunnels.insert(r.name(), i);
                }
            }
            Spec::Interface(s) if !s.ifname.trim().is_empty() => {
                interfaces.insert(r.name(), s.ifname.trim());
            }
            Spec::AddressMobilityDomain(s) => {
                domains.insert(r.name(), peer_name(trimmed(&s.peer_ref)).to_string());
            }
            Spec::RemoteAddressClaim(s) => {
                claims.insert(r.name(), s);
            }
            Spec::IPv4Route(s) if !crate::lower::is_lowered(r) => {
                if let Ok(n) = s.destination.trim().parse::<Ipv4Net>() {
                    user_dest.entry(n.trunc()).or_insert(r.name());
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    let mut taken: HashMap<Ipv4Addr, &str> = HashMap::new();
    for (name, spec) in claims {
        let delivery = spec.delivery.clone().unwrap_or_default();
        let capture = spec.capture.clone().unwrap_or_default();
        let mut peer = peer_name(trimmed(&delivery.peer_ref)).to_string();
        if peer.is_empty() {
            peer = domains
                .get(peer_name(trimmed(&spec.domain_ref)))
                .cloned()
                .unwrap_or_default();
        }
        let mode = match trimmed(&delivery.mode) {
            "" => "route".to_string(),
            m => m.to_string(),
        };
        let peer_spec = peers.get(peer.as_str()).copied();
        let local_side = peer_spec
            .and_then(|p| p.role.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let address = trimmed(&spec.address)
            .parse::<Ipv4Net>()
            .ok()
            .filter(|n| n.prefix_len() == 32)
            .map(|n| n.addr());
        let owner = trimmed(&spec.owner_side);
        let side = local_side.as_deref().map(|l| {
            if l == owner {
                ClaimSide::Owning
            } else {
                ClaimSide::Capturing
            }
        });
        let mut l = ClaimLowering {
            peer: peer.clone(),
            local_side,
            side,
            address,
            route: None,
            mode: mode.clone(),
            problem: None,
        };
        let problem = (|| -> Result<Option<LoweredRoute>, String> {
            let Some(a) = address else {
                return Err("spec.address is not an IPv4 /32".into());
            };
            if let Some(other) = taken.get(&a) {
                return Err(format!(
                    "address {a} is also claimed by RemoteAddressClaim/{other}"
                ));
            }
            taken.insert(a, name);
            let Some(p) = peer_spec else {
                return Err(format!(
                    "spec.delivery.peerRef references missing OverlayPeer {peer:?}"
                ));
            };
            let Some(side) = side else {
                return Err(format!(
                    "this node's side is unknown: OverlayPeer {peer:?} has no spec.role"
                ));
            };
            if mode != "route" {
                return Ok(None);
            }
            let dest = Ipv4Net::from(a);
            if let Some(u) = user_dest.get(&dest) {
                return Err(format!(
                    "destination {dest} collides with user IPv4Route/{u}"
                ));
            }
            let route = match side {
                ClaimSide::Capturing => {
                    let tunnel = trimmed(&delivery.tunnel_interface);
                    let (device, gateway) = if tunnel.is_empty() {
                        route_target(p, &tunnels)?
                    } else {
                        (
                            tunnels.get(tunnel).copied().unwrap_or(tunnel).to_string(),
                            String::new(),
                        )
                    };
                    LoweredRoute {
                        name: delivery_route_name(name),
                        destination: dest,
                        device,
                        gateway,
                        metric: CLAIM_ROUTE_METRIC,
                    }
                }
                ClaimSide::Owning => {
                    let iface = trimmed(&capture.interface);
                    if iface.is_empty() {
                        return Err(
                            "spec.capture.interface is required for the owning side's local route"
                                .into(),
                        );
                    }
                    LoweredRoute {
                        name: local_route_name(name),
                        destination: dest,
                        device: interfaces.get(iface).copied().unwrap_or(iface).to_string(),
                        gateway: String::new(),
                        metric: CLAIM_ROUTE_METRIC,
                    }
                }
            };
            Ok(Some(route))
        })();
        match problem {
            Ok(r) => l.route = r,
            Err(e) => l.problem = Some(e),
        }
        out.insert(name.to_string(), l);
    }
    out
}

/// The claims' routes as IPv4Route resources owned by their claim.
pub fn claim_route_resources(
    lowered: &BTreeMap<String, ClaimLowering>,
    claims: &BTreeMap<String, &Resource>,
) -> Vec<Resource> {
    let mut out = Vec::new();
    for (claim, l) in lowered {
        let Some(r) = &l.route else { continue };
        // Provenance is the owner reference (as for HybridRoute's routes).
        let annotations = claims
            .get(claim)
            .map(|c| c.metadata.annotations.clone())
            .unwrap_or_default();
        out.push(Resource {
            api_version: NET_API.to_string(),
            metadata: Metadata {
                name: r.name.clone(),
                owner_refs: vec![ObjectRef {
                    api_version: HYBRID_API.to_string(),
                    kind: Kind::RemoteAddressClaim.as_str().to_string(),
                    name: claim.clone(),
                }],
                annotations,
                ..Metadata::default()
            },
            spec: Spec::IPv4Route(IPv4RouteSpec {
                destination: r.destination.to_string(),
                type_: Some("unicast".into()),
                device: (!r.device.is_empty()).then(|| r.device.clone()),
                gateway: (!r.gateway.is_empty()).then(|| r.gateway.clone()),
                metric: Some(r.metric),
                ..IPv4RouteSpec::default()
            }),
            status: None,
        });
    }
    out
}

/// The claim a lowered route belongs to.
pub fn claim_of(r: &Resource) -> Option<&str> {
    r.metadata
        .owner_refs
        .iter()
        .find(|o| o.kind == Kind::RemoteAddressClaim.as_str())
        .map(|o| o.name.as_str())
}
