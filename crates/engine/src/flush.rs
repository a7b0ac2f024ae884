//! The conntrack stage of a step: deleting the connections of paths that
//! died (`flushOnFailover: deadPath`, docs/adr/0011).
//!
//! Selection says which paths died ([`routerd_select::flush::dead_paths`],
//! computed in the select stage from the previous and new status); this
//! stage runs after the dataplane stage, once the new path is programmed,
//! so the next packet of a deleted connection is tracked, routed and
//! translated by the new rules. A flush that fails is an event and a status
//! message, never a failed step: the selection and the dataplane are right
//! either way, the connections only time out as they would without the
//! option.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use routerd_conntrack::ConntrackFlusher;
use routerd_model::{Event, Kind, ObjectRef, Resource, ResourceId, StateSnapshot, Status};
use routerd_select::flush::{DeadPath, ready_marks};
use serde_json::{Value, json};

/// Status key of the last flush of a policy.
pub const LAST_FLUSH_KEY: &str = "lastFlush";

/// Event topic of a flush that ran.
pub const FLUSHED_EVENT: &str = "routerd.egress.conntrack.flushed";

/// Event topic of a flush that could not run.
pub const FLUSH_FAILED_EVENT: &str = "routerd.egress.conntrack.flush.failed";

/// A flush the select stage asked for.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) policy: String,
    pub(crate) path: DeadPath,
}

fn subject(id: &str) -> ObjectRef {
    ResourceId::parse(id)
        .map(|id| ObjectRef {
            api_version: id.api_version,
            kind: id.kind,
            name: id.name,
        })
        .unwrap_or_default()
}

/// The marks of every path some policy still reports ready: a connection
/// with one of them is on a healthy path, whichever policy it belongs to.
fn live_marks(effective: &[Resource], statuses: &StateSnapshot) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for r in effective {
        if r.kind() != Kind::EgressRoutePolicy {
            continue;
        }
        let (Some(spec), Some(st)) = (r.as_egress_policy(), statuses.get(&r.id().to_string()))
        else {
            continue;
        };
        out.extend(ready_marks(spec, st));
    }
    out
}

/// Runs the pending flushes; returns the events and the new `lastFlush`
/// value of each policy that flushed (or failed to).
pub(crate) fn run(
    pending: Vec<Pending>,
    flusher: Option<&dyn ConntrackFlusher>,
    effective: &[Resource],
    statuses: &StateSnapshot,
    now: DateTime<Utc>,
) -> (Vec<Event>, BTreeMap<String, Value>) {
    let mut events = Vec::new();
    let mut last = BTreeMap::new();
    if pending.is_empty() {
        return (events, last);
    }
    let live = live_marks(effective, statuses);
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for Pending { policy, path } in pending {
        if live.contains(&path.mark) {
            // Another policy still steers new flows over this mark.
            tracing::info!(%policy, candidate = %path.candidate, mark = path.mark, "conntrack flush skipped: the mark is still in use by a ready path");
            continue;
        }
        let mut record = json!({
            "candidate": path.candidate,
            "mark": path.mark,
            "at": at,
        });
        if let Some(t) = &path.target {
            record["target"] = json!(t);
        }
        let result = match flusher {
            Some(f) => f.flush_mark(path.mark, u32::MAX).map_err(|e| e.to_string()),
            None => Err("no conntrack access (the netlink socket could not be opened)".into()),
        };
        let mut e;
        match result {
            Ok(r) => {
                record["deleted"] = json!(r.deleted);
                e = Event::info(FLUSHED_EVENT, subject(&policy), now);
                e.reason = "DeadPathFlushed".into();
                e.message = format!(
                    "deleted {} connection(s) of dead path {} (ct mark {:#x})",
                    r.deleted,
                    path.target.as_deref().unwrap_or(&path.candidate),
                    path.mark
                );
                e = e.attr("deleted", r.deleted.to_string());
                if r.remaining > 0 {
                    record["remaining"] = json!(r.remaining);
                    e = e.attr("remaining", r.remaining.to_string());
                }
            }
            Err(msg) => {
                record["message"] = json!(format!("conntrack flush failed: {msg}"));
                e = Event::info(FLUSH_FAILED_EVENT, subject(&policy), now);
                e.severity = "warning".into();
                e.reason = "DeadPathFlushFailed".into();
                e.message = format!(
                    "could not delete the connections of dead path {} (ct mark {:#x}): {msg}",
                    path.target.as_deref().unwrap_or(&path.candidate),
                    path.mark
                );
            }
        }
        e = e
            .attr("policy", policy.clone())
            .attr("candidate", path.candidate.clone())
            .attr("mark", path.mark.to_string());
        if let Some(t) = &path.target {
            e = e.attr("target", t.clone());
        }
        events.push(e);
        last.insert(policy, record);
    }
    (events, last)
}

/// `status` with its policy's last flush laid over.
pub(crate) fn overlay(status: &mut Status, last: Option<&Value>) {
    if let Some(v) = last {
        status.insert(LAST_FLUSH_KEY.into(), v.clone());
    }
}

/// Takes the stored `lastFlush` off a restored status (selection computes
/// the status without it) and returns it.
pub(crate) fn strip(status: &mut Status) -> Option<Value> {
    status.remove(LAST_FLUSH_KEY)
}
