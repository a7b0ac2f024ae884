//! Golden tests: config + status snapshot → routes, rules, nft text, and the
//! plan against an empty kernel. `ROUTERD_BLESS=1 cargo test -p
//! routerd-render --test golden` rewrites the expected files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::dataplane::MemDataplane;
use routerd_render::ir::{L4Proto, NftFamily};
use routerd_render::render::{Redirect, add_redirects};
use routerd_render::{Dataplane, DesiredState, Ledger, Rendered, diff, nft_text, render};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn describe(r: &Rendered) -> String {
    let mut out = String::new();
    describe_desired(&mut out, &r.desired);
    if !r.problems.is_empty() {
        out.push_str("## problems\n");
        for p in &r.problems {
            let _ = writeln!(out, "{}: {}", p.owner, p.message);
        }
    }
    out
}

fn describe_desired(out: &mut String, d: &DesiredState) {
    out.push_str("## routes\n");
    for r in &d.routes {
        let _ = writeln!(out, "{r}    # {}", r.owner);
    }
    out.push_str("## rules\n");
    for r in &d.rules {
        let _ = writeln!(out, "{r}    # {}", r.owner);
    }
    for t in &d.nft {
        let _ = writeln!(
            out,
            "## nft {} {} (owners: {:?})",
            t.family, t.name, t.owners
        );
        out.push_str(&nft_text::table_batch(t));
    }
    if !d.retained.is_empty() {
        out.push_str("## retained (fail-static)\n");
        for o in &d.retained {
            let _ = writeln!(out, "{o}");
        }
    }
    let mut dp = MemDataplane::new();
    let observed = dp.observe().expect("observe");
    let plan = diff(d, &observed, &Ledger::default());
    out.push_str("## plan from an empty kernel\n");
    out.push_str(&plan.to_string());
}

fn check(name: &str, actual: &str) {
    let path = dir().join(format!("{name}.golden"));
    if std::env::var_os("ROUTERD_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with ROUTERD_BLESS=1)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{name}: rendered output differs from {} (re-bless with ROUTERD_BLESS=1 if intended)",
        path.display()
    );
}

fn render_case(name: &str) -> Rendered {
    let config =
        std::fs::read_to_string(dir().join(format!("{name}.config.yaml"))).expect("config");
    let (loaded, diags) = load_and_validate(&[("config.yaml", &config)]);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == routerd_model::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{name}: invalid config: {errors:?}");
    let state_path = dir().join(format!("{name}.state.yaml"));
    let state: StateSnapshot = match std::fs::read_to_string(&state_path) {
        Ok(s) => serde_yaml::from_str(&s).expect("state"),
        Err(_) => StateSnapshot::new(),
    };
    render(&loaded.resources, &state)
}

macro_rules! golden {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let r = render_case($name);
            check($name, &describe(&r));
        }
    )*};
}

golden! {
    priority_mode_connmark_steering => "priority-mode",
    mark_mode_static_marks_with_sets => "mark-mode",
    hash_mode_jhash_targets => "hash-mode",
    selection_only_routes_and_nat_follow_selection => "selection-only",
    nat44_shapes => "nat-shapes",
    weighted_ecmp_multipath_route => "weighted-ecmp",
    pending_resources_are_retained => "pending",
    modeless_policy_with_marks_renders_marks_only => "modeless-marks",
}

#[test]
fn dnat_redirects() {
    let mut d = DesiredState::default();
    add_redirects(
        &mut d,
        &[
            Redirect {
                owner: "test/Redirect/web".into(),
                iifname: Some("wan0".into()),
                destination: None,
                protocol: L4Proto::Tcp,
                port: 8080,
                to_address: "203.0.113.26".parse().unwrap(),
                to_port: Some(80),
            },
            Redirect {
                owner: "test/Redirect/sctp".into(),
                iifname: None,
                destination: Some("198.51.100.0/24".parse().unwrap()),
                protocol: L4Proto::Sctp,
                port: 9,
                to_address: "203.0.113.26".parse().unwrap(),
                to_port: None,
            },
        ],
    );
    assert_eq!(d.nft.len(), 1);
    assert_eq!(d.nft[0].family, NftFamily::Ip);
    let mut out = String::new();
    describe_desired(&mut out, &d);
    check("dnat-redirects", &out);
}
