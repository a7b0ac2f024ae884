//! Turning a decoded result into a `DynamicConfigPart` candidate (routerd's
//! `DynamicConfigPartFromResult`, spec §6.5), with the checks routerd leaves
//! to merge time done here as well: resources are validated like startup
//! resources, so a bad plugin output is rejected at its source instead of
//! breaking the whole effective config later.

use chrono::{DateTime, TimeDelta, Utc};
use routerd_model::id::CONFIG_API;
use routerd_model::spec::{ActionPlan, Directive, DynamicConfigPartSpec, PluginEvent};
use routerd_model::validate::{Context, NameIndex, validate_one};
use routerd_model::{GoDuration, Kind, Metadata, Resource, Spec};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::decode::ResultDocument;
use crate::{API_VERSION, RESULT_KIND};

/// Limits a result must respect. The defaults are documented in
/// `docs/plugin-protocol.md`; changing them changes the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRules {
    /// Longest honoured TTL; a longer one is capped with a warning, so a
    /// plugin that dies cannot pin its output for years.
    pub max_ttl: GoDuration,
    /// How far `observedAt` may lie after `now` (clock skew between the
    /// plugin and routerd); later is rejected because it would extend expiry.
    pub max_future_skew: TimeDelta,
    /// Most resources in one result.
    pub max_resources: usize,
    /// Most directives in one result.
    pub max_directives: usize,
    /// Most action plans in one result.
    pub max_action_plans: usize,
}

/// The TTL cap: 24 hours.
pub const MAX_TTL: GoDuration = GoDuration::from_secs(24 * 3600);

impl Default for PartRules {
    fn default() -> Self {
        PartRules {
            max_ttl: MAX_TTL,
            max_future_skew: TimeDelta::seconds(60),
            max_resources: 1024,
            max_directives: 1024,
            max_action_plans: 256,
        }
    }
}

/// What the conversion needs besides the result.
#[derive(Debug, Clone, Copy)]
pub struct PartInput<'a> {
    /// Producer id, `Plugin/<name>`.
    pub source: &'a str,
    /// Highest generation already accepted for this source (0 if none).
    pub previous_generation: i64,
    /// The conversion time (also the default `observedAt`).
    pub now: DateTime<Utc>,
    /// Startup resources, so references from plugin resources to startup
    /// resources validate.
    pub startup: &'a [Resource],
    /// Limits.
    pub rules: &'a PartRules,
}

/// A validated part, not yet stored or merged.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidatePart {
    /// `metadata.name`: `<source with "/" → "-">-<generation>`.
    pub name: String,
    /// The part.
    pub spec: DynamicConfigPartSpec,
    /// Accepted-with-caveat notes (a capped TTL, validation warnings).
    pub warnings: Vec<String>,
    /// The plugin's informational events.
    pub events: Vec<PluginEvent>,
}

impl CandidatePart {
    /// The part as a `config.routerd.net/v1alpha1` DynamicConfigPart resource.
    pub fn to_resource(&self) -> Resource {
        Resource {
            api_version: CONFIG_API.to_string(),
            metadata: Metadata {
                name: self.name.clone(),
                ..Metadata::default()
            },
            spec: Spec::DynamicConfigPart(Box::new(self.spec.clone())),
            status: None,
        }
    }

    /// When the part stops counting.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.spec.expires_at
    }
}

/// Why a result was not turned into a part. Messages are routerd's where
/// routerd has one (spec §6.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// No source id.
    #[error("source is required")]
    SourceRequired,
    /// Wrong `apiVersion`.
    #[error("PluginResult apiVersion must be plugin.routerd.net/v1alpha1")]
    ApiVersion,
    /// Wrong `kind`.
    #[error("PluginResult kind must be PluginResult")]
    Kind,
    /// No `status.ttl`.
    #[error("PluginResult status.ttl is required")]
    TtlRequired,
    /// `status.ttl` did not parse.
    #[error("PluginResult status.ttl must be a valid duration: {0}")]
    TtlInvalid(String),
    /// `status.ttl` is zero or negative.
    #[error("PluginResult status.ttl must be greater than 0")]
    TtlNotPositive,
    /// `observedAt` is later than now allows.
    #[error("PluginResult status.observedAt {observed_at} is later than now ({now})")]
    ObservedInFuture {
        /// As reported.
        observed_at: String,
        /// The conversion time.
        now: String,
    },
    /// The part would already be expired.
    #[error("PluginResult is already expired: expiresAt {expires_at} is not after now ({now})")]
    AlreadyExpired {
        /// observedAt + ttl.
        expires_at: String,
        /// The conversion time.
        now: String,
    },
    /// A list is longer than the rules allow.
    #[error("PluginResult status.{field} has {count} entries; at most {max} are allowed")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// How many were sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A resource lacks a required envelope field.
    #[error("PluginResult status.resources[{index}].{field} is required")]
    ResourceField {
        /// Position in `status.resources`.
        index: usize,
        /// `apiVersion`, `kind`, `metadata.name` or `spec`.
        field: &'static str,
    },
    /// A resource's spec is not an object.
    #[error(
        "PluginResult status.resources[{index}].spec decoded as untyped map; decode plugin output with yaml.Unmarshal"
    )]
    ResourceUntyped {
        /// Position in `status.resources`.
        index: usize,
    },
    /// A resource did not decode as its kind (unknown kind or fields, types).
    #[error("PluginResult status.resources[{index}]: {message}")]
    ResourceDecode {
        /// Position in `status.resources`.
        index: usize,
        /// Every decode problem, `; `-joined.
        message: String,
    },
    /// A kind only the operator may write.
    #[error(
        "PluginResult status.resources[{index}]: {kind} is startup-only or runtime-only and cannot come from a plugin"
    )]
    ResourceKindNotAllowed {
        /// Position in `status.resources`.
        index: usize,
        /// The kind.
        kind: String,
    },
    /// Two resources of the result share an identity.
    #[error("PluginResult status.resources[{index}]: duplicate resource {id}")]
    ResourceDuplicate {
        /// Position of the second one.
        index: usize,
        /// The identity.
        id: String,
    },
    /// A resource failed validation.
    #[error("PluginResult status.resources[{index}] is invalid: {message}")]
    ResourceInvalid {
        /// Position in `status.resources`.
        index: usize,
        /// Every validation error, `; `-joined.
        message: String,
    },
    /// A directive's op is not `mask`.
    #[error("PluginResult status.directives[{index}].op must be mask")]
    DirectiveOp {
        /// Position in `status.directives`.
        index: usize,
    },
    /// A directive's target lacks a field.
    #[error("PluginResult status.directives[{index}].target.{field} is required")]
    DirectiveTarget {
        /// Position in `status.directives`.
        index: usize,
        /// `apiVersion`, `kind` or `name`.
        field: &'static str,
    },
    /// An action plan failed `ValidateActionPlan`.
    #[error("PluginResult status.actionPlans[{index}]: {message}")]
    ActionPlan {
        /// Position in `status.actionPlans`.
        index: usize,
        /// routerd's action-plan error.
        message: String,
    },
    /// The generation counter would overflow.
    #[error("generation of source {0} would overflow")]
    GenerationOverflow(String),
}

/// Kinds a plugin may not produce: permissions, plugins and parts are the
/// operator's, and letting a part carry them would let a plugin widen its own
/// powers.
fn kind_allowed_from_plugin(k: Kind) -> bool {
    !matches!(
        k,
        Kind::DynamicOverridePolicy
            | Kind::DynamicConfigPart
            | Kind::Plugin
            | Kind::DynamicConfigSource
            | Kind::PluginRequest
            | Kind::PluginResult
    )
}

/// Converts a decoded result into a part. Pure: `input.now` is the clock.
/// Checks run in routerd's order and the first failure is returned.
pub fn part_from_result(
    doc: ResultDocument,
    input: PartInput<'_>,
) -> Result<CandidatePart, PartError> {
    let source = input.source.trim();
    if source.is_empty() {
        return Err(PartError::SourceRequired);
    }
    if doc.api_version != API_VERSION {
        return Err(PartError::ApiVersion);
    }
    if doc.kind != RESULT_KIND {
        return Err(PartError::Kind);
    }
    let st = doc.status;
    let now = input.now;
    let rules = input.rules;
    let observed_at = st.observed_at.unwrap_or(now);
    let mut warnings = Vec::new();
    let ttl = parse_ttl(st.ttl.as_ref())?;
    let ttl = if ttl > rules.max_ttl {
        warnings.push(format!(
            "PluginResult status.ttl {ttl} exceeds the {} cap; capped",
            rules.max_ttl
        ));
        rules.max_ttl
    } else {
        ttl
    };
    if observed_at > now + rules.max_future_skew {
        return Err(PartError::ObservedInFuture {
            observed_at: observed_at.to_rfc3339(),
            now: now.to_rfc3339(),
        });
    }
    let expires_at = observed_at + ttl.to_chrono();
    if expires_at <= now {
        return Err(PartError::AlreadyExpired {
            expires_at: expires_at.to_rfc3339(),
            now: now.to_rfc3339(),
        });
    }
    for (field, count, max) in [
        ("resources", st.resources.len(), rules.max_resources),
        ("directives", st.directives.len(), rules.max_directives),
        ("actionPlans", st.action_plans.len(), rules.max_action_plans),
    ] {
        if count > max {
            return Err(PartError::TooMany { field, count, max });
        }
    }
    let resources = decode_resources(st.resources)?;
    validate_resources(&resources, input.startup, &mut warnings)?;
    check_directives(&st.directives)?;
    check_action_plans(&st.action_plans)?;
    let generation = input
        .previous_generation
        .max(0)
        .checked_add(1)
        .ok_or_else(|| PartError::GenerationOverflow(source.to_string()))?;
    let digest = digest(&resources, &st.directives);
    Ok(CandidatePart {
        name: part_name(source, generation),
        spec: DynamicConfigPartSpec {
            source: source.to_string(),
            generation,
            observed_at: Some(observed_at),
            expires_at: Some(expires_at),
            digest: Some(digest),
            resources,
            directives: st.directives,
            action_plans: st.action_plans,
        },
        warnings,
        events: st.events,
    })
}

fn parse_ttl(v: Option<&serde_json::Value>) -> Result<GoDuration, PartError> {
    let text = match v {
        None | Some(serde_json::Value::Null) => return Err(PartError::TtlRequired),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
            return Err(PartError::TtlRequired);
        }
        Some(serde_json::Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(PartError::TtlInvalid(format!(
                "expected a duration string such as \"5m\", got {other}"
            )));
        }
    };
    let d = GoDuration::parse(text).map_err(|e| PartError::TtlInvalid(e.to_string()))?;
    if !d.is_positive() {
        return Err(PartError::TtlNotPositive);
    }
    Ok(d)
}

fn decode_resources(raw: Vec<serde_json::Value>) -> Result<Vec<Resource>, PartError> {
    let mut out = Vec::with_capacity(raw.len());
    for (index, v) in raw.into_iter().enumerate() {
        let missing = |field| PartError::ResourceField { index, field };
        let serde_json::Value::Object(m) = &v else {
            return Err(PartError::ResourceDecode {
                index,
                message: "resource must be an object".into(),
            });
        };
        let text = |k: &str| m.get(k).and_then(|x| x.as_str()).unwrap_or("").trim();
        if text("apiVersion").is_empty() {
            return Err(missing("apiVersion"));
        }
        if text("kind").is_empty() {
            return Err(missing("kind"));
        }
        let name = m
            .get("metadata")
            .and_then(|md| md.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("");
        if name.trim().is_empty() {
            return Err(missing("metadata.name"));
        }
        match m.get("spec") {
            None | Some(serde_json::Value::Null) => return Err(missing("spec")),
            Some(serde_json::Value::Object(_)) => {}
            Some(_) => return Err(PartError::ResourceUntyped { index }),
        }
        let yaml = serde_yaml::to_value(&v).map_err(|e| PartError::ResourceDecode {
            index,
            message: e.to_string(),
        })?;
        let r = Resource::from_value(yaml).map_err(|e| PartError::ResourceDecode {
            index,
            message: e.to_string(),
        })?;
        if !kind_allowed_from_plugin(r.kind()) {
            return Err(PartError::ResourceKindNotAllowed {
                index,
                kind: r.kind().as_str().to_string(),
            });
        }
        if out.iter().any(|x: &Resource| x.id() == r.id()) {
            return Err(PartError::ResourceDuplicate {
                index,
                id: r.id().to_string(),
            });
        }
        out.push(r);
    }
    Ok(out)
}

/// Validates each plugin resource the way startup resources are validated,
/// against an index of startup plus the part so references to either resolve.
fn validate_resources(
    resources: &[Resource],
    startup: &[Resource],
    warnings: &mut Vec<String>,
) -> Result<(), PartError> {
    if resources.is_empty() {
        return Ok(());
    }
    let all: Vec<Resource> = startup.iter().chain(resources).cloned().collect();
    let idx = NameIndex::build(&all);
    let mut diags = Vec::new();
    for (index, r) in resources.iter().enumerate() {
        diags.clear();
        validate_one(r, &idx, &all, Context::Startup, &mut diags);
        let errors: Vec<&str> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.as_str())
            .collect();
        if !errors.is_empty() {
            return Err(PartError::ResourceInvalid {
                index,
                message: errors.join("; "),
            });
        }
        warnings.extend(
            diags
                .iter()
                .filter(|d| !d.is_error())
                .map(|d| d.message.clone()),
        );
    }
    Ok(())
}

fn check_directives(directives: &[Directive]) -> Result<(), PartError> {
    for (index, d) in directives.iter().enumerate() {
        if d.op != "mask" {
            return Err(PartError::DirectiveOp { index });
        }
        for (field, v) in [
            ("apiVersion", &d.target.api_version),
            ("kind", &d.target.kind),
            ("name", &d.target.name),
        ] {
            if v.trim().is_empty() {
                return Err(PartError::DirectiveTarget { index, field });
            }
        }
    }
    Ok(())
}

fn check_action_plans(plans: &[ActionPlan]) -> Result<(), PartError> {
    for (index, p) in plans.iter().enumerate() {
        p.validate()
            .map_err(|message| PartError::ActionPlan { index, message })?;
    }
    Ok(())
}

/// `metadata.name` of a part: the source with `/` replaced by `-`, trimmed
/// of `-`, then `-<generation>` (`Plugin/cloud`, 7 → `Plugin-cloud-7`).
pub fn part_name(source: &str, generation: i64) -> String {
    let base = source.replace('/', "-");
    let base = base.trim_matches('-');
    if base.is_empty() {
        format!("dynamic-{generation}")
    } else {
        format!("{base}-{generation}")
    }
}

/// Lowercase hex SHA-256 of `{"resources": [...], "directives": [...]}` as
/// compact JSON. Serialization is deterministic (struct field order, sorted
/// maps), so equal content always gives an equal digest.
pub fn digest(resources: &[Resource], directives: &[Directive]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        resources: &'a [Resource],
        directives: &'a [Directive],
    }
    let bytes = serde_json::to_vec(&Doc {
        resources,
        directives,
    })
    .unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}
