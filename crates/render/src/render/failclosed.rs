//! `whenNoCandidate: reject | drop` → `ip routerd_failclosed_<policy>`.
//!
//! While selection has no ready candidate for a policy (its status is not
//! `Applied`: `Pending` with `NoReadyCandidates`, or no status yet on the
//! daemon's first step), nothing steers the policy's sources, and their
//! forwarded traffic would leave through the main table. A policy that
//! opts in gets its own table with one forward-hook filter chain that
//! refuses exactly what its marking matches (the same match builder as
//! `routerd_policy`): `reject` answers TCP with a reset and everything else
//! with ICMP admin-prohibited, `drop` discards. Locally originated traffic
//! (probes included) never crosses the forward hook, so health checks keep
//! working while the policy is closed.
//!
//! One table per policy, so closing one policy is a table creation and
//! opening one is a table deletion: the diff puts creations before every
//! other operation and deletions after every other one, so a policy is
//! closed before anything else happens at start-up and opens only after
//! its candidate's routes, rules and marks are in the kernel; the reconcile
//! also keeps the filter when the kernel refused any of the policy's
//! operations (ADR 0010).

use std::collections::BTreeMap;

use routerd_model::{Kind, Status};
use serde_json::Value;

use super::{Ctx, MatchSpec, RenderProblem, Rendered, build_matches};
use crate::ir::{
    ChainType, Expr, Family, Hook, L4Proto, NftChain, NftFamily, NftRule, NftSet, NftTable,
    Priority, RejectWith,
};

/// Name prefix of the fail-closed tables (the diff orders them by it).
pub const FAIL_CLOSED_TABLE_PREFIX: &str = "routerd_failclosed_";

/// Status key that says a policy is failing closed, and how.
pub const FAIL_CLOSED_KEY: &str = "failClosed";

/// Just before the common `filter` priority, so the refusal is decided
/// before a host firewall's forward chain sees the packet (an `accept`
/// there would not override a later drop anyway, but this keeps counters
/// and logs of the host's chain free of refused traffic).
const FORWARD_PRIORITY: i32 = -10;

/// The table of policy `name`: non-alphanumerics become `_`, as nft
/// identifiers allow (`Egress.Main-1` → `routerd_failclosed_egress_main_1`).
pub fn table_name(name: &str) -> String {
    format!("{FAIL_CLOSED_TABLE_PREFIX}{}", super::nft_identifier(name))
}

/// Whether selection published a selection for the policy; without one
/// no candidate's path is (or will be) programmed by this render.
fn has_selection(status: Option<&Status>) -> bool {
    status
        .and_then(|st| st.get("phase"))
        .and_then(Value::as_str)
        == Some("Applied")
}

pub(super) fn render_fail_closed(ctx: &Ctx<'_>, out: &mut Rendered) {
    let mut names: BTreeMap<(NftFamily, String), String> = BTreeMap::new();
    for res in ctx.of_kind(Kind::EgressRoutePolicy) {
        let Some(spec) = res.as_egress_policy() else {
            continue;
        };
        // Validation refuses the field where it cannot be carried; a
        // policy that got here anyway (an unvalidated snapshot) stays open.
        if !spec.fails_closed() || spec.host_traffic() || spec.mode().is_empty() {
            continue;
        }
        if has_selection(ctx.status_of(Kind::EgressRoutePolicy, res.name())) {
            continue;
        }
        let Some(family) = Family::parse(spec.family()) else {
            continue;
        };
        let nft_family = family.nft_family();
        let id = res.id().to_string();
        let how = spec.when_no_candidate();
        let name = table_name(res.name());
        if let Some(other) = names.get(&(nft_family, name.clone())) {
            out.problems.push(RenderProblem {
                owner: id.clone(),
                reason: "Conflict".into(),
                message: format!(
                    "{id} whenNoCandidate {how}: table {} {name} is also wanted by {other}; rename one policy",
                    nft_family.as_str()
                ),
            });
            continue;
        }
        let mut sets: BTreeMap<String, NftSet> = BTreeMap::new();
        let matches = build_matches(
            ctx,
            &MatchSpec {
                family,
                sources: &spec.source_cidrs,
                destinations: &spec.destination_cidrs,
                destination_sets: &spec.destination_set_refs,
                exclude: &spec.exclude_destination_cidrs,
                exclude_sets: &spec.exclude_destination_set_refs,
            },
            &mut sets,
        );
        let matches = match matches {
            Ok(m) => m,
            Err(e) => {
                // Keep whatever filter the kernel holds for it.
                out.desired.retained.insert(id.clone());
                out.problems.push(RenderProblem::new(
                    id.clone(),
                    format!("{id} whenNoCandidate {how}: {e}"),
                ));
                continue;
            }
        };
        let mut rules = Vec::new();
        for m in &matches {
            if how == "reject" {
                rules.push(with(
                    m,
                    [
                        Expr::L4Proto(vec![L4Proto::Tcp]),
                        Expr::Reject(RejectWith::TcpReset),
                    ],
                ));
                let icmp = match family {
                    Family::V4 => RejectWith::IcmpAdminProhibited,
                    Family::V6 => RejectWith::Icmpv6AdminProhibited,
                };
                rules.push(with(m, [Expr::Reject(icmp)]));
            } else {
                rules.push(with(m, [Expr::Drop]));
            }
        }
        let mut table = NftTable::new(nft_family, name.clone());
        table.owners.insert(id.clone());
        table.sets = sets.into_values().collect();
        table.chains.push(NftChain {
            name: "forward".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Forward,
            priority: Priority::Num(FORWARD_PRIORITY),
            rules,
        });
        out.desired.nft.push(table);
        out.fail_closed.insert(id.clone(), how.to_string());
        names.insert((nft_family, name), id);
    }
}

fn with(m: &[Expr], tail: impl IntoIterator<Item = Expr>) -> NftRule {
    let mut exprs = m.to_vec();
    exprs.extend(tail);
    NftRule { exprs }
}

/// `status` as reported while the policy fails closed with `how`: the
/// `failClosed` key, and a message saying why traffic is refused when
/// selection left none.
pub fn overlay(status: &Status, how: &str) -> Status {
    let mut out = status.clone();
    out.insert(FAIL_CLOSED_KEY.into(), Value::String(how.to_string()));
    if !out.contains_key("message") {
        out.insert(
            "message".into(),
            Value::String(format!(
                "no candidate is ready: forwarded traffic of the policy's sources is {} (whenNoCandidate: {how}) instead of leaving through the main table",
                if how == "drop" { "dropped" } else { "rejected" }
            )),
        );
    }
    out
}

/// Takes the overlay off a status read back from the store.
pub fn strip(mut status: Status) -> Status {
    if status.remove(FAIL_CLOSED_KEY).is_some()
        && status
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("(whenNoCandidate: "))
    {
        status.remove("message");
    }
    status
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn table_names_are_nft_identifiers() {
        assert_eq!(
            table_name("Egress.Main-1"),
            "routerd_failclosed_egress_main_1"
        );
    }

    #[test]
    fn overlay_says_why_and_strip_takes_it_off() {
        let mut st = Status::new();
        st.insert("phase".into(), json!("Pending"));
        st.insert("reason".into(), json!("NoReadyCandidates"));
        let shown = overlay(&st, "reject");
        assert_eq!(shown[FAIL_CLOSED_KEY], "reject");
        assert!(
            shown["message"]
                .as_str()
                .unwrap()
                .contains("rejected (whenNoCandidate: reject)")
        );
        assert_eq!(strip(shown), st);
        // A message selection wrote stays.
        st.insert("message".into(), json!("selection says"));
        let shown = overlay(&st, "drop");
        assert_eq!(shown["message"], "selection says");
        assert_eq!(strip(shown), st);
    }
}
