//! EgressRouter → one routerd-owned nft table per router (issue #15).
//!
//! The table (`ip` or `ip6` by the router's family) is replaced atomically
//! as a whole, so a change of rules never leaves a half-written redirect.
//! `prerouting` holds one DNAT per rule, then, after every port rule by
//! construction (not by list order, unlike OpenShift), the fallback DNAT
//! or the explicit refusal (TCP reset, ICMP port unreachable) where
//! OpenShift relies on "nothing listens". `postrouting` sources the
//! redirected traffic from the reserved addresses, all of them (a stable
//! per-client choice when there are several), not only `addresses[0]`.
//!
//! Carrying (phase 2a, `carry`): a macvlan on the master (declared, or
//! inferred from the Interface whose observed subnet holds a reserved
//! address) with every reserved address, announced by a gratuitous ARP /
//! unsolicited NA; the router's own routing table (its subnets, default
//! via `gateway`) selected by an fwmark rule; and a `route` chain in the
//! table that marks packets of redirected connections after DNAT, so the
//! host's `main` table is never touched.

use std::net::IpAddr;

use ipnet::IpNet;
use routerd_model::spec::egress_router::{EgressRouterSpec, RedirectProtocol};
use routerd_model::{Kind, Resource};
use serde_json::Value;

use super::{Ctx, RenderNote, RenderProblem, Rendered};
use crate::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, L4Proto, NatAddr, NftChain,
    NftFamily, NftRule, NftSet, NftTable, Priority, RejectWith,
};

/// From this many single-destination redirects of one protocol on (or
/// balanced ones with the same number of live destinations), they are
/// rendered as one rule with a port map instead of one rule each (nft
/// parses a map element several times faster than a rule).
pub const PORT_MAP_MIN: usize = 16;

/// (port, destination, target port) of one single-destination redirect.
type PortEntry = (u16, IpAddr, u16);
/// (port, live destinations, target port) of one balanced redirect.
type BalancedEntry = (u16, Vec<IpAddr>, u16);

/// The table an EgressRouter owns: `routerd_egress_<name>`, spelled as
/// every routerd table named after a resource (`super::nft_identifier`).
pub fn table_name(name: &str) -> String {
    format!("routerd_egress_{}", super::nft_identifier(name))
}

fn proto(p: RedirectProtocol) -> L4Proto {
    match p {
        RedirectProtocol::Tcp => L4Proto::Tcp,
        RedirectProtocol::Udp => L4Proto::Udp,
        RedirectProtocol::Sctp => L4Proto::Sctp,
    }
}

fn port(v: i64) -> Result<u16, String> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {v} is not within 1-65535"))
}

fn addr(s: &str, what: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what} \"{}\" is not an IP address", s.trim()))
}

fn dnat(to: IpAddr, port: Option<u16>) -> Expr {
    match to {
        IpAddr::V4(addr) => Expr::Dnat { addr, port },
        IpAddr::V6(addr) => Expr::Dnat6 { addr, port },
    }
}

pub(super) fn render_egress_routers(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::EgressRouter) {
        let routerd_model::Spec::EgressRouter(spec) = &r.spec else {
            continue;
        };
        let owner = r.id().to_string();
        // An omitted master is inferred before anything is rendered, so
        // the redirect's listen default and the macvlan agree on it.
        let master = resolve_master(ctx, spec);
        let mut spec = spec.clone();
        if let Ok((m, why)) = &master {
            if spec.master().is_none() {
                let nic = spec.network_interface.get_or_insert_with(Default::default);
                nic.macvlan.get_or_insert_with(Default::default).master = Some(m.clone());
            }
            if let Some(why) = why {
                out.notes.push(RenderNote {
                    owner: owner.clone(),
                    message: why.clone(),
                });
            }
        }
        let view = LiveView::read(ctx.status_by_id(&owner));
        match render_one_with(r, &spec, &view) {
            Ok((mut table, notes)) => {
                out.notes
                    .extend(notes.into_iter().map(|message| RenderNote {
                        owner: owner.clone(),
                        message,
                    }));
                match master.and_then(|(m, _)| carry(r, &spec, &m, &mut table, &mut out.desired)) {
                    Ok(notes) => out
                        .notes
                        .extend(notes.into_iter().map(|message| RenderNote {
                            owner: owner.clone(),
                            message,
                        })),
                    Err((reason, message)) => {
                        // What is carried stays (fail-static): a master
                        // that went away takes the macvlan with it, and
                        // the rest of the host keeps working.
                        out.desired.retained.insert(owner.clone());
                        out.problems.push(RenderProblem {
                            owner: owner.clone(),
                            reason: reason.to_string(),
                            message,
                        });
                    }
                }
                out.desired.nft.push(table);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
}

/// Reason of a router whose master is neither declared nor inferable.
pub const MASTER_NOT_FOUND: &str = "MasterNotFound";

/// Priority of the rule that sends redirected traffic to a router's table
/// (after routerd's policy rules, before `main` at 32766).
pub const RULE_PRIORITY: u32 = 31000;

/// The fwmark and routing table of router `name`: `0x7e00_0000` plus the
/// low 16 bits of the FNV-1a hash of its name. Deterministic (the same on
/// every host and restart) and far from the small marks and tables
/// operators give policies; two routers that collide are reported as a
/// conflict by the render, never merged.
pub fn mark_and_table(name: &str) -> u32 {
    0x7e00_0000 | (routerd_model::spec::egress_router::fnv1a(name) & 0xffff)
}

/// The master: declared, or inferred from the Interfaces whose observed
/// addresses' subnets hold a reserved address (with the sentence saying
/// which and why).
fn resolve_master(
    ctx: &Ctx<'_>,
    spec: &EgressRouterSpec,
) -> Result<(String, Option<String>), (&'static str, String)> {
    if let Some(m) = spec.master() {
        return Ok((m.to_string(), None));
    }
    use routerd_model::spec::egress_router::{MasterCandidate, infer_master};
    let reserved: Vec<IpNet> = spec
        .addresses
        .iter()
        .filter_map(|a| a.ip.trim().parse().ok())
        .collect();
    let candidates: Vec<MasterCandidate> = ctx
        .of_kind(Kind::Interface)
        .filter_map(|i| {
            let st = ctx.status_of(Kind::Interface, i.name())?;
            let ifname = st
                .get("ifname")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .or_else(|| i.as_interface().map(|s| s.ifname.clone()))?;
            let addresses = st
                .get("addresses")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str()?.parse().ok())
                .collect();
            Some(MasterCandidate {
                resource: i.name().to_string(),
                ifname,
                addresses,
            })
        })
        .collect();
    match infer_master(&reserved, &candidates) {
        Some((m, why)) => Ok((m, Some(why))),
        None => Err((
            MASTER_NOT_FOUND,
            format!(
                "spec.networkInterface.macvlan.master is not set and no Interface's observed subnet holds {}: declare the master, or an Interface on that subnet",
                reserved
                    .iter()
                    .map(|a| a.addr().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// What carries a router's redirected traffic: the macvlan on `master`
/// with every reserved address (no prefix route in `main`), announced
/// once added; the router's own table with the reserved subnets and a
/// default route via the first address's gateway; an fwmark rule to it;
/// and, in the router's nft table, a chain that marks packets of
/// redirected connections towards their destinations. The mark is set
/// after DNAT (routing sees the translated destination) and before SNAT,
/// which happens after routing, so it cannot select by source.
fn carry(
    r: &Resource,
    spec: &EgressRouterSpec,
    master: &str,
    table: &mut NftTable,
    out: &mut crate::ir::DesiredState,
) -> Result<Vec<String>, (&'static str, String)> {
    use crate::ir::{Address, Link, LinkKind, MacvlanMode, Route, RouteKind, Rule};
    let owner = r.id().to_string();
    let bad = |m: String| ("NotRendered", m);
    let mode = match spec.macvlan_mode().to_ascii_lowercase().as_str() {
        "bridge" => MacvlanMode::Bridge,
        "private" => MacvlanMode::Private,
        "vepa" => MacvlanMode::Vepa,
        "passthru" => MacvlanMode::Passthru,
        other => {
            return Err(bad(format!(
                "macvlan mode \"{other}\" is not Bridge, Private, VEPA or Passthru"
            )));
        }
    };
    if !crate::ir::valid_ifname(master) {
        return Err(bad(format!(
            "master \"{master}\" is not a valid interface name"
        )));
    }
    let dev = routerd_model::spec::egress_router::macvlan_name(r.name());
    let mut link = Link::new(
        &dev,
        LinkKind::Macvlan {
            master: master.to_string(),
            mode,
        },
    );
    link.announce = true;
    link.owner.clone_from(&owner);
    out.links.push(link);

    let id = mark_and_table(r.name());
    let mut notes = Vec::new();
    let mut family = None;
    let mut gateway = None;
    let mut subnets: Vec<IpNet> = Vec::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let net: IpNet = a.ip.trim().parse().map_err(|_| {
            bad(format!(
                "spec.addresses[{i}].ip \"{}\" is not an address in CIDR form",
                a.ip.trim()
            ))
        })?;
        family.get_or_insert(Family::of_net(&net));
        let mut carried = Address::new(&dev, net);
        carried.allow_overlap = true;
        carried.no_prefix_route = true;
        carried.owner.clone_from(&owner);
        out.addresses.push(carried);
        if !subnets.contains(&net.trunc()) {
            subnets.push(net.trunc());
        }
        if let Some(g) = a
            .gateway
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            let g = addr(g, &format!("spec.addresses[{i}].gateway")).map_err(bad)?;
            match gateway {
                None => gateway = Some(g),
                Some(first) if first != g => notes.push(format!(
                    "spec.addresses[{i}].gateway {g} is not used: the router's table has one default route, via {first} (the first gateway)"
                )),
                Some(_) => {}
            }
        }
    }
    let Some(family) = family else {
        return Err(bad(
            "spec.addresses is empty: there is no reserved source address".into(),
        ));
    };
    for s in &subnets {
        let mut route = Route::new(id, *s, 0, RouteKind::Unicast);
        route.device = Some(dev.clone());
        route.owner.clone_from(&owner);
        out.routes.push(route);
    }
    if let Some(gw) = gateway {
        let mut route = Route::new(id, family.any(), 0, RouteKind::Unicast);
        route.gateway = Some(gw);
        route.device = Some(dev.clone());
        route.owner.clone_from(&owner);
        out.routes.push(route);
    }
    out.rules
        .push(Rule::new(RULE_PRIORITY, id, id, owner).in_family(family));

    // Every destination the router may send to, live or not (the table's
    // `destinations` set): this chain sees every packet, and a connection
    // DNATed before its destination (or the fallback) turned unhealthy
    // keeps flowing through the router's table until it closes.
    if table.sets.iter().any(|s| s.name == DESTINATIONS_SET) {
        table.chains.push(NftChain {
            name: "route".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            // After dstnat (-100): the destination is the translated one.
            priority: Priority::Num(-90),
            rules: vec![NftRule {
                exprs: vec![
                    Expr::CtStatusDnat,
                    to_destinations(family),
                    Expr::SetMark(crate::ir::MarkSource::Const(id)),
                ],
            }],
        });
    }
    Ok(notes)
}

/// The set of a router's table holding every declared destination and the
/// fallback: one source-NAT rule and one route-mark rule match it, however
/// many redirects there are (a thousand per-destination rules made the
/// table slow to load).
pub const DESTINATIONS_SET: &str = "destinations";

/// `ip|ip6 daddr @destinations`.
fn to_destinations(family: Family) -> Expr {
    Expr::Ip {
        family,
        field: IpField::Daddr,
        op: CmpOp::Eq,
        value: AddrValue::Set(DESTINATIONS_SET.into()),
    }
}

/// Every destination of the router's rules and its fallback, once each,
/// whatever their health (the table validates them), in address order.
fn declared_destinations(spec: &EgressRouterSpec) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let rules = spec.rules();
    let all = rules
        .iter()
        .flat_map(|r| r.destinations())
        .chain(spec.fallback());
    for d in all {
        if let Ok(ip) = d.trim().parse::<IpAddr>()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out.sort_unstable();
    out
}

/// Which destinations may take new connections, as selection published
/// them in the router's status (`rules[]`, `fallback`; see
/// `routerd_select::follow::egress_router_health`). The renderer judges no
/// health itself (ADR 0009). Without a status, or for a rule whose
/// published destinations are not the spec's (the spec changed since),
/// every destination is live: fail-static, as OpenShift always is.
#[derive(Clone, Debug, Default)]
pub struct LiveView {
    /// (port, protocol) -> (destinations as published, live ones).
    rules: std::collections::HashMap<(i64, String), (Vec<String>, Vec<String>)>,
    /// (fallback ip, live).
    fallback: Option<(String, bool)>,
}

impl LiveView {
    /// Reads the published verdicts from an EgressRouter status.
    pub fn read(status: Option<&routerd_model::Status>) -> LiveView {
        let mut v = LiveView::default();
        let Some(st) = status else {
            return v;
        };
        let strs = |x: Option<&Value>| -> Vec<String> {
            x.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        for rule in st
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(port), Some(proto)) = (
                rule.get("port").and_then(Value::as_i64),
                rule.get("protocol").and_then(Value::as_str),
            ) else {
                continue;
            };
            let dests: Vec<String> = rule
                .get("destinations")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.get("ip").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if dests.is_empty() {
                continue;
            }
            let live = strs(rule.get("liveDestinations"));
            v.rules.insert((port, proto.to_string()), (dests, live));
        }
        if let Some(f) = st.get("fallback")
            && let (Some(ip), Some(h)) = (
                f.get("ip").and_then(Value::as_str),
                f.get("healthy").and_then(Value::as_bool),
            )
        {
            v.fallback = Some((ip.to_string(), h));
        }
        v
    }

    /// The live subset of `dests` (spec order) for the rule on
    /// (`port`, `proto`).
    fn live<'d>(&self, port: i64, proto: RedirectProtocol, dests: &[&'d str]) -> Vec<&'d str> {
        match self.rules.get(&(port, proto.as_str().to_string())) {
            Some((published, live))
                if published
                    .iter()
                    .map(String::as_str)
                    .eq(dests.iter().copied()) =>
            {
                dests
                    .iter()
                    .copied()
                    .filter(|d| live.iter().any(|l| l == d))
                    .collect()
            }
            _ => dests.to_vec(),
        }
    }

    /// Whether the fallback `ip` may take new connections.
    fn fallback_live(&self, ip: &str) -> bool {
        match &self.fallback {
            Some((f, live)) if f == ip => *live,
            _ => true,
        }
    }
}

/// The table of one router with every destination live, and the notes a
/// plan reader needs.
pub fn render_one(
    r: &Resource,
    spec: &EgressRouterSpec,
) -> Result<(NftTable, Vec<String>), String> {
    render_one_with(r, spec, &LiveView::default())
}

/// The table of one router given the live destinations in `view`.
pub fn render_one_with(
    r: &Resource,
    spec: &EgressRouterSpec,
    view: &LiveView,
) -> Result<(NftTable, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut reserved = Vec::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let net: IpNet = a.ip.trim().parse().map_err(|_| {
            format!(
                "spec.addresses[{i}].ip \"{}\" is not an address in CIDR form",
                a.ip.trim()
            )
        })?;
        if !reserved.contains(&net.addr()) {
            reserved.push(net.addr());
        }
    }
    let Some(first) = reserved.first() else {
        return Err("spec.addresses is empty: there is no reserved source address".into());
    };
    let family = if first.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let same = |a: &IpAddr| a.is_ipv4() == first.is_ipv4();
    if let Some(a) = reserved.iter().find(|a| !same(a)) {
        return Err(format!("{a} is not of the family of {first}"));
    }

    // Which traffic the redirect applies to: per `listen`, or by default
    // traffic addressed to this host that did not arrive on the master
    // (the master's side is where the redirected traffic leaves).
    let listen = spec.effective_listen(&r.metadata.annotations);
    let mut prefixes: Vec<Vec<Expr>> = Vec::new();
    if listen.is_empty() {
        let mut m = Vec::new();
        match spec.master() {
            Some(master) => m.push(Expr::IifNameNe(master.to_string())),
            None => notes.push(
                "no spec.networkInterface.macvlan.master and no listen set: the redirect applies to traffic addressed to this host on every interface until a master is declared or inferred".to_string(),
            ),
        }
        m.push(Expr::FibDaddrLocal);
        prefixes.push(m);
    } else {
        let ifaces: Vec<Option<&str>> = if listen.interfaces.is_empty() {
            vec![None]
        } else {
            listen.interfaces.iter().map(|s| Some(s.trim())).collect()
        };
        let mut addrs: Vec<Option<IpAddr>> = Vec::new();
        for a in &listen.addresses {
            let ip = addr(a, "listen address")?;
            if !same(&ip) {
                return Err(format!(
                    "listen address {ip} is not of the family of {first}"
                ));
            }
            addrs.push(Some(ip));
        }
        if addrs.is_empty() {
            addrs.push(None);
        }
        for i in &ifaces {
            for a in &addrs {
                let mut m = Vec::new();
                if let Some(i) = i {
                    m.push(Expr::IifName((*i).to_string()));
                }
                match a {
                    Some(a) => m.push(Expr::Ip {
                        family,
                        field: IpField::Daddr,
                        op: CmpOp::Eq,
                        value: AddrValue::Prefix(IpNet::from(*a)),
                    }),
                    // Interfaces only: still only traffic for this host,
                    // never traffic the host forwards.
                    None => m.push(Expr::FibDaddrLocal),
                }
                prefixes.push(m);
            }
        }
    }
    let with = |body: &[Expr]| -> Vec<NftRule> {
        prefixes
            .iter()
            .map(|p| NftRule {
                exprs: p.iter().chain(body).cloned().collect(),
            })
            .collect()
    };

    let mut pre = Vec::new();
    // Single-destination redirects per protocol, for one port map when
    // there are many of them.
    let mut singles: Vec<(L4Proto, Vec<PortEntry>)> = Vec::new();
    // Balanced redirects per protocol and number of live destinations.
    let mut balanced: Vec<((L4Proto, usize), Vec<BalancedEntry>)> = Vec::new();
    for (i, rule) in spec.rules().iter().enumerate() {
        let path = format!("spec.redirect.redirectRules[{i}]");
        let p = RedirectProtocol::parse(&rule.protocol).ok_or_else(|| {
            format!(
                "{path}.protocol \"{}\" is not TCP, UDP or SCTP",
                rule.protocol
            )
        })?;
        let declared = rule.destinations();
        if declared.is_empty() {
            return Err(format!("{path} has no destinationIP"));
        }
        let mut all_to = Vec::with_capacity(declared.len());
        for d in &declared {
            let to = addr(d, &format!("{path}.destinationIP"))?;
            if !same(&to) {
                return Err(format!(
                    "{path}.destinationIP {to} is not of the family of {first}"
                ));
            }
            all_to.push(to);
        }
        let from = port(rule.port).map_err(|e| format!("{path}: {e}"))?;
        let target = port(rule.effective_target_port()).map_err(|e| format!("{path}: {e}"))?;
        let live: Vec<IpAddr> = view
            .live(rule.port, p, &declared)
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        if live.len() < all_to.len() {
            let down: Vec<String> = all_to
                .iter()
                .filter(|d| !live.contains(d))
                .map(IpAddr::to_string)
                .collect();
            notes.push(if live.is_empty() {
                format!(
                    "{path} {}/{}: no live destination ({} not live, see the status's rules): new connections meet the fallback or the refusal",
                    rule.port,
                    p.as_str(),
                    down.join(", ")
                )
            } else {
                format!(
                    "{path} {}/{}: {} not live, left out for new connections",
                    rule.port,
                    p.as_str(),
                    down.join(", ")
                )
            });
        }
        let nat = match live.as_slice() {
            [] => continue,
            [one] => {
                match singles.iter_mut().find(|(q, _)| *q == proto(p)) {
                    Some((_, entries)) => entries.push((from, *one, target)),
                    None => singles.push((proto(p), vec![(from, *one, target)])),
                }
                dnat(*one, Some(target))
            }
            many => {
                let entry = (from, many.to_vec(), target);
                let key = (proto(p), many.len());
                match balanced.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, entries)) => entries.push(entry),
                    None => balanced.push((key, vec![entry])),
                }
                Expr::DnatMap {
                    family,
                    addrs: many.to_vec(),
                    port: Some(target),
                }
            }
        };
        pre.extend(with(&[
            Expr::Dport {
                proto: proto(p),
                port: from,
            },
            nat,
        ]));
    }
    // Few redirects read best as one rule each, in spec order; many load
    // far faster as one map per protocol (ports are disjoint, so the map
    // may stand first).
    let mut maps = Vec::new();
    for (l4, entries) in singles {
        if entries.len() < PORT_MAP_MIN {
            continue;
        }
        pre.retain(|r: &NftRule| {
            let single = matches!(r.exprs.last(), Some(Expr::Dnat { .. } | Expr::Dnat6 { .. }));
            !(single
                && r.exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Dport { proto: q, .. } if *q == l4)))
        });
        maps.extend(with(&[Expr::DnatPortMap {
            family,
            proto: l4,
            entries,
        }]));
    }
    for ((l4, modulus), entries) in balanced {
        if entries.len() < PORT_MAP_MIN {
            continue;
        }
        pre.retain(|r: &NftRule| {
            let grouped = matches!(r.exprs.last(), Some(Expr::DnatMap { addrs, .. }) if addrs.len() == modulus);
            !(grouped
                && r.exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Dport { proto: q, .. } if *q == l4)))
        });
        maps.extend(with(&[Expr::DnatBalancedPortMap {
            family,
            proto: l4,
            entries,
        }]));
    }
    pre.splice(0..0, maps);
    let all = vec![L4Proto::Tcp, L4Proto::Udp, L4Proto::Sctp];
    let fallback = match spec.fallback() {
        Some(f) => {
            let to = addr(f, "spec.redirect.fallbackIP")?;
            if !same(&to) {
                return Err(format!(
                    "spec.redirect.fallbackIP {to} is not of the family of {first}"
                ));
            }
            Some((f, to))
        }
        None => None,
    };
    if let Some((f, _)) = fallback
        && !view.fallback_live(f)
    {
        notes.push(format!(
            "spec.redirect.fallbackIP {f} is not live: every other port is refused until it is"
        ));
    }
    match fallback.filter(|(f, _)| view.fallback_live(f)) {
        Some((_, to)) => {
            pre.extend(with(&[Expr::L4Proto(all), dnat(to, None)]));
        }
        None => {
            let unreachable = match family {
                Family::V4 => RejectWith::IcmpPortUnreachable,
                Family::V6 => RejectWith::Icmpv6PortUnreachable,
            };
            pre.extend(with(&[
                Expr::L4Proto(vec![L4Proto::Tcp]),
                Expr::Reject(RejectWith::TcpReset),
            ]));
            pre.extend(with(&[
                Expr::L4Proto(vec![L4Proto::Udp, L4Proto::Sctp]),
                Expr::Reject(unreachable),
            ]));
        }
    }

    let snat = match family {
        Family::V4 => {
            let v4: Vec<_> = reserved
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let addr = match v4.as_slice() {
                [one] => NatAddr::Single(*one),
                _ => NatAddr::HashMap(v4),
            };
            Expr::Snat {
                addr,
                ports: None,
                persistent: false,
            }
        }
        Family::V6 => Expr::Snat6(
            reserved
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                })
                .collect(),
        ),
    };
    // Every declared destination keeps its source NAT, live or not: a
    // connection DNATed before its destination failed keeps flowing until
    // it closes.
    let destinations = declared_destinations(spec);
    let nft_family = match family {
        Family::V4 => NftFamily::Ip,
        Family::V6 => NftFamily::Ip6,
    };
    let mut table = NftTable::new(nft_family, table_name(r.name()));
    table.owners.insert(r.id().to_string());
    table.chains.push(NftChain {
        name: "prerouting".into(),
        chain_type: ChainType::Nat,
        hook: Hook::Prerouting,
        priority: Priority::Dstnat,
        rules: pre,
    });
    if !destinations.is_empty() {
        table.sets.push(NftSet {
            family,
            name: DESTINATIONS_SET.into(),
            elements: destinations.into_iter().map(IpNet::from).collect(),
        });
        table.chains.push(NftChain {
            name: "postrouting".into(),
            chain_type: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: Priority::Srcnat,
            rules: vec![NftRule {
                exprs: vec![Expr::CtStatusDnat, to_destinations(family), snat],
            }],
        });
    }
    Ok((table, notes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::nft_text;
    use routerd_model::load_and_validate;
    use serde_json::json;

    const CR: &str = "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  listen: {addresses: [10.1.0.1]}\n  redirect:\n    redirectRules:\n      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP}\n    fallbackIP: 198.51.100.9\n";

    fn text(status: serde_json::Value) -> (String, Vec<String>) {
        let (l, ds) = load_and_validate(&[("er.yaml", CR)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let r = &l.resources[0];
        let st: routerd_model::Status = serde_json::from_value(status).unwrap();
        let view = LiveView::read(Some(&st));
        let (t, notes) = render_one_with(r, r.as_egress_router().unwrap(), &view).unwrap();
        (nft_text::table_batch(&t), notes)
    }

    #[test]
    fn published_live_destinations_are_the_only_ones_dnatted() {
        let (t, notes) = text(json!({
            "rules": [{"port": 80, "protocol": "TCP",
                "destinations": [{"ip": "198.51.100.7"}, {"ip": "198.51.100.8"}],
                "liveDestinations": ["198.51.100.8"]}],
            "fallback": {"ip": "198.51.100.9", "healthy": true}
        }));
        assert!(t.contains("tcp dport 80 dnat to 198.51.100.8:80"), "{t}");
        assert!(!t.contains("jhash"), "{t}");
        // The source NAT of the left-out destination stays for the
        // connections it already carries.
        let set = t.lines().find(|l| l.contains("set destinations"));
        assert!(set.is_some_and(|l| l.contains("198.51.100.7,")), "{t}");
        assert!(
            t.contains("ip daddr @destinations snat to 192.0.2.10"),
            "{t}"
        );
        assert!(
            notes.iter().any(|n| n.contains("198.51.100.7 not live")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_stale_status_renders_every_destination_and_a_dead_fallback_refuses() {
        // Published for other destinations (the spec changed since): the
        // rule renders all of its own, balanced.
        let (t, _) = text(json!({
            "rules": [{"port": 80, "protocol": "TCP",
                "destinations": [{"ip": "198.51.100.6"}],
                "liveDestinations": []}],
            "fallback": {"ip": "198.51.100.9", "healthy": false}
        }));
        assert!(
            t.contains(
                "dnat to jhash ip saddr mod 2 map { 0 : 198.51.100.7, 1 : 198.51.100.8 }:80"
            ),
            "{t}"
        );
        assert!(!t.contains("dnat to 198.51.100.9"), "{t}");
        assert!(t.contains("meta l4proto tcp reject with tcp reset"), "{t}");
    }

    #[test]
    fn no_status_renders_every_destination() {
        let (l, _) = load_and_validate(&[("er.yaml", CR)]);
        let r = &l.resources[0];
        let (t, notes) = render_one(r, r.as_egress_router().unwrap()).unwrap();
        let t = nft_text::table_batch(&t);
        assert!(t.contains("jhash ip saddr mod 2"), "{t}");
        assert!(t.contains("dnat to 198.51.100.9"), "{t}");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn many_single_destination_redirects_become_one_port_map() {
        let mut y = String::from(
            "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRouter\nmetadata: {name: er}\nspec:\n  addresses: [{ip: 192.0.2.10/24}]\n  listen: {addresses: [10.1.0.1]}\n  redirect:\n    redirectRules:\n",
        );
        for i in 0..PORT_MAP_MIN {
            y.push_str(&format!(
                "      - {{destinationIP: 198.51.100.{}, port: {}, targetPort: 80, protocol: TCP}}\n",
                i + 1,
                1000 + i
            ));
        }
        y.push_str("      - {destinationIP: 198.51.100.99, port: 53, protocol: UDP}\n");
        y.push_str(
            "      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 443, protocol: TCP}\n",
        );
        let (l, ds) = load_and_validate(&[("er.yaml", &y)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let r = &l.resources[0];
        let (t, _) = render_one(r, r.as_egress_router().unwrap()).unwrap();
        let t = nft_text::table_batch(&t);
        assert!(
            t.contains("ip daddr 10.1.0.1/32 dnat ip to tcp dport map { 1000 : 198.51.100.1 . 80, 1001 : 198.51.100.2 . 80,"),
            "{t}"
        );
        assert!(!t.contains("tcp dport 1000 "), "{t}");
        // Below the threshold (one UDP rule) and balanced rules stay rules.
        assert!(t.contains("udp dport 53 dnat to 198.51.100.99:53"), "{t}");
        assert!(t.contains("tcp dport 443 dnat to jhash"), "{t}");
        let json = crate::nft_json::replace_document(&r_table(r)).to_string();
        assert!(json.contains(r#"{"concat":["198.51.100.1",80]}"#), "{json}");
    }

    fn r_table(r: &Resource) -> NftTable {
        render_one(r, r.as_egress_router().unwrap()).unwrap().0
    }
}
