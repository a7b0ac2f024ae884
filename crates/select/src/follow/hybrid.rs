//! CloudEdge L3 statuses (routerd-spec §1.8): HybridRoute and OverlayPeer,
//! and the health gate that withdraws a HybridRoute's lowered routes.
//!
//! routerd only *reports* an unhealthy `healthCheckRef`; here the lowered
//! routes are withdrawn from the kernel while the check does not vouch for
//! the overlay, so a less specific static fallback (or a masked route whose
//! mask lifts) carries the traffic instead of a dead tunnel. Withdrawal,
//! not a raised metric: routerd refuses a user route with the same
//! destination as a lowered one, so a fallback is always a covering prefix
//! and longest-prefix match already prefers the overlay while it is there.
//!
//! The gate uses selection's availability rule and failback control
//! (ADR 0009): the check vouches under [`crate::readiness::health_ready`]
//! (Healthy, the failure grace, freshness); a carrying gate closes at once
//! when it stops vouching, and a closed gate reopens only once it vouches
//! and [`HYBRID_HYSTERESIS`] has passed since the last change (selection's
//! default dwell), so a flapping overlay does not flap the routes.
//!
//! Statuses come from one pass over the effective configuration: gates
//! first (the routes read them), then the routes, then the HybridRoutes and
//! peers, which report the routes' new statuses (no one-step lag).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use routerd_model::lower::{Lowering, lower, owner_of};
use routerd_model::spec::{HealthCheckSpec, HybridRouteSpec, OverlayPeerSpec, TunnelInterfaceSpec};
use routerd_model::{Event, GoDuration, Kind, ObjectRef, Resource, Status};
use serde_json::{Value, json};

use super::{FollowOutcome, outcome};
use crate::observe::{HealthObservation, StatusSource, phase_of};
use crate::readiness::health_ready;
use crate::time::{add, format_rfc3339_nano, parse_rfc3339};

/// The dwell before withdrawn routes return: selection's default
/// `hysteresis`, so both sides of a failover hold alike.
pub const HYBRID_HYSTERESIS: GoDuration = routerd_model::spec::DEFAULT_HYSTERESIS;
/// A lowered route's phase while its HybridRoute's check does not vouch:
/// unlike the fail-static phases, the renderer removes the route.
pub const WITHDRAWN_PHASE: &str = "Withdrawn";
/// Event on the HybridRoute when its routes are withdrawn.
pub const WITHDRAWN_EVENT: &str = "routerd.hybrid.routes.withdrawn";
/// Event on the HybridRoute when its routes return.
pub const RESTORED_EVENT: &str = "routerd.hybrid.routes.restored";
/// Event on the HybridRoute when its phase or reason changes.
pub const PHASE_EVENT: &str = "routerd.hybrid.route.phase";
/// routerd's IPv4Route removal event, on a withdrawn lowered route.
pub const ROUTE_REMOVED_EVENT: &str = "routerd.ipv4.route.removed";
/// Below this the overlay cannot carry IPv6 (routerd's `MinimumIPv6MTU`).
pub const MINIMUM_IPV6_MTU: i64 = 1280;

/// Bytes an underlay adds (routerd's constants; fou and gue from routerd's
/// table in §1.8). A vxlan TunnelInterface is reached with `route`: its
/// link MTU already excludes the 50 bytes of encapsulation.
pub fn overhead(underlay_type: &str, gre_key: bool) -> i64 {
    match underlay_type.trim() {
        "wireguard" | "tailscale" => 80,
        "ipsec" => 74,
        "ipip" => 20,
        "gre" => 24 + if gre_key { 4 } else { 0 },
        "fou" => 28,
        "gue" => 32,
        _ => 0,
    }
}

/// A TunnelInterface's MTU when the kernel says nothing: its `mtu`, else
/// the kernel default of its mode.
fn tunnel_default_mtu(s: &TunnelInterfaceSpec) -> Option<i64> {
    s.mtu
        .filter(|m| *m > 0)
        .or(match s.mode.as_deref().map(str::trim) {
            Some("ipip") => Some(1480),
            Some("gre") => Some(1476),
            Some("vxlan") => Some(1450),
            _ => None,
        })
}

/// Whether a HybridRoute's lowered routes may carry traffic now.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The routes are (to be) installed.
    pub carrying: bool,
    /// When `carrying` last changed (RFC 3339).
    pub since: String,
    /// When a carrying gate last closed (what the hysteresis counts from);
    /// `None` for a gate closed since startup.
    pub withdrawn_at: Option<String>,
    /// The check's phase as reported.
    pub health_phase: String,
    /// Why the check does not vouch (empty when it does).
    pub why: String,
    /// A closed gate that vouches again reopens at this instant.
    pub hold_until: Option<DateTime<Utc>>,
    /// `carrying` changed in this evaluation.
    pub changed: bool,
}

/// What the CloudEdge statuses read from the effective configuration.
#[derive(Debug)]
pub struct Hybrid<'a> {
    /// The lowering of the configuration (what the lowered routes are).
    pub lowering: Lowering,
    hybrids: Vec<&'a Resource>,
    peers: HashMap<&'a str, &'a OverlayPeerSpec>,
    peer_resources: Vec<&'a Resource>,
    tunnels: HashMap<&'a str, &'a Resource>,
    interfaces: Vec<&'a Resource>,
    health: HashMap<&'a str, &'a HealthCheckSpec>,
    gates: BTreeMap<String, Gate>,
}

impl<'a> Hybrid<'a> {
    /// `None` when the configuration has no HybridRoute and no OverlayPeer
    /// (nothing to do, nothing to pay).
    pub fn new(effective: &'a [Resource]) -> Option<Hybrid<'a>> {
        if !effective
            .iter()
            .any(|r| matches!(r.kind(), Kind::HybridRoute | Kind::OverlayPeer))
        {
            return None;
        }
        let mut h = Hybrid {
            // The effective view carries the lowering; lower again only
            // to learn why a HybridRoute owns no route.
            lowering: Lowering::from_effective(effective)
                .unwrap_or_else(|| lower(effective.iter().filter(|r| owner_of(r).is_none()))),
            hybrids: Vec::new(),
            peers: HashMap::new(),
            peer_resources: Vec::new(),
            tunnels: HashMap::new(),
            interfaces: Vec::new(),
            health: HashMap::new(),
            gates: BTreeMap::new(),
        };
        for r in effective {
            match r.kind() {
                Kind::HybridRoute => h.hybrids.push(r),
                Kind::OverlayPeer => {
                    if let Some(s) = r.as_overlay_peer() {
                        h.peers.insert(r.name(), s);
                        h.peer_resources.push(r);
                    }
                }
                Kind::TunnelInterface => {
                    h.tunnels.insert(r.name(), r);
                }
                Kind::Interface => h.interfaces.push(r),
                Kind::HealthCheck => {
                    if let Some(s) = r.as_health_check() {
                        h.health.insert(r.name(), s);
                    }
                }
                _ => {}
            }
        }
        Some(h)
    }

    /// Evaluates every HybridRoute's health gate; the lowered routes and
    /// the HybridRoute statuses read the result.
    pub fn gate_all(
        &mut self,
        current: &dyn StatusSource,
        previous: &dyn StatusSource,
        now: DateTime<Utc>,
    ) {
        let mut gates = BTreeMap::new();
        for r in &self.hybrids {
            let Some(spec) = r.as_hybrid_route() else {
                continue;
            };
            let prev = previous.status(&r.id().to_string());
            if let Some(g) = self.gate(spec, current, prev, now) {
                gates.insert(r.name().to_string(), g);
            }
        }
        self.gates = gates;
    }

    fn gate(
        &self,
        spec: &HybridRouteSpec,
        current: &dyn StatusSource,
        previous: Option<&Status>,
        now: DateTime<Utc>,
    ) -> Option<Gate> {
        let hc = spec
            .health_check_ref
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())?;
        let hc = hc.strip_prefix("HealthCheck/").unwrap_or(hc);
        let id = format!("{}/HealthCheck/{hc}", Kind::HealthCheck.api_version());
        let obs =
            HealthObservation::from_status(hc, self.health.get(hc).copied(), current.status(&id));
        let mut reasons = Vec::new();
        let mut notes = Vec::new();
        let vouches = health_ready(&obs, now, &mut reasons, &mut notes) && reasons.is_empty();
        let why = reasons
            .iter()
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let was = previous
            .and_then(|p| p.get("carrying"))
            .and_then(Value::as_bool);
        let was_since = previous
            .and_then(|p| p.get("carryingSince"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        // Only a gate that carried and closed is held: a gate closed since
        // startup (no check result yet) opens with the first passing one,
        // as selection's first choice is not held either.
        let was_withdrawn = previous
            .and_then(|p| p.get("withdrawnAt"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        let stamp = format_rfc3339_nano(now);
        let keep = |t: Option<DateTime<Utc>>| t.map_or_else(|| stamp.clone(), format_rfc3339_nano);
        let (carrying, since, withdrawn_at, hold_until, changed) = match was {
            None => (vouches, stamp.clone(), None, None, !vouches),
            Some(true) if !vouches => (false, stamp.clone(), Some(now), None, true),
            Some(true) => (true, keep(was_since), None, None, false),
            Some(false) if vouches => {
                let until = was_withdrawn.map(|s| add(s, HYBRID_HYSTERESIS));
                match until {
                    Some(u) if now < u => (false, keep(was_since), was_withdrawn, Some(u), false),
                    _ => (true, stamp.clone(), None, None, true),
                }
            }
            Some(false) => (false, keep(was_since), was_withdrawn, None, false),
        };
        Some(Gate {
            carrying,
            since,
            withdrawn_at: withdrawn_at.map(format_rfc3339_nano),
            health_phase: obs.phase.to_string(),
            why,
            hold_until,
            changed,
        })
    }

    /// The gate of HybridRoute `name` (`None` without `healthCheckRef`).
    pub fn gate_of(&self, name: &str) -> Option<&Gate> {
        self.gates.get(name)
    }

    /// When a held gate reopens without a new observation: the daemon
    /// arms a timer for the earliest.
    pub fn wake_at(&self) -> Option<DateTime<Utc>> {
        self.gates.values().filter_map(|g| g.hold_until).min()
    }

    /// A lowered route's status: the route follower's own, or `Withdrawn`
    /// while its HybridRoute's gate is closed.
    pub fn route_outcome(
        &self,
        route: &Resource,
        base: FollowOutcome,
        previous: Option<&Status>,
        now: DateTime<Utc>,
    ) -> FollowOutcome {
        let Some(owner) = owner_of(route) else {
            return base;
        };
        let Some(g) = self.gate_of(owner).filter(|g| !g.carrying) else {
            return base;
        };
        let Some(spec) = route.as_ipv4_route() else {
            return base;
        };
        let device = spec.device.clone().unwrap_or_default();
        let mut st = Status::new();
        st.insert("phase".into(), json!(WITHDRAWN_PHASE));
        st.insert("reason".into(), json!("HealthCheckUnhealthy"));
        st.insert("message".into(), json!(withdrawn_message(owner, g)));
        st.insert("ownerRef".into(), json!(format!("HybridRoute/{owner}")));
        st.insert("destination".into(), json!(spec.destination));
        st.insert("device".into(), json!(device));
        st.insert(
            "gateway".into(),
            json!(spec.gateway.clone().unwrap_or_default()),
        );
        st.insert("metric".into(), json!(spec.metric.unwrap_or(0)));
        st.insert("withdrawnAt".into(), json!(g.since));
        let mut events = Vec::new();
        if previous.map(phase_of) != Some(WITHDRAWN_PHASE) {
            events.push(
                Event::info(
                    ROUTE_REMOVED_EVENT,
                    ObjectRef {
                        api_version: route.api_version.clone(),
                        kind: Kind::IPv4Route.as_str().into(),
                        name: route.name().into(),
                    },
                    now,
                )
                .attr("destination", spec.destination.as_str())
                .attr("device", device.as_str()),
            );
        }
        outcome(st, previous, events)
    }

    /// Where a peer's traffic leaves and how large its packets may be.
    fn mtu(&self, peer: &OverlayPeerSpec, current: &dyn StatusSource) -> Mtu {
        let u = peer.underlay.clone().unwrap_or_default();
        let ty = u.type_.as_deref().map(str::trim).unwrap_or("").to_string();
        let iface = u
            .interface
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        let tunnel = self.tunnels.get(iface.as_str()).copied();
        let tspec = tunnel.and_then(Resource::as_tunnel_interface);
        let device = tspec
            .and_then(|s| s.ifname.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(iface.as_str())
            .to_string();
        let gre_key = tspec.and_then(|s| s.key).is_some_and(|k| k != 0);
        let kernel = |r: &Resource| {
            current
                .status(&r.id().to_string())
                .and_then(|s| s.get("mtu"))
                .and_then(Value::as_i64)
        };
        let (underlay_mtu, device_status) = match tunnel {
            Some(t) => (
                kernel(t).or_else(|| tspec.and_then(tunnel_default_mtu)),
                current.status(&t.id().to_string()),
            ),
            None => {
                let i = self.interfaces.iter().find(|r| {
                    r.name() == iface || r.as_interface().is_some_and(|s| s.ifname == device)
                });
                (
                    i.and_then(|r| kernel(r).or_else(|| r.as_interface().and_then(|s| s.mtu))),
                    i.and_then(|r| current.status(&r.id().to_string())),
                )
            }
        };
        // The largest packet a host behind another routerd interface may
        // send: what the overlay should carry without fragmentation.
        let lan = self
            .interfaces
            .iter()
            .filter_map(|r| {
                let s = r.as_interface()?;
                if s.ifname == device || r.name() == iface {
                    return None;
                }
                Some((kernel(r).or(s.mtu)?, s.ifname.clone()))
            })
            .max();
        Mtu {
            device,
            underlay_type: ty.clone(),
            underlay_mtu,
            overhead: overhead(&ty, gre_key),
            lan,
            device_phase: device_status.map(|s| phase_of(s).to_string()),
        }
    }

    /// The status of HybridRoute `r` from its lowering, its gate, its
    /// routes' new statuses (`routes`) and the kernel's MTUs.
    pub fn hybrid_route_status(
        &self,
        r: &Resource,
        routes: &dyn StatusSource,
        current: &dyn StatusSource,
        previous: Option<&Status>,
        now: DateTime<Utc>,
    ) -> FollowOutcome {
        let name = r.name();
        let spec = r.as_hybrid_route().cloned().unwrap_or_default();
        let l = self
            .lowering
            .by_route
            .get(name)
            .cloned()
            .unwrap_or_default();
        let mut st = Status::new();
        st.insert("phase".into(), json!("Ready"));
        st.insert("peerRef".into(), json!(l.peer));
        st.insert("defaultRouteUntouched".into(), json!(true));
        st.insert(
            "message".into(),
            json!("hybrid routes lowered to IPv4Route resources"),
        );
        let mut items = Vec::new();
        let mut not_installed = false;
        for lr in &l.routes {
            let id = format!("{}/IPv4Route/{}", Kind::IPv4Route.api_version(), lr.name);
            let rs = routes.status(&id).or_else(|| current.status(&id));
            let phase = rs.map(phase_of).unwrap_or("");
            not_installed |= phase != "Installed";
            let mut item = serde_json::Map::new();
            item.insert("name".into(), json!(lr.name));
            item.insert("destination".into(), json!(lr.destination.to_string()));
            item.insert("device".into(), json!(lr.device));
            item.insert("gateway".into(), json!(lr.gateway));
            item.insert("metric".into(), json!(lr.metric));
            if !phase.is_empty() {
                item.insert("phase".into(), json!(phase));
            }
            if let Some(reason) = rs.and_then(|s| s.get("reason")).and_then(Value::as_str) {
                item.insert("reason".into(), json!(reason));
            }
            items.push(Value::Object(item));
        }
        st.insert("routes".into(), Value::Array(items));
        fn set(st: &mut Status, phase: &str, reason: &str, message: String) {
            st.insert("phase".into(), json!(phase));
            st.insert("reason".into(), json!(reason));
            st.insert("message".into(), json!(message));
        }
        if l.routes.is_empty() && !spec.destination_cidrs.is_empty() {
            set(
                &mut st,
                "Degraded",
                "RoutesNotLowered",
                "no lowered IPv4Route resources found".into(),
            );
        } else if not_installed {
            set(
                &mut st,
                "Degraded",
                "RouteNotInstalled",
                "one or more lowered IPv4Route resources are not installed".into(),
            );
        }
        let gate = self.gate_of(name);
        if let Some(h) = spec
            .health_check_ref
            .as_deref()
            .filter(|h| !h.trim().is_empty())
        {
            st.insert("healthCheckRef".into(), json!(h));
            if let Some(g) = gate {
                st.insert("healthCheckPhase".into(), json!(g.health_phase));
                st.insert("carrying".into(), json!(g.carrying));
                st.insert("carryingSince".into(), json!(g.since));
                if let Some(w) = &g.withdrawn_at {
                    st.insert("withdrawnAt".into(), json!(w));
                }
                if !g.carrying {
                    let message = match g.hold_until {
                        Some(u) => format!(
                            "HealthCheck {h} vouches again; the lowered routes return at {} (hysteresis {HYBRID_HYSTERESIS})",
                            format_rfc3339_nano(u)
                        ),
                        None => withdrawn_message(name, g),
                    };
                    if let Some(u) = g.hold_until {
                        st.insert("holdUntil".into(), json!(format_rfc3339_nano(u)));
                    }
                    set(&mut st, "Degraded", "HealthCheckUnhealthy", message);
                }
            }
        }
        if !l.problems.is_empty() {
            let msg: Vec<&str> = l.problems.iter().map(|p| p.message.as_str()).collect();
            set(&mut st, "Degraded", "SpecInvalid", msg.join("; "));
        }
        if let Some(peer) = self.peers.get(l.peer.as_str()) {
            self.mtu(peer, current).write(&mut st);
        }

        let who = ObjectRef {
            api_version: r.api_version.clone(),
            kind: Kind::HybridRoute.as_str().into(),
            name: name.into(),
        };
        let mut events = Vec::new();
        if let Some(g) = gate.filter(|g| g.changed) {
            let (t, verb) = if g.carrying {
                (RESTORED_EVENT, "restored")
            } else {
                (WITHDRAWN_EVENT, "withdrawn")
            };
            let mut e = Event::info(t, who.clone(), now)
                .attr("routes", l.routes.len().to_string())
                .attr("healthCheckPhase", g.health_phase.as_str());
            e.reason = if g.carrying {
                "HealthCheckHealthy".into()
            } else {
                "HealthCheckUnhealthy".into()
            };
            e.message = format!("{} lowered route(s) {verb}", l.routes.len());
            if !g.carrying && !g.why.is_empty() {
                e.message = format!("{}: {}", e.message, g.why);
            }
            events.push(e);
        }
        let key = |s: Option<&Status>| {
            s.map(|s| {
                (
                    phase_of(s).to_string(),
                    s.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            })
        };
        let (now_key, prev_key) = (key(Some(&st)), key(previous));
        if now_key != prev_key
            && let Some((phase, reason)) = now_key
        {
            let mut e = Event::info(PHASE_EVENT, who, now).attr("phase", phase.as_str());
            e.reason = reason.clone();
            e.message = st
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if phase != "Ready" {
                e.severity = "warning".into();
            }
            events.push(e.attr("reason", reason.as_str()));
        }
        outcome(st, previous, events)
    }

    /// The status of OverlayPeer `r`: its identity, underlay, MTU and the
    /// HybridRoutes routed through it.
    pub fn overlay_peer_status(
        &self,
        r: &Resource,
        current: &dyn StatusSource,
        previous: Option<&Status>,
    ) -> Option<FollowOutcome> {
        let spec = r.as_overlay_peer()?;
        let u = spec.underlay.clone().unwrap_or_default();
        let mut st = Status::new();
        let mtu = self.mtu(spec, current);
        st.insert("phase".into(), json!("Ready"));
        st.insert(
            "nodeID".into(),
            json!(spec.node_id.clone().unwrap_or_default()),
        );
        st.insert("role".into(), json!(spec.role.clone().unwrap_or_default()));
        st.insert("underlayType".into(), json!(mtu.underlay_type));
        st.insert(
            "underlayInterface".into(),
            json!(u.interface.clone().unwrap_or_default()),
        );
        if let Some(remote) = &spec.remote {
            if let Some(n) = &remote.node_id {
                st.insert("remoteNodeID".into(), json!(n));
            }
            if let Some(a) = &remote.address {
                st.insert("remoteAddress".into(), json!(a));
            }
        }
        let users: Vec<&str> = self
            .lowering
            .by_route
            .iter()
            .filter(|(_, l)| l.peer == r.name())
            .map(|(n, _)| n.as_str())
            .collect();
        st.insert("hybridRoutes".into(), json!(users));
        if mtu.device.is_empty() {
            if !matches!(mtu.underlay_type.as_str(), "tailscale" | "ipsec" | "route") {
                st.insert("phase".into(), json!("Pending"));
                st.insert("reason".into(), json!("UnderlayInterfaceMissing"));
            }
        } else if let Some(p) = mtu.device_phase.as_deref().filter(|p| *p != "Up") {
            st.insert("phase".into(), json!("Degraded"));
            st.insert("reason".into(), json!("UnderlayDown"));
            st.insert(
                "message".into(),
                json!(format!("underlay device {} is {p}", mtu.device)),
            );
        }
        mtu.write(&mut st);
        Some(outcome(st, previous, Vec::new()))
    }

    /// The OverlayPeers of the configuration.
    pub fn peers(&self) -> &[&'a Resource] {
        &self.peer_resources
    }

    /// The HybridRoutes of the configuration.
    pub fn hybrid_routes(&self) -> &[&'a Resource] {
        &self.hybrids
    }
}

/// A HybridRoute status with what the kernel did to its routes laid over
/// `routes[]` (`fault_of` gives a route id's reported phase and reason when
/// the reconcile kept it back or the kernel refused it): the follower runs
/// before the reconcile, so only the daemon's report knows. A route not
/// carried makes the HybridRoute `Degraded`, `RouteNotInstalled`, unless a
/// stronger reason (health, spec) already holds. `None`: nothing to lay.
pub fn overlay_route_faults(
    status: &Status,
    fault_of: impl Fn(&str) -> Option<(String, String)>,
) -> Option<Status> {
    let routes = status.get("routes").and_then(Value::as_array)?;
    let mut changed = false;
    let mut items = routes.clone();
    for item in &mut items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let id = format!("{}/IPv4Route/{name}", Kind::IPv4Route.api_version());
        if let Some((phase, reason)) = fault_of(&id)
            && let Some(o) = item.as_object_mut()
        {
            o.insert("phase".into(), json!(phase));
            o.insert("reason".into(), json!(reason));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut out = status.clone();
    out.insert("routes".into(), Value::Array(items));
    if phase_of(status) == "Ready" {
        out.insert("phase".into(), json!("Degraded"));
        out.insert("reason".into(), json!("RouteNotInstalled"));
        out.insert(
            "message".into(),
            json!("one or more lowered IPv4Route resources are not installed"),
        );
    }
    Some(out)
}

fn withdrawn_message(owner: &str, g: &Gate) -> String {
    if g.why.is_empty() {
        format!("HybridRoute {owner} withdrew its lowered routes: its HealthCheck does not vouch")
    } else {
        format!("HybridRoute {owner} withdrew its lowered routes: {}", g.why)
    }
}

struct Mtu {
    device: String,
    underlay_type: String,
    underlay_mtu: Option<i64>,
    overhead: i64,
    lan: Option<(i64, String)>,
    device_phase: Option<String>,
}

impl Mtu {
    fn write(&self, st: &mut Status) {
        if !self.device.is_empty() {
            st.insert("underlayDevice".into(), json!(self.device));
        }
        st.insert("tunnelOverhead".into(), json!(self.overhead));
        let Some(m) = self.underlay_mtu.filter(|m| *m > 0) else {
            return;
        };
        let est = m - self.overhead;
        st.insert("underlayMTU".into(), json!(m));
        st.insert("estimatedMTU".into(), json!(est));
        let mut warn = Vec::new();
        if est > 0 && est < MINIMUM_IPV6_MTU {
            warn.push(format!(
                "estimated MTU {est} is below IPv6 minimum {MINIMUM_IPV6_MTU}"
            ));
        }
        if let Some((lan, ifname)) = &self.lan
            && est < *lan
        {
            st.insert("lanMTU".into(), json!(lan));
            warn.push(format!(
                "estimated MTU {est} is below the LAN MTU {lan} ({ifname}); larger packets need path MTU discovery or fragmentation"
            ));
        }
        if !warn.is_empty() {
            st.insert("mtuWarning".into(), json!(warn.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::follow::{FollowOptions, Subject, ipv4_route};
    use routerd_model::StateSnapshot;
    use routerd_model::lower::with_lowered;

    const CFG: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1, mtu: 1500}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: underlay}
spec: {ifname: vx0}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: overlay-hc}
spec: {target: 10.20.0.1, interval: 5s}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: azure}
spec: {role: cloud, nodeID: a1, underlay: {type: route, interface: vx0}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: cloud}
spec: {peerRef: azure, healthCheckRef: overlay-hc, destinationCIDRs: [10.20.0.0/16]}
";

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn effective() -> Vec<Resource> {
        let mut l = routerd_model::Loaded::new();
        l.add_file("c.yaml", CFG);
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        with_lowered(l.resources).0
    }

    fn health(phase: &str, at: &str) -> (String, Status) {
        let mut st = Status::new();
        st.insert("phase".into(), json!(phase));
        st.insert("lastCheckedAt".into(), json!(at));
        ("net.routerd.net/v1alpha1/HealthCheck/overlay-hc".into(), st)
    }

    /// One pass: gates, the lowered route, the HybridRoute.
    fn pass(eff: &[Resource], snap: &mut StateSnapshot, now: DateTime<Utc>) -> Vec<Event> {
        let mut h = Hybrid::new(eff).unwrap();
        h.gate_all(&*snap, &*snap, now);
        let mut out = StateSnapshot::new();
        let mut events = Vec::new();
        let route = eff.iter().find(|r| owner_of(r).is_some()).unwrap();
        let id = route.id().to_string();
        let who = Subject {
            api_version: &route.api_version,
            name: route.name(),
        };
        let base = ipv4_route(
            who,
            route.as_ipv4_route().unwrap(),
            &*snap,
            snap.get(&id),
            now,
            &FollowOptions::default(),
        );
        let o = h.route_outcome(route, base, snap.get(&id), now);
        events.extend(o.events);
        out.insert(id, o.status);
        let hr = eff.iter().find(|r| r.kind() == Kind::HybridRoute).unwrap();
        let hid = hr.id().to_string();
        let o = h.hybrid_route_status(hr, &out, &*snap, snap.get(&hid), now);
        events.extend(o.events);
        out.insert(hid, o.status);
        snap.extend(out);
        events
    }

    fn route_phase(snap: &StateSnapshot) -> &str {
        phase_of(&snap["net.routerd.net/v1alpha1/IPv4Route/cloud-10-20-0-0-16"])
    }

    fn hr(snap: &StateSnapshot) -> &Status {
        &snap["hybrid.routerd.net/v1alpha1/HybridRoute/cloud"]
    }

    #[test]
    fn unhealthy_withdraws_at_once_and_healthy_returns_after_the_hysteresis() {
        let eff = effective();
        let mut snap = StateSnapshot::new();
        let (k, v) = health("Healthy", "2026-05-29T12:00:00Z");
        snap.insert(k, v);
        pass(&eff, &mut snap, t("2026-05-29T12:00:01Z"));
        assert_eq!(route_phase(&snap), "Installed");
        assert_eq!(hr(&snap)["phase"], "Ready");
        assert_eq!(hr(&snap)["carrying"], true);
        assert_eq!(hr(&snap)["defaultRouteUntouched"], true);

        let (k, v) = health("Unhealthy", "2026-05-29T12:00:10Z");
        snap.insert(k, v);
        let ev = pass(&eff, &mut snap, t("2026-05-29T12:00:11Z"));
        assert_eq!(route_phase(&snap), WITHDRAWN_PHASE);
        assert_eq!(hr(&snap)["phase"], "Degraded");
        assert_eq!(hr(&snap)["reason"], "HealthCheckUnhealthy");
        assert_eq!(hr(&snap)["routes"][0]["phase"], WITHDRAWN_PHASE);
        let types: Vec<&str> = ev.iter().map(|e| e.type_.as_str()).collect();
        assert!(types.contains(&WITHDRAWN_EVENT), "{types:?}");
        assert!(types.contains(&ROUTE_REMOVED_EVENT), "{types:?}");

        // Healthy again 10 s later: held by the hysteresis.
        let (k, v) = health("Healthy", "2026-05-29T12:00:20Z");
        snap.insert(k, v);
        let ev = pass(&eff, &mut snap, t("2026-05-29T12:00:21Z"));
        assert_eq!(route_phase(&snap), WITHDRAWN_PHASE);
        assert_eq!(hr(&snap)["holdUntil"], "2026-05-29T12:00:41Z");
        assert!(ev.iter().all(|e| e.type_ != RESTORED_EVENT));

        let ev = pass(&eff, &mut snap, t("2026-05-29T12:00:41Z"));
        assert_eq!(route_phase(&snap), "Installed");
        assert_eq!(hr(&snap)["phase"], "Ready");
        assert!(ev.iter().any(|e| e.type_ == RESTORED_EVENT));
    }

    #[test]
    fn a_gate_closed_since_startup_opens_with_the_first_passing_check() {
        let eff = effective();
        let mut snap = StateSnapshot::new();
        pass(&eff, &mut snap, t("2026-05-29T12:00:00Z"));
        assert_eq!(route_phase(&snap), WITHDRAWN_PHASE, "no check result yet");
        let (k, v) = health("Healthy", "2026-05-29T12:00:01Z");
        snap.insert(k, v);
        pass(&eff, &mut snap, t("2026-05-29T12:00:01Z"));
        assert_eq!(route_phase(&snap), "Installed");
    }

    #[test]
    fn mtu_comes_from_the_kernel_with_a_warning_below_the_lan() {
        let eff = effective();
        let mut snap = StateSnapshot::new();
        let (k, v) = health("Healthy", "2026-05-29T12:00:00Z");
        snap.insert(k, v);
        let mut vx = Status::new();
        vx.insert("phase".into(), json!("Up"));
        vx.insert("mtu".into(), json!(1450));
        snap.insert("net.routerd.net/v1alpha1/Interface/underlay".into(), vx);
        pass(&eff, &mut snap, t("2026-05-29T12:00:01Z"));
        let st = hr(&snap);
        assert_eq!(st["underlayMTU"], 1450);
        assert_eq!(st["tunnelOverhead"], 0);
        assert_eq!(st["estimatedMTU"], 1450);
        assert_eq!(
            st["mtuWarning"],
            "estimated MTU 1450 is below the LAN MTU 1500 (eth1); larger packets need path MTU discovery or fragmentation"
        );
    }

    #[test]
    fn overheads_match_routerd() {
        assert_eq!(overhead("wireguard", false), 80);
        assert_eq!(overhead("tailscale", false), 80);
        assert_eq!(overhead("ipsec", false), 74);
        assert_eq!(overhead("route", false), 0);
        assert_eq!(overhead("ipip", false), 20);
        assert_eq!(overhead("gre", false), 24);
        assert_eq!(overhead("gre", true), 28);
        assert_eq!(overhead("fou", false), 28);
        assert_eq!(overhead("gue", false), 32);
    }
}
