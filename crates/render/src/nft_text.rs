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
        Expr::Ip { field, op, value } => {
            let f = field.as_str();
            match (op, value) {
                (CmpOp::Eq, AddrValue::Prefix(p)) => format!("ip {f} {p}"),
                // routerd writes `!=` glued to the prefix (spec §5.1).
                (CmpOp::Ne, AddrValue::Prefix(p)) => format!("ip {f} !={p}"),
                (CmpOp::Eq, AddrValue::Set(s)) => format!("ip {f} @{s}"),
                (CmpOp::Ne, AddrValue::Set(s)) => format!("ip {f} != @{s}"),
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
        Expr::SetMark(MarkSource::JhashMap { fields, marks }) => {
            let f: Vec<String> = fields
                .iter()
                .map(|f| format!("ip {}", f.as_str()))
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
        Expr::Accept => "accept".to_string(),
        Expr::Reject(RejectWith::TcpReset) => "reject with tcp reset".to_string(),
        Expr::Reject(RejectWith::IcmpAdminProhibited) => {
            "reject with icmp type admin-prohibited".to_string()
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
    let _ = write!(out, "\tset {} {{ type ipv4_addr; ", s.name);
    if s.is_interval() {
        out.push_str("flags interval; ");
    }
    if !s.elements.is_empty() {
        let el: Vec<String> = s
            .elements
            .iter()
            .map(|e| {
                if e.prefix_len() == 32 {
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
