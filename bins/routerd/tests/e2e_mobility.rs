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
    cloud.ip(&["route", "add", "192.168.10.50/32", "dev", "clan0"]);
    // The owning side answers ARP for the address on the overlay (what
    // routerd's owning side renders: overlayAnswerDevice), and returns
    // traffic through the on-prem router's overlay address.
    cloud.ip(&["neigh", "add", "proxy", "192.168.10.50", "dev", "vx0"]);
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
