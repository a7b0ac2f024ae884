//! `routerctl plugin run|list`: run one plugin now and show the candidate
//! part, or list the Plugin resources of a startup config.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::Utc;
use routerd_model::spec::PluginSpec;
use routerd_model::{Kind, Resource};
use routerd_plugin::events::routerctl_source;
use routerd_plugin::invoke::{Invocation, Report, invoke};
use routerd_plugin::request::manual_trigger;
use routerd_plugin::runner::{RunConfig, timeout_of};
use routerd_plugin::{CandidatePart, PartRules, override_policies, source_for};
use serde::Serialize;

use crate::exit::{DATA, Exit, NO, OK, TEMPFAIL, UNAVAILABLE};
use crate::input;
use crate::output::{Format, out, print_doc};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Run one plugin now and print the candidate DynamicConfigPart
    /// (resources, masks, and action plans, which are display-only).
    Run(RunArgs),
    /// List the Plugin resources with their triggers: of a startup config
    /// (`-f`), else of the running daemon.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Plugin name (`metadata.name` of a Plugin resource).
    name: String,
    /// Startup configuration file (`-` for standard input); repeat to
    /// combine. Required with `--dry-run`; without it the daemon runs the
    /// plugin from its own configuration.
    #[arg(short = 'f', long = "file")]
    files: Vec<String>,
    /// Run and validate here only; nothing is stored anywhere.
    #[arg(long)]
    dry_run: bool,
    /// The daemon's control socket (used without `--dry-run`).
    #[arg(long, env = "ROUTERD_SOCKET", default_value = crate::cmd::daemon::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Startup configuration file (`-` for standard input); repeat to
    /// combine. Without it the running daemon is asked.
    #[arg(short = 'f', long = "file")]
    files: Vec<String>,
    /// The daemon's control socket (without `-f`).
    #[arg(long, env = "ROUTERD_SOCKET", default_value = crate::cmd::daemon::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

pub fn run(args: Args) -> Result<i32> {
    match args.command {
        Sub::Run(a) => run_plugin(a),
        Sub::List(a) => list(a),
    }
}

/// Loads startup config and refuses an invalid one (a plugin must never run
/// against a config routerd would not accept).
fn startup(files: &[String]) -> Result<Vec<Resource>> {
    let (loaded, diags) = input::load_startup(files)?;
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.iter().any(|d| d.is_error()) {
        return Err(Exit::new(DATA, "config is invalid").into());
    }
    Ok(loaded.resources)
}

fn find_plugin<'a>(startup: &'a [Resource], name: &str) -> Result<&'a PluginSpec> {
    startup
        .iter()
        .find(|r| r.kind() == Kind::Plugin && r.name() == name)
        .and_then(Resource::as_plugin)
        .ok_or_else(|| {
            Exit::new(
                DATA,
                format!("Plugin \"{name}\" not found in startup config"),
            )
            .into()
        })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunDoc<'a> {
    plugin: &'a str,
    mode: &'a str,
    source: String,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Resource>,
    /// Action plans are carried on the part for display only.
    action_plans: ActionPlansNote,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plugin_events: Vec<routerd_model::spec::PluginEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<RunFacts>,
    events: &'a [routerd_model::Event],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionPlansNote {
    count: usize,
    executed: bool,
    note: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunFacts {
    exit_code: i32,
    duration_ms: u128,
    stdout_digest: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    stderr: String,
}

fn run_plugin(args: RunArgs) -> Result<i32> {
    if !args.dry_run {
        return run_in_daemon(&args);
    }
    if args.files.is_empty() {
        return Err(Exit::new(crate::exit::USAGE, "--dry-run needs -f STARTUP").into());
    }
    let startup = startup(&args.files)?;
    let spec = find_plugin(&startup, &args.name)?;
    // Refuse a bad timeout before building a runtime.
    timeout_of(spec, routerd_plugin::runner::DEFAULT_TIMEOUT)
        .map_err(|e| Exit::new(DATA, e.to_string()))?;
    let policies = override_policies(&startup);
    let rules = PartRules::default();
    let inv = Invocation {
        plugin: &args.name,
        spec,
        startup: &startup,
        policies: &policies,
        trigger: manual_trigger(),
        previous_generation: 0,
        events_from: routerctl_source(),
        rules: &rules,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cfg = RunConfig::from_process_env();
    let report = rt.block_on(invoke(inv, &cfg, &Utc::now));
    if let Some(s) = &report.stats {
        for line in s.stderr.lines() {
            eprintln!("plugin {} stderr: {line}", args.name);
        }
    }
    let doc = run_doc(&args.name, &report);
    match args.output {
        Format::Text => out(&run_text(&doc, report.outcome.as_ref().ok()))?,
        f => print_doc(&doc, f)?,
    }
    match report.outcome {
        Ok(_) => Ok(OK),
        Err(e) => Err(Exit::new(NO, format!("plugin {} rejected: {e}", args.name)).into()),
    }
}

fn run_doc<'a>(name: &'a str, report: &'a Report) -> RunDoc<'a> {
    let part = report.outcome.as_ref().ok();
    RunDoc {
        plugin: name,
        mode: "dry-run",
        source: source_for(name),
        accepted: part.is_some(),
        error: report.outcome.as_ref().err().map(ToString::to_string),
        part: part.map(CandidatePart::to_resource),
        action_plans: ActionPlansNote {
            count: part.map_or(0, |p| p.spec.action_plans.len()),
            executed: false,
            note: "display-only; not executed",
        },
        warnings: part.map(|p| p.warnings.clone()).unwrap_or_default(),
        plugin_events: part.map(|p| p.events.clone()).unwrap_or_default(),
        run: report.stats.as_ref().map(|s| RunFacts {
            exit_code: s.exit_code.unwrap_or(-1),
            duration_ms: s.duration.as_millis(),
            stdout_digest: s.stdout_digest.clone(),
            stderr: s.stderr.clone(),
        }),
        events: &report.events,
    }
}

fn run_text(doc: &RunDoc<'_>, part: Option<&CandidatePart>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Plugin:       {}", doc.plugin);
    let _ = writeln!(o, "Mode:         {}", doc.mode);
    let _ = writeln!(o, "Source:       {}", doc.source);
    if let Some(r) = &doc.run {
        let _ = writeln!(
            o,
            "Run:          exit {} in {} ms, stdout sha256 {}",
            r.exit_code, r.duration_ms, r.stdout_digest
        );
    }
    let Some(part) = part else {
        let _ = writeln!(
            o,
            "Rejected:     {}",
            doc.error.as_deref().unwrap_or("unknown")
        );
        return o;
    };
    let s = &part.spec;
    let time = |t: Option<chrono::DateTime<Utc>>| t.map_or("-".to_string(), |t| t.to_rfc3339());
    let _ = writeln!(o, "Part:         {}", part.name);
    let _ = writeln!(o, "Generation:   {}", s.generation);
    let _ = writeln!(o, "Observed At:  {}", time(s.observed_at));
    let _ = writeln!(o, "Expires:      {}", time(s.expires_at));
    let _ = writeln!(o, "Digest:       {}", s.digest.as_deref().unwrap_or("-"));
    let _ = writeln!(o, "Resources:    {}", s.resources.len());
    for r in &s.resources {
        let _ = writeln!(o, "  + {}", r.id());
    }
    let _ = writeln!(o, "Directives:   {}", s.directives.len());
    for d in &s.directives {
        let reason = d
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(o, "  {} {}{reason}", d.op, d.target);
    }
    let _ = writeln!(
        o,
        "Action Plans: {} display-only; not executed",
        s.action_plans.len()
    );
    for p in &s.action_plans {
        let mode = p
            .mode
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or("dry-run");
        let _ = writeln!(o, "  [{mode}] {} {} {}", p.name, p.provider, p.action);
    }
    let _ = writeln!(o, "Events:       {}", part.events.len());
    for e in &part.events {
        let _ = writeln!(o, "  {}: {}", e.type_, e.message);
    }
    for w in &part.warnings {
        let _ = writeln!(o, "Warning:      {w}");
    }
    o
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PluginRow {
    name: String,
    executable: String,
    timeout: String,
    triggers: Vec<routerd_model::spec::Trigger>,
    capabilities: Vec<String>,
    /// DynamicConfigSources that reference the plugin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<String>,
}

/// The Plugin and DynamicConfigSource resources of the daemon's effective
/// configuration.
fn daemon_plugins(socket: &std::path::Path) -> Result<Vec<Resource>> {
    let client = routerd_api::client::Client::new(socket);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    for kind in ["Plugin", "DynamicConfigSource"] {
        let doc: serde_json::Value = rt
            .block_on(client.get(&format!("/get?subject={kind}")))
            .map_err(crate::cmd::daemon::exit_of)?;
        for item in doc["items"].as_array().into_iter().flatten() {
            let r: Resource = serde_json::from_value(serde_json::json!({
                "apiVersion": item["apiVersion"],
                "kind": item["kind"],
                "metadata": {"name": item["name"]},
                "spec": item["spec"],
            }))
            .map_err(|e| Exit::new(NO, format!("the daemon's {kind} does not decode: {e}")))?;
            out.push(r);
        }
    }
    Ok(out)
}

fn list(args: ListArgs) -> Result<i32> {
    let startup = if args.files.is_empty() {
        daemon_plugins(&args.socket)?
    } else {
        startup(&args.files)?
    };
    let rows: Vec<PluginRow> = startup
        .iter()
        .filter_map(|r| r.as_plugin().map(|p| (r.name(), p)))
        .map(|(name, p)| PluginRow {
            name: name.to_string(),
            executable: p.executable.clone(),
            timeout: p
                .timeout
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "10s".into()),
            triggers: p.triggers.clone(),
            capabilities: p.capabilities.clone(),
            sources: startup
                .iter()
                .filter(|s| {
                    s.as_dynamic_source()
                        .is_some_and(|d| d.plugin_ref.trim() == name)
                })
                .map(|s| s.name().to_string())
                .collect(),
        })
        .collect();
    match args.output {
        Format::Text => out(&list_text(&rows))?,
        f => print_doc(&rows, f)?,
    }
    Ok(OK)
}

fn trigger_text(t: &routerd_model::spec::Trigger) -> String {
    match t.type_.as_str() {
        "interval" => format!("every {}", t.every.as_deref().unwrap_or("?")),
        "event" => format!("on {}", t.topic.as_deref().unwrap_or("?")),
        other => other.to_string(),
    }
}

fn list_text(rows: &[PluginRow]) -> String {
    if rows.is_empty() {
        return "no Plugin resources\n".into();
    }
    let mut table = vec![[
        "NAME".to_string(),
        "EXECUTABLE".to_string(),
        "TIMEOUT".to_string(),
        "TRIGGERS".to_string(),
        "SOURCES".to_string(),
    ]];
    for r in rows {
        let triggers: Vec<String> = r.triggers.iter().map(trigger_text).collect();
        table.push([
            r.name.clone(),
            r.executable.clone(),
            r.timeout.clone(),
            if triggers.is_empty() {
                "manual only".into()
            } else {
                triggers.join(", ")
            },
            if r.sources.is_empty() {
                "-".into()
            } else {
                r.sources.join(", ")
            },
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut o = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(row).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        let _ = writeln!(o, "{}", line.trim_end());
    }
    o
}

/// Parts live in the daemon's store, so a stored run happens in the daemon:
/// it runs the plugin with its own startup config and keeps the part.
fn run_in_daemon(args: &RunArgs) -> Result<i32> {
    let client = routerd_api::client::Client::new(&args.socket);
    let req = routerd_api::control::PluginRunRequest {
        api_version: Some(routerd_model::id::CONTROL_API.into()),
        kind: Some("PluginRunRequest".into()),
        name: args.name.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let doc: serde_json::Value =
        rt.block_on(client.post("/plugin/run", &req))
            .map_err(|e| match e {
                routerd_api::client::ClientError::Unavailable { .. } => Exit::new(
                    UNAVAILABLE,
                    format!("{e}; storing a part needs the routerd daemon (or use --dry-run)"),
                ),
                routerd_api::client::ClientError::Api { status: 404, .. } => {
                    Exit::new(DATA, e.to_string())
                }
                // The plugin is running (trigger or another manual run).
                routerd_api::client::ClientError::Api {
                    status: 409,
                    message,
                } => Exit::new(TEMPFAIL, message),
                other => Exit::new(NO, other.to_string()),
            })?;
    match args.output {
        Format::Text => out(&stored_text(&doc))?,
        f => print_doc(&doc, f)?,
    }
    Ok(if doc["accepted"].as_bool().unwrap_or(false) {
        OK
    } else {
        NO
    })
}

/// The text of a daemon run: what `--dry-run` shows (run, part, resources,
/// directives, action plans, events, warnings), then whether it was stored.
fn stored_text(doc: &serde_json::Value) -> String {
    use serde_json::Value;
    let s = |v: &Value| match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut o = String::new();
    let accepted = doc["accepted"].as_bool().unwrap_or(false);
    let _ = writeln!(o, "Plugin:       {}", s(&doc["plugin"]));
    let _ = writeln!(
        o,
        "Mode:         {}",
        if accepted {
            "stored"
        } else {
            "refused (nothing stored)"
        }
    );
    let _ = writeln!(o, "Source:       {}", s(&doc["source"]));
    let r = &doc["run"];
    if r.is_object() {
        let _ = writeln!(
            o,
            "Run:          exit {} in {} ms, stdout sha256 {}",
            s(&r["exitCode"]),
            s(&r["durationMs"]),
            s(&r["stdoutDigest"])
        );
    }
    if !accepted {
        let _ = writeln!(o, "Rejected:     {}", s(&doc["error"]));
        return o;
    }
    let part = &doc["part"];
    let spec = &part["spec"];
    let or_dash = |v: &Value| {
        Some(s(v))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(o, "Part:         {}", s(&part["metadata"]["name"]));
    let _ = writeln!(o, "Generation:   {}", s(&spec["generation"]));
    let _ = writeln!(o, "Observed At:  {}", or_dash(&spec["observedAt"]));
    let _ = writeln!(o, "Expires:      {}", or_dash(&spec["expiresAt"]));
    let _ = writeln!(o, "Digest:       {}", or_dash(&spec["digest"]));
    let list = |k: &str| spec[k].as_array().cloned().unwrap_or_default();
    let resources = list("resources");
    let _ = writeln!(o, "Resources:    {}", resources.len());
    for r in &resources {
        let _ = writeln!(
            o,
            "  + {}/{}/{}",
            s(&r["apiVersion"]),
            s(&r["kind"]),
            s(&r["metadata"]["name"])
        );
    }
    let directives = list("directives");
    let _ = writeln!(o, "Directives:   {}", directives.len());
    for d in &directives {
        let reason = Some(s(&d["reason"]))
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let t = &d["target"];
        let target = if t.is_object() {
            format!(
                "{}/{}/{}",
                s(&t["apiVersion"]),
                s(&t["kind"]),
                s(&t["name"])
            )
        } else {
            s(t)
        };
        let _ = writeln!(o, "  {} {target}{reason}", s(&d["op"]));
    }
    let plans = list("actionPlans");
    let _ = writeln!(
        o,
        "Action Plans: {} display-only; not executed",
        plans.len()
    );
    for p in &plans {
        let mode = Some(s(&p["mode"]))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "dry-run".into());
        let _ = writeln!(
            o,
            "  [{mode}] {} {} {}",
            s(&p["name"]),
            s(&p["provider"]),
            s(&p["action"])
        );
    }
    let events = doc["pluginEvents"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(o, "Events:       {}", events.len());
    for e in &events {
        let _ = writeln!(o, "  {}: {}", s(&e["type"]), s(&e["message"]));
    }
    for w in doc["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "Warning:      {}", s(w));
    }
    let _ = writeln!(
        o,
        "Stored:       {} generation {} (routerctl dynamic list)",
        s(&part["metadata"]["name"]),
        s(&spec["generation"])
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(accepted: bool) -> serde_json::Value {
        serde_json::json!({
            "kind": "PluginRunResult",
            "plugin": "cloud",
            "mode": if accepted { "stored" } else { "refused" },
            "source": "Plugin/cloud",
            "accepted": accepted,
            "error": if accepted { serde_json::Value::Null } else { "resource 0: kind Plugin is not allowed".into() },
            "part": if accepted { serde_json::json!({
                "apiVersion": "config.routerd.net/v1alpha1",
                "kind": "DynamicConfigPart",
                "metadata": {"name": "Plugin-cloud-4"},
                "spec": {
                    "source": "Plugin/cloud", "generation": 4, "digest": "abc",
                    "resources": [{"apiVersion": "net.routerd.net/v1alpha1", "kind": "IPv4Route", "metadata": {"name": "vpc"}, "spec": {}}],
                    "directives": [{"op": "mask", "target": {"apiVersion": "net.routerd.net/v1alpha1", "kind": "Interface", "name": "backup"}, "reason": "maintenance"}]
                }
            }) } else { serde_json::Value::Null },
            "run": {"exitCode": 0, "durationMs": 12, "stdoutDigest": "d1"},
            "warnings": [],
            "pluginEvents": []
        })
    }

    /// A daemon run shows what `--dry-run` shows plus what was stored; a
    /// refused run says nothing was stored.
    #[test]
    fn stored_runs_read_like_dry_runs() {
        assert_eq!(
            stored_text(&doc(true)),
            "Plugin:       cloud
Mode:         stored
Source:       Plugin/cloud
Run:          exit 0 in 12 ms, stdout sha256 d1
Part:         Plugin-cloud-4
Generation:   4
Observed At:  -
Expires:      -
Digest:       abc
Resources:    1
  + net.routerd.net/v1alpha1/IPv4Route/vpc
Directives:   1
  mask net.routerd.net/v1alpha1/Interface/backup (maintenance)
Action Plans: 0 display-only; not executed
Events:       0
Stored:       Plugin-cloud-4 generation 4 (routerctl dynamic list)
"
        );
        let refused = stored_text(&doc(false));
        assert!(
            refused.contains("Mode:         refused (nothing stored)"),
            "{refused}"
        );
        assert!(!refused.contains("Mode:         stored"), "{refused}");
        assert!(refused.contains("Rejected:     resource 0"), "{refused}");
    }
}
