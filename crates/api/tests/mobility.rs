//! Selective Address Mobility in the plan: a RemoteAddressClaim's delivery
//! route lowered on the effective config, its capture decided by the
//! overlay's health gate, and the capture rendered as a neighbour proxy
//! entry with forwarding only where it is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use routerd_api::{PlanDocument, PlanInputs, build_plan};
use routerd_model::load_and_validate;

/// The on-prem router: the claimed host lives in the cloud.
const ONPREM: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: eth1}
---
apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {name: overlay-hc}
spec: {target: 10.20.0.1, interval: 5s}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: OverlayPeer
metadata: {name: cloud}
spec: {role: onprem, nodeID: op1, underlay: {type: route, interface: vx0}}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: HybridRoute
metadata: {name: cloud-net}
spec: {peerRef: cloud, healthCheckRef: overlay-hc, destinationCIDRs: [10.20.0.0/16]}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: AddressMobilityDomain
metadata: {name: lan}
spec: {prefix: 192.168.10.0/24, mode: selective-address, peerRef: cloud}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: RemoteAddressClaim
metadata: {name: web.1}
spec:
  domainRef: lan
  address: 192.168.10.50/32
  ownerSide: cloud
  capture: {type: proxy-arp, interface: lan}
  delivery: {peerRef: cloud, mode: route}
";

const CLAIM: &str = "hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web.1";
const DOMAIN: &str = "hybrid.routerd.net/v1alpha1/AddressMobilityDomain/lan";

fn now() -> DateTime<Utc> {
    "2026-05-29T12:00:00Z".parse().unwrap()
}

fn plan(config: &str, health: &str) -> PlanDocument {
    plan_with(config, health, routerd_model::StateSnapshot::new())
}

/// [`plan`] with more observed statuses (links, virtual addresses).
fn plan_with(config: &str, health: &str, mut snap: routerd_model::StateSnapshot) -> PlanDocument {
    let (loaded, diags) = load_and_validate(&[("router.yaml", config)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let mut st = routerd_model::Status::new();
    st.insert("phase".into(), serde_json::json!(health));
    st.insert(
        "lastCheckedAt".into(),
        serde_json::json!("2026-05-29T11:59:58Z"),
    );
    snap.insert("net.routerd.net/v1alpha1/HealthCheck/overlay-hc".into(), st);
    build_plan(&PlanInputs {
        startup: loaded.resources,
        state: snap,
        now: now(),
        ..PlanInputs::default()
    })
    .unwrap()
}

#[test]
fn healthy_overlay_captures_on_the_non_owning_side() {
    let doc = plan(ONPREM, "Healthy");
    let r = doc
        .effective
        .iter()
        .find(|r| r.name() == "sam-web-1-delivery")
        .expect("delivery route lowered");
    assert_eq!(r.metadata.owner_refs[0].kind, "RemoteAddressClaim");
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["spec"]["destination"], "192.168.10.50/32");
    assert_eq!(json["spec"]["device"], "vx0");
    assert_eq!(json["spec"]["metric"], 120);

    let st = &doc.status[CLAIM];
    assert_eq!(st["phase"], "Ready", "{st:?}");
    assert_eq!(st["captureStatus"], "Captured");
    assert_eq!(st["deliveryRouteName"], "sam-web-1-delivery");
    assert_eq!(st["deliveryDevice"], "vx0");
    assert_eq!(st["deliveryMetric"], 120);
    assert_eq!(st["captureDevice"], "eth1");
    assert_eq!(
        doc.dataplane.neigh_proxies,
        vec![serde_json::json!({"device": "eth1", "address": "192.168.10.50", "owner": CLAIM})]
    );
    let fwd: Vec<&str> = doc
        .dataplane
        .forwarding
        .iter()
        .filter_map(|f| f["device"].as_str())
        .collect();
    assert_eq!(fwd, ["eth1", "vx0"]);
    let d = &doc.status[DOMAIN];
    assert_eq!(d["phase"], "Ready");
    assert_eq!(d["claimCount"], 1);
    assert_eq!(d["claims"][0]["name"], "web.1");
    assert!(
        doc.events.iter().any(|e| serde_json::to_value(e)
            .unwrap()
            .to_string()
            .contains("routerd.mobility.claim.capture")),
        "capture start is an event"
    );
}

#[test]
fn unhealthy_overlay_stops_capture_but_keeps_delivery() {
    let doc = plan(ONPREM, "Unhealthy");
    let st = &doc.status[CLAIM];
    assert_eq!(st["phase"], "Gated", "{st:?}");
    assert_eq!(st["reason"], "CaptureGateInactive");
    assert_eq!(st["captureStatus"], "Standby");
    assert!(doc.dataplane.neigh_proxies.is_empty());
    assert!(doc.dataplane.forwarding.is_empty());
}

#[test]
fn owning_side_routes_the_address_locally_and_never_captures() {
    let cloud = ONPREM.replace("role: onprem", "role: cloud");
    let doc = plan(&cloud, "Healthy");
    assert!(
        doc.effective
            .iter()
            .all(|r| r.name() != "sam-web-1-delivery")
    );
    let r = doc
        .effective
        .iter()
        .find(|r| r.name() == "sam-web-1-local")
        .expect("local route lowered");
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["spec"]["device"], "eth1");
    let st = &doc.status[CLAIM];
    assert_eq!(st["captureStatus"], "Standby");
    assert_eq!(st["phase"], "Ready");
    // Never on its LAN; only on the overlay, for an L2 overlay's ARP, and
    // announced there so a capturer that flipped first learns it at once.
    assert_eq!(
        doc.dataplane.neigh_proxies,
        vec![
            serde_json::json!({"device": "vx0", "address": "192.168.10.50", "announce": true, "owner": CLAIM})
        ]
    );
    let fwd: Vec<&str> = doc
        .dataplane
        .forwarding
        .iter()
        .filter_map(|f| f["device"].as_str())
        .collect();
    assert_eq!(fwd, ["eth1", "vx0"]);
}

#[test]
fn bgp_delivery_is_reported_not_implemented() {
    let bgp = ONPREM.replace("mode: route}", "mode: bgp}");
    let doc = plan(&bgp, "Healthy");
    let st = &doc.status[CLAIM];
    assert_eq!(st["phase"], "Degraded");
    assert_eq!(st["reason"], "RouteNotLowered");
    assert!(st["message"].as_str().unwrap().contains("not implemented"));
    assert!(doc.dataplane.neigh_proxies.is_empty());
    assert_eq!(doc.status[DOMAIN]["reason"], "ClaimDegraded");
}

#[test]
fn provider_secondary_ip_is_plan_only() {
    let cfg = ONPREM.replace(
        "capture: {type: proxy-arp, interface: lan}",
        "capture: {type: provider-secondary-ip, providerRef: oci, providerMode: secondary-private-ip, nicRef: nic1}",
    ) + "---
apiVersion: hybrid.routerd.net/v1alpha1
kind: CloudProviderProfile
metadata: {name: oci}
spec: {provider: oci, capabilities: [secondary-ip], auth: {mode: external-command, command: /bin/true}}
";
    let doc = plan(&cfg, "Healthy");
    let st = &doc.status[CLAIM];
    assert_eq!(st["captureStatus"], "Blocked");
    assert_eq!(st["reason"], "CaptureUnsupported");
    assert!(doc.dataplane.neigh_proxies.is_empty());
}

#[test]
fn a_duplicate_claim_of_one_address_is_refused_alone() {
    let cfg = ONPREM.to_string()
        + "---
apiVersion: hybrid.routerd.net/v1alpha1
kind: RemoteAddressClaim
metadata: {name: web.2}
spec:
  domainRef: lan
  address: 192.168.10.50/32
  ownerSide: cloud
  capture: {type: proxy-arp, interface: lan}
  delivery: {peerRef: cloud, mode: route}
";
    let doc = plan(&cfg, "Healthy");
    assert_eq!(doc.status[CLAIM]["captureStatus"], "Captured");
    let dup = &doc.status["hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web.2"];
    assert_eq!(dup["phase"], "Degraded");
    assert_eq!(dup["reason"], "SpecInvalid");
    assert_eq!(dup["captureStatus"], "Blocked");
    assert!(
        dup["message"]
            .as_str()
            .unwrap()
            .contains("also claimed by RemoteAddressClaim/web.1")
    );
    assert_eq!(doc.dataplane.neigh_proxies.len(), 1);
}

/// A status the daemon publishes for an Interface from the kernel's links.
fn link(ifname: &str, present: bool) -> routerd_model::Status {
    let v = if present {
        serde_json::json!({"ifname": ifname, "phase": "Up"})
    } else {
        serde_json::json!({"ifname": ifname, "phase": "Down", "reason": "InterfaceNotFound"})
    };
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_claim_on_a_missing_interface_is_reported_alone_and_never_captured() {
    let cfg = ONPREM.to_string()
        + "---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan2}
spec: {ifname: eth9}
---
apiVersion: hybrid.routerd.net/v1alpha1
kind: RemoteAddressClaim
metadata: {name: web.2}
spec:
  domainRef: lan
  address: 192.168.10.51/32
  ownerSide: cloud
  capture: {type: proxy-arp, interface: lan2}
  delivery: {peerRef: cloud, mode: route}
";
    let mut snap = routerd_model::StateSnapshot::new();
    snap.insert(
        "net.routerd.net/v1alpha1/Interface/lan".into(),
        link("eth1", true),
    );
    snap.insert(
        "net.routerd.net/v1alpha1/Interface/lan2".into(),
        link("eth9", false),
    );
    let doc = plan_with(&cfg, "Healthy", snap);
    let bad = &doc.status["hybrid.routerd.net/v1alpha1/RemoteAddressClaim/web.2"];
    assert_eq!(bad["phase"], "Degraded", "{bad:?}");
    assert_eq!(bad["reason"], "DeviceNotReady");
    assert_eq!(bad["captureStatus"], "Blocked");
    let msg = bad["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.capture.interface \"lan2\" (device \"eth9\") does not exist"),
        "{msg}"
    );
    assert!(bad.get("captureDevice").is_none());
    assert!(
        doc.events.iter().any(|e| {
            let e = serde_json::to_value(e).unwrap();
            e["type"] == "routerd.mobility.claim.phase" && e["resource"]["name"] == "web.2"
        }),
        "the refusal is an event"
    );
    // The other claim is carried as before, and only it.
    assert_eq!(doc.status[CLAIM]["captureStatus"], "Captured");
    assert_eq!(
        doc.dataplane.neigh_proxies,
        vec![serde_json::json!({"device": "eth1", "address": "192.168.10.50", "owner": CLAIM})]
    );
    assert_eq!(doc.status[DOMAIN]["reason"], "ClaimDegraded");
}

#[test]
fn vrrp_master_captures_only_while_this_host_holds_the_virtual_address() {
    let cfg = ONPREM.replace(
        "capture: {type: proxy-arp, interface: lan}",
        "capture: {type: proxy-arp, interface: lan, activeWhen: {type: vrrp-master, virtualAddressRef: gw}}",
    ) + "---
apiVersion: net.routerd.net/v1alpha1
kind: VirtualAddress
metadata: {name: gw}
spec: {family: ipv4, interface: lan, address: 192.168.10.254/32, mode: vrrp, vrrp: {virtualRouterID: 10, priority: 150}}
";
    let va = |held: bool| {
        let mut snap = routerd_model::StateSnapshot::new();
        snap.insert(
            "net.routerd.net/v1alpha1/VirtualAddress/gw".into(),
            serde_json::from_value(serde_json::json!({
                "phase": if held { "Held" } else { "NotHeld" },
                "held": held,
            }))
            .unwrap(),
        );
        snap
    };
    let master = plan_with(&cfg, "Healthy", va(true));
    assert_eq!(master.status[CLAIM]["captureStatus"], "Captured");
    assert_eq!(master.dataplane.neigh_proxies.len(), 1);

    let backup = plan_with(&cfg, "Healthy", va(false));
    let st = &backup.status[CLAIM];
    assert_eq!(st["phase"], "Gated", "{st:?}");
    assert_eq!(st["reason"], "CaptureGateInactive");
    assert_eq!(st["captureStatus"], "Standby");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("does not hold VirtualAddress \"gw\""),
        "{st:?}"
    );
    assert!(backup.dataplane.neigh_proxies.is_empty());
    assert!(backup.dataplane.forwarding.is_empty());

    // No observation yet (offline plan without state): never captured.
    let unknown = plan(&cfg, "Healthy");
    assert_eq!(unknown.status[CLAIM]["captureStatus"], "Standby");
    assert!(unknown.dataplane.neigh_proxies.is_empty());
}
