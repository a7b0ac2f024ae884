//! The narrow storage port: namespaced keys, atomic batches, flush.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::StoreError;

/// Record families. Each has its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Namespace {
    /// Resource status by id.
    Status,
    /// Dynamic parts by (source, generation).
    Part,
    /// Events by id (a bounded ring).
    Event,
    /// Config generations by number.
    Generation,
    /// Ownership ledger by artifact key.
    Ledger,
    /// Counters and markers.
    Meta,
}

impl Namespace {
    pub(crate) fn prefix(self) -> u8 {
        match self {
            Namespace::Status => b's',
            Namespace::Part => b'p',
            Namespace::Event => b'e',
            Namespace::Generation => b'g',
            Namespace::Ledger => b'l',
            Namespace::Meta => b'm',
        }
    }
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite.
    Put(Namespace, Vec<u8>, Vec<u8>),
    /// Remove (absent keys are fine).
    Delete(Namespace, Vec<u8>),
}

/// Changes applied all-or-nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, ns: Namespace, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.ops.push(Op::Put(ns, key.into(), value));
    }
    /// Adds a delete.
    pub fn delete(&mut self, ns: Namespace, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(ns, key.into()));
    }
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// The operations.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// Key-value pairs returned by a scan, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

type MemMap = BTreeMap<(Namespace, Vec<u8>), Vec<u8>>;

/// A key-value backend. Implementations must apply a batch atomically and
/// make everything applied before `flush` returns survive a crash.
pub trait Backend: Send + Sync {
    /// Reads one value.
    fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// All entries of `ns` whose key starts with `prefix`, in key order.
    fn scan(&self, ns: Namespace, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Applies a batch atomically.
    fn apply(&self, batch: Batch) -> Result<(), StoreError>;
    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// An in-memory backend for tests and embedders that persist elsewhere.
#[derive(Debug, Default)]
pub struct MemBackend {
    map: Mutex<MemMap>,
}

impl MemBackend {
    /// An empty store.
    pub fn new() -> Self {
        MemBackend::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemMap>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Backend("in-memory store lock poisoned".into()))
    }
}

impl Backend for MemBackend {
    fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.get(&(ns, key.to_vec())).cloned())
    }

    fn scan(&self, ns: Namespace, prefix: &[u8]) -> Result<Entries, StoreError> {
        let map = self.lock()?;
        Ok(map
            .range((ns, prefix.to_vec())..)
            .take_while(|((n, k), _)| *n == ns && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        for op in batch.ops {
            match op {
                Op::Put(ns, k, v) => {
                    map.insert((ns, k), v);
                }
                Op::Delete(ns, k) => {
                    map.remove(&(ns, k));
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(feature = "sled")]
pub use sled_backend::SledBackend;

#[cfg(feature = "sled")]
mod sled_backend {
    use super::*;

    /// sled 0.34: one tree, keys prefixed by namespace, batches through
    /// `apply_batch` (atomic), durability at `flush` (deps.md §6: grouped
    /// writes, flush at commit points).
    #[derive(Debug)]
    pub struct SledBackend {
        db: sled::Db,
        tree: sled::Tree,
    }

    impl SledBackend {
        /// Opens (or creates) the database in `dir`. Only one process may
        /// open it at a time; a second open fails with a clear error.
        pub fn open(dir: &std::path::Path) -> Result<Self, StoreError> {
            let db = sled::Config::new()
                .path(dir)
                .flush_every_ms(Some(500))
                // sled's default page cache is 1 GiB; routerd's working set
                // is statuses and a bounded event ring.
                .cache_capacity(4 * 1024 * 1024)
                .open()
                .map_err(|e| {
                    StoreError::Backend(format!("open state store {}: {e}", dir.display()))
                })?;
            let tree = db
                .open_tree("routerd")
                .map_err(|e| StoreError::Backend(format!("open tree: {e}")))?;
            Ok(SledBackend { db, tree })
        }

        /// Bytes on disk (for metrics).
        pub fn size_on_disk(&self) -> u64 {
            self.db.size_on_disk().unwrap_or(0)
        }
    }

    fn full_key(ns: Namespace, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 1);
        k.push(ns.prefix());
        k.extend_from_slice(key);
        k
    }

    fn err(e: sled::Error) -> StoreError {
        StoreError::Backend(e.to_string())
    }

    impl Backend for SledBackend {
        fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self
                .tree
                .get(full_key(ns, key))
                .map_err(err)?
                .map(|v| v.to_vec()))
        }

        fn scan(&self, ns: Namespace, prefix: &[u8]) -> Result<Entries, StoreError> {
            self.tree
                .scan_prefix(full_key(ns, prefix))
                .map(|r| r.map(|(k, v)| (k[1..].to_vec(), v.to_vec())).map_err(err))
                .collect()
        }

        fn apply(&self, batch: Batch) -> Result<(), StoreError> {
            let mut b = sled::Batch::default();
            for op in batch.ops {
                match op {
                    Op::Put(ns, k, v) => b.insert(full_key(ns, &k), v),
                    Op::Delete(ns, k) => b.remove(full_key(ns, &k)),
                }
            }
            self.tree.apply_batch(b).map_err(err)
        }

        fn flush(&self) -> Result<(), StoreError> {
            self.tree.flush().map(|_| ()).map_err(err)
        }
    }
}
