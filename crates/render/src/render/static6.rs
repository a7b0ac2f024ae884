//! IPv6StaticRoute → main-table IPv6 routes. Held like IPv4Route: a route
//! whose status is in a hold phase keeps what is installed.

use routerd_model::Kind;

use super::routes::{HOLD_PHASES, status_str};
use super::{Ctx, RenderProblem, Rendered, parse_addr, parse_net};
use crate::ir::{Family, MAIN_TABLE, Route, RouteKind};

pub(super) fn render_ipv6_static_routes(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::IPv6StaticRoute) {
        let Some(spec) = r.as_ipv6_static_route() else {
            continue;
        };
        let owner = r.id().to_string();
        let held = ctx
            .status_by_id(&owner)
            .and_then(|s| status_str(s, "phase"))
            .is_some_and(|p| HOLD_PHASES.contains(&p));
        if held {
            out.desired.retained.insert(owner);
            continue;
        }
        let route = (|| -> Result<Route, String> {
            let destination = parse_net(&spec.destination, Family::V6)
                .map_err(|e| format!("{owner} spec.destination must be an IPv6 CIDR: {e}"))?;
            let via = parse_addr(&spec.via, Family::V6)
                .map_err(|e| format!("{owner} spec.via must be an IPv6 address: {e}"))?;
            let metric = u32::try_from(spec.metric.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
            let mut route = Route::new(MAIN_TABLE, destination, metric, RouteKind::Unicast);
            route.gateway = Some(via);
            route.device = Some(ctx.alias(spec.interface.trim()));
            Ok(route)
        })();
        match route {
            Ok(route) => out.desired.routes.push(Route { owner, ..route }),
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
}
