//! The daemon verbs (`apply`, `delete`, `status`, `events --follow`,
//! `dynamic drop`) of the real binary against the daemon library running
//! in this process on an in-memory dataplane: output, exit codes,
//! reconnection.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerd_engine::control::{self, Access};
use routerd_engine::daemon::{self, Handler, Key, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::SharedMemDataplane;
use routerd_store::{PartRecord, PartState, Store};
use serde_json::Value;

const OPERATOR: &str = r#"# The operator's configuration.
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: lab}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: base}
      spec: {type: blackhole, destination: 10.0.0.0/16}
"#;

/// An in-memory kernel that refuses routes to 10.66.0.0/16.
/// The kernel refuses one destination (as it refuses a route on a device
/// that does not exist); everything else applies.
fn kernel() -> SharedMemDataplane {
    let k = SharedMemDataplane::default();
    k.lock().refuse = vec!["10.66.0.0/16".into()];
    k
}

/// The daemon library on its own runtime; routerctl runs as a child process.
struct Daemon {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    fn start(config: &Path, store: Arc<Store>, kernel: SharedMemDataplane) -> Daemon {
        Daemon::start_with(config, store, kernel, Access::default())
    }

    fn start_with(
        config: &Path,
        store: Arc<Store>,
        kernel: SharedMemDataplane,
        access: Access,
    ) -> Daemon {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let socket = config.with_file_name("routerd.sock");
        let options = Options {
            config_path: config.to_path_buf(),
            resync: Duration::from_secs(3600),
            ..Options::default()
        };
        let shared = Shared::new(options, store, Arc::new(SystemClock)).unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let guard = rt.enter();
        let listener = control::bind_with(&socket, access).unwrap();
        let (ctl_stop, ctl_rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(control::serve(
            listener,
            Arc::new(Handler(shared.clone())),
            access,
            async {
                let _ = ctl_rx.await;
            },
        ));
        let mut links = BTreeMap::new();
        links.insert(
            "wan1".to_string(),
            LinkInfo {
                index: 2,
                up: true,
                carrier: true,
                ..Default::default()
            },
        );
        let task = rt.spawn(daemon::run(
            shared.clone(),
            kernel,
            StaticLinks(links),
            NoHealth,
            None,
            |_| {},
            async move {
                let _ = stop_rx.await;
                let _ = ctl_stop.send(());
            },
        ));
        drop(guard);
        let mut steps = shared.steps();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), steps.wait_for(|s| s.seq > 0))
                .await
                .unwrap()
                .unwrap();
        });
        Daemon {
            rt,
            shared,
            socket,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn routerctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .unwrap()
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            self.rt.block_on(t).unwrap();
        }
        // Let the control server close its connections.
        self.rt.shutdown_timeout(Duration::from_secs(10));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, OPERATOR).unwrap();
    (dir, config)
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn route(name: &str, destination: &str) -> String {
    format!(
        "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {{name: {name}}}\nspec: {{type: blackhole, destination: {destination}}}\n"
    )
}

#[test]
fn apply_and_delete_exit_by_what_the_kernel_did() {
    let (dir, config) = setup();
    let kernel = kernel();
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), kernel.clone());

    let good = write(dir.path(), "good.yaml", &route("extra", "10.9.0.0/16"));
    let o = d.routerctl(&["apply", "-f", good.to_str().unwrap(), "-o", "text"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains(": Applied"), "{out}");
    assert!(
        out.contains("+ net.routerd.net/v1alpha1/IPv4Route/extra"),
        "{out}"
    );
    assert!(kernel.destinations().contains(&"10.9.0.0/16".to_string()));

    // Dry run: the changes and the operations, exit 0, nothing changes.
    let more = write(dir.path(), "more.yaml", &route("more", "10.7.0.0/16"));
    let o = d.routerctl(&[
        "apply",
        "-f",
        more.to_str().unwrap(),
        "--dry-run",
        "-o",
        "text",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("+ net.routerd.net/v1alpha1/IPv4Route/more"),
        "{out}"
    );
    assert!(out.contains("ip route add blackhole 10.7.0.0/16"), "{out}");
    assert!(!kernel.destinations().contains(&"10.7.0.0/16".to_string()));

    // A route the kernel refuses: exit 1, the failure on stderr.
    let bad = write(dir.path(), "bad.yaml", &route("broken", "10.66.0.0/16"));
    let o = d.routerctl(&["apply", "-f", bad.to_str().unwrap(), "--timeout", "10s"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(
        err.contains(": Failed:") || err.contains(": Degraded:"),
        "{err}"
    );
    let doc: Value = serde_yaml::from_slice(&o.stdout).unwrap();
    assert!(
        matches!(doc["result"]["phase"].as_str(), Some("Failed" | "Degraded")),
        "{doc:#}"
    );

    // Deleting it: the kernel takes the rest again, exit 0.
    let o = d.routerctl(&["delete", "IPv4Route/broken"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));

    // The operator's resources are theirs to remove: exit 1, and why.
    let o = d.routerctl(&["delete", "IPv4Route/base"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("never rewrites"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), OPERATOR);
    d.stop();
}

/// Needs the per-owner faults of issue #12 item 1: until then a refused
/// operation fails the step as a whole and no owner is named.
#[test]
fn a_refused_owner_is_named_on_stderr() {
    let (dir, config) = setup();
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), kernel());
    let bad = write(dir.path(), "bad.yaml", &route("broken", "10.66.0.0/16"));
    let o = d.routerctl(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("routerctl: net.routerd.net/v1alpha1/IPv4Route/broken: "),
        "{err}"
    );
    d.stop();
}

#[test]
fn a_rejected_reload_shows_in_status() {
    let (_dir, config) = setup();
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), kernel());
    std::fs::write(&config, "apiVersion: routerd.net/v1alpha1\nkind: Router\n").unwrap();
    d.shared.trigger(Key::Reload);
    let t = Instant::now();
    loop {
        let o = d.routerctl(&["status", "-o", "json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let last = &v["status"]["lastReload"];
        if last["result"] == "Rejected" {
            let errors = last["errors"].to_string();
            assert!(errors.contains("metadata.name"), "{v:#}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{v:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The timeline names the daemon and the reason, not the topic.
    let o = d.routerctl(&["events", "--topic", "routerd.config.rejected"]);
    assert!(
        text(&o.stdout).contains("Daemon/routerd") && text(&o.stdout).contains("ConfigRejected"),
        "{}",
        text(&o.stdout)
    );
    d.stop();
}

#[test]
fn dynamic_drop_revokes_a_part() {
    let (_dir, config) = setup();
    let store = Arc::new(Store::in_memory());
    let mut l = routerd_model::Loaded::new();
    l.add_file(
        "part",
        "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {name: Plugin-cloud-3}\nspec:\n  source: Plugin/cloud\n  generation: 3\n  resources:\n    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {name: vpc}\n      spec: {type: blackhole, destination: 10.77.0.0/16}\n",
    );
    let mut w = store.writer();
    w.put_part(&PartRecord {
        part: l.resources.remove(0),
        state: PartState::Active,
        reason: String::new(),
        stored_at: chrono::Utc::now(),
    })
    .unwrap();
    w.commit().unwrap();
    let kernel = kernel();
    let d = Daemon::start(&config, store.clone(), kernel.clone());
    assert!(kernel.destinations().contains(&"10.77.0.0/16".to_string()));
    // Without -f, `dynamic diff` asks the daemon; `get dynamic` lists the
    // active part as a row.
    let o = d.routerctl(&["dynamic", "diff"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "+ net.routerd.net/v1alpha1/IPv4Route/vpc source=Plugin/cloud generation=3\n"
    );
    let o = d.routerctl(&["get", "dynamic"]);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with("Plugin/cloud") && l.contains("active")),
        "{}",
        text(&o.stdout)
    );

    let o = d.routerctl(&["dynamic", "drop", "Plugin/none"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    let o = d.routerctl(&["dynamic", "drop", "Plugin/cloud#3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "dropped Plugin-cloud-3\n");
    let t = Instant::now();
    while kernel.destinations().contains(&"10.77.0.0/16".to_string()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the part's route stayed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = d.routerctl(&["dynamic", "list"]);
    assert!(
        text(&o.stdout).contains("dropped by uid"),
        "{}",
        text(&o.stdout)
    );
    d.stop();
}

#[test]
fn events_follow_survives_a_daemon_restart() {
    let (dir, config) = setup();
    let store = Arc::new(Store::in_memory());
    let kernel = kernel();
    let d = Daemon::start(&config, store.clone(), kernel.clone());
    let socket = d.socket.clone();
    let mut child = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(["events", "--follow", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let stderr = child.stderr.take().unwrap();
    let (etx, erx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = etx.send(line);
        }
    });
    let mut lines = vec![rx.recv_timeout(Duration::from_secs(10)).unwrap()];

    // Restart the daemon on the same store.
    d.stop();
    let d = Daemon::start(&config, store.clone(), kernel.clone());
    let extra = write(dir.path(), "extra.yaml", &route("after", "10.8.0.0/16"));
    let o = d.routerctl(&["apply", "-f", extra.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t = Instant::now();
    while !lines.iter().any(|l| l.contains("ConfigApplied")) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no event after the restart: {lines:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // The timeline's header comes once, above the first events.
    assert!(lines[0].starts_with("ID "), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("ID ")).count(),
        1,
        "{lines:?}"
    );
    let ids: Vec<u64> = lines
        .iter()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "events repeated or out of order: {lines:?}"
    );
    // The child is gone: its stderr ends.
    let mut errs = Vec::new();
    while let Ok(l) = erx.recv_timeout(Duration::from_secs(5)) {
        errs.push(l);
    }
    // The in-process daemon shares its store with the old one: a long poll
    // still open on the stopping server may already deliver the new event
    // (no disconnect seen). When the follower did lose the connection, it
    // must have come back.
    if errs.iter().any(|l| l.contains("retrying")) {
        assert!(errs.iter().any(|l| l.contains("reconnected")), "{errs:?}");
    }
    d.stop();
}

/// A member of `--socket-read-group` (here a process with that group as
/// its only group, not root) may look but not change: `get` answers,
/// `apply` is refused with exit 77 and the configuration is unchanged.
#[test]
#[ignore = "needs root: runs routerctl as another user"]
fn a_read_only_client_may_get_but_not_apply() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let (dir, config) = setup();
    // The unprivileged client must reach the socket and read its input.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let read_group = 4243;
    let d = Daemon::start_with(
        &config,
        Arc::new(Store::in_memory()),
        kernel(),
        Access {
            group: None,
            read_group: Some(read_group),
        },
    );
    let extra = write(dir.path(), "extra.yaml", &route("extra", "10.9.0.0/16"));
    std::fs::set_permissions(&extra, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_reader = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .args(args)
            .arg("--socket")
            .arg(&d.socket)
            .uid(65534)
            .gid(read_group)
            .output()
            .unwrap()
    };
    let o = as_reader(&["get", "IPv4Route"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("base"), "{}", text(&o.stdout));
    let o = as_reader(&["status", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = as_reader(&["apply", "-f", extra.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(77), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("read-only"), "{}", text(&o.stderr));
    // Nothing changed; root still may.
    let o = d.routerctl(&["get", "IPv4Route/extra"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stdout));
    // Someone in neither group is refused even reads.
    let o = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(["get", "IPv4Route", "--socket"])
        .arg(&d.socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77), "{}", text(&o.stderr));
    d.stop();
}

/// `plugin list` without `-f` lists the daemon's Plugin resources.
#[test]
fn plugin_list_asks_the_daemon() {
    let (_dir, config) = setup();
    let mut text_cfg = std::fs::read_to_string(&config).unwrap();
    text_cfg.push_str(
        "    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {name: cloud}
      spec:
        executable: /usr/libexec/routerd/cloud
        triggers: [{type: interval, every: 5m}]
",
    );
    std::fs::write(&config, text_cfg).unwrap();
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), kernel());
    let o = d.routerctl(&["plugin", "list"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let row = out
        .lines()
        .find(|l| l.starts_with("cloud"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("/usr/libexec/routerd/cloud") && row.contains("every 5m"),
        "{out}"
    );
    d.stop();
}

/// A startup resource masked by a stored part is listed as Suppressed with
/// its mask, not dropped from `get`.
#[test]
fn masked_resources_show_as_suppressed() {
    let (_dir, config) = setup();
    let mut text_cfg = std::fs::read_to_string(&config).unwrap();
    text_cfg.push_str(
        "    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {name: p}
      spec:
        allow:
          - source: Plugin/cloud
            operations: [mask]
            targets: [{apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: wan1}]
",
    );
    std::fs::write(&config, text_cfg).unwrap();
    let store = Arc::new(Store::in_memory());
    let mut l = routerd_model::Loaded::new();
    l.add_file(
        "part",
        "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {name: Plugin-cloud-3}\nspec:\n  source: Plugin/cloud\n  generation: 3\n  directives:\n    - {op: mask, target: {apiVersion: net.routerd.net/v1alpha1, kind: Interface, name: wan1}, reason: maintenance}\n",
    );
    let mut w = store.writer();
    w.put_part(&PartRecord {
        part: l.resources.remove(0),
        state: PartState::Active,
        reason: String::new(),
        stored_at: chrono::Utc::now(),
    })
    .unwrap();
    w.commit().unwrap();
    let d = Daemon::start(&config, store, kernel());
    let o = d.routerctl(&["get", "Interface"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let row = out
        .lines()
        .find(|l| l.starts_with("Interface") && l.contains("wan1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("Suppressed")
            && row.contains("masked by Plugin/cloud#3 until never: maintenance"),
        "{out}"
    );
    let o = d.routerctl(&["dynamic", "diff"]);
    assert!(
        text(&o.stdout)
            .starts_with("- net.routerd.net/v1alpha1/Interface/wan1 maskedBy=Plugin/cloud#3"),
        "{}",
        text(&o.stdout)
    );
    d.stop();
}
