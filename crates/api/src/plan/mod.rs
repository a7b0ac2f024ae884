//! The plan document: what routerd would do with a configuration, a state
//! snapshot and a set of dynamic parts at a given instant. It never touches
//! the host. Its shape is a stable contract (docs/cli.md):
//!
//! `{apiVersion, kind: Plan, now, effective, suppressed, dynamicParts, status,
//! events, decisions, dataplane: {routes, rules, nftables}, problems?,
//! unmanaged?}` (the last two only when non-empty).

mod merge_stage;
mod render_stage;
mod select_stage;

pub use merge_stage::{MergeView, build_effective, merge_view, view_of};
pub use render_stage::dataplane_view;
pub use select_stage::{follow_all, follow_all_with_wake};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use routerd_model::id::CONTROL_API;
use routerd_model::{Event, Resource, StateSnapshot};
use serde::{Deserialize, Serialize};

/// Inputs of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    /// Validated startup resources.
    pub startup: Vec<Resource>,
    /// DynamicConfigPart resources (`--dynamic`).
    pub dynamic_parts: Vec<Resource>,
    /// Observed statuses (`--state`), keyed by resource id.
    pub state: StateSnapshot,
    /// The instant the plan is computed for.
    pub now: DateTime<Utc>,
}

/// The kernel state the plan would leave behind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataplaneView {
    /// Routes.
    pub routes: Vec<serde_json::Value>,
    /// Policy rules.
    pub rules: Vec<serde_json::Value>,
    /// nft text of each owned table.
    pub nftables: Vec<serde_json::Value>,
    /// Interface addresses (IPv4StaticAddress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<serde_json::Value>,
    /// Kernel links routerd creates (EgressRouter's macvlan, tunnels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<serde_json::Value>,
    /// Neighbour proxy entries (RemoteAddressClaim capture).
    #[serde(
        default,
        rename = "neighProxies",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub neigh_proxies: Vec<serde_json::Value>,
    /// Devices that must forward IPv4 (capture and delivery).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarding: Vec<serde_json::Value>,
}

/// The plan document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument {
    /// `control.routerd.net/v1alpha1`.
    pub api_version: String,
    /// `Plan`.
    pub kind: String,
    /// The instant planned for.
    pub now: DateTime<Utc>,
    /// Effective resources, sorted by id.
    pub effective: Vec<Resource>,
    /// Startup resources suppressed by dynamic masks.
    pub suppressed: Vec<serde_json::Value>,
    /// Every dynamic part with its state and reason.
    pub dynamic_parts: Vec<serde_json::Value>,
    /// New status per resource id.
    pub status: StateSnapshot,
    /// Events the step would publish.
    pub events: Vec<Event>,
    /// Selection decision record per EgressRoutePolicy id.
    pub decisions: BTreeMap<String, serde_json::Value>,
    /// Desired dataplane.
    pub dataplane: DataplaneView,
    /// Resources of routerd kinds this daemon keeps without managing:
    /// listed so an operator sees they were read, never rendered. The plan
    /// builder leaves this empty; the caller that loaded the files fills it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmanaged: Vec<routerd_model::Unmanaged>,
    /// Resources the renderer could not carry (their statuses in `status`
    /// carry the fault, as the daemon reports them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<routerd_render::render::RenderProblem>,
    /// What to know about resources that did render (IPAddressSet names
    /// without a resolution: offline they render as spec.addresses only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<routerd_render::render::RenderNote>,
}

impl PlanDocument {
    fn empty(now: DateTime<Utc>) -> Self {
        PlanDocument {
            api_version: CONTROL_API.to_string(),
            kind: "Plan".to_string(),
            now,
            effective: Vec::new(),
            suppressed: Vec::new(),
            dynamic_parts: Vec::new(),
            status: StateSnapshot::new(),
            events: Vec::new(),
            decisions: BTreeMap::new(),
            dataplane: DataplaneView::default(),
            problems: Vec::new(),
            unmanaged: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Why a plan could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An input was unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Computes the plan document. Pure: no I/O, no clock.
pub fn build_plan(inputs: &PlanInputs) -> Result<PlanDocument, PlanError> {
    build_plan_with_desired(inputs).map(|(doc, _)| doc)
}

/// [`build_plan`], also returning the typed desired dataplane the document's
/// `dataplane` section was rendered from, so the daemon applies exactly what
/// the plan shows without rendering it a second time.
pub fn build_plan_with_desired(
    inputs: &PlanInputs,
) -> Result<(PlanDocument, routerd_render::DesiredState), PlanError> {
    let mut doc = PlanDocument::empty(inputs.now);
    merge_stage::run(inputs, &mut doc)?;
    select_stage::run(inputs, &mut doc)?;
    let desired = render_stage::run(inputs, &mut doc)?;
    Ok((doc, desired))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// An inline PPPoE password is part of the effective configuration the
    /// plan shows (and the control API's get/describe serialize), so its
    /// serialization must be the redacted one.
    #[test]
    fn the_plan_never_shows_a_pppoe_password() {
        let config = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: PPPoESession\nmetadata: {name: isp}\nspec: {interface: wan, username: u, password: hunter2}\n";
        let (loaded, diags) = routerd_model::load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            dynamic_parts: Vec::new(),
            state: StateSnapshot::new(),
            now: DateTime::<Utc>::UNIX_EPOCH,
        })
        .unwrap();
        let json = serde_json::to_string(&doc).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("<redacted>"), "{json}");
        let debug = format!("{doc:?}");
        assert!(!debug.contains("hunter2"));
    }

    /// routerd's lenient edge: a NAT44Rule naming a policy that does not
    /// exist validates and waits (Pending, EgressPolicyMissing); a dynamic
    /// part that brings the policy resolves it.
    #[test]
    fn a_dangling_egress_policy_ref_waits_for_a_dynamic_part() {
        let config = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: NAT44Rule\nmetadata: {name: masq}\nspec: {type: masquerade, egressPolicyRef: overlay, sourceRanges: [192.168.0.0/16]}\n";
        let (loaded, diags) = routerd_model::load_and_validate(&[("c.yaml", config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let now: DateTime<Utc> = "2026-05-29T12:00:00Z".parse().unwrap();
        let id = "net.routerd.net/v1alpha1/NAT44Rule/masq";
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources.clone(),
            now,
            ..PlanInputs::default()
        })
        .unwrap();
        assert!(
            doc.status.contains_key(id),
            "{:?} {:?}",
            doc.status,
            doc.problems
        );
        assert_eq!(doc.status[id]["phase"], "Pending");
        assert_eq!(doc.status[id]["reason"], "EgressPolicyMissing");

        let part = "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {name: Plugin-cloud-1}\nspec:\n  source: Plugin/cloud\n  generation: 1\n  resources:\n    - apiVersion: net.routerd.net/v1alpha1\n      kind: EgressRoutePolicy\n      metadata: {name: overlay}\n      spec:\n        family: ipv4\n        candidates:\n          - {name: wan, interface: wan, device: eth0, gatewaySource: none}\n";
        let mut l = routerd_model::Loaded::new();
        l.add_file("part.yaml", part);
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        let doc = build_plan(&PlanInputs {
            startup: loaded.resources,
            dynamic_parts: l.resources,
            now,
            ..PlanInputs::default()
        })
        .unwrap();
        assert_eq!(
            doc.dynamic_parts[0]["state"], "active",
            "{:?}",
            doc.dynamic_parts
        );
        let reason = doc.status[id].get("reason").and_then(|r| r.as_str());
        assert_ne!(reason, Some("EgressPolicyMissing"), "{:?}", doc.status[id]);
    }
}
