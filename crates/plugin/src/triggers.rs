//! When a plugin runs, as data.
//!
//! routerd validates `spec.triggers` but never runs them (spec §6.6). The
//! plan here is what `scheduler::drive` (feature `runner`) executes: a set
//! of intervals and a set of event topics.

use std::collections::BTreeSet;
use std::time::Duration;

use routerd_model::GoDuration;
use routerd_model::spec::Trigger;

/// Shortest interval honoured; shorter ones are raised to it so a typo
/// (`every: 1ms`) cannot turn a plugin into a fork bomb.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The triggers of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerPlan {
    /// Periods of `interval` triggers, deduplicated and sorted.
    pub intervals: Vec<Duration>,
    /// Topics of `event` triggers.
    pub topics: BTreeSet<String>,
}

/// A trigger that cannot be scheduled (validation reports the same problems
/// with positions; this is the runtime's guard).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// Unknown type.
    #[error("spec.triggers[{0}].type must be interval or event")]
    Type(usize),
    /// Interval without a usable `every`.
    #[error("spec.triggers[{0}].every must be a positive duration")]
    Every(usize),
    /// Event without a topic.
    #[error("spec.triggers[{0}].topic is required for event triggers")]
    Topic(usize),
}

impl TriggerPlan {
    /// Builds the plan from a Plugin's (or DynamicConfigSource's) triggers.
    pub fn from_triggers(triggers: &[Trigger]) -> Result<Self, TriggerError> {
        let mut plan = TriggerPlan::default();
        for (i, t) in triggers.iter().enumerate() {
            match t.type_.as_str() {
                "interval" => {
                    let every = t
                        .every
                        .as_deref()
                        .map(str::trim)
                        .and_then(|e| GoDuration::parse(e).ok())
                        .filter(|d| d.is_positive())
                        .ok_or(TriggerError::Every(i))?;
                    let every = every.to_std().max(MIN_INTERVAL);
                    if !plan.intervals.contains(&every) {
                        plan.intervals.push(every);
                    }
                }
                "event" => {
                    let topic = t
                        .topic
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .ok_or(TriggerError::Topic(i))?;
                    plan.topics.insert(topic.to_string());
                }
                _ => return Err(TriggerError::Type(i)),
            }
        }
        plan.intervals.sort();
        Ok(plan)
    }

    /// Whether nothing would ever run the plugin automatically.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty() && self.topics.is_empty()
    }

    /// Whether an event of `topic` runs the plugin.
    pub fn matches_topic(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(type_: &str, every: Option<&str>, topic: Option<&str>) -> Trigger {
        Trigger {
            type_: type_.into(),
            every: every.map(Into::into),
            topic: topic.map(Into::into),
        }
    }

    #[test]
    fn plan_collects_intervals_and_topics() {
        let plan = TriggerPlan::from_triggers(&[
            t("interval", Some("5m"), None),
            t("interval", Some("30s"), None),
            t("interval", Some("5m"), None),
            t("event", None, Some("routerd.lan.route.changed")),
            t("interval", Some("1ms"), None),
        ])
        .unwrap();
        assert_eq!(
            plan.intervals,
            vec![
                MIN_INTERVAL,
                Duration::from_secs(30),
                Duration::from_secs(300)
            ]
        );
        assert!(plan.matches_topic("routerd.lan.route.changed"));
        assert!(!plan.matches_topic("other"));
    }

    #[test]
    fn bad_triggers_are_refused() {
        assert_eq!(
            TriggerPlan::from_triggers(&[t("cron", None, None)]),
            Err(TriggerError::Type(0))
        );
        assert_eq!(
            TriggerPlan::from_triggers(&[t("interval", Some("-1s"), None)]),
            Err(TriggerError::Every(0))
        );
        assert_eq!(
            TriggerPlan::from_triggers(&[t("event", None, Some(" "))]),
            Err(TriggerError::Topic(0))
        );
        assert!(TriggerPlan::from_triggers(&[]).unwrap().is_empty());
    }
}
