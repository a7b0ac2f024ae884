//! A fault laid over its owner's status.
//!
//! Selection and the followers compute what each resource *intends*
//! (`Installed`, `Applied`, ...); only the reconcile (or, offline, the
//! render) knows whether the kernel can carry it. A resource whose objects
//! were kept back or refused is reported with the fault laid over its
//! intended status: `phase` and `reason` say what happened, `message`
//! carries the kernel's words, and `dataplane` keeps the intended phase so
//! that `explain` and the metrics can tell intended from installed. The
//! daemon and `routerctl plan` both use these functions, so they report a
//! fault the same way.

use routerd_model::{ResourceId, Status};
use serde_json::{Value, json};

use crate::reconcile::Fault;

/// Status key under which the overlay keeps the intended state.
pub const DATAPLANE_KEY: &str = "dataplane";

/// The phase a fault gives its owner. An IPv4Route (or IPv6StaticRoute) is
/// one kernel route, so
/// it says what routerd says: `Pending` while its device is absent
/// (`DeviceNotReady`), `Error` when the kernel refused it (`ApplyFailed`).
/// Every other owner (a policy with one table per candidate, a NAT rule) is
/// `Degraded`: the rest of its objects may well be carried, and a policy
/// whose backup device is missing still forwards over its primary.
pub fn phase_for(owner: &str, reason: &str) -> &'static str {
    let kind = ResourceId::parse(owner).map(|id| id.kind);
    match (kind.as_deref(), reason) {
        (Some("IPv4Route" | "IPv6StaticRoute"), "DeviceNotReady") => "Pending",
        (Some("IPv4Route" | "IPv6StaticRoute"), _) => "Error",
        // One address: routerd's IPv4StaticAddress phases.
        (Some("IPv4StaticAddress"), "DeviceNotReady" | "WhenFalse") => "Pending",
        (Some("IPv4StaticAddress"), crate::reconcile::OVERLAP_REASON) => "Blocked",
        (Some("IPv4StaticAddress"), _) => "Error",
        // An IPv6 hostTraffic policy is one route and one rule: routerd
        // reports it Pending while it keeps the last good pair.
        (
            Some("EgressRoutePolicy"),
            crate::render::PREFERRED_SOURCE_UNAVAILABLE | crate::render::HOST_POLICY_APPLY_FAILED,
        ) => "Pending",
        _ => "Degraded",
    }
}

/// `status` as reported when `fault` holds. An owner that reports
/// OpenShift-style `conditions` (EgressRouter) also gets its `Degraded`
/// condition set True and its `Available` condition False with the
/// kernel's reason and message, so readers of either shape see the
/// failure.
pub fn overlay(status: &Status, fault: &Fault) -> Status {
    let mut out = status.clone();
    let mut intended = json!({
        "phase": status.get("phase"),
        "reason": status.get("reason"),
        "message": status.get("message"),
    });
    if let (Some(c), Some(i)) = (status.get("conditions"), intended.as_object_mut()) {
        i.insert("conditions".into(), c.clone());
    }
    // A claim whose neighbour proxy entry was kept back or refused is not
    // captured, whatever the follower intended: say so where readers (and
    // `routerctl explain claim`) look.
    if let (Some(c), Some(i)) = (status.get("captureStatus"), intended.as_object_mut()) {
        i.insert("captureStatus".into(), c.clone());
        out.insert("captureStatus".into(), json!("Blocked"));
    }
    if let Some(Value::Array(conditions)) = out.get_mut("conditions") {
        for c in conditions.iter_mut() {
            // Degraded True, and never Available while the kernel does
            // not carry everything the owner asked for.
            let status = match c.get("type").and_then(Value::as_str) {
                Some("Degraded") => "True",
                Some("Available") => "False",
                _ => continue,
            };
            if let Some(c) = c.as_object_mut() {
                c.insert("status".into(), json!(status));
                c.insert("reason".into(), json!(fault.reason));
                c.insert("message".into(), json!(fault.message));
            }
        }
    }
    out.insert(
        "phase".into(),
        json!(phase_for(&fault.owner, &fault.reason)),
    );
    out.insert("reason".into(), json!(fault.reason));
    out.insert("message".into(), json!(fault.message));
    out.insert(
        DATAPLANE_KEY.into(),
        json!({
            "installed": false,
            "reason": fault.reason,
            "message": fault.message,
            "intended": intended,
        }),
    );
    out
}

/// Status key of a note: something the owner is told although its
/// phase is what it intended (an address that was already on the device
/// and stays the operator's).
pub const NOTE_KEY: &str = "note";

/// `status` with `note` added.
pub fn with_note(status: &Status, note: &str) -> Status {
    let mut out = status.clone();
    out.insert(NOTE_KEY.into(), json!(note));
    out
}

/// Takes an overlay (and a note) off a status read back from the store.
pub fn strip(mut status: Status) -> Status {
    status.remove(NOTE_KEY);
    let Some(Value::Object(dp)) = status.remove(DATAPLANE_KEY) else {
        return status;
    };
    if let Some(Value::Object(intended)) = dp.get("intended") {
        for key in ["phase", "reason", "message", "conditions", "captureStatus"] {
            match intended.get(key) {
                Some(v) if !v.is_null() => {
                    status.insert(key.into(), v.clone());
                }
                _ => {
                    status.remove(key);
                }
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_fault_degrades_openshift_conditions_and_strip_restores_them() {
        let st: Status = serde_json::from_value(json!({
            "phase": "Available",
            "conditions": [
                {"type": "Available", "status": "True", "reason": "Carried"},
                {"type": "Degraded", "status": "False", "reason": "AsExpected"},
            ],
        }))
        .unwrap();
        let fault = Fault {
            owner: "net.routerd.net/v1alpha1/EgressRouter/r".into(),
            reason: "ApplyFailed".into(),
            message: "Operation not supported".into(),
        };
        let out = overlay(&st, &fault);
        let degraded = &out["conditions"][1];
        assert_eq!(degraded["status"], "True");
        assert_eq!(degraded["reason"], "ApplyFailed");
        assert_eq!(degraded["message"], "Operation not supported");
        assert_eq!(out["conditions"][0]["status"], "False", "never Available");
        assert_eq!(out["conditions"][0]["reason"], "ApplyFailed");
        assert_eq!(out["phase"], "Degraded");
        assert_eq!(strip(out), st);
    }

    #[test]
    fn an_owner_without_conditions_gets_none() {
        let st: Status = serde_json::from_value(json!({"phase": "Applied"})).unwrap();
        let fault = Fault {
            owner: "net.routerd.net/v1alpha1/NAT44Rule/n".into(),
            reason: "ApplyFailed".into(),
            message: "x".into(),
        };
        let out = overlay(&st, &fault);
        assert!(out.get("conditions").is_none());
        assert_eq!(strip(out), st);
    }

    #[test]
    fn a_claim_whose_capture_device_is_missing_is_reported_not_captured() {
        let st: Status = serde_json::from_value(json!({
            "phase": "Ready",
            "captureStatus": "Captured",
            "captureDevice": "nosuch0",
        }))
        .unwrap();
        let fault = Fault {
            owner: "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web".into(),
            reason: "DeviceNotReady".into(),
            message: "device \"nosuch0\" does not exist; capture waits for it".into(),
        };
        let out = overlay(&st, &fault);
        assert_eq!(out["phase"], "Degraded");
        assert_eq!(out["reason"], "DeviceNotReady");
        assert_eq!(out["captureStatus"], "Blocked");
        assert_eq!(out["dataplane"]["intended"]["captureStatus"], "Captured");
        assert_eq!(strip(out), st);
    }
}
