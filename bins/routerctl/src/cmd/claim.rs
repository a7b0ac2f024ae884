//! `routerctl explain claim <name>`: why a RemoteAddressClaim's address is
//! captured on this node or not, from the daemon's describe answer (spec,
//! reported status, recent events). Pure, so it is tested without a daemon.

use serde_json::{Value, json};

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The explanation document of a `DescribeResult` of a RemoteAddressClaim.
pub(crate) fn explain_claim(describe: &Value) -> Value {
    let r = &describe["resource"];
    let spec = &r["spec"];
    let st = &r["status"];
    let owner = text(spec, "ownerSide");
    let local = text(st, "localSide");
    let side = match (local, owner) {
        ("", _) => "unknown (the OverlayPeer has no role)",
        (l, o) if l == o => "owning (delivered here, never captured here)",
        _ => "capturing (answers ARP for the address when the gate allows)",
    };
    let excluded: Vec<Value> = spec["capture"]["excludeAddresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let capture_events: Vec<Value> = describe["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| text(e, "type").starts_with("routerd.mobility."))
        .cloned()
        .collect();
    json!({
        "claim": text(r, "name"),
        "address": text(spec, "address"),
        "ownerSide": owner,
        "thisNodeSide": local,
        "role": side,
        "captureStatus": text(st, "captureStatus"),
        "phase": text(st, "phase"),
        "reason": text(st, "reason"),
        "why": text(st, "message"),
        "gate": {
            "overlayPeer": text(st, "peerRef"),
            "open": text(st, "captureStatus") == "Captured",
            "closedBecause": if text(st, "reason") == "CaptureGateInactive" { text(st, "message") } else { "" },
        },
        "capture": {
            "type": text(&spec["capture"], "type"),
            "interface": text(st, "captureInterface"),
            "device": text(st, "captureDevice"),
            "excludeAddresses": excluded,
        },
        "delivery": {
            "mode": text(st, "deliveryMode"),
            "route": text(st, "deliveryRouteName"),
            "device": text(st, "deliveryDevice"),
            "metric": st.get("deliveryMetric").cloned().unwrap_or(Value::Null),
        },
        "forwardingDevices": st.get("forwardingDevices").cloned().unwrap_or(json!([])),
        "events": capture_events,
    })
}

/// The explanation as text: the headline (address, status and why) first,
/// then the gate, capture and delivery, then the capture events.
pub(crate) fn explain_claim_text(x: &Value) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "RemoteAddressClaim/{}: {} {} ({})",
        text(x, "claim"),
        text(x, "address"),
        text(x, "captureStatus"),
        text(x, "reason")
    );
    if !text(x, "why").is_empty() {
        let _ = writeln!(o, "  why:        {}", text(x, "why"));
    }
    let _ = writeln!(
        o,
        "  sides:      owner {}, this node {}: {}",
        text(x, "ownerSide"),
        text(x, "thisNodeSide"),
        text(x, "role")
    );
    let gate = &x["gate"];
    let _ = writeln!(
        o,
        "  gate:       overlay peer {}, {}",
        text(gate, "overlayPeer"),
        if gate["open"].as_bool() == Some(true) {
            "open".to_string()
        } else if text(gate, "closedBecause").is_empty() {
            "closed".to_string()
        } else {
            format!("closed: {}", text(gate, "closedBecause"))
        }
    );
    let cap = &x["capture"];
    let excluded: Vec<&str> = cap["excludeAddresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let _ = writeln!(
        o,
        "  capture:    {} on {} (device {}){}",
        text(cap, "type"),
        text(cap, "interface"),
        text(cap, "device"),
        if excluded.is_empty() {
            String::new()
        } else {
            format!(", excluded: {}", excluded.join(", "))
        }
    );
    let d = &x["delivery"];
    let _ = writeln!(
        o,
        "  delivery:   {} route {} dev {} metric {}",
        text(d, "mode"),
        text(d, "route"),
        text(d, "device"),
        d["metric"]
    );
    let fwd: Vec<&str> = x["forwardingDevices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !fwd.is_empty() {
        let _ = writeln!(o, "  forwarding: {}", fwd.join(", "));
    }
    let events = x["events"].as_array().cloned().unwrap_or_default();
    if !events.is_empty() {
        let _ = writeln!(o, "events:");
        o.push_str(&super::text::events(&events, false));
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_gated_claim_says_why() {
        let d = json!({
            "kind": "DescribeResult",
            "resource": {
                "name": "web",
                "spec": {"address": "192.168.10.50/32", "ownerSide": "cloud",
                         "capture": {"type": "proxy-arp", "interface": "lan"}},
                "status": {"localSide": "onprem", "captureStatus": "Standby", "phase": "Gated",
                           "reason": "CaptureGateInactive", "peerRef": "cloud",
                           "message": "overlay peer \"cloud\" is not healthy"}
            },
            "events": [{"type": "routerd.mobility.claim.capture"}, {"type": "other"}]
        });
        let e = explain_claim(&d);
        assert_eq!(
            e["role"],
            "capturing (answers ARP for the address when the gate allows)"
        );
        assert_eq!(e["gate"]["open"], false);
        assert_eq!(
            e["gate"]["closedBecause"],
            "overlay peer \"cloud\" is not healthy"
        );
        assert_eq!(e["capture"]["type"], "proxy-arp");
        assert_eq!(e["events"].as_array().unwrap().len(), 1);
        let t = explain_claim_text(&e);
        assert!(
            t.starts_with(
                "RemoteAddressClaim/web: 192.168.10.50/32 Standby (CaptureGateInactive)\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "gate:       overlay peer cloud, closed: overlay peer \"cloud\" is not healthy"
            ),
            "{t}"
        );
    }
}
