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
    /// The state directory a `routerd serve` would use; when a daemon runs
    /// on it (its store is locked), `apply --once` refuses: two writers with
    /// two ledgers would undo each other. Defaults to the ledger's directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// An error with the exit status it maps to (routerctl's codes:
/// docs/cli.md).
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Invalid configuration (EX_DATAERR), as `routerctl validate`.
const DATA: i32 = 65;
/// An input file could not be read (EX_NOINPUT).
const NO_INPUT: i32 = 66;
/// A daemon is doing this already (EX_TEMPFAIL), as `routerctl plugin run`.
const TEMPFAIL: i32 = 75;

/// Whether a daemon runs on `state_dir`: it holds the lock of the store
/// in `<state_dir>/store` for as long as it runs.
fn live_daemon(state_dir: &Path) -> bool {
    let dir = state_dir.join("store");
    if !dir.exists() {
        return false;
    }
    matches!(
        routerd_store::Store::open_sled_with(&dir, routerd_store::StoreOptions::default()),
        Err(routerd_store::StoreError::Open(e)) if e.failure == routerd_store::OpenFailure::Locked
    )
}

fn load(files: &[String]) -> Result<Loaded> {
    let mut loaded = Loaded::new();
    for f in files {
        let text = if f == "-" {
            std::io::read_to_string(std::io::stdin()).context("read standard input")?
        } else {
            std::fs::read_to_string(f).map_err(|e| Exit {
                code: NO_INPUT,
                message: format!("read {f}: {e}"),
            })?
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
        return Err(Exit {
            code: DATA,
            message: format!("invalid configuration:\n{}", errors.join("\n")),
        }
        .into());
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

/// The nft backends before `nft -j` (which the dataplane appends): rustables
/// for the simple tables it has always loaded, then routerd's own in-process
/// encoder for what rustables cannot express (EgressRouter maps, hashes,
/// anonymous sets), whose socket stays open (docs/performance.md).
pub(crate) fn backends() -> Vec<Box<dyn NftBackend>> {
    let own: Box<dyn NftBackend> = Box::new(routerd_render::linux::NfNetlink::new());
    #[cfg(feature = "rustables")]
    {
        vec![
            Box::new(routerd_nft_rustables::RustablesBackend::new()),
            own,
        ]
    }
    #[cfg(not(feature = "rustables"))]
    {
        vec![own]
    }
}

pub(crate) fn run(args: &Args) -> Result<i32> {
    if !args.once {
        bail!("only `apply --once` is implemented; use `routerd serve` for continuous operation");
    }
    let state_dir = args
        .state_dir
        .clone()
        .or_else(|| args.ledger.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    if live_daemon(&state_dir) {
        return Err(Exit {
            code: TEMPFAIL,
            message: format!(
                "a routerd daemon is running on {} (its store is locked); it owns the kernel state there, and a second writer with its own ledger would undo its work: apply through it with `routerctl apply -f FILE`, or stop it first",
                state_dir.display()
            ),
        }
        .into());
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
        if plan.is_empty() {
            println!("# nothing to do");
        }
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
