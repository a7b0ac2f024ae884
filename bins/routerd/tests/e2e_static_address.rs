#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end IPv4StaticAddress in a namespace lab (root only), against the
//! real `routerd serve`: the address is assigned to the LAN link and
//! reported `Applied` with its kernel device; deleted behind routerd's back
//! it comes back; an identical address that was already on a link is left
//! to its owner (status note, never removed); and when the resource leaves
//! the configuration (SIGHUP) only the address routerd added goes.

mod common;

use std::time::Duration;

use common::{DEMO, Daemon, lab, sh};
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, wait_until};
use serde_json::Value;

const ADDRESSES: &str = "    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4StaticAddress
      metadata: {name: lan-extra}
      spec: {interface: lan, address: 10.77.0.1/24, exclusive: true}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4StaticAddress
      metadata: {name: wan1-existing}
      spec: {interface: wan1, address: 198.18.1.1/30}
";

fn status(d: &Daemon<'_>, name: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: Value = rt
        .block_on(
            Client::new(d.socket())
                .get::<Value>(&format!("/get?subject=IPv4StaticAddress%2F{name}")),
        )
        .unwrap_or_default();
    doc["items"][0]["status"].clone()
}

fn addrs(lab: &Lab, dev: &str) -> String {
    sh(lab, "ip", &["-4", "-o", "addr", "show", "dev", dev])
}

fn wait(what: &str, d: &Daemon<'_>, f: impl FnMut() -> bool) {
    wait_until(f, Duration::from_secs(20), Duration::from_millis(100))
        .unwrap_or_else(|_| panic!("{what} never happened; log:\n{}", d.log()));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_static_address_is_assigned_repaired_and_removed_and_foreign_ones_stay() {
    let lab = lab("rsa");
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), ADDRESSES);
    d.start();

    wait("the address on lan0", &d, || {
        addrs(&lab, "lan0").contains("inet 10.77.0.1/24")
    });
    wait("lan-extra Applied", &d, || {
        status(&d, "lan-extra")["phase"] == "Applied"
    });
    let st = status(&d, "lan-extra");
    assert_eq!(st["address"], "10.77.0.1/24", "{st}");
    assert_eq!(st["interface"], "lan", "{st}");
    assert_eq!(st["ifname"], "lan0", "{st}");
    // exclusive: the lab's own LAN address is reported, not removed.
    wait("the exclusive note", &d, || {
        status(&d, "lan-extra")["note"]
            .as_str()
            .is_some_and(|n| n.contains("192.168.50.1/24"))
    });
    assert!(addrs(&lab, "lan0").contains("inet 192.168.50.1/24"));

    // The lab put 198.18.1.1/30 on wan1 before routerd: Applied, noted,
    // not routerd's.
    wait("wan1-existing noted", &d, || {
        let st = status(&d, "wan1-existing");
        st["phase"] == "Applied"
            && st["note"]
                .as_str()
                .is_some_and(|n| n.contains("was already there"))
    });

    // Deleted behind routerd's back: put back.
    lab.ip(
        Node::Router,
        &["addr", "del", "10.77.0.1/24", "dev", "lan0"],
    )
    .unwrap();
    wait("the address back on lan0", &d, || {
        addrs(&lab, "lan0").contains("inet 10.77.0.1/24")
    });

    // Both resources leave the configuration: only routerd's address goes.
    std::fs::write(dir.path().join("config.yaml"), DEMO).unwrap();
    d.reload();
    wait("the address gone from lan0", &d, || {
        !addrs(&lab, "lan0").contains("10.77.0.1")
    });
    assert!(addrs(&lab, "lan0").contains("inet 192.168.50.1/24"));
    assert!(
        addrs(&lab, "wan1").contains("inet 198.18.1.1/30"),
        "the lab's wan1 address must stay: {}",
        addrs(&lab, "wan1")
    );
    d.stop();
}
