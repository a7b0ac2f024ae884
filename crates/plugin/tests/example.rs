//! The shipped example (`examples/plugins/`) runs through the real runner and
//! produces a part the merge rules accept.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use chrono::Utc;
use routerd_model::load_and_validate;
use routerd_plugin::events::routerctl_source;
use routerd_plugin::invoke::{Invocation, invoke};
use routerd_plugin::request::manual_trigger;
use routerd_plugin::runner::RunConfig;
use routerd_plugin::{PartRules, check_against_startup, override_policies};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins")
}

#[tokio::test]
async fn example_plugin_proposes_a_route_and_masks_the_fallback() {
    let text = std::fs::read_to_string(examples().join("cloud-edge.yaml")).unwrap();
    let plugin = examples()
        .join("cloud-inventory.py")
        .canonicalize()
        .unwrap();
    let text = text.replace(
        "/usr/local/libexec/routerd/plugins/cloud-inventory",
        &plugin.display().to_string(),
    );
    let (loaded, diags) = load_and_validate(&[("cloud-edge.yaml", &text)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let startup = loaded.resources;
    let mut spec = startup.iter().find_map(|r| r.as_plugin()).unwrap().clone();
    // The inventory comes from the file the Plugin's env points at.
    let inventory = examples().join("inventory.json").canonicalize().unwrap();
    spec.env
        .insert("CLOUD_INVENTORY".into(), inventory.display().to_string());
    let policies = override_policies(&startup);
    let rules = PartRules::default();
    let report = invoke(
        Invocation {
            plugin: "cloud-inventory",
            spec: &spec,
            startup: &startup,
            policies: &policies,
            trigger: manual_trigger(),
            previous_generation: 0,
            events_from: routerctl_source(),
            rules: &rules,
        },
        &RunConfig::from_process_env(),
        &Utc::now,
    )
    .await;
    let part = match report.outcome {
        Ok(p) => p,
        Err(e) => panic!("example plugin refused: {e}"),
    };
    let s = &part.spec;
    assert_eq!(s.source, "Plugin/cloud-inventory");
    assert_eq!(s.resources.len(), 1);
    let route = s.resources[0].as_ipv4_route().unwrap();
    assert_eq!(route.destination, "10.40.0.0/16");
    assert_eq!(route.device.as_deref(), Some("wg0"));
    assert_eq!(s.directives.len(), 1);
    assert_eq!(s.directives[0].target.name, "cloud-fallback");
    assert_eq!(s.action_plans.len(), 1);
    assert_eq!(s.action_plans[0].mode.as_deref(), Some("dry-run"));
    let ttl = s.expires_at.unwrap() - s.observed_at.unwrap();
    assert_eq!(ttl, chrono::TimeDelta::minutes(5));
    check_against_startup(s, &startup, &policies).unwrap();
    assert!(
        report
            .stats
            .unwrap()
            .stderr
            .contains("1 VPC route(s), trigger manual")
    );
}

/// The daemon's loop: the example plugin on a 1 s interval trigger, for real
/// (processes and the paused test clock do not mix).
#[tokio::test]
async fn serve_runs_the_plugin_on_its_interval_trigger() {
    use routerd_model::spec::Trigger;
    use routerd_plugin::SourceState;
    use routerd_plugin::scheduler::{Gates, PluginTask, serve};

    let text = std::fs::read_to_string(examples().join("cloud-edge.yaml")).unwrap();
    let plugin = examples()
        .join("cloud-inventory.py")
        .canonicalize()
        .unwrap();
    let text = text.replace(
        "/usr/local/libexec/routerd/plugins/cloud-inventory",
        &plugin.display().to_string(),
    );
    let (loaded, _) = load_and_validate(&[("cloud-edge.yaml", &text)]);
    let startup = loaded.resources;
    let mut spec = startup.iter().find_map(|r| r.as_plugin()).unwrap().clone();
    spec.triggers = vec![Trigger {
        type_: "interval".into(),
        every: Some("1s".into()),
        topic: None,
    }];
    let policies = override_policies(&startup);
    let rules = PartRules::default();
    let cfg = RunConfig::from_process_env();
    let task = PluginTask {
        plugin: "cloud-inventory",
        spec: &spec,
        startup: &startup,
        policies: &policies,
        rules: &rules,
        run_config: &cfg,
    };
    let mut state = SourceState::new("Plugin/cloud-inventory");
    let flights = Gates::new();
    let mut reports = Vec::new();
    let stats = serve(
        task,
        &mut state,
        None,
        &flights,
        &routerctl_source(),
        tokio::time::sleep(std::time::Duration::from_millis(2600)),
        &Utc::now,
        |st, r| {
            reports.push((
                st.generation(),
                r.outcome.is_ok(),
                r.request.spec.trigger.type_.clone(),
            ))
        },
    )
    .await
    .unwrap();
    assert!(stats.runs >= 1, "{stats:?}");
    assert_eq!(reports.len() as u64, stats.runs);
    assert_eq!(state.generation() as u64, stats.runs);
    for (i, (generation, ok, trigger)) in reports.iter().enumerate() {
        assert_eq!(*generation, i as i64 + 1);
        assert!(ok);
        assert_eq!(trigger, "interval");
    }
    assert!(state.active(Utc::now()).is_some());
    assert!(flights.running("cloud-inventory").is_none());
}

/// The CloudEdge example: the part carries a HybridRoute and a mask of the
/// static fallback; merged and lowered, the plan shows the chain part →
/// HybridRoute → lowered IPv4Route.
#[tokio::test]
async fn cloud_hybrid_plugin_brings_a_hybrid_route_and_masks_the_fallback() {
    let text = std::fs::read_to_string(examples().join("cloud-hybrid.yaml")).unwrap();
    let plugin = examples().join("cloud-hybrid.py").canonicalize().unwrap();
    let text = text.replace(
        "/usr/local/libexec/routerd/plugins/cloud-hybrid",
        &plugin.display().to_string(),
    );
    let (loaded, diags) = load_and_validate(&[("cloud-hybrid.yaml", &text)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let startup = loaded.resources;
    let spec = startup.iter().find_map(|r| r.as_plugin()).unwrap().clone();
    let policies = override_policies(&startup);
    let rules = PartRules::default();
    let report = invoke(
        Invocation {
            plugin: "cloud-hybrid",
            spec: &spec,
            startup: &startup,
            policies: &policies,
            trigger: manual_trigger(),
            previous_generation: 0,
            events_from: routerctl_source(),
            rules: &rules,
        },
        &RunConfig::from_process_env(),
        &Utc::now,
    )
    .await;
    let part = match report.outcome {
        Ok(p) => p,
        Err(e) => panic!("example plugin refused: {e}"),
    };
    let s = &part.spec;
    assert_eq!(s.source, "Plugin/cloud-hybrid");
    let hr = s.resources[0].as_hybrid_route().unwrap();
    assert_eq!(hr.destination_cidrs, ["10.40.0.0/16"]);
    assert_eq!(hr.health_check_ref.as_deref(), Some("overlay"));
    assert_eq!(s.directives[0].target.name, "cloud-fallback");
    check_against_startup(s, &startup, &policies).unwrap();

    // Merged and lowered: the fallback is suppressed, the lowered route is
    // effective, owned by the HybridRoute, with the part's provenance.
    let merged = routerd_merge::merge(
        startup,
        [routerd_merge::Part::new(part.name.clone(), s.clone())],
        Utc::now(),
    )
    .unwrap();
    let (effective, _) =
        routerd_model::lower::with_lowered(merged.iter().map(|e| e.annotated()).collect());
    assert!(effective.iter().all(|r| r.name() != "cloud-fallback"));
    let route = effective
        .iter()
        .find(|r| r.name() == "cloud-vpc-10-40-0-0-16")
        .expect("lowered route");
    assert_eq!(
        route.as_ipv4_route().unwrap().device.as_deref(),
        Some("vx-cloud")
    );
    assert_eq!(
        route.metadata.annotations["routerd.net/dynamic-source"],
        "Plugin/cloud-hybrid"
    );
    assert_eq!(route.metadata.owner_refs[0].name, "cloud-vpc");
}
