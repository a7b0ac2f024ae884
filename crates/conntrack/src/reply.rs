//! Reading ctnetlink replies: only the netlink headers and error codes.
//!
//! A flush needs to know three things from the kernel: how many entries a
//! filtered dump returned, when the dump ended, and whether a request was
//! acknowledged or refused. None of that needs the entries' attributes, so
//! the walker reads headers only (16 bytes each, plus the 4-byte error code
//! of `NLMSG_ERROR` and `NLMSG_DONE`). That keeps counting 10,000 entries
//! cheap and leaves little to get wrong; the parser is fuzzed by proptest
//! (never panics, never loops, never reads past the datagram).

use crate::ConntrackError;

/// `NLMSG_ERROR`: an acknowledgement (code 0) or a refusal.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// A conntrack entry in a dump: `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW`.
pub const CT_ENTRY: u16 = 1 << 8;

const HEADER_LEN: usize = 16;

/// What one netlink message of a reply says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// One conntrack entry of a dump.
    Entry,
    /// The dump ended; a non-zero value is the errno it ended with.
    Done(i32),
    /// The request was carried out.
    Ack,
    /// The request was refused with this (positive) errno.
    Error(i32),
    /// Anything else (another message type); ignored.
    Other(u16),
}

/// One message: the request it answers (sequence number) and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The reply.
    pub reply: Reply,
}

/// The messages of one received datagram, in order. A message whose length
/// is impossible ends the walk with [`ConntrackError::Malformed`].
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { buf, failed: false }
}

/// Iterator of [`messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    buf: &'a [u8],
    failed: bool,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at + 4)?;
    Some(i32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, ConntrackError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let b = self.buf;
        let parsed = (|| {
            let len = usize::try_from(u32_at(b, 0)?).ok()?;
            if len < HEADER_LEN || len > b.len() {
                return None;
            }
            let kind = u16_at(b, 4)?;
            let seq = u32_at(b, 8)?;
            let payload = b.get(HEADER_LEN..len)?;
            let reply = match kind {
                NLMSG_ERROR => match i32_at(payload, 0)? {
                    0 => Reply::Ack,
                    code => Reply::Error(code.checked_neg().unwrap_or(i32::MAX)),
                },
                // Old kernels send DONE without a code.
                NLMSG_DONE => {
                    Reply::Done(i32_at(payload, 0).map_or(0, |c| c.checked_neg().unwrap_or(0)))
                }
                CT_ENTRY => Reply::Entry,
                other => Reply::Other(other),
            };
            // Messages are 4-byte aligned; the last one may lack padding.
            let next = len.div_ceil(4).saturating_mul(4).min(b.len());
            Some((Message { seq, reply }, next))
        })();
        match parsed {
            Some((m, next)) => {
                self.buf = self.buf.get(next..).unwrap_or_default();
                Some(Ok(m))
            }
            None => {
                self.failed = true;
                Some(Err(ConntrackError::Malformed(format!(
                    "impossible netlink message in {} byte(s)",
                    b.len()
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = HEADER_LEN + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn all(buf: &[u8]) -> Vec<Result<Message, String>> {
        messages(buf)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn a_dump_is_entries_then_done() {
        let mut buf = Vec::new();
        buf.extend(msg(CT_ENTRY, 7, &[1, 2, 3, 4, 5]));
        buf.extend(msg(CT_ENTRY, 7, &[0; 40]));
        buf.extend(msg(NLMSG_DONE, 7, &0i32.to_ne_bytes()));
        let got = all(&buf);
        assert_eq!(
            got,
            [
                Ok(Message {
                    seq: 7,
                    reply: Reply::Entry
                }),
                Ok(Message {
                    seq: 7,
                    reply: Reply::Entry
                }),
                Ok(Message {
                    seq: 7,
                    reply: Reply::Done(0)
                }),
            ]
        );
    }

    #[test]
    fn ack_and_refusal() {
        let mut refusal = (-95i32).to_ne_bytes().to_vec();
        refusal.extend_from_slice(&[0; 16]);
        let mut buf = msg(NLMSG_ERROR, 3, &0i32.to_ne_bytes());
        buf.extend(msg(NLMSG_ERROR, 4, &refusal));
        let got = all(&buf);
        assert_eq!(
            got,
            [
                Ok(Message {
                    seq: 3,
                    reply: Reply::Ack
                }),
                Ok(Message {
                    seq: 4,
                    reply: Reply::Error(95)
                }),
            ]
        );
    }

    #[test]
    fn done_without_code_and_unknown_types() {
        let mut buf = msg(NLMSG_DONE, 1, &[]);
        buf.extend(msg(0x1234, 1, &[9]));
        assert_eq!(
            all(&buf),
            [
                Ok(Message {
                    seq: 1,
                    reply: Reply::Done(0)
                }),
                Ok(Message {
                    seq: 1,
                    reply: Reply::Other(0x1234)
                }),
            ]
        );
    }

    #[test]
    fn impossible_lengths_end_the_walk() {
        // Shorter than a header.
        let mut short = msg(CT_ENTRY, 1, &[]);
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        let got = all(&short);
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        // Longer than the datagram, after one good message.
        let mut buf = msg(CT_ENTRY, 1, &[]);
        let mut long = msg(CT_ENTRY, 1, &[]);
        long[0..4].copy_from_slice(&4096u32.to_ne_bytes());
        buf.extend(long);
        let got = all(&buf);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok() && got[1].is_err());
        // An error message too short to hold its code.
        let got = all(&msg(NLMSG_ERROR, 1, &[0, 0]));
        assert!(got[0].is_err());
    }

    #[test]
    fn unpadded_last_message() {
        let mut buf = msg(CT_ENTRY, 1, &[]);
        let mut last = msg(CT_ENTRY, 1, &[1]);
        last.truncate(HEADER_LEN + 1);
        buf.extend(last);
        assert_eq!(all(&buf).len(), 2);
    }

    proptest! {
        /// Arbitrary bytes: no panic, and the walk ends within one message
        /// per header's worth of input plus the error.
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let n = messages(&buf).count();
            prop_assert!(n <= buf.len() / HEADER_LEN + 1);
        }

        /// Well-formed sequences of messages read back as written.
        #[test]
        fn round_trip(kinds in proptest::collection::vec((0u8..3, any::<u32>(), 0usize..24), 0..40)) {
            let mut buf = Vec::new();
            let mut want = Vec::new();
            for (k, seq, extra) in &kinds {
                let (kind, payload, reply) = match k {
                    0 => (CT_ENTRY, vec![0u8; *extra], Reply::Entry),
                    1 => (NLMSG_DONE, 0i32.to_ne_bytes().to_vec(), Reply::Done(0)),
                    _ => (NLMSG_ERROR, 0i32.to_ne_bytes().to_vec(), Reply::Ack),
                };
                buf.extend(msg(kind, *seq, &payload));
                want.push(Ok(Message { seq: *seq, reply }));
            }
            prop_assert_eq!(all(&buf), want);
        }
    }
}
