//! Which connections a failover deletes (`spec.flushOnFailover: deadPath`).
//!
//! A path that dies while it carries flows leaves its connections bound to
//! a NAT address and route that no longer work; they hang until they time
//! out (a busy UDP flow never does). With `deadPath`, routerd deletes the
//! conntrack entries whose ct mark is the dead path's, and no others.
//!
//! [`dead_paths`] decides which, from the previous and the new policy
//! status, whose per-candidate and per-target `ready` flags are the
//! verdicts of the one availability rule ([`crate::readiness::assess`]).
//! A path is dead when, and only when:
//!
//! * it carried new flows at the previous evaluation: the selected
//!   candidate (without targets), a ready target of the selected candidate,
//!   or a weighted-ecmp member;
//! * it was ready then and is not ready now;
//! * it still exists, enabled, under the same name: an operator edit that
//!   removes or disables a candidate (or a HealthCheck reported `Disabled`)
//!   is not a failure. The path may be healthy and its connections may
//!   finish on their own, and its mark may belong to another candidate in
//!   the new configuration, so deleting by that mark could cut flows the
//!   operator never touched;
//! * its mark is non-zero and no path that is still ready uses the same
//!   mark (the renderer keeps connections of ready marks; deleting them
//!   would cut healthy flows).
//!
//! A preemptive switch back to a recovered better candidate therefore never
//! flushes: the path it leaves is still ready, and its connections stay on
//! it (the renderer keeps ready marks sticky).

use std::collections::BTreeSet;

use routerd_model::Status;
use routerd_model::spec::{EgressRoutePolicySpec, FlushOnFailover};
use serde_json::Value;

/// A path whose connections are to be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadPath {
    /// The candidate's status name.
    pub candidate: String,
    /// The target's status name, when the path is a target.
    pub target: Option<String>,
    /// The ct mark its connections carry.
    pub mark: u32,
}

fn mark_of(v: Option<i64>) -> u32 {
    v.and_then(|m| u32::try_from(m).ok()).unwrap_or(0)
}

fn flag(v: Option<&Value>, key: &str) -> bool {
    v.and_then(|e| e.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn entries(st: &Status) -> &[Value] {
    st.get("candidates")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn entry<'a>(st: &'a Status, name: &str) -> Option<&'a Value> {
    entries(st)
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

fn target(e: Option<&Value>, j: usize) -> Option<&Value> {
    e?.get("targetStates")?.as_array()?.get(j)
}

/// The candidates that carried new flows according to `st`.
fn carrying(st: &Status) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    if st.get("phase").and_then(Value::as_str) != Some("Applied") {
        return out;
    }
    if let Some(sel) = st.get("selectedCandidate").and_then(Value::as_str) {
        out.insert(sel);
    }
    for m in st
        .get("members")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        if let Some(n) = m.get("name").and_then(Value::as_str) {
            out.insert(n);
        }
    }
    out.remove("");
    out
}

/// The paths whose connections `flushOnFailover: deadPath` deletes after an
/// evaluation moved `previous` to `next` (see the module comment). Empty
/// when the policy does not ask for it, or nothing died.
pub fn dead_paths(
    spec: &EgressRoutePolicySpec,
    previous: Option<&Status>,
    next: &Status,
) -> Vec<DeadPath> {
    if spec.flush_on_failover() != FlushOnFailover::DeadPath {
        return Vec::new();
    }
    let Some(prev) = previous else {
        return Vec::new();
    };
    let now = entries(next);
    if now.len() != spec.candidates.len() {
        // The status does not describe this spec (yet): judge nothing.
        return Vec::new();
    }
    let mut dead = Vec::new();
    for name in carrying(prev) {
        // Removed or renamed by an edit: not a failure.
        let Some(i) = now
            .iter()
            .position(|e| e.get("name").and_then(Value::as_str) == Some(name))
        else {
            continue;
        };
        let (Some(c), Some(after)) = (spec.candidates.get(i), now.get(i)) else {
            continue;
        };
        if !c.is_enabled() || flag(Some(after), "disabled") {
            continue;
        }
        let before = entry(prev, name);
        if c.targets.is_empty() {
            if flag(before, "ready") && !flag(Some(after), "ready") {
                dead.push(DeadPath {
                    candidate: name.to_string(),
                    target: None,
                    mark: mark_of(c.mark),
                });
            }
            continue;
        }
        for (j, t) in c.targets.iter().enumerate() {
            let was = target(before, j);
            let is = target(Some(after), j);
            if flag(was, "ready") && !flag(is, "ready") {
                let tname = is
                    .and_then(|e| e.get("name"))
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("{name}-{j}"), str::to_string);
                dead.push(DeadPath {
                    candidate: name.to_string(),
                    target: Some(tname),
                    mark: mark_of(t.mark),
                });
            }
        }
    }
    let live = ready_marks(spec, next);
    let mut seen = BTreeSet::new();
    dead.retain(|d| d.mark != 0 && !live.contains(&d.mark) && seen.insert(d.mark));
    dead
}

/// The marks of every path `st` reports ready: their connections are kept
/// whatever else died.
pub fn ready_marks(spec: &EgressRoutePolicySpec, st: &Status) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let now = entries(st);
    for (c, e) in spec.candidates.iter().zip(now) {
        if c.targets.is_empty() {
            if flag(Some(e), "ready") {
                out.insert(mark_of(c.mark));
            }
        } else {
            for (j, t) in c.targets.iter().enumerate() {
                if flag(target(Some(e), j), "ready") {
                    out.insert(mark_of(t.mark));
                }
            }
        }
    }
    out.remove(&0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerd_model::spec::{EgressCandidate, EgressTarget};
    use serde_json::json;

    fn cand(name: &str, mark: i64) -> EgressCandidate {
        EgressCandidate {
            name: Some(name.into()),
            mark: Some(mark),
            ..EgressCandidate::default()
        }
    }

    fn spec(flush: Option<&str>, candidates: Vec<EgressCandidate>) -> EgressRoutePolicySpec {
        EgressRoutePolicySpec {
            mode: Some("priority".into()),
            flush_on_failover: flush.map(str::to_string),
            candidates,
            ..EgressRoutePolicySpec::default()
        }
    }

    fn two() -> EgressRoutePolicySpec {
        spec(
            Some("deadPath"),
            vec![cand("primary", 0x10), cand("backup", 0x20)],
        )
    }

    /// A policy status: `selected` and each candidate's readiness.
    fn status(selected: Option<&str>, ready: &[(&str, bool)]) -> Status {
        let mut v = json!({
            "phase": if selected.is_some() { "Applied" } else { "Pending" },
            "candidates": ready.iter().map(|(n, r)| json!({"name": n, "ready": r})).collect::<Vec<_>>(),
        });
        if let Some(s) = selected {
            v["selectedCandidate"] = json!(s);
        }
        match v {
            Value::Object(m) => m,
            _ => Status::new(),
        }
    }

    #[test]
    fn selected_candidate_fails_flushes_its_mark() {
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let next = status(Some("backup"), &[("primary", false), ("backup", true)]);
        assert_eq!(
            dead_paths(&two(), Some(&prev), &next),
            [DeadPath {
                candidate: "primary".into(),
                target: None,
                mark: 0x10
            }]
        );
    }

    #[test]
    fn last_candidate_failing_still_flushes() {
        // No alternative: the connections are dead either way.
        let prev = status(Some("primary"), &[("primary", true), ("backup", false)]);
        let next = status(None, &[("primary", false), ("backup", false)]);
        assert_eq!(dead_paths(&two(), Some(&prev), &next).len(), 1);
    }

    #[test]
    fn preemptive_switch_to_recovered_primary_does_not_flush() {
        let prev = status(Some("backup"), &[("primary", true), ("backup", true)]);
        let next = status(Some("primary"), &[("primary", true), ("backup", true)]);
        assert!(dead_paths(&two(), Some(&prev), &next).is_empty());
    }

    #[test]
    fn policy_without_the_field_never_flushes() {
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let next = status(Some("backup"), &[("primary", false), ("backup", true)]);
        for flush in [None, Some("none")] {
            let s = spec(flush, vec![cand("primary", 0x10), cand("backup", 0x20)]);
            assert!(dead_paths(&s, Some(&prev), &next).is_empty());
        }
    }

    #[test]
    fn candidate_removed_by_edit_does_not_flush() {
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let next = status(Some("backup"), &[("backup", true)]);
        let s = spec(Some("deadPath"), vec![cand("backup", 0x20)]);
        assert!(dead_paths(&s, Some(&prev), &next).is_empty());
    }

    #[test]
    fn candidate_disabled_by_edit_does_not_flush() {
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let mut next = status(Some("backup"), &[("primary", false), ("backup", true)]);
        let mut s = two();
        s.candidates[0].enabled = Some(false);
        assert!(dead_paths(&s, Some(&prev), &next).is_empty());
        // Disabled through its source or HealthCheck: the status says so.
        let s = two();
        if let Some(Value::Array(cs)) = next.get_mut("candidates") {
            cs[0]["disabled"] = json!(true);
        }
        assert!(dead_paths(&s, Some(&prev), &next).is_empty());
    }

    #[test]
    fn non_selected_candidate_failing_does_not_flush() {
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let next = status(Some("primary"), &[("primary", true), ("backup", false)]);
        assert!(dead_paths(&two(), Some(&prev), &next).is_empty());
    }

    #[test]
    fn no_previous_status_or_no_change_does_not_flush() {
        let next = status(Some("backup"), &[("primary", false), ("backup", true)]);
        assert!(dead_paths(&two(), None, &next).is_empty());
        assert!(dead_paths(&two(), Some(&next), &next).is_empty());
    }

    #[test]
    fn a_mark_still_used_by_a_ready_path_is_kept() {
        let s = spec(
            Some("deadPath"),
            vec![cand("primary", 0x10), cand("backup", 0x10)],
        );
        let prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        let next = status(Some("backup"), &[("primary", false), ("backup", true)]);
        assert!(dead_paths(&s, Some(&prev), &next).is_empty());
    }

    fn targets_status(selected: &str, targets: &[(&str, bool)]) -> Status {
        let mut st = status(Some(selected), &[("multi", true), ("backup", true)]);
        if let Some(Value::Array(cs)) = st.get_mut("candidates") {
            cs[0]["targetStates"] = json!(
                targets
                    .iter()
                    .map(|(n, r)| json!({"name": n, "ready": r, "inUse": r}))
                    .collect::<Vec<_>>()
            );
            cs[0]["ready"] = json!(targets.iter().any(|t| t.1));
        }
        st
    }

    #[test]
    fn a_dead_target_of_the_selected_candidate_is_flushed_alone() {
        let mut multi = cand("multi", 0);
        multi.mark = None;
        multi.targets = vec![
            EgressTarget {
                name: Some("t1".into()),
                mark: Some(0x101),
                ..EgressTarget::default()
            },
            EgressTarget {
                name: Some("t2".into()),
                mark: Some(0x102),
                ..EgressTarget::default()
            },
        ];
        let mut s = spec(Some("deadPath"), vec![multi, cand("backup", 0x20)]);
        s.mode = Some("hash".into());
        let prev = targets_status("multi", &[("t1", true), ("t2", true)]);
        let next = targets_status("multi", &[("t1", true), ("t2", false)]);
        assert_eq!(
            dead_paths(&s, Some(&prev), &next),
            [DeadPath {
                candidate: "multi".into(),
                target: Some("t2".into()),
                mark: 0x102
            }]
        );
    }

    #[test]
    fn a_failed_weighted_ecmp_member_is_flushed() {
        let mut s = two();
        s.mode = Some("mark".into());
        s.selection = Some("weighted-ecmp".into());
        let mut prev = status(Some("primary"), &[("primary", true), ("backup", true)]);
        prev.insert(
            "members".into(),
            json!([{"name": "primary"}, {"name": "backup"}]),
        );
        let mut next = status(Some("primary"), &[("primary", true), ("backup", false)]);
        next.insert("members".into(), json!([{"name": "primary"}]));
        assert_eq!(
            dead_paths(&s, Some(&prev), &next),
            [DeadPath {
                candidate: "backup".into(),
                target: None,
                mark: 0x20
            }]
        );
    }
}
