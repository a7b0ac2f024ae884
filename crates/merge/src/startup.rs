//! The operator's startup configuration, indexed once and shared.
//!
//! Every merge result points into one `Arc<Startup>`: a part arriving or
//! expiring never copies the 100k startup resources, and the indexes here
//! (names, who-references-whom, mask permissions) are built once per startup
//! change instead of once per merge.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use routerd_model::validate::{references, status_refs};
use routerd_model::{Kind, ObjectRef, Resource, ResourceId};
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

/// Indexed startup resources. Build it from configuration that already
/// passed startup validation: the merge trusts startup to be consistent and
/// only checks what dynamic parts change.
#[derive(Debug)]
pub struct Startup {
    /// As given; never moved (resources are large, sorting them would copy
    /// megabytes).
    resources: Vec<Resource>,
    /// Positions in id order, duplicates removed.
    order: Vec<u32>,
    by_name: HashTable<u32>,
    referrers: FxHashMap<u32, Vec<u32>>,
    policies: FxHashMap<String, FxHashSet<ResourceId>>,
}

pub(crate) fn name_hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

pub(crate) fn cmp_resources(a: &Resource, b: &Resource) -> Ordering {
    (a.api_version.as_str(), a.kind().as_str(), a.name()).cmp(&(
        b.api_version.as_str(),
        b.kind().as_str(),
        b.name(),
    ))
}

pub(crate) fn cmp_resource_id(r: &Resource, id: &ResourceId) -> Ordering {
    (r.api_version.as_str(), r.kind().as_str(), r.name()).cmp(&(
        id.api_version.as_str(),
        id.kind.as_str(),
        id.name.as_str(),
    ))
}

impl Startup {
    /// Indexes `resources`. Duplicate identities (which validation reports)
    /// keep the first occurrence so the result never depends on a crash.
    pub fn new(resources: Vec<Resource>) -> Startup {
        let mut order: Vec<u32> = (0..resources.len()).map(to_u32).collect();
        let at = |p: &u32| resources.get(*p as usize);
        let cmp = |a: &u32, b: &u32| match (at(a), at(b)) {
            (Some(x), Some(y)) => cmp_resources(x, y),
            _ => a.cmp(b),
        };
        // Stable: among duplicates the first written wins. Already sorted
        // input (generated config) costs one linear pass.
        order.sort_by(cmp);
        order.dedup_by(|b, a| cmp(a, b) == Ordering::Equal);
        let mut by_name = HashTable::with_capacity(order.len());
        for &pos in &order {
            if let Some(r) = at(&pos) {
                by_name.insert_unique(name_hash(r.name()), pos, |p: &u32| {
                    at(p).map_or(0, |r: &Resource| name_hash(r.name()))
                });
            }
        }
        let mut s = Startup {
            resources,
            order,
            by_name,
            referrers: FxHashMap::default(),
            policies: FxHashMap::default(),
        };
        s.index_references();
        s.index_policies();
        s
    }

    fn index_references(&mut self) {
        let mut referrers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for &from in &self.order {
            let Some(r) = self.get(from) else { continue };
            let refs = references(r);
            let srefs = status_refs(r);
            if refs.is_empty() && srefs.is_empty() {
                continue;
            }
            let mut targets: Vec<u32> = Vec::new();
            for rf in &refs {
                for k in rf.kinds {
                    targets.extend(self.position_of_kind(*k, &rf.name));
                }
            }
            for (_, sr) in &srefs {
                if let Some((k, n)) = routerd_model::id::split_kind_name(sr.resource().trim())
                    && let Some(kind) = Kind::parse(k)
                {
                    targets.extend(self.position_of_kind(kind, n));
                }
            }
            targets.sort_unstable();
            targets.dedup();
            for t in targets {
                if t != from {
                    referrers.entry(t).or_default().push(from);
                }
            }
        }
        self.referrers = referrers;
    }

    fn index_policies(&mut self) {
        let mut policies: FxHashMap<String, FxHashSet<ResourceId>> = FxHashMap::default();
        for r in self.iter() {
            let Some(p) = r.as_override_policy() else {
                continue;
            };
            for rule in &p.allow {
                if !rule.operations.iter().any(|o| o == "mask") {
                    continue;
                }
                let set = policies.entry(rule.source.clone()).or_default();
                set.extend(rule.targets.iter().map(ObjectRef::id));
            }
        }
        self.policies = policies;
    }

    /// Startup resources sorted by id (duplicates dropped).
    pub fn iter(&self) -> impl Iterator<Item = &Resource> + '_ {
        self.order.iter().filter_map(|p| self.get(*p))
    }

    /// Positions in id order.
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    /// Number of startup resources (duplicates dropped).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no startup resources.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of positions (the size of per-position tables).
    pub(crate) fn positions(&self) -> usize {
        self.resources.len()
    }

    pub(crate) fn get(&self, pos: u32) -> Option<&Resource> {
        self.resources.get(pos as usize)
    }

    /// Positions of every startup resource called `name` (any kind).
    pub(crate) fn named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = u32> + 's {
        self.by_name
            .iter_hash(name_hash(name))
            .copied()
            .filter(move |p| self.get(*p).is_some_and(|r| r.name() == name))
    }

    pub(crate) fn position_of_kind(&self, kind: Kind, name: &str) -> Option<u32> {
        self.named(name)
            .find(|p| self.get(*p).is_some_and(|r| r.kind() == kind))
    }

    /// Position of the resource with identity `id`.
    pub(crate) fn position(&self, id: &ResourceId) -> Option<u32> {
        self.named(&id.name).find(|p| {
            self.get(*p)
                .is_some_and(|r| cmp_resource_id(r, id) == Ordering::Equal)
        })
    }

    /// Whether startup has a resource with identity `id`.
    pub fn contains(&self, id: &ResourceId) -> bool {
        self.position(id).is_some()
    }

    /// Startup resources whose references name the resource at `pos`.
    pub(crate) fn referrers(&self, pos: u32) -> &[u32] {
        self.referrers.get(&pos).map_or(&[], Vec::as_slice)
    }

    /// Whether a DynamicOverridePolicy lets `source` mask `target` (exact
    /// match on apiVersion, kind and name, as routerd's `policyAllowsMask`).
    pub fn allows_mask(&self, source: &str, target: &ResourceId) -> bool {
        self.policies
            .get(source)
            .is_some_and(|set| set.contains(target))
    }
}

/// Positions are u32 to halve index memory; a startup of 4 billion resources
/// is not a configuration anyone can write, so saturating is only a guard.
pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
