#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end test of IPAddressSet names in a namespace lab (root only):
//! a DNS server inside the lab (dnsmasq in `up1`, on the lab address
//! 198.18.1.2, never the host's port 53) answers `svc.lab`; routerd,
//! pointed at it with `ROUTERD_RESOLV_CONF`, puts the answer into the
//! nft set of a policy that steers that destination through wan2, while
//! everything else leaves through wan1. Changing the answer (a new hosts
//! file and SIGHUP) moves the set without disturbing an established flow,
//! whether its address stays in the set or leaves it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, sh};
use routerd_lab::{ChildOutput, Lab, Node, TARGET, Uplink, wait_until};

fn config() -> String {
    routerd_lab::router_config("names")
        + "    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-masquerade-wan1}
      spec: {type: masquerade, egressInterface: wan1, sourceRanges: [192.168.50.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-masquerade-wan2}
      spec: {type: masquerade, egressInterface: wan2, sourceRanges: [192.168.50.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
        mode: priority
        sourceCIDRs: [192.168.50.0/24]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: 198.18.1.2,
             mark: 0x10, table: 110, priority: 1100}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPAddressSet
      metadata: {name: svc}
      spec:
        names: [svc.lab]
        refreshInterval: 1s
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: svc}
      spec:
        mode: mark
        destinationSetRefs: [IPAddressSet/svc]
        hysteresis: 0s
        candidates:
          - {name: alternate, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1000}
"
}

/// The DNS server's address: up1's end of wan1, reachable from the router.
const DNS: &str = "198.18.1.2";
/// An address that is in no upstream: the answer after the change.
const ELSEWHERE: &str = "203.0.113.77";

fn write_hosts(dir: &Path, addresses: &[&str]) {
    let text: String = addresses.iter().map(|a| format!("{a} svc.lab\n")).collect();
    std::fs::write(dir.join("hosts"), text).unwrap();
}

fn set_elements(lab: &Lab) -> String {
    sh(
        lab,
        "nft",
        &["list", "set", "ip", "routerd_policy", "ip_address_set_svc"],
    )
}

/// The policy table's objects with their kernel handles (set elements
/// left out): a rebuilt table, chain or rule gets new handles.
fn table_handles(lab: &Lab) -> Vec<String> {
    sh(lab, "nft", &["-a", "list", "table", "ip", "routerd_policy"])
        .lines()
        .filter(|l| l.contains("# handle"))
        .map(|l| l.trim().to_string())
        .collect()
}

fn wait_for_set(lab: &Lab, d: &Daemon<'_>, what: &str, f: impl Fn(&str) -> bool) {
    wait_until(
        || f(&set_elements(lab)),
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "{what}; set:\n{}\nruleset:\n{}\nlog:\n{}",
            set_elements(lab),
            sh(lab, "nft", &["list", "ruleset"]),
            d.log()
        )
    });
}

fn wait_for_upstream(lab: &Lab, d: &Daemon<'_>, upstream: Node) {
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(500))
                .is_ok_and(|f| f.upstream == upstream)
        },
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "new flows to {TARGET} never left through {upstream}; ruleset:\n{}\nip rules:\n{}\nlog:\n{}",
            sh(lab, "nft", &["list", "ruleset"]),
            sh(lab, "ip", &["rule", "show"]),
            d.log()
        )
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_dns_named_set_steers_its_destination_and_follows_the_answer() {
    let _ = routerd_lab::cleanup_stale("rnam1");
    let lab = Lab::build("rnam1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // dnsmasq in up1: no upstream, no /etc/hosts, answers from our file
    // with a 1 s TTL (routerd's floor of 5 s applies), re-read on SIGHUP.
    write_hosts(dir, &[&TARGET.to_string()]);
    let dns = lab
        .spawn(
            Node::Up1,
            "dnsmasq",
            [
                "--keep-in-foreground".to_string(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                format!("--addn-hosts={}", dir.join("hosts").display()),
                format!("--listen-address={DNS}"),
                "--bind-interfaces".into(),
                "--port=53".into(),
                "--local-ttl=1".into(),
                "--pid-file=".into(),
                "--user=root".into(),
                "--log-queries".into(),
                "--log-facility=-".into(),
            ],
            ChildOutput::File(dir.join("dnsmasq.log")),
        )
        .unwrap();
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {DNS}\n")).unwrap();

    let mut d = Daemon::new(&lab, dir, "");
    std::fs::write(dir.join("config.yaml"), config()).unwrap();
    let resolv = dir.join("resolv.conf");
    d.start_with_env(&[("ROUTERD_RESOLV_CONF", resolv.to_str().unwrap())]);

    // The answer reaches the kernel's set, and flows to it take wan2.
    wait_for_set(
        &lab,
        &d,
        "the resolved address never reached the set",
        |s| s.contains(&TARGET.to_string()),
    );
    wait_for_upstream(&lab, &d, Uplink::Wan2.upstream());
    let mut flow = lab.open_long_flow(Duration::from_secs(2)).unwrap();
    assert_eq!(flow.report().upstream, Node::Up2);

    // The answer grows: the set follows in place (the table, its chains
    // and rules keep their handles), the established flow is untouched.
    let handles = table_handles(&lab);
    write_hosts(dir, &[&TARGET.to_string(), ELSEWHERE]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(dns.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for_set(&lab, &d, "the second address never reached the set", |s| {
        s.contains(ELSEWHERE) && s.contains(&TARGET.to_string())
    });
    flow.ping(Duration::from_secs(2)).unwrap_or_else(|e| {
        panic!(
            "the established flow broke when the set grew: {e}; log:\n{}",
            d.log()
        )
    });
    assert_eq!(
        table_handles(&lab),
        handles,
        "the policy table was rebuilt for a set change; log:\n{}",
        d.log()
    );

    // The answer moves away from the target: new flows to it take the
    // default path (wan1) again.
    write_hosts(dir, &[ELSEWHERE]);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for_set(&lab, &d, "the old address never left the set", |s| {
        s.contains(ELSEWHERE) && !s.contains(&TARGET.to_string())
    });
    wait_for_upstream(&lab, &d, Uplink::Wan1.upstream());
    // The established flow to the address that left the set stays on the
    // path its first packet took (the policy pins connections by ct mark
    // for original-direction packets): it still answers through up2.
    flow.ping(Duration::from_secs(2)).unwrap_or_else(|e| {
        panic!(
            "the established flow broke when its address left the set: {e}; log:\n{}",
            d.log()
        )
    });
    // (Through up1 it would carry wan2's SNAT address and be reset.)

    // DNS goes away: the set keeps its last good answer.
    lab.stop_child(dns, Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let s = set_elements(&lab);
    assert!(s.contains(ELSEWHERE), "a DNS outage emptied the set:\n{s}");
    d.stop();
}
