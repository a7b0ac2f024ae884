#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of `whenNoCandidate` in a namespace lab (root only): a
//! real `routerd serve` whose only candidate is down refuses the client's
//! connections to the internet host (reset at once with `reject`, silence
//! with `drop`) although the main table has a working default route that
//! would carry them (the leak catcher); once the candidate is back, the
//! same connection goes through it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Daemon, sh};
use routerd_api::client::Client;
use routerd_lab::{ConnectOutcome, Lab, Node, TARGET, TCP_PORT, Uplink, wait_until};
use serde_json::Value;

/// The policy's reported status and its events, over the control socket.
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

    fn get(&self, path: &str) -> Value {
        self.rt
            .block_on(self.client.get::<Value>(path))
            .unwrap_or(Value::Null)
    }

    fn policy_status(&self) -> Value {
        self.get("/get?subject=EgressRoutePolicy%2Flan")["items"][0]["status"].clone()
    }

    fn events(&self, topic: &str) -> usize {
        self.get(&format!(
            "/events?since-id=0&topic={topic}&resource=EgressRoutePolicy%2Flan&limit=100"
        ))["items"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

fn config(how: &str) -> String {
    format!(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: failclosed}}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan1}}
      spec: {{ifname: wan1}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {{name: wan2}}
      spec: {{ifname: wan2}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {{name: lan-masquerade-wan1}}
      spec: {{type: masquerade, egressInterface: wan1, sourceRanges: [192.168.50.0/24]}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {{name: lan-masquerade-wan2}}
      spec: {{type: masquerade, egressInterface: wan2, sourceRanges: [192.168.50.0/24]}}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {{name: lan}}
      spec:
        mode: priority
        whenNoCandidate: {how}
        sourceCIDRs: [192.168.50.0/24]
        hysteresis: 0s
        candidates:
          - {{name: primary, interface: wan1, gatewaySource: static, gateway: 198.18.1.2,
             mark: 0x10, table: 110, priority: 1100}}
"
    )
}

fn internet() -> SocketAddr {
    SocketAddr::from((TARGET, TCP_PORT))
}

fn connect(lab: &Lab, timeout: Duration) -> ConnectOutcome {
    lab.tcp_connect(Node::Client, internet(), None, timeout)
        .unwrap()
}

fn run(prefix: &str, how: &str, refused: fn(&ConnectOutcome) -> bool) {
    let _ = routerd_lab::cleanup_stale(prefix);
    let lab = Lab::build(prefix).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every candidate down, and a main-table default route that would
    // carry the client's traffic out of wan2 if anything leaked.
    lab.cut_carrier(Uplink::Wan1).unwrap();
    lab.exec(
        Node::Router,
        "ip",
        [
            "route",
            "replace",
            "default",
            "via",
            "198.18.2.2",
            "dev",
            "wan2",
        ],
    )
    .unwrap();
    assert!(
        connect(&lab, Duration::from_secs(2)).is_connected(),
        "the leak catcher must carry traffic before routerd runs"
    );
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), config(how)).unwrap();
    d.start();
    let closed = wait_until(
        || sh(&lab, "nft", &["list", "tables"]).contains("routerd_failclosed_lan"),
        Duration::from_secs(20),
        Duration::from_millis(100),
    );
    assert!(closed.is_ok(), "never closed; log:\n{}", d.log());
    let api = Api::new(&d);
    let said = wait_until(
        || api.policy_status()["failClosed"] == how,
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    assert!(
        said.is_ok(),
        "status does not say it fails closed: {}",
        api.policy_status()
    );
    assert_eq!(api.policy_status()["reason"], "NoReadyCandidates");
    assert_eq!(api.events("routerd.egress.policy.failclosed"), 1);
    for _ in 0..3 {
        let o = connect(&lab, Duration::from_secs(1));
        assert!(
            refused(&o),
            "{how}: the connect ended {o:?}; rules:\n{}\nlog:\n{}",
            sh(&lab, "nft", &["list", "ruleset"]),
            d.log()
        );
    }
    // The candidate comes back: the same connect succeeds through wan1.
    lab.restore(Uplink::Wan1).unwrap();
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(500))
                .is_ok_and(|f| f.upstream == Node::Up1)
        },
        Duration::from_secs(20),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| {
        panic!(
            "new flows never left through wan1; rules:\n{}\nlog:\n{}",
            sh(&lab, "nft", &["list", "ruleset"]),
            d.log()
        )
    });
    assert!(connect(&lab, Duration::from_secs(2)).is_connected());
    assert!(!sh(&lab, "nft", &["list", "tables"]).contains("routerd_failclosed_lan"));
    let st = api.policy_status();
    assert!(st.get("failClosed").is_none(), "{st}");
    assert_eq!(st["phase"], "Applied");
    assert_eq!(api.events("routerd.egress.policy.reopened"), 1);
    d.stop();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn reject_refuses_at_once_while_no_candidate_is_ready_and_nothing_leaks() {
    run("rfcr", "reject", |o| {
        matches!(o, ConnectOutcome::Failed(..))
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn drop_silences_while_no_candidate_is_ready_and_nothing_leaks() {
    run("rfcd", "drop", |o| matches!(o, ConnectOutcome::TimedOut));
}
