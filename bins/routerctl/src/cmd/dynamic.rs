//! `routerctl dynamic render|diff`: the effective configuration offline,
//! from the same inputs as `plan` (`-f`, `--dynamic`, `--now`), reading
//! files only; `dynamic list|describe|drop`: the parts stored in the daemon.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;
use routerd_merge::{Effective, Part, PartState, Provenance, Startup};
use routerd_model::id::ROUTER_API;

use crate::cmd::plan::{load_parts, parse_now};
use crate::exit::{DATA, Exit, OK};
use crate::input;
use crate::output::{Format, out, print_doc};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Print the effective configuration (startup + active dynamic parts −
    /// masks) as a Router document; dynamic resources carry provenance
    /// annotations.
    Render(RenderArgs),
    /// Show how dynamic parts change startup: `+ <id> source=.. generation=..`
    /// for added resources, `- <id> maskedBy=.. maskedUntil=.. reason=..` for
    /// suppressed ones. Without `-f`, asks the running daemon (its stored
    /// parts and masks as of its last step).
    Diff(DiffArgs),
    /// List the parts stored in the daemon: SOURCE, GEN, STATE, RESOURCES,
    /// DIRECTIVES, ACTIONPLANS, EXPIRES, REASON.
    List(DaemonArgs),
    /// Every stored generation of one source, in full.
    Describe(DescribeArgs),
    /// Revoke a stored part now: the daemon's next step removes what it
    /// added and lifts its masks; the store keeps it as `dropped` (with who
    /// and when) so it is not merged again, even after a restart. PART is a
    /// part name (`Plugin-cloud-7`), `SOURCE#GENERATION`, or a source
    /// (`Plugin/cloud`: every stored generation).
    Drop(DropArgs),
}

#[derive(Debug, clap::Args)]
struct DropArgs {
    /// The part.
    part: String,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// The daemon's control socket.
    #[arg(long, env = "ROUTERD_SOCKET", default_value = crate::cmd::daemon::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// Source id, e.g. `Plugin/cloud-inventory`.
    source: String,
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[derive(Debug, clap::Args)]
struct Inputs {
    /// Startup configuration file (`-` for standard input); repeat to combine.
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<String>,
    /// A DynamicConfigPart file; repeat for several.
    #[arg(long = "dynamic")]
    dynamic: Vec<String>,
    /// The instant to merge for (RFC 3339); defaults to now.
    #[arg(long)]
    now: Option<String>,
}

#[derive(Debug, clap::Args)]
struct DiffArgs {
    /// Startup configuration file (`-` for standard input); repeat to
    /// combine. Without it the daemon is asked.
    #[arg(short = 'f', long = "file")]
    files: Vec<String>,
    /// A DynamicConfigPart file; repeat for several (with `-f` only).
    #[arg(long = "dynamic", requires = "files")]
    dynamic: Vec<String>,
    /// The instant to merge for (RFC 3339); defaults to now (with `-f` only).
    #[arg(long, requires = "files")]
    now: Option<String>,
    /// The daemon's control socket (without `-f`).
    #[arg(long, env = "ROUTERD_SOCKET", default_value = crate::cmd::daemon::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
struct RenderArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Output format (`text` is YAML).
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Sub::Render(a) => render(a),
        Sub::Diff(a) => diff(a),
        Sub::List(a) => list(&a, None),
        Sub::Describe(a) => list(&a.daemon, Some(&a.source)),
        Sub::Drop(a) => drop_part(&a),
    }
}

fn drop_part(a: &DropArgs) -> Result<i32> {
    let client = routerd_api::client::Client::new(&a.daemon.socket);
    let req = routerd_api::control::DynamicDropRequest {
        api_version: Some(routerd_model::id::CONTROL_API.into()),
        kind: Some("DynamicDropRequest".into()),
        part: a.part.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let doc: serde_json::Value = rt
        .block_on(client.post("/dynamic/drop", &req))
        .map_err(crate::cmd::daemon::exit_of)?;
    if a.daemon.output != Format::Text {
        print_doc(&doc, a.daemon.output)?;
        return Ok(OK);
    }
    let mut o = String::new();
    for name in doc["dropped"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "dropped {}", name.as_str().unwrap_or(""));
    }
    for name in doc["alreadyDropped"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "already dropped {}", name.as_str().unwrap_or(""));
    }
    out(&o)?;
    Ok(OK)
}

fn list(a: &DaemonArgs, source: Option<&str>) -> Result<i32> {
    let client = routerd_api::client::Client::new(&a.socket);
    let path = match source {
        Some(s) => format!("/dynamic?source={}", crate::cmd::daemon::encode(s)),
        None => "/dynamic".to_string(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let doc: serde_json::Value = rt
        .block_on(client.get(&path))
        .map_err(crate::cmd::daemon::exit_of)?;
    if source.is_some() || a.output != Format::Text {
        print_doc(
            &doc,
            if a.output == Format::Text {
                Format::Yaml
            } else {
                a.output
            },
        )?;
        return Ok(OK);
    }
    out(&crate::cmd::text::parts(&doc))?;
    Ok(OK)
}

fn merge(inputs: &Inputs) -> Result<(Effective, String)> {
    let (loaded, diags) = input::load_startup(&inputs.files)?;
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.iter().any(|d| d.is_error()) {
        return Err(Exit::new(DATA, "config is invalid; nothing merged").into());
    }
    let now = parse_now(inputs.now.as_deref())?;
    let parts = load_parts(&inputs.dynamic)?
        .into_iter()
        .map(Part::from_resource)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Exit::new(DATA, e.to_string()))?;
    let name = loaded
        .routers
        .first()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "effective".to_string());
    let merged = Effective::build(Arc::new(Startup::new(loaded.resources)), parts, now)
        .map_err(|e| Exit::new(DATA, e.to_string()))?;
    // Parts that contribute nothing are worth a word on stderr; stdout stays
    // the document or the diff.
    for p in merged.parts() {
        if p.state == PartState::Rejected {
            eprintln!("routerctl: dynamic part {} rejected: {}", p.name, p.reason);
        }
    }
    Ok((merged, name))
}

fn render(args: RenderArgs) -> Result<i32> {
    let (merged, name) = merge(&args.inputs)?;
    let doc = serde_json::json!({
        "apiVersion": ROUTER_API,
        "kind": "Router",
        "metadata": {"name": name},
        "spec": {"resources": merged.iter().map(|e| e.annotated()).collect::<Vec<_>>()},
    });
    let format = match args.output {
        Format::Json => Format::Json,
        _ => Format::Yaml,
    };
    print_doc(&doc, format)?;
    Ok(OK)
}

fn diff(args: DiffArgs) -> Result<i32> {
    if args.files.is_empty() {
        return diff_daemon(&args.socket);
    }
    let inputs = Inputs {
        files: args.files,
        dynamic: args.dynamic,
        now: args.now,
    };
    let (merged, _) = merge(&inputs)?;
    out(&diff_text(&merged))?;
    Ok(OK)
}

/// `dynamic diff` of the running daemon: the same lines as offline.
fn diff_daemon(socket: &std::path::Path) -> Result<i32> {
    let client = routerd_api::client::Client::new(socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let doc: serde_json::Value = rt
        .block_on(client.get("/get?subject=dynamic-diff"))
        .map_err(crate::cmd::daemon::exit_of)?;
    out(&daemon_diff_text(&doc))?;
    Ok(OK)
}

fn daemon_diff_text(doc: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut o = String::new();
    for a in doc["added"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "+ {} source={} generation={}",
            s(&a["id"]),
            s(&a["source"]),
            s(&a["generation"])
        );
    }
    for x in doc["suppressed"].as_array().into_iter().flatten() {
        let t = &x["target"];
        let by: Vec<String> = x["maskedBy"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let until = Some(s(&x["maskedUntil"]))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "never".into());
        let _ = writeln!(
            o,
            "- {}/{}/{} maskedBy={} maskedUntil={until} reason={}",
            s(&t["apiVersion"]),
            s(&t["kind"]),
            s(&t["name"]),
            by.join(","),
            s(&x["reason"])
        );
    }
    if o.is_empty() {
        o.push_str("no dynamic config changes\n");
    }
    o
}

/// routerd's `dynamic diff` lines; `maskedBy` lists `source#generation`.
fn diff_text(merged: &Effective) -> String {
    let mut o = String::new();
    for e in merged.iter() {
        if let Provenance::Dynamic {
            source, generation, ..
        } = e.provenance
        {
            let _ = writeln!(
                o,
                "+ {} source={source} generation={generation}",
                e.resource.id()
            );
        }
    }
    for s in merged.suppressed() {
        let until = s
            .masked_until
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| "never".to_string());
        let _ = writeln!(
            o,
            "- {} maskedBy={} maskedUntil={until} reason={}",
            s.target,
            s.masked_by.join(","),
            s.reason
        );
    }
    if o.is_empty() {
        o.push_str("no dynamic config changes\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerd_model::Loaded;

    const STARTUP: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: t}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: backup}
      spec: {ifname: ens19}
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {name: p}
      spec:
        allow:
          - source: Plugin/cloud
            operations: [mask]
            targets: [{apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: backup}]
"#;

    const PART: &str = r#"
apiVersion: config.routerd.net/v1alpha1
kind: DynamicConfigPart
metadata: {name: Plugin-cloud-7}
spec:
  source: Plugin/cloud
  generation: 7
  expiresAt: "2026-05-29T13:00:00Z"
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: overlay}
      spec: {ifname: wg0}
  directives:
    - op: mask
      target: {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: backup}
      reason: metered
"#;

    fn load(text: &str) -> Vec<routerd_model::Resource> {
        let mut l = Loaded::new();
        l.add_file("t.yaml", text);
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        l.resources
    }

    fn merged(parts: &str, now: &str) -> Effective {
        let parts = load(parts)
            .into_iter()
            .map(|r| Part::from_resource(r).unwrap())
            .collect::<Vec<_>>();
        let now = parse_now(Some(now)).unwrap();
        Effective::build(Arc::new(Startup::new(load(STARTUP))), parts, now).unwrap()
    }

    #[test]
    fn diff_lists_added_and_suppressed_resources() {
        let text = diff_text(&merged(PART, "2026-05-29T12:00:00Z"));
        assert_eq!(
            text,
            "+ net.routerd.net/v1alpha1/Interface/overlay source=Plugin/cloud generation=7\n\
             - net.routerd.net/v1alpha1/Interface/backup maskedBy=Plugin/cloud#7 maskedUntil=2026-05-29T13:00:00Z reason=metered\n"
        );
    }

    /// The daemon's answer prints as the offline diff does.
    #[test]
    fn daemon_diff_lists_added_and_suppressed() {
        let doc = serde_json::json!({
            "added": [{"id": "net.routerd.net/v1alpha1/IPv4Route/r", "source": "Plugin/cloud", "generation": "7"}],
            "suppressed": [{"target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "Interface", "name": "backup"},
                "maskedBy": ["Plugin/cloud#7"], "reason": "maintenance"}]
        });
        assert_eq!(
            daemon_diff_text(&doc),
            "+ net.routerd.net/v1alpha1/IPv4Route/r source=Plugin/cloud generation=7\n- net.routerd.net/v1alpha1/Interface/backup maskedBy=Plugin/cloud#7 maskedUntil=never reason=maintenance\n"
        );
        assert_eq!(
            daemon_diff_text(&serde_json::json!({"added": [], "suppressed": []})),
            "no dynamic config changes\n"
        );
    }

    #[test]
    fn diff_says_so_when_nothing_changes() {
        let text = diff_text(&merged(PART, "2026-05-29T13:00:00Z"));
        assert_eq!(text, "no dynamic config changes\n");
    }
}
