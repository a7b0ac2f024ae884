//! Per-source state: the last accepted part and why later runs were refused.
//!
//! A failed or rejected run must not take the source's good part away early:
//! the previous part keeps counting until its own `expiresAt`, and only an
//! accepted result replaces it. This also gives routerd's "latest generation
//! per source wins" behaviour (spec §8.1 item 1): a source has at most one
//! current part.

use chrono::{DateTime, Utc};

use crate::part::CandidatePart;

/// Why the latest run of a source did not produce its current part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// When the run ended.
    pub at: DateTime<Utc>,
    /// The reason, as reported in `routerd.dynamic.part.rejected` or
    /// `routerd.plugin.run.failed`.
    pub reason: String,
}

/// What one source has produced so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceState {
    source: String,
    generation: i64,
    current: Option<CandidatePart>,
    last_rejection: Option<Rejection>,
}

/// A part was offered that cannot replace the current one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The part belongs to another source.
    #[error("part of source \"{got}\" offered to source \"{want}\"")]
    WrongSource {
        /// This state's source.
        want: String,
        /// The part's source.
        got: String,
    },
    /// The part's generation is not newer than the last accepted one.
    #[error("generation {got} of source \"{source_id}\" is not newer than {have}")]
    StaleGeneration {
        /// The source.
        source_id: String,
        /// The last accepted generation.
        have: i64,
        /// The offered generation.
        got: i64,
    },
}

impl SourceState {
    /// A source with nothing accepted yet.
    pub fn new(source: impl Into<String>) -> Self {
        SourceState::with_generation(source, 0)
    }

    /// A source whose highest stored generation is `generation` (the store
    /// outlives the process; generations never go back).
    pub fn with_generation(source: impl Into<String>, generation: i64) -> Self {
        SourceState {
            source: source.into(),
            generation: generation.max(0),
            current: None,
            last_rejection: None,
        }
    }

    /// The source id.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The highest accepted generation (the next part's `previous`).
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Raises the generation to `generation` when that is higher: a run
    /// started elsewhere (a manual run through the daemon) accepted a part
    /// for this source, and the next part must be numbered after it.
    pub fn observe_generation(&mut self, generation: i64) {
        self.generation = self.generation.max(generation);
    }

    /// Replaces the current part with `part`; the only way the current part
    /// changes before it expires.
    pub fn accept(&mut self, part: CandidatePart) -> Result<(), StateError> {
        if part.spec.source != self.source {
            return Err(StateError::WrongSource {
                want: self.source.clone(),
                got: part.spec.source,
            });
        }
        if part.spec.generation <= self.generation {
            return Err(StateError::StaleGeneration {
                source_id: self.source.clone(),
                have: self.generation,
                got: part.spec.generation,
            });
        }
        self.generation = part.spec.generation;
        self.current = Some(part);
        self.last_rejection = None;
        Ok(())
    }

    /// Records a failed run or rejected result; the current part is kept.
    pub fn reject(&mut self, reason: impl Into<String>, at: DateTime<Utc>) {
        self.last_rejection = Some(Rejection {
            at,
            reason: reason.into(),
        });
    }

    /// The part that counts at `now`: the last accepted one, until it expires.
    pub fn active(&self, now: DateTime<Utc>) -> Option<&CandidatePart> {
        self.current.as_ref().filter(|p| !p.spec.is_expired(now))
    }

    /// The last accepted part, expired or not (for display).
    pub fn last_accepted(&self) -> Option<&CandidatePart> {
        self.current.as_ref()
    }

    /// The latest refusal since the last accepted part.
    pub fn last_rejection(&self) -> Option<&Rejection> {
        self.last_rejection.as_ref()
    }
}
