//! Small parsers shared by the validators.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub(crate) fn ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}
pub(crate) fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.trim().parse().ok()
}
pub(crate) fn ipv6(s: &str) -> Option<Ipv6Addr> {
    s.trim().parse().ok()
}

/// A prefix; `default` is accepted as 0.0.0.0/0 and a bare address as a host prefix
/// only when `allow_bare` is set.
pub(crate) fn prefix(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if s == "default" {
        return "0.0.0.0/0".parse().ok();
    }
    s.parse().ok()
}

pub(crate) fn is_v4_prefix(s: &str) -> bool {
    matches!(prefix(s), Some(IpNet::V4(_)))
}

pub(crate) fn family_matches(p: &IpNet, family: &str) -> bool {
    match family {
        "ipv6" => matches!(p, IpNet::V6(_)),
        _ => matches!(p, IpNet::V4(_)),
    }
}

pub(crate) fn has_expr(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|v| v.contains("${"))
}

pub(crate) fn set(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|v| !v.trim().is_empty())
}

pub(crate) fn nz(v: Option<i64>) -> bool {
    v.is_some_and(|n| n != 0)
}
