//! IPv6 `hostTraffic` (spec §3.5): locally originated IPv6 leaves through
//! the policy's one candidate. When selection has the candidate
//! (`phase: Applied`) and its device is up with a usable global address:
//!
//! * `ip -6 route replace default via <gw> dev <if> table <T> metric <M|50> src <addr>`
//! * `ip -6 rule add priority <P> iif lo lookup <T>`
//!
//! The source address is what makes locally originated traffic leave with
//! the right address, so without one nothing new is installed: the policy
//! is reported `Pending` with reason `PreferredSourceUnavailable` and keeps
//! the last good route and rule. A kernel refusal of either is reported as
//! `HostPolicyApplyFailed` (see [`crate::reconcile`]). The link status
//! (`globalIPv6Addresses`, `phase`) comes from the daemon's link
//! observation; offline (`routerctl plan`) there is none, and the plan says
//! so with the same reason.

use routerd_model::spec::net::EgressCandidate;
use routerd_model::{Kind, Status};
use serde_json::Value;

use super::{Ctx, RenderProblem, Rendered, parse_addr};
use crate::ir::{Family, MAIN_TABLE, Route, RouteKind, Rule};

/// Reason of a hostTraffic policy without a usable source address.
pub const PREFERRED_SOURCE_UNAVAILABLE: &str = "PreferredSourceUnavailable";
/// Reason of a hostTraffic policy whose route or rule the kernel refused.
pub const HOST_POLICY_APPLY_FAILED: &str = "HostPolicyApplyFailed";

/// Metric of the host default route when the candidate gives none.
const DEFAULT_HOST_METRIC: u32 = 50;

pub(super) fn render_host_traffic(ctx: &Ctx<'_>, out: &mut Rendered) {
    let mut first_installed: Option<String> = None;
    for res in ctx.of_kind(Kind::EgressRoutePolicy) {
        let Some(spec) = res.as_egress_policy() else {
            continue;
        };
        if !spec.host_traffic() || Family::parse(spec.family()) != Some(Family::V6) {
            continue;
        }
        let id = res.id().to_string();
        out.desired.host_policies.insert(id.clone());
        let Some(c) = spec.candidates.first().filter(|c| c.is_enabled()) else {
            continue;
        };
        let applied = ctx
            .status_of(Kind::EgressRoutePolicy, res.name())
            .is_some_and(|st| st.get("phase").and_then(Value::as_str) == Some("Applied"));
        if !applied {
            // Nothing selected (yet): keep what is installed.
            out.desired.retained.insert(id);
            continue;
        }
        match host_objects(ctx, c, &id) {
            Ok((route, rule)) => {
                out.desired.routes.push(route);
                out.desired.rules.push(rule);
                first_installed.get_or_insert(id);
            }
            Err((reason, message)) => {
                out.desired.retained.insert(id.clone());
                out.problems.push(RenderProblem {
                    owner: id,
                    reason: reason.to_string(),
                    message,
                });
            }
        }
    }
    if let Some(owner) = first_installed {
        dslite_source_rules(ctx, &owner, out);
    }
}

/// First priority of the DS-Lite source rules (routerd's).
const DSLITE_SOURCE_PRIORITY: u32 = 10100;

/// `iif lo` selects every locally originated packet, the outer packets of
/// a DS-Lite tunnel included. A tunnel whose endpoint comes from the
/// delegated prefix must not follow the host policy: routerd gives its
/// local address `from <addr>/128 lookup main` at priority 10100, 10101, ...
/// (a tunnel on the WAN's own address stays with the host policy). The
/// rules belong to the first installed hostTraffic policy, as in routerd.
fn dslite_source_rules(ctx: &Ctx<'_>, owner: &str, out: &mut Rendered) {
    let mut priority = DSLITE_SOURCE_PRIORITY;
    for t in ctx.of_kind(Kind::DSLiteTunnel) {
        let Some(spec) = t.as_dslite() else {
            continue;
        };
        if spec.local_address_source.as_deref().map(str::trim) != Some("delegatedAddress") {
            continue;
        }
        let Some(local) = ctx
            .status_of(Kind::DSLiteTunnel, t.name())
            .and_then(|st| st.get("localIPv6"))
            .and_then(Value::as_str)
            .and_then(|a| parse_addr(a, Family::V6).ok())
        else {
            continue;
        };
        out.desired
            .rules
            .push(Rule::new(priority, 0, MAIN_TABLE, owner).with_from(local.into()));
        priority += 1;
    }
}

type Failure = (&'static str, String);

fn host_objects(ctx: &Ctx<'_>, c: &EgressCandidate, id: &str) -> Result<(Route, Rule), Failure> {
    let bad = |m: String| (super::not_rendered_reason(), m);
    let device = c
        .device_from
        .as_ref()
        .and_then(|s| ctx.status_value(s))
        .or_else(|| c.effective_interface().map(|i| ctx.alias(i)))
        .ok_or_else(|| {
            bad(format!(
                "{id} hostTraffic candidate has no outbound interface"
            ))
        })?;
    let gateway = c
        .gateway
        .as_deref()
        .map(str::to_string)
        .filter(|g| !g.trim().is_empty())
        .or_else(|| c.gateway_from.as_ref().and_then(|s| ctx.status_value(s)))
        .ok_or_else(|| bad(format!("{id} hostTraffic requires a static gateway")))?;
    let gateway = parse_addr(&gateway, Family::V6).map_err(|e| bad(format!("{id} {e}")))?;
    let table = u32::try_from(c.route_table()).unwrap_or(0);
    let priority = c.priority.and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    if table == 0 || priority == 0 {
        return Err(bad(format!(
            "{id} hostTraffic candidate needs a table and a priority"
        )));
    }
    let metric = match u32::try_from(c.metric()).unwrap_or(0) {
        0 => DEFAULT_HOST_METRIC,
        m => m,
    };
    let src = source_address(ctx, c, &device)
        .map_err(|m| (PREFERRED_SOURCE_UNAVAILABLE, format!("{id} {m}")))?;
    let mut route = Route::new(table, Family::V6.any(), metric, RouteKind::Unicast);
    route.gateway = Some(gateway);
    route.device = Some(device);
    route.preferred_source = Some(src);
    route.owner = id.to_string();
    let rule = Rule::new(priority, 0, table, id)
        .in_family(Family::V6)
        .with_iif("lo");
    Ok((route, rule))
}

/// The observed status of the link behind the candidate: the
/// interface-like resource it names, else the Interface whose `ifname` is
/// the device.
fn link_status<'a>(ctx: &Ctx<'a>, c: &EgressCandidate, device: &str) -> Option<&'a Status> {
    if let Some(name) = c
        .interface
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        for kind in [Kind::Interface, Kind::DSLiteTunnel, Kind::PPPoESession] {
            if ctx.find(kind, name).is_some() {
                return ctx.status_of(kind, name);
            }
        }
    }
    ctx.of_kind(Kind::Interface)
        .find(|r| r.as_interface().is_some_and(|i| i.ifname.trim() == device))
        .and_then(|r| ctx.status_of(Kind::Interface, r.name()))
}

/// The first usable global IPv6 address of the device, or why there is
/// none.
fn source_address(
    ctx: &Ctx<'_>,
    c: &EgressCandidate,
    device: &str,
) -> Result<std::net::IpAddr, String> {
    let st = link_status(ctx, c, device).ok_or_else(|| {
        format!(
            "has no observation of {device}'s IPv6 addresses; the daemon reads them from the kernel"
        )
    })?;
    let phase = st.get("phase").and_then(Value::as_str).unwrap_or("");
    if phase != "Up" {
        return Err(format!(
            "{device} is {}; no preferred source",
            if phase.is_empty() { "unknown" } else { phase }
        ));
    }
    st.get("globalIPv6Addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| parse_addr(a, Family::V6).ok())
        .ok_or_else(|| {
            format!("{device} has no global, non-tentative, non-deprecated IPv6 address")
        })
}
