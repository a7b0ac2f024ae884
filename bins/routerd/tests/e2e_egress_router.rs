#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end EgressRouter in a namespace lab (root only), against the real
//! `routerd serve`.
//!
//! ```text
//! client 192.168.50.10 ── lan0 router egr0 192.168.12.5 ── gw 192.168.12.1 ─┬─ dst  10.0.0.99, 203.0.113.26, 203.0.113.27
//!                               └ rde-… (macvlan on egr0,                   └─ fb   203.0.113.25 (fallback)
//!                                 reserved 192.168.12.99)
//! ```
//!
//! The gateway has no route to the client's LAN: only redirected traffic
//! that leaves from the reserved address (source NAT) gets answers. The
//! OpenShift YAML of seed 001 is loaded unchanged (its master is inferred
//! from the Interface `egress-net`, whose subnet holds the reserved
//! address); the IPv6 test uses routerd's apiVersion with a fallback.
//! SCTP is rendered and listed only: this kernel has no SCTP module, so
//! no SCTP association can be opened here.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, lab, sh};
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, wait_until};
use serde_json::Value;

/// Seed 001's `egress-router-redirect` example, unchanged.
const SEED: &str =
    include_str!("../../../crates/render/tests/data/seed001-egress-router-redirect.yaml");

const HEAD: &str = "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: egress}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: lan}
      spec: {ifname: lan0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: egress-net}
      spec: {ifname: egr0}
";

const V6: &str = "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRouter
      metadata: {name: er6}
      spec:
        networkInterface: {macvlan: {master: egr0, mode: Bridge}}
        addresses: [{ip: \"2001:db8:12::99/64\", gateway: \"2001:db8:12::1\"}]
        listen: {interfaces: [lan0]}
        redirect:
          redirectRules:
            - {destinationIP: \"2001:db8:26::26\", port: 8080, targetPort: 80, protocol: TCP}
            - {destinationIP: \"2001:db8:26::26\", port: 5353, targetPort: 53, protocol: udp}
            - {destinationIP: \"2001:db8:26::26\", port: 9, protocol: SCTP}
          fallbackIP: \"2001:db8:25::25\"
";

/// Namespaces of the far side, deleted on drop.
struct Far(Vec<String>);

impl Far {
    fn ns(&self, role: &str) -> String {
        self.0.iter().find(|n| n.ends_with(role)).cloned().unwrap()
    }
}

impl Drop for Far {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
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

fn ipn(ns: &str, args: &[&str]) {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(args);
    run(&v);
}

/// The gateway, destination and fallback namespaces, wired to the lab's
/// router through `egr0` (the master).
fn far_side(lab: &Lab, prefix: &str) -> Far {
    let rtr = lab.ns(Node::Router).to_string();
    let far = Far(["gw", "dst", "fb"]
        .iter()
        .map(|r| format!("{prefix}-{}-{r}", std::process::id()))
        .collect());
    for n in &far.0 {
        let _ = Command::new("ip").args(["netns", "del", n]).output();
        run(&["ip", "netns", "add", n]);
        ipn(n, &["link", "set", "lo", "up"]);
    }
    let (gw, dst, fb) = (far.ns("gw"), far.ns("dst"), far.ns("fb"));
    let pair = |a: &str, an: &str, b: &str, bn: &str| {
        run(&[
            "ip", "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b,
        ]);
        ipn(a, &["link", "set", an, "up"]);
        ipn(b, &["link", "set", bn, "up"]);
    };
    pair(&rtr, "egr0", &gw, "eth0");
    pair(&gw, "eth1", &dst, "eth0");
    pair(&gw, "eth2", &fb, "eth0");
    run(&[
        "ip",
        "netns",
        "exec",
        &rtr,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.forwarding=1",
    ]);
    for n in [&gw, &dst, &fb] {
        run(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
        ]);
    }
    run(&[
        "ip",
        "netns",
        "exec",
        &gw,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &gw,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.forwarding=1",
    ]);
    // The master's own address: the subnet the reserved address is in.
    ipn(&rtr, &["addr", "add", "192.168.12.5/24", "dev", "egr0"]);
    ipn(
        &rtr,
        &["addr", "add", "2001:db8:12::5/64", "dev", "egr0", "nodad"],
    );
    ipn(&gw, &["addr", "add", "192.168.12.1/24", "dev", "eth0"]);
    ipn(
        &gw,
        &["addr", "add", "2001:db8:12::1/64", "dev", "eth0", "nodad"],
    );
    ipn(&gw, &["addr", "add", "10.99.0.1/30", "dev", "eth1"]);
    ipn(&gw, &["addr", "add", "10.98.0.1/30", "dev", "eth2"]);
    ipn(
        &gw,
        &["addr", "add", "2001:db8:99::1/64", "dev", "eth1", "nodad"],
    );
    ipn(
        &gw,
        &["addr", "add", "2001:db8:98::1/64", "dev", "eth2", "nodad"],
    );
    ipn(&dst, &["addr", "add", "10.99.0.2/30", "dev", "eth0"]);
    ipn(
        &dst,
        &["addr", "add", "2001:db8:99::2/64", "dev", "eth0", "nodad"],
    );
    ipn(&fb, &["addr", "add", "10.98.0.2/30", "dev", "eth0"]);
    ipn(
        &fb,
        &["addr", "add", "2001:db8:98::2/64", "dev", "eth0", "nodad"],
    );
    for a in [
        "10.0.0.99/32",
        "203.0.113.26/32",
        "203.0.113.27/32",
        "2001:db8:26::26/128",
    ] {
        ipn(&dst, &["addr", "add", a, "dev", "lo"]);
    }
    for a in ["203.0.113.25/32", "2001:db8:25::25/128"] {
        ipn(&fb, &["addr", "add", a, "dev", "lo"]);
    }
    for a in ["10.0.0.99/32", "203.0.113.26/32", "203.0.113.27/32"] {
        ipn(&gw, &["route", "add", a, "via", "10.99.0.2"]);
    }
    ipn(
        &gw,
        &[
            "route",
            "add",
            "2001:db8:26::26/128",
            "via",
            "2001:db8:99::2",
        ],
    );
    ipn(
        &gw,
        &["route", "add", "203.0.113.25/32", "via", "10.98.0.2"],
    );
    ipn(
        &gw,
        &[
            "route",
            "add",
            "2001:db8:25::25/128",
            "via",
            "2001:db8:98::2",
        ],
    );
    // No route to the client's LAN anywhere on this side.
    ipn(&dst, &["route", "add", "default", "via", "10.99.0.1"]);
    ipn(
        &dst,
        &["-6", "route", "add", "default", "via", "2001:db8:99::1"],
    );
    ipn(&fb, &["route", "add", "default", "via", "10.98.0.1"]);
    ipn(
        &fb,
        &["-6", "route", "add", "default", "via", "2001:db8:98::1"],
    );
    far
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        routerd_render::linux::netns::enter(&ns).expect("setns");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A TCP server at `at` in `ns` answering each connection with
/// "<its local address> <the peer's address>".
fn tcp_server(ns: &str, at: &str) {
    let at: SocketAddr = at.parse().unwrap();
    let l = in_ns(ns, move || TcpListener::bind(at).unwrap());
    std::thread::spawn(move || {
        while let Ok((mut s, peer)) = l.accept() {
            let local = s.local_addr().unwrap();
            let _ = writeln!(s, "{local} {}", peer.ip());
        }
    });
}

/// The UDP twin of [`tcp_server`].
fn udp_server(ns: &str, at: &str) {
    let at: SocketAddr = at.parse().unwrap();
    let s = in_ns(ns, move || UdpSocket::bind(at).unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = s.recv_from(&mut buf) {
            let local = s.local_addr().unwrap();
            let _ = s.send_to(format!("{local} {}", peer.ip()).as_bytes(), peer);
        }
    });
}

/// What a TCP connection from the client to `to` reads, or the error.
fn tcp_ask(lab: &Lab, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(lab.ns(Node::Client), move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_string())
    })
}

/// What a UDP datagram from the client to `to` gets back, or the error
/// (an ICMP port unreachable is ECONNREFUSED on a connected socket).
fn udp_ask(lab: &Lab, to: &str) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_ns(lab.ns(Node::Client), move || {
        let any: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let s = UdpSocket::bind(any)?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send(b"hello")?;
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

fn status(d: &Daemon<'_>, name: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: Value = rt
        .block_on(
            Client::new(d.socket()).get::<Value>(&format!("/get?subject=EgressRouter%2F{name}")),
        )
        .unwrap_or_default();
    doc["items"][0]["status"].clone()
}

fn condition(st: &Value, t: &str) -> String {
    st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn wait(what: &str, lab: &Lab, d: &Daemon<'_>, f: impl FnMut() -> bool) {
    wait_until(f, Duration::from_secs(20), Duration::from_millis(100)).unwrap_or_else(|_| {
        panic!(
            "{what} never happened; links:\n{}\nrules:\n{}\nlog:\n{}",
            sh(lab, "ip", &["-d", "addr"]),
            sh(lab, "nft", &["list", "ruleset"]),
            d.log()
        )
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_openshift_seed_yaml_redirects_from_the_reserved_address_and_refuses_the_rest() {
    let lab = lab("rer4");
    let far = far_side(&lab, "rer4");
    let dst = far.ns("dst");
    tcp_server(&dst, "203.0.113.26:80");
    tcp_server(&dst, "203.0.113.27:443");
    udp_server(&dst, "10.0.0.99:80");
    // A host service on an unmapped port: the refusal must come from the
    // EgressRouter's rule, not from "nothing listens".
    let host = in_ns(lab.ns(Node::Router), || {
        TcpListener::bind("0.0.0.0:9999").unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), format!("{HEAD}---\n{SEED}")).unwrap();
    d.start();
    let name = "egress-router-redirect";
    wait("Available", &lab, &d, || {
        condition(&status(&d, name), "Available") == "True"
    });
    let st = status(&d, name);
    assert_eq!(st["master"], "egr0", "inferred: {st}");
    assert!(
        st["masterInferred"]
            .as_str()
            .is_some_and(|m| m.contains("Interface/egress-net carries 192.168.12.5/24")),
        "{st}"
    );
    let dev = st["device"].as_str().unwrap().to_string();
    let shown = sh(&lab, "ip", &["-d", "addr", "show", "dev", &dev]);
    assert!(
        shown.contains("macvlan mode bridge") && shown.contains("inet 192.168.12.99/24"),
        "{shown}"
    );
    // main is untouched: no prefix route of the reserved address there.
    let main = sh(&lab, "ip", &["route", "show", "table", "main"]);
    assert!(!main.contains(&dev), "{main}");

    // TCP and UDP redirects reach their destination and targetPort, from
    // the reserved address.
    wait("the TCP redirect", &lab, &d, || {
        tcp_ask(&lab, "192.168.50.1:8080").is_ok()
    });
    assert_eq!(
        tcp_ask(&lab, "192.168.50.1:8080").unwrap(),
        "203.0.113.26:80 192.168.12.99"
    );
    assert_eq!(
        tcp_ask(&lab, "192.168.50.1:8443").unwrap(),
        "203.0.113.27:443 192.168.12.99"
    );
    assert_eq!(
        udp_ask(&lab, "192.168.50.1:80").unwrap(),
        "10.0.0.99:80 192.168.12.99"
    );

    // No fallback: an unmapped TCP port is reset at once, UDP gets an ICMP
    // port unreachable.
    let started = Instant::now();
    let err = tcp_ask(&lab, "192.168.50.1:9999").expect_err("refused");
    let took = started.elapsed();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    eprintln!("unmapped TCP port refused after {took:?}");
    let err = udp_ask(&lab, "192.168.50.1:9998").expect_err("unreachable");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    drop(host);

    // The macvlan deleted behind routerd's back comes back, announced,
    // with its address, route and rule, and the redirect works again.
    ipn(lab.ns(Node::Router), &["link", "del", &dev]);
    wait("the macvlan back", &lab, &d, || {
        sh(&lab, "ip", &["-d", "addr", "show", "dev", &dev]).contains("inet 192.168.12.99/24")
    });
    wait("the TCP redirect again", &lab, &d, || {
        tcp_ask(&lab, "192.168.50.1:8080").is_ok_and(|r| r == "203.0.113.26:80 192.168.12.99")
    });

    // The master goes: Degraded with a reason, the rest keeps working.
    ipn(lab.ns(Node::Router), &["link", "del", "egr0"]);
    wait("Degraded", &lab, &d, || {
        condition(&status(&d, name), "Degraded") == "True"
    });
    let st = status(&d, name);
    assert_eq!(condition(&st, "Available"), "False", "{st}");
    assert!(
        !st["reason"].as_str().unwrap_or("").is_empty(),
        "a reason: {st}"
    );
    assert!(lab.ip(Node::Router, &["link", "show", "lan0"]).is_ok());
    d.stop();
    drop(far);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_redirects_and_an_unmapped_port_reaches_the_fallback() {
    let lab = lab("rer6");
    let far = far_side(&lab, "rer6");
    let dst = far.ns("dst");
    let fb = far.ns("fb");
    tcp_server(&dst, "[2001:db8:26::26]:80");
    udp_server(&dst, "[2001:db8:26::26]:53");
    tcp_server(&fb, "[::]:7777");
    // The client's IPv6 side of the LAN.
    lab.ip(
        Node::Router,
        &["addr", "add", "2001:db8:50::1/64", "dev", "lan0", "nodad"],
    )
    .unwrap();
    lab.ip(
        Node::Client,
        &["addr", "add", "2001:db8:50::10/64", "dev", "eth0", "nodad"],
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), format!("{HEAD}{V6}")).unwrap();
    d.start();
    wait("Available", &lab, &d, || {
        condition(&status(&d, "er6"), "Available") == "True"
    });
    let table = sh(&lab, "nft", &["list", "table", "ip6", "routerd_egress_er6"]);
    assert!(
        table.contains("sctp dport 9 dnat to [2001:db8:26::26]:9"),
        "SCTP is rendered and listed: {table}"
    );

    wait("the IPv6 TCP redirect", &lab, &d, || {
        tcp_ask(&lab, "[2001:db8:50::1]:8080").is_ok()
    });
    assert_eq!(
        tcp_ask(&lab, "[2001:db8:50::1]:8080").unwrap(),
        "[2001:db8:26::26]:80 2001:db8:12::99"
    );
    assert_eq!(
        udp_ask(&lab, "[2001:db8:50::1]:5353").unwrap(),
        "[2001:db8:26::26]:53 2001:db8:12::99"
    );
    // Unmapped: the fallback, same port, from the reserved address.
    assert_eq!(
        tcp_ask(&lab, "[2001:db8:50::1]:7777").unwrap(),
        "[2001:db8:25::25]:7777 2001:db8:12::99"
    );
    d.stop();
    drop(far);
}
