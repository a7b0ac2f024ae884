//! TunnelInterface rendering: vxlan, ipip, gre (with its key) and routerd's
//! fou and gue (ipip inside UDP) become owned links with their inner
//! address; a tunnel the kernel refuses is a fault of that TunnelInterface
//! alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::dataplane::MemDataplane;
use routerd_render::{Ledger, ReconcileOptions, reconcile, render};

const CONFIG: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: eth0}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: vx-cloud}
spec: {trustedUnderlay: true, mode: vxlan, key: 42, local: 192.0.2.1, remote: 192.0.2.2, underlayInterface: wan, address: 10.255.0.1/30, mtu: 1450}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: ipip-dc}
spec: {trustedUnderlay: true, mode: ipip, ifname: ipip1, local: 192.0.2.1, remote: 198.51.100.2, address: 10.255.1.1/30}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: gre-dc}
spec: {trustedUnderlay: true, mode: gre, key: 42, local: 192.0.2.1, remote: 198.51.100.3}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: gue-dc}
spec: {trustedUnderlay: true, mode: gue, local: 192.0.2.1, remote: 198.51.100.6, encapSport: 6000, encapDport: 6001}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: fou-dc}
spec: {trustedUnderlay: true, mode: fou, local: 192.0.2.1, remote: 198.51.100.4, encap: {dport: 5555}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: TunnelInterface
metadata: {name: from-status}
spec: {trustedUnderlay: true, mode: ipip, localFrom: {resource: Interface/wan, field: primaryIPv4}, remote: 198.51.100.5}
";

fn rendered() -> routerd_render::Rendered {
    let (loaded, diags) = load_and_validate(&[("c.yaml", CONFIG)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    render(&loaded.resources, &StateSnapshot::new())
}

#[test]
fn tunnels_render_as_owned_links_with_their_address() {
    let r = rendered();
    let links: Vec<String> = r
        .desired
        .links
        .iter()
        .map(|l| format!("{} {:?} mtu={:?} owner={}", l.name, l.kind, l.mtu, l.owner))
        .collect();
    assert_eq!(links.len(), 5, "{links:#?}");
    let shown: Vec<String> = r.desired.links.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "fou-dc up type ipip local 192.0.2.1 remote 198.51.100.4 encap fou encap-sport auto encap-dport 5555 (FOU port 5555 listening)",
            "gre-dc up type gre local 192.0.2.1 remote 198.51.100.3 key 42",
            "gue-dc up type ipip local 192.0.2.1 remote 198.51.100.6 encap gue encap-sport 6000 encap-dport 6001 (FOU port 6000 listening)",
            "ipip1 up type ipip local 192.0.2.1 remote 198.51.100.2",
            "vx-cloud mtu 1450 up type vxlan id 42 local 192.0.2.1 remote 192.0.2.2 dstport 4789 dev eth0",
        ]
    );
    assert!(
        r.desired
            .links
            .iter()
            .all(|l| l.owner.contains("/TunnelInterface/")),
        "{links:#?}"
    );
    let addrs: Vec<String> = r
        .desired
        .addresses
        .iter()
        .map(|a| format!("{} {}", a.device, a.address))
        .collect();
    assert_eq!(addrs, ["ipip1 10.255.1.1/30", "vx-cloud 10.255.0.1/30"]);
    // An endpoint from a status not there yet keeps what is there.
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(
        r.desired
            .retained
            .iter()
            .any(|o| o.ends_with("/TunnelInterface/from-status"))
    );
}

#[test]
fn a_refused_tunnel_is_a_fault_of_its_own_and_the_rest_applies() {
    let r = rendered();
    let mut dp = MemDataplane::new();
    dp.links = Some(["lo", "eth0"].into_iter().map(String::from).collect());
    // This kernel has no ipip module.
    dp.refuse = vec!["type ipip".into()];
    let mut ledger = Ledger::default();
    let out = reconcile(
        &mut dp,
        &r.desired,
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    let owners: Vec<&str> = out.faults.iter().map(|f| f.owner.as_str()).collect();
    // fou and gue are ipip inside UDP: the same refusal, each its own.
    assert_eq!(
        owners,
        [
            "hybrid.routerd.net/v1alpha1/TunnelInterface/fou-dc",
            "hybrid.routerd.net/v1alpha1/TunnelInterface/gue-dc",
            "hybrid.routerd.net/v1alpha1/TunnelInterface/ipip-dc"
        ],
        "{:?}",
        out.faults
    );
    assert!(
        out.faults[0].message.contains("Invalid argument"),
        "{:?}",
        out.faults
    );
    assert!(ledger.links.contains_key("vx-cloud"));
    assert!(ledger.links.contains_key("gre-dc"));
    assert!(!ledger.links.contains_key("ipip1"));
}
