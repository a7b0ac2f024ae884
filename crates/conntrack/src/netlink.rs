//! [`ConntrackFlusher`] over ctnetlink (`NETLINK_NETFILTER`).
//!
//! A flush is three requests on one socket (docs/adr/0011):
//!
//! 1. a dump filtered by the kernel on `CTA_MARK`/`CTA_MARK_MASK`, counted
//!    (the kernel's flush answers with a bare ACK, and operators want to
//!    know how many connections a failover cut);
//! 2. `IPCTNL_MSG_CT_DELETE` without a tuple but with `CTA_MARK` and
//!    `CTA_MARK_MASK`: the kernel walks its table once and deletes exactly
//!    the entries that match (`ctnetlink_flush_conntrack` with a mark
//!    filter), so 10,000 entries cost one request, not 10,000;
//! 3. the same filtered dump again, to report entries that were (re)created
//!    with the mark in between.
//!
//! Requests are built with `netlink-packet-netfilter` (rust-netlink, on the
//! same `netlink-packet-core` 0.9 as the route stack); replies are read by
//! [`crate::reply`], which looks at headers and error codes only. The
//! socket belongs to the network namespace it was opened in, which is how
//! the tests flush inside a namespace.

use std::sync::Mutex;

use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::reply::{Reply, messages};
use crate::{ConntrackError, ConntrackFlusher, FlushReport, check_mark};

/// `CTA_MARK_MASK` (include/uapi/linux/netfilter/nfnetlink_conntrack.h);
/// netlink-packet-netfilter has no variant for it.
const CTA_MARK_MASK: u16 = 21;

/// Receive buffer: the kernel sends dump datagrams of up to 32 KiB (more
/// with large socket buffers); one that does not fit would be truncated.
const RECV_BUF: usize = 1 << 20;

/// Flushes by ct mark through ctnetlink in the network namespace it was
/// opened in.
#[derive(Debug)]
pub struct NetlinkFlusher {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ConntrackError {
    move |source| ConntrackError::Io { op, source }
}

impl NetlinkFlusher {
    /// Opens a ctnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, ConntrackError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io("socket"))?;
        sock.bind_auto().map_err(io("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(io("connect"))?;
        // Short ACKs: a refusal need not echo the request back.
        let _ = sock.set_cap_ack(true);
        Ok(NetlinkFlusher {
            inner: Mutex::new(Inner {
                sock,
                seq: 0,
                buf: Vec::with_capacity(RECV_BUF),
            }),
        })
    }

    /// How many entries carry `mark` under `mask` now.
    pub fn count_mark(&self, mark: u32, mask: u32) -> Result<u64, ConntrackError> {
        self.lock().count(mark, mask)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The socket holds no state a panic could leave half-written.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The mark filter both requests carry (values are big-endian on the wire).
fn filter(mark: u32, mask: u32) -> Vec<ConntrackAttribute> {
    vec![
        ConntrackAttribute::CtaMark(mark),
        ConntrackAttribute::Other(DefaultNla::new(CTA_MARK_MASK, mask.to_be_bytes().to_vec())),
    ]
}

/// Serializes one request. `AF_UNSPEC` with version 0: every family, so
/// IPv4 and IPv6 connections of the path go together.
pub(crate) fn encode(msg: ConntrackMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut h = NetlinkHeader::default();
    h.flags = flags;
    h.sequence_number = seq;
    let mut m = NetlinkMessage::new(
        h,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
            msg,
        )),
    );
    m.finalize();
    let mut out = vec![0; m.buffer_len()];
    m.serialize(&mut out);
    out
}

impl Inner {
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(
        &mut self,
        msg: ConntrackMessage,
        flags: u16,
        op: &'static str,
    ) -> Result<u32, ConntrackError> {
        let seq = self.next_seq();
        let bytes = encode(msg, flags, seq);
        self.sock.send(&bytes, 0).map_err(io(op))?;
        Ok(seq)
    }

    /// Reads replies to `seq` until `f` says the answer is complete.
    fn until(
        &mut self,
        seq: u32,
        op: &'static str,
        mut f: impl FnMut(Reply) -> Result<bool, ConntrackError>,
    ) -> Result<(), ConntrackError> {
        loop {
            self.buf.clear();
            self.sock.recv(&mut self.buf, 0).map_err(io(op))?;
            for m in messages(&self.buf) {
                let m = m?;
                // Left-overs of an earlier request that failed half-way.
                if m.seq != seq {
                    continue;
                }
                if f(m.reply)? {
                    return Ok(());
                }
            }
        }
    }

    fn count(&mut self, mark: u32, mask: u32) -> Result<u64, ConntrackError> {
        let op = "dump";
        let seq = self.send(
            ConntrackMessage::Get(filter(mark, mask)),
            NLM_F_REQUEST | NLM_F_DUMP,
            op,
        )?;
        let mut n = 0u64;
        self.until(seq, op, |r| match r {
            Reply::Entry => {
                n += 1;
                Ok(false)
            }
            Reply::Done(0) | Reply::Ack => Ok(true),
            Reply::Done(errno) | Reply::Error(errno) => Err(ConntrackError::Kernel { op, errno }),
            Reply::Other(_) => Ok(false),
        })?;
        Ok(n)
    }

    fn delete(&mut self, mark: u32, mask: u32) -> Result<(), ConntrackError> {
        let op = "flush";
        let seq = self.send(
            ConntrackMessage::Delete(filter(mark, mask)),
            NLM_F_REQUEST | NLM_F_ACK,
            op,
        )?;
        self.until(seq, op, |r| match r {
            Reply::Ack => Ok(true),
            // ENOENT: nothing matched (older kernels say so on a flush).
            Reply::Error(ENOENT) => Ok(true),
            Reply::Error(errno) | Reply::Done(errno) if errno != 0 => {
                Err(ConntrackError::Kernel { op, errno })
            }
            _ => Ok(false),
        })
    }
}

const ENOENT: i32 = 2;

impl ConntrackFlusher for NetlinkFlusher {
    fn flush_mark(&self, mark: u32, mask: u32) -> Result<FlushReport, ConntrackError> {
        check_mark(mark, mask)?;
        let mut inner = self.lock();
        let deleted = inner.count(mark, mask)?;
        inner.delete(mark, mask)?;
        let remaining = inner.count(mark, mask)?;
        Ok(FlushReport { deleted, remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delete request carries exactly the mark filter, big-endian, under
    /// ctnetlink's DELETE type: the kernel treats a DELETE without a tuple as
    /// a (filtered) flush, so a missing filter would flush everything.
    #[test]
    fn delete_request_bytes() {
        let b = encode(
            ConntrackMessage::Delete(filter(0x10, 0xffff_ffff)),
            NLM_F_REQUEST | NLM_F_ACK,
            9,
        );
        // nlmsghdr (16) + nfgenmsg (4) + CTA_MARK (8) + CTA_MARK_MASK (8).
        assert_eq!(b.len(), 36);
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 36);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), (1 << 8) | 2);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 9);
        // AF_UNSPEC, version 0, res_id 0.
        assert_eq!(&b[16..20], &[0, 0, 0, 0]);
        // CTA_MARK (8): len 8, value 0x10 big-endian.
        assert_eq!(u16::from_ne_bytes([b[20], b[21]]), 8);
        assert_eq!(u16::from_ne_bytes([b[22], b[23]]), 8);
        assert_eq!(&b[24..28], &0x10u32.to_be_bytes());
        // CTA_MARK_MASK (21).
        assert_eq!(u16::from_ne_bytes([b[28], b[29]]), 8);
        assert_eq!(u16::from_ne_bytes([b[30], b[31]]), CTA_MARK_MASK);
        assert_eq!(&b[32..36], &0xffff_ffffu32.to_be_bytes());
    }
}
