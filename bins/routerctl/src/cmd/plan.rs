//! `routerctl plan`: the offline dry run. It reads files only, never the
//! host, and needs no root.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use routerd_api::{PlanDocument, PlanInputs, build_plan};
use routerd_model::{Kind, Loaded, StateSnapshot};

use crate::exit::{DATA, Exit, OK, USAGE};
use crate::input;
use crate::output::{Format, print_doc};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Startup configuration file (`-` for standard input); repeat to combine.
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<String>,
    /// Status snapshot: a YAML map from resource id to status (the output of
    /// `routerctl get status -o yaml`).
    #[arg(long)]
    state: Option<String>,
    /// A DynamicConfigPart file; repeat for several.
    #[arg(long = "dynamic")]
    dynamic: Vec<String>,
    /// The instant to plan for (RFC 3339); defaults to now.
    #[arg(long)]
    now: Option<String>,
    /// What a field no type declares does: `error` rejects the file;
    /// `warn` accepts it with one warning per field, as routerd (which
    /// drops such fields silently) would. A `Router` document's
    /// `spec.unknownFields: warn` does the same for its own resources.
    #[arg(
        long = "unknown-fields",
        value_name = "error|warn",
        default_value = "error"
    )]
    unknown_fields: routerd_model::UnknownFields,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
}

pub fn run(args: Args) -> Result<i32> {
    let (loaded, mut diags) = input::load_startup_with(&args.files, args.unknown_fields)?;
    diags.extend(input::port_warnings(&loaded));
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.iter().any(|d| d.is_error()) {
        return Err(Exit::new(DATA, "config is invalid; nothing planned").into());
    }
    let now = parse_now(args.now.as_deref())?;
    let state = match &args.state {
        Some(p) => load_state(p)?,
        None => StateSnapshot::new(),
    };
    let dynamic_parts = load_parts(&args.dynamic)?;
    let unmanaged = loaded.unmanaged;
    let inputs = PlanInputs {
        startup: loaded.resources,
        dynamic_parts,
        state,
        now,
    };
    let mut doc = build_plan(&inputs).map_err(|e| Exit::new(DATA, e.to_string()))?;
    doc.unmanaged = unmanaged;
    match args.output {
        Format::Text => crate::output::out(&text(&doc))?,
        f => print_doc(&doc, f)?,
    }
    Ok(OK)
}

pub fn parse_now(now: Option<&str>) -> Result<DateTime<Utc>> {
    match now {
        None => Ok(Utc::now()),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| Exit::new(USAGE, format!("--now {s:?} is not RFC 3339: {e}")).into()),
    }
}

pub fn load_state(path: &str) -> Result<StateSnapshot> {
    let text = input::read(path)?;
    if text.trim().is_empty() {
        return Ok(StateSnapshot::new());
    }
    serde_yaml::from_str(&text).map_err(|e| {
        Exit::new(
            DATA,
            format!("--state {path}: expected a map from resource id to status object: {e}"),
        )
        .into()
    })
}

/// Loads DynamicConfigPart resources; every file may hold several documents.
pub fn load_parts(files: &[String]) -> Result<Vec<routerd_model::Resource>> {
    let mut loaded = Loaded::new();
    for f in files {
        let text = input::read(f).with_context(|| format!("--dynamic {f}"))?;
        loaded.add_file(f, &text);
    }
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        return Err(Exit::new(DATA, errors.join("\n")).into());
    }
    for (r, o) in loaded.resources.iter().zip(&loaded.origins) {
        if r.kind() != Kind::DynamicConfigPart {
            let file = &loaded.files[o.file];
            return Err(Exit::new(
                DATA,
                format!("{file}: {} is not a DynamicConfigPart", r.id()),
            )
            .into());
        }
    }
    Ok(loaded.resources)
}

fn text(doc: &PlanDocument) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "Plan at {}", doc.now.to_rfc3339());
    let _ = writeln!(o, "Effective resources ({}):", doc.effective.len());
    for r in &doc.effective {
        let _ = writeln!(o, "  {}", r.id());
    }
    if !doc.suppressed.is_empty() {
        let _ = writeln!(o, "Suppressed ({}):", doc.suppressed.len());
        for s in &doc.suppressed {
            let _ = writeln!(o, "  {s}");
        }
    }
    if !doc.dynamic_parts.is_empty() {
        let _ = writeln!(o, "Dynamic parts ({}):", doc.dynamic_parts.len());
        for p in &doc.dynamic_parts {
            let _ = writeln!(o, "  {p}");
        }
    }
    if !doc.unmanaged.is_empty() {
        let _ = writeln!(
            o,
            "Unmanaged ({}): routerd kinds kept and ignored, never rendered",
            doc.unmanaged.len()
        );
        for u in &doc.unmanaged {
            let _ = writeln!(o, "  {}", u.id());
        }
    }
    if !doc.status.is_empty() {
        let _ = writeln!(o, "Status:");
        for (id, st) in &doc.status {
            let phase = st.get("phase").and_then(|v| v.as_str()).unwrap_or("-");
            let reason = st.get("reason").and_then(|v| v.as_str()).unwrap_or("");
            let _ = writeln!(o, "  {id}: {phase} {reason}");
        }
    }
    if !doc.dataplane.links.is_empty() {
        let _ = writeln!(o, "Links:");
        for l in &doc.dataplane.links {
            let s = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let _ = writeln!(o, "  {}  # {}", s("command"), s("owner"));
        }
    }
    if !doc.dataplane.addresses.is_empty() {
        let _ = writeln!(o, "Addresses:");
        for a in &doc.dataplane.addresses {
            let s = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let _ = writeln!(
                o,
                "  {} dev {}  # {}",
                s("address"),
                s("device"),
                s("owner")
            );
        }
    }
    if !doc.events.is_empty() {
        let _ = writeln!(o, "Events:");
        for e in &doc.events {
            let _ = writeln!(o, "  {} {}", e.type_, e.resource);
        }
    }
    if !doc.notes.is_empty() {
        let _ = writeln!(o, "Notes:");
        for n in &doc.notes {
            let _ = writeln!(o, "  {}: {}", n.owner, n.message);
        }
    }
    o
}
