//! The kernel's FOU ports (`ip fou add|del port P ipproto N [gue]`), over
//! generic netlink: what receives the UDP-encapsulated packets of a fou or
//! gue tunnel. A tunnel link alone only sends.
//!
//! netlink-packet-route has no generic netlink, and the family needs two
//! requests of a few attributes each, so they are encoded here (message
//! layout: `include/uapi/linux/{netlink,genetlink,fou}.h`). The functions
//! that build and read messages are pure and unit-tested; [`Fou`] does the
//! socket I/O in the calling thread's network namespace.

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::rtnl::io_err;
use crate::dataplane::DataplaneError;
use crate::ir::{UdpEncap, UdpEncapKind};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const FOU_GENL_VERSION: u8 = 1;
const FOU_CMD_ADD: u8 = 1;
const FOU_CMD_DEL: u8 = 2;
const FOU_ATTR_PORT: u16 = 1;
const FOU_ATTR_AF: u16 = 2;
const FOU_ATTR_IPPROTO: u16 = 3;
const FOU_ATTR_TYPE: u16 = 4;
const FOU_ENCAP_DIRECT: u8 = 1;
const FOU_ENCAP_GUE: u8 = 2;
const AF_INET: u8 = 2;
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;

/// One FOU port: where, for which inner protocol, and which encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FouPort {
    pub(crate) port: u16,
    /// Inner IP protocol: 4 (ipip) or 47 (gre).
    pub(crate) ipproto: u8,
    pub(crate) kind: UdpEncapKind,
}

impl FouPort {
    /// The port a tunnel with `encap` receives on.
    pub(crate) fn of(encap: &UdpEncap, ipproto: u8) -> FouPort {
        FouPort {
            port: encap.listen_port(),
            ipproto,
            kind: encap.kind,
        }
    }

    fn describe(&self) -> String {
        let gue = match self.kind {
            UdpEncapKind::Gue => " gue",
            UdpEncapKind::Fou => "",
        };
        format!(
            "ip fou add port {} ipproto {}{gue}",
            self.port, self.ipproto
        )
    }
}

fn attr(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// A generic netlink request: `nlmsghdr`, `genlmsghdr`, attributes.
fn request(family: u16, cmd: u8, version: u8, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[cmd, version, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// `CTRL_CMD_GETFAMILY` for the `fou` family.
pub(crate) fn get_family_request(seq: u32) -> Vec<u8> {
    let mut a = Vec::new();
    attr(&mut a, CTRL_ATTR_FAMILY_NAME, b"fou\0");
    request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, seq, &a)
}

/// `FOU_CMD_ADD` (or `_DEL`) of `p` in family `family`.
pub(crate) fn port_request(family: u16, add: bool, p: &FouPort, seq: u32) -> Vec<u8> {
    let mut a = Vec::new();
    attr(&mut a, FOU_ATTR_PORT, &p.port.to_be_bytes());
    attr(&mut a, FOU_ATTR_AF, &[AF_INET]);
    if add {
        attr(&mut a, FOU_ATTR_IPPROTO, &[p.ipproto]);
        let ty = match p.kind {
            UdpEncapKind::Fou => FOU_ENCAP_DIRECT,
            UdpEncapKind::Gue => FOU_ENCAP_GUE,
        };
        attr(&mut a, FOU_ATTR_TYPE, &[ty]);
    }
    let cmd = if add { FOU_CMD_ADD } else { FOU_CMD_DEL };
    request(family, cmd, FOU_GENL_VERSION, seq, &a)
}

/// What the kernel answered one request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `NLMSG_ERROR` with 0: done.
    Ack,
    /// `NLMSG_ERROR` with a positive errno.
    Error(i32),
    /// The family id from a `CTRL_CMD_NEWFAMILY` answer.
    Family(u16),
    /// Nothing this client understands.
    Other,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The first message of a datagram.
pub(crate) fn parse_reply(b: &[u8]) -> Reply {
    let (Some(len), Some(ty)) = (u32_at(b, 0), u16_at(b, 4)) else {
        return Reply::Other;
    };
    let end = (len as usize).min(b.len());
    if ty == NLMSG_ERROR {
        return match u32_at(b, 16).map(|e| e as i32) {
            Some(0) => Reply::Ack,
            Some(e) => Reply::Error(-e),
            None => Reply::Other,
        };
    }
    if ty != GENL_ID_CTRL {
        return Reply::Other;
    }
    // Attributes after nlmsghdr (16) and genlmsghdr (4).
    let mut at = 20;
    while at + 4 <= end {
        let (Some(alen), Some(aty)) = (u16_at(b, at), u16_at(b, at + 2)) else {
            break;
        };
        let alen = alen as usize;
        if alen < 4 {
            break;
        }
        if aty & 0x3fff == CTRL_ATTR_FAMILY_ID
            && let Some(id) = u16_at(b, at + 4)
        {
            return Reply::Family(id);
        }
        at += (alen + 3) & !3;
    }
    Reply::Other
}

/// A generic netlink socket of the calling thread's namespace.
pub(crate) struct Fou {
    sock: Socket,
    seq: u32,
}

impl Fou {
    pub(crate) fn open() -> Result<Fou, DataplaneError> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(|e| io_err("genetlink socket", e))?;
        sock.bind_auto().map_err(|e| io_err("genetlink bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("genetlink connect", e))?;
        Ok(Fou { sock, seq: 1 })
    }

    fn call(&mut self, msg: Vec<u8>, context: &str) -> Result<Reply, DataplaneError> {
        self.sock.send(&msg, 0).map_err(|e| io_err(context, e))?;
        // The answer, then (for a family request) the ACK.
        let mut buf = Vec::with_capacity(8192);
        self.sock
            .recv(&mut buf, 0)
            .map_err(|e| io_err(context, e))?;
        let reply = parse_reply(&buf);
        if matches!(reply, Reply::Family(_)) {
            let mut ack = Vec::with_capacity(8192);
            let _ = self.sock.recv(&mut ack, 0);
        }
        Ok(reply)
    }

    fn family(&mut self, context: &str) -> Result<u16, DataplaneError> {
        self.seq = self.seq.wrapping_add(1);
        match self.call(get_family_request(self.seq), context)? {
            Reply::Family(id) => Ok(id),
            Reply::Error(errno) => Err(DataplaneError::Netlink {
                context: context.to_string(),
                message: format!(
                    "the kernel has no FOU support (generic netlink family \"fou\" not registered: {}); the fou module is needed to receive fou/gue tunnels",
                    std::io::Error::from_raw_os_error(errno)
                ),
                errno,
            }),
            _ => Err(io_err(
                context,
                "unexpected answer to the fou family request",
            )),
        }
    }

    /// Opens `p`: `true` when this call opened it, `false` when a port
    /// was already open there (left as it is).
    pub(crate) fn add(&mut self, p: &FouPort) -> Result<bool, DataplaneError> {
        let context = p.describe();
        let family = self.family(&context)?;
        self.seq = self.seq.wrapping_add(1);
        match self.call(port_request(family, true, p, self.seq), &context)? {
            Reply::Ack => Ok(true),
            Reply::Error(EEXIST) => Ok(false),
            Reply::Error(errno) => Err(DataplaneError::Netlink {
                context,
                message: std::io::Error::from_raw_os_error(errno).to_string(),
                errno,
            }),
            _ => Err(io_err(&context, "unexpected answer")),
        }
    }

    /// Closes port `port`; one already gone is fine.
    pub(crate) fn delete(&mut self, p: &FouPort) -> Result<(), DataplaneError> {
        let context = format!("ip fou del port {}", p.port);
        let family = self.family(&context)?;
        self.seq = self.seq.wrapping_add(1);
        match self.call(port_request(family, false, p, self.seq), &context)? {
            Reply::Ack | Reply::Error(ENOENT) => Ok(()),
            Reply::Error(errno) => Err(DataplaneError::Netlink {
                context,
                message: std::io::Error::from_raw_os_error(errno).to_string(),
                errno,
            }),
            _ => Err(io_err(&context, "unexpected answer")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_family_request_names_fou_in_a_padded_attribute() {
        let m = get_family_request(7);
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32_at(&m, 0), Some(28));
        assert_eq!(u16_at(&m, 4), Some(GENL_ID_CTRL));
        assert_eq!(u16_at(&m, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(u32_at(&m, 8), Some(7));
        assert_eq!(m[16], CTRL_CMD_GETFAMILY);
        assert_eq!(&m[20..28], &[8, 0, 2, 0, b'f', b'o', b'u', 0]);
    }

    #[test]
    fn an_add_carries_the_port_big_endian_and_the_encapsulation() {
        let p = FouPort {
            port: 5555,
            ipproto: 4,
            kind: UdpEncapKind::Gue,
        };
        let m = port_request(0x1c, true, &p, 3);
        assert_eq!(u16_at(&m, 4), Some(0x1c));
        assert_eq!(m[16], FOU_CMD_ADD);
        assert_eq!(m[17], FOU_GENL_VERSION);
        // port: len 6 padded to 8, value 0x15b3 in network order
        assert_eq!(&m[20..26], &[6, 0, 1, 0, 0x15, 0xb3]);
        assert_eq!(&m[28..33], &[5, 0, 2, 0, AF_INET]);
        assert_eq!(&m[36..41], &[5, 0, 3, 0, 4]);
        assert_eq!(&m[44..49], &[5, 0, 4, 0, FOU_ENCAP_GUE]);
        assert_eq!(m.len(), 52);
        assert_eq!(u32_at(&m, 0), Some(52));
        // A delete names the port and family only.
        let d = port_request(0x1c, false, &p, 4);
        assert_eq!(d[16], FOU_CMD_DEL);
        assert_eq!(d.len(), 20 + 8 + 8);
    }

    #[test]
    fn replies_are_read_as_ack_errno_or_family() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(parse_reply(&ack), Reply::Ack);
        ack[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(parse_reply(&ack), Reply::Error(ENOENT));

        let mut fam = Vec::new();
        fam.extend_from_slice(&36u32.to_ne_bytes());
        fam.extend_from_slice(&GENL_ID_CTRL.to_ne_bytes());
        fam.extend_from_slice(&[0; 10]);
        fam.extend_from_slice(&[1, 2, 0, 0]);
        // FAMILY_NAME "fou", then FAMILY_ID 0x1f
        fam.extend_from_slice(&[8, 0, 2, 0, b'f', b'o', b'u', 0]);
        fam.extend_from_slice(&[6, 0, 1, 0, 0x1f, 0, 0, 0]);
        assert_eq!(parse_reply(&fam), Reply::Family(0x1f));
        assert_eq!(parse_reply(&[1, 2, 3]), Reply::Other);
    }
}
