#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end IPv6 in a namespace lab (root only): a real `routerd serve`
//! steers a LAN client's IPv6 traffic over the selected uplink with an
//! `ip6 routerd_default_route` table, `ip -6` fwmark rules and IPv6 default
//! routes in the candidates' tables, and moves new flows to the backup when
//! the primary's carrier drops or its probe fails.
//!
//! The lab is IPv4; the test adds IPv6 to it (veth only, DAD off so the
//! addresses are usable at once, addresses kept across link down). Both
//! upstreams host the same "internet" address, so only routing decides which
//! one sees a ping; a counter in each upstream's own ruleset tells which.
//! There is no NAT66: the upstreams route the LAN prefix back.

mod common;

use std::time::Duration;

use common::{Daemon, lab, sh};
use routerd_api::client::Client;
use routerd_lab::{Lab, Node, Uplink, wait_until};
use serde_json::Value;

const TARGET6: &str = "2001:db8:ff::1";
const CLIENT6: &str = "2001:db8:50::10";

/// (router address, upstream address) of each uplink's /64.
fn wan6(u: Uplink) -> (&'static str, &'static str) {
    if u == Uplink::Wan1 {
        ("2001:db8:1::1", "2001:db8:1::2")
    } else {
        ("2001:db8:2::1", "2001:db8:2::2")
    }
}

fn sysctl(lab: &Lab, node: Node, kv: &str) {
    lab.exec(node, "sysctl", ["-qw", kv]).unwrap();
}

/// IPv6 on top of the lab's IPv4 topology.
fn add_ipv6(lab: &Lab) {
    for node in Node::ALL {
        for kv in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.keep_addr_on_down=1",
            "net.ipv6.conf.default.keep_addr_on_down=1",
        ] {
            sysctl(lab, node, kv);
        }
    }
    sysctl(lab, Node::Router, "net.ipv6.conf.all.forwarding=1");
    for u in Uplink::ALL {
        let (r, g) = wan6(u);
        lab.ip(
            Node::Router,
            &[
                "-6",
                "addr",
                "add",
                &format!("{r}/64"),
                "dev",
                u.router_if(),
                "nodad",
            ],
        )
        .unwrap();
        lab.ip(
            u.upstream(),
            &[
                "-6",
                "addr",
                "add",
                &format!("{g}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        )
        .unwrap();
        lab.ip(
            u.upstream(),
            &["-6", "addr", "add", &format!("{TARGET6}/128"), "dev", "lo"],
        )
        .unwrap();
        upstream_return_route(lab, u);
        // Which upstream saw an echo request for the target.
        lab.nft(
            u.upstream(),
            &format!(
                "table ip6 seen6 {{\n  counter echo {{ }}\n  chain c {{\n    type filter hook prerouting priority -300; policy accept;\n    ip6 daddr {TARGET6} icmpv6 type echo-request counter name echo\n  }}\n}}\n"
            ),
        )
        .unwrap();
    }
    lab.ip(
        Node::Router,
        &[
            "-6",
            "addr",
            "add",
            "2001:db8:50::1/64",
            "dev",
            "lan0",
            "nodad",
        ],
    )
    .unwrap();
    lab.ip(
        Node::Client,
        &[
            "-6",
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    lab.ip(
        Node::Client,
        &["-6", "route", "add", "default", "via", "2001:db8:50::1"],
    )
    .unwrap();
}

/// The LAN prefix back through the router (replaced: a carrier cut
/// flushes it).
fn upstream_return_route(lab: &Lab, u: Uplink) {
    let (r, _) = wan6(u);
    lab.ip(
        u.upstream(),
        &[
            "-6",
            "route",
            "replace",
            "2001:db8:50::/64",
            "via",
            r,
            "dev",
            "eth0",
        ],
    )
    .unwrap();
}

fn echo_requests(lab: &Lab, node: Node) -> u64 {
    let out = lab
        .exec(node, "nft", ["list", "counter", "ip6", "seen6", "echo"])
        .unwrap_or_default();
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One echo request from the client to the target; the upstream whose
/// counter moved, if it got an answer.
fn ping_once(lab: &Lab) -> Option<Node> {
    let before = [echo_requests(lab, Node::Up1), echo_requests(lab, Node::Up2)];
    lab.exec(
        Node::Client,
        "ping",
        ["-6", "-n", "-c", "1", "-W", "1", TARGET6],
    )
    .ok()?;
    let after = [echo_requests(lab, Node::Up1), echo_requests(lab, Node::Up2)];
    match (after[0] > before[0], after[1] > before[1]) {
        (true, false) => Some(Node::Up1),
        (false, true) => Some(Node::Up2),
        _ => None,
    }
}

fn debug(lab: &Lab, d: &Daemon<'_>) -> String {
    format!(
        "nft:\n{}\nip -6 rule:\n{}\nip -6 route table all:\n{}\nlog:\n{}",
        sh(lab, "nft", &["list", "ruleset"]),
        sh(lab, "ip", &["-6", "rule", "show"]),
        sh(lab, "ip", &["-6", "route", "show", "table", "all"]),
        d.log()
    )
}

fn pings_leave_through(lab: &Lab, d: &Daemon<'_>, upstream: Node, what: &str) {
    wait_until(
        || ping_once(lab) == Some(upstream),
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "{what}: IPv6 pings never left through {upstream}\n{}",
            debug(lab, d)
        )
    });
}

fn config() -> String {
    routerd_lab::router_config("ipv6")
}

fn start<'a>(lab: &'a Lab, dir: &std::path::Path, resources: &str) -> Daemon<'a> {
    let mut d = Daemon::new(lab, dir, "");
    std::fs::write(dir.join("config.yaml"), format!("{}{resources}", config())).unwrap();
    d.start();
    d
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_traffic_follows_the_selected_uplink_and_fails_over_on_carrier_loss() {
    let lab = lab("rv6a");
    add_ipv6(&lab);
    // Before routerd, the router has no IPv6 route to the target.
    assert_eq!(ping_once(&lab), None);
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan-v6}
      spec:
        family: ipv6
        mode: priority
        sourceCIDRs: [\"2001:db8:50::/64\"]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: \"2001:db8:1::2\",
             mark: 0x10, table: 110, priority: 1100, weight: 80}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: \"2001:db8:2::2\",
             mark: 0x20, table: 120, priority: 1200, weight: 50}
",
    );
    pings_leave_through(&lab, &d, Node::Up1, "start");
    let tables = sh(&lab, "nft", &["list", "tables"]);
    assert!(
        tables.contains("table ip6 routerd_default_route"),
        "{tables}"
    );
    let rules = sh(&lab, "ip", &["-6", "rule", "show"]);
    assert!(
        rules.contains("1100:\tfrom all fwmark 0x10 lookup 110 proto 122"),
        "{rules}"
    );

    // Drift: someone deletes the IPv6 rule; the IPv6 rule notification
    // wakes routerd, which puts it back (the resync is 30s away).
    lab.ip(
        Node::Router,
        &[
            "-6", "rule", "del", "priority", "1100", "fwmark", "0x10", "table", "110",
        ],
    )
    .unwrap();
    wait_until(
        || sh(&lab, "ip", &["-6", "rule", "show"]).contains("1100:\tfrom all fwmark 0x10"),
        Duration::from_secs(10),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the deleted IPv6 rule was not restored\n{}",
            debug(&lab, &d)
        )
    });

    lab.cut_carrier(Uplink::Wan1).unwrap();
    pings_leave_through(&lab, &d, Node::Up2, "wan1 carrier lost");

    lab.restore(Uplink::Wan1).unwrap();
    upstream_return_route(&lab, Uplink::Wan1);
    pings_leave_through(&lab, &d, Node::Up1, "wan1 back");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_traffic_fails_over_when_the_primarys_probe_fails() {
    let lab = lab("rv6b");
    add_ipv6(&lab);
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: hc-wan1}
      spec: {addressFamily: ipv6, target: \"2001:db8:ff::1\", interface: wan1, protocol: icmp,
             interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: hc-wan2}
      spec: {addressFamily: ipv6, target: \"2001:db8:ff::1\", interface: wan2, protocol: icmp,
             interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan-v6}
      spec:
        family: ipv6
        mode: priority
        sourceCIDRs: [\"2001:db8:50::/64\"]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: \"2001:db8:1::2\",
             mark: 0x10, table: 110, priority: 1100, weight: 80, healthCheck: hc-wan1}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: \"2001:db8:2::2\",
             mark: 0x20, table: 120, priority: 1200, weight: 50, healthCheck: hc-wan2}
",
    );
    pings_leave_through(&lab, &d, Node::Up1, "start");
    // A silent failure: wan1's upstream drops IPv6 while the link stays up.
    lab.nft(
        Node::Up1,
        "table ip6 fault6 {\n  chain drop_in {\n    type filter hook prerouting priority -400; policy accept;\n    iifname \"eth0\" meta l4proto ipv6-icmp icmpv6 type echo-request drop\n  }\n}\n",
    )
    .unwrap();
    pings_leave_through(&lab, &d, Node::Up2, "wan1 probe failing");
    lab.exec(Node::Up1, "nft", ["delete", "table", "ip6", "fault6"])
        .unwrap();
    pings_leave_through(&lab, &d, Node::Up1, "wan1 probe passing again");
}

/// `routerctl get KIND/NAME`'s status, through the control socket.
fn reported_status(d: &Daemon<'_>, kind: &str, name: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: Value = rt
        .block_on(Client::new(d.socket()).get::<Value>(&format!("/get?subject={kind}%2F{name}")))
        .unwrap_or_default();
    doc["items"][0]["status"].clone()
}

/// Locally originated IPv6 (no LAN, no mark) leaves through the hostTraffic
/// candidate with its global address as source; without a usable address
/// the policy is Pending and the last good route and rule stay.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_host_traffic_leaves_through_its_candidate_from_the_global_address() {
    let lab = lab("rv6c");
    add_ipv6(&lab);
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: host-v6}
      spec:
        family: ipv6
        hostTraffic: true
        candidates:
          - {name: wan1, interface: wan1, gatewaySource: static, gateway: \"2001:db8:1::2\",
             preferredSource: interface, table: 300, priority: 10300}
",
    );
    let router_ping = || {
        let before = echo_requests(&lab, Node::Up1);
        lab.exec(
            Node::Router,
            "ping",
            ["-6", "-n", "-c", "1", "-W", "1", TARGET6],
        )
        .is_ok()
            && echo_requests(&lab, Node::Up1) > before
    };
    wait_until(
        router_ping,
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the router's own IPv6 never left through wan1\n{}",
            debug(&lab, &d)
        )
    });
    let t300 = sh(&lab, "ip", &["-6", "route", "show", "table", "300"]);
    assert!(
        t300.starts_with(
            "default via 2001:db8:1::2 dev wan1 proto 122 src 2001:db8:1::1 metric 50"
        ),
        "{t300}"
    );
    let rules = sh(&lab, "ip", &["-6", "rule", "show"]);
    assert!(
        rules.contains("10300:\tfrom all iif lo lookup 300 proto 122"),
        "{rules}"
    );
    assert_eq!(
        reported_status(&d, "EgressRoutePolicy", "host-v6")["phase"],
        "Applied"
    );

    // The global address goes: nothing new can be installed, the last
    // good pair stays, and the policy says why.
    lab.ip(
        Node::Router,
        &["-6", "addr", "del", "2001:db8:1::1/64", "dev", "wan1"],
    )
    .unwrap();
    wait_until(
        || {
            reported_status(&d, "EgressRoutePolicy", "host-v6")["reason"]
                == "PreferredSourceUnavailable"
        },
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "no PreferredSourceUnavailable: {}\n{}",
            reported_status(&d, "EgressRoutePolicy", "host-v6"),
            debug(&lab, &d)
        )
    });
    assert_eq!(
        reported_status(&d, "EgressRoutePolicy", "host-v6")["phase"],
        "Pending"
    );
    let rules = sh(&lab, "ip", &["-6", "rule", "show"]);
    assert!(
        rules.contains("10300:\tfrom all iif lo lookup 300 proto 122"),
        "{rules}"
    );
}

/// What one echo request from the client prints (stdout and stderr): a
/// fail-closed `reject` answers with ICMPv6 "Administratively prohibited".
fn ping_output(lab: &Lab) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", lab.ns(Node::Client), "ping", "-6", "-n"])
        .args(["-c", "1", "-W", "1", TARGET6])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `whenNoCandidate: reject` on an IPv6 policy: while its only candidate is
/// down the client's IPv6 is refused at once (ICMPv6 admin-prohibited from
/// the router's `ip6 routerd_failclosed_*` table), and nothing leaks through
/// the router's main-table IPv6 default route via wan2; once the candidate
/// is back the same pings leave through wan1 again.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_fail_closed_refuses_while_no_candidate_is_ready() {
    let lab = lab("rv6f");
    add_ipv6(&lab);
    // The leak path a fail-open policy would use.
    let (_, up2) = wan6(Uplink::Wan2);
    lab.ip(
        Node::Router,
        &["-6", "route", "add", "default", "via", up2, "dev", "wan2"],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        &lab,
        dir.path(),
        "    - apiVersion: net.routerd.net/v1alpha1
      kind: HealthCheck
      metadata: {name: hc-wan1}
      spec: {addressFamily: ipv6, target: \"2001:db8:ff::1\", interface: wan1, protocol: icmp,
             interval: 1s, timeout: 500ms, healthyThreshold: 1, unhealthyThreshold: 2}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan-v6}
      spec:
        family: ipv6
        mode: priority
        whenNoCandidate: reject
        sourceCIDRs: [\"2001:db8:50::/64\"]
        hysteresis: 0s
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: \"2001:db8:1::2\",
             mark: 0x10, table: 110, priority: 1100, healthCheck: hc-wan1}
",
    );
    pings_leave_through(&lab, &d, Node::Up1, "start");
    // wan1's upstream drops IPv6 echo requests: the probe fails, the policy
    // has no ready candidate.
    lab.nft(
        Node::Up1,
        "table ip6 fault6 {\n  chain drop_in {\n    type filter hook prerouting priority -400; policy accept;\n    iifname \"eth0\" meta l4proto ipv6-icmp icmpv6 type echo-request drop\n  }\n}\n",
    )
    .unwrap();
    wait_until(
        || ping_output(&lab).contains("Administratively prohibited"),
        Duration::from_secs(20),
        Duration::from_millis(200),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the client was never refused while no candidate was ready\n{}",
            debug(&lab, &d)
        )
    });
    let leaked_before = echo_requests(&lab, Node::Up2);
    for _ in 0..3 {
        let out = ping_output(&lab);
        assert!(out.contains("Administratively prohibited"), "{out}");
    }
    assert_eq!(
        echo_requests(&lab, Node::Up2),
        leaked_before,
        "IPv6 leaked through the main table while failing closed\n{}",
        debug(&lab, &d)
    );
    let st = reported_status(&d, "EgressRoutePolicy", "lan-v6");
    assert_eq!(st["failClosed"], "reject", "{st}");
    lab.exec(Node::Up1, "nft", ["delete", "table", "ip6", "fault6"])
        .unwrap();
    pings_leave_through(&lab, &d, Node::Up1, "candidate ready again");
    let st = reported_status(&d, "EgressRoutePolicy", "lan-v6");
    assert!(st.get("failClosed").is_none(), "{st}");
    assert!(
        !sh(&lab, "nft", &["list", "tables"]).contains("routerd_failclosed_lan_v6"),
        "the fail-closed table outlived the candidate's return"
    );
}
