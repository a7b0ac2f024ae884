//! EgressRoutePolicy → `ip routerd_policy`, `ip routerd_default_route`,
//! per-candidate route tables and fwmark rules, and the weighted multipath
//! table of `weighted-ecmp` in mode `priority` (spec §5.2). A `family:
//! ipv6` policy goes through the same functions into `ip6` tables, IPv6
//! default routes and `ip -6` rules; only the family differs.
//!
//! Nothing here judges a candidate. Whether a candidate or a target may
//! carry traffic, and which of them new flows use once hysteresis,
//! preemptDelay and `preempt` have had their say, is what selection
//! published in the policy status: `phase`, `selectedCandidate`, `members`,
//! and per candidate `ready`, `pathReady` and `targetStates[]` (`ready`,
//! `pathReady`, `inUse`). routerd-select decides all of it with one rule
//! (`readiness::assess`), so the kernel carries exactly what the status
//! says. A policy whose status is missing or not `Applied` keeps what is
//! installed (fail-static) and only gets the tables its probes need.

use std::collections::{BTreeMap, BTreeSet};

use routerd_model::spec::net::{EgressCandidate, EgressRoutePolicySpec};
use routerd_model::{Kind, Resource};
use serde_json::Value;

use super::routes::nexthops;
use super::{Ctx, MatchSpec, RenderProblem, Rendered, build_matches, parse_addr};
use crate::ir::{
    ChainType, CmpOp, Expr, Family, Hook, IpField, MarkSource, NftChain, NftRule, NftSet, NftTable,
    Priority, Route, RouteKind, Rule,
};

/// Metric of a candidate table's default route when none is given.
const DEFAULT_TABLE_METRIC: u32 = 50;

/// The most buckets a weighted jhash map gets: weights are reduced by
/// their greatest common divisor first, and validation keeps each weight at
/// or below 256, so this only bounds pathological member counts.
const MAX_BUCKETS: u64 = 4096;

fn mark_of(v: Option<i64>) -> u32 {
    v.and_then(|m| u32::try_from(m).ok()).unwrap_or(0)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn flag(v: Option<&Value>, key: &str) -> bool {
    v.and_then(|e| e.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// What selection published for one policy.
struct Published<'a> {
    /// `phase: Applied`: a selection exists.
    applied: bool,
    /// `candidates[]`, one per spec candidate, in spec order.
    entries: &'a [Value],
    /// The candidate new flows use (highest-weight-ready).
    selected: Option<usize>,
    /// `members[]` of weighted-ecmp, best first.
    members: &'a [Value],
}

impl<'a> Published<'a> {
    fn read(
        spec: &EgressRoutePolicySpec,
        status: &'a serde_json::Map<String, Value>,
    ) -> Option<Self> {
        let entries = status.get("candidates")?.as_array()?;
        if entries.len() != spec.candidates.len() {
            return None;
        }
        let applied = status.get("phase").and_then(Value::as_str) == Some("Applied");
        let index_of = |name: &str| {
            entries
                .iter()
                .position(|e| e.get("name").and_then(Value::as_str) == Some(name))
        };
        let selected = status
            .get("selectedCandidate")
            .and_then(Value::as_str)
            .filter(|_| applied)
            .and_then(index_of);
        let members = status
            .get("members")
            .and_then(Value::as_array)
            .filter(|_| applied)
            .map_or(&[][..], Vec::as_slice);
        Some(Published {
            applied,
            entries,
            selected,
            members,
        })
    }

    fn entry(&self, i: usize) -> Option<&'a Value> {
        self.entries.get(i)
    }
    fn ready(&self, i: usize) -> bool {
        flag(self.entry(i), "ready")
    }
    fn path_ready(&self, i: usize) -> bool {
        flag(self.entry(i), "pathReady")
    }
    fn target(&self, i: usize, j: usize) -> Option<&'a Value> {
        self.entry(i)?.get("targetStates")?.as_array()?.get(j)
    }
    fn target_ready(&self, i: usize, j: usize) -> bool {
        flag(self.target(i, j), "ready")
    }
    fn target_path_ready(&self, i: usize, j: usize) -> bool {
        flag(self.target(i, j), "pathReady")
    }
    fn target_in_use(&self, i: usize, j: usize) -> bool {
        flag(self.target(i, j), "inUse")
    }

    /// The weighted-ecmp members as (candidate index, weight).
    fn member_weights(&self) -> Vec<(usize, u64)> {
        self.members
            .iter()
            .filter_map(|m| {
                let name = m.get("name").and_then(Value::as_str)?;
                let i = self
                    .entries
                    .iter()
                    .position(|e| e.get("name").and_then(Value::as_str) == Some(name))?;
                let w = m.get("weight").and_then(Value::as_i64).unwrap_or(1);
                Some((i, u64::try_from(w.clamp(1, 256)).unwrap_or(1)))
            })
            .collect()
    }

    /// The marks of every path that may keep its connections: ready
    /// candidates without targets, and ready targets.
    fn ready_marks(&self, spec: &EgressRoutePolicySpec) -> Vec<u32> {
        let mut marks = BTreeSet::new();
        for (i, c) in spec.candidates.iter().enumerate() {
            if c.targets.is_empty() {
                if self.ready(i) {
                    marks.insert(mark_of(c.mark));
                }
            } else {
                for (j, t) in c.targets.iter().enumerate() {
                    if self.target_ready(i, j) {
                        marks.insert(mark_of(t.mark));
                    }
                }
            }
        }
        marks.remove(&0);
        marks.into_iter().collect()
    }
}

struct PolicyView<'a> {
    res: &'a Resource,
    id: String,
    /// `spec.family`: which header the nft rules match, which tables
    /// (`ip` or `ip6`) and which rule and route family they go to.
    family: Family,
    spec: &'a EgressRoutePolicySpec,
    published: Option<Published<'a>>,
}

impl PolicyView<'_> {
    fn has_targets(&self) -> bool {
        self.spec.candidates.iter().any(|c| !c.targets.is_empty())
    }

    fn ecmp(&self) -> bool {
        self.spec.selection() == "weighted-ecmp"
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

    /// The name of candidate `i` as selection published it.
    fn name(&self, i: usize) -> String {
        self.published
            .as_ref()
            .and_then(|p| p.entry(i))
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("candidate-{i}"), str::to_string)
    }
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
/// table and rule are installed even before the check is healthy, as long
/// as the path itself exists (selection's `pathReady`).
fn bootstraps(ctx: &Ctx<'_>, hc: Option<&str>, mark: u32) -> bool {
    hc.filter(|h| !h.is_empty())
        .is_some_and(|h| mark != 0 && derived_mark(ctx, h) == Some(mark))
}

/// Both families render the same way, each into its own tables (`ip
/// routerd_policy` / `ip6 routerd_policy`, ...), rules (`ip -4 rule` /
/// `ip -6 rule`) and candidate routes.
pub(super) fn render_policies(ctx: &Ctx<'_>, out: &mut Rendered) {
    for family in [Family::V4, Family::V6] {
        render_family(ctx, family, out);
    }
}

fn render_family(ctx: &Ctx<'_>, family: Family, out: &mut Rendered) {
    let mut policy_table = NftTable::new(family.nft_family(), "routerd_policy");
    let mut policy_rules = Vec::new();
    let mut policy_sets: BTreeMap<String, NftSet> = BTreeMap::new();
    let mut default_table = NftTable::new(family.nft_family(), "routerd_default_route");
    let mut default_rules = Vec::new();

    let views: Vec<PolicyView<'_>> = ctx
        .of_kind(Kind::EgressRoutePolicy)
        .filter_map(|res| {
            let spec = res.as_egress_policy()?;
            if spec.host_traffic() || Family::parse(spec.family()) != Some(family) {
                return None;
            }
            Some(PolicyView {
                res,
                id: res.id().to_string(),
                family,
                spec,
                published: ctx
                    .status_of(Kind::EgressRoutePolicy, res.name())
                    .and_then(|st| Published::read(spec, st)),
            })
        })
        .collect();
    // Every path some policy keeps connections on: a priority policy's
    // sticky rules leave such connections alone (see `default_route_rules`).
    let ready_anywhere: BTreeSet<u32> = views
        .iter()
        .filter(|p| p.renders_policy_marks() || p.spec.mode() == "priority")
        .filter_map(|p| {
            let published = p.published.as_ref().filter(|x| x.applied)?;
            Some(published.ready_marks(p.spec))
        })
        .flatten()
        .collect();

    for p in &views {
        let spec = p.spec;
        let steers = matches!(spec.mode(), "priority" | "mark" | "hash");
        if !steers && !p.renders_policy_marks() {
            // Advisory selection only: routes and NAT rules follow it.
            continue;
        }
        let applied = p.published.as_ref().is_some_and(|x| x.applied);
        if !applied {
            // Nothing selected (yet): keep what is installed.
            out.desired.retained.insert(p.id.clone());
        }
        let problem = |message: String| RenderProblem::new(p.id.clone(), message);
        if applied && p.renders_policy_marks() {
            match policy_marks(ctx, p, &mut policy_sets) {
                Ok(rules) => {
                    if !rules.is_empty() {
                        policy_rules.extend(rules);
                        policy_table.owners.insert(p.id.clone());
                    }
                }
                Err(e) => {
                    out.desired.retained.insert(p.id.clone());
                    out.problems.push(problem(e));
                }
            }
        }
        if applied && spec.mode() == "priority" {
            match default_route_rules(ctx, p, &ready_anywhere) {
                Ok(rules) => {
                    if !rules.is_empty() {
                        default_rules.extend(rules);
                        default_table.owners.insert(p.id.clone());
                    }
                }
                Err(e) => {
                    out.desired.retained.insert(p.id.clone());
                    out.problems.push(problem(e));
                }
            }
        }
        if steers {
            tables_and_rules(ctx, p, out);
        }
        if applied && steers && spec.mode() == "priority" && p.ecmp() {
            multipath(p, out);
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

fn hash_fields(spec: &EgressRoutePolicySpec) -> Vec<IpField> {
    spec.hash_fields
        .iter()
        .filter_map(|f| match f.as_str() {
            "sourceAddress" => Some(IpField::Saddr),
            "destinationAddress" => Some(IpField::Daddr),
            _ => None,
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The bucket → mark list of a weighted jhash map: each mark repeated by
/// its weight, weights reduced by their greatest common divisor.
fn weighted_buckets(weighted: &[(u32, u64)]) -> Result<Vec<u32>, String> {
    let g = weighted.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let total: u64 = weighted.iter().map(|(_, w)| w / g).sum();
    if total > MAX_BUCKETS {
        return Err(format!(
            "weights need {total} hash buckets, more than {MAX_BUCKETS}; use smaller weights"
        ));
    }
    Ok(weighted
        .iter()
        .flat_map(|(m, w)| std::iter::repeat_n(*m, usize::try_from(w / g).unwrap_or(1)))
        .collect())
}

/// New connections get `fresh` (a constant mark, or a hash over marks); a
/// connection already on a path that is still ready (`sticky`) stays
/// there; one on a path that went away is marked again instead of leaking
/// to the main table.
///
/// With `flushOnFailover: deadPath` (`keep_dead`) such a connection is
/// re-marked packet by packet but keeps its ct mark: the daemon deletes
/// the dead path's connections by that mark right after this ruleset is
/// installed, and a connection re-marked in between would escape the flush
/// with its stale NAT binding (docs/adr/0011).
///
/// With `pinned` the restore of a sticky mark is not in these rules but in
/// one [`restore_rule`] without the match: see there.
fn sticky_marks(
    m: &[Expr],
    sticky: &[u32],
    fresh_mark: MarkSource,
    keep_dead: bool,
    pinned: bool,
) -> Vec<NftRule> {
    let keep = Expr::CtMarkIn {
        op: CmpOp::Eq,
        marks: sticky.to_vec(),
    };
    let fresh = || Expr::CtMarkIn {
        op: CmpOp::Ne,
        marks: sticky.to_vec(),
    };
    let unmarked = if keep_dead {
        Expr::CtMark {
            op: CmpOp::Eq,
            mark: 0,
        }
    } else {
        fresh()
    };
    let mut rules = Vec::with_capacity(3);
    if !pinned {
        rules.push(with(m, [keep, Expr::SetMark(MarkSource::CtMark)]));
    }
    rules.push(with(m, [fresh(), Expr::SetMark(fresh_mark)]));
    rules.push(with(m, [unmarked, Expr::SetCtMarkFromMark]));
    rules
}

/// A policy matching destination sets pins each connection to the path its
/// first packet took: a set's members change under established flows (a
/// DNS answer moves, an address is edited out), and a flow whose
/// destination left the set would otherwise be routed like any other
/// packet, leave through another uplink with the old uplink's NAT binding
/// and be reset upstream. So the connection's mark is restored from its ct
/// mark whatever its destination now is, while that path is ready, for
/// packets in the original direction only (a reply carrying the mark would
/// be routed back out through the uplink).
fn restore_rule(sticky: &[u32]) -> NftRule {
    rule(vec![
        Expr::CtDirectionOriginal,
        Expr::CtMarkIn {
            op: CmpOp::Eq,
            marks: sticky.to_vec(),
        },
        Expr::SetMark(MarkSource::CtMark),
    ])
}

/// Whether the policy pins connections (see [`restore_rule`]).
fn pins_connections(spec: &EgressRoutePolicySpec) -> bool {
    !spec.destination_set_refs.is_empty()
}

/// `flushOnFailover: deadPath`: connections of a path that went away keep
/// its ct mark (routed over the new path packet by packet) so the flush
/// that follows the failover finds them all.
fn keeps_dead_marks(spec: &EgressRoutePolicySpec) -> bool {
    spec.flush_on_failover() == routerd_model::spec::FlushOnFailover::DeadPath
}

/// Rules of one applied policy in `routerd_policy`.
fn policy_marks(
    ctx: &Ctx<'_>,
    p: &PolicyView<'_>,
    sets: &mut BTreeMap<String, NftSet>,
) -> Result<Vec<NftRule>, String> {
    let spec = p.spec;
    let Some(published) = p.published.as_ref() else {
        return Ok(Vec::new());
    };
    let priority = spec.mode() == "priority";
    // What new connections get: a constant mark, or a hash over marks.
    let (fields, buckets) = if p.ecmp() {
        if priority {
            // Priority mode carries weighted-ecmp as a multipath route.
            return Ok(Vec::new());
        }
        let mut weighted = Vec::new();
        for (i, w) in published.member_weights() {
            let mark = spec.candidates.get(i).map_or(0, |c| {
                if c.targets.is_empty() {
                    mark_of(c.mark)
                } else {
                    0
                }
            });
            if mark == 0 {
                return Err(format!(
                    "{} weighted-ecmp member {} has no mark: mode {} carries each member's share of new connections by its mark",
                    p.id,
                    p.name(i),
                    if spec.mode().is_empty() {
                        "mark"
                    } else {
                        spec.mode()
                    }
                ));
            }
            weighted.push((mark, w));
        }
        if weighted.is_empty() {
            return Err(format!("{} weighted-ecmp published no member", p.id));
        }
        let mut fields = hash_fields(spec);
        if fields.is_empty() {
            fields = vec![IpField::Saddr, IpField::Daddr];
        }
        let buckets = weighted_buckets(&weighted).map_err(|e| format!("{} {e}", p.id))?;
        (Some(fields), buckets)
    } else {
        let Some(sel) = published.selected else {
            return Ok(Vec::new());
        };
        let Some(c) = spec.candidates.get(sel) else {
            return Ok(Vec::new());
        };
        if c.targets.is_empty() {
            let mark = mark_of(c.mark);
            if priority || mark == 0 {
                // Priority mode steers a plain candidate in
                // routerd_default_route; without a mark, main routing.
                return Ok(Vec::new());
            }
            (None, vec![mark])
        } else {
            let in_use: Vec<u32> = c
                .targets
                .iter()
                .enumerate()
                .filter(|(j, _)| published.target_in_use(sel, *j))
                .map(|(_, t)| mark_of(t.mark))
                .filter(|m| *m != 0)
                .collect();
            if in_use.is_empty() {
                return Err(format!(
                    "{} selected {} but none of its targets is in use",
                    p.id,
                    p.name(sel)
                ));
            }
            let fields = hash_fields(spec);
            if fields.is_empty() {
                return Err(format!("{} requires at least one hash field", p.id));
            }
            (Some(fields), in_use)
        }
    };
    let matches = build_matches(
        ctx,
        &MatchSpec {
            family: p.family,
            sources: &spec.source_cidrs,
            destinations: &spec.destination_cidrs,
            destination_sets: &spec.destination_set_refs,
            exclude: &spec.exclude_destination_cidrs,
            exclude_sets: &spec.exclude_destination_set_refs,
        },
        sets,
    )
    .map_err(|e| format!("{} {e}", p.id))?;
    let mut rules = Vec::new();
    let sticky = published.ready_marks(spec);
    let pinned = pins_connections(spec) && !sticky.is_empty();
    if pinned {
        rules.push(restore_rule(&sticky));
    }
    match fields {
        None if !pinned => {
            let mark = buckets.first().copied().unwrap_or(0);
            for m in &matches {
                rules.push(with(m, [Expr::SetMark(MarkSource::Const(mark))]));
            }
        }
        None => {
            let mark = buckets.first().copied().unwrap_or(0);
            for m in &matches {
                rules.extend(sticky_marks(
                    m,
                    &sticky,
                    MarkSource::Const(mark),
                    keeps_dead_marks(spec),
                    true,
                ));
            }
        }
        Some(fields) => {
            for m in &matches {
                rules.extend(sticky_marks(
                    m,
                    &sticky,
                    MarkSource::JhashMap {
                        family: p.family,
                        fields: fields.clone(),
                        marks: buckets.clone(),
                    },
                    keeps_dead_marks(spec),
                    pinned,
                ));
            }
        }
    }
    Ok(rules)
}

/// Rules of one applied priority-mode policy in `routerd_default_route`.
///
/// A connection whose ct mark is a path some other policy keeps
/// (`ready_anywhere`) belongs to that policy: re-marking it here, before
/// `routerd_policy` runs, would move a pinned connection (a destination that
/// left a set) off its path.
fn default_route_rules(
    ctx: &Ctx<'_>,
    p: &PolicyView<'_>,
    ready_anywhere: &BTreeSet<u32>,
) -> Result<Vec<NftRule>, String> {
    let spec = p.spec;
    let Some(published) = p.published.as_ref() else {
        return Ok(Vec::new());
    };
    let mut healthy = published.ready_marks(spec);
    let (active_mark, active_targets) = if p.ecmp() {
        let mark = mark_of(spec.multipath_mark);
        if mark == 0 {
            return Err(format!(
                "{} weighted-ecmp in mode priority needs multipathTable, multipathPriority and multipathMark",
                p.id
            ));
        }
        if !healthy.contains(&mark) {
            healthy.push(mark);
            healthy.sort_unstable();
        }
        (mark, false)
    } else {
        let Some(active) = published.selected.and_then(|i| spec.candidates.get(i)) else {
            return Ok(Vec::new());
        };
        (mark_of(active.mark), !active.targets.is_empty())
    };
    let mut sets = BTreeMap::new();
    let matches = build_matches(
        ctx,
        &MatchSpec {
            family: p.family,
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
            let kept: Vec<u32> = healthy
                .iter()
                .chain(ready_anywhere)
                .copied()
                .collect::<BTreeSet<u32>>()
                .into_iter()
                .collect();
            let mut stale = vec![
                Expr::CtMark {
                    op: CmpOp::Ne,
                    mark: 0,
                },
                Expr::CtMarkIn {
                    op: CmpOp::Ne,
                    marks: kept,
                },
                Expr::SetMark(MarkSource::Const(remark)),
            ];
            // See `sticky_marks`: with deadPath a stale connection keeps its
            // ct mark until the daemon flushes it.
            if !keeps_dead_marks(spec) {
                stale.push(Expr::SetCtMarkFromMark);
            }
            rules.push(with(m, stale));
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
    Ok(rules)
}

/// `weighted-ecmp` in mode priority: the members' weighted multipath
/// default route in `multipathTable`, and the rule that sends connections
/// marked `multipathMark` there.
fn multipath(p: &PolicyView<'_>, out: &mut Rendered) {
    let spec = p.spec;
    let (table, priority, mark) = (
        spec.multipath_table.map_or(0, u32_of),
        spec.multipath_priority.map_or(0, u32_of),
        mark_of(spec.multipath_mark),
    );
    let problem = |message: String| RenderProblem::new(p.id.clone(), message);
    if table == 0 || priority == 0 || mark == 0 {
        out.problems.push(problem(format!(
            "{} weighted-ecmp in mode priority needs multipathTable, multipathPriority and multipathMark",
            p.id
        )));
        return;
    }
    let members = p.published.as_ref().map_or(&[][..], |x| x.members);
    let mut hops = match nexthops(members, p.family) {
        Ok(h) => h,
        Err(e) => {
            out.desired.retained.insert(p.id.clone());
            out.problems
                .push(problem(format!("{} multipath members: {e}", p.id)));
            return;
        }
    };
    let mut route = Route::new(
        table,
        p.family.any(),
        DEFAULT_TABLE_METRIC,
        RouteKind::Unicast,
    );
    if hops.len() == 1 {
        let nh = hops.remove(0);
        route.gateway = nh.gateway;
        route.device = Some(nh.device);
    } else {
        route.nexthops = hops;
    }
    route.owner = p.id.clone();
    out.desired.routes.push(route);
    out.desired
        .rules
        .push(Rule::new(priority, mark, table, p.id.clone()).in_family(p.family));
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

/// Every ready path with a table gets its table and rule (new flows may
/// reach it, existing connections keep it); a path that exists but whose
/// check does not pass yet gets them when its probe needs them.
fn tables_and_rules(ctx: &Ctx<'_>, p: &PolicyView<'_>, out: &mut Rendered) {
    let Some(published) = p.published.as_ref() else {
        return;
    };
    let mut paths = Vec::new();
    for (i, c) in p.spec.candidates.iter().enumerate() {
        if !c.is_enabled() {
            continue;
        }
        if c.targets.is_empty() {
            let mark = mark_of(c.mark);
            let wanted = published.ready(i)
                || (published.path_ready(i) && bootstraps(ctx, c.health_check.as_deref(), mark));
            if mark == 0 || !wanted {
                continue;
            }
            paths.push(candidate_path(ctx, p, c, i, mark));
        } else {
            for (j, t) in c.targets.iter().enumerate() {
                let mark = mark_of(t.mark);
                let wanted = published.target_ready(i, j)
                    || (published.target_path_ready(i, j)
                        && bootstraps(ctx, t.health_check.as_deref(), mark));
                if !wanted {
                    continue;
                }
                let name = published
                    .target(i, j)
                    .and_then(|e| e.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| t.name.clone().filter(|s| !s.is_empty()))
                    .unwrap_or_else(|| format!("{}-{j}", p.res.name()));
                paths.push(PathSpec {
                    name,
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
        install_path(ctx, p, path, out);
    }
}

fn candidate_path<'a>(
    ctx: &Ctx<'_>,
    p: &PolicyView<'_>,
    c: &'a EgressCandidate,
    i: usize,
    mark: u32,
) -> PathSpec<'a> {
    PathSpec {
        name: p.name(i),
        interface: c.effective_interface(),
        device_from: c.device_from.as_ref().and_then(|s| ctx.status_value(s)),
        gateway: c.gateway.as_deref(),
        gateway_from: c.gateway_from.as_ref().and_then(|s| ctx.status_value(s)),
        gateway_source: c.gateway_source(),
        table: c.route_table(),
        priority: c.priority.unwrap_or(0),
        mark,
        metric: c.metric(),
    }
}

fn install_path(ctx: &Ctx<'_>, p: &PolicyView<'_>, path: PathSpec<'_>, out: &mut Rendered) {
    let (table, priority) = (u32_of(path.table), u32_of(path.priority));
    if table == 0 || priority == 0 || path.mark == 0 {
        return;
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
        return;
    };
    let gateway = match path.gateway_source {
        "none" | "" => Ok(None),
        "static" => match path.gateway.map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) => parse_addr(g, p.family).map(Some),
            None => path
                .gateway_from
                .as_deref()
                .map(|g| parse_addr(g, p.family).map(Some))
                .unwrap_or_else(|| Err(format!("static gateway is empty for {device}"))),
        },
        "dhcpv4" | "dhcpv6" => match path.gateway_from.as_deref().or(path.gateway) {
            Some(g) => parse_addr(g, p.family).map(Some),
            None => Err(format!("no gateway found for {device}")),
        },
        other => Err(format!("unsupported gatewaySource \"{other}\"")),
    };
    let gateway = match gateway {
        Ok(g) => g,
        Err(message) => {
            out.problems.push(RenderProblem::new(p.id.clone(), message));
            return;
        }
    };
    let metric = match u32_of(path.metric) {
        0 => DEFAULT_TABLE_METRIC,
        m => m,
    };
    let mut route = Route::new(table, p.family.any(), metric, RouteKind::Unicast);
    route.device = Some(device);
    route.gateway = gateway;
    route.owner = p.id.clone();
    out.desired.routes.push(route);
    out.desired
        .rules
        .push(Rule::new(priority, path.mark, table, p.id.clone()).in_family(p.family));
}
