//! Route evidence: the next hop, output device and preferred source the
//! kernel picks for a probe, asked the way routerd's
//! `ip -j route get <target> [mark 0x<m>] [from <src>] [oif <dev>]` asks,
//! but over rtnetlink directly (no `ip` process per probe).
//!
//! An operator asking "over which path did this probe go when it failed"
//! needs more than the bound device: with a mark the policy table decides
//! the next hop, and a missing rule silently sends the probe through the
//! main table. The lookup is best effort: any error leaves the route fields
//! empty and never changes the probe's result.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::binding::Binding;
use crate::evidence::Evidence;

/// Receive buffer size: an RTM_NEWLINK answer of a NIC with many VFs runs to
/// a few KiB; 64 KiB leaves room without a second read.
const RECV_BUF: usize = 64 * 1024;

/// What the kernel's route lookup chose for a probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteInfo {
    /// `RTA_GATEWAY` (or `RTA_VIA`); empty for an on-link target.
    pub next_hop: Option<IpAddr>,
    /// `RTA_OIF`, resolved to the kernel name.
    pub out_interface: Option<String>,
    /// `RTA_PREFSRC`, else `RTA_SRC`: the source address the kernel would
    /// use, which is what routerd records as `routeSource` (its
    /// `ip -j route get` parser reads `prefsrc`, falling back to `src`).
    pub source: Option<IpAddr>,
}

impl RouteInfo {
    /// Copies the route into `ev` where `ev` has no value yet: a prober that
    /// learnt something more precise keeps it.
    pub fn fill(&self, ev: &mut Evidence) {
        if ev.next_hop.is_none() {
            ev.next_hop = self.next_hop.map(|a| a.to_string());
        }
        if ev.out_interface.is_none() {
            ev.out_interface = self.out_interface.clone();
        }
        if ev.route_source.is_none() {
            ev.route_source = self.source.map(|a| a.to_string());
        }
    }
}

/// Asks the kernel which route a probe to `target` pinned by `binding` takes.
///
/// The probers call it inside the probe task, under the probe's deadline, so
/// an implementation may await but must not block the thread.
pub trait RouteLookup: Send + Sync + 'static {
    /// Looks the route up; an error leaves the route evidence empty.
    fn lookup(
        &self,
        target: IpAddr,
        binding: &Binding,
    ) -> impl Future<Output = io::Result<RouteInfo>> + Send;
}

/// No route lookups (tests, embedders without rtnetlink).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoutes;

impl RouteLookup for NoRoutes {
    async fn lookup(&self, _target: IpAddr, _binding: &Binding) -> io::Result<RouteInfo> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "route lookups disabled",
        ))
    }
}

/// Route lookups over an rtnetlink socket of our own.
///
/// The socket is opened on first use, so it lives in the network namespace
/// of the thread that runs the first probe: the namespace the probe sockets
/// are created in too (the daemon's). It is non-blocking and never awaited:
/// rtnetlink answers RTM_GETROUTE and RTM_GETLINK inside the `send` call
/// (the reply is queued before `send` returns), so one request and one read
/// take a few microseconds and a lookup cannot stall a tick. An empty read
/// is reported as an error rather than waited for. One socket is shared by
/// every probe behind a mutex held only for the synchronous exchange; a
/// socket error drops it and the next lookup opens a new one. Link names
/// are cached for a second (`LinkNames`); route answers are not, because
/// the evidence must show the route at probe time.
#[derive(Default)]
pub struct NetlinkRoutes {
    inner: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for NetlinkRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkRoutes").finish_non_exhaustive()
    }
}

struct Conn {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
    links: LinkNames,
}

/// Link names by ifindex, kept for [`LINK_NAME_TTL`].
///
/// Resolving a name costs an RTM_GETLINK whose answer is the whole link
/// (statistics included); at a thousand probes a second that doubled the
/// lookup's cost. The kernel does not reuse an ifindex until its counter
/// wraps (unless one is requested explicitly), so an entry can only be
/// wrong after a rename, and then for at most the TTL. A device that was deleted and created again (a PPP
/// redial) has a new ifindex: the kernel answers ENODEV for the old one and
/// the lookup retries with a fresh one.
#[derive(Default)]
struct LinkNames {
    by_index: HashMap<u32, String>,
    filled: Option<Instant>,
}

/// How long a link name is trusted without asking the kernel again.
const LINK_NAME_TTL: Duration = Duration::from_secs(1);

/// ENODEV (asm-generic/errno-base.h): no such device.
const ENODEV: i32 = 19;

impl LinkNames {
    fn expire(&mut self, now: Instant) {
        if self
            .filled
            .is_some_and(|t| now.saturating_duration_since(t) >= LINK_NAME_TTL)
        {
            self.by_index.clear();
            self.filled = None;
        }
    }

    fn insert(&mut self, index: u32, name: String, now: Instant) {
        self.filled.get_or_insert(now);
        self.by_index.insert(index, name);
    }

    fn index_of(&self, name: &str) -> Option<u32> {
        self.by_index
            .iter()
            .find_map(|(i, n)| (n == name).then_some(*i))
    }
}

impl NetlinkRoutes {
    /// A lookup that opens its socket on first use.
    pub fn new() -> NetlinkRoutes {
        NetlinkRoutes::default()
    }

    /// The synchronous lookup behind [`RouteLookup::lookup`].
    pub fn lookup_now(&self, target: IpAddr, binding: &Binding) -> io::Result<RouteInfo> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(Conn::open()?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(io::Error::other("rtnetlink socket unavailable"));
        };
        conn.links.expire(Instant::now());
        let mut r = conn.lookup(target, binding);
        if binding.device.is_some()
            && r.as_ref().is_err_and(|e| e.raw_os_error() == Some(ENODEV))
            && conn.links.filled.is_some()
        {
            // The cached ifindex may belong to a device that was recreated.
            conn.links = LinkNames::default();
            r = conn.lookup(target, binding);
        }
        if r.as_ref().is_err_and(|e| e.raw_os_error().is_none()) {
            // A protocol-level failure (no reply, garbage): start over with
            // a fresh socket. Kernel errors (ENETUNREACH, ENODEV) leave the
            // socket in a good state.
            *guard = None;
        }
        r
    }
}

impl RouteLookup for NetlinkRoutes {
    async fn lookup(&self, target: IpAddr, binding: &Binding) -> io::Result<RouteInfo> {
        self.lookup_now(target, binding)
    }
}

impl Conn {
    fn open() -> io::Result<Conn> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.set_non_blocking(true)?;
        Ok(Conn {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
            links: LinkNames::default(),
        })
    }

    fn lookup(&mut self, target: IpAddr, binding: &Binding) -> io::Result<RouteInfo> {
        let oif = match &binding.device {
            Some(dev) => Some((self.link_index(dev)?, dev.as_str())),
            None => None,
        };
        let request = route_request(target, binding, oif.map(|(i, _)| i));
        let RouteNetlinkMessage::NewRoute(reply) =
            self.exchange(RouteNetlinkMessage::GetRoute(request))?
        else {
            return Err(io::Error::other("unexpected answer to RTM_GETROUTE"));
        };
        let parsed = parse_route(&reply);
        let out_interface = match (parsed.oif, oif) {
            (Some(i), Some((bound, dev))) if i == bound => Some(dev.to_string()),
            // Best effort: a link that vanished between the two requests
            // only loses the name.
            (Some(i), _) => self.link_name(i).ok(),
            (None, _) => None,
        };
        Ok(RouteInfo {
            next_hop: parsed.gateway,
            out_interface,
            source: parsed.source,
        })
    }

    fn link_index(&mut self, name: &str) -> io::Result<u32> {
        if let Some(i) = self.links.index_of(name) {
            return Ok(i);
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let link = self.get_link(m)?;
        self.links.insert(
            link.0,
            link.1.unwrap_or_else(|| name.to_string()),
            Instant::now(),
        );
        Ok(link.0)
    }

    fn link_name(&mut self, index: u32) -> io::Result<String> {
        if let Some(n) = self.links.by_index.get(&index) {
            return Ok(n.clone());
        }
        let mut m = LinkMessage::default();
        m.header.index = index;
        let (i, name) = self.get_link(m)?;
        let name = name.ok_or_else(|| io::Error::other("link without a name"))?;
        self.links.insert(i, name.clone(), Instant::now());
        Ok(name)
    }

    /// RTM_GETLINK: the link's index and name.
    fn get_link(&mut self, m: LinkMessage) -> io::Result<(u32, Option<String>)> {
        let RouteNetlinkMessage::NewLink(l) = self.exchange(RouteNetlinkMessage::GetLink(m))?
        else {
            return Err(io::Error::other("unexpected answer to RTM_GETLINK"));
        };
        let name = l.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n),
            _ => None,
        });
        Ok((l.header.index, name))
    }

    /// One request, one answer. Answers to other sequence numbers (left
    /// over from an earlier failed exchange) are skipped.
    fn exchange(&mut self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.socket.send(&out, 0)?;
        // The kernel queued its answer during `send`; a few reads cover
        // stale datagrams ahead of it.
        for _ in 0..8 {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no rtnetlink answer",
                    ));
                }
                Err(e) => return Err(io::Error::other(e)),
            }
            if let Some(r) = answer(&self.buf, seq) {
                return r;
            }
        }
        Err(io::Error::other("no rtnetlink answer with our sequence"))
    }
}

/// The RTM_GETROUTE request `ip route get` sends: the destination as a host
/// route, plus `mark`, `from` and `oif` when the probe socket has them. A
/// source of the other family than the target is left out, as the probe
/// sockets leave it unbound.
pub(crate) fn route_request(target: IpAddr, binding: &Binding, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    let full = if target.is_ipv4() { 32 } else { 128 };
    m.header.address_family = if target.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = full;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(target)));
    if let Some(src) = binding
        .source_address
        .filter(|s| s.is_ipv4() == target.is_ipv4())
    {
        m.header.source_prefix_length = full;
        m.attributes
            .push(RouteAttribute::Source(RouteAddress::from(src)));
    }
    if let Some(mark) = binding.mark.filter(|m| *m != 0) {
        m.attributes.push(RouteAttribute::Mark(mark));
    }
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    m
}

/// The parts of an RTM_NEWROUTE answer that make route evidence.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedRoute {
    pub(crate) gateway: Option<IpAddr>,
    pub(crate) oif: Option<u32>,
    pub(crate) source: Option<IpAddr>,
}

pub(crate) fn parse_route(m: &RouteMessage) -> ParsedRoute {
    let mut p = ParsedRoute::default();
    let mut src = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Gateway(g) => p.gateway = ip(g).or(p.gateway),
            RouteAttribute::Via(RouteVia::Inet(a)) if p.gateway.is_none() => {
                p.gateway = Some(IpAddr::V4(*a));
            }
            RouteAttribute::Via(RouteVia::Inet6(a)) if p.gateway.is_none() => {
                p.gateway = Some(IpAddr::V6(*a));
            }
            RouteAttribute::Oif(i) => p.oif = Some(*i),
            RouteAttribute::PrefSource(a) => p.source = ip(a),
            RouteAttribute::Source(a) => src = ip(a),
            _ => {}
        }
    }
    p.source = p.source.or(src);
    p
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Finds the answer to `seq` in one datagram: the message, or the kernel's
/// error (`ENETUNREACH` for no route, `ENODEV` for an unknown device).
/// `None` when the datagram holds nothing for `seq`.
pub(crate) fn answer(data: &[u8], seq: u32) -> Option<io::Result<RouteNetlinkMessage>> {
    let mut offset = 0;
    while offset < data.len() {
        let rest = data.get(offset..)?;
        let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest) {
            Ok(m) => m,
            Err(e) => return Some(Err(io::Error::other(e.to_string()))),
        };
        let len = msg.header.length as usize;
        if len == 0 {
            return None;
        }
        if msg.header.sequence_number == seq {
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => return Some(Ok(m)),
                NetlinkPayload::Error(e) if e.code.is_some() => return Some(Err(e.to_io())),
                _ => {}
            }
        }
        offset += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::ErrorMessage;
    use std::num::NonZeroI32;

    fn datagram(seq: u32, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, payload);
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        buf
    }

    fn reply(attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 32;
        m.header.table = 100;
        m.attributes = attrs;
        m
    }

    #[test]
    fn parses_an_emitted_reply() {
        let m = reply(vec![
            RouteAttribute::Table(100),
            RouteAttribute::Destination(RouteAddress::Inet([203, 0, 113, 10].into())),
            RouteAttribute::Oif(7),
            RouteAttribute::PrefSource(RouteAddress::Inet([192, 0, 2, 1].into())),
            RouteAttribute::Gateway(RouteAddress::Inet([192, 0, 2, 2].into())),
            RouteAttribute::Mark(0x10),
        ]);
        // Another answer first (a stale one), then ours, in one datagram.
        let mut data = datagram(
            6,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(reply(vec![]))),
        );
        data.extend(datagram(
            7,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)),
        ));
        let got = match answer(&data, 7) {
            Some(Ok(RouteNetlinkMessage::NewRoute(r))) => parse_route(&r),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            got,
            ParsedRoute {
                gateway: Some("192.0.2.2".parse().unwrap()),
                oif: Some(7),
                source: Some("192.0.2.1".parse().unwrap()),
            }
        );
        assert!(answer(&data, 8).is_none());
    }

    #[test]
    fn on_link_v6_reply_and_src_fallback() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.attributes = vec![
            RouteAttribute::Source(RouteAddress::Inet6("2001:db8::1".parse().unwrap())),
            RouteAttribute::Oif(3),
        ];
        let data = datagram(
            1,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)),
        );
        let Some(Ok(RouteNetlinkMessage::NewRoute(r))) = answer(&data, 1) else {
            panic!("no answer");
        };
        let p = parse_route(&r);
        assert_eq!(p.gateway, None);
        assert_eq!(p.oif, Some(3));
        assert_eq!(p.source, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn kernel_errors_and_garbage_are_errors() {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-101); // ENETUNREACH
        let data = datagram(3, NetlinkPayload::Error(e));
        let err = match answer(&data, 3) {
            Some(Err(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(err.raw_os_error(), Some(101));
        assert!(matches!(answer(&[1, 2, 3, 4, 5], 1), Some(Err(_)) | None));
    }

    #[test]
    fn request_carries_mark_source_and_oif() {
        let b = Binding {
            mark: Some(0x10),
            device: Some("wan0".into()),
            source_address: Some("192.0.2.1".parse().unwrap()),
            require_dslite: false,
        };
        let m = route_request("203.0.113.10".parse().unwrap(), &b, Some(4));
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 32);
        assert_eq!(m.header.source_prefix_length, 32);
        assert!(m.attributes.contains(&RouteAttribute::Mark(0x10)));
        assert!(m.attributes.contains(&RouteAttribute::Oif(4)));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Source(RouteAddress::Inet(
                    [192, 0, 2, 1].into()
                )))
        );
        // An IPv4 source is not used for an IPv6 target; mark 0 is no mark.
        let b = Binding { mark: Some(0), ..b };
        let m = route_request("2001:db8::9".parse().unwrap(), &b, None);
        assert_eq!(m.header.source_prefix_length, 0);
        assert_eq!(m.attributes.len(), 1);
    }

    #[test]
    fn fill_keeps_what_the_prober_knew() {
        let mut ev = Evidence {
            out_interface: Some("pa0".into()),
            ..Evidence::default()
        };
        RouteInfo {
            next_hop: Some("192.0.2.2".parse().unwrap()),
            out_interface: Some("ma0".into()),
            source: None,
        }
        .fill(&mut ev);
        assert_eq!(ev.next_hop.as_deref(), Some("192.0.2.2"));
        assert_eq!(ev.out_interface.as_deref(), Some("pa0"));
        assert_eq!(ev.route_source, None);
    }
}
