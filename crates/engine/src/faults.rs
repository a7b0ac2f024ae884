//! What the kernel refused, reflected in statuses (routerd_render::fault)
//! and events.
//!
//! Selection and the followers compute what each resource *intends*
//! (`Installed`, `Applied`, ...); only the reconcile knows whether the
//! kernel carries it. A resource whose objects were kept back or refused is
//! reported with the fault laid over its intended status: `phase` and
//! `reason` say what happened, `message` carries the kernel's words, and
//! `dataplane` keeps the intended phase so that `explain` and the metrics
//! can tell intended from installed. The stages keep reading the intended
//! statuses, so one refused route never cascades into its followers'
//! selection, and the overlay is taken off again when statuses are restored
//! from the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use routerd_model::{Event, ObjectRef, ResourceId};
use routerd_render::Fault;

pub use routerd_render::fault::{DATAPLANE_KEY, NOTE_KEY, overlay, phase_for, strip, with_note};

fn subject(owner: &str) -> ObjectRef {
    ResourceId::parse(owner)
        .map(|id| ObjectRef {
            api_version: id.api_version,
            kind: id.kind,
            name: id.name,
        })
        .unwrap_or_else(ObjectRef::daemon)
}

/// Events for the faults that appeared, changed or cleared between two
/// reconciles.
pub fn transitions(
    before: &BTreeMap<String, Fault>,
    after: &BTreeMap<String, Fault>,
    now: DateTime<Utc>,
) -> Vec<Event> {
    let mut out = Vec::new();
    for (owner, f) in after {
        if before.get(owner) == Some(f) {
            continue;
        }
        let mut e = Event::info("routerd.dataplane.owner.failed", subject(owner), now);
        e.severity = if f.reason == "DeviceNotReady" {
            "warning".into()
        } else {
            "error".into()
        };
        e.reason.clone_from(&f.reason);
        e.message.clone_from(&f.message);
        out.push(e.attr("phase", phase_for(owner, &f.reason)));
    }
    for (owner, f) in before {
        if after.contains_key(owner) {
            continue;
        }
        let mut e = Event::info("routerd.dataplane.owner.recovered", subject(owner), now);
        e.reason = "Installed".into();
        e.message = format!(
            "the kernel now carries what it asked for (was {})",
            f.reason
        );
        out.push(e.attr("previousReason", f.reason.clone()));
    }
    out
}

/// Event of a policy that starts refusing its traffic (`whenNoCandidate`).
pub const FAIL_CLOSED_EVENT: &str = "routerd.egress.policy.failclosed";
/// Event of a policy whose fail-closed filter went away because a
/// candidate's path is programmed.
pub const REOPENED_EVENT: &str = "routerd.egress.policy.reopened";

/// Events for the policies that started or stopped failing closed.
pub fn fail_closed_transitions(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Vec<Event> {
    let mut out = Vec::new();
    for (id, how) in after {
        if before.get(id) == Some(how) {
            continue;
        }
        let mut e = Event::info(FAIL_CLOSED_EVENT, subject(id), now);
        e.severity = "warning".into();
        e.reason = "NoReadyCandidates".into();
        e.message = format!(
            "no candidate is ready: forwarded traffic of the policy's sources is {} instead of leaving through the main table",
            if how == "drop" { "dropped" } else { "rejected" }
        );
        out.push(e.attr("whenNoCandidate", how.clone()));
    }
    for (id, how) in before {
        if after.contains_key(id) {
            continue;
        }
        let mut e = Event::info(REOPENED_EVENT, subject(id), now);
        e.reason = "CandidateReady".into();
        e.message =
            "a candidate is ready: its path is programmed before the fail-closed filter goes"
                .into();
        out.push(e.attr("whenNoCandidate", how.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use routerd_model::Status;
    use serde_json::json;

    fn fault(owner: &str, reason: &str) -> Fault {
        Fault {
            owner: owner.into(),
            reason: reason.into(),
            message: "Cannot find device \"eth9\" (errno 19)".into(),
        }
    }

    const ROUTE: &str = "net.routerd.net/v1alpha1/IPv4Route/r";
    const POLICY: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/p";

    #[test]
    fn overlay_reports_the_fault_and_strip_restores_the_intent() {
        let mut st = Status::new();
        st.insert("phase".into(), json!("Installed"));
        st.insert("destination".into(), json!("10.0.0.0/8"));
        let shown = overlay(&st, &fault(ROUTE, "ApplyFailed"));
        assert_eq!(shown["phase"], "Error");
        assert_eq!(shown["reason"], "ApplyFailed");
        assert_eq!(shown["dataplane"]["installed"], false);
        assert_eq!(shown["dataplane"]["intended"]["phase"], "Installed");
        assert_eq!(shown["destination"], "10.0.0.0/8");
        assert_eq!(strip(shown), st);
        let pending = overlay(&st, &fault(ROUTE, "DeviceNotReady"));
        assert_eq!(pending["phase"], "Pending");
        assert_eq!(
            overlay(&st, &fault(POLICY, "ApplyFailed"))["phase"],
            "Degraded"
        );
    }

    #[test]
    fn events_only_on_change() {
        let a: BTreeMap<String, Fault> = [(ROUTE.to_string(), fault(ROUTE, "ApplyFailed"))].into();
        let now = Utc::now();
        assert!(transitions(&a, &a, now).is_empty());
        let up = transitions(&BTreeMap::new(), &a, now);
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].type_, "routerd.dataplane.owner.failed");
        assert_eq!(up[0].resource.kind, "IPv4Route");
        assert_eq!(up[0].severity, "error");
        let down = transitions(&a, &BTreeMap::new(), now);
        assert_eq!(down[0].type_, "routerd.dataplane.owner.recovered");
    }

    #[test]
    fn fail_closed_events_on_close_and_reopen_only() {
        let closed: BTreeMap<String, String> = [(POLICY.to_string(), "reject".to_string())].into();
        let now = Utc::now();
        assert!(fail_closed_transitions(&closed, &closed, now).is_empty());
        let close = fail_closed_transitions(&BTreeMap::new(), &closed, now);
        assert_eq!(close.len(), 1);
        assert_eq!(close[0].type_, FAIL_CLOSED_EVENT);
        assert_eq!(close[0].resource.name, "p");
        assert_eq!(close[0].severity, "warning");
        assert_eq!(close[0].attributes["whenNoCandidate"], "reject");
        let open = fail_closed_transitions(&closed, &BTreeMap::new(), now);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].type_, REOPENED_EVENT);
    }
}
