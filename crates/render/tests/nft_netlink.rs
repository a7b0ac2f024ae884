//! The in-process nf_tables encoder, without a kernel: golden batches
//! (decoded attribute by attribute), the structure every batch must have,
//! element chunking under the attribute size limit, and what it refuses.
//! That the kernel holds exactly what nft would have loaded is checked in
//! a namespace (`netns.rs`, `nf_netlink_loads_tables_exactly_as_nft_does`).
//! `ROUTERD_BLESS=1` rewrites the golden files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::ir::{
    ChainType, Expr, Family, Hook, L4Proto, NFT_OWNER_COMMENT, NatAddr, NftChain, NftFamily,
    NftRule, NftSet, NftTable, Priority,
};
use routerd_render::nft_netlink::{Batch, delete_batch, replace_batch, supports};

const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_ACK: u16 = 4;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn tables_of(case: &str) -> Vec<NftTable> {
    let config = std::fs::read_to_string(dir().join(format!("{case}.config.yaml"))).unwrap();
    let (loaded, diags) = load_and_validate(&[("c.yaml", &config)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let mut state: StateSnapshot =
        match std::fs::read_to_string(dir().join(format!("{case}.state.yaml"))) {
            Ok(s) => serde_yaml::from_str(&s).unwrap(),
            Err(_) => StateSnapshot::new(),
        };
    common::select_missing(&loaded.resources, &mut state);
    routerd_render::render(&loaded.resources, &state)
        .desired
        .nft
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One message: type, flags, sequence number and its attribute bytes.
struct Msg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    attrs: &'a [u8],
}

/// Splits a batch into messages, asserting every length adds up.
fn messages(b: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let len = u32_at(b, off) as usize;
        assert!(len >= 20 && off + len <= b.len(), "message at {off}: {len}");
        assert_eq!(len % 4, 0, "messages are padded");
        out.push(Msg {
            ty: u16_at(b, off + 4),
            flags: u16_at(b, off + 6),
            seq: u32_at(b, off + 8),
            family: b[off + 16],
            attrs: &b[off + 20..off + len],
        });
        off += len;
    }
    assert_eq!(off, b.len());
    out
}

/// The attributes of a buffer: (type without flags, nested, payload),
/// asserting each lies within it.
fn attrs(b: &[u8]) -> Vec<(u16, bool, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < b.len() {
        let len = u16_at(b, off) as usize;
        let ty = u16_at(b, off + 2);
        assert!(
            len >= 4 && off + len <= b.len(),
            "attribute at {off}: {len}"
        );
        out.push((
            ty & !NLA_F_NESTED,
            ty & NLA_F_NESTED != 0,
            &b[off + 4..off + len],
        ));
        off += (len + 3) & !3;
    }
    out
}

fn msg_name(ty: u16) -> String {
    match ty {
        0x10 => "BATCH_BEGIN".into(),
        0x11 => "BATCH_END".into(),
        t if t >> 8 == 10 => match t & 0xff {
            0 => "NEWTABLE".into(),
            2 => "DELTABLE".into(),
            3 => "NEWCHAIN".into(),
            6 => "NEWRULE".into(),
            9 => "NEWSET".into(),
            12 => "NEWSETELEM".into(),
            other => format!("NFT_MSG_{other}"),
        },
        other => format!("type {other}"),
    }
}

fn value(v: &[u8]) -> String {
    if v.len() > 1
        && v.last() == Some(&0)
        && v[..v.len() - 1]
            .iter()
            .all(|c| c.is_ascii_graphic() || *c == b' ')
    {
        return format!("{:?}", String::from_utf8_lossy(&v[..v.len() - 1]));
    }
    v.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_attrs(out: &mut String, b: &[u8], depth: usize) {
    for (ty, nested, v) in attrs(b) {
        let pad = "  ".repeat(depth);
        if nested {
            let _ = writeln!(out, "{pad}{ty}:");
            describe_attrs(out, v, depth + 1);
        } else {
            let _ = writeln!(out, "{pad}{ty} = {}", value(v));
        }
    }
}

/// The whole batch, message by message, attribute by attribute.
fn describe(batch: &Batch) -> String {
    let mut out = String::new();
    for m in messages(&batch.bytes) {
        let ack = if m.flags & NLM_F_ACK != 0 { " ack" } else { "" };
        let _ = writeln!(
            out,
            "{} seq {} family {} flags {:#x}{ack}",
            msg_name(m.ty),
            m.seq,
            m.family,
            m.flags
        );
        describe_attrs(&mut out, m.attrs, 1);
    }
    out
}

/// The properties every batch has: framed by batch begin and end, one
/// sequence number after another, every object message asking for an
/// ACK and named in `objects`, each message under 64 KiB.
fn assert_well_formed(batch: &Batch, start: u32) {
    let ms = messages(&batch.bytes);
    assert_eq!(msg_name(ms[0].ty), "BATCH_BEGIN");
    assert_eq!(msg_name(ms[ms.len() - 1].ty), "BATCH_END");
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(m.seq, start + i as u32, "consecutive sequence numbers");
        assert!(m.attrs.len() < 64 * 1024);
        attrs(m.attrs);
    }
    let acked: Vec<u32> = ms[1..ms.len() - 1]
        .iter()
        .map(|m| {
            assert!(
                m.flags & NLM_F_ACK != 0,
                "{} asks for an ACK",
                msg_name(m.ty)
            );
            m.seq
        })
        .collect();
    let named: Vec<u32> = batch.objects.iter().map(|(s, _)| *s).collect();
    assert_eq!(acked, named);
    assert_eq!(batch.last_seq(), acked.last().copied());
}

/// The elements a batch adds to each set id, and the ids rules look up.
fn elements_and_lookups(batch: &Batch) -> (std::collections::BTreeMap<u32, usize>, Vec<u32>) {
    let mut elements = std::collections::BTreeMap::new();
    let mut lookups = Vec::new();
    for m in messages(&batch.bytes) {
        match msg_name(m.ty).as_str() {
            "NEWSETELEM" => {
                let a = attrs(m.attrs);
                let id = a.iter().find(|(t, _, _)| *t == 4).unwrap().2;
                let id = u32::from_be_bytes(id.try_into().unwrap());
                let list = a.iter().find(|(t, _, _)| *t == 3).unwrap().2;
                *elements.entry(id).or_insert(0) += attrs(list).len();
            }
            "NEWRULE" => {
                let exprs = attrs(m.attrs)
                    .into_iter()
                    .find(|(t, _, _)| *t == 4)
                    .unwrap()
                    .2;
                for (_, _, e) in attrs(exprs) {
                    let a = attrs(e);
                    if value(a[0].2) == "\"lookup\"" {
                        for (t, _, v) in attrs(a[1].2) {
                            if t == 4 {
                                lookups.push(u32::from_be_bytes(v.try_into().unwrap()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (elements, lookups)
}

#[test]
fn egress_router_batches_match_their_goldens() {
    for case in [
        "egress-router-rules",
        "egress-router-health-v6",
        "egress-router-many",
    ] {
        let tables = tables_of(case);
        assert_eq!(tables.len(), 1, "{case}");
        let batch = replace_batch(&tables[0], NFT_OWNER_COMMENT, 1).unwrap();
        assert_well_formed(&batch, 1);
        common::check_golden(&format!("{case}.nfnl"), &describe(&batch));
    }
}

#[test]
fn every_egress_router_golden_table_is_supported_and_well_formed() {
    let mut seen = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(case) = name.strip_suffix(".config.yaml") else {
            continue;
        };
        if !case.starts_with("egress-router") {
            continue;
        }
        for t in tables_of(case) {
            supports(&t).unwrap_or_else(|e| panic!("{case}: {e}"));
            let batch = replace_batch(&t, NFT_OWNER_COMMENT, 40).unwrap();
            assert_well_formed(&batch, 40);
            // Every set a rule looks up was declared and filled in the
            // same batch.
            let (elements, lookups) = elements_and_lookups(&batch);
            assert!(!lookups.is_empty(), "{case}");
            for id in lookups {
                assert!(
                    elements.get(&id).is_some_and(|n| *n > 0),
                    "{case}: set {id}"
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 13, "{seen}");
}

#[test]
fn delete_is_one_acked_message() {
    let key = NftTable::new(NftFamily::Ip6, "routerd_egress_er").key();
    let batch = delete_batch(&key, 7);
    assert_well_formed(&batch, 7);
    let ms = messages(&batch.bytes);
    assert_eq!(ms.len(), 3);
    assert_eq!(msg_name(ms[1].ty), "DELTABLE");
    assert_eq!(ms[1].family, 10);
    assert_eq!(batch.object(8), Some("delete table ip6 routerd_egress_er"));
}

fn table_with(family: NftFamily, exprs: Vec<Expr>) -> NftTable {
    let mut t = NftTable::new(family, "routerd_egress_x");
    t.chains.push(NftChain {
        name: "prerouting".into(),
        chain_type: ChainType::Nat,
        hook: Hook::Prerouting,
        priority: Priority::Dstnat,
        rules: vec![NftRule { exprs }],
    });
    t
}

#[test]
fn what_it_cannot_write_is_refused_by_name() {
    let cases: Vec<(NftTable, &str)> = vec![
        (
            table_with(NftFamily::Inet, vec![Expr::Accept]),
            "inet tables",
        ),
        (
            table_with(
                NftFamily::Ip,
                vec![Expr::Masquerade {
                    ports: None,
                    persistent: false,
                }],
            ),
            "masquerade",
        ),
        (
            table_with(
                NftFamily::Ip,
                vec![Expr::Snat {
                    addr: NatAddr::Range(
                        "192.0.2.1".parse().unwrap(),
                        "192.0.2.9".parse().unwrap(),
                    ),
                    ports: None,
                    persistent: false,
                }],
            ),
            "snat address ranges",
        ),
        (
            table_with(NftFamily::Ip, vec![Expr::CtDirectionOriginal]),
            "ct direction",
        ),
        (
            table_with(
                NftFamily::Ip,
                vec![Expr::DnatBalancedPortMap {
                    family: Family::V4,
                    proto: L4Proto::Tcp,
                    entries: vec![
                        (1, vec!["192.0.2.1".parse().unwrap()], 80),
                        (
                            2,
                            vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
                            80,
                        ),
                    ],
                }],
            ),
            "unequal",
        ),
    ];
    for (t, want) in cases {
        let why = supports(&t).unwrap_err();
        assert!(why.contains(want), "{why}");
        assert!(replace_batch(&t, NFT_OWNER_COMMENT, 1).is_err());
    }
    let mut interval = table_with(NftFamily::Ip, vec![Expr::Accept]);
    interval.sets.push(NftSet {
        family: Family::V4,
        name: "nets".into(),
        elements: vec!["10.0.0.0/8".parse().unwrap()],
    });
    assert!(
        supports(&interval)
            .unwrap_err()
            .contains("interval set nets")
    );
    // An address of the wrong family in a set is an error, not a panic.
    let mut mixed = table_with(NftFamily::Ip, vec![Expr::Accept]);
    mixed.sets.push(NftSet {
        family: Family::V4,
        name: "hosts".into(),
        elements: vec!["2001:db8::1/128".parse().unwrap()],
    });
    assert!(replace_batch(&mixed, NFT_OWNER_COMMENT, 1).is_err());
}

fn addr(family: Family, i: u32) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(std::net::Ipv4Addr::from(0xc633_6400 + i)),
        Family::V6 => IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(i),
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// However many redirects and destinations, every element goes out
    /// exactly once, in messages under the attribute size limit, and the
    /// batch stays well formed.
    #[test]
    fn large_maps_are_chunked_and_complete(
        n in 1usize..5000,
        balanced in 1usize..1500,
        modulus in 2usize..4,
        v6 in any::<bool>(),
    ) {
        let family = if v6 { Family::V6 } else { Family::V4 };
        let nft_family = if v6 { NftFamily::Ip6 } else { NftFamily::Ip };
        let port_map = Expr::DnatPortMap {
            family,
            proto: L4Proto::Udp,
            entries: (0..n).map(|i| (i as u16, addr(family, i as u32), 53)).collect(),
        };
        let balanced_map = Expr::DnatBalancedPortMap {
            family,
            proto: L4Proto::Tcp,
            entries: (0..balanced)
                .map(|i| {
                    let d = (0..modulus).map(|k| addr(family, (i * modulus + k) as u32)).collect();
                    (i as u16, d, 443)
                })
                .collect(),
        };
        let mut t = table_with(nft_family, vec![port_map]);
        t.chains[0].rules.push(NftRule { exprs: vec![balanced_map] });
        t.sets.push(NftSet {
            family,
            name: "destinations".into(),
            elements: (0..n as u32)
                .map(|i| ipnet::IpNet::from(addr(family, i)))
                .collect(),
        });
        let batch = replace_batch(&t, NFT_OWNER_COMMENT, 1).unwrap();
        assert_well_formed(&batch, 1);
        let (elements, lookups) = elements_and_lookups(&batch);
        let counts: Vec<usize> = elements.values().copied().collect();
        // destinations, the port map, the balanced rule's ports and map.
        prop_assert_eq!(counts, vec![n, n, balanced, balanced * modulus]);
        prop_assert_eq!(lookups.len(), 3);
    }
}
