#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Probes of every protocol leave with the source address derived from
//! their candidate, on an uplink that carries two addresses: the kernel
//! alone would pick the primary one. Root only; two namespaces of the
//! test's own, connected by a veth pair, deleted on drop.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use routerd_engine::daemon::{HealthDriver, Observation};
use routerd_engine::health::RuntimeHealth;
use routerd_model::StateSnapshot;

static SEQ: AtomicUsize = AtomicUsize::new(0);

const PRIMARY: &str = "198.51.100.2";
const STATIC: &str = "198.51.100.3";
const PEER: &str = "198.51.100.1";

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!(
            "rdp-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v);
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(args);
        sh(&v)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const CONFIG: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: rdp-wan}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {name: wan-extra}
spec: {interface: wan, address: 198.51.100.3/24}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-tcp}
spec: {target: 198.51.100.1, protocol: tcp, port: 7000, interval: 200ms, timeout: 200ms}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-http}
spec: {target: 198.51.100.1, protocol: http, port: 8080, interval: 200ms, timeout: 200ms}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-dns}
spec: {target: 198.51.100.1, protocol: dns, port: 5353, interval: 200ms, timeout: 200ms}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: hc-icmp}
spec: {target: 198.51.100.1, protocol: icmp, interval: 200ms, timeout: 200ms}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRoutePolicy
metadata: {name: p}
spec:
  mode: priority
  candidates:
  - {name: tcp, interface: wan, mark: 16, table: 100, priority: 100, healthCheck: hc-tcp}
  - {name: http, interface: wan, mark: 16, table: 100, priority: 101, healthCheck: hc-http}
  - {name: dns, interface: wan, mark: 16, table: 100, priority: 102, healthCheck: hc-dns}
  - {name: icmp, interface: wan, mark: 16, table: 100, priority: 103, healthCheck: hc-icmp}
";

/// Sources seen by the peer, per protocol.
#[derive(Default)]
struct Seen {
    tcp: BTreeSet<IpAddr>,
    http: BTreeSet<IpAddr>,
    dns: BTreeSet<IpAddr>,
}

/// TCP, HTTP and DNS listeners in `peer` that record who connects.
fn listen(peer: &Netns, seen: &Arc<Mutex<Seen>>) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for proto in ["tcp", "http", "dns"] {
        let name = peer.0.clone();
        let seen = seen.clone();
        let ready = ready_tx.clone();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            if proto == "dns" {
                let s = UdpSocket::bind((PEER, 5353)).unwrap();
                ready.send(()).unwrap();
                let mut buf = [0u8; 512];
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    seen.lock().unwrap().dns.insert(from.ip());
                }
                return;
            }
            let port = if proto == "tcp" { 7000 } else { 8080 };
            let l = TcpListener::bind((PEER, port)).unwrap();
            ready.send(()).unwrap();
            for conn in l.incoming() {
                // A probe may be gone again before it is looked at.
                let Ok(mut c) = conn else { continue };
                let Ok(from) = c.peer_addr().map(|a| a.ip()) else {
                    continue;
                };
                let mut s = seen.lock().unwrap();
                if proto == "tcp" {
                    s.tcp.insert(from);
                } else {
                    s.http.insert(from);
                    drop(s);
                    let mut buf = [0u8; 1024];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(b"HTTP/1.0 204 No Content\r\n\r\n");
                }
            }
        });
    }
    for _ in 0..3 {
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}

/// ICMP echo requests namespace `peer` received from `src`, counted by
/// nftables.
fn icmp_from(peer: &str, src: &str) -> u64 {
    let out = sh(&[
        "ip", "netns", "exec", peer, "nft", "list", "chain", "inet", "rdp", "in",
    ]);
    out.lines()
        .find(|l| l.contains(&format!("ip saddr {src} ")))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root: network namespaces"]
fn probes_of_every_protocol_leave_with_the_derived_source() {
    let router = Netns::new("r");
    let peer = Netns::new("p");
    router.ip(&[
        "link", "add", "rdp-wan", "type", "veth", "peer", "name", "rdp-up", "netns", &peer.0,
    ]);
    router.ip(&["addr", "add", &format!("{PRIMARY}/24"), "dev", "rdp-wan"]);
    router.ip(&["addr", "add", &format!("{STATIC}/24"), "dev", "rdp-wan"]);
    router.ip(&["link", "set", "rdp-wan", "up"]);
    peer.ip(&["addr", "add", &format!("{PEER}/24"), "dev", "rdp-up"]);
    peer.ip(&["link", "set", "rdp-up", "up"]);
    peer.exec(&[
        "nft",
        &format!(
            "add table inet rdp; add chain inet rdp in {{ type filter hook input priority 0; }}; \
             add rule inet rdp in ip saddr {PRIMARY} icmp type echo-request counter; \
             add rule inet rdp in ip saddr {STATIC} icmp type echo-request counter"
        ),
    ]);
    // What the kernel picks on its own: the primary address.
    let route = router.exec(&["ip", "route", "get", PEER]);
    assert!(route.contains(&format!("src {PRIMARY}")), "{route}");

    let seen = Arc::new(Mutex::new(Seen::default()));
    listen(&peer, &seen);

    let (l, d) = routerd_model::load_and_validate(&[("c", CONFIG)]);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let effective = l.resources;
    let router_path = format!("/run/netns/{}", router.0);
    let seen_r = seen.clone();
    let peer_name = peer.0.clone();
    let before = std::thread::spawn(move || {
        let fd = std::fs::File::open(router_path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut health = RuntimeHealth::default();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Observation>(1024);
            health.configure(&effective, &StateSnapshot::new(), tx.clone());
            assert!(!health.stale(&effective), "nothing moved yet");
            let peer = peer_name.as_str();
            let deadline = Instant::now() + Duration::from_secs(20);
            let done = |s: &Seen, peer: &str, src: &str| {
                let src: IpAddr = src.parse().unwrap();
                s.tcp.contains(&src)
                    && s.http.contains(&src)
                    && s.dns.contains(&src)
                    && icmp_from(peer, &src.to_string()) > 0
            };
            while !done(&seen_r.lock().unwrap(), peer, STATIC) {
                assert!(
                    Instant::now() < deadline,
                    "probes from {STATIC} never arrived"
                );
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
            }
            let before = (
                std::mem::take(&mut *seen_r.lock().unwrap()),
                icmp_from(peer, PRIMARY),
            );
            // The static address goes away: the derived source is stale,
            // and the checks configured again probe from the primary.
            Command::new("ip")
                .args(["addr", "del", &format!("{STATIC}/24"), "dev", "rdp-wan"])
                .status()
                .unwrap();
            assert!(health.stale(&effective), "a vanished source is stale");
            health.configure(&effective, &StateSnapshot::new(), tx);
            assert!(!health.stale(&effective));
            let deadline = Instant::now() + Duration::from_secs(20);
            while !done(&seen_r.lock().unwrap(), peer, PRIMARY) {
                assert!(
                    Instant::now() < deadline,
                    "probes from {PRIMARY} never arrived"
                );
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
            }
            before
        })
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (seen_before, icmp_primary_before) = before;
    let only: BTreeSet<IpAddr> = [STATIC.parse().unwrap()].into();
    assert_eq!(seen_before.tcp, only, "tcp");
    assert_eq!(seen_before.http, only, "http");
    assert_eq!(seen_before.dns, only, "dns");
    assert_eq!(icmp_primary_before, 0, "no echo request from the primary");
}
