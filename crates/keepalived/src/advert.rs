//! VRRP advertisements as a raw IPv4 socket receives them (IP header
//! included): who is master of which virtual router.
//!
//! keepalived tells a node only its own state (the notify FIFO). A standby
//! still hears the master: in VRRP only the master advertises, and with
//! unicast peers every member is sent each advertisement. Reading the
//! sender of the adverts lets every member name the active node in its
//! gateway status, not only the active node itself. The packets come from
//! the network, so the parser takes any bytes and never panics (fuzzed:
//! `fuzz/fuzz_targets/vrrp_advert.rs`).

use std::net::Ipv4Addr;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;

/// One advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// The sender's address (the master's `unicast_src_ip`).
    pub source: Ipv4Addr,
    /// Virtual router id.
    pub vrid: u8,
    /// The sender's priority; 0 means it is giving the role up.
    pub priority: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
}

/// Reads an IPv4 packet carrying a VRRP advertisement; `None` for anything
/// else (another protocol, a truncated or malformed packet, a VRRP packet
/// that is not an advertisement, a TTL other than 255: RFC 9568 §7.1 has
/// receivers discard those, as they did not come from the link).
pub fn parse(packet: &[u8]) -> Option<Advert> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let ttl = *packet.get(8)?;
    let proto = *packet.get(9)?;
    if i32::from(proto) != IPPROTO_VRRP || ttl != 255 {
        return None;
    }
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    let vrrp = packet.get(ihl..)?;
    // version (4 bits) | type (4 bits), vrid, priority, count, ...
    let (vt, vrid, priority) = (*vrrp.first()?, *vrrp.get(1)?, *vrrp.get(2)?);
    let version = vt >> 4;
    if !matches!(version, 2 | 3) || vt & 0x0f != 1 || vrrp.len() < 8 {
        return None;
    }
    Some(Advert {
        source: Ipv4Addr::from(src),
        vrid,
        priority,
        version,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// An IPv4 header (no options) and a VRRPv3 advert of one address.
    fn packet(ttl: u8, vt: u8) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, ttl, 112, 0, 0, 10, 0, 0, 11, 10, 0, 0, 12,
        ];
        p.extend_from_slice(&[vt, 51, 250, 1, 0, 10, 0, 0, 172, 18, 18, 242]);
        p
    }

    #[test]
    fn an_advert_names_its_sender_router_and_priority() {
        assert_eq!(
            parse(&packet(255, 0x31)),
            Some(Advert {
                source: Ipv4Addr::new(10, 0, 0, 11),
                vrid: 51,
                priority: 250,
                version: 3,
            })
        );
        assert_eq!(parse(&packet(255, 0x21)).map(|a| a.version), Some(2));
    }

    #[test]
    fn anything_else_is_ignored() {
        // Forwarded (TTL < 255), not an advert, an unknown version.
        assert_eq!(parse(&packet(254, 0x31)), None);
        assert_eq!(parse(&packet(255, 0x32)), None);
        assert_eq!(parse(&packet(255, 0x41)), None);
        // Not VRRP, not IPv4, a header length below 20, truncations.
        let mut tcp = packet(255, 0x31);
        tcp[9] = 6;
        assert_eq!(parse(&tcp), None);
        let mut v6 = packet(255, 0x31);
        v6[0] = 0x65;
        assert_eq!(parse(&v6), None);
        let mut short = packet(255, 0x31);
        short[0] = 0x44;
        assert_eq!(parse(&short), None);
        let full = packet(255, 0x31);
        for n in 0..full.len() {
            let got = parse(&full[..n]);
            assert!(got.is_none() || n >= 28, "{n}: {got:?}");
        }
        // IP options move the VRRP header.
        let mut opts = vec![0x46];
        opts.extend_from_slice(&full[1..20]);
        opts.extend_from_slice(&[1, 1, 1, 0]);
        opts.extend_from_slice(&full[20..]);
        assert_eq!(parse(&opts).map(|a| a.vrid), Some(51));
    }
}
