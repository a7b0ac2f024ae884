//! The typed desired dataplane: routes, policy rules and routerd-owned
//! nftables tables.
//!
//! Everything here is plain data so that rendering and diffing stay pure and
//! every backend (in-memory, netlink, `nft -j`, rustables) reads the same
//! values.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// routerd's own `rtm_protocol`. Routes carrying it are routerd's; `ip route`
/// shows them as `proto 122`. No registered protocol uses 122
/// (`/etc/iproute2/rt_protos`).
pub const RTPROT_ROUTERD: u8 = 122;

/// The kernel's main table.
pub const MAIN_TABLE: u32 = 254;

/// The metric the kernel gives an IPv6 route that asks for none
/// (`IP6_RT_PRIO_USER`): a desired IPv6 route with metric 0 is stored with
/// it, so the IR says so too and the diff does not replace it forever.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// Address family of a route, a rule, an address match or a set. One IR
/// carries both, so rendering, the ledger and the diff treat them alike;
/// IPv4 is the default so that IPv4 documents read exactly as before.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Family {
    /// IPv4 (`AF_INET`, nft `ip`).
    #[default]
    #[serde(rename = "ipv4")]
    V4,
    /// IPv6 (`AF_INET6`, nft `ip6`).
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    /// Whether this is IPv4 (serde skips the default).
    pub fn is_v4(&self) -> bool {
        *self == Family::V4
    }

    /// routerd's spelling (`spec.family`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// Parses `spec.family` (empty is IPv4, routerd's default).
    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "" | "ipv4" => Some(Family::V4),
            "ipv6" => Some(Family::V6),
            _ => None,
        }
    }

    /// The family of an address.
    pub fn of_addr(a: &IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of a prefix.
    pub fn of_net(n: &IpNet) -> Family {
        match n {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// Human name in messages (`IPv4`, `IPv6`).
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The nft payload protocol of the address header (`ip`, `ip6`).
    pub fn nft_proto(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// The nft table family routerd's policy tables of this family use.
    pub fn nft_family(self) -> NftFamily {
        match self {
            Family::V4 => NftFamily::Ip,
            Family::V6 => NftFamily::Ip6,
        }
    }

    /// The nft set key type.
    pub fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    /// Prefix length of one host.
    pub fn host_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// `0.0.0.0/0` or `::/0`.
    pub fn any(self) -> IpNet {
        match self {
            Family::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
            Family::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
        }
    }

    /// The `ip` command's family switch (`-4`, `-6`).
    pub fn ip_flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

/// Route type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// Forwarded via a gateway or a link.
    Unicast,
    /// Silently dropped.
    Blackhole,
}

/// One path of a weighted multipath route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NextHop {
    /// Gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Outbound device.
    pub device: String,
    /// Relative weight, 1-256 (the kernel stores weight - 1).
    pub weight: u16,
}

/// The kernel identity of a route: the kernel replaces a route in place
/// only when table, destination and metric match (tos is always 0). The
/// destination's family is part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteKey {
    /// Routing table id.
    pub table: u32,
    /// Destination prefix (masked).
    pub destination: IpNet,
    /// Metric (`priority` in netlink).
    pub metric: u32,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} table {} metric {}",
            self.destination, self.table, self.metric
        )
    }
}

/// An IPv4 or IPv6 route (the destination says which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Routing table id.
    pub table: u32,
    /// Destination prefix (masked).
    pub destination: IpNet,
    /// Metric.
    pub metric: u32,
    /// Unicast or blackhole.
    pub kind: RouteKind,
    /// Gateway of a single-path unicast route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Device of a single-path unicast route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Weighted paths; non-empty replaces `gateway`/`device`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
    /// Preferred source address (`src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_source: Option<IpAddr>,
    /// Route protocol; desired routes always carry [`RTPROT_ROUTERD`].
    pub protocol: u8,
    /// Resource id that wants the route (empty for observed routes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

impl Route {
    /// A routerd route with no gateway, device or multipath yet. An IPv6
    /// route with metric 0 gets [`IPV6_DEFAULT_METRIC`], as in the kernel.
    pub fn new(table: u32, destination: IpNet, metric: u32, kind: RouteKind) -> Self {
        let destination = destination.trunc();
        let metric = match destination {
            IpNet::V6(_) if metric == 0 => IPV6_DEFAULT_METRIC,
            _ => metric,
        };
        Route {
            table,
            destination,
            metric,
            kind,
            gateway: None,
            device: None,
            nexthops: Vec::new(),
            preferred_source: None,
            protocol: RTPROT_ROUTERD,
            owner: String::new(),
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of_net(&self.destination)
    }

    /// The kernel identity.
    pub fn key(&self) -> RouteKey {
        RouteKey {
            table: self.table,
            destination: self.destination,
            metric: self.metric,
        }
    }

    /// Whether the forwarding behaviour equals `other`'s (ignoring owner and
    /// protocol, which the kernel does not route by).
    pub fn same_forwarding(&self, other: &Route) -> bool {
        let mut a = self.nexthops.clone();
        let mut b = other.nexthops.clone();
        a.sort();
        b.sort();
        self.kind == other.kind
            && self.preferred_source == other.preferred_source
            && a == b
            && (!a.is_empty() || (self.gateway == other.gateway && self.device == other.device))
    }
}

/// Renders the `ip route` arguments (after `ip route <verb>`).
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == RouteKind::Blackhole {
            f.write_str("blackhole ")?;
        }
        if self.destination.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.destination)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.device {
            write!(f, " dev {dev}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        write!(f, " proto {} metric {}", self.protocol, self.metric)?;
        if let Some(src) = self.preferred_source {
            write!(f, " src {src}")?;
        }
        for nh in &self.nexthops {
            f.write_str(" nexthop")?;
            if let Some(gw) = nh.gateway {
                write!(f, " via {gw}")?;
            }
            write!(f, " dev {} weight {}", nh.device, nh.weight)?;
        }
        Ok(())
    }
}

/// The identity of a policy rule. Rules have no replace semantics in the
/// kernel, so the whole match-and-action is the identity; IPv4 and IPv6
/// rules live in separate kernel lists, so the family is part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleKey {
    /// Address family (`ip -4 rule` / `ip -6 rule`).
    #[serde(default, skip_serializing_if = "Family::is_v4")]
    pub family: Family,
    /// Rule priority (`pref`).
    pub priority: u32,
    /// fwmark matched with a full mask.
    pub fwmark: u32,
    /// Table looked up.
    pub table: u32,
    /// Input interface matched (`iif lo` of an IPv6 hostTraffic policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    /// Source prefix matched (`from <addr>/128` of a DS-Lite tunnel's
    /// endpoint next to a hostTraffic policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "priority {}", self.priority)?;
        if let Some(from) = &self.from {
            write!(f, " from {from}")?;
        }
        if let Some(iif) = &self.iif {
            write!(f, " iif {iif}")?;
        }
        // An fwmark rule always shows its mark; a rule selecting by source
        // or interface shows one only when it has one.
        if self.fwmark != 0 || (self.iif.is_none() && self.from.is_none()) {
            write!(f, " fwmark 0x{:x}", self.fwmark)?;
        }
        write!(f, " table {}", self.table)
    }
}

/// A policy rule: `ip -4|-6 rule add priority P fwmark 0xM table T`, or
/// `ip -6 rule add priority P iif lo table T` for locally originated IPv6
/// (a hostTraffic policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Address family.
    #[serde(default, skip_serializing_if = "Family::is_v4")]
    pub family: Family,
    /// Priority.
    pub priority: u32,
    /// fwmark (mask 0xffffffff); 0 means "no fwmark match" in observed
    /// rules and in `iif` rules.
    pub fwmark: u32,
    /// Table.
    pub table: u32,
    /// Input interface matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    /// Source prefix matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    /// Rule protocol (`FRA_PROTOCOL`); routerd's rules carry
    /// [`RTPROT_ROUTERD`], so an identical foreign rule is never adopted.
    #[serde(default = "routerd_protocol")]
    pub protocol: u8,
    /// Resource id that wants the rule (empty for observed rules).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

fn routerd_protocol() -> u8 {
    RTPROT_ROUTERD
}

impl Rule {
    /// A routerd IPv4 fwmark rule.
    pub fn new(priority: u32, fwmark: u32, table: u32, owner: impl Into<String>) -> Self {
        Rule {
            family: Family::V4,
            priority,
            fwmark,
            table,
            iif: None,
            from: None,
            protocol: RTPROT_ROUTERD,
            owner: owner.into(),
        }
    }

    /// This rule in `family`.
    #[must_use]
    pub fn in_family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// This rule matching packets that came in on `iif`.
    #[must_use]
    pub fn with_iif(mut self, iif: impl Into<String>) -> Self {
        self.iif = Some(iif.into());
        self
    }

    /// This rule matching packets from `from` (its family is the rule's).
    #[must_use]
    pub fn with_from(mut self, from: IpNet) -> Self {
        self.family = Family::of_net(&from);
        self.from = Some(from.trunc());
        self
    }

    /// The identity.
    pub fn key(&self) -> RuleKey {
        RuleKey {
            family: self.family,
            priority: self.priority,
            fwmark: self.fwmark,
            table: self.table,
            iif: self.iif.clone(),
            from: self.from,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key().fmt(f)
    }
}

/// The identity of an interface address: the device and the address with
/// its prefix length (host bits kept). The kernel refuses a second identical
/// address on one device, and the same address with another length is a
/// different object to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AddressKey {
    /// Kernel device name.
    pub device: String,
    /// Address with prefix length (`192.0.2.10/24`).
    pub address: IpNet,
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.address, self.device)
    }
}

/// An address assigned to an interface (`ip addr add A/P dev D`).
///
/// Addresses carry no owner marker the kernel keeps on every version, so
/// routerd owns exactly the addresses its ledger says it added; an identical
/// address someone else put there stays theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Kernel device name.
    pub device: String,
    /// Address with prefix length (host bits kept).
    pub address: IpNet,
    /// The resource may overlap prefixes on other devices
    /// (`spec.allowOverlap`); otherwise an overlap keeps it back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_overlap: bool,
    /// `spec.exclusive`: other addresses of the family on the device are
    /// reported, never removed (routerd's controller does not remove them
    /// either; only its plan text promises it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclusive: bool,
    /// Added without the kernel's prefix route (`noprefixroute`): the
    /// owner routes the subnet in its own table, so the host's main table
    /// is left as it is (EgressRouter's reserved addresses).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_prefix_route: bool,
    /// Resource id that wants the address (empty for observed addresses).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

impl Address {
    /// An address of `device`, without owner.
    pub fn new(device: impl Into<String>, address: IpNet) -> Self {
        Address {
            device: device.into(),
            address,
            allow_overlap: false,
            exclusive: false,
            no_prefix_route: false,
            owner: String::new(),
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of_net(&self.address)
    }

    /// The identity.
    pub fn key(&self) -> AddressKey {
        AddressKey {
            device: self.device.clone(),
            address: self.address,
        }
    }

    /// Whether the two prefixes share an address (one contains the other).
    pub fn overlaps(&self, other: &IpNet) -> bool {
        let (a, b) = (self.address.trunc(), other.trunc());
        a.contains(&b.network()) || b.contains(&a.network())
    }
}

/// Renders the `ip addr` arguments (after `ip addr <verb>`).
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key().fmt(f)?;
        if self.no_prefix_route {
            f.write_str(" noprefixroute")?;
        }
        Ok(())
    }
}

/// nftables address family of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NftFamily {
    /// `ip`.
    Ip,
    /// `ip6`.
    Ip6,
    /// `inet`.
    Inet,
}

impl NftFamily {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            NftFamily::Ip => "ip",
            NftFamily::Ip6 => "ip6",
            NftFamily::Inet => "inet",
        }
    }

    /// Parses the nft keyword.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ip" => Some(NftFamily::Ip),
            "ip6" => Some(NftFamily::Ip6),
            "inet" => Some(NftFamily::Inet),
            _ => None,
        }
    }
}

impl fmt::Display for NftFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of an nft table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NftTableKey {
    /// Family.
    pub family: NftFamily,
    /// Name.
    pub name: String,
}

impl fmt::Display for NftTableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// Prefix of every routerd-owned nft table.
pub const NFT_TABLE_PREFIX: &str = "routerd_";

/// The ownership comment every routerd table body starts with (spec §5.1;
/// the generation is a constant 1 in routerd).
pub const NFT_OWNER_COMMENT: &str = "routerd.owner=routerd routerd.generation=1";

/// A chain type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

impl ChainType {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// A netfilter hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// A base-chain priority, kept symbolic where routerd writes it symbolically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// `mangle` (-150).
    Mangle,
    /// `dstnat` (-100).
    Dstnat,
    /// `srcnat` (100).
    Srcnat,
    /// A number.
    Num(i32),
}

impl Priority {
    /// The numeric value (the JSON form and netlink need numbers).
    pub fn value(self) -> i32 {
        match self {
            Priority::Mangle => -150,
            Priority::Dstnat => -100,
            Priority::Srcnat => 100,
            Priority::Num(n) => n,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Priority::Mangle => f.write_str("mangle"),
            Priority::Dstnat => f.write_str("dstnat"),
            Priority::Srcnat => f.write_str("srcnat"),
            Priority::Num(n) => write!(f, "{n}"),
        }
    }
}

/// Address field of the IP header (IPv4 or IPv6, per the expression's
/// family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpField {
    /// `ip saddr`.
    Saddr,
    /// `ip daddr`.
    Daddr,
}

impl IpField {
    /// The payload field name.
    pub fn as_str(self) -> &'static str {
        match self {
            IpField::Saddr => "saddr",
            IpField::Daddr => "daddr",
        }
    }
}

/// Comparison of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// Equal / member.
    Eq,
    /// Not equal / not member.
    Ne,
}

/// The right-hand side of an address match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddrValue {
    /// A prefix (a /32 or /128 is an address).
    Prefix(IpNet),
    /// A named set of the table (`@name`).
    Set(String),
}

/// Transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl L4Proto {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        }
    }
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Sctp => 132,
        }
    }
}

/// Where `meta mark set` takes its value from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MarkSource {
    /// A constant.
    Const(u32),
    /// The connection's mark (`ct mark`).
    CtMark,
    /// `jhash <fields> mod <marks.len()> map { 0 : marks[0], ... }`.
    JhashMap {
        /// Header the fields are read from (`ip` or `ip6`).
        #[serde(default, skip_serializing_if = "Family::is_v4")]
        family: Family,
        /// Hashed header fields, in order.
        fields: Vec<IpField>,
        /// The mark of each bucket.
        marks: Vec<u32>,
    },
}

/// The translated address of a source NAT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NatAddr {
    /// One address.
    Single(Ipv4Addr),
    /// An inclusive address range.
    Range(Ipv4Addr, Ipv4Addr),
    /// `jhash ip saddr mod N map { i : addr_i }`: a stable per-client choice
    /// among discrete pool addresses.
    HashMap(Vec<Ipv4Addr>),
}

/// The modulus of a `DnatBalancedPortMap`: how many destinations each of
/// its entries has (the renderer groups entries by it, so all agree).
pub fn balanced_modulus(entries: &[(u16, Vec<IpAddr>, u16)]) -> usize {
    entries.first().map_or(0, |(_, d, _)| d.len())
}

/// One expression of an nft rule (match or statement).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Expr {
    /// `iifname "x"`.
    IifName(String),
    /// `oifname "x"`.
    OifName(String),
    /// `ip|ip6 saddr|daddr [!=]<prefix|@set>`.
    Ip {
        /// Header (`ip` or `ip6`); a set's key type must match.
        #[serde(default, skip_serializing_if = "Family::is_v4")]
        family: Family,
        /// Field.
        field: IpField,
        /// Comparison.
        op: CmpOp,
        /// Value.
        value: AddrValue,
    },
    /// `ct mark [!=] <mark>`.
    CtMark {
        /// Comparison.
        op: CmpOp,
        /// Mark.
        mark: u32,
    },
    /// `ct mark [!=] { <marks> }` (an anonymous set, even of one mark).
    CtMarkIn {
        /// Membership or not.
        op: CmpOp,
        /// Marks.
        marks: Vec<u32>,
    },
    /// `meta l4proto <p>` or `meta l4proto { <p>, ... }`.
    L4Proto(Vec<L4Proto>),
    /// `<proto> dport <port>`.
    Dport {
        /// Protocol.
        proto: L4Proto,
        /// Port.
        port: u16,
    },
    /// `meta mark set <source>`.
    SetMark(MarkSource),
    /// `ct mark set meta mark`.
    SetCtMarkFromMark,
    /// `masquerade [to :<lo>-<hi>] [persistent]`.
    Masquerade {
        /// Source port range.
        ports: Option<(u16, u16)>,
        /// `persistent` flag.
        persistent: bool,
    },
    /// `snat to <addr>[:<lo>-<hi>] [persistent]`.
    Snat {
        /// Address(es).
        addr: NatAddr,
        /// Source port range.
        ports: Option<(u16, u16)>,
        /// `persistent` flag.
        persistent: bool,
    },
    /// `dnat to <addr>[:<port>]`.
    Dnat {
        /// Target address.
        addr: Ipv4Addr,
        /// Target port.
        port: Option<u16>,
    },
    /// `iifname != "x"`: traffic that did not arrive on `x`.
    IifNameNe(String),
    /// `fib daddr type local`: addressed to this host.
    FibDaddrLocal,
    /// `ct status dnat`: the connection was destination-NATed.
    CtStatusDnat,
    /// `ct direction original`: a packet travelling the way its connection
    /// was opened. A policy that restores a connection's mark without its
    /// destination match must skip replies, or they would follow the mark
    /// back out through the uplink.
    CtDirectionOriginal,
    /// `dnat to [<addr>]:<port>` (IPv6).
    Dnat6 {
        /// Target address.
        addr: Ipv6Addr,
        /// Target port.
        port: Option<u16>,
    },
    /// `snat to <addr>` or, with several, `snat to jhash ip6 saddr mod N
    /// map { i : addr_i }` (IPv6): a stable per-client choice.
    Snat6(Vec<Ipv6Addr>),
    /// `dnat ip|ip6 to <proto> dport map { <port> : <addr> . <target>, ...
    /// }`: many single-destination redirects of one protocol as one rule
    /// whose map the kernel looks up in a hash (a port not in the map makes
    /// the rule not match). nft parses one element far faster than one rule,
    /// so 1,000 redirects load several times faster (docs/performance.md).
    DnatPortMap {
        /// Family of the addresses.
        #[serde(default, skip_serializing_if = "Family::is_v4")]
        family: Family,
        /// Protocol whose destination port is the key.
        proto: L4Proto,
        /// (port, destination, target port), in spec order.
        entries: Vec<(u16, IpAddr, u16)>,
    },
    /// `<proto> dport { <ports> } meta mark set jhash ip|ip6 saddr mod N
    /// dnat ip|ip6 to <proto> dport . meta mark map { <port> . i : addr_i .
    /// <target>, ... }`: many balanced redirects of one protocol with N
    /// live destinations each as one rule. nft cannot nest a hash inside a
    /// map key (and 1.0.6 aborts listing a concatenation holding one), so
    /// the client's bucket goes through the packet mark first; the route
    /// chain sets the router's own mark after DNAT, so nothing routes by
    /// the bucket. One rule with one map loads in a fraction of the time
    /// of one jhash rule per redirect (docs/performance.md).
    DnatBalancedPortMap {
        /// Family of the addresses.
        #[serde(default, skip_serializing_if = "Family::is_v4")]
        family: Family,
        /// Protocol whose destination port is the key.
        proto: L4Proto,
        /// (port, destinations, target port), in spec order; every entry
        /// has the same number of destinations (the modulus).
        entries: Vec<(u16, Vec<IpAddr>, u16)>,
    },
    /// `dnat to jhash ip|ip6 saddr mod N map { i : addr_i }[:<port>]`: a
    /// stable per-client choice among several destinations (an
    /// EgressRouter rule with several live `destinationIPs`).
    DnatMap {
        /// Header hashed and family of the addresses.
        #[serde(default, skip_serializing_if = "Family::is_v4")]
        family: Family,
        /// Destinations, bucket `i` to `addrs[i]`.
        addrs: Vec<IpAddr>,
        /// Target port.
        port: Option<u16>,
    },
    /// `accept`.
    Accept,
    /// `reject with <how>`.
    Reject(RejectWith),
    /// `drop`.
    Drop,
}

/// The reply a `reject` sends (IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RejectWith {
    /// `reject with tcp reset`: the client's connect fails at once.
    TcpReset,
    /// `reject with icmp type admin-prohibited` (destination unreachable,
    /// code 13, "communication administratively prohibited").
    IcmpAdminProhibited,
    /// `reject with icmpv6 type admin-prohibited` (destination unreachable,
    /// code 1), the IPv6 twin for `ip6` tables.
    Icmpv6AdminProhibited,
    /// `reject with icmp type port-unreachable` (IPv4 tables): what a
    /// closed UDP port answers.
    IcmpPortUnreachable,
    /// `reject with icmpv6 type port-unreachable` (IPv6 tables).
    Icmpv6PortUnreachable,
}

/// One rule: expressions in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftRule {
    /// Expressions.
    pub exprs: Vec<Expr>,
}

/// A base chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NftChain {
    /// Chain name.
    pub name: String,
    /// Type.
    pub chain_type: ChainType,
    /// Hook.
    pub hook: Hook,
    /// Priority.
    pub priority: Priority,
    /// Rules in order (policy is always accept).
    pub rules: Vec<NftRule>,
}

/// A named address set (`ipv4_addr` or `ipv6_addr`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftSet {
    /// Key family; every element is of it.
    #[serde(default, skip_serializing_if = "Family::is_v4")]
    pub family: Family,
    /// Set name.
    pub name: String,
    /// Elements, aggregated (non-overlapping, sorted).
    pub elements: Vec<IpNet>,
}

impl NftSet {
    /// Whether the set needs `flags interval` (it holds a real prefix).
    pub fn is_interval(&self) -> bool {
        let host = self.family.host_len();
        self.elements.iter().any(|e| e.prefix_len() < host)
    }
}

/// A routerd-owned table, replaced atomically as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    /// Family.
    pub family: NftFamily,
    /// Name (starts with `routerd_`).
    pub name: String,
    /// Named sets.
    pub sets: Vec<NftSet>,
    /// Chains.
    pub chains: Vec<NftChain>,
    /// Resource ids that contributed to the table.
    pub owners: BTreeSet<String>,
}

impl NftTable {
    /// An empty table.
    pub fn new(family: NftFamily, name: impl Into<String>) -> Self {
        NftTable {
            family,
            name: name.into(),
            sets: Vec::new(),
            chains: Vec::new(),
            owners: BTreeSet::new(),
        }
    }

    /// The identity.
    pub fn key(&self) -> NftTableKey {
        NftTableKey {
            family: self.family,
            name: self.name.clone(),
        }
    }

    /// Number of rules per chain, the structural shape verification compares.
    pub fn shape(&self) -> std::collections::BTreeMap<String, usize> {
        self.chains
            .iter()
            .map(|c| (c.name.clone(), c.rules.len()))
            .collect()
    }

    /// Content digest (sha256 of the canonical text, 16 hex digits). The
    /// ledger keeps it to know whether the kernel already holds this body.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let text = crate::nft_text::table_text(self);
        let d = sha2::Sha256::digest(text.as_bytes());
        hex::encode(&d[..8])
    }

    /// Digest of everything but set elements (chains, rules, set names,
    /// key types and interval flags). Two tables with the same skeleton
    /// differ only in elements, which the kernel can change in place.
    pub fn skeleton_digest(&self) -> String {
        use sha2::Digest;
        let mut bare = self.clone();
        let mut flags = String::new();
        for s in &mut bare.sets {
            flags.push_str(if s.is_interval() { "i" } else { "h" });
            s.elements.clear();
        }
        let mut text = crate::nft_text::table_text(&bare);
        text.push_str(&flags);
        let d = sha2::Sha256::digest(text.as_bytes());
        hex::encode(&d[..8])
    }
}

/// The desired dataplane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Routes, sorted by key.
    pub routes: Vec<Route>,
    /// Policy rules, sorted by key.
    pub rules: Vec<Rule>,
    /// Owned nft tables, sorted by key.
    pub nft: Vec<NftTable>,
    /// Interface addresses (IPv4StaticAddress), sorted by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Kernel links routerd creates (macvlan, VXLAN, ...), sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Neighbour proxy entries (address capture), sorted by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neigh_proxies: Vec<crate::capture::NeighProxy>,
    /// Devices that must forward IPv4 for capture or delivery, sorted by
    /// device (several owners may need one device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarding: Vec<crate::capture::Forwarding>,
    /// Resource ids that exist but could not be resolved now: their kernel
    /// objects stay as they are (fail-static, spec §3.1 / §8.1.9).
    pub retained: BTreeSet<String>,
    /// IPv6 hostTraffic policies: a refusal of their objects is reported
    /// as `HostPolicyApplyFailed`, routerd's reason for them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub host_policies: BTreeSet<String>,
}

impl DesiredState {
    /// Sorts and de-duplicates everything so output and diffs are
    /// deterministic. The first object with a given key wins; an object
    /// dropped because another owner wants the same kernel identity is
    /// returned (`(dropped owner, winning owner, object)`), so the loser is
    /// told instead of being reported installed.
    pub fn normalize(&mut self) -> Vec<(String, String, String)> {
        let mut clashes = Vec::new();
        self.routes.sort_by_key(Route::key);
        self.routes.dedup_by(|dropped, kept| {
            let same = dropped.key() == kept.key();
            if same && dropped.owner != kept.owner {
                clashes.push((
                    dropped.owner.clone(),
                    kept.owner.clone(),
                    format!("route {}", kept.key()),
                ));
            }
            same
        });
        self.rules.sort_by_key(Rule::key);
        self.rules.dedup_by(|dropped, kept| {
            let same = dropped.key() == kept.key();
            if same && dropped.owner != kept.owner {
                clashes.push((
                    dropped.owner.clone(),
                    kept.owner.clone(),
                    format!("rule {}", kept.key()),
                ));
            }
            same
        });
        self.nft.sort_by_key(NftTable::key);
        self.addresses.sort_by_key(Address::key);
        self.addresses.dedup_by(|dropped, kept| {
            let same = dropped.key() == kept.key();
            if same && dropped.owner != kept.owner {
                clashes.push((
                    dropped.owner.clone(),
                    kept.owner.clone(),
                    format!("address {}", kept.key()),
                ));
            }
            same
        });
        self.links.sort_by(|a, b| a.name.cmp(&b.name));
        self.links.dedup_by(|dropped, kept| {
            let same = dropped.name == kept.name;
            if same && dropped.owner != kept.owner {
                clashes.push((
                    dropped.owner.clone(),
                    kept.owner.clone(),
                    format!("link {}", kept.name),
                ));
            }
            same
        });
        self.neigh_proxies
            .sort_by_key(crate::capture::NeighProxy::key);
        self.neigh_proxies.dedup_by(|dropped, kept| {
            let same = dropped.key() == kept.key();
            if same && dropped.owner != kept.owner {
                clashes.push((
                    dropped.owner.clone(),
                    kept.owner.clone(),
                    format!("neighbour proxy {}", kept.key()),
                ));
            }
            same
        });
        // Several owners may need one device to forward: no clash.
        self.forwarding
            .sort_by(|a, b| (&a.device, &a.owner).cmp(&(&b.device, &b.owner)));
        self.forwarding.dedup();
        clashes
    }
}

/// Longest kernel interface name (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// Whether the kernel accepts `name` as an interface name (1-15 bytes,
/// no `/`, no whitespace, not `.` or `..`).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains(':')
        && !name.chars().any(char::is_whitespace)
}

/// How a macvlan forwards between siblings on one master (OpenShift's
/// `networkInterface.macvlan.mode`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Siblings talk to each other directly.
    #[default]
    Bridge,
    /// Siblings never see each other.
    Private,
    /// Sibling traffic hairpins through the external switch.
    Vepa,
    /// The macvlan takes over the master (one per master).
    Passthru,
}

impl MacvlanMode {
    /// The `ip link ... type macvlan mode <m>` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

/// Foo-over-UDP or Generic UDP Encapsulation of an ipip or gre tunnel.
///
/// Sending needs only the link's encap attributes; receiving needs a FOU
/// port listening on `listen_port` (the kernel's `ip fou add`), which the
/// dataplane creates with the link and removes with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UdpEncap {
    /// FOU (the inner packet right after the UDP header) or GUE (a GUE
    /// header in between).
    pub kind: UdpEncapKind,
    /// UDP source port of sent packets; `None`: the kernel picks one per
    /// flow (`encap-sport auto`), which spreads flows over ECMP paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// UDP destination port: the peer's FOU port.
    pub dport: u16,
}

impl UdpEncap {
    /// The local FOU port the peer sends to: the source port when one is
    /// fixed (routerd's convention, `ip fou add port <encapSport>`), else
    /// the destination port (both ends configured alike).
    pub fn listen_port(&self) -> u16 {
        self.sport.unwrap_or(self.dport)
    }
}

/// Kind of UDP encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UdpEncapKind {
    /// Foo-over-UDP.
    Fou,
    /// Generic UDP Encapsulation.
    Gue,
}

impl UdpEncapKind {
    /// The `ip link ... encap <kind>` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            UdpEncapKind::Fou => "fou",
            UdpEncapKind::Gue => "gue",
        }
    }
}

/// What kind of virtual link, with the parameters the kernel fixes at
/// creation (changing any of them means deleting and creating again).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LinkKind {
    /// A macvlan child of `master`: its own MAC address on the master's
    /// segment (EgressRouter's reserved addresses live on it).
    Macvlan {
        /// Parent device.
        master: String,
        /// Forwarding mode.
        mode: MacvlanMode,
    },
    /// A VXLAN tunnel endpoint.
    Vxlan {
        /// VXLAN network identifier.
        vni: u32,
        /// Local underlay address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<IpAddr>,
        /// Remote underlay address (unicast peer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<IpAddr>,
        /// UDP destination port (4789 is IANA's).
        dstport: u16,
        /// Underlay device the tunnel is bound to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// An IPv4-in-IPv4 tunnel.
    Ipip {
        /// Local endpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<Ipv4Addr>,
        /// Remote endpoint.
        remote: Ipv4Addr,
        /// UDP encapsulation (routerd's `fou` and `gue` modes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encap: Option<UdpEncap>,
    },
    /// A GRE (layer 3) tunnel.
    Gre {
        /// Local endpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<Ipv4Addr>,
        /// Remote endpoint.
        remote: Ipv4Addr,
        /// GRE key, sent and expected (`ikey` = `okey`): which tunnel of
        /// several between the same endpoints a packet belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<u32>,
        /// UDP encapsulation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encap: Option<UdpEncap>,
    },
    /// An observed link of a kind routerd never creates (physical, veth,
    /// bridge, ...): the kernel's kind name, empty when it reports none.
    Other(String),
}

impl LinkKind {
    /// The kernel's kind name (`IFLA_INFO_KIND`).
    pub fn kind_name(&self) -> &str {
        match self {
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Vxlan { .. } => "vxlan",
            LinkKind::Ipip { .. } => "ipip",
            LinkKind::Gre { .. } => "gre",
            LinkKind::Other(k) => k,
        }
    }

    /// The device this link hangs off (macvlan master, VXLAN underlay):
    /// it must exist before the link can be created.
    pub fn lower(&self) -> Option<&str> {
        match self {
            LinkKind::Macvlan { master, .. } => Some(master),
            LinkKind::Vxlan { device, .. } => device.as_deref(),
            _ => None,
        }
    }
}

/// A kernel link routerd creates (`ip link add`).
///
/// Links carry no owner marker the kernel keeps (an alias is dropped on
/// creation), so, as with addresses, routerd owns exactly the links its
/// ledger says it created; a link of the same name that routerd did not
/// create is never adopted, changed or deleted (a `Conflict` of the owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Interface name (at most [`IFNAME_MAX`] bytes).
    pub name: String,
    /// Kind and creation parameters.
    pub kind: LinkKind,
    /// MTU; `None` keeps the kernel's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// Announce the addresses it carries: `arp_notify` and
    /// `ndisc_notify` are switched on at creation and every IPv4 address
    /// added is followed by [`Op::AnnounceLink`](crate::plan::Op) (a
    /// gratuitous ARP), so neighbours learn the new MAC at once. Desired
    /// state only (not observed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announce: bool,
    /// The kernel's ifindex of an observed link (`None` in desired state):
    /// the ledger keeps the one routerd's link got, so a link of the same
    /// name someone created after deleting routerd's is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Resource id that wants the link (empty for observed links).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

impl Link {
    /// A link that is up, with the kernel's MTU and no owner yet.
    pub fn new(name: impl Into<String>, kind: LinkKind) -> Self {
        Link {
            name: name.into(),
            kind,
            mtu: None,
            up: true,
            announce: false,
            index: None,
            owner: String::new(),
        }
    }

    /// Whether the kernel would have to recreate `observed` to turn it
    /// into this link (the kind or a creation parameter differs).
    pub fn needs_recreate(&self, observed: &Link) -> bool {
        self.kind != observed.kind
    }

    /// Whether `observed` differs from this link in what can be changed in
    /// place (MTU when one is asked for, admin state).
    pub fn needs_set(&self, observed: &Link) -> bool {
        self.up != observed.up || (self.mtu.is_some() && self.mtu != observed.mtu)
    }
}

/// `type <kind> [local L] remote R [key K] [encap fou|gue encap-sport
/// S|auto encap-dport D]`, as `ip link add` takes them.
fn tunnel_args(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    local: Option<Ipv4Addr>,
    remote: Ipv4Addr,
    key: Option<u32>,
    encap: Option<&UdpEncap>,
) -> fmt::Result {
    write!(f, " type {kind}")?;
    if let Some(l) = local {
        write!(f, " local {l}")?;
    }
    write!(f, " remote {remote}")?;
    if let Some(k) = key {
        write!(f, " key {k}")?;
    }
    if let Some(e) = encap {
        write!(f, " encap {} encap-sport ", e.kind.as_str())?;
        match e.sport {
            Some(p) => write!(f, "{p}")?,
            None => f.write_str("auto")?,
        }
        write!(
            f,
            " encap-dport {} (FOU port {} listening)",
            e.dport,
            e.listen_port()
        )?;
    }
    Ok(())
}

/// Renders the `ip link add` arguments (after `ip link add`).
impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(mtu) = self.mtu {
            write!(f, " mtu {mtu}")?;
        }
        if self.up {
            f.write_str(" up")?;
        }
        match &self.kind {
            LinkKind::Macvlan { master, mode } => {
                write!(f, " link {master} type macvlan mode {}", mode.as_str())
            }
            LinkKind::Vxlan {
                vni,
                local,
                remote,
                dstport,
                device,
            } => {
                write!(f, " type vxlan id {vni}")?;
                if let Some(l) = local {
                    write!(f, " local {l}")?;
                }
                if let Some(r) = remote {
                    write!(f, " remote {r}")?;
                }
                write!(f, " dstport {dstport}")?;
                if let Some(d) = device {
                    write!(f, " dev {d}")?;
                }
                Ok(())
            }
            LinkKind::Ipip {
                local,
                remote,
                encap,
            } => tunnel_args(f, "ipip", *local, *remote, None, encap.as_ref()),
            LinkKind::Gre {
                local,
                remote,
                key,
                encap,
            } => tunnel_args(f, "gre", *local, *remote, *key, encap.as_ref()),
            LinkKind::Other(k) => write!(f, " type {k}"),
        }
    }
}
