//! The effective configuration and its incremental maintenance.
//!
//! State is kept so that one part arriving, being replaced or expiring costs
//! work proportional to that part and the parts it clashes with, not to the
//! size of startup: startup is shared through an `Arc`, suppression is a
//! flag per startup position, and dynamic resources point into their part.
//!
//! Decisions between sources follow one rule (docs/merge.md): sources are
//! considered in ascending byte order of their name, and a source's part is
//! accepted unless it clashes with a part of a smaller source that was
//! accepted. A decision therefore depends only on smaller sources, which is
//! what lets the incremental path re-decide just the sources downstream of a
//! change and still equal a full rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_model::{Resource, ResourceId};
use rustc_hash::FxHashMap;

use crate::MergeError;
use crate::part::{Contribution, Id, Part, PartData, evaluate};
use crate::report::{Entry, PartReport, PartState, Provenance, Suppressed};
use crate::startup::{Startup, cmp_resource_id};

/// One change to the set of parts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// A part arrived, or replaced the part of the same name.
    Upsert(Part),
    /// A part was deleted (by name).
    Remove(String),
    /// Time moved on to this instant: parts whose `expiresAt` passed expire.
    Tick(DateTime<Utc>),
}

/// Which effective resources a change touched, so the daemon wakes only the
/// controllers that care. Ids are sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSet {
    /// Newly effective (a dynamic resource arrived or a mask went away).
    pub added: Vec<Id>,
    /// No longer effective (expired, rejected, superseded or masked).
    pub removed: Vec<Id>,
    /// Still effective with different content.
    pub changed: Vec<Id>,
    /// Same content, different provenance (for example a newer generation
    /// carrying an identical resource). Controllers need not act on these.
    pub provenance_changed: Vec<Id>,
}

impl ChangeSet {
    /// Adds the changes of a later [`Effective::apply`] to these (a caller
    /// that applies several changes before acting on them).
    pub fn absorb(&mut self, later: ChangeSet) {
        self.added.extend(later.added);
        self.removed.extend(later.removed);
        self.changed.extend(later.changed);
        self.provenance_changed.extend(later.provenance_changed);
    }

    /// Whether nothing effective changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.provenance_changed.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Decision {
    #[default]
    Undecided,
    Accepted,
    Rejected(String),
}

type Candidate = (Arc<PartData>, Arc<Contribution>);

#[derive(Debug, Clone)]
struct Slot {
    data: Arc<PartData>,
    /// The part's own checks, computed the first time it is the newest
    /// active generation of its source (expired and superseded parts are
    /// never checked: they contribute nothing).
    local: Option<Result<Arc<Contribution>, String>>,
}

#[derive(Debug, Clone, Default)]
struct SourceState {
    parts: BTreeSet<String>,
    winner: Option<String>,
    candidate: Option<Candidate>,
    decision: Decision,
}

#[derive(Debug, Clone)]
struct DynEntry {
    part: Arc<PartData>,
    index: u32,
}

#[derive(Debug, Clone)]
struct MaskBy {
    part: Arc<PartData>,
    reasons: Vec<String>,
}

#[derive(Debug, Clone)]
struct Suppression {
    by: BTreeMap<Arc<str>, MaskBy>,
}

/// What an id resolved to before a change.
#[derive(Debug, Clone)]
enum View {
    Absent,
    Startup(u32),
    Dynamic(Arc<PartData>, u32),
}

/// The effective configuration: startup + accepted dynamic parts − their
/// masks, with the state of every part. It is both the result of a merge
/// and the input of the next incremental step.
#[derive(Debug, Clone)]
pub struct Effective {
    startup: Arc<Startup>,
    now: DateTime<Utc>,
    parts: BTreeMap<String, Slot>,
    sources: BTreeMap<Arc<str>, SourceState>,
    claims: FxHashMap<Id, Claimants>,
    mask_idx: FxHashMap<Id, Claimants>,
    ref_idx: FxHashMap<Id, Vec<(Arc<str>, Id)>>,
    dynamic: FxHashMap<Id, DynEntry>,
    suppressed: BTreeMap<Id, Suppression>,
    masked: Vec<bool>,
    touched: Option<FxHashMap<Id, View>>,
}

/// The sources claiming one id, sorted. Almost always exactly one, and
/// that case must not allocate: the incremental budget is ~1 µs a resource.
#[derive(Debug, Clone)]
enum Claimants {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Claimants {
    fn as_slice(&self) -> &[Arc<str>] {
        match self {
            Claimants::One(s) => std::slice::from_ref(s),
            Claimants::Many(v) => v,
        }
    }

    fn insert(&mut self, s: Arc<str>) {
        match self {
            Claimants::One(x) => {
                if *x != s {
                    let mut v = vec![x.clone(), s];
                    v.sort();
                    *self = Claimants::Many(v);
                }
            }
            Claimants::Many(v) => sorted_insert(v, s),
        }
    }

    /// Removes `s`; true when nobody is left.
    fn remove(&mut self, s: &str) -> bool {
        let one = match self {
            Claimants::One(x) => return **x == *s,
            Claimants::Many(v) => {
                v.retain(|n| **n != *s);
                match v.as_slice() {
                    [] => return true,
                    [one] => one.clone(),
                    _ => return false,
                }
            }
        };
        *self = Claimants::One(one);
        false
    }
}

fn claim(map: &mut FxHashMap<Id, Claimants>, id: &Id, s: &Arc<str>) {
    match map.entry(id.clone()) {
        std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().insert(s.clone()),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(Claimants::One(s.clone()));
        }
    }
}

fn unclaim(map: &mut FxHashMap<Id, Claimants>, id: &Id, s: &str) {
    if map.get_mut(id).is_some_and(|c| c.remove(s)) {
        map.remove(id);
    }
}

fn claimants<'m>(map: &'m FxHashMap<Id, Claimants>, id: &Id) -> &'m [Arc<str>] {
    map.get(id).map_or(&[], Claimants::as_slice)
}

fn sorted_insert<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

impl Effective {
    /// The effective config with no parts: startup itself.
    pub fn new(startup: Arc<Startup>, now: DateTime<Utc>) -> Effective {
        let n = startup.positions();
        Effective {
            startup,
            now,
            parts: BTreeMap::new(),
            sources: BTreeMap::new(),
            claims: FxHashMap::default(),
            mask_idx: FxHashMap::default(),
            ref_idx: FxHashMap::default(),
            dynamic: FxHashMap::default(),
            suppressed: BTreeMap::new(),
            masked: vec![false; n],
            touched: None,
        }
    }

    /// The full merge. The result does not depend on the order of `parts`;
    /// two parts with one name are an error because neither can be chosen
    /// without looking at the order.
    pub fn build(
        startup: Arc<Startup>,
        parts: impl IntoIterator<Item = Part>,
        now: DateTime<Utc>,
    ) -> Result<Effective, MergeError> {
        let mut e = Effective::new(startup, now);
        for p in parts {
            if e.parts.contains_key(&p.name) {
                return Err(MergeError::DuplicatePart(p.name));
            }
            let data = Arc::new(PartData::new(p));
            e.sources
                .entry(data.source.clone())
                .or_default()
                .parts
                .insert(data.name.clone());
            e.parts
                .insert(data.name.clone(), Slot { data, local: None });
        }
        let mut work = BTreeSet::new();
        let sources: Vec<Arc<str>> = e.sources.keys().cloned().collect();
        for s in sources {
            e.refresh_source(&s, &mut work);
        }
        e.process(work);
        Ok(e)
    }

    /// Applies one change in place and reports which effective resources it
    /// added, removed or changed. Equal to rebuilding from scratch with the
    /// new set of parts (the property tests check this).
    pub fn apply(&mut self, change: Change) -> Result<ChangeSet, MergeError> {
        self.touched = Some(FxHashMap::default());
        let res = self.apply_inner(change);
        let touched = self.touched.take().unwrap_or_default();
        res?;
        Ok(self.finish(touched))
    }

    fn apply_inner(&mut self, change: Change) -> Result<(), MergeError> {
        let mut work = BTreeSet::new();
        match change {
            Change::Upsert(p) => {
                let data = Arc::new(PartData::new(p));
                let name = data.name.clone();
                let source = data.source.clone();
                if let Some(old) = self.parts.remove(&name)
                    && old.data.source != source
                {
                    self.forget(&old.data.source, &name, &mut work);
                }
                self.parts.insert(name.clone(), Slot { data, local: None });
                self.sources
                    .entry(source.clone())
                    .or_default()
                    .parts
                    .insert(name);
                self.refresh_source(&source, &mut work);
            }
            Change::Remove(name) => {
                let Some(old) = self.parts.remove(&name) else {
                    return Err(MergeError::UnknownPart(name));
                };
                self.forget(&old.data.source, &name, &mut work);
            }
            Change::Tick(now) => {
                self.now = now;
                let sources: Vec<Arc<str>> = self.sources.keys().cloned().collect();
                for s in sources {
                    self.refresh_source(&s, &mut work);
                }
            }
        }
        self.process(work);
        self.sources
            .retain(|_, st| !st.parts.is_empty() || st.candidate.is_some());
        Ok(())
    }

    fn forget(&mut self, source: &Arc<str>, name: &str, work: &mut BTreeSet<Arc<str>>) {
        if let Some(st) = self.sources.get_mut(source) {
            st.parts.remove(name);
        }
        self.refresh_source(source, work);
    }

    /// Recomputes which part of `source` is the newest active generation and
    /// makes its contribution the source's candidate.
    fn refresh_source(&mut self, source: &Arc<str>, work: &mut BTreeSet<Arc<str>>) {
        let now = self.now;
        let winner: Option<String> = self.sources.get(source).and_then(|st| {
            st.parts
                .iter()
                .filter_map(|n| self.parts.get(n))
                .filter(|s| !s.data.spec.is_expired(now))
                .max_by(|a, b| a.data.recency().cmp(&b.data.recency()))
                .map(|s| s.data.name.clone())
        });
        let mut candidate: Option<Candidate> = None;
        if let Some(w) = &winner
            && let Some(slot) = self.parts.get_mut(w)
        {
            if slot.local.is_none() {
                slot.local = Some(evaluate(&self.startup, &slot.data).map(Arc::new));
            }
            if let Some(Ok(c)) = &slot.local {
                candidate = Some((slot.data.clone(), c.clone()));
            }
        }
        if let Some(st) = self.sources.get_mut(source) {
            st.winner = winner;
        }
        self.set_candidate(source, candidate, work);
    }

    fn set_candidate(
        &mut self,
        source: &Arc<str>,
        new: Option<Candidate>,
        work: &mut BTreeSet<Arc<str>>,
    ) {
        let Some(st) = self.sources.get(source) else {
            return;
        };
        let same = match (&st.candidate, &new) {
            (None, None) => true,
            (Some((a, ca)), Some((b, cb))) => Arc::ptr_eq(a, b) && Arc::ptr_eq(ca, cb),
            _ => false,
        };
        if same {
            return;
        }
        let old = st.candidate.clone();
        let was_accepted = st.decision == Decision::Accepted;
        if let Some((data, c)) = &old {
            self.push_neighbors(source, c, work);
            if was_accepted {
                self.retract(source, data, c);
            }
            self.unindex(source, c);
        }
        if let Some((_, c)) = &new {
            self.index(source, c);
            self.push_neighbors(source, c, work);
        }
        if let Some(st) = self.sources.get_mut(source) {
            st.candidate = new;
            st.decision = Decision::Undecided;
        }
        work.insert(source.clone());
    }

    /// Decides sources in ascending order until no decision changes.
    fn process(&mut self, mut work: BTreeSet<Arc<str>>) {
        while let Some(source) = work.pop_first() {
            let Some(st) = self.sources.get(&source) else {
                continue;
            };
            let new = self.decide(&source, st.candidate.as_ref());
            let was = st.decision == Decision::Accepted;
            let is = new == Decision::Accepted;
            let cand = st.candidate.clone();
            if let Some(st) = self.sources.get_mut(&source) {
                st.decision = new;
            }
            if was != is
                && let Some((data, c)) = &cand
            {
                if was {
                    self.retract(&source, data, c);
                } else {
                    self.install(&source, data, c);
                }
                self.push_neighbors(&source, c, &mut work);
            }
        }
    }

    fn accepted(&self, source: &str) -> bool {
        self.sources
            .get(source)
            .is_some_and(|st| st.decision == Decision::Accepted)
    }

    fn decide(&self, source: &Arc<str>, cand: Option<&Candidate>) -> Decision {
        let Some((_, c)) = cand else {
            return Decision::Undecided;
        };
        let earlier = |n: &Arc<str>| **n < **source && self.accepted(n);
        for (id, _) in &c.resources {
            if let Some(n) = claimants(&self.claims, id).iter().find(|n| earlier(n)) {
                return Decision::Rejected(format!(
                    "dynamic resource conflicts with another dynamic resource: source=\"{source}\" resource={id} existingSource=\"{n}\""
                ));
            }
        }
        for m in &c.masks {
            if let Some((n, by)) = self
                .ref_idx
                .get(&m.target)
                .and_then(|v| v.iter().find(|(n, _)| earlier(n)))
            {
                return Decision::Rejected(format!(
                    "dynamic mask would break a resource of another source: source=\"{source}\" target={} referencedBy={by} existingSource=\"{n}\"",
                    m.target
                ));
            }
        }
        for (target, by) in &c.refs {
            if let Some(n) = claimants(&self.mask_idx, target)
                .iter()
                .find(|n| earlier(n))
            {
                return Decision::Rejected(format!(
                    "dynamic resource references a resource masked by another source: source=\"{source}\" resource={by} target={target} maskedBy=\"{n}\""
                ));
            }
        }
        Decision::Accepted
    }

    fn push_neighbors(&self, source: &Arc<str>, c: &Contribution, work: &mut BTreeSet<Arc<str>>) {
        let mut add = |n: &Arc<str>| {
            if **n > **source {
                work.insert(n.clone());
            }
        };
        for (id, _) in &c.resources {
            claimants(&self.claims, id).iter().for_each(&mut add);
        }
        for m in &c.masks {
            self.ref_idx
                .get(&m.target)
                .into_iter()
                .flatten()
                .for_each(|(n, _)| add(n));
        }
        for (t, _) in &c.refs {
            claimants(&self.mask_idx, t).iter().for_each(&mut add);
        }
    }

    fn index(&mut self, source: &Arc<str>, c: &Contribution) {
        for (id, _) in &c.resources {
            claim(&mut self.claims, id, source);
        }
        for m in &c.masks {
            claim(&mut self.mask_idx, &m.target, source);
        }
        for (t, by) in &c.refs {
            sorted_insert(
                self.ref_idx.entry(t.clone()).or_default(),
                (source.clone(), by.clone()),
            );
        }
    }

    fn unindex(&mut self, source: &Arc<str>, c: &Contribution) {
        for (id, _) in &c.resources {
            unclaim(&mut self.claims, id, source);
        }
        for m in &c.masks {
            unclaim(&mut self.mask_idx, &m.target, source);
        }
        for (t, _) in &c.refs {
            if let Some(v) = self.ref_idx.get_mut(t) {
                v.retain(|(n, _)| n != source);
                if v.is_empty() {
                    self.ref_idx.remove(t);
                }
            }
        }
    }

    fn view(&self, id: &Id) -> View {
        if let Some(e) = self.dynamic.get(id) {
            return View::Dynamic(e.part.clone(), e.index);
        }
        match self.startup.position(id) {
            Some(p) if !self.masked.get(p as usize).copied().unwrap_or(false) => View::Startup(p),
            _ => View::Absent,
        }
    }

    fn touch(&mut self, id: &Id) {
        let needs = self.touched.as_ref().is_some_and(|t| !t.contains_key(id));
        if needs {
            let v = self.view(id);
            if let Some(t) = self.touched.as_mut() {
                t.insert(id.clone(), v);
            }
        }
    }

    fn install(&mut self, source: &Arc<str>, data: &Arc<PartData>, c: &Contribution) {
        for (id, i) in &c.resources {
            self.touch(id);
            self.dynamic.insert(
                id.clone(),
                DynEntry {
                    part: data.clone(),
                    index: *i,
                },
            );
        }
        for m in &c.masks {
            self.touch(&m.target);
            let s = self
                .suppressed
                .entry(m.target.clone())
                .or_insert_with(|| Suppression {
                    by: BTreeMap::new(),
                });
            s.by.insert(
                source.clone(),
                MaskBy {
                    part: data.clone(),
                    reasons: m.reasons.clone(),
                },
            );
            if let Some(f) = self.masked.get_mut(m.pos as usize) {
                *f = true;
            }
        }
    }

    fn retract(&mut self, source: &Arc<str>, data: &Arc<PartData>, c: &Contribution) {
        for (id, _) in &c.resources {
            self.touch(id);
            // A smaller source that won this id may already have installed
            // its entry over ours (decisions run in source order).
            if self
                .dynamic
                .get(id)
                .is_some_and(|e| Arc::ptr_eq(&e.part, data))
            {
                self.dynamic.remove(id);
            }
        }
        for m in &c.masks {
            self.touch(&m.target);
            let empty = match self.suppressed.get_mut(&m.target) {
                Some(s) => {
                    s.by.remove(source);
                    s.by.is_empty()
                }
                None => false,
            };
            if empty {
                self.suppressed.remove(&m.target);
                if let Some(f) = self.masked.get_mut(m.pos as usize) {
                    *f = false;
                }
            }
        }
    }

    fn resolve<'a>(&'a self, v: &'a View) -> Option<Entry<'a>> {
        match v {
            View::Absent => None,
            View::Startup(p) => self.startup.get(*p).map(|r| Entry {
                resource: r,
                provenance: Provenance::Startup,
            }),
            View::Dynamic(part, i) => part.resource(*i).map(|r| Entry {
                resource: r,
                provenance: Provenance::of(part),
            }),
        }
    }

    fn finish(&self, touched: FxHashMap<Id, View>) -> ChangeSet {
        let mut touched: Vec<(Id, View)> = touched.into_iter().collect();
        touched.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut cs = ChangeSet::default();
        for (id, before) in touched {
            let after = self.view(&id);
            classify(&mut cs, &id, self.resolve(&before), self.resolve(&after));
        }
        cs
    }

    /// The instant the merge was computed for.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The shared startup index.
    pub fn startup(&self) -> &Arc<Startup> {
        &self.startup
    }

    /// Number of effective resources.
    pub fn len(&self) -> usize {
        self.startup.len() - self.suppressed.len() + self.dynamic.len()
    }

    /// Whether nothing is effective.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The effective resource with identity `id`.
    pub fn get(&self, id: &ResourceId) -> Option<Entry<'_>> {
        let id = Id::new(id.clone());
        if let Some(e) = self.dynamic.get(&id) {
            return e.part.resource(e.index).map(|r| Entry {
                resource: r,
                provenance: Provenance::of(&e.part),
            });
        }
        match self.view(&id) {
            View::Startup(p) => self.startup.get(p).map(|r| Entry {
                resource: r,
                provenance: Provenance::Startup,
            }),
            _ => None,
        }
    }

    /// Effective resources sorted by id, each with its provenance.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let mut st = self
            .startup
            .order()
            .iter()
            .filter(|p| !self.masked.get(**p as usize).copied().unwrap_or(true))
            .filter_map(|p| self.startup.get(*p))
            .peekable();
        let mut sorted: Vec<(&Id, &DynEntry)> = self.dynamic.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut dy = sorted
            .into_iter()
            .filter_map(|(id, e)| e.part.resource(e.index).map(|r| (id, r, &e.part)))
            .peekable();
        std::iter::from_fn(move || match (st.peek(), dy.peek()) {
            (Some(s), Some((id, _, _))) => {
                if cmp_resource_id(s, id) == std::cmp::Ordering::Less {
                    st.next().map(|r| Entry {
                        resource: r,
                        provenance: Provenance::Startup,
                    })
                } else {
                    dy.next().map(|(_, r, p)| Entry {
                        resource: r,
                        provenance: Provenance::of(p),
                    })
                }
            }
            (Some(_), None) => st.next().map(|r| Entry {
                resource: r,
                provenance: Provenance::Startup,
            }),
            (None, Some(_)) => dy.next().map(|(_, r, p)| Entry {
                resource: r,
                provenance: Provenance::of(p),
            }),
            (None, None) => None,
        })
    }

    /// Ids of the effective resources, sorted.
    pub fn ids(&self) -> Vec<ResourceId> {
        self.iter().map(|e| e.resource.id()).collect()
    }

    /// Suppressed startup resources, sorted by target.
    pub fn suppressed(&self) -> Vec<Suppressed> {
        self.suppressed
            .iter()
            .map(|(target, s)| {
                let masked_by =
                    s.by.iter()
                        .map(|(src, m)| format!("{src}#{}", m.part.spec.generation))
                        .collect();
                let masked_until =
                    s.by.values()
                        .map(|m| m.part.spec.expires_at)
                        .try_fold(None::<DateTime<Utc>>, |acc, e| {
                            e.map(|e| Some(acc.map_or(e, |a| a.max(e))))
                        })
                        .flatten();
                let mut reasons: Vec<&str> =
                    s.by.values()
                        .flat_map(|m| m.reasons.iter().map(String::as_str))
                        .collect();
                reasons.sort_unstable();
                reasons.dedup();
                Suppressed {
                    target: routerd_model::ObjectRef {
                        api_version: target.api_version.clone(),
                        kind: target.kind.clone(),
                        name: target.name.clone(),
                    },
                    masked_by,
                    masked_until,
                    reason: reasons.join("; "),
                }
            })
            .collect()
    }

    /// Every part with its state and reason, sorted by name.
    pub fn parts(&self) -> Vec<PartReport> {
        self.parts.values().map(|slot| self.report(slot)).collect()
    }

    fn report(&self, slot: &Slot) -> PartReport {
        let d = &slot.data;
        let (state, reason) = if d.spec.is_expired(self.now) {
            let at = d
                .spec
                .expires_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                .unwrap_or_default();
            (PartState::Expired, format!("expired at {at}"))
        } else {
            let st = self.sources.get(&d.source);
            let winner = st.and_then(|s| s.winner.as_deref());
            if winner != Some(d.name.as_str()) {
                let by = winner
                    .and_then(|w| self.parts.get(w))
                    .map(|w| {
                        format!(
                            "superseded by generation {} (part {})",
                            w.data.spec.generation, w.data.name
                        )
                    })
                    .unwrap_or_else(|| "superseded".to_string());
                (PartState::Superseded, by)
            } else {
                match (&slot.local, st.map(|s| &s.decision)) {
                    (Some(Err(r)), _) => (PartState::Rejected, r.clone()),
                    (_, Some(Decision::Rejected(r))) => (PartState::Rejected, r.clone()),
                    _ => (PartState::Active, String::new()),
                }
            }
        };
        PartReport {
            name: d.name.clone(),
            source: d.spec.source.clone(),
            generation: d.spec.generation,
            state,
            reason,
            digest: d.digest.clone(),
            observed_at: d.spec.observed_at,
            expires_at: d.spec.expires_at,
            resources: d.spec.resources.len(),
            directives: d.spec.directives.len(),
        }
    }

    /// The earliest `expiresAt` still in the future: when the daemon should
    /// send the next [`Change::Tick`].
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.parts
            .values()
            .filter_map(|s| s.data.spec.expires_at)
            .filter(|e| *e > self.now)
            .min()
    }
}

fn classify(cs: &mut ChangeSet, id: &Id, before: Option<Entry<'_>>, after: Option<Entry<'_>>) {
    match (before, after) {
        (None, None) => {}
        (None, Some(_)) => cs.added.push(id.clone()),
        (Some(_), None) => cs.removed.push(id.clone()),
        (Some(a), Some(b)) => {
            if !std::ptr::eq(a.resource, b.resource) && a.resource != b.resource {
                cs.changed.push(id.clone());
            } else if a.provenance != b.provenance {
                cs.provenance_changed.push(id.clone());
            }
        }
    }
}

/// The change set between two results, computed by walking both in id
/// order. The incremental [`Effective::apply`] returns the same thing
/// without the walk.
pub fn diff(old: &Effective, new: &Effective) -> ChangeSet {
    let mut cs = ChangeSet::default();
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        let ord = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => crate::startup::cmp_resources(x.resource, y.resource),
        };
        match ord {
            std::cmp::Ordering::Less => {
                if let Some(x) = a.next() {
                    cs.removed.push(Id::new(x.resource.id()));
                }
            }
            std::cmp::Ordering::Greater => {
                if let Some(y) = b.next() {
                    cs.added.push(Id::new(y.resource.id()));
                }
            }
            std::cmp::Ordering::Equal => {
                if let (Some(x), Some(y)) = (a.next(), b.next()) {
                    let id = Id::new(x.resource.id());
                    classify(&mut cs, &id, Some(x), Some(y));
                }
            }
        }
    }
    cs
}

/// Convenience for the full merge of `resources` (validated startup) and
/// `parts` at `now`.
pub fn merge(
    startup: Vec<Resource>,
    parts: impl IntoIterator<Item = Part>,
    now: DateTime<Utc>,
) -> Result<Effective, MergeError> {
    Effective::build(Arc::new(Startup::new(startup)), parts, now)
}
