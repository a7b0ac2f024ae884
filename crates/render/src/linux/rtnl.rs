//! A small synchronous rtnetlink client: dumps, and pipelined request
//! batches whose errors come back with the kernel's extack text.
//!
//! deps.md §3: requests are sent without `NLM_F_ACK` except the last one
//! (the barrier); rtnetlink handles a `sendmsg` synchronously, so once the
//! barrier's ACK arrives every earlier error has been queued. A large
//! receive buffer keeps those errors from being dropped.

use std::os::fd::AsFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::dataplane::DataplaneError;

/// Receive buffer asked for with `SO_RCVBUFFORCE` (root); without the
/// privilege the kernel's `rmem_max` applies.
const RCVBUF: usize = 32 << 20;
const SNDBUF: usize = 8 << 20;
/// Bytes of requests per `send` call.
const SEND_CHUNK: usize = 256 << 10;
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;

/// A refused request: positive errno and the kernel's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NlError {
    pub(crate) errno: i32,
    pub(crate) message: String,
}

impl NlError {
    pub(crate) fn into_dataplane(self, context: String) -> DataplaneError {
        DataplaneError::Netlink {
            context,
            message: self.message,
            errno: self.errno,
        }
    }
}

pub(crate) fn io_err(context: &str, e: impl std::fmt::Display) -> DataplaneError {
    DataplaneError::Io {
        context: context.to_string(),
        message: e.to_string(),
    }
}

/// An rtnetlink socket in the network namespace of the thread that opened
/// it.
pub(crate) struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub(crate) fn open() -> Result<Self, DataplaneError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| io_err("netlink socket", e))?;
        sock.bind_auto().map_err(|e| io_err("netlink bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("netlink connect", e))?;
        // Error strings, short ACKs, table-filtered dumps; all optional.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        set_buffers(&sock);
        Ok(Rtnl {
            sock,
            seq: 1,
            buf: Vec::with_capacity(1 << 20),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32, out: &mut Vec<u8>) {
        let mut h = NetlinkHeader::default();
        h.flags = flags;
        h.sequence_number = seq;
        let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let start = out.len();
        let len = m.buffer_len();
        out.resize(start + align4(len), 0);
        if let Some(slot) = out.get_mut(start..start + len) {
            m.serialize(slot);
        }
    }

    fn recv(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, DataplaneError> {
        self.buf.clear();
        self.sock
            .recv(&mut self.buf, 0)
            .map_err(|e| io_err("netlink recv", e))?;
        Ok(parse_datagram(&self.buf))
    }

    /// A dump request (`ip route show table all`, `ip rule show`, ...).
    pub(crate) fn dump(
        &mut self,
        request: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, DataplaneError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        Self::encode(request, NLM_F_REQUEST | NLM_F_DUMP, seq, &mut out);
        self.sock
            .send(&out, 0)
            .map_err(|e| io_err("netlink send", e))?;
        let mut msgs = Vec::new();
        loop {
            for m in self.recv()? {
                if m.header.sequence_number != seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(i) => msgs.push(i),
                    NetlinkPayload::Done(_) => return Ok(msgs),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        let err = nl_error(m.header.flags, &e);
                        return Err(err.into_dataplane("netlink dump".into()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends `requests` pipelined (each with its own flags plus
    /// `NLM_F_REQUEST`) and returns one result per request.
    pub(crate) fn batch(
        &mut self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Result<(), NlError>>, DataplaneError> {
        let n = requests.len();
        let mut results: Vec<Result<(), NlError>> = vec![Ok(()); n];
        if n == 0 {
            return Ok(results);
        }
        let first_seq = self.seq.wrapping_add(1);
        let mut chunk = Vec::with_capacity(SEND_CHUNK + 4096);
        let mut last_seq = first_seq;
        for (i, (msg, flags)) in requests.into_iter().enumerate() {
            let seq = self.next_seq();
            last_seq = seq;
            let ack = if i + 1 == n { NLM_F_ACK } else { 0 };
            Self::encode(msg, NLM_F_REQUEST | flags | ack, seq, &mut chunk);
            if chunk.len() >= SEND_CHUNK || i + 1 == n {
                self.sock
                    .send(&chunk, 0)
                    .map_err(|e| io_err("netlink send", e))?;
                chunk.clear();
            }
        }
        loop {
            for m in self.recv()? {
                let seq = m.header.sequence_number;
                let idx = seq.wrapping_sub(first_seq) as usize;
                if idx >= n {
                    continue;
                }
                if let NetlinkPayload::Error(e) = &m.payload {
                    if e.code.is_some()
                        && let Some(slot) = results.get_mut(idx)
                    {
                        *slot = Err(nl_error(m.header.flags, e));
                    }
                    if seq == last_seq {
                        return Ok(results);
                    }
                }
            }
        }
    }

    /// Subscribes to multicast groups (`RTNLGRP_*` numbers).
    pub(crate) fn subscribe(&mut self, groups: &[u32]) -> Result<(), DataplaneError> {
        for g in groups {
            self.sock
                .add_membership(*g)
                .map_err(|e| io_err("netlink add_membership", e))?;
        }
        Ok(())
    }

    /// Blocks for the next datagram of notifications.
    pub(crate) fn recv_events(
        &mut self,
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, std::io::Error> {
        self.buf.clear();
        self.sock.recv(&mut self.buf, 0)?;
        Ok(parse_datagram(&self.buf))
    }
}

fn set_buffers(sock: &Socket) {
    use nix::sys::socket::{setsockopt, sockopt};
    let fd = sock.as_fd();
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = sock.set_rx_buf_sz(RCVBUF);
    }
    let _ = setsockopt(&fd, sockopt::SndBufForce, &SNDBUF);
}

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a datagram into messages (walking `nlmsg_len`, 4-aligned).
fn parse_datagram(buf: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 16 <= buf.len() {
        let Some(len_bytes) = buf.get(off..off + 4) else {
            break;
        };
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
        off += align4(len);
    }
    out
}

/// errno plus the extack message (`NLMSGERR_ATTR_MSG`) when the kernel sent
/// one.
fn nl_error(outer_flags: u16, e: &netlink_packet_core::ErrorMessage) -> NlError {
    let errno = e.raw_code().abs();
    NlError {
        errno,
        message: error_text(errno, outer_flags, &e.header),
    }
}

/// The text of a netlink error: the kernel's extack message when the
/// answer carries one (`NLM_F_ACK_TLVS`), else the errno's description.
/// `after_code` is what follows the error code: the echoed request (its
/// header only when `NLM_F_CAPPED`), then the TLVs.
pub(crate) fn error_text(errno: i32, outer_flags: u16, after_code: &[u8]) -> String {
    let mut message = String::new();
    if outer_flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if outer_flags & NLM_F_CAPPED != 0 {
            16
        } else {
            after_code
                .get(0..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .unwrap_or(16)
        };
        let mut off = align4(echoed);
        while off + 4 <= after_code.len() {
            let Some(h) = after_code.get(off..off + 4) else {
                break;
            };
            let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
            let ty = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
            if len < 4 || off + len > after_code.len() {
                break;
            }
            if ty == NLMSGERR_ATTR_MSG
                && let Some(v) = after_code.get(off + 4..off + len)
            {
                message = String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string();
            }
            off += align4(len);
        }
    }
    if message.is_empty() {
        message = std::io::Error::from_raw_os_error(errno).to_string();
    }
    message
}
