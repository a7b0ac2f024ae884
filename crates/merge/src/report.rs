//! What the merge explains: where each effective resource came from, what
//! is suppressed and why, and the state of every part.

use chrono::{DateTime, Utc};
use routerd_model::{ObjectRef, Resource};
use serde::{Deserialize, Serialize};

use crate::engine::Effective;
use crate::part::PartData;

/// Annotation naming the source of a dynamic resource (routerd stamps the
/// same key on subscription-produced resources).
pub const ANNOTATION_SOURCE: &str = "routerd.net/dynamic-source";
/// Annotation with the generation of the part a dynamic resource came from.
pub const ANNOTATION_GENERATION: &str = "routerd.net/dynamic-generation";
/// Annotation with the digest of that part.
pub const ANNOTATION_DIGEST: &str = "routerd.net/dynamic-digest";
/// Annotation with the name of that part.
pub const ANNOTATION_PART: &str = "routerd.net/dynamic-part";

/// Where an effective resource came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provenance<'a> {
    /// The operator's startup configuration.
    Startup,
    /// A dynamic part.
    Dynamic {
        /// Part name.
        part: &'a str,
        /// `spec.source`.
        source: &'a str,
        /// `spec.generation`.
        generation: i64,
        /// `spec.digest`, or the computed digest when the part had none.
        digest: &'a str,
    },
}

impl<'a> Provenance<'a> {
    pub(crate) fn of(p: &'a PartData) -> Provenance<'a> {
        Provenance::Dynamic {
            part: &p.name,
            source: &p.spec.source,
            generation: p.spec.generation,
            digest: &p.digest,
        }
    }
}

/// One effective resource, borrowed from startup or from its part.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The resource.
    pub resource: &'a Resource,
    /// Where it came from.
    pub provenance: Provenance<'a>,
}

impl Entry<'_> {
    /// A copy of the resource with its provenance as annotations (dynamic
    /// resources only; startup resources are copied unchanged).
    pub fn annotated(&self) -> Resource {
        let mut r = self.resource.clone();
        if let Provenance::Dynamic {
            part,
            source,
            generation,
            digest,
        } = self.provenance
        {
            let a = &mut r.metadata.annotations;
            a.insert(ANNOTATION_SOURCE.into(), source.into());
            a.insert(ANNOTATION_GENERATION.into(), generation.to_string());
            a.insert(ANNOTATION_DIGEST.into(), digest.into());
            a.insert(ANNOTATION_PART.into(), part.into());
        }
        r
    }
}

/// A startup resource hidden by masks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppressed {
    /// The masked startup resource.
    pub target: ObjectRef,
    /// Every masking part as `source#generation`, sorted by source.
    pub masked_by: Vec<String>,
    /// When the last mask expires (the latest `expiresAt`); absent when a
    /// masking part never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_until: Option<DateTime<Utc>>,
    /// Directive reasons, trimmed, sorted, de-duplicated and `"; "`-joined
    /// (routerd's format).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The state of a part in a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PartState {
    /// Merged.
    Active,
    /// `expiresAt <= now`; contributes nothing.
    Expired,
    /// A newer active generation of the same source exists.
    Superseded,
    /// Broke a rule; `reason` says which. Contributes nothing.
    Rejected,
}

impl PartState {
    /// The state as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Active => "active",
            PartState::Expired => "expired",
            PartState::Superseded => "superseded",
            PartState::Rejected => "rejected",
        }
    }
}

/// One part in the `dynamicParts` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartReport {
    /// Part name.
    pub name: String,
    /// `spec.source`.
    pub source: String,
    /// `spec.generation`.
    pub generation: i64,
    /// State.
    pub state: PartState,
    /// Why the part is not active (empty when it is).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Digest used as provenance.
    pub digest: String,
    /// `spec.observedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
    /// `spec.expiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Number of resources the part carries.
    pub resources: usize,
    /// Number of directives the part carries.
    pub directives: usize,
}

/// The merge as one serializable document (the `effective`, `suppressed`
/// and `dynamicParts` of a plan; golden tests compare it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The instant merged for.
    pub now: DateTime<Utc>,
    /// Effective resources sorted by id; dynamic ones carry provenance
    /// annotations.
    pub effective: Vec<Resource>,
    /// Suppressed startup resources.
    pub suppressed: Vec<Suppressed>,
    /// Every part with its state.
    pub dynamic_parts: Vec<PartReport>,
}

impl Effective {
    /// The whole result as a document.
    pub fn document(&self) -> Document {
        Document {
            now: self.now(),
            effective: self.iter().map(|e| e.annotated()).collect(),
            suppressed: self.suppressed(),
            dynamic_parts: self.parts(),
        }
    }
}
