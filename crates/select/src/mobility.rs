//! Selective Address Mobility: whether this node captures a claimed
//! address now (routerd-spec §1.8, RemoteAddressClaim `captureStatus`).
//!
//! One pure function, [`capture_decision`], answers it; the claim follower
//! ([`crate::follow::mobility`]) calls it and publishes the answer in the
//! claim's status, which is what the renderer turns into neighbour proxy
//! entries. The daemon and `routerctl plan` therefore capture exactly what
//! the status says, for the same reasons.
//!
//! This node's side is the `role` of the claim's OverlayPeer: an
//! OverlayPeer describes this node's end of the overlay (`remote` is the
//! far end), so `role: onprem` means "this router is on-prem". A node
//! captures a claimed address only on the side that does not own it.
//!
//! Fencing: capture needs the overlay to be vouched for. The peer's health
//! is the health gate of the HybridRoutes over that peer that name a
//! `healthCheckRef` (selection's readiness rule and hysteresis, see
//! [`crate::follow::hybrid`]); a peer no check vouches for never captures,
//! so two sites never both answer for one address because a broken
//! overlay went unnoticed. `activeWhen: vrrp-master` additionally needs
//! this node to hold the virtual address: its address is assigned on this
//! host (the daemon reads the kernel's addresses; whoever runs VRRP, such
//! as an operator's keepalived, moves it), so of two routers on one LAN
//! only the master answers ARP for the claim.

use std::net::Ipv4Addr;

use routerd_model::spec::RemoteAddressClaimSpec;
use serde::{Deserialize, Serialize};

/// §1.8 `captureStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureStatus {
    /// This node answers ARP for the address and delivers it.
    Captured,
    /// Not captured here now: owned here, or the gate is closed.
    Standby,
    /// Never captured with this spec (invalid, excluded, unsupported).
    Blocked,
}

impl CaptureStatus {
    /// The status string.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureStatus::Captured => "Captured",
            CaptureStatus::Standby => "Standby",
            CaptureStatus::Blocked => "Blocked",
        }
    }
}

/// routerd's reasons (§1.8).
pub mod reason {
    /// The claim (or what it refers to) cannot be carried as written.
    pub const SPEC_INVALID: &str = "SpecInvalid";
    /// The capture type is plan-only (`provider-secondary-ip`).
    pub const CAPTURE_UNSUPPORTED: &str = "CaptureUnsupported";
    /// The address is listed in `capture.excludeAddresses`.
    pub const CAPTURE_EXCLUDED: &str = "CaptureExcluded";
    /// Peer health or the VRRP condition does not allow capture now.
    pub const CAPTURE_GATE_INACTIVE: &str = "CaptureGateInactive";
    /// The delivery route was not lowered.
    pub const ROUTE_NOT_LOWERED: &str = "RouteNotLowered";
    /// The delivery route is not in the kernel.
    pub const ROUTE_NOT_INSTALLED: &str = "RouteNotInstalled";
    /// `capture.interface` names a device that does not exist (ours, not
    /// routerd's list: the reconcile's word for a missing device, so the
    /// follower and the kernel fault say the same thing).
    pub const DEVICE_NOT_READY: &str = "DeviceNotReady";
}

/// What is known of the overlay peer's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerHealth {
    /// A health gate over the peer carries.
    Healthy,
    /// It does not; why.
    Unhealthy(String),
    /// No HealthCheck vouches for the peer at all.
    Unchecked,
}

/// Everything the decision reads; no I/O.
#[derive(Clone, Debug)]
pub struct CaptureInput<'a> {
    /// The claim.
    pub claim: &'a RemoteAddressClaimSpec,
    /// The delivery peer's name (for messages).
    pub peer: &'a str,
    /// This node's side (`onprem`/`cloud`): the peer's `role`.
    pub local_side: Option<&'a str>,
    /// Why the claim cannot be carried, when it cannot (a missing peer, a
    /// duplicate claim, ...).
    pub spec_error: Option<String>,
    /// The peer's health.
    pub peer_health: PeerHealth,
    /// Whether this node holds the `activeWhen` virtual address (`None`:
    /// unknown, which never captures).
    pub holds_virtual_address: Option<bool>,
    /// Why `capture.interface` cannot be used now (its device was observed
    /// absent), when it cannot. Such a claim is never captured: an entry
    /// on a device that does not exist is refused by the kernel, and on the
    /// owning side the local route would have nowhere to go.
    pub capture_device_missing: Option<String>,
}

/// The decision and its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureDecision {
    /// `captureStatus`.
    pub status: CaptureStatus,
    /// routerd's reason (`None` when nothing is wrong).
    pub reason: Option<&'static str>,
    /// One sentence for operators (`routerctl explain claim`).
    pub message: String,
    /// This node is on the side that does not own the address (it
    /// captures when the gate allows); `false` on the owning side.
    pub capturing_side: bool,
}

/// The claimed address (`spec.address` without `/32`).
pub fn claim_address(claim: &RemoteAddressClaimSpec) -> Option<Ipv4Addr> {
    let a = claim.address.as_deref()?.trim();
    match a.parse::<ipnet::IpNet>() {
        Ok(ipnet::IpNet::V4(n)) if n.prefix_len() == 32 => Some(n.addr()),
        _ => a.parse().ok(),
    }
}

/// Whether `address` is listed in `excludeAddresses` (an address or a
/// prefix containing it).
fn excluded(claim: &RemoteAddressClaimSpec, address: Ipv4Addr) -> bool {
    claim
        .capture
        .iter()
        .flat_map(|c| c.exclude_addresses.iter())
        .any(|e| {
            let e = e.trim();
            e.parse::<Ipv4Addr>().is_ok_and(|x| x == address)
                || e.parse::<ipnet::Ipv4Net>()
                    .is_ok_and(|n| n.contains(&address))
        })
}

/// Whether this node captures the claim now, and why (or why not).
pub fn capture_decision(input: &CaptureInput<'_>) -> CaptureDecision {
    let blocked = |reason, message: String| CaptureDecision {
        status: CaptureStatus::Blocked,
        reason: Some(reason),
        message,
        capturing_side: false,
    };
    if let Some(e) = &input.spec_error {
        return blocked(reason::SPEC_INVALID, e.clone());
    }
    let claim = input.claim;
    let Some(address) = claim_address(claim) else {
        return blocked(
            reason::SPEC_INVALID,
            "spec.address is not an IPv4 /32".into(),
        );
    };
    let owner = claim.owner_side.as_deref().map(str::trim).unwrap_or("");
    let Some(local) = input.local_side.map(str::trim).filter(|s| !s.is_empty()) else {
        return blocked(
            reason::SPEC_INVALID,
            format!(
                "this node's side is unknown: OverlayPeer \"{}\" has no spec.role",
                input.peer
            ),
        );
    };
    if let Some(why) = &input.capture_device_missing {
        return CaptureDecision {
            capturing_side: owner != local,
            ..blocked(
                reason::DEVICE_NOT_READY,
                format!("{why}; {address} is not captured here until it exists"),
            )
        };
    }
    if owner == local {
        return CaptureDecision {
            status: CaptureStatus::Standby,
            reason: None,
            message: format!(
                "{address} is owned on this node's side ({local}): delivered here, captured by the {} side",
                if local == "cloud" { "onprem" } else { "cloud" }
            ),
            capturing_side: false,
        };
    }
    let capture = claim.capture.clone().unwrap_or_default();
    let ty = capture.type_.as_deref().map(str::trim).unwrap_or("");
    let mut d = match ty {
        "proxy-arp" => CaptureDecision {
            status: CaptureStatus::Captured,
            reason: None,
            message: String::new(),
            capturing_side: true,
        },
        "provider-secondary-ip" => {
            return CaptureDecision {
                capturing_side: true,
                ..blocked(
                    reason::CAPTURE_UNSUPPORTED,
                    format!(
                        "capture type provider-secondary-ip is plan-only: routerd shows the provider action plan and never executes it; {address} is not captured"
                    ),
                )
            };
        }
        other => {
            return blocked(
                reason::SPEC_INVALID,
                format!("capture type \"{other}\" is not implemented"),
            );
        }
    };
    if excluded(claim, address) {
        return CaptureDecision {
            capturing_side: true,
            ..blocked(
                reason::CAPTURE_EXCLUDED,
                format!("{address} is listed in spec.capture.excludeAddresses"),
            )
        };
    }
    let iface = capture.interface.as_deref().map(str::trim).unwrap_or("");
    let gate_closed = |why: String| CaptureDecision {
        status: CaptureStatus::Standby,
        reason: Some(reason::CAPTURE_GATE_INACTIVE),
        message: why,
        capturing_side: true,
    };
    match &input.peer_health {
        PeerHealth::Healthy => {}
        PeerHealth::Unhealthy(why) => {
            return gate_closed(format!(
                "overlay peer \"{}\" is not healthy ({why}); {address} is not captured so the owning side alone answers",
                input.peer
            ));
        }
        PeerHealth::Unchecked => {
            return gate_closed(format!(
                "no health check vouches for overlay peer \"{}\" (give a HybridRoute over it a healthCheckRef); {address} is not captured",
                input.peer
            ));
        }
    }
    let vrrp = capture
        .active_when
        .as_ref()
        .and_then(|a| a.type_.as_deref())
        .is_some_and(|t| t.trim() == "vrrp-master");
    if vrrp && input.holds_virtual_address != Some(true) {
        let va = capture
            .active_when
            .as_ref()
            .and_then(|a| a.virtual_address_ref.as_deref())
            .unwrap_or("");
        let held = match input.holds_virtual_address {
            Some(false) => "this node does not hold",
            _ => "it is not known (no observation yet) whether this node holds",
        };
        return gate_closed(format!(
            "activeWhen vrrp-master: {held} VirtualAddress \"{va}\" (its address is not assigned here); {address} is not captured so the VRRP master alone answers"
        ));
    }
    d.message = format!(
        "{address} is owned by the {owner} side; this node answers ARP for it on {iface} and delivers it over overlay peer \"{}\"",
        input.peer
    );
    d
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use routerd_model::spec::{ActiveWhen, ClaimCapture, ClaimDelivery};

    fn claim(owner: &str, ty: &str) -> RemoteAddressClaimSpec {
        RemoteAddressClaimSpec {
            domain_ref: Some("lan".into()),
            address: Some("192.0.2.50/32".into()),
            owner_side: Some(owner.into()),
            capture: Some(ClaimCapture {
                type_: Some(ty.into()),
                interface: Some("lan0".into()),
                ..ClaimCapture::default()
            }),
            delivery: Some(ClaimDelivery {
                peer_ref: Some("cloud".into()),
                mode: Some("route".into()),
                tunnel_interface: None,
            }),
        }
    }

    fn input<'a>(c: &'a RemoteAddressClaimSpec, health: PeerHealth) -> CaptureInput<'a> {
        CaptureInput {
            claim: c,
            peer: "cloud",
            local_side: Some("onprem"),
            spec_error: None,
            peer_health: health,
            holds_virtual_address: None,
            capture_device_missing: None,
        }
    }

    #[test]
    fn captured_on_the_non_owning_side_when_healthy() {
        let c = claim("cloud", "proxy-arp");
        let d = capture_decision(&input(&c, PeerHealth::Healthy));
        assert_eq!(d.status, CaptureStatus::Captured);
        assert_eq!(d.reason, None);
        assert!(d.capturing_side);
    }

    #[test]
    fn owning_side_is_standby_without_reason() {
        let c = claim("onprem", "proxy-arp");
        let d = capture_decision(&input(&c, PeerHealth::Healthy));
        assert_eq!(d.status, CaptureStatus::Standby);
        assert_eq!(d.reason, None);
        assert!(!d.capturing_side);
    }

    #[test]
    fn unhealthy_or_unchecked_peer_closes_the_gate() {
        let c = claim("cloud", "proxy-arp");
        for h in [PeerHealth::Unhealthy("down".into()), PeerHealth::Unchecked] {
            let d = capture_decision(&input(&c, h));
            assert_eq!(d.status, CaptureStatus::Standby);
            assert_eq!(d.reason, Some(reason::CAPTURE_GATE_INACTIVE));
        }
    }

    #[test]
    fn vrrp_master_needs_the_virtual_address() {
        let mut c = claim("cloud", "proxy-arp");
        if let Some(cap) = c.capture.as_mut() {
            cap.active_when = Some(ActiveWhen {
                type_: Some("vrrp-master".into()),
                virtual_address_ref: Some("vip".into()),
            });
        }
        let mut i = input(&c, PeerHealth::Healthy);
        assert_eq!(
            capture_decision(&i).reason,
            Some(reason::CAPTURE_GATE_INACTIVE)
        );
        i.holds_virtual_address = Some(true);
        assert_eq!(capture_decision(&i).status, CaptureStatus::Captured);
        // The address left (the other router became master): capture stops.
        i.holds_virtual_address = Some(false);
        let d = capture_decision(&i);
        assert_eq!(
            (d.status, d.reason),
            (CaptureStatus::Standby, Some(reason::CAPTURE_GATE_INACTIVE))
        );
        assert!(
            d.message.contains("does not hold VirtualAddress \"vip\""),
            "{}",
            d.message
        );
    }

    #[test]
    fn excluded_unsupported_and_invalid_are_blocked() {
        let mut c = claim("cloud", "proxy-arp");
        if let Some(cap) = c.capture.as_mut() {
            cap.exclude_addresses = vec!["192.0.2.48/30".into()];
        }
        let d = capture_decision(&input(&c, PeerHealth::Healthy));
        assert_eq!(
            (d.status, d.reason),
            (CaptureStatus::Blocked, Some(reason::CAPTURE_EXCLUDED))
        );
        let c = claim("cloud", "provider-secondary-ip");
        let d = capture_decision(&input(&c, PeerHealth::Healthy));
        assert_eq!(d.reason, Some(reason::CAPTURE_UNSUPPORTED));
        let c = claim("cloud", "proxy-arp");
        let mut i = input(&c, PeerHealth::Healthy);
        i.spec_error = Some("duplicate".into());
        assert_eq!(capture_decision(&i).reason, Some(reason::SPEC_INVALID));
        i.spec_error = None;
        i.capture_device_missing = Some("capture.interface \"lan\" does not exist".into());
        let d = capture_decision(&i);
        assert_eq!(
            (d.status, d.reason),
            (CaptureStatus::Blocked, Some(reason::DEVICE_NOT_READY))
        );
        assert!(d.message.contains("does not exist"), "{}", d.message);
        i.capture_device_missing = None;
        i.local_side = None;
        assert_eq!(capture_decision(&i).reason, Some(reason::SPEC_INVALID));
    }
}
