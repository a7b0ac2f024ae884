//! Effective configuration of the plan.

use super::{PlanDocument, PlanError, PlanInputs};

pub(super) fn run(inputs: &PlanInputs, doc: &mut PlanDocument) -> Result<(), PlanError> {
    if !inputs.dynamic_parts.is_empty() {
        return Err(PlanError::Invalid(
            "--dynamic parts need the merge engine (routerd-merge), which this build lacks".into(),
        ));
    }
    let mut effective = inputs.startup.clone();
    effective.sort_by_key(|r| r.id());
    doc.effective = effective;
    Ok(())
}
