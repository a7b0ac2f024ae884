//! Bus events, shaped like routerd's (`type`, `severity`, `daemon`,
//! `resource`, `reason`, `message`, string `attributes`) because operators'
//! tooling filters on those keys and event names.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::ObjectRef;

/// The component that emitted an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    /// e.g. `routerd`.
    pub name: String,
    /// e.g. `routerd`.
    pub kind: String,
    /// e.g. `controller`.
    pub instance: String,
}

impl EventSource {
    /// The daemon's controller source `{routerd, routerd, controller}`.
    pub fn controller() -> Self {
        EventSource {
            name: "routerd".into(),
            kind: "routerd".into(),
            instance: "controller".into(),
        }
    }
}

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Store-assigned cursor (0 until stored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub id: u64,
    /// Topic, e.g. `routerd.lan.route.changed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `info`, `warning`, `error` or `debug`.
    pub severity: String,
    /// When it happened (the injected clock's `now`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Emitter.
    pub daemon: EventSource,
    /// Subject resource.
    pub resource: ObjectRef,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// String attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Event {
    /// An `info` event of `type_` about `resource` from the controller.
    pub fn info(type_: impl Into<String>, resource: ObjectRef, time: DateTime<Utc>) -> Self {
        Event {
            id: 0,
            type_: type_.into(),
            severity: "info".into(),
            time: Some(time),
            daemon: EventSource::controller(),
            resource,
            reason: String::new(),
            message: String::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.attributes.insert(k.into(), v.into());
        self
    }
}
