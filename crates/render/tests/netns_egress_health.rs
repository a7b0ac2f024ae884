//! EgressRouter health in the kernel (issue #15): when selection publishes
//! a rule's destination as unhealthy, the replaced nft table sends new
//! connections to the fallback, while a connection established to the old
//! destination keeps its translation (conntrack decided it at the first
//! packet) and keeps working until it closes. Runs in private network
//! namespaces only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_render::{DesiredState, Ledger, Ownership, ReconcileOptions, reconcile, render};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A named namespace, deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("rdh{}-{n}{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v)
    }
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        std::thread::spawn(move || {
            netns::enter(&name).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serves `name <peer>` then `name pong` per line, on every connection.
fn serve(ns: &Ns, name: &'static str, at: &str) {
    let at: SocketAddr = at.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let n = ns.0.clone();
    std::thread::spawn(move || {
        netns::enter(&n).unwrap();
        let l = TcpListener::bind(at).unwrap();
        tx.send(()).unwrap();
        while let Ok((s, peer)) = l.accept() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = writeln!(w, "{name} {}", peer.ip());
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let _ = writeln!(w, "{name} pong");
                    line.clear();
                }
            });
        }
    });
    rx.recv().unwrap();
}

const CONFIG: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: web}
spec: {target: 192.0.2.7, protocol: tcp, port: 80}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: er}
spec:
  networkInterface: {macvlan: {master: ext0}}
  addresses: [{ip: 192.0.2.10/24}]
  listen: {addresses: [10.1.0.1]}
  redirect:
    redirectRules:
      - {destinationIP: 192.0.2.7, port: 8080, targetPort: 80, protocol: TCP, healthCheck: web}
    fallbackIP: 192.0.2.9
";

/// What selection would publish with the check in `phase` (the golden
/// cases' clock: NOW is 09:00:00, the result is 5 s old).
fn desired(phase: &str) -> DesiredState {
    let (loaded, diags) = load_and_validate(&[("c.yaml", CONFIG)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let failed = if phase == "Healthy" { 0 } else { 3 };
    let mut state: StateSnapshot = serde_yaml::from_str(&format!(
        "net.routerd.net/v1alpha1/HealthCheck/web: {{phase: {phase}, consecutiveFailed: {failed}, lastCheckedAt: \"2026-11-21T08:59:55Z\"}}\n"
    ))
    .unwrap();
    common::select_missing(&loaded.resources, &mut state);
    let r = render(&loaded.resources, &state);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    r.desired
}

fn hello(c: &Ns) -> String {
    c.run(|| {
        let s =
            TcpStream::connect_timeout(&"10.1.0.1:8080".parse().unwrap(), Duration::from_secs(2))
                .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim().to_string()
    })
}

/// client ─ router (lan0 10.1.0.1; bridge ext0 with the reserved
/// 192.0.2.10, set by hand until the macvlan is created) ─┬─ d 192.0.2.7
///                                                        └─ fb 192.0.2.9
#[test]
#[ignore = "needs root: network namespaces"]
fn an_unhealthy_destination_falls_back_for_new_connections_only() {
    let c = Ns::new("c");
    let r = Ns::new("r");
    let d = Ns::new("d");
    let fb = Ns::new("f");
    sh(&[
        "ip", "link", "add", "eth0", "netns", &c.0, "type", "veth", "peer", "name", "lan0",
        "netns", &r.0,
    ]);
    c.ip(&["addr", "add", "10.1.0.2/24", "dev", "eth0"]);
    c.ip(&["link", "set", "eth0", "up"]);
    r.ip(&["addr", "add", "10.1.0.1/24", "dev", "lan0"]);
    r.ip(&["link", "set", "lan0", "up"]);
    r.ip(&["link", "add", "ext0", "type", "bridge"]);
    r.ip(&["addr", "add", "192.0.2.10/24", "dev", "ext0"]);
    r.ip(&["link", "set", "ext0", "up"]);
    r.run(|| sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
    for (ns, port, addr) in [(&d, "pd", "192.0.2.7/24"), (&fb, "pf", "192.0.2.9/24")] {
        sh(&[
            "ip", "link", "add", "eth0", "netns", &ns.0, "type", "veth", "peer", "name", port,
            "netns", &r.0,
        ]);
        ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        r.ip(&["link", "set", port, "master", "ext0", "up"]);
    }
    serve(&d, "d", "192.0.2.7:80");
    // The fallback keeps the client's port (OpenShift's fallback DNAT).
    serve(&fb, "fb", "192.0.2.9:8080");

    let healthy = desired("Healthy");
    let unhealthy = desired("Unhealthy");
    let mut ledger = Ledger::default();
    let apply = |desired: DesiredState, mut ledger: Ledger| {
        r.run(move || {
            let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
            let o =
                reconcile(&mut dp, &desired, &mut ledger, &ReconcileOptions::default()).unwrap();
            assert!(o.faults.is_empty(), "{:?}", o.faults);
            ledger
        })
    };
    ledger = apply(healthy, ledger);
    assert_eq!(
        hello(&c),
        "d 192.0.2.10",
        "healthy: redirected from the reserved address"
    );

    // A connection established while the destination is healthy.
    let est = c.run(|| {
        let s =
            TcpStream::connect_timeout(&"10.1.0.1:8080".parse().unwrap(), Duration::from_secs(2))
                .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    });
    let mut r_est = BufReader::new(est.try_clone().unwrap());
    let mut w_est = est.try_clone().unwrap();
    let mut line = String::new();
    r_est.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "d 192.0.2.10");

    // The check fails: the table is replaced without the port's rule.
    ledger = apply(unhealthy, ledger);
    let table = r.run(|| sh(&["nft", "list", "table", "ip", "routerd_egress_er"]));
    assert!(!table.contains("dport 8080"), "{table}");
    assert_eq!(
        hello(&c),
        "fb 192.0.2.10",
        "new connections meet the fallback"
    );

    // The established connection still reaches the old destination.
    for _ in 0..3 {
        writeln!(w_est, "ping").unwrap();
        line.clear();
        r_est.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "d pong", "the established connection was cut");
    }
    drop(r_est);
    drop(w_est);
    drop(est);
    // Closed: the next connection from the client falls back too.
    assert_eq!(hello(&c), "fb 192.0.2.10");
    // Removing the router removes its table.
    apply(DesiredState::default(), ledger);
    let tables = r.run(|| sh(&["nft", "list", "tables"]));
    assert!(!tables.contains("routerd_egress_er"), "{tables}");
}
