//! Parsers for what the lab reads back from the kernel (`ip -j`, `conntrack -L`).
//!
//! They are separate from the commands so the parsing is unit-tested without root.

use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{LabError, Result};

/// One route as `ip -j route get` or `ip -j route show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Route {
    /// Destination: an address, a prefix or `default`.
    pub dst: String,
    /// Next hop, absent for connected routes.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Outgoing interface.
    #[serde(default)]
    pub dev: Option<String>,
    /// Preferred source address: what a locally originated flow's source would be.
    #[serde(default)]
    pub prefsrc: Option<IpAddr>,
    /// Route metric (priority); 0 when `ip` omits it.
    #[serde(default)]
    pub metric: u32,
    /// Routing protocol, e.g. `static`, `kernel` or routerd's own number.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The table, when it is not `main`.
    #[serde(default)]
    pub table: Option<String>,
    /// Flags such as `linkdown` and `onlink`.
    #[serde(default)]
    pub flags: Vec<String>,
}

impl Route {
    /// Whether the kernel flags the route's device as without carrier.
    pub fn is_linkdown(&self) -> bool {
        self.flags.iter().any(|f| f == "linkdown")
    }
}

/// Parses the JSON array printed by `ip -j route get|show`.
pub fn parse_routes(json: &str) -> Result<Vec<Route>> {
    // `ip -j route show` prints nothing at all (not `[]`) for an empty table on some
    // iproute2 versions.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| LabError::parse("ip -j route output", e.to_string()))
}

/// A link as `ip -j link show` prints it (the fields the lab needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Link {
    /// Interface name.
    pub ifname: String,
    /// Flags such as `UP`, `LOWER_UP`, `NO-CARRIER`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Operational state (`UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`).
    #[serde(default)]
    pub operstate: String,
}

impl Link {
    /// Whether the link has carrier: the signal routerd's link monitor reacts to.
    pub fn lower_up(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }

    /// Whether the link is administratively up.
    pub fn admin_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

/// Parses `ip -j link show dev X`, which prints a one-element array.
pub fn parse_link(json: &str) -> Result<Link> {
    let links: Vec<Link> = serde_json::from_str(json)
        .map_err(|e| LabError::parse("ip -j link output", e.to_string()))?;
    links
        .into_iter()
        .next()
        .ok_or_else(|| LabError::parse("ip -j link output", "no link"))
}

/// One direction of a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP, SCTP); `None` for ICMP.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
}

/// One conntrack entry, as printed by `conntrack -L [-o extended]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConntrackEntry {
    /// Transport protocol name (`tcp`, `udp`, `icmp`, ...).
    pub protocol: String,
    /// Seconds until the entry expires.
    pub timeout: u64,
    /// Protocol state (`ESTABLISHED`, `TIME_WAIT`, ...); `None` for stateless protocols.
    pub state: Option<String>,
    /// The original direction: the client's view, before NAT.
    pub original: Tuple,
    /// The reply direction: after NAT its destination is the translated source.
    pub reply: Tuple,
    /// Connection mark.
    pub mark: u32,
    /// `[ASSURED]`, `[UNREPLIED]` and similar flags, without brackets.
    pub flags: Vec<String>,
}

impl ConntrackEntry {
    /// The source address the flow was translated to, if it was source-NATed: the
    /// destination of the reply tuple differs from the original source.
    pub fn snat_source(&self) -> Option<IpAddr> {
        (self.reply.dst != self.original.src).then_some(self.reply.dst)
    }
}

/// Parses the full output of `conntrack -L`; blank lines are skipped.
pub fn parse_conntrack(text: &str) -> Result<Vec<ConntrackEntry>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_conntrack_line)
        .collect()
}

#[derive(Default)]
struct PartialTuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
}

impl PartialTuple {
    fn finish(self, line: &str) -> Result<Tuple> {
        match (self.src, self.dst) {
            (Some(src), Some(dst)) => Ok(Tuple {
                src,
                dst,
                sport: self.sport,
                dport: self.dport,
            }),
            _ => Err(LabError::parse(
                "conntrack line",
                format!("incomplete tuple in {line:?}"),
            )),
        }
    }
}

/// Parses one line, with or without the `-o extended` layer-3 prefix.
pub fn parse_conntrack_line(line: &str) -> Result<ConntrackEntry> {
    let bad = |detail: &str| LabError::parse("conntrack line", format!("{detail} in {line:?}"));
    let mut tokens: Vec<&str> = line.split_whitespace().collect();
    if matches!(tokens.first(), Some(&"ipv4") | Some(&"ipv6")) {
        tokens.drain(..2.min(tokens.len()));
    }
    let [protocol, _protonum, timeout, rest @ ..] = tokens.as_slice() else {
        return Err(bad("too few fields"));
    };
    let timeout = timeout.parse().map_err(|_| bad("bad timeout"))?;
    let mut rest = rest.iter().peekable();
    let state = match rest.peek() {
        Some(t) if !t.contains('=') && !t.starts_with('[') => rest.next().map(|s| (*s).to_owned()),
        _ => None,
    };
    let mut tuples = [PartialTuple::default(), PartialTuple::default()];
    let mut direction = None::<usize>;
    let mut mark = 0;
    let mut flags = Vec::new();
    for token in rest {
        if let Some(flag) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            flags.push(flag.to_owned());
            continue;
        }
        let Some((key, value)) = token.split_once('=') else {
            return Err(bad("unexpected token"));
        };
        if key == "src" {
            direction = Some(direction.map_or(0, |d| d + 1));
        }
        let tuple = direction.and_then(|d| tuples.get_mut(d));
        match (key, tuple) {
            ("src", Some(t)) => t.src = Some(value.parse().map_err(|_| bad("bad src"))?),
            ("dst", Some(t)) => t.dst = Some(value.parse().map_err(|_| bad("bad dst"))?),
            ("sport", Some(t)) => t.sport = Some(value.parse().map_err(|_| bad("bad sport"))?),
            ("dport", Some(t)) => t.dport = Some(value.parse().map_err(|_| bad("bad dport"))?),
            ("src", None) => return Err(bad("more than two tuples")),
            ("mark", _) => mark = value.parse().map_err(|_| bad("bad mark"))?,
            // type/code/id (ICMP), zone, use, secctx, labels: not needed by the lab.
            _ => {}
        }
    }
    let [original, reply] = tuples;
    Ok(ConntrackEntry {
        protocol: (*protocol).to_owned(),
        timeout,
        state,
        original: original.finish(line)?,
        reply: reply.finish(line)?,
        mark,
        flags,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_route_get() {
        let json = r#"[{"dst":"203.0.113.1","gateway":"192.0.2.2","dev":"wan1","prefsrc":"192.0.2.1","flags":[],"uid":0,"cache":[]}]"#;
        let routes = parse_routes(json).unwrap();
        assert_eq!(routes.len(), 1);
        let r = &routes[0];
        assert_eq!(r.gateway, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(r.dev.as_deref(), Some("wan1"));
        assert_eq!(r.prefsrc, Some("192.0.2.1".parse().unwrap()));
        assert!(!r.is_linkdown());
    }

    #[test]
    fn parses_default_routes_with_metrics_and_linkdown() {
        let json = r#"[{"dst":"default","gateway":"192.0.2.2","dev":"wan1","metric":100,"flags":["linkdown"]},
                       {"dst":"default","gateway":"198.51.100.2","dev":"wan2","protocol":"static","metric":200,"flags":[]}]"#;
        let routes = parse_routes(json).unwrap();
        assert_eq!(routes[0].metric, 100);
        assert!(routes[0].is_linkdown());
        assert_eq!(routes[1].protocol.as_deref(), Some("static"));
        assert!(parse_routes("").unwrap().is_empty());
        assert!(parse_routes("[]").unwrap().is_empty());
        assert!(parse_routes("{").is_err());
    }

    #[test]
    fn parses_link_flags() {
        let json = r#"[{"ifindex":2,"ifname":"wan1","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"mtu":1500,"operstate":"LOWERLAYERDOWN"}]"#;
        let link = parse_link(json).unwrap();
        assert!(link.admin_up());
        assert!(!link.lower_up());
        assert_eq!(link.operstate, "LOWERLAYERDOWN");
        assert!(parse_link("[]").is_err());
    }

    #[test]
    fn parses_extended_tcp_entry_with_snat() {
        let line = "ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.50.10 dst=203.0.113.1 sport=47016 dport=5001 src=203.0.113.1 dst=192.0.2.1 sport=5001 dport=47016 [ASSURED] mark=16 use=1";
        let e = parse_conntrack_line(line).unwrap();
        assert_eq!(e.protocol, "tcp");
        assert_eq!(e.timeout, 431_999);
        assert_eq!(e.state.as_deref(), Some("ESTABLISHED"));
        assert_eq!(e.original.sport, Some(47016));
        assert_eq!(e.reply.dst, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.snat_source(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(e.mark, 16);
        assert_eq!(e.flags, vec!["ASSURED".to_owned()]);
    }

    #[test]
    fn parses_udp_and_icmp_without_state() {
        let text = "udp      17 29 src=192.168.50.10 dst=203.0.113.1 sport=5353 dport=53 [UNREPLIED] src=203.0.113.1 dst=192.168.50.10 sport=53 dport=5353 mark=0 use=1\n\
                    ipv4     2 icmp     1 29 src=192.0.2.1 dst=203.0.113.1 type=8 code=0 id=7 src=203.0.113.1 dst=192.0.2.1 type=0 code=0 id=7 mark=0 use=1\n\n";
        let entries = parse_conntrack(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].state, None);
        assert_eq!(entries[0].flags, vec!["UNREPLIED".to_owned()]);
        assert_eq!(entries[0].snat_source(), None);
        assert_eq!(entries[1].protocol, "icmp");
        assert_eq!(entries[1].original.sport, None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_conntrack_line("tcp 6").is_err());
        assert!(parse_conntrack_line("tcp 6 x ESTABLISHED src=1.1.1.1").is_err());
        assert!(parse_conntrack_line("tcp 6 10 src=1.1.1.1 dst=2.2.2.2").is_err());
        assert!(
            parse_conntrack_line("tcp 6 10 src=a dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1").is_err()
        );
        assert!(
            parse_conntrack_line(
                "tcp 6 10 src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1 src=3.3.3.3"
            )
            .is_err()
        );
    }
}
