//! Verbs answered by a running daemon over its control socket: `status`,
//! `get`, `describe`, `events`, `explain`, `apply`, `delete`.
//!
//! `apply` and `delete` wait for the reconcile step that runs their change
//! and exit 1 when any owner failed in the kernel (docs/cli.md).

use std::path::PathBuf;

use anyhow::Result;
use routerd_api::client::{Client, ClientError};
use routerd_api::control::{ApplyRequest, DeleteRequest};
use serde_json::Value;

use crate::cmd::text;
use crate::exit::{DATA, Exit, NO, NOPERM, OK, UNAVAILABLE, USAGE};
use crate::input;
use crate::output::{Format, out, print_doc};

/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/routerd/routerd.sock";

#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The daemon's control socket.
    #[arg(long, global = true, env = "ROUTERD_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GetFormat {
    /// Aligned columns (`text` is the same).
    #[value(alias = "text")]
    Table,
    /// Pretty JSON.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    conn: Conn,
    /// `resources`, `status`, `events`, `ledger`, `orphans`, a kind, or `Kind/name`.
    subject: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: GetFormat,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    conn: Conn,
    /// `Kind/name`.
    target: String,
    /// Recent events to show.
    #[arg(long, default_value_t = 10)]
    events_limit: usize,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// Only events about `Kind/name`.
    #[arg(long)]
    resource: Option<String>,
    /// Most events per request.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Keep waiting for new events (long poll) until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct CordonArgs {
    #[command(flatten)]
    conn: Conn,
    /// This node's name (`routerd serve --node-name`).
    node: String,
}

/// `cordon NODE` / `uncordon NODE`: maintenance in every gateway group of
/// this node (it gives up its roles and takes none until uncordoned).
pub fn cordon(a: CordonArgs, on: bool) -> Result<i32> {
    let c = Client::new(&a.conn.socket);
    let path = format!("/cordon?node={}&on={on}", encode(&a.node));
    let v: Value = runtime()?
        .block_on(c.post(&path, &serde_json::json!({})))
        .map_err(exit_of)?;
    print_doc(&v, Format::Yaml)?;
    Ok(OK)
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    conn: Conn,
    /// What to explain: `egress` (an EgressRoutePolicy's decision) or
    /// `gateway` (an EgressGateway as this node sees it), `claim` (why a
    /// RemoteAddressClaim is captured here or not).
    #[arg(value_parser = ["egress", "gateway", "claim"])]
    what: String,
    /// EgressRoutePolicy, EgressGateway or RemoteAddressClaim name.
    policy: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    conn: Conn,
    /// Configuration file (`-` for standard input).
    #[arg(short = 'f', long = "file", required = true)]
    file: String,
    /// Replace the whole configuration instead of upserting its resources.
    #[arg(long)]
    replace: bool,
    /// Compute the result only: the resources added, changed and removed,
    /// and the dataplane operations.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the reconcile step that runs the new
    /// configuration (`0s`: answer once it is stored).
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    timeout: u64,
    /// Output format (`text`: a summary and the changes).
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    conn: Conn,
    /// `Kind/name`, or `orphans`: the kernel objects with routerd's markers
    /// that nobody claims (`routerctl get orphans`).
    target: String,
    /// apiVersion of the target when the kind is ambiguous.
    #[arg(long)]
    api_version: Option<String>,
    /// Report what would be deleted only, with the dataplane operations.
    #[arg(long)]
    dry_run: bool,
    /// As for `apply`.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    timeout: u64,
    /// Output format (`text`: a summary and the changes).
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: Format,
}

/// A Go-style duration (`30s`, `2m`) or plain seconds, in whole seconds.
fn parse_timeout(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let d = routerd_model::GoDuration::parse(s).map_err(|e| e.to_string())?;
    Ok(d.to_std().as_secs())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Maps client errors to the documented exit codes.
pub(crate) fn exit_of(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Unavailable { .. } => Exit::new(UNAVAILABLE, e.to_string()).into(),
        ClientError::Api { status, .. } if status == 400 || status == 404 => {
            Exit::new(DATA, e.to_string()).into()
        }
        ClientError::Api { status: 403, .. } => Exit::new(NOPERM, e.to_string()).into(),
        other => Exit::new(NO, other.to_string()).into(),
    }
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prints `v` as the machine format asked for, or as `text` renders it.
fn print(v: &Value, format: Format, text: fn(&Value) -> String) -> Result<()> {
    match format {
        Format::Text => out(&text(v)),
        f => print_doc(v, f),
    }
}

pub fn status(a: StatusArgs) -> Result<i32> {
    let c = Client::new(&a.conn.socket);
    let v: Value = runtime()?.block_on(c.get("/status")).map_err(exit_of)?;
    print(&v, a.output, text::status)?;
    Ok(OK)
}

/// The subjects `get` knows besides kinds.
const GET_SUBJECTS: &[&str] = &[
    "resources",
    "all",
    "status",
    "events",
    "ledger",
    "orphans",
    "dynamic",
    "dynamic-diff",
];

/// A subject that is neither a known word nor a kind is a usage error
/// (exit 64) before the daemon is asked: an empty table would read as
/// "nothing of that kind exists".
fn check_subject(subject: &str) -> Result<()> {
    let kind = subject.split_once('/').map_or(subject, |(k, _)| k);
    if subject.contains('/') || !GET_SUBJECTS.contains(&subject) {
        let known = routerd_model::Kind::ALL
            .iter()
            .any(|k| k.as_str().eq_ignore_ascii_case(kind));
        if !known {
            return Err(Exit::new(
                USAGE,
                format!(
                    "unknown kind {kind:?}: expected {} , a kind (routerctl schema lists them) or Kind/name",
                    GET_SUBJECTS.join(", ")
                ),
            )
            .into());
        }
    }
    Ok(())
}

pub fn get(a: GetArgs) -> Result<i32> {
    check_subject(&a.subject)?;
    let c = Client::new(&a.conn.socket);
    let v: Value = runtime()?
        .block_on(c.get(&format!("/get?subject={}", encode(&a.subject))))
        .map_err(exit_of)?;
    match a.output {
        GetFormat::Json => print_doc(&v, Format::Json)?,
        GetFormat::Yaml => print_doc(&v, Format::Yaml)?,
        GetFormat::Table => out(&match a.subject.as_str() {
            "events" => {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                text::events(&items, true)
            }
            "dynamic" => text::parts(&v),
            "ledger" => text::ledger(&v),
            "status" => text::statuses(&v),
            "orphans" => text::orphans(&v),
            _ => text::resources(&v),
        })?,
    }
    Ok(OK)
}

pub fn describe(a: DescribeArgs) -> Result<i32> {
    if routerd_model::id::split_kind_name(&a.target).is_none() {
        return Err(Exit::new(USAGE, format!("{:?} must be Kind/name", a.target)).into());
    }
    let c = Client::new(&a.conn.socket);
    let v: Value = runtime()?
        .block_on(c.get(&format!(
            "/describe?target={}&events-limit={}",
            encode(&a.target),
            a.events_limit
        )))
        .map_err(exit_of)?;
    match super::egress_router::text(&v) {
        Some(t) if a.output == Format::Text => out(&t)?,
        _ => print(&v, a.output, text::describe)?,
    }
    Ok(OK)
}

pub fn explain(a: ExplainArgs) -> Result<i32> {
    let c = Client::new(&a.conn.socket);
    if a.what == "claim" {
        let v: Value = runtime()?
            .block_on(c.get(&format!(
                "/describe?target={}&events-limit=10",
                encode(&format!("RemoteAddressClaim/{}", a.policy))
            )))
            .map_err(exit_of)?;
        print(
            &super::claim::explain_claim(&v),
            a.output,
            super::claim::explain_claim_text,
        )?;
        return Ok(OK);
    }
    let key = if a.what == "gateway" {
        "gateway"
    } else {
        "policy"
    };
    let v: Value = runtime()?
        .block_on(c.get(&format!("/explain?{key}={}", encode(&a.policy))))
        .map_err(exit_of)?;
    print(&v, a.output, text::explain)?;
    Ok(OK)
}

pub fn events(a: EventsArgs) -> Result<i32> {
    let rt = runtime()?;
    let c = Client::new(&a.conn.socket);
    let mut since = a.since;
    // While following, a daemon that goes away (restart, upgrade) is waited
    // for: retry with backoff and resume after the last event printed.
    let mut backoff = RETRY_FIRST;
    let mut lost = false;
    // The timeline's header is printed once, above the first events.
    let mut printed = false;
    loop {
        let mut path = format!("/events?since-id={since}&limit={}", a.limit);
        if let Some(t) = &a.topic {
            path.push_str(&format!("&topic={}", encode(t)));
        }
        if let Some(r) = &a.resource {
            path.push_str(&format!("&resource={}", encode(r)));
        }
        if a.follow {
            path.push_str("&wait=30");
        }
        let v: Value = match rt.block_on(c.get(&path)) {
            Ok(v) => v,
            Err(e @ (ClientError::Unavailable { .. } | ClientError::Protocol(_))) if a.follow => {
                if !lost {
                    eprintln!("routerctl: {e}; retrying");
                    lost = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
            Err(e) => return Err(exit_of(e)),
        };
        if lost {
            eprintln!("routerctl: reconnected; following after event {since}");
            lost = false;
        }
        backoff = RETRY_FIRST;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in &items {
            since = since.max(e.get("id").and_then(Value::as_u64).unwrap_or(0));
        }
        // A store that was replaced (recovered) numbers events from 1 again.
        if let Some(last) = v.get("lastId").and_then(Value::as_u64)
            && a.follow
            && items.is_empty()
            && last < since
        {
            eprintln!(
                "routerctl: the daemon's events restart at {last} (its store was replaced); following from there"
            );
            since = last;
        }
        match a.output {
            Format::Text => {
                out(&text::events(&items, !printed))?;
                printed |= !items.is_empty();
            }
            f => print_doc(&items, f)?,
        }
        if !a.follow {
            return Ok(OK);
        }
    }
}

const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(200);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

pub fn apply(a: ApplyArgs) -> Result<i32> {
    let text = input::read(&a.file)?;
    let req = ApplyRequest {
        api_version: Some(routerd_model::id::CONTROL_API.into()),
        kind: Some("ApplyRequest".into()),
        candidate_yaml: text,
        // Errors then cite the operator's file by the name they gave.
        source: Some(if a.file == "-" {
            "<stdin>".to_string()
        } else {
            a.file.clone()
        }),
        replace: a.replace,
        dry_run: a.dry_run,
        timeout_seconds: Some(a.timeout),
    };
    let c = Client::new(&a.conn.socket);
    let v: Value = runtime()?
        .block_on(c.post("/apply", &req))
        .map_err(exit_of)?;
    report(&v, a.output)
}

pub fn delete(a: DeleteArgs) -> Result<i32> {
    if a.target != "orphans" && routerd_model::id::split_kind_name(&a.target).is_none() {
        return Err(Exit::new(
            USAGE,
            format!("{:?} must be Kind/name or orphans", a.target),
        )
        .into());
    }
    let req = DeleteRequest {
        api_version: Some(routerd_model::id::CONTROL_API.into()),
        kind: Some("DeleteRequest".into()),
        target: a.target,
        target_api_version: a.api_version,
        dry_run: a.dry_run,
        timeout_seconds: Some(a.timeout),
    };
    let c = Client::new(&a.conn.socket);
    let v: Value = runtime()?
        .block_on(c.post("/delete", &req))
        .map_err(exit_of)?;
    report(&v, a.output)
}

/// Prints an apply or delete result and turns its phase into the exit
/// status: 0 when the kernel took the whole configuration (or for a dry
/// run, or when not waiting), 1 when any owner failed, the step failed, or
/// the step did not finish in time. Failed owners go to standard error too.
fn report(v: &Value, format: Format) -> Result<i32> {
    match format {
        Format::Text => out(&result_text(v))?,
        f => print_doc(v, f)?,
    }
    let result = &v["result"];
    let phase = result["phase"].as_str().unwrap_or("");
    let owners = result["failedOwners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for f in &owners {
        eprintln!(
            "routerctl: {}: {}: {}",
            f["owner"].as_str().unwrap_or(""),
            f["reason"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        );
    }
    match phase {
        "Applied" | "Accepted" | "Planned" => Ok(OK),
        other => {
            let why = result["message"].as_str().unwrap_or("");
            eprintln!(
                "routerctl: generation {}: {other}: {why}",
                result["generation"]
            );
            Ok(NO)
        }
    }
}

/// The text form of an apply or delete result.
fn result_text(v: &Value) -> String {
    use std::fmt::Write as _;
    let r = &v["result"];
    let mut o = String::new();
    let phase = r["phase"].as_str().unwrap_or("");
    if phase == "Planned" {
        let _ = writeln!(o, "dry run: {} resource(s)", r["resources"]);
    } else {
        let _ = writeln!(o, "generation {}: {phase}", r["generation"]);
    }
    let ids = |k: &str| -> Vec<String> {
        r["changes"][k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (mark, key) in [("+", "added"), ("~", "changed"), ("-", "removed")] {
        for id in ids(key) {
            let _ = writeln!(o, "{mark} {id}");
        }
    }
    if let Some(ops) = r["dataplane"].as_array() {
        if ops.is_empty() {
            let _ = writeln!(o, "dataplane: no change");
        } else {
            let _ = writeln!(o, "dataplane:");
            for op in ops {
                let _ = writeln!(o, "  {}", op.as_str().unwrap_or(""));
            }
        }
    }
    for f in r["failedOwners"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "failed: {} {}: {}",
            f["owner"].as_str().unwrap_or(""),
            f["reason"].as_str().unwrap_or(""),
            f["message"].as_str().unwrap_or("")
        );
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "warning: {}", w.as_str().unwrap_or(""));
    }
    if let Some(m) = r["message"].as_str().filter(|m| !m.is_empty()) {
        let _ = writeln!(o, "{m}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("EgressRoutePolicy/ipv4 default"),
            "EgressRoutePolicy%2Fipv4%20default"
        );
    }

    #[test]
    fn unknown_kinds_are_usage_errors() {
        for ok in ["resources", "events", "ledger", "IPv4Route", "ipv4route/x"] {
            assert!(check_subject(ok).is_ok(), "{ok}");
        }
        for bad in ["NoSuchKind", "NoSuchKind/x", "event"] {
            let e = check_subject(bad).unwrap_err();
            assert_eq!(
                e.downcast_ref::<Exit>().map(|e| e.code),
                Some(USAGE),
                "{bad}"
            );
        }
    }
}
