//! Effective configuration of the plan: startup + dynamic parts − masks
//! (routerd-merge), with what is suppressed and the state of every part.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use routerd_merge::{Effective, Part, Startup};
use routerd_model::Resource;

use super::{PlanDocument, PlanError, PlanInputs};

pub(super) fn run(inputs: &PlanInputs, doc: &mut PlanDocument) -> Result<(), PlanError> {
    let view = merge_view(&inputs.startup, &inputs.dynamic_parts, inputs.now)?;
    doc.effective = view.effective;
    doc.suppressed = view.suppressed;
    doc.dynamic_parts = view.dynamic_parts;
    Ok(())
}

/// The merge stage's result: what the plan document shows and the daemon
/// keeps between steps.
#[derive(Debug, Clone, Default)]
pub struct MergeView {
    /// Effective resources, sorted by id; dynamic ones carry their
    /// provenance as annotations.
    pub effective: Vec<Resource>,
    /// Startup resources suppressed by dynamic masks.
    pub suppressed: Vec<serde_json::Value>,
    /// Every dynamic part with its state and reason.
    pub dynamic_parts: Vec<serde_json::Value>,
    /// What every HybridRoute lowered to, or why it did not (its lowered
    /// IPv4Routes are in `effective`, owned by it).
    pub lowering: routerd_model::lower::Lowering,
}

/// Startup + active parts − allowed masks at `now`.
pub fn merge_view(
    startup: &[Resource],
    dynamic_parts: &[Resource],
    now: DateTime<Utc>,
) -> Result<MergeView, PlanError> {
    build_effective(startup, dynamic_parts, now).map(|merged| view_of(&merged))
}

/// The merge result itself, for a caller that keeps it and applies part
/// changes to it incrementally (the daemon).
pub fn build_effective(
    startup: &[Resource],
    dynamic_parts: &[Resource],
    now: DateTime<Utc>,
) -> Result<Effective, PlanError> {
    let parts = dynamic_parts
        .iter()
        .cloned()
        .map(Part::from_resource)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    let startup = Arc::new(Startup::new(startup.to_vec()));
    Effective::build(startup, parts, now).map_err(|e| PlanError::Invalid(e.to_string()))
}

/// The [`MergeView`] of a merge result (the daemon keeps an [`Effective`]
/// and applies part changes to it incrementally).
///
/// HybridRoutes are lowered here, on the effective configuration, so a
/// HybridRoute a dynamic part brings lowers like a startup one, and the
/// lowered IPv4Routes flow through the route follower and the renderer
/// like any other (routerd-spec §2.2: merge, then lowering).
pub fn view_of(merged: &Effective) -> MergeView {
    let (effective, lowering) =
        routerd_model::lower::with_lowered(merged.iter().map(|e| e.annotated()).collect());
    MergeView {
        effective,
        suppressed: merged.suppressed().iter().map(json).collect(),
        dynamic_parts: merged.parts().iter().map(json).collect(),
        lowering,
    }
}

/// The document keeps these lists as JSON values. Our report structs are
/// plain data whose serialization cannot fail; `Null` is only a guard.
fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use routerd_model::spec::{
        AllowRule, Directive, DynamicConfigPartSpec, DynamicOverridePolicySpec, InterfaceSpec,
    };
    use routerd_model::{Kind, ObjectRef, Resource, Spec};

    use crate::plan::{PlanInputs, build_plan};

    fn iface(name: &str) -> Resource {
        Resource::new(
            name,
            Spec::Interface(InterfaceSpec {
                ifname: format!("if-{name}"),
                ..InterfaceSpec::default()
            }),
        )
    }

    #[test]
    fn dynamic_parts_fill_effective_suppressed_and_dynamic_parts() {
        let now: DateTime<Utc> = "2026-05-29T12:00:00Z".parse().unwrap();
        let backup = ObjectRef {
            api_version: Kind::Interface.api_version().into(),
            kind: "Interface".into(),
            name: "backup".into(),
        };
        let policy = Resource::new(
            "p",
            Spec::DynamicOverridePolicy(DynamicOverridePolicySpec {
                allow: vec![AllowRule {
                    source: "Plugin/cloud".into(),
                    operations: vec!["mask".into()],
                    targets: vec![backup.clone()],
                }],
            }),
        );
        let part = Resource::new(
            "Plugin-cloud-7",
            Spec::DynamicConfigPart(Box::new(DynamicConfigPartSpec {
                source: "Plugin/cloud".into(),
                generation: 7,
                expires_at: Some(now + chrono::TimeDelta::hours(1)),
                resources: vec![iface("overlay")],
                directives: vec![Directive {
                    op: "mask".into(),
                    target: backup,
                    reason: Some("metered".into()),
                }],
                ..DynamicConfigPartSpec::default()
            })),
        );
        let inputs = PlanInputs {
            startup: vec![iface("wan"), iface("backup"), policy],
            dynamic_parts: vec![part],
            now,
            ..PlanInputs::default()
        };
        let doc = build_plan(&inputs).unwrap();
        let names: Vec<&str> = doc.effective.iter().map(Resource::name).collect();
        assert_eq!(names, vec!["p", "overlay", "wan"]);
        let overlay = &doc.effective[1];
        assert_eq!(
            overlay
                .metadata
                .annotations
                .get("routerd.net/dynamic-generation"),
            Some(&"7".to_string())
        );
        assert_eq!(doc.suppressed.len(), 1);
        assert_eq!(doc.suppressed[0]["maskedBy"][0], "Plugin/cloud#7");
        assert_eq!(doc.dynamic_parts[0]["state"], "active");
        assert_eq!(doc.dynamic_parts[0]["name"], "Plugin-cloud-7");
    }

    #[test]
    fn a_non_part_in_dynamic_is_an_error() {
        let inputs = PlanInputs {
            dynamic_parts: vec![iface("x")],
            ..PlanInputs::default()
        };
        let err = build_plan(&inputs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "net.routerd.net/v1alpha1/Interface/x is not a DynamicConfigPart"
        );
    }
}
