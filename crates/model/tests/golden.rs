//! Golden tests for error output.
//!
//! Each directory under `tests/golden/` holds `input.yaml` and the expected
//! output: `expected.txt` (the `Display` of every diagnostic, one per line,
//! as `routerctl validate` prints them) and `expected.json` (the
//! `routerctl validate -o json` document). A `good-count` file asks for that
//! many generated valid resources around the input. `ROUTERD_BLESS=1`
//! rewrites the expected files.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use routerd_model::{Diagnostic, load_and_validate};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `n` valid resources of five kinds that reference each other.
fn good_resources(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let g = i / 5;
            match i % 5 {
                0 => format!(
                    "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata:\n  name: wan-{g}\nspec:\n  ifname: eth{g}\n  mtu: 1500\n"
                ),
                1 => format!(
                    "apiVersion: net.routerd.net/v1alpha1\nkind: HealthCheck\nmetadata:\n  name: hc-{g}\nspec:\n  interface: wan-{g}\n  target: 192.0.2.{}\n  interval: 5s\n",
                    g + 1
                ),
                2 => format!(
                    "apiVersion: net.routerd.net/v1alpha1\nkind: EgressRoutePolicy\nmetadata:\n  name: p-{g}\nspec:\n  mode: priority\n  candidates:\n    - name: c{g}\n      interface: wan-{g}\n      healthCheck: hc-{g}\n      mark: {}\n      priority: {}\n      table: {}\n",
                    g + 1,
                    g + 100,
                    g + 100
                ),
                3 => format!(
                    "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata:\n  name: r-{g}\nspec:\n  destination: 10.{g}.0.0/16\n  deviceFrom:\n    resource: EgressRoutePolicy/p-{g}\n    field: selectedDevice\n"
                ),
                _ => format!(
                    "apiVersion: net.routerd.net/v1alpha1\nkind: NAT44Rule\nmetadata:\n  name: n-{g}\nspec:\n  type: masquerade\n  egressPolicyRef: p-{g}\n  sourceRanges: [192.168.{g}.0/24]\n"
                ),
            }
        })
        .collect()
}

/// The text loaded for a case: `input.yaml`, or with `good-count` the input
/// placed in the middle of that many generated valid resources.
fn case_text(dir: &Path) -> String {
    let input = std::fs::read_to_string(dir.join("input.yaml")).unwrap();
    let Ok(count) = std::fs::read_to_string(dir.join("good-count")) else {
        return input;
    };
    let n: usize = count.trim().parse().unwrap();
    let mut docs = good_resources(n);
    docs.insert(n / 2 + 7, input);
    docs.join("---\n")
}

/// The `routerctl validate -o json` document for `diags`, built the way
/// bins/routerctl/src/cmd/validate.rs builds it (same fields, same order, so
/// the CLI test can compare its output byte for byte).
#[derive(serde::Serialize)]
struct Report<'a> {
    valid: bool,
    errors: Vec<&'a Diagnostic>,
    warnings: Vec<&'a Diagnostic>,
}

fn json_report(diags: &[Diagnostic]) -> Report<'_> {
    let (errors, warnings): (Vec<_>, Vec<_>) = diags.iter().partition(|d| d.is_error());
    Report {
        valid: errors.is_empty(),
        errors,
        warnings,
    }
}

fn text_report(diags: &[Diagnostic]) -> String {
    let mut s = String::new();
    for d in diags {
        writeln!(s, "{d}").unwrap();
    }
    s
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_outputs() {
    let bless = std::env::var_os("ROUTERD_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 10, "golden cases missing: {all:?}");
    for dir in all {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let text = case_text(&dir);
        let (_, diags) = load_and_validate(&[("input.yaml", &text)]);
        let txt = text_report(&diags);
        let json = serde_json::to_string_pretty(&json_report(&diags)).unwrap() + "\n";
        for (file, got) in [("expected.txt", &txt), ("expected.json", &json)] {
            let path = dir.join(file);
            if bless {
                std::fs::write(&path, got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if &want != got {
                failures.push(format!(
                    "{name}/{file} differs (ROUTERD_BLESS=1 rewrites it)\n--- expected\n{want}\n--- got\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every invalid golden case names a resource id, a path and a position in
/// each error that belongs to a resource.
#[test]
fn golden_errors_are_located() {
    for dir in cases() {
        let (_, diags) = load_and_validate(&[("input.yaml", &case_text(&dir))]);
        for d in diags {
            assert_eq!(d.file.as_deref(), Some("input.yaml"), "{d}");
            assert!(d.line.is_some() && d.column.is_some(), "{d}");
            if let Some(id) = &d.resource {
                assert!(d.message.contains(id.as_str()), "{d}");
                assert!(d.path.is_some(), "{d}");
            }
        }
    }
}

#[test]
fn one_bad_resource_among_a_hundred_good_ones_is_reported_alone() {
    let dir = golden_dir().join("one-bad-among-hundred");
    let text = case_text(&dir);
    let (loaded, diags) = load_and_validate(&[("input.yaml", &text)]);
    assert_eq!(loaded.resources.len(), 101);
    // The good ones alone are valid.
    let good = good_resources(100).join("---\n");
    let (_, good_diags) = load_and_validate(&[("good.yaml", &good)]);
    assert!(good_diags.is_empty(), "{good_diags:#?}");

    let id = "net.routerd.net/v1alpha1/EgressRoutePolicy/bad";
    for d in &diags {
        assert_eq!(d.resource.as_deref(), Some(id), "{d}");
        assert!(d.is_error(), "{d}");
    }
    let mut got: Vec<(&str, &str)> = diags
        .iter()
        .map(|d| {
            (
                d.path.as_deref().unwrap(),
                d.message.strip_prefix(id).unwrap().trim(),
            )
        })
        .collect();
    got.sort();
    let colour = format!(
        "spec.colour is not a known field of EgressRoutePolicy {}",
        routerd_model::compat::UNKNOWN_FIELD_HINT
    );
    let mut want = vec![
        ("spec.colour", colour.as_str()),
        ("spec.family", "spec.family must be ipv4 or ipv6"),
        (
            "spec.hashFields",
            "spec.hashFields is required when mode is hash",
        ),
        (
            "spec.candidates[0].weight",
            "spec.candidates[0].weight must be non-negative",
        ),
        (
            "spec.candidates[0].interface",
            "spec.candidates[0] references missing Interface, PPPoESession, or DSLiteTunnel \"wan-9999\"",
        ),
        (
            "spec.candidates[0].healthCheck",
            "spec.candidates[0] references missing HealthCheck \"hc-9999\"",
        ),
        (
            "spec.candidates[0]",
            "spec.candidates[0] must set exactly one of gateway or gatewayFrom when gatewaySource is static",
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    // All of them point into the bad resource's lines.
    let start = text
        .find("name: bad")
        .map(|i| text[..i].lines().count())
        .unwrap();
    for d in &diags {
        let line = d.line.unwrap();
        assert!(line >= start - 3 && line <= start + 12, "{d}");
    }
}
