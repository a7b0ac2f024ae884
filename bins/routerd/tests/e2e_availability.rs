#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests of the one availability rule in a namespace lab (root
//! only): what makes a path unusable is seen from the link itself, without a
//! health check, and new flows move to the backup instead of leaking to the
//! main table (the router has no default route there).

mod common;

use std::time::Duration;

use common::{Daemon, sh};
use routerd_lab::{Lab, Node, Uplink, wait_until};

fn head() -> String {
    routerd_lab::router_config("availability")
        + "    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-masquerade-wan1}
      spec: {type: masquerade, egressInterface: wan1, sourceRanges: [192.168.50.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-masquerade-wan2}
      spec: {type: masquerade, egressInterface: wan2, sourceRanges: [192.168.50.0/24]}
"
}

/// Starts routerd with `head()` + `resources` and waits until new client
/// flows leave through wan1.
fn start<'a>(lab: &'a Lab, dir: &std::path::Path, resources: &str) -> Daemon<'a> {
    let mut d = Daemon::new(lab, dir, "");
    // This test runs its own configuration, not the demo's.
    std::fs::write(dir.join("config.yaml"), format!("{}{resources}", head())).unwrap();
    d.start();
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
            sh(lab, "nft", &["list", "ruleset"]),
            d.log()
        )
    });
    d
}

/// Cuts wan1's carrier and waits until new flows leave through wan2.
fn new_flows_move_to_wan2(lab: &Lab, d: &Daemon<'_>) {
    lab.cut_carrier(Uplink::Wan1).unwrap();
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(500))
                .is_ok_and(|f| f.upstream == Node::Up2)
        },
        Duration::from_secs(10),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| {
        panic!(
            "new flows did not move to wan2; rules:\n{}\nip rules:\n{}\nlog:\n{}",
            sh(lab, "nft", &["list", "ruleset"]),
            sh(lab, "ip", &["rule", "show"]),
            d.log()
        )
    });
    // And back once the carrier returns (hysteresis 0s, no preemptDelay).
    lab.restore(Uplink::Wan1).unwrap();
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(500))
                .is_ok_and(|f| f.upstream == Node::Up1)
        },
        Duration::from_secs(10),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| panic!("new flows did not return to wan1; log:\n{}", d.log()));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn carrier_loss_on_an_interface_only_candidate_moves_new_flows_to_the_backup() {
    let _ = routerd_lab::cleanup_stale("ravl1");
    let lab = Lab::build("ravl1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No health checks and no sources: only the link can tell.
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
        mode: priority
        sourceCIDRs: [192.168.50.0/24]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: 198.18.1.2,
             mark: 0x10, table: 110, priority: 1100, weight: 80}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1200, weight: 50}
",
    );
    new_flows_move_to_wan2(&lab, &d);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_dslite_target_going_down_moves_new_flows_to_the_backup() {
    let _ = routerd_lab::cleanup_stale("ravl2");
    let lab = Lab::build("ravl2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The lab has no AFTR: the tunnel's kernel device is wan1 itself, so
    // cutting wan1's carrier makes the DSLiteTunnel's status Down, as a
    // dead tunnel's would be. The candidate hashes over that one target.
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: DSLiteTunnel
      metadata: {name: ds-a}
      spec: {interface: wan1, tunnelName: wan1, aftrIPv6: \"2001:db8::1\"}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
        mode: priority
        sourceCIDRs: [192.168.50.0/24]
        hashFields: [sourceAddress]
        hysteresis: 0s
        candidates:
          - name: dslite
            weight: 80
            targets:
              - {name: via-a, interface: ds-a, gatewaySource: static, gateway: 198.18.1.2,
                 mark: 0x11, table: 111, priority: 1110}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1200, weight: 50}
",
    );
    new_flows_move_to_wan2(&lab, &d);
}
