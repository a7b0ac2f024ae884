//! A set of policies with a reverse index from status providers to the
//! policies that read them.
//!
//! routerd re-evaluates every policy on every HealthCheck or source change,
//! with two linear scans of the configuration per health-checked candidate.
//! Here the configuration is indexed once (HealthCheck specs and link aliases
//! by name, every reference resolved to a resource id), and a change to one
//! resource's status re-evaluates only the policies that reference it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_model::spec::common::StatusValueSource;
use routerd_model::spec::{EgressRoutePolicySpec, HealthCheckSpec};
use routerd_model::{Kind, Resource, ResourceId, Status};

use crate::decision::Decision;
use crate::observe::{
    CandidateObservation, HealthObservation, HealthParams, LinkObservation, SourceObservation,
    StatusSource, TargetObservation, first_value, intern_phase, observe_dependency, phase_of,
    reference_id,
};
use crate::select::{
    CandidateCache, Evaluation, Outcome, PolicyInput, SelectOptions, rebuild_decision, select,
    select_core, select_in_place,
};

/// The configuration facts selection and its followers look up by name.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// HealthCheck specs by name.
    pub health: HashMap<String, HealthCheckSpec>,
    /// Kernel device name of every interface-like resource, by resource name
    /// (Interface `ifname`, DSLiteTunnel `tunnelName`, PPPoESession `ifname`).
    pub aliases: HashMap<String, String>,
    /// Names of PPPoESessions with `enabled: false`.
    pub disabled_pppoe: BTreeSet<String>,
    /// IPv4StaticAddress `address` by interface name.
    pub static_addresses: HashMap<String, String>,
    /// EgressRoutePolicy names, in configuration order.
    pub policies: Vec<String>,
    /// The link-like resource behind a logical interface name: its
    /// `Kind/name` reference, resource id and whether it is a DSLiteTunnel.
    pub links: HashMap<String, LinkRef>,
}

/// A link-like resource (Interface, PPPoESession, DSLiteTunnel) that
/// readiness checks: `Kind/name`, resource id, DSLiteTunnel or not.
pub type LinkRef = (Arc<str>, String, bool);

fn link_ref(kind: Kind, name: &str) -> LinkRef {
    (
        format!("{}/{name}", kind.as_str()).into(),
        ResourceId::of(kind, name).to_string(),
        kind == Kind::DSLiteTunnel,
    )
}

impl World {
    /// Indexes a configuration.
    pub fn new(resources: &[Resource]) -> World {
        let mut w = World::default();
        for r in resources {
            let name = r.name().to_string();
            if let Some(h) = r.as_health_check() {
                w.health.insert(name.clone(), h.clone());
            }
            if let Some(i) = r.as_interface() {
                let dev = if i.ifname.trim().is_empty() {
                    name.clone()
                } else {
                    i.ifname.trim().to_string()
                };
                w.aliases.entry(name.clone()).or_insert(dev);
                w.links
                    .entry(name.clone())
                    .or_insert_with(|| link_ref(Kind::Interface, &name));
            }
            if let Some(d) = r.as_dslite() {
                w.aliases
                    .entry(name.clone())
                    .or_insert_with(|| d.device_name(&name).to_string());
                w.links
                    .entry(name.clone())
                    .or_insert_with(|| link_ref(Kind::DSLiteTunnel, &name));
            }
            if let Some(p) = r.as_pppoe() {
                w.aliases
                    .entry(name.clone())
                    .or_insert_with(|| p.device_name(&name));
                w.links
                    .entry(name.clone())
                    .or_insert_with(|| link_ref(Kind::PPPoESession, &name));
                if !p.is_enabled() {
                    w.disabled_pppoe.insert(name.clone());
                }
            }
            if let Some(a) = r.as_static_address() {
                w.static_addresses
                    .entry(a.interface.clone())
                    .or_insert_with(|| a.address.clone());
            }
            if r.as_egress_policy().is_some() {
                w.policies.push(name);
            }
        }
        w
    }

    /// The link-like resource a `Kind/name` reference points at, when it is
    /// one this configuration declares.
    fn link_of_reference(&self, reference: &str) -> Option<LinkRef> {
        let (kind, name) = routerd_model::id::split_kind_name(reference.trim())?;
        let kind = Kind::parse(kind)?;
        matches!(
            kind,
            Kind::Interface | Kind::DSLiteTunnel | Kind::PPPoESession
        )
        .then(|| self.links.get(name))
        .flatten()
        .filter(|l| l.0.starts_with(kind.as_str()))
        .cloned()
    }

    /// The kernel device of a logical interface name (the name itself when
    /// it is not a known resource: it may be a raw kernel name).
    pub fn device_of(&self, interface: &str) -> String {
        self.aliases
            .get(interface)
            .cloned()
            .unwrap_or_else(|| interface.to_string())
    }
}

#[derive(Clone, Debug, Default)]
struct FromRef {
    id: Option<String>,
    field: String,
}

impl FromRef {
    fn new(src: &StatusValueSource) -> FromRef {
        FromRef {
            id: reference_id(&src.resource),
            field: src.field.clone().unwrap_or_default(),
        }
    }
    fn read(&self, statuses: &dyn StatusSource) -> String {
        self.id
            .as_deref()
            .and_then(|id| statuses.status(id))
            .map(|s| first_value(s, &self.field))
            .unwrap_or_default()
    }
    /// [`FromRef::read`] into `out`, keeping its buffer when the value is a
    /// plain string (the common case) so a re-observation allocates nothing.
    fn read_into(&self, statuses: &dyn StatusSource, out: &mut Option<String>) {
        let status = self.id.as_deref().and_then(|id| statuses.status(id));
        let plain = match status.and_then(|s| s.get(&self.field)) {
            Some(serde_json::Value::String(v)) if self.field != "phase" => {
                let t = v.trim();
                (!t.contains(',') && !t.starts_with('[')).then_some(t)
            }
            _ => None,
        };
        match (plain, out.as_mut()) {
            (Some(v), Some(o)) => {
                if o != v {
                    o.clear();
                    o.push_str(v);
                }
            }
            (Some(v), None) => *out = Some(v.to_string()),
            (None, _) => {
                *out = Some(
                    status
                        .map(|s| first_value(s, &self.field))
                        .unwrap_or_default(),
                )
            }
        }
    }
}

/// A HealthCheck: name, resource id and resolved spec values.
type HealthRef = (Arc<str>, String, HealthParams);

/// A candidate's `source`: reference, resource id, disabled by its own
/// spec, a DSLiteTunnel.
type SourceRef = (Arc<str>, Option<String>, bool, bool);

#[derive(Clone, Debug, Default)]
struct CandidateRefs {
    source: Option<SourceRef>,
    health: Option<HealthRef>,
    device_from: Option<FromRef>,
    gateway_from: Option<FromRef>,
    interface_device: Option<String>,
    links: Vec<LinkRef>,
    targets: Vec<(Option<HealthRef>, String, Option<LinkRef>)>,
}

fn observe_link(l: &LinkRef, statuses: &dyn StatusSource) -> LinkObservation {
    LinkObservation::read(l.0.clone(), l.2, statuses.status(&l.1))
}

fn observe_source(s: &SourceRef, statuses: &dyn StatusSource) -> SourceObservation {
    let (reference, id, disabled, tunnel) = s;
    let phase = intern_phase(
        id.as_deref()
            .and_then(|id| statuses.status(id))
            .map_or("", phase_of),
    );
    SourceObservation {
        reference: reference.clone(),
        phase,
        spec_disabled: *disabled,
        tunnel: *tunnel,
    }
}

#[derive(Clone, Debug)]
struct PolicyEntry {
    api_version: String,
    name: String,
    id: String,
    spec: EgressRoutePolicySpec,
    refs: Vec<CandidateRefs>,
}

/// Parsed HealthCheck observations of one batch, by resource id.
#[derive(Default)]
struct Memo<'s> {
    health: HashMap<&'s str, HealthObservation>,
    /// The id looked up last: a change to one HealthCheck looks the same id
    /// up for every dependent candidate, and comparing it is cheaper than
    /// hashing it.
    last: Option<(&'s str, HealthObservation)>,
}

impl<'s> Memo<'s> {
    fn health(&mut self, h: &'s HealthRef, statuses: &dyn StatusSource) -> HealthObservation {
        if let Some((id, o)) = &self.last
            && *id == h.1.as_str()
        {
            return o.clone();
        }
        let o = self
            .health
            .entry(h.1.as_str())
            .or_insert_with(|| HealthObservation::read(h.0.clone(), h.2, statuses.status(&h.1)))
            .clone();
        self.last = Some((h.1.as_str(), o.clone()));
        o
    }
}

/// Incremental evaluation state of a [`PolicySet`]: the status of every
/// policy plus what the last evaluation observed and concluded per
/// candidate. It owns the policies' statuses, so nothing else may change
/// them behind its back (rebuild it from the store if something does).
#[derive(Clone, Debug, Default)]
pub struct SetState {
    entries: Vec<StateEntry>,
}

#[derive(Clone, Debug, Default)]
struct StateEntry {
    observations: Vec<CandidateObservation>,
    cache: CandidateCache,
    status: Status,
}

impl SetState {
    /// The current status of policy `i`.
    pub fn status(&self, i: usize) -> Option<&Status> {
        self.entries.get(i).map(|e| &e.status)
    }
}

/// Policies ready for evaluation, with the reverse index.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    world: World,
    policies: Vec<PolicyEntry>,
    by_dependency: HashMap<String, Vec<usize>>,
    /// Resource id → (policy, candidate) pairs that read it.
    by_candidate: HashMap<String, Vec<(usize, usize)>>,
}

fn health_ref(world: &World, name: Option<&str>) -> Option<HealthRef> {
    let n = name.map(str::trim).filter(|n| !n.is_empty())?;
    Some((
        n.into(),
        ResourceId::of(Kind::HealthCheck, n).to_string(),
        HealthParams::of(world.health.get(n)),
    ))
}

impl PolicySet {
    /// Indexes the EgressRoutePolicies of a configuration (rebuild it when
    /// the configuration changes).
    pub fn new(resources: &[Resource]) -> PolicySet {
        let world = World::new(resources);
        let mut set = PolicySet::default();
        for r in resources {
            let Some(spec) = r.as_egress_policy() else {
                continue;
            };
            let idx = set.policies.len();
            let mut deps: BTreeSet<String> = BTreeSet::new();
            let refs = spec
                .candidates
                .iter()
                .enumerate()
                .map(|(ci, c)| {
                    let mut own: BTreeSet<String> = BTreeSet::new();
                    let source = c
                        .source
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            let id = reference_id(s);
                            let disabled = s
                                .strip_prefix("PPPoESession/")
                                .is_some_and(|n| world.disabled_pppoe.contains(n));
                            let tunnel = s.starts_with("DSLiteTunnel/");
                            (Arc::<str>::from(s), id, disabled, tunnel)
                        });
                    let health = health_ref(&world, c.health_check.as_deref());
                    let device_from = c.device_from.as_ref().map(FromRef::new);
                    let gateway_from = c.gateway_from.as_ref().map(FromRef::new);
                    let interface_device = c
                        .interface
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|i| world.device_of(i));
                    // The links the path runs over: what the effective
                    // interface names and what deviceFrom reads; a source
                    // is checked as the source.
                    let mut links: Vec<LinkRef> = Vec::new();
                    let candidates = [
                        c.effective_interface()
                            .and_then(|i| world.links.get(i).cloned()),
                        c.device_from
                            .as_ref()
                            .and_then(|f| world.link_of_reference(&f.resource)),
                    ];
                    for l in candidates.into_iter().flatten() {
                        let is_source = source
                            .as_ref()
                            .is_some_and(|s| s.1.as_deref() == Some(&l.1));
                        if !is_source && !links.iter().any(|x| x.1 == l.1) {
                            links.push(l);
                        }
                    }
                    let targets = c
                        .targets
                        .iter()
                        .map(|t| {
                            (
                                health_ref(&world, t.health_check.as_deref()),
                                t.effective_interface()
                                    .map(|i| world.device_of(i))
                                    .unwrap_or_default(),
                                t.effective_interface()
                                    .and_then(|i| world.links.get(i).cloned()),
                            )
                        })
                        .collect::<Vec<_>>();
                    own.extend(source.as_ref().and_then(|s| s.1.clone()));
                    own.extend(links.iter().map(|l| l.1.clone()));
                    own.extend(
                        targets
                            .iter()
                            .filter_map(|t| t.2.as_ref().map(|l| l.1.clone())),
                    );
                    own.extend(health.as_ref().map(|h| h.1.clone()));
                    own.extend(device_from.as_ref().and_then(|f| f.id.clone()));
                    own.extend(gateway_from.as_ref().and_then(|f| f.id.clone()));
                    own.extend(
                        c.depends_on
                            .iter()
                            .filter_map(|d| reference_id(&d.resource)),
                    );
                    own.extend(
                        targets
                            .iter()
                            .filter_map(|t| t.0.as_ref().map(|h| h.1.clone())),
                    );
                    for d in &own {
                        set.by_candidate
                            .entry(d.clone())
                            .or_default()
                            .push((idx, ci));
                    }
                    deps.extend(own);
                    CandidateRefs {
                        source,
                        health,
                        device_from,
                        gateway_from,
                        interface_device,
                        links,
                        targets,
                    }
                })
                .collect();
            for d in deps {
                set.by_dependency.entry(d).or_default().push(idx);
            }
            set.policies.push(PolicyEntry {
                api_version: r.api_version.clone(),
                name: r.name().to_string(),
                id: r.id().to_string(),
                spec: spec.clone(),
                refs,
            });
        }
        set.world = world;
        set
    }

    /// The configuration index.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Policy ids (`apiVersion/EgressRoutePolicy/name`), by position.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.id.as_str())
    }

    /// The id of policy `i`.
    pub fn id(&self, i: usize) -> Option<&str> {
        self.policies.get(i).map(|p| p.id.as_str())
    }

    /// Policies that read the status of resource `id`.
    pub fn dependents(&self, id: &str) -> &[usize] {
        self.by_dependency.get(id).map_or(&[], Vec::as_slice)
    }

    /// Policies to evaluate again after the statuses of `changed` changed,
    /// in configuration order.
    pub fn affected<'a>(&self, changed: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
        let set: BTreeSet<usize> = changed
            .into_iter()
            .flat_map(|id| self.dependents(id).iter().copied())
            .collect();
        set.into_iter().collect()
    }

    /// What is known about the candidates of policy `i`.
    pub fn observe(&self, i: usize, statuses: &dyn StatusSource) -> Vec<CandidateObservation> {
        self.observe_memo(i, statuses, &mut Memo::default())
    }

    /// Observations for several policies at once. Policies share health
    /// checks and sources, so each status is read and parsed once per batch.
    pub fn observe_many(
        &self,
        policies: &[usize],
        statuses: &dyn StatusSource,
    ) -> Vec<Vec<CandidateObservation>> {
        let mut memo = Memo::default();
        policies
            .iter()
            .map(|&i| self.observe_memo(i, statuses, &mut memo))
            .collect()
    }

    fn observe_memo<'s>(
        &'s self,
        i: usize,
        statuses: &dyn StatusSource,
        memo: &mut Memo<'s>,
    ) -> Vec<CandidateObservation> {
        let n = self.policies.get(i).map_or(0, |p| p.refs.len());
        (0..n)
            .filter_map(|c| self.observe_candidate(i, c, statuses, memo))
            .collect()
    }

    fn observe_candidate<'s>(
        &'s self,
        i: usize,
        ci: usize,
        statuses: &dyn StatusSource,
        memo: &mut Memo<'s>,
    ) -> Option<CandidateObservation> {
        let p = self.policies.get(i)?;
        let c = p.spec.candidates.get(ci)?;
        let r = p.refs.get(ci)?;
        let mut health = |h: &'s HealthRef| memo.health(h, statuses);
        Some(CandidateObservation {
            source: r.source.as_ref().map(|s| observe_source(s, statuses)),
            health: r.health.as_ref().map(&mut health),
            dependencies: c
                .depends_on
                .iter()
                .map(|d| observe_dependency(d, statuses))
                .collect(),
            device_from: r.device_from.as_ref().map(|f| f.read(statuses)),
            gateway_from: r.gateway_from.as_ref().map(|f| f.read(statuses)),
            interface_device: r.interface_device.clone(),
            links: r.links.iter().map(|l| observe_link(l, statuses)).collect(),
            targets: r
                .targets
                .iter()
                .map(|(h, device, link)| TargetObservation {
                    health: h.as_ref().map(&mut health),
                    device: device.clone(),
                    link: link.as_ref().map(|l| observe_link(l, statuses)),
                })
                .collect(),
        })
    }

    /// [`PolicySet::observe_candidate`] into the previous observation of
    /// the candidate, reusing its buffers (a re-observation after a health
    /// change then allocates nothing in the common case).
    fn observe_candidate_into<'s>(
        &'s self,
        i: usize,
        ci: usize,
        statuses: &dyn StatusSource,
        memo: &mut Memo<'s>,
        out: &mut CandidateObservation,
    ) -> Option<()> {
        let p = self.policies.get(i)?;
        let c = p.spec.candidates.get(ci)?;
        let r = p.refs.get(ci)?;
        out.source = r.source.as_ref().map(|s| observe_source(s, statuses));
        out.health = r.health.as_ref().map(|h| memo.health(h, statuses));
        out.dependencies.clear();
        out.dependencies
            .extend(c.depends_on.iter().map(|d| observe_dependency(d, statuses)));
        match &r.device_from {
            Some(f) => f.read_into(statuses, &mut out.device_from),
            None => out.device_from = None,
        }
        match &r.gateway_from {
            Some(f) => f.read_into(statuses, &mut out.gateway_from),
            None => out.gateway_from = None,
        }
        if out.interface_device != r.interface_device {
            out.interface_device.clone_from(&r.interface_device);
        }
        if out.links.len() == r.links.len() {
            for (o, l) in out.links.iter_mut().zip(&r.links) {
                o.refresh(statuses.status(&l.1));
            }
        } else {
            out.links = r.links.iter().map(|l| observe_link(l, statuses)).collect();
        }
        out.targets.clear();
        for (h, device, link) in &r.targets {
            out.targets.push(TargetObservation {
                health: h.as_ref().map(|h| memo.health(h, statuses)),
                device: device.clone(),
                link: link.as_ref().map(|l| observe_link(l, statuses)),
            });
        }
        Some(())
    }

    /// Starts incremental evaluation: the previous status of every policy
    /// is taken from `previous`; nothing is observed yet (call
    /// [`PolicySet::refresh`] first).
    pub fn new_state(&self, previous: &dyn StatusSource) -> SetState {
        SetState {
            entries: self
                .policies
                .iter()
                .map(|p| StateEntry {
                    observations: Vec::new(),
                    cache: CandidateCache::default(),
                    status: previous.status(&p.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Observes and evaluates every policy (startup and the periodic safety
    /// net that also catches time-based changes such as expired holds).
    pub fn refresh(
        &self,
        state: &mut SetState,
        statuses: &dyn StatusSource,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Vec<(usize, Evaluation)> {
        let all: Vec<usize> = (0..self.policies.len()).collect();
        self.refresh_some(state, &all, statuses, now, options)
    }

    /// [`PolicySet::refresh`] for the policies in `which` only: each is
    /// observed afresh and evaluated. A daemon calls it for the policies
    /// whose [`Evaluation::wake_at`] has come (a hold ended, health went
    /// stale), so time-based changes need no periodic full evaluation.
    pub fn refresh_some(
        &self,
        state: &mut SetState,
        which: &[usize],
        statuses: &dyn StatusSource,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Vec<(usize, Evaluation)> {
        let which: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&i| i < self.policies.len())
            .collect();
        let observed = self.observe_many(&which, statuses);
        let mut out = Vec::with_capacity(which.len());
        for (i, obs) in which.into_iter().zip(observed) {
            if let Some(e) = state.entries.get_mut(i) {
                e.observations = obs;
                e.cache.dirty = vec![true; e.observations.len()];
                if let Some(ev) = self.evaluate_entry(i, e, now, options) {
                    out.push((i, ev));
                }
            }
        }
        out
    }

    /// The index of the policy with resource id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.policies.iter().position(|p| p.id == id)
    }

    /// Re-evaluates after the statuses of `changed` changed: only the
    /// candidates that read them are observed and assessed again, and only
    /// the policies holding such a candidate are evaluated.
    pub fn on_change<'a>(
        &self,
        state: &mut SetState,
        changed: impl IntoIterator<Item = &'a str>,
        statuses: &dyn StatusSource,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Vec<(usize, Evaluation)> {
        let mut memo = Memo::default();
        let mut policies = Vec::new();
        for id in changed {
            for &(p, c) in self.by_candidate.get(id).map_or(&[][..], Vec::as_slice) {
                let Some(e) = state.entries.get_mut(p) else {
                    continue;
                };
                if e.observations.len() != self.policies.get(p).map_or(0, |x| x.refs.len()) {
                    // Never observed: observe the whole policy.
                    e.observations = self.observe_memo(p, statuses, &mut memo);
                    e.cache.dirty = vec![true; e.observations.len()];
                } else if let Some(slot) = e.observations.get_mut(c)
                    && self
                        .observe_candidate_into(p, c, statuses, &mut memo, slot)
                        .is_some()
                    && let Some(d) = e.cache.dirty.get_mut(c)
                {
                    *d = true;
                }
                policies.push(p);
            }
        }
        policies.sort_unstable();
        policies.dedup();
        let mut out = Vec::with_capacity(policies.len());
        for i in policies {
            if let Some(e) = state.entries.get_mut(i)
                && let Some(ev) = self.evaluate_entry(i, e, now, options)
            {
                out.push((i, ev));
            }
        }
        out
    }

    fn evaluate_entry(
        &self,
        i: usize,
        e: &mut StateEntry,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Option<Evaluation> {
        let p = self.policies.get(i)?;
        let input = PolicyInput {
            api_version: &p.api_version,
            name: &p.name,
            spec: &p.spec,
            observations: &e.observations,
            previous: None,
            now,
            options,
        };
        Some(select_core(&input, &mut e.status, Some(&mut e.cache)))
    }

    /// The full decision record of the last evaluation of policy `i` in
    /// `state`, identical to the one a non-terse evaluation returns. Lets a
    /// daemon evaluate with [`SelectOptions::terse`] on the hot path and
    /// still answer `routerctl explain`; `None` before the first evaluation.
    pub fn decision(&self, state: &SetState, i: usize) -> Option<Decision> {
        let p = self.policies.get(i)?;
        let e = state.entries.get(i)?;
        let input = PolicyInput {
            api_version: &p.api_version,
            name: &p.name,
            spec: &p.spec,
            observations: &e.observations,
            previous: None,
            now: DateTime::<Utc>::UNIX_EPOCH,
            options: SelectOptions::default(),
        };
        rebuild_decision(&input, &e.cache)
    }

    /// Evaluates policy `i` from given observations, patching `status` (its
    /// previous status) in place; see [`select_in_place`].
    pub fn evaluate_in_place(
        &self,
        i: usize,
        observations: &[CandidateObservation],
        status: &mut Status,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Option<Evaluation> {
        let p = self.policies.get(i)?;
        Some(select_in_place(
            &PolicyInput {
                api_version: &p.api_version,
                name: &p.name,
                spec: &p.spec,
                observations,
                previous: None,
                now,
                options,
            },
            status,
        ))
    }

    /// Evaluates policy `i` against `statuses`; its previous status is read
    /// from `previous` under the policy's id.
    pub fn evaluate(
        &self,
        i: usize,
        statuses: &dyn StatusSource,
        previous: &dyn StatusSource,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Option<Outcome> {
        let p = self.policies.get(i)?;
        let observations = self.observe(i, statuses);
        Some(select(&PolicyInput {
            api_version: &p.api_version,
            name: &p.name,
            spec: &p.spec,
            observations: &observations,
            previous: previous.status(&p.id),
            now,
            options,
        }))
    }

    /// Evaluates the policies affected by changes to `changed`, returning
    /// `(policy id, outcome)` in configuration order.
    pub fn evaluate_affected<'a>(
        &self,
        changed: impl IntoIterator<Item = &'a str>,
        statuses: &dyn StatusSource,
        now: DateTime<Utc>,
        options: SelectOptions,
    ) -> Vec<(&str, Outcome)> {
        self.affected(changed)
            .into_iter()
            .filter_map(|i| {
                let o = self.evaluate(i, statuses, statuses, now, options)?;
                Some((self.policies[i].id.as_str(), o))
            })
            .collect()
    }

    /// The previous status of policy `i` in `statuses`.
    pub fn previous<'s>(&self, i: usize, statuses: &'s dyn StatusSource) -> Option<&'s Status> {
        statuses.status(self.id(i)?)
    }
}
