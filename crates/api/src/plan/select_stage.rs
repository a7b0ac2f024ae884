//! Selection stage of the plan: what routerd would select next, given the
//! effective configuration and the `--state` snapshot, and how the routes
//! and NAT rules that follow the selections would react.
//!
//! The previous status of every resource comes from the snapshot (falling
//! back to a `status` written in the config file), so replaying a live
//! router's state offline shows its next step, holds and dwell included.

use chrono::{DateTime, Utc};
use routerd_model::{Kind, Resource, StateSnapshot};
use routerd_select::follow::hybrid::Hybrid;
use routerd_select::follow::{
    FollowOptions, FollowOutcome, Subject, ipv4_route, ipv4_static_address, ipv6_static_route,
    nat44,
};
use routerd_select::{PolicySet, SelectOptions, StatusSource, World};

use super::{PlanDocument, PlanError, PlanInputs};

pub(super) fn run(inputs: &PlanInputs, doc: &mut PlanDocument) -> Result<(), PlanError> {
    let now = inputs.now;
    // Statuses as the daemon would read them: the snapshot wins over a
    // status embedded in the file.
    let mut previous = StateSnapshot::new();
    for r in &doc.effective {
        if let Some(st) = &r.status {
            previous.insert(r.id().to_string(), st.clone());
        }
    }
    previous.extend(inputs.state.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut current = previous.clone();

    let set = PolicySet::new(&doc.effective);
    let options = SelectOptions::default();
    for i in 0..set.len() {
        let Some(outcome) = set.evaluate(i, &previous, &previous, now, options) else {
            continue;
        };
        let Some(id) = set.id(i) else { continue };
        let decision = serde_json::to_value(&outcome.decision)
            .map_err(|e| PlanError::Invalid(format!("{id}: decision record: {e}")))?;
        doc.decisions.insert(id.to_string(), decision);
        doc.events.extend(outcome.events);
        current.insert(id.to_string(), outcome.status.clone());
        doc.status.insert(id.to_string(), outcome.status);
    }

    for (id, o) in follow_all(&doc.effective, set.world(), &current, &previous, now) {
        doc.events.extend(o.events);
        doc.status.insert(id, o.status);
    }
    Ok(())
}

/// Evaluates every IPv4Route, IPv6StaticRoute, IPv4StaticAddress,
/// NAT44Rule, EgressRouter, HybridRoute and OverlayPeer of `effective`
/// against the statuses selection left in `current` (their own previous
/// status is read from `previous`), in configuration order. The plan and
/// the daemon's step both call this, so they follow selections the same way.
pub fn follow_all(
    effective: &[Resource],
    world: &World,
    current: &dyn StatusSource,
    previous: &dyn StatusSource,
    now: DateTime<Utc>,
) -> Vec<(String, FollowOutcome)> {
    follow_all_with_wake(effective, world, current, previous, now).0
}

/// [`follow_all`], also returning when a follower's evaluation can change
/// with no new observation (a HybridRoute's health gate ends its
/// hysteresis hold): the daemon arms a timer for it.
pub fn follow_all_with_wake(
    effective: &[Resource],
    world: &World,
    current: &dyn StatusSource,
    previous: &dyn StatusSource,
    now: DateTime<Utc>,
) -> (Vec<(String, FollowOutcome)>, Option<DateTime<Utc>>) {
    let follow = FollowOptions::default();
    let mut out = Vec::new();
    // CloudEdge: the health gates first, since the lowered routes read them.
    let mut cloud = Hybrid::new(effective);
    if let Some(h) = cloud.as_mut() {
        h.gate_all(current, previous, now);
    }
    for r in effective {
        if !matches!(
            r.kind(),
            Kind::IPv4Route
                | Kind::IPv6StaticRoute
                | Kind::NAT44Rule
                | Kind::IPv4StaticAddress
                | Kind::EgressRouter
        ) {
            continue;
        }
        let id = r.id().to_string();
        let who = Subject {
            api_version: &r.api_version,
            name: r.name(),
        };
        let prev = previous.status(&id);
        let o = match r.kind() {
            Kind::IPv4Route => r.as_ipv4_route().map(|s| {
                let o = ipv4_route(who, s, current, prev, now, &follow);
                match &cloud {
                    Some(h) => h.route_outcome(r, o, prev, now),
                    None => o,
                }
            }),
            Kind::IPv6StaticRoute => r
                .as_ipv6_static_route()
                .map(|s| ipv6_static_route(who, s, world, prev, now, &follow)),
            Kind::IPv4StaticAddress => r
                .as_static_address()
                .map(|s| ipv4_static_address(who, s, world, prev, now, &follow)),
            Kind::NAT44Rule => r
                .as_nat44()
                .map(|s| nat44(who, s, world, current, prev, now, &follow)),
            Kind::EgressRouter => r.as_egress_router().map(|s| {
                routerd_select::follow::egress_router(who, r, s, world, current, prev, now)
            }),
            _ => None,
        };
        if let Some(o) = o {
            out.push((id, o));
        }
    }
    // The HybridRoutes and RemoteAddressClaims report their routes'
    // statuses of this pass.
    let routes: StateSnapshot = out
        .iter()
        .filter(|(id, _)| id.contains("/IPv4Route/"))
        .map(|(id, o)| (id.clone(), o.status.clone()))
        .collect();
    out.extend(routerd_select::follow::mobility::mobility_statuses(
        effective,
        cloud.as_ref(),
        &routes,
        current,
        previous,
        now,
    ));
    let Some(h) = cloud else {
        return (out, None);
    };
    for r in h.hybrid_routes() {
        let id = r.id().to_string();
        let o = h.hybrid_route_status(r, &routes, current, previous.status(&id), now);
        out.push((id, o));
    }
    for r in h.peers() {
        let id = r.id().to_string();
        if let Some(o) = h.overlay_peer_status(r, current, previous.status(&id)) {
            out.push((id, o));
        }
    }
    (out, h.wake_at())
}
