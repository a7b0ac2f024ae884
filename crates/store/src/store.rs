//! The typed store over any [`Backend`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use routerd_model::{Event, ObjectRef, Status};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::backend::{Backend, Batch, Namespace};

/// Events kept before the oldest are dropped.
pub const DEFAULT_EVENT_CAPACITY: u64 = 10_000;
/// Encoded bytes of events kept before the oldest are dropped. At a typical
/// 300–600 bytes per event the count bound applies first; this one stops a
/// run of large events (long kernel or plugin messages) from growing the
/// ring past what a small state partition should hold.
pub const DEFAULT_EVENT_BYTES: u64 = 8 * 1024 * 1024;
/// Events of one type in one commit beyond which they are stored as one
/// summary event (reason `BulkChange`).
pub const DEFAULT_BULK_THRESHOLD: usize = 50;
/// Configuration generations kept (the newest good one is always kept too).
pub const DEFAULT_GENERATION_HISTORY: usize = 50;
/// Type of the warning event recorded when `--recover-state` replaced a
/// store that could not be opened.
pub const STORE_RECOVERED_EVENT: &str = "routerd.store.recovered";
/// Resources named in a bulk summary.
const BULK_SAMPLES: usize = 5;

/// Bounds of what the store keeps (docs/adr/0007-store-hygiene-and-recovery.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Events kept (at least 1).
    pub event_capacity: u64,
    /// Encoded event bytes kept; the newest event is kept whatever its size.
    pub event_bytes: u64,
    /// More events than this of one type in one commit become one summary
    /// event; `usize::MAX` turns summaries off.
    pub bulk_threshold: usize,
    /// Configuration generations kept (at least 1), besides the newest good
    /// one, which is never pruned.
    pub generation_history: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            event_bytes: DEFAULT_EVENT_BYTES,
            bulk_threshold: DEFAULT_BULK_THRESHOLD,
            generation_history: DEFAULT_GENERATION_HISTORY,
        }
    }
}

impl StoreOptions {
    fn normalized(mut self) -> Self {
        self.event_capacity = self.event_capacity.max(1);
        self.generation_history = self.generation_history.max(1);
        self
    }
}

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
    let version_error = |found: u32| StoreError::Version {
        key: String::from_utf8_lossy(key).into_owned(),
        found,
        supported: RECORD_VERSION,
    };
    match serde_json::from_slice::<Envelope<T>>(bytes) {
        Ok(env) if env.v == RECORD_VERSION => Ok(env.data),
        Ok(env) => Err(version_error(env.v)),
        Err(e) => {
            // A record of another version may not have this shape at all:
            // report the version, which tells the operator more.
            #[derive(Deserialize)]
            struct Version {
                v: u32,
            }
            match serde_json::from_slice::<Version>(bytes) {
                Ok(Version { v }) if v != RECORD_VERSION => Err(version_error(v)),
                _ => Err(StoreError::Record {
                    key: String::from_utf8_lossy(key).into_owned(),
                    message: e.to_string(),
                }),
            }
        }
    }
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

/// A generation as stored. The configuration text is not inline: it lives
/// once per digest in [`Namespace::Config`], cut into pieces. sled 0.34
/// leaks the space of large values it rewrites or deletes (1,000 distinct
/// 220 KB configurations grew a store to 1.4 GB with only 50 kept), and the
/// same text applied again (A, B, A) is then stored once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredGeneration {
    generation: u64,
    started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<DateTime<Utc>>,
    phase: String,
    config_hash: String,
    /// The text of records written before texts moved out; written empty
    /// now, which older readers still decode.
    #[serde(default)]
    config_yaml: String,
    /// Key of the text in [`Namespace::Config`] (hex SHA-256 of the text).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    config_digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

impl StoredGeneration {
    fn is_good(&self) -> bool {
        matches!(self.phase.as_str(), "Applied" | "Healthy" | "Committed")
    }

    fn has_text(&self) -> bool {
        !self.config_digest.is_empty() || !self.config_yaml.is_empty()
    }
}

/// Bytes of configuration text per stored piece: small enough that sled
/// keeps every piece in its ordinary pages, never in a blob file.
const CONFIG_PIECE: usize = 4096;

fn digest(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn config_prefix(digest: &str) -> Vec<u8> {
    let mut k = digest.as_bytes().to_vec();
    k.push(0);
    k
}

fn config_pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(CONFIG_PIECE);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

/// What [`Writer::begin_generation_if_changed`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationStart {
    /// The generation the configuration runs as.
    pub generation: u64,
    /// Whether a new record was written (false: an existing one is reused).
    pub created: bool,
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

#[derive(Debug, Clone)]
struct Counters {
    next_event: u64,
    first_event: u64,
    /// Encoded bytes of the events from `first_event` on.
    event_bytes: u64,
    /// Time of the newest stored event: no later event is stored earlier.
    last_event_time: Option<DateTime<Utc>>,
    next_generation: u64,
}

impl Counters {
    fn fresh() -> Self {
        Counters {
            next_event: 1,
            first_event: 1,
            event_bytes: 0,
            last_event_time: None,
            next_generation: 1,
        }
    }
}

/// The typed state store.
pub struct Store {
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    /// Also serialises commits that assign event ids or generation numbers,
    /// so counters are stored in the order they were handed out.
    counters: Mutex<Counters>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.options)
            .finish()
    }
}

const META_NEXT_EVENT: &[u8] = b"next_event";
const META_FIRST_EVENT: &[u8] = b"first_event";
const META_EVENT_BYTES: &[u8] = b"event_bytes";
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

fn generation_number(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

fn decode_all<T: DeserializeOwned>(backend: &dyn Backend, ns: Namespace) -> Result<(), StoreError> {
    for (k, v) in backend.scan(ns, b"")? {
        decode::<T>(&k, &v)?;
    }
    Ok(())
}

impl Store {
    /// Opens a store over `backend`, recovering counters from it.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self, StoreError> {
        Store::with_options(backend, StoreOptions::default())
    }

    /// Opens with a custom event ring size (at least 1).
    pub fn with_event_capacity(
        backend: Arc<dyn Backend>,
        capacity: u64,
    ) -> Result<Self, StoreError> {
        Store::with_options(
            backend,
            StoreOptions {
                event_capacity: capacity,
                ..StoreOptions::default()
            },
        )
    }

    /// Opens with custom bounds. Every record is decoded once here, so a
    /// store that opens is one whose records all read back; a damaged or
    /// newer record fails the open instead of a later step.
    pub fn with_options(
        backend: Arc<dyn Backend>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let store = Store {
            backend,
            options: options.normalized(),
            counters: Mutex::new(Counters::fresh()),
        };
        store.verify()?;
        let counters = store.load_counters()?;
        *store.counters()? = counters;
        Ok(store)
    }

    fn verify(&self) -> Result<(), StoreError> {
        let b = &*self.backend;
        decode_all::<StatusRecord>(b, Namespace::Status)?;
        decode_all::<PartRecord>(b, Namespace::Part)?;
        decode_all::<Event>(b, Namespace::Event)?;
        decode_all::<serde_json::Value>(b, Namespace::Ledger)?;
        decode_all::<serde_json::Value>(b, Namespace::Meta)?;
        decode_all::<String>(b, Namespace::Config)?;
        // Every generation's text must be there: boot falls back to it.
        for (k, v) in b.scan(Namespace::Generation, b"")? {
            let g: StoredGeneration = decode(&k, &v)?;
            if !g.config_digest.is_empty() && !self.has_config_text(&g.config_digest)? {
                return Err(StoreError::Record {
                    key: format!("generation/{}", g.generation),
                    message: format!("its configuration text {} is missing", g.config_digest),
                });
            }
        }
        Ok(())
    }

    fn load_counters(&self) -> Result<Counters, StoreError> {
        let read = |k: &[u8]| -> Result<Option<u64>, StoreError> {
            match self.backend.get(Namespace::Meta, k)? {
                Some(v) => decode(k, &v).map(Some),
                None => Ok(None),
            }
        };
        let next_event = read(META_NEXT_EVENT)?.unwrap_or(1);
        let event_bytes = match read(META_EVENT_BYTES)? {
            Some(n) => n,
            // Stores written before the byte bound: count once.
            None => self
                .backend
                .scan(Namespace::Event, b"")?
                .iter()
                .map(|(_, v)| v.len() as u64)
                .sum(),
        };
        let newest = be(next_event.saturating_sub(1));
        let last_event_time = match self.backend.get(Namespace::Event, &newest)? {
            Some(v) => decode::<Event>(&newest, &v)?.time,
            None => None,
        };
        Ok(Counters {
            next_event,
            first_event: read(META_FIRST_EVENT)?.unwrap_or(1),
            event_bytes,
            last_event_time,
            next_generation: read(META_NEXT_GENERATION)?.unwrap_or(1),
        })
    }

    /// An in-memory store.
    pub fn in_memory() -> Self {
        Store {
            backend: Arc::new(crate::MemBackend::new()),
            options: StoreOptions::default(),
            counters: Mutex::new(Counters::fresh()),
        }
    }

    /// A sled store in `dir`. A directory that cannot be opened (damaged,
    /// truncated, locked, newer format) fails with [`StoreError::Open`],
    /// whose text names the directory and the remedy; a panic inside sled
    /// while it opens or is first read is caught and reported the same way.
    #[cfg(feature = "sled")]
    pub fn open_sled(dir: &std::path::Path) -> Result<Self, StoreError> {
        Store::open_sled_with(dir, StoreOptions::default())
    }

    /// [`Store::open_sled`] with custom bounds.
    #[cfg(feature = "sled")]
    pub fn open_sled_with(
        dir: &std::path::Path,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let backend = crate::SledBackend::open(dir)?;
        crate::open::contain(dir, || Store::with_options(Arc::new(backend), options))
            .map_err(|e| crate::open::classify(dir, e))
    }

    /// Opens the sled store in `dir`; when it cannot be opened for a reason
    /// a fresh store cures (damaged, truncated, incompatible), moves it aside
    /// to `<dir>.broken-<UTC time>`, opens a fresh store and records a
    /// warning event [`STORE_RECOVERED_EVENT`] naming where the old one went.
    /// A store that opens is used as it is, so a unit that keeps the flag
    /// does not throw away a healthy store on every restart; a locked or
    /// unreadable directory is still an error.
    #[cfg(feature = "sled")]
    pub fn open_or_recover_sled(
        dir: &std::path::Path,
        options: StoreOptions,
        now: DateTime<Utc>,
    ) -> Result<(Self, Option<crate::Recovery>), StoreError> {
        let cause = match Store::open_sled_with(dir, options.clone()) {
            Ok(store) => return Ok((store, None)),
            Err(StoreError::Open(e)) if e.recoverable() => e,
            Err(e) => return Err(e),
        };
        let moved_to = crate::open::move_aside(dir, now)?;
        let store = Store::open_sled_with(dir, options)?;
        let mut e = Event::info(STORE_RECOVERED_EVENT, ObjectRef::daemon(), now)
            .attr("directory", dir.display().to_string())
            .attr("movedTo", moved_to.display().to_string())
            .attr("failure", format!("{:?}", cause.failure))
            .attr("cause", cause.detail.clone());
        e.severity = "warning".into();
        e.reason = "StoreRecovered".into();
        e.message = format!(
            "the state store in {} could not be opened ({}); it was moved to {} and a fresh \
             store started; owned kernel objects are adopted again from routerd's markers \
             and the configuration",
            dir.display(),
            cause.detail,
            moved_to.display()
        );
        let mut w = store.writer();
        w.append_event(e);
        w.commit()?;
        store.flush()?;
        Ok((
            store,
            Some(crate::Recovery {
                moved_to,
                cause: cause.detail,
            }),
        ))
    }

    /// The bounds in force.
    pub fn options(&self) -> &StoreOptions {
        &self.options
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
            began_generation: false,
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
            .map(|(k, v)| self.with_text(decode(k, v)?))
            .collect()
    }

    /// One generation by number.
    pub fn generation(&self, generation: u64) -> Result<Option<GenerationRecord>, StoreError> {
        self.stored_generation(generation)?
            .map(|g| self.with_text(g))
            .transpose()
    }

    fn stored_generation(&self, generation: u64) -> Result<Option<StoredGeneration>, StoreError> {
        let key = be(generation);
        match self.backend.get(Namespace::Generation, &key)? {
            Some(v) => Ok(Some(decode(&key, &v)?)),
            None => Ok(None),
        }
    }

    fn with_text(&self, g: StoredGeneration) -> Result<GenerationRecord, StoreError> {
        let config_yaml = if g.config_digest.is_empty() {
            g.config_yaml
        } else {
            self.config_text(&g.config_digest)?
        };
        Ok(GenerationRecord {
            generation: g.generation,
            started_at: g.started_at,
            finished_at: g.finished_at,
            phase: g.phase,
            config_hash: g.config_hash,
            config_yaml,
            warnings: g.warnings,
        })
    }

    fn config_text(&self, digest: &str) -> Result<String, StoreError> {
        let pieces = self
            .backend
            .scan(Namespace::Config, &config_prefix(digest))?;
        if pieces.is_empty() {
            return Err(StoreError::Record {
                key: format!("config/{digest}"),
                message: "the configuration text of a stored generation is missing".into(),
            });
        }
        let mut text = String::new();
        for (k, v) in pieces {
            text.push_str(&decode::<String>(&k, &v)?);
        }
        Ok(text)
    }

    fn has_config_text(&self, digest: &str) -> Result<bool, StoreError> {
        let mut first = config_prefix(digest);
        first.extend_from_slice(&0u32.to_be_bytes());
        Ok(self.backend.get(Namespace::Config, &first)?.is_some())
    }

    /// Stored generation numbers, oldest first.
    fn generation_numbers(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .backend
            .keys(Namespace::Generation, b"")?
            .iter()
            .filter_map(|k| generation_number(k))
            .collect())
    }

    /// The newest successfully applied generation: the truth at boot.
    pub fn last_good_generation(&self) -> Result<Option<GenerationRecord>, StoreError> {
        for n in self.generation_numbers()?.into_iter().rev() {
            if let Some(g) = self.stored_generation(n)?
                && g.is_good()
            {
                return self.with_text(g).map(Some);
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
            Namespace::Config,
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
    began_generation: bool,
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

    /// Records a new configuration attempt and returns its number. Prunes
    /// the history to [`StoreOptions::generation_history`].
    pub fn begin_generation(
        &mut self,
        config_hash: &str,
        config_yaml: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let existing = self.store.generation_numbers()?;
        let mut newest_good = None;
        for &n in existing.iter().rev() {
            if let Some(g) = self.store.stored_generation(n)?
                && g.is_good()
            {
                newest_good = Some(n);
                break;
            }
        }
        self.create_generation(config_hash, config_yaml, now, &existing, newest_good)
    }

    /// Like [`Writer::begin_generation`], but an unchanged configuration
    /// reuses its generation instead of storing anything (routerd's
    /// `BeginGenerationIfChanged`): when the newest generation that applied
    /// successfully has the same hash, that one is returned. Failed attempts
    /// are skipped over, so they never suppress a retry. One addition: when
    /// the newest generation of all is still `Pending` with the same hash
    /// (the daemon marks only some generations `Applied`), it is the
    /// attempt in progress and is returned too, so repeated reloads of a
    /// new file store it once.
    pub fn begin_generation_if_changed(
        &mut self,
        config_hash: &str,
        config_yaml: &str,
        now: DateTime<Utc>,
    ) -> Result<GenerationStart, StoreError> {
        let existing = self.store.generation_numbers()?;
        let reuse = |generation| GenerationStart {
            generation,
            created: false,
        };
        let mut newest_good = None;
        for (i, &n) in existing.iter().rev().enumerate() {
            let Some(g) = self.store.stored_generation(n)? else {
                continue;
            };
            if i == 0 && g.phase == "Pending" && g.config_hash == config_hash {
                return Ok(reuse(n));
            }
            if g.is_good() && g.has_text() {
                if g.config_hash == config_hash {
                    return Ok(reuse(n));
                }
                newest_good = Some(n);
                break;
            }
        }
        let generation =
            self.create_generation(config_hash, config_yaml, now, &existing, newest_good)?;
        Ok(GenerationStart {
            generation,
            created: true,
        })
    }

    fn create_generation(
        &mut self,
        config_hash: &str,
        config_yaml: &str,
        now: DateTime<Utc>,
        existing: &[u64],
        newest_good: Option<u64>,
    ) -> Result<u64, StoreError> {
        let generation = {
            let mut c = self.store.counters()?;
            let generation = c.next_generation;
            c.next_generation += 1;
            generation
        };
        let config_digest = digest(config_yaml);
        if !self.store.has_config_text(&config_digest)? {
            for (i, piece) in config_pieces(config_yaml).into_iter().enumerate() {
                let mut key = config_prefix(&config_digest);
                key.extend_from_slice(&(i as u32).to_be_bytes());
                self.batch
                    .put(Namespace::Config, key, encode("config", &piece)?);
            }
        }
        let rec = StoredGeneration {
            generation,
            started_at: now,
            finished_at: None,
            phase: "Pending".into(),
            config_hash: config_hash.into(),
            config_yaml: String::new(),
            config_digest: config_digest.clone(),
            warnings: Vec::new(),
        };
        self.batch.put(
            Namespace::Generation,
            be(generation),
            encode("generation", &rec)?,
        );
        self.began_generation = true;
        // The new record counts towards the history; the newest good one
        // stays whatever its age, because boot falls back to it.
        let keep_existing = self.store.options.generation_history - 1;
        let surplus = existing.len().saturating_sub(keep_existing);
        let (old, kept) = existing.split_at(surplus);
        let mut live = std::collections::HashSet::from([config_digest]);
        for &n in kept.iter().chain(newest_good.iter()) {
            if let Some(g) = self.store.stored_generation(n)? {
                live.insert(g.config_digest);
            }
        }
        for &n in old {
            if Some(n) == newest_good {
                continue;
            }
            self.batch.delete(Namespace::Generation, be(n));
            if let Some(g) = self.store.stored_generation(n)?
                && !g.config_digest.is_empty()
                && live.insert(g.config_digest.clone())
            {
                // Last reference gone (insert marks it handled as well).
                for k in self
                    .store
                    .backend
                    .keys(Namespace::Config, &config_prefix(&g.config_digest))?
                {
                    self.batch.delete(Namespace::Config, k);
                }
            }
        }
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
        let Some(mut rec) = self.store.stored_generation(generation)? else {
            return Err(StoreError::BadRequest(format!(
                "generation {generation} does not exist"
            )));
        };
        if rec.finished_at.is_some() && rec.phase == phase && rec.warnings == warnings {
            // A reused generation applied again: nothing to record.
            return Ok(());
        }
        rec.phase = phase.into();
        rec.finished_at = Some(now);
        rec.warnings = warnings;
        self.batch.put(
            Namespace::Generation,
            be(generation),
            encode("generation", &rec)?,
        );
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

    /// Applies everything atomically and returns the stored events with
    /// ids. Many events of one type become one summary (see
    /// [`StoreOptions::bulk_threshold`]); ids follow time order; the oldest
    /// events leave when the ring exceeds its count or byte bound.
    pub fn commit(mut self) -> Result<Vec<Event>, StoreError> {
        let events = std::mem::take(&mut self.events);
        if events.is_empty() && !self.began_generation {
            if !self.batch.is_empty() {
                self.store.backend.apply(std::mem::take(&mut self.batch))?;
            }
            return Ok(Vec::new());
        }
        // Held until the batch is applied: two commits must not store their
        // counters (or make their events visible) out of order.
        let mut guard = self.store.counters()?;
        let mut c = guard.clone();
        let events = self.stage_events(events, &mut c)?;
        if self.began_generation {
            self.batch.put(
                Namespace::Meta,
                META_NEXT_GENERATION,
                encode("meta", &c.next_generation)?,
            );
        }
        self.store.backend.apply(std::mem::take(&mut self.batch))?;
        // Only a successful apply moves the counters; a failed one leaves
        // the ring accounting as it is on disk.
        *guard = c;
        Ok(events)
    }

    fn stage_events(
        &mut self,
        events: Vec<Event>,
        c: &mut Counters,
    ) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(events);
        }
        let opts = &self.store.options;
        let mut events = coalesce(events, opts.bulk_threshold);
        // Ids are handed out in time order: an event stamped earlier than
        // one already stored (its producer read the clock before another
        // commit won the race) takes that event's time and keeps its own.
        if let Some(floor) = c.last_event_time {
            for e in &mut events {
                if let Some(t) = e.time
                    && t < floor
                {
                    e.attributes.insert("originalTime".into(), t.to_rfc3339());
                    e.time = Some(floor);
                }
            }
        }
        let floor = c.last_event_time;
        events.sort_by_key(|e| e.time.or(floor));
        let first_new = c.next_event;
        let mut encoded = Vec::with_capacity(events.len());
        for e in &mut events {
            e.id = c.next_event;
            c.next_event += 1;
            let v = encode("event", &*e)?;
            c.event_bytes += v.len() as u64;
            encoded.push(v);
            if e.time > c.last_event_time {
                c.last_event_time = e.time;
            }
        }
        let newest = c.next_event - 1;
        while c.first_event <= newest
            && (c.next_event - c.first_event > opts.event_capacity
                || (c.event_bytes > opts.event_bytes && c.first_event < newest))
        {
            let id = c.first_event;
            let size = if id >= first_new {
                encoded[(id - first_new) as usize].len() as u64
            } else {
                self.batch.delete(Namespace::Event, be(id));
                self.store
                    .backend
                    .get(Namespace::Event, &be(id))?
                    .map_or(0, |v| v.len() as u64)
            };
            c.event_bytes = c.event_bytes.saturating_sub(size);
            c.first_event += 1;
        }
        for (i, v) in encoded.into_iter().enumerate() {
            let id = first_new + i as u64;
            if id >= c.first_event {
                self.batch.put(Namespace::Event, be(id), v);
            }
        }
        for (k, n) in [
            (META_NEXT_EVENT, c.next_event),
            (META_FIRST_EVENT, c.first_event),
            (META_EVENT_BYTES, c.event_bytes),
        ] {
            self.batch.put(Namespace::Meta, k, encode("meta", &n)?);
        }
        Ok(events)
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "error" => 3,
        "warning" => 2,
        "debug" => 0,
        _ => 1,
    }
}

/// Replaces every type with more than `threshold` events by one summary at
/// the place of its first event. One step that installs 5,000 routes would
/// otherwise write 5,000 events and push everything older out of the ring;
/// per-resource detail stays in the resources' statuses (`describe`).
fn coalesce(events: Vec<Event>, threshold: usize) -> Vec<Event> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *counts.entry(e.type_.as_str()).or_default() += 1;
    }
    let bulky: Vec<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > threshold)
        .map(|(t, _)| t.to_string())
        .collect();
    if bulky.is_empty() {
        return events;
    }
    let mut out: Vec<Option<Event>> = Vec::new();
    let mut groups: HashMap<String, (usize, Vec<Event>)> = HashMap::new();
    for e in events {
        if bulky.contains(&e.type_) {
            let slot = out.len();
            let group = groups
                .entry(e.type_.clone())
                .or_insert_with(|| (slot, Vec::new()));
            if group.0 == slot {
                out.push(None);
            }
            group.1.push(e);
        } else {
            out.push(Some(e));
        }
    }
    for (_, (slot, group)) in groups {
        out[slot] = summarize(group);
    }
    out.into_iter().flatten().collect()
}

fn summarize(group: Vec<Event>) -> Option<Event> {
    let first = group.first()?;
    let n = group.len();
    let mut attributes = first.attributes.clone();
    attributes.retain(|k, v| group.iter().all(|e| e.attributes.get(k) == Some(v)));
    let mut samples: Vec<String> = Vec::new();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for e in &group {
        if !e.resource.kind.is_empty() && samples.len() < BULK_SAMPLES {
            let r = format!("{}/{}", e.resource.kind, e.resource.name);
            if !samples.contains(&r) {
                samples.push(r);
            }
        }
        if !e.reason.is_empty() {
            *reasons.entry(e.reason.as_str()).or_default() += 1;
        }
        match e.severity.as_str() {
            "error" => errors += 1,
            "warning" => warnings += 1,
            _ => {}
        }
    }
    let reasons = reasons
        .iter()
        .map(|(r, k)| format!("{r}={k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let samples = samples.join(", ");
    attributes.insert("count".into(), n.to_string());
    if !samples.is_empty() {
        attributes.insert("samples".into(), samples.clone());
    }
    if !reasons.is_empty() {
        attributes.insert("reasons".into(), reasons.clone());
    }
    if errors > 0 {
        attributes.insert("errors".into(), errors.to_string());
    }
    if warnings > 0 {
        attributes.insert("warnings".into(), warnings.to_string());
    }
    let resource = if group.iter().all(|e| e.resource == first.resource) {
        first.resource.clone()
    } else {
        ObjectRef::daemon()
    };
    let mut message = format!("{n} {} events in one change", first.type_);
    if !reasons.is_empty() {
        message.push_str(&format!(" ({reasons})"));
    }
    if !samples.is_empty() {
        message.push_str(&format!(", for example {samples}"));
    }
    message.push_str("; `routerctl describe` shows each resource");
    Some(Event {
        id: 0,
        type_: first.type_.clone(),
        severity: group
            .iter()
            .map(|e| e.severity.as_str())
            .max_by_key(|s| severity_rank(s))
            .unwrap_or("info")
            .to_string(),
        time: group.iter().filter_map(|e| e.time).max(),
        daemon: first.daemon.clone(),
        resource,
        reason: "BulkChange".into(),
        message,
        attributes,
    })
}
