//! The in-process nf_tables backend: batches from [`crate::nft_netlink`]
//! sent on one netfilter netlink socket that stays open.
//!
//! The socket is kept because the kernel frees the objects a transaction
//! deleted (the old table of a replacement) after an RCU grace period, and
//! a netfilter socket that is closed waits for that work first
//! (`nft_rcv_nl_event`): every `nft` process that replaces a table pays it
//! on exit, 5-15 ms on this project's machines. Kept open, the socket never
//! waits, and the freeing happens in the kernel's own time.
//!
//! After a refused batch the socket is dropped, so answers still in flight
//! can never be read as those of the next batch.

use std::os::fd::AsFd;
use std::path::PathBuf;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::netns;
#[cfg(test)]
use super::rtnl::{NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSGERR_ATTR_MSG};
use super::rtnl::{align4, error_text, io_err};
use crate::dataplane::DataplaneError;
use crate::ir::{NFT_OWNER_COMMENT, NftTable, NftTableKey};
use crate::nft_backend::NftBackend;
use crate::nft_netlink::{self, Batch};

const NLMSG_ERROR: u16 = 2;
const RCVBUF: usize = 8 << 20;
const SNDBUF: usize = 32 << 20;
/// How long an answer may take before the batch counts as failed.
const ANSWER_TIMEOUT_SECS: i64 = 5;

/// A netfilter netlink socket that stays open for the life of its owner,
/// in the network namespace of the thread that created it. Both in-process
/// nft backends send their batches through one of these.
pub struct NetfilterSocket {
    netns: Option<PathBuf>,
    sock: Option<Socket>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NetfilterSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetfilterSocket")
            .field("netns", &self.netns)
            .field("open", &self.sock.is_some())
            .finish()
    }
}

impl Default for NetfilterSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl NetfilterSocket {
    /// Bound to the calling thread's network namespace; the socket itself
    /// opens on first use.
    pub fn new() -> Self {
        NetfilterSocket {
            netns: netns::current(),
            sock: None,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends one finalized batch (`bytes`, batch begin and end included)
    /// and reads the answers up to that of its last message asking for an
    /// ACK. The first
    /// refusal is the error, its context naming the object `object(seq)`
    /// says the refused message was about. A refusal or an I/O error drops
    /// the socket, so answers still in flight are never read as those of
    /// the next batch.
    pub fn send_batch(
        &mut self,
        bytes: &[u8],
        context: &str,
        object: impl Fn(u32) -> Option<String>,
    ) -> Result<(), DataplaneError> {
        let last_seq = last_acked_seq(bytes).ok_or_else(|| io_err(context, "an empty batch"))?;
        if self.netns.is_some() && netns::current() != self.netns {
            return Err(io_err(
                context,
                "refusing to program nftables from another network namespace",
            ));
        }
        let result = self.exchange(bytes, last_seq, context, &object);
        if result.is_err() {
            self.sock = None;
        }
        result
    }

    fn exchange(
        &mut self,
        bytes: &[u8],
        last_seq: u32,
        context: &str,
        object: &dyn Fn(u32) -> Option<String>,
    ) -> Result<(), DataplaneError> {
        if self.sock.is_none() {
            self.sock = Some(open(context)?);
        }
        let Some(sock) = self.sock.as_mut() else {
            return Err(io_err(context, "netfilter socket"));
        };
        let mut sent = 0;
        while sent < bytes.len() {
            sent += sock
                .send(bytes.get(sent..).unwrap_or_default(), 0)
                .map_err(|e| io_err(context, e))?;
        }
        loop {
            self.buf.clear();
            sock.recv(&mut self.buf, 0)
                .map_err(|e| io_err(context, e))?;
            for answer in answers(&self.buf) {
                if let Some((errno, message)) = answer.error {
                    let what = object(answer.seq).unwrap_or_else(|| "the batch".into());
                    return Err(DataplaneError::Netlink {
                        context: format!("{context}: {what}"),
                        message,
                        errno,
                    });
                }
                if answer.seq == last_seq {
                    return Ok(());
                }
            }
        }
    }
}

/// nf_tables over netlink in process, for the tables
/// [`nft_netlink::supports`] covers (EgressRouter tables: port maps,
/// balanced maps, hash maps, anonymous sets).
#[derive(Debug, Default)]
pub struct NfNetlink {
    sock: NetfilterSocket,
    seq: u32,
}

impl NfNetlink {
    /// A backend bound to the calling thread's network namespace.
    pub fn new() -> Self {
        NfNetlink {
            sock: NetfilterSocket::new(),
            seq: 1,
        }
    }

    fn send(&mut self, batch: &Batch, context: &str) -> Result<(), DataplaneError> {
        let used = u32::try_from(batch.objects.len() + 2).unwrap_or(u32::MAX);
        self.seq = self.seq.wrapping_add(used);
        self.sock.send_batch(&batch.bytes, context, |seq| {
            batch.object(seq).map(str::to_string)
        })
    }
}

fn open(context: &str) -> Result<Socket, DataplaneError> {
    use nix::sys::socket::{setsockopt, sockopt};
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io_err(context, e))?;
    sock.bind_auto().map_err(|e| io_err(context, e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_err(context, e))?;
    let fd = sock.as_fd();
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = sock.set_rx_buf_sz(RCVBUF);
    }
    let _ = setsockopt(&fd, sockopt::SndBufForce, &SNDBUF);
    let _ = setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(ANSWER_TIMEOUT_SECS, 0),
    );
    // Errors carry the kernel's explanation, and only the header of the
    // refused request (an element message can be tens of KiB).
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_cap_ack(true);
    Ok(sock)
}

/// Sequence number of the last message of a batch that asks for an ACK:
/// once its answer is read, the whole batch has been answered.
fn last_acked_seq(bytes: &[u8]) -> Option<u32> {
    let mut off = 0usize;
    let mut last = None;
    while off + 16 <= bytes.len() {
        let h = |i: usize| bytes.get(off + i).copied().unwrap_or(0);
        let len = u32::from_ne_bytes([h(0), h(1), h(2), h(3)]) as usize;
        let flags = u16::from_ne_bytes([h(6), h(7)]);
        if len < 16 {
            break;
        }
        if flags & nft_netlink::NLM_F_ACK != 0 {
            last = Some(u32::from_ne_bytes([h(8), h(9), h(10), h(11)]));
        }
        off += align4(len);
    }
    last
}

/// One answer of the kernel: an ACK (no error) or a refusal.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    seq: u32,
    /// Positive errno and the extack text (or the errno's description).
    error: Option<(i32, String)>,
}

/// The `NLMSG_ERROR` messages of a datagram, in order.
fn answers(buf: &[u8]) -> Vec<Answer> {
    let word = |at: usize| -> Option<u32> {
        buf.get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let half = |at: usize| -> Option<u16> {
        buf.get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let mut out = Vec::new();
    let mut off = 0usize;
    while let (Some(len), Some(ty), Some(flags), Some(seq)) =
        (word(off), half(off + 4), half(off + 6), word(off + 8))
    {
        let len = len as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        if ty == NLMSG_ERROR {
            let code = word(off + 16).map_or(0, |c| c as i32);
            let error = (code != 0).then(|| {
                let errno = code.abs();
                let after_code = buf.get(off + 20..off + len).unwrap_or_default();
                (errno, error_text(errno, flags, after_code))
            });
            out.push(Answer { seq, error });
        }
        off += align4(len);
    }
    out
}

impl NftBackend for NfNetlink {
    fn name(&self) -> &'static str {
        "nf-netlink"
    }

    fn supports(&self, table: &NftTable) -> Result<(), String> {
        nft_netlink::supports(table)
    }

    fn replace_table(&mut self, table: &NftTable) -> Result<(), DataplaneError> {
        let context = format!("nf-netlink replace table {} {}", table.family, table.name);
        let batch = nft_netlink::replace_batch(table, NFT_OWNER_COMMENT, self.seq)
            .map_err(DataplaneError::Unsupported)?;
        self.send(&batch, &context)
    }

    fn delete_table(&mut self, key: &NftTableKey) -> Result<(), DataplaneError> {
        let batch = nft_netlink::delete_batch(key, self.seq);
        self.send(&batch, &format!("nf-netlink delete table {key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_message(seq: u32, code: i32, flags: u16, extack: Option<&str>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&code.to_ne_bytes());
        // The echoed request header (capped).
        body.extend_from_slice(&16u32.to_ne_bytes());
        body.extend_from_slice(&[0u8; 12]);
        if let Some(text) = extack {
            let mut v = text.as_bytes().to_vec();
            v.push(0);
            let alen = 4 + v.len();
            body.extend_from_slice(&(alen as u16).to_ne_bytes());
            body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            body.extend_from_slice(&v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn acks_and_refusals_are_read_with_the_kernels_words() {
        let mut d = error_message(7, 0, NLM_F_CAPPED, None);
        d.extend(error_message(
            8,
            -2,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            Some("Could not process rule"),
        ));
        d.extend(error_message(9, -22, NLM_F_CAPPED, None));
        let a = answers(&d);
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[0],
            Answer {
                seq: 7,
                error: None
            }
        );
        assert_eq!(
            a[1],
            Answer {
                seq: 8,
                error: Some((2, "Could not process rule".into()))
            }
        );
        assert_eq!(a[2].seq, 9);
        assert_eq!(a[2].error.as_ref().map(|e| e.0), Some(22));
        assert!(a[2].error.as_ref().is_some_and(|e| e.1.contains("nvalid")));
    }

    #[test]
    fn a_batch_is_answered_once_its_last_acked_message_is() {
        let key = crate::ir::NftTable::new(crate::ir::NftFamily::Ip, "routerd_x").key();
        let batch = nft_netlink::delete_batch(&key, 41);
        // Batch begin 41 and end 43 ask for nothing; the delete (42) does.
        assert_eq!(last_acked_seq(&batch.bytes), Some(42));
        assert_eq!(last_acked_seq(&batch.bytes), batch.last_seq());
        assert_eq!(last_acked_seq(&[]), None);
    }

    #[test]
    fn a_truncated_datagram_yields_what_is_whole() {
        let mut d = error_message(1, 0, NLM_F_CAPPED, None);
        let whole = d.len();
        d.extend(error_message(2, 0, NLM_F_CAPPED, None));
        d.truncate(whole + 10);
        assert_eq!(answers(&d).len(), 1);
        assert!(answers(&[1, 2, 3]).is_empty());
    }
}
