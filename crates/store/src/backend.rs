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
    /// Configuration texts by digest, in pieces.
    Config,
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
            Namespace::Config => b'c',
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
    /// The keys of `ns` that start with `prefix`, in key order. Lets callers
    /// walk large records (configuration generations) without copying every
    /// value; backends that can should override the default.
    fn keys(&self, ns: Namespace, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.scan(ns, prefix)?.into_iter().map(|(k, _)| k).collect())
    }
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
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::open::{OpenError, OpenFailure, contain};

    /// Key (outside every namespace prefix) of the count of batches applied
    /// over the store's life; written inside each batch, so it is exactly as
    /// durable as the data.
    const BATCHES_KEY: &[u8] = b"#batches";
    /// File next to sled's own files recording how many batches a flush
    /// made durable. sled recovers a truncated or overwritten log silently
    /// to an older (often empty) state; comparing the two exposes it.
    const MARK_FILE: &str = "routerd-store.json";
    /// Layout of the keys in the tree; bumped when it changes.
    const STORE_FORMAT: u32 = 1;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mark {
        format: u32,
        durable_batches: u64,
    }

    /// sled 0.34: one tree, keys prefixed by namespace, batches through
    /// `apply_batch` (atomic), durability at `flush` (deps.md §6: grouped
    /// writes, flush at commit points).
    #[derive(Debug)]
    pub struct SledBackend {
        db: sled::Db,
        tree: sled::Tree,
        dir: PathBuf,
        /// Batches applied so far; the lock also orders applies so the
        /// stored count never goes backwards.
        batches: Mutex<u64>,
        /// The count last written to the mark file.
        marked: Mutex<u64>,
    }

    fn classify_sled(dir: &Path, e: &sled::Error) -> OpenError {
        let detail = e.to_string();
        let failure = match e {
            sled::Error::Io(_) if detail.contains("could not acquire lock") => OpenFailure::Locked,
            sled::Error::Io(_) => OpenFailure::Io,
            sled::Error::Unsupported(_) => OpenFailure::Incompatible,
            _ => OpenFailure::Corrupt,
        };
        OpenError::new(dir, failure, format!("sled: {detail}"))
    }

    fn read_mark(dir: &Path) -> Option<Mark> {
        // A mark that cannot be read is ignored rather than fatal: it only
        // ever under-states what is durable, so losing it weakens the check
        // and never fails a good store.
        let text = std::fs::read(dir.join(MARK_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write_mark(dir: &Path, durable_batches: u64) -> std::io::Result<()> {
        // No fsync: the mark is written after sled's flush returned, so
        // whatever survives of it never claims more than what is durable.
        let tmp = dir.join(format!("{MARK_FILE}.tmp"));
        let text = serde_json::to_vec(&Mark {
            format: STORE_FORMAT,
            durable_batches,
        })
        .map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(MARK_FILE))
    }

    /// How long a locked database is waited for before it is reported as
    /// held by another process.
    const LOCK_GRACE: Duration = Duration::from_millis(1000);

    /// Opens sled's database, waiting out a lock that is on its way to
    /// being released. sled's background threads hold the database file
    /// (and its lock) for a moment after the last handle is dropped, so an
    /// open that follows a close in the same process (a restart inside one
    /// process, a test reopening a store) can meet the ghost of the
    /// previous one. A lock held by a live process outlasts the grace and
    /// is reported as [`OpenFailure::Locked`].
    fn open_db(dir: &Path) -> Result<sled::Db, OpenError> {
        let deadline = Instant::now() + LOCK_GRACE;
        loop {
            let result = sled::Config::new()
                .path(dir)
                .flush_every_ms(Some(500))
                // sled's default page cache is 1 GiB; routerd's working set
                // is statuses and a bounded event ring.
                .cache_capacity(4 * 1024 * 1024)
                .open()
                .map_err(|e| classify_sled(dir, &e));
            match result {
                Err(e) if e.failure == OpenFailure::Locked && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    impl SledBackend {
        /// Opens (or creates) the database in `dir`. Only one process may
        /// open it at a time. Every failure, including a panic inside sled
        /// while it replays a damaged log, comes back as
        /// [`StoreError::Open`] naming `dir` and the remedy.
        pub fn open(dir: &Path) -> Result<Self, StoreError> {
            let mark = read_mark(dir);
            if let Some(m) = &mark
                && m.format > STORE_FORMAT
            {
                return Err(OpenError::new(
                    dir,
                    OpenFailure::Incompatible,
                    format!(
                        "store format {}, this routerd reads {STORE_FORMAT}",
                        m.format
                    ),
                )
                .into());
            }
            let (db, tree, batches) = contain(dir, || {
                let db = open_db(dir)?;
                let tree = db
                    .open_tree("routerd")
                    .map_err(|e| classify_sled(dir, &e))?;
                let batches = match tree.get(BATCHES_KEY).map_err(|e| classify_sled(dir, &e))? {
                    None => 0,
                    Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                        OpenError::new(dir, OpenFailure::Corrupt, "the batch counter is damaged")
                    })?),
                };
                Ok((db, tree, batches))
            })?;
            if let Some(m) = &mark
                && batches < m.durable_batches
            {
                return Err(OpenError::new(
                    dir,
                    OpenFailure::Corrupt,
                    format!(
                        "{} batches were flushed to it but only {batches} survived; its \
                         database file was truncated, overwritten or removed",
                        m.durable_batches
                    ),
                )
                .into());
            }
            let marked = match mark {
                Some(m) => m.durable_batches,
                None => {
                    write_mark(dir, 0).map_err(|e| {
                        OpenError::new(dir, OpenFailure::Io, format!("write {MARK_FILE}: {e}"))
                    })?;
                    0
                }
            };
            Ok(SledBackend {
                db,
                tree,
                dir: dir.to_path_buf(),
                batches: Mutex::new(batches),
                marked: Mutex::new(marked),
            })
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

    fn poisoned<T>(_: T) -> StoreError {
        StoreError::Backend("sled backend lock poisoned".into())
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

        fn keys(&self, ns: Namespace, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
            self.tree
                .scan_prefix(full_key(ns, prefix))
                .keys()
                .map(|r| r.map(|k| k[1..].to_vec()).map_err(err))
                .collect()
        }

        fn apply(&self, batch: Batch) -> Result<(), StoreError> {
            let mut batches = self.batches.lock().map_err(poisoned)?;
            let next = *batches + 1;
            let mut b = sled::Batch::default();
            for op in batch.ops {
                match op {
                    Op::Put(ns, k, v) => b.insert(full_key(ns, &k), v),
                    Op::Delete(ns, k) => b.remove(full_key(ns, &k)),
                }
            }
            b.insert(BATCHES_KEY, &next.to_be_bytes());
            self.tree.apply_batch(b).map_err(err)?;
            *batches = next;
            Ok(())
        }

        fn flush(&self) -> Result<(), StoreError> {
            // Read the count before flushing: everything applied up to it
            // is durable once the flush returns, later batches may not be.
            let applied = *self.batches.lock().map_err(poisoned)?;
            self.tree.flush().map_err(err)?;
            let mut marked = self.marked.lock().map_err(poisoned)?;
            if applied > *marked {
                write_mark(&self.dir, applied).map_err(|e| {
                    StoreError::Backend(format!(
                        "write {}: {e}",
                        self.dir.join(MARK_FILE).display()
                    ))
                })?;
                *marked = applied;
            }
            Ok(())
        }
    }
}
