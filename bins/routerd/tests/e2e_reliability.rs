#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of failure isolation (issue #12) in a namespace lab,
//! against the real `routerd serve` (root only).
//!
//! Each failure test breaks one thing the way a user's router breaks (a
//! route on a device that does not exist, a gateway that is not on-link,
//! the selected uplink deleted, the backup absent at boot, a plugin part
//! with a route on an absent device) and checks two things: the broken
//! owner is reported truthfully (its status, the faults of `routerctl
//! status`), and failover of the egress policy still works, measured as the
//! demo measures it, with a client flow. Switch times are printed, not
//! judged; the only bound is the 10 s wait for the switch to happen at all.
//!
//! Also here: `spec.reconcile.protectedInterfaces` (nothing on a protected
//! interface is created, changed or removed) and the kill -9 loop of crash
//! safety by intent (no orphans, no duplicates, no flapping). docs/lab.md
//! describes each test.

mod common;

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, sh};
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, Uplink, parse_routes, wait_until};
use serde_json::Value;

const NET: &str = "net.routerd.net/v1alpha1";
/// The wait for a failover to happen at all: a sanity bound, not a timing
/// requirement (the demo's switch takes well under a second).
const SWITCH_BOUND: Duration = Duration::from_secs(10);

/// The control socket of one daemon, from a blocking test.
struct Api {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Api {
    fn new(d: &Daemon<'_>) -> Self {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: Client::new(d.socket()),
        }
    }

    fn try_get(&self, path: &str) -> Result<Value, String> {
        self.rt
            .block_on(self.client.get::<Value>(path))
            .map_err(|e| format!("GET {path}: {e:?}"))
    }

    /// `routerctl status`: the daemon's phase and its faults.
    fn status(&self) -> Option<Value> {
        self.try_get("/status").ok().map(|v| v["status"].clone())
    }

    /// `routerctl get KIND/NAME`: the resource's reported status.
    fn resource_status(&self, kind: &str, name: &str) -> Option<Value> {
        let doc = self
            .try_get(&format!("/get?subject={kind}%2F{name}"))
            .ok()?;
        doc["items"]
            .as_array()?
            .first()
            .map(|i| i["status"].clone())
    }

    /// Events of `topic` about `resource` (`Kind/name`), newest first.
    fn events(&self, topic: &str, resource: &str) -> Vec<Value> {
        self.try_get(&format!(
            "/events?since-id=0&topic={topic}&resource={}&limit=1000",
            resource.replace('/', "%2F")
        ))
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
    }
}

/// Waits (bounded) for `check` to return a value; panics with `what`, the
/// last value seen and the daemon log otherwise.
fn eventually<T>(
    d: &Daemon<'_>,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let t = Instant::now();
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(last) => last,
        };
        assert!(
            t.elapsed() < limit,
            "{what} not seen within {limit:?} (last: {last}); log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An IPv4Route resource as a list item of `spec.resources`.
fn route(name: &str, spec: &str) -> String {
    format!(
        "    - apiVersion: {NET}\n      kind: IPv4Route\n      metadata: {{name: {name}}}\n      spec: {{{spec}}}\n"
    )
}

/// Starts the daemon and waits until a client flow leaves through the
/// primary uplink (the policy selected it and the dataplane carries it).
fn start_converged<'a>(lab: &'a Lab, dir: &Path, extra: &str) -> Daemon<'a> {
    let mut d = Daemon::new(lab, dir, extra);
    d.start();
    wait_primary(lab, &d);
    d
}

fn wait_primary(lab: &Lab, d: &Daemon<'_>) {
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(300))
                .is_ok_and(|r| r.upstream == Node::Up1)
        },
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("client traffic never left through wan1; log:\n{}", d.log()));
}

/// Client traffic as in `routerd demo` (a new flow every 20 ms, 150 ms
/// each); `fault` breaks the primary; returns the time from the fault to
/// the first new flow that reached the backup's upstream, and checks that
/// the policy says so.
fn failover(lab: &Lab, d: &Daemon<'_>, api: &Api, what: &str, fault: impl FnOnce()) -> Duration {
    let traffic = lab
        .start_client_traffic(Duration::from_millis(20), Duration::from_millis(150))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        traffic
            .samples()
            .iter()
            .any(|s| s.upstream() == Some(Node::Up1)),
        "{what}: no client flow through wan1 before the fault; log:\n{}",
        d.log()
    );
    let cut = Instant::now();
    fault();
    let switched = wait_until(
        || traffic.first_on(Node::Up2, cut).is_some(),
        SWITCH_BOUND,
        Duration::from_millis(10),
    );
    assert!(
        switched.is_ok(),
        "{what}: client traffic did not move to wan2 within {SWITCH_BOUND:?}; log:\n{}",
        d.log()
    );
    let took = traffic.first_on(Node::Up2, cut).unwrap() - cut;
    let failed = traffic.failures_since(cut);
    drop(traffic);
    eventually(
        d,
        "the policy selecting the backup",
        Duration::from_secs(5),
        || {
            let st = api.resource_status("EgressRoutePolicy", "ipv4-default");
            let sel = st.as_ref().map(|s| s["selectedCandidate"].clone());
            (sel == Some(Value::from("backup")))
                .then_some(())
                .ok_or_else(|| format!("{st:?}"))
        },
    );
    eprintln!(
        "{what}: failover switch {} ms (first new client flow through wan2; {failed} flows failed meanwhile)",
        took.as_millis()
    );
    took
}

/// Creates an uplink again after `ip link del`: the veth pair (peer straight
/// into the upstream namespace, as the lab builds it), both addresses, and
/// the upstream's route back.
fn recreate_uplink(lab: &Lab, uplink: Uplink) {
    let dev = uplink.router_if();
    let up = uplink.upstream();
    lab.ip(
        Node::Router,
        &[
            "link",
            "add",
            dev,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            lab.ns(up),
        ],
    )
    .unwrap();
    lab.ip(
        Node::Router,
        &[
            "addr",
            "add",
            &format!("{}/30", uplink.router_addr()),
            "dev",
            dev,
        ],
    )
    .unwrap();
    lab.ip(Node::Router, &["link", "set", dev, "up"]).unwrap();
    lab.ip(
        up,
        &[
            "addr",
            "add",
            &format!("{}/30", uplink.gateway()),
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    lab.restore(uplink).unwrap();
}

/// The daemon's faults (`routerctl status`) as `(owner, reason, message)`.
fn faults(status: &Value) -> Vec<(String, String, String)> {
    status["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("owner"), s("reason"), s("message"))
        })
        .collect()
}

/// Waits until the status of `kind/name` has `phase` and `reason`.
fn wait_phase(
    d: &Daemon<'_>,
    api: &Api,
    kind: &str,
    name: &str,
    phase: &str,
    reason: &str,
) -> Value {
    eventually(
        d,
        &format!("{kind}/{name} {phase}/{reason}"),
        Duration::from_secs(10),
        || {
            let st = api.resource_status(kind, name).unwrap_or_default();
            (st["phase"] == phase && st["reason"] == reason)
                .then(|| st.clone())
                .ok_or_else(|| st.to_string())
        },
    )
}

/// Waits until the daemon reports `phase` (`Ready`, `Degraded`) and returns
/// its status.
fn wait_daemon_phase(d: &Daemon<'_>, api: &Api, phase: &str) -> Value {
    eventually(
        d,
        &format!("daemon phase {phase}"),
        Duration::from_secs(10),
        || {
            let st = api.status().unwrap_or_default();
            (st["phase"] == phase)
                .then(|| st.clone())
                .ok_or_else(|| st.to_string())
        },
    )
}

/// `ip -4 monitor route` in the router namespace, read live: the kill -9
/// loop kills the daemon a chosen number of route changes into an apply.
/// Dropping it kills the monitor (also when a test fails).
struct RouteMonitor {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RouteMonitor {
    fn start(lab: &Lab) -> Self {
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", lab.ns(Node::Router)])
            .args(["ip", "-4", "monitor", "route"])
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            // `ip monitor` flushes after every message.
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        // Let it subscribe before anything it should see happens.
        std::thread::sleep(Duration::from_millis(200));
        RouteMonitor {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Route changes seen so far.
    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits (polling every 100 µs) until at least `n` changes were seen.
    fn wait_count(&self, n: usize, limit: Duration) -> bool {
        let t = Instant::now();
        while self.count() < n {
            if t.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        true
    }

    /// Everything it saw.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device `name` in the router, up with carrier: one end of a veth pair
/// whose other end (`NAMEp`) stays in the router too.
fn veth_in_router(lab: &Lab, name: &str) {
    let peer = format!("{name}p");
    lab.ip(
        Node::Router,
        &["link", "add", name, "type", "veth", "peer", "name", &peer],
    )
    .unwrap();
    lab.ip(Node::Router, &["link", "set", &peer, "up"]).unwrap();
    lab.ip(Node::Router, &["link", "set", name, "up"]).unwrap();
}

fn kernel_has(lab: &Lab, args: &[&str], needle: &str) -> bool {
    sh(lab, "ip", args).contains(needle)
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_route_on_a_missing_device_waits_and_failover_still_works() {
    let lab = common::lab("rrel1");
    let dir = tempfile::tempdir().unwrap();
    let extra = route("ghost", "destination: 10.50.0.0/24, device: ghost0");
    let d = start_converged(&lab, dir.path(), &extra);
    let api = Api::new(&d);

    let st = wait_phase(&d, &api, "IPv4Route", "ghost", "Pending", "DeviceNotReady");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ghost0"),
        "{st}"
    );
    assert_eq!(st["dataplane"]["installed"], false, "{st}");
    let daemon = wait_daemon_phase(&d, &api, "Degraded");
    let f = faults(&daemon);
    assert!(
        f.iter()
            .any(|(o, r, _)| o.ends_with("/IPv4Route/ghost") && r == "DeviceNotReady"),
        "{daemon}"
    );
    assert!(
        !api.events("routerd.dataplane.owner.failed", "IPv4Route/ghost")
            .is_empty(),
        "no owner.failed event"
    );
    assert!(!kernel_has(
        &lab,
        &["route", "show", "table", "all"],
        "10.50.0.0/24"
    ));

    failover(&lab, &d, &api, "broken static route, carrier cut", || {
        lab.cut_carrier(Uplink::Wan1).unwrap();
    });
    assert!(kernel_has(&lab, &["route", "show", "default"], "dev wan2"));

    // The device appears: the route installs without a restart.
    let t = Instant::now();
    veth_in_router(&lab, "ghost0");
    eventually(
        &d,
        "the route on ghost0 in the kernel",
        Duration::from_secs(10),
        || {
            let out = sh(&lab, "ip", &["route", "show", "10.50.0.0/24"]);
            (out.contains("dev ghost0") && out.contains("proto 122"))
                .then_some(())
                .ok_or(out)
        },
    );
    eprintln!(
        "broken static route: installed {} ms after its device appeared",
        t.elapsed().as_millis()
    );
    let st = api.resource_status("IPv4Route", "ghost").unwrap();
    assert_eq!(st["phase"], "Installed", "{st}");
    assert!(st.get("dataplane").is_none(), "{st}");
    eventually(&d, "owner.recovered event", Duration::from_secs(5), || {
        let ev = api.events("routerd.dataplane.owner.recovered", "IPv4Route/ghost");
        (!ev.is_empty()).then_some(()).ok_or_else(String::new)
    });
    wait_daemon_phase(&d, &api, "Ready");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_gateway_that_is_not_on_link_fails_its_route_only() {
    let lab = common::lab("rrel2");
    let dir = tempfile::tempdir().unwrap();
    // On wan2, the backup: its own broken route must not stop failover to it.
    let extra = route(
        "offlink",
        "destination: 10.51.0.0/24, device: wan2, gateway: 10.99.99.1",
    );
    let d = start_converged(&lab, dir.path(), &extra);
    let api = Api::new(&d);

    let st = wait_phase(&d, &api, "IPv4Route", "offlink", "Error", "ApplyFailed");
    let message = st["message"].as_str().unwrap_or_default().to_string();
    eprintln!("non-on-link gateway: the kernel said: {message}");
    // The kernel's own words (extack and errno), not a generic failure.
    assert!(
        message.contains("gateway") || message.contains("unreachable"),
        "{st}"
    );
    assert_eq!(st["dataplane"]["intended"]["phase"], "Installed", "{st}");
    let daemon = wait_daemon_phase(&d, &api, "Degraded");
    let f = faults(&daemon);
    assert_eq!(f.len(), 1, "only the broken route is at fault: {daemon}");
    assert!(f[0].0.ends_with("/IPv4Route/offlink"), "{daemon}");
    assert!(!kernel_has(
        &lab,
        &["route", "show", "table", "all"],
        "10.51.0.0/24"
    ));

    failover(&lab, &d, &api, "non-on-link gateway, carrier cut", || {
        lab.cut_carrier(Uplink::Wan1).unwrap();
    });
    assert!(kernel_has(&lab, &["route", "show", "default"], "dev wan2"));
    // Still reported, and still the only fault.
    let st = api.resource_status("IPv4Route", "offlink").unwrap();
    assert_eq!(st["reason"], "ApplyFailed", "{st}");
    let f = faults(&api.status().unwrap());
    assert_eq!(f.len(), 1, "{f:?}");

    // The operator puts the gateway on-link: the refused route is retried
    // without a restart or a configuration change, and its fault clears.
    lab.ip(
        Node::Router,
        &["addr", "add", "10.99.99.2/24", "dev", "wan2"],
    )
    .unwrap();
    eventually(
        &d,
        "the route once its gateway is on-link",
        Duration::from_secs(10),
        || {
            let out = sh(&lab, "ip", &["route", "show", "10.51.0.0/24"]);
            out.contains("via 10.99.99.1 dev wan2")
                .then_some(())
                .ok_or(out)
        },
    );
    let st = api.resource_status("IPv4Route", "offlink").unwrap();
    assert_eq!(st["phase"], "Installed", "{st}");
    assert!(st.get("dataplane").is_none(), "{st}");
    wait_daemon_phase(&d, &api, "Ready");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn deleting_the_selected_uplink_fails_over_and_nothing_freezes() {
    let lab = common::lab("rrel3");
    let dir = tempfile::tempdir().unwrap();
    let d = start_converged(&lab, dir.path(), "");
    let api = Api::new(&d);
    wait_daemon_phase(&d, &api, "Ready");

    // A PPPoE or DS-Lite device going away looks like this.
    failover(&lab, &d, &api, "selected uplink deleted", || {
        lab.ip(Node::Router, &["link", "del", "wan1"]).unwrap();
    });
    assert!(kernel_has(&lab, &["route", "show", "default"], "dev wan2"));
    // The status says what happened: the interface is gone, the policy
    // runs on the backup, and what it keeps for the primary waits for the
    // device (a fault, so the daemon is Degraded, not Ready).
    let wan1 = api.resource_status("Interface", "wan1").unwrap();
    assert_eq!(wan1["phase"], "Down", "{wan1}");
    assert_eq!(wan1["reason"], "InterfaceNotFound", "{wan1}");
    let daemon = wait_daemon_phase(&d, &api, "Degraded");
    let f = faults(&daemon);
    assert!(
        f.iter()
            .any(|(o, r, m)| o.ends_with("/EgressRoutePolicy/ipv4-default")
                && r == "DeviceNotReady"
                && m.contains("wan1")),
        "{daemon}"
    );
    eprintln!("selected uplink deleted: faults {f:?}");

    // Nothing froze: the control socket answers, and a configuration
    // change (a new route on the backup) reaches the kernel.
    let cfg = dir.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&route(
        "after-delete",
        "destination: 10.52.0.0/24, device: wan2, gateway: 198.18.2.2",
    ));
    std::fs::write(&cfg, text).unwrap();
    d.reload();
    eventually(
        &d,
        "a new route after the uplink went away",
        Duration::from_secs(10),
        || {
            let out = sh(&lab, "ip", &["route", "show", "10.52.0.0/24"]);
            out.contains("dev wan2").then_some(()).ok_or(out)
        },
    );

    // The uplink comes back: the policy fails back after its hold-down and
    // every fault clears.
    let t = Instant::now();
    recreate_uplink(&lab, Uplink::Wan1);
    wait_primary(&lab, &d);
    eprintln!(
        "selected uplink deleted: failback {} ms after it was created again",
        t.elapsed().as_millis()
    );
    let daemon = wait_daemon_phase(&d, &api, "Ready");
    assert!(faults(&daemon).is_empty(), "{daemon}");
    assert!(kernel_has(
        &lab,
        &["route", "show", "table", "110"],
        "default via 198.18.1.2 dev wan1"
    ));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn booting_without_the_backup_installs_the_rest_and_reports_ready() {
    let lab = common::lab("rrel4");
    let dir = tempfile::tempdir().unwrap();
    lab.ip(Node::Router, &["link", "del", "wan2"]).unwrap();
    // systemd's side of READY=1: a datagram socket named by NOTIFY_SOCKET.
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    d.start_with_env(&[("NOTIFY_SOCKET", notify_path.to_str().unwrap())]);
    let t = Instant::now();
    wait_primary(&lab, &d);
    let mut ready = false;
    let mut buf = [0u8; 512];
    while !ready && t.elapsed() < Duration::from_secs(10) {
        if let Ok(n) = notify.recv(&mut buf) {
            ready = String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1");
        }
    }
    assert!(ready, "READY=1 never sent; log:\n{}", d.log());
    let api = Api::new(&d);
    let daemon = wait_daemon_phase(&d, &api, "Degraded");
    let f = faults(&daemon);
    assert!(
        !f.is_empty()
            && f.iter()
                .all(|(_, r, m)| r == "DeviceNotReady" && m.contains("wan2")),
        "faults should name what waits for wan2: {daemon}"
    );
    eprintln!(
        "backup absent at boot: READY=1 and traffic through wan1 after {} ms; faults: {f:?}",
        t.elapsed().as_millis()
    );
    // Everything else is installed: NAT for both uplinks, the primary's table.
    let tables = sh(&lab, "nft", &["list", "ruleset"]);
    assert!(tables.contains("\"wan2\""), "{tables}");
    assert!(kernel_has(
        &lab,
        &["route", "show", "table", "110"],
        "default via 198.18.1.2 dev wan1"
    ));

    // The backup appears: it is installed and failover works.
    let t = Instant::now();
    recreate_uplink(&lab, Uplink::Wan2);
    eventually(&d, "the backup's table", Duration::from_secs(10), || {
        let out = sh(&lab, "ip", &["route", "show", "table", "120"]);
        out.contains("default via 198.18.2.2 dev wan2")
            .then_some(())
            .ok_or(out)
    });
    eprintln!(
        "backup absent at boot: its table installed {} ms after it appeared",
        t.elapsed().as_millis()
    );
    let daemon = wait_daemon_phase(&d, &api, "Ready");
    assert!(faults(&daemon).is_empty(), "{daemon}");
    eventually(&d, "the backup healthy", Duration::from_secs(10), || {
        let st = api
            .resource_status("HealthCheck", "internet-wan2")
            .unwrap_or_default();
        (st["phase"] == "Healthy")
            .then_some(())
            .ok_or_else(|| st.to_string())
    });
    failover(&lab, &d, &api, "backup absent at boot, then added", || {
        lab.cut_carrier(Uplink::Wan1).unwrap();
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_poisoned_plugin_part_waits_and_failover_still_works() {
    let lab = common::lab("rrel5");
    let dir = tempfile::tempdir().unwrap();
    // The runner refuses an executable that others can write, or one in a
    // directory others can write (docs/plugin-protocol.md §2).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.path().join("cloud-inventory");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/plugins/cloud-inventory.py"
        ),
        &plugin,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inventory = dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        r#"{"vpcs": [{"name": "cloud-vpc", "cidr": "10.40.0.0/16", "gateway": "198.18.40.1"}]}"#,
    )
    .unwrap();
    // OVERLAY_DEVICE is left at the plugin's default, wg0, which does not
    // exist: the issue's reproduction.
    let extra = format!(
        r#"    - apiVersion: {NET}
      kind: IPv4Route
      metadata: {{name: cloud-fallback}}
      spec: {{destination: 10.40.0.0/16, device: wan2, gateway: 198.18.2.2, metric: 200}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: cloud-inventory}}
      spec:
        executable: {plugin}
        timeout: 5s
        env: {{PLUGIN_TTL: 5m, CLOUD_INVENTORY: {inventory}}}
        triggers: [{{type: interval, every: 2s}}]
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {{name: allow-mask}}
      spec:
        allow:
          - source: Plugin/cloud-inventory
            operations: [mask]
            targets: [{{apiVersion: {NET}, kind: IPv4Route, name: cloud-fallback}}]
"#,
        plugin = plugin.display(),
        inventory = inventory.display(),
    );
    let d = start_converged(&lab, dir.path(), &extra);
    let api = Api::new(&d);

    let st = wait_phase(
        &d,
        &api,
        "IPv4Route",
        "cloud-vpc",
        "Pending",
        "DeviceNotReady",
    );
    assert!(
        st["message"].as_str().unwrap_or_default().contains("wg0"),
        "{st}"
    );
    let daemon = wait_daemon_phase(&d, &api, "Degraded");
    let f = faults(&daemon);
    assert_eq!(f.len(), 1, "only the plugin's route is at fault: {daemon}");
    assert!(f[0].0.ends_with("/IPv4Route/cloud-vpc"), "{daemon}");

    failover(&lab, &d, &api, "poisoned plugin part, carrier cut", || {
        lab.cut_carrier(Uplink::Wan1).unwrap();
    });
    assert!(kernel_has(&lab, &["route", "show", "default"], "dev wan2"));

    // The overlay appears: the part's route installs, without a restart
    // and without a new plugin run being needed.
    let t = Instant::now();
    // A veth pair inside the router (CI kernels may lack the dummy module).
    veth_in_router(&lab, "wg0");
    lab.ip(
        Node::Router,
        &["addr", "add", "198.18.40.2/30", "dev", "wg0"],
    )
    .unwrap();
    eventually(
        &d,
        "the part's route on wg0",
        Duration::from_secs(10),
        || {
            let out = sh(&lab, "ip", &["route", "show", "10.40.0.0/16"]);
            (out.contains("via 198.18.40.1 dev wg0") && out.contains("proto 122"))
                .then_some(())
                .ok_or(out)
        },
    );
    eprintln!(
        "poisoned plugin part: its route installed {} ms after wg0 appeared",
        t.elapsed().as_millis()
    );
    let st = api.resource_status("IPv4Route", "cloud-vpc").unwrap();
    assert_eq!(st["phase"], "Installed", "{st}");
    wait_daemon_phase(&d, &api, "Ready");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn protected_interfaces_are_never_touched() {
    let lab = common::lab("rrel6");
    let dir = tempfile::tempdir().unwrap();
    veth_in_router(&lab, "mgmt0");
    for args in [
        &["addr", "add", "10.62.0.1/24", "dev", "mgmt0"][..],
        // Carries routerd's marker but is on a protected interface: it must
        // survive even strict mode, which removes unclaimed marked routes.
        &[
            "route",
            "add",
            "10.61.0.0/24",
            "dev",
            "mgmt0",
            "proto",
            "122",
        ],
        // An unclaimed marked route elsewhere: strict mode removes it, which
        // shows that the survivor above survives for the right reason.
        &[
            "route",
            "add",
            "10.63.0.0/24",
            "dev",
            "lan0",
            "proto",
            "122",
        ],
    ] {
        lab.ip(Node::Router, args).unwrap();
    }
    let before = sh(&lab, "ip", &["route", "show", "10.61.0.0/24"]);
    let monitor = RouteMonitor::start(&lab);
    let extra = format!(
        "    - apiVersion: {NET}\n      kind: Interface\n      metadata: {{name: mgmt}}\n      spec: {{ifname: mgmt0}}\n{}{}",
        route("guarded", "destination: 10.60.0.0/24, device: mgmt0"),
        // Same kernel key as the pre-existing route, different content:
        // routerd would replace it if the interface were not protected.
        route(
            "takeover",
            "destination: 10.61.0.0/24, device: mgmt0, gateway: 10.62.0.254"
        ),
    );
    let mut d = Daemon::new(&lab, dir.path(), &extra);
    let cfg = dir.path().join("config.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "spec:\n  resources:\n",
        "spec:\n  reconcile:\n    mode: strict\n    protectedInterfaces: [mgmt]\n  resources:\n",
        1,
    );
    assert!(text.contains("protectedInterfaces"));
    std::fs::write(&cfg, text).unwrap();
    d.start();
    wait_primary(&lab, &d);
    let api = Api::new(&d);
    for name in ["guarded", "takeover"] {
        let st = eventually(
            &d,
            &format!("{name} Protected"),
            Duration::from_secs(10),
            || {
                let st = api.resource_status("IPv4Route", name).unwrap_or_default();
                (st["reason"] == "Protected")
                    .then(|| st.clone())
                    .ok_or_else(|| st.to_string())
            },
        );
        assert!(
            st["message"].as_str().unwrap_or_default().contains("mgmt0"),
            "{st}"
        );
    }
    eventually(
        &d,
        "strict mode removing the stray marked route",
        Duration::from_secs(10),
        || {
            let out = sh(&lab, "ip", &["route", "show", "10.63.0.0/24"]);
            out.is_empty().then_some(()).ok_or(out)
        },
    );
    // A full reconcile (reload) changes nothing either.
    d.reload();
    std::thread::sleep(Duration::from_secs(1));
    wait_primary(&lab, &d);

    assert_eq!(sh(&lab, "ip", &["route", "show", "10.61.0.0/24"]), before);
    assert_eq!(sh(&lab, "ip", &["route", "show", "10.60.0.0/24"]), "");
    let ledger = api.try_get("/get?subject=ledger").unwrap().to_string();
    assert!(
        !ledger.contains("10.60.0.0") && !ledger.contains("10.61.0.0"),
        "{ledger}"
    );
    d.stop();
    let text = monitor.stop();
    // The kernel's own local and connected routes aside.
    let touched: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("mgmt0") && !l.contains("proto kernel"))
        .collect();
    assert!(
        touched.is_empty(),
        "routerd touched the protected interface: {touched:?}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Deleted") && l.contains("10.63.0.0/24")),
        "monitor saw no removal of the stray route:\n{text}"
    );
}

/// Routes that every configuration of the kill -9 loop has: they must never
/// be touched across restarts.
const STABLE: usize = 1000;
/// Routes that differ between the loop's three configurations, so every
/// restart has a large apply (1,000 additions and 1,000 removals) to be
/// killed in.
const VARIANT: usize = 1000;
const KILL_ROUNDS: u64 = 20;

fn stable_dst(i: usize) -> String {
    format!("10.{}.{}.0/24", 200 + i / 256, i % 256)
}

fn variant_dst(v: usize, i: usize) -> String {
    format!("10.{}.{}.0/24", 100 + 4 * v + i / 256, i % 256)
}

/// The demo configuration plus the stable routes and variant `v`'s.
fn bulk_extra(v: usize) -> String {
    let mut extra = String::new();
    let mut add = |name: String, dst: String| {
        extra.push_str(&route(
            &name,
            &format!("type: blackhole, destination: {dst}"),
        ));
    };
    for i in 0..STABLE {
        add(format!("stable-{i}"), stable_dst(i));
    }
    for i in 0..VARIANT {
        add(format!("v{v}-{i}"), variant_dst(v, i));
    }
    extra
}

/// A kernel route's identity as the ledger keys it: (table, destination,
/// metric).
type Key = (u32, String, u32);

/// routerd's routes in the kernel (protocol 122, every table).
fn owned_keys(lab: &Lab) -> Vec<Key> {
    let out = sh(
        lab,
        "ip",
        &["-j", "route", "show", "table", "all", "proto", "122"],
    );
    let mut keys: Vec<Key> = parse_routes(&out)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let table = match r.table.as_deref() {
                None | Some("main") => 254,
                Some(t) => t.parse().unwrap_or(0),
            };
            let dst = if r.dst == "default" {
                "0.0.0.0/0".to_string()
            } else {
                r.dst
            };
            (table, dst, r.metric)
        })
        .collect();
    keys.sort();
    keys
}

/// The ledger's route keys (`routerctl get ledger`).
fn ledger_keys(ledger: &Value) -> Vec<Key> {
    let mut keys: Vec<Key> = ledger["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let k = &e[0];
            (
                u32::try_from(k["table"].as_u64().unwrap_or(0)).unwrap(),
                k["destination"].as_str().unwrap_or_default().to_string(),
                u32::try_from(k["metric"].as_u64().unwrap_or(0)).unwrap(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// The demo's policy routes in place and the blackhole routes exactly
/// the stable ones plus variant `v`'s.
fn bulk_converged(lab: &Lab, v: usize) -> bool {
    let keys = owned_keys(lab);
    let blackholes: std::collections::BTreeSet<&str> = keys
        .iter()
        .map(|(_, d, _)| d.as_str())
        .filter(|d| d.starts_with("10."))
        .collect();
    let routes = sh(lab, "ip", &["route", "show", "table", "all"]);
    blackholes.len() == STABLE + VARIANT
        && (0..STABLE).all(|i| blackholes.contains(stable_dst(i).as_str()))
        && (0..VARIANT).all(|i| blackholes.contains(variant_dst(v, i).as_str()))
        && routes.contains("default via 198.18.1.2 dev wan1 proto 122")
        && routes.contains("table 110")
        && routes.contains("table 120")
}

/// Whether a killed daemon left an intent in its store: it died between
/// sending kernel operations and committing them to the ledger, the window
/// in which, without the intent, its routes would have become orphans.
fn intent_left(dir: &Path) -> bool {
    // sled releases its file lock only when its background threads let go
    // of the previous handle (the killed daemon's, or this test's own from
    // the round before); wait for it rather than fail on a transient lock.
    let path = dir.join("state").join("store");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match routerd_store::Store::open_sled(&path) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("opening the killed daemon's store: {e}"),
        }
    };
    let left = store
        .ledger()
        .unwrap()
        .iter()
        .any(|(k, v)| k == routerd_engine::core::INTENT_KEY && !v.is_null());
    drop(store);
    wait_unlocked(&path.join("db"));
    left
}

/// Waits until nobody holds sled's lock on `db`, so the daemon started
/// next does not find this test's handle still closing.
fn wait_unlocked(db: &Path) {
    use nix::fcntl::{Flock, FlockArg};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let file = std::fs::File::open(db).unwrap();
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                drop(lock);
                return;
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, e)) => panic!("{} stays locked: {e}", db.display()),
        }
    }
}

/// How the kernel's blackhole routes differ from variant `v`'s, for a
/// failure message.
fn bulk_difference(lab: &Lab, v: usize) -> String {
    let want: std::collections::BTreeSet<String> = (0..STABLE)
        .map(stable_dst)
        .chain((0..VARIANT).map(|i| variant_dst(v, i)))
        .collect();
    let have: std::collections::BTreeSet<String> = owned_keys(lab)
        .into_iter()
        .map(|(_, d, _)| d)
        .filter(|d| d.starts_with("10."))
        .collect();
    let extra: Vec<&String> = have.difference(&want).collect();
    let missing: Vec<&String> = want.difference(&have).collect();
    format!(
        "{} routes not wanted (orphans?), e.g. {:?}; {} missing, e.g. {:?}",
        extra.len(),
        &extra[..extra.len().min(3)],
        missing.len(),
        &missing[..missing.len().min(3)]
    )
}

/// A small xorshift generator: random kill points without a dependency,
/// reproducible from the printed seed (`ROUTERD_E2E_SEED`).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn kill_9_at_random_points_leaves_no_orphans_duplicates_or_flaps() {
    let lab = common::lab("rrel7");
    let dir = tempfile::tempdir().unwrap();
    let seed = std::env::var("ROUTERD_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill -9 loop: seed {seed} (ROUTERD_E2E_SEED reproduces the kill points)");
    let mut rng = Rng(seed);
    let configs: Vec<String> = (0..3)
        .map(|v| format!("{}{}", common::DEMO, bulk_extra(v)))
        .collect();
    let cfg = dir.path().join("config.yaml");

    // The first start installs everything (2,000 routes at once); its
    // duration sets the window the kills are spread over.
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(&cfg, &configs[0]).unwrap();
    let t = Instant::now();
    d.start();
    let first = wait_until(
        || bulk_converged(&lab, 0),
        Duration::from_secs(60),
        Duration::from_millis(20),
    )
    .unwrap_or_else(|_| panic!("no convergence; log:\n{}", d.log()));
    let window = (first + first / 2).as_millis() as u64;
    eprintln!(
        "kill -9 loop: first start converged in {} ms; kills spread over 0..{window} ms",
        t.elapsed().as_millis()
    );
    d.kill9();
    // From here on, no stable route may be deleted or added again.
    let monitor = RouteMonitor::start(&lab);
    let mut current = 0usize;
    let (mut before_apply, mut mid_apply, mut after_apply, mut in_window) = (0, 0, 0, 0);
    for round in 0..KILL_ROUNDS {
        // Killed run: a configuration that differs from the kernel's.
        let killed = (current + 1) % 3;
        std::fs::write(&cfg, &configs[killed]).unwrap();
        let base = monitor.count();
        let started = Instant::now();
        d.start();
        // Each third of the rounds aims at one part of the run: anywhere
        // in start-up, inside the apply (after a random number of its
        // 2,000 route changes), and just after the kernel change, where
        // the ledger commit is still to come.
        let point = match round % 3 {
            0 => {
                std::thread::sleep(Duration::from_millis(rng.below(window)));
                "at random"
            }
            // SIGKILL takes effect when the daemon's `sendmsg` returns: a
            // netlink batch is applied whole, so this lands right after
            // the kernel change, before verification and the ledger commit.
            1 => {
                let k = 1 + usize::try_from(rng.below(2 * VARIANT as u64 - 1)).unwrap();
                assert!(
                    monitor.wait_count(base + k, Duration::from_secs(30)),
                    "round {round}: the apply never started; log:\n{}",
                    d.log()
                );
                "inside the apply"
            }
            _ => {
                assert!(
                    monitor.wait_count(base + 2 * VARIANT, Duration::from_secs(30)),
                    "round {round}: the apply never finished; log:\n{}",
                    d.log()
                );
                std::thread::sleep(Duration::from_millis(rng.below(100)));
                "after the kernel change"
            }
        };
        let at = started.elapsed().as_millis();
        d.kill9();
        let intent = intent_left(dir.path());
        in_window += usize::from(intent);
        let keys = owned_keys(&lab);
        let landed = (0..VARIANT)
            .filter(|&i| keys.iter().any(|(_, k, _)| *k == variant_dst(killed, i)))
            .count();
        let gone = (0..VARIANT)
            .filter(|&i| !keys.iter().any(|(_, k, _)| *k == variant_dst(current, i)))
            .count();
        match (landed, gone) {
            (0, 0) => before_apply += 1,
            (VARIANT, VARIANT) => after_apply += 1,
            _ => mid_apply += 1,
        }
        eprintln!(
            "kill -9 loop: round {round}: killed {point} at {at} ms: {landed} of {VARIANT} new routes in, {gone} of {VARIANT} old ones out, {}",
            if intent {
                "intent not yet committed to the ledger"
            } else {
                "no intent pending"
            }
        );
        // Restart with a third configuration: whatever the killed run
        // created and did not commit must go (no orphans), what it removed
        // of the old one must not come back.
        let next = (current + 2) % 3;
        std::fs::write(&cfg, &configs[next]).unwrap();
        d.start();
        let api = Api::new(&d);
        let ok = wait_until(
            || bulk_converged(&lab, next),
            Duration::from_secs(30),
            Duration::from_millis(50),
        );
        assert!(
            ok.is_ok(),
            "round {round} (killed {point} at {at} ms, {landed} of its routes in): no convergence: {}; orphans: {:?}; log:\n{}",
            bulk_difference(&lab, next),
            api.try_get("/get?subject=orphans"),
            d.log()
        );
        let keys = owned_keys(&lab);
        let mut unique = keys.clone();
        unique.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        assert_eq!(unique.len(), keys.len(), "round {round}: duplicate routes");
        let ledger = eventually(&d, "the ledger", Duration::from_secs(5), || {
            let l = api.try_get("/get?subject=ledger")?;
            let lk = ledger_keys(&l);
            let n = lk.len();
            keys.iter()
                .all(|k| lk.contains(k))
                .then_some(lk)
                .ok_or_else(|| format!("{} kernel routes, {n} in the ledger", keys.len()))
        });
        assert_eq!(ledger, keys, "round {round}: ledger and kernel disagree");
        let orphans = api.try_get("/get?subject=orphans").unwrap();
        assert!(
            orphans["routes"].as_array().is_none_or(Vec::is_empty),
            "round {round}: orphans {orphans}"
        );
        d.kill9();
        current = next;
    }
    let text = monitor.stop();
    let stable: std::collections::BTreeSet<String> = (0..STABLE).map(stable_dst).collect();
    let flaps: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().any(|w| stable.contains(w)))
        .collect();
    let changes = text.lines().count();
    assert!(
        flaps.is_empty(),
        "{} stable route changes across restarts, e.g. {:?}",
        flaps.len(),
        &flaps[..flaps.len().min(5)]
    );
    eprintln!(
        "kill -9 loop: {KILL_ROUNDS} rounds; the kernel had none of the new routes at {before_apply} kills, some at {mid_apply}, all at {after_apply}; {in_window} kills landed between the intent and the ledger commit; {changes} route changes seen, none of the {STABLE} stable routes"
    );
}
