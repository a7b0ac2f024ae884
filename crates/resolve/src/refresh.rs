//! The refresh rules of DNS-named IPAddressSet members, pure: the caller
//! passes the time (a monotonic offset for scheduling, the wall clock for
//! what the status shows) and the outcome of each resolution.
//!
//! When a name is resolved again (docs/resources.md, "IPAddressSet"):
//! - after a success: the record TTL or `refreshInterval`, whichever is
//!   sooner ([`DEFAULT_TTL`] stands in for an answer without one), but
//!   never sooner than [`FLOOR`], so a TTL of 0 cannot make routerd query
//!   in a loop;
//! - after a failure: [`RETRY`] (or `refreshInterval` when sooner), again
//!   never below [`FLOOR`].
//!
//! A failure never takes addresses away: the name keeps its last good
//! answer and the error is recorded beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerd_model::{GoDuration, Kind, Resource, Status};
use serde_json::{Value, json};

use crate::{Answer, Family, ResolveError};

/// The shortest time between two resolutions of one name.
pub const FLOOR: Duration = Duration::from_secs(5);
/// The refresh delay of an answer that carries no TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The delay before a failed name is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// Delay before the next resolution after a success with `ttl`.
pub fn next_delay(refresh_interval: Option<Duration>, ttl: Option<Duration>) -> Duration {
    let ttl = ttl.unwrap_or(DEFAULT_TTL);
    let d = match refresh_interval.filter(|r| !r.is_zero()) {
        Some(r) => r.min(ttl),
        None => ttl,
    };
    d.max(FLOOR)
}

/// Delay before the next resolution after a failure.
pub fn retry_delay(refresh_interval: Option<Duration>) -> Duration {
    let d = match refresh_interval.filter(|r| !r.is_zero()) {
        Some(r) => r.min(RETRY),
        None => RETRY,
    };
    d.max(FLOOR)
}

/// What the refresher needs of one IPAddressSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// Resource id (`net.routerd.net/v1alpha1/IPAddressSet/<name>`).
    pub id: String,
    /// Record family.
    pub family: Family,
    /// `spec.addresses`, trimmed (members whatever DNS says).
    pub addresses: Vec<String>,
    /// `spec.names`, trimmed, without a trailing dot.
    pub names: Vec<String>,
    /// `spec.refreshInterval` when set and positive.
    pub refresh_interval: Option<Duration>,
    /// `spec.refreshInterval` as written, echoed in the status.
    pub refresh_interval_text: String,
}

impl SetSpec {
    /// The refresher's view of an IPAddressSet with names; None for other
    /// resources and for sets without names (nothing to resolve).
    pub fn from_resource(r: &Resource) -> Option<SetSpec> {
        if r.kind() != Kind::IPAddressSet {
            return None;
        }
        let s = r.as_address_set()?;
        let mut names: Vec<String> = Vec::new();
        for n in &s.names {
            let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        if names.is_empty() {
            return None;
        }
        let refresh_interval = GoDuration::parse(s.refresh_interval.trim())
            .ok()
            .filter(|d| d.is_positive())
            .map(|d| d.to_std());
        Some(SetSpec {
            id: r.id().to_string(),
            family: Family::of_spec(s.family.as_deref()),
            addresses: s.addresses.iter().map(|a| a.trim().to_string()).collect(),
            names,
            refresh_interval,
            refresh_interval_text: s.refresh_interval.clone(),
        })
    }
}

/// One name's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameState {
    /// The last good addresses (kept through failures).
    pub addresses: BTreeSet<IpAddr>,
    /// TTL of the last good answer.
    pub ttl: Option<Duration>,
    /// When the last good answer came.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the last resolution finished, good or not.
    pub attempted_at: Option<DateTime<Utc>>,
    /// The last resolution's error; None after a success.
    pub last_error: Option<String>,
    /// When (monotonic offset) the name is due again.
    pub due: Duration,
    /// `due` on the wall clock, for the status.
    pub next_refresh_at: Option<DateTime<Utc>>,
}

/// The refresh state of one set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetState {
    spec: SetSpec,
    names: BTreeMap<String, NameState>,
}

impl SetState {
    /// A set whose names are all due at `now`. `previous` (the set's last
    /// published status, restored after a restart or kept across a
    /// reconfiguration) gives each name its last good addresses, so a
    /// daemon that restarts while DNS is down keeps the members it had.
    pub fn new(spec: SetSpec, previous: Option<&Status>, now: Duration) -> SetState {
        let mut names = BTreeMap::new();
        for n in &spec.names {
            let mut st = NameState {
                due: now,
                ..NameState::default()
            };
            if let Some(prev) = previous
                .and_then(|p| p.get("resolved"))
                .and_then(|r| r.get(n.as_str()))
            {
                st.addresses = prev
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .filter(|a| spec.family.holds(a))
                    .collect();
                st.resolved_at = prev
                    .get("resolvedAt")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
            }
            names.insert(n.clone(), st);
        }
        SetState { spec, names }
    }

    /// The set's spec.
    pub fn spec(&self) -> &SetSpec {
        &self.spec
    }

    /// One name's state.
    pub fn name(&self, name: &str) -> Option<&NameState> {
        self.names.get(name)
    }

    /// Names due at `now`.
    pub fn due(&self, now: Duration) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, s)| s.due <= now)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// When the next name is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.names.values().map(|s| s.due).min()
    }

    /// Records the outcome of resolving `name` that finished at `now`
    /// (`wall` on the wall clock). Unknown names are ignored (the set was
    /// reconfigured while the resolution ran).
    pub fn record(
        &mut self,
        name: &str,
        outcome: Result<Answer, ResolveError>,
        now: Duration,
        wall: DateTime<Utc>,
    ) {
        let family = self.spec.family;
        let interval = self.spec.refresh_interval;
        let Some(st) = self.names.get_mut(name) else {
            return;
        };
        st.attempted_at = Some(wall);
        let outcome = outcome.and_then(|a| {
            let addresses: BTreeSet<IpAddr> = a
                .addresses
                .into_iter()
                .filter(|x| family.holds(x))
                .collect();
            if addresses.is_empty() {
                Err(ResolveError::NoRecords {
                    name: name.to_string(),
                    family,
                })
            } else {
                Ok((addresses, a.ttl))
            }
        });
        let delay = match outcome {
            Ok((addresses, ttl)) => {
                st.addresses = addresses;
                st.ttl = ttl;
                st.resolved_at = Some(wall);
                st.last_error = None;
                next_delay(interval, ttl)
            }
            Err(e) => {
                st.last_error = Some(e.to_string());
                retry_delay(interval)
            }
        };
        st.due = now.saturating_add(delay);
        st.next_refresh_at = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| wall.checked_add_signed(d));
    }

    /// The effective members: `spec.addresses` and every name's last good
    /// addresses, as the renderer reads them from the status.
    pub fn members(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .spec
            .addresses
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect();
        for st in self.names.values() {
            out.extend(st.addresses.iter().map(IpAddr::to_string));
        }
        out
    }

    /// The status published for the set.
    ///
    /// `phase` is `Ready` once every name has addresses and `Pending`
    /// before; `reason: ResolveFailed` with `resolveErrors` says that the
    /// last resolution of some name failed (its last good addresses stay).
    pub fn status(&self) -> Status {
        let mut st = Status::new();
        let all_resolved = self.names.values().all(|n| !n.addresses.is_empty());
        st.insert(
            "phase".into(),
            json!(if all_resolved { "Ready" } else { "Pending" }),
        );
        let errors: Vec<String> = self
            .names
            .values()
            .filter_map(|n| n.last_error.clone())
            .collect();
        if !errors.is_empty() {
            st.insert("reason".into(), json!("ResolveFailed"));
            st.insert("message".into(), json!(errors.join("; ")));
        } else if !all_resolved {
            st.insert("reason".into(), json!("Resolving"));
        }
        st.insert(
            "addresses".into(),
            json!(self.members().into_iter().collect::<Vec<_>>()),
        );
        st.insert("names".into(), json!(self.spec.names));
        let mut resolved = serde_json::Map::new();
        for (n, s) in &self.names {
            let mut o = serde_json::Map::new();
            o.insert(
                "addresses".into(),
                json!(
                    s.addresses
                        .iter()
                        .map(IpAddr::to_string)
                        .collect::<Vec<_>>()
                ),
            );
            let time = |t: &Option<DateTime<Utc>>| {
                t.map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            };
            for (k, v) in [
                ("resolvedAt", time(&s.resolved_at)),
                ("lastAttemptAt", time(&s.attempted_at)),
                ("nextRefreshAt", time(&s.next_refresh_at)),
                ("ttlSeconds", s.ttl.map(|t| json!(t.as_secs()))),
                ("lastError", s.last_error.clone().map(Value::String)),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            resolved.insert(n.clone(), Value::Object(o));
        }
        st.insert("resolved".into(), Value::Object(resolved));
        if let Some(t) = self.names.values().filter_map(|n| n.resolved_at).max() {
            st.insert(
                "resolvedAt".into(),
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
        }
        if !errors.is_empty() {
            st.insert("resolveErrors".into(), json!(errors));
        }
        if !self.spec.refresh_interval_text.is_empty() {
            st.insert(
                "refreshInterval".into(),
                json!(self.spec.refresh_interval_text),
            );
        }
        st
    }
}

/// The members a status publishes (`addresses`), for comparing two.
pub fn status_members(st: &Status) -> BTreeSet<String> {
    st.get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Members added and removed between two member lists.
pub fn members_diff(old: &BTreeSet<String>, new: &BTreeSet<String>) -> (usize, usize) {
    (new.difference(old).count(), old.difference(new).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_the_sooner_of_ttl_and_interval_above_the_floor() {
        let s = Duration::from_secs;
        assert_eq!(next_delay(None, Some(s(60))), s(60));
        assert_eq!(next_delay(Some(s(30)), Some(s(60))), s(30));
        assert_eq!(next_delay(Some(s(600)), Some(s(60))), s(60));
        assert_eq!(next_delay(None, None), DEFAULT_TTL);
        assert_eq!(next_delay(None, Some(s(0))), FLOOR);
        assert_eq!(next_delay(Some(s(1)), Some(s(60))), FLOOR);
        assert_eq!(retry_delay(None), RETRY);
        assert_eq!(retry_delay(Some(s(10))), s(10));
        assert_eq!(retry_delay(Some(s(1))), FLOOR);
    }
}
