//! The health driver of a live daemon: one routerd-health scheduler for
//! every HealthCheck of the effective configuration, with probes pinned to
//! their candidates' paths and carrier loss from netlink.

use std::collections::HashSet;
use std::sync::Arc;

use routerd_health::runtime::{
    NetProber, NetlinkLinks, NoLinks, Options, Scheduler, SchedulerHandle, TokioClock,
};
use routerd_health::{BindingOverride, CheckConfig};
use routerd_model::{Kind, Resource, ResourceId};
use tokio::sync::mpsc;

use crate::daemon::{HealthDriver, Observation};

/// Runs the checks; reconfiguring replaces the scheduler (check state
/// restarts from the stored status on the next results).
#[derive(Debug, Default)]
pub struct RuntimeHealth {
    handle: Option<Arc<SchedulerHandle>>,
    forward: Option<tokio::task::JoinHandle<()>>,
}

impl HealthDriver for RuntimeHealth {
    fn configure(
        &mut self,
        effective: &[Resource],
        previous: &routerd_model::StateSnapshot,
        updates: mpsc::Sender<Observation>,
    ) {
        if let Some(f) = self.forward.take() {
            f.abort();
        }
        if let Some(h) = self.handle.take()
            && let Ok(h) = Arc::try_unwrap(h)
        {
            tokio::spawn(h.shutdown());
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
        let h2 = handle.clone();
        self.forward = Some(tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(u) = rx.try_recv() {
                    batch.push(u);
                }
                let names: HashSet<String> = batch.iter().map(|u| u.check.clone()).collect();
                let mut events: std::collections::HashMap<String, Vec<routerd_model::Event>> =
                    Default::default();
                for u in batch {
                    if let Some(e) = u.event {
                        events.entry(u.check).or_default().push(e);
                    }
                }
                for (name, status) in h2.snapshot().await {
                    if !names.contains(&name) {
                        continue;
                    }
                    let id = ResourceId::of(Kind::HealthCheck, &name).to_string();
                    let evs = events.remove(&name).unwrap_or_default();
                    let mut first = true;
                    for e in evs {
                        let o = Observation {
                            id: id.clone(),
                            status: status.clone(),
                            event: Some(e),
                        };
                        if updates.send(o).await.is_err() {
                            return;
                        }
                        first = false;
                    }
                    if first
                        && updates
                            .send(Observation {
                                id,
                                status,
                                event: None,
                            })
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
            }
        }));
        self.handle = Some(handle);
    }
}
