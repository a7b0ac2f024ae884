//! The rustables backend: what it accepts, and (root, in throwaway network
//! namespaces) what the kernel holds after it loads a table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::Ipv4Net;
use routerd_nft_rustables::RustablesBackend;
use routerd_render::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, L4Proto, MarkSource, NatAddr,
    NftChain, NftFamily, NftRule, NftSet, NftTable, Priority,
};
use routerd_render::linux::{LinuxDataplane, NftJson, netns};
use routerd_render::nft_backend::NftBackend;
use routerd_render::{DesiredState, Ledger, Ownership, ReconcileOptions, reconcile};

fn chain(name: &str, t: ChainType, hook: Hook, prio: Priority, rules: Vec<Vec<Expr>>) -> NftChain {
    NftChain {
        name: name.into(),
        chain_type: t,
        hook,
        priority: prio,
        rules: rules.into_iter().map(|exprs| NftRule { exprs }).collect(),
    }
}

fn ip(field: IpField, op: CmpOp, net: &str) -> Expr {
    Expr::Ip {
        family: Family::V4,
        field,
        op,
        value: AddrValue::Prefix(net.parse().unwrap()),
    }
}

/// A mark-mode policy table with a plain named set: all expressible.
fn policy_table() -> NftTable {
    let mut t = NftTable::new(NftFamily::Ip, "routerd_policy");
    t.owners.insert("p".into());
    t.sets.push(NftSet {
        family: Family::V4,
        name: "ip_address_set_bypass".into(),
        elements: vec![
            "192.0.2.10/32".parse().unwrap(),
            "192.0.2.11/32".parse().unwrap(),
        ],
    });
    t.chains.push(chain(
        "prerouting",
        ChainType::Filter,
        Hook::Prerouting,
        Priority::Mangle,
        vec![
            vec![
                Expr::IifName("lan0".into()),
                ip(IpField::Saddr, CmpOp::Eq, "192.168.10.0/24"),
                Expr::Ip {
                    family: Family::V4,
                    field: IpField::Daddr,
                    op: CmpOp::Eq,
                    value: AddrValue::Set("ip_address_set_bypass".into()),
                },
                Expr::Accept,
            ],
            vec![
                ip(IpField::Saddr, CmpOp::Eq, "192.168.10.0/24"),
                ip(IpField::Daddr, CmpOp::Ne, "10.0.0.0/8"),
                Expr::CtMark {
                    op: CmpOp::Ne,
                    mark: 0,
                },
                Expr::SetMark(MarkSource::CtMark),
            ],
            vec![
                ip(IpField::Saddr, CmpOp::Eq, "192.168.10.0/24"),
                Expr::CtMark {
                    op: CmpOp::Eq,
                    mark: 0,
                },
                Expr::SetMark(MarkSource::Const(0x10)),
                Expr::SetCtMarkFromMark,
            ],
        ],
    ));
    t
}

/// NAT: masquerade, single-address snat, DNAT redirects (tcp and sctp).
fn nat_table() -> NftTable {
    let mut t = NftTable::new(NftFamily::Ip, "routerd_nat");
    t.owners.insert("n".into());
    t.chains.push(chain(
        "prerouting",
        ChainType::Nat,
        Hook::Prerouting,
        Priority::Dstnat,
        vec![
            vec![
                Expr::IifName("wan0".into()),
                Expr::Dport {
                    proto: L4Proto::Tcp,
                    port: 8080,
                },
                Expr::Dnat {
                    addr: "203.0.113.26".parse().unwrap(),
                    port: Some(80),
                },
            ],
            vec![
                Expr::Dport {
                    proto: L4Proto::Sctp,
                    port: 9,
                },
                Expr::Dnat {
                    addr: "203.0.113.26".parse().unwrap(),
                    port: None,
                },
            ],
        ],
    ));
    t.chains.push(chain(
        "postrouting",
        ChainType::Nat,
        Hook::Postrouting,
        Priority::Srcnat,
        vec![
            vec![
                Expr::OifName("wan0".into()),
                ip(IpField::Saddr, CmpOp::Eq, "192.168.10.0/24"),
                Expr::Masquerade {
                    ports: None,
                    persistent: false,
                },
            ],
            vec![
                Expr::OifName("wan1".into()),
                ip(IpField::Saddr, CmpOp::Eq, "192.168.20.0/24"),
                Expr::Snat {
                    addr: NatAddr::Single("198.51.100.9".parse().unwrap()),
                    ports: None,
                    persistent: false,
                },
            ],
        ],
    ));
    t
}

#[test]
fn supports_exactly_what_rustables_can_express() {
    let b = RustablesBackend::new();
    assert_eq!(b.supports(&policy_table()), Ok(()));
    assert_eq!(b.supports(&nat_table()), Ok(()));

    let mut jhash = policy_table();
    jhash.chains[0].rules[0].exprs = vec![Expr::SetMark(MarkSource::JhashMap {
        family: Family::V4,
        fields: vec![IpField::Saddr],
        marks: vec![1, 2],
    })];
    assert!(b.supports(&jhash).unwrap_err().contains("jhash"));

    let mut anon = policy_table();
    anon.chains[0].rules[0].exprs = vec![Expr::CtMarkIn {
        op: CmpOp::Eq,
        marks: vec![1, 2],
    }];
    assert!(b.supports(&anon).unwrap_err().contains("anonymous sets"));

    let mut interval = policy_table();
    interval.sets[0]
        .elements
        .push("198.51.100.0/24".parse().unwrap());
    assert!(b.supports(&interval).unwrap_err().contains("interval sets"));

    let mut range = nat_table();
    range.chains[1].rules[1].exprs[2] = Expr::Snat {
        addr: NatAddr::Range(
            "198.51.100.9".parse().unwrap(),
            "198.51.100.10".parse().unwrap(),
        ),
        ports: None,
        persistent: false,
    };
    assert!(b.supports(&range).unwrap_err().contains("snat ranges"));

    let mut ports = nat_table();
    ports.chains[1].rules[0].exprs[2] = Expr::Masquerade {
        ports: Some((1024, 2048)),
        persistent: false,
    };
    assert!(b.supports(&ports).is_err());
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "rdtrs{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        Ns(name)
    }
    fn nft(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.0, "nft"];
        v.extend_from_slice(args);
        sh(&v)
    }
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        std::thread::spawn(move || {
            netns::enter(&name).unwrap();
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn loads_policy_and_nat_tables_as_nft_lists_them() {
    let ns = Ns::new();
    ns.run(|| {
        let mut b = RustablesBackend::new();
        b.replace_table(&policy_table()).unwrap();
        b.replace_table(&nat_table()).unwrap();
        // Replacing again is atomic and does not duplicate anything.
        b.replace_table(&policy_table()).unwrap();
    });
    let policy = ns.nft(&["list", "table", "ip", "routerd_policy"]);
    for want in [
        "comment \"routerd.owner=routerd routerd.generation=1\"",
        "elements = { 192.0.2.10, 192.0.2.11 }",
        "type filter hook prerouting priority mangle; policy accept;",
        "iifname \"lan0\" ip saddr 192.168.10.0/24 ip daddr @ip_address_set_bypass accept",
        "ip saddr 192.168.10.0/24 ip daddr != 10.0.0.0/8 ct mark != 0x00000000 meta mark set ct mark",
        "ip saddr 192.168.10.0/24 ct mark 0x00000000 meta mark set 0x00000010 ct mark set meta mark",
    ] {
        assert!(policy.contains(want), "missing {want:?} in\n{policy}");
    }
    assert_eq!(policy.matches("meta mark set").count(), 2, "{policy}");
    let nat = ns.nft(&["list", "table", "ip", "routerd_nat"]);
    for want in [
        "iifname \"wan0\" tcp dport 8080 dnat to 203.0.113.26:80",
        "sctp dport 9 dnat to 203.0.113.26",
        "oifname \"wan0\" ip saddr 192.168.10.0/24 masquerade",
        "oifname \"wan1\" ip saddr 192.168.20.0/24 snat to 198.51.100.9",
    ] {
        assert!(nat.contains(want), "missing {want:?} in\n{nat}");
    }
    // The JSON listing (what observe reads) agrees on the shape.
    let listed = ns.run(|| NftJson::default().list_owned().unwrap());
    let p = listed
        .iter()
        .find(|o| o.key.name == "routerd_policy")
        .unwrap();
    assert_eq!(p.chains, policy_table().shape());
    ns.run(|| {
        let mut b = RustablesBackend::new();
        b.delete_table(&nat_table().key()).unwrap();
    });
    assert!(!ns.nft(&["list", "tables"]).contains("routerd_nat"));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn large_sets_and_rule_counts_go_through() {
    let mut t = policy_table();
    t.sets[0].elements = (0..10_000u32)
        .map(|i| Ipv4Net::from(Ipv4Addr::from(0xC612_0000 + i)).into())
        .collect();
    let rule = t.chains[0].rules[2].clone();
    t.chains[0].rules = vec![rule; 3000];
    let ns = Ns::new();
    let shape = t.shape();
    let listed = ns.run(move || {
        RustablesBackend::new().replace_table(&t).unwrap();
        NftJson::default().list_owned().unwrap()
    });
    assert_eq!(listed[0].chains, shape);
    let set = ns.nft(&[
        "-j",
        "list",
        "set",
        "ip",
        "routerd_policy",
        "ip_address_set_bypass",
    ]);
    let v: serde_json::Value = serde_json::from_str(&set).unwrap();
    let n = v["nftables"][1]["set"]["elem"].as_array().unwrap().len();
    assert_eq!(n, 10_000);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn kernel_errors_abort_the_whole_transaction() {
    let mut t = policy_table();
    // The kernel refuses NAT in a filter chain: nothing of the batch (set,
    // elements, chain, earlier rules) may be left behind.
    t.chains[0].rules.push(NftRule {
        exprs: vec![Expr::Dnat {
            addr: "203.0.113.26".parse().unwrap(),
            port: None,
        }],
    });
    let ns = Ns::new();
    let err = ns.run(move || {
        RustablesBackend::new()
            .replace_table(&t)
            .unwrap_err()
            .to_string()
    });
    assert!(
        err.contains("rustables replace table ip routerd_policy"),
        "{err}"
    );
    assert!(err.contains("errno"), "{err}");
    assert_eq!(ns.nft(&["list", "tables"]).trim(), "");

    // The same refusal while an older table is loaded keeps the older one.
    ns.run(|| {
        RustablesBackend::new()
            .replace_table(&policy_table())
            .unwrap()
    });
    let before = ns.nft(&["list", "ruleset"]);
    let mut bad = policy_table();
    bad.chains[0].rules.push(NftRule {
        exprs: vec![Expr::Dnat {
            addr: "203.0.113.26".parse().unwrap(),
            port: None,
        }],
    });
    ns.run(move || RustablesBackend::new().replace_table(&bad).unwrap_err());
    assert_eq!(ns.nft(&["list", "ruleset"]), before);
}

/// The dataplane picks rustables where it can and `nft -j` elsewhere, and
/// reconciles to a no-op either way.
#[test]
#[ignore = "needs root: network namespaces"]
fn dataplane_chooses_backend_per_table() {
    let mut jhash = NftTable::new(NftFamily::Ip, "routerd_default_route");
    jhash.owners.insert("p".into());
    jhash.chains.push(chain(
        "prerouting",
        ChainType::Filter,
        Hook::Prerouting,
        Priority::Num(-151),
        vec![vec![
            Expr::CtMarkIn {
                op: CmpOp::Eq,
                marks: vec![0x10, 0x20],
            },
            Expr::SetMark(MarkSource::CtMark),
        ]],
    ));
    let mut desired = DesiredState {
        nft: vec![policy_table(), jhash.clone()],
        ..DesiredState::default()
    };
    let _ = desired.normalize();
    let ns = Ns::new();
    let (chosen, first, second) = ns.run(move || {
        let mut dp = LinuxDataplane::new(
            vec![Box::new(RustablesBackend::new())],
            Ownership::default(),
        )
        .unwrap();
        let chosen = (
            dp.backend_for(&policy_table()).unwrap(),
            dp.backend_for(&jhash).unwrap(),
        );
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let first = reconcile(&mut dp, &desired, &mut ledger, &opts)
            .unwrap()
            .plan;
        let second = reconcile(&mut dp, &desired, &mut ledger, &opts)
            .unwrap()
            .plan;
        (chosen, first, second)
    });
    assert_eq!(chosen, ("rustables", "nft-json"));
    assert_eq!(first.ops.len(), 2);
    assert!(second.is_empty(), "{second}");
    let steer = ns.nft(&["list", "table", "ip", "routerd_default_route"]);
    assert!(
        steer.contains("ct mark { 0x00000010, 0x00000020 } meta mark set ct mark"),
        "{steer}"
    );
}

/// The IPv6 twin of [`policy_table`]: `ip6` table, `ip6` header matches
/// and an `ipv6_addr` set.
fn ipv6_policy_table() -> NftTable {
    let ip6 = |field, op, value| Expr::Ip {
        family: Family::V6,
        field,
        op,
        value,
    };
    let mut t = NftTable::new(NftFamily::Ip6, "routerd_policy");
    t.owners.insert("p".into());
    t.sets.push(NftSet {
        family: Family::V6,
        name: "ip_address_set_bypass".into(),
        elements: vec![
            "2001:db8:ff::10/128".parse().unwrap(),
            "2001:db8:ff::11/128".parse().unwrap(),
        ],
    });
    t.chains.push(chain(
        "prerouting",
        ChainType::Filter,
        Hook::Prerouting,
        Priority::Mangle,
        vec![
            vec![
                ip6(
                    IpField::Saddr,
                    CmpOp::Eq,
                    AddrValue::Prefix("2001:db8:10::/64".parse().unwrap()),
                ),
                ip6(
                    IpField::Daddr,
                    CmpOp::Eq,
                    AddrValue::Set("ip_address_set_bypass".into()),
                ),
                Expr::Accept,
            ],
            vec![
                ip6(
                    IpField::Saddr,
                    CmpOp::Eq,
                    AddrValue::Prefix("2001:db8:10::/64".parse().unwrap()),
                ),
                ip6(
                    IpField::Daddr,
                    CmpOp::Ne,
                    AddrValue::Prefix("2001:db8:99::1/128".parse().unwrap()),
                ),
                Expr::SetMark(MarkSource::Const(0x10)),
            ],
        ],
    ));
    t
}

#[test]
#[ignore = "needs root: network namespaces"]
fn loads_an_ipv6_policy_table_as_nft_lists_it() {
    assert_eq!(
        RustablesBackend::new().supports(&ipv6_policy_table()),
        Ok(())
    );
    let ns = Ns::new();
    ns.run(|| {
        let mut b = RustablesBackend::new();
        b.replace_table(&ipv6_policy_table()).unwrap();
        b.replace_table(&ipv6_policy_table()).unwrap();
    });
    let policy = ns.nft(&["list", "table", "ip6", "routerd_policy"]);
    for want in [
        "type ipv6_addr",
        "elements = { 2001:db8:ff::10,",
        "2001:db8:ff::11 }",
        "ip6 saddr 2001:db8:10::/64 ip6 daddr @ip_address_set_bypass accept",
        "ip6 saddr 2001:db8:10::/64 ip6 daddr != 2001:db8:99::1 meta mark set 0x00000010",
    ] {
        assert!(policy.contains(want), "missing {want:?} in\n{policy}");
    }
    // The JSON backend loads the same table to the same listing shape.
    let listed = ns.run(|| {
        let mut j = NftJson::default();
        j.replace_table(&ipv6_policy_table()).unwrap();
        j.list_owned().unwrap()
    });
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, ipv6_policy_table().key());
    assert_eq!(listed[0].chains, ipv6_policy_table().shape());
    ns.run(|| {
        RustablesBackend::new()
            .delete_table(&ipv6_policy_table().key())
            .unwrap();
    });
    assert!(!ns.nft(&["list", "tables"]).contains("routerd_policy"));
}

/// A fail-closed table: `drop` for every matched packet, or TCP reset and
/// ICMP admin-prohibited.
fn failclosed_table(reject: bool) -> NftTable {
    use routerd_render::ir::RejectWith;
    let mut t = NftTable::new(NftFamily::Ip, "routerd_failclosed_p");
    t.owners.insert("p".into());
    let m = || ip(IpField::Saddr, CmpOp::Eq, "192.168.10.0/24");
    let rules = if reject {
        vec![
            vec![
                m(),
                Expr::L4Proto(vec![L4Proto::Tcp]),
                Expr::Reject(RejectWith::TcpReset),
            ],
            vec![m(), Expr::Reject(RejectWith::IcmpAdminProhibited)],
        ]
    } else {
        vec![vec![m(), Expr::Drop]]
    };
    t.chains.push(chain(
        "forward",
        ChainType::Filter,
        Hook::Forward,
        Priority::Num(-10),
        rules,
    ));
    t
}

#[test]
fn fail_closed_drop_is_expressible_and_icmp_reject_falls_back() {
    let b = RustablesBackend::new();
    assert_eq!(b.supports(&failclosed_table(false)), Ok(()));
    // Only icmpx codes exist in rustables; an ip table would send nothing.
    let why = b.supports(&failclosed_table(true)).unwrap_err();
    assert!(why.contains("admin-prohibited"), "{why}");
    let mut tcp_only = failclosed_table(true);
    tcp_only.chains[0].rules.truncate(1);
    assert_eq!(b.supports(&tcp_only), Ok(()));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn loads_fail_closed_drop_and_tcp_reset() {
    let ns = Ns::new();
    let mut tcp_only = failclosed_table(true);
    tcp_only.chains[0].rules.truncate(1);
    tcp_only.name = "routerd_failclosed_q".into();
    ns.run(move || {
        let mut b = RustablesBackend::new();
        b.replace_table(&failclosed_table(false)).unwrap();
        b.replace_table(&tcp_only).unwrap();
    });
    let drop = ns.nft(&["list", "table", "ip", "routerd_failclosed_p"]);
    assert!(
        drop.contains("type filter hook forward priority filter - 10; policy accept;"),
        "{drop}"
    );
    assert!(drop.contains("ip saddr 192.168.10.0/24 drop"), "{drop}");
    let reset = ns.nft(&["list", "table", "ip", "routerd_failclosed_q"]);
    assert!(
        reset.contains("ip saddr 192.168.10.0/24 reject with tcp reset"),
        "{reset}"
    );
}

/// Every expression an EgressRouter table needs that rustables cannot
/// write is refused by `supports`, so the daemon hands the table to
/// `nft -j` instead of loading a table that would behave differently.
#[test]
fn egress_router_expressions_fall_back_to_nft_json() {
    use routerd_render::ir::RejectWith;
    let b = RustablesBackend::new();
    let cases: Vec<(Expr, &str)> = vec![
        (
            Expr::Reject(RejectWith::IcmpPortUnreachable),
            "port-unreachable",
        ),
        (
            Expr::Reject(RejectWith::Icmpv6PortUnreachable),
            "port-unreachable",
        ),
        (Expr::IifNameNe("eth0".into()), "negated iifname"),
        (Expr::FibDaddrLocal, "fib"),
        (Expr::CtStatusDnat, "ct status"),
        (Expr::CtDirectionOriginal, "ct direction"),
        (
            Expr::Dnat6 {
                addr: "2001:db8::1".parse().unwrap(),
                port: Some(80),
            },
            "IPv6 NAT",
        ),
        (
            Expr::Snat6(vec!["2001:db8::2".parse().unwrap()]),
            "IPv6 NAT",
        ),
        (
            Expr::DnatMap {
                family: routerd_render::ir::Family::V4,
                addrs: vec![
                    "198.51.100.7".parse().unwrap(),
                    "198.51.100.8".parse().unwrap(),
                ],
                port: Some(80),
            },
            "jhash maps",
        ),
    ];
    for (e, want) in cases {
        let mut t = NftTable::new(NftFamily::Ip, "routerd_egress_er");
        t.owners.insert("er".into());
        t.chains.push(chain(
            "prerouting",
            ChainType::Nat,
            Hook::Prerouting,
            Priority::Dstnat,
            vec![vec![e.clone()]],
        ));
        let why = b.supports(&t).unwrap_err();
        assert!(why.contains(want), "{e:?}: {why}");
    }
}

/// Every object of the table with its kernel handle.
fn handles(ns: &Ns) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&ns.nft(&["-a", "-j", "list", "table", "ip", "routerd_policy"]))
            .unwrap();
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        for (kind, o) in item.as_object().unwrap() {
            if let Some(h) = o.get("handle") {
                let name = o.get("name").or_else(|| o.get("chain")).cloned();
                out.push(format!("{kind} {name:?} {h}"));
            }
        }
    }
    out.sort();
    out
}

fn with_bypass(base: u32, n: u32) -> DesiredState {
    let mut t = policy_table();
    t.owners.insert("p".into());
    t.sets[0].elements = (0..n)
        .map(|i| Ipv4Net::from(Ipv4Addr::from(base + i)).into())
        .collect();
    let mut d = DesiredState {
        nft: vec![t],
        ..DesiredState::default()
    };
    let _ = d.normalize();
    d
}

/// A host set refresh goes through rustables as element messages: the
/// table, its chains, rules and sets keep their handles, and a 10,000-name
/// refresh with every answer changed is one transaction (its time printed:
/// `cargo test --release -p routerd-nft-rustables --test backend -- --ignored --nocapture host_set`).
#[test]
#[ignore = "needs root: network namespaces"]
fn host_set_refresh_updates_elements_in_place() {
    use routerd_render::Dataplane as _;
    use routerd_render::plan::Op;
    use std::time::{Duration, Instant};
    const N: u32 = 10_000;
    let ns = Ns::new();
    let ledger = ns.run(|| {
        let mut dp = LinuxDataplane::new(
            vec![Box::new(RustablesBackend::new())],
            Ownership::default(),
        )
        .unwrap();
        let mut ledger = Ledger::default();
        let out = reconcile(
            &mut dp,
            &with_bypass(0xC612_0000, 2),
            &mut ledger,
            &ReconcileOptions::default(),
        )
        .unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
        ledger
    });
    let before = handles(&ns);
    let (plan, retries, samples) = ns.run(move || {
        let mut ledger = ledger;
        let mut dp = LinuxDataplane::new(
            vec![Box::new(RustablesBackend::new())],
            Ownership::default(),
        )
        .unwrap();
        let opts = ReconcileOptions::default();
        let out = reconcile(&mut dp, &with_bypass(0xC612_0000, N), &mut ledger, &opts).unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
        let mut samples: Vec<Duration> = Vec::new();
        for run in 1..=9u32 {
            let d = with_bypass(0xC612_0000 + (run % 2) * 0x1_0000, N);
            let plan = routerd_render::diff(&d, &dp.observe().unwrap(), &ledger);
            let [Op::UpdateNftSets { sets, .. }] = plan.ops.as_slice() else {
                panic!("expected one in-place update: {plan}");
            };
            assert_eq!((sets[0].add.len(), sets[0].remove.len()), (10_000, 10_000));
            let t0 = Instant::now();
            dp.apply(&plan).unwrap();
            samples.push(t0.elapsed());
            let observed = dp.observe().unwrap();
            ledger.commit(&d, &observed, &Ownership::default());
            assert!(routerd_render::diff(&d, &observed, &ledger).is_empty());
        }
        (out.plan, out.retries, samples)
    });
    assert!(
        matches!(plan.ops.as_slice(), [Op::UpdateNftSets { .. }]),
        "{plan}"
    );
    assert!(retries.is_empty(), "verify saw a difference: {retries:?}");
    assert_eq!(handles(&ns), before, "the table was rebuilt");
    let mut s = samples.clone();
    s.sort();
    println!(
        "rustables 10k-name set refresh (10k deletes + 10k adds, one transaction): median {:?} (runs {samples:?})",
        s[s.len() / 2]
    );
}

/// The IPv6 twin: `ipv6_addr` host elements deleted and added in place.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_host_set_refresh_updates_elements_in_place() {
    use routerd_render::plan::Op;
    let with = |hosts: &[&str]| {
        let mut t = ipv6_policy_table();
        t.owners.insert("p".into());
        t.sets[0].elements = hosts.iter().map(|h| h.parse().unwrap()).collect();
        let mut d = DesiredState {
            nft: vec![t],
            ..DesiredState::default()
        };
        let _ = d.normalize();
        d
    };
    let first = with(&["2001:db8:ff::10/128", "2001:db8:ff::11/128"]);
    let second = with(&["2001:db8:ff::11/128", "2001:db8:ff::12/128"]);
    let ns = Ns::new();
    let plan = ns.run(move || {
        let mut dp = LinuxDataplane::new(
            vec![Box::new(RustablesBackend::new())],
            Ownership::default(),
        )
        .unwrap();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        reconcile(&mut dp, &first, &mut ledger, &opts).unwrap();
        let out = reconcile(&mut dp, &second, &mut ledger, &opts).unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
        assert!(out.retries.is_empty(), "{:?}", out.retries);
        out.plan
    });
    assert!(
        matches!(plan.ops.as_slice(), [Op::UpdateNftSets { .. }]),
        "{plan}"
    );
    let set = ns.nft(&[
        "list",
        "set",
        "ip6",
        "routerd_policy",
        "ip_address_set_bypass",
    ]);
    // nft wraps long element lists; compare without whitespace.
    let flat: String = set.split_whitespace().collect();
    assert!(
        flat.contains("elements={2001:db8:ff::11,2001:db8:ff::12}"),
        "{set}"
    );
}
