//! Validation of the IPv6 kinds, in routerd's wording
//! (`pkg/config/validate.go` interface references, `validate_wan.go`).

use crate::spec::ipv6::IPv6StaticRouteSpec;

use super::NameIndex;
use super::util::{ipv6, prefix};
use crate::Problems;

/// routerd checks `spec.interface` (required, must name an interface),
/// then that `destination` is an IPv6 CIDR and `via` an IPv6 address.
pub(super) fn ipv6_static_route(
    s: &IPv6StaticRouteSpec,
    idx: &NameIndex<'_>,
    p: &mut Problems<'_>,
) {
    let i = s.interface.trim();
    if i.is_empty() {
        p.field("spec.interface", "is required");
    } else if !idx.has_interface_like(i) {
        p.at(
            "spec.interface",
            format!("references missing Interface \"{i}\""),
        );
    }
    let d = s.destination.trim();
    if d == "default" || !matches!(prefix(d), Some(ipnet::IpNet::V6(_))) {
        p.field("spec.destination", "must be an IPv6 CIDR");
    }
    if ipv6(&s.via).is_none() {
        p.field("spec.via", "must be an IPv6 address");
    }
    if s.metric.is_some_and(|m| m < 0) {
        p.field("spec.metric", "must be non-negative");
    }
}
