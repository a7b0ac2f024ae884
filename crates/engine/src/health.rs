//! The health driver of a live daemon: one routerd-health scheduler for
//! every HealthCheck of the effective configuration, with probes pinned to
//! their candidates' paths (mark, device and source address) and carrier
//! loss from netlink.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use routerd_health::runtime::{
    NetProber, NetlinkLinks, NoLinks, Options, Scheduler, SchedulerHandle, TokioClock,
};
use routerd_health::{BindingOverride, CheckConfig, SourceDerivation, derive_sources};
use routerd_model::{Kind, Resource, ResourceId};
use tokio::sync::mpsc;

use crate::daemon::{
    HealthDetail, HealthDriver, Observation, SelectionKey, StatusesFuture, selection_key,
};
use crate::links::{KernelLinks, LinkSource};

/// How often an unchanged check's status still reaches the loop. Far
/// inside the freshness window selection applies (at least 2 minutes), so
/// a healthy check never goes stale for want of a heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the checks; reconfiguring replaces the scheduler (check state
/// resumes from the last known status). Observations carry statuses
/// without probe history; [`HealthDriver::detail`] serves the history.
///
/// Each check's probes bind the source address derived from its
/// candidates ([`derive_sources`]) over the device addresses the link
/// source reports; when a derived address changes (DHCP renumbering, a
/// static address arriving) [`HealthDriver::stale`] says so and the loop
/// configures the checks again.
#[derive(Default)]
pub struct RuntimeHealth {
    handle: Option<Arc<SchedulerHandle>>,
    forward: Option<tokio::task::JoinHandle<()>>,
    /// Device addresses; netlink of the loop's namespace when not given,
    /// opened on first use (from the loop, in the daemon's namespace).
    links: Option<Box<dyn LinkSource>>,
    /// The source each configured check was given.
    sources: BTreeMap<String, Option<IpAddr>>,
    /// Where passed probes' round-trip times go.
    latency: Option<Arc<crate::metrics::ProbeLatency>>,
}

impl std::fmt::Debug for RuntimeHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHealth")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl RuntimeHealth {
    /// Takes device addresses for probe sources from `links` instead of
    /// netlink (tests, or a daemon that already holds a link source).
    pub fn with_links(links: impl LinkSource + 'static) -> Self {
        RuntimeHealth {
            links: Some(Box::new(links)),
            ..RuntimeHealth::default()
        }
    }

    /// Addresses per kernel device, as the link source reports them.
    fn device_addresses(&mut self) -> BTreeMap<String, Vec<IpAddr>> {
        if self.links.is_none() {
            match KernelLinks::open() {
                Ok(k) => self.links = Some(Box::new(k)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read device addresses; probes get no derived source address");
                    return BTreeMap::new();
                }
            }
        }
        let Some(links) = self.links.as_mut() else {
            return BTreeMap::new();
        };
        links
            .links()
            .into_iter()
            .map(|(name, l)| {
                let addrs = l
                    .addresses
                    .iter()
                    .filter_map(|a| a.split('/').next()?.parse().ok())
                    .collect();
                (name, addrs)
            })
            .collect()
    }

    /// Derived sources of every check in `effective`.
    fn derive(&mut self, effective: &[Resource]) -> BTreeMap<String, SourceDerivation> {
        if !effective.iter().any(|r| r.kind() == Kind::HealthCheck) {
            return BTreeMap::new();
        }
        let addresses = self.device_addresses();
        derive_sources(effective, &addresses)
    }
}

impl HealthDetail for SchedulerHandle {
    fn statuses(&self, names: Vec<String>) -> StatusesFuture<'_> {
        Box::pin(SchedulerHandle::statuses(self, names))
    }
}

impl HealthDriver for RuntimeHealth {
    fn record_latency(&mut self, sink: Arc<crate::metrics::ProbeLatency>) {
        self.latency = Some(sink);
    }

    fn detail(&self) -> Option<Arc<dyn HealthDetail>> {
        self.handle.clone().map(|h| h as Arc<dyn HealthDetail>)
    }

    fn stale(&mut self, effective: &[Resource]) -> bool {
        let now: BTreeMap<String, Option<IpAddr>> = self
            .derive(effective)
            .into_iter()
            .map(|(k, v)| (k, v.address))
            .collect();
        now != self.sources
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
        let sources = self.derive(effective);
        self.sources = sources
            .iter()
            .map(|(k, v)| (k.clone(), v.address))
            .collect();
        let mut checks = Vec::new();
        for r in effective.iter().filter(|r| r.kind() == Kind::HealthCheck) {
            let source = sources.get(r.name()).cloned().unwrap_or_default();
            if !source.conflicting.is_empty() {
                tracing::info!(check = r.name(), addresses = ?source.conflicting, "candidates disagree on the probe source address; the kernel chooses it");
            }
            let overrides = BindingOverride {
                source_address: source.address,
                ..BindingOverride::default()
            };
            match CheckConfig::from_resources(effective, r.name(), &overrides) {
                Ok(c) => {
                    if let (Some(a), Some(o)) = (source.address, source.origin) {
                        tracing::debug!(check = r.name(), source = %a, origin = ?o, "probe source address");
                    }
                    checks.push(c);
                }
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
        let latency = self.latency.clone();
        self.forward = Some(tokio::spawn(async move {
            // Per check: when its status last went to the loop, and what
            // selection read in it.
            let mut forwarded: HashMap<String, (tokio::time::Instant, SelectionKey)> =
                HashMap::new();
            while let Some(u) = rx.recv().await {
                // Every result feeds the histogram, before the filter below.
                if let (Some(l), Some(rtt)) = (&latency, u.report.rtt) {
                    l.observe(&u.check, rtt);
                }
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
