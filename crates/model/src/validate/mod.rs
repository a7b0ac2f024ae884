//! Validation: per-resource field rules, identity, and cross-resource
//! references, reported all at once.
//!
//! Messages keep routerd's wording; each diagnostic also carries the resource
//! id and the field path so the loader can attach file positions.

mod egress_router;
mod gateway;
mod ipv6;
mod net;
mod other;
pub mod refs;
mod util;
mod when;

use std::collections::HashMap;

pub use net::parse_status_range;
pub use refs::{NameIndex, Reference, StatusRef, references, status_refs};

use crate::Problems;
use crate::diag::Diagnostic;
use crate::id::Kind;
use crate::resource::{Resource, Spec};

/// Which configuration a validation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Context {
    /// Operator-written startup configuration: runtime-only kinds are refused.
    #[default]
    Startup,
    /// The effective configuration (startup plus dynamic parts).
    Effective,
}

/// A diagnostic together with the index of the resource it belongs to in the
/// validated slice (`None` for whole-config problems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Index into the validated slice.
    pub index: Option<usize>,
    /// The problem.
    pub diagnostic: Diagnostic,
}

/// Validates a whole configuration: every resource's fields, identity
/// clashes, and references against the same configuration.
pub fn validate(resources: &[Resource], ctx: Context) -> Vec<Finding> {
    validate_with_unmanaged(resources, &[], ctx)
}

/// [`validate`] where references may also name the routerd kinds kept
/// without being managed (`unmanaged`): such a reference is satisfied by
/// the resource existing; its status is never published, so a readiness
/// dependency on it stays unready.
pub fn validate_with_unmanaged(
    resources: &[Resource],
    unmanaged: &[crate::compat::Unmanaged],
    ctx: Context,
) -> Vec<Finding> {
    let mut idx = NameIndex::build(resources);
    for u in unmanaged {
        idx.insert_unmanaged(&u.kind, u.name());
    }
    let mut findings = Vec::new();
    let mut seen: HashMap<(&str, Kind, &str), usize> = HashMap::with_capacity(resources.len());
    let mut buf = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let id = r.id().to_string();
        if seen
            .insert((r.api_version.as_str(), r.kind(), r.name()), i)
            .is_some()
        {
            buf.push(Diagnostic::error(format!("duplicate resource {id}")).with_resource(&id));
        }
        validate_one(r, &idx, resources, ctx, &mut buf);
        findings.extend(buf.drain(..).map(|d| Finding {
            index: Some(i),
            diagnostic: d,
        }));
    }
    findings.extend(route_clashes(resources));
    findings.extend(hybrid_collisions(resources));
    findings.extend(gateway::vrrp_id_clashes(resources));
    for (i, path, cycle) in refs::status_ref_cycles(resources, &idx) {
        let Some(r) = resources.get(i) else {
            continue;
        };
        let id = r.id().to_string();
        findings.push(Finding {
            index: Some(i),
            diagnostic: Diagnostic::error(format!(
                "{id} {path} forms a dependency cycle: {cycle}; no resource in it can become ready"
            ))
            .with_resource(&id)
            .with_path(&path),
        });
    }
    findings
}

/// HybridRoute destinations that would lower onto a user route (same
/// destination or same synthetic name) or onto another HybridRoute's
/// route: routerd refuses the config (§1.8). Field problems of the
/// destinations are the field validator's; only clashes are added here.
fn hybrid_collisions(resources: &[Resource]) -> Vec<Finding> {
    if !resources.iter().any(|r| r.kind() == Kind::HybridRoute) {
        return Vec::new();
    }
    let lowering = crate::lower::lower(resources);
    let mut out = Vec::new();
    for p in lowering.problems().filter(|p| p.collision) {
        let index = resources.iter().position(|r| r.id() == p.hybrid_route);
        let id = p.hybrid_route.to_string();
        out.push(Finding {
            index,
            diagnostic: Diagnostic::error(p.message.clone())
                .with_resource(&id)
                .with_path(&p.path),
        });
    }
    out
}

/// Two unconditional IPv4Routes that would write the same kernel route
/// (main table, destination, metric): only one could be installed while
/// both would claim it, so the second is an error naming the first. Routes
/// with `when` may be alternatives; the daemon reports a runtime clash on
/// the loser (`Conflict`).
fn route_clashes(resources: &[Resource]) -> Vec<Finding> {
    let mut first: HashMap<(ipnet::Ipv4Net, i64), &Resource> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let Spec::IPv4Route(s) = &r.spec else {
            continue;
        };
        if s.when.is_some() {
            continue;
        }
        let dest = match s.destination.trim() {
            "" | "default" => "0.0.0.0/0",
            d => d,
        };
        let Ok(net) = dest.parse::<ipnet::Ipv4Net>() else {
            continue;
        };
        let key = (net.trunc(), s.metric.unwrap_or(0));
        match first.get(&key) {
            None => {
                first.insert(key, r);
            }
            Some(other) => {
                let id = r.id().to_string();
                out.push(Finding {
                    index: Some(i),
                    diagnostic: Diagnostic::error(format!(
                        "{id} spec.destination {} metric {} is also routed by {}: both would write the same kernel route",
                        key.0,
                        key.1,
                        other.id()
                    ))
                    .with_resource(&id)
                    .with_path("spec.destination"),
                });
            }
        }
    }
    out
}

/// Validates one resource against an index of the configuration it lives in
/// (`resources` is the slice `idx` positions refer to).
pub fn validate_one(
    r: &Resource,
    idx: &NameIndex<'_>,
    resources: &[Resource],
    ctx: Context,
    out: &mut Vec<Diagnostic>,
) {
    let id = r.id().to_string();
    let mut p = Problems::new(&id, out);
    let kind = r.kind();
    if !kind.accepts_api_version(&r.api_version) {
        p.at(
            "apiVersion",
            format!("must use apiVersion {}", kind.api_version()),
        );
    }
    if ctx == Context::Startup && kind.is_runtime_only() {
        p.at(
            "kind",
            "DynamicConfigPart is runtime-only: plugins produce it and `routerctl plan --dynamic` reads it; it cannot appear in startup config",
        );
    }
    match &r.spec {
        Spec::Interface(s) => net::interface(s, &mut p),
        Spec::DSLiteTunnel(s) => net::dslite(s, idx, &mut p),
        Spec::HealthCheck(s) => net::health_check(s, idx, &mut p),
        Spec::EgressRoutePolicy(s) => net::egress_policy(s, idx, &mut p),
        Spec::IPv4Route(s) => net::ipv4_route(s, &mut p),
        Spec::IPv6StaticRoute(s) => ipv6::ipv6_static_route(s, idx, &mut p),
        Spec::NAT44Rule(s) => net::nat44(s, idx, &mut p),
        Spec::IPAddressSet(s) => net::address_set(s, &mut p),
        Spec::IPv4StaticAddress(s) => net::static_address(s, idx, &mut p),
        Spec::PPPoESession(s) => net::pppoe(s, idx, &mut p),
        Spec::DHCPv4Client(s) => net::dhcpv4_client(s, idx, &mut p),
        Spec::DynamicOverridePolicy(s) => other::override_policy(s, &mut p),
        Spec::DynamicConfigPart(_) => {}
        Spec::Plugin(s) => other::plugin(s, &mut p),
        Spec::DynamicConfigSource(s) => other::dynamic_source(s, idx, &mut p),
        Spec::OverlayPeer(s) => other::overlay_peer(s, idx, &mut p),
        Spec::HybridRoute(s) => other::hybrid_route(s, idx, &mut p),
        Spec::CloudProviderProfile(s) => other::cloud_profile(s, &mut p),
        Spec::TunnelInterface(s) => other::tunnel_interface(s, &mut p),
        Spec::AddressMobilityDomain(s) => other::mobility_domain(s, idx, &mut p),
        Spec::RemoteAddressClaim(s) => other::address_claim(s, idx, resources, &mut p),
        Spec::EgressRouter(s) => egress_router::check(r, s, idx, &mut p),
        Spec::Node(s) => gateway::node(s, &mut p),
        Spec::ClientGroup(s) => gateway::client_group(s, &mut p),
        Spec::EgressGateway(s) => gateway::gateway(r, s, resources, idx, &mut p),
        Spec::EgressGatewayPolicy(s) => gateway::policy(r, s, resources, &mut p),
        Spec::VirtualAddress(s) => other::virtual_address(s, &mut p),
    }
    when::check(r, &mut p);
    refs::check_status_refs(r, idx, &mut p);
}

/// Convenience: only the diagnostics of [`validate`].
pub fn diagnostics(resources: &[Resource], ctx: Context) -> Vec<Diagnostic> {
    validate(resources, ctx)
        .into_iter()
        .map(|f| f.diagnostic)
        .collect()
}
