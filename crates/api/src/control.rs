//! Control API wire types (HTTP and JSON over the daemon's Unix socket).
//!
//! Paths live under [`PREFIX`]; bodies carry `apiVersion:
//! control.routerd.net/v1alpha1` and a `kind`. Shapes follow routerd's
//! control API (routerd-spec §7.3) where they fit.

use serde::{Deserialize, Serialize};

/// Path prefix of every endpoint.
pub const PREFIX: &str = "/api/control.routerd.net/v1alpha1";

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How long `apply` and `delete` wait for the reconcile step that carries
/// their generation, unless the request says otherwise.
pub const DEFAULT_APPLY_TIMEOUT_SECONDS: u64 = 30;

/// The longest wait a request may ask for.
pub const MAX_APPLY_TIMEOUT_SECONDS: u64 = 300;

/// The JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Always `control.routerd.net/v1alpha1`.
    pub api_version: String,
    /// Always `Error`.
    pub kind: String,
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ErrorBody {
            api_version: routerd_model::id::CONTROL_API.into(),
            kind: "Error".into(),
            error: ErrorDetail {
                message: message.into(),
            },
        }
    }
}

/// `POST /apply`: upsert (or with `replace`, replace) the startup config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kind: Option<String>,
    /// The candidate configuration (YAML text).
    pub candidate_yaml: String,
    /// The name the operator gave the candidate (the `-f` file, `<stdin>`),
    /// so errors cite `config/extra.yaml:4:5` rather than `<candidate>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Replace the whole config instead of upserting resources.
    #[serde(default)]
    pub replace: bool,
    /// Only compute and return the result.
    #[serde(default)]
    pub dry_run: bool,
    /// Seconds to wait for the step that runs the new configuration
    /// (default [`DEFAULT_APPLY_TIMEOUT_SECONDS`], at most
    /// [`MAX_APPLY_TIMEOUT_SECONDS`]; 0 answers as soon as it is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// `POST /plan` and `POST /validate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kind: Option<String>,
    /// The candidate configuration (YAML text); empty means the current one.
    #[serde(default)]
    pub candidate_yaml: String,
    /// As [`ApplyRequest::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Replace rather than upsert.
    #[serde(default)]
    pub replace: bool,
}

/// `POST /delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kind: Option<String>,
    /// `Kind/name`.
    pub target: String,
    /// apiVersion of the target when the kind is ambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_api_version: Option<String>,
    /// Only report what would be deleted.
    #[serde(default)]
    pub dry_run: bool,
    /// As [`ApplyRequest::timeout_seconds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// `POST /dynamic/drop`: revoke a stored dynamic part now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicDropRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kind: Option<String>,
    /// The part's name (`Plugin-cloud-7`), `SOURCE#GENERATION`, or a source
    /// (`Plugin/cloud`: every stored generation of it).
    pub part: String,
}

/// `POST /plugin/run`: run a plugin now (trigger `manual`) and store its part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRunRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub kind: Option<String>,
    /// Plugin name.
    pub name: String,
}
