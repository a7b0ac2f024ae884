//! The merge's per-part rules, applied to one part before it is accepted.
//!
//! In routerd these rules run only inside the merge, where one bad part
//! aborts the whole effective config (spec §8.1). Running them here as well
//! lets the runner reject the offending part alone, with the merge's own
//! error strings (spec §2.1 steps 4 and 6), while the source keeps its
//! previous good part.

use routerd_model::Resource;
use routerd_model::spec::{DynamicConfigPartSpec, DynamicOverridePolicySpec};

/// One violated merge rule. Messages are routerd's, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A directive other than `mask`.
    #[error("unsupported dynamic directive op \"{op}\" from source \"{source_id}\"")]
    UnsupportedOp {
        /// The op.
        op: String,
        /// The part's source.
        source_id: String,
    },
    /// No DynamicOverridePolicy rule lets this source mask this target.
    #[error(
        "dynamic mask not allowed by DynamicOverridePolicy: source=\"{source_id}\" target={target}"
    )]
    MaskNotAllowed {
        /// The part's source.
        source_id: String,
        /// `apiVersion/kind/name`.
        target: String,
    },
    /// The mask names nothing in startup config.
    #[error("mask target not found: source=\"{source_id}\" target={target}")]
    MaskTargetNotFound {
        /// The part's source.
        source_id: String,
        /// `apiVersion/kind/name`.
        target: String,
    },
    /// The mask names a resource the part itself adds.
    #[error("mask target names a dynamic resource: source=\"{source_id}\" target={target}")]
    MaskTargetDynamic {
        /// The part's source.
        source_id: String,
        /// `apiVersion/kind/name`.
        target: String,
    },
    /// A resource has the identity of a startup resource.
    #[error(
        "dynamic resource conflicts with startup resource: source=\"{source_id}\" resource={id}"
    )]
    ConflictsWithStartup {
        /// The part's source.
        source_id: String,
        /// `apiVersion/kind/name`.
        id: String,
    },
}

/// Every rule a part breaks, in the merge's order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CheckErrors(pub Vec<CheckError>);

/// The DynamicOverridePolicy specs of a startup config.
pub fn override_policies(startup: &[Resource]) -> Vec<DynamicOverridePolicySpec> {
    startup
        .iter()
        .filter_map(|r| r.as_override_policy().cloned())
        .collect()
}

/// Checks one part against startup config and its policies: each directive
/// must be a `mask` the policies allow for this source, naming a startup
/// resource that the part does not itself add; no resource may have a startup
/// resource's identity. Reports every violation, not just the first.
pub fn check_against_startup(
    part: &DynamicConfigPartSpec,
    startup: &[Resource],
    policies: &[DynamicOverridePolicySpec],
) -> Result<(), CheckErrors> {
    let source = part.source.as_str();
    let mut errors = Vec::new();
    for d in &part.directives {
        let target = d.target.to_string();
        let t = &d.target;
        if d.op != "mask" {
            errors.push(CheckError::UnsupportedOp {
                op: d.op.clone(),
                source_id: source.to_string(),
            });
            continue;
        }
        let allowed = policies.iter().flat_map(|p| &p.allow).any(|rule| {
            rule.source == source
                && rule.operations.iter().any(|o| o == "mask")
                && rule.targets.iter().any(|x| x == t)
        });
        if !allowed {
            errors.push(CheckError::MaskNotAllowed {
                source_id: source.to_string(),
                target,
            });
            continue;
        }
        if !startup
            .iter()
            .any(|r| r.has_id(&t.api_version, &t.kind, &t.name))
        {
            errors.push(CheckError::MaskTargetNotFound {
                source_id: source.to_string(),
                target,
            });
            continue;
        }
        if part
            .resources
            .iter()
            .any(|r| r.has_id(&t.api_version, &t.kind, &t.name))
        {
            errors.push(CheckError::MaskTargetDynamic {
                source_id: source.to_string(),
                target,
            });
        }
    }
    for r in &part.resources {
        if startup
            .iter()
            .any(|s| s.has_id(&r.api_version, r.kind().as_str(), r.name()))
        {
            errors.push(CheckError::ConflictsWithStartup {
                source_id: source.to_string(),
                id: r.id().to_string(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CheckErrors(errors))
    }
}
