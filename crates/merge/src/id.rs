//! Shared, pre-hashed resource ids.
//!
//! One id is looked up in several maps per change (claims, the effective
//! map, the change tracker). Hashing three strings each time and comparing
//! them on every probe was a tenth of the incremental path, so the hash is
//! computed once and equality short-cuts on the shared allocation.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use routerd_model::ResourceId;
use rustc_hash::FxBuildHasher;
use serde::{Serialize, Serializer};

/// A resource id shared between the merge's indexes and change sets.
/// Dereferences to [`ResourceId`].
#[derive(Clone)]
pub struct SharedId(Arc<Keyed>);

struct Keyed {
    hash: u64,
    id: ResourceId,
}

impl SharedId {
    /// Wraps `id`, hashing it once.
    pub fn new(id: ResourceId) -> SharedId {
        let hash = FxBuildHasher.hash_one(&id);
        SharedId(Arc::new(Keyed { hash, id }))
    }
}

impl Deref for SharedId {
    type Target = ResourceId;
    fn deref(&self) -> &ResourceId {
        &self.0.id
    }
}

impl Hash for SharedId {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0.hash);
    }
}

impl PartialEq for SharedId {
    fn eq(&self, o: &SharedId) -> bool {
        Arc::ptr_eq(&self.0, &o.0) || (self.0.hash == o.0.hash && self.0.id == o.0.id)
    }
}

impl Eq for SharedId {}

impl PartialOrd for SharedId {
    fn partial_cmp(&self, o: &SharedId) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for SharedId {
    fn cmp(&self, o: &SharedId) -> Ordering {
        if Arc::ptr_eq(&self.0, &o.0) {
            Ordering::Equal
        } else {
            self.0.id.cmp(&o.0.id)
        }
    }
}

impl PartialEq<ResourceId> for SharedId {
    fn eq(&self, o: &ResourceId) -> bool {
        self.0.id == *o
    }
}

impl fmt::Debug for SharedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.id, f)
    }
}

impl fmt::Display for SharedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.id, f)
    }
}

impl Serialize for SharedId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.id.serialize(s)
    }
}
