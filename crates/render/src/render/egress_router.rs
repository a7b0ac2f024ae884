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
//! Phase 1 renders the nft table only; the macvlan that carries the
//! reserved addresses and the route via `gateway` come with phase 2, and
//! the status says so rather than claim the router is available.

use std::net::IpAddr;

use ipnet::IpNet;
use routerd_model::spec::egress_router::{EgressRouterSpec, RedirectProtocol};
use routerd_model::{Kind, Resource};
use serde_json::Value;

use super::{Ctx, RenderNote, RenderProblem, Rendered};
use crate::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, L4Proto, NatAddr, NftChain,
    NftFamily, NftRule, NftTable, Priority, RejectWith,
};

/// From this many single-destination redirects of one protocol on, they
/// are rendered as one `dnat ... to <proto> dport map` rule instead of one
/// rule each (nft parses a map element several times faster than a rule).
pub const PORT_MAP_MIN: usize = 16;

/// (port, destination, target port) of one single-destination redirect.
type PortEntry = (u16, IpAddr, u16);

/// The table an EgressRouter owns: `routerd_egress_<name>`, spelled as
/// every routerd table named after a resource ([`super::nft_identifier`]).
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
        let view = LiveView::read(ctx.status_by_id(&owner));
        match render_one_with(r, spec, &view) {
            Ok((table, notes)) => {
                out.desired.nft.push(table);
                out.notes
                    .extend(notes.into_iter().map(|message| RenderNote {
                        owner: owner.clone(),
                        message,
                    }));
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
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
                "no spec.networkInterface.macvlan.master and no listen set: the redirect applies to traffic addressed to this host on every interface until the master is inferred (phase 2)".to_string(),
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
    let mut destinations: Vec<IpAddr> = Vec::new();
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
            // Every declared destination keeps its source NAT, live or
            // not: a connection DNATed before its destination failed
            // keeps flowing until it closes.
            if !destinations.contains(&to) {
                destinations.push(to);
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
            many => Expr::DnatMap {
                family,
                addrs: many.to_vec(),
                port: Some(target),
            },
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
    pre.splice(0..0, maps);
    let all = vec![L4Proto::Tcp, L4Proto::Udp, L4Proto::Sctp];
    let fallback = spec.fallback();
    if let Some(f) = fallback
        && !view.fallback_live(f)
    {
        notes.push(format!(
            "spec.redirect.fallbackIP {f} is not live: every other port is refused until it is"
        ));
    }
    match fallback.filter(|f| view.fallback_live(f)) {
        Some(f) => {
            let to = addr(f, "spec.redirect.fallbackIP")?;
            if !same(&to) {
                return Err(format!(
                    "spec.redirect.fallbackIP {to} is not of the family of {first}"
                ));
            }
            pre.extend(with(&[Expr::L4Proto(all), dnat(to, None)]));
            if !destinations.contains(&to) {
                destinations.push(to);
            }
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
    let post: Vec<NftRule> = destinations
        .iter()
        .map(|d| NftRule {
            exprs: vec![
                Expr::CtStatusDnat,
                Expr::Ip {
                    family,
                    field: IpField::Daddr,
                    op: CmpOp::Eq,
                    value: AddrValue::Prefix(IpNet::from(*d)),
                },
                snat.clone(),
            ],
        })
        .collect();

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
    if !post.is_empty() {
        table.chains.push(NftChain {
            name: "postrouting".into(),
            chain_type: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: Priority::Srcnat,
            rules: post,
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
        assert!(
            t.contains("ip daddr 198.51.100.7/32 snat to 192.0.2.10"),
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
