//! routerd's state store.
//!
//! Everything the daemon must remember across restarts: every generation of
//! every dynamic part with its state, resource statuses with their observed
//! generation, a bounded ring of events, config generations (the last
//! successfully applied config is the truth at boot) and the dataplane
//! ownership ledger. Storage sits behind the narrow [`Backend`] port with an
//! in-memory and a sled implementation; this crate's typed [`Store`] is the
//! same over both. Records are versioned JSON so the store can move to
//! another engine by export and import.

#![deny(missing_docs)]

mod backend;
mod open;
mod store;

#[cfg(feature = "sled")]
pub use backend::SledBackend;
pub use backend::{Backend, Batch, Entries, MemBackend, Namespace, Op};
pub use open::{OpenError, OpenFailure, Recovery};
pub use store::{
    DEFAULT_BULK_THRESHOLD, DEFAULT_EVENT_BYTES, DEFAULT_EVENT_CAPACITY,
    DEFAULT_GENERATION_HISTORY, EventQuery, GenerationRecord, GenerationStart, PartRecord,
    PartState, STORE_RECOVERED_EVENT, StatusRecord, Store, StoreOptions, Writer,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, corruption, lock).
    #[error("state store: {0}")]
    Backend(String),
    /// A record could not be encoded or decoded.
    #[error("state store record {key}: {message}")]
    Record {
        /// The record's key.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// A record was written by a newer format than this build reads.
    #[error("state store record {key}: record version {found}, this routerd reads {supported}")]
    Version {
        /// The record's key.
        key: String,
        /// The version found.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// A query argument was invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The store directory could not be opened; the text names the
    /// directory and the remedy.
    #[error(transparent)]
    Open(#[from] OpenError),
}
