//! Status shapes of an EgressRoutePolicy and reading the previous status.
//!
//! Two shapes exist because consumers already depend on both (§3.1 and
//! §3.2): the advisory shape (`mode` omitted: `role: advisory`,
//! `advisory: true`, never `dryRun`) and the policy-route shape (`priority`,
//! `mark`, `hash`: `dryRun`, `updatedAt`). Extensions, all additive:
//! `readySince` on ready candidates (the hold-down clock), `members` for
//! weighted ECMP, and `lastTransitionAt` in the policy-route shape (needed to
//! honour `hysteresis` there).

use chrono::{DateTime, Utc};
use routerd_model::Status;
use serde_json::Value;

use crate::decision::Member;
use crate::readiness::{Assessment, Before};
use crate::time::{format_rfc3339_nano, parse_rfc3339};

/// A candidate the previous status listed as ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrevReady {
    /// Candidate name.
    pub name: String,
    /// `readySince` as written.
    pub since_raw: String,
    /// `readySince`, when it parses.
    pub since: Option<DateTime<Utc>>,
}

/// One target of a candidate entry in the previous status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrevTarget {
    /// It was ready.
    pub ready: bool,
    /// Its `readySince`, when written and parsable.
    pub since: Option<DateTime<Utc>>,
    /// New flows were hashed onto it.
    pub in_use: bool,
}

/// The `targetStates` of a candidate entry in the previous status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrevTargets {
    /// Candidate name.
    pub name: String,
    /// Per target, in spec order.
    pub states: Vec<PrevTarget>,
}

/// What the previous status says, as far as selection cares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Previous {
    /// A previous status existed.
    pub exists: bool,
    /// Its phase.
    pub phase: std::borrow::Cow<'static, str>,
    /// `selectedCandidate`, `selectedDevice`, `selectedGateway`,
    /// `selectedGatewaySource` (a missing key is `None`, unlike `""`).
    pub selected: [Option<String>; 4],
    /// `selectedRouteTable`, `selectedMetric` (missing counts as 0).
    pub table_metric: [i64; 2],
    /// `lastTransitionAt` as written, and parsed.
    pub last_transition_raw: Option<String>,
    /// Parsed `lastTransitionAt`.
    pub last_transition_at: Option<DateTime<Utc>>,
    /// Candidates that were ready, in status order, with their
    /// `readySince` as written and parsed.
    pub ready: Vec<PrevReady>,
    /// Weighted-ECMP members (`None` when the key is absent).
    pub members: Option<Vec<Member>>,
    /// Target states of the candidate entries that have them, in status
    /// order (read with the candidate entries only).
    pub targets: Vec<PrevTargets>,
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

impl Previous {
    /// Reads a previous status (tolerating any shape: it may come from a
    /// hand-edited snapshot or from routerd itself).
    pub fn read(status: Option<&Status>) -> Previous {
        Self::read_with(status, true)
    }

    /// Reads the previous status; `candidates: false` skips the candidate
    /// entries (when their state is known from a cache).
    pub fn read_with(status: Option<&Status>, candidates: bool) -> Previous {
        let Some(s) = status else {
            return Previous::default();
        };
        let get = |k: &str| s.get(k).map(str_of);
        let last_transition_raw = get("lastTransitionAt");
        let last_transition_at = last_transition_raw.as_deref().and_then(parse_rfc3339);
        let mut ready = Vec::new();
        let mut targets = Vec::new();
        if let (true, Some(Value::Array(cs))) = (candidates, s.get("candidates")) {
            for c in cs {
                if let (Some(Value::Array(ts)), Some(name)) =
                    (c.get("targetStates"), c.get("name").and_then(Value::as_str))
                {
                    let flag =
                        |t: &Value, k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
                    targets.push(PrevTargets {
                        name: name.to_string(),
                        states: ts
                            .iter()
                            .map(|t| PrevTarget {
                                ready: flag(t, "ready"),
                                since: t
                                    .get("readySince")
                                    .and_then(Value::as_str)
                                    .and_then(parse_rfc3339),
                                in_use: flag(t, "inUse"),
                            })
                            .collect(),
                    });
                }
                let is_ready = c.get("ready").and_then(Value::as_bool).unwrap_or(false);
                if let (true, Some(name)) = (is_ready, c.get("name").and_then(Value::as_str)) {
                    let raw = c.get("readySince").and_then(Value::as_str).unwrap_or("");
                    ready.push(PrevReady {
                        name: name.to_string(),
                        since_raw: raw.to_string(),
                        since: parse_rfc3339(raw),
                    });
                }
            }
        }
        let members = match s.get("members") {
            Some(Value::Array(ms)) => Some(
                ms.iter()
                    .map(|m| Member {
                        name: m.get("name").map(str_of).unwrap_or_default(),
                        device: m.get("device").map(str_of).unwrap_or_default(),
                        gateway: m.get("gateway").map(str_of).unwrap_or_default(),
                        weight: int_of(m.get("weight")),
                    })
                    .collect(),
            ),
            _ => None,
        };
        Previous {
            exists: true,
            phase: crate::observe::intern_phase(
                s.get("phase").and_then(Value::as_str).unwrap_or(""),
            ),
            selected: [
                get("selectedCandidate"),
                get("selectedDevice"),
                get("selectedGateway"),
                get("selectedGatewaySource"),
            ],
            table_metric: [
                int_of(s.get("selectedRouteTable")),
                int_of(s.get("selectedMetric")),
            ],
            last_transition_raw,
            last_transition_at,
            ready,
            members,
            targets,
        }
    }

    /// The previous target states of candidate `name` (expected near `hint`).
    pub fn targets_of(&self, name: &str, hint: usize) -> Option<&[PrevTarget]> {
        match self.targets.get(hint) {
            Some(t) if t.name == name => Some(&t.states),
            _ => self
                .targets
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.states.as_slice()),
        }
    }

    /// The previous ready entry of candidate `name` (expected near `hint`).
    pub fn ready_entry(&self, name: &str, hint: usize) -> Option<&PrevReady> {
        match self.ready.get(hint) {
            Some(r) if r.name == name => Some(r),
            _ => self.ready.iter().find(|r| r.name == name),
        }
    }

    /// The previously selected candidate, when there was one.
    pub fn selected_candidate(&self) -> Option<&str> {
        self.selected[0].as_deref().filter(|s| !s.is_empty())
    }
}

/// Which status shape a policy gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `mode` omitted.
    Advisory,
    /// `priority`, `mark`, `hash`.
    PolicyRoute,
}

/// Writes a status in place, touching only what differs.
///
/// Rebuilding a status map for every evaluation allocates every key and
/// value again and then compares the whole map with the previous one;
/// patching the previous map compares field by field and allocates only for
/// real changes, which is what keeps a no-op reconcile (and the unaffected
/// fields of an affected policy) cheap.
pub(crate) struct Patch<'m> {
    m: &'m mut Status,
    pub(crate) changed: bool,
    /// Keys written so far; when the map holds no more keys than that,
    /// nothing stale can be left and `retain` has nothing to do.
    written: usize,
}

impl<'m> Patch<'m> {
    pub(crate) fn new(m: &'m mut Status) -> Self {
        Patch {
            m,
            changed: false,
            written: 0,
        }
    }

    pub(crate) fn is_bool(&self, k: &str, v: bool) -> bool {
        self.m.get(k) == Some(&Value::Bool(v))
    }

    pub(crate) fn has(&self, k: &str) -> bool {
        self.m.contains_key(k)
    }

    fn slot(&mut self, k: &str) -> Option<&mut Value> {
        self.written += 1;
        self.m.get_mut(k)
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) {
        match self.slot(k) {
            Some(Value::String(s)) if s == v => {}
            Some(slot) => {
                *slot = Value::String(v.to_string());
                self.changed = true;
            }
            None => {
                self.m.insert(k.to_string(), Value::String(v.to_string()));
                self.changed = true;
            }
        }
    }

    /// Writes an RFC 3339 time unless the stored text already means it
    /// (`known` is text already known to mean `t`, compared without parsing).
    pub(crate) fn time(&mut self, k: &str, t: DateTime<Utc>, known: Option<&str>) {
        let same = matches!(self.slot(k), Some(Value::String(s))
            if known == Some(s.as_str()) || parse_rfc3339(s) == Some(t));
        if !same {
            self.m
                .insert(k.to_string(), Value::String(format_rfc3339_nano(t)));
            self.changed = true;
        }
    }

    pub(crate) fn int(&mut self, k: &str, v: i64) {
        match self.slot(k) {
            Some(Value::Number(n)) if n.as_i64() == Some(v) => {}
            Some(slot) => {
                *slot = Value::from(v);
                self.changed = true;
            }
            None => {
                self.m.insert(k.to_string(), Value::from(v));
                self.changed = true;
            }
        }
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        match self.slot(k) {
            Some(Value::Bool(b)) if *b == v => {}
            Some(slot) => {
                *slot = Value::Bool(v);
                self.changed = true;
            }
            None => {
                self.m.insert(k.to_string(), Value::Bool(v));
                self.changed = true;
            }
        }
    }

    pub(crate) fn strs(&mut self, k: &str, v: &[&str]) {
        let same = matches!(self.slot(k), Some(Value::Array(a))
            if a.len() == v.len() && a.iter().zip(v).all(|(x, y)| x.as_str() == Some(*y)));
        if !same {
            let arr = v.iter().map(|s| Value::String((*s).to_string())).collect();
            self.m.insert(k.to_string(), Value::Array(arr));
            self.changed = true;
        }
    }

    /// Drops key `k`, keeping the order of the others.
    pub(crate) fn remove(&mut self, k: &str) {
        if self.m.contains_key(k) {
            self.m.retain(|x, _| x != k);
            self.changed = true;
        }
    }

    /// Drops every key `keep` rejects (which must accept every key written).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        if self.m.len() <= self.written {
            return;
        }
        let before = self.m.len();
        self.m.retain(|k, _| keep(k));
        if self.m.len() != before {
            self.changed = true;
        }
    }

    /// Makes `k` an array of `n` objects and patches each with `f`.
    pub(crate) fn objects(&mut self, k: &str, n: usize, mut f: impl FnMut(usize, &mut Patch<'_>)) {
        self.objects_only(k, n, None, |i, p, _| f(i, p));
    }

    /// Like [`Patch::objects`], but when the array already has the right
    /// shape only the entries `only` marks are visited (the others are known
    /// to be current). `f` learns whether the visit is such a selective one,
    /// where the entry still holds what the last evaluation wrote.
    pub(crate) fn objects_only(
        &mut self,
        k: &str,
        n: usize,
        only: Option<&[bool]>,
        mut f: impl FnMut(usize, &mut Patch<'_>, bool),
    ) {
        self.written += 1;
        if let Some(Value::Array(a)) = self.m.get_mut(k)
            && a.len() == n
            && a.iter().all(Value::is_object)
        {
            self.changed |= visit_objects(a, only, &mut f);
            return;
        }
        let arr = (0..n).map(|_| Value::Object(Status::new())).collect();
        self.m.insert(k.to_string(), Value::Array(arr));
        self.changed = true;
        if let Some(Value::Array(a)) = self.m.get_mut(k) {
            visit_objects(a, None, &mut f);
        }
    }
}

/// Patches the objects of `a` (only those `only` marks, when given);
/// returns whether any changed.
fn visit_objects(
    a: &mut [Value],
    only: Option<&[bool]>,
    f: &mut impl FnMut(usize, &mut Patch<'_>, bool),
) -> bool {
    let mut changed = false;
    for (i, v) in a.iter_mut().enumerate() {
        if only.is_some_and(|w| !w.get(i).copied().unwrap_or(true)) {
            continue;
        }
        if let Value::Object(o) = v {
            let mut p = Patch::new(o);
            f(i, &mut p, only.is_some());
            changed |= p.changed;
        }
    }
    changed
}

pub(crate) fn patch_destination_cidrs(
    p: &mut Patch<'_>,
    spec: &routerd_model::spec::EgressRoutePolicySpec,
) {
    if spec.destination_cidrs.is_empty() {
        let all = if spec.family() == "ipv6" {
            "::/0"
        } else {
            "0.0.0.0/0"
        };
        p.strs("destinationCIDRs", &[all]);
    } else {
        let v: Vec<&str> = spec.destination_cidrs.iter().map(String::as_str).collect();
        p.strs("destinationCIDRs", &v);
    }
}

const ADVISORY_CANDIDATE_KEYS: &[&str] = &[
    "name",
    "source",
    "device",
    "gateway",
    "gatewaySource",
    "routeTable",
    "metric",
    "weight",
    "ready",
    "disabled",
    "readySince",
];
const POLICY_ROUTE_CANDIDATE_KEYS: &[&str] = &[
    "name",
    "source",
    "device",
    "gateway",
    "gatewaySource",
    "routeTable",
    "metric",
    "weight",
    "priority",
    "targets",
    "ready",
    "pathReady",
    "disabled",
    "readySince",
    "targetStates",
];

/// What a candidate entry says about its targets beyond the assessment:
/// their `readySince` clocks and whether new flows are hashed onto them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TargetsOut<'x> {
    pub(crate) since: &'x [Option<DateTime<Utc>>],
    pub(crate) in_use: &'x [bool],
}

fn patch_targets(p: &mut Patch<'_>, a: &Assessment, t: TargetsOut<'_>) {
    p.objects("targetStates", a.target_states.len(), |j, e| {
        let Some(ts) = a.target_states.get(j) else {
            return;
        };
        e.str("name", &ts.name);
        e.bool("ready", ts.ready);
        e.bool("pathReady", ts.path_ready);
        e.bool("inUse", t.in_use.get(j).copied().unwrap_or(false));
        let since = t.since.get(j).copied().flatten();
        if let Some(at) = since {
            e.time("readySince", at, None);
        }
        e.retain(|k| {
            matches!(k, "name" | "ready" | "pathReady" | "inUse")
                || (k == "readySince" && since.is_some())
        });
    });
}

pub(crate) fn patch_candidate(
    p: &mut Patch<'_>,
    a: &Assessment,
    shape: Shape,
    ready_since: Option<DateTime<Utc>>,
    known: Option<&str>,
    targets: TargetsOut<'_>,
) {
    let s = &a.state;
    let with_device = shape == Shape::Advisory || a.targets == 0;
    p.str("name", &s.name);
    p.str("source", &s.source);
    if with_device {
        p.str("device", &s.device);
    }
    p.str("gateway", &s.gateway);
    p.str("gatewaySource", &s.gateway_source);
    p.int("routeTable", s.route_table);
    p.int("metric", s.metric);
    p.int("weight", s.weight);
    if shape == Shape::PolicyRoute {
        p.int("priority", s.priority);
        p.int("targets", i64::try_from(a.targets).unwrap_or(i64::MAX));
    }
    p.bool("ready", s.ready);
    let policy_route = shape == Shape::PolicyRoute;
    if policy_route {
        p.bool("pathReady", a.path_ready);
    }
    p.bool("disabled", s.disabled);
    if let Some(t) = ready_since {
        p.time("readySince", t, known);
    }
    let with_targets = policy_route && a.targets > 0;
    if with_targets {
        patch_targets(p, a, targets);
    }
    let keys = match shape {
        Shape::Advisory => ADVISORY_CANDIDATE_KEYS,
        Shape::PolicyRoute => POLICY_ROUTE_CANDIDATE_KEYS,
    };
    let has_since = ready_since.is_some();
    p.retain(|k| {
        keys.contains(&k)
            && (k != "readySince" || has_since)
            && (k != "device" || with_device)
            && (k != "targetStates" || with_targets)
    });
}

/// Patches a candidate entry known to have been written by
/// [`patch_candidate`] before `a` was re-assessed (`before` says what it
/// was written from), comparing typed values instead of the map: a health
/// flip moves one or two fields, and looking every key up in the map was
/// most of the cost of a warm evaluation. Returns `false`, having written
/// nothing, when the set of keys would change; the caller then patches the
/// entry in full.
pub(crate) fn patch_candidate_delta(
    p: &mut Patch<'_>,
    before: &Before,
    old_since: Option<DateTime<Utc>>,
    a: &Assessment,
    ready_since: Option<DateTime<Utc>>,
    shape: Shape,
) -> bool {
    // Target candidates are rare; their nested entries are patched in full.
    if before.targets != a.targets || a.targets > 0 {
        return false;
    }
    let s = &a.state;
    let [name, source, device, gateway, gateway_source] = before.moved;
    let with_device = shape == Shape::Advisory || a.targets == 0;
    if name {
        p.str("name", &s.name);
    }
    if source {
        p.str("source", &s.source);
    }
    if with_device && device {
        p.str("device", &s.device);
    }
    if gateway {
        p.str("gateway", &s.gateway);
    }
    if gateway_source {
        p.str("gatewaySource", &s.gateway_source);
    }
    if before.route_table != s.route_table {
        p.int("routeTable", s.route_table);
    }
    if before.metric != s.metric {
        p.int("metric", s.metric);
    }
    if before.weight != s.weight {
        p.int("weight", s.weight);
    }
    if shape == Shape::PolicyRoute && before.priority != s.priority {
        p.int("priority", s.priority);
    }
    if before.ready != s.ready {
        p.bool("ready", s.ready);
    }
    if shape == Shape::PolicyRoute && before.path_ready != a.path_ready {
        p.bool("pathReady", a.path_ready);
    }
    if before.disabled != s.disabled {
        p.bool("disabled", s.disabled);
    }
    match ready_since {
        Some(t) if old_since != Some(t) => p.time("readySince", t, None),
        Some(_) => {}
        None => p.remove("readySince"),
    }
    true
}

pub(crate) fn patch_members(p: &mut Patch<'_>, members: &[Member]) {
    p.objects("members", members.len(), |i, e| {
        if let Some(m) = members.get(i) {
            e.str("name", &m.name);
            e.str("device", &m.device);
            e.str("gateway", &m.gateway);
            e.int("weight", m.weight);
            e.retain(|k| matches!(k, "name" | "device" | "gateway" | "weight"));
        }
    });
}
