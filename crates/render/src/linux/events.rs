//! Kernel notifications: links (carrier in milliseconds, deps.md §5),
//! IPv4 and IPv6 addresses, routes and rules, so the daemon can repair
//! drift.

use std::net::IpAddr;
use std::sync::mpsc;

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::convert::{self, Links};
use super::rtnl::Rtnl;
use crate::dataplane::DataplaneError;
use crate::ir::{Route, Rule};

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV6_RULE: u32 = 19;
const ENOBUFS: i32 = 105;

/// One change in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataplaneEvent {
    /// A link appeared, changed or went away.
    Link {
        /// ifindex.
        index: u32,
        /// Name.
        name: String,
        /// Administratively up (`IFF_UP`).
        up: bool,
        /// Carrier (`IFF_LOWER_UP`).
        carrier: bool,
        /// The link was deleted.
        removed: bool,
    },
    /// An IPv4 or IPv6 address was added or removed.
    Address {
        /// ifindex.
        index: u32,
        /// Address.
        address: IpAddr,
        /// Prefix length.
        prefix_len: u8,
        /// The address was removed.
        removed: bool,
    },
    /// A route was added, replaced or deleted.
    Route {
        /// The route (device names as of the last link event).
        route: Route,
        /// The route was deleted.
        removed: bool,
    },
    /// A rule was added or deleted.
    Rule {
        /// The rule.
        rule: Rule,
        /// The rule was deleted.
        removed: bool,
    },
    /// An nftables object of this table changed (rule, chain, set or the
    /// table itself): someone may have flushed or edited an owned table.
    NftChanged {
        /// Family number (`NFPROTO_*`, 2 = ip).
        family: u8,
        /// Table name.
        table: String,
    },
    /// Notifications were lost (receive buffer overrun): observe again.
    Resync,
}

/// A blocking stream of [`DataplaneEvent`]s from the namespace of the
/// thread that opened it.
pub struct EventStream {
    rtnl: Rtnl,
    links: Links,
}

impl EventStream {
    /// Subscribes to link, address, route and rule notifications of both
    /// families.
    pub fn open() -> Result<Self, DataplaneError> {
        let mut rtnl = Rtnl::open()?;
        // Seed the ifindex map before subscribing, so the dump cannot
        // swallow notifications.
        let links: Vec<_> = rtnl
            .dump(RouteNetlinkMessage::GetLink(Default::default()))?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect();
        rtnl.subscribe(&[
            RTNLGRP_LINK,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV4_RULE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
            RTNLGRP_IPV6_RULE,
        ])?;
        Ok(EventStream {
            rtnl,
            links: Links::from_messages(&links),
        })
    }

    /// Waits for the next batch of events (one datagram).
    pub fn next_batch(&mut self) -> Result<Vec<DataplaneEvent>, DataplaneError> {
        let msgs = match self.rtnl.recv_events() {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                return Ok(vec![DataplaneEvent::Resync]);
            }
            Err(e) => {
                return Err(DataplaneError::Io {
                    context: "netlink events".into(),
                    message: e.to_string(),
                });
            }
        };
        let mut out = Vec::new();
        for m in msgs {
            let NetlinkPayload::InnerMessage(msg) = m.payload else {
                continue;
            };
            if let Some(ev) = self.event(msg) {
                out.push(ev);
            }
        }
        Ok(out)
    }

    /// Runs the stream on its own threads (rtnetlink, and nftables
    /// notifications), sending events until the receiver is dropped or a
    /// socket fails. The threads enter `netns` first when given.
    pub fn spawn(netns: Option<String>) -> Result<mpsc::Receiver<DataplaneEvent>, DataplaneError> {
        let (tx, rx) = mpsc::channel();
        let tx_nft = tx.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("routerd-netlink-events".into())
            .spawn({
                let netns = netns.clone();
                move || {
                    let opened = netns
                        .as_deref()
                        .map_or(Ok(()), super::netns::enter)
                        .and_then(|()| EventStream::open());
                    let mut stream = match opened {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    while let Ok(batch) = stream.next_batch() {
                        for ev in batch {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| DataplaneError::Io {
                context: "spawn event thread".into(),
                message: e.to_string(),
            })?;
        ready_rx.recv().map_err(|e| DataplaneError::Io {
            context: "event thread".into(),
            message: e.to_string(),
        })??;
        nft_events(netns, tx_nft)?;
        Ok(rx)
    }

    fn event(&mut self, msg: RouteNetlinkMessage) -> Option<DataplaneEvent> {
        match msg {
            RouteNetlinkMessage::NewLink(l) => Some(self.link_event(&l, false)),
            RouteNetlinkMessage::DelLink(l) => Some(self.link_event(&l, true)),
            RouteNetlinkMessage::NewAddress(a) => addr_event(&a, false),
            RouteNetlinkMessage::DelAddress(a) => addr_event(&a, true),
            RouteNetlinkMessage::NewRoute(r) => {
                convert::route_from(&r, &self.links).map(|route| DataplaneEvent::Route {
                    route,
                    removed: false,
                })
            }
            RouteNetlinkMessage::DelRoute(r) => {
                convert::route_from(&r, &self.links).map(|route| DataplaneEvent::Route {
                    route,
                    removed: true,
                })
            }
            RouteNetlinkMessage::NewRule(r) => {
                convert::rule_from(&r).map(|rule| DataplaneEvent::Rule {
                    rule,
                    removed: false,
                })
            }
            RouteNetlinkMessage::DelRule(r) => {
                convert::rule_from(&r).map(|rule| DataplaneEvent::Rule {
                    rule,
                    removed: true,
                })
            }
            _ => None,
        }
    }

    /// Keeps the ifindex map current so route events carry device names.
    fn link_event(
        &mut self,
        l: &netlink_packet_route::link::LinkMessage,
        removed: bool,
    ) -> DataplaneEvent {
        let index = l.header.index;
        let name = convert::link_name(l)
            .or_else(|| self.links.by_index.get(&index).cloned())
            .unwrap_or_default();
        if removed {
            self.links.by_index.remove(&index);
            self.links.by_name.remove(&name);
        } else if !name.is_empty() {
            self.links.by_index.insert(index, name.clone());
            self.links.by_name.insert(name.clone(), index);
        }
        let (up, carrier) = convert::link_state(l);
        DataplaneEvent::Link {
            index,
            name,
            up,
            carrier: carrier && !removed,
            removed,
        }
    }
}

fn addr_event(a: &AddressMessage, removed: bool) -> Option<DataplaneEvent> {
    let address = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    })?;
    Some(DataplaneEvent::Address {
        index: a.header.index,
        address,
        prefix_len: a.header.prefix_len,
        removed,
    })
}

/// `NFNLGRP_NFTABLES`.
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// Subscribes to nftables notifications on a thread of its own. rtnetlink
/// says nothing about nftables, so this is how a flushed owned table is
/// noticed.
fn nft_events(
    netns: Option<String>,
    tx: mpsc::Sender<DataplaneEvent>,
) -> Result<(), DataplaneError> {
    use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};
    let (ready_tx, ready_rx) = mpsc::channel();
    let io = |context: &str, e: std::io::Error| DataplaneError::Io {
        context: context.to_string(),
        message: e.to_string(),
    };
    std::thread::Builder::new()
        .name("routerd-nft-events".into())
        .spawn(move || {
            let opened = netns
                .as_deref()
                .map_or(Ok(()), super::netns::enter)
                .and_then(|()| {
                    let mut s =
                        Socket::new(NETLINK_NETFILTER).map_err(|e| io("netfilter socket", e))?;
                    s.bind_auto().map_err(|e| io("netfilter bind", e))?;
                    s.add_membership(NFNLGRP_NFTABLES)
                        .map_err(|e| io("netfilter add_membership", e))?;
                    let _ = s.set_rx_buf_sz(4usize << 20);
                    Ok(s)
                });
            let sock = match opened {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut buf = Vec::with_capacity(1 << 20);
            loop {
                buf.clear();
                match sock.recv(&mut buf, 0) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                        if tx.send(DataplaneEvent::Resync).is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(_) => return,
                }
                for ev in parse_nft_notifications(&buf) {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| io("spawn nft event thread", e))?;
    ready_rx.recv().map_err(|e| DataplaneError::Io {
        context: "nft event thread".into(),
        message: e.to_string(),
    })?
}

/// Table name (attribute 1 of every nf_tables object message) and family of
/// each notification in a datagram.
fn parse_nft_notifications(buf: &[u8]) -> Vec<DataplaneEvent> {
    let byte = |i: usize| buf.get(i).copied().unwrap_or(0);
    let mut out: Vec<DataplaneEvent> = Vec::new();
    let mut off = 0usize;
    while off + 20 <= buf.len() {
        let len =
            u32::from_ne_bytes([byte(off), byte(off + 1), byte(off + 2), byte(off + 3)]) as usize;
        if len < 20 || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([byte(off + 4), byte(off + 5)]);
        if ty >> 8 == NFNL_SUBSYS_NFTABLES {
            let family = byte(off + 16);
            let mut a = off + 20;
            while a + 4 <= off + len {
                let alen = usize::from(u16::from_ne_bytes([byte(a), byte(a + 1)]));
                let aty = u16::from_ne_bytes([byte(a + 2), byte(a + 3)]) & 0x3fff;
                if alen < 4 || a + alen > off + len {
                    break;
                }
                if aty == 1 {
                    let name = buf.get(a + 4..a + alen).unwrap_or_default();
                    let table = String::from_utf8_lossy(name)
                        .trim_end_matches('\0')
                        .to_string();
                    let ev = DataplaneEvent::NftChanged { family, table };
                    if !out.contains(&ev) {
                        out.push(ev);
                    }
                    break;
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}
