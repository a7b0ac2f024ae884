//! Which destinations of an EgressRouter's redirect rules may take new
//! connections, and what a rule does when none may (issue #15).
//!
//! [`rule_verdicts`] is the one place this is decided, with the readiness
//! rule candidates use (ADR 0009: a HealthCheck passes when it is
//! `Healthy`, or `Failing` within its grace, and fresh). The follower
//! publishes its verdicts in the EgressRouter status (`rules[]`,
//! `fallback`), and the renderer reads them from there instead of judging
//! health itself, so the status and the nft table cannot disagree.
//!
//! A rule with at least one live destination redirects to the live ones
//! (balanced per client address when there are several). A rule with none
//! falls back when the fallback is live, else it is refused: both by
//! rendering no rule for its port, so the port meets the fallback DNAT or
//! the refusal that follow every port rule by construction. An unhealthy
//! fallback turns into the refusal. Only new connections are affected: NAT
//! is decided at a connection's first packet, conntrack keeps the
//! translation of established ones.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use routerd_model::spec::HealthCheckSpec;
use routerd_model::spec::egress_router::{EgressRouterSpec, L4RedirectRule, RedirectProtocol};
use routerd_model::{Kind, ResourceId};

use crate::decision::Reason;
use crate::observe::{HealthObservation, StatusSource};
use crate::readiness::health_ready;

/// What a rule does with new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// DNAT to the live destinations.
    Redirect,
    /// No destination is live: the port falls through to the live fallback.
    Fallback,
    /// No destination is live and there is no live fallback: the port is
    /// refused (TCP reset, ICMP port unreachable).
    Refused,
}

impl RuleAction {
    /// The word the status and events use.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Redirect => "Redirect",
            RuleAction::Fallback => "Fallback",
            RuleAction::Refused => "Refused",
        }
    }
}

/// One destination (of a rule, or the fallback) with its health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationVerdict {
    /// The address as written (trimmed).
    pub ip: String,
    /// May take new connections: every HealthCheck guarding it passes (a
    /// destination no check guards is live, as in OpenShift).
    pub live: bool,
    /// The HealthChecks guarding it.
    pub checks: Vec<String>,
    /// Why it is not live (empty when live).
    pub reasons: Vec<Reason>,
}

/// One redirect rule with its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleVerdict {
    /// `port`.
    pub port: i64,
    /// The protocol in OpenShift's spelling (`""` if it does not parse).
    pub protocol: &'static str,
    /// `targetPort`, defaulted.
    pub target_port: i64,
    /// Every destination, in spec order.
    pub destinations: Vec<DestinationVerdict>,
    /// What new connections to the port get.
    pub action: RuleAction,
}

impl RuleVerdict {
    /// The live destinations, in spec order.
    pub fn live(&self) -> Vec<&str> {
        self.destinations
            .iter()
            .filter(|d| d.live)
            .map(|d| d.ip.as_str())
            .collect()
    }
}

/// Every rule of one router, and its fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterVerdicts {
    /// One entry per redirect rule, in spec order.
    pub rules: Vec<RuleVerdict>,
    /// The fallback, when `fallbackIP` is set.
    pub fallback: Option<DestinationVerdict>,
}

/// Whether HealthCheck `name` passes at `now`, by the candidates' rule.
fn check_passes(
    name: &str,
    health: &HashMap<String, HealthCheckSpec>,
    statuses: &dyn StatusSource,
    now: DateTime<Utc>,
    reasons: &mut Vec<Reason>,
) -> bool {
    let Some(spec) = health.get(name) else {
        reasons.push(Reason::new(
            "HealthCheckMissing",
            format!("HealthCheck {name} does not exist"),
        ));
        return false;
    };
    let id = ResourceId::of(Kind::HealthCheck, name).to_string();
    let obs = HealthObservation::from_status(name, Some(spec), statuses.status(&id));
    if !obs.spec_enabled {
        reasons.push(Reason::new(
            "HealthCheckDisabled",
            format!("HealthCheck {name} has enabled: false"),
        ));
        return false;
    }
    if matches!(obs.phase.as_ref(), "Disabled" | "Standby" | "NotApplicable") {
        reasons.push(Reason::new(
            "HealthCheckDisabled",
            format!("HealthCheck {name} is {}", obs.phase),
        ));
        return false;
    }
    let mut notes = Vec::new();
    health_ready(&obs, now, reasons, &mut notes)
}

fn target_of(health: &HashMap<String, HealthCheckSpec>, name: &str) -> Option<IpAddr> {
    health
        .get(name)
        .and_then(|h| h.target.as_deref())
        .and_then(|t| t.trim().parse().ok())
}

fn judge(
    ip: &str,
    checks: Vec<String>,
    health: &HashMap<String, HealthCheckSpec>,
    statuses: &dyn StatusSource,
    now: DateTime<Utc>,
) -> DestinationVerdict {
    let mut reasons = Vec::new();
    let mut live = true;
    for c in &checks {
        live &= check_passes(c, health, statuses, now, &mut reasons);
    }
    DestinationVerdict {
        ip: ip.to_string(),
        live,
        checks,
        reasons,
    }
}

/// The checks guarding each destination of `rule`: a check whose target is
/// one of the destinations guards that one; any other guards them all.
fn guards(rule: &L4RedirectRule, health: &HashMap<String, HealthCheckSpec>) -> Vec<Vec<String>> {
    let dests: Vec<Option<IpAddr>> = rule.destinations().iter().map(|d| d.parse().ok()).collect();
    let mut out = vec![Vec::new(); dests.len()];
    for name in rule.health_check_names() {
        let target = target_of(health, name);
        let own = target.and_then(|t| dests.iter().position(|d| *d == Some(t)));
        for (i, g) in out.iter_mut().enumerate() {
            if own.is_none_or(|o| o == i) {
                g.push(name.to_string());
            }
        }
    }
    out
}

/// The verdict of every rule of `spec` and of its fallback at `now`, from
/// the HealthCheck specs (`health`, by name) and statuses.
pub fn rule_verdicts(
    spec: &EgressRouterSpec,
    health: &HashMap<String, HealthCheckSpec>,
    statuses: &dyn StatusSource,
    now: DateTime<Utc>,
) -> RouterVerdicts {
    let fallback = spec.fallback().map(|ip| {
        let checks = spec
            .fallback_health_check()
            .map(|c| vec![c.to_string()])
            .unwrap_or_default();
        judge(ip, checks, health, statuses, now)
    });
    let fallback_live = fallback.as_ref().is_some_and(|f| f.live);
    let rules = spec
        .rules()
        .iter()
        .map(|rule| {
            let destinations: Vec<DestinationVerdict> = rule
                .destinations()
                .into_iter()
                .zip(guards(rule, health))
                .map(|(ip, checks)| judge(ip, checks, health, statuses, now))
                .collect();
            let action = if destinations.iter().any(|d| d.live) {
                RuleAction::Redirect
            } else if fallback_live {
                RuleAction::Fallback
            } else {
                RuleAction::Refused
            };
            RuleVerdict {
                port: rule.port,
                protocol: RedirectProtocol::parse(&rule.protocol)
                    .map(RedirectProtocol::as_str)
                    .unwrap_or(""),
                target_port: rule.effective_target_port(),
                destinations,
                action,
            }
        })
        .collect();
    RouterVerdicts { rules, fallback }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use super::*;
    use chrono::TimeZone;
    use routerd_model::{Status, load_and_validate};
    use serde_json::json;

    const CFG: &str = "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: a}
spec: {target: 198.51.100.7, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: b}
spec: {target: 198.51.100.8, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: svc}
spec: {target: 192.0.2.200, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: fb}
spec: {target: 198.51.100.9}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: er}
spec:
  addresses: [{ip: 192.0.2.10/24}]
  redirect:
    redirectRules:
      - {destinationIPs: [198.51.100.7, 198.51.100.8], port: 80, protocol: TCP, healthChecks: [a, b]}
      - {destinationIP: 198.51.100.7, port: 53, protocol: udp, healthCheck: svc}
      - {destinationIP: 198.51.100.6, port: 22, protocol: tcp}
    fallbackIP: 198.51.100.9
    fallbackHealthCheck: fb
";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    fn healthy(phase: &str) -> Status {
        let mut s = Status::new();
        s.insert("phase".into(), json!(phase));
        s.insert("consecutiveFailed".into(), json!(0));
        s.insert("lastCheckedAt".into(), json!("2027-01-15T08:00:00Z"));
        s
    }

    fn eval(phases: &[(&str, &str)]) -> RouterVerdicts {
        let (l, ds) = load_and_validate(&[("er.yaml", CFG)]);
        assert!(ds.iter().all(|d| !d.is_error()), "{ds:?}");
        let mut health = HashMap::new();
        for r in &l.resources {
            if let Some(h) = r.as_health_check() {
                health.insert(r.name().to_string(), h.clone());
            }
        }
        let mut st: BTreeMap<String, Status> = BTreeMap::new();
        for (n, p) in phases {
            st.insert(
                format!("net.routerd.net/v1alpha1/HealthCheck/{n}"),
                healthy(p),
            );
        }
        let r = l.resources.iter().find(|r| r.name() == "er").unwrap();
        rule_verdicts(r.as_egress_router().unwrap(), &health, &st, now())
    }

    #[test]
    fn each_destination_is_guarded_by_the_check_that_targets_it() {
        let v = eval(&[
            ("a", "Unhealthy"),
            ("b", "Healthy"),
            ("svc", "Healthy"),
            ("fb", "Healthy"),
        ]);
        assert_eq!(v.rules[0].live(), vec!["198.51.100.8"]);
        assert_eq!(v.rules[0].destinations[0].checks, vec!["a"]);
        assert_eq!(v.rules[0].destinations[1].checks, vec!["b"]);
        assert_eq!(
            v.rules[0].destinations[0].reasons[0].code,
            "HealthNotPassing"
        );
        assert_eq!(v.rules[0].action, RuleAction::Redirect);
        assert_eq!(v.rules[1].protocol, "UDP");
        assert_eq!(v.rules[1].action, RuleAction::Redirect);
        // No check: live, as in OpenShift.
        assert_eq!(v.rules[2].live(), vec!["198.51.100.6"]);
    }

    #[test]
    fn a_rule_without_live_destinations_falls_back_or_is_refused() {
        let v = eval(&[
            ("a", "Unhealthy"),
            ("b", "Unhealthy"),
            ("svc", "Unhealthy"),
            ("fb", "Healthy"),
        ]);
        assert_eq!(v.rules[0].action, RuleAction::Fallback);
        assert_eq!(v.rules[1].action, RuleAction::Fallback);
        assert!(v.fallback.as_ref().unwrap().live);

        // The fallback without a status is not live: refused.
        let v = eval(&[("a", "Unhealthy"), ("b", "Unhealthy")]);
        assert_eq!(v.rules[0].action, RuleAction::Refused);
        assert!(!v.fallback.as_ref().unwrap().live);
        assert_eq!(
            v.fallback.as_ref().unwrap().reasons[0].code,
            "HealthNoStatus"
        );
        assert_eq!(v.rules[2].action, RuleAction::Redirect);
    }

    #[test]
    fn failing_within_grace_stays_live_and_stale_results_do_not() {
        let (l, _) = load_and_validate(&[("er.yaml", CFG)]);
        let mut health = HashMap::new();
        for r in &l.resources {
            if let Some(h) = r.as_health_check() {
                health.insert(r.name().to_string(), h.clone());
            }
        }
        let r = l.resources.iter().find(|r| r.name() == "er").unwrap();
        let spec = r.as_egress_router().unwrap();
        let mut st: BTreeMap<String, Status> = BTreeMap::new();
        let mut grace = healthy("Failing");
        grace.insert("consecutiveFailed".into(), json!(1));
        st.insert("net.routerd.net/v1alpha1/HealthCheck/a".into(), grace);
        st.insert("net.routerd.net/v1alpha1/HealthCheck/b".into(), {
            let mut s = healthy("Healthy");
            s.insert("lastCheckedAt".into(), json!("2020-01-01T00:00:00Z"));
            s
        });
        let v = rule_verdicts(spec, &health, &st, now());
        assert!(v.rules[0].destinations[0].live);
        assert!(!v.rules[0].destinations[1].live);
        assert_eq!(v.rules[0].destinations[1].reasons[0].code, "HealthStale");
    }
}
