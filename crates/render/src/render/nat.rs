//! NAT44Rule → `ip routerd_nat` (spec §5.3), and DNAT redirects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use routerd_model::spec::net::NAT44RuleSpec;
use routerd_model::{Kind, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Ctx, MatchSpec, RenderProblem, Rendered, build_matches};
use crate::ir::{
    AddrValue, ChainType, CmpOp, DesiredState, Expr, Family, Hook, IpField, L4Proto, NatAddr,
    NftChain, NftFamily, NftRule, NftSet, NftTable, Priority,
};

const NAT_TABLE: &str = "routerd_nat";

enum Outcome {
    Rules(Vec<NftRule>),
    /// Unresolved (Pending): what is installed stays.
    Hold,
}

pub(super) fn render_nat44(ctx: &Ctx<'_>, out: &mut Rendered) {
    let mut table = NftTable::new(NftFamily::Ip, NAT_TABLE);
    let mut rules = Vec::new();
    let mut sets = BTreeMap::new();
    for r in ctx.of_kind(Kind::NAT44Rule) {
        let Some(spec) = r.as_nat44() else { continue };
        let owner = r.id().to_string();
        let result = if spec.is_source_nat_shape() {
            source_nat(ctx, r, spec, &mut sets)
        } else {
            egress_nat(ctx, r, spec, &mut sets)
        };
        match result {
            Ok(Outcome::Rules(rs)) => {
                rules.extend(rs);
                table.owners.insert(owner);
            }
            Ok(Outcome::Hold) => {
                out.desired.retained.insert(owner);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
    if table.owners.is_empty() {
        return;
    }
    table.sets = sets.into_values().collect();
    table.chains.push(NftChain {
        name: "postrouting".into(),
        chain_type: ChainType::Nat,
        hook: Hook::Postrouting,
        priority: Priority::Srcnat,
        rules,
    });
    out.desired.nft.push(table);
}

fn status_str<'v>(st: Option<&'v serde_json::Map<String, Value>>, key: &str) -> Option<&'v str> {
    st?.get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The legacy / egress shape, as the live controller renders it.
fn egress_nat(
    ctx: &Ctx<'_>,
    r: &Resource,
    spec: &NAT44RuleSpec,
    sets: &mut BTreeMap<String, NftSet>,
) -> Result<Outcome, String> {
    let id = r.id();
    let status = ctx.status_of(Kind::NAT44Rule, r.name());
    let phase = status_str(status, "phase");
    if phase == Some("Pending") || phase == Some("Error") {
        return Ok(Outcome::Hold);
    }
    let active = phase == Some("Active");
    // Egress resolution (spec §5.3 step 1).
    let egress = if active {
        status_str(status, "activeEgressInterface").map(str::to_string)
    } else if let Some(e) = spec
        .egress_interface
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        Some(ctx.alias(e.trim()))
    } else {
        let name = match spec.egress_policy_ref.as_deref().filter(|s| !s.is_empty()) {
            Some(n) => Some(n.trim_start_matches("EgressRoutePolicy/").to_string()),
            None if ctx.count(Kind::EgressRoutePolicy) == 1 => ctx
                .of_kind(Kind::EgressRoutePolicy)
                .next()
                .map(|p| p.name().to_string()),
            None => None,
        };
        name.and_then(|n| {
            let st = ctx.status_of(Kind::EgressRoutePolicy, &n);
            (status_str(st, "phase") == Some("Applied"))
                .then(|| status_str(st, "selectedDevice").map(str::to_string))
                .flatten()
        })
    };
    let Some(egress) = egress else {
        return Ok(Outcome::Hold);
    };
    let ty = spec.type_.as_deref().unwrap_or("");
    let action = match ty {
        "masquerade" => Expr::Masquerade {
            ports: None,
            persistent: false,
        },
        "snat" => {
            let addr = if active {
                status_str(status, "snatAddress").map(str::to_string)
            } else {
                None
            }
            .or_else(|| spec.snat_address.clone().filter(|s| !s.trim().is_empty()))
            .or_else(|| {
                spec.snat_address_from
                    .as_ref()
                    .and_then(|s| ctx.status_value(s))
            })
            .or_else(|| static_address(ctx, &egress));
            let Some(addr) = addr else {
                return Ok(Outcome::Hold); // SNATAddressMissing
            };
            Expr::Snat {
                addr: NatAddr::Single(parse_addr(&addr)?),
                ports: None,
                persistent: false,
            }
        }
        other => {
            return Err(format!(
                "nat44 rule \"{}\" has unsupported type \"{other}\"",
                r.name()
            ));
        }
    };
    let matches = build_matches(
        ctx,
        &MatchSpec {
            sources: &spec.source_ranges,
            destinations: &spec.destination_cidrs,
            destination_sets: &spec.destination_set_refs,
            exclude: &spec.exclude_destination_cidrs,
            exclude_sets: &spec.exclude_destination_set_refs,
            ..MatchSpec::default()
        },
        sets,
    )
    .map_err(|e| format!("{id} {e}"))?;
    Ok(Outcome::Rules(
        matches
            .into_iter()
            .map(|m| {
                let mut exprs = vec![Expr::OifName(egress.clone())];
                exprs.extend(m);
                exprs.push(action.clone());
                NftRule { exprs }
            })
            .collect(),
    ))
}

/// The IPv4StaticAddress on the egress interface (snat fallback).
fn static_address(ctx: &Ctx<'_>, egress: &str) -> Option<String> {
    ctx.of_kind(Kind::IPv4StaticAddress)
        .filter_map(Resource::as_static_address)
        .find(|a| ctx.alias(&a.interface) == egress)
        .map(|a| a.address.clone())
}

/// The source-NAT shape (the offline renderer's `writeNAT44Table`; routerd's
/// live controller ignores this shape, spec §8.1.3, routerd-rs renders it).
fn source_nat(
    ctx: &Ctx<'_>,
    r: &Resource,
    spec: &NAT44RuleSpec,
    sets: &mut BTreeMap<String, NftSet>,
) -> Result<Outcome, String> {
    let id = r.id();
    let Some(ifname) = spec
        .outbound_interface
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    else {
        return Err(format!(
            "{id} spec.outboundInterface is required when using source NAT fields on NAT44Rule"
        ));
    };
    let ifname = ctx.alias(ifname.trim());
    let tr = spec.translation.clone().unwrap_or_default();
    let pm = tr.port_mapping.clone().unwrap_or_default();
    let persistent = pm.type_.as_deref() == Some("preserve");
    let range = match pm.type_.as_deref().unwrap_or("auto") {
        "auto" | "" | "preserve" => None,
        "range" => {
            let lo = pm
                .start
                .and_then(|v| u16::try_from(v).ok())
                .filter(|v| *v > 0);
            let hi = pm.end.and_then(|v| u16::try_from(v).ok());
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
                _ => {
                    return Err(format!(
                        "{id} spec.translation.portMapping range must be within 1-65535 and start must be <= end"
                    ));
                }
            }
        }
        _ => {
            return Err(format!(
                "{id} spec.translation.portMapping.type must be auto, preserve, or range"
            ));
        }
    };
    let make = |ports: Option<(u16, u16)>| -> Result<Expr, String> {
        Ok(match tr.type_.as_deref().unwrap_or("interfaceAddress") {
            "interfaceAddress" | "" => Expr::Masquerade { ports, persistent },
            "address" => {
                let a = tr.address.as_deref().unwrap_or("");
                Expr::Snat {
                    addr: NatAddr::Single(parse_addr(a).map_err(|_| {
                        format!("{id} spec.translation.address must be an IPv4 address")
                    })?),
                    ports,
                    persistent,
                }
            }
            "pool" => {
                let mut addrs = Vec::new();
                for a in &tr.addresses {
                    addrs.push(
                        parse_addr(a)
                            .map_err(|e| format!("{id} spec.translation.addresses: {e}"))?,
                    );
                }
                Expr::Snat {
                    addr: pool(addrs)
                        .ok_or_else(|| format!("{id} spec.translation.addresses is required"))?,
                    ports,
                    persistent,
                }
            }
            _ => {
                return Err(format!(
                    "{id} spec.translation.type must be interfaceAddress, address, or pool"
                ));
            }
        })
    };
    let plain = make(None)?;
    let ranged = range.map(|p| make(Some(p))).transpose()?;
    let mut rules = Vec::new();
    for src in &spec.source_cidrs {
        let matches = build_matches(
            ctx,
            &MatchSpec {
                sources: std::slice::from_ref(src),
                destinations: &spec.destination_cidrs,
                destination_sets: &spec.destination_set_refs,
                exclude: &spec.exclude_destination_cidrs,
                exclude_sets: &spec.exclude_destination_set_refs,
                ..MatchSpec::default()
            },
            sets,
        )
        .map_err(|e| format!("{id} {e}"))?;
        for m in matches {
            let mut base = vec![Expr::OifName(ifname.clone())];
            base.extend(m);
            if let Some(rx) = &ranged {
                let mut exprs = base.clone();
                exprs.push(Expr::L4Proto(vec![L4Proto::Tcp, L4Proto::Udp]));
                exprs.push(rx.clone());
                rules.push(NftRule { exprs });
            }
            base.push(plain.clone());
            rules.push(NftRule { exprs: base });
        }
    }
    Ok(Outcome::Rules(rules))
}

/// A pool of discrete addresses: a contiguous run is an address range (as
/// routerd renders it); gaps would hand out addresses that are not in the
/// pool (spec §8.1.4), so such a pool maps clients by source-address hash.
fn pool(mut addrs: Vec<Ipv4Addr>) -> Option<NatAddr> {
    addrs.sort();
    addrs.dedup();
    let first = *addrs.first()?;
    let last = *addrs.last()?;
    if addrs.len() == 1 {
        return Some(NatAddr::Single(first));
    }
    let span = u64::from(u32::from(last)) - u64::from(u32::from(first)) + 1;
    if span == addrs.len() as u64 {
        Some(NatAddr::Range(first, last))
    } else {
        Some(NatAddr::HashMap(addrs))
    }
}

/// A destination NAT redirect (port forward) in `routerd_nat`'s
/// `prerouting` chain. No configuration kind produces these yet; the
/// dataplane supports them so ingress kinds can.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    /// Resource id that wants the redirect.
    pub owner: String,
    /// Incoming interface (kernel name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iifname: Option<String>,
    /// Destination prefix matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Ipv4Net>,
    /// Transport protocol.
    pub protocol: L4Proto,
    /// Destination port matched.
    pub port: u16,
    /// Translated address.
    pub to_address: Ipv4Addr,
    /// Translated port (unchanged when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
}

/// Adds redirects to `routerd_nat` (creating it when needed): chain
/// NAT44 translates to IPv4 addresses only.
fn parse_addr(s: &str) -> Result<std::net::Ipv4Addr, String> {
    match super::parse_addr(s, Family::V4)? {
        std::net::IpAddr::V4(a) => Ok(a),
        std::net::IpAddr::V6(_) => Err(format!("\"{}\" is not an IPv4 address", s.trim())),
    }
}

/// `prerouting { type nat hook prerouting priority dstnat; }`.
pub fn add_redirects(desired: &mut DesiredState, redirects: &[Redirect]) {
    if redirects.is_empty() {
        return;
    }
    let idx = match desired
        .nft
        .iter()
        .position(|t| t.family == NftFamily::Ip && t.name == NAT_TABLE)
    {
        Some(i) => i,
        None => {
            desired.nft.push(NftTable::new(NftFamily::Ip, NAT_TABLE));
            desired.nft.len() - 1
        }
    };
    let Some(table) = desired.nft.get_mut(idx) else {
        return;
    };
    let mut rules = Vec::new();
    for r in redirects {
        table.owners.insert(r.owner.clone());
        let mut exprs = Vec::new();
        if let Some(i) = &r.iifname {
            exprs.push(Expr::IifName(i.clone()));
        }
        if let Some(d) = r.destination {
            exprs.push(Expr::Ip {
                family: Family::V4,
                field: IpField::Daddr,
                op: CmpOp::Eq,
                value: AddrValue::Prefix(d.trunc().into()),
            });
        }
        exprs.push(Expr::Dport {
            proto: r.protocol,
            port: r.port,
        });
        exprs.push(Expr::Dnat {
            addr: r.to_address,
            port: r.to_port,
        });
        rules.push(NftRule { exprs });
    }
    // dstnat runs before srcnat; keep chain order stable for the text.
    table.chains.insert(
        0,
        NftChain {
            name: "prerouting".into(),
            chain_type: ChainType::Nat,
            hook: Hook::Prerouting,
            priority: Priority::Dstnat,
            rules,
        },
    );
    // Redirects are added to an already normalized state of distinct
    // owners' tables; nothing can clash here.
    let _ = desired.normalize();
}
