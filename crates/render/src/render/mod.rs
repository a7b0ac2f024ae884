//! Effective configuration + status snapshot → [`DesiredState`] (spec §5).
//!
//! Selection itself is routerd-select's job; rendering only reads its
//! results from the snapshot (`selectedCandidate`, `candidates[].ready`,
//! `members`, IPv4Route / IPv6StaticRoute / NAT44Rule phases), so the same function serves the
//! daemon and the offline `routerctl plan`.

mod addresses;
pub mod egress_router;
pub mod failclosed;
pub mod gateway;
mod host;
mod mobility;
mod nat;
mod policy;
mod routes;
mod static6;
pub mod tunnels;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use routerd_model::id::split_kind_name;
use routerd_model::spec::common::StatusValueSource;
use routerd_model::{Kind, Resource, ResourceId, StateSnapshot, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ir::{AddrValue, CmpOp, DesiredState, Expr, Family, IpField, NftSet};

pub use addresses::WHEN_FALSE;
pub use host::{HOST_POLICY_APPLY_FAILED, PREFERRED_SOURCE_UNAVAILABLE};
pub use nat::{Redirect, add_redirects};

/// A resource that could not be rendered (the rest still is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderProblem {
    /// Resource id.
    pub owner: String,
    /// routerd-style reason (`NotRendered`, `Conflict`).
    #[serde(default = "not_rendered")]
    pub reason: String,
    /// What is wrong, in routerd's wording where it has one.
    pub message: String,
}

fn not_rendered() -> String {
    "NotRendered".to_string()
}

fn not_rendered_reason() -> &'static str {
    "NotRendered"
}

impl RenderProblem {
    /// A problem with the default reason.
    pub fn new(owner: impl Into<String>, message: impl Into<String>) -> Self {
        RenderProblem {
            owner: owner.into(),
            reason: not_rendered(),
            message: message.into(),
        }
    }
}

/// Something the reader of a plan should know about a resource that did
/// render: unlike a [`RenderProblem`] it is no fault of its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderNote {
    /// Resource id.
    pub owner: String,
    /// What to know.
    pub message: String,
}

/// The result of rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Desired dataplane.
    pub desired: DesiredState,
    /// Per-resource problems.
    pub problems: Vec<RenderProblem>,
    /// Policies failing closed (`whenNoCandidate`), by id: `reject` or
    /// `drop`. Their statuses say so (see [`failclosed::overlay`]).
    pub fail_closed: BTreeMap<String, String>,
    /// Notes (an IPAddressSet whose names have no resolution yet).
    pub notes: Vec<RenderNote>,
}

/// Renders the desired dataplane of `resources` (the effective config)
/// given the statuses in `status`.
pub fn render(resources: &[Resource], status: &StateSnapshot) -> Rendered {
    let ctx = Ctx::new(resources, status);
    let mut out = Rendered::default();
    tunnels::render_tunnel_interfaces(&ctx, &mut out);
    addresses::render_static_addresses(&ctx, &mut out);
    routes::render_ipv4_routes(&ctx, &mut out);
    static6::render_ipv6_static_routes(&ctx, &mut out);
    policy::render_policies(&ctx, &mut out);
    failclosed::render_fail_closed(&ctx, &mut out);
    host::render_host_traffic(&ctx, &mut out);
    nat::render_nat44(&ctx, &mut out);
    egress_router::render_egress_routers(&ctx, &mut out);
    gateway::render_gateways(&ctx, &mut out);
    mobility::render_claims(&ctx, &mut out);
    for (owner, winner, object) in out.desired.normalize() {
        out.problems.push(RenderProblem {
            owner,
            reason: "Conflict".into(),
            message: format!("{object} is also wanted by {winner}; only one resource can hold it"),
        });
    }
    unresolved_notes(&ctx, &mut out);
    out
}

/// Offline (`routerctl plan` without state) or before the daemon's first
/// resolution, a set's names contribute nothing: say so for every such
/// set that was rendered, rather than show a set emptier than it will be.
fn unresolved_notes(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::IPAddressSet) {
        let Some(s) = r.as_address_set() else {
            continue;
        };
        if s.names.is_empty() || ctx.status_of(Kind::IPAddressSet, r.name()).is_some() {
            continue;
        }
        let set = set_name(r.name());
        if !out
            .desired
            .nft
            .iter()
            .any(|t| t.sets.iter().any(|x| x.name == set))
        {
            continue;
        }
        out.notes.push(RenderNote {
            owner: r.id().to_string(),
            message: format!(
                "names {} are not resolved yet (no status); set {set} holds spec.addresses only until the daemon resolves them",
                s.names.join(", ")
            ),
        });
    }
}

/// Read-only view of the inputs with routerd's lookup rules.
pub(crate) struct Ctx<'a> {
    /// Resources per kind, sorted by name (routerd renders resources
    /// sorted by metadata.name, spec §5.1), so lookups are binary searches.
    by_kind: BTreeMap<Kind, Vec<&'a Resource>>,
    status: &'a StateSnapshot,
}

impl<'a> Ctx<'a> {
    fn new(resources: &'a [Resource], status: &'a StateSnapshot) -> Self {
        let mut by_kind: BTreeMap<Kind, Vec<&Resource>> = BTreeMap::new();
        for r in resources {
            by_kind.entry(r.kind()).or_default().push(r);
        }
        for (kind, v) in by_kind.iter_mut() {
            // Routes are ordered by their kernel identity afterwards; sorting
            // 10k names would cost more than rendering them.
            if *kind != Kind::IPv4Route && !v.is_sorted_by(|a, b| a.name() <= b.name()) {
                v.sort_unstable_by(|a, b| a.name().cmp(b.name()));
            }
        }
        Ctx { by_kind, status }
    }

    pub(crate) fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a Resource> + '_ {
        self.by_kind
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .copied()
    }

    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.by_kind.get(&kind).map_or(0, Vec::len)
    }

    pub(crate) fn find(&self, kind: Kind, name: &str) -> Option<&'a Resource> {
        let v = self.by_kind.get(&kind)?;
        if kind == Kind::IPv4Route {
            return v.iter().copied().find(|r| r.name() == name);
        }
        let i = v.binary_search_by(|r| r.name().cmp(name)).ok()?;
        v.get(i).copied()
    }

    pub(crate) fn status_of(&self, kind: Kind, name: &str) -> Option<&'a Status> {
        if self.status.is_empty() {
            return None;
        }
        self.status.get(&ResourceId::of(kind, name).to_string())
    }

    /// The status stored under a full resource id.
    pub(crate) fn status_by_id(&self, id: &str) -> Option<&'a Status> {
        self.status.get(id)
    }

    pub(crate) fn status_of_ref(&self, reference: &str) -> Option<&'a Status> {
        let (k, n) = split_kind_name(reference)?;
        self.status_of(Kind::parse(k)?, n)
    }

    /// The value of a `*From` reference as a trimmed string.
    pub(crate) fn status_value(&self, src: &StatusValueSource) -> Option<String> {
        let st = self.status_of_ref(&src.resource)?;
        let field = src.field.as_deref()?;
        lookup(st, field).and_then(value_string)
    }

    /// Kernel name of a logical interface (spec §4.4's alias map); unknown
    /// names are taken as raw kernel names.
    pub(crate) fn alias(&self, name: &str) -> String {
        if let Some(i) = self
            .find(Kind::Interface, name)
            .and_then(Resource::as_interface)
            && !i.ifname.trim().is_empty()
        {
            return i.ifname.trim().to_string();
        }
        if let Some(d) = self
            .find(Kind::DSLiteTunnel, name)
            .and_then(Resource::as_dslite)
        {
            return d.device_name(name).to_string();
        }
        if let Some(p) = self
            .find(Kind::PPPoESession, name)
            .and_then(Resource::as_pppoe)
        {
            return p.device_name(name);
        }
        name.to_string()
    }

    /// The IPAddressSet behind a reference, as an nft set of `family`
    /// (the referencing policy's); a set of the other family is an error.
    pub(crate) fn address_set(&self, reference: &str, family: Family) -> Result<NftSet, String> {
        let name = reference.strip_prefix("IPAddressSet/").unwrap_or(reference);
        let set = self
            .find(Kind::IPAddressSet, name)
            .and_then(Resource::as_address_set)
            .ok_or_else(|| format!("references missing IPAddressSet \"{name}\""))?;
        let mut nets = Vec::new();
        for a in &set.addresses {
            nets.push(parse_net(a, family)?);
        }
        // Names: the last good addresses the daemon's resolver published
        // for each name still in the spec (status `resolved.<name>`).
        if !set.names.is_empty()
            && let Some(resolved) = self
                .status_of(Kind::IPAddressSet, name)
                .and_then(|st| st.get("resolved"))
        {
            for n in &set.names {
                let key = n.trim().trim_end_matches('.').to_ascii_lowercase();
                let addrs = resolved
                    .get(key.as_str())
                    .and_then(|v| v.get("addresses"))
                    .and_then(Value::as_array);
                // Addresses of the other family cannot be in this set.
                nets.extend(
                    addrs
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .filter_map(|a| a.parse::<IpAddr>().ok())
                        .filter(|a| match family {
                            Family::V4 => a.is_ipv4(),
                            Family::V6 => a.is_ipv6(),
                        })
                        .map(IpNet::from),
                );
            }
        }
        Ok(NftSet {
            family,
            name: set_name(reference),
            elements: IpNet::aggregate(&nets),
        })
    }
}

/// Reads a dotted status path.
fn lookup<'v>(st: &'v Status, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut v = st.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn value_string(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// `IPAddressSet/cloud-service` → `ip_address_set_cloud_service`.
pub fn set_name(reference: &str) -> String {
    let name = reference.strip_prefix("IPAddressSet/").unwrap_or(reference);
    format!("ip_address_set_{}", nft_identifier(name))
}

/// A resource name as part of an nft identifier: lowercase, every character
/// nft identifiers do not allow replaced by `_`, so every table and set
/// routerd names after a resource is spelled the same way.
pub(crate) fn nft_identifier(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses a prefix or address of `family` and masks it (`192.168.10.5/24`
/// → `192.168.10.0/24`, `2001:db8::5/64` → `2001:db8::/64`).
pub(crate) fn parse_net(s: &str, family: Family) -> Result<IpNet, String> {
    let s = s.trim();
    let net = if s == "default" {
        Some(family.any())
    } else if let Ok(n) = s.parse::<IpNet>() {
        Some(n.trunc())
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    };
    net.filter(|n| Family::of_net(n) == family)
        .ok_or_else(|| format!("\"{s}\" is not an {} prefix", family.name()))
}

/// Parses an address of `family` (a `/len` suffix is ignored).
pub(crate) fn parse_addr(s: &str, family: Family) -> Result<IpAddr, String> {
    let s = s.trim();
    let s = s.split_once('/').map_or(s, |(a, _)| a);
    s.parse::<IpAddr>()
        .ok()
        .filter(|a| Family::of_addr(a) == family)
        .ok_or_else(|| format!("\"{s}\" is not an {} address", family.name()))
}

/// The source/destination/exclude terms shared by policy and NAT rendering.
#[derive(Default)]
pub(crate) struct MatchSpec<'s> {
    /// Header matched (`ip` or `ip6`); every prefix must be of it.
    pub(crate) family: Family,
    pub(crate) sources: &'s [String],
    pub(crate) destinations: &'s [String],
    pub(crate) destination_sets: &'s [String],
    pub(crate) exclude: &'s [String],
    pub(crate) exclude_sets: &'s [String],
}

/// The source × destination cross product, each followed by the exclude
/// suffix (spec §5.1 "Match building"). Also returns the sets referenced.
pub(crate) fn build_matches(
    ctx: &Ctx<'_>,
    m: &MatchSpec<'_>,
    sets: &mut BTreeMap<String, NftSet>,
) -> Result<Vec<Vec<Expr>>, String> {
    let family = m.family;
    let ip = |field, op, value| Expr::Ip {
        family,
        field,
        op,
        value,
    };
    let mut srcs: Vec<Option<Expr>> = Vec::new();
    for s in m.sources {
        srcs.push(Some(ip(
            IpField::Saddr,
            CmpOp::Eq,
            AddrValue::Prefix(parse_net(s, family)?),
        )));
    }
    if srcs.is_empty() {
        srcs.push(None);
    }
    let mut dsts: Vec<Option<Expr>> = Vec::new();
    for d in m.destinations {
        dsts.push(Some(ip(
            IpField::Daddr,
            CmpOp::Eq,
            AddrValue::Prefix(parse_net(d, family)?),
        )));
    }
    for r in m.destination_sets {
        let set = ctx.address_set(r, family)?;
        dsts.push(Some(ip(
            IpField::Daddr,
            CmpOp::Eq,
            AddrValue::Set(set.name.clone()),
        )));
        sets.insert(set.name.clone(), set);
    }
    if dsts.is_empty() {
        dsts.push(None);
    }
    let mut suffix = Vec::new();
    for x in m.exclude {
        suffix.push(ip(
            IpField::Daddr,
            CmpOp::Ne,
            AddrValue::Prefix(parse_net(x, family)?),
        ));
    }
    for r in m.exclude_sets {
        let set = ctx.address_set(r, family)?;
        suffix.push(ip(
            IpField::Daddr,
            CmpOp::Ne,
            AddrValue::Set(set.name.clone()),
        ));
        sets.insert(set.name.clone(), set);
    }
    let mut out = Vec::new();
    for s in &srcs {
        for d in &dsts {
            let mut v: Vec<Expr> = s.iter().chain(d.iter()).cloned().collect();
            v.extend(suffix.iter().cloned());
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use routerd_model::spec::net::{EgressCandidate, EgressRoutePolicySpec, EgressTarget};
    use routerd_model::{Resource, Spec, StateSnapshot};

    use super::*;

    fn hash_policy(hash_fields: Vec<String>) -> Resource {
        Resource::new(
            "spread",
            Spec::EgressRoutePolicy(EgressRoutePolicySpec {
                mode: Some("hash".into()),
                hash_fields,
                candidates: vec![EgressCandidate {
                    name: Some("c".into()),
                    targets: vec![EgressTarget {
                        interface: Some("eth1".into()),
                        table: Some(110),
                        priority: Some(11000),
                        mark: Some(0x11),
                        gateway_source: Some("bogus".into()),
                        ..EgressTarget::default()
                    }],
                    ..EgressCandidate::default()
                }],
                ..EgressRoutePolicySpec::default()
            }),
        )
    }

    #[test]
    fn problems_are_per_resource_and_hold_what_is_installed() {
        let id = "net.routerd.net/v1alpha1/EgressRoutePolicy/spread";
        let published = serde_json::json!({
            "phase": "Applied", "selectedCandidate": "c",
            "candidates": [{"name": "c", "ready": true, "pathReady": true, "targetStates": [
                {"name": "c-0", "ready": true, "pathReady": true, "inUse": true}
            ]}]
        });
        let mut state = StateSnapshot::new();
        state.insert(
            id.to_string(),
            published.as_object().cloned().unwrap_or_default(),
        );
        let r = render(&[hash_policy(Vec::new())], &state);
        let messages: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                format!("{id} requires at least one hash field").as_str(),
                "unsupported gatewaySource \"bogus\"",
            ]
        );
        assert!(r.desired.nft.is_empty());
        assert!(r.desired.routes.is_empty());
        assert!(r.desired.retained.contains(id));
        // Without a published selection nothing is judged here: the
        // policy keeps what is installed and renders nothing.
        let r = render(&[hash_policy(Vec::new())], &StateSnapshot::new());
        assert!(r.problems.is_empty());
        assert!(r.desired.nft.is_empty() && r.desired.routes.is_empty());
        assert!(r.desired.retained.contains(id));
    }

    fn named_set() -> Resource {
        Resource::new(
            "svc",
            Spec::IPAddressSet(routerd_model::spec::net::IPAddressSetSpec {
                addresses: vec!["192.0.2.0/24".into()],
                names: vec!["Svc.Example.".into(), "gone.example".into()],
                ..Default::default()
            }),
        )
    }

    fn steering_policy() -> Resource {
        let mut p = hash_policy(Vec::new());
        if let Spec::EgressRoutePolicy(s) = &mut p.spec {
            s.mode = None;
            s.destination_set_refs = vec!["IPAddressSet/svc".into()];
            let c = &mut s.candidates[0];
            c.targets.clear();
            c.interface = Some("eth1".into());
            c.table = Some(110);
            c.mark = Some(0x11);
        }
        p
    }

    fn selected() -> StateSnapshot {
        let published = serde_json::json!({
            "phase": "Applied", "selectedCandidate": "c",
            "candidates": [{"name": "c", "ready": true, "pathReady": true, "targetStates": [
                {"name": "c-0", "ready": true, "pathReady": true, "inUse": true}
            ]}]
        });
        let mut state = StateSnapshot::new();
        state.insert(
            "net.routerd.net/v1alpha1/EgressRoutePolicy/spread".to_string(),
            published.as_object().cloned().unwrap_or_default(),
        );
        state
    }

    #[test]
    fn named_sets_hold_spec_addresses_and_each_names_last_good_addresses() {
        let resources = [named_set()];
        let mut state = StateSnapshot::new();
        let status = serde_json::json!({
            "phase": "Ready",
            "addresses": ["192.0.2.0/24", "198.51.100.7", "203.0.113.9"],
            "resolved": {
                "svc.example": {"addresses": ["198.51.100.7", "2001:db8::7"]},
                // A name no longer in the spec contributes nothing.
                "old.example": {"addresses": ["203.0.113.9"]},
            }
        });
        state.insert(
            "net.routerd.net/v1alpha1/IPAddressSet/svc".into(),
            status.as_object().cloned().unwrap_or_default(),
        );
        let ctx = Ctx::new(&resources, &state);
        let set = ctx.address_set("IPAddressSet/svc", Family::V4).unwrap();
        let elements: Vec<String> = set.elements.iter().map(ToString::to_string).collect();
        assert_eq!(elements, ["192.0.2.0/24", "198.51.100.7/32"]);
        // No status: the spec addresses only.
        let empty = StateSnapshot::new();
        let ctx = Ctx::new(&resources, &empty);
        let set = ctx.address_set("svc", Family::V4).unwrap();
        assert_eq!(set.elements.len(), 1);
    }

    #[test]
    fn unresolved_names_are_noted_when_their_set_renders() {
        let resources = [named_set(), steering_policy()];
        let r = render(&resources, &selected());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert_eq!(
            r.notes[0].owner,
            "net.routerd.net/v1alpha1/IPAddressSet/svc"
        );
        assert!(
            r.notes[0].message.contains("not resolved yet"),
            "{}",
            r.notes[0].message
        );
        // Once the daemon published a resolution there is nothing to note.
        let mut state = selected();
        state.insert(
            "net.routerd.net/v1alpha1/IPAddressSet/svc".into(),
            serde_json::json!({"resolved": {"svc.example": {"addresses": ["198.51.100.7"]}}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let r = render(&resources, &state);
        assert!(r.notes.is_empty());
        let set = r
            .desired
            .nft
            .iter()
            .flat_map(|t| t.sets.iter())
            .find(|s| s.name == "ip_address_set_svc")
            .map(|s| {
                s.elements
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            });
        assert_eq!(set.unwrap_or_default(), ["192.0.2.0/24", "198.51.100.7/32"]);
        // A set nothing renders is not noted.
        assert!(
            render(&[named_set()], &StateSnapshot::new())
                .notes
                .is_empty()
        );
    }

    #[test]
    fn set_names_follow_routerd() {
        assert_eq!(
            set_name("IPAddressSet/cloud-service"),
            "ip_address_set_cloud_service"
        );
        assert_eq!(set_name("Cloud.Svc"), "ip_address_set_cloud_svc");
    }

    #[test]
    fn prefixes_are_masked_and_addresses_are_host_prefixes() {
        let v4 = |s| parse_net(s, Family::V4).map(|n| n.to_string());
        let v6 = |s| parse_net(s, Family::V6).map(|n| n.to_string());
        assert_eq!(v4("192.168.10.5/24").unwrap(), "192.168.10.0/24");
        assert_eq!(v4("198.51.100.7").unwrap(), "198.51.100.7/32");
        assert_eq!(v4("default").unwrap(), "0.0.0.0/0");
        assert_eq!(
            v4("2001:db8::/32").unwrap_err(),
            "\"2001:db8::/32\" is not an IPv4 prefix"
        );
        assert_eq!(v6("2001:db8::5/64").unwrap(), "2001:db8::/64");
        assert_eq!(v6("2001:db8::7").unwrap(), "2001:db8::7/128");
        assert_eq!(v6("default").unwrap(), "::/0");
        assert!(v6("10.0.0.0/8").is_err());
        assert!(parse_addr("fe80::1", Family::V6).is_ok());
        assert_eq!(
            parse_addr("fe80::1", Family::V4).unwrap_err(),
            "\"fe80::1\" is not an IPv4 address"
        );
    }
}
