//! Running a plugin on its triggers: `interval` (every) and `event` (topic).
//!
//! A plugin never runs twice at once, whoever starts it: every run, from the
//! trigger loops and from the control API, holds the plugin's gate
//! ([`Gates`]). A loop awaits each run before it looks at the next trigger,
//! and triggers that arrive while a run is in progress (this loop's or one
//! started elsewhere) are coalesced into **one** follow-up run after it, never
//! queued one run each: a plugin asked ten times during a slow run runs once
//! more, with the newest information.

use std::future::Future;

use chrono::{DateTime, Utc};
use routerd_model::spec::{DynamicOverridePolicySpec, PluginSpec, RequestTrigger};
use routerd_model::{Event, EventSource, Resource};
use tokio::sync::broadcast;
use tokio::time::Instant;

pub use crate::gate::{Busy, Gates, Holder, Permit};
use crate::invoke::{Invocation, Report, invoke_into};
use crate::part::PartRules;
use crate::request::{event_trigger, interval_trigger};
use crate::runner::RunConfig;
use crate::source::SourceState;
use crate::triggers::{TriggerError, TriggerPlan};

/// What a trigger loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveStats {
    /// Runs started.
    pub runs: u64,
    /// Runs that first waited for a run started elsewhere (a manual run).
    pub waited: u64,
    /// Triggers that got no run of their own because they arrived while a
    /// run was in progress or awaited; each such burst made one run. The
    /// missed ticks of one interval count once.
    pub coalesced: u64,
}

/// The next trigger of one plugin: interval deadlines plus matching topics
/// from the daemon's event bus.
#[derive(Debug)]
pub struct TriggerSource {
    plan: TriggerPlan,
    next: Vec<Instant>,
    topics: Option<broadcast::Receiver<Event>>,
}

impl TriggerSource {
    /// Starts the clock: interval triggers first fire one period from now.
    /// A lagging `topics` receiver loses events rather than queueing runs.
    pub fn new(plan: TriggerPlan, topics: Option<broadcast::Receiver<Event>>) -> Self {
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
                    Ok(event) if self.plan.matches_topic(&event.type_) => return event_trigger(&event),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.topics = None,
                },
            }
        }
    }

    /// Takes, without waiting, every trigger that has arrived since the last
    /// look: how many there were and the one to run for them (an event
    /// trigger when a topic matched, as it says more than a tick: the latest
    /// matching event, since it describes the state the run will see, with
    /// `coalesced` counting the events it stands for).
    pub fn drain(&mut self) -> (u64, Option<RequestTrigger>) {
        let now = Instant::now();
        let mut count = 0;
        let mut trigger = None;
        for (n, every) in self.next.iter_mut().zip(&self.plan.intervals) {
            if *n <= now {
                *n = now + *every;
                count += 1;
                trigger.get_or_insert_with(interval_trigger);
            }
        }
        let mut events = 0;
        if let Some(rx) = &mut self.topics {
            loop {
                match rx.try_recv() {
                    Ok(event) if self.plan.matches_topic(&event.type_) => {
                        count += 1;
                        events += 1;
                        trigger = Some(event_trigger(&event));
                    }
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Closed) => {
                        self.topics = None;
                        break;
                    }
                }
            }
        }
        if let Some(t) = trigger.as_mut().filter(|_| events > 1) {
            t.coalesced = Some(events);
        }
        (count, trigger)
    }

    /// Pushes every interval that is due to one period from now.
    pub fn reschedule(&mut self) {
        let now = Instant::now();
        for (n, every) in self.next.iter_mut().zip(&self.plan.intervals) {
            if *n <= now {
                *n = now + *every;
            }
        }
    }
}

/// The scheduling half of a trigger loop: which trigger runs next, with
/// the plugin's gate held.
struct Flights<'a> {
    plugin: &'a str,
    gates: &'a Gates,
    source: TriggerSource,
    follow_up: Option<RequestTrigger>,
    stats: DriveStats,
}

impl<'a> Flights<'a> {
    fn new(plugin: &'a str, gates: &'a Gates, source: TriggerSource) -> Self {
        Flights {
            plugin,
            gates,
            source,
            follow_up: None,
            stats: DriveStats::default(),
        }
    }

    /// Waits for a trigger (or takes the pending follow-up), then for the
    /// gate. What arrived while waiting for another path's run is folded
    /// into this run: it starts after that run, so it sees what they asked
    /// for.
    async fn next(
        &mut self,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> (RequestTrigger, Permit) {
        let trigger = match self.follow_up.take() {
            Some(t) => t,
            None => self.source.next().await,
        };
        let permit = self
            .gates
            .acquire(self.plugin, || Holder {
                trigger: trigger.type_.clone(),
                since: clock(),
            })
            .await;
        let mut trigger = trigger;
        if permit.waited() {
            self.stats.waited += 1;
            let (count, newer) = self.source.drain();
            self.stats.coalesced += count;
            // An event that arrived while waiting describes the state this
            // run will see better than the one that started the wait.
            if let Some(newer) = newer.filter(|t| t.type_ == "event") {
                trigger = fold(trigger, newer);
            }
        }
        self.stats.runs += 1;
        (trigger, permit)
    }

    /// After a run: whatever arrived during it becomes one follow-up run.
    fn finished(&mut self) {
        let (count, trigger) = self.source.drain();
        self.stats.coalesced += count.saturating_sub(1);
        self.follow_up = trigger;
    }
}

/// Runs `run` whenever one of `plan`'s triggers fires, until `shutdown`
/// completes, holding `plugin`'s gate in `gates` for each run; triggers that
/// arrive during a run make one follow-up run. Dropping a run on shutdown
/// kills its process group (see [`runner`](crate::runner)).
pub async fn drive<F, Fut>(
    plugin: &str,
    plan: &TriggerPlan,
    topics: Option<broadcast::Receiver<Event>>,
    gates: &Gates,
    shutdown: impl Future<Output = ()>,
    mut run: F,
) -> DriveStats
where
    F: FnMut(RequestTrigger) -> Fut,
    Fut: Future<Output = ()>,
{
    if !plan.topics.is_empty() && topics.is_none() {
        tracing::warn!(
            plugin,
            "plugin has event triggers but no event source was given"
        );
    }
    let mut flights = Flights::new(plugin, gates, TriggerSource::new(plan.clone(), topics));
    let clock = Utc::now;
    tokio::pin!(shutdown);
    loop {
        let (trigger, permit) = tokio::select! {
            () = &mut shutdown => break,
            next = flights.next(&clock) => next,
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = run(trigger) => {}
        }
        drop(permit);
        flights.finished();
    }
    flights.stats
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
/// accepted part). Runs hold the plugin's gate in `gates` and number their
/// parts after the last generation any path recorded there.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    task: PluginTask<'_>,
    state: &mut SourceState,
    topics: Option<broadcast::Receiver<Event>>,
    gates: &Gates,
    events_from: &EventSource,
    shutdown: impl Future<Output = ()>,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    mut on_report: impl FnMut(&SourceState, &Report),
) -> Result<DriveStats, TriggerError> {
    let plan = TriggerPlan::from_triggers(&task.spec.triggers)?;
    let mut flights = Flights::new(task.plugin, gates, TriggerSource::new(plan, topics));
    tokio::pin!(shutdown);
    loop {
        let (trigger, mut permit) = tokio::select! {
            () = &mut shutdown => break,
            next = flights.next(clock) => next,
        };
        state.observe_generation(permit.generation());
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
        permit.record_generation(state.generation());
        // Reported before the gate opens, so the next run's output (from
        // any path) comes after this one's.
        on_report(state, &report);
        drop(permit);
        flights.finished();
    }
    Ok(flights.stats)
}

/// `newer` replaces `older`, counting the events both stand for.
fn fold(older: RequestTrigger, mut newer: RequestTrigger) -> RequestTrigger {
    let stood_for = |t: &RequestTrigger| {
        if t.type_ == "event" {
            t.coalesced.unwrap_or(1)
        } else {
            0
        }
    };
    let total = stood_for(&older) + stood_for(&newer);
    newer.coalesced = (total > 1).then_some(total);
    newer
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(
    rx: &mut Option<broadcast::Receiver<Event>>,
) -> Result<Event, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
