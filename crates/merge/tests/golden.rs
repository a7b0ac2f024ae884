//! Golden cases under tests/golden/<case>/: startup.yaml, parts.yaml, now,
//! expected.json. `ROUTERD_BLESS=1` rewrites expected.json.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::path::Path;
use std::sync::Arc;

use routerd_merge::{Effective, Part, Startup};

fn run_case(dir: &Path, bless: bool) -> Result<(), String> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    };
    let startup = common::load(&read("startup.yaml")?);
    let parts: Vec<Part> = common::load(&read("parts.yaml")?)
        .into_iter()
        .map(|r| Part::from_resource(r).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let now = common::t(read("now")?.trim());
    let mut rev = parts.clone();
    rev.reverse();
    let s = Arc::new(Startup::new(startup));
    let e = Effective::build(s.clone(), parts, now).map_err(|e| e.to_string())?;
    let r = Effective::build(s, rev, now).map_err(|e| e.to_string())?;
    if e.document() != r.document() {
        return Err(format!("{}: result depends on part order", dir.display()));
    }
    let got = serde_json::to_string_pretty(&e.document()).map_err(|e| e.to_string())? + "\n";
    let path = dir.join("expected.json");
    if bless {
        std::fs::write(&path, &got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (run with ROUTERD_BLESS=1 to create it)",
            path.display()
        )
    })?;
    if want != got {
        return Err(format!(
            "{} differs from the merge result (ROUTERD_BLESS=1 re-blesses):\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
    Ok(())
}

#[test]
fn golden_cases() {
    let bless = std::env::var("ROUTERD_BLESS").is_ok_and(|v| v == "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no golden cases under {}", root.display());
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|d| run_case(d, bless).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
