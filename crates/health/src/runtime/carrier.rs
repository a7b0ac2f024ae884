//! Carrier awareness.
//!
//! A probe notices a dead local link only after `fall` timeouts; the kernel
//! announces it on RTMGRP_LINK within milliseconds (deps.md §5: 3-4 ms over
//! veth). The scheduler listens to a [`LinkEvents`] source and fails the
//! checks pinned to a device the moment its carrier goes.

use std::collections::VecDeque;
use std::future::Future;
use std::io;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use tokio::sync::mpsc;

/// RTMGRP_LINK (linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 1;
/// ENOBUFS (asm-generic/errno.h): the socket's receive queue overflowed.
const ENOBUFS: i32 = 105;

/// A link's carrier state, as last announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// Kernel name.
    pub ifname: String,
    /// Administratively up and lower layer up (IFF_UP and IFF_LOWER_UP).
    /// A deleted link reports `false`.
    pub carrier: bool,
}

/// A stream of link states: the current state of links first (where the
/// source knows it), then changes. Repeats are allowed; the scheduler acts on
/// changes only.
pub trait LinkEvents: Send + 'static {
    /// The next event; `None` when the source has ended.
    ///
    /// Must be cancel-safe: the scheduler polls it inside `select!`.
    fn next(&mut self) -> impl Future<Output = Option<LinkEvent>> + Send;
}

/// No link source: carrier is never lost.
#[derive(Debug, Default)]
pub struct NoLinks;

impl LinkEvents for NoLinks {
    async fn next(&mut self) -> Option<LinkEvent> {
        std::future::pending().await
    }
}

/// In-memory link events, for tests and embedders that learn carrier state
/// elsewhere.
#[derive(Debug)]
pub struct MemoryLinks {
    rx: mpsc::UnboundedReceiver<LinkEvent>,
}

/// The sending side of [`MemoryLinks`].
#[derive(Clone, Debug)]
pub struct MemoryLinksSender {
    tx: mpsc::UnboundedSender<LinkEvent>,
}

impl MemoryLinks {
    /// A source and its sender.
    pub fn new() -> (MemoryLinks, MemoryLinksSender) {
        let (tx, rx) = mpsc::unbounded_channel();
        (MemoryLinks { rx }, MemoryLinksSender { tx })
    }
}

impl MemoryLinksSender {
    /// Announces `ifname`'s carrier. Returns false once the source is gone.
    pub fn set(&self, ifname: &str, carrier: bool) -> bool {
        self.tx
            .send(LinkEvent {
                ifname: ifname.to_string(),
                carrier,
            })
            .is_ok()
    }
}

impl LinkEvents for MemoryLinks {
    async fn next(&mut self) -> Option<LinkEvent> {
        // mpsc::Receiver::recv is cancel-safe.
        self.rx.recv().await
    }
}

/// Link events from the kernel: an rtnetlink socket of our own, subscribed
/// to RTMGRP_LINK, in the network namespace of the thread that opened it.
/// It starts with a dump, so links that are already down count at once.
pub struct NetlinkLinks {
    socket: TokioSocket,
    pending: VecDeque<LinkEvent>,
}

impl std::fmt::Debug for NetlinkLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkLinks")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl NetlinkLinks {
    /// Opens and subscribes (needs a tokio runtime).
    pub fn open() -> io::Result<NetlinkLinks> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        socket.socket_mut().bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        send_dump(&socket)?;
        Ok(NetlinkLinks {
            socket,
            pending: VecDeque::new(),
        })
    }
}

/// Appends the link events found in one netlink datagram.
fn parse_links(data: &[u8], out: &mut VecDeque<LinkEvent>) {
    let mut offset = 0;
    while offset < data.len() {
        let Some(rest) = data.get(offset..) else {
            break;
        };
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) else {
            break;
        };
        let len = msg.header.length as usize;
        if len == 0 {
            break;
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                if let Some(ev) = link_event(&link, true) {
                    out.push_back(ev);
                }
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                if let Some(ev) = link_event(&link, false) {
                    out.push_back(ev);
                }
            }
            _ => {}
        }
        offset += (len + 3) & !3;
    }
}

/// Asks for every link's current state; the answers arrive on the same
/// socket as the multicast changes and are parsed the same way.
fn send_dump(socket: &TokioSocket) -> io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.socket_ref().send(&buf, 0)?;
    Ok(())
}

fn link_event(link: &LinkMessage, exists: bool) -> Option<LinkEvent> {
    let ifname = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    let flags = link.header.flags;
    let carrier = exists && flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
    Some(LinkEvent { ifname, carrier })
}

impl LinkEvents for NetlinkLinks {
    async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            // A whole datagram is read and parsed within one poll, so
            // cancelling between polls loses nothing.
            match self.socket.recv_from_full().await {
                Ok((data, _)) => parse_links(&data, &mut self.pending),
                // ENOBUFS: events were lost; dump again so no change is
                // missed for good (a failed dump request ends the source).
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    if send_dump(&self.socket).is_err() {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(msgs: Vec<RouteNetlinkMessage>) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut nl =
                NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(m));
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.serialize(&mut buf);
            out.extend_from_slice(&buf);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out
    }

    fn link(name: &str, flags: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.flags = flags;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l
    }

    #[test]
    fn carrier_is_up_and_lower_up_and_deletion_is_loss() {
        let data = datagram(vec![
            RouteNetlinkMessage::NewLink(link("wan0", LinkFlags::Up | LinkFlags::LowerUp)),
            RouteNetlinkMessage::NewLink(link("wan1", LinkFlags::Up)),
            RouteNetlinkMessage::DelLink(link("wan2", LinkFlags::Up | LinkFlags::LowerUp)),
            RouteNetlinkMessage::NewLink(LinkMessage::default()),
        ]);
        let mut q = VecDeque::new();
        parse_links(&data, &mut q);
        let got: Vec<_> = q.into_iter().map(|e| (e.ifname, e.carrier)).collect();
        assert_eq!(
            got,
            vec![
                ("wan0".to_string(), true),
                ("wan1".to_string(), false),
                ("wan2".to_string(), false),
            ]
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let mut q = VecDeque::new();
        parse_links(&[1, 2, 3], &mut q);
        assert!(q.is_empty());
    }
}
