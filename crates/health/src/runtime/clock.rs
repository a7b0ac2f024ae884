//! Wall-clock timestamps derived from tokio's clock.
//!
//! Status carries wall-clock times (`lastCheckedAt`) while scheduling uses
//! tokio's monotonic clock. Deriving one from the other keeps paused-time
//! tests deterministic and makes a wall-clock step unable to reorder results.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Source of the timestamps written into status and events.
pub trait Clock: Send + Sync + 'static {
    /// Now, as wall-clock time.
    fn now(&self) -> DateTime<Utc>;
}

/// Wall time = an anchor plus tokio's elapsed time since the anchor.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    base_wall: DateTime<Utc>,
    base: Instant,
}

impl TokioClock {
    /// Anchored at the system's current time.
    pub fn system() -> Self {
        TokioClock::starting_at(Utc::now())
    }

    /// Anchored at `wall` now (tests use a fixed instant).
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        TokioClock {
            base_wall: wall,
            base: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let d = Instant::now().saturating_duration_since(self.base);
        self.base_wall + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
    }
}
