//! The HealthCheck state machine (spec §4.3, routerd's `ApplyResult`).
//!
//! Pure on purpose: probe results and the time they were judged go in,
//! transitions, the status map selection reads and the events come out. The
//! scheduler, `routerctl probe` and tests on virtual time all drive the same
//! type, so the phase logic selection depends on exists exactly once.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerd_model::id::{Kind, NET_API, ObjectRef};
use routerd_model::{Event, EventSource, Status};
use serde_json::{Value, json};

use crate::evidence::Evidence;
use crate::time::rfc3339_nano;

/// History records kept per check (routerd's default N = 20).
pub const DEFAULT_HISTORY: usize = 20;

/// A check's phase, with routerd's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Phase {
    /// No result yet.
    #[default]
    Unknown,
    /// Passing, but fewer than `healthyThreshold` passes in a row.
    Passing,
    /// `healthyThreshold` passes in a row.
    Healthy,
    /// Failing, but fewer than `unhealthyThreshold` failures in a row.
    Failing,
    /// `unhealthyThreshold` failures in a row (or a decisive failure).
    Unhealthy,
    /// `enabled: false`.
    Disabled,
}

impl Phase {
    /// routerd's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unknown => "Unknown",
            Phase::Passing => "Passing",
            Phase::Healthy => "Healthy",
            Phase::Failing => "Failing",
            Phase::Unhealthy => "Unhealthy",
            Phase::Disabled => "Disabled",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The probe succeeded.
    Passed,
    /// The probe failed before its deadline.
    Failed,
    /// The probe's deadline passed.
    Timeout,
}

impl Outcome {
    /// routerd's text (`lastResult`, the event name suffix).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
        }
    }

    /// Whether the probe passed.
    pub fn is_ok(self) -> bool {
        self == Outcome::Passed
    }
}

/// One probe's report, as a prober produces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// Passed, failed or timed out.
    pub outcome: Outcome,
    /// Human-readable detail (`connected to 192.0.2.1:443`, the error).
    pub message: String,
    /// What is known about the path.
    pub evidence: Evidence,
    /// Round-trip time of a passed probe.
    pub rtt: Option<Duration>,
    /// A failure that needs no confirmation (carrier lost, fail-closed
    /// binding): the check goes Unhealthy at once instead of counting up to
    /// `unhealthyThreshold`, because waiting would only keep traffic on a path
    /// known to be dead.
    pub decisive: bool,
}

impl ProbeReport {
    /// A passed probe.
    pub fn passed(message: impl Into<String>) -> Self {
        ProbeReport {
            outcome: Outcome::Passed,
            message: message.into(),
            evidence: Evidence::default(),
            rtt: None,
            decisive: false,
        }
    }

    /// A failed probe.
    pub fn failed(message: impl Into<String>) -> Self {
        ProbeReport {
            outcome: Outcome::Failed,
            ..ProbeReport::passed(message)
        }
    }

    /// A timed-out probe.
    pub fn timeout(message: impl Into<String>) -> Self {
        ProbeReport {
            outcome: Outcome::Timeout,
            ..ProbeReport::passed(message)
        }
    }

    /// With evidence.
    pub fn with_evidence(mut self, evidence: Evidence) -> Self {
        self.evidence = evidence;
        self
    }

    /// Marked decisive.
    pub fn decisive(mut self) -> Self {
        self.decisive = true;
        self
    }
}

/// Rise and fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// Passes in a row for Healthy (rise), at least 1.
    pub healthy: u32,
    /// Failures in a row for Unhealthy (fall), at least 1.
    pub unhealthy: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            healthy: routerd_model::spec::net::health_defaults::HEALTHY_THRESHOLD,
            unhealthy: routerd_model::spec::net::health_defaults::UNHEALTHY_THRESHOLD,
        }
    }
}

/// The fixed facts about a check that its status, history and events repeat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// HealthCheck `metadata.name`.
    pub name: String,
    /// `spec.role`, defaulted.
    pub role: String,
    /// Target address as text (empty when unresolved).
    pub target: String,
    /// `icmp`, `tcp`, `dns` or `http`.
    pub protocol: String,
    /// Port (0 for ICMP).
    pub port: u16,
    /// Next hop, when one is known.
    pub via: Option<String>,
    /// Socket mark.
    pub fwmark: Option<u32>,
    /// Bound device.
    pub interface: Option<String>,
    /// Bound source address.
    pub local_address: Option<String>,
}

/// One history record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRecord {
    /// When the result was judged.
    pub time: DateTime<Utc>,
    /// The outcome.
    pub outcome: Outcome,
    /// The probe's message.
    pub message: String,
    /// Path evidence.
    pub evidence: Evidence,
}

/// What one result did to the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Phase before.
    pub from: Phase,
    /// Phase after.
    pub to: Phase,
    /// Result before (None for the first result).
    pub previous_result: Option<Outcome>,
    /// This result.
    pub result: Outcome,
}

impl Transition {
    /// Whether the phase changed.
    pub fn phase_changed(&self) -> bool {
        self.from != self.to
    }

    /// Whether `lastResult` changed.
    pub fn result_changed(&self) -> bool {
        self.previous_result != Some(self.result)
    }

    /// routerd publishes an event only when the phase or the last result
    /// changes; every probe still rewrites status.
    pub fn publishes(&self) -> bool {
        self.phase_changed() || self.result_changed()
    }
}

/// The state of one check.
#[derive(Clone, Debug)]
pub struct HealthState {
    identity: Identity,
    thresholds: Thresholds,
    history_limit: usize,
    phase: Phase,
    last_result: Option<Outcome>,
    message: String,
    last_checked_at: Option<DateTime<Utc>>,
    last_transition_at: Option<DateTime<Utc>>,
    consecutive_passed: u32,
    consecutive_failed: u32,
    failure_count: u32,
    last_success_time: Option<DateTime<Utc>>,
    last_failure_time: Option<DateTime<Utc>>,
    first_failure_time: Option<DateTime<Utc>>,
    last_evidence: Option<Evidence>,
    history: VecDeque<HistoryRecord>,
}

impl HealthState {
    /// A fresh check in phase Unknown.
    pub fn new(identity: Identity, thresholds: Thresholds) -> Self {
        HealthState {
            identity,
            thresholds: Thresholds {
                healthy: thresholds.healthy.max(1),
                unhealthy: thresholds.unhealthy.max(1),
            },
            history_limit: DEFAULT_HISTORY,
            phase: Phase::Unknown,
            last_result: None,
            message: String::new(),
            last_checked_at: None,
            last_transition_at: None,
            consecutive_passed: 0,
            consecutive_failed: 0,
            failure_count: 0,
            last_success_time: None,
            last_failure_time: None,
            first_failure_time: None,
            last_evidence: None,
            history: VecDeque::new(),
        }
    }

    /// Keeps the last `n` records (routerd's `ROUTERD_HEALTHCHECK_HISTORY`);
    /// 0 keeps the default.
    pub fn with_history_limit(mut self, n: usize) -> Self {
        if n > 0 {
            self.history_limit = n;
        }
        self
    }

    /// Marks the start of observation: `lastTransitionAt` is set to `now`
    /// if it was empty, as routerd does when a check is first seen.
    pub fn start(&mut self, now: DateTime<Utc>) {
        if self.last_transition_at.is_none() {
            self.last_transition_at = Some(now);
        }
    }

    /// Continues from a status this check published before a restart, so a
    /// restarted daemon does not demote a Healthy path to Unknown and flap
    /// its routes while the first probes come in. Only a status checked
    /// within `max_age` of `now` is used; anything older, or unreadable, is
    /// ignored and the check starts from Unknown.
    pub fn resume(
        &mut self,
        status: &Status,
        now: DateTime<Utc>,
        max_age: chrono::TimeDelta,
    ) -> bool {
        let text = |k: &str| status.get(k).and_then(|v| v.as_str());
        let time = |k: &str| {
            text(k)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let Some(checked) = time("lastCheckedAt") else {
            return false;
        };
        if now - checked > max_age || checked > now {
            return false;
        }
        let phase = match text("phase") {
            Some("Passing") => Phase::Passing,
            Some("Healthy") => Phase::Healthy,
            Some("Failing") => Phase::Failing,
            Some("Unhealthy") => Phase::Unhealthy,
            _ => return false,
        };
        let count = |k: &str| {
            status
                .get(k)
                .and_then(|v| v.as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        self.phase = phase;
        self.last_result = match text("lastResult") {
            Some("passed") => Some(Outcome::Passed),
            Some("failed") => Some(Outcome::Failed),
            Some("timeout") => Some(Outcome::Timeout),
            _ => None,
        };
        self.message = text("message").unwrap_or_default().to_string();
        self.last_checked_at = Some(checked);
        self.last_transition_at = time("lastTransitionAt").or(Some(checked));
        self.consecutive_passed = count("consecutivePassed");
        self.consecutive_failed = count("consecutiveFailed");
        self.failure_count = count("failureCount");
        self.last_success_time = time("lastSuccessTime");
        self.last_failure_time = time("lastFailureTime");
        self.first_failure_time = time("firstFailureTime");
        true
    }

    /// Applies one result judged at `now`.
    pub fn apply(&mut self, now: DateTime<Utc>, report: &ProbeReport) -> Transition {
        self.start(now);
        let from = self.phase;
        let previous_result = self.last_result;
        match report.outcome {
            Outcome::Passed => {
                self.consecutive_passed = self.consecutive_passed.saturating_add(1);
                self.consecutive_failed = 0;
                self.failure_count = 0;
                self.last_success_time = Some(now);
                self.first_failure_time = None;
                self.phase = if self.consecutive_passed >= self.thresholds.healthy {
                    Phase::Healthy
                } else {
                    Phase::Passing
                };
            }
            Outcome::Failed | Outcome::Timeout => {
                self.consecutive_failed = self.consecutive_failed.saturating_add(1);
                self.consecutive_passed = 0;
                self.failure_count = self.consecutive_failed;
                self.last_failure_time = Some(now);
                if self.first_failure_time.is_none() {
                    self.first_failure_time = Some(now);
                }
                self.phase =
                    if report.decisive || self.consecutive_failed >= self.thresholds.unhealthy {
                        Phase::Unhealthy
                    } else {
                        Phase::Failing
                    };
            }
        }
        self.last_result = Some(report.outcome);
        self.message.clone_from(&report.message);
        self.last_checked_at = Some(now);
        if self.phase != from {
            self.last_transition_at = Some(now);
        }
        self.last_evidence = Some(report.evidence.clone());
        self.history.push_back(HistoryRecord {
            time: now,
            outcome: report.outcome,
            message: report.message.clone(),
            evidence: report.evidence.clone(),
        });
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        Transition {
            from,
            to: self.phase,
            previous_result,
            result: report.outcome,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Failures in a row.
    pub fn consecutive_failed(&self) -> u32 {
        self.consecutive_failed
    }

    /// Passes in a row.
    pub fn consecutive_passed(&self) -> u32 {
        self.consecutive_passed
    }

    /// The last result.
    pub fn last_result(&self) -> Option<Outcome> {
        self.last_result
    }

    /// When the last result was judged.
    pub fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.last_checked_at
    }

    /// When the phase last changed.
    pub fn last_transition_at(&self) -> Option<DateTime<Utc>> {
        self.last_transition_at
    }

    /// The kept history, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = &HistoryRecord> {
        self.history.iter()
    }

    /// The status map of spec §4.3, keys verbatim, `history[]` included.
    pub fn status(&self) -> Status {
        let mut s = self.summary();
        s.insert("history".into(), self.history_json());
        s
    }

    /// [`HealthState::status`] without `history[]`: everything selection,
    /// the store and metrics read (`phase`, `consecutiveFailed`,
    /// `lastCheckedAt`, ...). A daemon carries this on every probe and asks
    /// for the history only when someone looks at it: 20 records with their
    /// evidence are most of a status's size, and copying them through the
    /// loop for 1,000 checks per second cost hundreds of MiB of churn.
    pub fn summary(&self) -> Status {
        let mut s = Status::new();
        let id = &self.identity;
        s.insert("phase".into(), json!(self.phase.as_str()));
        if let Some(r) = self.last_result {
            s.insert("lastResult".into(), json!(r.as_str()));
        }
        put_time(&mut s, "lastCheckedAt", self.last_checked_at);
        put_time(&mut s, "lastTransitionAt", self.last_transition_at);
        s.insert("consecutivePassed".into(), json!(self.consecutive_passed));
        s.insert("consecutiveFailed".into(), json!(self.consecutive_failed));
        s.insert("failureCount".into(), json!(self.failure_count));
        if !self.message.is_empty() {
            s.insert("message".into(), json!(self.message));
        }
        put_time(&mut s, "lastSuccessTime", self.last_success_time);
        put_time(&mut s, "lastFailureTime", self.last_failure_time);
        put_time(&mut s, "firstFailureTime", self.first_failure_time);
        if let Some(ev) = &self.last_evidence {
            s.insert("lastEvidence".into(), ev.to_json());
        }
        // Provided fields other resources may reference (spec §1.1).
        if !id.role.is_empty() {
            s.insert("role".into(), json!(id.role));
        }
        if !id.target.is_empty() {
            s.insert("target".into(), json!(id.target));
        }
        s.insert("protocol".into(), json!(id.protocol));
        if id.port != 0 {
            s.insert("port".into(), json!(id.port));
        }
        if let Some(i) = &id.interface {
            s.insert("sourceInterface".into(), json!(i));
        }
        if let Some(a) = &id.local_address {
            s.insert("sourceAddress".into(), json!(a));
        }
        for (k, v) in self.network_attributes() {
            s.insert(k.into(), json!(v));
        }
        s
    }

    /// `history[]` of the status map, oldest first.
    pub fn history_json(&self) -> Value {
        let id = &self.identity;
        let history: Vec<Value> = self
            .history
            .iter()
            .map(|h| {
                let mut r = json!({
                    "time": rfc3339_nano(h.time),
                    "ok": h.outcome.is_ok(),
                    "result": h.outcome.as_str(),
                    "timeout": h.outcome == Outcome::Timeout,
                    "message": h.message,
                    "target": id.target,
                    "protocol": id.protocol,
                    "port": id.port,
                });
                if !h.evidence.is_empty() {
                    r["evidence"] = h.evidence.to_json();
                }
                r
            })
            .collect();
        Value::Array(history)
    }

    fn network_attributes(&self) -> Vec<(&'static str, String)> {
        let id = &self.identity;
        let mut v = Vec::new();
        if let Some(via) = id.via.as_ref().filter(|s| !s.is_empty()) {
            v.push(("network.via", via.clone()));
        }
        if let Some(m) = id.fwmark.filter(|m| *m != 0) {
            v.push(("network.fwmark", format!("{m:#x}")));
        }
        if let Some(i) = id.interface.as_ref().filter(|s| !s.is_empty()) {
            v.push(("network.interface.name", i.clone()));
        }
        if let Some(a) = id.local_address.as_ref().filter(|s| !s.is_empty()) {
            v.push(("network.local.address", a.clone()));
        }
        v
    }

    /// The event routerd publishes for `transition` (judged at `now`), or
    /// `None` when neither phase nor result changed.
    pub fn event(&self, transition: &Transition, now: DateTime<Utc>) -> Option<Event> {
        if !transition.publishes() {
            return None;
        }
        Some(self.event_unconditional(now))
    }

    /// The event for the current state, whatever changed.
    pub fn event_unconditional(&self, now: DateTime<Utc>) -> Event {
        let id = &self.identity;
        let result = self.last_result.map_or("failed", Outcome::as_str);
        let mut e = Event::info(
            format!("routerd.healthcheck.{}.{result}", id.name),
            ObjectRef {
                api_version: NET_API.to_string(),
                kind: Kind::HealthCheck.as_str().to_string(),
                name: id.name.clone(),
            },
            now,
        );
        e.daemon = EventSource {
            name: format!("routerd-healthcheck-{}", id.name),
            kind: "routerd-healthcheck".into(),
            instance: id.name.clone(),
        };
        e.reason = "HealthCheckProbe".into();
        e.message.clone_from(&self.message);
        let mut e = e
            .attr("phase", self.phase.as_str())
            .attr("result", result)
            .attr("consecutivePassed", self.consecutive_passed.to_string())
            .attr("consecutiveFailed", self.consecutive_failed.to_string())
            .attr("failureCount", self.failure_count.to_string())
            .attr("network.protocol", id.protocol.clone());
        if !id.target.is_empty() {
            e = e.attr("network.address", id.target.clone());
        }
        if id.port != 0 {
            e = e.attr("network.peer.port", id.port.to_string());
        }
        for (k, v) in self.network_attributes() {
            e = e.attr(k, v);
        }
        if let Some(ev) = &self.last_evidence {
            for (k, v) in ev.attributes() {
                e = e.attr(k, v);
            }
        }
        for (k, t) in [
            ("lastSuccessAt", self.last_success_time),
            ("lastFailureAt", self.last_failure_time),
            ("firstFailureAt", self.first_failure_time),
        ] {
            if let Some(t) = t {
                e = e.attr(k, rfc3339_nano(t));
            }
        }
        e
    }

    /// Status of a disabled check (routerd: `phase: Disabled, reason: Disabled`).
    pub fn disabled_status(now: DateTime<Utc>) -> Status {
        let mut s = Status::new();
        s.insert("phase".into(), json!(Phase::Disabled.as_str()));
        s.insert("reason".into(), json!("Disabled"));
        s.insert("updatedAt".into(), json!(rfc3339_nano(now)));
        s
    }
}

fn put_time(s: &mut Status, key: &str, t: Option<DateTime<Utc>>) {
    if let Some(t) = t {
        s.insert(key.into(), json!(rfc3339_nano(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::FailureKind;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap() + chrono::TimeDelta::milliseconds(ms)
    }

    fn state(rise: u32, fall: u32) -> HealthState {
        HealthState::new(
            Identity {
                name: "wan".into(),
                role: "next-hop".into(),
                target: "192.0.2.1".into(),
                protocol: "tcp".into(),
                port: 443,
                fwmark: Some(0x10),
                interface: Some("wan0".into()),
                ..Identity::default()
            },
            Thresholds {
                healthy: rise,
                unhealthy: fall,
            },
        )
    }

    #[test]
    fn resume_continues_a_fresh_status_and_ignores_a_stale_one() {
        let now = Utc::now();
        let mut st = Status::new();
        st.insert("phase".into(), "Healthy".into());
        st.insert("lastResult".into(), "passed".into());
        st.insert("consecutivePassed".into(), 7.into());
        st.insert(
            "lastCheckedAt".into(),
            (now - chrono::TimeDelta::seconds(5)).to_rfc3339().into(),
        );
        let fresh = |st: &Status| {
            let mut h = HealthState::new(
                Identity::default(),
                Thresholds {
                    healthy: 2,
                    unhealthy: 2,
                },
            );
            let ok = h.resume(st, now, chrono::TimeDelta::seconds(60));
            (ok, h.phase(), h.consecutive_passed())
        };
        assert_eq!(fresh(&st), (true, Phase::Healthy, 7));
        st.insert(
            "lastCheckedAt".into(),
            (now - chrono::TimeDelta::seconds(600)).to_rfc3339().into(),
        );
        assert_eq!(fresh(&st), (false, Phase::Unknown, 0));
    }

    #[test]
    fn starts_unknown_and_rises_after_rise_passes() {
        let mut s = state(2, 3);
        s.start(t(0));
        assert_eq!(s.phase(), Phase::Unknown);
        assert_eq!(s.status()["lastTransitionAt"], "2026-11-21T00:00:00Z");
        let tr = s.apply(t(100), &ProbeReport::passed("ok"));
        assert_eq!((tr.from, tr.to), (Phase::Unknown, Phase::Passing));
        let tr = s.apply(t(200), &ProbeReport::passed("ok"));
        assert_eq!((tr.from, tr.to), (Phase::Passing, Phase::Healthy));
        assert_eq!(s.status()["lastTransitionAt"], "2026-11-21T00:00:00.2Z");
        let tr = s.apply(t(300), &ProbeReport::passed("ok"));
        assert!(!tr.publishes(), "steady Healthy publishes nothing");
        assert_eq!(s.status()["lastTransitionAt"], "2026-11-21T00:00:00.2Z");
        assert_eq!(s.status()["lastCheckedAt"], "2026-11-21T00:00:00.3Z");
    }

    #[test]
    fn falls_through_failing_to_unhealthy_at_fall() {
        let mut s = state(1, 3);
        s.apply(t(0), &ProbeReport::passed("ok"));
        let tr = s.apply(t(100), &ProbeReport::timeout("t"));
        assert_eq!(tr.to, Phase::Failing);
        assert!(tr.phase_changed() && tr.result_changed());
        let tr = s.apply(t(200), &ProbeReport::timeout("t"));
        assert_eq!(tr.to, Phase::Failing);
        assert!(!tr.publishes(), "same phase and result: no event");
        let tr = s.apply(t(300), &ProbeReport::failed("refused"));
        assert_eq!(tr.to, Phase::Unhealthy);
        let st = s.status();
        assert_eq!(st["consecutiveFailed"], 3);
        assert_eq!(st["failureCount"], 3);
        assert_eq!(st["consecutivePassed"], 0);
        assert_eq!(st["firstFailureTime"], "2026-11-21T00:00:00.1Z");
        assert_eq!(st["lastFailureTime"], "2026-11-21T00:00:00.3Z");
        assert_eq!(st["lastSuccessTime"], "2026-11-21T00:00:00Z");
        assert_eq!(st["lastResult"], "failed");
        // A pass clears failure bookkeeping at once (rise 1).
        let tr = s.apply(t(400), &ProbeReport::passed("ok"));
        assert_eq!(tr.to, Phase::Healthy);
        let st = s.status();
        assert_eq!(st["failureCount"], 0);
        assert!(st.get("firstFailureTime").is_none());
        assert_eq!(st["lastFailureTime"], "2026-11-21T00:00:00.3Z");
    }

    #[test]
    fn decisive_failure_skips_the_grace_period() {
        let mut s = state(1, 3);
        s.apply(t(0), &ProbeReport::passed("ok"));
        let tr = s.apply(t(5), &ProbeReport::failed("carrier lost").decisive());
        assert_eq!(tr.to, Phase::Unhealthy);
        assert_eq!(s.consecutive_failed(), 1, "counters stay honest");
    }

    #[test]
    fn zero_thresholds_are_clamped_to_one() {
        let mut s = state(0, 0);
        assert_eq!(
            s.apply(t(0), &ProbeReport::failed("x")).to,
            Phase::Unhealthy
        );
        assert_eq!(s.apply(t(1), &ProbeReport::passed("x")).to, Phase::Healthy);
    }

    #[test]
    fn history_is_bounded_and_carries_evidence() {
        let mut s = state(1, 3).with_history_limit(3);
        for i in 0..5 {
            let ev = Evidence {
                failure_kind: Some(FailureKind::ConnectionRefused),
                egress_interface: Some("wan0".into()),
                ..Evidence::default()
            };
            s.apply(
                t(i * 100),
                &ProbeReport::failed(format!("n{i}")).with_evidence(ev),
            );
        }
        let st = s.status();
        let h = st["history"].as_array().unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0]["message"], "n2");
        assert_eq!(h[2]["message"], "n4");
        assert_eq!(h[2]["ok"], false);
        assert_eq!(h[2]["result"], "failed");
        assert_eq!(h[2]["target"], "192.0.2.1");
        assert_eq!(h[2]["port"], 443);
        assert_eq!(h[2]["evidence"]["failureKind"], "connection_refused");
        assert_eq!(st["lastEvidence"]["egressInterface"], "wan0");
        assert_eq!(st["network.fwmark"], "0x10");
        assert_eq!(st["network.interface.name"], "wan0");
    }

    #[test]
    fn events_only_on_phase_or_result_change_with_routerd_shape() {
        let mut s = state(1, 2);
        let tr = s.apply(t(0), &ProbeReport::passed("ok"));
        let e = s.event(&tr, t(0)).unwrap();
        assert_eq!(e.type_, "routerd.healthcheck.wan.passed");
        assert_eq!(e.daemon.name, "routerd-healthcheck-wan");
        assert_eq!(e.daemon.kind, "routerd-healthcheck");
        assert_eq!(e.daemon.instance, "wan");
        assert_eq!(e.resource.kind, "HealthCheck");
        assert_eq!(e.reason, "HealthCheckProbe");
        assert_eq!(e.attributes["phase"], "Healthy");
        assert_eq!(e.attributes["network.address"], "192.0.2.1");
        assert_eq!(e.attributes["network.peer.port"], "443");
        assert_eq!(e.attributes["network.fwmark"], "0x10");
        assert_eq!(e.attributes["lastSuccessAt"], "2026-11-21T00:00:00Z");
        let tr = s.apply(t(100), &ProbeReport::passed("ok"));
        assert!(s.event(&tr, t(100)).is_none());
        let ev = Evidence {
            failure_kind: Some(FailureKind::Timeout),
            ..Evidence::default()
        };
        let tr = s.apply(t(200), &ProbeReport::timeout("deadline").with_evidence(ev));
        let e = s.event(&tr, t(200)).unwrap();
        assert_eq!(e.type_, "routerd.healthcheck.wan.timeout");
        assert_eq!(e.message, "deadline");
        assert_eq!(e.attributes["routerd.healthcheck.failureKind"], "timeout");
        assert_eq!(e.attributes["phase"], "Failing");
        // Result changes from timeout to failed within Failing->Unhealthy.
        let tr = s.apply(t(300), &ProbeReport::failed("refused"));
        let e = s.event(&tr, t(300)).unwrap();
        assert_eq!(e.type_, "routerd.healthcheck.wan.failed");
        assert_eq!(e.attributes["phase"], "Unhealthy");
        assert_eq!(e.attributes["firstFailureAt"], "2026-11-21T00:00:00.2Z");
        // Same result, same phase: silent.
        let tr = s.apply(t(400), &ProbeReport::failed("refused"));
        assert!(s.event(&tr, t(400)).is_none());
    }

    #[test]
    fn disabled_status_has_routerd_reason() {
        let st = HealthState::disabled_status(t(0));
        assert_eq!(st["phase"], "Disabled");
        assert_eq!(st["reason"], "Disabled");
    }
}
