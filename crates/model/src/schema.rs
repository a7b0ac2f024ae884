//! JSON Schema for every kind, generated from the spec types, so editors can
//! complete and check YAML. Every object is closed (`additionalProperties:
//! false`), matching the loader, which rejects unknown fields.

use serde_json::{Value, json};

use crate::id::Kind;
use crate::resource::Spec;

/// The schema of one kind's whole resource (envelope plus typed spec).
pub fn for_kind(kind: Kind) -> Option<Value> {
    let spec = Spec::schema_for(kind)?;
    let mut spec = serde_json::to_value(spec).ok()?;
    close_objects(&mut spec);
    let defs = spec.as_object_mut().and_then(|o| o.remove("$defs"));
    if let Some(o) = spec.as_object_mut() {
        o.remove("$schema");
    }
    let api = match kind.foreign_api_version() {
        Some(foreign) => json!({"enum": [kind.api_version(), foreign]}),
        None => json!({"const": kind.api_version()}),
    };
    let mut doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": kind.as_str(),
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": api,
            "kind": {"const": kind.as_str()},
            "metadata": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "namespace": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ownerRefs": {"type": "array", "items": {"type": "object"}}
                }
            },
            "spec": spec,
            "status": {"type": "object"}
        }
    });
    if let (Some(defs), Some(o)) = (defs, doc.as_object_mut()) {
        o.insert("$defs".into(), defs);
    }
    Some(doc)
}

/// The schema of one kind given by name.
pub fn for_kind_name(name: &str) -> Option<Value> {
    Kind::parse(name).and_then(for_kind)
}

/// Every configuration kind's schema, keyed by kind name.
pub fn all_kinds() -> Value {
    let mut m = serde_json::Map::new();
    for k in Kind::ALL {
        if let Some(s) = for_kind(*k) {
            m.insert(k.as_str().to_string(), s);
        }
    }
    Value::Object(m)
}

fn close_objects(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_object = o.get("type").and_then(Value::as_str) == Some("object");
            if is_object && o.contains_key("properties") && !o.contains_key("additionalProperties")
            {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in o.iter_mut() {
                close_objects(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_kind_has_a_closed_schema() {
        for k in Kind::ALL.iter().filter(|k| !k.is_wire_object()) {
            let s = for_kind(*k).unwrap_or_else(|| panic!("no schema for {k}"));
            assert_eq!(s["properties"]["kind"]["const"], k.as_str());
            assert_eq!(s["additionalProperties"], false);
        }
        let erp = for_kind(Kind::EgressRoutePolicy).unwrap();
        let cand = &erp["$defs"]["EgressCandidate"];
        assert_eq!(cand["additionalProperties"], false);
        assert!(cand["properties"]["weight"].is_object());
    }
}
