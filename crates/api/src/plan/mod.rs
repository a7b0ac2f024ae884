//! The plan document: what routerd would do with a configuration, a state
//! snapshot and a set of dynamic parts at a given instant. It never touches
//! the host. Its shape is a stable contract (docs/cli.md):
//!
//! `{apiVersion, kind: Plan, now, effective, suppressed, dynamicParts, status,
//! events, decisions, dataplane: {routes, rules, nftables}}`.

mod merge_stage;
mod render_stage;
mod select_stage;

pub use merge_stage::{MergeView, build_effective, merge_view, view_of};
pub use render_stage::dataplane_view;
pub use select_stage::follow_all;

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
    /// Resources the renderer could not carry (their statuses in `status`
    /// carry the fault, as the daemon reports them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<routerd_render::render::RenderProblem>,
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
