//! `routerd apply --once -f FILE [--state SNAPSHOT]`: one reconcile of the
//! live kernel (root), printing the plan it carried out.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use routerd_api::{PlanInputs, build_plan};
use routerd_model::validate::Context;
use routerd_model::{Loaded, StateSnapshot};
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_render::nft_backend::NftBackend;
use routerd_render::{
    Dataplane, Ledger, Ownership, ReconcileOptions, diff_with, reconcile, render,
};

/// Arguments of `routerd apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Apply once and exit (the only mode so far; `serve` runs continuously).
    #[arg(long)]
    once: bool,
    /// Configuration files (`-` for standard input).
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<String>,
    /// Status snapshot (YAML or JSON) the selection reads.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Ownership ledger: what routerd created, so it removes exactly that.
    #[arg(long, default_value = "/var/lib/routerd/ledger.json")]
    ledger: PathBuf,
    /// Work inside this network namespace (`ip netns` name or path).
    #[arg(long)]
    netns: Option<String>,
    /// Print the plan without changing anything.
    #[arg(long)]
    dry_run: bool,
}

fn load(files: &[String]) -> Result<Loaded> {
    let mut loaded = Loaded::new();
    for f in files {
        let text = if f == "-" {
            std::io::read_to_string(std::io::stdin()).context("read standard input")?
        } else {
            std::fs::read_to_string(f).with_context(|| format!("read {f}"))?
        };
        loaded.add_file(f, &text);
    }
    let diags = loaded.validate(Context::Startup);
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        bail!("invalid configuration:\n{}", errors.join("\n"));
    }
    Ok(loaded)
}

fn read_ledger(path: &Path) -> Result<Ledger> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Write to a temporary file, then rename: a crash never leaves half a
/// ledger.
fn write_ledger(path: &Path, ledger: &Ledger) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(ledger)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

pub(crate) fn backends() -> Vec<Box<dyn NftBackend>> {
    #[cfg(feature = "rustables")]
    {
        vec![Box::new(routerd_nft_rustables::RustablesBackend::new())]
    }
    #[cfg(not(feature = "rustables"))]
    {
        Vec::new()
    }
}

pub(crate) fn run(args: &Args) -> Result<i32> {
    if !args.once {
        bail!("only `apply --once` is implemented; use `routerd serve` for continuous operation");
    }
    let loaded = load(&args.files)?;
    let state: StateSnapshot = match &args.state {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            serde_yaml::from_str(&text).with_context(|| format!("parse {}", p.display()))?
        }
        None => StateSnapshot::new(),
    };
    // The same pipeline as `routerctl plan`: merge and selection statuses.
    let doc = build_plan(&PlanInputs {
        startup: loaded.resources,
        state: state.clone(),
        now: chrono::Utc::now(),
        ..PlanInputs::default()
    })?;
    let mut status = state;
    status.extend(doc.status.clone());
    let rendered = render(&doc.effective, &status);
    for p in &rendered.problems {
        eprintln!("warning: {}: {}", p.owner, p.message);
    }

    if let Some(ns) = &args.netns {
        // Only this thread moves; it spawns every nft process.
        netns::enter(ns)?;
    }
    let ownership = Ownership::default();
    let mut dp = LinuxDataplane::new(backends(), ownership.clone())
        .context("open the netlink dataplane (needs CAP_NET_ADMIN)")?;
    let mut ledger = read_ledger(&args.ledger)?;

    if args.dry_run {
        let observed = dp.observe()?;
        let plan = diff_with(&rendered.desired, &observed, &ledger, &ownership);
        print!("{plan}");
        return Ok(0);
    }
    let opts = ReconcileOptions {
        ownership,
        ..ReconcileOptions::default()
    };
    let result = reconcile(&mut dp, &rendered.desired, &mut ledger, &opts);
    // The ledger records what exists even after a failure.
    write_ledger(&args.ledger, &ledger)?;
    match result {
        Ok(out) => {
            if out.plan.is_empty() {
                println!("# nothing to do");
            }
            print!("{}", out.plan);
            for retry in &out.retries {
                println!("# verification retry");
                print!("{retry}");
            }
            for f in &out.faults {
                eprintln!("{}: {}: {}", f.owner, f.reason, f.message);
            }
            // Everything else applied; the refused owners make it exit 1.
            Ok(if out.faults.is_empty() { 0 } else { 1 })
        }
        Err(e) => Err(e.into()),
    }
}
