//! `when` gates (routerd-spec §1.1): each gate sets exactly one of `state`,
//! `all` or `any`; nested gates and status matches are checked too.

use crate::resource::{Resource, Spec};
use crate::spec::{WhenMatch, WhenSpec};
use crate::{GoDuration, Problems};

/// Checks the resource-level gate and, for EgressRoutePolicy, every
/// candidate-level gate.
pub(super) fn check(r: &Resource, p: &mut Problems<'_>) {
    let top = match &r.spec {
        Spec::Interface(s) => s.when.as_ref(),
        Spec::DSLiteTunnel(s) => s.when.as_ref(),
        Spec::HealthCheck(s) => s.when.as_ref(),
        Spec::EgressRoutePolicy(s) => s.when.as_ref(),
        Spec::IPv4Route(s) => s.when.as_ref(),
        Spec::NAT44Rule(s) => s.when.as_ref(),
        Spec::IPAddressSet(s) => s.when.as_ref(),
        Spec::IPv4StaticAddress(s) => s.when.as_ref(),
        Spec::PPPoESession(s) => s.when.as_ref(),
        Spec::DHCPv4Client(s) => s.when.as_ref(),
        _ => None,
    };
    if let Some(w) = top {
        gate(w, "spec.when", p);
    }
    if let Spec::EgressRoutePolicy(s) = &r.spec {
        for (i, c) in s.candidates.iter().enumerate() {
            if let Some(w) = &c.when {
                gate(w, &format!("spec.candidates[{i}].when"), p);
            }
        }
    }
}

fn gate(w: &WhenSpec, path: &str, p: &mut Problems<'_>) {
    let set = [w.state.is_some(), w.all.is_some(), w.any.is_some()];
    if set.iter().filter(|b| **b).count() != 1 {
        p.at(
            path,
            format!("{path} must set exactly one of state, all, or any"),
        );
    }
    if let Some(state) = &w.state {
        for (key, m) in state {
            matcher(m, &format!("{path}.state.{key}"), p);
        }
    }
    for (name, list) in [("all", &w.all), ("any", &w.any)] {
        for (i, sub) in list.iter().flatten().enumerate() {
            gate(sub, &format!("{path}.{name}[{i}]"), p);
        }
    }
}

fn matcher(m: &WhenMatch, path: &str, p: &mut Problems<'_>) {
    if let Some(s) = m.status.as_deref()
        && !matches!(s, "set" | "unset" | "unknown")
    {
        p.field(&format!("{path}.status"), "must be set, unset, or unknown");
    }
    if let Some(f) = m.for_.as_deref()
        && !GoDuration::parse(f).is_ok_and(|d| d.as_nanos() >= 0)
    {
        p.field(&format!("{path}.for"), "must be a non-negative duration");
    }
    if let Some(a) = m.max_age.as_deref()
        && !GoDuration::parse(a).is_ok_and(|d| d.is_positive())
    {
        p.field(&format!("{path}.maxAge"), "must be a positive duration");
    }
}
