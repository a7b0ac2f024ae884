//! `config.routerd.net/v1alpha1` kinds: dynamic-config permissions and parts.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::ObjectRef;
use crate::resource::Resource;

/// Grants dynamic sources permission to mask startup resources. Startup
/// config only: a dynamic part can never grant itself permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicOverridePolicySpec {
    /// Allow rules.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
}

/// One permission: `source` may perform `operations` on `targets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowRule {
    /// Dynamic source id, e.g. `Plugin/cloud`.
    #[serde(default)]
    pub source: String,
    /// Only `mask`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Exact targets.
    #[serde(default)]
    pub targets: Vec<ObjectRef>,
}

/// A directive of a dynamic part; only `mask` exists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Directive {
    /// `mask`.
    #[serde(default)]
    pub op: String,
    /// The startup resource to suppress.
    #[serde(default)]
    pub target: ObjectRef,
    /// Why (shown in `suppressed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The target of a provider action plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub nic_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub route_table_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub capture_strategy: Option<String>,
}

/// A precondition of an action plan (display only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionPrecondition {
    #[serde(default)]
    #[allow(missing_docs)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub expect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub target: Option<String>,
}

/// How to undo an action plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionUndo {
    #[serde(default)]
    #[allow(missing_docs)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A cloud-provider action a plugin proposes. Inert: carried and displayed,
/// never executed by routerd.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionPlan {
    #[serde(default)]
    #[allow(missing_docs)]
    pub name: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub provider_ref: Option<String>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub action: String,
    /// Empty or `dry-run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub risk_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub target: Option<ActionTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub preconditions: Vec<ActionPrecondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[allow(missing_docs)]
    pub expected_effects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub undo: Option<ActionUndo>,
}

const PROVIDERS: &[&str] = &["aws", "azure", "oci", "gcp"];
const ACTIONS: &[&str] = &[
    "assign-secondary-ip",
    "unassign-secondary-ip",
    "assign-route-table-route",
    "unassign-route-table-route",
    "ensure-forwarding-enabled",
    "ensure-forwarding-disabled",
];

impl ActionPlan {
    /// Checks the plan the way routerd's `ValidateActionPlan` does; the
    /// first problem is returned with routerd's wording.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.trim().is_empty() {
            return Err("actionPlan name is required".into());
        }
        if self.provider.is_empty() {
            return Err(format!("actionPlan \"{n}\" provider is required"));
        }
        if !PROVIDERS.contains(&self.provider.as_str()) {
            return Err(format!(
                "actionPlan \"{n}\" provider \"{}\" must be one of aws, azure, oci, gcp",
                self.provider
            ));
        }
        let a = self.action.as_str();
        if a.is_empty() {
            return Err(format!("actionPlan \"{n}\" action is required"));
        }
        if !ACTIONS.contains(&a) {
            return Err(format!(
                "actionPlan \"{n}\" action \"{a}\" must be one of {}",
                ACTIONS.join(", ")
            ));
        }
        let t = self.target.clone().unwrap_or_default();
        let need = |v: &Option<String>, f: &str| -> Result<(), String> {
            if v.as_deref().is_none_or(str::is_empty) {
                Err(format!(
                    "actionPlan \"{n}\" action \"{a}\" requires target.{f}"
                ))
            } else {
                Ok(())
            }
        };
        match a {
            "assign-secondary-ip" | "unassign-secondary-ip" => {
                need(&t.address, "address")?;
                need(&t.nic_ref, "nicRef")?;
                if t.capture_strategy.as_deref() == Some("route-table") {
                    need(&t.route_table_ref, "routeTableRef")?;
                }
            }
            "assign-route-table-route" | "unassign-route-table-route" => {
                need(&t.address, "address")?;
                need(&t.route_table_ref, "routeTableRef")?;
                need(&t.nic_ref, "nicRef")?;
            }
            _ => {}
        }
        match self.mode.as_deref().unwrap_or("") {
            "" | "dry-run" => {}
            "execute" => {
                return Err("actionPlan mode=execute is not supported; provider actions are dry-run/display-only in Phase 4.1".into());
            }
            m => {
                return Err(format!(
                    "actionPlan \"{n}\" mode \"{m}\" must be empty or dry-run"
                ));
            }
        }
        if let Some(r) = self.risk_level.as_deref()
            && !r.is_empty()
            && !["low", "medium", "high"].contains(&r)
        {
            return Err(format!(
                "actionPlan \"{n}\" riskLevel \"{r}\" must be one of low, medium, high"
            ));
        }
        if let Some(u) = &self.undo {
            if u.action.is_empty() {
                return Err(format!("actionPlan \"{n}\" undo.action is required"));
            }
            if !ACTIONS.contains(&u.action.as_str()) {
                return Err(format!(
                    "actionPlan \"{n}\" undo.action \"{}\" must be one of {}",
                    u.action,
                    ACTIONS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// One generation of dynamic configuration from one source. Runtime only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicConfigPartSpec {
    /// Stable producer id, e.g. `Plugin/cloud`.
    #[serde(default)]
    pub source: String,
    /// Monotonic per source.
    #[serde(default)]
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub observed_at: Option<DateTime<Utc>>,
    /// Expired when `now >= expiresAt`; unset never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the canonical `{resources, directives}` JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Added resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Masks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directives: Vec<Directive>,
    /// Inert provider action plans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_plans: Vec<ActionPlan>,
}

impl DynamicConfigPartSpec {
    /// Whether the part has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}
