//! IPv4Route → main-table routes (spec §1.6).

use routerd_model::{Kind, Resource};
use serde_json::Value;

use super::{Ctx, RenderProblem, Rendered, parse_addr, parse_net, split_kind_name};
use crate::ir::{Family, MAIN_TABLE, NextHop, Route, RouteKind};

/// Phases in which the route controller keeps what is installed
/// (fail-static): the route is neither rendered anew nor withdrawn.
pub(super) const HOLD_PHASES: [&str; 5] =
    ["Pending", "Error", "Standby", "NotApplicable", "Disabled"];

/// The phase of a route whose owner took it out of the kernel on purpose
/// (a HybridRoute whose HealthCheck does not vouch): neither rendered nor
/// retained, so the reconcile deletes it and a fallback takes over.
pub(crate) const WITHDRAWN_PHASE: &str = "Withdrawn";

pub(super) fn render_ipv4_routes(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::IPv4Route) {
        let owner = format!("{}/{}/{}", r.api_version, r.kind().as_str(), r.name());
        if ctx
            .status_by_id(&owner)
            .and_then(|s| status_str(s, "phase"))
            == Some(WITHDRAWN_PHASE)
        {
            continue;
        }
        match route_of(ctx, r, &owner) {
            Ok(Some(route)) => out.desired.routes.push(Route { owner, ..route }),
            Ok(None) => {
                out.desired.retained.insert(owner);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
}

pub(super) fn status_str<'v>(st: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v str> {
    st.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `Ok(None)`: the route is pending and keeps what is installed.
fn route_of(ctx: &Ctx<'_>, r: &Resource, id: &str) -> Result<Option<Route>, String> {
    let Some(spec) = r.as_ipv4_route() else {
        return Ok(None);
    };
    let dest = if spec.destination.trim().is_empty() {
        "0.0.0.0/0"
    } else {
        spec.destination.trim()
    };
    let destination = parse_net(dest, Family::V4)
        .map_err(|e| format!("{id} spec.destination is invalid: {e}"))?;
    let metric = u32::try_from(spec.metric.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
    let blackhole = spec.route_type() == "blackhole";
    let kind = if blackhole {
        RouteKind::Blackhole
    } else {
        RouteKind::Unicast
    };
    let mut route = Route::new(MAIN_TABLE, destination, metric, kind);
    if blackhole {
        return Ok(Some(route));
    }

    // The route controller's own status (routerd-select) decides when present.
    let status = ctx.status_by_id(id);
    let phase = status.and_then(|s| status_str(s, "phase"));
    if phase.is_some_and(|p| HOLD_PHASES.contains(&p)) {
        return Ok(None);
    }
    let (device, gateway) = match (phase, status) {
        (Some("Installed"), Some(st)) => (
            status_str(st, "device").map(str::to_string),
            status_str(st, "gateway").map(str::to_string),
        ),
        _ => (
            first(
                spec.device_from.as_ref().and_then(|s| ctx.status_value(s)),
                spec.device.as_deref(),
            ),
            first(
                spec.gateway_from.as_ref().and_then(|s| ctx.status_value(s)),
                spec.gateway.as_deref(),
            ),
        ),
    };

    // Weighted ECMP: a policy selected with weighted-ecmp publishes its
    // members; a route following it becomes a multipath route.
    if let Some(members) = spec
        .device_from
        .as_ref()
        .and_then(|s| split_kind_name(&s.resource))
        .filter(|(k, _)| *k == Kind::EgressRoutePolicy.as_str())
        .and_then(|(_, n)| ctx.status_of(Kind::EgressRoutePolicy, n))
        .and_then(|st| st.get("members"))
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    {
        route.nexthops = nexthops(members, Family::V4).map_err(|e| format!("{id} members: {e}"))?;
        if route.nexthops.len() == 1 {
            // One member is an ordinary route.
            let nh = route.nexthops.remove(0);
            route.gateway = nh.gateway;
            route.device = Some(nh.device);
        }
    } else {
        let Some(device) = device else {
            return Ok(None); // Pending, reason DeviceMissing.
        };
        route.device = Some(device);
        route.gateway = gateway
            .map(|g| parse_addr(&g, Family::V4))
            .transpose()
            .map_err(|e| format!("{id} spec.gateway must be an IPv4 address: {e}"))?;
    }
    let skipped = status
        .and_then(|s| s.get("preferredSourceSkipped"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !skipped
        && let Some(src) = spec
            .preferred_source
            .as_deref()
            .filter(|s| !s.trim().is_empty())
    {
        route.preferred_source = Some(
            parse_addr(src, Family::V4)
                .map_err(|e| format!("{id} spec.preferredSource must be an IPv4 address: {e}"))?,
        );
    }
    Ok(Some(route))
}

fn first(a: Option<String>, b: Option<&str>) -> Option<String> {
    a.or_else(|| {
        b.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// The weighted paths of a weighted-ecmp selection's `members`, gateways
/// of `family`.
pub(crate) fn nexthops(members: &[Value], family: Family) -> Result<Vec<NextHop>, String> {
    let mut out = Vec::new();
    for m in members {
        let device = m
            .get("device")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("member without device")?;
        let gateway = match m.get("gateway").and_then(Value::as_str) {
            Some(g) if !g.trim().is_empty() => Some(parse_addr(g, family)?),
            _ => None,
        };
        let w = m.get("weight").and_then(Value::as_i64).unwrap_or(1);
        if w <= 0 {
            continue; // weight 0 carries no traffic
        }
        let weight = u16::try_from(w.min(256)).unwrap_or(256);
        out.push(NextHop {
            gateway,
            device: device.to_string(),
            weight,
        });
    }
    out.sort();
    if out.is_empty() {
        return Err("no member with a positive weight".into());
    }
    Ok(out)
}
