//! The nftables JSON form (`nft -j -f -`) of owned tables, and parsing of
//! `nft -j list ruleset` back into observed tables.
//!
//! JSON is the path for everything rustables cannot express (jhash, maps,
//! interval and anonymous sets, NAT ranges and flags); one JSON document is
//! one kernel transaction, so a table replacement is atomic.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::dataplane::ObservedNftTable;
use crate::ir::{
    AddrValue, CmpOp, Expr, Family, IpField, MarkSource, NFT_OWNER_COMMENT, NFT_TABLE_PREFIX,
    NatAddr, NftFamily, NftTable, NftTableKey, RejectWith,
};
use crate::plan::NftSetDelta;

fn ip_payload(family: Family, f: IpField) -> Value {
    json!({"payload": {"protocol": family.nft_proto(), "field": f.as_str()}})
}

fn prefix(p: &ipnet::IpNet) -> Value {
    if p.prefix_len() == p.max_prefix_len() {
        json!(p.addr().to_string())
    } else {
        json!({"prefix": {"addr": p.network().to_string(), "len": p.prefix_len()}})
    }
}

fn op(o: CmpOp) -> &'static str {
    match o {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
    }
}

fn ct_mark() -> Value {
    json!({"ct": {"key": "mark"}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn port_range(p: Option<(u16, u16)>) -> Option<Value> {
    p.map(|(lo, hi)| {
        if lo == hi {
            json!(lo)
        } else {
            json!({"range": [lo, hi]})
        }
    })
}

fn jhash(family: Family, fields: &[IpField], modulus: usize) -> Value {
    let expr = match fields {
        [one] => ip_payload(family, *one),
        many => {
            json!({"concat": many.iter().map(|f| ip_payload(family, *f)).collect::<Vec<_>>()})
        }
    };
    json!({"jhash": {"mod": modulus, "expr": expr}})
}

/// One expression as a JSON statement.
pub fn expr_json(e: &Expr) -> Value {
    match e {
        Expr::IifName(n) => json!({"match": {"op": "==", "left": meta("iifname"), "right": n}}),
        Expr::OifName(n) => json!({"match": {"op": "==", "left": meta("oifname"), "right": n}}),
        Expr::Ip {
            family,
            field,
            op: o,
            value,
        } => {
            let right = match value {
                AddrValue::Prefix(p) => prefix(p),
                AddrValue::Set(s) => json!(format!("@{s}")),
            };
            json!({"match": {"op": op(*o), "left": ip_payload(*family, *field), "right": right}})
        }
        Expr::CtMark { op: o, mark } => {
            json!({"match": {"op": op(*o), "left": ct_mark(), "right": mark}})
        }
        Expr::CtMarkIn { op: o, marks } => {
            json!({"match": {"op": op(*o), "left": ct_mark(), "right": {"set": marks}}})
        }
        Expr::L4Proto(ps) => {
            let right = match ps.as_slice() {
                [p] => json!(p.as_str()),
                ps => json!({"set": ps.iter().map(|p| p.as_str()).collect::<Vec<_>>()}),
            };
            json!({"match": {"op": "==", "left": meta("l4proto"), "right": right}})
        }
        Expr::Dport { proto, port } => json!({"match": {"op": "==",
            "left": {"payload": {"protocol": proto.as_str(), "field": "dport"}}, "right": port}}),
        Expr::SetMark(src) => {
            let value = match src {
                MarkSource::Const(m) => json!(m),
                MarkSource::CtMark => ct_mark(),
                MarkSource::JhashMap {
                    family,
                    fields,
                    marks,
                } => {
                    let data: Vec<Value> = marks
                        .iter()
                        .enumerate()
                        .map(|(i, m)| json!([i, m]))
                        .collect();
                    json!({"map": {"key": jhash(*family, fields, marks.len()), "data": {"set": data}}})
                }
            };
            json!({"mangle": {"key": meta("mark"), "value": value}})
        }
        Expr::SetCtMarkFromMark => json!({"mangle": {"key": ct_mark(), "value": meta("mark")}}),
        Expr::Masquerade { ports, persistent } => {
            let mut m = serde_json::Map::new();
            if let Some(p) = port_range(*ports) {
                m.insert("port".into(), p);
            }
            if *persistent {
                m.insert("flags".into(), json!(["persistent"]));
            }
            if m.is_empty() {
                json!({"masquerade": null})
            } else {
                json!({ "masquerade": m })
            }
        }
        Expr::Snat {
            addr,
            ports,
            persistent,
        } => {
            let a = match addr {
                NatAddr::Single(a) => json!(a.to_string()),
                NatAddr::Range(lo, hi) => json!({"range": [lo.to_string(), hi.to_string()]}),
                NatAddr::HashMap(addrs) => {
                    let data: Vec<Value> = addrs
                        .iter()
                        .enumerate()
                        .map(|(i, a)| json!([i, a.to_string()]))
                        .collect();
                    json!({"map": {"key": jhash(Family::V4, &[IpField::Saddr], addrs.len()),
                        "data": {"set": data}}})
                }
            };
            let mut m = serde_json::Map::new();
            m.insert("addr".into(), a);
            if let Some(p) = port_range(*ports) {
                m.insert("port".into(), p);
            }
            if *persistent {
                m.insert("flags".into(), json!(["persistent"]));
            }
            json!({ "snat": m })
        }
        Expr::Dnat { addr, port } => match port {
            Some(p) => json!({"dnat": {"addr": addr.to_string(), "port": p}}),
            None => json!({"dnat": {"addr": addr.to_string()}}),
        },
        Expr::IifNameNe(n) => json!({"match": {"op": "!=", "left": meta("iifname"), "right": n}}),
        Expr::FibDaddrLocal => json!({"match": {"op": "==",
            "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}),
        Expr::CtStatusDnat => json!({"match": {"op": "in",
            "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
        Expr::CtDirectionOriginal => json!({"match": {"op": "==",
            "left": {"ct": {"key": "direction"}}, "right": "original"}}),
        Expr::Dnat6 { addr, port } => match port {
            Some(p) => json!({"dnat": {"family": "ip6", "addr": addr.to_string(), "port": p}}),
            None => json!({"dnat": {"family": "ip6", "addr": addr.to_string()}}),
        },
        Expr::DnatPortMap {
            family,
            proto,
            entries,
        } => {
            let data: Vec<Value> = entries
                .iter()
                .map(|(p, a, t)| json!([p, {"concat": [a.to_string(), t]}]))
                .collect();
            let fam = if *family == Family::V6 { "ip6" } else { "ip" };
            json!({"dnat": {"family": fam, "addr": {"map": {
                "key": {"payload": {"protocol": proto.as_str(), "field": "dport"}},
                "data": {"set": data}}}}})
        }
        Expr::DnatBalancedPortMap {
            family,
            proto,
            entries,
        } => {
            // Three statements in one expression: the rule builder
            // flattens arrays (see `rule_exprs`).
            let modulus = crate::ir::balanced_modulus(entries);
            let dport = json!({"payload": {"protocol": proto.as_str(), "field": "dport"}});
            let ports: Vec<Value> = entries.iter().map(|(p, _, _)| json!(p)).collect();
            let data: Vec<Value> = entries
                .iter()
                .flat_map(|(p, dests, t)| {
                    dests.iter().enumerate().map(
                        move |(i, a)| json!([{"concat": [p, i]}, {"concat": [a.to_string(), t]}]),
                    )
                })
                .collect();
            let fam = if *family == Family::V6 { "ip6" } else { "ip" };
            json!([
                {"match": {"op": "==", "left": dport.clone(), "right": {"set": ports}}},
                {"mangle": {"key": meta("mark"),
                    "value": jhash(*family, &[IpField::Saddr], modulus)}},
                {"dnat": {"family": fam, "addr": {"map": {
                    "key": {"concat": [dport, meta("mark")]},
                    "data": {"set": data}}}}}
            ])
        }
        Expr::DnatMap {
            family,
            addrs,
            port,
        } => {
            let data: Vec<Value> = addrs
                .iter()
                .enumerate()
                .map(|(i, a)| json!([i, a.to_string()]))
                .collect();
            let mut m = serde_json::Map::new();
            if *family == Family::V6 {
                m.insert("family".into(), json!("ip6"));
            }
            m.insert(
                "addr".into(),
                json!({"map": {"key": jhash(*family, &[IpField::Saddr], addrs.len()),
                    "data": {"set": data}}}),
            );
            if let Some(p) = port {
                m.insert("port".into(), json!(p));
            }
            json!({ "dnat": m })
        }
        Expr::Snat6(addrs) => {
            let a = match addrs.as_slice() {
                [a] => json!(a.to_string()),
                many => {
                    let data: Vec<Value> = many
                        .iter()
                        .enumerate()
                        .map(|(i, a)| json!([i, a.to_string()]))
                        .collect();
                    json!({"map": {"key": jhash(Family::V6, &[IpField::Saddr], many.len()),
                        "data": {"set": data}}})
                }
            };
            json!({"snat": {"family": "ip6", "addr": a}})
        }
        Expr::Accept => json!({"accept": null}),
        Expr::Reject(RejectWith::IcmpPortUnreachable) => {
            json!({"reject": {"type": "icmp", "expr": "port-unreachable"}})
        }
        Expr::Reject(RejectWith::Icmpv6PortUnreachable) => {
            json!({"reject": {"type": "icmpv6", "expr": "port-unreachable"}})
        }
        Expr::Reject(RejectWith::TcpReset) => json!({"reject": {"type": "tcp reset"}}),
        Expr::Reject(RejectWith::IcmpAdminProhibited) => {
            json!({"reject": {"type": "icmp", "expr": "admin-prohibited"}})
        }
        Expr::Reject(RejectWith::Icmpv6AdminProhibited) => {
            json!({"reject": {"type": "icmpv6", "expr": "admin-prohibited"}})
        }
        Expr::Drop => json!({"drop": null}),
    }
}

fn table_obj(family: NftFamily, name: &str) -> Value {
    json!({"table": {"family": family.as_str(), "name": name}})
}

/// The commands that create `t` from nothing (without the replacement
/// preamble).
pub fn table_commands(t: &NftTable) -> Vec<Value> {
    let fam = t.family.as_str();
    let mut cmds = Vec::new();
    cmds.push(json!({"add": {"table": {"family": fam, "name": t.name,
        "comment": NFT_OWNER_COMMENT}}}));
    for s in &t.sets {
        let mut set = json!({"family": fam, "table": t.name, "name": s.name,
            "type": s.family.addr_type()});
        if s.is_interval() {
            set["flags"] = json!(["interval"]);
        }
        cmds.push(json!({"add": {"set": set}}));
        if !s.elements.is_empty() {
            let elem: Vec<Value> = s.elements.iter().map(prefix).collect();
            cmds.push(json!({"add": {"element": {"family": fam, "table": t.name,
                "name": s.name, "elem": elem}}}));
        }
    }
    for c in &t.chains {
        cmds.push(
            json!({"add": {"chain": {"family": fam, "table": t.name, "name": c.name,
            "type": c.chain_type.as_str(), "hook": c.hook.as_str(),
            "prio": c.priority.value(), "policy": "accept"}}}),
        );
        for r in &c.rules {
            let expr = rule_exprs(&r.exprs);
            cmds.push(json!({"add": {"rule": {"family": fam, "table": t.name,
                "chain": c.name, "expr": expr}}}));
        }
    }
    cmds
}

/// A rule's statements: one per expression, except those that stand for
/// several (they render as an array).
fn rule_exprs(exprs: &[Expr]) -> Vec<Value> {
    let mut out = Vec::with_capacity(exprs.len());
    for e in exprs {
        match expr_json(e) {
            Value::Array(many) => out.extend(many),
            one => out.push(one),
        }
    }
    out
}

/// The atomic replacement of one table: `add table` (so the delete cannot
/// fail), `delete table`, then the whole body, in one transaction. The kernel
/// commits all of it or nothing, so packets never see a missing table.
pub fn replace_document(t: &NftTable) -> Value {
    let mut cmds = vec![
        json!({"add": table_obj(t.family, &t.name)}),
        json!({"delete": table_obj(t.family, &t.name)}),
    ];
    cmds.extend(table_commands(t));
    json!({ "nftables": cmds })
}

/// `nft delete table <family> <name>`.
pub fn delete_document(key: &NftTableKey) -> Value {
    json!({"nftables": [{"delete": table_obj(key.family, &key.name)}]})
}

/// Element changes of one table's sets as one transaction: every delete,
/// then every add (the kernel checks interval overlaps against the next
/// generation, so a prefix can be swapped for an overlapping one).
pub fn update_sets_document(key: &NftTableKey, sets: &[NftSetDelta]) -> Value {
    let fam = key.family.as_str();
    let elements = |name: &str, nets: &[ipnet::IpNet]| {
        let elem: Vec<Value> = nets.iter().map(prefix).collect();
        json!({"element": {"family": fam, "table": key.name, "name": name, "elem": elem}})
    };
    let mut cmds = Vec::new();
    for d in sets.iter().filter(|d| !d.remove.is_empty()) {
        cmds.push(json!({"delete": elements(&d.name, &d.remove)}));
    }
    for d in sets.iter().filter(|d| !d.add.is_empty()) {
        cmds.push(json!({"add": elements(&d.name, &d.add)}));
    }
    json!({ "nftables": cmds })
}

/// One element of a listed set as prefixes (`None`: a form routerd never
/// writes, so the set is replaced instead of updated).
fn listed_element(v: &Value, out: &mut Vec<ipnet::IpNet>) -> Option<()> {
    match v {
        Value::String(a) => {
            let a: std::net::IpAddr = a.parse().ok()?;
            out.push(ipnet::IpNet::from(a));
        }
        Value::Object(m) => {
            if let Some(p) = m.get("prefix") {
                let addr: std::net::IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
                out.push(ipnet::IpNet::new(addr, len).ok()?);
            } else if let Some(r) = m.get("range") {
                let lo: std::net::IpAddr = r.get(0)?.as_str()?.parse().ok()?;
                let hi: std::net::IpAddr = r.get(1)?.as_str()?.parse().ok()?;
                match (lo, hi) {
                    (std::net::IpAddr::V4(lo), std::net::IpAddr::V4(hi)) => {
                        out.extend(ipnet::Ipv4Subnets::new(lo, hi, 0).map(ipnet::IpNet::V4));
                    }
                    (std::net::IpAddr::V6(lo), std::net::IpAddr::V6(hi)) => {
                        out.extend(ipnet::Ipv6Subnets::new(lo, hi, 0).map(ipnet::IpNet::V6));
                    }
                    _ => return None,
                }
            } else if let Some(e) = m.get("elem") {
                return listed_element(e.get("val")?, out);
            } else {
                return None;
            }
        }
        _ => return None,
    }
    Some(())
}

/// The elements of a listed set, sorted; `None` if one is unreadable.
fn listed_elements(set: &Value) -> Option<Vec<ipnet::IpNet>> {
    let mut out = Vec::new();
    match set.get("elem") {
        None => {}
        Some(Value::Array(items)) => {
            for v in items {
                listed_element(v, &mut out)?;
            }
        }
        Some(_) => return None,
    }
    out.sort();
    Some(out)
}

/// Error reading a ruleset listing.
#[derive(Debug, thiserror::Error)]
#[error("cannot parse nft -j output: {0}")]
pub struct ListingError(String);

/// Reads the routerd-owned tables out of `nft -j list ruleset`: which
/// exist, their rule count per chain, and a fingerprint of their content
/// (handles and counters left out) that tells drift from stability.
pub fn parse_listing(text: &str) -> Result<Vec<ObservedNftTable>, ListingError> {
    let v: Value = serde_json::from_str(text).map_err(|e| ListingError(e.to_string()))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| ListingError("no \"nftables\" array".into()))?;
    type Parts = (
        BTreeMap<String, usize>,
        Vec<Value>,
        BTreeMap<String, Vec<ipnet::IpNet>>,
    );
    let mut tables: BTreeMap<NftTableKey, Parts> = BTreeMap::new();
    let key_of = |o: &Value, name_key: &str| -> Option<NftTableKey> {
        let fam = NftFamily::parse(o.get("family")?.as_str()?)?;
        let name = o.get(name_key)?.as_str()?;
        name.starts_with(NFT_TABLE_PREFIX).then(|| NftTableKey {
            family: fam,
            name: name.to_string(),
        })
    };
    for item in items {
        let Some(obj) = item.as_object() else {
            continue;
        };
        for (kind, o) in obj {
            let k = match kind.as_str() {
                "table" => key_of(o, "name"),
                "chain" | "rule" | "set" | "map" => key_of(o, "table"),
                _ => None,
            };
            let Some(k) = k else { continue };
            let entry = tables.entry(k).or_default();
            match kind.as_str() {
                "chain" => {
                    if let Some(n) = o.get("name").and_then(Value::as_str) {
                        entry.0.entry(n.to_string()).or_insert(0);
                    }
                }
                "rule" => {
                    if let Some(n) = o.get("chain").and_then(Value::as_str) {
                        *entry.0.entry(n.to_string()).or_insert(0) += 1;
                    }
                }
                "set" => {
                    if let (Some(n), Some(e)) =
                        (o.get("name").and_then(Value::as_str), listed_elements(o))
                    {
                        entry.2.insert(n.to_string(), e);
                    }
                }
                _ => {}
            }
            let mut clean = o.clone();
            strip_volatile(&mut clean);
            entry.1.push(json!({ kind.clone(): clean }));
        }
    }
    Ok(tables
        .into_iter()
        .map(|(key, (chains, objs, sets))| {
            let canon = serde_json::to_string(&objs).unwrap_or_default();
            let d = sha2::Sha256::digest(canon.as_bytes());
            ObservedNftTable {
                key,
                chains,
                fingerprint: hex::encode(&d[..8]),
                sets,
            }
        })
        .collect())
}

/// Drops what changes without anyone changing the table: handles, counters
/// and the kernel's bookkeeping.
fn strip_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            m.remove("counter");
            m.remove("packets");
            m.remove("bytes");
            for (_, x) in m.iter_mut() {
                strip_volatile(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ChainType, Hook, MarkSource, NftChain, NftRule, Priority};

    const LISTING: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "filter", "handle": 1}},
      {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1}},
      {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": [{"accept": null}]}},
      {"table": {"family": "ip", "name": "routerd_nat", "handle": 7}},
      {"chain": {"family": "ip", "table": "routerd_nat", "name": "postrouting", "handle": 1,
                 "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "routerd_nat", "chain": "postrouting", "handle": 3,
                "expr": [{"counter": {"packets": 5, "bytes": 300}}, {"masquerade": null}]}},
      {"table": {"family": "ip", "name": "routerd_policy", "handle": 8}},
      {"chain": {"family": "ip", "table": "routerd_policy", "name": "prerouting", "handle": 1}}
    ]}"#;

    #[test]
    fn listing_keeps_only_owned_tables_with_rule_counts() {
        let t = parse_listing(LISTING).unwrap();
        let names: Vec<&str> = t.iter().map(|o| o.key.name.as_str()).collect();
        assert_eq!(names, ["routerd_nat", "routerd_policy"]);
        assert_eq!(t[0].chains.get("postrouting"), Some(&1));
        assert_eq!(t[1].chains.get("prerouting"), Some(&0));
    }

    #[test]
    fn fingerprint_ignores_handles_and_counters_but_not_rules() {
        let a = parse_listing(LISTING).unwrap();
        let renumbered = LISTING
            .replace("\"handle\": 3", "\"handle\": 99")
            .replace("\"packets\": 5", "\"packets\": 6000");
        let b = parse_listing(&renumbered).unwrap();
        assert_eq!(a[0].fingerprint, b[0].fingerprint);
        let edited = LISTING.replace("{\"masquerade\": null}", "{\"accept\": null}");
        let c = parse_listing(&edited).unwrap();
        assert_ne!(a[0].fingerprint, c[0].fingerprint);
    }

    #[test]
    fn bad_listing_is_an_error() {
        assert!(parse_listing("not json").is_err());
        assert!(parse_listing("{}").is_err());
    }

    #[test]
    fn replace_document_is_one_atomic_transaction() {
        let mut t = NftTable::new(NftFamily::Ip, "routerd_policy");
        t.chains.push(NftChain {
            name: "prerouting".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: Priority::Mangle,
            rules: vec![NftRule {
                exprs: vec![Expr::SetMark(MarkSource::JhashMap {
                    family: Family::V4,
                    fields: vec![IpField::Saddr, IpField::Daddr],
                    marks: vec![0x11, 0x13],
                })],
            }],
        });
        let doc = replace_document(&t);
        let cmds = doc["nftables"].as_array().unwrap();
        assert_eq!(
            cmds[0],
            json!({"add": {"table": {"family": "ip", "name": "routerd_policy"}}})
        );
        assert_eq!(
            cmds[1],
            json!({"delete": {"table": {"family": "ip", "name": "routerd_policy"}}})
        );
        assert_eq!(cmds[3]["add"]["chain"]["prio"], json!(-150));
        assert_eq!(
            cmds[4]["add"]["rule"]["expr"][0],
            json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"map": {
                "key": {"jhash": {"mod": 2, "expr": {"concat": [
                    {"payload": {"protocol": "ip", "field": "saddr"}},
                    {"payload": {"protocol": "ip", "field": "daddr"}}]}}},
                "data": {"set": [[0, 0x11], [1, 0x13]]}}}}})
        );
    }

    #[test]
    fn ipv6_matches_use_the_ip6_payload_and_ipv6_sets() {
        use crate::ir::NftSet;
        let e = Expr::Ip {
            family: Family::V6,
            field: IpField::Saddr,
            op: CmpOp::Eq,
            value: AddrValue::Prefix("2001:db8::/32".parse().unwrap()),
        };
        assert_eq!(
            expr_json(&e),
            json!({"match": {"op": "==",
                "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
                "right": {"prefix": {"addr": "2001:db8::", "len": 32}}}})
        );
        let host = Expr::Ip {
            family: Family::V6,
            field: IpField::Daddr,
            op: CmpOp::Ne,
            value: AddrValue::Prefix("2001:db8::9/128".parse().unwrap()),
        };
        assert_eq!(expr_json(&host)["match"]["right"], json!("2001:db8::9"));
        let mut t = NftTable::new(NftFamily::Ip6, "routerd_policy");
        t.sets.push(NftSet {
            family: Family::V6,
            name: "s".into(),
            elements: vec!["2001:db8::/48".parse().unwrap()],
        });
        let cmds = table_commands(&t);
        assert_eq!(cmds[1]["add"]["set"]["type"], json!("ipv6_addr"));
        assert_eq!(cmds[1]["add"]["set"]["family"], json!("ip6"));
        assert_eq!(cmds[1]["add"]["set"]["flags"], json!(["interval"]));
    }

    fn delta() -> Vec<NftSetDelta> {
        vec![NftSetDelta {
            name: "s".into(),
            family: Family::V4,
            interval: true,
            add: vec![
                "10.0.0.0/16".parse().unwrap(),
                "192.0.2.9/32".parse().unwrap(),
            ],
            remove: vec!["10.0.0.0/24".parse().unwrap()],
        }]
    }

    #[test]
    fn a_set_update_deletes_then_adds_in_one_document() {
        let key = NftTableKey {
            family: NftFamily::Ip,
            name: "routerd_policy".into(),
        };
        let doc = update_sets_document(&key, &delta());
        assert_eq!(
            doc,
            json!({"nftables": [
                {"delete": {"element": {"family": "ip", "table": "routerd_policy", "name": "s",
                    "elem": [{"prefix": {"addr": "10.0.0.0", "len": 24}}]}}},
                {"add": {"element": {"family": "ip", "table": "routerd_policy", "name": "s",
                    "elem": [{"prefix": {"addr": "10.0.0.0", "len": 16}}, "192.0.2.9"]}}}
            ]})
        );
        assert_eq!(
            crate::nft_text::set_update_batch(&key, &delta()),
            "delete element ip routerd_policy s { 10.0.0.0/24 }\n\
             add element ip routerd_policy s { 10.0.0.0/16, 192.0.2.9 }\n"
        );
    }

    #[test]
    fn listed_set_elements_are_read_back_sorted_in_every_form() {
        let listing = r#"{"nftables": [
          {"table": {"family": "ip", "name": "routerd_policy", "handle": 1}},
          {"set": {"family": "ip", "name": "s", "table": "routerd_policy", "type": "ipv4_addr",
                   "handle": 2, "flags": ["interval"], "elem": ["192.0.2.9",
                   {"prefix": {"addr": "10.0.0.0", "len": 16}},
                   {"range": ["172.16.0.0", "172.16.1.255"]},
                   {"elem": {"val": "198.51.100.1", "counter": {"packets": 0, "bytes": 0}}}]}},
          {"set": {"family": "ip", "name": "empty", "table": "routerd_policy",
                   "type": "ipv4_addr", "handle": 3}},
          {"set": {"family": "ip", "name": "odd", "table": "routerd_policy",
                   "type": "ipv4_addr", "handle": 4, "elem": [{"concat": ["a", "b"]}]}}
        ]}"#;
        let t = parse_listing(listing).unwrap();
        let got: Vec<String> = t[0].sets["s"].iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "10.0.0.0/16",
                "172.16.0.0/23",
                "192.0.2.9/32",
                "198.51.100.1/32"
            ]
        );
        assert_eq!(t[0].sets["empty"], Vec::<ipnet::IpNet>::new());
        assert!(!t[0].sets.contains_key("odd"));
    }
}
