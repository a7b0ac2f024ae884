//! The Linux dataplane: routes, rules and addresses over rtnetlink, owned nft tables
//! through an ordered list of [`NftBackend`]s (the first that can express a
//! table loads it), and a stream of link/address/route/rule events.
//!
//! Everything runs in the network namespace of the thread that created the
//! [`LinuxDataplane`] (see [`netns::enter`]).

mod convert;
pub mod events;
mod fou;
pub mod netns;
mod nfnl;
mod nft;
mod rtnl;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;

pub use nfnl::{NetfilterSocket, NfNetlink};
pub use nft::NftJson;

use self::convert::Links;
use self::rtnl::Rtnl;
use crate::dataplane::{ApplyError, Dataplane, DataplaneError, Observed};
use crate::ir::{Family, LinkKind};
use crate::ledger::Ownership;
use crate::nft_backend::{NftBackend, choose, choose_for_sets};
use crate::plan::{Op, Plan};

/// ENODEV, reported for a device that does not exist.
const ENODEV: i32 = 19;

/// Routes and rules through netlink, nft tables through the backends.
pub struct LinuxDataplane {
    rtnl: Rtnl,
    links: Links,
    backends: Vec<Box<dyn NftBackend>>,
    lister: NftJson,
    ownership: Ownership,
}

impl LinuxDataplane {
    /// Opens the rtnetlink socket in the current thread's namespace.
    /// `backends` are tried in order per table; the `nft -j` backend is
    /// always appended last, as it can express everything.
    pub fn new(
        mut backends: Vec<Box<dyn NftBackend>>,
        ownership: Ownership,
    ) -> Result<Self, DataplaneError> {
        backends.push(Box::new(NftJson::default()));
        let mut dp = LinuxDataplane {
            rtnl: Rtnl::open()?,
            links: Links::default(),
            backends,
            lister: NftJson::default(),
            ownership,
        };
        dp.refresh_links()?;
        Ok(dp)
    }

    /// Names of the configured nft backends, in preference order.
    pub fn backend_names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name()).collect()
    }

    /// The backend that would load `table`.
    pub fn backend_for(
        &mut self,
        table: &crate::ir::NftTable,
    ) -> Result<&'static str, DataplaneError> {
        Ok(choose(&mut self.backends, table)?.name())
    }

    /// `ip link show`: refreshes the ifindex map.
    fn refresh_links(&mut self) -> Result<(), DataplaneError> {
        let msgs = self
            .rtnl
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        let links: Vec<LinkMessage> = msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect();
        self.links = Links::from_messages(&links);
        Ok(())
    }

    /// `ip -4 route show table all` and `ip -6 route show table all`.
    fn dump_routes(&mut self) -> Result<Vec<crate::ir::Route>, DataplaneError> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let mut req = RouteMessage::default();
            req.header.address_family = convert::address_family(family);
            let msgs = self.rtnl.dump(RouteNetlinkMessage::GetRoute(req))?;
            out.extend(msgs.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => convert::route_from(r, &self.links),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// `ip -4 rule show` and `ip -6 rule show`.
    fn dump_rules(&mut self) -> Result<Vec<crate::ir::Rule>, DataplaneError> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let mut req = RuleMessage::default();
            req.header.family = convert::address_family(family);
            let msgs = self.rtnl.dump(RouteNetlinkMessage::GetRule(req))?;
            out.extend(msgs.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => convert::rule_from(r),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// `ip -4 addr show` and `ip -6 addr show`.
    fn dump_addresses(&mut self) -> Result<Vec<crate::ir::Address>, DataplaneError> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let mut req = AddressMessage::default();
            req.header.family = convert::address_family(family);
            let msgs = self.rtnl.dump(RouteNetlinkMessage::GetAddress(req))?;
            out.extend(msgs.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => convert::address_from(a, &self.links),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// `ip -4 neigh show proxy`.
    fn dump_neigh_proxies(&mut self) -> Result<Vec<crate::capture::NeighProxy>, DataplaneError> {
        let msgs = self.rtnl.dump(RouteNetlinkMessage::GetNeighbour(
            convert::neigh_proxy_dump(),
        ))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => convert::neigh_proxy_from(n, &self.links),
                _ => None,
            })
            .collect())
    }

    /// `net.ipv4.conf.<link>.forwarding` of every link (one small read per
    /// link; a link that vanished meanwhile is left out, i.e. unknown).
    fn read_forwarding(&self) -> std::collections::BTreeMap<String, bool> {
        self.links
            .by_name
            .keys()
            .filter_map(|name| {
                let v =
                    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/forwarding"))
                        .ok()?;
                Some((name.clone(), v.trim() == "1"))
            })
            .collect()
    }

    fn netlink_request(&self, op: &Op) -> Result<(RouteNetlinkMessage, u16), DataplaneError> {
        let nodev = |e| no_device(op, e);
        let proto = self.ownership.route_protocol;
        Ok(match op {
            Op::AddRoute { route } => {
                let mut r = route.clone();
                r.protocol = proto;
                (
                    RouteNetlinkMessage::NewRoute(
                        convert::route_message(&r, &self.links).map_err(nodev)?,
                    ),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
            }
            Op::ReplaceRoute { new, .. } => {
                let mut r = new.clone();
                r.protocol = proto;
                (
                    RouteNetlinkMessage::NewRoute(
                        convert::route_message(&r, &self.links).map_err(nodev)?,
                    ),
                    NLM_F_CREATE | NLM_F_REPLACE,
                )
            }
            Op::DeleteRoute { route } => (
                RouteNetlinkMessage::DelRoute(convert::route_delete(route)),
                0,
            ),
            // Rules have no replace semantics: exclusive adds never
            // duplicate (deps.md §3.2).
            Op::AddRule { rule } => (
                RouteNetlinkMessage::NewRule(convert::rule_message(rule, proto)),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            Op::DeleteRule { rule } => (
                RouteNetlinkMessage::DelRule(convert::rule_message(rule, proto)),
                0,
            ),
            // Exclusive: an identical address already there is foreign and
            // must not be taken over by a replace.
            Op::AddAddress { address } => (
                RouteNetlinkMessage::NewAddress(
                    convert::address_message(address, &self.links).map_err(nodev)?,
                ),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            Op::DeleteAddress { address } => (
                RouteNetlinkMessage::DelAddress(
                    convert::address_message(address, &self.links).map_err(nodev)?,
                ),
                0,
            ),
            Op::SetLink { link } => (
                RouteNetlinkMessage::SetLink(
                    convert::link_set_message(link, &self.links, None).map_err(nodev)?,
                ),
                0,
            ),
            Op::DeleteLink { link } => (
                RouteNetlinkMessage::DelLink(
                    convert::link_delete_message(&link.name, &self.links).map_err(nodev)?,
                ),
                0,
            ),
            // The kernel does not refuse a proxy entry that exists (it
            // updates it): the diff never adds one that is there.
            Op::AddNeighProxy { proxy } => (
                RouteNetlinkMessage::NewNeighbour(
                    convert::neigh_proxy_message(proxy, &self.links).map_err(nodev)?,
                ),
                NLM_F_CREATE | NLM_F_EXCL,
            ),
            Op::DeleteNeighProxy { proxy } => (
                RouteNetlinkMessage::DelNeighbour(
                    convert::neigh_proxy_message(proxy, &self.links).map_err(nodev)?,
                ),
                0,
            ),
            Op::ReplaceNftTable { .. }
            | Op::DeleteNftTable { .. }
            | Op::UpdateNftSets { .. }
            | Op::AddLink { .. }
            | Op::AnnounceLink { .. }
            | Op::AnnounceNeighProxy { .. }
            | Op::SetForwarding { .. } => {
                return Err(DataplaneError::Unsupported(
                    "op outside a netlink batch".into(),
                ));
            }
        })
    }

    /// Runs consecutive netlink operations as one pipelined batch; every
    /// operation is attempted, refusals are collected in `failed`.
    fn run_netlink(
        &mut self,
        plan: &Plan,
        range: std::ops::Range<usize>,
        succeeded: &mut Vec<usize>,
        failed: &mut Vec<(usize, DataplaneError)>,
    ) {
        let mut requests = Vec::with_capacity(range.len());
        let mut sent = Vec::with_capacity(range.len());
        let mut refreshed = false;
        for i in range {
            let Some(op) = plan.ops.get(i) else { continue };
            let req = match self.netlink_request(op) {
                Ok(r) => Ok(r),
                Err(e) if !refreshed => {
                    // A device may have appeared since the last dump.
                    refreshed = true;
                    match self.refresh_links() {
                        Ok(()) => self.netlink_request(op).map_err(|_| e),
                        Err(re) => Err(re),
                    }
                }
                Err(e) => Err(e),
            };
            match req {
                Ok(r) => {
                    requests.push(r);
                    sent.push(i);
                }
                Err(e) => failed.push((i, e)),
            }
        }
        let results = match self.rtnl.batch(requests) {
            Ok(r) => r,
            Err(e) => {
                failed.extend(sent.into_iter().map(|i| (i, e.clone())));
                return;
            }
        };
        for (i, r) in sent.into_iter().zip(results) {
            match r {
                Ok(()) => succeeded.push(i),
                Err(e) => {
                    let ctx = plan.ops.get(i).map(ToString::to_string).unwrap_or_default();
                    failed.push((i, e.into_dataplane(ctx)));
                }
            }
        }
    }
}

/// Operations run one at a time rather than in a pipelined netlink batch:
/// nft tables, and link creation and announcement, whose later operations
/// need the new link's index and MAC.
fn is_nft(op: &Op) -> bool {
    matches!(
        op,
        Op::ReplaceNftTable { .. }
            | Op::DeleteNftTable { .. }
            | Op::UpdateNftSets { .. }
            | Op::AddLink { .. }
            | Op::AnnounceLink { .. }
            | Op::AnnounceNeighProxy { .. }
            | Op::SetForwarding { .. }
    ) || matches!(op, Op::DeleteLink { link } if fou_port(link).is_some())
}

/// A request naming a device the namespace does not have, as the kernel
/// words it.
fn no_device(op: &Op, e: convert::NoDevice) -> DataplaneError {
    DataplaneError::Netlink {
        context: op.to_string(),
        message: format!("Cannot find device \"{}\"", e.0),
        errno: ENODEV,
    }
}

/// The FOU port a fou/gue tunnel receives on.
fn fou_port(link: &crate::ir::Link) -> Option<fou::FouPort> {
    match &link.kind {
        LinkKind::Ipip { encap: Some(e), .. } => Some(fou::FouPort::of(e, 4)),
        LinkKind::Gre { encap: Some(e), .. } => Some(fou::FouPort::of(e, 47)),
        _ => None,
    }
}

/// Writes a per-device sysctl of the calling thread's namespace
/// (`/proc/sys/net/...` resolves against the opener's namespace).
fn write_sysctl(path: &str, value: &str) -> Result<(), DataplaneError> {
    std::fs::write(path, value).map_err(|e| DataplaneError::Io {
        context: format!("write {path}"),
        message: e.to_string(),
    })
}

impl LinuxDataplane {
    /// `ip link add`, then (for an announcing link) `ndisc_notify` on, so
    /// the kernel advertises each IPv6 address once its DAD completes, and
    /// a fresh link map for the operations that follow.
    fn add_link(&mut self, op: &Op, link: &crate::ir::Link) -> Result<(), DataplaneError> {
        let nodev = |e| no_device(op, e);
        let msg = match convert::link_add_message(link, &self.links) {
            Ok(m) => m,
            Err(_) => {
                self.refresh_links()?;
                convert::link_add_message(link, &self.links).map_err(nodev)?
            }
        };
        // A fou/gue tunnel's receiving port first: a link that only sends
        // is not a tunnel. The kernel's refusal (no fou module) is the
        // TunnelInterface's fault, with its words.
        let port = fou_port(link);
        let opened = match &port {
            Some(p) => fou::Fou::open()?.add(p)?,
            None => false,
        };
        let created = self.single(
            op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        if let (Err(_), Some(p), true) = (&created, &port, opened) {
            let _ = fou::Fou::open().and_then(|mut f| f.delete(p));
        }
        created?;
        if link.announce {
            // IPv6 may be disabled on the host; IPv4 is announced by
            // AnnounceLink, which reports its own failure.
            let _ = write_sysctl(
                &format!("/proc/sys/net/ipv6/conf/{}/ndisc_notify", link.name),
                "1",
            );
            let _ = write_sysctl(
                &format!("/proc/sys/net/ipv4/conf/{}/arp_notify", link.name),
                "1",
            );
        }
        self.refresh_links()
    }

    /// Deletes a fou/gue tunnel, then its FOU port unless another link of
    /// the kernel still receives on it.
    fn delete_tunnel(&mut self, op: &Op, link: &crate::ir::Link) -> Result<(), DataplaneError> {
        let nodev = |e| no_device(op, e);
        let msg = convert::link_delete_message(&link.name, &self.links).map_err(nodev)?;
        self.single(op, RouteNetlinkMessage::DelLink(msg), 0)?;
        self.refresh_links()?;
        let Some(port) = fou_port(link) else {
            return Ok(());
        };
        let shared = self
            .links
            .kernel
            .iter()
            .any(|l| fou_port(l).is_some_and(|p| p.port == port.port));
        if shared {
            return Ok(());
        }
        fou::Fou::open()?.delete(&port)
    }

    /// Sets the link's MAC to the one it has: with `arp_notify` on, the
    /// kernel answers NETDEV_CHANGEADDR with a gratuitous ARP for every
    /// IPv4 address of the link (deps: kernel `devinet.c`).
    fn announce_link(&mut self, op: &Op, device: &str) -> Result<(), DataplaneError> {
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{device}/arp_notify"), "1")?;
        self.refresh_links()?;
        let mac = self
            .links
            .macs
            .get(device)
            .cloned()
            .ok_or_else(|| DataplaneError::Netlink {
                context: op.to_string(),
                message: format!("Cannot find device \"{device}\""),
                errno: ENODEV,
            })?;
        let link = crate::ir::Link::new(device, crate::ir::LinkKind::Other(String::new()));
        let msg = convert::link_set_message(&link, &self.links, Some(mac)).map_err(|e| {
            DataplaneError::Netlink {
                context: op.to_string(),
                message: format!("Cannot find device \"{}\"", e.0),
                errno: ENODEV,
            }
        })?;
        self.single(op, RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// A gratuitous ARP for a captured address from the capture device.
    fn announce_proxy(
        &mut self,
        op: &Op,
        proxy: &crate::capture::NeighProxy,
    ) -> Result<(), DataplaneError> {
        let Some(index) = self.links.by_name.get(&proxy.device).copied() else {
            return Err(DataplaneError::Netlink {
                context: op.to_string(),
                message: format!("Cannot find device \"{}\"", proxy.device),
                errno: ENODEV,
            });
        };
        // A device without an Ethernet address (an ipip or gre overlay,
        // whose link address is its IPv4 endpoint) has no ARP: there is
        // nothing to announce.
        let Some(mac) = self
            .links
            .macs
            .get(&proxy.device)
            .filter(|m| m.len() == 6)
            .cloned()
        else {
            return Ok(());
        };
        send_gratuitous_arp(index, &mac, proxy.address).map_err(|message| DataplaneError::Io {
            context: op.to_string(),
            message,
        })
    }

    /// One request, acknowledged.
    fn single(
        &mut self,
        op: &Op,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), DataplaneError> {
        match self.rtnl.batch(vec![(msg, flags)])?.pop() {
            Some(Err(e)) => Err(e.into_dataplane(op.to_string())),
            _ => Ok(()),
        }
    }
}

impl Dataplane for LinuxDataplane {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.refresh_links()?;
        Ok(Observed {
            routes: self.dump_routes()?,
            rules: self.dump_rules()?,
            nft: self.lister.list_owned()?,
            addresses: self.dump_addresses()?,
            links: Some(self.links.by_name.keys().cloned().collect()),
            kernel_links: self.links.kernel.clone(),
            neigh_proxies: self.dump_neigh_proxies()?,
            ipv4_forwarding: self.read_forwarding(),
        })
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let mut succeeded = Vec::new();
        let mut failed = Vec::new();
        let mut i = 0;
        while i < plan.ops.len() {
            let Some(op) = plan.ops.get(i) else { break };
            if is_nft(op) {
                let r = match op {
                    Op::ReplaceNftTable { table } => {
                        choose(&mut self.backends, table).and_then(|b| b.replace_table(table))
                    }
                    Op::DeleteNftTable { key } => self
                        .backends
                        .last_mut()
                        .ok_or_else(|| DataplaneError::Unsupported("no nft backend".into()))
                        .and_then(|b| b.delete_table(key)),
                    Op::UpdateNftSets { table, sets, .. } => {
                        choose_for_sets(&mut self.backends, sets)
                            .and_then(|b| b.update_sets(table, sets))
                    }
                    Op::AddLink { link } => self.add_link(op, link),
                    Op::DeleteLink { link } => self.delete_tunnel(op, link),
                    Op::AnnounceLink { device, .. } => self.announce_link(op, device),
                    Op::AnnounceNeighProxy { proxy } => self.announce_proxy(op, proxy),
                    Op::SetForwarding {
                        device, enabled, ..
                    } => write_sysctl(
                        &format!("/proc/sys/net/ipv4/conf/{device}/forwarding"),
                        if *enabled { "1" } else { "0" },
                    ),
                    _ => Ok(()),
                };
                match r {
                    Ok(()) => succeeded.push(i),
                    Err(error) => failed.push((i, error)),
                }
                i += 1;
                continue;
            }
            let start = i;
            while plan.ops.get(i).is_some_and(|o| !is_nft(o)) {
                i += 1;
            }
            self.run_netlink(plan, start..i, &mut succeeded, &mut failed);
        }
        match ApplyError::from_results(succeeded, failed) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// A gratuitous ARP request for `address` from `mac`, broadcast on the
/// device with index `ifindex` (who-has ADDR tell ADDR: the form Linux
/// neighbours update their cache from).
fn send_gratuitous_arp(
    ifindex: u32,
    mac: &[u8],
    address: std::net::Ipv4Addr,
) -> Result<(), String> {
    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, sendto, socket};
    use std::os::fd::AsRawFd;
    let mac: [u8; 6] = mac
        .try_into()
        .map_err(|_| format!("hardware address of {} bytes, not Ethernet", mac.len()))?;
    let ip = address.octets();
    let mut pkt = Vec::with_capacity(28);
    pkt.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    pkt.extend_from_slice(&mac);
    pkt.extend_from_slice(&ip);
    pkt.extend_from_slice(&[0; 6]);
    pkt.extend_from_slice(&ip);
    let fd = socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("packet socket: {e}"))?;
    let dest = broadcast_link_addr(ifindex)?;
    sendto(fd.as_raw_fd(), &pkt, &dest, MsgFlags::empty())
        .map(|_| ())
        .map_err(|e| format!("send: {e}"))
}

/// The `sockaddr_ll` of an ARP broadcast on `ifindex`.
#[allow(unsafe_code)]
fn broadcast_link_addr(ifindex: u32) -> Result<nix::sys::socket::LinkAddr, String> {
    use nix::sys::socket::SockaddrLike;
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ARP as u16).to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|e| e.to_string())?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    let len = u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).map_err(|e| e.to_string())?;
    // SAFETY: `ll` is a fully initialised `sockaddr_ll` that lives for the
    // call, and `len` is exactly its size; `from_raw` copies it.
    unsafe { nix::sys::socket::LinkAddr::from_raw(std::ptr::addr_of!(ll).cast(), Some(len)) }
        .ok_or_else(|| "not a link address".to_string())
}
