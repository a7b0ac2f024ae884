//! Hostile plugins. Each case first lets a good plugin produce a part, then
//! runs the hostile one for the same source and checks three things: the
//! refusal reason is clear, the test process (standing in for the daemon) is
//! unaffected and nothing the plugin started survives, and the previous good
//! part is still the source's active part.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::*;
use routerd_model::spec::{DynamicOverridePolicySpec, PluginSpec};
use routerd_model::{Event, Resource};
use routerd_plugin::events::{self, routerctl_source};
use routerd_plugin::invoke::{Invocation, Refusal, Report, invoke_into};
use routerd_plugin::request::manual_trigger;
use routerd_plugin::runner::{RunConfig, RunError, check_executable, run};
use routerd_plugin::{CandidatePart, PartRules, SourceState, override_policies};
use tempfile::TempDir;

struct Case {
    dir: TempDir,
    startup: Vec<Resource>,
    policies: Vec<DynamicOverridePolicySpec>,
    rules: PartRules,
    state: SourceState,
    good: CandidatePart,
}

fn cfg() -> RunConfig {
    RunConfig::from_process_env()
}

impl Case {
    async fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let startup = startup();
        let policies = override_policies(&startup);
        let mut case = Case {
            dir,
            startup,
            policies,
            rules: PartRules::default(),
            state: SourceState::new("Plugin/cloud"),
            good: CandidatePart {
                name: String::new(),
                spec: Default::default(),
                warnings: vec![],
                events: vec![],
            },
        };
        let good = printing(case.dir.path(), "good", GOOD_JSON);
        let report = case.run(spec(&good)).await;
        case.good = report.outcome.unwrap();
        assert_eq!(case.state.generation(), 1);
        case
    }

    async fn run(&mut self, spec: PluginSpec) -> Report {
        let inv = Invocation {
            plugin: "cloud",
            spec: &spec,
            startup: &self.startup,
            policies: &self.policies,
            trigger: manual_trigger(),
            previous_generation: 0,
            events_from: routerctl_source(),
            rules: &self.rules,
        };
        invoke_into(&mut self.state, inv, &cfg(), &Utc::now).await
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `spec`, expects a refusal whose text starts with `reason`, and
    /// checks the good part is still active.
    async fn refused(&mut self, spec: PluginSpec, reason: &str) -> Report {
        let report = self.run(spec).await;
        let got = match &report.outcome {
            Ok(p) => panic!("hostile plugin was accepted: {p:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            got.starts_with(reason),
            "reason {got:?} does not start with {reason:?}"
        );
        self.assert_good_kept();
        assert_eq!(
            self.state.last_rejection().map(|r| r.reason.as_str()),
            Some(got.as_str())
        );
        let last: &Event = report.events.last().unwrap();
        assert_eq!(last.type_, events::RUN_FAILED);
        assert_eq!(last.attributes["error"], got);
        assert_eq!(report.events[0].type_, events::RUN_STARTED);
        report
    }

    fn assert_good_kept(&self) {
        assert_eq!(self.state.generation(), 1);
        assert_eq!(self.state.active(Utc::now()), Some(&self.good));
        // And it still goes away at its own expiry.
        let expiry = self.good.expires_at().unwrap();
        assert_eq!(
            self.state.active(expiry - TimeDelta::seconds(1)),
            Some(&self.good)
        );
        assert_eq!(self.state.active(expiry), None);
    }

    fn read_pid(&self, name: &str) -> i32 {
        for _ in 0..40 {
            if let Ok(s) = std::fs::read_to_string(self.path(name))
                && let Ok(p) = s.trim().parse()
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pid file {name} not written");
    }
}

fn with_timeout(mut s: PluginSpec, t: &str) -> PluginSpec {
    s.timeout = Some(t.into());
    s
}

#[tokio::test]
async fn good_plugin_sees_request_argv_and_cwd() {
    let mut case = Case::new().await;
    let req = case.path("request.json");
    let seen = case.path("seen");
    let p = script(
        case.dir.path(),
        "observe",
        &format!(
            "#!/bin/sh\ncat > '{}'\nprintf '%s %s' \"$#\" \"$(pwd)\" > '{}'\ncat <<'EOF'\n{GOOD_JSON}\nEOF\n",
            req.display(),
            seen.display()
        ),
    );
    let report = case.run(spec(&p)).await;
    let part = report.outcome.unwrap();
    assert_eq!(part.spec.generation, 2);
    assert_eq!(part.name, "Plugin-cloud-2");
    let request: serde_json::Value = serde_json::from_slice(&std::fs::read(&req).unwrap()).unwrap();
    assert_eq!(request["kind"], "PluginRequest");
    assert_eq!(request["metadata"]["name"], "cloud");
    assert_eq!(request["spec"]["previousDynamicGeneration"], 1);
    assert_eq!(request["spec"]["trigger"]["type"], "manual");
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "0 /");
    let types: Vec<&str> = report.events.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            events::RUN_STARTED,
            events::PART_ACCEPTED,
            events::RUN_SUCCEEDED
        ]
    );
    let stats = report.stats.unwrap();
    assert_eq!(stats.exit_code, Some(0));
    assert_eq!(stats.stdout_digest.len(), 64);
    assert_eq!(case.state.active(Utc::now()), Some(&part));
}

#[tokio::test]
async fn hangs_forever() {
    let mut case = Case::new().await;
    let pidfile = case.path("pid");
    let p = script(
        case.dir.path(),
        "hang",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > '{}'\nwait\n",
            pidfile.display()
        ),
    );
    let t0 = Instant::now();
    case.refused(
        with_timeout(spec(&p), "2s"),
        "plugin cloud timed out after 2s",
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(7), "{:?}", t0.elapsed());
    let child = case.read_pid("pid");
    assert!(
        gone(child),
        "the plugin's child {child} survived the timeout"
    );
}

#[tokio::test]
async fn sleeps_past_timeout_then_prints_valid_output() {
    let mut case = Case::new().await;
    let p = script(
        case.dir.path(),
        "late",
        &format!("#!/bin/sh\nsleep 3\ncat <<'EOF'\n{GOOD_JSON}\nEOF\n"),
    );
    let t0 = Instant::now();
    let report = case
        .refused(
            with_timeout(spec(&p), "1s"),
            "plugin cloud timed out after 1s",
        )
        .await;
    assert!(t0.elapsed() < Duration::from_millis(2900));
    assert_eq!(report.stats.unwrap().stdout_bytes, 0);
}

#[tokio::test]
async fn prints_100_mib() {
    let mut case = Case::new().await;
    let p = script(
        case.dir.path(),
        "flood",
        "#!/bin/sh\nhead -c 104857600 /dev/zero\n",
    );
    let t0 = Instant::now();
    let report = case
        .refused(
            spec(&p),
            "plugin cloud protocol failure: stdout output exceeded 4194304-byte limit",
        )
        .await;
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert_eq!(report.stats.unwrap().stdout_bytes, 4 * 1024 * 1024);
}

#[tokio::test]
async fn floods_stderr() {
    let mut case = Case::new().await;
    let p = script(
        case.dir.path(),
        "noisy",
        "#!/bin/sh\nhead -c 10000000 /dev/zero >&2\n",
    );
    let report = case
        .refused(
            spec(&p),
            "plugin cloud protocol failure: stderr output exceeded 65536-byte limit",
        )
        .await;
    assert_eq!(report.stats.unwrap().stderr.len(), 8192);
}

#[tokio::test]
async fn prints_invalid_json() {
    let mut case = Case::new().await;
    let p = printing(case.dir.path(), "garbage", "{\"apiVersion\": ");
    let report = case.refused(spec(&p), "decode plugin cloud stdout: ").await;
    assert!(matches!(report.outcome, Err(Refusal::Decode(_))));
}

#[tokio::test]
async fn returns_wrong_api_version_or_kind() {
    let mut case = Case::new().await;
    let p = printing(
        case.dir.path(),
        "v2",
        &GOOD_JSON.replace("plugin.routerd.net/v1alpha1", "plugin.routerd.net/v2"),
    );
    let report = case
        .refused(
            spec(&p),
            "PluginResult apiVersion must be plugin.routerd.net/v1alpha1",
        )
        .await;
    assert!(
        report
            .events
            .iter()
            .any(|e| e.type_ == events::PART_REJECTED
                && e.attributes["dynamic.source"] == "Plugin/cloud")
    );
    let p = printing(
        case.dir.path(),
        "kind",
        &GOOD_JSON.replace("\"PluginResult\"", "\"PluginRequest\""),
    );
    case.refused(spec(&p), "PluginResult kind must be PluginResult")
        .await;
}

#[tokio::test]
async fn returns_bad_ttls() {
    let mut case = Case::new().await;
    let missing = GOOD_JSON.replace("\"ttl\":\"5m\",", "");
    for (name, json, reason) in [
        (
            "missing",
            missing.as_str(),
            "PluginResult status.ttl is required",
        ),
        (
            "zero",
            &*GOOD_JSON.replace("\"5m\"", "\"0s\""),
            "PluginResult status.ttl must be greater than 0",
        ),
        (
            "negative",
            &*GOOD_JSON.replace("\"5m\"", "\"-1h\""),
            "PluginResult status.ttl must be greater than 0",
        ),
        (
            "overflow",
            &*GOOD_JSON.replace("\"5m\"", "\"9999999999999h\""),
            "PluginResult status.ttl must be a valid duration: ",
        ),
    ] {
        let p = printing(case.dir.path(), name, json);
        case.refused(spec(&p), reason).await;
    }
    // Absurd but valid: accepted, capped to the documented 24h.
    let p = printing(
        case.dir.path(),
        "absurd",
        &GOOD_JSON.replace("\"5m\"", "\"87600h\""),
    );
    let t0 = Utc::now();
    let part = case.run(spec(&p)).await.outcome.unwrap();
    let exp = part.expires_at().unwrap();
    assert!(exp <= Utc::now() + TimeDelta::hours(24));
    assert!(exp >= t0 + TimeDelta::hours(24) - TimeDelta::seconds(1));
    assert!(part.warnings.iter().any(|w| w.contains("capped")));
}

#[tokio::test]
async fn returns_resources_that_fail_validation() {
    let mut case = Case::new().await;
    let p = printing(
        case.dir.path(),
        "badroute",
        &GOOD_JSON.replace("10.40.0.0/16", "10.40.0.0/40"),
    );
    case.refused(
        spec(&p),
        "PluginResult status.resources[0] is invalid: net.routerd.net/v1alpha1/IPv4Route/cloud-vpc spec.destination is invalid",
    )
    .await;
}

#[tokio::test]
async fn masks_something_the_policy_does_not_allow() {
    let mut case = Case::new().await;
    let p = printing(
        case.dir.path(),
        "overreach",
        &GOOD_JSON.replace("\"name\":\"fallback\"", "\"name\":\"pinned\""),
    );
    case.refused(
        spec(&p),
        "dynamic mask not allowed by DynamicOverridePolicy: source=\"Plugin/cloud\" target=net.routerd.net/v1alpha1/IPv4Route/pinned",
    )
    .await;
}

#[tokio::test]
async fn returns_a_startup_identity() {
    let mut case = Case::new().await;
    let p = printing(
        case.dir.path(),
        "impostor",
        &GOOD_JSON.replace("\"name\":\"cloud-vpc\"", "\"name\":\"pinned\""),
    );
    case.refused(
        spec(&p),
        "dynamic resource conflicts with startup resource: source=\"Plugin/cloud\" resource=net.routerd.net/v1alpha1/IPv4Route/pinned",
    )
    .await;
}

#[tokio::test]
async fn exits_non_zero_with_valid_output() {
    let mut case = Case::new().await;
    let p = script(
        case.dir.path(),
        "exit3",
        &format!("#!/bin/sh\ncat <<'EOF'\n{GOOD_JSON}\nEOF\nexit 3\n"),
    );
    let report = case
        .refused(spec(&p), "plugin cloud failed: exit status 3")
        .await;
    let stats = report.stats.unwrap();
    assert_eq!(stats.exit_code, Some(3));
    assert_eq!(
        report.events.last().unwrap().attributes["plugin.exitCode"],
        "3"
    );
    // The digest covers what was printed even though the run failed.
    assert_ne!(stats.stdout_bytes, 0);
}

#[tokio::test]
async fn forks_a_child_that_holds_stdout_open() {
    let mut case = Case::new().await;
    let pidfile = case.path("pid");
    let p = script(
        case.dir.path(),
        "forker",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nsleep 1000 &\necho $! > '{}'\ncat <<'EOF'\n{GOOD_JSON}\nEOF\n",
            pidfile.display()
        ),
    );
    let t0 = Instant::now();
    case.refused(
        spec(&p),
        "plugin cloud protocol failure: output still open 500ms after the plugin exited",
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(6));
    let child = case.read_pid("pid");
    assert!(gone(child), "the plugin's child {child} survived");
}

#[tokio::test]
async fn leftover_child_without_stdout_is_killed_after_a_good_run() {
    let mut case = Case::new().await;
    let pidfile = case.path("pid");
    let p = script(
        case.dir.path(),
        "daemonizer",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nsleep 1000 </dev/null >/dev/null 2>&1 &\necho $! > '{}'\ncat <<'EOF'\n{GOOD_JSON}\nEOF\n",
            pidfile.display()
        ),
    );
    let part = case.run(spec(&p)).await.outcome.unwrap();
    assert_eq!(part.spec.generation, 2);
    let child = case.read_pid("pid");
    assert!(
        gone(child),
        "the plugin's background child {child} survived"
    );
}

#[tokio::test]
async fn environment_is_path_and_spec_env_only() {
    // /usr/bin/env with no arguments prints exactly the environment it got.
    let mut s = PluginSpec {
        executable: "/usr/bin/env".into(),
        ..PluginSpec::default()
    };
    s.env
        .insert("PLUGIN_REGION".into(), "ap-northeast-1".into());
    let req = routerd_plugin::build_request("env", &s, &[], manual_trigger(), 0, Utc::now());
    let cfg = RunConfig {
        inherited_path: Some("/usr/bin:/bin".into()),
        ..RunConfig::default()
    };
    let out = run("env", &s, &req, &cfg).await.unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["PATH=/usr/bin:/bin", "PLUGIN_REGION=ap-northeast-1"]
    );
}

const SECRET_VAR: &str = "ROUTERD_PLUGIN_TEST_SECRET";

/// The parent holds a secret in its environment; a plugin that looks for it
/// finds nothing. The test re-runs itself with the secret set, because
/// setting variables in a running multi-threaded test process is unsound.
#[tokio::test]
async fn secret_in_parent_env_is_not_visible() {
    match std::env::var(SECRET_VAR) {
        Err(_) => {
            let exe = std::env::current_exe().unwrap();
            let status = std::process::Command::new(exe)
                .args([
                    "secret_in_parent_env_is_not_visible",
                    "--exact",
                    "--nocapture",
                ])
                .env(SECRET_VAR, "hunter2")
                .status()
                .unwrap();
            assert!(status.success(), "child test failed: {status}");
        }
        Ok(secret) => {
            assert_eq!(secret, "hunter2");
            let mut case = Case::new().await;
            // The plugin puts whatever it finds into a resource name.
            let p = script(
                case.dir.path(),
                "snoop",
                &format!(
                    "#!/bin/sh\ncat >/dev/null\nfound=\"${{{SECRET_VAR}:-none}}\"\ncat <<EOF\n{}\nEOF\n",
                    GOOD_JSON.replace("cloud-vpc", "leak-$found")
                ),
            );
            let part = case.run(spec(&p)).await.outcome.unwrap();
            assert_eq!(part.spec.resources[0].name(), "leak-none");
            let env_spec = PluginSpec {
                executable: "/usr/bin/env".into(),
                ..PluginSpec::default()
            };
            let req = routerd_plugin::build_request(
                "env",
                &env_spec,
                &[],
                manual_trigger(),
                0,
                Utc::now(),
            );
            let out = run("env", &env_spec, &req, &cfg()).await.unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains(SECRET_VAR), "{text}");
        }
    }
}

#[tokio::test]
async fn bad_executables_are_refused_before_anything_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut case = Case::new().await;
    let marker = case.path("ran");
    let body = format!("#!/bin/sh\ntouch '{}'\n", marker.display());

    let rel = PluginSpec {
        executable: "plugins/cloud".into(),
        ..PluginSpec::default()
    };
    case.refused(
        rel,
        "plugin executable \"plugins/cloud\" must be an absolute path",
    )
    .await;

    let missing = case.path("missing");
    case.refused(
        spec(&missing),
        &format!(
            "plugin executable \"{}\" is not accessible: ",
            missing.display()
        ),
    )
    .await;

    let plain = script(case.dir.path(), "plain", &body);
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    case.refused(
        spec(&plain),
        &format!(
            "plugin executable \"{}\" is not executable",
            plain.display()
        ),
    )
    .await;

    case.refused(
        spec(case.dir.path()),
        &format!(
            "plugin executable \"{}\" is not a regular file",
            case.dir.path().display()
        ),
    )
    .await;

    let open = script(case.dir.path(), "open", &body);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    case.refused(
        spec(&open),
        &format!(
            "plugin executable \"{}\" is writable by other users (mode 0777)",
            open.display()
        ),
    )
    .await;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert!(matches!(
        check_executable(&open.display().to_string()),
        Err(RunError::WritableByOthers { .. })
    ));

    let shared = case.path("shared");
    std::fs::create_dir(&shared).unwrap();
    let inside = script(&shared, "inside", &body);
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    case.refused(
        spec(&inside),
        &format!("plugin executable \"{}\" is in directory", inside.display()),
    )
    .await;

    case.refused(PluginSpec::default(), "plugin executable is required")
        .await;

    let good = printing(case.dir.path(), "fine", GOOD_JSON);
    case.refused(
        with_timeout(spec(&good), "0s"),
        "plugin timeout must be greater than 0",
    )
    .await;

    assert!(!marker.exists(), "a refused executable ran");
}

#[tokio::test]
async fn dropping_a_run_kills_its_process_group() {
    let case = Case::new().await;
    let pidfile = case.path("pid");
    let p = script(
        case.dir.path(),
        "cancelled",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > '{}'\nwait\n",
            pidfile.display()
        ),
    );
    let s = spec(&p);
    let req = routerd_plugin::build_request("cloud", &s, &[], manual_trigger(), 0, Utc::now());
    let cfg = cfg();
    let mut fut = Box::pin(run("cloud", &s, &req, &cfg));
    // Cancel the run (as daemon shutdown does) once its child exists, well
    // before the 10 s timeout.
    let t0 = Instant::now();
    while std::fs::read_to_string(&pidfile).map_or(true, |p| p.trim().is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "plugin never started"
        );
        tokio::select! {
            r = &mut fut => panic!("the run ended by itself: {:?}", r.err()),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    drop(fut);
    let child = case.read_pid("pid");
    assert!(gone(child), "child {child} of a cancelled run survived");
}

/// The daemon spawns runs on a multi-threaded runtime.
#[test]
fn run_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = PluginSpec::default();
    let req = routerd_plugin::build_request("x", &s, &[], manual_trigger(), 0, Utc::now());
    let cfg = RunConfig::default();
    assert_send(&run("x", &s, &req, &cfg));
    let startup = startup();
    let rules = PartRules::default();
    let inv = Invocation {
        plugin: "x",
        spec: &s,
        startup: &startup,
        policies: &[],
        trigger: manual_trigger(),
        previous_generation: 0,
        events_from: routerctl_source(),
        rules: &rules,
    };
    let mut state = SourceState::new("Plugin/x");
    assert_send(&invoke_into(&mut state, inv, &cfg, &Utc::now));
}
