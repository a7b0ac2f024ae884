#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Selective Address Mobility end to end (root only): two sites joined by a
//! VXLAN overlay. The on-prem router runs routerd with a RemoteAddressClaim
//! for 192.168.10.50, a host that lives on the cloud side although the
//! address is inside the on-prem LAN prefix; the cloud side is plain
//! kernel configuration (its local /32 route and the return route). An
//! on-prem client reaches the host by its address as if it were local;
//! when the overlay's health check fails, capture stops (the client gets no
//! ARP answer rather than a black hole) and it returns with the overlay.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use routerd_lab::mobility::{
    ECHO, INVENTORY_PLUGIN, PROBE, parse_probe, router_config, write_exec,
};
use routerd_lab::wait_until;

/// A named namespace, deleted on drop.
struct Ns(String);

impl Ns {
    fn new(name: String) -> Ns {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        run(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        run(&v);
    }
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
    fn sysctl(&self, key: &str, value: &str) {
        let (ok, _) = self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
        assert!(ok, "sysctl {key}={value}");
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `routerd serve` in a namespace; killed (by its pid) on drop.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(ns: &Ns, dir: &Path) -> Daemon {
        let log = std::fs::File::create(dir.join("routerd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(env!("CARGO_BIN_EXE_routerd"))
            .arg("serve")
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(dir.join("routerd.sock"))
            .args(["--resync", "30s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child,
            dir: dir.to_path_buf(),
        }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("routerd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: onprem}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec: {ifname: lan0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: overlay}
      spec: {ifname: vx0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: overlay-hc}
      spec: {target: 10.255.0.2, interface: overlay, protocol: icmp,
             interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: OverlayPeer
      metadata: {name: cloud}
      spec: {role: onprem, nodeID: op1, underlay: {type: route, interface: vx0}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: HybridRoute
      metadata: {name: cloud-net}
      spec: {peerRef: cloud, healthCheckRef: overlay-hc, destinationCIDRs: [10.99.0.0/24]}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: AddressMobilityDomain
      metadata: {name: lan}
      spec: {prefix: 192.168.10.0/24, mode: selective-address, peerRef: cloud}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {name: web}
      spec:
        domainRef: lan
        address: 192.168.10.50/32
        ownerSide: cloud
        capture: {type: proxy-arp, interface: lan}
        delivery: {peerRef: cloud, mode: route}
";

/// How many ARP answers the client gets for `addr` (fresh cache).
fn arp_answers(client: &Ns, addr: &str) -> u32 {
    let _ = client.exec(&["ip", "neigh", "flush", "dev", "c0"]);
    let (_, out) = client.exec(&["arping", "-c", "2", "-w", "3", "-I", "c0", addr]);
    out.lines()
        .find_map(|l| l.strip_prefix("Received "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The two sites: an on-prem client and router (`lan0` 192.168.10.1/24,
/// the client 192.168.10.10 on `c0`), a VXLAN overlay (`vx0`,
/// 10.255.0.0/30) to the cloud router, and the cloud host owning
/// 192.168.10.50 behind it, with the cloud side configured by hand as its
/// own routerd would (local /32 route, overlay answer, return route).
struct Sites {
    tag: u32,
    client: Ns,
    onprem: Ns,
    cloud: Ns,
    host: Ns,
}

fn sites(prefix: &str) -> Sites {
    sites_with(prefix, true)
}

/// [`sites`]; with `cloud_by_hand: false` the cloud router's claim objects
/// (the local /32 route, the overlay answer) are left to a routerd of its
/// own, and only its return route and forwarding are set by hand.
fn sites_with(prefix: &str, cloud_by_hand: bool) -> Sites {
    let tag = std::process::id() % 100_000;
    let client = Ns::new(format!("{prefix}c{tag}"));
    let onprem = Ns::new(format!("{prefix}o{tag}"));
    let cloud = Ns::new(format!("{prefix}k{tag}"));
    let host = Ns::new(format!("{prefix}h{tag}"));

    // On-prem LAN: client 192.168.10.10 next to the router's lan0.
    onprem.ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "c0"]);
    onprem.ip(&["link", "set", "c0", "netns", &client.0]);
    onprem.ip(&["addr", "add", "192.168.10.1/24", "dev", "lan0"]);
    onprem.ip(&["link", "set", "lan0", "up"]);
    client.ip(&["addr", "add", "192.168.10.10/24", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "up"]);

    // Underlay and the VXLAN overlay between the two routers.
    onprem.ip(&["link", "add", "u0", "type", "veth", "peer", "name", "u1"]);
    onprem.ip(&["link", "set", "u1", "netns", &cloud.0]);
    onprem.ip(&["addr", "add", "198.51.100.1/30", "dev", "u0"]);
    onprem.ip(&["link", "set", "u0", "up"]);
    cloud.ip(&["addr", "add", "198.51.100.2/30", "dev", "u1"]);
    cloud.ip(&["link", "set", "u1", "up"]);
    for (ns, local, remote, inner) in [
        (&onprem, "198.51.100.1", "198.51.100.2", "10.255.0.1/30"),
        (&cloud, "198.51.100.2", "198.51.100.1", "10.255.0.2/30"),
    ] {
        ns.ip(&[
            "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote", remote,
            "dstport", "4789",
        ]);
        ns.ip(&["addr", "add", inner, "dev", "vx0"]);
        ns.ip(&["link", "set", "vx0", "up"]);
    }

    // Cloud side (the owner), as its own routerd would set it up: the host
    // 192.168.10.50 on its LAN, a local /32 route to it, the on-prem LAN
    // back over the overlay, forwarding.
    cloud.ip(&["link", "add", "clan0", "type", "veth", "peer", "name", "h0"]);
    cloud.ip(&["link", "set", "h0", "netns", &host.0]);
    cloud.ip(&["addr", "add", "10.99.0.1/24", "dev", "clan0"]);
    cloud.ip(&["link", "set", "clan0", "up"]);
    if cloud_by_hand {
        cloud.ip(&["route", "add", "192.168.10.50/32", "dev", "clan0"]);
        // The owning side answers ARP for the address on the overlay (what
        // routerd's owning side renders: overlayAnswerDevice), and returns
        // traffic through the on-prem router's overlay address.
        cloud.ip(&["neigh", "add", "proxy", "192.168.10.50", "dev", "vx0"]);
    }
    cloud.ip(&[
        "route",
        "add",
        "192.168.10.0/24",
        "via",
        "10.255.0.1",
        "dev",
        "vx0",
    ]);
    cloud.sysctl("net.ipv4.ip_forward", "1");
    host.ip(&["addr", "add", "10.99.0.50/24", "dev", "h0"]);
    host.ip(&["addr", "add", "192.168.10.50/32", "dev", "h0"]);
    host.ip(&["link", "set", "h0", "up"]);
    host.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.99.0.1",
        "src",
        "192.168.10.50",
    ]);

    Sites {
        tag,
        client,
        onprem,
        cloud,
        host,
    }
}

fn fwd(ns: &Ns, dev: &str) -> String {
    ns.exec(&["cat", &format!("/proc/sys/net/ipv4/conf/{dev}/forwarding")])
        .1
        .trim()
        .to_string()
}

fn proxies(ns: &Ns) -> String {
    ns.exec(&["ip", "neigh", "show", "proxy"]).1
}

/// A daemon directory with `config`.
fn workdir(name: &str, tag: u32, config: &str) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("routerd-e2e-{name}-{tag}"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("config.yaml"), config).unwrap();
    tmp
}

/// `GET /get?subject=<Kind/name>` on the daemon's socket: the resource's
/// first item (spec, status, events).
fn get(d: &Daemon, subject: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: serde_json::Value = rt
        .block_on(
            routerd_api::client::Client::new(d.dir.join("routerd.sock"))
                .get::<serde_json::Value>(&format!("/get?subject={}", subject.replace('/', "%2F"))),
        )
        .unwrap_or_default();
    doc["items"][0].clone()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn claimed_address_is_reached_over_the_overlay_and_fenced_by_health() {
    let Sites {
        tag,
        client,
        onprem,
        cloud,
        host: _host,
    } = sites("rdm");
    let tmp = workdir("mobility", tag, CONFIG);
    assert_eq!(fwd(&onprem, "lan0"), "0");

    let daemon = Daemon::start(&onprem, &tmp);
    // The first probe answers, the gate opens (after selection's
    // hysteresis when the first evaluation preceded the first probe).
    let captured = wait_until(
        || arp_answers(&client, "192.168.10.50") > 0,
        Duration::from_secs(60),
        Duration::from_millis(200),
    );
    assert!(
        captured.is_ok(),
        "claimed address never captured; proxies: {}; routes:\n{}forwarding lan0: {}; log:\n{}",
        onprem.exec(&["ip", "neigh", "show", "proxy"]).1,
        onprem
            .exec(&["ip", "-4", "route", "show", "table", "all"])
            .1,
        fwd(&onprem, "lan0"),
        daemon.log()
    );
    assert_eq!(
        arp_answers(&client, "192.168.10.51"),
        0,
        "unclaimed answered"
    );
    assert_eq!(fwd(&onprem, "lan0"), "1");
    let (reached, out) = client.exec(&["ping", "-c", "2", "-W", "2", "192.168.10.50"]);
    assert!(reached, "client does not reach the cloud host: {out}");

    // The overlay fails (the far end stops answering on it): capture stops
    // and the client gets no answer rather than a black hole.
    cloud.ip(&["link", "set", "vx0", "down"]);
    let stopped = wait_until(
        || {
            !onprem
                .exec(&["ip", "neigh", "show", "proxy"])
                .1
                .contains("192.168.10.50")
        },
        Duration::from_secs(15),
        Duration::from_millis(100),
    );
    let Ok(took) = stopped else {
        panic!("capture did not stop; log:\n{}", daemon.log());
    };
    // Recorded in docs/performance.md (no pass/fail on timing here).
    eprintln!(
        "capture stopped {took:?} after the overlay went down (probe interval 1s, unhealthyThreshold 2)"
    );
    assert_eq!(
        arp_answers(&client, "192.168.10.50"),
        0,
        "answered while fenced"
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// [`CONFIG`] with the capture gated on a VirtualAddress that VRRP (an
/// operator's keepalived, played here by `ip addr`) moves between two
/// on-prem routers.
fn vrrp_config() -> String {
    CONFIG.replace(
        "capture: {type: proxy-arp, interface: lan}",
        "capture: {type: proxy-arp, interface: lan, activeWhen: {type: vrrp-master, virtualAddressRef: gw}}",
    ) + "    - apiVersion: net.routerd.net/v1alpha1
      kind: VirtualAddress
      metadata: {name: gw}
      spec: {family: ipv4, interface: lan, address: 192.168.10.254/32, mode: vrrp,
             vrrp: {virtualRouterID: 10, priority: 150, peers: [192.168.10.2]}}
"
}

#[test]
#[ignore = "needs root: network namespaces"]
fn vrrp_master_captures_only_while_this_router_holds_the_virtual_address() {
    let Sites {
        tag,
        client,
        onprem,
        cloud: _cloud,
        host: _host,
    } = sites("rdv");
    let tmp = workdir("mobility-vrrp", tag, &vrrp_config());
    let daemon = Daemon::start(&onprem, &tmp);
    let claim = || get(&daemon, "RemoteAddressClaim/web")["status"].clone();

    // Backup: the overlay is healthy but the virtual address is elsewhere,
    // so the claim waits on the VRRP condition alone and nothing answers.
    let gated = wait_until(
        || {
            claim()["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not hold VirtualAddress \"gw\""))
        },
        Duration::from_secs(60),
        Duration::from_millis(200),
    );
    assert!(
        gated.is_ok(),
        "claim never gated on the VRRP condition: {}\nlog:\n{}",
        claim(),
        daemon.log()
    );
    assert_eq!(claim()["captureStatus"], "Standby");
    assert_eq!(
        get(&daemon, "VirtualAddress/gw")["status"]["phase"],
        "NotHeld"
    );
    assert!(!proxies(&onprem).contains("192.168.10.50"));
    assert_eq!(arp_answers(&client, "192.168.10.50"), 0, "backup answered");

    // This router becomes master (keepalived adds the address): capture
    // starts. The overlay gate may still be in its start-up hysteresis,
    // hence the generous limit; the message says which condition waits.
    onprem.ip(&["addr", "add", "192.168.10.254/32", "dev", "lan0"]);
    let started = wait_until(
        || proxies(&onprem).contains("192.168.10.50"),
        Duration::from_secs(60),
        Duration::from_millis(50),
    );
    assert!(
        started.is_ok(),
        "capture did not start as master: {}\nlog:\n{}",
        claim(),
        daemon.log()
    );
    assert_eq!(
        get(&daemon, "VirtualAddress/gw")["status"]["device"],
        "lan0"
    );
    assert_eq!(claim()["captureStatus"], "Captured");
    assert!(
        arp_answers(&client, "192.168.10.50") > 0,
        "master did not answer"
    );

    // It loses mastership (the address leaves): capture stops in the
    // evaluation that sees the address go.
    onprem.ip(&["addr", "del", "192.168.10.254/32", "dev", "lan0"]);
    let stopped = wait_until(
        || !proxies(&onprem).contains("192.168.10.50"),
        Duration::from_secs(10),
        Duration::from_millis(20),
    );
    let Ok(took) = stopped else {
        panic!(
            "capture did not stop when the address left: {}\nlog:\n{}",
            claim(),
            daemon.log()
        );
    };
    eprintln!("capture stopped {took:?} after the virtual address left");
    assert_eq!(claim()["captureStatus"], "Standby");
    assert_eq!(
        arp_answers(&client, "192.168.10.50"),
        0,
        "answered as backup"
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The daemon's events about the claim and its routes, oldest first, as
/// `time node type detail` lines.
fn claim_timeline(d: &Daemon, node: &str) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: serde_json::Value = rt
        .block_on(
            routerd_api::client::Client::new(d.dir.join("routerd.sock"))
                .get::<serde_json::Value>("/get?subject=events&limit=500"),
        )
        .unwrap_or_default();
    let mut out = Vec::new();
    // Newest first from the store: walk them oldest first, so events of one
    // step keep the order the daemon recorded them in.
    for e in doc["items"].as_array().into_iter().flatten().rev() {
        let name = e["resource"]["name"].as_str().unwrap_or("");
        let ty = e["type"].as_str().unwrap_or("");
        if name != "web" && !name.starts_with("sam-web") {
            continue;
        }
        let a = &e["attributes"];
        let detail = match ty {
            "routerd.mobility.claim.capture" => format!("{} -> {}", a["from"], a["to"]),
            "routerd.mobility.claim.phase" => format!("{} {}", a["phase"], a["reason"]),
            _ => format!("{name} {}", a["device"]),
        };
        out.push((
            e["time"].as_str().unwrap_or("").to_string(),
            format!("{node:6} {ty} {detail}"),
        ));
    }
    out
}

#[test]
#[ignore = "needs root: network namespaces"]
fn owner_flip_moves_capture_and_traffic_follows() {
    let Sites {
        tag,
        client,
        onprem,
        cloud,
        host,
    } = sites_with("rdf", false);
    // The on-prem LAN becomes a switch (a bridge in the client's
    // namespace) with a second host on it: the VM, on-prem at first.
    let vm = Ns::new(format!("rdfm{tag}"));
    client.ip(&["link", "add", "sw", "type", "bridge"]);
    client.ip(&["addr", "flush", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "master", "sw"]);
    client.ip(&["link", "add", "p2", "type", "veth", "peer", "name", "m0"]);
    client.ip(&["link", "set", "m0", "netns", &vm.0]);
    client.ip(&["link", "set", "p2", "master", "sw"]);
    client.ip(&["link", "set", "p2", "up"]);
    client.ip(&["addr", "add", "192.168.10.10/24", "dev", "sw"]);
    client.ip(&["link", "set", "sw", "up"]);
    vm.ip(&["addr", "add", "192.168.10.50/24", "dev", "m0"]);
    vm.ip(&["link", "set", "m0", "up"]);
    // The cloud host has no copy of the address until the VM moves there.
    host.ip(&["addr", "del", "192.168.10.50/32", "dev", "h0"]);

    let tmp = workdir("mobility-flip", tag, "");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let plugin = tmp.join("inventory");
    write_exec(&plugin, INVENTORY_PLUGIN).unwrap();
    write_exec(&tmp.join("echo"), ECHO).unwrap();
    write_exec(&tmp.join("probe"), PROBE).unwrap();
    // One inventory view per router, so the order they learn of the move
    // can be forced (`ROUTERD_E2E_OWNER_LAG_MS`: the cloud, the new owner,
    // learns that much later than the on-prem router, the new capturer).
    let (op_dir, cl_dir) = (tmp.join("onprem"), tmp.join("cloud"));
    for (dir, role, lan, target) in [
        (&op_dir, "onprem", "lan0", "10.255.0.2"),
        (&cl_dir, "cloud", "clan0", "10.255.0.1"),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("owner"), "onprem\n").unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            router_config(role, lan, target, &plugin, &dir.join("owner")),
        )
        .unwrap();
    }
    let lag = std::env::var("ROUTERD_E2E_OWNER_LAG_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    // The kernel answers a proxied ARP request after a random delay of up
    // to `proxy_delay` (0.8 s by default; routerd leaves it alone): part of
    // the loss window. `ROUTERD_E2E_PROXY_DELAY=0` measures without it.
    if let Ok(d) = std::env::var("ROUTERD_E2E_PROXY_DELAY") {
        for (ns, dev) in [
            (&onprem, "lan0"),
            (&onprem, "vx0"),
            (&cloud, "vx0"),
            (&cloud, "clan0"),
        ] {
            ns.sysctl(&format!("net.ipv4.neigh.{dev}.proxy_delay"), &d);
        }
    }
    let d_op = Daemon::start(&onprem, &op_dir);
    let d_cl = Daemon::start(&cloud, &cl_dir);
    let echo = |ns: &Ns, site: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(tmp.join("echo"))
            .arg(site)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut echoes = [echo(&host, "cloud"), echo(&vm, "onprem")];

    // Owned on-prem: the on-prem router routes the address locally and
    // answers for it on the overlay; the cloud router captures it on the
    // cloud LAN (its gate open).
    let claim = |d: &Daemon| get(d, "RemoteAddressClaim/web")["status"].clone();
    let ready = wait_until(
        || {
            claim(&d_cl)["captureStatus"] == "Captured"
                && claim(&d_op)["deliveryRouteName"] == "sam-web-local"
        },
        Duration::from_secs(90),
        Duration::from_millis(200),
    );
    assert!(
        ready.is_ok(),
        "the claim never settled: on-prem {}\ncloud {}\non-prem log:\n{}\ncloud log:\n{}",
        claim(&d_op),
        claim(&d_cl),
        d_op.log(),
        d_cl.log()
    );
    assert_eq!(claim(&d_op)["captureStatus"], "Standby");
    assert!(
        client
            .exec(&["ping", "-c", "1", "-W", "1", "192.168.10.50"])
            .0
    );

    // Probe continuously; two seconds in, the VM moves to the cloud and
    // the inventory says so.
    let prober = Command::new("ip")
        .args(["netns", "exec", &client.0])
        .arg(tmp.join("probe"))
        .arg("9")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let moved_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    vm.ip(&["addr", "del", "192.168.10.50/24", "dev", "m0"]);
    host.ip(&["addr", "add", "192.168.10.50/32", "dev", "h0"]);
    host.ip(&[
        "route",
        "replace",
        "default",
        "via",
        "10.99.0.1",
        "src",
        "192.168.10.50",
    ]);
    let tell = |dir: &Path| {
        std::fs::write(dir.join("owner.new"), "cloud\n").unwrap();
        std::fs::rename(dir.join("owner.new"), dir.join("owner")).unwrap();
    };
    tell(&op_dir);
    if let Some(lag) = lag {
        std::thread::sleep(lag);
    }
    tell(&cl_dir);
    let out = prober.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();

    let (answers, sent) = parse_probe(&text);
    let last_old = answers.iter().rfind(|a| a.site == "onprem");
    let first_new = answers.iter().find(|a| a.site == "cloud");
    let (Some(last_old), Some(first_new)) = (last_old, first_new) else {
        panic!(
            "traffic did not move: {} answers of {sent}; on-prem claim {}\ncloud claim {}\non-prem log:\n{}\ncloud log:\n{}",
            answers.len(),
            claim(&d_op),
            claim(&d_cl),
            d_op.log(),
            d_cl.log()
        );
    };
    // Traffic resumes via the new path (over the overlay to the cloud
    // host) and stays there.
    assert!(
        answers
            .iter()
            .filter(|a| a.at > first_new.at)
            .all(|a| a.site == "cloud"),
        "answers from both sites after the move: {text}"
    );
    let tail = answers.iter().filter(|a| a.at > first_new.at + 1.0).count();
    assert!(tail > 0, "traffic did not resume for good: {text}");
    // Probes sent during the window are partly queued on the way (ARP
    // resolution on the overlay) and answered late, partly dropped.
    let answered: std::collections::BTreeSet<u64> = answers.iter().map(|a| a.seq).collect();
    let unanswered = sent.saturating_sub(answered.len() as u64);
    eprintln!(
        "owner flip: last answer on-prem {:.0} ms after the move, first from the cloud {:.0} ms after it: no answer for {:.0} ms; {unanswered} of {sent} probes (one per 20 ms) never answered; inventory plugin interval 1 s",
        (last_old.at - moved_at) * 1000.0,
        (first_new.at - moved_at) * 1000.0,
        (first_new.at - last_old.at) * 1000.0,
    );

    // Each node's steps: the cloud (new owner, old capturer) installs its
    // local route and stops capturing in one step (the plan puts the route
    // first); the on-prem router starts capturing.
    let st = claim(&d_cl);
    assert_eq!(st["captureStatus"], "Standby", "{st}");
    assert_eq!(st["deliveryRouteName"], "sam-web-local", "{st}");
    assert_eq!(st["overlayAnswerDevice"], "vx0", "{st}");
    assert_eq!(claim(&d_op)["captureStatus"], "Captured");
    let cl_proxies = proxies(&cloud);
    assert!(
        cl_proxies.contains("192.168.10.50 dev vx0") && !cl_proxies.contains("dev clan0"),
        "{cl_proxies}"
    );
    assert!(proxies(&onprem).contains("192.168.10.50 dev lan0"));
    let mut timeline = claim_timeline(&d_op, "onprem");
    timeline.extend(claim_timeline(&d_cl, "cloud"));
    // By time only (stable): within one step the recorded order stays.
    timeline.sort_by(|a, b| a.0.cmp(&b.0));
    for (t, line) in &timeline {
        let after = chrono::DateTime::parse_from_rfc3339(t)
            .map(|x| x.timestamp_micros() as f64 / 1e6 - moved_at)
            .unwrap_or(f64::NAN);
        eprintln!("{t} (move {:+.0} ms) {line}", after * 1000.0);
    }
    let steps: Vec<&String> = timeline.iter().map(|(_, l)| l).collect();
    let at = |f: &dyn Fn(&str) -> bool| steps.iter().rposition(|l| f(l));
    let local = at(&|l| l.starts_with("cloud") && l.contains("installed sam-web-local"));
    let stop = at(&|l| l.starts_with("cloud") && l.contains("\"Captured\" -> \"Standby\""));
    let start = at(&|l| l.starts_with("onprem") && l.contains("\"Standby\" -> \"Captured\""));
    assert!(
        local.is_some() && stop.is_some() && start.is_some() && local <= stop,
        "{steps:#?}"
    );
    for e in &mut echoes {
        let _ = e.kill();
        let _ = e.wait();
    }
    drop(d_op);
    drop(d_cl);
    let _ = std::fs::remove_dir_all(&tmp);
}
