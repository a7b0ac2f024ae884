#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end test of a plugin's dynamic part in the kernel (root only): the
//! real `routerd serve` in the lab's router namespace runs the real
//! `examples/plugins/cloud-inventory.py`. The plugin's part masks a static
//! fallback route (the fallback leaves the kernel, the plugin's route takes
//! its place); when the plugin stops delivering, the part is kept until it
//! expires and then the static route returns by itself.
//!
//! The in-memory version of the same scenario is
//! `crates/engine/tests/plugin_mask.rs`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::Daemon;
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, Uplink, parse_routes};
use serde_json::Value;

const VPC: &str = "10.40.0.0/16";
const SOURCE: &str = "Plugin/cloud-inventory";
/// Lifetime of each of the plugin's results (`PLUGIN_TTL`). The plugin
/// truncates `observedAt` to whole seconds, so each accepted part lives 3 to
/// 4 s from its run; runs come every second, which leaves a healthy plugin at
/// least 2 s of margin, and a failing plugin's last part is gone 3 to 4 s
/// after its last good run.
const TTL_SECS: i64 = 4;

/// Every route to the VPC prefix in every table of the router, as
/// `DST via GW dev DEV metric M proto P table T`, sorted.
fn vpc_routes(lab: &Lab) -> Vec<String> {
    let out = match lab.exec(
        Node::Router,
        "ip",
        ["-j", "route", "show", "table", "all", "exact", VPC],
    ) {
        Ok(out) => out,
        Err(e) => return vec![format!("<ip route failed: {e}>")],
    };
    let routes = match parse_routes(&out) {
        Ok(r) => r,
        Err(e) => return vec![format!("<unparsable ip -j route output: {e}>")],
    };
    let mut v: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{} via {} dev {} metric {} proto {} table {}",
                r.dst,
                r.gateway.map_or_else(|| "-".to_owned(), |g| g.to_string()),
                r.dev.as_deref().unwrap_or("-"),
                r.metric,
                r.protocol.as_deref().unwrap_or("-"),
                r.table.as_deref().unwrap_or("main"),
            )
        })
        .collect();
    v.sort();
    v
}

/// The kernel route routerd installs for `metric` through `uplink`
/// (protocol 122 marks routerd's routes).
fn route_via(uplink: Uplink, metric: u32) -> String {
    format!(
        "{VPC} via {} dev {} metric {metric} proto 122 table main",
        uplink.gateway(),
        uplink.router_if()
    )
}

/// Polls every 20 ms until the routes to the VPC are exactly `want`; returns
/// the time it took, or the last routes seen once `limit` has passed.
fn wait_routes(lab: &Lab, want: &[String], limit: Duration) -> Result<Duration, Vec<String>> {
    let t = Instant::now();
    loop {
        let got = vpc_routes(lab);
        if got == want {
            return Ok(t.elapsed());
        }
        if t.elapsed() >= limit {
            return Err(got);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces `path` atomically, so a plugin run never reads a half-written file.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Api {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Api {
    fn new(socket: &Path) -> Self {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: Client::new(socket),
        }
    }

    fn try_get(&self, path: &str) -> Result<Value, String> {
        self.rt
            .block_on(self.client.get::<Value>(path))
            .map_err(|e| format!("GET {path}: {e:?}"))
    }

    fn get(&self, path: &str) -> Value {
        self.try_get(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The plugin's stored parts (not rejected), oldest generation first.
    fn parts(&self) -> Vec<Value> {
        let doc = self.get("/dynamic?source=Plugin%2Fcloud-inventory");
        let mut v: Vec<Value> = doc["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["part"]["spec"]["source"] == SOURCE && p["state"] != "rejected")
            .collect();
        v.sort_by_key(|p| p["part"]["spec"]["generation"].as_i64().unwrap_or(0));
        v
    }

    /// The newest generation and its record.
    fn newest_part(&self) -> Option<(i64, Value)> {
        self.parts().pop().map(|p| {
            let g = p["part"]["spec"]["generation"].as_i64().unwrap_or(0);
            (g, p)
        })
    }

    /// Names of the effective config's `cloud-*` IPv4Routes, sorted.
    /// Effective cloud routes: masked ones are listed too, as
    /// `Suppressed`, and are left out here.
    fn effective_cloud_routes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.get("/get?subject=IPv4Route")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["status"]["phase"] != "Suppressed")
            .filter_map(|r| r["name"].as_str())
            .filter(|n| n.starts_with("cloud-"))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }

    fn last_event_id(&self) -> u64 {
        self.get("/events?since-id=0&limit=1")["lastId"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Events of `topic` after `since`.
    fn events(&self, topic: &str, since: u64) -> Vec<Value> {
        self.get(&format!(
            "/events?since-id={since}&topic={topic}&limit=1000"
        ))["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn expires_at(part: &Value) -> DateTime<Utc> {
    let s = part["part"]["spec"]["expiresAt"]
        .as_str()
        .unwrap_or_else(|| panic!("part without expiresAt: {part}"));
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Waits (bounded) for `check` and returns its value; panics with `what`
/// and the daemon log otherwise.
fn eventually<T>(
    d: &Daemon<'_>,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            t.elapsed() < limit,
            "{what} not seen within {limit:?}; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_plugin_mask_hides_the_static_fallback_in_the_kernel_until_its_part_expires() {
    let test_start = Instant::now();
    let lab = common::lab("rplug");
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
    // No inventory yet: every plugin run fails, so no part exists.
    let inventory = dir.path().join("inventory.json");
    let (wan1, wan2) = (Uplink::Wan1, Uplink::Wan2);
    let extra = format!(
        r#"    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {{name: cloud-fallback}}
      spec: {{destination: {VPC}, device: {dev2}, gateway: {gw2}, metric: 200}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: cloud-inventory}}
      spec:
        executable: {plugin}
        timeout: 5s
        env: {{OVERLAY_DEVICE: {dev1}, FALLBACK_ROUTE: cloud-fallback, PLUGIN_TTL: {TTL_SECS}s, CLOUD_INVENTORY: {inventory}}}
        triggers: [{{type: interval, every: 1s}}]
    - apiVersion: config.routerd.net/v1alpha1
      kind: DynamicOverridePolicy
      metadata: {{name: allow-mask}}
      spec:
        allow:
          - source: {SOURCE}
            operations: [mask]
            targets: [{{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: cloud-fallback}}]
"#,
        dev1 = wan1.router_if(),
        dev2 = wan2.router_if(),
        gw2 = wan2.gateway(),
        plugin = plugin.display(),
        inventory = inventory.display(),
    );
    let fallback = vec![route_via(wan2, 200)];
    let overlay = vec![route_via(wan1, 50)];

    let mut d = Daemon::new(&lab, dir.path(), &extra);
    d.start();
    let api = Api::new(&d.socket());

    // 1. The plugin runs and fails (no inventory): the static fallback is
    //    the only route to the VPC.
    // (The socket may not be up yet; until it is, requests fail.)
    eventually(&d, "a failed plugin run", Duration::from_secs(20), || {
        let ev = api.try_get("/events?since-id=0&topic=routerd.plugin.run.failed&limit=1");
        ev.ok()?["items"].as_array()?.first().map(drop)
    });
    let r = wait_routes(&lab, &fallback, Duration::from_secs(10));
    assert!(
        r.is_ok(),
        "static fallback not installed while the plugin fails: {r:?}; log:\n{}",
        d.log()
    );
    assert!(api.newest_part().is_none(), "{:?}", api.parts());
    assert_eq!(api.effective_cloud_routes(), ["cloud-fallback"]);

    // 2. The inventory appears: the plugin's part masks the fallback, which
    //    leaves the kernel, and adds the route through wan1.
    write_atomic(
        &inventory,
        &format!(
            r#"{{"vpcs": [{{"name": "cloud-vpc", "cidr": "{VPC}", "gateway": "{}"}}]}}"#,
            wan1.gateway()
        ),
    );
    let mask_took = wait_routes(&lab, &overlay, Duration::from_secs(10))
        .unwrap_or_else(|got| panic!("mask not applied in the kernel: {got:?}; log:\n{}", d.log()));
    let (first_gen, part) = api
        .newest_part()
        .expect("no part while the mask is applied");
    assert_eq!(part["state"], "active", "{part}");
    let spec = &part["part"]["spec"];
    assert_eq!(spec["directives"][0]["op"], "mask", "{part}");
    assert_eq!(
        spec["directives"][0]["target"]["name"], "cloud-fallback",
        "{part}"
    );
    assert_eq!(spec["resources"][0]["spec"]["destination"], VPC, "{part}");
    assert_eq!(api.effective_cloud_routes(), ["cloud-vpc"]);
    let masked = api.get("/get?subject=IPv4Route/cloud-fallback");
    assert_eq!(
        masked["items"][0]["status"]["phase"], "Suppressed",
        "{masked}"
    );

    // While the plugin keeps delivering, its refreshed parts keep the mask
    // for longer than one TTL, without the fallback ever coming back.
    let hold = Duration::from_secs(u64::try_from(TTL_SECS).unwrap() + 1);
    let t = Instant::now();
    while t.elapsed() < hold {
        let got = vpc_routes(&lab);
        assert_eq!(
            got,
            overlay,
            "route changed {:?} into the masked period; log:\n{}",
            t.elapsed(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (held_gen, _) = api.newest_part().unwrap();
    assert!(
        held_gen > first_gen,
        "the plugin's part was not refreshed (generation {first_gen} -> {held_gen})"
    );

    // 3. The plugin stops delivering (the inventory is garbage, every run
    //    fails). Its last part stays until it expires, then the static
    //    fallback returns by itself.
    let cursor = api.last_event_id();
    write_atomic(&inventory, "not json");
    let restore_took = wait_routes(&lab, &fallback, Duration::from_secs(15))
        .unwrap_or_else(|got| panic!("static fallback did not return: {got:?}; log:\n{}", d.log()));
    let restored_at = Utc::now();
    let (last_gen, last) = api.newest_part().unwrap();
    let expiry = expires_at(&last);
    assert!(
        restored_at >= expiry,
        "fallback returned at {restored_at} before the last part (generation {last_gen}) expired at {expiry}"
    );
    let late = restored_at - expiry;
    assert!(
        late < chrono::Duration::seconds(2),
        "fallback returned {late} after the last part expired at {expiry} (expiry not acted on promptly)"
    );
    assert!(
        !api.events("routerd.plugin.run.failed", cursor).is_empty(),
        "no failed plugin run after the inventory broke"
    );

    // 4. The control socket agrees: the effective config has the fallback
    //    back and the plugin's route gone, and the plugin's newest stored
    //    part is past its expiry; nothing newer replaced it.
    assert_eq!(api.effective_cloud_routes(), ["cloud-fallback"]);
    let (gen_after, part) = api.newest_part().unwrap();
    assert_eq!(gen_after, last_gen, "{part}");
    assert!(expires_at(&part) <= Utc::now(), "{part}");
    // `dynamic list` explains it: the newest part is labelled `expired` and
    // no part is left `active` (the labels are written right after the step
    // that applied the expiry, so allow that step a moment to finish).
    let deadline = Instant::now() + Duration::from_secs(2);
    let labels = loop {
        let labels: Vec<(i64, String)> = api
            .parts()
            .iter()
            .map(|p| {
                (
                    p["part"]["spec"]["generation"].as_i64().unwrap_or(0),
                    p["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let settled = labels.last().is_some_and(|(_, s)| s == "expired")
            && labels.iter().all(|(_, s)| s != "active");
        if settled || Instant::now() > deadline {
            break labels;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        labels.last().map(|(g, s)| (*g, s.as_str())),
        Some((last_gen, "expired")),
        "{labels:?}"
    );
    assert!(labels.iter().all(|(_, s)| s != "active"), "{labels:?}");

    // The fallback stays.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(vpc_routes(&lab), fallback, "log:\n{}", d.log());

    d.stop();
    eprintln!(
        "plugin mask e2e: mask applied {} ms after the inventory appeared; the plugin delivered {} generations; \
         fallback restored {} ms after the plugin broke ({} ms after expiry at {expiry}); total {} ms",
        mask_took.as_millis(),
        last_gen - first_gen + 1,
        restore_took.as_millis(),
        late.num_milliseconds(),
        test_start.elapsed().as_millis()
    );
}
