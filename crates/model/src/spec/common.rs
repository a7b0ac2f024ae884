//! Building blocks shared by several kinds: status references, dependencies
//! and `when` gates.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A value read from another resource's status (`deviceFrom`, `gatewayFrom`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusValueSource {
    /// `Kind/name` of the resource whose status is read.
    #[serde(default)]
    pub resource: String,
    /// Status field; required for `*From` references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A missing resource or value is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A readiness dependency on another resource's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDependency {
    /// `Kind/name` of the resource.
    #[serde(default)]
    pub resource: String,
    /// Status field (default `phase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Ready when the phase equals this (forces field `phase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready when any value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// Ready only when the first value is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_empty: Option<bool>,
    /// A missing resource or value counts as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

impl ResourceDependency {
    /// The status field this dependency reads.
    pub fn effective_field(&self) -> &str {
        if self.phase.is_some() {
            return "phase";
        }
        match self.field.as_deref() {
            Some(f) if !f.is_empty() => f,
            _ => "phase",
        }
    }
}

/// A gate on a resource or candidate: exactly one of `state`, `all`, `any`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhenSpec {
    /// Status matches keyed by `Kind/name` or `Kind/name.field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BTreeMap<String, WhenMatch>>,
    /// All nested gates must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<WhenSpec>>,
    /// At least one nested gate must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<WhenSpec>>,
}

/// One status match of a `when` gate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhenMatch {
    /// The value exists (or does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The value is one of these.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub in_: Option<Vec<String>>,
    /// The value contains this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// `set`, `unset` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The match must have held for this long (Go duration).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// The observation must be at most this old (positive Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}
