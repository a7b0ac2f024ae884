//! Golden plans of Selective Address Mobility: a config and an overlay
//! health state → the claim statuses, the lowered delivery routes, the
//! capture (neighbour proxy entries, forwarding) and the plan against an
//! empty kernel. `ROUTERD_BLESS=1 cargo test -p routerd-api --test
//! golden_mobility` rewrites the expected files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use routerd_api::{PlanInputs, build_plan};
use routerd_model::load_and_validate;
use routerd_render::dataplane::MemDataplane;
use routerd_render::{Dataplane, Ledger, diff, render};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn now() -> DateTime<Utc> {
    "2026-05-29T12:00:00Z".parse().unwrap()
}

fn case(name: &str, health: &str) -> String {
    let config =
        std::fs::read_to_string(dir().join(format!("{name}.config.yaml"))).expect("config");
    let (loaded, diags) = load_and_validate(&[("config.yaml", &config)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let mut st = routerd_model::Status::new();
    st.insert("phase".into(), serde_json::json!(health));
    st.insert(
        "lastCheckedAt".into(),
        serde_json::json!("2026-05-29T11:59:58Z"),
    );
    let mut snap = routerd_model::StateSnapshot::new();
    snap.insert("net.routerd.net/v1alpha1/HealthCheck/overlay-hc".into(), st);
    let doc = build_plan(&PlanInputs {
        startup: loaded.resources,
        state: snap.clone(),
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap();
    let mut out = String::new();
    let _ = writeln!(out, "## overlay health: {health}");
    for (id, st) in &doc.status {
        if !(id.contains("/RemoteAddressClaim/") || id.contains("/AddressMobilityDomain/")) {
            continue;
        }
        let _ = writeln!(out, "## status {id}");
        for (k, v) in st {
            let _ = writeln!(out, "{k}: {v}");
        }
    }
    let mut status = snap;
    status.extend(doc.status.iter().map(|(k, v)| (k.clone(), v.clone())));
    let rendered = render(&doc.effective, &status);
    let d = &rendered.desired;
    out.push_str("## routes\n");
    for r in &d.routes {
        let _ = writeln!(out, "{r}    # {}", r.owner);
    }
    out.push_str("## neighbour proxies\n");
    for p in &d.neigh_proxies {
        let _ = writeln!(out, "{p}    # {}", p.owner);
    }
    out.push_str("## forwarding\n");
    for f in &d.forwarding {
        let _ = writeln!(out, "{}    # {}", f.device, f.owner);
    }
    let mut dp = MemDataplane::new();
    let observed = dp.observe().expect("observe");
    out.push_str("## plan from an empty kernel\n");
    out.push_str(&diff(d, &observed, &Ledger::default()).to_string());
    out
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
        "{name}: output differs from {} (re-bless with ROUTERD_BLESS=1 if intended)",
        path.display()
    );
}

#[test]
fn capturing_side_with_a_healthy_overlay_captures_and_delivers() {
    check("mobility-capture", &case("mobility-onprem", "Healthy"));
}

#[test]
fn capturing_side_with_a_failed_overlay_keeps_delivery_only() {
    check("mobility-gated", &case("mobility-onprem", "Unhealthy"));
}

#[test]
fn owning_side_routes_locally_and_forwards_for_the_overlay() {
    check("mobility-owner", &case("mobility-cloud", "Healthy"));
}
