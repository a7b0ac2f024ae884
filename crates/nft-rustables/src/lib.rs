//! routerd's rustables nftables backend.
//!
//! rustables writes nf_tables netlink messages itself, so simple tables
//! load without running `nft` and about twice as fast (deps.md §4). It
//! cannot express jhash, numgen, maps, interval or anonymous sets, NAT ranges
//! or flags; [`RustablesBackend::supports`] says so and routerd falls back to
//! the `nft -j` backend for such tables.
//!
//! rustables is GPL-3.0-or-later, so this crate is too, and it is the only
//! routerd crate that links it. The workarounds for the defects deps.md §2.3
//! lists live here:
//! * batches go out on routerd's own netfilter socket (large forced
//!   buffers, kept open; never `Batch::send`, which fails or lies from ~300
//!   rules on);
//! * set elements are chunked below the u16 attribute limit, and sets get
//!   their family and id set by hand;
//! * interfaces are matched by name (`oiface_id` writes the index
//!   big-endian), and addresses by explicit `payload + bitwise + cmp`
//!   (the address helpers prepend `meta nfproto`, which breaks `nft list`
//!   of `ip` tables).

#![deny(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use routerd_render::DataplaneError;
use routerd_render::ir::{
    AddrValue, ChainType as IrChainType, CmpOp as IrCmp, Expr, Family, Hook as IrHook, IpField,
    L4Proto, MarkSource, NFT_OWNER_COMMENT, NatAddr, NftFamily, NftSet, NftTable, NftTableKey,
    RejectWith,
};
use routerd_render::linux::NetfilterSocket;
use routerd_render::nft_backend::NftBackend;
use routerd_render::plan::NftSetDelta;
use rustables::data_type::DataType;
use rustables::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, ConntrackKey, HighLevelPayload, IPv4HeaderField,
    IPv6HeaderField, Immediate, Lookup, Masquerade, Meta, MetaType, Nat, NatType,
    NetworkHeaderField, Payload, Register, Reject, RejectType, VerdictKind,
};
use rustables::set::SetBuilder;
use rustables::{
    Batch, Chain, ChainPolicy, ChainType, Hook, HookClass, MsgType, ProtocolFamily, Rule, Table,
};

/// Set elements per message: 4,000 IPv4 keys stay well under the 64 KiB
/// attribute limit (deps.md §2.3 item 3); IPv6 keys are four times as
/// large, so a quarter as many.
const ELEMENTS_PER_MESSAGE: usize = 4000;
const ELEMENTS_PER_MESSAGE_V6: usize = 1000;
/// nft's `NFTNL_UDATA_TABLE_COMMENT`.
const UDATA_TABLE_COMMENT: u8 = 0;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
const TRANSPORT_HEADER: u32 = 2;

/// Loads owned tables through rustables, one netlink transaction each, on
/// a netfilter socket that stays open (a closed one waits for the kernel
/// to free what the batch deleted; see `routerd_render::linux::NfNetlink`).
#[derive(Debug, Default)]
pub struct RustablesBackend {
    sock: NetfilterSocket,
}

impl RustablesBackend {
    /// A backend bound to the calling thread's network namespace.
    pub fn new() -> Self {
        RustablesBackend {
            sock: NetfilterSocket::new(),
        }
    }

    fn send(&mut self, bytes: &[u8], context: &str) -> Result<(), DataplaneError> {
        self.sock.send_batch(bytes, context, |_| None)
    }
}

fn unsupported(what: &str) -> Result<(), String> {
    Err(format!("rustables cannot express {what}"))
}

fn expressible(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Ip {
            op: IrCmp::Ne,
            value: AddrValue::Set(_),
            ..
        } => unsupported("negated set lookups"),
        Expr::CtMarkIn { .. } => unsupported("anonymous sets (ct mark { ... })"),
        Expr::L4Proto(ps) if ps.len() != 1 => unsupported("anonymous sets (meta l4proto { ... })"),
        Expr::SetMark(MarkSource::JhashMap { .. }) => unsupported("jhash maps"),
        // rustables writes only the icmpx codes, and an `ip` table's reject
        // sends nothing for those: the kernel would drop silently.
        Expr::Reject(RejectWith::IcmpAdminProhibited) => {
            unsupported("reject with icmp type admin-prohibited (only icmpx codes)")
        }
        Expr::Reject(RejectWith::Icmpv6AdminProhibited) => {
            unsupported("reject with icmpv6 type admin-prohibited (only icmpx codes)")
        }
        Expr::Reject(RejectWith::IcmpPortUnreachable | RejectWith::Icmpv6PortUnreachable) => {
            unsupported("reject with icmp(v6) type port-unreachable (only icmpx codes)")
        }
        Expr::IifNameNe(_) => unsupported("negated iifname"),
        Expr::FibDaddrLocal => unsupported("fib expressions"),
        Expr::CtStatusDnat => unsupported("ct status"),
        Expr::CtDirectionOriginal => unsupported("ct direction"),
        Expr::Dnat6 { .. } | Expr::Snat6(_) => unsupported("IPv6 NAT"),
        Expr::DnatMap { .. } => unsupported("jhash maps (dnat to jhash ... map)"),
        Expr::DnatPortMap { .. } => unsupported("dnat port maps (dnat to tcp dport map)"),
        Expr::Masquerade { ports, persistent } if ports.is_some() || *persistent => {
            unsupported("masquerade port ranges or flags")
        }
        Expr::Snat {
            addr,
            ports,
            persistent,
        } if ports.is_some() || *persistent || !matches!(addr, NatAddr::Single(_)) => {
            unsupported("snat ranges, maps or flags")
        }
        _ => Ok(()),
    }
}

fn family(f: NftFamily) -> ProtocolFamily {
    match f {
        NftFamily::Ip => ProtocolFamily::Ipv4,
        NftFamily::Ip6 => ProtocolFamily::Ipv6,
        NftFamily::Inet => ProtocolFamily::Inet,
    }
}

fn err(context: &str, message: impl std::fmt::Display) -> DataplaneError {
    DataplaneError::Nft {
        context: context.to_string(),
        message: message.to_string(),
    }
}

/// The table comment as nft stores it: a udata TLV holding a C string.
fn comment_udata(comment: &str) -> Vec<u8> {
    let mut v = vec![UDATA_TABLE_COMMENT];
    let bytes = comment.as_bytes();
    v.push(u8::try_from(bytes.len() + 1).unwrap_or(u8::MAX));
    v.extend_from_slice(bytes);
    v.push(0);
    v
}

fn ip_payload(family: Family, field: IpField) -> Payload {
    let f = match family {
        Family::V4 => NetworkHeaderField::IPv4(match field {
            IpField::Saddr => IPv4HeaderField::Saddr,
            IpField::Daddr => IPv4HeaderField::Daddr,
        }),
        Family::V6 => NetworkHeaderField::IPv6(match field {
            IpField::Saddr => IPv6HeaderField::Saddr,
            IpField::Daddr => IPv6HeaderField::Daddr,
        }),
    };
    HighLevelPayload::Network(f).build()
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn cmp(op: IrCmp) -> CmpOp {
    match op {
        IrCmp::Eq => CmpOp::Eq,
        IrCmp::Ne => CmpOp::Neq,
    }
}

fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

fn proto_number(p: L4Proto) -> u8 {
    p.number()
}

/// Appends the netlink expressions of one IR expression to `rule`.
fn add_expr(
    rule: &mut Rule,
    e: &Expr,
    sets: &[rustables::Set],
    context: &str,
) -> Result<(), DataplaneError> {
    let b = |e: rustables::error::BuilderError| err(context, e);
    match e {
        Expr::IifName(n) => {
            rule.add_expr(Meta::new(MetaType::IifName));
            rule.add_expr(Cmp::new(CmpOp::Eq, ifname(n)));
        }
        Expr::OifName(n) => {
            rule.add_expr(Meta::new(MetaType::OifName));
            rule.add_expr(Cmp::new(CmpOp::Eq, ifname(n)));
        }
        Expr::Ip {
            family,
            field,
            op,
            value,
        } => {
            rule.add_expr(ip_payload(*family, *field));
            match value {
                AddrValue::Prefix(p) => {
                    if Family::of_net(p) != *family {
                        return Err(err(context, format!("{p} in an {} match", family.name())));
                    }
                    if p.prefix_len() < p.max_prefix_len() {
                        let mask = octets(p.netmask());
                        let zero = vec![0u8; mask.len()];
                        rule.add_expr(Bitwise::new(mask, zero).map_err(b)?);
                    }
                    rule.add_expr(Cmp::new(cmp(*op), octets(p.network())));
                }
                AddrValue::Set(name) => {
                    let set = sets
                        .iter()
                        .find(|s| s.get_name() == Some(name))
                        .ok_or_else(|| err(context, format!("set {name} is not declared")))?;
                    rule.add_expr(Lookup::new(set).map_err(b)?);
                }
            }
        }
        Expr::CtMark { op, mark } => {
            rule.add_expr(Conntrack::new(ConntrackKey::Mark));
            rule.add_expr(Cmp::new(cmp(*op), mark.to_ne_bytes().to_vec()));
        }
        Expr::L4Proto(ps) => {
            let p = ps
                .first()
                .copied()
                .ok_or_else(|| err(context, "empty protocol list"))?;
            rule.add_expr(Meta::new(MetaType::L4Proto));
            rule.add_expr(Cmp::new(CmpOp::Eq, vec![proto_number(p)]));
        }
        Expr::Dport { proto, port } => {
            rule.add_expr(Meta::new(MetaType::L4Proto));
            rule.add_expr(Cmp::new(CmpOp::Eq, vec![proto_number(*proto)]));
            rule.add_expr(
                Payload::default()
                    .with_base(TRANSPORT_HEADER)
                    .with_offset(2u32)
                    .with_len(2u32)
                    .with_dreg(Register::Reg1),
            );
            rule.add_expr(Cmp::new(CmpOp::Eq, port.to_be_bytes().to_vec()));
        }
        Expr::SetMark(MarkSource::Const(m)) => {
            rule.add_expr(Immediate::new_data(
                m.to_ne_bytes().to_vec(),
                Register::Reg1,
            ));
            rule.add_expr(
                Meta::default()
                    .with_key(MetaType::Mark)
                    .with_sreg(Register::Reg1),
            );
        }
        Expr::SetMark(MarkSource::CtMark) => {
            rule.add_expr(Conntrack::new(ConntrackKey::Mark));
            rule.add_expr(
                Meta::default()
                    .with_key(MetaType::Mark)
                    .with_sreg(Register::Reg1),
            );
        }
        Expr::SetCtMarkFromMark => {
            rule.add_expr(Meta::new(MetaType::Mark));
            rule.add_expr(Conntrack::default().with_mark_value(Register::Reg1));
        }
        Expr::Masquerade { .. } => rule.add_expr(Masquerade {}),
        Expr::Snat {
            addr: NatAddr::Single(a),
            ..
        } => add_nat(rule, NatType::SNat, *a, None),
        Expr::Dnat { addr, port } => add_nat(rule, NatType::DNat, *addr, *port),
        Expr::Accept => rule.add_expr(Immediate::new_verdict(VerdictKind::Accept)),
        Expr::Drop => rule.add_expr(Immediate::new_verdict(VerdictKind::Drop)),
        Expr::Reject(RejectWith::TcpReset) => {
            rule.add_expr(Reject::default().with_type(RejectType::TcpRst));
        }
        other => {
            return Err(DataplaneError::Unsupported(format!(
                "rustables cannot express {other:?}"
            )));
        }
    }
    Ok(())
}

/// `snat|dnat to <addr>[:<port>]`: immediates into registers, then `nat`.
fn add_nat(rule: &mut Rule, ty: NatType, addr: Ipv4Addr, port: Option<u16>) {
    rule.add_expr(Immediate::new_data(addr.octets().to_vec(), Register::Reg1));
    let mut nat = Nat::default()
        .with_nat_type(ty)
        .with_family(ProtocolFamily::Ipv4)
        .with_ip_register(Register::Reg1);
    if let Some(p) = port {
        rule.add_expr(Immediate::new_data(
            p.to_be_bytes().to_vec(),
            Register::Reg2,
        ));
        nat = nat.with_port_register(Register::Reg2);
    }
    rule.add_expr(nat);
}

fn hook_class(h: IrHook) -> HookClass {
    match h {
        IrHook::Prerouting => HookClass::PreRouting,
        IrHook::Input => HookClass::In,
        IrHook::Forward => HookClass::Forward,
        IrHook::Output => HookClass::Out,
        IrHook::Postrouting => HookClass::PostRouting,
    }
}

fn chain_type(t: IrChainType) -> ChainType {
    match t {
        IrChainType::Filter => ChainType::Filter,
        IrChainType::Nat => ChainType::Nat,
        IrChainType::Route => ChainType::Route,
    }
}

/// The whole replacement as one batch: add, delete, add the table (so the
/// delete cannot fail), then sets, elements, chains and rules.
fn replace_batch(t: &NftTable) -> Result<Vec<u8>, DataplaneError> {
    let ctx = format!("rustables replace table {} {}", t.family, t.name);
    let b = |e: rustables::error::BuilderError| err(&ctx, e);
    let fam = family(t.family);
    let table = Table::new(fam)
        .with_name(t.name.clone())
        .with_userdata(comment_udata(NFT_OWNER_COMMENT));
    let mut batch = Batch::new();
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    batch.add(&table, MsgType::Add);
    let mut sets = Vec::new();
    for (i, s) in t.sets.iter().enumerate() {
        let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let set = match s.family {
            Family::V4 => {
                add_set::<Ipv4Addr>(&mut batch, &table, fam, s, id, ELEMENTS_PER_MESSAGE, |a| {
                    match a {
                        IpAddr::V4(v) => Some(v),
                        IpAddr::V6(_) => None,
                    }
                })
            }
            Family::V6 => add_set::<Ipv6Addr>(
                &mut batch,
                &table,
                fam,
                s,
                id,
                ELEMENTS_PER_MESSAGE_V6,
                |a| match a {
                    IpAddr::V6(v) => Some(v),
                    IpAddr::V4(_) => None,
                },
            ),
        }
        .map_err(|e| err(&ctx, e))?;
        sets.push(set);
    }
    for c in &t.chains {
        let chain = Chain::new(&table)
            .with_name(c.name.clone())
            .with_hook(Hook::new(hook_class(c.hook), c.priority.value()))
            .with_type(chain_type(c.chain_type))
            .with_policy(ChainPolicy::Accept);
        batch.add(&chain, MsgType::Add);
        for r in &c.rules {
            let mut rule = Rule::new(&chain).map_err(b)?;
            for e in &r.exprs {
                add_expr(&mut rule, e, &sets, &ctx)?;
            }
            batch.add(&rule, MsgType::Add);
        }
    }
    Ok(batch.finalize())
}

/// Declares set `s` (key type `K`) and adds its elements in chunks of
/// `per_message`; returns the declared set for lookups.
fn add_set<K: DataType>(
    batch: &mut Batch,
    table: &Table,
    fam: ProtocolFamily,
    s: &NftSet,
    id: u32,
    per_message: usize,
    key: impl Fn(IpAddr) -> Option<K>,
) -> Result<rustables::Set, String> {
    let chunks: Vec<&[IpNet]> = if s.elements.is_empty() {
        vec![&[]]
    } else {
        s.elements.chunks(per_message).collect()
    };
    let mut declared = None;
    for chunk in chunks {
        let mut sb = SetBuilder::<K>::new(s.name.clone(), table).map_err(|e| e.to_string())?;
        for e in chunk {
            let k = key(e.addr())
                .ok_or_else(|| format!("{e} in {} set {}", s.family.name(), s.name))?;
            sb.add(&k);
        }
        let (mut set, mut elems) = sb.finish();
        // SetBuilder leaves both out; the kernel wants them (deps.md §2.3).
        set.family = fam;
        set.set_id(id);
        elems.family = fam;
        if declared.is_none() {
            batch.add(&set, MsgType::Add);
            declared = Some(set);
        }
        if !chunk.is_empty() {
            batch.add(&elems, MsgType::Add);
        }
    }
    declared.ok_or_else(|| format!("set {} has no declaration", s.name))
}

/// `count` element messages of set `name` (key type `K`) as `msg`,
/// in chunks of `per_message`.
fn set_elements<K: DataType>(
    batch: &mut Batch,
    table: &Table,
    name: &str,
    nets: &[IpNet],
    msg: MsgType,
    per_message: usize,
    key: impl Fn(IpAddr) -> Option<K>,
) -> Result<(), String> {
    for chunk in nets.chunks(per_message) {
        let mut sb = SetBuilder::<K>::new(name.to_string(), table).map_err(|e| e.to_string())?;
        for e in chunk {
            let k = key(e.addr()).ok_or_else(|| format!("{e} in set {name}"))?;
            sb.add(&k);
        }
        let (_, elems) = sb.finish();
        batch.add(&elems, msg);
    }
    Ok(())
}

/// Element changes of one table as one batch: every delete, then every add.
fn update_batch(key: &NftTableKey, sets: &[NftSetDelta]) -> Result<Vec<u8>, String> {
    let table = Table::new(family(key.family)).with_name(key.name.clone());
    let mut batch = Batch::new();
    for msg in [MsgType::Del, MsgType::Add] {
        for d in sets {
            let nets: &[IpNet] = match msg {
                MsgType::Del => &d.remove,
                MsgType::Add => &d.add,
            };
            if nets.is_empty() {
                continue;
            }
            match d.family {
                Family::V4 => set_elements::<Ipv4Addr>(
                    &mut batch,
                    &table,
                    &d.name,
                    nets,
                    msg,
                    ELEMENTS_PER_MESSAGE,
                    |a| match a {
                        IpAddr::V4(v) => Some(v),
                        IpAddr::V6(_) => None,
                    },
                )?,
                Family::V6 => set_elements::<Ipv6Addr>(
                    &mut batch,
                    &table,
                    &d.name,
                    nets,
                    msg,
                    ELEMENTS_PER_MESSAGE_V6,
                    |a| match a {
                        IpAddr::V6(v) => Some(v),
                        IpAddr::V4(_) => None,
                    },
                )?,
            }
        }
    }
    Ok(batch.finalize())
}

impl NftBackend for RustablesBackend {
    fn name(&self) -> &'static str {
        "rustables"
    }

    fn supports(&self, table: &NftTable) -> Result<(), String> {
        if table.sets.iter().any(|s| s.is_interval()) {
            return unsupported("interval sets");
        }
        for c in &table.chains {
            for r in &c.rules {
                for e in &r.exprs {
                    expressible(e)?;
                }
            }
        }
        Ok(())
    }

    fn replace_table(&mut self, table: &NftTable) -> Result<(), DataplaneError> {
        if let Err(why) = self.supports(table) {
            return Err(DataplaneError::Unsupported(why));
        }
        let bytes = replace_batch(table)?;
        self.send(
            &bytes,
            &format!("rustables replace table {} {}", table.family, table.name),
        )
    }

    /// Host sets only: an interval set's elements are start/end pairs in
    /// the kernel, which this backend does not build, so those updates go
    /// to `nft -j` (as interval sets' loads already do).
    fn supports_set_update(&self, sets: &[NftSetDelta]) -> Result<(), String> {
        if sets.iter().any(|d| d.interval) {
            return unsupported("interval set updates");
        }
        Ok(())
    }

    fn update_sets(
        &mut self,
        key: &NftTableKey,
        sets: &[NftSetDelta],
    ) -> Result<(), DataplaneError> {
        let ctx = format!("rustables update sets of table {key}");
        if let Err(why) = self.supports_set_update(sets) {
            return Err(DataplaneError::Unsupported(why));
        }
        let bytes = update_batch(key, sets).map_err(|e| err(&ctx, e))?;
        self.send(&bytes, &ctx)
    }

    fn delete_table(&mut self, key: &NftTableKey) -> Result<(), DataplaneError> {
        let table = Table::new(family(key.family)).with_name(key.name.clone());
        let mut batch = Batch::new();
        batch.add(&table, MsgType::Del);
        self.send(&batch.finalize(), &format!("rustables delete table {key}"))
    }
}
