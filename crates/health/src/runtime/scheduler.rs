//! One scheduler for every check.
//!
//! routerd runs one process per check; this runs thousands of checks on one
//! task. A single driver owns all state (no locks): a timer heap of probe
//! groups, probe completions from spawned tasks, link events and commands
//! arrive on one `select!`.
//!
//! * Checks whose [`ProbeSpec`] is equal (same target, protocol, port,
//!   timeout, options and binding) form one group: the probe runs once per
//!   tick and its result feeds every member. The group ticks at the shortest
//!   interval any member wants right now.
//! * Every probe is a spawned task bounded by its timeout, so a hung probe
//!   never delays the next tick. Results are applied newest-first: a result
//!   older than one already applied is dropped as stale.
//! * Concurrency is bounded (`max_in_flight`); a tick that finds no room is
//!   counted as skipped rather than queued, so a backlog never builds.
//! * Jitter comes from an injected seeded RNG: the first tick of each group
//!   lands uniformly within its interval and later ticks vary by a small
//!   spread, so checks added together do not fire together.
//! * Carrier loss on a device fails every check pinned to it at once (a
//!   decisive failure) and discards in-flight probes; carrier return
//!   probes at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use routerd_model::{Event, Status};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::carrier::{LinkEvent, LinkEvents};
use super::clock::Clock;
use super::probe::{Prober, probe_with_timeout};
use crate::check::{CheckConfig, ProbeSpec};
use crate::evidence::{Evidence, FailureKind};
use crate::machine::{DEFAULT_HISTORY, HealthState, ProbeReport, Transition};

/// Spreads ticks. Randomness is injected so tests are reproducible.
#[derive(Debug, Clone)]
pub struct Jitter {
    rng: Option<SmallRng>,
    spread: f64,
}

impl Jitter {
    /// No jitter: every group's first tick is immediate, then exactly
    /// every interval.
    pub fn none() -> Self {
        Jitter {
            rng: None,
            spread: 0.0,
        }
    }

    /// Seeded jitter with a 10% spread around the interval.
    pub fn seeded(seed: u64) -> Self {
        Jitter {
            rng: Some(SmallRng::seed_from_u64(seed)),
            spread: 0.1,
        }
    }

    /// Sets the spread (fraction of the interval, clamped to 0..=1).
    pub fn with_spread(mut self, spread: f64) -> Self {
        self.spread = spread.clamp(0.0, 1.0);
        self
    }

    /// Delay before a group's first tick: uniform in `[0, interval)`.
    pub fn first(&mut self, interval: Duration) -> Duration {
        match &mut self.rng {
            None => Duration::ZERO,
            Some(rng) => interval.mul_f64(rng.random_range(0.0..1.0)),
        }
    }

    /// Delay between ticks: `interval` varied by ±spread/2 (mean-preserving,
    /// so detection time does not grow on average).
    pub fn next(&mut self, interval: Duration) -> Duration {
        match &mut self.rng {
            Some(rng) if self.spread > 0.0 => {
                let f = 1.0 + self.spread * (rng.random_range(0.0..1.0) - 0.5);
                interval.mul_f64(f)
            }
            _ => interval,
        }
    }
}

/// Seed of the default jitter. Spreading only has to differ between the
/// checks of one process, so a fixed seed keeps runs reproducible; pass a
/// seed of your own to vary it between daemons.
pub const DEFAULT_SEED: u64 = 0x0072_6f75_7465_7264;

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Probes in flight at most.
    pub max_in_flight: usize,
    /// Tick spreading.
    pub jitter: Jitter,
    /// History records per check.
    pub history_limit: usize,
    /// Capacity of the update channel; updates beyond it are dropped and
    /// counted (status stays queryable through the handle).
    pub updates_capacity: usize,
    /// Statuses published before a restart, by check name: a fresh one
    /// (checked within the check's freshness) is continued instead of
    /// starting from Unknown, so a restart does not flap routes.
    pub resume: HashMap<String, Status>,
    /// Ticks due within this window of a timer wake-up run in that wake-up
    /// (capped per group at a twentieth of its interval). Jitter spreads
    /// ticks evenly, so without it every tick is its own wake-up (and
    /// `epoll_wait`); a tick a few percent of its interval early is
    /// harmless and saves a wake-up per check at thousands of checks.
    pub coalesce: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_in_flight: 1024,
            jitter: Jitter::seeded(DEFAULT_SEED),
            history_limit: DEFAULT_HISTORY,
            updates_capacity: 4096,
            resume: HashMap::new(),
            coalesce: Duration::from_millis(20),
        }
    }
}

/// One applied result.
#[derive(Debug, Clone)]
pub struct Update {
    /// HealthCheck name.
    pub check: String,
    /// When the result was judged.
    pub at: DateTime<Utc>,
    /// The result.
    pub report: ProbeReport,
    /// What it did.
    pub transition: Transition,
    /// The event to publish, when phase or result changed.
    pub event: Option<Event>,
    /// The check's status after the result, without `history[]`
    /// ([`HealthState::summary`]); [`SchedulerHandle::statuses`] has the
    /// full map.
    pub status: Status,
}

/// Counters, for the performance budget ("no missed ticks") and debugging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Enabled checks.
    pub checks: usize,
    /// Distinct probes (groups).
    pub groups: usize,
    /// Ticks handled.
    pub ticks: u64,
    /// Probes started.
    pub probes_started: u64,
    /// Probes finished.
    pub probes_completed: u64,
    /// Results dropped because a newer one was already applied.
    pub stale_results: u64,
    /// Ticks that found `max_in_flight` probes running and did not probe.
    pub skipped_ticks: u64,
    /// Ticks that ran more than one interval late.
    pub missed_ticks: u64,
    /// Largest delay between a tick's due time and its handling.
    pub max_tick_lateness: Duration,
    /// Updates dropped because the channel was full.
    pub dropped_updates: u64,
    /// Probes in flight now.
    pub in_flight: usize,
}

enum Command {
    Snapshot(oneshot::Sender<Vec<(String, Status)>>),
    Statuses(Vec<String>, oneshot::Sender<Vec<(String, Status)>>),
    Stats(oneshot::Sender<Stats>),
    ProbeNow(String),
    Shutdown,
}

/// Talks to a running scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Command>,
    join: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Every check's status map (disabled checks included), by name.
    pub async fn snapshot(&self) -> Vec<(String, Status)> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Snapshot(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The full status maps (history included) of the named checks that
    /// exist, in configuration order.
    pub async fn statuses(&self, names: Vec<String>) -> Vec<(String, Status)> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Statuses(names, tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Counters.
    pub async fn stats(&self) -> Stats {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Stats(tx)).is_err() {
            return Stats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Probes `check` (and its group) now (routerd's `renew` command).
    pub fn probe_now(&self, check: &str) {
        let _ = self.tx.send(Command::ProbeNow(check.to_string()));
    }

    /// Asks the scheduler to stop without waiting for it (other holders of
    /// the handle may still ask it for statuses; they get none).
    pub fn request_shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }

    /// Stops the scheduler and waits for it.
    pub async fn shutdown(self) {
        let _ = self.tx.send(Command::Shutdown);
        let _ = self.join.await;
    }
}

struct Slot {
    cfg: CheckConfig,
    state: HealthState,
}

struct Group {
    spec: Arc<ProbeSpec>,
    fail_closed: Option<String>,
    members: Vec<usize>,
    next_seq: u64,
    applied_seq: u64,
    generation: u64,
    due: Instant,
    last_tick: Instant,
}

struct Done {
    group: usize,
    seq: u64,
    report: ProbeReport,
}

/// The scheduler. Build with [`Scheduler::spawn`].
pub struct Scheduler<P: Prober, L: LinkEvents> {
    prober: Arc<P>,
    clock: Arc<dyn Clock>,
    links: L,
    links_open: bool,
    slots: Vec<Slot>,
    disabled: Vec<String>,
    groups: Vec<Group>,
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    updates: mpsc::Sender<Update>,
    down: HashSet<String>,
    opts: Options,
    stats: Stats,
}

impl<P: Prober, L: LinkEvents> Scheduler<P, L> {
    /// Starts scheduling `checks` on the current tokio runtime. Updates
    /// (every applied result) arrive on the returned receiver.
    pub fn spawn(
        prober: Arc<P>,
        clock: Arc<dyn Clock>,
        links: L,
        checks: Vec<CheckConfig>,
        opts: Options,
    ) -> (SchedulerHandle, mpsc::Receiver<Update>) {
        let (updates, updates_rx) = mpsc::channel(opts.updates_capacity.max(1));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut s = Scheduler {
            prober,
            clock,
            links,
            links_open: true,
            slots: Vec::new(),
            disabled: Vec::new(),
            groups: Vec::new(),
            heap: BinaryHeap::new(),
            done_tx,
            done_rx,
            updates,
            down: HashSet::new(),
            opts,
            stats: Stats::default(),
        };
        s.install(checks);
        let (tx, rx) = mpsc::unbounded_channel();
        let join = tokio::spawn(s.run(rx));
        (SchedulerHandle { tx, join }, updates_rx)
    }

    fn install(&mut self, checks: Vec<CheckConfig>) {
        let now = Instant::now();
        let wall = self.clock.now();
        let mut index: HashMap<(Arc<ProbeSpec>, Option<String>), usize> = HashMap::new();
        for cfg in checks {
            if !cfg.enabled {
                self.disabled.push(cfg.name.clone());
                continue;
            }
            let mut state = HealthState::new(cfg.identity(), cfg.thresholds)
                .with_history_limit(self.opts.history_limit);
            if let Some(prev) = self.opts.resume.get(&cfg.name) {
                let max_age =
                    chrono::TimeDelta::from_std(cfg.interval.saturating_mul(3) + cfg.probe.timeout)
                        .unwrap_or(chrono::TimeDelta::seconds(120))
                        .max(chrono::TimeDelta::seconds(120));
                state.resume(prev, wall, max_age);
            }
            state.start(wall);
            let key = (Arc::new(cfg.probe.clone()), cfg.fail_closed.clone());
            let slot = self.slots.len();
            let g = *index.entry(key.clone()).or_insert_with(|| {
                self.groups.push(Group {
                    spec: key.0.clone(),
                    fail_closed: key.1.clone(),
                    members: Vec::new(),
                    next_seq: 0,
                    applied_seq: 0,
                    generation: 0,
                    due: now,
                    last_tick: now,
                });
                self.groups.len() - 1
            });
            self.groups[g].members.push(slot);
            self.slots.push(Slot { cfg, state });
        }
        for g in 0..self.groups.len() {
            let first = self.opts.jitter.first(self.group_interval(g));
            self.schedule(g, now + first);
        }
        self.stats.checks = self.slots.len();
        self.stats.groups = self.groups.len();
    }

    fn group_interval(&self, g: usize) -> Duration {
        self.groups[g]
            .members
            .iter()
            .map(|&m| {
                let s = &self.slots[m];
                s.cfg.interval_in(s.state.phase())
            })
            .min()
            .unwrap_or(Duration::from_secs(30))
    }

    fn schedule(&mut self, g: usize, at: Instant) {
        let grp = &mut self.groups[g];
        grp.generation += 1;
        grp.due = at;
        self.heap.push(Reverse((at, g, grp.generation)));
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // One timer, re-armed only when the earliest due time changes:
        // creating a timer per loop turn costs more than the rest of a
        // tick at thousands of checks.
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let next_due = self.heap.peek().map(|Reverse((t, _, _))| *t);
            if next_due != armed {
                if let Some(t) = next_due {
                    sleep.as_mut().reset(t);
                }
                armed = next_due;
            }
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return,
                    Some(c) => self.command(c),
                },
                ev = self.links.next(), if self.links_open => match ev {
                    Some(ev) => self.link(ev),
                    None => self.links_open = false,
                },
                Some(done) = self.done_rx.recv() => self.completed(done),
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    self.fire_due();
                }
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Snapshot(tx) => {
                let now = self.clock.now();
                let mut v: Vec<(String, Status)> = self
                    .slots
                    .iter()
                    .map(|s| (s.cfg.name.clone(), s.state.status()))
                    .collect();
                v.extend(
                    self.disabled
                        .iter()
                        .map(|n| (n.clone(), HealthState::disabled_status(now))),
                );
                let _ = tx.send(v);
            }
            Command::Statuses(names, tx) => {
                let names: HashSet<String> = names.into_iter().collect();
                let v = self
                    .slots
                    .iter()
                    .filter(|s| names.contains(&s.cfg.name))
                    .map(|s| (s.cfg.name.clone(), s.state.status()))
                    .collect();
                let _ = tx.send(v);
            }
            Command::Stats(tx) => {
                let mut s = self.stats.clone();
                s.in_flight = self.in_flight();
                let _ = tx.send(s);
            }
            Command::ProbeNow(name) => {
                let now = Instant::now();
                let groups: Vec<usize> = (0..self.groups.len())
                    .filter(|&g| {
                        self.groups[g]
                            .members
                            .iter()
                            .any(|&m| self.slots[m].cfg.name == name)
                    })
                    .collect();
                for g in groups {
                    self.schedule(g, now);
                }
            }
            Command::Shutdown => {}
        }
    }

    fn in_flight(&self) -> usize {
        usize::try_from(self.stats.probes_started - self.stats.probes_completed).unwrap_or(0)
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, g, generation))) = self.heap.peek().copied() {
            // A group may run early by at most a twentieth of its interval
            // (5 ms at 100 ms), never more than `coalesce`.
            if t > now {
                let window = self.opts.coalesce.min(self.group_interval(g) / 20);
                if t > now + window {
                    break;
                }
            }
            self.heap.pop();
            if self
                .groups
                .get(g)
                .is_some_and(|grp| grp.generation == generation)
            {
                self.tick(g, t, now);
            }
        }
    }

    fn tick(&mut self, g: usize, due: Instant, now: Instant) {
        self.stats.ticks += 1;
        self.groups[g].last_tick = due;
        let interval = self.group_interval(g);
        let late = now.saturating_duration_since(due);
        self.stats.max_tick_lateness = self.stats.max_tick_lateness.max(late);
        if late > interval {
            self.stats.missed_ticks += 1;
        }
        let device = self.groups[g].spec.binding.device.clone();
        if let Some(msg) = self.groups[g].fail_closed.clone() {
            let report = ProbeReport::failed(msg).with_evidence(Evidence {
                failure_kind: Some(FailureKind::Other),
                egress_interface: device,
                ..Evidence::default()
            });
            self.apply_group(g, &report);
        } else if let Some(dev) = device.filter(|d| self.down.contains(d)) {
            self.apply_group(g, &carrier_report(&dev));
        } else if self.in_flight() >= self.opts.max_in_flight {
            self.stats.skipped_ticks += 1;
        } else {
            let grp = &mut self.groups[g];
            grp.next_seq += 1;
            let seq = grp.next_seq;
            let spec = grp.spec.clone();
            let prober = self.prober.clone();
            let done = self.done_tx.clone();
            self.stats.probes_started += 1;
            tokio::spawn(async move {
                let report = probe_with_timeout(&*prober, &spec).await;
                let _ = done.send(Done {
                    group: g,
                    seq,
                    report,
                });
            });
        }
        // Next tick from the due time (no drift), never in the past.
        let interval = self.group_interval(g);
        let next = (due + self.opts.jitter.next(interval)).max(now);
        self.schedule(g, next);
    }

    fn completed(&mut self, done: Done) {
        self.stats.probes_completed += 1;
        let Some(grp) = self.groups.get_mut(done.group) else {
            return;
        };
        if done.seq <= grp.applied_seq {
            self.stats.stale_results += 1;
            return;
        }
        grp.applied_seq = done.seq;
        let before = self.group_interval(done.group);
        self.apply_group(done.group, &done.report);
        // The phase decides the interval (failingInterval while Failing):
        // re-plan the next tick from the last one when it changed, so a new
        // failure is confirmed sooner and a settled check slows down again.
        let after = self.group_interval(done.group);
        if after != before {
            let grp = &self.groups[done.group];
            let at = (grp.last_tick + self.opts.jitter.next(after)).max(Instant::now());
            self.schedule(done.group, at);
        }
    }

    fn apply_group(&mut self, g: usize, report: &ProbeReport) {
        let wall = self.clock.now();
        let members = self.groups[g].members.clone();
        for m in members {
            let slot = &mut self.slots[m];
            let transition = slot.state.apply(wall, report);
            let event = slot.state.event(&transition, wall);
            let update = Update {
                check: slot.cfg.name.clone(),
                at: wall,
                report: report.clone(),
                transition,
                event,
                status: slot.state.summary(),
            };
            if self.updates.try_send(update).is_err() {
                self.stats.dropped_updates += 1;
            }
        }
    }

    fn link(&mut self, ev: LinkEvent) {
        let affected: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.groups[g].spec.binding.device.as_deref() == Some(&ev.ifname))
            .collect();
        if !ev.carrier {
            if !self.down.insert(ev.ifname.clone()) {
                return;
            }
            let report = carrier_report(&ev.ifname);
            for g in affected {
                // Whatever is in flight started before the loss; drop it.
                let grp = &mut self.groups[g];
                grp.applied_seq = grp.next_seq;
                self.apply_group(g, &report);
            }
        } else if self.down.remove(&ev.ifname) {
            let now = Instant::now();
            for g in affected {
                self.schedule(g, now);
            }
        }
    }
}

fn carrier_report(dev: &str) -> ProbeReport {
    ProbeReport::failed(format!("carrier lost on {dev}"))
        .with_evidence(Evidence {
            failure_kind: Some(FailureKind::CarrierLost),
            egress_interface: Some(dev.to_string()),
            ..Evidence::default()
        })
        .decisive()
}
