//! Namespace tests of in-place set updates (root only): an IPAddressSet
//! refresh changes elements without rebuilding the table, and a 10,000-name
//! refresh is one transaction. The timing is printed, not asserted; run in
//! release for the number docs/performance.md records:
//! `cargo test --release -p routerd-render --test netns_sets -- --ignored --nocapture`.

#![cfg(feature = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use routerd_render::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, IpNet, MarkSource, NftChain,
    NftFamily, NftRule, NftSet, NftTable, Priority,
};
use routerd_render::linux::{LinuxDataplane, netns};
use routerd_render::plan::Op;
use routerd_render::{
    Dataplane, DesiredState, Ledger, Ownership, ReconcileOptions, diff, reconcile,
};
use serde_json::Value;

const OWNER: &str = "net.routerd.net/v1alpha1/IPAddressSet/cloud";

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn setup(tag: &str) -> Ns {
    let ns = Ns(format!("rdtset{}{tag}", std::process::id()));
    let ok = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip netns add {}", ns.0);
    ns
}

/// Runs `f` on a thread inside the namespace.
fn run_in<T: Send + 'static>(ns: &Ns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.0.clone();
    std::thread::spawn(move || {
        netns::enter(&name).expect("setns");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    v.iter().map(|e| e.parse().unwrap()).collect()
}

fn match_set(family: Family, set: &str, mark: u32) -> NftRule {
    NftRule {
        exprs: vec![
            Expr::Ip {
                family,
                field: IpField::Daddr,
                op: CmpOp::Eq,
                value: AddrValue::Set(set.into()),
            },
            Expr::SetMark(MarkSource::Const(mark)),
        ],
    }
}

/// A policy table with a host set (DNS answers) and an interval set
/// (spec prefixes plus answers), each matched by one rule.
fn desired(hosts: Vec<IpNet>, prefixes: Vec<IpNet>) -> DesiredState {
    let mut t = NftTable::new(NftFamily::Ip, "routerd_policy");
    t.owners.insert(OWNER.into());
    t.sets.push(NftSet {
        family: Family::V4,
        name: "ip_address_set_hosts".into(),
        elements: hosts,
    });
    t.sets.push(NftSet {
        family: Family::V4,
        name: "ip_address_set_nets".into(),
        elements: prefixes,
    });
    t.chains.push(NftChain {
        name: "prerouting".into(),
        chain_type: ChainType::Filter,
        hook: Hook::Prerouting,
        priority: Priority::Mangle,
        rules: vec![
            match_set(Family::V4, "ip_address_set_hosts", 0x10),
            match_set(Family::V4, "ip_address_set_nets", 0x11),
        ],
    });
    let mut d = DesiredState {
        nft: vec![t],
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

fn nft_json(ns: &Ns, args: &[&str]) -> Value {
    let mut v = vec!["netns", "exec", &ns.0, "nft", "-a", "-j"];
    v.extend_from_slice(args);
    let out = Command::new("ip").args(&v).output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every object of the table with its kernel handle: a rebuilt table,
/// chain, rule or set gets new ones.
fn handles(ns: &Ns) -> Vec<String> {
    let v = nft_json(ns, &["list", "table", "ip", "routerd_policy"]);
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        for (kind, o) in item.as_object().unwrap() {
            if let Some(h) = o.get("handle") {
                let name = o
                    .get("name")
                    .or_else(|| o.get("chain"))
                    .cloned()
                    .unwrap_or_default();
                out.push(format!("{kind} {name} {h}"));
            }
        }
    }
    out.sort();
    out
}

fn elements(ns: &Ns, set: &str) -> Vec<String> {
    let v = nft_json(ns, &["list", "set", "ip", "routerd_policy", set]);
    let set = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i.get("set"))
        .unwrap()
        .clone();
    let mut out: Vec<String> = set
        .get("elem")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => {
                        let p = &other["prefix"];
                        format!("{}/{}", p["addr"].as_str().unwrap(), p["len"])
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
#[ignore = "needs root: network namespaces"]
fn set_elements_change_in_place_and_the_table_keeps_its_handles() {
    let ns = setup("h");
    let first = desired(
        nets(&["192.0.2.1/32", "192.0.2.2/32"]),
        nets(&["10.0.0.0/24", "198.51.100.0/24"]),
    );
    // A DNS refresh: one answer gone, one new; a /24 widened to its /16
    // (overlapping the old interval) and another prefix added.
    let second = desired(
        nets(&["192.0.2.2/32", "192.0.2.3/32"]),
        nets(&["10.0.0.0/16", "172.16.0.0/12", "198.51.100.0/24"]),
    );
    let ledger = Ledger::default();
    let opts = ReconcileOptions::default();

    let (d, mut l, o) = (first.clone(), ledger, opts.clone());
    let ledger = run_in(&ns, move || {
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let out = reconcile(&mut dp, &d, &mut l, &o).unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
        l
    });
    let before = handles(&ns);
    assert!(before.iter().any(|h| h.starts_with("rule ")), "{before:?}");

    let (d, mut l) = (second.clone(), ledger);
    let (plan, retries) = run_in(&ns, move || {
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let out = reconcile(&mut dp, &d, &mut l, &opts).unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
        // What list_owned reads back is what was desired: nothing left.
        let again = diff(&d, &dp.observe().unwrap(), &l);
        assert!(again.is_empty(), "{again}");
        (out.plan, out.retries)
    });
    assert!(
        matches!(plan.ops.as_slice(), [Op::UpdateNftSets { .. }]),
        "{plan}"
    );
    assert!(retries.is_empty(), "verify saw a difference: {retries:?}");
    assert_eq!(handles(&ns), before, "the table was rebuilt");
    assert_eq!(
        elements(&ns, "ip_address_set_hosts"),
        ["192.0.2.2", "192.0.2.3"]
    );
    assert_eq!(
        elements(&ns, "ip_address_set_nets"),
        ["10.0.0.0/16", "172.16.0.0/12", "198.51.100.0/24"]
    );
}

fn hosts(base: u32, n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| IpNet::from(std::net::IpAddr::V4(Ipv4Addr::from(base + i))))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_10k_name_refresh_with_every_answer_changed_is_one_transaction() {
    const N: u32 = 10_000;
    let ns = setup("p");
    let (updates, replaces) = run_in(&ns, move || {
        let mut dp = LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let sets = [
            desired(hosts(0x0A00_0000, N), nets(&["198.51.100.0/24"])),
            desired(hosts(0x0A01_0000, N), nets(&["198.51.100.0/24"])),
        ];
        reconcile(&mut dp, &sets[0], &mut ledger, &opts).unwrap();
        let mut updates = Vec::new();
        for run in 1..=9 {
            let d = &sets[run % 2];
            let observed = dp.observe().unwrap();
            let plan = diff(d, &observed, &ledger);
            let [Op::UpdateNftSets { sets: deltas, .. }] = plan.ops.as_slice() else {
                panic!("expected one in-place update: {plan}");
            };
            assert_eq!(deltas[0].add.len(), N as usize);
            assert_eq!(deltas[0].remove.len(), N as usize);
            let t0 = Instant::now();
            dp.apply(&plan).unwrap();
            updates.push(t0.elapsed());
            ledger.commit(d, &dp.observe().unwrap(), &Ownership::default());
        }
        // For comparison: the same change as a whole-table replacement.
        let mut replaces = Vec::new();
        for run in 0..5 {
            let d = &sets[run % 2];
            let plan = routerd_render::plan::Plan {
                ops: vec![Op::ReplaceNftTable {
                    table: d.nft[0].clone(),
                }],
                conflicts: Vec::new(),
                notes: Vec::new(),
            };
            let t0 = Instant::now();
            dp.apply(&plan).unwrap();
            replaces.push(t0.elapsed());
        }
        (updates, replaces)
    });
    println!(
        "10k-name set refresh (10k deletes + 10k adds, one nft -j transaction): median {:?} (runs {updates:?}); whole-table replace median {:?}",
        median(updates.clone()),
        median(replaces.clone()),
    );
}
