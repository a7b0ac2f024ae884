//! nf_tables netlink batches for whole owned tables, written in process.
//!
//! Why: a 1,000-rule EgressRouter table takes `nft` about 10 ms of parsing
//! and evaluation, and every `nft` run that deletes something waits, when it
//! closes its netlink socket, for the kernel to free the deleted objects
//! after an RCU grace period (another 5-15 ms). A batch written here and
//! sent on a socket that stays open costs neither (docs/performance.md).
//! rustables cannot express maps, anonymous sets, hashes or concatenations
//! (deps.md §2.3), so the messages are encoded here, attribute by attribute
//! (`include/uapi/linux/netfilter/nf_tables.h`).
//!
//! The encoding reproduces what nft 1.0.6 sends for the same table text,
//! set metadata included, so `nft list` shows the table exactly as if nft
//! had loaded it and routerd's own reading of the kernel stays in sync. The
//! kinds of expression covered are those of EgressRouter tables;
//! [`supports`] names the first thing outside them, and such a table goes
//! to another backend.
//!
//! Pure: the functions here build bytes and never touch a socket.

use std::net::IpAddr;

use crate::ir::{
    AddrValue, ChainType, CmpOp, Expr, Family, Hook, IpField, L4Proto, MarkSource, NatAddr,
    NftFamily, NftSet, NftTable, NftTableKey, RejectWith,
};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 1;
/// `NLM_F_ACK`: every object message asks for one, so an error names it.
pub const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;

const NFT_SET_ANONYMOUS: u32 = 0x1;
const NFT_SET_CONSTANT: u32 = 0x2;
const NFT_SET_MAP: u32 = 0x8;

const NFT_REG_VERDICT: u32 = 0;
const REG1: u32 = 1;
const REG2: u32 = 2;
/// `NFT_REG32_01`: the second 32-bit word of register 1, where nft puts
/// the second field of a concatenation of 4-byte fields.
const REG32_01: u32 = 9;

const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_MARK: u32 = 3;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATUS: u32 = 2;
const NFT_CT_MARK: u32 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_NAT_SNAT: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NFT_REJECT_ICMP_UNREACH: u32 = 0;
const NFT_REJECT_TCP_RST: u32 = 1;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const IPS_DST_NAT: u32 = 0x20;
const NF_ACCEPT: u32 = 1;
const NF_DROP: u32 = 0;
const IFNAMSIZ: usize = 16;

/// nft's datatype ids (`enum datatypes` of nftables), as set key and data
/// types; a concatenation is `(a << 6) | b`.
const TYPE_INTEGER: u32 = 4;
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_MARK: u32 = 19;
const TYPE_BITS: u32 = 6;

/// nft's set user data (`NFTNL_UDATA_SET_*`), which `nft list` reads to
/// print keys in their byte order and as the expression they came from.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_KEY_TYPEOF: u8 = 3;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_TABLE_COMMENT: u8 = 0;
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_HOST: u32 = 1;
const BYTEORDER_BIG: u32 = 2;
/// nft's expression ids in typeof user data (`enum expr_types`).
const EXPR_PAYLOAD: u32 = 7;
const EXPR_META: u32 = 9;
const EXPR_CONCAT: u32 = 13;
/// nft's protocol descriptor ids (`enum proto_desc_id`).
const PROTO_DESC_UDP: u32 = 6;
const PROTO_DESC_TCP: u32 = 8;
const PROTO_DESC_SCTP: u32 = 10;
/// The `dport` field of tcp, udp and sctp descriptors.
const TH_DPORT_FIELD: u32 = 2;

/// Object messages are kept below this many bytes of elements, well under
/// the 64 KiB an attribute's 16-bit length can hold.
const ELEMENT_BYTES_PER_MESSAGE: usize = 48 * 1024;

/// Whether this encoder can write `table` the way nft would; otherwise the
/// first thing it cannot.
pub fn supports(table: &NftTable) -> Result<(), String> {
    if table.family == NftFamily::Inet {
        return Err("inet tables (their address matches need an nfproto dependency)".into());
    }
    if let Some(s) = table.sets.iter().find(|s| s.is_interval()) {
        return Err(format!("interval set {}", s.name));
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

fn expressible(e: &Expr) -> Result<(), String> {
    let no = |what: &str| Err(format!("{what} is not encoded in process"));
    match e {
        Expr::CtMarkIn { .. } => no("ct mark { ... }"),
        Expr::SetMark(MarkSource::CtMark | MarkSource::JhashMap { .. }) => {
            no("meta mark set ct mark / jhash map")
        }
        Expr::SetCtMarkFromMark => no("ct mark set meta mark"),
        Expr::Masquerade { .. } => no("masquerade"),
        Expr::Snat {
            addr: NatAddr::Range(..),
            ..
        } => no("snat address ranges"),
        Expr::Snat {
            ports, persistent, ..
        } if ports.is_some() || *persistent => no("snat port ranges or flags"),
        Expr::CtDirectionOriginal => no("ct direction"),
        Expr::L4Proto(ps) if ps.is_empty() => no("an empty protocol list"),
        Expr::Snat6(a) if a.is_empty() => no("snat to no address"),
        Expr::DnatMap { addrs, .. } if addrs.is_empty() => no("a hash map of no address"),
        Expr::DnatPortMap { entries, .. } if entries.is_empty() => no("an empty port map"),
        Expr::DnatBalancedPortMap { entries, .. }
            if entries.is_empty()
                || entries
                    .iter()
                    .any(|(_, d, _)| d.is_empty() || d.len() != entries[0].1.len()) =>
        {
            no("balanced port maps of unequal or no destinations")
        }
        _ => Ok(()),
    }
}

/// What each message of a batch is about, by sequence number, so a kernel
/// error can name the object it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The bytes to send, batch begin and end included.
    pub bytes: Vec<u8>,
    /// (sequence number, object) of every message that asks for an ACK.
    pub objects: Vec<(u32, String)>,
}

impl Batch {
    /// The sequence number of the last message that asks for an ACK: once
    /// its answer is read, the whole batch has been answered.
    pub fn last_seq(&self) -> Option<u32> {
        self.objects.last().map(|(s, _)| *s)
    }

    /// The object that message `seq` was about.
    pub fn object(&self, seq: u32) -> Option<&str> {
        self.objects
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, o)| o.as_str())
    }
}

/// The netlink writer: messages, attributes and nests, padded to 4 bytes.
struct Writer {
    buf: Vec<u8>,
    seq: u32,
    objects: Vec<(u32, String)>,
}

impl Writer {
    fn new(seq: u32) -> Self {
        Writer {
            buf: Vec::with_capacity(64 * 1024),
            seq,
            objects: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Starts a message; returns where its header is.
    fn begin(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg: family, version, res_id (big-endian).
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn finish(&mut self, start: usize) {
        self.pad();
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        if let Some(h) = self.buf.get_mut(start..start + 4) {
            h.copy_from_slice(&len.to_ne_bytes());
        }
        self.seq = self.seq.wrapping_add(1);
    }

    /// An object message (`NFT_MSG_*` of nf_tables) about `what`.
    fn object(&mut self, msg: u16, flags: u16, family: u8, what: String) -> usize {
        self.objects.push((self.seq, what));
        self.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | msg,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            family,
            0,
        )
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    fn str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn end(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        if let Some(h) = self.buf.get_mut(start..start + 2) {
            h.copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// `NFTA_DATA_VALUE` inside a nest of type `ty`.
    fn data(&mut self, ty: u16, value: &[u8]) {
        let n = self.nest(ty);
        self.attr(NFTA_DATA_VALUE, value);
        self.end(n);
    }

    fn batch_edge(&mut self, ty: u16) {
        let start = self.begin(ty, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.finish(start);
    }

    fn into_batch(self) -> Batch {
        Batch {
            bytes: self.buf,
            objects: self.objects,
        }
    }
}

fn nfproto(f: NftFamily) -> u8 {
    match f {
        NftFamily::Ip => 2,
        NftFamily::Ip6 => 10,
        NftFamily::Inet => 1,
    }
}

/// The table comment as nft stores it: a udata TLV holding a C string.
fn comment_udata(comment: &str) -> Vec<u8> {
    let mut v = vec![UDATA_TABLE_COMMENT];
    v.push(u8::try_from(comment.len() + 1).unwrap_or(u8::MAX));
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

/// One udata TLV.
fn tlv(out: &mut Vec<u8>, ty: u8, value: &[u8]) {
    out.push(ty);
    out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(value);
}

fn tlv_u32(out: &mut Vec<u8>, ty: u8, v: u32) {
    tlv(out, ty, &v.to_le_bytes());
}

/// A typeof record of a transport-header destination port.
fn typeof_dport(proto: L4Proto) -> Vec<u8> {
    let desc = match proto {
        L4Proto::Tcp => PROTO_DESC_TCP,
        L4Proto::Udp => PROTO_DESC_UDP,
        L4Proto::Sctp => PROTO_DESC_SCTP,
    };
    let mut data = Vec::new();
    tlv_u32(&mut data, 0, desc);
    tlv_u32(&mut data, 1, TH_DPORT_FIELD);
    let mut out = Vec::new();
    tlv_u32(&mut out, 0, EXPR_PAYLOAD);
    tlv(&mut out, 1, &data);
    out
}

/// A typeof record of a meta key.
fn typeof_meta(key: u32) -> Vec<u8> {
    let mut data = Vec::new();
    tlv_u32(&mut data, 0, key);
    let mut out = Vec::new();
    tlv_u32(&mut out, 0, EXPR_META);
    tlv(&mut out, 1, &data);
    out
}

/// A typeof record of a concatenation of records.
fn typeof_concat(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    tlv_u32(&mut data, 0, u32::try_from(parts.len()).unwrap_or(0));
    for p in parts {
        tlv(&mut data, 1, p);
    }
    let mut out = Vec::new();
    tlv_u32(&mut out, 0, EXPR_CONCAT);
    tlv(&mut out, 1, &data);
    out
}

/// An anonymous set or map a rule uses, declared just before the rule.
struct AnonSet {
    map: bool,
    key_type: u32,
    key_len: u32,
    data: Option<(u32, u32)>,
    udata: Vec<u8>,
    elements: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn addr_type(f: Family) -> (u32, u32) {
    match f {
        Family::V4 => (TYPE_IPADDR, 4),
        Family::V6 => (TYPE_IP6ADDR, 16),
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// A port as a register holds it in a concatenation: big-endian, padded
/// to four bytes.
fn port_word(p: u16) -> [u8; 4] {
    let b = p.to_be_bytes();
    [b[0], b[1], 0, 0]
}

/// `jhash <hdr> saddr mod N map { i : addr_i }`.
fn hash_map(family: Family, addrs: &[IpAddr]) -> AnonSet {
    let (data_type, data_len) = addr_type(family);
    let mut udata = Vec::new();
    tlv_u32(&mut udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_HOST);
    tlv_u32(&mut udata, UDATA_SET_DATABYTEORDER, BYTEORDER_BIG);
    tlv_u32(&mut udata, UDATA_SET_DATA_INTERVAL, 0);
    AnonSet {
        map: true,
        key_type: TYPE_INTEGER,
        key_len: 4,
        data: Some((data_type, data_len)),
        udata,
        elements: addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let k = u32::try_from(i).unwrap_or(u32::MAX).to_ne_bytes().to_vec();
                (k, Some(addr_bytes(*a)))
            })
            .collect(),
    }
}

/// The data of `addr . port` maps: the address, then the port word.
fn addr_port_data(family: Family) -> (u32, u32) {
    let (t, len) = addr_type(family);
    ((t << TYPE_BITS) | TYPE_INET_SERVICE, len + 4)
}

fn addr_port(a: IpAddr, p: u16) -> Vec<u8> {
    let mut v = addr_bytes(a);
    v.extend_from_slice(&port_word(p));
    v
}

/// The anonymous sets of one expression, in the order the expression uses
/// them.
fn anon_sets(e: &Expr) -> Vec<AnonSet> {
    match e {
        Expr::L4Proto(ps) if ps.len() > 1 => {
            let mut udata = Vec::new();
            tlv_u32(&mut udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_HOST);
            tlv(
                &mut udata,
                UDATA_SET_KEY_TYPEOF,
                &typeof_meta(NFT_META_L4PROTO),
            );
            vec![AnonSet {
                map: false,
                key_type: TYPE_INET_PROTOCOL,
                key_len: 1,
                data: None,
                udata,
                elements: ps.iter().map(|p| (vec![p.number()], None)).collect(),
            }]
        }
        Expr::Snat {
            addr: NatAddr::HashMap(addrs),
            ..
        } => {
            let a: Vec<IpAddr> = addrs.iter().map(|a| IpAddr::V4(*a)).collect();
            vec![hash_map(Family::V4, &a)]
        }
        Expr::Snat6(addrs) if addrs.len() > 1 => {
            let a: Vec<IpAddr> = addrs.iter().map(|a| IpAddr::V6(*a)).collect();
            vec![hash_map(Family::V6, &a)]
        }
        Expr::DnatMap { family, addrs, .. } => vec![hash_map(*family, addrs)],
        Expr::DnatPortMap {
            family, entries, ..
        } => {
            let mut udata = Vec::new();
            tlv_u32(&mut udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG);
            tlv_u32(&mut udata, UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID);
            tlv_u32(&mut udata, UDATA_SET_DATA_INTERVAL, 0);
            vec![AnonSet {
                map: true,
                key_type: TYPE_INET_SERVICE,
                key_len: 2,
                data: Some(addr_port_data(*family)),
                udata,
                elements: entries
                    .iter()
                    .map(|(p, a, t)| (p.to_be_bytes().to_vec(), Some(addr_port(*a, *t))))
                    .collect(),
            }]
        }
        Expr::DnatBalancedPortMap {
            family,
            proto,
            entries,
        } => {
            let mut ports_udata = Vec::new();
            tlv_u32(&mut ports_udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG);
            tlv(
                &mut ports_udata,
                UDATA_SET_KEY_TYPEOF,
                &typeof_dport(*proto),
            );
            let ports = AnonSet {
                map: false,
                key_type: TYPE_INET_SERVICE,
                key_len: 2,
                data: None,
                udata: ports_udata,
                elements: entries
                    .iter()
                    .map(|(p, _, _)| (p.to_be_bytes().to_vec(), None))
                    .collect(),
            };
            let mut map_udata = Vec::new();
            tlv_u32(&mut map_udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_INVALID);
            tlv_u32(&mut map_udata, UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID);
            tlv(
                &mut map_udata,
                UDATA_SET_KEY_TYPEOF,
                &typeof_concat(&[typeof_dport(*proto), typeof_meta(NFT_META_MARK)]),
            );
            tlv_u32(&mut map_udata, UDATA_SET_DATA_INTERVAL, 0);
            let map = AnonSet {
                map: true,
                key_type: (TYPE_INET_SERVICE << TYPE_BITS) | TYPE_MARK,
                key_len: 8,
                data: Some(addr_port_data(*family)),
                udata: map_udata,
                elements: entries
                    .iter()
                    .flat_map(|(p, dests, t)| {
                        dests.iter().enumerate().map(move |(i, a)| {
                            let mut k = port_word(*p).to_vec();
                            k.extend_from_slice(
                                &u32::try_from(i).unwrap_or(u32::MAX).to_ne_bytes(),
                            );
                            (k, Some(addr_port(*a, *t)))
                        })
                    })
                    .collect(),
            };
            vec![ports, map]
        }
        _ => Vec::new(),
    }
}

/// Writes `table` as one batch: add, delete and add the table (so the
/// delete cannot fail), then its sets, chains and rules, each rule's
/// anonymous sets just before it. Sequence numbers start at `seq`.
pub fn replace_batch(table: &NftTable, comment: &str, seq: u32) -> Result<Batch, String> {
    supports(table)?;
    let fam = nfproto(table.family);
    let what = format!("table {} {}", table.family, table.name);
    let mut w = Writer::new(seq);
    w.batch_edge(NFNL_MSG_BATCH_BEGIN);
    let m = w.object(NFT_MSG_NEWTABLE, NLM_F_CREATE, fam, what.clone());
    w.str(NFTA_TABLE_NAME, &table.name);
    w.finish(m);
    let m = w.object(NFT_MSG_DELTABLE, 0, fam, format!("delete {what}"));
    w.str(NFTA_TABLE_NAME, &table.name);
    w.finish(m);
    let m = w.object(NFT_MSG_NEWTABLE, NLM_F_CREATE, fam, what.clone());
    w.str(NFTA_TABLE_NAME, &table.name);
    w.u32(NFTA_TABLE_FLAGS, 0);
    w.attr(NFTA_TABLE_USERDATA, &comment_udata(comment));
    w.finish(m);

    let mut next_id = 1u32;
    let mut named = Vec::new();
    for s in &table.sets {
        named.push((s.name.clone(), next_id));
        named_set(&mut w, table, s, next_id)?;
        next_id += 1;
    }
    for c in &table.chains {
        let m = w.object(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            fam,
            format!("{what} chain {}", c.name),
        );
        w.str(NFTA_CHAIN_TABLE, &table.name);
        w.str(NFTA_CHAIN_NAME, &c.name);
        w.str(NFTA_CHAIN_TYPE, chain_type(c.chain_type));
        w.u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
        let h = w.nest(NFTA_CHAIN_HOOK);
        w.u32(NFTA_HOOK_HOOKNUM, hooknum(c.hook));
        w.attr(NFTA_HOOK_PRIORITY, &c.priority.value().to_be_bytes());
        w.end(h);
        w.finish(m);
        for (i, r) in c.rules.iter().enumerate() {
            let rule_what = format!("{what} chain {} rule {}", c.name, i + 1);
            let mut ids = Vec::new();
            for e in &r.exprs {
                let mut mine = Vec::new();
                for s in anon_sets(e) {
                    anon_set(&mut w, table, &s, next_id, &rule_what)?;
                    mine.push((s.map, next_id));
                    next_id += 1;
                }
                ids.push(mine);
            }
            let m = w.object(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, fam, rule_what);
            w.str(NFTA_RULE_TABLE, &table.name);
            w.str(NFTA_RULE_CHAIN, &c.name);
            let list = w.nest(NFTA_RULE_EXPRESSIONS);
            let mut rule = Rule {
                w: &mut w,
                l4proto: None,
            };
            for (e, sets) in r.exprs.iter().zip(&ids) {
                rule.expr(e, sets, &named)?;
            }
            w.end(list);
            w.finish(m);
        }
    }
    w.batch_edge(NFNL_MSG_BATCH_END);
    Ok(w.into_batch())
}

/// `delete table <family> <name>` as one batch.
pub fn delete_batch(key: &NftTableKey, seq: u32) -> Batch {
    let mut w = Writer::new(seq);
    w.batch_edge(NFNL_MSG_BATCH_BEGIN);
    let m = w.object(
        NFT_MSG_DELTABLE,
        0,
        nfproto(key.family),
        format!("delete table {key}"),
    );
    w.str(NFTA_TABLE_NAME, &key.name);
    w.finish(m);
    w.batch_edge(NFNL_MSG_BATCH_END);
    w.into_batch()
}

fn chain_type(t: ChainType) -> &'static str {
    match t {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
        ChainType::Route => "route",
    }
}

fn hooknum(h: Hook) -> u32 {
    match h {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

fn named_set(w: &mut Writer, table: &NftTable, s: &NftSet, id: u32) -> Result<(), String> {
    let fam = nfproto(table.family);
    let (key_type, key_len) = addr_type(s.family);
    let what = format!("table {} {} set {}", table.family, table.name, s.name);
    let m = w.object(NFT_MSG_NEWSET, NLM_F_CREATE, fam, what.clone());
    w.str(NFTA_SET_TABLE, &table.name);
    w.str(NFTA_SET_NAME, &s.name);
    w.u32(NFTA_SET_FLAGS, 0);
    w.u32(NFTA_SET_KEY_TYPE, key_type);
    w.u32(NFTA_SET_KEY_LEN, key_len);
    w.u32(NFTA_SET_ID, id);
    let mut udata = Vec::new();
    tlv_u32(&mut udata, UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG);
    w.attr(NFTA_SET_USERDATA, &udata);
    w.finish(m);
    let mut elements = Vec::with_capacity(s.elements.len());
    for e in &s.elements {
        if Family::of_net(e) != s.family {
            return Err(format!("{e} in {} set {}", s.family.name(), s.name));
        }
        elements.push((addr_bytes(e.addr()), None));
    }
    set_elements(w, table, &s.name, id, &elements, &what);
    Ok(())
}

fn anon_set(
    w: &mut Writer,
    table: &NftTable,
    s: &AnonSet,
    id: u32,
    rule_what: &str,
) -> Result<(), String> {
    let fam = nfproto(table.family);
    let name = if s.map { "__map%d" } else { "__set%d" };
    let what = format!(
        "{rule_what}: anonymous {}",
        if s.map { "map" } else { "set" }
    );
    let m = w.object(NFT_MSG_NEWSET, NLM_F_CREATE, fam, what.clone());
    w.str(NFTA_SET_TABLE, &table.name);
    w.str(NFTA_SET_NAME, name);
    let mut flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
    if s.map {
        flags |= NFT_SET_MAP;
    }
    w.u32(NFTA_SET_FLAGS, flags);
    w.u32(NFTA_SET_KEY_TYPE, s.key_type);
    w.u32(NFTA_SET_KEY_LEN, s.key_len);
    if let Some((t, len)) = s.data {
        w.u32(NFTA_SET_DATA_TYPE, t);
        w.u32(NFTA_SET_DATA_LEN, len);
    }
    w.u32(NFTA_SET_ID, id);
    let d = w.nest(NFTA_SET_DESC);
    w.u32(
        NFTA_SET_DESC_SIZE,
        u32::try_from(s.elements.len()).map_err(|_| format!("{what}: too many elements"))?,
    );
    w.end(d);
    w.attr(NFTA_SET_USERDATA, &s.udata);
    w.finish(m);
    set_elements(w, table, name, id, &s.elements, &what);
    Ok(())
}

/// The elements of set `name` (id `id`), in messages of bounded size.
fn set_elements(
    w: &mut Writer,
    table: &NftTable,
    name: &str,
    id: u32,
    elements: &[(Vec<u8>, Option<Vec<u8>>)],
    what: &str,
) {
    let fam = nfproto(table.family);
    let mut rest = elements;
    while !rest.is_empty() {
        let mut bytes = 0usize;
        let mut n = 0usize;
        for (k, d) in rest {
            let size = 32 + k.len() + d.as_ref().map_or(0, |d| d.len() + 12);
            if n > 0 && bytes + size > ELEMENT_BYTES_PER_MESSAGE {
                break;
            }
            bytes += size;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let m = w.object(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            fam,
            format!("{what}: {} elements", chunk.len()),
        );
        w.str(NFTA_SET_ELEM_LIST_TABLE, &table.name);
        w.str(NFTA_SET_ELEM_LIST_SET, name);
        w.u32(NFTA_SET_ELEM_LIST_SET_ID, id);
        let list = w.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for (k, d) in chunk {
            let el = w.nest(NFTA_LIST_ELEM);
            w.data(NFTA_SET_ELEM_KEY, k);
            if let Some(d) = d {
                w.data(NFTA_SET_ELEM_DATA, d);
            }
            w.end(el);
        }
        w.end(list);
        w.finish(m);
    }
}

/// One rule's expressions being written.
struct Rule<'w> {
    w: &'w mut Writer,
    /// The layer 4 protocol an earlier expression of the rule matched
    /// alone: nft then adds no second `meta l4proto` dependency.
    l4proto: Option<L4Proto>,
}

impl Rule<'_> {
    fn begin(&mut self, name: &str) -> (usize, usize) {
        let el = self.w.nest(NFTA_LIST_ELEM);
        self.w.str(NFTA_EXPR_NAME, name);
        let data = self.w.nest(NFTA_EXPR_DATA);
        (el, data)
    }

    fn close(&mut self, (el, data): (usize, usize)) {
        self.w.end(data);
        self.w.end(el);
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        let e = self.begin("payload");
        self.w.u32(1, dreg);
        self.w.u32(2, base);
        self.w.u32(3, offset);
        self.w.u32(4, len);
        self.close(e);
    }

    fn cmp(&mut self, op: u32, value: &[u8]) {
        let e = self.begin("cmp");
        self.w.u32(1, REG1);
        self.w.u32(2, op);
        self.w.data(3, value);
        self.close(e);
    }

    fn meta_load(&mut self, key: u32, dreg: u32) {
        let e = self.begin("meta");
        self.w.u32(2, key);
        self.w.u32(1, dreg);
        self.close(e);
    }

    fn meta_set(&mut self, key: u32, sreg: u32) {
        let e = self.begin("meta");
        self.w.u32(2, key);
        self.w.u32(3, sreg);
        self.close(e);
    }

    fn ct_load(&mut self, key: u32) {
        let e = self.begin("ct");
        self.w.u32(2, key);
        self.w.u32(1, REG1);
        self.close(e);
    }

    fn lookup(&mut self, set: &str, id: u32, dreg: Option<u32>, invert: bool) {
        let e = self.begin("lookup");
        self.w.u32(2, REG1);
        if let Some(d) = dreg {
            self.w.u32(3, d);
        }
        self.w.str(1, set);
        self.w.u32(4, id);
        if invert {
            self.w.u32(5, NFT_LOOKUP_F_INV);
        }
        self.close(e);
    }

    fn immediate(&mut self, dreg: u32, value: &[u8]) {
        let e = self.begin("immediate");
        self.w.u32(1, dreg);
        self.w.data(2, value);
        self.close(e);
    }

    fn verdict(&mut self, code: u32) {
        let e = self.begin("immediate");
        self.w.u32(1, NFT_REG_VERDICT);
        let d = self.w.nest(2);
        let v = self.w.nest(NFTA_DATA_VERDICT);
        self.w.u32(NFTA_VERDICT_CODE, code);
        self.w.end(v);
        self.w.end(d);
        self.close(e);
    }

    fn nat(&mut self, ty: u32, family: Family, proto_reg: Option<u32>, flags: Option<u32>) {
        let e = self.begin("nat");
        self.w.u32(1, ty);
        self.w.u32(
            2,
            match family {
                Family::V4 => 2,
                Family::V6 => 10,
            },
        );
        self.w.u32(3, REG1);
        if let Some(r) = proto_reg {
            self.w.u32(5, r);
        }
        if let Some(f) = flags {
            self.w.u32(7, f);
        }
        self.close(e);
    }

    /// `jhash <hdr> saddr mod n` into register 1.
    fn jhash_saddr(&mut self, family: Family, n: usize) {
        let (off, len) = ip_field(family, IpField::Saddr);
        self.payload(NFT_PAYLOAD_NETWORK_HEADER, off, len, REG2);
        let e = self.begin("hash");
        self.w.u32(1, REG2);
        self.w.u32(2, REG1);
        self.w.u32(3, len);
        self.w.u32(4, u32::try_from(n).unwrap_or(u32::MAX));
        self.w.u32(6, 0);
        self.w.u32(7, 0);
        self.close(e);
    }

    /// `meta l4proto <p>`, unless the rule already matched it.
    fn l4(&mut self, p: L4Proto) {
        if self.l4proto != Some(p) {
            self.meta_load(NFT_META_L4PROTO, REG1);
            self.cmp(NFT_CMP_EQ, &[p.number()]);
            self.l4proto = Some(p);
        }
    }

    fn dport(&mut self) {
        self.payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, REG1);
    }

    fn expr(
        &mut self,
        e: &Expr,
        sets: &[(bool, u32)],
        named: &[(String, u32)],
    ) -> Result<(), String> {
        let set_id = |i: usize| -> Result<u32, String> {
            sets.get(i)
                .map(|(_, id)| *id)
                .ok_or_else(|| format!("{e:?}: its anonymous set was not declared"))
        };
        let name = |i: usize| -> &'static str {
            match sets.get(i) {
                Some((true, _)) => "__map%d",
                _ => "__set%d",
            }
        };
        match e {
            Expr::IifName(n) | Expr::IifNameNe(n) | Expr::OifName(n) => {
                let key = if matches!(e, Expr::OifName(_)) {
                    NFT_META_OIFNAME
                } else {
                    NFT_META_IIFNAME
                };
                let op = if matches!(e, Expr::IifNameNe(_)) {
                    NFT_CMP_NEQ
                } else {
                    NFT_CMP_EQ
                };
                let mut v = n.as_bytes().to_vec();
                if v.len() >= IFNAMSIZ {
                    return Err(format!("interface name {n:?} is longer than 15 bytes"));
                }
                v.resize(IFNAMSIZ, 0);
                self.meta_load(key, REG1);
                self.cmp(op, &v);
            }
            Expr::FibDaddrLocal => {
                let e = self.begin("fib");
                self.w.u32(3, NFTA_FIB_F_DADDR);
                self.w.u32(2, NFT_FIB_RESULT_ADDRTYPE);
                self.w.u32(1, REG1);
                self.close(e);
                self.cmp(NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
            Expr::Ip {
                family,
                field,
                op,
                value,
            } => {
                let (off, len) = ip_field(*family, *field);
                match value {
                    AddrValue::Prefix(p) => {
                        if Family::of_net(p) != *family {
                            return Err(format!("{p} in an {} match", family.name()));
                        }
                        let plen = u32::from(p.prefix_len());
                        let op = match op {
                            CmpOp::Eq => NFT_CMP_EQ,
                            CmpOp::Ne => NFT_CMP_NEQ,
                        };
                        // nft loads only the leading bytes of a prefix that
                        // ends on a byte boundary, and masks any other.
                        if plen > 0 && plen < u32::from(p.max_prefix_len()) && plen % 8 == 0 {
                            let bytes = plen / 8;
                            self.payload(NFT_PAYLOAD_NETWORK_HEADER, off, bytes, REG1);
                            let net = addr_bytes(p.network());
                            self.cmp(op, net.get(..bytes as usize).unwrap_or_default());
                            return Ok(());
                        }
                        self.payload(NFT_PAYLOAD_NETWORK_HEADER, off, len, REG1);
                        if p.prefix_len() < p.max_prefix_len() {
                            let e = self.begin("bitwise");
                            self.w.u32(1, REG1);
                            self.w.u32(2, REG1);
                            self.w.u32(3, len);
                            self.w.data(4, &addr_bytes(p.netmask()));
                            self.w.data(5, &vec![0u8; addr_bytes(p.netmask()).len()]);
                            self.close(e);
                        }
                        self.cmp(op, &addr_bytes(p.network()));
                    }
                    AddrValue::Set(s) => {
                        self.payload(NFT_PAYLOAD_NETWORK_HEADER, off, len, REG1);
                        let id = named
                            .iter()
                            .find(|(n, _)| n == s)
                            .map(|(_, id)| *id)
                            .ok_or_else(|| format!("set {s} is not declared"))?;
                        self.lookup(s, id, None, *op == CmpOp::Ne);
                    }
                }
            }
            Expr::CtMark { op, mark } => {
                self.ct_load(NFT_CT_MARK);
                let op = match op {
                    CmpOp::Eq => NFT_CMP_EQ,
                    CmpOp::Ne => NFT_CMP_NEQ,
                };
                self.cmp(op, &mark.to_ne_bytes());
            }
            Expr::L4Proto(ps) => match ps.as_slice() {
                [p] => self.l4(*p),
                _ => {
                    self.meta_load(NFT_META_L4PROTO, REG1);
                    self.lookup(name(0), set_id(0)?, None, false);
                }
            },
            Expr::Dport { proto, port } => {
                self.l4(*proto);
                self.dport();
                self.cmp(NFT_CMP_EQ, &port.to_be_bytes());
            }
            Expr::CtStatusDnat => {
                self.ct_load(NFT_CT_STATUS);
                let e = self.begin("bitwise");
                self.w.u32(1, REG1);
                self.w.u32(2, REG1);
                self.w.u32(3, 4);
                self.w.data(4, &IPS_DST_NAT.to_ne_bytes());
                self.w.data(5, &0u32.to_ne_bytes());
                self.close(e);
                self.cmp(NFT_CMP_NEQ, &0u32.to_ne_bytes());
            }
            Expr::SetMark(MarkSource::Const(m)) => {
                self.immediate(REG1, &m.to_ne_bytes());
                self.meta_set(NFT_META_MARK, REG1);
            }
            Expr::Dnat { addr, port } => {
                self.immediate(REG1, &addr.octets());
                self.nat_to(NFT_NAT_DNAT, Family::V4, *port);
            }
            Expr::Dnat6 { addr, port } => {
                self.immediate(REG1, &addr.octets());
                self.nat_to(NFT_NAT_DNAT, Family::V6, *port);
            }
            Expr::Snat {
                addr: NatAddr::Single(a),
                ..
            } => {
                self.immediate(REG1, &a.octets());
                self.nat(NFT_NAT_SNAT, Family::V4, None, None);
            }
            Expr::Snat {
                addr: NatAddr::HashMap(addrs),
                ..
            } => {
                self.jhash_saddr(Family::V4, addrs.len());
                self.lookup(name(0), set_id(0)?, Some(REG1), false);
                self.nat(NFT_NAT_SNAT, Family::V4, None, None);
            }
            Expr::Snat6(addrs) => match addrs.as_slice() {
                [a] => {
                    self.immediate(REG1, &a.octets());
                    self.nat(NFT_NAT_SNAT, Family::V6, None, None);
                }
                many => {
                    self.jhash_saddr(Family::V6, many.len());
                    self.lookup(name(0), set_id(0)?, Some(REG1), false);
                    self.nat(NFT_NAT_SNAT, Family::V6, None, None);
                }
            },
            Expr::DnatMap {
                family,
                addrs,
                port,
            } => {
                self.jhash_saddr(*family, addrs.len());
                self.lookup(name(0), set_id(0)?, Some(REG1), false);
                self.nat_to(NFT_NAT_DNAT, *family, *port);
            }
            Expr::DnatPortMap { family, proto, .. } => {
                self.l4(*proto);
                self.dport();
                self.lookup(name(0), set_id(0)?, Some(REG1), false);
                self.nat(NFT_NAT_DNAT, *family, Some(concat_port_reg(*family)), None);
            }
            Expr::DnatBalancedPortMap {
                family,
                proto,
                entries,
            } => {
                let modulus = crate::ir::balanced_modulus(entries);
                self.l4(*proto);
                self.dport();
                self.lookup(name(0), set_id(0)?, None, false);
                self.jhash_saddr(*family, modulus);
                self.meta_set(NFT_META_MARK, REG1);
                self.dport();
                self.meta_load(NFT_META_MARK, REG32_01);
                self.lookup(name(1), set_id(1)?, Some(REG1), false);
                self.nat(NFT_NAT_DNAT, *family, Some(concat_port_reg(*family)), None);
            }
            Expr::Accept => self.verdict(NF_ACCEPT),
            Expr::Drop => self.verdict(NF_DROP),
            Expr::Reject(how) => {
                let (ty, code) = match how {
                    RejectWith::TcpReset => (NFT_REJECT_TCP_RST, 0u8),
                    RejectWith::IcmpPortUnreachable => (NFT_REJECT_ICMP_UNREACH, 3),
                    RejectWith::Icmpv6PortUnreachable => (NFT_REJECT_ICMP_UNREACH, 4),
                    RejectWith::IcmpAdminProhibited => (NFT_REJECT_ICMP_UNREACH, 13),
                    RejectWith::Icmpv6AdminProhibited => (NFT_REJECT_ICMP_UNREACH, 1),
                };
                let e = self.begin("reject");
                self.w.u32(1, ty);
                self.w.attr(2, &[code]);
                self.close(e);
            }
            other => return Err(format!("{other:?} is not encoded in process")),
        }
        Ok(())
    }

    /// `dnat|snat to <reg 1>[:<port>]`, the port as an immediate in
    /// register 2.
    fn nat_to(&mut self, ty: u32, family: Family, port: Option<u16>) {
        match port {
            Some(p) => {
                self.immediate(REG2, &p.to_be_bytes());
                self.nat(ty, family, Some(REG2), Some(NF_NAT_RANGE_PROTO_SPECIFIED));
            }
            None => self.nat(ty, family, None, None),
        }
    }
}

/// Where the port of an `addr . port` map's data lands: right after a
/// 4-byte address, or in the next 16-byte register after an IPv6 one.
fn concat_port_reg(family: Family) -> u32 {
    match family {
        Family::V4 => REG32_01,
        Family::V6 => REG2,
    }
}

fn ip_field(family: Family, field: IpField) -> (u32, u32) {
    match (family, field) {
        (Family::V4, IpField::Saddr) => (12, 4),
        (Family::V4, IpField::Daddr) => (16, 4),
        (Family::V6, IpField::Saddr) => (8, 16),
        (Family::V6, IpField::Daddr) => (24, 16),
    }
}
