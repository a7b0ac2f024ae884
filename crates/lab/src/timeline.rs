//! Measuring and reporting what happened when.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Time since the timeline started.
    pub at: Duration,
    /// What happened.
    pub event: String,
}

/// Timestamped events relative to a start instant, printed as a table.
///
/// The demo's output and the e2e tests' failure messages both need "what happened at
/// which millisecond"; relative times make runs comparable with each other and with the
/// measurements in deps.md §5, where absolute clock times would not.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: Instant,
    entries: Vec<Entry>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// A timeline starting now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A timeline whose zero is `start`, e.g. the moment a fault was injected.
    pub fn starting_at(start: Instant) -> Self {
        Self {
            start,
            entries: Vec::new(),
        }
    }

    /// Records `event` now and returns its relative time.
    pub fn record(&mut self, event: impl Into<String>) -> Duration {
        self.record_at(Instant::now(), event)
    }

    /// Records `event` at `when`, for events observed after the fact (a log line's time).
    /// Instants before the start are clamped to zero.
    pub fn record_at(&mut self, when: Instant, event: impl Into<String>) -> Duration {
        let at = when.saturating_duration_since(self.start);
        self.entries.push(Entry {
            at,
            event: event.into(),
        });
        at
    }

    /// The zero of the timeline.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Entries in time order (entries recorded out of order are sorted).
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = self.entries.clone();
        entries.sort_by_key(|e| e.at);
        entries
    }
}

impl fmt::Display for Timeline {
    /// A two-column table: milliseconds since the start and the event.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>9}  event", "t (ms)")?;
        writeln!(f, "{:>9}  -----", "------")?;
        for entry in self.entries() {
            writeln!(f, "{:>9}  {}", entry.at.as_millis(), entry.event)?;
        }
        Ok(())
    }
}

/// Polls `condition` every `poll` until it is true or `timeout` has passed, and returns
/// how long that took.
///
/// The elapsed time is the "switch took N ms" figure of the demo and the e2e tests. Its
/// resolution is `poll`, so pick a poll interval well below the effect being measured
/// (10 ms against failovers of hundreds of milliseconds).
pub fn wait_until<F>(
    mut condition: F,
    timeout: Duration,
    poll: Duration,
) -> Result<Duration, LabError>
where
    F: FnMut() -> bool,
{
    let start = Instant::now();
    loop {
        if condition() {
            return Ok(start.elapsed());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(LabError::Timeout {
                what: "condition".to_owned(),
                waited,
            });
        }
        thread::sleep(
            poll.min(timeout.saturating_sub(waited))
                .max(Duration::from_millis(1)),
        );
    }
}

/// [`wait_until`] for async callers (the demo runs inside tokio): the condition is a
/// future, and waiting does not block a runtime thread.
///
/// The elapsed time is measured with the real clock even when tokio's clock is paused,
/// because it reports a kernel-side effect, not a simulated one.
pub async fn wait_until_async<F, Fut>(
    mut condition: F,
    timeout: Duration,
    poll: Duration,
) -> Result<Duration, LabError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return Ok(start.elapsed());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(LabError::Timeout {
                what: "condition".to_owned(),
                waited,
            });
        }
        let step = poll
            .min(timeout.saturating_sub(waited))
            .max(Duration::from_millis(1));
        tokio::time::sleep(step).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeline_prints_relative_milliseconds_in_order() {
        let start = Instant::now();
        let mut t = Timeline::starting_at(start);
        t.record_at(start + Duration::from_millis(372), "switched to wan2");
        t.record_at(start + Duration::from_millis(5), "cut wan1");
        t.record_at(
            start.checked_sub(Duration::from_millis(1)).unwrap_or(start),
            "before",
        );
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[2].ends_with("  before") && lines[2].trim_start().starts_with('0'));
        assert!(lines[3].contains("5  cut wan1"));
        assert!(lines[4].contains("372  switched to wan2"));
    }

    #[test]
    fn wait_until_measures_and_times_out() {
        let start = Instant::now();
        let took = wait_until(
            || start.elapsed() >= Duration::from_millis(30),
            Duration::from_secs(2),
            Duration::from_millis(5),
        )
        .unwrap();
        assert!(took >= Duration::from_millis(30) && took < Duration::from_secs(2));
        let err = wait_until(
            || false,
            Duration::from_millis(20),
            Duration::from_millis(5),
        );
        assert!(matches!(err, Err(LabError::Timeout { .. })));
        let immediate = wait_until(|| true, Duration::ZERO, Duration::from_millis(5)).unwrap();
        assert!(immediate < Duration::from_millis(5));
    }

    #[test]
    fn wait_until_async_measures_and_times_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let took = wait_until_async(
                || async move { start.elapsed() >= Duration::from_millis(20) },
                Duration::from_secs(2),
                Duration::from_millis(5),
            )
            .await
            .unwrap();
            assert!(took >= Duration::from_millis(20));
            let err = wait_until_async(
                || async { false },
                Duration::from_millis(20),
                Duration::from_millis(5),
            )
            .await;
            assert!(matches!(err, Err(LabError::Timeout { .. })));
        });
    }
}
