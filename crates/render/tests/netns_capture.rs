//! Address capture through netlink, in throwaway namespaces (root only):
//! a client ARPs across a veth for a claimed address and an unclaimed one
//! of the same prefix; only the claimed one is answered, and only while
//! routerd captures it. Forwarding is given back as it was found.

#![cfg(feature = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod lab;

use lab::Ns;

use routerd_render::capture::{Forwarding, NeighProxy};
use routerd_render::ir::{Route, RouteKind};
use routerd_render::linux::LinuxDataplane;
use routerd_render::{Dataplane, DesiredState, Ledger, Ownership, ReconcileOptions, reconcile};

const OWNER: &str = "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web";

/// The capture of `.50`: its delivery route out of `dlv0`, the proxy entry
/// on `lan0`, forwarding on both.
fn capture() -> DesiredState {
    let mut r = Route::new(
        254,
        "192.0.2.50/32".parse().unwrap(),
        120,
        RouteKind::Unicast,
    );
    r.device = Some("dlv0".into());
    r.owner = OWNER.into();
    let mut p = NeighProxy::new("lan0", "192.0.2.50".parse().unwrap());
    p.owner = OWNER.into();
    p.announce = true;
    let mut d = DesiredState {
        routes: vec![r],
        neigh_proxies: vec![p],
        forwarding: ["lan0", "dlv0"]
            .into_iter()
            .map(|dev| Forwarding {
                device: dev.into(),
                owner: OWNER.into(),
            })
            .collect(),
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

fn arp_answered(client: &Ns, addr: &str) -> bool {
    // Proxied answers come after the kernel's random proxy_delay (up to
    // 0.8 s): two probes a second apart, and any answer counts.
    let out = client.output(&["arping", "-c", "2", "-w", "3", "-I", "c0", addr]);
    let received = out
        .lines()
        .find_map(|l| l.strip_prefix("Received "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("arping output: {out}"));
    received > 0
}

#[test]
#[ignore = "needs root: network namespaces"]
fn proxy_arp_answers_only_claimed_address_while_captured() {
    let router = Ns::new("rdc", "r");
    let client = Ns::new("rdc", "c");
    router.ip(&["link", "add", "lan0", "type", "veth", "peer", "name", "c0"]);
    router.ip(&["link", "set", "c0", "netns", &client.0]);
    router.ip(&["addr", "add", "192.0.2.1/24", "dev", "lan0"]);
    router.ip(&["link", "set", "lan0", "up"]);
    // No dummy module everywhere: the delivery side is a veth pair.
    router.ip(&[
        "link", "add", "dlv0", "type", "veth", "peer", "name", "dlv1",
    ]);
    router.ip(&["link", "set", "dlv0", "up"]);
    router.ip(&["link", "set", "dlv1", "up"]);
    // The unclaimed neighbour routes out of the same device: only the
    // per-address proxy entry, not the route, makes an answer.
    router.ip(&["route", "add", "192.0.2.51/32", "dev", "dlv0"]);
    client.ip(&["addr", "add", "192.0.2.10/24", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "up"]);
    client.output(&["sysctl", "-q", "-w", "net.ipv4.conf.c0.arp_accept=1"]);
    let fwd = "/proc/sys/net/ipv4/conf/lan0/forwarding";
    assert_eq!(router.read(fwd), "0");

    assert!(
        !arp_answered(&client, "192.0.2.50"),
        "answered before capture"
    );

    let mut ledger = Ledger::default();
    let out = router.run(move || {
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let out = reconcile(
            &mut dp,
            &capture(),
            &mut ledger,
            &ReconcileOptions::default(),
        )
        .unwrap();
        let observed = dp.observe().unwrap();
        (out, observed, ledger)
    });
    let (outcome, observed, mut ledger) = out;
    assert!(outcome.faults.is_empty(), "{:?}", outcome.faults);
    assert!(
        outcome.retries.is_empty(),
        "read back differs: {:?}",
        outcome.retries
    );
    assert_eq!(
        observed.neigh_proxies,
        vec![NeighProxy::new("lan0", "192.0.2.50".parse().unwrap())]
    );
    assert_eq!(router.read(fwd), "1");
    assert!(
        router
            .ip(&["neigh", "show", "proxy"])
            .contains("192.0.2.50 dev lan0")
    );

    // The gratuitous ARP sent when capture started: the client (accepting
    // gratuitous ARP for new entries) learnt the router's MAC for .50.
    let mac = router
        .ip(&["link", "show", "lan0"])
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap()
        .to_string();
    let learnt = client.ip(&["neigh", "show", "192.0.2.50", "dev", "c0"]);
    assert!(
        learnt.contains(&mac),
        "no gratuitous ARP seen: {learnt:?} (router {mac})"
    );

    assert!(
        arp_answered(&client, "192.0.2.50"),
        "claimed address not answered"
    );
    assert!(
        !arp_answered(&client, "192.0.2.51"),
        "unclaimed address answered"
    );

    // A proxy entry the operator made is never removed.
    router.ip(&["neigh", "add", "proxy", "192.0.2.60", "dev", "lan0"]);
    let (outcome, ledger) = router.run(move || {
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let out = reconcile(
            &mut dp,
            &DesiredState::default(),
            &mut ledger,
            &ReconcileOptions::default(),
        )
        .unwrap();
        (out, ledger)
    });
    assert!(outcome.faults.is_empty(), "{:?}", outcome.faults);
    assert!(ledger.is_empty(), "{ledger:?}");
    assert_eq!(router.read(fwd), "0", "forwarding given back");
    let proxies = router.ip(&["neigh", "show", "proxy"]);
    assert!(!proxies.contains("192.0.2.50"), "{proxies}");
    assert!(proxies.contains("192.0.2.60"), "{proxies}");
    // The kernel may still hold a cached answer; a fresh ARP is refused.
    client.ip(&["neigh", "flush", "dev", "c0"]);
    assert!(
        !arp_answered(&client, "192.0.2.50"),
        "answered after capture stopped"
    );
}
