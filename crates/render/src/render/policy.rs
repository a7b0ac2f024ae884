//! EgressRoutePolicy → `ip routerd_policy`, `ip routerd_default_route`,
//! per-candidate route tables and fwmark rules (spec §5.2).

use std::collections::{BTreeMap, BTreeSet};

use routerd_model::spec::net::{EgressCandidate, EgressRoutePolicySpec, EgressTarget};
use routerd_model::{Kind, Resource};
use serde_json::Value;

use super::{Ctx, MatchSpec, RenderProblem, Rendered, build_matches, parse_addr};
use crate::ir::{
    ChainType, CmpOp, Expr, Hook, IpField, MarkSource, NftChain, NftFamily, NftRule, NftSet,
    NftTable, Priority, Route, RouteKind, Rule,
};

/// Metric of a candidate table's default route when none is given.
const DEFAULT_TABLE_METRIC: u32 = 50;

fn mark_of(v: Option<i64>) -> u32 {
    v.and_then(|m| u32::try_from(m).ok()).unwrap_or(0)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

struct PolicyView<'a> {
    res: &'a Resource,
    id: String,
    spec: &'a EgressRoutePolicySpec,
    status: Option<&'a serde_json::Map<String, Value>>,
}

impl PolicyView<'_> {
    fn has_targets(&self) -> bool {
        self.spec.candidates.iter().any(|c| !c.targets.is_empty())
    }

    /// routerd's `egressPolicyRendersPolicyMarks` (includes a mode-less
    /// policy with marks, spec §8.1.12).
    fn renders_policy_marks(&self) -> bool {
        let mode = self.spec.mode();
        !self.spec.host_traffic()
            && (mode == "mark"
                || mode == "hash"
                || self.has_targets()
                || (mode != "priority"
                    && self.spec.candidates.iter().any(|c| mark_of(c.mark) != 0)))
    }

    fn status_name(&self, c: &EgressCandidate, i: usize) -> String {
        if self.spec.mode() == "priority" {
            // The policy-route controller names candidates by name, else
            // effective interface, else "targets".
            c.name
                .as_deref()
                .filter(|s| !s.is_empty())
                .or(c.effective_interface())
                .map_or_else(|| "targets".to_string(), str::to_string)
        } else {
            c.status_name(i)
        }
    }

    /// `candidates[].ready` from the selection status, when published.
    fn status_ready(&self, c: &EgressCandidate, i: usize) -> Option<bool> {
        let name = self.status_name(c, i);
        self.status?
            .get("candidates")?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name.as_str()))?
            .get("ready")?
            .as_bool()
    }

    fn selected(&self) -> Option<&str> {
        self.status?
            .get("selectedCandidate")?
            .as_str()
            .filter(|s| !s.is_empty())
    }
}

/// Whether a candidate may carry traffic: enabled, its DS-Lite underlay is
/// `Up`, and healthy (the selection status's `ready` when published).
fn candidate_available(ctx: &Ctx<'_>, p: &PolicyView<'_>, c: &EgressCandidate, i: usize) -> bool {
    if !c.is_enabled() {
        return false;
    }
    if let Some(ready) = p.status_ready(c, i) {
        return ready;
    }
    if c.effective_interface().is_some_and(|n| ctx.dslite_down(n)) {
        return false;
    }
    c.health_check
        .as_deref()
        .filter(|h| !h.is_empty())
        .is_none_or(|h| ctx.health_ok(h))
}

fn target_available(ctx: &Ctx<'_>, t: &EgressTarget) -> bool {
    if t.effective_interface().is_some_and(|n| ctx.dslite_down(n)) {
        return false;
    }
    t.health_check
        .as_deref()
        .filter(|h| !h.is_empty())
        .is_none_or(|h| ctx.health_ok(h))
}

/// `DerivedFwMark(hc)` (spec §4.4): the one non-zero mark of every candidate
/// and target probing through `hc`.
fn derived_mark(ctx: &Ctx<'_>, hc: &str) -> Option<u32> {
    let mut marks = BTreeSet::new();
    for r in ctx.of_kind(Kind::EgressRoutePolicy) {
        let Some(spec) = r.as_egress_policy() else {
            continue;
        };
        for c in &spec.candidates {
            if c.health_check.as_deref() == Some(hc) && mark_of(c.mark) != 0 {
                marks.insert(mark_of(c.mark));
            }
            for t in &c.targets {
                if t.health_check.as_deref() == Some(hc) && mark_of(t.mark) != 0 {
                    marks.insert(mark_of(t.mark));
                }
            }
        }
    }
    (marks.len() == 1)
        .then(|| marks.into_iter().next())
        .flatten()
}

/// The probe of a marked path can only pass through that path, so its
/// table and rule are installed even before the check is healthy.
fn bootstraps(ctx: &Ctx<'_>, hc: Option<&str>, mark: u32) -> bool {
    hc.filter(|h| !h.is_empty())
        .is_some_and(|h| mark != 0 && derived_mark(ctx, h) == Some(mark))
}

pub(super) fn render_policies(ctx: &Ctx<'_>, out: &mut Rendered) {
    let mut policy_table = NftTable::new(NftFamily::Ip, "routerd_policy");
    let mut policy_rules = Vec::new();
    let mut policy_sets: BTreeMap<String, NftSet> = BTreeMap::new();
    let mut default_table = NftTable::new(NftFamily::Ip, "routerd_default_route");
    let mut default_rules = Vec::new();

    for res in ctx.of_kind(Kind::EgressRoutePolicy) {
        let Some(spec) = res.as_egress_policy() else {
            continue;
        };
        let p = PolicyView {
            res,
            id: res.id().to_string(),
            spec,
            status: ctx.status_of(Kind::EgressRoutePolicy, res.name()),
        };
        if spec.host_traffic() || spec.family() != "ipv4" {
            continue;
        }
        let problem = |message: String| RenderProblem::new(p.id.clone(), message);
        if p.renders_policy_marks() {
            match policy_marks(ctx, &p, &mut policy_sets) {
                Ok(Some(rules)) => {
                    policy_rules.extend(rules);
                    policy_table.owners.insert(p.id.clone());
                }
                Ok(None) => {
                    out.desired.retained.insert(p.id.clone());
                }
                Err(e) => {
                    out.desired.retained.insert(p.id.clone());
                    out.problems.push(problem(e));
                }
            }
        }
        if spec.mode() == "priority" && spec.selection() == "highest-weight-ready" {
            match default_route_rules(ctx, &p) {
                Ok(Some(rules)) => {
                    default_rules.extend(rules);
                    default_table.owners.insert(p.id.clone());
                }
                Ok(None) => {
                    out.desired.retained.insert(p.id.clone());
                }
                Err(e) => out.problems.push(problem(e)),
            }
        }
        if matches!(spec.mode(), "priority" | "mark" | "hash")
            && !(spec.mode() == "priority" && spec.selection() != "highest-weight-ready")
        {
            tables_and_rules(ctx, &p, out);
        }
    }

    if !policy_table.owners.is_empty() {
        policy_table.sets = policy_sets.into_values().collect();
        policy_table.chains.push(NftChain {
            name: "prerouting".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: Priority::Mangle,
            rules: policy_rules,
        });
        out.desired.nft.push(policy_table);
    }
    if !default_table.owners.is_empty() {
        default_table.chains.push(NftChain {
            name: "prerouting".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: Priority::Num(-151),
            rules: default_rules,
        });
        out.desired.nft.push(default_table);
    }
}

fn rule(exprs: Vec<Expr>) -> NftRule {
    NftRule { exprs }
}

fn with(m: &[Expr], tail: impl IntoIterator<Item = Expr>) -> NftRule {
    let mut v = m.to_vec();
    v.extend(tail);
    rule(v)
}

/// Rules of one policy in `routerd_policy`; `None` when nothing is
/// available (the policy keeps what is installed).
fn policy_marks(
    ctx: &Ctx<'_>,
    p: &PolicyView<'_>,
    sets: &mut BTreeMap<String, NftSet>,
) -> Result<Option<Vec<NftRule>>, String> {
    let spec = p.spec;
    let matches = build_matches(
        ctx,
        &MatchSpec {
            sources: &spec.source_cidrs,
            destinations: &spec.destination_cidrs,
            destination_sets: &spec.destination_set_refs,
            exclude: &spec.exclude_destination_cidrs,
            exclude_sets: &spec.exclude_destination_set_refs,
        },
        sets,
    )
    .map_err(|e| format!("{} {e}", p.id))?;
    let priority = spec.mode() == "priority";
    let selected = p.selected();
    let mut rules = Vec::new();
    let mut any = false;
    for (i, c) in spec.candidates.iter().enumerate() {
        if !candidate_available(ctx, p, c, i) {
            continue;
        }
        if !c.targets.is_empty() {
            if priority && selected != Some(p.status_name(c, i).as_str()) {
                continue;
            }
            let marks: Vec<u32> = c
                .targets
                .iter()
                .filter(|t| target_available(ctx, t))
                .map(|t| mark_of(t.mark))
                .filter(|m| *m != 0)
                .collect();
            if marks.is_empty() {
                continue;
            }
            let fields: Vec<IpField> = spec
                .hash_fields
                .iter()
                .filter_map(|f| match f.as_str() {
                    "sourceAddress" => Some(IpField::Saddr),
                    "destinationAddress" => Some(IpField::Daddr),
                    _ => None,
                })
                .collect();
            if fields.is_empty() {
                return Err(format!("{} requires at least one hash field", p.id));
            }
            any = true;
            for m in &matches {
                rules.push(with(
                    m,
                    [
                        Expr::CtMark {
                            op: CmpOp::Ne,
                            mark: 0,
                        },
                        Expr::SetMark(MarkSource::CtMark),
                    ],
                ));
                rules.push(with(
                    m,
                    [
                        Expr::CtMark {
                            op: CmpOp::Eq,
                            mark: 0,
                        },
                        Expr::SetMark(MarkSource::JhashMap {
                            fields: fields.clone(),
                            marks: marks.clone(),
                        }),
                    ],
                ));
                rules.push(with(
                    m,
                    [
                        Expr::CtMark {
                            op: CmpOp::Eq,
                            mark: 0,
                        },
                        Expr::SetCtMarkFromMark,
                    ],
                ));
            }
            continue;
        }
        let mark = mark_of(c.mark);
        if priority || mark == 0 {
            continue;
        }
        any = true;
        for m in &matches {
            rules.push(with(m, [Expr::SetMark(MarkSource::Const(mark))]));
        }
    }
    Ok(any.then_some(rules))
}

/// Rules of one priority-mode policy in `routerd_default_route`.
fn default_route_rules(ctx: &Ctx<'_>, p: &PolicyView<'_>) -> Result<Option<Vec<NftRule>>, String> {
    let spec = p.spec;
    let Some(selected) = p.selected() else {
        return Ok(None);
    };
    let Some((ai, active)) = spec
        .candidates
        .iter()
        .enumerate()
        .find(|(i, c)| p.status_name(c, *i) == selected)
    else {
        return Ok(None);
    };
    let mut healthy = BTreeSet::new();
    for (i, c) in spec.candidates.iter().enumerate() {
        if !candidate_available(ctx, p, c, i) {
            continue;
        }
        if c.targets.is_empty() {
            healthy.insert(mark_of(c.mark));
        } else {
            for t in c.targets.iter().filter(|t| target_available(ctx, t)) {
                healthy.insert(mark_of(t.mark));
            }
        }
    }
    healthy.remove(&0);
    let healthy: Vec<u32> = healthy.into_iter().collect();
    let active_mark = mark_of(active.mark);
    let active_targets = !active.targets.is_empty();
    let _ = ai;
    let mut sets = BTreeMap::new();
    let matches = build_matches(
        ctx,
        &MatchSpec {
            sources: &spec.source_cidrs,
            destinations: &spec.destination_cidrs,
            exclude: &spec.exclude_destination_cidrs,
            ..MatchSpec::default()
        },
        &mut sets,
    )
    .map_err(|e| format!("{} {e}", p.id))?;
    let mut rules = Vec::new();
    for m in &matches {
        if !healthy.is_empty() {
            rules.push(with(
                m,
                [
                    Expr::CtMarkIn {
                        op: CmpOp::Eq,
                        marks: healthy.clone(),
                    },
                    Expr::SetMark(MarkSource::CtMark),
                ],
            ));
            let remark = if active_targets { 0 } else { active_mark };
            rules.push(with(
                m,
                [
                    Expr::CtMark {
                        op: CmpOp::Ne,
                        mark: 0,
                    },
                    Expr::CtMarkIn {
                        op: CmpOp::Ne,
                        marks: healthy.clone(),
                    },
                    Expr::SetMark(MarkSource::Const(remark)),
                    Expr::SetCtMarkFromMark,
                ],
            ));
        }
        if !active_targets {
            rules.push(with(
                m,
                [
                    Expr::CtMark {
                        op: CmpOp::Eq,
                        mark: 0,
                    },
                    Expr::SetMark(MarkSource::Const(active_mark)),
                    Expr::SetCtMarkFromMark,
                ],
            ));
        }
    }
    Ok(Some(rules))
}

/// One path's table route and fwmark rule.
struct PathSpec<'a> {
    name: String,
    interface: Option<&'a str>,
    device_from: Option<String>,
    gateway: Option<&'a str>,
    gateway_from: Option<String>,
    gateway_source: &'a str,
    table: i64,
    priority: i64,
    mark: u32,
    metric: i64,
}

fn tables_and_rules(ctx: &Ctx<'_>, p: &PolicyView<'_>, out: &mut Rendered) {
    let mut paths = Vec::new();
    for (i, c) in p.spec.candidates.iter().enumerate() {
        if !c.is_enabled() {
            continue;
        }
        let available = candidate_available(ctx, p, c, i);
        if c.targets.is_empty() {
            let mark = mark_of(c.mark);
            if mark == 0 || !(available || bootstraps(ctx, c.health_check.as_deref(), mark)) {
                continue;
            }
            paths.push(PathSpec {
                name: p.status_name(c, i),
                interface: c.effective_interface(),
                device_from: c.device_from.as_ref().and_then(|s| ctx.status_value(s)),
                gateway: c.gateway.as_deref(),
                gateway_from: c.gateway_from.as_ref().and_then(|s| ctx.status_value(s)),
                gateway_source: c.gateway_source(),
                table: c.route_table(),
                priority: c.priority.unwrap_or(0),
                mark,
                metric: c.metric(),
            });
        } else {
            if c.effective_interface().is_some_and(|n| ctx.dslite_down(n)) {
                continue;
            }
            let base = c
                .name
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(p.res.name());
            for (j, t) in c.targets.iter().enumerate() {
                let mark = mark_of(t.mark);
                let ok =
                    target_available(ctx, t) || bootstraps(ctx, t.health_check.as_deref(), mark);
                if !ok {
                    continue;
                }
                paths.push(PathSpec {
                    name: t
                        .name
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| format!("{base}-{j}")),
                    interface: t.effective_interface(),
                    device_from: None,
                    gateway: t.gateway.as_deref(),
                    gateway_from: t.gateway_from.as_ref().and_then(|s| ctx.status_value(s)),
                    gateway_source: t
                        .gateway_source
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .unwrap_or("none"),
                    table: t.route_table(),
                    priority: t.priority.unwrap_or(0),
                    mark,
                    metric: t.metric(),
                });
            }
        }
    }
    for path in paths {
        let (table, priority) = (u32_of(path.table), u32_of(path.priority));
        if table == 0 || priority == 0 || path.mark == 0 {
            continue;
        }
        let device = path
            .device_from
            .clone()
            .or_else(|| path.interface.map(|i| ctx.alias(i)));
        let Some(device) = device else {
            out.problems.push(RenderProblem::new(
                p.id.clone(),
                format!("{} candidate {} has no outbound interface", p.id, path.name),
            ));
            continue;
        };
        let gateway = match path.gateway_source {
            "none" | "" => Ok(None),
            "static" => match path.gateway.map(str::trim).filter(|g| !g.is_empty()) {
                Some(g) => parse_addr(g).map(Some),
                None => path
                    .gateway_from
                    .as_deref()
                    .map(|g| parse_addr(g).map(Some))
                    .unwrap_or_else(|| Err(format!("static gateway is empty for {device}"))),
            },
            "dhcpv4" => match path.gateway_from.as_deref().or(path.gateway) {
                Some(g) => parse_addr(g).map(Some),
                None => Err(format!("no gateway found for {device}")),
            },
            other => Err(format!("unsupported gatewaySource \"{other}\"")),
        };
        let gateway = match gateway {
            Ok(g) => g,
            Err(message) => {
                out.problems.push(RenderProblem::new(p.id.clone(), message));
                continue;
            }
        };
        let metric = match u32_of(path.metric) {
            0 => DEFAULT_TABLE_METRIC,
            m => m,
        };
        let mut route = Route::new(table, ipnet::Ipv4Net::default(), metric, RouteKind::Unicast);
        route.device = Some(device);
        route.gateway = gateway;
        route.owner = p.id.clone();
        out.desired.routes.push(route);
        out.desired
            .rules
            .push(Rule::new(priority, path.mark, table, p.id.clone()));
    }
}
