//! nft text of owned tables, in routerd's formatting (spec §5.1): marks as
//! lowercase `0x%x`, masked prefixes, quoted interface names, and the
//! `add table` / `flush table` / body batch shape.
//!
//! This text is what operators read in plans and golden files; the kernel is
//! programmed from the same IR through the JSON or rustables backends.

use std::fmt::Write as _;

use crate::ir::{
    AddrValue, CmpOp, Expr, MarkSource, NFT_OWNER_COMMENT, NatAddr, NftChain, NftRule, NftSet,
    NftTable, RejectWith,
};

/// `0x%x`, routerd's mark formatting.
pub fn mark(m: u32) -> String {
    format!("0x{m:x}")
}

fn marks_set(marks: &[u32]) -> String {
    let items: Vec<String> = marks.iter().map(|m| mark(*m)).collect();
    format!("{{ {} }}", items.join(", "))
}

fn ports(p: Option<(u16, u16)>) -> String {
    match p {
        Some((lo, hi)) if lo == hi => format!(":{lo}"),
        Some((lo, hi)) => format!(":{lo}-{hi}"),
        None => String::new(),
    }
}

/// One expression as nft text.
pub fn expr_text(e: &Expr) -> String {
    match e {
        Expr::IifName(n) => format!("iifname \"{n}\""),
        Expr::OifName(n) => format!("oifname \"{n}\""),
        Expr::Ip {
            family,
            field,
            op,
            value,
        } => {
            let (ip, f) = (family.nft_proto(), field.as_str());
            match (op, value) {
                (CmpOp::Eq, AddrValue::Prefix(p)) => format!("{ip} {f} {p}"),
                // routerd writes `!=` glued to the prefix (spec §5.1).
                (CmpOp::Ne, AddrValue::Prefix(p)) => format!("{ip} {f} !={p}"),
                (CmpOp::Eq, AddrValue::Set(s)) => format!("{ip} {f} @{s}"),
                (CmpOp::Ne, AddrValue::Set(s)) => format!("{ip} {f} != @{s}"),
            }
        }
        Expr::CtMark { op, mark: m } => {
            let neg = if *op == CmpOp::Ne { "!= " } else { "" };
            format!("ct mark {neg}{}", mark(*m))
        }
        Expr::CtMarkIn { op, marks } => {
            let neg = if *op == CmpOp::Ne { "!= " } else { "" };
            format!("ct mark {neg}{}", marks_set(marks))
        }
        Expr::L4Proto(ps) => match ps.as_slice() {
            [p] => format!("meta l4proto {}", p.as_str()),
            ps => {
                let names: Vec<&str> = ps.iter().map(|p| p.as_str()).collect();
                format!("meta l4proto {{ {} }}", names.join(", "))
            }
        },
        Expr::Dport { proto, port } => format!("{} dport {port}", proto.as_str()),
        Expr::SetMark(MarkSource::Const(m)) => format!("meta mark set {}", mark(*m)),
        Expr::SetMark(MarkSource::CtMark) => "meta mark set ct mark".to_string(),
        Expr::SetMark(MarkSource::JhashMap {
            family,
            fields,
            marks,
        }) => {
            let f: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", family.nft_proto(), f.as_str()))
                .collect();
            let map: Vec<String> = marks
                .iter()
                .enumerate()
                .map(|(i, m)| format!("{i} : {}", mark(*m)))
                .collect();
            format!(
                "meta mark set jhash {} mod {} map {{ {} }}",
                f.join(" . "),
                marks.len(),
                map.join(", ")
            )
        }
        Expr::SetCtMarkFromMark => "ct mark set meta mark".to_string(),
        Expr::Masquerade {
            ports: p,
            persistent,
        } => {
            let mut s = "masquerade".to_string();
            if p.is_some() {
                s.push_str(" to ");
                s.push_str(&ports(*p));
            }
            if *persistent {
                s.push_str(" persistent");
            }
            s
        }
        Expr::Snat {
            addr,
            ports: p,
            persistent,
        } => {
            let a = match addr {
                NatAddr::Single(a) => a.to_string(),
                NatAddr::Range(lo, hi) => format!("{lo}-{hi}"),
                NatAddr::HashMap(addrs) => {
                    let map: Vec<String> = addrs
                        .iter()
                        .enumerate()
                        .map(|(i, a)| format!("{i} : {a}"))
                        .collect();
                    format!(
                        "jhash ip saddr mod {} map {{ {} }}",
                        addrs.len(),
                        map.join(", ")
                    )
                }
            };
            let mut s = format!("snat to {a}{}", ports(*p));
            if *persistent {
                s.push_str(" persistent");
            }
            s
        }
        Expr::Dnat { addr, port } => match port {
            Some(p) => format!("dnat to {addr}:{p}"),
            None => format!("dnat to {addr}"),
        },
        Expr::IifNameNe(n) => format!("iifname != \"{n}\""),
        Expr::FibDaddrLocal => "fib daddr type local".to_string(),
        Expr::CtStatusDnat => "ct status dnat".to_string(),
        Expr::CtDirectionOriginal => "ct direction original".to_string(),
        Expr::Dnat6 { addr, port } => match port {
            Some(p) => format!("dnat to [{addr}]:{p}"),
            None => format!("dnat to {addr}"),
        },
        Expr::Snat6(addrs) => match addrs.as_slice() {
            [a] => format!("snat to {a}"),
            many => {
                let map: Vec<String> = many
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("{i} : {a}"))
                    .collect();
                format!(
                    "snat to jhash ip6 saddr mod {} map {{ {} }}",
                    many.len(),
                    map.join(", ")
                )
            }
        },
        Expr::DnatPortMap {
            family,
            proto,
            entries,
        } => {
            let hdr = match family {
                crate::ir::Family::V4 => "ip",
                crate::ir::Family::V6 => "ip6",
            };
            let map: Vec<String> = entries
                .iter()
                .map(|(p, a, t)| format!("{p} : {a} . {t}"))
                .collect();
            format!(
                "dnat {hdr} to {} dport map {{ {} }}",
                proto.as_str(),
                map.join(", ")
            )
        }
        Expr::DnatBalancedPortMap {
            family,
            proto,
            entries,
        } => {
            let hdr = match family {
                crate::ir::Family::V4 => "ip",
                crate::ir::Family::V6 => "ip6",
            };
            let modulus = crate::ir::balanced_modulus(entries);
            let ports: Vec<String> = entries.iter().map(|(p, _, _)| p.to_string()).collect();
            let map: Vec<String> = entries
                .iter()
                .flat_map(|(p, dests, t)| {
                    dests
                        .iter()
                        .enumerate()
                        .map(move |(i, a)| format!("{p} . {i} : {a} . {t}"))
                })
                .collect();
            let l4 = proto.as_str();
            format!(
                "{l4} dport {{ {} }} meta mark set jhash {hdr} saddr mod {modulus} dnat {hdr} to {l4} dport . meta mark map {{ {} }}",
                ports.join(", "),
                map.join(", ")
            )
        }
        Expr::DnatMap {
            family,
            addrs,
            port,
        } => {
            let map: Vec<String> = addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{i} : {a}"))
                .collect();
            let hdr = match family {
                crate::ir::Family::V4 => "ip",
                crate::ir::Family::V6 => "ip6",
            };
            let mut s = format!(
                "dnat to jhash {hdr} saddr mod {} map {{ {} }}",
                addrs.len(),
                map.join(", ")
            );
            if let Some(p) = port {
                let _ = write!(s, ":{p}");
            }
            s
        }
        Expr::Accept => "accept".to_string(),
        Expr::Reject(RejectWith::IcmpPortUnreachable) => {
            "reject with icmp type port-unreachable".to_string()
        }
        Expr::Reject(RejectWith::Icmpv6PortUnreachable) => {
            "reject with icmpv6 type port-unreachable".to_string()
        }
        Expr::Reject(RejectWith::TcpReset) => "reject with tcp reset".to_string(),
        Expr::Reject(RejectWith::IcmpAdminProhibited) => {
            "reject with icmp type admin-prohibited".to_string()
        }
        Expr::Reject(RejectWith::Icmpv6AdminProhibited) => {
            "reject with icmpv6 type admin-prohibited".to_string()
        }
        Expr::Drop => "drop".to_string(),
    }
}

/// A rule as one line of nft text.
pub fn rule_text(r: &NftRule) -> String {
    let parts: Vec<String> = r.exprs.iter().map(expr_text).collect();
    parts.join(" ")
}

fn set_text(out: &mut String, s: &NftSet) {
    let _ = write!(out, "\tset {} {{ type {}; ", s.name, s.family.addr_type());
    if s.is_interval() {
        out.push_str("flags interval; ");
    }
    if !s.elements.is_empty() {
        let host = s.family.host_len();
        let el: Vec<String> = s
            .elements
            .iter()
            .map(|e| {
                if e.prefix_len() == host {
                    e.addr().to_string()
                } else {
                    e.to_string()
                }
            })
            .collect();
        let _ = write!(out, "elements = {{ {} }} ", el.join(", "));
    }
    out.push_str("}\n");
}

fn chain_text(out: &mut String, c: &NftChain) {
    let _ = writeln!(out, "\tchain {} {{", c.name);
    let _ = writeln!(
        out,
        "\t\ttype {} hook {} priority {}; policy accept;",
        c.chain_type.as_str(),
        c.hook.as_str(),
        c.priority
    );
    for r in &c.rules {
        let _ = writeln!(out, "\t\t{}", rule_text(r));
    }
    out.push_str("\t}\n");
}

/// The `table <family> <name> { ... }` body.
pub fn table_text(t: &NftTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table {} {} {{", t.family, t.name);
    let _ = writeln!(out, "\tcomment \"{NFT_OWNER_COMMENT}\"");
    for s in &t.sets {
        set_text(&mut out, s);
    }
    for c in &t.chains {
        chain_text(&mut out, c);
    }
    out.push_str("}\n");
    out
}

/// The self-contained batch routerd loads for a table (spec §5.1):
/// `add table`, `flush table`, then the body.
pub fn table_batch(t: &NftTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "add table {} {}", t.family, t.name);
    let _ = writeln!(out, "flush table {} {}", t.family, t.name);
    out.push_str(&table_text(t));
    out
}

/// The batch the `nft` backend loads to replace a table in one transaction
/// (docs/adr/0004): `add table`, `delete table`, then the whole new body.
/// Unlike [`table_batch`]'s flush, the delete also drops chains and sets
/// that are no longer wanted.
pub fn replace_batch(t: &NftTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "add table {} {}", t.family, t.name);
    let _ = writeln!(out, "delete table {} {}", t.family, t.name);
    out.push_str(&table_text(t));
    out
}

/// The element changes of [`crate::plan::Op::UpdateNftSets`] as an nft
/// batch: deletes, then adds, one transaction when loaded with `nft -f`.
pub fn set_update_batch(key: &crate::ir::NftTableKey, sets: &[crate::plan::NftSetDelta]) -> String {
    let list = |nets: &[ipnet::IpNet], host: u8| {
        let el: Vec<String> = nets
            .iter()
            .map(|e| {
                if e.prefix_len() == host {
                    e.addr().to_string()
                } else {
                    e.to_string()
                }
            })
            .collect();
        el.join(", ")
    };
    let mut out = String::new();
    for d in sets.iter().filter(|d| !d.remove.is_empty()) {
        let host = d.family.host_len();
        let _ = writeln!(
            out,
            "delete element {} {} {} {{ {} }}",
            key.family,
            key.name,
            d.name,
            list(&d.remove, host)
        );
    }
    for d in sets.iter().filter(|d| !d.add.is_empty()) {
        let host = d.family.host_len();
        let _ = writeln!(
            out,
            "add element {} {} {} {{ {} }}",
            key.family,
            key.name,
            d.name,
            list(&d.add, host)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ChainType, Family, Hook, IpField, NftFamily, Priority};

    fn v6_table() -> NftTable {
        let mut t = NftTable::new(NftFamily::Ip6, "routerd_policy");
        t.sets.push(NftSet {
            family: Family::V6,
            name: "ip_address_set_cloud".into(),
            elements: vec![
                "2001:db8:1::/48".parse().unwrap_or_default(),
                "2001:db8:2::7/128".parse().unwrap_or_default(),
            ],
        });
        let ip = |field, op, value| Expr::Ip {
            family: Family::V6,
            field,
            op,
            value,
        };
        t.chains.push(NftChain {
            name: "prerouting".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: Priority::Mangle,
            rules: vec![NftRule {
                exprs: vec![
                    ip(
                        IpField::Saddr,
                        CmpOp::Eq,
                        AddrValue::Prefix("2001:db8:10::/64".parse().unwrap_or_default()),
                    ),
                    ip(
                        IpField::Daddr,
                        CmpOp::Ne,
                        AddrValue::Set("ip_address_set_cloud".into()),
                    ),
                    Expr::SetMark(MarkSource::JhashMap {
                        family: Family::V6,
                        fields: vec![IpField::Saddr, IpField::Daddr],
                        marks: vec![0x11, 0x12],
                    }),
                ],
            }],
        });
        t
    }

    #[test]
    fn ipv6_tables_match_ip6_headers_and_declare_ipv6_sets() {
        let text = table_text(&v6_table());
        assert!(text.starts_with("table ip6 routerd_policy {\n"), "{text}");
        assert!(
            text.contains(
                "set ip_address_set_cloud { type ipv6_addr; flags interval; elements = { 2001:db8:1::/48, 2001:db8:2::7 } }"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ip6 saddr 2001:db8:10::/64 ip6 daddr != @ip_address_set_cloud meta mark set jhash ip6 saddr . ip6 daddr mod 2 map { 0 : 0x11, 1 : 0x12 }"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_ipv6_host_set_needs_no_interval_flag() {
        let s = NftSet {
            family: Family::V6,
            name: "h".into(),
            elements: vec!["2001:db8::1/128".parse().unwrap_or_default()],
        };
        assert!(!s.is_interval());
        let mut out = String::new();
        set_text(&mut out, &s);
        assert_eq!(
            out,
            "\tset h { type ipv6_addr; elements = { 2001:db8::1 } }\n"
        );
    }

    #[test]
    fn a_replacement_deletes_the_old_table_inside_the_transaction() {
        let mut t = NftTable::new(crate::ir::NftFamily::Ip, "routerd_x");
        t.chains.push(crate::ir::NftChain {
            name: "prerouting".into(),
            chain_type: crate::ir::ChainType::Filter,
            hook: crate::ir::Hook::Prerouting,
            priority: crate::ir::Priority::Mangle,
            rules: Vec::new(),
        });
        let b = replace_batch(&t);
        assert!(
            b.starts_with(
                "add table ip routerd_x\ndelete table ip routerd_x\ntable ip routerd_x {\n"
            ),
            "{b}"
        );
        assert!(!b.contains("flush"), "{b}");
    }
}
