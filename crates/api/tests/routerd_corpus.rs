//! routerd's own configurations (crates/model/tests/routerd-corpus, see its
//! README for origin and licence) load with `--unknown-fields=warn` and
//! plan: a routerd user's whole `router.yaml` is usable unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use routerd_api::{PlanInputs, build_plan};
use routerd_model::compat::IGNORED_FIELD;
use routerd_model::{UnknownFields, load_and_validate_with};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/routerd-corpus")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
}

/// Whether a warning is one the corpus may produce: a field routerd
/// ignores, a kind this daemon keeps without managing, or one of the
/// model's own advisory warnings (they exist for any configuration).
fn expected_warning(message: &str) -> bool {
    message.contains(IGNORED_FIELD)
        || message.contains("is a routerd kind this daemon does not manage; it is kept and ignored")
}

#[test]
fn every_routerd_configuration_loads_with_warn_and_plans() {
    let mut files = Vec::new();
    yaml_files(&corpus(), &mut files);
    assert!(files.len() >= 59, "corpus has {} files", files.len());
    let now = "2026-08-22T00:00:00Z".parse().unwrap();
    let mut failures = Vec::new();
    let mut unmanaged = 0;
    for path in &files {
        let name = path.strip_prefix(corpus()).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let (loaded, diags) = load_and_validate_with(&[(&name, &text)], UnknownFields::Warn);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}:\n  {}", errors.join("\n  ")));
            continue;
        }
        let unexpected: Vec<String> = diags
            .iter()
            .filter(|d| !expected_warning(&d.message))
            .map(ToString::to_string)
            .collect();
        if !unexpected.is_empty() {
            failures.push(format!(
                "{name}: unexpected warnings:\n  {}",
                unexpected.join("\n  ")
            ));
        }
        unmanaged += loaded.unmanaged.len();
        let inputs = PlanInputs {
            startup: loaded.resources,
            now,
            ..PlanInputs::default()
        };
        if let Err(e) = build_plan(&inputs) {
            failures.push(format!("{name}: plan: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(unmanaged > 0, "the corpus exercises unmanaged kinds");
}

#[test]
fn strict_mode_names_the_switch_on_the_corpus() {
    // examples/home-router.yaml relies on routerd dropping Interface spec.role.
    let text = std::fs::read_to_string(corpus().join("examples/home-router.yaml")).unwrap();
    let (_, diags) = routerd_model::load_and_validate(&[("home-router.yaml", &text)]);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|d| d.message.contains("--unknown-fields=warn")),
        "{errors:#?}"
    );
}
