//! Selective Address Mobility capture (RemoteAddressClaim): a neighbour
//! proxy entry for every claim whose status says `captureStatus:
//! Captured`, one on the overlay device of the owning side
//! (`overlayAnswerDevice`, so an L2 overlay resolves the address), and IPv4
//! forwarding on the claim's `forwardingDevices`.
//!
//! The decision is the claim follower's (`routerd_select::mobility`): the
//! renderer only carries it, so `routerctl plan` and the daemon capture
//! exactly what the status says. Without a status (offline, before the
//! first evaluation) nothing is captured: capture is never the default.
//! The delivery routes are ordinary lowered IPv4Routes and render with
//! the other routes.

use std::net::Ipv4Addr;

use routerd_model::Kind;
use serde_json::Value;

use super::{Ctx, Rendered};
use crate::capture::{Forwarding, NeighProxy};

pub(super) fn render_claims(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::RemoteAddressClaim) {
        let Some(st) = ctx.status_of(Kind::RemoteAddressClaim, r.name()) else {
            continue;
        };
        let owner = r.id().to_string();
        let text = |k: &str| {
            st.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if text("captureStatus") == Some("Captured")
            && let (Some(dev), Some(addr)) = (text("captureDevice"), text("address"))
            && let Some(address) = parse_host(addr)
        {
            out.desired.neigh_proxies.push(NeighProxy {
                device: dev.to_string(),
                address,
                announce: st.get("gratuitousARP").and_then(Value::as_bool) == Some(true),
                owner: owner.clone(),
            });
        }
        if let (Some(dev), Some(addr)) = (text("overlayAnswerDevice"), text("address"))
            && let Some(address) = parse_host(addr)
        {
            // Announced when added: a capturing side that already tried
            // to resolve the address on the overlay (it flipped first)
            // learns the owner at once instead of at its next ARP retry.
            out.desired.neigh_proxies.push(NeighProxy {
                device: dev.to_string(),
                address,
                announce: true,
                owner: owner.clone(),
            });
        }
        for d in st
            .get("forwardingDevices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out.desired.forwarding.push(Forwarding {
                device: d.to_string(),
                owner: owner.clone(),
            });
        }
    }
}

/// `192.0.2.50/32` or `192.0.2.50`.
fn parse_host(s: &str) -> Option<Ipv4Addr> {
    s.split_once('/').map_or(s, |(a, _)| a).parse().ok()
}
