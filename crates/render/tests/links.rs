//! Kernel links in the IR: created before what uses them, deleted after,
//! owned through the ledger only, never adopted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::collections::BTreeSet;

use routerd_render::dataplane::MemDataplane;
use routerd_render::ir::{Address, Link, LinkKind, MacvlanMode, Route, RouteKind};
use routerd_render::plan::Op;
use routerd_render::{DesiredState, Ledger, ReconcileOptions, reconcile};

const OWNER: &str = "net.routerd.net/v1alpha1/EgressRouter/r";

fn kernel() -> MemDataplane {
    let mut dp = MemDataplane::new();
    dp.links = Some(["lo", "eth0"].into_iter().map(String::from).collect());
    dp
}

fn macvlan(name: &str, master: &str) -> Link {
    let mut l = Link::new(
        name,
        LinkKind::Macvlan {
            master: master.into(),
            mode: MacvlanMode::Bridge,
        },
    );
    l.announce = true;
    l.owner = OWNER.into();
    l
}

fn carried(name: &str, master: &str) -> DesiredState {
    let mut a = Address::new(name, "192.0.2.99/24".parse().unwrap());
    a.owner = OWNER.into();
    a.allow_overlap = true;
    let mut r = Route::new(3000, "0.0.0.0/0".parse().unwrap(), 0, RouteKind::Unicast);
    r.gateway = Some("192.0.2.1".parse().unwrap());
    r.device = Some(name.into());
    r.owner = OWNER.into();
    let mut d = DesiredState {
        links: vec![macvlan(name, master)],
        addresses: vec![a],
        routes: vec![r],
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

fn lines(ops: &[Op]) -> Vec<String> {
    ops.iter().map(ToString::to_string).collect()
}

#[test]
fn a_link_is_created_before_its_address_announced_and_deleted_last() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth0");
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert_eq!(
        lines(&out.plan.ops),
        [
            "ip link add rd-r up link eth0 type macvlan mode bridge",
            "ip -4 addr add 192.0.2.99/24 dev rd-r",
            "ip link set dev rd-r address <its own> (gratuitous ARP for its addresses)",
            "ip route add default via 192.0.2.1 dev rd-r table 3000 proto 122 metric 0",
        ]
    );
    assert_eq!(dp.announced, ["rd-r"]);
    assert_eq!(ledger.links.get("rd-r").map(String::as_str), Some(OWNER));

    // Idempotent: nothing to do, no second announcement.
    let again = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);

    // The owner goes: the link goes after its route and address.
    let out = reconcile(
        &mut dp,
        &DesiredState::default(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(
        lines(&out.plan.ops),
        [
            "ip route del default via 192.0.2.1 dev rd-r table 3000 proto 122 metric 0",
            "ip -4 addr del 192.0.2.99/24 dev rd-r",
            "ip link del rd-r",
        ]
    );
    assert!(dp.kernel_links.is_empty());
    assert!(ledger.links.is_empty());
}

#[test]
fn a_foreign_link_of_the_same_name_is_a_conflict_and_stays_untouched() {
    let mut dp = kernel();
    // The operator's own macvlan, named as routerd would name its link.
    let mut foreign = macvlan("rd-r", "eth0");
    foreign.owner.clear();
    foreign.announce = false;
    dp.kernel_links.push(foreign.clone());
    dp.links.as_mut().unwrap().insert("rd-r".into());
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth0");
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.plan.ops.is_empty(), "{}", out.plan);
    let fault = out.faults.iter().find(|f| f.owner == OWNER).unwrap();
    assert_eq!(fault.reason, "Conflict");
    assert!(
        fault
            .message
            .contains("link rd-r is held by a macvlan link routerd did not create"),
        "{}",
        fault.message
    );
    assert!(ledger.links.is_empty(), "never adopted");
    assert!(dp.addresses.is_empty(), "nothing put on a foreign link");

    // Nobody wants it any more: a foreign link is never deleted.
    let out = reconcile(
        &mut dp,
        &DesiredState::default(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(out.plan.ops.is_empty(), "{}", out.plan);
    assert_eq!(dp.kernel_links, [foreign]);
}

#[test]
fn a_physical_device_of_the_same_name_is_a_conflict() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("eth0", "eth0");
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.plan.ops.is_empty(), "{}", out.plan);
    assert!(
        out.faults[0]
            .message
            .contains("held by a device routerd did not create"),
        "{:?}",
        out.faults
    );
}

#[test]
fn an_absent_master_keeps_the_link_and_its_objects_back() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth9");
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.plan.ops.is_empty(), "{}", out.plan);
    assert_eq!(out.faults.len(), 1);
    assert_eq!(out.faults[0].reason, "DeviceNotReady");
    assert!(
        out.faults[0]
            .message
            .contains("device \"eth9\" does not exist; link rd-r waits for it"),
        "{}",
        out.faults[0].message
    );
}

#[test]
fn a_changed_mode_recreates_the_link_and_puts_its_address_back() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth0");
    reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    let mut changed = want.clone();
    changed.links[0].kind = LinkKind::Macvlan {
        master: "eth0".into(),
        mode: MacvlanMode::Private,
    };
    let out = reconcile(&mut dp, &changed, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert!(
        out.retries.is_empty(),
        "one plan does it: {:?}",
        out.retries
    );
    assert_eq!(
        lines(&out.plan.ops),
        [
            "ip link del rd-r",
            "ip link add rd-r up link eth0 type macvlan mode private",
            "ip -4 addr add 192.0.2.99/24 dev rd-r",
            "ip link set dev rd-r address <its own> (gratuitous ARP for its addresses)",
            "ip route add default via 192.0.2.1 dev rd-r table 3000 proto 122 metric 0",
        ]
    );
    assert_eq!(dp.addresses.len(), 1);
    assert_eq!(ledger.links.len(), 1);
}

#[test]
fn a_link_set_down_by_someone_is_brought_up_in_place() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth0");
    reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    dp.kernel_links[0].up = false;
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert_eq!(lines(&out.plan.ops), ["ip link set dev rd-r up"]);
    assert!(dp.kernel_links[0].up);
}

#[test]
fn tunnel_links_render_as_ip_link_commands() {
    let vx = Link::new(
        "vx100",
        LinkKind::Vxlan {
            vni: 100,
            local: Some("192.0.2.1".parse().unwrap()),
            remote: Some("192.0.2.2".parse().unwrap()),
            dstport: 4789,
            device: Some("eth0".into()),
        },
    );
    assert_eq!(
        Op::AddLink { link: vx }.to_string(),
        "ip link add vx100 up type vxlan id 100 local 192.0.2.1 remote 192.0.2.2 dstport 4789 dev eth0"
    );
    let mut gre = Link::new(
        "gre1",
        LinkKind::Gre {
            local: None,
            remote: "198.51.100.7".parse().unwrap(),
            key: None,
            encap: None,
        },
    );
    gre.mtu = Some(1400);
    assert_eq!(
        Op::AddLink { link: gre.clone() }.to_string(),
        "ip link add gre1 mtu 1400 up type gre remote 198.51.100.7"
    );
    assert_eq!(
        Op::SetLink { link: gre }.to_string(),
        "ip link set dev gre1 mtu 1400 up"
    );
    let ipip = Link::new(
        "tun0",
        LinkKind::Ipip {
            local: Some("192.0.2.1".parse().unwrap()),
            remote: "192.0.2.2".parse().unwrap(),
            encap: None,
        },
    );
    assert_eq!(
        Op::DeleteLink { link: ipip.clone() }.to_string(),
        "ip link del tun0"
    );
    assert_eq!(
        Op::AddLink { link: ipip }.inverse(),
        Some(Op::DeleteLink {
            link: Link::new(
                "tun0",
                LinkKind::Ipip {
                    local: Some("192.0.2.1".parse().unwrap()),
                    remote: "192.0.2.2".parse().unwrap(),
                    encap: None,
                },
            )
        })
    );
}

#[test]
fn the_ledger_keeps_links_across_a_json_round_trip() {
    let mut ledger = Ledger::default();
    ledger.links.insert("rd-r".into(), OWNER.into());
    let text = serde_json::to_string(&ledger).unwrap();
    let back: Ledger = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ledger);
    assert!(back.describe().contains(&"link rd-r".to_string()));
    // An older ledger without links still reads.
    let old: Ledger = serde_json::from_str(r#"{"routes":[],"rules":[],"nft":[]}"#).unwrap();
    assert!(old.links.is_empty());
    let names: BTreeSet<_> = back.links.keys().cloned().collect();
    assert!(names.contains("rd-r"));
}

#[test]
fn interface_names_follow_the_kernel_rules() {
    use routerd_render::ir::valid_ifname;
    assert!(valid_ifname("rd-egress-12345"));
    assert!(!valid_ifname("rd-egress-123456"));
    assert!(!valid_ifname(""));
    assert!(!valid_ifname("a/b"));
    assert!(!valid_ifname("a b"));
    assert!(!valid_ifname(".."));
}

#[test]
fn a_same_named_link_someone_made_after_deleting_routerds_is_not_taken_for_it() {
    let mut dp = kernel();
    let mut ledger = Ledger::default();
    let want = carried("rd-r", "eth0");
    reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    let ours = dp.kernel_links[0].index;
    assert!(ours.is_some());
    assert_eq!(ledger.link_indexes.get("rd-r").copied(), ours);

    // Deleted behind routerd's back, and the operator's own link of that
    // name (another kind, another index) put in its place.
    dp.kernel_links.clear();
    dp.addresses.clear();
    dp.routes.clear();
    let mut theirs = Link::new(
        "rd-r",
        LinkKind::Vxlan {
            vni: 7,
            local: None,
            remote: None,
            dstport: 4789,
            device: None,
        },
    );
    theirs.index = Some(7);
    dp.kernel_links.push(theirs.clone());
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|o| matches!(o, Op::DeleteLink { .. } | Op::AddLink { .. })),
        "{}",
        out.plan
    );
    assert_eq!(out.faults[0].reason, "Conflict", "{:?}", out.faults);
    assert_eq!(dp.kernel_links, [theirs.clone()]);
    assert!(ledger.links.is_empty(), "forgotten, never adopted");

    // Nobody wants it: still never deleted.
    reconcile(
        &mut dp,
        &DesiredState::default(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(dp.kernel_links, [theirs]);
}
