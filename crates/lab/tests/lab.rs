//! Root-only tests of the lab itself. Run them with
//! `cargo test -p routerd-lab -- --include-ignored` as root.
//!
//! Until routerd can run inside the lab, each test installs by hand what the daemon will
//! install (a default route, a masquerade rule), always inside the router namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use routerd_lab::{
    ConnectOutcome, HTTP_PORT, Lab, Node, TARGET, TCP_PORT, Uplink, cleanup_stale, wait_until,
};

const PREFIX: &str = "rdlab-t";
const TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(5);

fn build() -> Lab {
    cleanup_stale(PREFIX).unwrap();
    Lab::build(PREFIX).unwrap()
}

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn names(lab: &Lab) -> Vec<String> {
    Node::ALL.iter().map(|n| lab.ns(*n).to_owned()).collect()
}

/// What routerd's NAT44 masquerade will render, loaded into the router's own ruleset.
fn masquerade(lab: &Lab) {
    lab.nft(
        Node::Router,
        "table ip labtest {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  \
         oifname \"wan1\" masquerade\n  oifname \"wan2\" masquerade\n }\n}\n",
    )
    .unwrap();
}

fn default_via(lab: &Lab, uplink: Uplink, metric: Option<u32>) {
    let gw = uplink.gateway().to_string();
    let metric = metric.map(|m| m.to_string());
    let mut args = vec![
        "route",
        "replace",
        "default",
        "via",
        &gw,
        "dev",
        uplink.router_if(),
    ];
    if let Some(m) = &metric {
        args.extend(["metric", m]);
    }
    lab.ip(Node::Router, &args).unwrap();
}

fn target(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(TARGET, port))
}

#[test]
#[ignore = "needs root: network namespaces"]
fn build_and_teardown_leave_no_namespace_behind() {
    let lab = build();
    let made = names(&lab);
    assert!(made.iter().all(|n| ns_exists(n)), "{made:?}");
    // No interface of the lab leaked into the host namespace.
    for ifname in ["wan1", "wan2", "lan0"] {
        let host = Command::new("ip")
            .args(["link", "show", "dev", ifname])
            .output()
            .unwrap();
        assert!(
            !host.status.success(),
            "{ifname} exists in the host namespace"
        );
    }
    // The router has no default route (that is routerd's job); the client and the
    // upstreams route back through the router.
    assert_eq!(lab.default_route(Node::Router).unwrap(), None);
    let client_gw = lab.default_route(Node::Client).unwrap().unwrap().gateway;
    assert_eq!(client_gw, Some(IpAddr::V4(routerd_lab::LAN_ROUTER)));
    for uplink in Uplink::ALL {
        let gw = lab
            .default_route(uplink.upstream())
            .unwrap()
            .unwrap()
            .gateway;
        assert_eq!(gw, Some(IpAddr::V4(uplink.router_addr())));
    }
    assert_eq!(
        lab.exec(Node::Router, "sysctl", ["-n", "net.ipv4.ip_forward"])
            .unwrap()
            .trim(),
        "1"
    );
    println!("{lab}");
    lab.teardown().unwrap();
    assert!(made.iter().all(|n| !ns_exists(n)), "{made:?}");

    // Also when the test panics while the lab is alive.
    let made = std::panic::catch_unwind(|| {
        let lab = build();
        let made = names(&lab);
        std::panic::panic_any(made);
    })
    .unwrap_err()
    .downcast::<Vec<String>>()
    .unwrap();
    assert!(made.iter().all(|n| !ns_exists(n)), "{made:?}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn cleanup_stale_removes_only_dead_runs_of_its_prefix() {
    /// Removes a hand-made namespace even when an assertion fails.
    struct Made(String);
    impl Drop for Made {
        fn drop(&mut self) {
            if ns_exists(&self.0) {
                Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status()
                    .unwrap();
            }
        }
    }
    fn make(name: String) -> Made {
        let made = Made(name);
        drop(Command::new("ip").args(["netns", "del", &made.0]).output());
        let ok = Command::new("ip")
            .args(["netns", "add", &made.0])
            .status()
            .unwrap();
        assert!(ok.success());
        made
    }
    // A prefix of its own: the other tests' `build()` cleans up `PREFIX` concurrently.
    let prefix = "rdlab-stale";
    // pid_max is at most 2^22, so this pid never belongs to a live process.
    let stale = make(format!("{prefix}-4194999-0-rtr"));
    let foreign = make(format!("{prefix}-keep"));
    let live = Lab::build(prefix).unwrap();
    let removed = cleanup_stale(prefix).unwrap();
    assert_eq!(removed, vec![stale.0.clone()]);
    assert!(!ns_exists(&stale.0));
    assert!(ns_exists(&foreign.0), "a name of another shape was removed");
    assert!(
        names(&live).iter().all(|n| ns_exists(n)),
        "a live lab was removed"
    );
    assert!(cleanup_stale("").is_err());
}

#[test]
#[ignore = "needs root: network namespaces"]
fn masqueraded_client_flow_leaves_through_wan1() {
    let lab = build();
    masquerade(&lab);
    default_via(&lab, Uplink::Wan1, None);

    let flow = lab.client_flow(TIMEOUT).unwrap();
    assert_eq!(flow.upstream, Node::Up1);
    assert_eq!(
        flow.seen_source.ip(),
        IpAddr::V4(Uplink::Wan1.router_addr())
    );
    assert_eq!(flow.local.ip(), IpAddr::V4(routerd_lab::LAN_CLIENT));

    let record = lab
        .sink_records()
        .into_iter()
        .find(|r| r.tag.as_deref() == Some(&flow.tag));
    let record = record.expect("the sink recorded the flow");
    assert_eq!(
        (record.upstream, record.peer),
        (Node::Up1, flow.seen_source)
    );

    let route = lab.route_get(Node::Router, IpAddr::V4(TARGET)).unwrap();
    assert_eq!(route.dev.as_deref(), Some("wan1"));
    assert_eq!(route.prefsrc, Some(IpAddr::V4(Uplink::Wan1.router_addr())));
    let marked = lab
        .route_get_marked(Node::Router, IpAddr::V4(TARGET), 0x10)
        .unwrap();
    assert_eq!(marked.dev.as_deref(), Some("wan1"));
    let forwarded = lab
        .route_get_forwarded(Node::Router, IpAddr::V4(TARGET), flow.local.ip(), "lan0")
        .unwrap();
    assert_eq!(forwarded.gateway, Some(IpAddr::V4(Uplink::Wan1.gateway())));

    let entry = lab
        .conntrack(Node::Router)
        .unwrap()
        .into_iter()
        .find(|e| e.original.sport == Some(flow.local.port()))
        .expect("conntrack entry for the flow");
    assert_eq!(
        entry.snat_source(),
        Some(IpAddr::V4(Uplink::Wan1.router_addr()))
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn route_switch_moves_new_flows_but_keeps_established_conntrack() {
    let lab = build();
    masquerade(&lab);
    default_via(&lab, Uplink::Wan1, None);
    let mut long = lab.open_long_flow(TIMEOUT).unwrap();
    assert_eq!(long.report().upstream, Node::Up1);
    long.ping(TIMEOUT).unwrap();
    // The flow must stay quiet across the switch. Its next packet (even the delayed ACK
    // of the echo, up to 40 ms later) would leave through wan2 still translated to wan1's
    // address; up2 answers with a RST, conntrack sees it and closes the entry. routerd keeps
    // established flows on their uplink with conntrack marks; this test has no such rules.
    std::thread::sleep(Duration::from_millis(300));

    default_via(&lab, Uplink::Wan2, None);
    let flow = lab.client_flow(TIMEOUT).unwrap();
    assert_eq!(flow.upstream, Node::Up2);
    assert_eq!(
        flow.seen_source.ip(),
        IpAddr::V4(Uplink::Wan2.router_addr())
    );

    // Nothing flushed conntrack: the established flow's entry, translated to wan1's
    // address, is still there after the switch.
    let port = long.local_addr().port();
    let entries = lab.conntrack(Node::Router).unwrap();
    let entry = entries
        .iter()
        .find(|e| e.original.sport == Some(port))
        .unwrap_or_else(|| panic!("no conntrack entry for port {port}: {entries:#?}"));
    assert_eq!(
        entry.snat_source(),
        Some(IpAddr::V4(Uplink::Wan1.router_addr()))
    );
    assert_eq!(entry.state.as_deref(), Some("ESTABLISHED"));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn cut_carrier_clears_lower_up_on_the_router_and_restore_brings_it_back() {
    let lab = build();
    default_via(&lab, Uplink::Wan1, Some(100));
    assert!(lab.link(Node::Router, "wan1").unwrap().lower_up());

    lab.cut_carrier(Uplink::Wan1).unwrap();
    let took = wait_until(
        || !lab.link(Node::Router, "wan1").unwrap().lower_up(),
        TIMEOUT,
        POLL,
    )
    .unwrap();
    println!("carrier loss visible after {took:?}");
    assert!(lab.link(Node::Router, "wan1").unwrap().admin_up());
    assert!(lab.link(Node::Router, "wan2").unwrap().lower_up());
    assert!(
        lab.default_route(Node::Router)
            .unwrap()
            .unwrap()
            .is_linkdown()
    );

    lab.restore(Uplink::Wan1).unwrap();
    wait_until(
        || lab.link(Node::Router, "wan1").unwrap().lower_up(),
        TIMEOUT,
        POLL,
    )
    .unwrap();
    // restore also put back the upstream's route to the router, so traffic works again.
    let ok = wait_until(
        || {
            lab.tcp_connect(
                Node::Router,
                target(TCP_PORT),
                Some("wan1"),
                Duration::from_millis(300),
            )
            .unwrap()
            .is_connected()
        },
        TIMEOUT,
        Duration::from_millis(50),
    );
    assert!(ok.is_ok(), "wan1 did not come back");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn drop_silently_blackholes_wan1_while_wan2_works() {
    let lab = build();
    // Both uplinks routable, as routerd's per-uplink probe routes will be; SO_BINDTODEVICE
    // then picks the route through the bound uplink.
    default_via(&lab, Uplink::Wan1, Some(100));
    default_via(&lab, Uplink::Wan2, Some(200));
    let probe = |uplink: Uplink| {
        lab.tcp_connect(
            Node::Router,
            target(TCP_PORT),
            Some(uplink.router_if()),
            Duration::from_millis(300),
        )
        .unwrap()
    };
    assert!(probe(Uplink::Wan1).is_connected());
    assert!(probe(Uplink::Wan2).is_connected());
    assert_eq!(
        lab.http_status(Node::Router, target(HTTP_PORT), Some("wan2"), TIMEOUT)
            .unwrap(),
        200
    );

    lab.drop_silently(Uplink::Wan1).unwrap();
    assert_eq!(probe(Uplink::Wan1), ConnectOutcome::TimedOut);
    assert!(probe(Uplink::Wan2).is_connected());
    // Silent: the carrier stays up, only probes can notice.
    assert!(lab.link(Node::Router, "wan1").unwrap().lower_up());
    // Applying the fault twice is harmless.
    lab.drop_silently(Uplink::Wan1).unwrap();

    lab.restore(Uplink::Wan1).unwrap();
    assert!(probe(Uplink::Wan1).is_connected());
    // One probe before and one after the fault reached up1 (the sink accepts
    // asynchronously, so give it a moment).
    let up1_probes = || {
        lab.sink_records()
            .iter()
            .filter(|r| r.upstream == Node::Up1 && r.port == TCP_PORT)
            .count()
    };
    wait_until(|| up1_probes() == 2, TIMEOUT, POLL).unwrap();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn spawned_processes_run_inside_the_namespace_and_die_with_the_lab() {
    use routerd_lab::ChildOutput;
    let lab = build();
    let pids_in_router = |lab: &Lab| {
        let out = Command::new("ip")
            .args(["netns", "pids", lab.ns(Node::Router)])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let stopped = lab
        .spawn(Node::Router, "sleep", ["30"], ChildOutput::Null)
        .unwrap();
    assert_eq!(lab.child_status(stopped).unwrap(), None);
    // `ip netns exec` joins the namespace just after it starts; give it that moment.
    let pid = stopped.pid().to_string();
    let inside = || pids_in_router(&lab).split_whitespace().any(|p| p == pid);
    wait_until(inside, TIMEOUT, POLL).unwrap();
    let status = lab.stop_child(stopped, Duration::from_secs(2)).unwrap();
    assert!(!status.success(), "sleep ended by SIGTERM: {status}");

    let left_running = lab
        .spawn(Node::Router, "sleep", ["30"], ChildOutput::Null)
        .unwrap();
    drop(lab);
    assert!(
        !Path::new("/proc")
            .join(left_running.pid().to_string())
            .exists()
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn client_traffic_follows_the_default_route() {
    let lab = build();
    masquerade(&lab);
    default_via(&lab, Uplink::Wan1, None);
    let traffic = lab
        .start_client_traffic(Duration::from_millis(20), Duration::from_secs(1))
        .unwrap();
    let start = std::time::Instant::now();
    wait_until(
        || traffic.first_on(Node::Up1, start).is_some(),
        TIMEOUT,
        POLL,
    )
    .unwrap();

    let mut timeline = routerd_lab::Timeline::new();
    timeline.record("default route switched to wan2");
    default_via(&lab, Uplink::Wan2, None);
    let switched = timeline.start();
    let took = wait_until(
        || traffic.first_on(Node::Up2, switched).is_some(),
        TIMEOUT,
        POLL,
    )
    .unwrap();
    timeline.record(format!(
        "client traffic reached up2 (observed after {took:?})"
    ));
    let samples = traffic.stop();
    println!("{timeline}");
    assert!(samples.iter().any(|s| s.upstream() == Some(Node::Up1)));
    let last = samples
        .iter()
        .rev()
        .find_map(|s| s.result.as_ref().ok())
        .unwrap();
    assert_eq!(last.upstream, Node::Up2);
    assert_eq!(
        last.seen_source.ip(),
        IpAddr::V4(Uplink::Wan2.router_addr())
    );
}

#[test]
fn lab_can_be_shared_with_blocking_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Lab>();
    shareable::<routerd_lab::ClientTraffic>();
}
