//! ICMP echo.
//!
//! An unprivileged datagram ("ping") socket is used where the namespace's
//! `net.ipv4.ping_group_range` allows it: the kernel then fills in the id
//! and checksum and hands us only our replies. A fresh namespace allows no
//! group (deps.md §5: EACCES even as root), so on a permission error we
//! fall back to a raw socket (CAP_NET_RAW), which sees every ICMP packet
//! in the namespace and must filter by id and sequence itself.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::io_failure;
use crate::check::ProbeSpec;
use crate::machine::ProbeReport;
use crate::runtime::socket::{SetupError, base_evidence, pin};

/// routerd's echo payload, kept so captures look the same.
const PAYLOAD: &[u8] = b"routerd-healthcheck";

/// Which kind of ICMP socket probes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpMode {
    /// `SOCK_DGRAM, IPPROTO_ICMP` (needs `ping_group_range`).
    Datagram,
    /// `SOCK_RAW` (needs CAP_NET_RAW).
    Raw,
}

const DGRAM: u8 = 1;
const RAW: u8 = 2;

/// The socket kind, decided on first use and remembered so every probe
/// does not retry a socket the namespace refuses.
#[derive(Debug, Default)]
pub(super) struct IcmpState {
    mode: AtomicU8,
    fixed: bool,
}

impl IcmpState {
    pub(super) fn fixed(mode: IcmpMode) -> Self {
        IcmpState {
            mode: AtomicU8::new(match mode {
                IcmpMode::Datagram => DGRAM,
                IcmpMode::Raw => RAW,
            }),
            fixed: true,
        }
    }

    pub(super) fn mode(&self) -> Option<IcmpMode> {
        match self.mode.load(Ordering::Relaxed) {
            DGRAM => Some(IcmpMode::Datagram),
            RAW => Some(IcmpMode::Raw),
            _ => None,
        }
    }
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn open(target: IpAddr, mode: IcmpMode) -> io::Result<Socket> {
    let (domain, proto) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let ty = match mode {
        IcmpMode::Datagram => Type::DGRAM,
        IcmpMode::Raw => Type::RAW,
    };
    Socket::new(domain, ty, Some(proto))
}

fn open_socket(state: &IcmpState, target: IpAddr) -> Result<(Socket, IcmpMode), SetupError> {
    let setup = |err| SetupError {
        step: "create ICMP socket",
        err,
    };
    match state.mode() {
        Some(m) => open(target, m).map(|s| (s, m)).map_err(setup),
        None => match open(target, IcmpMode::Datagram) {
            Ok(s) => {
                if !state.fixed {
                    state.mode.store(DGRAM, Ordering::Relaxed);
                }
                Ok((s, IcmpMode::Datagram))
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let s = open(target, IcmpMode::Raw).map_err(setup)?;
                if !state.fixed {
                    state.mode.store(RAW, Ordering::Relaxed);
                }
                Ok((s, IcmpMode::Raw))
            }
            Err(e) => Err(setup(e)),
        },
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD.len());
    p.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if !v6 {
        // ICMPv6 checksums cover a pseudo-header; the kernel computes them
        // for both socket kinds. ICMPv4 on a raw socket is ours to fill.
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `buf` (as read from the socket) is the reply to our request.
fn is_reply(buf: &[u8], v6: bool, mode: IcmpMode, id: u16, seq: u16) -> bool {
    let icmp = if !v6 && mode == IcmpMode::Raw {
        // Raw IPv4 sockets deliver the IP header too.
        let Some(first) = buf.first() else {
            return false;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        match buf.get(ihl..) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        buf
    };
    if icmp.len() < 8 {
        return false;
    }
    let reply_type = if v6 { 129 } else { 0 };
    let id_ok = mode == IcmpMode::Datagram || icmp[4..6] == id.to_be_bytes();
    icmp[0] == reply_type && id_ok && icmp[6..8] == seq.to_be_bytes() && &icmp[8..] == PAYLOAD
}

pub(super) async fn probe(state: &IcmpState, target: IpAddr, spec: &ProbeSpec) -> ProbeReport {
    let b = &spec.binding;
    let v6 = target.is_ipv6();
    let (sock, mode) = match open_socket(state, target) {
        Ok(x) => x,
        Err(setup) => return setup.report(b),
    };
    let prepare = || -> Result<(), SetupError> {
        pin(SockRef::from(&sock), b)?;
        if let Some(src) = b.source_address.filter(|s| s.is_ipv6() == v6) {
            sock.bind(&SockAddr::from(SocketAddr::new(src, 0)))
                .map_err(|err| SetupError {
                    step: "bind source address",
                    err,
                })?;
        }
        sock.set_nonblocking(true).map_err(|err| SetupError {
            step: "set non-blocking",
            err,
        })?;
        // Connected: the kernel routes now (with mark and device) and
        // delivers only packets from the target.
        sock.connect(&SockAddr::from(SocketAddr::new(target, 0)))
            .map_err(|err| SetupError {
                step: "connect",
                err,
            })
    };
    if let Err(setup) = prepare() {
        return setup.report(b);
    }
    let mut evidence = base_evidence(b);
    if let Some(local) = sock.local_addr().ok().and_then(|a| a.as_socket())
        && !local.ip().is_unspecified()
    {
        evidence.source_address = Some(local.ip().to_string());
    }
    // tokio's UdpSocket is a plain datagram-socket wrapper (send/recv on a
    // connected fd), which is all an ICMP socket needs; registering the fd
    // through it avoids AsyncFd's unsafe constructor.
    let sock = match UdpSocket::from_std(std::net::UdpSocket::from(sock)) {
        Ok(a) => a,
        Err(err) => {
            return SetupError {
                step: "register ICMP socket",
                err,
            }
            .report(b);
        }
    };
    let id = NEXT_ID
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(std::process::id() as u16);
    let seq = 1;
    let packet = echo_request(v6, id, seq);
    let start = Instant::now();
    if let Err(e) = sock.send(&packet).await {
        return io_failure(b, format!("send echo to {target}"), &e);
    }
    let mut buf = [0u8; 1500];
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => return io_failure(b, format!("echo {target}"), &e),
        };
        if is_reply(&buf[..n], v6, mode, id, seq) {
            let rtt = start.elapsed();
            let kind = match mode {
                IcmpMode::Datagram => "datagram",
                IcmpMode::Raw => "raw",
            };
            let mut r = ProbeReport::passed(format!(
                "echo reply from {target} in {rtt:?} ({kind} socket)"
            ))
            .with_evidence(evidence);
            r.rtt = Some(rtt);
            return r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_has_a_valid_checksum() {
        let p = echo_request(false, 0x1234, 1);
        assert_eq!(p[0], 8);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(&p[4..6], &[0x12, 0x34]);
    }

    #[test]
    fn replies_are_matched_by_type_id_seq_and_payload() {
        let mut reply = echo_request(false, 7, 1);
        reply[0] = 0;
        assert!(
            is_reply(&reply, false, IcmpMode::Datagram, 99, 1),
            "kernel owns the id"
        );
        assert!(!is_reply(&reply, false, IcmpMode::Datagram, 7, 2));
        let mut with_ip = vec![0x45u8; 20];
        with_ip[0] = 0x45;
        with_ip.extend_from_slice(&reply);
        assert!(is_reply(&with_ip, false, IcmpMode::Raw, 7, 1));
        assert!(
            !is_reply(&with_ip, false, IcmpMode::Raw, 8, 1),
            "someone else's ping"
        );
        let req = echo_request(false, 7, 1);
        assert!(
            !is_reply(&req, false, IcmpMode::Datagram, 7, 1),
            "our own request"
        );
        let mut v6 = echo_request(true, 7, 1);
        v6[0] = 129;
        assert!(is_reply(&v6, true, IcmpMode::Raw, 7, 1));
    }
}
