//! The name driver of a live daemon: resolves the DNS names of every
//! IPAddressSet in its own task, so DNS never blocks the reconcile loop.
//!
//! The task keeps the pure refresh state of routerd-resolve per set,
//! resolves what is due (each resolution bounded by [`RESOLVE_TIMEOUT`],
//! at most [`CONCURRENCY`] at once) and sends each set's status to the
//! loop as an [`Observation`], the way health results travel. The loop
//! only reads them: a status whose members changed wakes a step (which
//! renders the set anew), any other refresh (a new `lastAttemptAt`) is
//! kept quietly. A change of members comes with the event
//! `routerd.ipaddressset.members.changed`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use routerd_model::{Event, ObjectRef, Resource, ResourceId, StateSnapshot, Status};
use routerd_resolve::refresh::{members_diff, status_members};
use routerd_resolve::{ResolveError, Resolver, SetSpec, SetState};
use tokio::sync::{Semaphore, mpsc};

use crate::daemon::{Observation, WallClock};

/// The longest one resolution may take before it counts as failed (and
/// the name keeps its last good addresses).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Resolutions in flight at once, so 10,000 names do not open 10,000
/// sockets together.
pub const CONCURRENCY: usize = 64;
/// The event published when a set's effective members change.
pub const MEMBERS_CHANGED: &str = "routerd.ipaddressset.members.changed";

/// Runs the resolutions for the effective configuration's sets.
#[derive(Default)]
pub struct NameDriver {
    resolver: Option<Arc<dyn Resolver>>,
    specs: Vec<SetSpec>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for NameDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameDriver")
            .field("sets", &self.specs.len())
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

impl Drop for NameDriver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl NameDriver {
    /// A driver resolving through `resolver`; without one, names are
    /// never resolved (their sets hold `spec.addresses` only).
    pub fn new(resolver: Option<Arc<dyn Resolver>>) -> Self {
        NameDriver {
            resolver,
            specs: Vec::new(),
            task: None,
        }
    }

    /// Follows the effective configuration: when the sets with names (or
    /// their names, family or refreshInterval) changed, the task restarts
    /// from `previous` (the statuses the loop holds), so every name keeps
    /// its last good addresses across the change and is resolved at once.
    pub fn configure(
        &mut self,
        effective: &[Resource],
        previous: &StateSnapshot,
        clock: Arc<dyn WallClock>,
        updates: mpsc::Sender<Observation>,
    ) {
        let specs: Vec<SetSpec> = effective
            .iter()
            .filter_map(SetSpec::from_resource)
            .collect();
        if specs == self.specs && self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.specs = specs;
        let Some(resolver) = self.resolver.clone() else {
            if !self.specs.is_empty() {
                tracing::warn!(
                    sets = self.specs.len(),
                    "no DNS resolver configured; IPAddressSet names are not resolved"
                );
            }
            return;
        };
        if self.specs.is_empty() {
            return;
        }
        let sets: Vec<(SetState, Option<Status>)> = self
            .specs
            .iter()
            .map(|s| {
                let prev = previous.get(&s.id).cloned();
                (
                    SetState::new(s.clone(), prev.as_ref(), Duration::ZERO),
                    prev,
                )
            })
            .collect();
        self.task = Some(tokio::spawn(run(resolver, sets, clock, updates)));
    }
}

/// Whether a status id names an IPAddressSet (its observations are judged
/// by [`members_changed`], not by the health selection key).
pub(crate) fn is_address_set(id: &str) -> bool {
    id.contains("/IPAddressSet/")
}

/// Whether a new set status changes what the dataplane holds: its
/// effective members (the union the renderer builds) moved, or it is the
/// set's first status.
pub(crate) fn members_changed(old: Option<&Status>, new: &Status) -> bool {
    old.is_none_or(|old| status_members(old) != status_members(new))
}

async fn run(
    resolver: Arc<dyn Resolver>,
    sets: Vec<(SetState, Option<Status>)>,
    clock: Arc<dyn WallClock>,
    updates: mpsc::Sender<Observation>,
) {
    let start = tokio::time::Instant::now();
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    // What the loop was last told, per set: the members events compare with.
    let mut told: Vec<BTreeSet<String>> = sets
        .iter()
        .map(|(s, prev)| match prev {
            Some(p) => status_members(p),
            None => s.spec().addresses.iter().cloned().collect(),
        })
        .collect();
    let mut sets: Vec<SetState> = sets.into_iter().map(|(s, _)| s).collect();
    loop {
        let now = start.elapsed();
        let mut jobs = tokio::task::JoinSet::new();
        let mut pending = vec![0usize; sets.len()];
        for (i, s) in sets.iter().enumerate() {
            for name in s.due(now) {
                if let Some(p) = pending.get_mut(i) {
                    *p += 1;
                }
                let resolver = resolver.clone();
                let family = s.spec().family;
                let limit = limit.clone();
                jobs.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let out =
                        tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(&name, family))
                            .await
                            .unwrap_or_else(|_| {
                                Err(ResolveError::Timeout {
                                    name: name.clone(),
                                    after: RESOLVE_TIMEOUT,
                                })
                            });
                    (i, name, out)
                });
            }
        }
        if jobs.is_empty() {
            let next = sets.iter().filter_map(SetState::next_due).min();
            match next {
                Some(at) => tokio::time::sleep_until(start + at).await,
                None => return,
            }
            continue;
        }
        // A set is published as soon as its own names of this round are
        // done, so one slow name elsewhere does not hold it back.
        while let Some(done) = jobs.join_next().await {
            let Ok((i, name, out)) = done else { continue };
            if let Err(e) = &out {
                tracing::debug!(error = %e, "IPAddressSet name did not resolve; keeping its last good addresses");
            }
            let Some(s) = sets.get_mut(i) else { continue };
            s.record(&name, out, start.elapsed(), clock.now());
            if let Some(p) = pending.get_mut(i) {
                *p = p.saturating_sub(1);
                if *p > 0 {
                    continue;
                }
            }
            let Some(before) = told.get_mut(i) else {
                continue;
            };
            let status = s.status();
            let members = status_members(&status);
            let event = (members != *before)
                .then(|| members_event(s.spec(), before, &members, clock.now()));
            *before = members;
            let o = Observation {
                id: s.spec().id.clone(),
                status,
                event,
            };
            if updates.send(o).await.is_err() {
                return;
            }
        }
    }
}

fn members_event(
    spec: &SetSpec,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Event {
    let (added, removed) = members_diff(before, after);
    let object = ResourceId::parse(&spec.id)
        .map(|id| ObjectRef {
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
            name: id.name.clone(),
        })
        .unwrap_or_default();
    let mut e = Event::info(MEMBERS_CHANGED, object, now);
    e.reason = "MembersChanged".into();
    e.message = format!(
        "{added} member(s) added, {removed} removed; {} now",
        after.len()
    );
    e.attr("added", added.to_string())
        .attr("removed", removed.to_string())
        .attr("members", after.len().to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use routerd_resolve::{Family, MemoryResolver};

    fn spec(name: &str, dns: &str) -> SetSpec {
        SetSpec {
            id: format!("net.routerd.net/v1alpha1/IPAddressSet/{name}"),
            family: Family::V4,
            addresses: Vec::new(),
            names: vec![dns.to_string()],
            refresh_interval: None,
            refresh_interval_text: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_name_does_not_hold_back_another_set() {
        let r = Arc::new(MemoryResolver::new());
        r.hang("slow.example", Family::V4);
        r.set(
            "fast.example",
            Family::V4,
            &["198.51.100.9".parse().unwrap()],
            Some(Duration::from_secs(60)),
        );
        let sets = vec![
            (
                SetState::new(spec("slow", "slow.example"), None, Duration::ZERO),
                None,
            ),
            (
                SetState::new(spec("fast", "fast.example"), None, Duration::ZERO),
                None,
            ),
        ];
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(run(r, sets, Arc::new(crate::daemon::SystemClock), tx));
        let first = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("the fast set waited for the slow one")
            .unwrap();
        assert!(first.id.ends_with("/fast"), "{}", first.id);
        let e = first.event.expect("members changed");
        assert_eq!(e.type_, MEMBERS_CHANGED);
        assert_eq!(e.attributes["added"], "1");
        assert_eq!(e.attributes["removed"], "0");
        let second = rx.recv().await.unwrap();
        assert!(second.id.ends_with("/slow"));
        assert!(second.event.is_none(), "nothing resolved, nothing changed");
        assert_eq!(second.status["phase"], "Pending");
        assert_eq!(
            second.status["resolved"]["slow.example"]["lastError"],
            "slow.example: no answer within 10s"
        );
        task.abort();
    }
}
