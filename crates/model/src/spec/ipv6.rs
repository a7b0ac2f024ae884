//! IPv6 kinds of `net.routerd.net/v1alpha1` that routerd-rs carries.
//!
//! Kept apart from `net.rs` so the IPv6 work and the field-completion of
//! the other kinds do not edit the same lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A static IPv6 route (routerd `IPv6StaticRouteSpec`): `destination via
/// <via> dev <interface> [metric <metric>]` in the main table. Exactly
/// routerd's four fields; no `*From`, no `when`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPv6StaticRouteSpec {
    /// IPv6 prefix (required).
    #[serde(default)]
    pub destination: String,
    /// IPv6 next hop (required; link-local is fine, the device scopes it).
    #[serde(default)]
    pub via: String,
    /// Logical interface the route leaves through (required, must exist).
    #[serde(default)]
    pub interface: String,
    /// Route metric, ≥ 0; 0 (the default) is the kernel's 1024 for IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub metric: Option<i64>,
}
