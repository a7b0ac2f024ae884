//! One dynamic part: its input form, and the checks that depend only on the
//! part itself and startup (so they run once per part, not once per merge).

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_model::spec::{Directive, DynamicConfigPartSpec};
use routerd_model::validate::{Context, NameIndex, references, status_refs, validate_one};
use routerd_model::{Kind, Resource, Spec};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::MergeError;
use crate::startup::{Startup, to_u32};
use crate::strings::for_each_str;

/// A DynamicConfigPart as the merge consumes it: its name (the key the
/// incremental API replaces and removes by) and its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// `metadata.name`; unique among the parts given to one merge.
    pub name: String,
    /// The part's content.
    pub spec: DynamicConfigPartSpec,
}

impl Part {
    /// A part named `name`. An empty name becomes `<source>-<generation>`,
    /// the name routerd gives parts decoded from its database.
    pub fn new(name: impl Into<String>, spec: DynamicConfigPartSpec) -> Part {
        let mut name = name.into();
        if name.is_empty() {
            name = format!("{}-{}", spec.source, spec.generation);
        }
        Part { name, spec }
    }

    /// Takes a `DynamicConfigPart` resource apart.
    pub fn from_resource(r: Resource) -> Result<Part, MergeError> {
        let id = r.id().to_string();
        match r.spec {
            Spec::DynamicConfigPart(spec) => Ok(Part::new(r.metadata.name, *spec)),
            _ => Err(MergeError::NotAPart(id)),
        }
    }

    /// Lowercase hex SHA-256 of the JSON object `{"resources": [...],
    /// "directives": [...]}`, as routerd's plugin path computes it. Used as
    /// provenance when a part carries no digest of its own.
    pub fn computed_digest(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            resources: &'a [Resource],
            directives: &'a [Directive],
        }
        let body = Body {
            resources: &self.spec.resources,
            directives: &self.spec.directives,
        };
        // Serializing typed resources to a Vec cannot fail (no non-string
        // map keys); an empty digest would only weaken provenance.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Whether the part has expired at `now` (`expiresAt <= now`; a part
    /// without `expiresAt` never expires).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.spec.is_expired(now)
    }
}

/// A part plus what the merge derives from it once.
#[derive(Debug)]
pub(crate) struct PartData {
    pub(crate) name: String,
    pub(crate) source: Arc<str>,
    pub(crate) digest: String,
    pub(crate) spec: DynamicConfigPartSpec,
}

impl PartData {
    pub(crate) fn new(part: Part) -> PartData {
        let digest = match part.spec.digest.as_deref() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => part.computed_digest(),
        };
        PartData {
            source: Arc::from(part.spec.source.as_str()),
            name: part.name,
            digest,
            spec: part.spec,
        }
    }

    pub(crate) fn resource(&self, i: u32) -> Option<&Resource> {
        self.spec.resources.get(i as usize)
    }

    /// The generation tiebreak key: newest generation, then latest
    /// observation, then name, so two rows of one generation still pick one.
    pub(crate) fn recency(&self) -> (i64, Option<DateTime<Utc>>, &str) {
        (self.spec.generation, self.spec.observed_at, &self.name)
    }
}

/// A shared, pre-hashed resource id: the indexes, the effective map and
/// the change tracker all key by the same allocation.
pub(crate) type Id = crate::id::SharedId;

/// One mask a part applies.
#[derive(Debug)]
pub(crate) struct Mask {
    pub(crate) target: Id,
    pub(crate) pos: u32,
    pub(crate) reasons: Vec<String>,
}

/// What a part adds, masks and depends on, once its own checks passed.
#[derive(Debug, Default)]
pub(crate) struct Contribution {
    /// Added resources, sorted by id, with their index in the part.
    pub(crate) resources: Vec<(Id, u32)>,
    /// Masks, sorted by target.
    pub(crate) masks: Vec<Mask>,
    /// Startup resources the part's resources reference, sorted by target,
    /// with the (smallest) referencing resource.
    pub(crate) refs: Vec<(Id, Id)>,
}

fn forbidden_kind(k: Kind) -> bool {
    // Permissions come from startup only, parts do not nest, and wire
    // objects are not configuration.
    matches!(
        k,
        Kind::DynamicOverridePolicy
            | Kind::DynamicConfigPart
            | Kind::PluginRequest
            | Kind::PluginResult
    )
}

/// The checks of one part against startup and itself. The first failure is
/// the part's rejection reason; the order (directives, then resources, then
/// validation, then what the masks break) is fixed so the reason is too.
pub(crate) fn evaluate(startup: &Startup, data: &PartData) -> Result<Contribution, String> {
    let src = &*data.source;
    let spec = &data.spec;
    if src.trim().is_empty() {
        return Err(format!(
            "dynamic part source is required: part=\"{}\"",
            data.name
        ));
    }
    if src.starts_with("MobilityPool/") {
        return Err(format!(
            "MobilityPool sources are not merged into the generic effective config: source=\"{src}\""
        ));
    }
    let own = &spec.resources;
    let mut resources: Vec<(Id, u32)> = own
        .iter()
        .enumerate()
        .map(|(i, r)| (Id::new(r.id()), to_u32(i)))
        .collect();
    resources.sort();

    let mut masks: Vec<Mask> = Vec::new();
    for d in &spec.directives {
        if d.op != "mask" {
            return Err(format!(
                "unsupported dynamic directive op \"{}\" from source \"{src}\"",
                d.op
            ));
        }
        let tid = d.target.id();
        if !startup.allows_mask(src, &tid) {
            return Err(format!(
                "dynamic mask not allowed by DynamicOverridePolicy: source=\"{src}\" target={}",
                d.target
            ));
        }
        if resources
            .binary_search_by(|(id, _)| (**id).cmp(&tid))
            .is_ok()
        {
            return Err(format!(
                "mask target names a dynamic resource: source=\"{src}\" target={}",
                d.target
            ));
        }
        let Some(pos) = startup.position(&tid) else {
            return Err(format!(
                "mask target not found: source=\"{src}\" target={}",
                d.target
            ));
        };
        let reason = d.reason.as_deref().map(str::trim).unwrap_or("");
        match masks.iter_mut().find(|m| m.pos == pos) {
            Some(m) => {
                if !reason.is_empty() {
                    m.reasons.push(reason.to_string());
                }
            }
            None => masks.push(Mask {
                target: Id::new(tid),
                pos,
                reasons: if reason.is_empty() {
                    Vec::new()
                } else {
                    vec![reason.to_string()]
                },
            }),
        }
    }
    masks.sort_by(|a, b| a.target.cmp(&b.target));

    for (id, i) in &resources {
        let k = own.get(*i as usize).map(Resource::kind);
        if let Some(k) = k.filter(|k| forbidden_kind(*k)) {
            return Err(format!(
                "dynamic resource kind {k} is not allowed in a dynamic part: source=\"{src}\" resource={id}"
            ));
        }
        if startup.contains(id) {
            return Err(format!(
                "dynamic resource conflicts with startup resource: source=\"{src}\" resource={id}"
            ));
        }
    }
    if let Some(w) = resources.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate resource {}: source=\"{src}\"", w[0].0));
    }

    let masked: FxHashSet<u32> = masks.iter().map(|m| m.pos).collect();
    validate_own(startup, own, &masked, src)?;
    check_masks(startup, own, &masks, &masked, src)?;
    check_lowering(startup, own, &masked, src)?;

    let mut refs: Vec<(Id, Id)> = Vec::new();
    for (rid, i) in &resources {
        let Some(r) = own.get(*i as usize) else {
            continue;
        };
        let mut push = |kind: Kind, name: &str| {
            if let Some(p) = startup.position_of_kind(kind, name)
                && let Some(t) = startup.get(p)
            {
                refs.push((Id::new(t.id()), rid.clone()));
            }
        };
        for rf in references(r) {
            for k in rf.kinds {
                push(*k, &rf.name);
            }
        }
        for (_, sr) in status_refs(r) {
            if let Some((k, n)) = routerd_model::id::split_kind_name(sr.resource().trim())
                && let Some(kind) = Kind::parse(k)
            {
                push(kind, n);
            }
        }
    }
    refs.sort();
    refs.dedup_by(|b, a| a.0 == b.0);
    Ok(Contribution {
        resources,
        masks,
        refs,
    })
}

/// Startup positions of every startup resource whose name appears as a
/// string in `items` (a superset of what their validators can look up),
/// minus `masked`.
fn startup_names<'s>(
    startup: &Startup,
    items: impl Iterator<Item = &'s Resource>,
    masked: &FxHashSet<u32>,
) -> Vec<u32> {
    let mut found: FxHashSet<u32> = FxHashSet::default();
    for r in items {
        for_each_str(r, &mut |s| {
            let t = s.trim();
            let mut look = |name: &str| {
                for p in startup.named(name) {
                    if !masked.contains(&p) {
                        found.insert(p);
                    }
                }
            };
            look(t);
            if let Some((_, n)) = t.split_once('/') {
                look(n.trim());
            }
        });
    }
    let mut v: Vec<u32> = found.into_iter().collect();
    v.sort_unstable();
    v
}

/// A name index over `own` plus the given startup positions, and the slice
/// its positions point into. Only RemoteAddressClaim validation reads
/// resources through positions, so the startup entries are copied into the
/// slice only when one is being validated.
fn mini_index<'a>(
    startup: &'a Startup,
    own: &'a [Resource],
    names: &[u32],
    need_slice: bool,
) -> (NameIndex<'a>, Cow<'a, [Resource]>) {
    let mut idx = NameIndex::default();
    for (i, r) in own.iter().enumerate() {
        idx.insert(r.kind(), r.name(), i);
    }
    let mut extra: Vec<Resource> = Vec::new();
    for (j, p) in names.iter().enumerate() {
        if let Some(r) = startup.get(*p) {
            idx.insert(r.kind(), r.name(), own.len() + j);
            if need_slice {
                extra.push(r.clone());
            }
        }
    }
    let slice = if need_slice {
        let mut all = own.to_vec();
        all.extend(extra);
        Cow::Owned(all)
    } else {
        Cow::Borrowed(own)
    };
    (idx, slice)
}

fn errors_of(
    r: &Resource,
    idx: &NameIndex<'_>,
    slice: &[Resource],
    buf: &mut Vec<routerd_model::Diagnostic>,
) -> Option<String> {
    buf.clear();
    validate_one(r, idx, slice, Context::Effective, buf);
    let msgs: Vec<&str> = buf
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.as_str())
        .collect();
    if msgs.is_empty() {
        None
    } else {
        Some(msgs.join("; "))
    }
}

/// Validates the part's resources against startup (less the part's own
/// masks) and the part itself: a part is self-contained, it may not lean on
/// another source's resources, which may expire or be rejected on their own.
fn validate_own(
    startup: &Startup,
    own: &[Resource],
    masked: &FxHashSet<u32>,
    src: &str,
) -> Result<(), String> {
    if own.is_empty() {
        return Ok(());
    }
    let names = startup_names(startup, own.iter(), masked);
    let need_slice = own.iter().any(|r| r.kind() == Kind::RemoteAddressClaim);
    let (idx, slice) = mini_index(startup, own, &names, need_slice);
    let mut buf = Vec::new();
    for r in own {
        if let Some(msg) = errors_of(r, &idx, &slice, &mut buf) {
            return Err(format!(
                "dynamic resource is invalid: source=\"{src}\" resource={}: {msg}",
                r.id()
            ));
        }
    }
    Ok(())
}

/// A mask must not leave a startup resource with a dangling reference (the
/// effective config would fail validation). Startup resources the same part
/// masks are exempt; masks of other parts are not counted, so the answer
/// does not depend on which other parts exist.
fn check_masks(
    startup: &Startup,
    own: &[Resource],
    masks: &[Mask],
    masked: &FxHashSet<u32>,
    src: &str,
) -> Result<(), String> {
    let mut affected: Vec<(u32, &Id)> = Vec::new();
    for m in masks {
        for &rp in startup.referrers(m.pos) {
            if !masked.contains(&rp) {
                affected.push((rp, &m.target));
            }
        }
    }
    if affected.is_empty() {
        return Ok(());
    }
    let referrers: Vec<&Resource> = affected
        .iter()
        .filter_map(|(p, _)| startup.get(*p))
        .collect();
    let names = startup_names(startup, referrers.iter().copied(), masked);
    let need_slice = referrers
        .iter()
        .any(|r| r.kind() == Kind::RemoteAddressClaim);
    let (idx, slice) = mini_index(startup, own, &names, need_slice);
    let mut buf = Vec::new();
    let mut verdicts: FxHashMap<u32, Option<String>> = FxHashMap::default();
    for (rp, target) in affected {
        let Some(r) = startup.get(rp) else { continue };
        let verdict = verdicts
            .entry(rp)
            .or_insert_with(|| errors_of(r, &idx, &slice, &mut buf));
        if let Some(msg) = verdict {
            return Err(format!(
                "dynamic mask would break startup resource: source=\"{src}\" target={target} referencedBy={}: {msg}",
                r.id()
            ));
        }
    }
    Ok(())
}

/// A part whose HybridRoute would lower onto a startup route (or whose
/// IPv4Route would sit where a startup HybridRoute lowers) is rejected
/// alone with routerd's collision message (§1.8), instead of the effective
/// config failing validation. Startup routes the part masks do not count:
/// masking the static route a HybridRoute replaces is the seed's
/// "selective suppression of static fallback resources".
fn check_lowering(
    startup: &Startup,
    own: &[Resource],
    masked: &FxHashSet<u32>,
    src: &str,
) -> Result<(), String> {
    if !own
        .iter()
        .any(|r| matches!(r.kind(), Kind::HybridRoute | Kind::IPv4Route))
    {
        return Ok(());
    }
    let relevant = |k: Kind| {
        matches!(
            k,
            Kind::HybridRoute | Kind::IPv4Route | Kind::OverlayPeer | Kind::TunnelInterface
        )
    };
    let view: Vec<&Resource> = startup
        .order()
        .iter()
        .filter(|p| !masked.contains(p))
        .filter_map(|p| startup.get(*p))
        .filter(|r| relevant(r.kind()))
        .chain(own.iter())
        .collect();
    let ids: FxHashSet<routerd_model::ResourceId> = own.iter().map(Resource::id).collect();
    let lowering = routerd_model::lower::lower(view);
    if let Some(p) = lowering.problems().find(|p| {
        p.collision
            && (ids.contains(&p.hybrid_route) || p.other.as_ref().is_some_and(|o| ids.contains(o)))
    }) {
        return Err(format!(
            "dynamic resource collides with a lowered route: source=\"{src}\": {}",
            p.message
        ));
    }
    Ok(())
}
