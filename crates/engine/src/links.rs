//! Statuses of link-like resources (Interface, DSLiteTunnel, PPPoESession)
//! from the kernel's view of their devices.
//!
//! Selection reads these statuses (a candidate's `source`, `deviceFrom:
//! {resource: DSLiteTunnel/x, field: device}`), so the daemon publishes them
//! itself instead of trusting a file.

use std::collections::BTreeMap;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use routerd_model::{Kind, Resource, StateSnapshot, Status};
use serde_json::json;

/// What the kernel says about one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub carrier: bool,
    /// MAC address, when it has one.
    pub mac: Option<String>,
    /// The device's MTU (what a HybridRoute's overlay estimate starts from).
    pub mtu: Option<u32>,
    /// Addresses with prefix length.
    pub addresses: Vec<String>,
    /// The IPv6 addresses (with prefix length) a host route may use as its
    /// source: global scope, neither tentative (DAD still running),
    /// deprecated (preferred lifetime over) nor failed DAD. An IPv6
    /// hostTraffic policy installs its route only with one of these.
    pub usable_ipv6: Vec<String>,
}

/// Reads device state.
pub trait LinkSource: Send {
    /// Every device by name.
    fn links(&mut self) -> BTreeMap<String, LinkInfo>;
}

/// A fixed set of links (tests, offline).
#[derive(Debug, Clone, Default)]
pub struct StaticLinks(pub BTreeMap<String, LinkInfo>);

impl LinkSource for StaticLinks {
    fn links(&mut self) -> BTreeMap<String, LinkInfo> {
        self.0.clone()
    }
}

/// Why the kernel's links could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A netlink socket call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a dump request.
    #[error("{context}: kernel error {errno}")]
    Kernel {
        /// What was being done.
        context: &'static str,
        /// Positive errno.
        errno: i32,
    },
}

fn io_err(context: &'static str) -> impl FnOnce(std::io::Error) -> LinkError {
    move |source| LinkError::Io { context, source }
}

/// rtnetlink multicast groups: links, IPv4 and IPv6 addresses.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const ENOBUFS: i32 = libc::ENOBUFS;
/// A dump datagram is at most a few pages; this leaves ample room.
const RECV_BUF: usize = 256 << 10;
/// How often the watcher thread looks whether its handle was dropped.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(500);

fn open_socket() -> Result<Socket, LinkError> {
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(io_err("netlink socket"))?;
    sock.bind_auto().map_err(io_err("netlink bind"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io_err("netlink connect"))?;
    Ok(sock)
}

/// Splits a datagram into messages (walking `nlmsg_len`, 4-aligned).
fn parse_datagram(buf: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(len_bytes) = buf.get(off..off + 4) {
        let len =
            u32::from_ne_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        if let Some(slice) = buf.get(off..off + len)
            && let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(slice)
        {
            out.push(m);
        }
        off += (len + 3) & !3;
    }
    out
}

/// The live kernel over rtnetlink: links and addresses of the network
/// namespace the socket was opened in.
///
/// Not sysfs: `/sys/class/net` shows the namespace of whoever mounted
/// `/sys`, so a daemon that entered a namespace with `setns` (`routerd
/// serve --netns`, `unshare -n` without a remount) would read another
/// namespace's links. A netlink socket belongs to the namespace of the
/// thread that opened it, whichever thread uses it later.
#[derive(Debug)]
pub struct KernelLinks {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// The last successful dump, served when a dump fails: reporting every
    /// Interface missing for one failed read would fail every uplink over.
    last: BTreeMap<String, LinkInfo>,
}

impl KernelLinks {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<KernelLinks, LinkError> {
        Ok(KernelLinks {
            sock: open_socket()?,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            last: BTreeMap::new(),
        })
    }

    /// Every link with its addresses, as the kernel says now.
    pub fn dump(&mut self) -> Result<BTreeMap<String, LinkInfo>, LinkError> {
        let mut out = BTreeMap::new();
        let mut names = BTreeMap::new();
        for m in self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
            if let RouteNetlinkMessage::NewLink(l) = m
                && let Some((name, info)) = link_info(&l)
            {
                names.insert(info.index, name.clone());
                out.insert(name, info);
            }
        }
        for m in self.request(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
            if let RouteNetlinkMessage::NewAddress(a) = m
                && let Some(text) = address_text(&a)
                && let Some(l) = names.get(&a.header.index).and_then(|n| out.get_mut(n))
            {
                if usable_ipv6(&a) {
                    l.usable_ipv6.push(text.clone());
                }
                l.addresses.push(text);
            }
        }
        Ok(out)
    }

    /// One dump request and its answer.
    fn request(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, LinkError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | NLM_F_DUMP;
        h.sequence_number = seq;
        let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut bytes = vec![0u8; m.buffer_len()];
        m.serialize(&mut bytes);
        self.sock.send(&bytes, 0).map_err(io_err("netlink send"))?;
        let mut msgs = Vec::new();
        loop {
            self.buf.clear();
            self.sock
                .recv(&mut self.buf, 0)
                .map_err(io_err("netlink recv"))?;
            for m in parse_datagram(&self.buf) {
                // Answers to an earlier, failed request may still arrive.
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(i) => msgs.push(i),
                    NetlinkPayload::Done(_) => return Ok(msgs),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(LinkError::Kernel {
                            context: "netlink dump",
                            errno: e.raw_code().abs(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

impl LinkSource for KernelLinks {
    fn links(&mut self) -> BTreeMap<String, LinkInfo> {
        match self.dump() {
            Ok(links) => {
                self.last.clone_from(&links);
                links
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading links over netlink failed; keeping the last view");
                self.last.clone()
            }
        }
    }
}

fn link_info(l: &LinkMessage) -> Option<(String, LinkInfo)> {
    let mut name = None;
    let mut mac = None;
    let mut mtu = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            LinkAttribute::Address(bytes) if bytes.iter().any(|b| *b != 0) => {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                mac = Some(hex.join(":"));
            }
            _ => {}
        }
    }
    let flags = l.header.flags;
    Some((
        name?,
        LinkInfo {
            index: l.header.index,
            up: flags.contains(LinkFlags::Up),
            // IFF_LOWER_UP: running with carrier, what sysfs `carrier` says.
            carrier: flags.contains(LinkFlags::LowerUp),
            mac,
            mtu,
            addresses: Vec::new(),
            usable_ipv6: Vec::new(),
        },
    ))
}

/// `address/prefix` of an address message: the local address (on
/// point-to-point links `IFA_ADDRESS` is the peer), else the address.
fn address_text(a: &AddressMessage) -> Option<String> {
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let addr = local.or_else(|| {
        a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    Some(format!("{addr}/{}", a.header.prefix_len))
}

/// Whether an address message is an IPv6 address a host route may use as
/// its source (see [`LinkInfo::usable_ipv6`]). `IFA_FLAGS` carries the
/// full flag word; the header's byte is the fallback of older kernels.
fn usable_ipv6(a: &AddressMessage) -> bool {
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::{AddressFlags, AddressHeaderFlags, AddressScope};
    if a.header.family != AddressFamily::Inet6 || a.header.scope != AddressScope::Universe {
        return false;
    }
    let full = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Flags(f) => Some(*f),
        _ => None,
    });
    match full {
        Some(f) => !f.intersects(
            AddressFlags::Tentative | AddressFlags::Deprecated | AddressFlags::Dadfailed,
        ),
        None => !a.header.flags.intersects(
            AddressHeaderFlags::Tentative
                | AddressHeaderFlags::Deprecated
                | AddressHeaderFlags::Dadfailed,
        ),
    }
}

/// Watches link and address notifications of a network namespace; the
/// watcher thread ends when this is dropped.
#[derive(Debug)]
pub struct LinkWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Calls `on_change` on a thread of its own after every batch of link or
/// address notifications (IPv4 and IPv6) of the calling thread's network
/// namespace, and after lost notifications (the caller reads everything
/// again anyway). The daemon queues a link refresh from it, so statuses
/// follow carrier and address changes without waiting for a resync.
pub fn watch(on_change: impl Fn() + Send + 'static) -> Result<LinkWatch, LinkError> {
    let sock = open_socket()?;
    for g in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] {
        sock.add_membership(g)
            .map_err(io_err("netlink add_membership"))?;
    }
    let _ = sock.set_rx_buf_sz(4usize << 20);
    let tv = nix::sys::time::TimeVal::new(0, WATCH_POLL.as_micros().try_into().unwrap_or(500_000));
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| io_err("netlink receive timeout")(e.into()))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("routerd-links".into())
        .spawn(move || {
            let mut buf = Vec::with_capacity(RECV_BUF);
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                buf.clear();
                match sock.recv(&mut buf, 0) {
                    Ok(_) => on_change(),
                    Err(e) if e.raw_os_error() == Some(ENOBUFS) => on_change(),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "link notifications stopped; links are read on resync only");
                        return;
                    }
                }
            }
        })
        .map_err(io_err("spawn link watcher"))?;
    Ok(LinkWatch { stop })
}

fn link_status(ifname: &str, info: Option<&LinkInfo>) -> Status {
    let mut st = Status::new();
    st.insert("ifname".into(), json!(ifname));
    match info {
        None => {
            st.insert("phase".into(), json!("Down"));
            st.insert("reason".into(), json!("InterfaceNotFound"));
        }
        Some(l) => {
            let up = l.up && l.carrier;
            st.insert("phase".into(), json!(if up { "Up" } else { "Down" }));
            if l.up && !l.carrier {
                st.insert("reason".into(), json!("NoCarrier"));
            }
            st.insert("index".into(), json!(l.index));
            let v4: Vec<&String> = l.addresses.iter().filter(|a| !a.contains(':')).collect();
            let v6: Vec<&String> = l.addresses.iter().filter(|a| a.contains(':')).collect();
            st.insert("addresses".into(), json!(l.addresses));
            st.insert("ipv4Addresses".into(), json!(v4));
            st.insert("ipv6Addresses".into(), json!(v6));
            if let Some(a) = v4.first() {
                st.insert(
                    "primaryIPv4".into(),
                    json!(a.split('/').next().unwrap_or(a)),
                );
            }
            if let Some(a) = v6.first() {
                st.insert(
                    "primaryIPv6".into(),
                    json!(a.split('/').next().unwrap_or(a)),
                );
            }
            // What an IPv6 hostTraffic policy may use as its source.
            st.insert("globalIPv6Addresses".into(), json!(l.usable_ipv6));
            if let Some(m) = &l.mac {
                st.insert("macAddress".into(), json!(m));
            }
            if let Some(m) = l.mtu {
                st.insert("mtu".into(), json!(m));
            }
        }
    }
    st
}

/// A VirtualAddress as the kernel shows it: `Held` while its address is
/// assigned to a device of this host (whoever put it there: routerd runs no
/// VRRP, an operator's keepalived does), `NotHeld` otherwise. A
/// RemoteAddressClaim with `activeWhen: vrrp-master` captures only while
/// its VirtualAddress is held; the link watcher sees the address come and
/// go, so capture follows within one evaluation.
fn virtual_address_status(
    spec: &routerd_model::spec::VirtualAddressSpec,
    links: &BTreeMap<String, LinkInfo>,
) -> Status {
    let mut st = Status::new();
    let Some(host) = spec.host() else {
        st.insert("phase".into(), json!("Unknown"));
        st.insert("reason".into(), json!("AddressUnknown"));
        st.insert(
            "message".into(),
            json!("spec.address is not a literal address; routerd cannot tell whether this host holds it"),
        );
        return st;
    };
    st.insert("address".into(), json!(host.to_string()));
    let device = links.iter().find_map(|(name, l)| {
        l.addresses
            .iter()
            .any(|a| a.split('/').next().and_then(|h| h.parse().ok()) == Some(host))
            .then_some(name)
    });
    match device {
        Some(dev) => {
            st.insert("phase".into(), json!("Held"));
            st.insert("held".into(), json!(true));
            st.insert("device".into(), json!(dev));
            st.insert(
                "message".into(),
                json!(format!(
                    "{host} is assigned on {dev}: this host holds the virtual address"
                )),
            );
        }
        None => {
            st.insert("phase".into(), json!("NotHeld"));
            st.insert("held".into(), json!(false));
            st.insert(
                "message".into(),
                json!(format!(
                    "{host} is not assigned on this host (another router holds it, or none does)"
                )),
            );
        }
    }
    st
}

/// Statuses of every link-like resource in `resources`, and of every
/// VirtualAddress (whether this host holds it).
pub fn statuses(resources: &[Resource], links: &BTreeMap<String, LinkInfo>) -> StateSnapshot {
    let mut out = StateSnapshot::new();
    for r in resources {
        if let Some(va) = r.as_virtual_address() {
            out.insert(r.id().to_string(), virtual_address_status(va, links));
            continue;
        }
        let (ifname, extra): (String, Option<(&str, String)>) = match r.kind() {
            Kind::Interface => match r.as_interface() {
                Some(s) => (s.ifname.clone(), None),
                None => continue,
            },
            Kind::DSLiteTunnel => match r.as_dslite() {
                Some(s) => {
                    let dev = s.device_name(r.name()).to_string();
                    (dev.clone(), Some(("tunnelName", dev)))
                }
                None => continue,
            },
            Kind::PPPoESession => match r.as_pppoe() {
                Some(s) => (s.device_name(r.name()), None),
                None => continue,
            },
            // A tunnel's link (an OverlayPeer's underlay): up, and its MTU.
            Kind::TunnelInterface => match r.as_tunnel_interface() {
                Some(s) => {
                    let dev = s
                        .ifname
                        .as_deref()
                        .map(str::trim)
                        .filter(|i| !i.is_empty())
                        .unwrap_or(r.name())
                        .to_string();
                    (dev, None)
                }
                None => continue,
            },
            _ => continue,
        };
        let mut st = link_status(&ifname, links.get(&ifname));
        if r.kind() != Kind::Interface {
            st.insert("device".into(), json!(ifname));
            st.insert("interface".into(), json!(ifname));
        }
        if let Some((k, v)) = extra {
            st.insert(k.into(), json!(v));
        }
        let disabled = r.as_dslite().is_some_and(|s| s.enabled == Some(false))
            || r.as_pppoe().is_some_and(|s| !s.is_enabled());
        if disabled {
            st.insert("phase".into(), json!("Disabled"));
            st.insert("reason".into(), json!("Disabled"));
        }
        out.insert(r.id().to_string(), st);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_links_read_loopback_with_its_address() {
        // Read-only look at this process's own namespace.
        let links = KernelLinks::open().unwrap().dump().unwrap();
        let lo = links.get("lo").expect("every namespace has lo");
        assert!(lo.up);
        assert!(
            lo.addresses.iter().any(|a| a == "127.0.0.1/8"),
            "{:?}",
            lo.addresses
        );
    }

    #[test]
    fn only_global_settled_ipv6_addresses_are_usable_sources() {
        use netlink_packet_route::AddressFamily;
        use netlink_packet_route::address::{AddressFlags, AddressScope};
        let msg = |scope, flags| {
            let mut a = AddressMessage::default();
            a.header.family = AddressFamily::Inet6;
            a.header.prefix_len = 64;
            a.header.scope = scope;
            a.attributes
                .push(AddressAttribute::Address("2001:db8::2".parse().unwrap()));
            a.attributes.push(AddressAttribute::Flags(flags));
            a
        };
        assert!(usable_ipv6(&msg(
            AddressScope::Universe,
            AddressFlags::Permanent | AddressFlags::Nodad
        )));
        assert!(!usable_ipv6(&msg(
            AddressScope::Universe,
            AddressFlags::Tentative
        )));
        assert!(!usable_ipv6(&msg(
            AddressScope::Universe,
            AddressFlags::Deprecated
        )));
        assert!(!usable_ipv6(&msg(
            AddressScope::Universe,
            AddressFlags::Dadfailed
        )));
        assert!(!usable_ipv6(&msg(
            AddressScope::Link,
            AddressFlags::empty()
        )));
        let mut v4 = msg(AddressScope::Universe, AddressFlags::empty());
        v4.header.family = AddressFamily::Inet;
        assert!(!usable_ipv6(&v4));
        // The status publishes them apart from every IPv6 address.
        let info = LinkInfo {
            up: true,
            carrier: true,
            addresses: vec!["fe80::1/64".into(), "2001:db8::2/64".into()],
            usable_ipv6: vec!["2001:db8::2/64".into()],
            ..LinkInfo::default()
        };
        let st = link_status("eth0", Some(&info));
        assert_eq!(st["globalIPv6Addresses"], json!(["2001:db8::2/64"]));
        assert_eq!(st["ipv6Addresses"], json!(["fe80::1/64", "2001:db8::2/64"]));
    }

    #[test]
    fn up_with_carrier_is_up_and_missing_is_down() {
        let cfg = "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: eth0}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: gone}\nspec: {ifname: eth9}\n---\napiVersion: net.routerd.net/v1alpha1\nkind: DSLiteTunnel\nmetadata: {name: ds}\nspec: {interface: wan, tunnelName: dsl0, aftrIPv6: '2001:db8::1'}\n";
        let (l, d) = routerd_model::load_and_validate(&[("c", cfg)]);
        assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
        let mut links = BTreeMap::new();
        links.insert(
            "eth0".to_string(),
            LinkInfo {
                index: 2,
                up: true,
                carrier: true,
                addresses: vec!["192.0.2.2/30".into()],
                ..Default::default()
            },
        );
        links.insert(
            "dsl0".to_string(),
            LinkInfo {
                index: 3,
                up: true,
                carrier: false,
                ..Default::default()
            },
        );
        let s = statuses(&l.resources, &links);
        let wan = &s["net.routerd.net/v1alpha1/Interface/wan"];
        assert_eq!(wan["phase"], "Up");
        assert_eq!(wan["primaryIPv4"], "192.0.2.2");
        let gone = &s["net.routerd.net/v1alpha1/Interface/gone"];
        assert_eq!(
            (gone["phase"].as_str(), gone["reason"].as_str()),
            (Some("Down"), Some("InterfaceNotFound"))
        );
        let ds = &s["net.routerd.net/v1alpha1/DSLiteTunnel/ds"];
        assert_eq!(
            (
                ds["phase"].as_str(),
                ds["device"].as_str(),
                ds["reason"].as_str()
            ),
            (Some("Down"), Some("dsl0"), Some("NoCarrier"))
        );
    }

    #[test]
    fn a_virtual_address_is_held_while_its_address_is_on_a_device() {
        let cfg = "apiVersion: net.routerd.net/v1alpha1\nkind: VirtualAddress\nmetadata: {name: vip}\nspec: {family: ipv4, interface: lan, address: 192.0.2.254/32, mode: vrrp, vrrp: {virtualRouterID: 7}}\n";
        let (l, d) = routerd_model::load_and_validate(&[("c", cfg)]);
        assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
        let id = "net.routerd.net/v1alpha1/VirtualAddress/vip";
        let mut links = BTreeMap::new();
        links.insert(
            "eth1".to_string(),
            LinkInfo {
                index: 2,
                up: true,
                carrier: true,
                addresses: vec!["192.0.2.1/24".into()],
                ..Default::default()
            },
        );
        let st = &statuses(&l.resources, &links)[id];
        assert_eq!(st["phase"], "NotHeld");
        assert_eq!(st["held"], false);
        // keepalived adds the address as a /32 on the LAN device.
        if let Some(l) = links.get_mut("eth1") {
            l.addresses.push("192.0.2.254/32".into());
        }
        let st = &statuses(&l.resources, &links)[id];
        assert_eq!(st["phase"], "Held");
        assert_eq!(st["held"], true);
        assert_eq!(st["device"], "eth1");
        assert_eq!(st["address"], "192.0.2.254");
    }
}
