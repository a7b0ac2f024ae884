//! One keyed work queue for every trigger.
//!
//! Triggers (config change, health transition, carrier event, plugin result,
//! part expiry, netlink drift, periodic resync) enqueue keys. A key that is
//! already pending is not queued twice; a key that is being processed is
//! marked dirty and runs once more after it finishes, so no change is lost
//! and no key runs twice at once. Transient failures retry with per-key
//! exponential backoff that resets on success (the kube-rs gap, style.md §5).
//! Time is tokio's clock, so tests run on paused time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How a processed key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; the key's backoff resets.
    Done,
    /// Failed transiently; retry after the key's backoff.
    Retry,
    /// Failed permanently (invalid input); wait for the next trigger.
    Failed,
}

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First retry delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct State<K> {
    ready: VecDeque<K>,
    pending: HashSet<K>,
    running: HashSet<K>,
    dirty: HashSet<K>,
    delayed: BTreeMap<(Instant, u64), K>,
    failures: HashMap<K, u32>,
    seq: u64,
}

/// The queue.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: std::sync::Mutex<State<K>>,
    notify: Notify,
    backoff: Backoff,
}

impl<K: Clone + Eq + Hash + Ord + std::fmt::Debug> WorkQueue<K> {
    /// An empty queue.
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            state: std::sync::Mutex::new(State {
                ready: VecDeque::new(),
                pending: HashSet::new(),
                running: HashSet::new(),
                dirty: HashSet::new(),
                delayed: BTreeMap::new(),
                failures: HashMap::new(),
                seq: 0,
            }),
            notify: Notify::new(),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A poisoned lock only means a panic elsewhere; the data is a plain
        // queue and stays consistent, so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `key` now.
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.running.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.pending.insert(key.clone()) {
            s.ready.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay` (expiry timers, holds ending, retries).
    /// A key has at most one timer, the earliest asked for: a daemon that
    /// re-arms its next wake on every step keeps one entry, not one per step.
    pub fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        let mut s = self.lock();
        let existing = s
            .delayed
            .iter()
            .find(|(_, k)| **k == key)
            .map(|(slot, _)| *slot);
        match existing {
            Some((t, _)) if t <= at => return,
            Some(slot) => {
                s.delayed.remove(&slot);
            }
            None => {}
        }
        s.seq += 1;
        let seq = s.seq;
        s.delayed.insert((at, seq), key);
        drop(s);
        self.notify.notify_one();
    }

    /// The next key to process; waits until one is due.
    pub async fn next(&self) -> K {
        loop {
            let wake = {
                let mut s = self.lock();
                let now = Instant::now();
                while let Some(entry) = s.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let k = entry.remove();
                    if s.running.contains(&k) {
                        s.dirty.insert(k);
                    } else if s.pending.insert(k.clone()) {
                        s.ready.push_back(k);
                    }
                }
                if let Some(k) = s.ready.pop_front() {
                    s.pending.remove(&k);
                    s.running.insert(k.clone());
                    return k;
                }
                s.delayed.keys().next().map(|(t, _)| *t)
            };
            match wake {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Reports how processing `key` ended.
    pub fn done(&self, key: K, outcome: Outcome) {
        let mut s = self.lock();
        s.running.remove(&key);
        let retry_in = match outcome {
            Outcome::Done | Outcome::Failed => {
                s.failures.remove(&key);
                None
            }
            Outcome::Retry => {
                let n = s.failures.entry(key.clone()).or_insert(0);
                *n = n.saturating_add(1);
                let exp = (*n - 1).min(16);
                let d = self
                    .backoff
                    .initial
                    .saturating_mul(1u32 << exp)
                    .min(self.backoff.max);
                Some(d)
            }
        };
        let dirty = s.dirty.remove(&key);
        drop(s);
        match retry_in {
            Some(d) if !dirty => self.add_after(key, d),
            _ if dirty => self.add(key),
            _ => {}
        }
    }

    /// The current failure count of `key` (for status and metrics).
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Keys waiting (ready plus delayed).
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.delayed.len()
    }

    /// Keys ready to run now, and keys scheduled for later (a retry's
    /// backoff, or the next instant a hold ends or health goes stale):
    /// only the first is a backlog.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.ready.len(), s.delayed.len())
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pending_key_is_queued_once() {
        let q = WorkQueue::new(Backoff::default());
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_changed_while_running_runs_once_more_afterwards() {
        let q = WorkQueue::new(Backoff::default());
        q.add("a");
        let k = q.next().await;
        q.add("a"); // a trigger arrives while "a" is being processed
        assert!(q.is_empty(), "must not run twice at once");
        q.done(k, Outcome::Done);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_exponentially_and_reset_on_success() {
        let q = WorkQueue::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        });
        q.add("a");
        let start = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..4 {
            let k = q.next().await;
            delays.push(Instant::now() - start);
            q.done(k, Outcome::Retry);
        }
        let k = q.next().await;
        delays.push(Instant::now() - start);
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        // 0, +100, +200, +350 (capped), +350.
        assert_eq!(ms, vec![0, 100, 300, 650, 1000]);
        assert_eq!(q.failures(&k), 4);
        q.done(k, Outcome::Done);
        assert_eq!(q.failures(&"a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_fire_at_their_time_in_order() {
        let q = WorkQueue::new(Backoff::default());
        q.add_after("late", Duration::from_secs(5));
        q.add_after("early", Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(q.next().await, "early");
        assert_eq!((Instant::now() - t0).as_secs(), 1);
        q.add("now");
        assert_eq!(q.next().await, "now");
        assert_eq!(q.next().await, "late");
        assert_eq!((Instant::now() - t0).as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_keeps_only_its_earliest_timer() {
        let q: WorkQueue<&str> = WorkQueue::new(Backoff::default());
        q.add_after("step", Duration::from_secs(10));
        q.add_after("step", Duration::from_secs(20));
        q.add_after("step", Duration::from_secs(5));
        assert_eq!(q.len(), 1, "one timer per key");
        let start = Instant::now();
        assert_eq!(q.next().await, "step");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        q.done("step", Outcome::Done);
        assert!(q.is_empty(), "the later timers were folded into the first");
    }
}
