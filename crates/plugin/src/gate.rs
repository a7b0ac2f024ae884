//! One run at a time per plugin, whoever starts it.
//!
//! Two runs of one plugin at once would race on whatever the plugin touches
//! (its cache files, the cloud API it polls) and on the source's generation
//! counter: both would build their request from the same previous
//! generation and produce two different parts with one number. Every path
//! that starts a run (the trigger loops of every configuration generation,
//! the control API behind `routerctl plugin run`) therefore holds the
//! plugin's [`Permit`] for the whole run, from request to judged result.
//!
//! The gate also carries the source's last issued generation, so a path that
//! starts a run reads the number the previous run (from any path) ended with
//! instead of its own, possibly stale, copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Who holds a plugin's gate, for the "already running" answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The trigger type of the run in progress (`interval`, `event`,
    /// `manual`).
    pub trigger: String,
    /// When it took the gate.
    pub since: DateTime<Utc>,
}

/// A plugin is running and the caller chose not to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", busy_message(plugin, holder.as_ref()))]
pub struct Busy {
    /// The plugin.
    pub plugin: String,
    /// The run in progress (absent only in the instant it is ending).
    pub holder: Option<Holder>,
}

fn busy_message(plugin: &str, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "plugin {plugin} is already running ({} run started at {}); its result is stored when it finishes, try again after that",
            h.trigger,
            h.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => format!("plugin {plugin} is already running; try again when it finishes"),
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Highest generation any run through this gate ended with.
    generation: i64,
}

#[derive(Debug, Default)]
struct Gate {
    run: Arc<tokio::sync::Mutex<Slot>>,
    holder: Mutex<Option<Holder>>,
}

/// The per-plugin gates of one daemon. Cloning shares them. Gates are kept
/// for the process's life: there is one per plugin name ever run, a number
/// bounded by the configurations loaded.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

/// The right to run one plugin; the gate opens again when it is dropped.
#[derive(Debug)]
pub struct Permit {
    // Field order matters: `Drop` clears the holder while `slot` still
    // holds the lock, so a new holder is never wiped by the old permit.
    gate: Arc<Gate>,
    slot: tokio::sync::OwnedMutexGuard<Slot>,
    waited: bool,
}

impl Gates {
    /// No plugin running.
    pub fn new() -> Self {
        Gates::default()
    }

    fn gate(&self, plugin: &str) -> Arc<Gate> {
        let mut map = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(plugin.to_string()).or_default())
    }

    /// Takes `plugin`'s gate now, or says who holds it.
    pub fn try_acquire(&self, plugin: &str, holder: Holder) -> Result<Permit, Busy> {
        let gate = self.gate(plugin);
        match Arc::clone(&gate.run).try_lock_owned() {
            Ok(slot) => Ok(Permit::new(gate, slot, holder, false)),
            Err(_) => Err(Busy {
                plugin: plugin.to_string(),
                holder: gate
                    .holder
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            }),
        }
    }

    /// Waits for `plugin`'s gate. Waiters are served in arrival order.
    /// `holder` is called once the gate is taken, so `since` is the start of
    /// the run, not of the wait.
    pub async fn acquire(&self, plugin: &str, holder: impl FnOnce() -> Holder) -> Permit {
        let gate = self.gate(plugin);
        if let Ok(slot) = Arc::clone(&gate.run).try_lock_owned() {
            return Permit::new(gate, slot, holder(), false);
        }
        let slot = Arc::clone(&gate.run).lock_owned().await;
        Permit::new(gate, slot, holder(), true)
    }

    /// The run in progress of `plugin`, if any.
    pub fn running(&self, plugin: &str) -> Option<Holder> {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plugin)
            .cloned()?;
        gate.holder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Permit {
    fn new(
        gate: Arc<Gate>,
        slot: tokio::sync::OwnedMutexGuard<Slot>,
        holder: Holder,
        waited: bool,
    ) -> Self {
        *gate.holder.lock().unwrap_or_else(PoisonError::into_inner) = Some(holder);
        Permit { gate, slot, waited }
    }

    /// Whether another run held the gate when this one asked for it.
    pub fn waited(&self) -> bool {
        self.waited
    }

    /// The highest generation a run through this gate ended with (0 when
    /// none has yet, in this process).
    pub fn generation(&self) -> i64 {
        self.slot.generation
    }

    /// Records the generation this run ended with; never goes back.
    pub fn record_generation(&mut self, generation: i64) {
        self.slot.generation = self.slot.generation.max(generation);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self
            .gate
            .holder
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn by(trigger: &str) -> Holder {
        Holder {
            trigger: trigger.into(),
            since: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn a_held_gate_refuses_and_names_the_holder() {
        let gates = Gates::new();
        let p = gates.try_acquire("cloud", by("interval")).unwrap();
        let busy = gates.try_acquire("cloud", by("manual")).unwrap_err();
        assert_eq!(busy.holder, Some(by("interval")));
        let msg = busy.to_string();
        assert!(msg.contains("plugin cloud is already running"), "{msg}");
        assert!(
            msg.contains("interval run started at 1970-01-01T00:00:00Z"),
            "{msg}"
        );
        // Other plugins are independent.
        assert!(gates.try_acquire("other", by("manual")).is_ok());
        drop(p);
        assert_eq!(gates.running("cloud"), None);
        let p = gates.try_acquire("cloud", by("manual")).unwrap();
        assert!(!p.waited());
        assert_eq!(gates.running("cloud"), Some(by("manual")));
    }

    #[tokio::test]
    async fn a_waiter_runs_after_the_holder_and_sees_its_generation() {
        let gates = Gates::new();
        let mut p = gates.try_acquire("cloud", by("manual")).unwrap();
        let g2 = gates.clone();
        let waiter = tokio::spawn(async move {
            let p = g2.acquire("cloud", || by("interval")).await;
            (p.waited(), p.generation())
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        p.record_generation(7);
        p.record_generation(3);
        drop(p);
        assert_eq!(waiter.await.unwrap(), (true, 7));
    }
}
