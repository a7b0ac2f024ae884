//! EgressGateway and EgressGatewayPolicy (issue #18) → the active node's
//! source NAT and policy routing, and the clients' steering.
//!
//! Rendering stays a pure function of configuration and status: the node's
//! gateway agent (routerd-engine, fed by keepalived's notify FIFO) writes
//! what only the node knows into the statuses — the gateway's `vrrpState`
//! on this node and its `publicInterface`, and a policy's `nextHop` when
//! this node is one of its clients — so `routerctl plan` with a state
//! snapshot shows exactly what the daemon installs.
//!
//! - On the MASTER, `ip routerd_gw_<gateway>` source-NATs the policies'
//!   traffic leaving the public interface: to the virtual IP
//!   (VirtualIPAddress) or to the interface's primary address (masquerade,
//!   PrimaryIPFromEgressGatewayNodeInterface), and a numeric
//!   `routingTableName` adds a rule sending traffic from the internal side
//!   to that table. On BACKUP and FAULT nothing is rendered, so the
//!   reconcile removes both: a standby never sources traffic.
//! - On a client, `ip routerd_gwc_<policy>` marks the selected traffic
//!   (sources, ingress interfaces) to the policy's destinations minus
//!   `excludedCIDRs`, and a rule sends the mark to a table whose routes go
//!   to the gateway's internal next hop, which moves with the role.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use routerd_model::spec::gateway::{EgressGatewayPolicySpec, SourceMode, labels_match};
use routerd_model::{Kind, Resource};

use super::{Ctx, RenderProblem, Rendered, nft_identifier};
use crate::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, NatAddr, NftChain, NftFamily,
    NftRule, NftSet, NftTable, Priority, Route, RouteKind, Rule,
};

/// First fwmark of the clients' steering (one per policy, by name order).
pub const CLIENT_MARK_BASE: u32 = 0x6700_0000;
/// First route table of the clients' steering.
pub const CLIENT_TABLE_BASE: u32 = 26700;
/// First rule priority of the clients' steering.
pub const CLIENT_RULE_PRIORITY: u32 = 10500;
/// Rule priority sending the active node's internal traffic to
/// `routingTableName`.
pub const GATEWAY_RULE_PRIORITY: u32 = 10400;

/// The active node's table of a gateway.
pub fn gateway_table(name: &str) -> String {
    format!("routerd_gw_{}", nft_identifier(name))
}

/// A client's table of a policy.
pub fn client_table(name: &str) -> String {
    format!("routerd_gwc_{}", nft_identifier(name))
}

/// A status field of `r`, looked up by its own id: the Deckhouse shape's
/// statuses are keyed under `network.deckhouse.io/v1alpha1`.
fn status_str<'s>(ctx: &Ctx<'s>, r: &Resource, key: &str) -> Option<&'s str> {
    ctx.status_by_id(&r.id().to_string())?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn nets(list: &[String]) -> Vec<IpNet> {
    list.iter()
        .filter_map(|c| c.trim().parse::<IpNet>().ok())
        .filter(|n| n.addr().is_ipv4())
        .map(|n| n.trunc())
        .collect()
}

/// Sources and ingress interfaces a policy selects: its own fields and
/// those of the ClientGroups its `podSelector`s match.
fn selection(ctx: &Ctx<'_>, p: &EgressGatewayPolicySpec) -> (Vec<IpNet>, Vec<String>) {
    let mut src = nets(&p.source_cidrs);
    let mut ifs: Vec<String> = p
        .ingress_interfaces
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    for g in ctx.of_kind(Kind::ClientGroup) {
        let picked = p.selectors.iter().any(|s| {
            s.pod_selector
                .as_ref()
                .is_some_and(|ps| labels_match(&ps.match_labels, &g.metadata.labels))
        });
        if !picked {
            continue;
        }
        if let Some(cg) = g.as_client_group() {
            src.extend(nets(&cg.source_cidrs));
            ifs.extend(cg.interfaces.iter().map(|s| s.trim().to_string()));
        }
    }
    src.sort();
    src.dedup();
    ifs.sort();
    ifs.dedup();
    (src, ifs)
}

fn set(name: &str, elements: Vec<IpNet>) -> NftSet {
    NftSet {
        family: Family::V4,
        name: name.to_string(),
        elements,
    }
}

fn ip(field: IpField, op: CmpOp, set: &str) -> Expr {
    Expr::Ip {
        family: Family::V4,
        field,
        op,
        value: AddrValue::Set(set.to_string()),
    }
}

fn policies_of<'a>(ctx: &Ctx<'a>, gateway: &str) -> Vec<&'a Resource> {
    ctx.of_kind(Kind::EgressGatewayPolicy)
        .filter(|p| {
            p.as_egress_gateway_policy()
                .is_some_and(|s| s.egress_gateway_name.trim() == gateway)
        })
        .collect()
}

pub(super) fn render_gateways(ctx: &Ctx<'_>, out: &mut Rendered) {
    for g in ctx.of_kind(Kind::EgressGateway) {
        let Some(spec) = g.as_egress_gateway() else {
            continue;
        };
        if status_str(ctx, g, "vrrpState") != Some("MASTER") {
            continue;
        }
        let owner = g.id().to_string();
        match active_node(ctx, g, spec) {
            Ok((table, rule)) => {
                if let Some(t) = table {
                    out.desired.nft.push(t);
                }
                out.desired.rules.extend(rule);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
    let mut index = 0u32;
    for p in ctx.of_kind(Kind::EgressGatewayPolicy) {
        let Some(spec) = p.as_egress_gateway_policy() else {
            continue;
        };
        let this = index;
        index += 1;
        let Some(hop) = status_str(ctx, p, "nextHop") else {
            continue;
        };
        let owner = p.id().to_string();
        match client(ctx, p, spec, hop, this) {
            Ok((table, rule, routes)) => {
                out.desired.nft.push(table);
                out.desired.rules.push(rule);
                out.desired.routes.extend(routes);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
}

type Active = (Option<NftTable>, Option<Rule>);

fn active_node(
    ctx: &Ctx<'_>,
    g: &Resource,
    spec: &routerd_model::spec::gateway::EgressGatewaySpec,
) -> Result<Active, String> {
    let owner = g.id().to_string();
    let public = status_str(ctx, g, "publicInterface").ok_or(
        "the status has no publicInterface: the gateway agent has not planned this node yet",
    )?;
    let action = match spec.mode() {
        Some(SourceMode::VirtualIp) => {
            let vip = spec
                .virtual_ip()
                .and_then(|v| {
                    v.parse::<IpAddr>()
                        .ok()
                        .or_else(|| v.parse::<IpNet>().ok().map(|n| n.addr()))
                })
                .ok_or("spec.sourceIP.virtualIPAddress.ip is not an address")?;
            let IpAddr::V4(v4) = vip else {
                return Err(format!("{vip}: only IPv4 virtual addresses are rendered"));
            };
            Expr::Snat {
                addr: NatAddr::Single(v4),
                ports: None,
                persistent: false,
            }
        }
        Some(SourceMode::PrimaryIp) => Expr::Masquerade {
            ports: None,
            persistent: false,
        },
        None => return Err("spec.sourceIP.mode is not known".into()),
    };
    let mut table = NftTable::new(NftFamily::Ip, gateway_table(g.name()));
    table.owners.insert(owner.clone());
    let mut rules = Vec::new();
    for (i, p) in policies_of(ctx, g.name()).into_iter().enumerate() {
        let Some(ps) = p.as_egress_gateway_policy() else {
            continue;
        };
        let dst = nets(&ps.destination_cidrs);
        if dst.is_empty() {
            continue;
        }
        let (src, _ifs) = selection(ctx, ps);
        let dname = format!("dst_{i}");
        let mut exprs = vec![
            Expr::OifName(public.to_string()),
            ip(IpField::Daddr, CmpOp::Eq, &dname),
        ];
        table.sets.push(set(&dname, dst));
        let excl = nets(&ps.excluded_cidrs);
        if !excl.is_empty() {
            let xname = format!("excl_{i}");
            exprs.push(ip(IpField::Daddr, CmpOp::Ne, &xname));
            table.sets.push(set(&xname, excl));
        }
        if ps.ingress_interfaces.is_empty() && !src.is_empty() {
            let sname = format!("src_{i}");
            exprs.push(ip(IpField::Saddr, CmpOp::Eq, &sname));
            table.sets.push(set(&sname, src));
        } else {
            // Clients selected by their ingress interface arrive with
            // sources this node cannot know: take forwarded traffic only.
            exprs.push(Expr::IifNameNe(public.to_string()));
        }
        exprs.push(action.clone());
        rules.push(NftRule { exprs });
    }
    table.chains.push(NftChain {
        name: "postrouting".into(),
        chain_type: ChainType::Nat,
        hook: Hook::Postrouting,
        priority: Priority::Srcnat,
        rules,
    });
    let rule = match spec
        .source_ip
        .as_ref()
        .and_then(|s| s.virtual_ip.as_ref())
        .and_then(|v| v.routing_table_name.as_deref())
        .map(str::trim)
    {
        None => None,
        Some(t) => {
            let table_id: u32 = t.parse().map_err(|_| {
                format!("routingTableName \"{t}\": only numeric table ids are rendered (rt_tables names are not read)")
            })?;
            let iif = status_str(ctx, g, "internalInterface")
                .ok_or("the status has no internalInterface for routingTableName")?;
            Some(Rule::new(GATEWAY_RULE_PRIORITY, 0, table_id, owner).with_iif(iif))
        }
    };
    Ok((Some(table), rule))
}

fn client(
    ctx: &Ctx<'_>,
    p: &Resource,
    spec: &EgressGatewayPolicySpec,
    hop: &str,
    index: u32,
) -> Result<(NftTable, Rule, Vec<Route>), String> {
    let owner = p.id().to_string();
    let hop: IpAddr = hop
        .parse()
        .map_err(|_| format!("status nextHop \"{hop}\" is not an address"))?;
    if !hop.is_ipv4() {
        return Err(format!("{hop}: only IPv4 next hops are rendered"));
    }
    let mark = CLIENT_MARK_BASE + index;
    let table_id = CLIENT_TABLE_BASE + index;
    let dst = nets(&spec.destination_cidrs);
    let excl = nets(&spec.excluded_cidrs);
    let (src, ifs) = selection(ctx, spec);
    if src.is_empty() && ifs.is_empty() {
        return Err(
            "selects no clients: no source CIDR or ingress interface (no ClientGroup matches)"
                .into(),
        );
    }
    let mut table = NftTable::new(NftFamily::Ip, client_table(p.name()));
    table.owners.insert(owner.clone());
    table.sets.push(set("dst", dst.clone()));
    let mut head = vec![ip(IpField::Daddr, CmpOp::Eq, "dst")];
    if !excl.is_empty() {
        head.push(ip(IpField::Daddr, CmpOp::Ne, "excl"));
        table.sets.push(set("excl", excl));
    }
    let mut rules = Vec::new();
    if !src.is_empty() {
        table.sets.push(set("src", src));
        let mut e = head.clone();
        e.push(ip(IpField::Saddr, CmpOp::Eq, "src"));
        e.push(Expr::SetMark(crate::ir::MarkSource::Const(mark)));
        rules.push(NftRule { exprs: e });
    }
    for i in ifs {
        let mut e = vec![Expr::IifName(i)];
        e.extend(head.iter().cloned());
        e.push(Expr::SetMark(crate::ir::MarkSource::Const(mark)));
        rules.push(NftRule { exprs: e });
    }
    table.chains.push(NftChain {
        name: "prerouting".into(),
        chain_type: ChainType::Filter,
        hook: Hook::Prerouting,
        priority: Priority::Mangle,
        rules,
    });
    let rule = Rule::new(CLIENT_RULE_PRIORITY + index, mark, table_id, owner.clone());
    let mut seen = BTreeSet::new();
    let routes = dst
        .into_iter()
        .filter(|d| seen.insert(*d))
        .map(|d| {
            let mut r = Route::new(table_id, d, 0, RouteKind::Unicast);
            r.gateway = Some(hop);
            r.owner = owner.clone();
            r
        })
        .collect();
    Ok((table, rule, routes))
}
