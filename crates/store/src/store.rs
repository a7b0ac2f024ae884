//! The typed store over any [`Backend`].

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use routerd_model::{Event, Status};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::backend::{Backend, Batch, Namespace};

/// Events kept before the oldest are dropped.
pub const DEFAULT_EVENT_CAPACITY: u64 = 10_000;

/// Record format version; bumped when a record's shape changes.
const RECORD_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    data: T,
}

fn encode<T: Serialize>(key: &str, data: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Envelope {
        v: RECORD_VERSION,
        data,
    })
    .map_err(|e| StoreError::Record {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let env: Envelope<T> = serde_json::from_slice(bytes).map_err(|e| StoreError::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })?;
    if env.v != RECORD_VERSION {
        return Err(StoreError::Record {
            key: String::from_utf8_lossy(key).into_owned(),
            message: format!("unsupported record version {}", env.v),
        });
    }
    Ok(env.data)
}

/// Lifecycle state of a stored dynamic part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    /// Merged (or mergeable) now.
    Active,
    /// Past its expiry.
    Expired,
    /// A newer generation of the same source is active.
    Superseded,
    /// Broke a rule; never merged.
    Rejected,
    /// Revoked by an operator (`routerctl dynamic drop`); never merged
    /// again, not even after a restart.
    Dropped,
}

/// One stored generation of one source's dynamic part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartRecord {
    /// The DynamicConfigPart resource.
    pub part: routerd_model::Resource,
    /// Its state.
    pub state: PartState,
    /// Why (rejections, supersession).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
}

impl PartRecord {
    fn source_generation(&self) -> Option<(&str, i64)> {
        self.part
            .as_dynamic_part()
            .map(|s| (s.source.as_str(), s.generation))
    }
}

/// A stored status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    /// The status object.
    pub status: Status,
    /// Incremented on every real write.
    pub resource_version: u64,
    /// Config generation that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    /// Last real write.
    pub modified_at: DateTime<Utc>,
}

/// One applied (or attempted) configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationRecord {
    /// Monotonic number, starting at 1.
    pub generation: u64,
    /// When the apply started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// `Pending`, `Applied`, `Failed`.
    pub phase: String,
    /// Hex SHA-256 of the config text.
    pub config_hash: String,
    /// The config text itself (so boot can fall back to it).
    pub config_yaml: String,
    /// Warnings of the apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl GenerationRecord {
    /// Whether this generation was applied successfully.
    pub fn is_good(&self) -> bool {
        matches!(self.phase.as_str(), "Applied" | "Healthy" | "Committed")
    }
}

/// Filter for [`Store::events`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events with a larger id.
    pub since_id: u64,
    /// Exact topic (event type).
    pub topic: Option<String>,
    /// `Kind/name` of the subject resource.
    pub resource: Option<String>,
    /// Most events returned (default 50, at most 1000).
    pub limit: Option<usize>,
    /// Oldest first (default newest first).
    pub ascending: bool,
}

struct Counters {
    next_event: u64,
    first_event: u64,
    next_generation: u64,
}

/// The typed state store.
pub struct Store {
    backend: Arc<dyn Backend>,
    event_capacity: u64,
    counters: Mutex<Counters>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

const META_NEXT_EVENT: &[u8] = b"next_event";
const META_FIRST_EVENT: &[u8] = b"first_event";
const META_NEXT_GENERATION: &[u8] = b"next_generation";

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn part_key(source: &str, generation: i64) -> Vec<u8> {
    // Generations are positive; offsetting keeps byte order = numeric order.
    let mut k = source.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&(generation as u64 ^ (1 << 63)).to_be_bytes());
    k
}

impl Store {
    /// Opens a store over `backend`, recovering counters from it.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self, StoreError> {
        Store::with_event_capacity(backend, DEFAULT_EVENT_CAPACITY)
    }

    /// Opens with a custom event ring size (at least 1).
    pub fn with_event_capacity(
        backend: Arc<dyn Backend>,
        capacity: u64,
    ) -> Result<Self, StoreError> {
        let read = |k: &[u8], default: u64| -> Result<u64, StoreError> {
            match backend.get(Namespace::Meta, k)? {
                Some(v) => decode(k, &v),
                None => Ok(default),
            }
        };
        let counters = Counters {
            next_event: read(META_NEXT_EVENT, 1)?,
            first_event: read(META_FIRST_EVENT, 1)?,
            next_generation: read(META_NEXT_GENERATION, 1)?,
        };
        Ok(Store {
            backend,
            event_capacity: capacity.max(1),
            counters: Mutex::new(counters),
        })
    }

    /// An in-memory store.
    pub fn in_memory() -> Self {
        Store {
            backend: Arc::new(crate::MemBackend::new()),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            counters: Mutex::new(Counters {
                next_event: 1,
                first_event: 1,
                next_generation: 1,
            }),
        }
    }

    /// A sled store in `dir`.
    #[cfg(feature = "sled")]
    pub fn open_sled(dir: &std::path::Path) -> Result<Self, StoreError> {
        Store::open(Arc::new(crate::SledBackend::open(dir)?))
    }

    fn counters(&self) -> Result<MutexGuard<'_, Counters>, StoreError> {
        self.counters
            .lock()
            .map_err(|_| StoreError::Backend("store counters lock poisoned".into()))
    }

    /// Starts a batch of writes, applied atomically by [`Writer::commit`].
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            store: self,
            batch: Batch::default(),
            events: Vec::new(),
            statuses: Vec::new(),
        }
    }

    /// Makes every committed write durable (a commit point).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush()
    }

    // ---- statuses ----

    /// The stored status of `id`.
    pub fn status(&self, id: &str) -> Result<Option<StatusRecord>, StoreError> {
        match self.backend.get(Namespace::Status, id.as_bytes())? {
            Some(v) => Ok(Some(decode(id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Every stored status, keyed by id (the `--state` snapshot format).
    pub fn status_snapshot(&self) -> Result<routerd_model::StateSnapshot, StoreError> {
        let mut out = routerd_model::StateSnapshot::new();
        for (k, v) in self.backend.scan(Namespace::Status, b"")? {
            let rec: StatusRecord = decode(&k, &v)?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), rec.status);
        }
        Ok(out)
    }

    // ---- dynamic parts ----

    /// Every stored part, every generation, ordered by source then generation.
    pub fn parts(&self) -> Result<Vec<PartRecord>, StoreError> {
        self.backend
            .scan(Namespace::Part, b"")?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// Every stored generation of `source`, oldest first.
    pub fn parts_of(&self, source: &str) -> Result<Vec<PartRecord>, StoreError> {
        let mut prefix = source.as_bytes().to_vec();
        prefix.push(0);
        self.backend
            .scan(Namespace::Part, &prefix)?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// The highest stored generation of `source` (0 when none).
    pub fn max_generation(&self, source: &str) -> Result<i64, StoreError> {
        Ok(self
            .parts_of(source)?
            .iter()
            .filter_map(|p| p.source_generation().map(|(_, g)| g))
            .max()
            .unwrap_or(0))
    }

    // ---- events ----

    /// Events matching `q`.
    pub fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let limit = q.limit.unwrap_or(50);
        if limit > 1000 {
            return Err(StoreError::BadRequest("limit must be at most 1000".into()));
        }
        let resource =
            match &q.resource {
                Some(r) => Some(routerd_model::id::split_kind_name(r).ok_or_else(|| {
                    StoreError::BadRequest("resource must be <kind>/<name>".into())
                })?),
                None => None,
            };
        let mut out = Vec::new();
        let entries = self.backend.scan(Namespace::Event, b"")?;
        let iter: Box<dyn Iterator<Item = &(Vec<u8>, Vec<u8>)>> = if q.ascending {
            Box::new(entries.iter())
        } else {
            Box::new(entries.iter().rev())
        };
        for (k, v) in iter {
            let e: Event = decode(k, v)?;
            if e.id <= q.since_id {
                if q.ascending {
                    continue;
                }
                break;
            }
            if q.topic.as_deref().is_some_and(|t| t != e.type_) {
                continue;
            }
            if let Some((kind, name)) = resource
                && (e.resource.kind != kind || e.resource.name != name)
            {
                continue;
            }
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The id the next event will get (for followers: `since_id = this - 1`).
    pub fn last_event_id(&self) -> Result<u64, StoreError> {
        Ok(self.counters()?.next_event.saturating_sub(1))
    }

    // ---- generations ----

    /// Generations, newest first (at most `limit`).
    pub fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        let all = self.backend.scan(Namespace::Generation, b"")?;
        all.iter()
            .rev()
            .take(limit)
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// The newest successfully applied generation: the truth at boot.
    pub fn last_good_generation(&self) -> Result<Option<GenerationRecord>, StoreError> {
        for (k, v) in self.backend.scan(Namespace::Generation, b"")?.iter().rev() {
            let g: GenerationRecord = decode(k, v)?;
            if g.is_good() {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    // ---- ledger ----

    /// Every ledger entry (artifact key to record).
    pub fn ledger(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.backend
            .scan(Namespace::Ledger, b"")?
            .iter()
            .map(|(k, v)| Ok((String::from_utf8_lossy(k).into_owned(), decode(k, v)?)))
            .collect()
    }

    /// Dumps every record as (namespace prefix, key, value) lines for export.
    pub fn export(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut out = Vec::new();
        for ns in [
            Namespace::Status,
            Namespace::Part,
            Namespace::Event,
            Namespace::Generation,
            Namespace::Ledger,
            Namespace::Meta,
        ] {
            for (k, v) in self.backend.scan(ns, b"")? {
                let value: serde_json::Value =
                    serde_json::from_slice(&v).map_err(|e| StoreError::Record {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        message: e.to_string(),
                    })?;
                out.push(serde_json::json!({
                    "ns": (ns.prefix() as char).to_string(),
                    "key": k.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    "value": value,
                }));
            }
        }
        Ok(out)
    }
}

/// A batch of writes, committed atomically.
pub struct Writer<'a> {
    store: &'a Store,
    batch: Batch,
    events: Vec<Event>,
    statuses: Vec<String>,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("ops", &self.batch.ops().len())
            .finish()
    }
}

impl Writer<'_> {
    /// Saves `status` for `id`. Identical content with the same observed
    /// generation is skipped (returns false) so no-op reconciles cause no
    /// writes; a new generation with identical content still writes.
    pub fn save_status(
        &mut self,
        id: &str,
        status: &Status,
        observed_generation: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let prev = self.store.status(id)?;
        if let Some(p) = &prev
            && &p.status == status
            && p.observed_generation == observed_generation
        {
            return Ok(false);
        }
        let rec = StatusRecord {
            status: status.clone(),
            resource_version: prev.map_or(1, |p| p.resource_version + 1),
            observed_generation,
            modified_at: now,
        };
        self.batch
            .put(Namespace::Status, id.as_bytes(), encode(id, &rec)?);
        self.statuses.push(id.to_string());
        Ok(true)
    }

    /// Deletes the status of a resource that no longer exists.
    pub fn delete_status(&mut self, id: &str) {
        self.batch.delete(Namespace::Status, id.as_bytes());
    }

    /// Stores (or replaces) one generation of a part.
    pub fn put_part(&mut self, rec: &PartRecord) -> Result<(), StoreError> {
        let (source, generation) = rec.source_generation().ok_or_else(|| {
            StoreError::BadRequest(format!("{} is not a DynamicConfigPart", rec.part.id()))
        })?;
        let key = part_key(source, generation);
        self.batch.put(
            Namespace::Part,
            key,
            encode(&format!("{source}#{generation}"), rec)?,
        );
        Ok(())
    }

    /// Removes one generation of a part (retention).
    pub fn delete_part(&mut self, source: &str, generation: i64) {
        self.batch
            .delete(Namespace::Part, part_key(source, generation));
    }

    /// Queues events; ids are assigned at commit.
    pub fn append_event(&mut self, e: Event) {
        self.events.push(e);
    }

    /// Records a new configuration attempt and returns its number.
    pub fn begin_generation(
        &mut self,
        config_hash: &str,
        config_yaml: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut c = self.store.counters()?;
        let generation = c.next_generation;
        c.next_generation += 1;
        let rec = GenerationRecord {
            generation,
            started_at: now,
            finished_at: None,
            phase: "Pending".into(),
            config_hash: config_hash.into(),
            config_yaml: config_yaml.into(),
            warnings: Vec::new(),
        };
        self.batch.put(
            Namespace::Generation,
            be(generation),
            encode("generation", &rec)?,
        );
        self.batch.put(
            Namespace::Meta,
            META_NEXT_GENERATION,
            encode("meta", &c.next_generation)?,
        );
        Ok(generation)
    }

    /// Marks a generation finished (`Applied` or `Failed`). A failed apply
    /// never replaces the last good config.
    pub fn finish_generation(
        &mut self,
        generation: u64,
        phase: &str,
        warnings: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = be(generation);
        let mut rec: GenerationRecord = match self.store.backend.get(Namespace::Generation, &key)? {
            Some(v) => decode(&key, &v)?,
            None => {
                return Err(StoreError::BadRequest(format!(
                    "generation {generation} does not exist"
                )));
            }
        };
        rec.phase = phase.into();
        rec.finished_at = Some(now);
        rec.warnings = warnings;
        self.batch
            .put(Namespace::Generation, key, encode("generation", &rec)?);
        Ok(())
    }

    /// Records an owned artifact.
    pub fn ledger_put(&mut self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        self.batch
            .put(Namespace::Ledger, key.as_bytes(), encode(key, value)?);
        Ok(())
    }

    /// Forgets an owned artifact (after it was removed from the kernel).
    pub fn ledger_remove(&mut self, key: &str) {
        self.batch.delete(Namespace::Ledger, key.as_bytes());
    }

    /// Applies everything atomically and returns the stored events with ids.
    pub fn commit(mut self) -> Result<Vec<Event>, StoreError> {
        let mut events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            let mut c = self.store.counters()?;
            for e in &mut events {
                e.id = c.next_event;
                c.next_event += 1;
                self.batch
                    .put(Namespace::Event, be(e.id), encode("event", &*e)?);
            }
            let keep_from = c.next_event.saturating_sub(self.store.event_capacity);
            while c.first_event < keep_from {
                self.batch.delete(Namespace::Event, be(c.first_event));
                c.first_event += 1;
            }
            self.batch.put(
                Namespace::Meta,
                META_NEXT_EVENT,
                encode("meta", &c.next_event)?,
            );
            self.batch.put(
                Namespace::Meta,
                META_FIRST_EVENT,
                encode("meta", &c.first_event)?,
            );
        }
        if !self.batch.is_empty() {
            self.store.backend.apply(std::mem::take(&mut self.batch))?;
        }
        Ok(events)
    }
}
