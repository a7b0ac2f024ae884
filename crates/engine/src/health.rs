//! The health driver of a live daemon: one routerd-health scheduler for
//! every HealthCheck of the effective configuration, with probes pinned to
//! their candidates' paths and carrier loss from netlink.

use std::collections::HashMap;
use std::sync::Arc;

use routerd_health::runtime::{
    NetProber, NetlinkLinks, NoLinks, Options, Scheduler, SchedulerHandle, TokioClock,
};
use routerd_health::{BindingOverride, CheckConfig};
use routerd_model::{Kind, Resource, ResourceId};
use tokio::sync::mpsc;

use crate::daemon::{
    HealthDetail, HealthDriver, Observation, SelectionKey, StatusesFuture, selection_key,
};

/// How often an unchanged check's status still reaches the loop. Far
/// inside the freshness window selection applies (at least 2 minutes), so
/// a healthy check never goes stale for want of a heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the checks; reconfiguring replaces the scheduler (check state
/// resumes from the last known status). Observations carry statuses
/// without probe history; [`HealthDriver::detail`] serves the history.
#[derive(Debug, Default)]
pub struct RuntimeHealth {
    handle: Option<Arc<SchedulerHandle>>,
    forward: Option<tokio::task::JoinHandle<()>>,
}

impl HealthDetail for SchedulerHandle {
    fn statuses(&self, names: Vec<String>) -> StatusesFuture<'_> {
        Box::pin(SchedulerHandle::statuses(self, names))
    }
}

impl HealthDriver for RuntimeHealth {
    fn detail(&self) -> Option<Arc<dyn HealthDetail>> {
        self.handle.clone().map(|h| h as Arc<dyn HealthDetail>)
    }

    fn configure(
        &mut self,
        effective: &[Resource],
        previous: &routerd_model::StateSnapshot,
        updates: mpsc::Sender<Observation>,
    ) {
        if let Some(f) = self.forward.take() {
            f.abort();
        }
        if let Some(h) = self.handle.take() {
            h.request_shutdown();
        }
        let mut checks = Vec::new();
        for r in effective.iter().filter(|r| r.kind() == Kind::HealthCheck) {
            match CheckConfig::from_resources(effective, r.name(), &BindingOverride::default()) {
                Ok(c) => checks.push(c),
                Err(e) => {
                    tracing::warn!(check = r.name(), error = %e, "health check not scheduled")
                }
            }
        }
        if checks.is_empty() {
            return;
        }
        let mut options = Options::default();
        for c in &checks {
            let id = ResourceId::of(Kind::HealthCheck, &c.name).to_string();
            if let Some(st) = previous.get(&id) {
                options.resume.insert(c.name.clone(), st.clone());
            }
        }
        let prober = Arc::new(NetProber::new());
        let clock = Arc::new(TokioClock::system());
        let (handle, mut rx) = match NetlinkLinks::open() {
            Ok(links) => Scheduler::spawn(prober, clock, links, checks, options),
            Err(e) => {
                tracing::warn!(error = %e, "no netlink link events; carrier loss is detected by probes only");
                Scheduler::spawn(prober, clock, NoLinks, checks, options)
            }
        };
        let handle = Arc::new(handle);
        self.forward = Some(tokio::spawn(async move {
            // Per check: when its status last went to the loop, and what
            // selection read in it.
            let mut forwarded: HashMap<String, (tokio::time::Instant, SelectionKey)> =
                HashMap::new();
            while let Some(u) = rx.recv().await {
                // A result that moves nothing selection reads is passed on
                // only as a periodic heartbeat that keeps `lastCheckedAt`
                // fresh: 1,000 checks probing every second would otherwise
                // push 1,000 statuses a second through the loop for nothing.
                let now = tokio::time::Instant::now();
                let key = selection_key(&u.status);
                let due = match forwarded.get(&u.check) {
                    None => true,
                    Some((at, prev)) => {
                        u.event.is_some() || *prev != key || now.duration_since(*at) >= HEARTBEAT
                    }
                };
                if !due {
                    continue;
                }
                forwarded.insert(u.check.clone(), (now, key));
                let o = Observation {
                    id: ResourceId::of(Kind::HealthCheck, &u.check).to_string(),
                    status: u.status,
                    event: u.event,
                };
                if updates.send(o).await.is_err() {
                    return;
                }
            }
        }));
        self.handle = Some(handle);
    }
}
