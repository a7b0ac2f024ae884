//! Selective Address Mobility statuses (routerd-spec §1.8):
//! RemoteAddressClaim (`Ready`/`Gated`/`Degraded`, `captureStatus`) and
//! AddressMobilityDomain (`Ready`/`Degraded`, `ClaimDegraded`).
//!
//! The claim's status is also the renderer's input: `captureStatus:
//! Captured` with `captureDevice` becomes a neighbour proxy entry, and
//! `forwardingDevices` the devices that must forward IPv4. Computing it
//! here, with [`capture_decision`], keeps `routerctl plan` and the daemon
//! on one answer; the gate is the HybridRoute health gate over the claim's
//! peer, so capture stops in the same evaluation that sees the overlay
//! check fail (within one probe interval of the failure being observed).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use routerd_model::lower::peer_name;
use routerd_model::lower_claims::{ClaimLowering, ClaimSide, lower_claims};
use routerd_model::{Event, Kind, ObjectRef, Resource, Spec, Status};
use serde_json::{Value, json};

use super::hybrid::Hybrid;
use super::{FollowOutcome, outcome};
use crate::mobility::{CaptureInput, CaptureStatus, PeerHealth, capture_decision, reason};
use crate::observe::{StatusSource, phase_of};

/// Event on a claim whose `captureStatus` changes (capture starts/stops).
pub const CAPTURE_EVENT: &str = "routerd.mobility.claim.capture";
/// Event on a claim whose phase or reason changes.
pub const PHASE_EVENT: &str = "routerd.mobility.claim.phase";

/// The health of overlay peer `peer`: every HybridRoute over it with a
/// `healthCheckRef` must carry (none: unchecked).
fn peer_health(effective: &[Resource], hybrid: Option<&Hybrid<'_>>, peer: &str) -> PeerHealth {
    let mut gates = 0;
    for r in effective.iter().filter(|r| r.kind() == Kind::HybridRoute) {
        let Some(s) = r.as_hybrid_route() else {
            continue;
        };
        if peer_name(s.peer_ref.as_deref().unwrap_or("")) != peer {
            continue;
        }
        let Some(g) = hybrid.and_then(|h| h.gate_of(r.name())) else {
            continue;
        };
        gates += 1;
        if !g.carrying {
            let why = if g.why.is_empty() {
                format!("HybridRoute/{} health gate held", r.name())
            } else {
                format!("HybridRoute/{}: {}", r.name(), g.why)
            };
            return PeerHealth::Unhealthy(why);
        }
    }
    if gates == 0 {
        PeerHealth::Unchecked
    } else {
        PeerHealth::Healthy
    }
}

/// Why `capture.interface` cannot be used now: the link-like resource it
/// names was observed without its device (`InterfaceNotFound`, published by
/// the daemon from the kernel's links). A raw kernel name with no resource
/// has no status; the reconcile keeps its entry back (`DeviceNotReady`)
/// and the fault overlay reports it instead.
fn capture_device_missing(
    effective: &[Resource],
    iface: &str,
    current: &dyn StatusSource,
) -> Option<String> {
    let r = effective.iter().find(|r| {
        matches!(
            r.kind(),
            Kind::Interface | Kind::TunnelInterface | Kind::PPPoESession | Kind::DSLiteTunnel
        ) && r.name() == iface
    })?;
    let st = current.status(&r.id().to_string())?;
    if st.get("reason").and_then(Value::as_str) != Some("InterfaceNotFound") {
        return None;
    }
    let dev = st
        .get("ifname")
        .or_else(|| st.get("device"))
        .and_then(Value::as_str)
        .unwrap_or(iface);
    Some(format!(
        "spec.capture.interface \"{iface}\" (device \"{dev}\") does not exist"
    ))
}

/// Whether this host holds the `activeWhen` VirtualAddress: its status
/// (published by the daemon from the kernel's addresses, whoever runs VRRP)
/// says `held`. No status yet is unknown, which never captures.
fn holds_virtual_address(
    capture: &routerd_model::spec::ClaimCapture,
    current: &dyn StatusSource,
) -> Option<bool> {
    let name = capture
        .active_when
        .as_ref()?
        .virtual_address_ref
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())?;
    let id = routerd_model::ResourceId::of(Kind::VirtualAddress, name).to_string();
    current.status(&id)?.get("held").and_then(Value::as_bool)
}

fn kernel_name(effective: &[Resource], iface: &str) -> String {
    effective
        .iter()
        .find(|r| r.kind() == Kind::Interface && r.name() == iface)
        .and_then(|r| r.as_interface())
        .map(|s| s.ifname.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| iface.to_string())
}

/// Every claim's and domain's status, given the routes' statuses of this
/// pass (`routes`, read before `current`).
pub fn mobility_statuses(
    effective: &[Resource],
    hybrid: Option<&Hybrid<'_>>,
    routes: &dyn StatusSource,
    current: &dyn StatusSource,
    previous: &dyn StatusSource,
    now: DateTime<Utc>,
) -> Vec<(String, FollowOutcome)> {
    if !effective.iter().any(|r| {
        matches!(
            r.kind(),
            Kind::RemoteAddressClaim | Kind::AddressMobilityDomain
        )
    }) {
        return Vec::new();
    }
    let lowered = lower_claims(effective.iter());
    let mut out = Vec::new();
    let mut by_domain: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for r in effective
        .iter()
        .filter(|r| r.kind() == Kind::RemoteAddressClaim)
    {
        let Spec::RemoteAddressClaim(spec) = &r.spec else {
            continue;
        };
        let id = r.id().to_string();
        let Some(l) = lowered.get(r.name()) else {
            continue;
        };
        let st = claim_status(effective, hybrid, spec, l, routes, current);
        let prev = previous.status(&id);
        let mut events = Vec::new();
        let who = ObjectRef {
            api_version: r.api_version.clone(),
            kind: Kind::RemoteAddressClaim.as_str().into(),
            name: r.name().into(),
        };
        let field = |s: Option<&Status>, k: &str| {
            s.and_then(|s| s.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let capture_now = field(Some(&st), "captureStatus");
        let capture_was = field(prev, "captureStatus");
        if capture_now != capture_was {
            events.push(
                Event::info(CAPTURE_EVENT, who.clone(), now)
                    .attr("address", field(Some(&st), "address").as_str())
                    .attr("from", capture_was.as_str())
                    .attr("to", capture_now.as_str())
                    .attr("message", field(Some(&st), "message").as_str()),
            );
        }
        if prev.map(phase_of) != Some(phase_of(&st))
            || field(prev, "reason") != field(Some(&st), "reason")
        {
            events.push(
                Event::info(PHASE_EVENT, who, now)
                    .attr("phase", phase_of(&st))
                    .attr("reason", field(Some(&st), "reason").as_str()),
            );
        }
        let domain = peer_name(spec.domain_ref.as_deref().unwrap_or("")).to_string();
        by_domain.entry(domain).or_default().push((
            r.name().to_string(),
            field(Some(&st), "address"),
            phase_of(&st).to_string(),
        ));
        out.push((id, outcome(st, prev, events)));
    }
    for r in effective
        .iter()
        .filter(|r| r.kind() == Kind::AddressMobilityDomain)
    {
        let Spec::AddressMobilityDomain(spec) = &r.spec else {
            continue;
        };
        let id = r.id().to_string();
        let mut members = by_domain.remove(r.name()).unwrap_or_default();
        members.sort();
        let degraded = members.iter().any(|(_, _, p)| p == "Degraded");
        let mut st = Status::new();
        st.insert(
            "phase".into(),
            json!(if degraded { "Degraded" } else { "Ready" }),
        );
        if degraded {
            st.insert("reason".into(), json!("ClaimDegraded"));
            st.insert(
                "message".into(),
                json!("one or more RemoteAddressClaim members are degraded"),
            );
        }
        st.insert(
            "prefix".into(),
            json!(spec.prefix.clone().unwrap_or_default()),
        );
        st.insert(
            "mode".into(),
            json!(
                spec.mode
                    .clone()
                    .unwrap_or_else(|| "selective-address".into())
            ),
        );
        st.insert(
            "peerRef".into(),
            json!(spec.peer_ref.clone().unwrap_or_default()),
        );
        st.insert("claimCount".into(), json!(members.len()));
        st.insert(
            "claims".into(),
            Value::Array(
                members
                    .into_iter()
                    .map(|(n, a, p)| json!({"name": n, "address": a, "phase": p}))
                    .collect(),
            ),
        );
        let prev = previous.status(&id);
        out.push((id, outcome(st, prev, Vec::new())));
    }
    out
}

fn claim_status(
    effective: &[Resource],
    hybrid: Option<&Hybrid<'_>>,
    spec: &routerd_model::spec::RemoteAddressClaimSpec,
    l: &ClaimLowering,
    routes: &dyn StatusSource,
    current: &dyn StatusSource,
) -> Status {
    let capture = spec.capture.clone().unwrap_or_default();
    let iface = capture
        .interface
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    let decision = capture_decision(&CaptureInput {
        claim: spec,
        peer: &l.peer,
        local_side: l.local_side.as_deref(),
        spec_error: l.problem.clone(),
        peer_health: peer_health(effective, hybrid, &l.peer),
        holds_virtual_address: holds_virtual_address(&capture, current),
        capture_device_missing: capture_device_missing(effective, &iface, current),
    });
    let mut st = Status::new();
    let s = |v: &Option<String>| json!(v.as_deref().map(str::trim).unwrap_or(""));
    st.insert("domainRef".into(), s(&spec.domain_ref));
    st.insert("address".into(), s(&spec.address));
    st.insert("ownerSide".into(), s(&spec.owner_side));
    st.insert("captureType".into(), s(&capture.type_));
    st.insert("peerRef".into(), json!(l.peer));
    st.insert("deliveryMode".into(), json!(l.mode));
    st.insert("captureInterface".into(), json!(iface));
    if let Some(side) = &l.local_side {
        st.insert("localSide".into(), json!(side));
    }
    let mut phase = "Ready";
    let mut why: Option<&str> = decision.reason;
    let mut message = decision.message.clone();
    let mut forwarding = Vec::new();
    let capture_device = kernel_name(effective, &iface);
    if let Some(route) = &l.route {
        st.insert("deliveryRouteName".into(), json!(route.name));
        st.insert("deliveryDevice".into(), json!(route.device));
        st.insert("deliveryMetric".into(), json!(route.metric));
        let rid = format!("{}/IPv4Route/{}", Kind::IPv4Route.api_version(), route.name);
        let rs = routes.status(&rid).or_else(|| current.status(&rid));
        let installed = rs.map(phase_of) == Some("Installed");
        if !installed && why.is_none_or(|w| w == reason::CAPTURE_GATE_INACTIVE) {
            why = Some(reason::ROUTE_NOT_INSTALLED);
            message = format!(
                "delivery route IPv4Route/{} is not installed ({}); {message}",
                route.name,
                rs.map(phase_of).unwrap_or("no status")
            );
        }
        if decision.status == CaptureStatus::Captured && installed {
            forwarding.push(capture_device.clone());
            forwarding.push(route.device.clone());
        }
        let device_missing = decision.reason == Some(reason::DEVICE_NOT_READY);
        if l.side == Some(ClaimSide::Owning) && installed && !device_missing {
            // Traffic arrives over the overlay and leaves on the local
            // interface, and back. Over an L2 overlay (VXLAN) the capturing
            // side's gatewayless delivery route ARPs for the address on the
            // overlay: the owning side answers there (never on its LAN).
            if let Some(overlay) = overlay_device(effective, &l.peer) {
                forwarding.push(overlay.clone());
                st.insert("overlayAnswerDevice".into(), json!(overlay));
            }
            forwarding.push(route.device.clone());
        }
    } else if l.problem.is_none() && l.mode != "route" {
        why = Some(reason::ROUTE_NOT_LOWERED);
        message = format!(
            "delivery mode {} is not implemented; only route delivery is; {}",
            l.mode, decision.message
        );
    }
    // Capture only with its delivery route in the kernel: a captured
    // address without a way out would be a black hole.
    let captured = decision.status == CaptureStatus::Captured && forwarding.len() >= 2;
    let capture_status = if decision.status == CaptureStatus::Captured && !captured {
        CaptureStatus::Standby
    } else {
        decision.status
    };
    match why {
        None => {}
        Some(reason::CAPTURE_GATE_INACTIVE) | Some(reason::CAPTURE_EXCLUDED) => phase = "Gated",
        Some(_) => phase = "Degraded",
    }
    st.insert("phase".into(), json!(phase));
    if let Some(w) = why {
        st.insert("reason".into(), json!(w));
    }
    st.insert("message".into(), json!(message));
    st.insert("captureStatus".into(), json!(capture_status.as_str()));
    if captured {
        st.insert("captureDevice".into(), json!(capture_device));
        st.insert(
            "gratuitousARP".into(),
            json!(capture.gratuitous_arp.unwrap_or(false)),
        );
    }
    forwarding.sort();
    forwarding.dedup();
    forwarding.retain(|d| !d.is_empty());
    if !forwarding.is_empty() {
        st.insert("forwardingDevices".into(), json!(forwarding));
    }
    st
}

/// The kernel device the overlay to `peer` uses (its underlay interface,
/// or a TunnelInterface's `ifname`).
fn overlay_device(effective: &[Resource], peer: &str) -> Option<String> {
    let p = effective
        .iter()
        .find(|r| r.kind() == Kind::OverlayPeer && r.name() == peer)?
        .as_overlay_peer()?;
    let iface = p
        .underlay
        .as_ref()?
        .interface
        .as_deref()?
        .trim()
        .to_string();
    let tunnel = effective
        .iter()
        .find(|r| r.kind() == Kind::TunnelInterface && r.name() == iface)
        .and_then(|r| r.as_tunnel_interface())
        .and_then(|s| s.ifname.clone())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Some(tunnel.unwrap_or(iface)).filter(|s| !s.is_empty())
}
