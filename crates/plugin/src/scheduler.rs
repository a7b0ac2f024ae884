//! Running a plugin on its triggers: `interval` (every) and `event` (topic).
//!
//! One loop per plugin awaits each run before looking at the next trigger,
//! so a plugin never overlaps itself on its own triggers; ticks that fall due
//! during a run are coalesced into one. [`SingleFlight`] extends the guarantee
//! to runs started elsewhere (a manual run through the daemon): a trigger
//! that finds the plugin busy is skipped, not queued.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use routerd_model::spec::{DynamicOverridePolicySpec, PluginSpec, RequestTrigger};
use routerd_model::{EventSource, Resource};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::invoke::{Invocation, Report, invoke_into};
use crate::part::PartRules;
use crate::request::{event_trigger, interval_trigger};
use crate::runner::RunConfig;
use crate::source::SourceState;
use crate::triggers::{TriggerError, TriggerPlan};

/// The set of plugins running right now, shared by everything that starts
/// plugin runs.
#[derive(Debug, Clone, Default)]
pub struct SingleFlight {
    running: Arc<Mutex<HashSet<String>>>,
}

/// Marks a plugin as running until dropped.
#[derive(Debug)]
pub struct FlightGuard {
    running: Arc<Mutex<HashSet<String>>>,
    plugin: String,
}

impl SingleFlight {
    /// An empty set.
    pub fn new() -> Self {
        SingleFlight::default()
    }

    /// Claims `plugin`; `None` if it is already running.
    pub fn try_begin(&self, plugin: &str) -> Option<FlightGuard> {
        let mut set = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if set.insert(plugin.to_string()) {
            Some(FlightGuard {
                running: Arc::clone(&self.running),
                plugin: plugin.to_string(),
            })
        } else {
            None
        }
    }

    /// Whether `plugin` is running.
    pub fn is_running(&self, plugin: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(plugin)
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.plugin);
    }
}

/// What a trigger loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveStats {
    /// Runs started.
    pub runs: u64,
    /// Triggers skipped because the plugin was already running.
    pub skipped_busy: u64,
}

/// The next trigger of one plugin: interval deadlines plus matching topics
/// from the daemon's event bus.
#[derive(Debug)]
pub struct TriggerSource {
    plan: TriggerPlan,
    next: Vec<Instant>,
    topics: Option<broadcast::Receiver<String>>,
}

impl TriggerSource {
    /// Starts the clock: interval triggers first fire one period from now.
    /// A lagging `topics` receiver loses events rather than queueing runs.
    pub fn new(plan: TriggerPlan, topics: Option<broadcast::Receiver<String>>) -> Self {
        let start = Instant::now();
        let next = plan.intervals.iter().map(|d| start + *d).collect();
        TriggerSource { plan, next, topics }
    }

    /// Waits for the next trigger; never returns when there is none.
    pub async fn next(&mut self) -> RequestTrigger {
        loop {
            let due = self.next.iter().min().copied();
            tokio::select! {
                () = sleep_until_opt(due) => {
                    self.reschedule();
                    return interval_trigger();
                }
                msg = recv_opt(&mut self.topics) => match msg {
                    Ok(topic) if self.plan.matches_topic(&topic) => return event_trigger(&topic),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.topics = None,
                },
            }
        }
    }

    /// Pushes every interval that is due to one period from now, so ticks
    /// that fell due during a run collapse into one later run.
    pub fn reschedule(&mut self) {
        let now = Instant::now();
        for (n, every) in self.next.iter_mut().zip(&self.plan.intervals) {
            if *n <= now {
                *n = now + *every;
            }
        }
    }
}

/// Runs `run` whenever one of `plan`'s triggers fires, until `shutdown`
/// completes; each run is awaited before the next trigger is looked at.
/// Dropping a run on shutdown kills its process group (see
/// [`runner`](crate::runner)).
pub async fn drive<F, Fut>(
    plugin: &str,
    plan: &TriggerPlan,
    topics: Option<broadcast::Receiver<String>>,
    flights: &SingleFlight,
    shutdown: impl Future<Output = ()>,
    mut run: F,
) -> DriveStats
where
    F: FnMut(RequestTrigger) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stats = DriveStats::default();
    if !plan.topics.is_empty() && topics.is_none() {
        tracing::warn!(
            plugin,
            "plugin has event triggers but no event source was given"
        );
    }
    let mut source = TriggerSource::new(plan.clone(), topics);
    tokio::pin!(shutdown);
    loop {
        let trigger = tokio::select! {
            () = &mut shutdown => break,
            t = source.next() => t,
        };
        let Some(guard) = flights.try_begin(plugin) else {
            stats.skipped_busy += 1;
            continue;
        };
        stats.runs += 1;
        tokio::select! {
            () = &mut shutdown => break,
            () = run(trigger) => {}
        }
        drop(guard);
        source.reschedule();
    }
    stats
}

/// One plugin as the daemon runs it.
#[derive(Debug, Clone, Copy)]
pub struct PluginTask<'a> {
    /// Plugin name.
    pub plugin: &'a str,
    /// Its spec (triggers included).
    pub spec: &'a PluginSpec,
    /// Startup resources.
    pub startup: &'a [Resource],
    /// DynamicOverridePolicies of the startup config.
    pub policies: &'a [DynamicOverridePolicySpec],
    /// Result limits.
    pub rules: &'a PartRules,
    /// Runner limits.
    pub run_config: &'a RunConfig,
}

/// Runs a plugin on its triggers into `state` until `shutdown`: every run
/// goes through [`invoke_into`], so a refused run keeps the previous part,
/// and `on_report` sees each report (to publish its events and store the
/// accepted part).
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    task: PluginTask<'_>,
    state: &mut SourceState,
    topics: Option<broadcast::Receiver<String>>,
    flights: &SingleFlight,
    events_from: &EventSource,
    shutdown: impl Future<Output = ()>,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    mut on_report: impl FnMut(&SourceState, &Report),
) -> Result<DriveStats, TriggerError> {
    let plan = TriggerPlan::from_triggers(&task.spec.triggers)?;
    let mut stats = DriveStats::default();
    let mut source = TriggerSource::new(plan, topics);
    tokio::pin!(shutdown);
    loop {
        let trigger = tokio::select! {
            () = &mut shutdown => break,
            t = source.next() => t,
        };
        let Some(guard) = flights.try_begin(task.plugin) else {
            stats.skipped_busy += 1;
            continue;
        };
        stats.runs += 1;
        let inv = Invocation {
            plugin: task.plugin,
            spec: task.spec,
            startup: task.startup,
            policies: task.policies,
            trigger,
            previous_generation: state.generation(),
            events_from: events_from.clone(),
            rules: task.rules,
        };
        let report = tokio::select! {
            () = &mut shutdown => break,
            r = invoke_into(state, inv, task.run_config, clock) => r,
        };
        drop(guard);
        on_report(state, &report);
        source.reschedule();
    }
    Ok(stats)
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(
    rx: &mut Option<broadcast::Receiver<String>>,
) -> Result<String, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
