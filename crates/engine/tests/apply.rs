#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! apply, delete, reload and dynamic drop through the real control socket
//! of a daemon on an in-memory dataplane (issue #12 items 3, 4, 8 and 9).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use routerd_api::client::{Client, ClientError};
use routerd_api::control::{ApplyRequest, DeleteRequest, DynamicDropRequest};
use routerd_engine::control::{self, Access};
use routerd_engine::daemon::{self, Handler, Key, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_render::{ApplyError, Dataplane, DataplaneError, Observed, Plan, SharedMemDataplane};
use routerd_store::{
    Backend, Batch, Entries, MemBackend, Namespace, PartRecord, PartState, Store, StoreError,
};
use serde_json::{Value, json};

/// The operator's file: comments, a Router envelope with metadata and
/// spec.reconcile, and resources.
const OPERATOR: &str = r#"# Edge router of site 7. Owner: netops.
# Do not remove the comment above; the audit checks it.
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: site7}
spec:
  reconcile:
    protectedInterfaces: [mgmt0]   # never touched
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    # A blackhole for the lab range.
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: base}
      spec: {type: blackhole, destination: 10.0.0.0/16}
"#;

/// A kernel that refuses to add routes to one destination, as it refuses a
/// route on a device that does not exist; every other operation applies.
#[derive(Clone)]
struct Refusing {
    inner: SharedMemDataplane,
    refused: &'static str,
}

impl Dataplane for Refusing {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.inner.observe()
    }
    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let mut k = self.inner.lock();
        k.refuse = vec![self.refused.to_string()];
        k.apply(plan)
    }
}

/// A store backend whose writes fail on demand, like a full state dir.
#[derive(Default)]
struct Full {
    inner: MemBackend,
    full: AtomicBool,
}

impl Backend for Full {
    fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(ns, key)
    }
    fn scan(&self, ns: Namespace, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.inner.scan(ns, prefix)
    }
    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "No space left on device (os error 28)".into(),
            ));
        }
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "No space left on device (os error 28)".into(),
            ));
        }
        self.inner.flush()
    }
}

struct Daemon {
    shared: Arc<Shared>,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// Runs the daemon on `config` (the operator's file) with a control
    /// socket beside it.
    async fn start<D: Dataplane + Send + 'static>(config: &Path, store: Arc<Store>, dp: D) -> Self {
        let options = Options {
            config_path: config.to_path_buf(),
            resync: Duration::from_secs(3600),
            ..Options::default()
        };
        let shared = Shared::new(options, store, Arc::new(SystemClock)).unwrap();
        let socket = config.with_file_name("routerd.sock");
        let listener = control::bind(&socket, None).unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ctl_stop, ctl_rx) = tokio::sync::oneshot::channel::<()>();
        let handler = Arc::new(Handler(shared.clone()));
        tokio::spawn(control::serve(
            listener,
            handler,
            Access::default(),
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
        let task = tokio::spawn(daemon::run(
            shared.clone(),
            dp,
            StaticLinks(links),
            NoHealth,
            None,
            |_| {},
            async move {
                let _ = stop_rx.await;
                let _ = ctl_stop.send(());
            },
        ));
        let mut steps = shared.steps();
        tokio::time::timeout(Duration::from_secs(10), steps.wait_for(|s| s.seq > 0))
            .await
            .unwrap()
            .unwrap();
        Daemon {
            shared,
            socket,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

fn route(name: &str, destination: &str) -> String {
    format!(
        "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {{name: {name}}}\nspec: {{type: blackhole, destination: {destination}}}\n"
    )
}

fn apply_req(yaml: String) -> ApplyRequest {
    ApplyRequest {
        kind: Some("ApplyRequest".into()),
        candidate_yaml: yaml,
        ..Default::default()
    }
}

fn delete_req(target: &str) -> DeleteRequest {
    DeleteRequest {
        kind: Some("DeleteRequest".into()),
        target: target.into(),
        ..Default::default()
    }
}

fn operator_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, OPERATOR).unwrap();
    (dir, config)
}

fn managed(config: &Path) -> PathBuf {
    config.with_file_name("config.d").join("50-routerctl.yaml")
}

fn managed_ids(config: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(managed(config)).unwrap();
    let (resources, _) = routerd_engine::configfile::decode("m", &text).unwrap();
    let mut ids: Vec<String> = resources.iter().map(|r| r.name().to_string()).collect();
    ids.sort();
    ids
}

async fn status(c: &Client) -> Value {
    c.get::<Value>("/status").await.unwrap()["status"].clone()
}

async fn event_types(c: &Client) -> Vec<String> {
    let v: Value = c.get("/events?since-id=0&limit=1000").await.unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_applies_agree_and_each_reports_its_own_step() {
    let (_dir, config) = operator_dir();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let c = d.client();
        set.spawn(async move {
            let name = format!("r{i:02}");
            let v: Result<Value, ClientError> = c
                .post(
                    "/apply",
                    &apply_req(route(&name, &format!("10.{}.0.0/16", 100 + i))),
                )
                .await;
            (name, v)
        });
    }
    let mut generations = Vec::new();
    while let Some(done) = set.join_next().await {
        let (name, v) = done.unwrap();
        let v = v.unwrap_or_else(|e| panic!("apply {name}: {e}"));
        let r = &v["result"];
        assert_eq!(r["phase"], "Applied", "{name}: {v:#}");
        assert_eq!(r["failedOwners"], json!([]), "{name}: {v:#}");
        let id = format!("net.routerd.net/v1alpha1/IPv4Route/{name}");
        assert_eq!(r["changes"]["added"], json!([id]), "{name}: {v:#}");
        generations.push(r["generation"].as_u64().unwrap());
    }
    // Serialized: every apply got its own generation, and the store says
    // the step that ran it succeeded.
    generations.sort_unstable();
    generations.dedup();
    assert_eq!(generations.len(), 20);
    let stored = store.generations(100).unwrap();
    for g in &generations {
        let rec = stored.iter().find(|r| r.generation == *g).unwrap();
        assert_eq!(rec.phase, "Applied", "generation {g}");
    }

    // The file, the daemon and the dataplane agree.
    let want: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    assert_eq!(managed_ids(&config), want);
    let c = d.client();
    let listed: Value = c.get("/get?subject=IPv4Route").await.unwrap();
    let mut names: Vec<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut expected = want.clone();
    expected.insert(0, "base".into());
    assert_eq!(names, expected);
    let mut dests: Vec<String> = (0..20).map(|i| format!("10.{}.0.0/16", 100 + i)).collect();
    dests.insert(0, "10.0.0.0/16".into());
    dests.sort();
    assert_eq!(dp.destinations(), dests);
    assert_eq!(status(&c).await["phase"], "Ready");
    // The operator's file is untouched, and no temporary file is left.
    assert_eq!(std::fs::read_to_string(&config).unwrap(), OPERATOR);
    let left: Vec<String> = std::fs::read_dir(config.with_file_name("config.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["50-routerctl.yaml".to_string()]);

    // A restart loads the operator's file and the managed file.
    d.stop().await;
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let listed: Value = d.client().get("/get?subject=IPv4Route").await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 21);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_file_keeps_comments_envelope_link_mode_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("site7.yaml");
    std::fs::write(&real, OPERATOR).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = euid() == 0;
    if root {
        std::os::unix::fs::chown(&real, Some(0), Some(4242)).unwrap();
    }
    let config = dir.path().join("config.yaml");
    std::os::unix::fs::symlink("real/site7.yaml", &config).unwrap();
    let before = std::fs::metadata(&real).unwrap();

    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let c = d.client();

    // Apply a new resource and an override of an operator resource.
    let v: Value = c
        .post(
            "/apply",
            &apply_req(format!(
                "{}---\n{}",
                route("extra", "10.9.0.0/16"),
                route("base", "10.1.0.0/16")
            )),
        )
        .await
        .unwrap();
    assert_eq!(v["result"]["phase"], "Applied", "{v:#}");
    assert_eq!(
        dp.destinations(),
        vec!["10.1.0.0/16".to_string(), "10.9.0.0/16".to_string()]
    );

    let check = || {
        let link = std::fs::symlink_metadata(&config).unwrap();
        assert!(link.file_type().is_symlink(), "the symlink was replaced");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), OPERATOR);
        let after = std::fs::metadata(&real).unwrap();
        assert_eq!(after.permissions().mode() & 0o7777, 0o600);
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        assert_eq!(after.ino(), before.ino(), "the file was replaced");
    };
    check();
    // The managed file sits beside the link, with the operator's mode and group.
    let m = std::fs::metadata(managed(&config)).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(m.gid(), before.gid());
    assert_eq!(managed_ids(&config), vec!["base", "extra"]);

    // A resource only the operator defines is not deleted behind their back.
    match c
        .post::<_, Value>("/delete", &delete_req("Interface/wan1"))
        .await
    {
        Err(ClientError::Api { status, message }) => {
            assert_eq!(status, 409);
            assert!(
                message.contains("site7.yaml") || message.contains("config.yaml"),
                "{message}"
            );
            assert!(message.contains("never rewrites"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Deleting the override brings the operator's definition back.
    let v: Value = c
        .post("/delete", &delete_req("IPv4Route/base"))
        .await
        .unwrap();
    assert_eq!(v["result"]["phase"], "Applied", "{v:#}");
    assert_eq!(
        v["restored"][0]["id"],
        "net.routerd.net/v1alpha1/IPv4Route/base"
    );
    assert_eq!(
        dp.destinations(),
        vec!["10.0.0.0/16".to_string(), "10.9.0.0/16".to_string()]
    );
    let v: Value = c
        .post("/delete", &delete_req("IPv4Route/extra"))
        .await
        .unwrap();
    assert_eq!(v["result"]["phase"], "Applied", "{v:#}");
    assert_eq!(dp.destinations(), vec!["10.0.0.0/16".to_string()]);
    assert!(managed_ids(&config).is_empty());
    match c
        .post::<_, Value>("/delete", &delete_req("IPv4Route/extra"))
        .await
    {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    check();

    // The generation keeps the envelope, so a boot fallback keeps spec.reconcile.
    let v: Value = c
        .post("/apply", &apply_req(route("x", "10.5.0.0/16")))
        .await
        .unwrap();
    let g = v["result"]["generation"].as_u64().unwrap();
    let rec = store
        .generations(100)
        .unwrap()
        .into_iter()
        .find(|r| r.generation == g)
        .unwrap();
    assert!(
        rec.config_yaml.contains("protectedInterfaces"),
        "{}",
        rec.config_yaml
    );
    assert!(rec.config_yaml.contains("site7"), "{}", rec.config_yaml);
    check();
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_resource_and_dataplane_changes_and_writes_nothing() {
    let (_dir, config) = operator_dir();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let c = d.client();
    let generation = status(&c).await["generation"].clone();
    let mut req = apply_req(format!(
        "{}---\n{}",
        route("new", "10.7.0.0/16"),
        route("base", "10.8.0.0/16")
    ));
    req.dry_run = true;
    let v: Value = c.post("/apply", &req).await.unwrap();
    let r = &v["result"];
    assert_eq!(r["phase"], "Planned", "{v:#}");
    assert_eq!(
        r["changes"]["added"],
        json!(["net.routerd.net/v1alpha1/IPv4Route/new"])
    );
    assert_eq!(
        r["changes"]["changed"],
        json!(["net.routerd.net/v1alpha1/IPv4Route/base"])
    );
    let ops: Vec<&str> = r["dataplane"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(
        ops.iter()
            .any(|o| o.starts_with("ip route del blackhole 10.0.0.0/16")),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|o| o.starts_with("ip route add blackhole 10.7.0.0/16")),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|o| o.starts_with("ip route add blackhole 10.8.0.0/16")),
        "{ops:?}"
    );
    assert!(!managed(&config).exists());
    assert_eq!(status(&c).await["generation"], generation);
    assert_eq!(dp.destinations(), vec!["10.0.0.0/16".to_string()]);

    let mut del = delete_req("IPv4Route/new");
    del.dry_run = true;
    match c.post::<_, Value>("/delete", &del).await {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_refusal_fails_the_apply() {
    let (_dir, config) = operator_dir();
    let inner = SharedMemDataplane::default();
    let dp = Refusing {
        inner: inner.clone(),
        refused: "10.66.0.0/16",
    };
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), dp).await;
    let c = d.client();
    let v: Value = c
        .post("/apply", &apply_req(route("broken", "10.66.0.0/16")))
        .await
        .unwrap();
    let phase = v["result"]["phase"].as_str().unwrap();
    assert!(matches!(phase, "Failed" | "Degraded"), "{v:#}");
    assert_eq!(status(&c).await["phase"], "Degraded");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_refusal_names_the_failed_owner_and_spares_the_others() {
    let (_dir, config) = operator_dir();
    let inner = SharedMemDataplane::default();
    let dp = Refusing {
        inner: inner.clone(),
        refused: "10.66.0.0/16",
    };
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), dp).await;
    let c = d.client();
    let v: Value = c
        .post(
            "/apply",
            &apply_req(format!(
                "{}---\n{}",
                route("broken", "10.66.0.0/16"),
                route("fine", "10.67.0.0/16")
            )),
        )
        .await
        .unwrap();
    assert_eq!(v["result"]["phase"], "Degraded", "{v:#}");
    let owners: Vec<&str> = v["result"]["failedOwners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, vec!["net.routerd.net/v1alpha1/IPv4Route/broken"]);
    assert!(inner.destinations().contains(&"10.67.0.0/16".to_string()));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_listed_and_removed_on_request_only() {
    let (_dir, config) = operator_dir();
    let inner = SharedMemDataplane::default();
    let mut stray = routerd_render::ir::Route::new(
        150,
        "192.0.2.0/24".parse::<routerd_render::ir::IpNet>().unwrap(),
        0,
        routerd_render::ir::RouteKind::Blackhole,
    );
    stray.owner.clear();
    inner.lock().routes.push(stray);
    let d = Daemon::start(&config, Arc::new(Store::in_memory()), inner.clone()).await;
    let c = d.client();
    let v = eventually(&c, |st| st["orphans"] == 1).await;
    assert_eq!(v["orphans"], 1, "{v:#}");
    let listed: Value = c.get("/get?subject=orphans").await.unwrap();
    assert_eq!(
        listed["items"],
        serde_json::json!(["route 192.0.2.0/24 table 150 metric 0"])
    );
    // Reported, never removed unasked.
    assert!(inner.destinations().contains(&"192.0.2.0/24".to_string()));
    let dry: Value = c
        .post(
            "/delete",
            &DeleteRequest {
                dry_run: true,
                ..delete_req("orphans")
            },
        )
        .await
        .unwrap();
    assert_eq!(dry["result"]["phase"], "Planned");
    assert!(inner.destinations().contains(&"192.0.2.0/24".to_string()));
    let v: Value = c.post("/delete", &delete_req("orphans")).await.unwrap();
    assert_eq!(v["result"]["phase"], "Accepted", "{v:#}");
    let dp = inner.clone();
    wait_for(move || !dp.destinations().contains(&"192.0.2.0/24".to_string())).await;
    eventually(&c, |st| st["orphans"] == 0).await;
    assert!(
        event_types(&c)
            .await
            .contains(&"routerd.dataplane.orphans.removed".to_string())
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_dir_fails_the_apply_and_changes_nothing() {
    let (_dir, config) = operator_dir();
    let backend = Arc::new(Full::default());
    let store = Arc::new(Store::open(backend.clone()).unwrap());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let c = d.client();
    let before = status(&c).await;
    backend.full.store(true, Ordering::SeqCst);
    match c
        .post::<_, Value>("/apply", &apply_req(route("x", "10.5.0.0/16")))
        .await
    {
        Err(ClientError::Api { status, message }) => {
            assert_eq!(status, 500);
            assert!(message.contains("No space left on device"), "{message}");
            assert!(message.contains("nothing was changed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!managed(&config).exists(), "the managed file was written");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), OPERATOR);
    assert_eq!(status(&c).await["generation"], before["generation"]);
    assert_eq!(dp.destinations(), vec!["10.0.0.0/16".to_string()]);

    // Space again: the same apply goes through.
    backend.full.store(false, Ordering::SeqCst);
    let v: Value = c
        .post("/apply", &apply_req(route("x", "10.5.0.0/16")))
        .await
        .unwrap();
    assert_eq!(v["result"]["phase"], "Applied", "{v:#}");
    assert_eq!(managed_ids(&config), vec!["x"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_managed_file_fails_the_apply_and_changes_nothing() {
    let (_dir, config) = operator_dir();
    let dropin = config.with_file_name("config.d");
    std::fs::create_dir(&dropin).unwrap();
    // A link into a directory that does not exist: reads see no file,
    // writes fail (root ignores permission bits, so modes would not do).
    std::os::unix::fs::symlink("../gone/50-routerctl.yaml", managed(&config)).unwrap();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let c = d.client();
    let before = status(&c).await;
    match c
        .post::<_, Value>("/apply", &apply_req(route("x", "10.5.0.0/16")))
        .await
    {
        Err(ClientError::Api { status, message }) => {
            assert_eq!(status, 500);
            assert!(message.contains("50-routerctl.yaml"), "{message}");
            assert!(message.contains("recorded as Failed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let now = status(&c).await;
    assert_eq!(now["generation"], before["generation"]);
    assert_eq!(dp.destinations(), vec!["10.0.0.0/16".to_string()]);
    let listed: Value = c.get("/get?subject=IPv4Route").await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), OPERATOR);
    let failed = store.generations(10).unwrap();
    assert!(failed.iter().any(|g| g.phase == "Failed"), "{failed:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_outcomes_show_in_status_and_events() {
    let (_dir, config) = operator_dir();
    let store = Arc::new(Store::in_memory());
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    let c = d.client();
    let generation = status(&c).await["generation"].as_u64().unwrap();
    assert_eq!(status(&c).await["lastReload"], Value::Null);

    // A broken file: rejected, the running configuration stays.
    std::fs::write(
        &config,
        format!("{OPERATOR}      spec: {{type: blackhole}}\n"),
    )
    .unwrap();
    d.shared.trigger(Key::Reload);
    let st = eventually(&c, |s| s["lastReload"]["result"] == "Rejected").await;
    assert_eq!(st["lastReload"]["generation"], generation);
    assert!(
        !st["lastReload"]["errors"].as_array().unwrap().is_empty(),
        "{st:#}"
    );
    assert_eq!(st["generation"], generation);
    assert!(
        event_types(&c)
            .await
            .contains(&"routerd.config.rejected".to_string())
    );

    // A good one: accepted with a new generation.
    std::fs::write(
        &config,
        format!(
            "{OPERATOR}    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {{name: more}}\n      spec: {{type: blackhole, destination: 10.3.0.0/16}}\n"
        ),
    )
    .unwrap();
    d.shared.trigger(Key::Reload);
    let st = eventually(&c, |s| s["lastReload"]["result"] == "Accepted").await;
    let new = st["lastReload"]["generation"].as_u64().unwrap();
    assert!(new > generation, "{st:#}");
    assert!(
        event_types(&c)
            .await
            .contains(&"routerd.config.reloaded".to_string())
    );
    let dp2 = dp.clone();
    wait_for(move || dp2.destinations().contains(&"10.3.0.0/16".to_string())).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_drop_revokes_a_part_at_once_and_for_good() {
    let (_dir, config) = operator_dir();
    let store = Arc::new(Store::in_memory());
    let part = routerd_engine::configfile::decode(
        "part",
        "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {name: Plugin-cloud-1}\nspec:\n  source: Plugin/cloud\n  generation: 1\n  resources:\n    - apiVersion: net.routerd.net/v1alpha1\n      kind: IPv4Route\n      metadata: {name: vpc}\n      spec: {type: blackhole, destination: 10.77.0.0/16}\n",
    )
    .unwrap()
    .0
    .remove(0);
    let mut w = store.writer();
    w.put_part(&PartRecord {
        part,
        state: PartState::Active,
        reason: String::new(),
        stored_at: chrono::Utc::now(),
    })
    .unwrap();
    w.commit().unwrap();
    let dp = SharedMemDataplane::default();
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    assert!(dp.destinations().contains(&"10.77.0.0/16".to_string()));
    let c = d.client();

    match c
        .post::<_, Value>(
            "/dynamic/drop",
            &DynamicDropRequest {
                part: "Plugin/nope".into(),
                ..Default::default()
            },
        )
        .await
    {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    let v: Value = c
        .post(
            "/dynamic/drop",
            &DynamicDropRequest {
                kind: Some("DynamicDropRequest".into()),
                part: "Plugin/cloud".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v["dropped"], json!(["Plugin-cloud-1"]), "{v:#}");
    let uid = euid();
    assert_eq!(v["by"], uid);
    let dp2 = dp.clone();
    wait_for(move || !dp2.destinations().contains(&"10.77.0.0/16".to_string())).await;
    let rec = store.parts().unwrap().remove(0);
    assert_eq!(rec.state, PartState::Dropped);
    assert!(rec.reason.contains(&format!("uid {uid}")), "{}", rec.reason);
    let ev: Value = c
        .get("/events?since-id=0&limit=1000&topic=routerd.dynamic.part.dropped")
        .await
        .unwrap();
    let e = &ev["items"][0];
    assert_eq!(e["attributes"]["uid"], uid.to_string(), "{ev:#}");
    assert_eq!(e["attributes"]["source"], "Plugin/cloud");

    // Dropping again says so; a restart does not bring it back.
    let v: Value = c
        .post(
            "/dynamic/drop",
            &DynamicDropRequest {
                part: "Plugin-cloud-1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v["alreadyDropped"], json!(["Plugin-cloud-1"]));
    d.stop().await;
    let d = Daemon::start(&config, store.clone(), dp.clone()).await;
    assert!(!dp.destinations().contains(&"10.77.0.0/16".to_string()));
    assert_eq!(store.parts().unwrap()[0].state, PartState::Dropped);
    d.stop().await;
}

async fn eventually(c: &Client, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let s = status(c).await;
        if f(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("status never matched: {:#}", status(c).await);
}

async fn wait_for(f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

/// This process's effective uid (the owner of what it creates).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}
