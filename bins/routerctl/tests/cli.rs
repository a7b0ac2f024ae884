//! The real `routerctl` binary: exit codes, messages and document shapes of
//! the offline commands (validate, plan, schema).

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn routerctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_routerctl"))
}

fn run(args: &[&str]) -> Output {
    routerctl().args(args).output().unwrap()
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    routerctl().current_dir(dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> PathBuf {
    repo().join("examples")
}

fn golden() -> PathBuf {
    repo().join("crates/model/tests/golden")
}

fn temp_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Whether a YAML file under examples/ is startup configuration: its first
/// document has apiVersion and kind, and the kind is not a runtime-only or
/// plugin wire object. (State snapshots are maps from id to status.)
fn is_config(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    let Some(first) = serde_yaml::Deserializer::from_str(&text).next() else {
        return false;
    };
    let Ok(v) = <serde_yaml::Value as serde::Deserialize>::deserialize(first) else {
        return false;
    };
    let kind = v.get("kind").and_then(|k| k.as_str());
    v.get("apiVersion").is_some()
        && kind
            .is_some_and(|k| !matches!(k, "DynamicConfigPart" | "PluginRequest" | "PluginResult"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

// ---- validate ----

#[test]
fn validate_accepts_every_example_config() {
    let mut files = Vec::new();
    yaml_files(&examples(), &mut files);
    files.sort();
    let configs: Vec<&PathBuf> = files.iter().filter(|p| is_config(p)).collect();
    // Every top-level example is a config; subdirectories hold state
    // snapshots, plugin material and the like.
    for f in &files {
        if f.parent() == Some(examples().as_path()) {
            assert!(configs.contains(&f), "{} is not a config", f.display());
        }
    }
    assert!(configs.len() >= 4, "{configs:?}");
    for f in &configs {
        let o = run(&["validate", "-f", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}: {}", f.display(), stderr(&o));
        assert_eq!(stdout(&o), "config is valid\n", "{}", f.display());
        assert_eq!(stderr(&o), "", "{}: warnings", f.display());
    }
    // All of them together are one valid config only if names do not clash;
    // at least the state snapshot is not mistaken for a config.
    assert!(!is_config(
        &examples().join("state/dslite-static-egress.state.yaml")
    ));
}

#[test]
fn validate_rejects_with_position_id_and_path() {
    let f = temp_file(
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata:
  name: wan
spec:
  ifname: eth0
  mtu: 100
  role: trust
",
    );
    let name = f.path().to_str().unwrap();
    let o = run(&["validate", "-f", name]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "{name}:7:3: net.routerd.net/v1alpha1/Interface/wan spec.mtu must be within 576-9216\n\
             {name}:8:3: net.routerd.net/v1alpha1/Interface/wan spec.role is not a known field of Interface {hint}\n\
             config is invalid: 2 errors\n",
            hint = routerd_model::compat::UNKNOWN_FIELD_HINT
        )
    );
}

/// A routerd file relying on routerd dropping unknown fields, with a kind
/// this daemon does not manage: `--unknown-fields=warn` loads it, the plan
/// lists the unmanaged resource and renders nothing for it.
#[test]
fn unknown_fields_warn_and_unmanaged_kinds_in_validate_and_plan() {
    let f = temp_file(
        "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec:
  ifname: eth0
  role: trust
---
apiVersion: firewall.routerd.net/v1alpha1
kind: FirewallZone
metadata: {name: untrust}
spec: {interfaces: [wan]}
",
    );
    let name = f.path().to_str().unwrap();
    let o = run(&["validate", "-f", name]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--unknown-fields=warn"),
        "{}",
        stderr(&o)
    );

    let o = run(&["validate", "--unknown-fields=warn", "-f", name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "config is valid\n");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{name}:6:3: warning: net.routerd.net/v1alpha1/Interface/wan spec.role is not a known field of Interface; routerd ignores this field too; it has no effect"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:9:1: warning: `firewall.routerd.net/v1alpha1/FirewallZone/untrust` is a routerd kind this daemon does not manage; it is kept and ignored"
        )),
        "{err}"
    );

    let o = run(&[
        "validate",
        "--unknown-fields=warn",
        "-f",
        name,
        "-o",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(doc["warnings"][0]["path"], "spec.role");
    assert_eq!(doc["warnings"][0]["line"], 6);

    let o = run(&[
        "plan",
        "--unknown-fields=warn",
        "-f",
        name,
        "--now",
        "2026-01-01T00:00:00Z",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["unmanaged"][0]["kind"], "FirewallZone");
    assert_eq!(doc["unmanaged"][0]["spec"]["interfaces"][0], "wan");
    assert!(
        doc["effective"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] != "FirewallZone")
    );
    let o = run(&[
        "plan",
        "--unknown-fields=warn",
        "-f",
        name,
        "--now",
        "2026-01-01T00:00:00Z",
    ]);
    assert!(
        stdout(&o).contains("Unmanaged (1): routerd kinds kept and ignored, never rendered\n  firewall.routerd.net/v1alpha1/FirewallZone/untrust\n"),
        "{}",
        stdout(&o)
    );
    let o = run(&["validate", "--unknown-fields=lenient", "-f", name]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown-fields must be error or warn"));
}

#[test]
fn validate_reads_standard_input() {
    let mut child = routerctl()
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: a}\nspec: {}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(
        stderr(&o),
        "<stdin>:4:1: net.routerd.net/v1alpha1/Interface/a spec.ifname is required\nconfig is invalid: 1 error\n"
    );
}

#[test]
fn validate_combines_files() {
    let a = temp_file(
        "apiVersion: net.routerd.net/v1alpha1\nkind: NAT44Rule\nmetadata: {name: m}\nspec: {type: masquerade, egressInterface: wan, sourceRanges: [10.0.0.0/8]}\n",
    );
    let b = temp_file(
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n",
    );
    let (a, b) = (a.path().to_str().unwrap(), b.path().to_str().unwrap());
    let o = run(&["validate", "-f", a, "-f", b]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["validate", "-f", a]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains(&format!("{a}:4:")), "{}", stderr(&o));
    let o = run(&["validate", "-f", b, "-f", b]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        stderr(&o).contains(&format!(
            "{b}:1:1: duplicate resource net.routerd.net/v1alpha1/Interface/wan"
        )),
        "{}",
        stderr(&o)
    );
}

/// The golden cases of the model: `-o json` prints exactly expected.json,
/// text output prints expected.txt on stderr, exit code follows validity.
#[test]
fn validate_output_matches_the_model_golden_files() {
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(golden())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file() && !p.join("good-count").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let want_json = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        let want_txt = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
        let valid: serde_json::Value = serde_json::from_str(&want_json).unwrap();
        let valid = valid["valid"].as_bool().unwrap();
        let code = if valid { 0 } else { 65 };

        let o = run_in(&dir, &["validate", "-f", "input.yaml", "-o", "json"]);
        assert_eq!(o.status.code(), Some(code), "{}", dir.display());
        assert_eq!(stdout(&o), want_json, "{}", dir.display());

        let o = run_in(&dir, &["validate", "-f", "input.yaml"]);
        assert_eq!(o.status.code(), Some(code), "{}", dir.display());
        let err = stderr(&o);
        assert!(err.starts_with(&want_txt), "{}:\n{err}", dir.display());
        n += 1;
    }
    assert!(n >= 9, "{n}");
}

#[test]
fn validate_json_shape() {
    let f = temp_file(
        "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata: {name: h}\nspec: {protocol: tcp, port: 99999, http: {path: /}}\n",
    );
    let name = f.path().to_str().unwrap();
    let o = run(&["validate", "-f", name, "-o", "json"]);
    assert_eq!(o.status.code(), Some(65));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = "net.routerd.net/v1alpha1/HealthCheck/h";
    assert_eq!(
        doc,
        serde_json::json!({
            "valid": false,
            "errors": [{
                "file": name, "line": 4, "column": 23, "resource": id,
                "path": "spec.port", "message": format!("{id} spec.port must be within 0-65535"),
            }],
            "warnings": [{
                "file": name, "line": 4, "column": 36, "resource": id,
                "path": "spec.http", "message": format!("{id} spec.http is ignored unless spec.protocol is http"),
            }],
        })
    );
    // YAML output carries the same document.
    let o = run(&["validate", "-f", name, "-o", "yaml"]);
    assert_eq!(o.status.code(), Some(65));
    let y: serde_json::Value = serde_yaml::from_str(&stdout(&o)).unwrap();
    assert_eq!(y, doc);
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["validate"][..],
        &["validate", "-f", "x.yaml", "-o", "xml"],
        &["frobnicate"],
        &[],
        &["plan"],
        &["plan", "-f", "x.yaml", "--bogus"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn missing_input_file_exits_66() {
    let o = run(&["validate", "-f", "/nonexistent/routerd.yaml"]);
    assert_eq!(o.status.code(), Some(66));
    assert!(
        stderr(&o).contains("/nonexistent/routerd.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["--version"], &["validate", "--help"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(!stdout(&o).is_empty());
    }
}

// ---- plan ----

#[test]
fn plan_prints_the_contract_document() {
    let ex = examples().join("dslite-static-egress.yaml");
    let state = examples().join("state/dslite-static-egress.state.yaml");
    let o = run(&[
        "plan",
        "-f",
        ex.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--now",
        "2026-11-21T09:00:00Z",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let obj = doc.as_object().unwrap();
    for key in [
        "apiVersion",
        "kind",
        "now",
        "effective",
        "suppressed",
        "dynamicParts",
        "status",
        "events",
        "dataplane",
    ] {
        assert!(obj.contains_key(key), "plan lacks {key}: {doc:#}");
    }
    assert_eq!(doc["apiVersion"], "control.routerd.net/v1alpha1");
    assert_eq!(doc["kind"], "Plan");
    let now = doc["now"].as_str().unwrap();
    assert!(now.starts_with("2026-11-21T09:00:00"), "{now}");
    assert!(doc["suppressed"].is_array());
    assert!(doc["dynamicParts"].is_array());
    assert!(doc["status"].is_object());
    assert!(doc["events"].is_array());
    let dp = doc["dataplane"].as_object().unwrap();
    for key in ["routes", "rules", "nftables"] {
        assert!(
            dp.get(key).is_some_and(|v| v.is_array()),
            "dataplane.{key}: {dp:?}"
        );
    }
    // The effective config is the 8 startup resources, sorted by id.
    let effective = doc["effective"].as_array().unwrap();
    assert_eq!(effective.len(), 8);
    let ids: Vec<String> = effective
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}",
                r["apiVersion"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(ids.contains(&"net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default".to_string()));
}

#[test]
fn plan_refuses_an_invalid_config() {
    let f = temp_file(
        "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: a}\nspec: {mtu: 1}\n",
    );
    let o = run(&["plan", "-f", f.path().to_str().unwrap(), "-o", "json"]);
    assert_eq!(o.status.code(), Some(65));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("spec.ifname is required"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn plan_notes_sets_whose_names_have_no_resolution_offline() {
    let f = temp_file(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: names}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan2}
      spec: {ifname: wan2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPAddressSet
      metadata: {name: svc}
      spec: {addresses: [192.0.2.10], names: [service.example.com], refreshInterval: 10m}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: svc}
      spec:
        mode: mark
        destinationSetRefs: [IPAddressSet/svc]
        candidates:
          - {name: alt, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1000}
",
    );
    let path = f.path().to_str().unwrap();
    let o = run(&["plan", "-f", path, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let notes = doc["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0]["owner"],
        "net.routerd.net/v1alpha1/IPAddressSet/svc"
    );
    // The set renders from spec.addresses alone.
    let text = doc["dataplane"]["nftables"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("set ip_address_set_svc { type ipv4_addr; elements = { 192.0.2.10 } }"),
        "{text}"
    );
    let o = run(&["plan", "-f", path]);
    assert!(
        stdout(&o).contains("Notes:\n  net.routerd.net/v1alpha1/IPAddressSet/svc: names service.example.com are not resolved yet"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn plan_rejects_a_bad_now() {
    let ex = examples().join("dslite-static-egress.yaml");
    let o = run(&["plan", "-f", ex.to_str().unwrap(), "--now", "yesterday"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
}

// ---- schema ----

#[test]
fn schema_prints_a_kind_schema() {
    let o = run(&["schema", "EgressRoutePolicy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let text = s.to_string();
    for field in ["candidates", "hashFields", "destinationCIDRs", "hysteresis"] {
        assert!(
            text.contains(&format!("\"{field}\"")),
            "schema lacks {field}"
        );
    }
}

#[test]
fn schema_of_every_kind() {
    let o = run(&["schema"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let _: serde_json::Value = serde_json::from_str(&text).unwrap();
    for kind in [
        "Interface",
        "HealthCheck",
        "NAT44Rule",
        "OverlayPeer",
        "Plugin",
    ] {
        assert!(text.contains(kind), "schema lacks {kind}");
    }
}

#[test]
fn schema_of_an_unknown_kind_exits_64() {
    let o = run(&["schema", "WANEgressPolicy"]);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("WANEgressPolicy"), "{}", stderr(&o));
}
