//! IR ↔ netlink-packet-route messages.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    GreEncapType, GreIOFlags, InfoData, InfoGre, InfoIpTunnel, InfoKind, InfoMacVlan, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode, TunnelEncapType,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteNextHop, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};

use crate::ir::{
    Family, Link, LinkKind, MacvlanMode, NextHop, Route, RouteKind, Rule, UdpEncap, UdpEncapKind,
};

/// The UDP encapsulation a kernel tunnel reports (a source port of 0 is
/// `auto`); none without a kind.
fn udp_encap(kind: Option<UdpEncapKind>, sport: u16, dport: u16) -> Option<UdpEncap> {
    kind.map(|kind| UdpEncap {
        kind,
        sport: (sport != 0).then_some(sport),
        dport,
    })
}

/// Kernel's `local` table: never ours, never interesting.
const LOCAL_TABLE: u32 = 255;

/// ifindex ↔ name of the namespace's links.
#[derive(Clone, Debug, Default)]
pub(crate) struct Links {
    pub(crate) by_index: BTreeMap<u32, String>,
    pub(crate) by_name: BTreeMap<String, u32>,
    /// Every link as IR (kind, MTU, admin state).
    pub(crate) kernel: Vec<Link>,
    /// Hardware address by name (what `AnnounceLink` sets again).
    pub(crate) macs: BTreeMap<String, Vec<u8>>,
}

impl Links {
    pub(crate) fn from_messages(msgs: &[LinkMessage]) -> Self {
        let mut l = Links::default();
        for m in msgs {
            if let Some(name) = link_name(m) {
                l.by_index.insert(m.header.index, name.clone());
                l.by_name.insert(name, m.header.index);
            }
        }
        for m in msgs {
            if let Some(link) = link_from(m, &l.by_index) {
                if let Some(mac) = m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(b) => Some(b.clone()),
                    _ => None,
                }) {
                    l.macs.insert(link.name.clone(), mac);
                }
                l.kernel.push(link);
            }
        }
        l
    }
}

fn macvlan_mode(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
    }
}

/// `RTM_NEWLINK` (with `NLM_F_CREATE | NLM_F_EXCL`) for `ip link add`.
pub(crate) fn link_add_message(link: &Link, links: &Links) -> Result<LinkMessage, NoDevice> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(link.name.clone()));
    if let Some(mtu) = link.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if link.up {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    let info = match &link.kind {
        LinkKind::Macvlan { master, mode } => {
            m.attributes
                .push(LinkAttribute::Link(ifindex(links, master)?));
            vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(macvlan_mode(
                    *mode,
                ))])),
            ]
        }
        LinkKind::Vxlan {
            vni,
            local,
            remote,
            dstport,
            device,
        } => {
            let mut d = vec![InfoVxlan::Id(*vni), InfoVxlan::Port(*dstport)];
            match local {
                Some(IpAddr::V4(a)) => d.push(InfoVxlan::Local(*a)),
                Some(IpAddr::V6(a)) => d.push(InfoVxlan::Local6(*a)),
                None => {}
            }
            match remote {
                Some(IpAddr::V4(a)) => d.push(InfoVxlan::Group(*a)),
                Some(IpAddr::V6(a)) => d.push(InfoVxlan::Group6(*a)),
                None => {}
            }
            if let Some(dev) = device {
                d.push(InfoVxlan::Link(ifindex(links, dev)?));
            }
            vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(d)),
            ]
        }
        LinkKind::Ipip {
            local,
            remote,
            encap,
        } => {
            let mut d = vec![InfoIpTunnel::Remote(IpAddr::V4(*remote))];
            if let Some(l) = local {
                d.push(InfoIpTunnel::Local(IpAddr::V4(*l)));
            }
            if let Some(e) = encap {
                d.push(InfoIpTunnel::EncapType(match e.kind {
                    UdpEncapKind::Fou => TunnelEncapType::Fou,
                    UdpEncapKind::Gue => TunnelEncapType::Gue,
                }));
                d.push(InfoIpTunnel::EncapSPort(e.sport.unwrap_or(0)));
                d.push(InfoIpTunnel::EncapDPort(e.dport));
            }
            vec![
                LinkInfo::Kind(InfoKind::IpIp),
                LinkInfo::Data(InfoData::IpTunnel(d)),
            ]
        }
        LinkKind::Gre {
            local,
            remote,
            key,
            encap,
        } => {
            let mut d = vec![InfoGre::Remote(*remote)];
            if let Some(l) = local {
                d.push(InfoGre::Local(*l));
            }
            if let Some(k) = key {
                d.push(InfoGre::IFlags(GreIOFlags::Key));
                d.push(InfoGre::OFlags(GreIOFlags::Key));
                d.push(InfoGre::IKey(*k));
                d.push(InfoGre::OKey(*k));
            }
            if let Some(e) = encap {
                d.push(InfoGre::EncapType(match e.kind {
                    UdpEncapKind::Fou => GreEncapType::Fou,
                    UdpEncapKind::Gue => GreEncapType::Gue,
                }));
                d.push(InfoGre::SourcePort(e.sport.unwrap_or(0)));
                d.push(InfoGre::DestinationPort(e.dport));
            }
            vec![
                LinkInfo::Kind(InfoKind::GreTun),
                LinkInfo::Data(InfoData::GreTun(d)),
            ]
        }
        LinkKind::Other(k) => vec![LinkInfo::Kind(InfoKind::Other(k.clone()))],
    };
    m.attributes.push(LinkAttribute::LinkInfo(info));
    Ok(m)
}

/// `RTM_SETLINK` of an existing link: admin state and MTU (`ip link set`),
/// or, with `mac`, its hardware address (the announcement).
pub(crate) fn link_set_message(
    link: &Link,
    links: &Links,
    mac: Option<Vec<u8>>,
) -> Result<LinkMessage, NoDevice> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex(links, &link.name)?;
    if let Some(mac) = mac {
        m.attributes.push(LinkAttribute::Address(mac));
        return Ok(m);
    }
    if link.up {
        m.header.flags = LinkFlags::Up;
    }
    m.header.change_mask = LinkFlags::Up;
    if let Some(mtu) = link.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    Ok(m)
}

/// `RTM_DELLINK` by index.
pub(crate) fn link_delete_message(name: &str, links: &Links) -> Result<LinkMessage, NoDevice> {
    let mut m = LinkMessage::default();
    m.header.index = ifindex(links, name)?;
    Ok(m)
}

/// A dumped link as IR: its kind with the parameters routerd sets, MTU
/// and admin state; kinds routerd never creates come back as
/// [`LinkKind::Other`].
pub(crate) fn link_from(m: &LinkMessage, by_index: &BTreeMap<u32, String>) -> Option<Link> {
    let name = link_name(m)?;
    let name_of = |i: u32| {
        by_index
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("if{i}"))
    };
    let mut mtu = None;
    let mut lower = None;
    let mut kind_name = String::new();
    let mut data = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::Mtu(v) => mtu = Some(*v),
            LinkAttribute::Link(i) => lower = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => kind_name = k.to_string(),
                        LinkInfo::Data(d) => data = Some(d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let kind = match (kind_name.as_str(), data) {
        ("macvlan", Some(InfoData::MacVlan(d))) => {
            let mode = d.iter().find_map(|x| match x {
                InfoMacVlan::Mode(MacVlanMode::Bridge) => Some(MacvlanMode::Bridge),
                InfoMacVlan::Mode(MacVlanMode::Private) => Some(MacvlanMode::Private),
                InfoMacVlan::Mode(MacVlanMode::Vepa) => Some(MacvlanMode::Vepa),
                InfoMacVlan::Mode(MacVlanMode::Passthrough) => Some(MacvlanMode::Passthru),
                _ => None,
            });
            match (mode, lower) {
                (Some(mode), Some(i)) => LinkKind::Macvlan {
                    master: name_of(i),
                    mode,
                },
                _ => LinkKind::Other(kind_name),
            }
        }
        ("vxlan", Some(InfoData::Vxlan(d))) => {
            let mut vni = None;
            let (mut local, mut remote, mut device) = (None, None, None);
            let mut dstport = 0;
            for x in d {
                match x {
                    InfoVxlan::Id(v) => vni = Some(*v),
                    InfoVxlan::Local(a) => local = Some(IpAddr::V4(*a)),
                    InfoVxlan::Local6(a) => local = Some(IpAddr::V6(*a)),
                    InfoVxlan::Group(a) => remote = Some(IpAddr::V4(*a)),
                    InfoVxlan::Group6(a) => remote = Some(IpAddr::V6(*a)),
                    InfoVxlan::Port(p) => dstport = *p,
                    InfoVxlan::Link(i) => device = Some(name_of(*i)),
                    _ => {}
                }
            }
            match vni {
                Some(vni) => LinkKind::Vxlan {
                    vni,
                    local,
                    remote,
                    dstport,
                    device,
                },
                None => LinkKind::Other(kind_name),
            }
        }
        ("ipip", Some(InfoData::IpTunnel(d))) => {
            let local = d.iter().find_map(|x| match x {
                InfoIpTunnel::Local(IpAddr::V4(a)) if !a.is_unspecified() => Some(*a),
                _ => None,
            });
            let (mut kind, mut sport, mut dport) = (None, 0, 0);
            for x in d {
                match x {
                    InfoIpTunnel::EncapType(TunnelEncapType::Fou) => kind = Some(UdpEncapKind::Fou),
                    InfoIpTunnel::EncapType(TunnelEncapType::Gue) => kind = Some(UdpEncapKind::Gue),
                    InfoIpTunnel::EncapSPort(p) => sport = *p,
                    InfoIpTunnel::EncapDPort(p) => dport = *p,
                    _ => {}
                }
            }
            match d.iter().find_map(|x| match x {
                InfoIpTunnel::Remote(IpAddr::V4(a)) => Some(*a),
                _ => None,
            }) {
                Some(remote) => LinkKind::Ipip {
                    local,
                    remote,
                    encap: udp_encap(kind, sport, dport),
                },
                None => LinkKind::Other(kind_name),
            }
        }
        ("gre", Some(InfoData::GreTun(d))) => {
            let local = d.iter().find_map(|x| match x {
                InfoGre::Local(a) if !a.is_unspecified() => Some(*a),
                _ => None,
            });
            let (mut kind, mut sport, mut dport) = (None, 0, 0);
            let (mut keyed, mut ikey) = (false, 0);
            for x in d {
                match x {
                    InfoGre::EncapType(GreEncapType::Fou) => kind = Some(UdpEncapKind::Fou),
                    InfoGre::EncapType(GreEncapType::Gue) => kind = Some(UdpEncapKind::Gue),
                    InfoGre::SourcePort(p) => sport = *p,
                    InfoGre::DestinationPort(p) => dport = *p,
                    InfoGre::IFlags(f) => keyed = f.contains(GreIOFlags::Key),
                    InfoGre::IKey(k) => ikey = *k,
                    _ => {}
                }
            }
            match d.iter().find_map(|x| match x {
                InfoGre::Remote(a) => Some(*a),
                _ => None,
            }) {
                Some(remote) => LinkKind::Gre {
                    local,
                    remote,
                    key: keyed.then_some(ikey),
                    encap: udp_encap(kind, sport, dport),
                },
                None => LinkKind::Other(kind_name),
            }
        }
        _ => LinkKind::Other(kind_name),
    };
    let (up, _) = link_state(m);
    Some(Link {
        name,
        kind,
        mtu,
        up,
        announce: false,
        index: Some(m.header.index),
        owner: String::new(),
    })
}

pub(crate) fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// (admin up, carrier) of a link message.
pub(crate) fn link_state(m: &LinkMessage) -> (bool, bool) {
    let f = m.header.flags;
    (f.contains(LinkFlags::Up), f.contains(LinkFlags::LowerUp))
}

fn table_u8(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

/// A device name that does not exist in the namespace.
#[derive(Debug)]
pub(crate) struct NoDevice(pub(crate) String);

fn ifindex(links: &Links, dev: &str) -> Result<u32, NoDevice> {
    links
        .by_name
        .get(dev)
        .copied()
        .ok_or_else(|| NoDevice(dev.to_string()))
}

pub(crate) fn address_family(f: Family) -> AddressFamily {
    match f {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

fn family_of(af: AddressFamily) -> Option<Family> {
    match af {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

fn route_address(a: IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(v) => RouteAddress::Inet(v),
        IpAddr::V6(v) => RouteAddress::Inet6(v),
    }
}

fn base(route: &Route) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = address_family(route.family());
    m.header.destination_prefix_length = route.destination.prefix_len();
    // Tables ≥ 256 travel only in RTA_TABLE (deps.md §3.1).
    m.header.table = table_u8(route.table);
    m.header.protocol = RouteProtocol::from(route.protocol);
    m.header.kind = match route.kind {
        RouteKind::Unicast => RouteType::Unicast,
        RouteKind::Blackhole => RouteType::BlackHole,
    };
    m.attributes.push(RouteAttribute::Table(route.table));
    if route.destination.prefix_len() > 0 {
        m.attributes.push(RouteAttribute::Destination(route_address(
            route.destination.network(),
        )));
    }
    m.attributes.push(RouteAttribute::Priority(route.metric));
    m
}

/// `RTM_NEWROUTE` for `ip route add|replace`.
pub(crate) fn route_message(route: &Route, links: &Links) -> Result<RouteMessage, NoDevice> {
    let mut m = base(route);
    m.header.scope = RouteScope::Universe;
    if route.kind == RouteKind::Blackhole {
        return Ok(m);
    }
    if route.nexthops.is_empty() {
        if route.gateway.is_none() && route.device.is_some() {
            m.header.scope = RouteScope::Link;
        }
        if let Some(gw) = route.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(route_address(gw)));
        }
        if let Some(dev) = &route.device {
            m.attributes.push(RouteAttribute::Oif(ifindex(links, dev)?));
        }
    } else {
        let mut hops = Vec::new();
        for nh in &route.nexthops {
            let mut h = RouteNextHop::default();
            h.interface_index = ifindex(links, &nh.device)?;
            h.hops = u8::try_from(nh.weight.clamp(1, 256) - 1).unwrap_or(u8::MAX);
            if let Some(gw) = nh.gateway {
                h.attributes
                    .push(RouteAttribute::Gateway(route_address(gw)));
            }
            hops.push(h);
        }
        m.attributes.push(RouteAttribute::MultiPath(hops));
    }
    if let Some(src) = route.preferred_source {
        m.attributes
            .push(RouteAttribute::PrefSource(route_address(src)));
    }
    Ok(m)
}

/// `RTM_DELROUTE` for `ip route del`: scope NOWHERE matches any scope
/// (deps.md §3.2: the add message's scope gives ESRCH).
pub(crate) fn route_delete(route: &Route) -> RouteMessage {
    let mut m = base(route);
    m.header.scope = RouteScope::NoWhere;
    m
}

fn inet(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// A dumped route as IR; `None` for routes routerd never manages (other
/// families, the local table, local/broadcast/... types).
pub(crate) fn route_from(m: &RouteMessage, links: &Links) -> Option<Route> {
    let family = family_of(m.header.address_family)?;
    let kind = match m.header.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::BlackHole => RouteKind::Blackhole,
        _ => return None,
    };
    let mut table = u32::from(m.header.table);
    let mut dst = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let mut metric = 0;
    let mut gateway = None;
    let mut device = None;
    let mut src = None;
    let mut nexthops = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = inet(d)?,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Gateway(g) => gateway = inet(g),
            RouteAttribute::Oif(i) => device = links.by_index.get(i).cloned(),
            RouteAttribute::PrefSource(s) => src = inet(s),
            RouteAttribute::MultiPath(hops) => {
                for h in hops {
                    nexthops.push(NextHop {
                        gateway: h.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => inet(g),
                            _ => None,
                        }),
                        device: links
                            .by_index
                            .get(&h.interface_index)
                            .cloned()
                            .unwrap_or_else(|| format!("if{}", h.interface_index)),
                        weight: u16::from(h.hops) + 1,
                    });
                }
            }
            _ => {}
        }
    }
    if table == LOCAL_TABLE {
        return None;
    }
    if Family::of_addr(&dst) != family {
        return None;
    }
    let destination = IpNet::new(dst, m.header.destination_prefix_length).ok()?;
    let mut r = Route::new(table, destination, metric, kind);
    r.protocol = u8::from(m.header.protocol);
    if kind == RouteKind::Blackhole {
        // The kernel hangs IPv6 blackholes on `lo`; routerd never gives
        // one a device, so what forwards nothing carries none.
        device = None;
    }
    r.gateway = gateway;
    r.device = device;
    r.preferred_source = src;
    nexthops.sort();
    r.nexthops = nexthops;
    Some(r)
}

/// `RTM_NEWRULE` / `RTM_DELRULE` body: `priority P fwmark 0xM/0xffffffff
/// table T` (or `priority P iif <dev> table T`), tagged with routerd's
/// protocol.
pub(crate) fn rule_message(rule: &Rule, protocol: u8) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = address_family(rule.family);
    m.header.table = table_u8(rule.table);
    m.header.action = RuleAction::ToTable;
    m.attributes = vec![RuleAttribute::Priority(rule.priority)];
    if let Some(from) = &rule.from {
        m.header.src_len = from.prefix_len();
        m.attributes.push(RuleAttribute::Source(from.network()));
    }
    if let Some(iif) = &rule.iif {
        m.attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if (rule.iif.is_none() && rule.from.is_none()) || rule.fwmark != 0 {
        m.attributes.push(RuleAttribute::FwMark(rule.fwmark));
        m.attributes.push(RuleAttribute::FwMask(u32::MAX));
    }
    m.attributes.push(RuleAttribute::Table(rule.table));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(protocol)));
    m
}

/// A dumped IPv4 or IPv6 rule; `None` for rules with selectors routerd
/// never writes (destinations, output interfaces, partial masks), which
/// therefore are never ours.
pub(crate) fn rule_from(m: &RuleMessage) -> Option<Rule> {
    let family = family_of(m.header.family)?;
    if m.header.action != RuleAction::ToTable || m.header.dst_len != 0 {
        return None;
    }
    let mut r = Rule::new(0, 0, u32::from(m.header.table), String::new()).in_family(family);
    // Kernels report FRA_PROTOCOL; a rule without it was not written by us.
    r.protocol = 0;
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => r.priority = *p,
            RuleAttribute::FwMark(f) => r.fwmark = *f,
            RuleAttribute::FwMask(mask) if *mask != u32::MAX => return None,
            RuleAttribute::Table(t) => r.table = *t,
            RuleAttribute::Protocol(p) => r.protocol = u8::from(*p),
            RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
            RuleAttribute::Source(a) => r.from = Some(IpNet::new(*a, m.header.src_len).ok()?),
            RuleAttribute::Oifname(_) | RuleAttribute::Destination(_) => return None,
            _ => {}
        }
    }
    Some(r)
}

/// `ip addr add|del A/P dev D`: the local address and the prefix length
/// on the device's index (no broadcast, like routerd's `ip addr replace`).
pub(crate) fn address_message(
    a: &crate::ir::Address,
    links: &Links,
) -> Result<netlink_packet_route::address::AddressMessage, NoDevice> {
    use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
    let mut m = AddressMessage::default();
    m.header.family = address_family(a.family());
    m.header.prefix_len = a.address.prefix_len();
    m.header.index = ifindex(links, &a.device)?;
    m.header.scope = AddressScope::Universe;
    let ip = a.address.addr();
    if a.family() == Family::V4 {
        m.attributes.push(AddressAttribute::Local(ip));
    }
    m.attributes.push(AddressAttribute::Address(ip));
    if a.no_prefix_route {
        m.attributes.push(AddressAttribute::Flags(
            netlink_packet_route::address::AddressFlags::Noprefixroute,
        ));
    }
    Ok(m)
}

/// An observed address (`IFA_LOCAL`, or `IFA_ADDRESS` where there is no
/// local one, as for IPv6) on a known device.
pub(crate) fn address_from(
    m: &netlink_packet_route::address::AddressMessage,
    links: &Links,
) -> Option<crate::ir::Address> {
    use netlink_packet_route::address::AddressAttribute;
    family_of(m.header.family)?;
    let local = m.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or_else(|| {
        m.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    let device = links.by_index.get(&m.header.index)?;
    let address = IpNet::new(ip, m.header.prefix_len).ok()?;
    Some(crate::ir::Address::new(device.clone(), address))
}

/// `ip neigh add|del proxy ADDR dev IF`: an IPv4 `NTF_PROXY` entry on the
/// device's index (the kernel keeps proxies apart from the neighbour cache,
/// so state and link-layer address do not apply).
pub(crate) fn neigh_proxy_message(
    p: &crate::capture::NeighProxy,
    links: &Links,
) -> Result<netlink_packet_route::neighbour::NeighbourMessage, NoDevice> {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
    };
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = ifindex(links, &p.device)?;
    m.header.flags = NeighbourFlags::Proxy;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            p.address,
        )));
    Ok(m)
}

/// The proxy-table dump request (`ip -4 neigh show proxy`): the kernel
/// dumps its proxy table when the header's flags are exactly `NTF_PROXY`.
pub(crate) fn neigh_proxy_dump() -> netlink_packet_route::neighbour::NeighbourMessage {
    use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourMessage};
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.flags = NeighbourFlags::Proxy;
    m
}

/// An observed IPv4 proxy entry on a known device (entries for no device,
/// `ip neigh add proxy A` without `dev`, are not routerd's kind).
pub(crate) fn neigh_proxy_from(
    m: &netlink_packet_route::neighbour::NeighbourMessage,
    links: &Links,
) -> Option<crate::capture::NeighProxy> {
    use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags};
    if m.header.family != AddressFamily::Inet || !m.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    let address = m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })?;
    let device = links.by_index.get(&m.header.ifindex)?;
    Some(crate::capture::NeighProxy::new(device.clone(), address))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn links() -> Links {
        let mut l = Links::default();
        l.by_index.insert(3, "wan0".into());
        l.by_name.insert("wan0".into(), 3);
        l
    }

    #[test]
    fn an_ipv6_route_goes_out_as_inet6_and_reads_back_equal() {
        let mut r = Route::new(100, "::/0".parse().unwrap(), 50, RouteKind::Unicast);
        r.gateway = Some("2001:db8:ff::1".parse().unwrap());
        r.device = Some("wan0".into());
        r.preferred_source = Some("2001:db8:ff::2".parse().unwrap());
        let m = route_message(&r, &links()).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert!(
            m.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet6(
                    "2001:db8:ff::1".parse().unwrap()
                )))
        );
        let back = route_from(&m, &links()).unwrap();
        assert_eq!(back.key(), r.key());
        assert!(back.same_forwarding(&r));
        // The kernel stores an IPv6 route without a metric at 1024.
        let d = Route::new(
            254,
            "2001:db8::/32".parse().unwrap(),
            0,
            RouteKind::Blackhole,
        );
        assert_eq!(d.metric, crate::ir::IPV6_DEFAULT_METRIC);
    }

    #[test]
    fn tunnels_with_a_gre_key_or_udp_encapsulation_read_back_equal_from_bytes() {
        use netlink_packet_core::{Emitable, Parseable};
        let fou = |kind, sport| {
            Some(UdpEncap {
                kind,
                sport,
                dport: 5555,
            })
        };
        let kinds = [
            LinkKind::Ipip {
                local: Some("192.0.2.1".parse().unwrap()),
                remote: "198.51.100.4".parse().unwrap(),
                encap: fou(UdpEncapKind::Fou, None),
            },
            LinkKind::Ipip {
                local: None,
                remote: "198.51.100.4".parse().unwrap(),
                encap: fou(UdpEncapKind::Gue, Some(6000)),
            },
            LinkKind::Gre {
                local: Some("192.0.2.1".parse().unwrap()),
                remote: "198.51.100.3".parse().unwrap(),
                key: Some(0x0102_0304),
                encap: None,
            },
            LinkKind::Gre {
                local: None,
                remote: "198.51.100.3".parse().unwrap(),
                key: None,
                encap: fou(UdpEncapKind::Fou, Some(7000)),
            },
        ];
        for kind in kinds {
            let link = Link::new("t0", kind.clone());
            let m = link_add_message(&link, &links()).unwrap();
            let mut buf = vec![0; m.buffer_len()];
            m.emit(&mut buf);
            let back = LinkMessage::parse(buf.as_slice()).unwrap();
            let read = link_from(&back, &links().by_index).unwrap();
            assert_eq!(read.kind, kind);
            assert!(!link.needs_recreate(&read), "{kind:?}");
        }
        // The key goes out in network order (the kernel's __be32).
        let gre = Link::new(
            "t0",
            LinkKind::Gre {
                local: None,
                remote: "198.51.100.3".parse().unwrap(),
                key: Some(0x0102_0304),
                encap: None,
            },
        );
        let m = link_add_message(&gre, &links()).unwrap();
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        assert!(buf.windows(4).any(|w| w == [1, 2, 3, 4]));
    }

    #[test]
    fn an_iif_rule_carries_no_fwmark_and_reads_back_with_its_family() {
        const MAIN: u32 = crate::ir::MAIN_TABLE;
        let rule = Rule::new(10200, 0, 200, "o")
            .in_family(Family::V6)
            .with_iif("lo");
        let m = rule_message(&rule, 122);
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert!(m.attributes.contains(&RuleAttribute::Iifname("lo".into())));
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RuleAttribute::FwMark(_)))
        );
        let back = rule_from(&m).unwrap();
        assert_eq!(back.key(), rule.key());
        assert_eq!(back.to_string(), "priority 10200 iif lo table 200");
        let from = Rule::new(10100, 0, MAIN, "o").with_from("2001:db8:7::5/128".parse().unwrap());
        let m = rule_message(&from, 122);
        assert_eq!(m.header.src_len, 128);
        let back = rule_from(&m).unwrap();
        assert_eq!(back.key(), from.key());
        assert_eq!(back.family, Family::V6);
        assert_eq!(
            back.to_string(),
            "priority 10100 from 2001:db8:7::5/128 table 254"
        );
        let fw = Rule::new(10100, 0x100, 100, "o").in_family(Family::V6);
        assert_eq!(rule_from(&rule_message(&fw, 122)).unwrap().key(), fw.key());
    }
}
