//! What selection knows about a candidate, read from other resources' status.
//!
//! Observations are plain values so that [`crate::select()`] stays a pure
//! function and tests can state a situation without building status maps.
//! The helpers here turn status maps into observations with routerd's value
//! rules (§1.1 "Status references").

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_model::id::{Kind, NET_API, split_kind_name};
use routerd_model::spec::HealthCheckSpec;
use routerd_model::spec::common::ResourceDependency;
use routerd_model::{GoDuration, Status};
use serde_json::Value;

use crate::time::parse_rfc3339;

/// Read access to resource statuses keyed by id (`apiVersion/Kind/name`).
pub trait StatusSource {
    /// The status of `id`, if any.
    fn status(&self, id: &str) -> Option<&Status>;
}

impl StatusSource for BTreeMap<String, Status> {
    fn status(&self, id: &str) -> Option<&Status> {
        self.get(id)
    }
}

impl StatusSource for HashMap<String, Status> {
    fn status(&self, id: &str) -> Option<&Status> {
        self.get(id)
    }
}

impl<S: StatusSource + ?Sized> StatusSource for &S {
    fn status(&self, id: &str) -> Option<&Status> {
        (**self).status(id)
    }
}

/// Two sources, the first one wins (new statuses over a snapshot).
#[derive(Debug, Clone, Copy)]
pub struct Layered<A, B>(pub A, pub B);

impl<A: StatusSource, B: StatusSource> StatusSource for Layered<A, B> {
    fn status(&self, id: &str) -> Option<&Status> {
        self.0.status(id).or_else(|| self.1.status(id))
    }
}

/// The resource id a `Kind/name` reference points at: the kind's own group,
/// or the net group for kinds this build does not model (routerd's rule).
pub fn reference_id(reference: &str) -> Option<String> {
    let (kind, name) = split_kind_name(reference.trim())?;
    let group = Kind::parse(kind).map_or(NET_API, Kind::api_version);
    Some(format!("{group}/{kind}/{name}"))
}

/// A status field as routerd's `resourcequery` sees it: a JSON array string
/// is decoded, a plain string is split on commas; entries are trimmed, and
/// blanks and duplicates dropped.
pub fn status_values(status: &Status, field: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    match status.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.starts_with('[')
                && let Ok(items) = serde_json::from_str::<Vec<Value>>(t)
            {
                for i in &items {
                    push(&scalar_text(i));
                }
                return out;
            }
            for part in t.split(',') {
                push(part);
            }
        }
        Some(Value::Array(items)) => {
            for i in items {
                push(&scalar_text(i));
            }
        }
        Some(other) => push(&scalar_text(other)),
    }
    out
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The first value of a status field, or `""` (routerd's `Value`).
pub fn first_value(status: &Status, field: &str) -> String {
    if field == "phase" {
        return phase_of(status).to_string();
    }
    // The common case, a plain single value, needs no list.
    if let Some(Value::String(s)) = status.get(field) {
        let t = s.trim();
        if !t.contains(',') && !t.starts_with('[') {
            return t.to_string();
        }
    }
    status_values(status, field)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// A status's phase; a non-empty `observed.phase` wins over the top level.
pub fn phase_of(status: &Status) -> &str {
    let observed = status
        .get("observed")
        .and_then(|o| o.get("phase"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    observed
        .or_else(|| status.get("phase").and_then(Value::as_str))
        .unwrap_or("")
}

/// Whether a source phase counts as up (`SourceReady`).
pub fn source_phase_ready(phase: &str) -> bool {
    matches!(
        phase,
        "Applied" | "Bound" | "Healthy" | "Installed" | "Ready" | "Running" | "Up"
    )
}

/// What selection knows about one HealthCheck.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthObservation {
    /// HealthCheck name.
    pub name: Arc<str>,
    /// Whether the HealthCheck exists in the configuration.
    pub spec_found: bool,
    /// `spec.enabled` (default true).
    pub spec_enabled: bool,
    /// Status phase, `""` when there is no status.
    pub phase: Cow<'static, str>,
    /// `consecutiveFailed`.
    pub consecutive_failed: i64,
    /// `lastCheckedAt` as written, kept only when it does not parse (for
    /// the explanation).
    pub last_checked_raw: String,
    /// `lastCheckedAt`, when it parses.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// The spec's fall threshold (`unhealthyThreshold`, default 3).
    pub unhealthy_threshold: u32,
    /// How long a result stays usable: `max(2m, 3 x interval + timeout)`.
    pub freshness: GoDuration,
}

/// The HealthCheck spec values readiness needs, resolved once per
/// configuration instead of parsing durations on every evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthParams {
    /// The HealthCheck exists in the configuration.
    pub found: bool,
    /// `spec.enabled`.
    pub enabled: bool,
    /// `unhealthyThreshold`, defaulted.
    pub unhealthy_threshold: u32,
    /// `max(2m, 3 x interval + timeout)`.
    pub freshness: GoDuration,
}

impl HealthParams {
    /// Resolves a spec (or its absence: defaults, `found: false`).
    pub fn of(spec: Option<&HealthCheckSpec>) -> Self {
        let default = HealthCheckSpec::default();
        let s = spec.unwrap_or(&default);
        HealthParams {
            found: spec.is_some(),
            enabled: s.is_enabled(),
            unhealthy_threshold: s.unhealthy_threshold(),
            freshness: s.freshness(),
        }
    }
}

impl HealthObservation {
    /// Reads a HealthCheck's status. The daemon's own report under
    /// `status.observed` wins key by key over the top level, so every mode
    /// reads the same values (routerd's two controllers disagree, §8.1.8).
    pub fn from_status(
        name: &str,
        spec: Option<&HealthCheckSpec>,
        status: Option<&Status>,
    ) -> Self {
        Self::read(name.into(), HealthParams::of(spec), status)
    }

    /// Like [`HealthObservation::from_status`] with pre-resolved spec values.
    pub fn read(name: Arc<str>, params: HealthParams, status: Option<&Status>) -> Self {
        let observed = status
            .and_then(|s| s.get("observed"))
            .and_then(Value::as_object);
        let get = |key: &str| -> Option<&Value> {
            observed
                .and_then(|o| o.get(key))
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
                .or_else(|| status.and_then(|s| s.get(key)))
        };
        let phase = intern_phase(get("phase").and_then(Value::as_str).unwrap_or(""));
        let consecutive_failed = get("consecutiveFailed").map_or(0, |v| match v {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) => s.trim().parse().unwrap_or(0),
            _ => 0,
        });
        let raw = get("lastCheckedAt").and_then(Value::as_str).unwrap_or("");
        let last_checked_at = parse_rfc3339(raw);
        let last_checked_raw = if last_checked_at.is_some() {
            String::new()
        } else {
            raw.to_string()
        };
        HealthObservation {
            name,
            spec_found: params.found,
            spec_enabled: params.enabled,
            phase,
            consecutive_failed,
            last_checked_raw,
            last_checked_at,
            unhealthy_threshold: params.unhealthy_threshold,
            freshness: params.freshness,
        }
    }
}

/// A phase as a shared static string when it is one of the well-known
/// phases (no allocation on the hot path), else owned.
pub fn intern_phase(phase: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "",
        "Healthy",
        "Failing",
        "Unhealthy",
        "Passing",
        "Unknown",
        "Disabled",
        "Standby",
        "NotApplicable",
        "Applied",
        "Bound",
        "Installed",
        "Ready",
        "Running",
        "Up",
        "Down",
        "Pending",
        "Error",
    ];
    match KNOWN.iter().find(|k| **k == phase) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(phase.to_string()),
    }
}

/// What selection knows about a candidate's `source`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceObservation {
    /// The `Kind/name` reference.
    pub reference: Arc<str>,
    /// Status phase (observed first), `""` when there is no status.
    pub phase: Cow<'static, str>,
    /// The source's own spec disables it (a PPPoESession with `enabled: false`).
    pub spec_disabled: bool,
    /// The source is a DSLiteTunnel: it must be `Up` itself (spec §3.2,
    /// §5.2), a passing HealthCheck cannot vouch for it, because the path
    /// the check would vouch for does not exist while the tunnel is down.
    pub tunnel: bool,
}

/// A link-like resource (Interface, PPPoESession, DSLiteTunnel) a path
/// runs over, as its status says. The daemon publishes these statuses from
/// netlink (`phase: Up` only with carrier), so carrier loss reaches
/// selection as a status change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkObservation {
    /// The `Kind/name` reference.
    pub reference: Arc<str>,
    /// A DSLiteTunnel: usable only with a status whose phase is exactly
    /// `Up` (no status counts as down, as in routerd). Interfaces and
    /// PPPoE sessions block only when a status says they are not `Up`.
    pub tunnel: bool,
    /// Whether a status exists.
    pub observed: bool,
    /// Status phase (observed first).
    pub phase: Cow<'static, str>,
    /// Status `reason` (`NoCarrier`, `InterfaceNotFound`, ...), `""` when none.
    pub reason: String,
}

impl LinkObservation {
    /// Reads the status of `reference` (`tunnel` for a DSLiteTunnel).
    pub fn read(reference: Arc<str>, tunnel: bool, status: Option<&Status>) -> Self {
        let mut o = LinkObservation {
            reference,
            tunnel,
            ..LinkObservation::default()
        };
        o.refresh(status);
        o
    }

    /// Re-reads the status in place (no allocation in the common case).
    pub fn refresh(&mut self, status: Option<&Status>) {
        self.observed = status.is_some();
        self.phase = intern_phase(status.map_or("", phase_of));
        let reason = status
            .and_then(|s| s.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if self.reason != reason {
            self.reason.clear();
            self.reason.push_str(reason);
        }
    }

    /// Whether the link lets a path carry traffic.
    pub fn up(&self) -> bool {
        if self.tunnel {
            self.phase == "Up"
        } else {
            !self.observed || self.phase == "Up"
        }
    }
}

/// One evaluated `dependsOn` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DependencyObservation {
    /// The `Kind/name` reference.
    pub resource: String,
    /// The field read.
    pub field: String,
    /// The first value read (`""` when none).
    pub value: String,
    /// Whether the dependency holds.
    pub ready: bool,
}

/// Evaluates a dependency against statuses (routerd's `DependencyReady`).
pub fn observe_dependency(
    dep: &ResourceDependency,
    statuses: &dyn StatusSource,
) -> DependencyObservation {
    let field = dep.effective_field().to_string();
    let optional = dep.optional.unwrap_or(false);
    let status = reference_id(&dep.resource).and_then(|id| statuses.status(&id));
    let mut obs = DependencyObservation {
        resource: dep.resource.clone(),
        field: field.clone(),
        value: String::new(),
        ready: optional,
    };
    let Some(status) = status else {
        return obs;
    };
    let values = if field == "phase" {
        let p = phase_of(status);
        if p.is_empty() {
            Vec::new()
        } else {
            vec![p.to_string()]
        }
    } else {
        status_values(status, &field)
    };
    obs.value = values.first().cloned().unwrap_or_default();
    if values.is_empty() {
        obs.ready = optional;
        return obs;
    }
    let want = dep
        .phase
        .as_deref()
        .or(dep.equals.as_deref())
        .filter(|w| !w.is_empty());
    obs.ready = match want {
        Some(w) => values.iter().any(|v| v == w),
        None => !obs.value.is_empty(),
    };
    obs
}

/// One target of a multi-target candidate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetObservation {
    /// The target's HealthCheck, when it names one.
    pub health: Option<HealthObservation>,
    /// Resolved kernel device of the target's interface (`""` when unknown).
    pub device: String,
    /// The link-like resource the target's interface names, if any.
    pub link: Option<LinkObservation>,
}

/// Everything selection knows about one candidate besides its spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CandidateObservation {
    /// The `source`, when the candidate names one.
    pub source: Option<SourceObservation>,
    /// The `healthCheck`, when the candidate names one.
    pub health: Option<HealthObservation>,
    /// One entry per `dependsOn`, in order.
    pub dependencies: Vec<DependencyObservation>,
    /// The `deviceFrom` value, when `deviceFrom` is set.
    pub device_from: Option<String>,
    /// The `gatewayFrom` value, when `gatewayFrom` is set.
    pub gateway_from: Option<String>,
    /// Kernel name behind `interface` (its alias), when `interface` is set.
    pub interface_device: Option<String>,
    /// The link-like resources the candidate's path runs over: the one its
    /// effective interface names and the one `deviceFrom` reads (a
    /// DSLiteTunnel `source` is checked as the source).
    pub links: Vec<LinkObservation>,
    /// One entry per target, in order.
    pub targets: Vec<TargetObservation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn st(v: Value) -> Status {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn values_split_commas_decode_json_and_drop_duplicates() {
        let s = st(json!({"a": " x, y ,x,, ", "b": "[\"p\",\"q\"]", "c": ["r", 3], "d": 7}));
        assert_eq!(status_values(&s, "a"), vec!["x", "y"]);
        assert_eq!(status_values(&s, "b"), vec!["p", "q"]);
        assert_eq!(status_values(&s, "c"), vec!["r", "3"]);
        assert_eq!(first_value(&s, "d"), "7");
        assert_eq!(first_value(&s, "missing"), "");
    }

    #[test]
    fn observed_phase_wins() {
        let s = st(json!({"phase": "Down", "observed": {"phase": "Up"}}));
        assert_eq!(phase_of(&s), "Up");
        let s = st(json!({"phase": "Down", "observed": {"phase": ""}}));
        assert_eq!(phase_of(&s), "Down");
    }

    #[test]
    fn reference_ids_use_the_kind_group_or_net() {
        assert_eq!(
            reference_id("DSLiteTunnel/ds-lite").as_deref(),
            Some("net.routerd.net/v1alpha1/DSLiteTunnel/ds-lite")
        );
        assert_eq!(
            reference_id("OverlayPeer/p").as_deref(),
            Some("hybrid.routerd.net/v1alpha1/OverlayPeer/p")
        );
        assert_eq!(
            reference_id("Link/uplink-000").as_deref(),
            Some("net.routerd.net/v1alpha1/Link/uplink-000")
        );
        assert_eq!(reference_id("nonsense"), None);
    }

    #[test]
    fn dependencies_follow_routerd_rules() {
        let mut m = BTreeMap::new();
        m.insert(
            "net.routerd.net/v1alpha1/Interface/wan".to_string(),
            st(json!({"phase": "Up", "ifname": "ens18", "addresses": ""})),
        );
        let dep = |v: Value| -> ResourceDependency { serde_json::from_value(v).unwrap() };
        let ready = |d: ResourceDependency| observe_dependency(&d, &m).ready;
        assert!(ready(dep(json!({"resource": "Interface/wan"}))));
        assert!(ready(dep(
            json!({"resource": "Interface/wan", "phase": "Up"})
        )));
        assert!(!ready(dep(
            json!({"resource": "Interface/wan", "phase": "Down"})
        )));
        assert!(ready(dep(
            json!({"resource": "Interface/wan", "field": "ifname", "equals": "ens18"})
        )));
        assert!(!ready(dep(
            json!({"resource": "Interface/wan", "field": "addresses"})
        )));
        assert!(ready(dep(
            json!({"resource": "Interface/wan", "field": "addresses", "optional": true})
        )));
        assert!(!ready(dep(json!({"resource": "Interface/lan"}))));
        assert!(ready(dep(
            json!({"resource": "Interface/lan", "optional": true})
        )));
    }

    #[test]
    fn health_reads_observed_first_and_defaults_from_spec() {
        let s = st(json!({
            "phase": "Healthy", "consecutiveFailed": 0, "lastCheckedAt": "2026-01-01T00:00:00Z",
            "observed": {"phase": "Failing", "consecutiveFailed": 2}
        }));
        let spec = HealthCheckSpec {
            interval: Some("10s".into()),
            timeout: Some("1s".into()),
            unhealthy_threshold: Some(5),
            ..HealthCheckSpec::default()
        };
        let h = HealthObservation::from_status("hc", Some(&spec), Some(&s));
        assert_eq!(h.phase, "Failing");
        assert_eq!(h.consecutive_failed, 2);
        assert_eq!(h.unhealthy_threshold, 5);
        assert_eq!(h.freshness, GoDuration::from_secs(120));
        assert!(h.last_checked_at.is_some());
        let none = HealthObservation::from_status("hc", None, None);
        assert!(!none.spec_found);
        assert_eq!(none.phase, "");
    }
}
