//! HybridRoute lowering (routerd-spec §1.8): every destination CIDR of a
//! HybridRoute becomes an ordinary IPv4Route, so the route follower, the
//! renderer and the ownership ledger carry cloud prefixes exactly like
//! routes an operator wrote.
//!
//! The lowering lives in the model crate because three layers need the
//! same answer: validation (a collision is a config error with a file
//! position), the merge (a dynamic part that brings a collision is rejected
//! alone) and the effective view the daemon and `routerctl plan` render.
//! It is pure and deterministic: the output depends only on the set of
//! input resources, never on their order (HybridRoutes are visited by
//! name, and of two colliding HybridRoutes the larger name loses).
//!
//! Unlike routerd, where one bad HybridRoute aborts the whole expansion,
//! a HybridRoute that cannot be lowered is reported alone (its routes are
//! not lowered, its status says `SpecInvalid`) and every other one lowers.

use std::collections::{BTreeMap, HashMap};

use ipnet::Ipv4Net;

use crate::id::{HYBRID_API, Kind, NET_API, ObjectRef, ResourceId};
use crate::resource::{Metadata, Resource, Spec};
use crate::spec::{HybridRouteSpec, IPv4RouteSpec, OverlayPeerSpec};

/// Why a HybridRoute (or one of its destinations) was not lowered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerProblem {
    /// The HybridRoute refused.
    pub hybrid_route: ResourceId,
    /// The other resource in a collision (a user IPv4Route, another
    /// HybridRoute), so a merge can tell whose part brought it.
    pub other: Option<ResourceId>,
    /// The field the problem is about.
    pub path: String,
    /// routerd's wording, starting with the HybridRoute's id.
    pub message: String,
    /// A clash with another resource (reported by validation) rather than
    /// a field problem validation already reports in its own words.
    pub collision: bool,
}

/// One route a HybridRoute lowered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoweredRoute {
    /// The IPv4Route's name: `<hybridRoute>-<cidr made safe>`.
    pub name: String,
    /// The normalized (masked) destination.
    pub destination: Ipv4Net,
    /// The peer's underlay device.
    pub device: String,
    /// Gateway (ipsec only: the peer's IPv4 `remote.address`).
    pub gateway: String,
    /// `install.metric`.
    pub metric: i64,
}

/// The lowering of one HybridRoute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HybridLowering {
    /// The peer name (`peerRef` without an `OverlayPeer/` prefix).
    pub peer: String,
    /// Lowered routes, sorted by name; empty when the HybridRoute is
    /// refused.
    pub routes: Vec<LoweredRoute>,
    /// Why it was refused (empty when it lowered).
    pub problems: Vec<LowerProblem>,
}

/// Annotations (dynamic provenance) of each HybridRoute, by name: copied
/// onto the routes it lowers to.
pub type Annotations = BTreeMap<String, BTreeMap<String, String>>;

/// The result of lowering a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lowering {
    /// Per HybridRoute name, what it lowered to or why it did not.
    pub by_route: BTreeMap<String, HybridLowering>,
}

impl Lowering {
    /// Every problem, ordered by HybridRoute name.
    pub fn problems(&self) -> impl Iterator<Item = &LowerProblem> + '_ {
        self.by_route.values().flat_map(|h| h.problems.iter())
    }

    /// The lowered IPv4Route resources, sorted by name. `annotations` of
    /// each HybridRoute (dynamic provenance) are copied onto its routes so
    /// `describe` shows the chain part → HybridRoute → route.
    pub fn resources(&self, hybrid: &Annotations) -> Vec<Resource> {
        let mut out: Vec<Resource> = self.resource_iter(hybrid).collect();
        if !self.names_sorted() {
            out.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        }
        out
    }

    /// The lowered IPv4Route resources, built one at a time in HybridRoute
    /// order (sorted by name when [`Lowering::names_sorted`]): 10,000
    /// resources of 760 bytes are not worth a vector of their own when they
    /// are merged into the effective list anyway.
    pub fn resource_iter<'a>(
        &'a self,
        hybrid: &'a Annotations,
    ) -> impl Iterator<Item = Resource> + 'a {
        self.by_route
            .iter()
            .filter(|(_, l)| !l.routes.is_empty())
            .flat_map(move |(hr, l)| {
                // Built once per HybridRoute; each route gets a copy. The
                // owner reference says where a route came from; a dynamic
                // HybridRoute's provenance says which part brought it.
                let annotations = hybrid.get(hr).cloned().unwrap_or_default();
                let owner = ObjectRef {
                    api_version: HYBRID_API.to_string(),
                    kind: Kind::HybridRoute.as_str().to_string(),
                    name: hr.clone(),
                };
                l.routes
                    .iter()
                    .map(move |r| route_resource(r, &owner, &annotations))
            })
    }

    /// Whether the routes in HybridRoute order are also in name order (each
    /// HybridRoute's are; across two, a name that is a prefix of another,
    /// `hr` and `hr-a`, can interleave them).
    pub fn names_sorted(&self) -> bool {
        let mut last: Option<&str> = None;
        for l in self.by_route.values() {
            let (Some(first), Some(end)) = (l.routes.first(), l.routes.last()) else {
                continue;
            };
            if last.is_some_and(|p| p > first.name.as_str()) {
                return false;
            }
            last = Some(end.name.as_str());
        }
        true
    }

    /// The lowering an already lowered configuration carries: its
    /// HybridRoutes and the routes they own. `None` when some HybridRoute
    /// owns no route (refused, or nothing to lower): only a full
    /// [`lower`] knows why. Cheaper than lowering again, for readers of
    /// every step (the status follower).
    pub fn from_effective(effective: &[Resource]) -> Option<Lowering> {
        let mut out = Lowering::default();
        for r in effective {
            if let Some(s) = r.as_hybrid_route() {
                out.by_route.insert(
                    r.name().to_string(),
                    HybridLowering {
                        peer: peer_name(s.peer_ref.as_deref().unwrap_or("")).to_string(),
                        ..HybridLowering::default()
                    },
                );
            }
        }
        for r in effective {
            let (Some(owner), Some(s)) = (owner_of(r), r.as_ipv4_route()) else {
                continue;
            };
            let h = out.by_route.get_mut(owner)?;
            h.routes.push(LoweredRoute {
                name: r.name().to_string(),
                destination: s.destination.parse().ok()?,
                device: s.device.clone().unwrap_or_default(),
                gateway: s.gateway.clone().unwrap_or_default(),
                metric: s.metric.unwrap_or(0),
            });
        }
        out.by_route
            .values()
            .all(|h| !h.routes.is_empty())
            .then_some(out)
    }

    /// Number of lowered routes.
    pub fn route_count(&self) -> usize {
        self.by_route.values().map(|h| h.routes.len()).sum()
    }
}

fn route_resource(
    r: &LoweredRoute,
    owner: &ObjectRef,
    annotations: &BTreeMap<String, String>,
) -> Resource {
    Resource {
        api_version: NET_API.to_string(),
        metadata: Metadata {
            name: r.name.clone(),
            owner_refs: vec![owner.clone()],
            annotations: annotations.clone(),
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
    }
}

/// Whether `r` is a route some HybridRoute lowered (owned by a HybridRoute),
/// as opposed to one an operator or a plugin wrote.
pub fn is_lowered(r: &Resource) -> bool {
    r.kind() == Kind::IPv4Route
        && r.metadata.owner_refs.iter().any(|o| {
            o.kind == Kind::HybridRoute.as_str() || o.kind == Kind::RemoteAddressClaim.as_str()
        })
}

/// The owning HybridRoute's name of a lowered route.
pub fn owner_of(r: &Resource) -> Option<&str> {
    r.metadata
        .owner_refs
        .iter()
        .find(|o| o.kind == Kind::HybridRoute.as_str())
        .map(|o| o.name.as_str())
}

/// `cidr` with every run of non-alphanumeric characters replaced by `-`,
/// trimmed of `-` (routerd's `cidrSlug`): `10.20.0.0/16` → `10-20-0-0-16`.
pub fn cidr_slug(cidr: &str) -> String {
    let mut out = String::with_capacity(cidr.len());
    let mut dash = false;
    for c in cidr.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

/// The name a HybridRoute's destination lowers to.
pub fn route_name(hybrid_route: &str, cidr: &Ipv4Net) -> String {
    use std::fmt::Write as _;
    // The slug of a normalized IPv4 CIDR is its octets and length joined
    // by `-` (the same as `cidr_slug`, without the intermediate string).
    let [a, b, c, d] = cidr.addr().octets();
    let mut out = String::with_capacity(hybrid_route.len() + 20);
    out.push_str(hybrid_route);
    let _ = write!(out, "-{a}-{b}-{c}-{d}-{}", cidr.prefix_len());
    out
}

/// `peerRef` without an `OverlayPeer/` prefix (routerd accepts both).
pub fn peer_name(peer_ref: &str) -> &str {
    let p = peer_ref.trim();
    p.strip_prefix("OverlayPeer/").unwrap_or(p).trim()
}

/// A destination as routerd normalizes it: trimmed, masked, IPv4, not a
/// default route.
pub fn normalize_destination(value: &str) -> Result<Ipv4Net, String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("default") {
        return Err("default routes are not allowed".into());
    }
    let net: ipnet::IpNet = v
        .parse()
        .map_err(|e: ipnet::AddrParseError| e.to_string())?;
    if net.prefix_len() == 0 {
        return Err("default routes are not allowed".into());
    }
    match net.trunc() {
        ipnet::IpNet::V4(n) => Ok(n),
        ipnet::IpNet::V6(_) => Err("only IPv4 CIDRs can be lowered to IPv4Route".into()),
    }
}

/// The device and gateway routes through `peer` use (routerd's
/// `RouteTarget`): the underlay interface, and for ipsec the IPv4
/// `remote.address` as gateway. When the interface names a TunnelInterface
/// with its own `ifname`, that kernel name is the device.
pub fn route_target(
    peer: &OverlayPeerSpec,
    tunnels: &HashMap<&str, &str>,
) -> Result<(String, String), String> {
    let u = peer.underlay.clone().unwrap_or_default();
    let iface = u.interface.as_deref().map(str::trim).unwrap_or("");
    if iface.is_empty() {
        return Err("spec.underlay.interface is required to lower HybridRoute to IPv4Route".into());
    }
    let device = tunnels.get(iface).copied().unwrap_or(iface).to_string();
    match u.type_.as_deref().map(str::trim).unwrap_or("") {
        "wireguard" | "route" | "tailscale" | "ipip" | "gre" | "fou" | "gue" => {
            Ok((device, String::new()))
        }
        "ipsec" => {
            let gw = peer
                .remote
                .as_ref()
                .and_then(|r| r.address.as_deref())
                .and_then(|a| a.trim().parse::<std::net::Ipv4Addr>().ok())
                .map(|a| a.to_string())
                .unwrap_or_default();
            Ok((device, gw))
        }
        t => Err(format!("unsupported underlay type {t:?}")),
    }
}

/// Lowers every HybridRoute of `resources` (an effective configuration;
/// routes lowered earlier are ignored, so lowering is idempotent).
pub fn lower<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Lowering {
    let mut peers: HashMap<&str, &OverlayPeerSpec> = HashMap::new();
    let mut tunnels: HashMap<&str, &str> = HashMap::new();
    let mut hybrids: BTreeMap<&str, (&Resource, &HybridRouteSpec)> = BTreeMap::new();
    // User routes by name and by normalized destination (the smallest
    // name when several share one, so the message does not depend on
    // input order).
    let mut user_names: HashMap<&str, &Resource> = HashMap::new();
    let mut user_dest: HashMap<Ipv4Net, &Resource> = HashMap::new();
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
            Spec::HybridRoute(s) => {
                hybrids.insert(r.name(), (r, s));
            }
            Spec::IPv4Route(s) if !is_lowered(r) => {
                user_names.insert(r.name(), r);
                let dest = s.destination.trim();
                if let Ok(n) = dest.parse::<Ipv4Net>() {
                    let e = user_dest.entry(n.trunc()).or_insert(r);
                    if r.name() < e.name() {
                        *e = r;
                    }
                }
            }
            _ => {}
        }
    }

    let mut out = Lowering::default();
    // (destination, metric) pairs claimed so far by HybridRoutes accepted
    // earlier (smaller names); values index `accepted`, so a route costs no
    // id copies.
    let mut accepted: Vec<ResourceId> = Vec::new();
    let mut kernel: HashMap<(Ipv4Net, i64), usize> = HashMap::new();
    // Synthetic names of two HybridRoutes never meet: a name is its
    // HybridRoute's name followed by exactly five `-<number>` segments (the
    // normalized CIDR), so stripping them gives the HybridRoute back. Names
    // repeat only within one HybridRoute, when a destination does.
    for (name, (r, spec)) in &hybrids {
        let (name, r, spec) = (*name, *r, *spec);
        let id = r.id();
        let idt = id.to_string();
        let peer = peer_name(spec.peer_ref.as_deref().unwrap_or(""));
        let mut h = HybridLowering {
            peer: peer.to_string(),
            ..HybridLowering::default()
        };
        let problem =
            |path: &str, message: String, other: Option<ResourceId>, collision| LowerProblem {
                hybrid_route: id.clone(),
                other,
                path: path.to_string(),
                message,
                collision,
            };
        let target = if peer.is_empty() {
            Err(problem(
                "spec.peerRef",
                format!("{idt} spec.peerRef is required"),
                None,
                false,
            ))
        } else {
            match peers.get(peer) {
                None => Err(problem(
                    "spec.peerRef",
                    format!("{idt} spec.peerRef references missing OverlayPeer {peer:?}"),
                    None,
                    false,
                )),
                Some(p) => route_target(p, &tunnels)
                    .map_err(|e| problem("spec.peerRef", format!("{idt}: {e}"), None, false)),
            }
        };
        let metric = spec.install.as_ref().and_then(|i| i.metric).unwrap_or(0);
        let (device, gateway) = match target {
            Ok(t) => t,
            Err(p) => {
                h.problems.push(p);
                (String::new(), String::new())
            }
        };
        if spec.destination_cidrs.is_empty() {
            h.problems.push(problem(
                "spec.destinationCIDRs",
                format!("{idt} spec.destinationCIDRs is required"),
                None,
                false,
            ));
        }
        let mut own: Vec<LoweredRoute> = Vec::with_capacity(spec.destination_cidrs.len());
        let mut own_dest: std::collections::HashSet<Ipv4Net> =
            std::collections::HashSet::with_capacity(spec.destination_cidrs.len());
        for (i, d) in spec.destination_cidrs.iter().enumerate() {
            // Formatted only for a refusal: 10,000 prefixes lower on the
            // hot path of a part arriving.
            let path = || format!("spec.destinationCIDRs[{i}]");
            let cidr = match normalize_destination(d) {
                Ok(c) => c,
                Err(e) => {
                    h.problems.push(problem(
                        &path(),
                        format!("{idt} destination {:?}: {e}", d.trim()),
                        None,
                        false,
                    ));
                    continue;
                }
            };
            if let Some(other) = user_dest.get(&cidr) {
                h.problems.push(problem(
                    &path(),
                    format!(
                        "{idt} destination {cidr} collides with user IPv4Route/{}",
                        other.name()
                    ),
                    Some(other.id()),
                    true,
                ));
                continue;
            }
            let rname = route_name(name, &cidr);
            if let Some(other) = user_names.get(rname.as_str()) {
                h.problems.push(problem(
                    &path(),
                    format!(
                        "{idt} synthetic IPv4Route name {rname:?} collides with a user-authored IPv4Route"
                    ),
                    Some(other.id()),
                    true,
                ));
                continue;
            }
            // One name per normalized destination within a HybridRoute.
            if !own_dest.insert(cidr) {
                h.problems.push(problem(
                    &path(),
                    format!("{idt} synthetic IPv4Route name {rname:?} is not unique"),
                    None,
                    true,
                ));
                continue;
            }
            if let Some(oid) = kernel.get(&(cidr, metric)).and_then(|i| accepted.get(*i)) {
                h.problems.push(problem(
                    &path(),
                    format!(
                        "{idt} destination {cidr} metric {metric} is also lowered by {oid}: both would write the same kernel route"
                    ),
                    Some(oid.clone()),
                    true,
                ));
                continue;
            }
            own.push(LoweredRoute {
                name: rname,
                destination: cidr,
                device: device.clone(),
                gateway: gateway.clone(),
                metric,
            });
        }
        if h.problems.is_empty() {
            let i = accepted.len();
            accepted.push(id.clone());
            kernel.reserve(own.len());
            for r in &own {
                kernel.insert((r.destination, r.metric), i);
            }
            own.sort_by(|a, b| a.name.cmp(&b.name));
            h.routes = own;
        }
        out.by_route.insert(name.to_string(), h);
    }
    out
}

fn id_key(r: &Resource) -> (&str, &str, &str) {
    (r.api_version.as_str(), r.kind().as_str(), r.name())
}

/// The effective configuration with every HybridRoute lowered: `resources`
/// (sorted by id) plus the lowered IPv4Routes, sorted by id again.
pub fn with_lowered(mut resources: Vec<Resource>) -> (Vec<Resource>, Lowering) {
    resources.retain(|r| !is_lowered(r));
    let lowering = lower(resources.iter());
    // RemoteAddressClaim delivery (crate::lower_claims): the same step.
    let claims: BTreeMap<String, &Resource> = resources
        .iter()
        .filter(|r| r.kind() == Kind::RemoteAddressClaim)
        .map(|r| (r.name().to_string(), r))
        .collect();
    if lowering.by_route.is_empty() && claims.is_empty() {
        return (resources, lowering);
    }
    let hybrid: Annotations = resources
        .iter()
        .filter(|r| r.kind() == Kind::HybridRoute)
        .map(|r| (r.name().to_string(), r.metadata.annotations.clone()))
        .collect();
    let sorted = resources.is_sorted_by(|a, b| id_key(a) <= id_key(b));
    if claims.is_empty() && sorted && lowering.names_sorted() {
        // The common case, and the hot one (a part bringing 10,000
        // prefixes): merge the routes as they are built.
        let mut out = Vec::with_capacity(resources.len() + lowering.route_count());
        let mut b = lowering.resource_iter(&hybrid).peekable();
        for r in resources {
            while b.peek().is_some_and(|x| id_key(x) < id_key(&r)) {
                out.extend(b.next());
            }
            out.push(r);
        }
        out.extend(b);
        return (out, lowering);
    }
    let mut routes = lowering.resources(&hybrid);
    if !claims.is_empty() {
        let lowered = crate::lower_claims::lower_claims(resources.iter());
        routes.extend(crate::lower_claims::claim_route_resources(
            &lowered, &claims,
        ));
        // The merge below takes the routes in id order.
        routes.sort_by(|a, b| id_key(a).cmp(&id_key(b)));
    }
    if routes.is_empty() {
        return (resources, lowering);
    }
    let mut out = Vec::with_capacity(resources.len() + routes.len());
    if sorted {
        // The effective config is sorted by id and the routes by name (one
        // kind): a merge keeps the order without sorting 10,000 routes again.
        let mut a = resources.into_iter().peekable();
        let mut b = routes.into_iter().peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => id_key(x) <= id_key(y),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            out.extend(next);
        }
    } else {
        out = resources;
        out.extend(routes);
        out.sort_by(|a, b| id_key(a).cmp(&id_key(b)));
    }
    let resources = out;
    (resources, lowering)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::spec::{RemotePeer, RouteInstall, Underlay};

    fn peer(name: &str, ty: &str, iface: &str) -> Resource {
        Resource::new(
            name,
            Spec::OverlayPeer(OverlayPeerSpec {
                role: Some("cloud".into()),
                node_id: Some("n1".into()),
                underlay: Some(Underlay {
                    type_: Some(ty.into()),
                    interface: (!iface.is_empty()).then(|| iface.into()),
                    address: None,
                }),
                remote: Some(RemotePeer {
                    node_id: None,
                    address: Some("198.51.100.7".into()),
                }),
                path_mtu: None,
            }),
        )
    }

    fn hybrid(name: &str, peer: &str, cidrs: &[&str], metric: Option<i64>) -> Resource {
        Resource::new(
            name,
            Spec::HybridRoute(HybridRouteSpec {
                destination_cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
                peer_ref: Some(peer.into()),
                install: metric.map(|m| RouteInstall {
                    table: None,
                    metric: Some(m),
                }),
                health_check_ref: None,
            }),
        )
    }

    fn route(name: &str, dest: &str) -> Resource {
        Resource::new(
            name,
            Spec::IPv4Route(IPv4RouteSpec {
                destination: dest.into(),
                device: Some("eth1".into()),
                ..IPv4RouteSpec::default()
            }),
        )
    }

    #[test]
    fn slug_replaces_runs_and_trims() {
        assert_eq!(cidr_slug("10.20.0.0/16"), "10-20-0-0-16");
        assert_eq!(cidr_slug("..a//b.."), "a-b");
    }

    #[test]
    fn each_destination_becomes_an_owned_route_through_the_underlay() {
        let cfg = vec![
            peer("azure", "wireguard", "wg0"),
            hybrid(
                "cloud-private",
                "OverlayPeer/azure",
                &["10.20.1.7/16", "10.30.0.0/24"],
                Some(50),
            ),
        ];
        let l = lower(&cfg);
        let h = &l.by_route["cloud-private"];
        assert!(h.problems.is_empty(), "{:?}", h.problems);
        let names: Vec<&str> = h.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["cloud-private-10-20-0-0-16", "cloud-private-10-30-0-0-24"]
        );
        assert_eq!(h.routes[0].device, "wg0");
        assert_eq!(h.routes[0].gateway, "");
        assert_eq!(h.routes[0].metric, 50);
        let (all, _) = with_lowered(cfg);
        let r = all
            .iter()
            .find(|r| r.name() == "cloud-private-10-20-0-0-16")
            .unwrap();
        assert_eq!(owner_of(r), Some("cloud-private"));
        assert_eq!(r.as_ipv4_route().unwrap().destination, "10.20.0.0/16");
    }

    #[test]
    fn ipsec_routes_via_the_remote_address() {
        let cfg = vec![
            peer("p", "ipsec", "xfrm0"),
            hybrid("h", "p", &["10.0.0.0/8"], None),
        ];
        let l = lower(&cfg);
        assert_eq!(l.by_route["h"].routes[0].gateway, "198.51.100.7");
        assert_eq!(l.by_route["h"].routes[0].metric, 0);
    }

    #[test]
    fn collisions_refuse_the_hybrid_route_alone() {
        let cfg = vec![
            peer("p", "route", "eth9"),
            route("static-cloud", "10.20.0.0/16"),
            route("b-10-1-0-0-16", "192.0.2.0/24"),
            hybrid("a", "p", &["10.20.0.0/16"], None),
            hybrid("b", "p", &["10.1.0.0/16"], None),
            hybrid("c", "p", &["10.2.0.0/16", "10.2.0.0/16"], None),
            hybrid("ok", "p", &["10.9.0.0/16"], None),
        ];
        let l = lower(&cfg);
        let msg = |n: &str| l.by_route[n].problems[0].message.clone();
        assert_eq!(
            msg("a"),
            "hybrid.routerd.net/v1alpha1/HybridRoute/a destination 10.20.0.0/16 collides with user IPv4Route/static-cloud"
        );
        assert_eq!(
            msg("b"),
            "hybrid.routerd.net/v1alpha1/HybridRoute/b synthetic IPv4Route name \"b-10-1-0-0-16\" collides with a user-authored IPv4Route"
        );
        assert_eq!(
            msg("c"),
            "hybrid.routerd.net/v1alpha1/HybridRoute/c synthetic IPv4Route name \"c-10-2-0-0-16\" is not unique"
        );
        for n in ["a", "b", "c"] {
            assert!(l.by_route[n].routes.is_empty());
        }
        assert_eq!(l.by_route["ok"].routes.len(), 1);
    }

    #[test]
    fn the_lowering_read_back_from_the_effective_config_is_the_same() {
        let cfg = vec![
            peer("p", "ipsec", "xfrm0"),
            hybrid("b", "p", &["10.2.0.0/16", "10.1.0.0/16"], Some(7)),
            hybrid("a", "OverlayPeer/p", &["10.3.0.0/16"], None),
        ];
        let (all, lowering) = with_lowered(cfg);
        assert_eq!(Lowering::from_effective(&all), Some(lowering));
        // A HybridRoute that lowered nothing: only a full lowering says why.
        let (all, _) = with_lowered(vec![hybrid("m", "nope", &["10.0.0.0/8"], None)]);
        assert_eq!(Lowering::from_effective(&all), None);
    }

    #[test]
    fn the_effective_list_is_in_id_order_whether_route_names_interleave_or_not() {
        let ids = |v: &[Resource]| v.iter().map(|r| r.id().to_string()).collect::<Vec<_>>();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        // `x` and `x-9`: `x`'s `x-99-0-0-0-8` sorts after `x-9`'s
        // `x-9-10-3-0-0-16`, so HybridRoute order is not name order.
        for names in [["x", "x-9"], ["a", "b"], ["hr", "hr-a"]] {
            let mut cfg = vec![
                peer("p", "wireguard", "wg0"),
                hybrid(names[0], "p", &["99.0.0.0/8", "10.1.0.0/16"], None),
                hybrid(names[1], "p", &["10.3.0.0/16", "192.0.2.0/24"], Some(9)),
                route("zz-user", "172.16.0.0/12"),
            ];
            cfg.sort_by_key(|r| r.id().to_string());
            let (all, lowering) = with_lowered(cfg);
            assert_eq!(lowering.names_sorted(), names[0] != "x", "{names:?}");
            assert_eq!(lowering.route_count(), 4);
            assert_eq!(all.len(), 4 + 4);
            assert_eq!(ids(&all), sorted(ids(&all)), "{names:?}");
        }
    }

    #[test]
    fn default_routes_and_missing_peers_are_refused() {
        let cfg = vec![
            hybrid("d", "p", &["0.0.0.0/0"], None),
            peer("p", "route", "eth9"),
            hybrid("m", "nope", &["10.0.0.0/8"], None),
            hybrid("x", "p", &["default"], None),
        ];
        let l = lower(&cfg);
        assert!(
            l.by_route["d"].problems[0]
                .message
                .ends_with("default routes are not allowed")
        );
        assert!(
            l.by_route["x"].problems[0]
                .message
                .ends_with("default routes are not allowed")
        );
        assert!(
            l.by_route["m"].problems[0]
                .message
                .ends_with("spec.peerRef references missing OverlayPeer \"nope\"")
        );
        assert_eq!(l.route_count(), 0);
    }
}
