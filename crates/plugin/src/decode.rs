//! Decoding a plugin's stdout.
//!
//! Decoding is deliberately shallow: the envelope and status fields are read
//! as JSON, but resources stay raw JSON values so that
//! [`part_from_result`](crate::part_from_result) can report each missing field
//! with routerd's exact message and index before the typed (strict) resource
//! decoder runs. Only JSON is accepted (routerd also accepts YAML): YAML's
//! aliases and implicit typing are attack surface a plugin protocol does not
//! need.

use chrono::{DateTime, Utc};
use routerd_model::spec::{ActionPlan, Directive, PluginEvent};
use serde::{Deserialize, Serialize};

/// A decoded but unchecked `PluginResult`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDocument {
    /// Must be `plugin.routerd.net/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// Must be `PluginResult`.
    #[serde(default)]
    pub kind: String,
    /// Informational; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// What the plugin observed.
    #[serde(default)]
    pub status: ResultStatus,
}

/// `PluginResult.status`, before checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultStatus {
    /// When the plugin observed the world; defaults to the conversion time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
    /// Go duration string; any JSON so that a number or object gets the
    /// protocol's "must be a valid duration" message instead of a decode error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<serde_json::Value>,
    /// Resources to add, raw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<serde_json::Value>,
    /// Masks of startup resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directives: Vec<Directive>,
    /// Inert provider action plans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_plans: Vec<ActionPlan>,
    /// Informational events (counted and shown only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<PluginEvent>,
}

/// Stdout was not a `PluginResult` document.
#[derive(Debug, thiserror::Error)]
#[error("decode plugin {plugin} stdout: {source}")]
pub struct DecodeError {
    /// The plugin's name.
    pub plugin: String,
    /// What the JSON decoder said.
    #[source]
    pub source: serde_json::Error,
}

/// Decodes stdout of plugin `plugin` (one JSON object, surrounding whitespace
/// allowed, nothing after it).
pub fn decode_result(plugin: &str, stdout: &[u8]) -> Result<ResultDocument, DecodeError> {
    serde_json::from_slice(stdout).map_err(|source| DecodeError {
        plugin: plugin.to_string(),
        source,
    })
}

impl From<routerd_model::spec::PluginResult> for ResultDocument {
    /// Lets Rust plugins and tests author the typed result and feed it
    /// through the same checks as wire input.
    fn from(r: routerd_model::spec::PluginResult) -> Self {
        ResultDocument {
            api_version: r.api_version,
            kind: r.kind,
            metadata: serde_json::to_value(&r.metadata).ok(),
            status: ResultStatus {
                observed_at: r.status.observed_at,
                ttl: r.status.ttl.map(serde_json::Value::String),
                resources: r
                    .status
                    .resources
                    .iter()
                    .filter_map(|x| serde_json::to_value(x).ok())
                    .collect(),
                directives: r.status.directives,
                action_plans: r.status.action_plans,
                events: r.status.events,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_json_names_the_plugin() {
        let e = decode_result("cloud", b"{not json").unwrap_err();
        assert!(
            e.to_string().starts_with("decode plugin cloud stdout: "),
            "{e}"
        );
        assert!(decode_result("cloud", b"{} trailing").is_err());
        assert!(decode_result("cloud", b"").is_err());
    }

    #[test]
    fn decodes_raw_resources() {
        let d = decode_result(
            "cloud",
            br#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult",
                "status":{"ttl":"5m","resources":[{"kind":"X"}],"directives":[{"op":"mask","target":{"apiVersion":"a","kind":"b","name":"c"}}]}}"#,
        )
        .unwrap();
        assert_eq!(d.status.resources.len(), 1);
        assert_eq!(d.status.ttl, Some(serde_json::json!("5m")));
        assert_eq!(d.status.directives[0].target.name, "c");
    }
}
