//! One policy evaluation: readiness, choice with failback control, status,
//! events and the decision record.
//!
//! Failback control (all modes, including `weighted-ecmp` membership):
//!
//! * a current choice that is no longer ready is abandoned at once (failover
//!   prefers candidates whose hold-down has passed, and falls back to the
//!   best ready one when none has);
//! * `preempt: false` keeps a ready current choice for as long as it stays
//!   ready;
//! * `hysteresis` (default 30s) is routerd's minimum dwell: no preemption
//!   within `hysteresis` of the last change;
//! * `preemptDelay` (default 0) is a hold-down: a better candidate preempts
//!   only once it has been continuously ready for `preemptDelay`
//!   (`readySince` in the candidate's status entry is that clock).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use routerd_model::id::ObjectRef;
use routerd_model::spec::EgressRoutePolicySpec;
use routerd_model::{Event, GoDuration, Status};

use crate::decision::{CandidateDecision, Decision, Hold, Member, TargetDecision};
use crate::observe::CandidateObservation;
use crate::rank::{CandidateState, best_of, rank_cmp, tie_break};
use crate::readiness::{Assessment, Before, Naming, assess, reassess};
use crate::status::{
    Patch, Previous, Shape, TargetsOut, patch_candidate, patch_candidate_delta,
    patch_destination_cidrs, patch_members,
};
use crate::time::{add, format_rfc3339_nano, sub};
use crate::{ROUTE_CHANGED_EVENT, STATUS_CHANGED_EVENT};

/// An explanation, or nothing when the caller asked for a terse record
/// (formatting is a large part of a hot-path evaluation).
macro_rules! explain {
    ($ctx:expr, $($arg:tt)*) => {
        if $ctx.input.options.terse {
            String::new()
        } else {
            format!($($arg)*)
        }
    };
}

const HIGHEST_WEIGHT_READY: &str = "highest-weight-ready";
const WEIGHTED_ECMP: &str = "weighted-ecmp";

/// Knobs that come from the daemon, not from the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelectOptions {
    /// The daemon runs in dry-run mode (written as `dryRun` in the
    /// policy-route shape; never in the advisory shape).
    pub dry_run: bool,
    /// Leave the per-candidate part and the explanation text of the
    /// decision record out. The record is deterministic, so a daemon can skip
    /// it on the hot path and rebuild it on demand from the same inputs
    /// ([`crate::PolicySet::decision`] does that from a `SetState`).
    pub terse: bool,
}

/// Everything one evaluation reads.
#[derive(Clone, Copy, Debug)]
pub struct PolicyInput<'a> {
    /// The policy's apiVersion.
    pub api_version: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// The spec.
    pub spec: &'a EgressRoutePolicySpec,
    /// One observation per candidate, in spec order (missing entries count
    /// as "nothing known").
    pub observations: &'a [CandidateObservation],
    /// The policy's previous status.
    pub previous: Option<&'a Status>,
    /// The evaluation instant.
    pub now: DateTime<Utc>,
    /// Daemon knobs.
    pub options: SelectOptions,
}

/// What one evaluation produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The new status (equal to the previous one on a no-op).
    pub status: Status,
    /// Whether `status` differs from the previous status.
    pub status_changed: bool,
    /// Whether what downstream routes follow changed (selected candidate,
    /// device, gateway, gateway source, table, metric, members).
    pub selection_changed: bool,
    /// Events to publish (`routerd.lan.route.changed` on an advisory change).
    pub events: Vec<Event>,
    /// Why.
    pub decision: Decision,
    /// The earliest instant this evaluation can come out differently with
    /// no new observation: a hold (hysteresis, preemptDelay) ends or a
    /// candidate's health goes stale. A daemon re-evaluates the policy then
    /// instead of polling; `None` when only new observations matter.
    pub wake_at: Option<DateTime<Utc>>,
}

/// What [`select_in_place`] produces besides the patched status.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Whether the status was modified.
    pub status_changed: bool,
    /// See [`Outcome::selection_changed`].
    pub selection_changed: bool,
    /// Events to publish.
    pub events: Vec<Event>,
    /// Why.
    pub decision: Decision,
    /// See [`Outcome::wake_at`].
    pub wake_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Startup,
    BestReady,
    Failover,
    Preempt,
    HeldByHysteresis,
    HeldByNoPreempt,
    HeldByPreemptDelay,
    WeightedEcmp,
    NoReadyCandidates,
    UnsupportedSelection,
}

impl Rule {
    fn code(self) -> &'static str {
        match self {
            Rule::Startup => "Startup",
            Rule::BestReady => "BestReady",
            Rule::Failover => "Failover",
            Rule::Preempt => "Preempt",
            Rule::HeldByHysteresis => "HeldByHysteresis",
            Rule::HeldByNoPreempt => "HeldByNoPreempt",
            Rule::HeldByPreemptDelay => "HeldByPreemptDelay",
            Rule::WeightedEcmp => "WeightedEcmp",
            Rule::NoReadyCandidates => "NoReadyCandidates",
            Rule::UnsupportedSelection => "UnsupportedSelection",
        }
    }
}

struct Ctx<'a> {
    input: &'a PolicyInput<'a>,
    delay: GoDuration,
    hysteresis: GoDuration,
    shape: Shape,
    /// Borrowed from the cache when a record is rebuilt on demand.
    assessed: Cow<'a, [Assessment]>,
    prev: Previous,
    ready_since: Cow<'a, [Option<DateTime<Utc>>]>,
    holds: Vec<Option<Hold>>,
    /// Candidate entries that may differ from the status (None = all).
    touched: Option<Vec<bool>>,
    /// Re-assessed candidates with what the status entry was written from,
    /// so only the fields that moved are compared and written.
    replaced: Vec<(usize, Before, Option<DateTime<Utc>>)>,
    /// Whether a top-level key that [`Previous`] reads may have been
    /// written, which makes a cached [`Previous`] stale.
    top_written: std::cell::Cell<bool>,
    /// Only the decision record is wanted (rebuilt on demand): no status.
    record_only: bool,
    /// The earliest end of a hold set in this evaluation.
    wake: Option<DateTime<Utc>>,
    /// Per candidate, per target: since when the target has been ready.
    /// Empty (for speed) when no candidate has targets or the shape has
    /// none; a missing entry means "not ready".
    target_since: Cow<'a, [Vec<Option<DateTime<Utc>>>]>,
    /// Per candidate, per target: new flows were hashed onto it before
    /// this evaluation (missing = no).
    prev_use: Cow<'a, [Vec<bool>]>,
    /// The same after this evaluation (filled by [`decide`]).
    target_use: Vec<Vec<bool>>,
    /// Ready targets kept out of the hash: (candidate, target, hold).
    target_holds: Vec<(usize, usize, Hold)>,
    /// Whether `target_use` differs from `prev_use`.
    targets_moved: bool,
}

/// Row `i` of a per-candidate, per-target table (empty when absent).
fn row<T>(v: &[Vec<T>], i: usize) -> &[T] {
    v.get(i).map_or(&[], Vec::as_slice)
}

/// Whether two in-use rows say the same (a missing entry is "not in use").
fn same_use(a: &[bool], b: &[bool]) -> bool {
    (0..a.len().max(b.len()))
        .all(|j| a.get(j).copied().unwrap_or(false) == b.get(j).copied().unwrap_or(false))
}

impl Ctx<'_> {
    fn state(&self, i: usize) -> &CandidateState {
        &self.assessed[i].state
    }
    fn ready(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.assessed.len()).filter(|&i| self.assessed[i].state.ready)
    }
    fn settled(&self, i: usize) -> bool {
        self.ready_since[i].is_some_and(|t| add(t, self.delay) <= self.input.now)
    }
    fn best(&self, it: impl Iterator<Item = usize>) -> Option<usize> {
        best_of(it.map(|i| &self.assessed[i].state)).map(|s| s.index)
    }
    fn better(&self, a: usize, b: usize) -> bool {
        rank_cmp(self.state(a), self.state(b)) == std::cmp::Ordering::Less
    }
    /// `until` of the hysteresis dwell, when it is still running.
    fn dwell_until(&self) -> Option<DateTime<Utc>> {
        let lt = self.prev.last_transition_at?;
        let until = add(lt, self.hysteresis);
        (self.input.now < until).then_some(until)
    }
    fn set_hold(&mut self, i: usize, hold: Hold) {
        if self.holds.len() <= i {
            self.holds.resize(i + 1, None);
        }
        if let Some(slot) = self.holds.get_mut(i) {
            *slot = Some(hold);
        }
    }
    fn note_wake(&mut self, at: DateTime<Utc>) {
        if at > self.input.now && self.wake.is_none_or(|w| at < w) {
            self.wake = Some(at);
        }
    }
    fn delay_hold(&mut self, since: Option<DateTime<Utc>>) -> Hold {
        let delay = self.delay;
        let since = since.unwrap_or(self.input.now);
        let until = add(since, delay);
        self.note_wake(until);
        Hold {
            by: "preemptDelay",
            until: Some(format_rfc3339_nano(until)),
            message: format!(
                "ready since {}, held by preemptDelay {} until {}",
                format_rfc3339_nano(since),
                delay,
                format_rfc3339_nano(until)
            ),
        }
    }
    fn hysteresis_hold(&mut self, until: DateTime<Utc>) -> Hold {
        self.note_wake(until);
        Hold {
            by: "hysteresis",
            until: Some(format_rfc3339_nano(until)),
            message: format!(
                "the selection changed at {}, within hysteresis {}; held until {}",
                self.prev.last_transition_raw.as_deref().unwrap_or(""),
                self.hysteresis,
                format_rfc3339_nano(until)
            ),
        }
    }
    fn hold_by_delay(&mut self, i: usize) {
        let hold = self.delay_hold(self.ready_since[i]);
        self.set_hold(i, hold);
    }
    fn hold_by_preempt(&mut self, i: usize, current: &str) {
        self.set_hold(
            i,
            Hold {
                by: "preempt",
                until: None,
                message: format!("preempt is false: {current} stays selected while it is ready"),
            },
        );
    }
    fn hold_by_hysteresis(&mut self, i: usize, until: DateTime<Utc>) {
        let hold = self.hysteresis_hold(until);
        self.set_hold(i, hold);
    }
    fn target_since(&self, i: usize, j: usize) -> Option<DateTime<Utc>> {
        row(&self.target_since, i).get(j).copied().flatten()
    }
    fn target_settled(&self, i: usize, j: usize) -> bool {
        self.target_since(i, j)
            .is_some_and(|t| add(t, self.delay) <= self.input.now)
    }
}

/// Evaluates one policy, returning a new status built on `input.previous`.
pub fn select(input: &PolicyInput<'_>) -> Outcome {
    let mut status = input.previous.cloned().unwrap_or_default();
    let e = select_in_place(input, &mut status);
    Outcome {
        status,
        status_changed: e.status_changed,
        selection_changed: e.selection_changed,
        events: e.events,
        decision: e.decision,
        wake_at: e.wake_at,
    }
}

/// Evaluates one policy and patches its status in place: `status` is read
/// as the previous status (empty = none; `input.previous` is ignored) and
/// left as the new one, with only differing fields written.
pub fn select_in_place(input: &PolicyInput<'_>, status: &mut Status) -> Evaluation {
    select_core(input, status, None)
}

/// What one evaluation leaves for the next incremental one: per candidate,
/// its assessment, `readySince` and how long its health stays fresh.
#[derive(Clone, Debug, Default)]
pub(crate) struct CandidateCache {
    assessed: Vec<Assessment>,
    ready_since: Vec<Option<DateTime<Utc>>>,
    valid_until: Vec<Option<DateTime<Utc>>>,
    /// Candidates whose observations changed since the last evaluation.
    pub(crate) dirty: Vec<bool>,
    warm: bool,
    /// The previous status as the last evaluation read it: reused by the
    /// next one while `prev_current` (reading it back from the map costs
    /// several allocations and a timestamp parse per evaluation), and the
    /// input the decision record is rebuilt from on demand.
    prev: Option<Previous>,
    /// The status's top-level keys have not moved since `prev` was read.
    prev_current: bool,
    /// The instant and options of the last evaluation.
    last: Option<(DateTime<Utc>, SelectOptions)>,
    /// Scratch vectors of one evaluation, kept to save their allocations.
    replaced_buf: Vec<(usize, Before, Option<DateTime<Utc>>)>,
    touched_buf: Vec<bool>,
    /// Per candidate, per target `readySince` (empty without targets).
    target_since: Vec<Vec<Option<DateTime<Utc>>>>,
    /// Which targets carried new flows after the last evaluation.
    target_use: Vec<Vec<bool>>,
    /// Which targets carried new flows before it (its input, for the
    /// record rebuilt on demand).
    prev_use: Vec<Vec<bool>>,
}

/// Whether a policy has multi-target candidates whose targets selection
/// tracks (the policy-route shape only).
fn tracks_targets(spec: &EgressRoutePolicySpec, shape: Shape) -> bool {
    shape == Shape::PolicyRoute && spec.candidates.iter().any(|c| !c.targets.is_empty())
}

/// A target's `readySince` after an assessment: kept while it stays ready.
fn next_since(
    ready: bool,
    old: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match (ready, old) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => Some(now),
    }
}

/// Until when a candidate's readiness can stay as assessed without new
/// observations: the earliest health freshness limit.
fn valid_until(obs: &CandidateObservation) -> Option<DateTime<Utc>> {
    obs.health
        .iter()
        .chain(obs.targets.iter().filter_map(|t| t.health.as_ref()))
        .filter_map(|h| h.last_checked_at.map(|t| add(t, h.freshness)))
        .min()
}

pub(crate) fn select_core(
    input: &PolicyInput<'_>,
    status: &mut Status,
    mut cache: Option<&mut CandidateCache>,
) -> Evaluation {
    let spec = input.spec;
    let now = input.now;
    let shape = if spec.mode().is_empty() {
        Shape::Advisory
    } else {
        Shape::PolicyRoute
    };
    let naming = match shape {
        Shape::Advisory => Naming::Advisory,
        Shape::PolicyRoute => Naming::PolicyRoute,
    };
    let nothing = CandidateObservation::default();
    let n = spec.candidates.len();
    let obs_of = |i: usize| input.observations.get(i).unwrap_or(&nothing);
    let assess_one = |i: usize| match spec.candidates.get(i) {
        Some(c) => assess(c, i, obs_of(i), naming, now),
        None => Assessment::default(),
    };
    let delay = spec.preempt_delay();
    let targets = tracks_targets(spec, shape);
    let warm = cache.as_ref().is_some_and(|c| {
        c.warm
            && c.assessed.len() == n
            && c.ready_since.len() == n
            && c.dirty.len() == n
            && (!targets || (c.target_since.len() == n && c.target_use.len() == n))
    }) && !status.is_empty();
    let cached_prev = cache
        .as_deref_mut()
        .filter(|c| warm && c.prev_current)
        .and_then(|c| c.prev.take());
    let prev = match cached_prev {
        Some(mut p) => {
            // A warm read skips the candidate entries; so does the reuse.
            p.ready.clear();
            p
        }
        None => Previous::read_with((!status.is_empty()).then_some(&*status), !warm),
    };
    // Buffers kept by the cache between evaluations.
    let (mut replaced, mut touched) = match cache.as_deref_mut() {
        Some(c) => (
            std::mem::take(&mut c.replaced_buf),
            std::mem::take(&mut c.touched_buf),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // Which candidate entries of the status need writing.
    touched.clear();
    touched.resize(n, true);
    let (assessed, ready_since, target_since, prev_use) =
        match cache.as_deref_mut().filter(|_| warm) {
            Some(c) => {
                let mut assessed = std::mem::take(&mut c.assessed);
                let mut ready_since = std::mem::take(&mut c.ready_since);
                let mut target_since = std::mem::take(&mut c.target_since);
                let prev_use = std::mem::take(&mut c.target_use);
                for (i, touch) in touched.iter_mut().enumerate() {
                    let expired = c
                        .valid_until
                        .get(i)
                        .copied()
                        .flatten()
                        .is_some_and(|t| now > t);
                    let redo = c.dirty.get(i).copied().unwrap_or(true) || expired;
                    *touch = redo;
                    if !redo {
                        continue;
                    }
                    let (Some(a), Some(cand), Some(since)) = (
                        assessed.get_mut(i),
                        spec.candidates.get(i),
                        ready_since.get_mut(i),
                    ) else {
                        continue;
                    };
                    let before = reassess(a, cand, i, obs_of(i), naming, now);
                    let old_since = *since;
                    *since = next_since(a.state.ready, old_since, now);
                    if let Some(ts) = target_since.get_mut(i) {
                        ts.resize(a.target_states.len(), None);
                        for (t, st) in ts.iter_mut().zip(&a.target_states) {
                            *t = next_since(st.ready, *t, now);
                        }
                    }
                    replaced.push((i, before, old_since));
                }
                (assessed, ready_since, target_since, prev_use)
            }
            None => {
                let assessed: Vec<Assessment> = (0..n).map(assess_one).collect();
                // Targets: clocks and in-use flags from the previous status.
                let (target_since, prev_use): (Vec<_>, Vec<_>) = if targets {
                    assessed
                        .iter()
                        .map(|a| {
                            let before = prev.targets_of(&a.state.name, a.state.index);
                            a.target_states
                                .iter()
                                .enumerate()
                                .map(|(j, t)| {
                                    let was = before.and_then(|b| b.get(j));
                                    let since = t.ready.then(|| match was {
                                        Some(w) if w.ready => w.since.unwrap_or(sub(now, delay)),
                                        _ => now,
                                    });
                                    (since, was.is_some_and(|w| w.in_use))
                                })
                                .unzip::<_, _, Vec<_>, Vec<_>>()
                        })
                        .unzip()
                } else {
                    (Vec::new(), Vec::new())
                };
                let ready_since = assessed
                    .iter()
                    .map(|a| {
                        a.state.ready.then(|| {
                            match prev
                                .ready_entry(&a.state.name, a.state.index)
                                .map(|r| r.since)
                            {
                                Some(Some(t)) => t,
                                // Ready before, but the writer kept no clock
                                // (routerd itself): count the hold-down as served.
                                Some(None) => sub(now, delay),
                                None => now,
                            }
                        })
                    })
                    .collect();
                (assessed, ready_since, target_since, prev_use)
            }
        };
    let mut ctx = Ctx {
        input,
        delay,
        hysteresis: spec.hysteresis(),
        shape,
        assessed: Cow::Owned(assessed),
        prev,
        ready_since: Cow::Owned(ready_since),
        holds: Vec::new(),
        touched: warm.then_some(touched),
        replaced,
        top_written: std::cell::Cell::new(true),
        record_only: false,
        wake: None,
        target_since: Cow::Owned(target_since),
        prev_use: Cow::Owned(prev_use),
        target_use: Vec::new(),
        target_holds: Vec::new(),
        targets_moved: false,
    };
    let mut e = decide(&mut ctx, status);
    let wake = ctx.wake;
    let stale = if let Some(c) = cache {
        match &ctx.touched {
            Some(t) if c.valid_until.len() == n => {
                for (i, v) in c.valid_until.iter_mut().enumerate() {
                    if t.get(i).copied().unwrap_or(true) {
                        *v = valid_until(obs_of(i));
                    }
                }
            }
            _ => c.valid_until = (0..n).map(|i| valid_until(obs_of(i))).collect(),
        }
        c.assessed = ctx.assessed.into_owned();
        c.ready_since = ctx.ready_since.into_owned();
        c.target_since = ctx.target_since.into_owned();
        c.prev_use = ctx.prev_use.into_owned();
        c.target_use = ctx.target_use;
        c.dirty.clear();
        c.dirty.resize(n, false);
        c.warm = true;
        let mut replaced = ctx.replaced;
        replaced.clear();
        c.replaced_buf = replaced;
        if let Some(t) = ctx.touched {
            c.touched_buf = t;
        }
        c.prev_current = !ctx.top_written.get();
        c.prev = Some(ctx.prev);
        c.last = Some((now, input.options));
        // The cache already holds every candidate's freshness limit.
        c.valid_until
            .iter()
            .flatten()
            .filter(|t| **t > now)
            .min()
            .copied()
    } else {
        (0..n)
            .filter_map(|i| valid_until(obs_of(i)))
            .filter(|t| *t > now)
            .min()
    };
    e.wake_at = match (wake, stale) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    e
}

/// The full decision record of the last evaluation that went through
/// `cache`, as a non-terse evaluation would have written it. A terse hot
/// path skips the record; the cache keeps everything it was made from (the
/// assessments, `readySince` clocks, the previous status as read, the
/// instant), so it can be rebuilt exactly when someone asks.
pub(crate) fn rebuild_decision(
    input: &PolicyInput<'_>,
    cache: &CandidateCache,
) -> Option<Decision> {
    let (now, options) = cache.last?;
    let prev = cache.prev.clone()?;
    let spec = input.spec;
    let input = PolicyInput {
        now,
        options: SelectOptions {
            terse: false,
            ..options
        },
        ..*input
    };
    let shape = if spec.mode().is_empty() {
        Shape::Advisory
    } else {
        Shape::PolicyRoute
    };
    let mut ctx = Ctx {
        input: &input,
        delay: spec.preempt_delay(),
        hysteresis: spec.hysteresis(),
        shape,
        assessed: Cow::Borrowed(&cache.assessed),
        prev,
        ready_since: Cow::Borrowed(&cache.ready_since),
        holds: Vec::new(),
        touched: None,
        replaced: Vec::new(),
        top_written: std::cell::Cell::new(true),
        record_only: true,
        wake: None,
        target_since: Cow::Borrowed(&cache.target_since),
        prev_use: Cow::Borrowed(&cache.prev_use),
        target_use: Vec::new(),
        target_holds: Vec::new(),
        targets_moved: false,
    };
    // The record depends on the previous status only through `prev`.
    let mut scratch = Status::new();
    Some(decide(&mut ctx, &mut scratch).decision)
}

/// Chooses and writes the outcome of an assessed policy.
fn decide(ctx: &mut Ctx<'_>, status: &mut Status) -> Evaluation {
    let spec = ctx.input.spec;
    let selection = spec.selection();
    if selection != HIGHEST_WEIGHT_READY && selection != WEIGHTED_ECMP {
        let message = format!("selection \"{selection}\" is reserved but not implemented");
        let explanation = format!("selection {selection:?} is not implemented");
        finish_pending(
            ctx,
            status,
            Some(&message),
            Rule::UnsupportedSelection,
            explanation,
        )
    } else if ctx.ready().next().is_none() {
        let explanation =
            "no candidate is ready; downstream routes and NAT stay as they are (fail-static)"
                .to_string();
        settle_targets(ctx, &[]);
        finish_pending(ctx, status, None, Rule::NoReadyCandidates, explanation)
    } else {
        let (chosen, members, rule, explanation) = if selection == WEIGHTED_ECMP {
            choose_ecmp(ctx)
        } else {
            let (c, r, e) = choose_one(ctx);
            (c, Vec::new(), r, e)
        };
        if tracks_targets(spec, ctx.shape) {
            let carrying: Vec<usize> = if selection == WEIGHTED_ECMP {
                members
                    .iter()
                    .filter_map(|m| ctx.assessed.iter().position(|a| a.state.name == m.name))
                    .collect()
            } else {
                vec![chosen]
            };
            settle_targets(ctx, &carrying);
        }
        finish_applied(ctx, status, chosen, members, rule, explanation)
    }
}

/// Decides which targets of the candidates that carry new flows get them:
/// the same failback control as weighted-ecmp membership. A target that
/// stops being ready leaves the hash at once; one that becomes ready joins
/// only after `preemptDelay`, not within the `hysteresis` dwell after the
/// last change, and not at all while `preempt: false` and a target of the
/// candidate is in use. A candidate that starts carrying flows takes its
/// settled ready targets (else all ready ones). Marks whether anything
/// moved and which status entries need writing.
fn settle_targets(ctx: &mut Ctx<'_>, carrying: &[usize]) {
    if !tracks_targets(ctx.input.spec, ctx.shape) {
        return;
    }
    let n = ctx.assessed.len();
    let mut uses: Vec<Vec<bool>> = vec![Vec::new(); n];
    for &i in carrying {
        let Some(slot) = uses.get_mut(i) else {
            continue;
        };
        let Some(a) = ctx.assessed.get(i) else {
            continue;
        };
        let count = a.target_states.len();
        if count == 0 {
            continue;
        }
        let ready: Vec<usize> = (0..count).filter(|&j| a.target_states[j].ready).collect();
        let before = row(&ctx.prev_use, i);
        let was = |j: usize| before.get(j).copied().unwrap_or(false);
        let (keep, newcomers): (Vec<usize>, Vec<usize>) = ready.iter().partition(|&&j| was(j));
        let mut chosen: Vec<usize>;
        let mut holds: Vec<(usize, Hold)> = Vec::new();
        if keep.is_empty() {
            chosen = ready
                .iter()
                .copied()
                .filter(|&j| ctx.target_settled(i, j))
                .collect();
            if chosen.is_empty() {
                chosen = ready.clone();
            } else {
                let unsettled: Vec<usize> = ready
                    .iter()
                    .copied()
                    .filter(|&j| !ctx.target_settled(i, j))
                    .collect();
                for j in unsettled {
                    holds.push((j, ctx.delay_hold(ctx.target_since(i, j))));
                }
            }
        } else if !ctx.input.spec.preempt() {
            for &j in &newcomers {
                holds.push((
                    j,
                    Hold {
                        by: "preempt",
                        until: None,
                        message: "preempt is false: no target rejoins the hash while one in use stays ready".to_string(),
                    },
                ));
            }
            chosen = keep;
        } else if let Some(until) = ctx.dwell_until() {
            for &j in &newcomers {
                holds.push((j, ctx.hysteresis_hold(until)));
            }
            chosen = keep;
        } else {
            chosen = keep;
            for &j in &newcomers {
                if ctx.target_settled(i, j) {
                    chosen.push(j);
                } else {
                    holds.push((j, ctx.delay_hold(ctx.target_since(i, j))));
                }
            }
        }
        let mut v = vec![false; count];
        for j in chosen {
            if let Some(b) = v.get_mut(j) {
                *b = true;
            }
        }
        *slot = v;
        ctx.target_holds
            .extend(holds.into_iter().map(|(j, h)| (i, j, h)));
    }
    let mut moved = false;
    for (i, u) in uses.iter().enumerate() {
        if !same_use(u, row(&ctx.prev_use, i)) {
            moved = true;
            if let Some(t) = ctx.touched.as_mut().and_then(|t| t.get_mut(i)) {
                *t = true;
            }
        }
    }
    ctx.targets_moved = moved;
    ctx.target_use = uses;
}

fn choose_one(ctx: &mut Ctx<'_>) -> (usize, Rule, String) {
    let spec = ctx.input.spec;
    // `ready()` is non-empty here; index 0 is never used in that case.
    let best = ctx.best(ctx.ready()).unwrap_or(0);
    let current = ctx
        .prev
        .selected_candidate()
        .and_then(|n| ctx.assessed.iter().position(|a| a.state.name == n));
    match current {
        Some(cur) if ctx.state(cur).ready => {
            if best == cur {
                let why = runner_up_text(ctx, cur);
                return (
                    cur,
                    Rule::BestReady,
                    explain!(
                        ctx,
                        "{} stays selected: it is the best ready candidate{why}",
                        ctx.state(cur).name
                    ),
                );
            }
            let cur_name = ctx.state(cur).name.clone();
            let better: Vec<usize> = ctx.ready().filter(|&i| ctx.better(i, cur)).collect();
            if !spec.preempt() {
                for &i in &better {
                    ctx.hold_by_preempt(i, &cur_name);
                }
                let b = ctx.state(best).name.clone();
                return (
                    cur,
                    Rule::HeldByNoPreempt,
                    explain!(
                        ctx,
                        "{cur_name} stays selected while ready because preempt is false; better candidate {b} waits"
                    ),
                );
            }
            if let Some(until) = ctx.dwell_until() {
                for &i in &better {
                    ctx.hold_by_hysteresis(i, until);
                }
                let b = ctx.state(best).name.clone();
                return (
                    cur,
                    Rule::HeldByHysteresis,
                    explain!(
                        ctx,
                        "{cur_name} stays selected: better candidate {b} is ready, but the last change was within hysteresis {} (until {})",
                        spec.hysteresis(),
                        format_rfc3339_nano(until)
                    ),
                );
            }
            let pick = ctx.best(better.iter().copied().filter(|&i| ctx.settled(i)));
            for &i in &better {
                if !ctx.settled(i) && pick.is_none_or(|p| ctx.better(i, p)) {
                    ctx.hold_by_delay(i);
                }
            }
            match pick {
                Some(p) => {
                    let since = ctx.ready_since[p]
                        .map(format_rfc3339_nano)
                        .unwrap_or_default();
                    let text = explain!(
                        ctx,
                        "{} preempts {cur_name}: {}; ready since {since}, past preemptDelay {}",
                        ctx.state(p).name,
                        tie_break(ctx.state(p), ctx.state(cur)),
                        spec.preempt_delay()
                    );
                    (p, Rule::Preempt, text)
                }
                None => {
                    let b = ctx.state(best).name.clone();
                    (
                        cur,
                        Rule::HeldByPreemptDelay,
                        explain!(
                            ctx,
                            "{cur_name} stays selected: better candidate {b} has not been ready for preemptDelay {} yet",
                            spec.preempt_delay()
                        ),
                    )
                }
            }
        }
        _ => {
            let pick = ctx
                .best(ctx.ready().filter(|&i| ctx.settled(i)))
                .unwrap_or(best);
            let better_unsettled: Vec<usize> = ctx
                .ready()
                .filter(|&i| i != pick && ctx.better(i, pick))
                .collect();
            for i in better_unsettled {
                ctx.hold_by_delay(i);
            }
            let name = ctx.state(pick).name.clone();
            let why = runner_up_text(ctx, pick);
            match (ctx.prev.selected_candidate(), current) {
                (None, _) if !ctx.prev.exists => (
                    pick,
                    Rule::Startup,
                    explain!(
                        ctx,
                        "no previous selection: {name} is the best ready candidate now{why}"
                    ),
                ),
                (None, _) => (
                    pick,
                    Rule::BestReady,
                    explain!(
                        ctx,
                        "nothing was selected: {name} is the best ready candidate{why}"
                    ),
                ),
                (Some(old), Some(ci)) => {
                    let codes: Vec<&str> =
                        ctx.assessed[ci].reasons.iter().map(|r| r.code).collect();
                    (
                        pick,
                        Rule::Failover,
                        explain!(
                            ctx,
                            "{old} is no longer ready ({}): {name} takes over{why}",
                            codes.join(", ")
                        ),
                    )
                }
                (Some(old), None) => (
                    pick,
                    Rule::Failover,
                    explain!(
                        ctx,
                        "{old} is no longer a candidate: {name} takes over{why}"
                    ),
                ),
            }
        }
    }
}

fn runner_up_text(ctx: &Ctx<'_>, winner: usize) -> String {
    if ctx.input.options.terse {
        return String::new();
    }
    match ctx.best(ctx.ready().filter(|&i| i != winner)) {
        Some(r) if ctx.better(winner, r) => {
            explain!(ctx, " ({})", tie_break(ctx.state(winner), ctx.state(r)))
        }
        Some(_) => String::new(),
        None => " (the only ready candidate)".to_string(),
    }
}

fn choose_ecmp(ctx: &mut Ctx<'_>) -> (usize, Vec<Member>, Rule, String) {
    let spec = ctx.input.spec;
    let any_positive = ctx.ready().any(|i| ctx.state(i).weight > 0);
    let eligible: Vec<usize> = ctx
        .ready()
        .filter(|&i| !any_positive || ctx.state(i).weight > 0)
        .collect();
    let prev_names: Vec<String> = ctx
        .prev
        .members
        .as_ref()
        .map(|ms| ms.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let (keep, newcomers): (Vec<usize>, Vec<usize>) = eligible
        .iter()
        .partition(|&&i| prev_names.contains(&ctx.state(i).name));
    let mut chosen: Vec<usize>;
    let why;
    if keep.is_empty() {
        chosen = eligible
            .iter()
            .copied()
            .filter(|&i| ctx.settled(i))
            .collect();
        if chosen.is_empty() {
            chosen = eligible.clone();
            why = "all ready candidates join".to_string();
        } else {
            for &i in &eligible {
                if !ctx.settled(i) {
                    ctx.hold_by_delay(i);
                }
            }
            why = "ready candidates past their hold-down join".to_string();
        }
    } else if !spec.preempt() {
        let first = ctx.state(keep[0]).name.clone();
        for &i in &newcomers {
            ctx.hold_by_preempt(i, &first);
        }
        chosen = keep;
        why = "preempt is false: no new member joins while a member is ready".to_string();
    } else if let Some(until) = ctx.dwell_until() {
        for &i in &newcomers {
            ctx.hold_by_hysteresis(i, until);
        }
        chosen = keep;
        why = explain!(
            ctx,
            "members changed within hysteresis {}",
            spec.hysteresis()
        );
    } else {
        chosen = keep;
        for &i in &newcomers {
            if ctx.settled(i) {
                chosen.push(i);
            } else {
                ctx.hold_by_delay(i);
            }
        }
        why = "members that stay ready keep their share; recovered candidates join after preemptDelay".to_string();
    }
    chosen.sort_by(|&a, &b| rank_cmp(ctx.state(a), ctx.state(b)));
    let members: Vec<Member> = chosen
        .iter()
        .map(|&i| {
            let s = ctx.state(i);
            Member {
                name: s.name.clone(),
                device: s.device.clone(),
                gateway: s.gateway.clone(),
                weight: if any_positive { s.weight } else { 1 },
            }
        })
        .collect();
    let shares: Vec<String> = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.weight))
        .collect();
    let text = explain!(
        ctx,
        "{} candidate(s) share new flows by weight ({}); {why}",
        members.len(),
        shares.join(", ")
    );
    (
        chosen.first().copied().unwrap_or(0),
        members,
        Rule::WeightedEcmp,
        text,
    )
}

const PENDING_KEYS: &[&str] = &[
    "phase",
    "reason",
    "message",
    "candidates",
    "dryRun",
    "updatedAt",
];

fn finish_pending(
    ctx: &Ctx<'_>,
    status: &mut Status,
    message: Option<&str>,
    rule: Rule,
    explanation: String,
) -> Evaluation {
    let policy_route = ctx.shape == Shape::PolicyRoute;
    // The policy-route shape lists its candidates too (an extension of
    // routerd's shape): the renderer installs the tables of paths whose
    // probes must pass before anything is ready (spec §4.4) from their
    // `pathReady`, and must not judge that itself.
    let with_candidates = rule == Rule::NoReadyCandidates;
    // Rebuilding a record leaves the status alone.
    let status_changed = !ctx.record_only && {
        let mut p = Patch::new(status);
        p.str("phase", "Pending");
        p.str("reason", rule.code());
        if let Some(m) = message {
            p.str("message", m);
        }
        if with_candidates {
            p.objects("candidates", ctx.assessed.len(), |i, e| {
                if let Some(a) = ctx.assessed.get(i) {
                    let out = TargetsOut {
                        since: row(&ctx.target_since, i),
                        in_use: &[],
                    };
                    patch_candidate(e, a, ctx.shape, None, None, out);
                }
            });
        }
        if policy_route {
            p.bool("dryRun", ctx.input.options.dry_run);
        }
        p.retain(|k| {
            PENDING_KEYS.contains(&k)
                && (k != "message" || message.is_some())
                && (k != "candidates" || with_candidates)
                && (k != "dryRun" && k != "updatedAt" || policy_route)
        });
        if policy_route {
            stamp_updated_at(&mut p, ctx.input.now);
        }
        p.changed
    };
    // routerd publishes no `routerd.lan.route.changed` for a transition to
    // Pending; its evented store still says the policy-route status changed,
    // and an operator needs to see that traffic lost its path and why.
    let mut events = Vec::new();
    if policy_route && !ctx.record_only && ctx.prev.phase == "Applied" {
        let (cause, message) = change_cause(ctx, rule, None);
        let mut e = Event::info(STATUS_CHANGED_EVENT, policy_ref(ctx.input), ctx.input.now)
            .attr("phase", "Pending")
            .attr("previousPhase", prev_phase(ctx))
            .attr("selectedCandidate", "")
            .attr(
                "previousCandidate",
                ctx.prev.selected_candidate().unwrap_or(""),
            );
        e = e.attr("mode", ctx.input.spec.mode());
        e.reason = cause.to_string();
        e.message = message;
        events.push(e);
    }
    let decision = decision(
        ctx,
        rule,
        explanation,
        None,
        &[],
        false,
        None,
        Some(rule.code()),
    );
    Evaluation {
        status_changed,
        selection_changed: false,
        events,
        decision,
        wake_at: None,
    }
}

/// `updatedAt` moves only when something else in the status moved, so an
/// identical reconcile writes an identical status.
fn stamp_updated_at(p: &mut Patch<'_>, now: DateTime<Utc>) {
    if p.changed || !p.has("updatedAt") {
        p.str("updatedAt", &format_rfc3339_nano(now));
    }
}

const ADVISORY_KEYS: &[&str] = &[
    "phase",
    "family",
    "destinationCIDRs",
    "selectedCandidate",
    "selectedSource",
    "selectedDevice",
    "selectedGateway",
    "selectedGatewaySource",
    "selectedRouteTable",
    "selectedMetric",
    "selectedWeight",
    "lastTransitionAt",
    "hysteresis",
    "role",
    "advisory",
    "members",
    "candidates",
];
const POLICY_ROUTE_KEYS: &[&str] = &[
    "phase",
    "family",
    "selectedCandidate",
    "selectedTargets",
    "selectedInterface",
    "selectedSource",
    "selectedDevice",
    "selectedGateway",
    "selectedGatewaySource",
    "selectedRouteTable",
    "selectedMetric",
    "selectedWeight",
    "lastTransitionAt",
    "dryRun",
    "members",
    "candidates",
    "updatedAt",
];

fn finish_applied(
    ctx: &Ctx<'_>,
    status: &mut Status,
    chosen: usize,
    members: Vec<Member>,
    rule: Rule,
    explanation: String,
) -> Evaluation {
    let input = ctx.input;
    let spec = input.spec;
    let now = input.now;
    let a = &ctx.assessed[chosen];
    let s = &a.state;
    let target_winner = ctx.shape == Shape::PolicyRoute && a.targets > 0;
    let ecmp = spec.selection() == WEIGHTED_ECMP;

    let new_sel: [Option<&str>; 4] = if target_winner {
        [Some(&s.name), None, None, None]
    } else {
        [
            Some(&s.name),
            Some(&s.device),
            Some(&s.gateway),
            Some(&s.gateway_source),
        ]
    };
    let (table, metric) = if target_winner {
        (0, 0)
    } else {
        (s.route_table, s.metric)
    };
    let prev = &ctx.prev;
    let changed = !prev.exists
        || prev.phase != "Applied"
        || new_sel
            .iter()
            .zip(&prev.selected)
            .any(|(n, p)| *n != p.as_deref())
        || prev.table_metric != [table, metric]
        || (ecmp && prev.members.as_deref() != Some(&members[..]))
        || ctx.targets_moved;
    let last_transition = match (&prev.last_transition_raw, prev.last_transition_at) {
        (Some(raw), Some(_)) if !changed => raw.clone(),
        _ => format_rfc3339_nano(now),
    };

    let status_changed = !ctx.record_only && {
        let mut p = Patch::new(status);
        // Warm (incremental) and the selection did not change: the top-level
        // keys this same spec wrote last time are still right.
        let top_current = ctx.touched.is_some()
            && !changed
            && (ctx.shape == Shape::Advisory || p.is_bool("dryRun", input.options.dry_run));
        ctx.top_written.set(!top_current);
        if !top_current {
            p.str("phase", "Applied");
            p.str("family", spec.family());
            match ctx.shape {
                Shape::Advisory => patch_destination_cidrs(&mut p, spec),
                Shape::PolicyRoute => {
                    p.int(
                        "selectedTargets",
                        i64::try_from(a.targets).unwrap_or(i64::MAX),
                    );
                    p.str("selectedInterface", &a.interface);
                }
            }
            p.str("selectedCandidate", &s.name);
            p.str("selectedSource", &s.source);
            if !target_winner {
                p.str("selectedDevice", &s.device);
                p.str("selectedGateway", &s.gateway);
                p.str("selectedGatewaySource", &s.gateway_source);
                p.int("selectedRouteTable", s.route_table);
                p.int("selectedMetric", s.metric);
            }
            p.int("selectedWeight", s.weight);
            p.str("lastTransitionAt", &last_transition);
            match ctx.shape {
                Shape::Advisory => {
                    p.str("hysteresis", &ctx.hysteresis.to_string());
                    p.str("role", "advisory");
                    p.bool("advisory", true);
                }
                Shape::PolicyRoute => p.bool("dryRun", input.options.dry_run),
            }
            if ecmp {
                patch_members(&mut p, &members);
            }
        }
        p.objects_only(
            "candidates",
            ctx.assessed.len(),
            ctx.touched.as_deref(),
            |i, e, selective| {
                if let Some(a) = ctx.assessed.get(i) {
                    let since = ctx.ready_since[i];
                    // A selectively visited entry was written from the
                    // assessment this one replaced.
                    let old = selective
                        .then(|| ctx.replaced.iter().find(|r| r.0 == i))
                        .flatten();
                    if let Some((_, old, old_since)) = old
                        && patch_candidate_delta(e, old, *old_since, a, since, ctx.shape)
                    {
                        return;
                    }
                    let known = ctx
                        .prev
                        .ready_entry(&a.state.name, i)
                        .filter(|r| r.since.is_some() && r.since == since)
                        .map(|r| r.since_raw.as_str());
                    let out = TargetsOut {
                        since: row(&ctx.target_since, i),
                        in_use: row(&ctx.target_use, i),
                    };
                    patch_candidate(e, a, ctx.shape, since, known, out);
                }
            },
        );
        let keys = match ctx.shape {
            Shape::Advisory => ADVISORY_KEYS,
            Shape::PolicyRoute => POLICY_ROUTE_KEYS,
        };
        if !top_current {
            p.retain(|k| {
                keys.contains(&k)
                    && (k != "members" || ecmp)
                    && !(target_winner
                        && matches!(
                            k,
                            "selectedDevice"
                                | "selectedGateway"
                                | "selectedGatewaySource"
                                | "selectedRouteTable"
                                | "selectedMetric"
                        ))
            });
        }
        if ctx.shape == Shape::PolicyRoute {
            stamp_updated_at(&mut p, now);
        }
        p.changed
    };

    let mut events = Vec::new();
    if changed && !ctx.record_only {
        let (cause, message) = change_cause(ctx, rule, Some(chosen));
        let resource = policy_ref(input);
        let previous = ctx.prev.selected_candidate().unwrap_or("").to_string();
        let mut e = match ctx.shape {
            Shape::Advisory => Event::info(ROUTE_CHANGED_EVENT, resource, now)
                .attr("selectedCandidate", &s.name)
                .attr("selectedDevice", &s.device)
                .attr("selectedGateway", &s.gateway)
                .attr("selectedGatewaySource", &s.gateway_source)
                .attr("role", "advisory")
                .attr("advisory", "true"),
            Shape::PolicyRoute => Event::info(STATUS_CHANGED_EVENT, resource, now)
                .attr("phase", "Applied")
                .attr("previousPhase", prev_phase(ctx))
                .attr("selectedCandidate", &s.name)
                .attr("selectedDevice", &s.device)
                .attr("selectedGateway", &s.gateway)
                .attr("mode", spec.mode()),
        }
        .attr("previousCandidate", &previous);
        e.reason = cause.to_string();
        e.message = message;
        events.push(e);
    }
    let decision = decision(
        ctx,
        rule,
        explanation,
        Some(chosen),
        &members,
        changed,
        Some(last_transition),
        None,
    );
    Evaluation {
        status_changed,
        selection_changed: changed,
        events,
        decision,
        wake_at: None,
    }
}

fn policy_ref(input: &PolicyInput<'_>) -> ObjectRef {
    ObjectRef {
        api_version: input.api_version.to_string(),
        kind: "EgressRoutePolicy".into(),
        name: input.name.to_string(),
    }
}

fn prev_phase<'c>(ctx: &'c Ctx<'_>) -> &'c str {
    if ctx.prev.exists { &ctx.prev.phase } else { "" }
}

/// Why the selection moved, as a code an operator filters on
/// (`Startup`, `CarrierLost`, `TunnelDown`, `HealthFailing`, `Failover`,
/// `Preempt`, `HoldEnded`, `PathChanged`, `NoReadyCandidates`) and a
/// sentence naming the candidates and the evidence. The cause of a
/// failover is the previous candidate's first blocking reason: the
/// readiness rule already says exactly what was seen.
fn change_cause(ctx: &Ctx<'_>, rule: Rule, chosen: Option<usize>) -> (&'static str, String) {
    let to = chosen.map(|i| ctx.state(i).name.as_str());
    let Some(from) = ctx
        .prev
        .selected_candidate()
        .filter(|_| ctx.prev.phase == "Applied")
    else {
        return match to {
            Some(t) => (
                "Startup",
                format!("{t} selected: nothing was selected before"),
            ),
            None => ("NoReadyCandidates", "no candidate is ready".to_string()),
        };
    };
    let takes_over = match to {
        Some(t) => format!("{t} takes over from {from}"),
        None => format!("no candidate is ready; {from} is no longer used"),
    };
    let Some(pi) = ctx.assessed.iter().position(|a| a.state.name == from) else {
        return (
            "Failover",
            format!("{takes_over}: {from} is no longer a candidate"),
        );
    };
    let prev = &ctx.assessed[pi];
    if Some(pi) == chosen {
        return (
            "PathChanged",
            format!(
                "{from} stays selected; its path is now device {:?} gateway {:?}",
                prev.state.device, prev.state.gateway
            ),
        );
    }
    if !prev.state.ready {
        let Some(r) = prev.reasons.first() else {
            return ("Failover", format!("{takes_over}: {from} is not ready"));
        };
        let dev = if prev.state.device.is_empty() {
            from
        } else {
            &prev.state.device
        };
        return match r.code {
            "LinkDown" if r.message.contains("NoCarrier") => (
                "CarrierLost",
                format!("{takes_over}: carrier lost on {dev} ({})", r.message),
            ),
            "LinkDown" => (
                "LinkDown",
                format!("{takes_over}: link down on {dev} ({})", r.message),
            ),
            "TunnelDown" => ("TunnelDown", format!("{takes_over}: {}", r.message)),
            c if c.starts_with("Health") => (
                "HealthFailing",
                format!("{takes_over}: health check failing: {}", r.message),
            ),
            _ => (
                "Failover",
                format!("{takes_over}: {} ({})", r.message, r.code),
            ),
        };
    }
    if rule == Rule::Preempt {
        if ctx.delay.to_std().is_zero() {
            return (
                "Preempt",
                format!("{takes_over}: it is better and preempts"),
            );
        }
        return (
            "HoldEnded",
            format!(
                "{takes_over}: its preemptDelay {} hold ended and it preempts",
                ctx.delay
            ),
        );
    }
    ("Failover", takes_over)
}

#[allow(clippy::too_many_arguments)]
fn decision(
    ctx: &Ctx<'_>,
    rule: Rule,
    explanation: String,
    chosen: Option<usize>,
    members: &[Member],
    changed: bool,
    last_changed_at: Option<String>,
    pending_reason: Option<&str>,
) -> Decision {
    let input = ctx.input;
    let terse = input.options.terse;
    let candidates = if terse {
        Vec::new()
    } else {
        candidate_decisions(ctx)
    };
    let mode = if ctx.shape == Shape::Advisory {
        "advisory"
    } else {
        input.spec.mode()
    };
    Decision {
        // A terse record keeps what a hot path acts on (phase, rule,
        // selection, change); the caller knows the policy and the time.
        policy: if terse {
            String::new()
        } else {
            format!("{}/EgressRoutePolicy/{}", input.api_version, input.name)
        },
        mode: intern(mode, &["advisory", "priority", "mark", "hash"]),
        selection: intern(
            input.spec.selection(),
            &[HIGHEST_WEIGHT_READY, WEIGHTED_ECMP],
        ),
        evaluated_at: if terse {
            String::new()
        } else {
            format_rfc3339_nano(input.now)
        },
        phase: Cow::Borrowed(if pending_reason.is_some() {
            "Pending"
        } else {
            "Applied"
        }),
        reason: pending_reason.map(str::to_string),
        rule: rule.code(),
        explanation,
        selected: chosen.map(|c| ctx.state(c).name.clone()),
        previous: ctx.prev.selected_candidate().map(str::to_string),
        changed,
        last_changed_at: last_changed_at.or_else(|| ctx.prev.last_transition_raw.clone()),
        members: members.to_vec(),
        candidates,
    }
}

/// `v` as one of the `known` static strings when it is one.
fn intern(v: &str, known: &[&'static str]) -> Cow<'static, str> {
    known
        .iter()
        .find(|k| **k == v)
        .map_or_else(|| Cow::Owned(v.to_string()), |k| Cow::Borrowed(*k))
}

fn candidate_decisions(ctx: &Ctx<'_>) -> Vec<CandidateDecision> {
    let mut ranked: Vec<usize> = ctx.ready().collect();
    ranked.sort_by(|&a, &b| rank_cmp(ctx.state(a), ctx.state(b)));
    let mut rank = vec![None; ctx.assessed.len()];
    for (pos, &i) in ranked.iter().enumerate() {
        rank[i] = Some(pos + 1);
    }
    ctx.assessed
        .iter()
        .enumerate()
        .map(|(i, a)| CandidateDecision {
            name: a.state.name.clone(),
            index: i,
            ready: a.state.ready,
            disabled: a.state.disabled,
            rank: rank[i],
            weight: a.state.weight,
            priority: a.state.priority,
            device: a.state.device.clone(),
            gateway: a.state.gateway.clone(),
            ready_since: ctx.ready_since[i].map(format_rfc3339_nano),
            reasons: a.reasons.clone(),
            notes: a.notes.clone(),
            held: ctx.holds.get(i).cloned().flatten(),
            targets: a
                .target_states
                .iter()
                .enumerate()
                .map(|(j, t)| TargetDecision {
                    name: t.name.clone(),
                    index: j,
                    ready: t.ready,
                    in_use: row(&ctx.target_use, i).get(j).copied().unwrap_or(false),
                    ready_since: ctx.target_since(i, j).map(format_rfc3339_nano),
                    reasons: t.reasons.clone(),
                    held: ctx
                        .target_holds
                        .iter()
                        .find(|h| h.0 == i && h.1 == j)
                        .map(|h| h.2.clone()),
                })
                .collect(),
        })
        .collect()
}
