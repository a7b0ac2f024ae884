//! The readiness rule, the same in every mode.
//!
//! routerd has two: the advisory controller ignores `interface` and reads
//! only top-level HealthCheck keys; the policy-route controller resolves
//! `interface` and prefers `status.observed` (§8.1.5, §8.1.8). Here a
//! candidate is ready when, and only when:
//!
//! 1. it is not disabled (`enabled: false`, a disabled PPPoESession source,
//!    or a HealthCheck that is disabled or reports `Disabled`, `Standby`,
//!    `NotApplicable`);
//! 2. its HealthCheck, if any, is `Healthy`, or `Failing` with
//!    `0 < consecutiveFailed < unhealthyThreshold` (grace), and its
//!    `lastCheckedAt` is within `max(2m, 3 x interval + timeout)` of `now`;
//! 3. every `dependsOn` holds;
//! 4. its `source`, if any, is up (`Applied`, `Bound`, `Healthy`,
//!    `Installed`, `Ready`, `Running`, `Up`), or a passing HealthCheck
//!    vouches for it (routerd's "a Healthy health check plus a resolved
//!    device makes a candidate ready even when its source has no status");
//! 5. the links its path runs over are up: a DSLiteTunnel (named by
//!    `interface`, `deviceFrom` or `source`) has phase exactly `Up`; an
//!    Interface or PPPoESession whose status says it is not `Up` (no
//!    carrier, gone) blocks at once, without waiting for a probe;
//! 6. its output resolves: a device from `deviceFrom`, `device` or the alias
//!    of `interface`, and a gateway when `gatewayFrom` is set and not
//!    `optional`. A candidate with `targets` needs one ready target instead,
//!    and each target is judged by the same rule (its device, its link, its
//!    HealthCheck) on top of its candidate's.
//!
//! [`assess`] is the one place this is decided. Selection publishes the
//! verdicts in the policy status (`candidates[].ready`, `pathReady` and
//! `targetStates[]`), and the renderer reads those instead of judging
//! health or links itself, so the two can never disagree.

use chrono::{DateTime, Utc};
use routerd_model::spec::EgressCandidate;

use crate::decision::Reason;
use crate::observe::{
    CandidateObservation, HealthObservation, LinkObservation, source_phase_ready,
};
use crate::rank::CandidateState;
use crate::time::{add, format_rfc3339_nano};

/// A candidate with its readiness worked out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// The resolved candidate.
    pub state: CandidateState,
    /// Why it is not ready (empty when ready).
    pub reasons: Vec<Reason>,
    /// Facts that did not block it.
    pub notes: Vec<Reason>,
    /// Number of targets, and how many of them are ready.
    pub targets: usize,
    /// Ready targets.
    pub ready_targets: usize,
    /// Effective interface (`interface`, else `device`).
    pub interface: String,
    /// Everything but the health checks holds (enabled, `dependsOn`, links,
    /// output): the path exists, so a probe marked for it can run through
    /// it. The renderer installs the table of such a path for its own probe
    /// (spec §4.4 "bootstrap") even while it is not ready.
    pub path_ready: bool,
    /// One entry per target, in spec order.
    pub target_states: Vec<TargetAssessment>,
}

/// One target of a candidate with its readiness worked out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetAssessment {
    /// Status name: `name`, else `<candidate name>-<index>`.
    pub name: String,
    /// Usable for new flows: its candidate's own conditions hold and its
    /// device, link and HealthCheck pass.
    pub ready: bool,
    /// Like [`Assessment::path_ready`], for the target.
    pub path_ready: bool,
    /// Why it is not ready, besides its candidate's reasons.
    pub reasons: Vec<Reason>,
}

/// Whether a reason only says that a health check (or a source a health
/// check could vouch for) does not pass yet: the path itself exists.
fn health_only(code: &str) -> bool {
    matches!(
        code,
        "HealthNoStatus" | "HealthNotPassing" | "HealthStale" | "SourceNotReady"
    )
}

fn link_reason(l: &LinkObservation) -> Reason {
    let kind_name = &l.reference;
    let state = if !l.observed {
        "has no status".to_string()
    } else if l.reason.is_empty() {
        format!("is {}", l.phase)
    } else {
        format!("is {} ({})", l.phase, l.reason)
    };
    if l.tunnel {
        Reason::new(
            "TunnelDown",
            format!("{kind_name} {state}; a DS-Lite tunnel must be Up"),
        )
    } else {
        Reason::new("LinkDown", format!("{kind_name} {state}"))
    }
}

/// How candidates without `name` are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Advisory mode: `name`, else `source`, else `candidate-<index>`.
    Advisory,
    /// Policy-route modes: `name`, else the effective interface, else the
    /// advisory default.
    PolicyRoute,
}

/// The status name of candidate `index`.
pub fn candidate_name(c: &EgressCandidate, index: usize, naming: Naming) -> String {
    match naming {
        Naming::Advisory => c.status_name(index),
        Naming::PolicyRoute => match c.name.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(n) => n.to_string(),
            None => c
                .effective_interface()
                .map_or_else(|| c.status_name(index), str::to_string),
        },
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// Works out whether candidate `index` is ready at `now`.
pub fn assess(
    c: &EgressCandidate,
    index: usize,
    obs: &CandidateObservation,
    naming: Naming,
    now: DateTime<Utc>,
) -> Assessment {
    let mut a = Assessment::default();
    assess_into(&mut a, c, index, obs, naming, now);
    a
}

/// A candidate's status-entry values before [`reassess`], and which of its
/// strings it changed: enough to patch the entry without keeping a copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Before {
    /// `name`, `source`, `device`, `gateway`, `gatewaySource` changed.
    pub(crate) moved: [bool; 5],
    pub(crate) route_table: i64,
    pub(crate) metric: i64,
    pub(crate) weight: i64,
    pub(crate) priority: i64,
    pub(crate) targets: usize,
    pub(crate) ready: bool,
    pub(crate) path_ready: bool,
    pub(crate) disabled: bool,
}

/// Re-assesses `a` in place, reusing its buffers: the incremental path
/// re-assesses a candidate on every health change, and allocating (and
/// moving) a fresh assessment was a large part of that.
pub(crate) fn reassess(
    a: &mut Assessment,
    c: &EgressCandidate,
    index: usize,
    obs: &CandidateObservation,
    naming: Naming,
    now: DateTime<Utc>,
) -> Before {
    let s = &a.state;
    let mut before = Before {
        moved: [false; 5],
        route_table: s.route_table,
        metric: s.metric,
        weight: s.weight,
        priority: s.priority,
        targets: a.targets,
        ready: s.ready,
        path_ready: a.path_ready,
        disabled: s.disabled,
    };
    before.moved = assess_into(a, c, index, obs, naming, now);
    before
}

/// Replaces `s` with `v`, keeping its buffer; returns whether it changed.
fn set(s: &mut String, v: &str) -> bool {
    let moved = s != v;
    if moved {
        s.clear();
        s.push_str(v);
    }
    moved
}

/// Writes the status name of candidate `index` (see [`candidate_name`])
/// without allocating when `buf` is large enough.
fn write_name(buf: &mut String, c: &EgressCandidate, index: usize, naming: Naming) -> bool {
    let by_name = non_empty(c.name.as_deref());
    let named = match naming {
        Naming::Advisory => by_name.or(non_empty(c.source.as_deref())),
        Naming::PolicyRoute => by_name
            .or(c.effective_interface())
            .or(non_empty(c.source.as_deref())),
    };
    match named {
        Some(n) => set(buf, n),
        None => {
            use std::fmt::Write;
            let old = std::mem::take(buf);
            let _ = write!(buf, "candidate-{index}");
            *buf != old
        }
    }
}

/// [`assess`] into `a`, reusing its strings and vectors; returns which of
/// `name`, `source`, `device`, `gateway`, `gatewaySource` changed.
fn assess_into(
    a: &mut Assessment,
    c: &EgressCandidate,
    index: usize,
    obs: &CandidateObservation,
    naming: Naming,
    now: DateTime<Utc>,
) -> [bool; 5] {
    let device = non_empty(obs.device_from.as_deref())
        .or(non_empty(c.device.as_deref()))
        .or(non_empty(obs.interface_device.as_deref()))
        .unwrap_or("");
    let gateway = non_empty(obs.gateway_from.as_deref())
        .or(non_empty(c.gateway.as_deref()))
        .unwrap_or("");
    let moved = {
        let s = &mut a.state;
        let moved = [
            write_name(&mut s.name, c, index, naming),
            set(&mut s.source, c.source.as_deref().unwrap_or("").trim()),
            set(&mut s.device, device),
            set(&mut s.gateway, gateway),
            set(&mut s.gateway_source, c.gateway_source()),
        ];
        s.route_table = c.route_table();
        s.metric = c.metric();
        s.weight = c.weight.unwrap_or(0);
        s.priority = c.priority.unwrap_or(0);
        s.index = index;
        s.ready = false;
        s.disabled = false;
        moved
    };
    a.reasons.clear();
    a.notes.clear();
    a.targets = c.targets.len();
    a.ready_targets = 0;
    a.path_ready = false;
    set(&mut a.interface, c.effective_interface().unwrap_or(""));
    a.target_states.truncate(c.targets.len());
    a.target_states
        .resize_with(c.targets.len(), TargetAssessment::default);
    for (j, (t, ts)) in c.targets.iter().zip(a.target_states.iter_mut()).enumerate() {
        match non_empty(t.name.as_deref()) {
            Some(n) => {
                set(&mut ts.name, n);
            }
            None => {
                let name = format!("{}-{j}", a.state.name);
                set(&mut ts.name, &name);
            }
        }
        ts.ready = false;
        ts.path_ready = false;
        ts.reasons.clear();
    }

    // 1. Disabled.
    if !c.is_enabled() {
        a.reasons
            .push(Reason::new("Disabled", "candidate has enabled: false"));
    }
    if let Some(src) = obs.source.as_ref().filter(|s| s.spec_disabled) {
        a.reasons.push(Reason::new(
            "SourceDisabled",
            format!("source {} has enabled: false", src.reference),
        ));
    }
    if let Some(h) = &obs.health {
        if !h.spec_enabled {
            a.reasons.push(Reason::new(
                "HealthCheckDisabled",
                format!("HealthCheck {} has enabled: false", h.name),
            ));
        } else if matches!(h.phase.as_ref(), "Disabled" | "Standby" | "NotApplicable") {
            a.reasons.push(Reason::new(
                "HealthCheckDisabled",
                format!("HealthCheck {} is {}", h.name, h.phase),
            ));
        }
    }
    if !a.reasons.is_empty() {
        a.state.disabled = true;
        return moved;
    }

    // 2. Health.
    let health_ok = obs
        .health
        .as_ref()
        .map(|h| health_ready(h, now, &mut a.reasons, &mut a.notes));

    // 3. Dependencies.
    for d in obs.dependencies.iter().filter(|d| !d.ready) {
        let seen = if d.value.is_empty() {
            "no value".to_string()
        } else {
            format!("value {:?}", d.value)
        };
        a.reasons.push(Reason::new(
            "DependencyNotReady",
            format!(
                "dependsOn {} field {} not satisfied ({seen})",
                d.resource, d.field
            ),
        ));
    }

    // 4. Source.
    if let Some(src) = obs.source.as_ref().filter(|s| s.tunnel)
        && src.phase != "Up"
    {
        let phase = if src.phase.is_empty() {
            "no status".to_string()
        } else {
            format!("phase {}", src.phase)
        };
        a.reasons.push(Reason::new(
            "TunnelDown",
            format!(
                "source {} has {phase}; a DS-Lite tunnel must be Up",
                src.reference
            ),
        ));
    } else if let Some(src) = obs.source.as_ref().filter(|s| !s.tunnel)
        && !source_phase_ready(&src.phase)
    {
        let phase = if src.phase.is_empty() {
            "no status".to_string()
        } else {
            format!("phase {}", src.phase)
        };
        if health_ok == Some(true) {
            a.notes.push(Reason::new(
                "SourceVouchedByHealth",
                format!(
                    "source {} has {phase}, but its passing HealthCheck vouches for it",
                    src.reference
                ),
            ));
        } else {
            a.reasons.push(Reason::new(
                "SourceNotReady",
                format!(
                    "source {} has {phase} and no passing HealthCheck",
                    src.reference
                ),
            ));
        }
    }

    // 5. Links.
    for l in obs.links.iter().filter(|l| !l.up()) {
        a.reasons.push(link_reason(l));
    }

    // 6. Output.
    let base_path = a.reasons.iter().all(|r| health_only(r.code));
    if c.targets.is_empty() {
        if a.state.device.is_empty() {
            let msg = match &c.device_from {
                Some(f) => format!(
                    "deviceFrom {}.{} is empty and no device or interface is set",
                    f.resource,
                    f.field.as_deref().unwrap_or("")
                ),
                None => "no device, deviceFrom or interface".to_string(),
            };
            a.reasons.push(Reason::new("DeviceUnresolved", msg));
        }
        if let Some(f) = &c.gateway_from {
            let optional = f.optional.unwrap_or(false);
            if !f.resource.trim().is_empty() && !optional && a.state.gateway.is_empty() {
                a.reasons.push(Reason::new(
                    "GatewayUnresolved",
                    format!(
                        "gatewayFrom {}.{} is empty",
                        f.resource,
                        f.field.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        a.path_ready = base_path && a.reasons.iter().all(|r| health_only(r.code));
    } else {
        // The candidate's own conditions (everything above) apply to every
        // target; each target then needs its device, link and check.
        let base_ok = a.reasons.is_empty();
        let mut notes = Vec::new();
        let mut any_path = false;
        for (j, ts) in a.target_states.iter_mut().enumerate() {
            let o = obs.targets.get(j);
            if o.is_none_or(|o| o.device.is_empty()) {
                ts.reasons.push(Reason::new(
                    "DeviceUnresolved",
                    "the target names no interface".to_string(),
                ));
            }
            if let Some(l) = o.and_then(|o| o.link.as_ref()).filter(|l| !l.up()) {
                ts.reasons.push(link_reason(l));
            }
            if let Some(h) = o.and_then(|o| o.health.as_ref()) {
                if h.spec_enabled {
                    health_ready(h, now, &mut ts.reasons, &mut notes);
                } else {
                    ts.reasons.push(Reason::new(
                        "HealthCheckDisabled",
                        format!("HealthCheck {} has enabled: false", h.name),
                    ));
                }
            }
            let own_ready = ts.reasons.is_empty();
            a.ready_targets += usize::from(own_ready);
            ts.ready = base_ok && own_ready;
            ts.path_ready = base_path && ts.reasons.iter().all(|r| health_only(r.code));
            any_path |= ts.path_ready;
        }
        if a.ready_targets == 0 {
            a.reasons.push(Reason::new(
                "NoReadyTarget",
                format!(
                    "none of {} targets has a device, an up link and a passing HealthCheck",
                    c.targets.len()
                ),
            ));
        }
        a.path_ready = any_path;
    }
    a.state.ready = a.reasons.is_empty();
    moved
}

/// §3.3: whether a HealthCheck vouches for its candidate at `now`.
pub fn health_ready(
    h: &HealthObservation,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
    notes: &mut Vec<Reason>,
) -> bool {
    let before = reasons.len();
    match h.phase.as_ref() {
        "Healthy" => {}
        "Failing"
            if h.consecutive_failed > 0
                && h.consecutive_failed < i64::from(h.unhealthy_threshold) =>
        {
            notes.push(Reason::new(
                "HealthFailureGrace",
                format!(
                    "HealthCheck {} is Failing with consecutiveFailed {} < unhealthyThreshold {}",
                    h.name, h.consecutive_failed, h.unhealthy_threshold
                ),
            ));
        }
        "" => reasons.push(Reason::new(
            "HealthNoStatus",
            format!("HealthCheck {} has no status", h.name),
        )),
        phase => reasons.push(Reason::new(
            "HealthNotPassing",
            format!(
                "HealthCheck {} is {phase} (consecutiveFailed {}, unhealthyThreshold {})",
                h.name, h.consecutive_failed, h.unhealthy_threshold
            ),
        )),
    }
    if !h.phase.is_empty() {
        match h.last_checked_at {
            Some(t) => {
                let fresh_until = add(t, h.freshness);
                if now > fresh_until {
                    reasons.push(Reason::new(
                        "HealthStale",
                        format!(
                            "HealthCheck {} lastCheckedAt {} is older than its freshness {} (stale since {})",
                            h.name,
                            format_rfc3339_nano(t),
                            h.freshness,
                            format_rfc3339_nano(fresh_until)
                        ),
                    ));
                }
            }
            None if h.last_checked_raw.is_empty() => reasons.push(Reason::new(
                "HealthStale",
                format!("HealthCheck {} has no lastCheckedAt", h.name),
            )),
            None => reasons.push(Reason::new(
                "HealthStale",
                format!(
                    "HealthCheck {} lastCheckedAt {:?} is not RFC 3339",
                    h.name, h.last_checked_raw
                ),
            )),
        }
    }
    reasons.len() == before
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn written_names_match_candidate_name() {
        let cases = [
            serde_json::json!({"name": " a ", "source": "Link/x", "interface": "lan"}),
            serde_json::json!({"source": " Link/x ", "interface": "lan"}),
            serde_json::json!({"source": "Link/x", "device": "wan0"}),
            serde_json::json!({"interface": " ", "source": " "}),
            serde_json::json!({}),
        ];
        let mut buf = String::from("previous-name-with-capacity");
        for v in cases {
            let c: EgressCandidate = serde_json::from_value(v).unwrap();
            for naming in [Naming::Advisory, Naming::PolicyRoute] {
                write_name(&mut buf, &c, 7, naming);
                assert_eq!(buf, candidate_name(&c, 7, naming));
            }
        }
    }
}
