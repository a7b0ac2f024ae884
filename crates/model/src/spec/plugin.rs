//! `plugin.routerd.net/v1alpha1` kinds: plugin manifests, dynamic sources and
//! the wire objects exchanged with a plugin process.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{ActionPlan, Directive};
use crate::id::ObjectRef;
use crate::resource::{Metadata, Resource};

/// When a plugin runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// `interval` or `event`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Period of an interval trigger (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Event topic of an event trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// The allowlisted resources a plugin may see.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginContextSpec {
    #[serde(default)]
    #[allow(missing_docs)]
    pub resources: Vec<ObjectRef>,
}

/// A trusted local executable producing dynamic configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSpec {
    /// Absolute path; run with no shell and no arguments.
    #[serde(default)]
    pub executable: String,
    /// Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Extra environment (on top of PATH).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub triggers: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub context: Option<PluginContextSpec>,
}

/// How a source's parts merge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergePolicy {
    /// Only `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// Binds a plugin to a dynamic-config source with a TTL and triggers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicConfigSourceSpec {
    #[serde(default)]
    #[allow(missing_docs)]
    pub plugin_ref: String,
    /// Required positive Go duration.
    #[serde(default)]
    pub ttl: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub merge_policy: Option<MergePolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub triggers: Vec<Trigger>,
}

/// What started a plugin run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestTrigger {
    /// `manual`, `interval` or `event`.
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub topic: Option<String>,
    /// For `event`: the resource the event is about (`Kind/name`), so a
    /// plugin can react to one resource without re-reading every status.
    /// An addition to routerd's `{type, topic}`; plugins that ignore it see
    /// routerd's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For `event`: the event's reason, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `event`: the event's attributes (for example `selected` and
    /// `previous` of `routerd.lan.route.changed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// For `event`: how many matching events this run stands for. A burst
    /// coalesces into one run; the request describes the latest event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced: Option<u64>,
}

/// One allowlisted, redacted resource in a request's context.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextResource {
    #[allow(missing_docs)]
    pub api_version: String,
    #[allow(missing_docs)]
    pub kind: String,
    #[allow(missing_docs)]
    pub name: String,
    #[allow(missing_docs)]
    pub spec: serde_json::Value,
}

/// Request context.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub resources: Option<Vec<ContextResource>>,
}

/// `PluginRequest.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginRequestSpec {
    #[allow(missing_docs)]
    pub trigger: RequestTrigger,
    #[serde(default)]
    #[allow(missing_docs)]
    pub startup_config_hash: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub effective_generation: i64,
    #[serde(default)]
    #[allow(missing_docs)]
    pub previous_dynamic_generation: i64,
    #[allow(missing_docs)]
    pub now: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub events: Vec<serde_json::Value>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub context: RequestContext,
}

/// The wire object routerd writes to a plugin's stdin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginRequest {
    #[allow(missing_docs)]
    pub api_version: String,
    #[allow(missing_docs)]
    pub kind: String,
    #[allow(missing_docs)]
    pub metadata: Metadata,
    #[allow(missing_docs)]
    pub spec: PluginRequestSpec,
}

/// An informational event a plugin reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginEvent {
    #[serde(default, rename = "type")]
    #[allow(missing_docs)]
    pub type_: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[allow(missing_docs)]
    pub attributes: BTreeMap<String, String>,
}

/// `PluginResult.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginResultStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub observed_at: Option<DateTime<Utc>>,
    /// Required positive Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub directives: Vec<Directive>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub action_plans: Vec<ActionPlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub events: Vec<PluginEvent>,
}

/// The wire object a plugin prints on stdout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginResult {
    #[serde(default)]
    #[allow(missing_docs)]
    pub api_version: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub kind: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub metadata: Metadata,
    #[serde(default)]
    #[allow(missing_docs)]
    pub status: PluginResultStatus,
}
