//! Statuses of the resources that follow a selection: IPv4Route through
//! `deviceFrom`/`gatewayFrom` and NAT44Rule through `egressPolicyRef`, and
//! of the static IPv6 route ([`ipv6`]), which reports like IPv4Route.
//!
//! They belong with selection because they are what makes a selection take
//! effect, and the offline plan must show both sides of a change. Both are
//! fail-static like routerd: an unresolved egress makes the follower
//! `Pending` and leaves whatever is installed in place (§8.1.9).

use chrono::{DateTime, Utc};
use routerd_model::id::ObjectRef;
use routerd_model::spec::common::StatusValueSource;
use routerd_model::spec::{IPv4RouteSpec, NAT44RuleSpec};
use routerd_model::{Event, Status};
use serde_json::{Value, json};

use crate::observe::{StatusSource, first_value, observe_dependency, phase_of, reference_id};
use crate::set::World;
use crate::time::format_rfc3339_nano;

pub mod address;
pub mod egress_router;
pub mod egress_router_health;
pub mod hybrid;
pub mod ipv6;
pub mod mobility;
pub use address::ipv4_static_address;
pub use egress_router::egress_router;
pub use ipv6::ipv6_static_route;

/// Daemon knobs for followers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowOptions {
    /// The daemon runs in dry-run mode.
    pub dry_run: bool,
    /// Where the NAT44 nftables file is written.
    pub nat44_path: String,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            dry_run: false,
            nat44_path: "/run/routerd/nat44.nft".to_string(),
        }
    }
}

/// A follower's new status and events.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowOutcome {
    /// New status.
    pub status: Status,
    /// Whether it differs from the previous status.
    pub status_changed: bool,
    /// Events to publish.
    pub events: Vec<Event>,
}

/// Identity of the follower being evaluated.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// apiVersion.
    pub api_version: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
}

impl Subject<'_> {
    fn object_ref(&self, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: self.api_version.to_string(),
            kind: kind.to_string(),
            name: self.name.to_string(),
        }
    }
}

fn read_from(src: &StatusValueSource, statuses: &dyn StatusSource) -> String {
    let field = src.field.as_deref().unwrap_or("phase");
    reference_id(&src.resource)
        .and_then(|id| statuses.status(&id))
        .map(|s| first_value(s, field))
        .unwrap_or_default()
}

fn describe(src: &StatusValueSource) -> String {
    format!(
        "{}.{}",
        src.resource,
        src.field.as_deref().unwrap_or("phase")
    )
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn outcome(
    status: Status,
    previous: Option<&Status>,
    events: Vec<Event>,
) -> FollowOutcome {
    FollowOutcome {
        status_changed: previous != Some(&status),
        status,
        events,
    }
}

/// The status of an IPv4Route (§1.6).
pub fn ipv4_route(
    who: Subject<'_>,
    spec: &IPv4RouteSpec,
    statuses: &dyn StatusSource,
    previous: Option<&Status>,
    now: DateTime<Utc>,
    options: &FollowOptions,
) -> FollowOutcome {
    let deps: Vec<_> = spec
        .depends_on
        .iter()
        .map(|d| observe_dependency(d, statuses))
        .collect();
    if deps.iter().any(|d| !d.ready) {
        let standby = who.name.contains("healthcheck")
            || spec
                .depends_on
                .iter()
                .any(|d| d.resource.contains("healthcheck"));
        let inactive = spec.depends_on.iter().any(|d| {
            reference_id(&d.resource)
                .and_then(|id| statuses.status(&id))
                .is_some_and(|s| matches!(phase_of(s), "Disabled" | "Standby" | "NotApplicable"))
        });
        let phase = if standby {
            "Standby"
        } else if inactive {
            "NotApplicable"
        } else {
            "Pending"
        };
        let list: Vec<Value> = deps
            .iter()
            .map(|d| json!({"resource": d.resource, "field": d.field, "value": d.value, "ready": d.ready}))
            .collect();
        let mut st = Status::new();
        st.insert("phase".into(), json!(phase));
        st.insert("reason".into(), json!("DependsOnFalse"));
        st.insert("dependencies".into(), Value::Array(list));
        return outcome(st, previous, Vec::new());
    }
    let route_type = spec.route_type();
    let destination = match spec.destination.trim() {
        "" | "default" => "0.0.0.0/0",
        d => d,
    };
    let blackhole = route_type == "blackhole";
    let (device, gateway) = if blackhole {
        (String::new(), String::new())
    } else {
        let d = spec
            .device_from
            .as_ref()
            .map(|f| read_from(f, statuses))
            .filter(|v| !v.is_empty())
            .or_else(|| non_empty(spec.device.as_deref()).map(str::to_string))
            .unwrap_or_default();
        let g = spec
            .gateway_from
            .as_ref()
            .map(|f| read_from(f, statuses))
            .filter(|v| !v.is_empty())
            .or_else(|| non_empty(spec.gateway.as_deref()).map(str::to_string))
            .unwrap_or_default();
        (d, g)
    };
    if !blackhole && device.is_empty() {
        let message = match &spec.device_from {
            Some(f) => format!(
                "{} is empty; the installed route is left in place",
                describe(f)
            ),
            None => "no device or deviceFrom".to_string(),
        };
        let mut st = Status::new();
        st.insert("phase".into(), json!("Pending"));
        st.insert("reason".into(), json!("DeviceMissing"));
        st.insert("message".into(), json!(message));
        return outcome(st, previous, Vec::new());
    }
    let preferred = non_empty(spec.preferred_source.as_deref()).unwrap_or("");
    let metric = spec.metric.unwrap_or(0);
    let (st, same) = installed_status(
        previous,
        now,
        options.dry_run,
        &[
            ("type", json!(route_type)),
            ("destination", json!(destination)),
            ("device", json!(device)),
            ("gateway", json!(gateway)),
            ("preferredSource", json!(preferred)),
            ("metric", json!(metric)),
        ],
    );
    let mut events = Vec::new();
    if !same {
        events.push(
            Event::info(
                "routerd.ipv4.route.installed",
                who.object_ref("IPv4Route"),
                now,
            )
            .attr("type", route_type)
            .attr("destination", destination)
            .attr("device", &device)
            .attr("gateway", &gateway)
            .attr("preferredSource", preferred)
            .attr("dryRun", options.dry_run.to_string()),
        );
    }
    outcome(st, previous, events)
}

/// The `Installed` status of a route follower (IPv4Route, IPv6StaticRoute)
/// with `fields`, and whether it is the same route as `previous`: then
/// `installedAt` is kept and no event is due, so a resync never churns.
pub(crate) fn installed_status(
    previous: Option<&Status>,
    now: DateTime<Utc>,
    dry_run: bool,
    fields: &[(&str, Value)],
) -> (Status, bool) {
    let (mut st, same) = carried_status(previous, now, "Installed", "installedAt", dry_run, fields);
    st.insert("changed".into(), json!(!same));
    (st, same)
}

/// The status of one kernel object a follower carries: `phase`, `fields`,
/// `dryRun` and the time it was first carried (`since_key`), kept while
/// `previous` describes the same object in the same phase.
pub(crate) fn carried_status(
    previous: Option<&Status>,
    now: DateTime<Utc>,
    phase: &str,
    since_key: &str,
    dry_run: bool,
    fields: &[(&str, Value)],
) -> (Status, bool) {
    let same = previous.is_some_and(|p| {
        p.get("phase").and_then(Value::as_str) == Some(phase)
            && fields.iter().all(|(k, v)| p.get(*k) == Some(v))
    });
    let since = previous
        .filter(|_| same)
        .and_then(|p| p.get(since_key).cloned())
        .unwrap_or_else(|| json!(format_rfc3339_nano(now)));
    let mut st = Status::new();
    st.insert("phase".into(), json!(phase));
    for (k, v) in fields {
        st.insert((*k).into(), v.clone());
    }
    st.insert("dryRun".into(), json!(dry_run));
    st.insert(since_key.into(), since);
    (st, same)
}

fn condition(type_: &str, ok: bool, reason: &str) -> Value {
    json!([{"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason}])
}

fn nat_pending(
    reason: &str,
    message: String,
    condition_type: &str,
    previous: Option<&Status>,
    options: &FollowOptions,
) -> FollowOutcome {
    let mut st = Status::new();
    st.insert("phase".into(), json!("Pending"));
    st.insert("reason".into(), json!(reason));
    st.insert("message".into(), json!(message));
    st.insert(
        "conditions".into(),
        condition(condition_type, false, reason),
    );
    st.insert("dryRun".into(), json!(options.dry_run));
    outcome(st, previous, Vec::new())
}

fn strip_len(s: &str) -> &str {
    s.split_once('/').map_or(s, |(a, _)| a).trim()
}

/// The status of a NAT44Rule (§5.3 steps 1, 2 and 5). Unlike routerd's live
/// controller, the source-NAT shape resolves too (§8.1.3), and an
/// `egressPolicyRef` naming no policy is reported as missing (§8.1.13).
pub fn nat44(
    who: Subject<'_>,
    spec: &NAT44RuleSpec,
    world: &World,
    statuses: &dyn StatusSource,
    previous: Option<&Status>,
    now: DateTime<Utc>,
    options: &FollowOptions,
) -> FollowOutcome {
    let source_shape = spec.is_source_nat_shape();
    let logical = if source_shape {
        non_empty(spec.outbound_interface.as_deref())
    } else {
        non_empty(spec.egress_interface.as_deref())
    };
    let egress = match logical {
        Some(i) => world.device_of(i),
        None => {
            let policy = match non_empty(spec.egress_policy_ref.as_deref()) {
                Some(p) => Some(p.to_string()),
                None if world.policies.len() == 1 => world.policies.first().cloned(),
                None => None,
            };
            let Some(policy) = policy.filter(|p| world.policies.contains(p)) else {
                let msg = match non_empty(spec.egress_policy_ref.as_deref()) {
                    Some(p) => format!("EgressRoutePolicy {p:?} does not exist"),
                    None => "no egressInterface, no egressPolicyRef, and not exactly one EgressRoutePolicy".to_string(),
                };
                return nat_pending(
                    "EgressPolicyMissing",
                    msg,
                    "EgressResolved",
                    previous,
                    options,
                );
            };
            let id = format!("{}/EgressRoutePolicy/{policy}", routerd_model::id::NET_API);
            let st = statuses.status(&id);
            let phase = st.map(phase_of).unwrap_or("");
            if phase != "Applied" {
                let msg = format!(
                    "EgressRoutePolicy {policy} is {}",
                    if phase.is_empty() {
                        "not evaluated"
                    } else {
                        phase
                    }
                );
                return nat_pending(
                    "EgressPolicyNotApplied",
                    msg,
                    "EgressResolved",
                    previous,
                    options,
                );
            }
            let dev = st
                .map(|s| first_value(s, "selectedDevice"))
                .unwrap_or_default();
            if dev.is_empty() {
                return nat_pending(
                    "SelectedDeviceMissing",
                    format!("EgressRoutePolicy {policy} has no selectedDevice"),
                    "EgressResolved",
                    previous,
                    options,
                );
            }
            dev
        }
    };
    let snat = if source_shape {
        let t = spec.translation.as_ref();
        match t.and_then(|t| t.type_.as_deref()) {
            Some("address") => t.and_then(|t| t.address.clone()).unwrap_or_default(),
            Some("pool") => t.map(|t| t.addresses.join(",")).unwrap_or_default(),
            _ => String::new(),
        }
    } else if spec.type_.as_deref() == Some("snat") {
        let from = spec
            .snat_address_from
            .as_ref()
            .map(|f| read_from(f, statuses));
        let addr = non_empty(spec.snat_address.as_deref())
            .map(str::to_string)
            .or_else(|| {
                from.clone()
                    .filter(|v| !v.is_empty())
                    .map(|v| strip_len(&v).to_string())
            })
            .or_else(|| {
                logical
                    .and_then(|l| world.static_addresses.get(l))
                    .map(|a| strip_len(a).to_string())
            });
        match addr {
            Some(a) if !a.is_empty() => a,
            _ => {
                let (reason, msg) = match &spec.snat_address_from {
                    Some(f) => (
                        "SNATAddressSourcePending",
                        format!("{} is empty", describe(f)),
                    ),
                    None => (
                        "SNATAddressMissing",
                        "no snatAddress, snatAddressFrom or IPv4StaticAddress".to_string(),
                    ),
                };
                return nat_pending(reason, msg, "SNATAddressResolved", previous, options);
            }
        }
    } else {
        String::new()
    };
    let ranges = if source_shape {
        &spec.source_cidrs
    } else {
        &spec.source_ranges
    };
    let mut st = Status::new();
    st.insert("phase".into(), json!("Active"));
    st.insert("activeEgressInterface".into(), json!(egress));
    st.insert("snatAddress".into(), json!(snat));
    st.insert("sourceRanges".into(), json!(ranges));
    st.insert("destinationCIDRs".into(), json!(spec.destination_cidrs));
    st.insert(
        "excludeDestinationCIDRs".into(),
        json!(spec.exclude_destination_cidrs),
    );
    st.insert("nftablesPath".into(), json!(options.nat44_path));
    st.insert("dryRun".into(), json!(options.dry_run));
    st.insert("conditions".into(), condition("Applied", true, "Rendered"));
    let mut events = Vec::new();
    if previous != Some(&st) {
        events.push(
            Event::info(
                "routerd.nat44.rule.applied",
                who.object_ref("NAT44Rule"),
                now,
            )
            .attr("egressInterface", &egress)
            .attr("nftablesPath", &options.nat44_path)
            .attr("dryRun", options.dry_run.to_string()),
        );
    }
    outcome(st, previous, events)
}
