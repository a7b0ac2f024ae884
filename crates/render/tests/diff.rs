//! Pure diff and reconcile tests against the in-memory dataplane, with
//! foreign objects present.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::collections::BTreeMap;

use routerd_render::dataplane::MemDataplane;
use routerd_render::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, MarkSource, NftChain, NftFamily,
    NftRule, NftSet, NftTable, NftTableKey, Priority, Route, RouteKind, Rule,
};
use routerd_render::plan::{NftSetDelta, Op};
use routerd_render::{
    Dataplane, DesiredState, Ledger, Ownership, ReconcileOptions, diff, reconcile,
};

const OWNER: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/p";

fn route(table: u32, dst: &str, dev: &str, gw: Option<&str>) -> Route {
    let mut r = Route::new(table, dst.parse().unwrap(), 50, RouteKind::Unicast);
    r.device = Some(dev.into());
    r.gateway = gw.map(|g| g.parse().unwrap());
    r.owner = OWNER.into();
    r
}

fn rule(priority: u32, fwmark: u32, table: u32) -> Rule {
    Rule::new(priority, fwmark, table, OWNER)
}

fn table(name: &str, mark: u32) -> NftTable {
    let mut t = NftTable::new(NftFamily::Ip, name);
    t.owners.insert(OWNER.into());
    t.chains.push(NftChain {
        name: "prerouting".into(),
        chain_type: ChainType::Filter,
        hook: Hook::Prerouting,
        priority: Priority::Mangle,
        rules: vec![NftRule {
            exprs: vec![Expr::SetMark(MarkSource::Const(mark))],
        }],
    });
    t
}

fn desired() -> DesiredState {
    let mut d = DesiredState {
        routes: vec![
            route(100, "0.0.0.0/0", "eth1", Some("198.51.100.1")),
            route(101, "0.0.0.0/0", "eth2", None),
        ],
        rules: vec![rule(10100, 0x10, 100), rule(10101, 0x20, 101)],
        nft: vec![table("routerd_policy", 0x10)],
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

/// A kernel with foreign state: a DHCP default route, a foreign route in a
/// table routerd also uses, a foreign rule inside routerd's priority range,
/// a foreign nft table and an unclaimed `routerd_` table.
fn foreign_kernel() -> MemDataplane {
    let mut dp = MemDataplane::new();
    let mut dhcp = Route::new(254, "0.0.0.0/0".parse().unwrap(), 100, RouteKind::Unicast);
    dhcp.protocol = 16; // dhcp
    dhcp.device = Some("eth0".into());
    dp.routes.push(dhcp);
    let mut other = Route::new(100, "10.0.0.0/8".parse().unwrap(), 0, RouteKind::Unicast);
    other.protocol = 4; // static
    other.device = Some("eth9".into());
    dp.routes.push(other);
    let mut foreign = Rule::new(10150, 0x99, 99, "");
    foreign.protocol = 0;
    dp.rules.push(foreign);
    let mut main = Rule::new(32766, 0, 254, "");
    main.protocol = 2; // kernel
    dp.rules.push(main);
    let shape: BTreeMap<String, usize> = [("input".to_string(), 3)].into();
    dp.foreign_nft.insert(
        NftTableKey {
            family: NftFamily::Inet,
            name: "filter".into(),
        },
        shape.clone(),
    );
    dp.foreign_nft.insert(
        NftTableKey {
            family: NftFamily::Ip,
            name: "routerd_somebody_elses".into(),
        },
        shape,
    );
    dp
}

fn touches_foreign(op: &Op) -> bool {
    match op {
        Op::AddRoute { route } | Op::DeleteRoute { route } => route.protocol != 122,
        Op::ReplaceRoute { old, new } => old.protocol != 122 || new.protocol != 122,
        Op::AddRule { rule } | Op::DeleteRule { rule } => rule.table == 99 || rule.priority > 32765,
        Op::ReplaceNftTable { table } => table.name != "routerd_policy",
        Op::DeleteNftTable { key } => key.name == "filter" || key.name == "routerd_somebody_elses",
        Op::UpdateNftSets { table, .. } => table.name != "routerd_policy",
        Op::AddAddress { address } | Op::DeleteAddress { address } => address.owner.is_empty(),
        Op::AddLink { link } | Op::SetLink { link } | Op::DeleteLink { link } => {
            link.owner.is_empty()
        }
        Op::AnnounceLink { owner, .. } | Op::SetForwarding { owner, .. } => owner.is_empty(),
        Op::AddNeighProxy { proxy }
        | Op::DeleteNeighProxy { proxy }
        | Op::AnnounceNeighProxy { proxy } => proxy.owner.is_empty(),
    }
}

#[test]
fn plan_from_foreign_kernel_orders_routes_tables_rules() {
    let mut dp = foreign_kernel();
    let plan = diff(&desired(), &dp.observe().unwrap(), &Ledger::default());
    let lines: Vec<String> = plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "ip route add default via 198.51.100.1 dev eth1 table 100 proto 122 metric 50",
            "ip route add default dev eth2 table 101 proto 122 metric 50",
            "nft -f (replace table ip routerd_policy: 1 chains, 1 rules)",
            "ip -4 rule add priority 10100 fwmark 0x10 table 100",
            "ip -4 rule add priority 10101 fwmark 0x20 table 101",
        ]
    );
    assert!(!plan.ops.iter().any(touches_foreign));
}

#[test]
fn reconcile_is_idempotent_and_keeps_foreign_state() {
    let mut dp = foreign_kernel();
    let before = dp.clone();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    let out = reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    assert_eq!(out.plan.ops.len(), 5);
    assert!(out.retries.is_empty());
    assert_eq!(ledger.routes.len(), 2);
    assert_eq!(ledger.rules.len(), 2);
    assert_eq!(ledger.nft.len(), 1);

    // Applying again is a no-op.
    let executed = dp.ops_executed;
    let again = reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    assert!(again.plan.is_empty(), "second plan: {}", again.plan);
    assert_eq!(dp.ops_executed, executed);

    // Foreign objects are all still there, unchanged.
    for r in before.routes {
        assert!(dp.routes.contains(&r), "foreign route {r} lost");
    }
    for r in before.rules {
        assert!(dp.rules.contains(&r), "foreign rule {r} lost");
    }
    assert_eq!(dp.foreign_nft, before.foreign_nft);
}

#[test]
fn a_change_applies_only_its_diff() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();

    let mut d = desired();
    d.routes[0].gateway = Some("198.51.100.2".parse().unwrap());
    let out = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["ip route replace default via 198.51.100.2 dev eth1 table 100 proto 122 metric 50"]
    );

    let mut d2 = d.clone();
    d2.nft[0] = table("routerd_policy", 0x20);
    let out = reconcile(&mut dp, &d2, &mut ledger, &opts).unwrap();
    assert_eq!(out.plan.ops.len(), 1);
    assert!(matches!(out.plan.ops[0], Op::ReplaceNftTable { .. }));
}

#[test]
fn removal_deletes_exactly_what_was_created_rules_first() {
    let mut dp = foreign_kernel();
    let before = dp.clone();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    let out = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "ip -4 rule del priority 10100 fwmark 0x10 table 100",
            "ip -4 rule del priority 10101 fwmark 0x20 table 101",
            "ip route del default via 198.51.100.1 dev eth1 table 100 proto 122 metric 50",
            "ip route del default dev eth2 table 101 proto 122 metric 50",
            "nft delete table ip routerd_policy",
        ]
    );
    assert_eq!(dp.routes, before.routes);
    assert_eq!(dp.rules, before.rules);
    assert!(dp.nft.is_empty());
    assert_eq!(dp.foreign_nft, before.foreign_nft);
    assert!(ledger.is_empty());
}

#[test]
fn unledgered_objects_with_routerd_markers_are_not_deleted() {
    // A route carrying our protocol and a rule in our range that routerd
    // did not record (another tool, or a lost ledger) stay.
    let mut dp = MemDataplane::new();
    dp.routes.push(route(150, "192.0.2.0/24", "eth5", None));
    dp.rules.push(rule(10500, 0x50, 150));
    let plan = diff(
        &DesiredState::default(),
        &dp.observe().unwrap(),
        &Ledger::default(),
    );
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn retained_owners_keep_their_objects() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    let pending = DesiredState {
        retained: [OWNER.to_string()].into(),
        ..DesiredState::default()
    };
    let out = reconcile(&mut dp, &pending, &mut ledger, &opts).unwrap();
    assert!(out.plan.is_empty(), "{}", out.plan);
    assert_eq!(dp.routes.len(), 2);
    // The ledger still owns them, so they go once the owner is deleted.
    let out = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    assert_eq!(out.plan.ops.len(), 5);
    assert!(dp.routes.is_empty());
}

#[test]
fn foreign_route_with_the_same_identity_is_a_conflict_not_a_replace() {
    let mut dp = MemDataplane::new();
    let mut foreign = route(100, "0.0.0.0/0", "eth7", None);
    foreign.protocol = 4;
    foreign.owner.clear();
    dp.routes.push(foreign.clone());
    let plan = diff(&desired(), &dp.observe().unwrap(), &Ledger::default());
    assert!(
        plan.ops
            .iter()
            .all(|op| !matches!(op, Op::ReplaceRoute { .. }))
    );
    assert_eq!(plan.conflicts.len(), 1);
    assert!(plan.conflicts[0].message.contains("foreign route"));
}

#[test]
fn identical_foreign_rule_is_a_conflict_and_never_adopted() {
    let mut dp = MemDataplane::new();
    let mut foreign = Rule::new(10100, 0x10, 100, "");
    foreign.protocol = 0; // `ip rule add` without proto
    dp.rules.push(foreign.clone());
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    let d = desired();
    let plan = diff(&d, &dp.observe().unwrap(), &ledger);
    assert_eq!(plan.conflicts.len(), 1);
    assert!(plan.conflicts[0].message.contains("foreign rule"));
    reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
    assert!(!ledger.rules.contains_key(&foreign.key()));
    // Removing routerd's config leaves the operator's rule in place.
    reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
    assert_eq!(dp.rules, vec![foreign]);
}

#[test]
fn rule_outside_the_owned_range_is_a_conflict() {
    let mut d = desired();
    d.rules.push(rule(100, 0x30, 102));
    let own = Ownership {
        rule_priorities: 10000..=10999,
        ..Ownership::default()
    };
    let plan = routerd_render::diff_with(&d, &Default::default(), &Ledger::default(), &own);
    assert_eq!(plan.conflicts.len(), 1);
    assert!(
        !plan
            .ops
            .iter()
            .any(|op| matches!(op, Op::AddRule { rule } if rule.priority == 100))
    );
}

#[test]
fn drift_is_repaired() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    // Someone deletes our route and flushes our table.
    dp.routes.retain(|r| r.table != 100);
    dp.nft.values_mut().for_each(|t| t.chains[0].rules.clear());
    let out = reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "ip route add default via 198.51.100.1 dev eth1 table 100 proto 122 metric 50",
            "nft -f (replace table ip routerd_policy: 1 chains, 1 rules)",
        ]
    );
}

const OTHER: &str = "net.routerd.net/v1alpha1/IPv4Route/other";

/// `desired()` plus a route of another owner.
fn desired_two_owners() -> DesiredState {
    let mut d = desired();
    let mut r = route(254, "203.0.113.0/24", "eth2", None);
    r.owner = OTHER.into();
    d.routes.push(r);
    let _ = d.normalize();
    d
}

#[test]
fn a_refused_operation_fails_only_its_owner() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    dp.refuse = vec!["rule add priority 10100".into()];
    let out = reconcile(
        &mut dp,
        &desired_two_owners(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(out.faults.len(), 1, "{:?}", out.faults);
    let f = &out.faults[0];
    assert_eq!(f.owner, OWNER);
    assert_eq!(f.reason, "ApplyFailed");
    assert!(
        f.message
            .starts_with("ip -4 rule add priority 10100 fwmark 0x10 table 100: Invalid argument"),
        "{}",
        f.message
    );
    // Everyone else's operations, and the owner's accepted ones, applied.
    assert!(dp.routes.iter().any(|r| r.owner == OTHER));
    assert!(dp.rules.iter().any(|r| r.priority == 10101));
    assert_eq!(dp.nft.len(), 1);
    assert_eq!(ledger.routes.len(), 3);
    // Once the kernel accepts it, only the missing rule is sent.
    dp.refuse.clear();
    let out = reconcile(
        &mut dp,
        &desired_two_owners(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["ip -4 rule add priority 10100 fwmark 0x10 table 100"]
    );
}

#[test]
fn a_refused_nft_table_is_loaded_again_next_time() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    dp.refuse = vec!["replace table ip routerd_policy".into()];
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(out.faults[0].reason, "ApplyFailed");
    assert!(dp.nft.is_empty());
    assert!(ledger.nft.is_empty());
    dp.refuse.clear();
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(out.faults.is_empty());
    assert_eq!(dp.nft.len(), 1);
}

#[test]
fn a_route_on_a_missing_device_waits_and_installs_when_it_appears() {
    let mut dp = MemDataplane::new();
    dp.links = Some(["eth1".to_string()].into());
    let mut ledger = Ledger::default();
    let out = reconcile(
        &mut dp,
        &desired_two_owners(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    // Nothing on eth2 was sent: the kernel never saw a doomed request.
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|op| op.to_string().contains("eth2"))
    );
    let reasons: Vec<(&str, &str)> = out
        .faults
        .iter()
        .map(|f| (f.owner.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [(OWNER, "DeviceNotReady"), (OTHER, "DeviceNotReady")]
    );
    assert!(
        out.faults[0]
            .message
            .contains("device \"eth2\" does not exist")
    );
    // The owner's other objects are installed.
    assert!(
        dp.routes
            .iter()
            .any(|r| r.device.as_deref() == Some("eth1"))
    );
    assert_eq!(dp.rules.len(), 2);
    dp.links = Some(["eth1".to_string(), "eth2".to_string()].into());
    let out = reconcile(
        &mut dp,
        &desired_two_owners(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert_eq!(out.plan.ops.len(), 2, "{}", out.plan);
    assert_eq!(dp.routes.len(), 3);
}

#[test]
fn protected_interfaces_are_never_touched() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    // A routerd route on eth2 from before the interface was protected.
    let mut old = route(102, "192.0.2.0/24", "eth2", None);
    old.owner = OTHER.into();
    dp.routes.push(old.clone());
    ledger.routes.insert(old.key(), OTHER.into());
    let opts = ReconcileOptions {
        ownership: Ownership {
            protected_devices: ["eth2".to_string()].into(),
            ..Ownership::default()
        },
        ..ReconcileOptions::default()
    };
    let out = reconcile(&mut dp, &desired_two_owners(), &mut ledger, &opts).unwrap();
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|op| op.to_string().contains("eth2")),
        "{}",
        out.plan
    );
    assert!(dp.routes.contains(&old), "the stale route on eth2 stays");
    assert!(
        out.faults.iter().all(|f| f.reason == "Protected"),
        "{:?}",
        out.faults
    );
    assert_eq!(out.faults.len(), 2);
}

#[test]
fn a_route_held_by_a_foreign_route_is_a_conflict_not_installed() {
    let mut dp = foreign_kernel();
    let mut foreign = route(254, "203.0.113.0/24", "eth0", None);
    foreign.protocol = 4;
    foreign.owner.clear();
    dp.routes.push(foreign.clone());
    let mut ledger = Ledger::default();
    let out = reconcile(
        &mut dp,
        &desired_two_owners(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(out.faults.len(), 1);
    assert_eq!(out.faults[0].owner, OTHER);
    assert_eq!(out.faults[0].reason, "Conflict");
    assert!(
        out.faults[0].message.contains("proto 4"),
        "{}",
        out.faults[0].message
    );
    assert!(dp.routes.contains(&foreign));
    assert!(!ledger.routes.contains_key(&foreign.key()));
}

#[test]
fn marked_objects_nobody_claims_are_reported_as_orphans_and_kept() {
    let mut dp = foreign_kernel();
    let stray = route(150, "192.0.2.0/24", "eth1", None);
    dp.routes.push(stray.clone());
    let mut ledger = Ledger::default();
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(dp.routes.contains(&stray));
    let listed = out.orphans.describe();
    assert!(
        listed
            .iter()
            .any(|o| o.contains("192.0.2.0/24") && o.contains("table 150")),
        "{listed:?}"
    );
    assert!(listed.iter().any(|o| o.contains("routerd_somebody_elses")));
    // Removal only on request: claiming them makes the next diff delete them.
    ledger.absorb(out.orphans.clone());
    let again = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(!dp.routes.contains(&stray));
    assert!(again.orphans.is_empty(), "{:?}", again.orphans.describe());
}

#[test]
fn ledger_round_trips_through_json() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    let text = serde_json::to_string(&ledger).unwrap();
    let back: Ledger = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ledger);
}

/// A dataplane that acknowledges everything and changes nothing.
struct Liar(MemDataplane);

impl Dataplane for Liar {
    fn observe(&mut self) -> Result<routerd_render::Observed, routerd_render::DataplaneError> {
        self.0.observe()
    }
    fn apply(&mut self, _plan: &routerd_render::Plan) -> Result<(), routerd_render::ApplyError> {
        Ok(())
    }
}

#[test]
fn verification_fails_after_bounded_retries() {
    let mut dp = Liar(MemDataplane::new());
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions {
        verify_retries: 2,
        ..ReconcileOptions::default()
    };
    let out = reconcile(&mut dp, &desired(), &mut ledger, &opts).unwrap();
    assert_eq!(out.retries.len(), 2);
    assert_eq!(out.faults.len(), 1);
    assert_eq!(out.faults[0].owner, OWNER);
    assert_eq!(out.faults[0].reason, "VerifyFailed");
    assert!(out.faults[0].message.contains("the kernel still differs"));
    assert!(
        ledger.is_empty(),
        "nothing the kernel lacks is recorded as owned"
    );
}

/// A refused route or rule of an IPv6 hostTraffic policy is reported in
/// routerd's words, and phased Pending like its missing source.
#[test]
fn a_refused_host_traffic_rule_is_host_policy_apply_failed() {
    use routerd_render::ir::Family;
    const HOST: &str = "net.routerd.net/v1alpha1/EgressRoutePolicy/host";
    let mut d = DesiredState::default();
    let mut r = Route::new(300, "::/0".parse().unwrap(), 50, RouteKind::Unicast);
    r.gateway = Some("fe80::1".parse().unwrap());
    r.device = Some("ens18".into());
    r.preferred_source = Some("2001:db8:ff::2".parse().unwrap());
    r.owner = HOST.into();
    d.routes.push(r);
    d.rules.push(
        Rule::new(10300, 0, 300, HOST)
            .in_family(Family::V6)
            .with_iif("lo"),
    );
    d.host_policies.insert(HOST.into());
    let mut dp = MemDataplane::new();
    dp.refuse = vec!["ip -6 rule add priority 10300 iif lo".into()];
    let mut ledger = Ledger::default();
    let out = reconcile(&mut dp, &d, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert_eq!(out.faults.len(), 1, "{:?}", out.faults);
    assert_eq!(out.faults[0].reason, "HostPolicyApplyFailed");
    assert_eq!(
        routerd_render::fault::phase_for(HOST, "HostPolicyApplyFailed"),
        "Pending"
    );
    assert_eq!(
        routerd_render::fault::phase_for(HOST, "PreferredSourceUnavailable"),
        "Pending"
    );
    // The route went in; the rule follows once the kernel takes it.
    assert_eq!(dp.routes.len(), 1);
    dp.refuse.clear();
    let out = reconcile(&mut dp, &d, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert_eq!(
        out.plan.to_string(),
        "ip -6 rule add priority 10300 iif lo table 300\n"
    );
}

/// A `whenNoCandidate` policy's filter table (see render::failclosed).
fn fail_closed_table() -> NftTable {
    let mut t = NftTable::new(NftFamily::Ip, "routerd_failclosed_p");
    t.owners.insert(OWNER.into());
    t.chains.push(NftChain {
        name: "forward".into(),
        chain_type: ChainType::Filter,
        hook: Hook::Forward,
        priority: Priority::Num(-10),
        rules: vec![NftRule {
            exprs: vec![Expr::Drop],
        }],
    });
    t
}

#[test]
fn a_policy_closes_before_anything_else_and_opens_after_its_path_is_programmed() {
    // Closed: the path's tables are there (probes), no marks, the filter.
    let mut closed = desired();
    closed.nft = vec![fail_closed_table()];
    closed.routes.push({
        let mut r = route(254, "10.0.0.0/8", "eth1", None);
        r.owner = "net.routerd.net/v1alpha1/IPv4Route/static".into();
        r
    });
    let _ = closed.normalize();
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let first = diff(&closed, &dp.observe().unwrap(), &ledger);
    assert!(
        matches!(&first.ops[0], Op::ReplaceNftTable { table } if table.name == "routerd_failclosed_p"),
        "the filter goes in before any route:\n{first}"
    );
    reconcile(&mut dp, &closed, &mut ledger, &ReconcileOptions::default()).unwrap();

    // A candidate became ready: marks in, filter out, in that order.
    let open = desired();
    let plan = diff(&open, &dp.observe().unwrap(), &ledger);
    let pos = |want: &dyn Fn(&Op) -> bool| plan.ops.iter().position(want).unwrap();
    let marks =
        pos(&|op| matches!(op, Op::ReplaceNftTable { table } if table.name == "routerd_policy"));
    let filter =
        pos(&|op| matches!(op, Op::DeleteNftTable { key } if key.name == "routerd_failclosed_p"));
    assert_eq!(filter, plan.ops.len() - 1, "{plan}");
    assert!(marks < filter, "{plan}");
    reconcile(&mut dp, &open, &mut ledger, &ReconcileOptions::default()).unwrap();
    let observed = dp.observe().unwrap();
    assert!(
        !observed
            .nft
            .iter()
            .any(|t| t.key.name == "routerd_failclosed_p")
    );
    assert!(ledger.nft.keys().all(|k| k.name != "routerd_failclosed_p"));
}

#[test]
fn a_policy_stays_closed_while_the_kernel_refuses_its_path() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let closed = DesiredState {
        nft: vec![fail_closed_table()],
        ..DesiredState::default()
    };
    reconcile(&mut dp, &closed, &mut ledger, &ReconcileOptions::default()).unwrap();
    let is_closed = |dp: &MemDataplane| dp.nft.keys().any(|k| k.name == "routerd_failclosed_p");
    assert!(is_closed(&dp));

    // The candidate is ready but the kernel refuses its table route.
    dp.refuse = vec!["table 100".into()];
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(is_closed(&dp), "opened although its path was refused");
    assert!(
        out.faults
            .iter()
            .any(|f| f.owner == OWNER && f.reason == "ApplyFailed"),
        "{:?}",
        out.faults
    );
    assert!(ledger.nft.keys().any(|k| k.name == "routerd_failclosed_p"));

    // The kernel takes it: the policy opens.
    dp.refuse.clear();
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert!(!is_closed(&dp));
}

/// A policy table that matches destinations in a named set, as an
/// IPAddressSet renders.
fn set_table(elements: &[&str]) -> NftTable {
    let mut t = table("routerd_policy", 0x10);
    t.sets.push(NftSet {
        family: Family::V4,
        name: "ip_address_set_cloud".into(),
        elements: elements.iter().map(|e| e.parse().unwrap()).collect(),
    });
    t.chains[0].rules[0].exprs.insert(
        0,
        Expr::Ip {
            family: Family::V4,
            field: IpField::Daddr,
            op: CmpOp::Eq,
            value: AddrValue::Set("ip_address_set_cloud".into()),
        },
    );
    t
}

fn with_set(elements: &[&str]) -> DesiredState {
    let mut d = desired();
    d.nft[0] = set_table(elements);
    d
}

#[test]
fn changed_set_elements_are_updated_in_place_not_replaced() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(
        &mut dp,
        &with_set(&["192.0.2.1/32", "192.0.2.2/32"]),
        &mut ledger,
        &opts,
    )
    .unwrap();

    let next = with_set(&["192.0.2.2/32", "198.51.100.7/32"]);
    let out = reconcile(&mut dp, &next, &mut ledger, &opts).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert!(
        out.retries.is_empty(),
        "verify found a difference: {:?}",
        out.retries
    );
    assert_eq!(
        out.plan.ops,
        [Op::UpdateNftSets {
            table: NftTableKey {
                family: NftFamily::Ip,
                name: "routerd_policy".into(),
            },
            owners: [OWNER.to_string()].into(),
            sets: vec![NftSetDelta {
                name: "ip_address_set_cloud".into(),
                family: Family::V4,
                interval: false,
                add: vec!["198.51.100.7/32".parse().unwrap()],
                remove: vec!["192.0.2.1/32".parse().unwrap()],
            }],
        }]
    );
    assert_eq!(
        out.plan.ops[0].to_string(),
        "nft -f (update sets of table ip routerd_policy: ip_address_set_cloud; +1 -1 elements)"
    );
    // The kernel now holds exactly the desired table, and nothing is left.
    assert_eq!(dp.nft.values().next(), Some(&next.nft[0]));
    let again = diff(&next, &dp.observe().unwrap(), &ledger);
    assert!(again.is_empty(), "{again}");
}

#[test]
fn a_set_emptied_and_refilled_stays_in_place() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &with_set(&["192.0.2.1/32"]), &mut ledger, &opts).unwrap();
    for step in [&[][..], &["192.0.2.9/32"][..]] {
        let out = reconcile(&mut dp, &with_set(step), &mut ledger, &opts).unwrap();
        assert!(
            matches!(out.plan.ops.as_slice(), [Op::UpdateNftSets { .. }]),
            "{}",
            out.plan
        );
    }
}

#[test]
fn a_rule_or_set_flag_change_still_replaces_the_table() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &with_set(&["192.0.2.1/32"]), &mut ledger, &opts).unwrap();

    // A prefix makes the set an interval set: a new declaration.
    let out = reconcile(&mut dp, &with_set(&["192.0.2.0/24"]), &mut ledger, &opts).unwrap();
    assert!(matches!(
        out.plan.ops.as_slice(),
        [Op::ReplaceNftTable { .. }]
    ));

    // Elements and a mark at once: a rule changed.
    let mut d = with_set(&["192.0.2.0/24", "203.0.113.0/24"]);
    d.nft[0].chains[0].rules[0].exprs[1] = Expr::SetMark(MarkSource::Const(0x20));
    let out = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
    assert!(matches!(
        out.plan.ops.as_slice(),
        [Op::ReplaceNftTable { .. }]
    ));
}

#[test]
fn a_drifted_table_is_replaced_even_if_only_elements_differ() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &with_set(&["192.0.2.1/32"]), &mut ledger, &opts).unwrap();
    // Someone else added an element behind routerd's back.
    let key = dp.nft.keys().next().unwrap().clone();
    dp.nft.get_mut(&key).unwrap().sets[0]
        .elements
        .push("192.0.2.77/32".parse().unwrap());
    let out = reconcile(&mut dp, &with_set(&["192.0.2.2/32"]), &mut ledger, &opts).unwrap();
    assert!(matches!(
        out.plan.ops.as_slice(),
        [Op::ReplaceNftTable { .. }]
    ));
}

#[test]
fn a_refused_set_update_is_retried_and_faults_its_owner() {
    let mut dp = MemDataplane::new();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    reconcile(&mut dp, &with_set(&["192.0.2.1/32"]), &mut ledger, &opts).unwrap();
    dp.refuse.push("update sets".into());
    let next = with_set(&["192.0.2.2/32"]);
    let out = reconcile(&mut dp, &next, &mut ledger, &opts).unwrap();
    assert_eq!(out.faults.len(), 1, "{:?}", out.faults);
    assert_eq!(out.faults[0].reason, "ApplyFailed");
    dp.refuse.clear();
    let out = reconcile(&mut dp, &next, &mut ledger, &opts).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert!(matches!(
        out.plan.ops.as_slice(),
        [Op::UpdateNftSets { .. }]
    ));
    assert_eq!(dp.nft.values().next(), Some(&next.nft[0]));
}

#[test]
fn the_inverse_of_a_set_update_swaps_adds_and_removes() {
    let op = Op::UpdateNftSets {
        table: NftTableKey {
            family: NftFamily::Ip,
            name: "routerd_policy".into(),
        },
        owners: Default::default(),
        sets: vec![NftSetDelta {
            name: "s".into(),
            family: Family::V4,
            interval: false,
            add: vec!["192.0.2.1/32".parse().unwrap()],
            remove: vec![],
        }],
    };
    let Some(Op::UpdateNftSets { sets, .. }) = op.inverse() else {
        panic!("no inverse");
    };
    assert!(sets[0].add.is_empty());
    assert_eq!(sets[0].remove, ["192.0.2.1/32".parse().unwrap()]);
}

const ADDR_OWNER: &str = "net.routerd.net/v1alpha1/IPv4StaticAddress/lan";

fn addr(device: &str, a: &str, owner: &str) -> routerd_render::ir::Address {
    let mut x = routerd_render::ir::Address::new(device, a.parse().unwrap());
    x.owner = owner.into();
    x
}

fn with_address(a: routerd_render::ir::Address) -> DesiredState {
    let mut d = desired();
    d.addresses.push(a);
    let _ = d.normalize();
    d
}

#[test]
fn an_address_is_added_first_owned_and_removed_when_the_resource_goes() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    let want = with_address(addr("eth1", "192.0.2.10/24", ADDR_OWNER));
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert_eq!(
        out.plan.ops.first().map(ToString::to_string).as_deref(),
        Some("ip -4 addr add 192.0.2.10/24 dev eth1"),
        "addresses go before the routes that may use them"
    );
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    assert_eq!(ledger.addresses.len(), 1);
    assert_eq!(dp.addresses.len(), 1);

    // Idempotent.
    let again = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);

    // The resource goes: its address goes, last.
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert_eq!(
        out.plan
            .ops
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["ip -4 addr del 192.0.2.10/24 dev eth1"]
    );
    assert!(dp.addresses.is_empty());
    assert!(ledger.addresses.is_empty());
}

#[test]
fn a_foreign_address_is_never_deleted_nor_adopted() {
    let mut dp = foreign_kernel();
    // The operator's address, identical to the desired one, and another.
    dp.addresses.push(addr("eth1", "192.0.2.10/24", ""));
    dp.addresses.push(addr("eth1", "203.0.113.5/24", ""));
    let mut ledger = Ledger::default();
    let mut want_addr = addr("eth1", "192.0.2.10/24", ADDR_OWNER);
    want_addr.exclusive = true;
    let want = with_address(want_addr);
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|o| matches!(o, Op::AddAddress { .. } | Op::DeleteAddress { .. })),
        "{}",
        out.plan
    );
    assert!(
        ledger.addresses.is_empty(),
        "an identical foreign address is not adopted"
    );
    assert!(
        out.faults.is_empty(),
        "the kernel carries the address: {:?}",
        out.faults
    );
    let notes: Vec<&str> = out.notes.iter().map(|n| n.message.as_str()).collect();
    assert!(
        notes.iter().any(|n| n.contains("was already there")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("203.0.113.5/24")),
        "exclusive reports the other address: {notes:?}"
    );

    // The resource goes: the operator's addresses stay.
    let out = reconcile(
        &mut dp,
        &desired(),
        &mut ledger,
        &ReconcileOptions::default(),
    )
    .unwrap();
    assert!(
        !out.plan
            .ops
            .iter()
            .any(|o| matches!(o, Op::DeleteAddress { .. }))
    );
    assert_eq!(dp.addresses.len(), 2);
}

#[test]
fn an_address_waits_for_its_device_and_an_overlap_is_blocked() {
    let mut dp = foreign_kernel();
    dp.links = Some(["eth0", "eth1", "eth2", "eth9"].map(String::from).into());
    dp.addresses.push(addr("eth2", "192.0.2.99/25", ""));
    let mut ledger = Ledger::default();
    let mut want = desired();
    want.addresses.push(addr("lan0", "10.9.0.1/24", ADDR_OWNER));
    want.addresses.push(addr(
        "eth1",
        "192.0.2.10/24",
        "net.routerd.net/v1alpha1/IPv4StaticAddress/b",
    ));
    let mut allowed = addr(
        "eth1",
        "192.0.2.11/24",
        "net.routerd.net/v1alpha1/IPv4StaticAddress/c",
    );
    allowed.allow_overlap = true;
    want.addresses.push(allowed);
    let _ = want.normalize();
    let out = reconcile(&mut dp, &want, &mut ledger, &ReconcileOptions::default()).unwrap();
    let reason = |o: &str| {
        out.faults
            .iter()
            .find(|f| f.owner == o)
            .map(|f| f.reason.clone())
    };
    assert_eq!(reason(ADDR_OWNER).as_deref(), Some("DeviceNotReady"));
    assert_eq!(
        reason("net.routerd.net/v1alpha1/IPv4StaticAddress/b").as_deref(),
        Some("OverlappingIPv4Prefix")
    );
    assert_eq!(reason("net.routerd.net/v1alpha1/IPv4StaticAddress/c"), None);
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert!(
        lines.contains(&"ip -4 addr add 192.0.2.11/24 dev eth1".to_string()),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("lan0") || l.contains("192.0.2.10/")),
        "{lines:?}"
    );
    assert_eq!(
        routerd_render::fault::phase_for(
            "net.routerd.net/v1alpha1/IPv4StaticAddress/b",
            "OverlappingIPv4Prefix"
        ),
        "Blocked"
    );
    assert_eq!(
        routerd_render::fault::phase_for(ADDR_OWNER, "DeviceNotReady"),
        "Pending"
    );
}

#[test]
fn a_ledger_with_addresses_round_trips_and_old_ledgers_still_load() {
    let mut l = Ledger::default();
    l.addresses
        .insert(addr("eth1", "192.0.2.10/24", "").key(), ADDR_OWNER.into());
    let text = serde_json::to_string(&l).unwrap();
    let back: Ledger = serde_json::from_str(&text).unwrap();
    assert_eq!(back, l);
    let old: Ledger = serde_json::from_str(r#"{"routes":[],"rules":[],"nft":[]}"#).unwrap();
    assert!(old.addresses.is_empty());
}

#[test]
fn an_address_moving_to_another_device_is_not_blocked_by_itself() {
    let mut dp = foreign_kernel();
    let mut ledger = Ledger::default();
    let opts = ReconcileOptions::default();
    let before = with_address(addr("eth1", "192.0.2.10/24", ADDR_OWNER));
    reconcile(&mut dp, &before, &mut ledger, &opts).unwrap();
    let after = with_address(addr("eth2", "192.0.2.10/24", ADDR_OWNER));
    let out = reconcile(&mut dp, &after, &mut ledger, &opts).unwrap();
    assert!(out.faults.is_empty(), "{:?}", out.faults);
    let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "ip -4 addr add 192.0.2.10/24 dev eth2",
            "ip -4 addr del 192.0.2.10/24 dev eth1"
        ]
    );
    assert_eq!(dp.addresses.len(), 1);
    assert_eq!(dp.addresses[0].device, "eth2");
}
