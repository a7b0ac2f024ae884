//! Building the `PluginRequest` written to a plugin's stdin.

use chrono::{DateTime, Timelike as _, Utc};
use routerd_model::spec::{PluginRequest, PluginRequestSpec, PluginSpec, RequestTrigger};
use routerd_model::{Event, Metadata, Resource};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::context::build_context;
use crate::{API_VERSION, REQUEST_KIND};

/// A `manual` trigger (`routerctl plugin run`).
pub fn manual_trigger() -> RequestTrigger {
    RequestTrigger {
        type_: "manual".into(),
        ..RequestTrigger::default()
    }
}

/// An `interval` trigger.
pub fn interval_trigger() -> RequestTrigger {
    RequestTrigger {
        type_: "interval".into(),
        ..RequestTrigger::default()
    }
}

/// An `event` trigger for `event`: its topic, and what a plugin needs to
/// act on it without re-reading every status (the resource, reason and
/// attributes).
pub fn event_trigger(event: &Event) -> RequestTrigger {
    let resource = (!event.resource.kind.is_empty())
        .then(|| format!("{}/{}", event.resource.kind, event.resource.name));
    RequestTrigger {
        type_: "event".into(),
        topic: Some(event.type_.clone()),
        resource,
        reason: (!event.reason.is_empty()).then(|| event.reason.clone()),
        attributes: event.attributes.clone(),
        coalesced: None,
    }
}

/// Lowercase hex SHA-256 of the startup resources as JSON (`{"resources":
/// [...]}`), so a plugin can tell whether the config it last saw changed.
pub fn startup_config_hash(startup: &[Resource]) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        resources: &'a [Resource],
    }
    let bytes = serde_json::to_vec(&Doc { resources: startup }).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Builds the request for one run of plugin `name`. The context holds only
/// the allowlisted, redacted resources; `now` is truncated to whole seconds
/// because the wire format is RFC 3339 without fractions.
pub fn build_request(
    name: &str,
    spec: &PluginSpec,
    startup: &[Resource],
    trigger: RequestTrigger,
    previous_generation: i64,
    now: DateTime<Utc>,
) -> PluginRequest {
    let now = now.with_nanosecond(0).unwrap_or(now);
    PluginRequest {
        api_version: API_VERSION.to_string(),
        kind: REQUEST_KIND.to_string(),
        metadata: Metadata {
            name: name.to_string(),
            ..Metadata::default()
        },
        spec: PluginRequestSpec {
            trigger,
            startup_config_hash: startup_config_hash(startup),
            effective_generation: 0,
            previous_dynamic_generation: previous_generation,
            now,
            events: Vec::new(),
            context: build_context(spec.context.as_ref(), startup),
        },
    }
}

/// The request as one line of JSON followed by a newline.
pub fn encode_request(req: &PluginRequest) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec(req)?;
    v.push(b'\n');
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_protocol_fields() {
        let startup: Vec<Resource> = serde_yaml::from_str(
            "- {apiVersion: net.routerd.net/v1alpha1, kind: Interface, metadata: {name: wan}, spec: {ifname: ens18}}",
        )
        .unwrap();
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let req = build_request(
            "cloud",
            &PluginSpec::default(),
            &startup,
            manual_trigger(),
            6,
            now,
        );
        let v: serde_json::Value = serde_json::from_slice(&encode_request(&req).unwrap()).unwrap();
        assert_eq!(v["apiVersion"], "plugin.routerd.net/v1alpha1");
        assert_eq!(v["kind"], "PluginRequest");
        assert_eq!(v["metadata"]["name"], "cloud");
        assert_eq!(v["spec"]["trigger"]["type"], "manual");
        assert_eq!(v["spec"]["previousDynamicGeneration"], 6);
        assert_eq!(v["spec"]["now"], "2026-01-02T03:04:05Z");
        assert_eq!(v["spec"]["startupConfigHash"].as_str().unwrap().len(), 64);
        assert!(v["spec"]["context"].get("resources").is_none());
        assert_ne!(startup_config_hash(&startup), startup_config_hash(&[]));
    }
}
