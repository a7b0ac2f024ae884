#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of `routerd serve` in a namespace lab (root only):
//! drift repair, clean shutdown, the control socket. The kill -9 loop is in
//! `e2e_reliability.rs`, with the other crash and failure-isolation tests.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, sh};
use routerd_lab::{Lab, Node, wait_until};

fn converged(lab: &Lab) -> bool {
    let routes = sh(lab, "ip", &["route", "show", "table", "all"]);
    let tables = sh(lab, "nft", &["list", "tables"]);
    routes.contains("default via 198.18.1.2 dev wan1")
        && routes.contains("table 110")
        && tables.contains("routerd_nat")
        && tables.contains("routerd_default_route")
}

fn lab() -> Lab {
    common::lab("re2e")
}

#[test]
#[ignore = "needs root: network namespaces"]
fn drift_is_repaired_within_a_second_and_foreign_state_is_left_alone() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    // Foreign state that looks like ours must survive.
    lab.ip(
        Node::Router,
        &[
            "route",
            "add",
            "blackhole",
            "198.51.100.0/24",
            "proto",
            "static",
        ],
    )
    .unwrap();
    lab.ip(
        Node::Router,
        &[
            "rule", "add", "priority", "1500", "fwmark", "0x99", "table", "199",
        ],
    )
    .unwrap();
    lab.nft(Node::Router, "table ip foreign_fw {\n chain c {\n  type filter hook input priority 0; policy accept;\n }\n}\n").unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    d.start();
    wait_until(
        || converged(&lab),
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no convergence; log:\n{}", d.log()));

    // Someone deletes routerd's default route from its candidate table.
    let t = Instant::now();
    lab.ip(Node::Router, &["route", "del", "default", "table", "110"])
        .unwrap();
    let repaired = wait_until(
        || sh(&lab, "ip", &["route", "show", "table", "110"]).contains("default via 198.18.1.2"),
        Duration::from_secs(5),
        Duration::from_millis(10),
    );
    let route_ms = t.elapsed().as_millis();
    assert!(repaired.is_ok(), "route not repaired; log:\n{}", d.log());
    assert!(route_ms <= 1000, "route repair took {route_ms} ms");

    // Someone flushes routerd's NAT table.
    let t = Instant::now();
    lab.exec(Node::Router, "nft", ["flush", "table", "ip", "routerd_nat"])
        .unwrap();
    let repaired = wait_until(
        || sh(&lab, "nft", &["list", "table", "ip", "routerd_nat"]).contains("masquerade"),
        Duration::from_secs(5),
        Duration::from_millis(10),
    );
    let nft_ms = t.elapsed().as_millis();
    assert!(
        repaired.is_ok(),
        "nft table not repaired; log:\n{}",
        d.log()
    );
    assert!(nft_ms <= 1000, "nft repair took {nft_ms} ms");
    eprintln!("drift repaired: route {route_ms} ms, nft table {nft_ms} ms");

    d.stop();
    // Foreign state untouched; routerd's state left in place after SIGTERM.
    assert!(sh(&lab, "ip", &["route", "show"]).contains("blackhole 198.51.100.0/24"));
    assert!(sh(&lab, "ip", &["rule", "show"]).contains("fwmark 0x99 lookup 199"));
    assert!(sh(&lab, "nft", &["list", "tables"]).contains("foreign_fw"));
    assert!(
        converged(&lab),
        "SIGTERM must leave the kernel state in place"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_control_socket_explains_the_running_router() {
    use routerd_api::client::{Client, ClientError};
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    d.start();
    wait_until(
        || converged(&lab),
        Duration::from_secs(20),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("no convergence; log:\n{}", d.log()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = Client::new(dir.path().join("routerd.sock"));
    let status: serde_json::Value = rt.block_on(c.get("/status")).unwrap();
    assert_eq!(status["status"]["phase"], "Ready", "{status}");
    let snap: serde_json::Value = rt.block_on(c.get("/get?subject=status")).unwrap();
    let pol = &snap["net.routerd.net/v1alpha1/EgressRoutePolicy/ipv4-default"];
    assert_eq!(pol["selectedCandidate"], "primary", "{pol}");
    assert_eq!(
        snap["net.routerd.net/v1alpha1/HealthCheck/internet-wan1"]["phase"],
        "Healthy"
    );
    let ex: serde_json::Value = rt.block_on(c.get("/explain?policy=ipv4-default")).unwrap();
    assert!(ex["decision"].is_object(), "{ex}");
    let ev: serde_json::Value = rt.block_on(c.get("/events?since-id=0&limit=1000")).unwrap();
    assert!(
        ev["items"].as_array().is_some_and(|a| !a.is_empty()),
        "{ev}"
    );
    match rt.block_on(c.get::<serde_json::Value>("/describe?target=IPv4Route%2Fnope")) {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    d.stop();
}
