//! The request context: the startup resources a plugin may see, redacted.
//!
//! A plugin gets only what its `spec.context.resources` allowlist names, and
//! secrets are stripped by key name before anything leaves the daemon. There
//! is deliberately no opt-out: a plugin that needs a credential reads it from
//! its own environment (`spec.env`) or a file, never from routerd's config.

use routerd_model::Resource;
use routerd_model::spec::{ContextResource, PluginContextSpec, RequestContext};
use serde_json::{Map, Value};

/// Key fragments (lower case) whose values are secrets.
const SECRET_FRAGMENTS: &[&str] = &[
    "secret",
    "password",
    "privatekey",
    "presharedkey",
    "psk",
    "token",
    "credential",
    "passphrase",
    "authkey",
];

/// Key suffixes (lower case) naming a file that holds a secret.
const SECRET_FILE_SUFFIXES: &[&str] = &["keyfile", "secretfile", "passwordfile"];

/// Builds the context of a request: each allowlisted reference matched exactly
/// on apiVersion, kind and name; missing references are skipped silently (the
/// plugin sees the absence). An empty allowlist sends no context at all.
pub fn build_context(allow: Option<&PluginContextSpec>, startup: &[Resource]) -> RequestContext {
    let Some(allow) = allow.filter(|a| !a.resources.is_empty()) else {
        return RequestContext { resources: None };
    };
    let mut out = Vec::new();
    for want in &allow.resources {
        let Some(r) = startup
            .iter()
            .find(|r| r.has_id(&want.api_version, &want.kind, &want.name))
        else {
            continue;
        };
        let spec = match serde_json::to_value(r) {
            Ok(Value::Object(mut m)) => m.remove("spec").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        out.push(ContextResource {
            api_version: r.api_version.clone(),
            kind: r.kind().as_str().to_string(),
            name: r.name().to_string(),
            spec: redact(spec),
        });
    }
    RequestContext {
        resources: Some(out),
    }
}

/// Removes secrets from a spec, recursively:
/// keys ending in `keyfile`, `secretfile`, `passwordfile` are removed; keys
/// containing a secret fragment are removed when their value is an object and
/// blanked to `""` otherwise; `*From` objects that only point at a file, an
/// environment variable or base64 data are removed.
pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(redact_map(m)),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

fn redact_map(m: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in m {
        let lower = k.to_ascii_lowercase();
        if SECRET_FILE_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
            continue;
        }
        if SECRET_FRAGMENTS.iter().any(|s| lower.contains(s)) {
            if !v.is_object() {
                out.insert(k, Value::String(String::new()));
            }
            continue;
        }
        if lower.ends_with("from") && is_secret_pointer(&v) {
            continue;
        }
        out.insert(k, redact(v));
    }
    out
}

/// `{file: ..}`, `{env: ..}`, `{base64: ..}` or a mix of those keys only.
fn is_secret_pointer(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            !m.is_empty()
                && m.keys()
                    .all(|k| matches!(k.as_str(), "file" | "env" | "base64"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerd_model::ObjectRef;
    use serde_json::json;

    #[test]
    fn redaction_blanks_removes_and_keeps() {
        let spec = json!({
            "region": "ap-northeast-1",
            "apiToken": "abc",
            "clientSecret": {"value": "x"},
            "privateKeyFile": "/etc/k",
            "auth": {"command": "aws", "PreSharedKey": "p", "credentialsFrom": {"env": "AWS"}},
            "peers": [{"name": "a", "psk": "q"}],
            "endpointFrom": {"resource": "Interface/wan", "field": "ifname"},
            "keyFrom": {"file": "/k"}
        });
        let got = redact(spec);
        assert_eq!(
            got,
            json!({
                "region": "ap-northeast-1",
                "apiToken": "",
                "auth": {"command": "aws", "PreSharedKey": ""},
                "peers": [{"name": "a", "psk": ""}],
                "endpointFrom": {"resource": "Interface/wan", "field": "ifname"}
            })
        );
    }

    fn startup() -> Vec<Resource> {
        let yaml = r#"
- apiVersion: net.routerd.net/v1alpha1
  kind: Interface
  metadata: {name: wan}
  spec: {ifname: ens18}
- apiVersion: net.routerd.net/v1alpha1
  kind: Interface
  metadata: {name: lan}
  spec: {ifname: ens19}
"#;
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn context_is_the_allowlist_only() {
        let allow = PluginContextSpec {
            resources: vec![
                ObjectRef {
                    api_version: "net.routerd.net/v1alpha1".into(),
                    kind: "Interface".into(),
                    name: "wan".into(),
                },
                ObjectRef {
                    api_version: "net.routerd.net/v1alpha1".into(),
                    kind: "Interface".into(),
                    name: "missing".into(),
                },
            ],
        };
        let ctx = build_context(Some(&allow), &startup());
        let res = ctx.resources.unwrap();
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].name, "wan");
        assert_eq!(res[0].spec["ifname"], "ens18");
    }

    #[test]
    fn a_pppoe_password_never_reaches_a_plugin() {
        let yaml = r#"
- apiVersion: net.routerd.net/v1alpha1
  kind: PPPoESession
  metadata: {name: isp}
  spec: {interface: wan, username: u, password: hunter2, passwordFile: /etc/ppp/x}
"#;
        let startup: Vec<Resource> = serde_yaml::from_str(yaml).unwrap();
        let allow = PluginContextSpec {
            resources: vec![ObjectRef {
                api_version: "net.routerd.net/v1alpha1".into(),
                kind: "PPPoESession".into(),
                name: "isp".into(),
            }],
        };
        let ctx = build_context(Some(&allow), &startup);
        let text = serde_json::to_string(&ctx).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("/etc/ppp/x"), "{text}");
        assert!(text.contains("\"username\":\"u\""), "{text}");
    }

    #[test]
    fn empty_allowlist_omits_the_key() {
        let ctx = build_context(Some(&PluginContextSpec::default()), &startup());
        assert!(ctx.resources.is_none());
        let text = serde_json::to_string(&ctx).unwrap();
        assert_eq!(text, "{}");
    }
}
