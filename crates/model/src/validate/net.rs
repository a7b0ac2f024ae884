//! Field rules of the `net.routerd.net/v1alpha1` kinds (routerd-spec §1.2-1.7).

use super::refs::NameIndex;
use super::util::*;
use crate::id::split_kind_name;
use crate::spec::*;
use crate::{GoDuration, Kind, Problems};

pub(super) fn interface(s: &InterfaceSpec, p: &mut Problems<'_>) {
    if s.ifname.trim().is_empty() {
        p.field("spec.ifname", "is required");
    }
    if let Some(m) = s.mtu
        && m != 0
        && !(576..=9216).contains(&m)
    {
        p.field("spec.mtu", "must be within 576-9216");
    }
    if let Some(o) = s.owner.as_deref()
        && !o.is_empty()
        && o != "routerd"
        && o != "external"
    {
        p.field("spec.owner", "must be routerd or external");
    }
}

pub(super) fn dslite(s: &DSLiteTunnelSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    if s.interface.trim().is_empty() {
        p.field("spec.interface", "is required");
    } else if !idx.contains(Kind::Interface, s.interface.trim()) {
        p.at(
            "spec.interface",
            format!("references missing Interface \"{}\"", s.interface.trim()),
        );
    }
    if let Some(f) = s.aftr_fqdn.as_deref()
        && (f.contains(char::is_whitespace) || f.contains('/'))
    {
        p.field("spec.aftrFQDN", "contains invalid whitespace or slash");
    }
    if let Some(a) = s.aftr_ipv6.as_deref().filter(|a| !a.is_empty())
        && ipv6(a).is_none()
    {
        p.field("spec.aftrIPv6", "must be an IPv6 address");
    }
    for a in &s.aftr_dns_servers {
        if ip(a).is_none() {
            p.field(
                "spec.aftrDNSServers",
                format!("contains invalid address \"{a}\""),
            );
        }
    }
    if s.aftr_address_ordinal.is_some_and(|n| n < 0) {
        p.field("spec.aftrAddressOrdinal", "must be greater than 0");
    }
    if let Some(sel) = s.aftr_address_selection.as_deref()
        && !matches!(sel, "" | "ordinal" | "ordinalModulo")
    {
        p.field(
            "spec.aftrAddressSelection",
            "must be ordinal or ordinalModulo",
        );
    }
    if s.aftr_from.is_none() && !set(&s.aftr_fqdn) && !set(&s.aftr_ipv6) && !set(&s.remote_address)
    {
        p.at(
            "spec",
            "spec.aftrFrom, spec.aftrFQDN, spec.aftrIPv6, or spec.remoteAddress is required",
        );
    }
    if let Some(a) = s.remote_address.as_deref().filter(|a| !a.is_empty())
        && ipv6(a).is_none()
    {
        p.field("spec.remoteAddress", "must be an IPv6 address");
    }
    if let Some(a) = s.local_address.as_deref().filter(|a| !a.is_empty())
        && ipv6(a).is_none()
    {
        p.field("spec.localAddress", "must be an IPv6 address");
    }
    match s.local_address_source.as_deref().unwrap_or("") {
        "" | "interface" => {}
        "static" => {
            if !set(&s.local_address) {
                p.field(
                    "spec.localAddress",
                    "is required when localAddressSource is static",
                );
            }
        }
        "delegatedAddress" => {
            if !set(&s.local_delegated_address) {
                p.field(
                    "spec.localDelegatedAddress",
                    "is required when localAddressSource is delegatedAddress",
                );
            }
        }
        _ => p.field(
            "spec.localAddressSource",
            "must be interface, static, or delegatedAddress",
        ),
    }
    if let Some(sfx) = s.local_address_suffix.as_deref().filter(|a| !a.is_empty())
        && ipv6(sfx).is_none()
    {
        p.field(
            "spec.localAddressSuffix",
            "must be an IPv6 suffix such as ::100",
        );
    }
    if s.route_metric.is_some_and(|m| m < 0) {
        p.field("spec.routeMetric", "must be non-negative");
    }
    if let Some(m) = s.mtu
        && m != 0
        && !(1280..=65535).contains(&m)
    {
        p.field("spec.mtu", "must be within 1280-65535");
    }
}

fn duration_field(p: &mut Problems<'_>, path: &str, v: &Option<String>, min: Option<GoDuration>) {
    let Some(text) = v.as_deref().filter(|t| !t.is_empty()) else {
        return;
    };
    match GoDuration::parse(text) {
        Ok(d) if d.is_positive() => {
            if let Some(min) = min
                && d < min
            {
                p.field(path, format!("must be at least {min}"));
            }
        }
        _ => p.field(path, "must be a positive duration"),
    }
}

pub(super) fn health_check(s: &HealthCheckSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    if let Some(t) = s.type_.as_deref()
        && !t.is_empty()
        && t != "ping"
    {
        p.field("spec.type", "must be ping");
    }
    if let Some(r) = s.role.as_deref()
        && !matches!(
            r,
            "" | "link" | "next-hop" | "internet" | "service" | "policy"
        )
    {
        p.field(
            "spec.role",
            "must be link, next-hop, internet, service, or policy",
        );
    }
    let family = s.address_family.as_deref().unwrap_or("");
    if !matches!(family, "" | "ipv4" | "ipv6") {
        p.field("spec.addressFamily", "must be ipv4 or ipv6");
    }
    if let Some(t) = s.target.as_deref().filter(|t| !t.is_empty()) {
        match ip(t) {
            None => p.field("spec.target", "must be an IP address"),
            Some(a) if a.is_ipv4() && family == "ipv6" => {
                p.field("spec.target", "must be an IPv6 address")
            }
            Some(a) if a.is_ipv6() && family != "ipv6" => {
                p.field("spec.target", "must be an IPv4 address")
            }
            _ => {}
        }
    }
    match s.target_source.as_deref().unwrap_or("") {
        "" | "auto" | "defaultGateway" | "dsliteRemote" => {}
        "static" => {
            if !set(&s.target) {
                p.field("spec.target", "is required when targetSource is static");
            }
        }
        _ => p.field(
            "spec.targetSource",
            "must be auto, static, defaultGateway, or dsliteRemote",
        ),
    }
    if let Some(i) = s
        .interface
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        && !idx.has_interface_like(i)
    {
        p.at(
            "spec.interface",
            format!("references missing Interface, PPPoESession, or DSLiteTunnel \"{i}\""),
        );
    }
    let proto = s.protocol.as_deref().unwrap_or("");
    if !matches!(proto, "" | "icmp" | "tcp" | "dns" | "http") {
        p.field("spec.protocol", "must be icmp, tcp, dns, or http");
    }
    if s.port.is_some_and(|n| !(0..=65535).contains(&n)) {
        p.field("spec.port", "must be within 0-65535");
    }
    duration_field(
        p,
        "spec.interval",
        &s.interval,
        Some(health_defaults::MIN_INTERVAL),
    );
    duration_field(
        p,
        "spec.failingInterval",
        &s.failing_interval,
        Some(health_defaults::MIN_INTERVAL),
    );
    duration_field(p, "spec.timeout", &s.timeout, None);
    if s.healthy_threshold.is_some_and(|n| n < 0) || s.unhealthy_threshold.is_some_and(|n| n < 0) {
        p.at(
            "spec.healthyThreshold",
            "spec.healthyThreshold and spec.unhealthyThreshold must be non-negative",
        );
    }
    if let Some(h) = &s.http {
        if s.protocol() != "http" {
            p.warn(
                "spec.http",
                "spec.http is ignored unless spec.protocol is http",
            );
        }
        for (i, code) in h.expected_status.iter().enumerate() {
            if parse_status_range(code).is_none() {
                p.field(
                    &format!("spec.http.expectedStatus[{i}]"),
                    "must be a status code or range such as 200-399",
                );
            }
        }
    }
    if let Some(d) = &s.dns {
        if s.protocol() != "dns" {
            p.warn(
                "spec.dns",
                "spec.dns is ignored unless spec.protocol is dns",
            );
        }
        if let Some(t) = d.query_type.as_deref()
            && !matches!(t, "" | "A" | "AAAA")
        {
            p.field("spec.dns.queryType", "must be A or AAAA");
        }
    }
}

/// Parses `200` or `200-499` into an inclusive range of HTTP status codes.
pub fn parse_status_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    ((100..=599).contains(&a) && (100..=599).contains(&b) && a <= b).then_some((a, b))
}

fn set_refs(p: &mut Problems<'_>, path: &str, refs: &[String], idx: &NameIndex<'_>) {
    let mut seen = std::collections::HashSet::new();
    for (i, r) in refs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match split_kind_name(r.trim()) {
            Some(("IPAddressSet", n)) => {
                if !seen.insert(n) {
                    p.field(&at, format!("duplicates IPAddressSet reference \"{r}\""));
                } else if !idx.contains(Kind::IPAddressSet, n) {
                    p.field(&at, format!("references missing IPAddressSet \"{n}\""));
                }
            }
            _ => p.field(&at, "must reference IPAddressSet"),
        }
    }
}

fn prefixes(p: &mut Problems<'_>, path: &str, list: &[String], family: &str, msg: &str) {
    for (i, c) in list.iter().enumerate() {
        match prefix(c) {
            Some(n) if family_matches(&n, family) => {}
            _ => {
                p.at(&format!("{path}[{i}]"), format!("{path} entries {msg}"));
            }
        }
    }
}

fn gateway_rules(
    p: &mut Problems<'_>,
    base: &str,
    gateway_source: Option<&str>,
    gateway: &Option<String>,
    gateway_from: Option<&StatusValueSource>,
    family: &str,
    is_target: bool,
) {
    let has_gw = set(gateway);
    let has_from = gateway_from.is_some();
    match gateway_source.unwrap_or("") {
        "" | "none" => {
            if has_gw || has_from {
                if is_target {
                    p.field(
                        &format!("{base}.gateway"),
                        "and gatewayFrom require gatewaySource static, dhcpv4, or dhcpv6",
                    );
                } else {
                    p.field(
                        &format!("{base}.gateway"),
                        "and gatewayFrom are only valid when gatewaySource is static, dhcpv4, or dhcpv6",
                    );
                }
            }
        }
        "static" => {
            if has_gw == has_from {
                p.at(
                    base,
                    format!("{base} must set exactly one of gateway or gatewayFrom when gatewaySource is static"),
                );
            }
            if let Some(g) = gateway
                .as_deref()
                .filter(|g| !g.trim().is_empty() && !g.contains("${"))
            {
                match ip(g) {
                    None => p.field(&format!("{base}.gateway"), "must be an IP address"),
                    Some(a) if a.is_ipv6() && family != "ipv6" => p.field(
                        &format!("{base}.gateway"),
                        "must be an IPv4 address when family is ipv4",
                    ),
                    Some(a) if a.is_ipv4() && family == "ipv6" => p.field(
                        &format!("{base}.gateway"),
                        "must be an IPv6 address when family is ipv6",
                    ),
                    _ => {}
                }
            }
        }
        "dhcpv4" => {
            if family == "ipv6" {
                p.field(
                    &format!("{base}.gatewaySource"),
                    "dhcpv4 requires family ipv4",
                );
            }
            if has_gw {
                p.field(
                    &format!("{base}.gateway"),
                    "must not be set when gatewaySource is dhcpv4",
                );
            }
        }
        "dhcpv6" => {
            if family != "ipv6" {
                p.field(
                    &format!("{base}.gatewaySource"),
                    "dhcpv6 requires family ipv6",
                );
            }
            if has_gw {
                p.field(
                    &format!("{base}.gateway"),
                    "must not be set when gatewaySource is dhcpv6",
                );
            }
        }
        _ => p.field(
            &format!("{base}.gatewaySource"),
            "must be static, dhcpv4, dhcpv6, or none",
        ),
    }
}

pub(super) fn egress_policy(s: &EgressRoutePolicySpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let family = s.family.as_deref().unwrap_or("");
    if !matches!(family, "" | "ipv4" | "ipv6") {
        p.field("spec.family", "must be ipv4 or ipv6");
    }
    let family = s.family();
    let host = s.host_traffic();
    let mode = s.mode();
    if !matches!(mode, "" | "priority" | "mark" | "hash") {
        p.field("spec.mode", "must be priority, mark, or hash");
    }
    prefixes(
        p,
        "spec.sourceCIDRs",
        &s.source_cidrs,
        family,
        "must match family prefixes",
    );
    for (i, c) in s.destination_cidrs.iter().enumerate() {
        let at = format!("spec.destinationCIDRs[{i}]");
        match prefix(c) {
            None => p.at(&at, "spec.destinationCIDRs entries must be valid prefixes"),
            Some(n) if !family_matches(&n, family) => p.at(
                &at,
                format!(
                    "spec.destinationCIDRs entries must be {} prefixes when family is {family}",
                    if family == "ipv6" { "IPv6" } else { "IPv4" }
                ),
            ),
            _ => {}
        }
    }
    prefixes(
        p,
        "spec.excludeDestinationCIDRs",
        &s.exclude_destination_cidrs,
        family,
        "must match family prefixes",
    );
    set_refs(p, "spec.destinationSetRefs", &s.destination_set_refs, idx);
    set_refs(
        p,
        "spec.excludeDestinationSetRefs",
        &s.exclude_destination_set_refs,
        idx,
    );
    if mode == "hash" && s.hash_fields.is_empty() {
        p.field("spec.hashFields", "is required when mode is hash");
    }
    for (i, f) in s.hash_fields.iter().enumerate() {
        if f != "sourceAddress" && f != "destinationAddress" {
            p.at(
                &format!("spec.hashFields[{i}]"),
                "spec.hashFields entries must be sourceAddress or destinationAddress",
            );
        }
    }
    if let Some(sel) = s.selection.as_deref()
        && !matches!(sel, "" | "highest-weight-ready" | "weighted-ecmp")
    {
        p.field(
            "spec.selection",
            "must be highest-weight-ready or weighted-ecmp",
        );
    }
    for (path, v) in [
        ("spec.hysteresis", &s.hysteresis),
        ("spec.preemptDelay", &s.preempt_delay),
    ] {
        if let Some(text) = v.as_deref().filter(|t| !t.is_empty()) {
            match GoDuration::parse(text) {
                Err(e) => p.field(path, format!("is invalid: {e}")),
                Ok(d) if d.as_nanos() < 0 => p.field(path, "must not be negative"),
                Ok(_) => {}
            }
        }
    }
    if s.candidates.is_empty() {
        p.field("spec.candidates", "is required");
    }
    if host {
        if family != "ipv6" {
            p.field("spec.hostTraffic", "requires family ipv6");
        }
        if s.candidates.len() != 1 {
            p.field("spec.hostTraffic", "requires exactly one candidate");
        }
    }
    let mut any_mark = false;
    for (i, c) in s.candidates.iter().enumerate() {
        any_mark |= nz(c.mark);
        candidate(s, c, i, idx, p);
    }
    weighted_ecmp(s, p);
    when_no_candidate(s, p);
    flush_on_failover(s, p);
    if mode.is_empty() && any_mark && !host {
        p.warn(
            "spec.mode",
            "candidates set mark but spec.mode is omitted: marks are rendered but no route tables or rules follow them; set mode mark or priority",
        );
    }
}

/// `whenNoCandidate` is refused wherever the fail-closed filter could not
/// cover the policy's traffic, so a policy never promises to refuse what
/// still leaks to the main table.
fn when_no_candidate(s: &EgressRoutePolicySpec, p: &mut Problems<'_>) {
    const PATH: &str = "spec.whenNoCandidate";
    let Some(v) = s.when_no_candidate.as_deref() else {
        return;
    };
    if !matches!(v, "main" | "reject" | "drop") {
        p.field(PATH, "must be one of main, reject, drop");
        return;
    }
    if v == "main" {
        return;
    }
    if s.host_traffic() {
        p.field(
            PATH,
            format!("{v} cannot be used with hostTraffic: the fail-closed filter sees forwarded traffic only, not the router's own; use main"),
        );
    } else if s.family() != "ipv4" {
        p.field(
            PATH,
            format!("{v} is carried for family ipv4 only (the fail-closed filter matches IPv4 sources); use main for family {}", s.family()),
        );
    }
    if s.mode().is_empty() {
        p.field(
            PATH,
            format!("{v} requires mode priority, mark or hash: an advisory policy (mode omitted) steers no traffic, so there is nothing to close; set a mode or use main"),
        );
    }
}

/// `flushOnFailover: deadPath` finds a dead path's connections by their
/// ct mark, so it is refused wherever connections carry no mark of their
/// own path: it would report flushes that can never delete anything.
fn flush_on_failover(s: &EgressRoutePolicySpec, p: &mut Problems<'_>) {
    const PATH: &str = "spec.flushOnFailover";
    let Some(v) = s.flush_on_failover.as_deref() else {
        return;
    };
    match v.trim() {
        "" | "none" => return,
        "deadPath" => {}
        _ => {
            p.field(PATH, "must be none or deadPath");
            return;
        }
    }
    let mode = s.mode();
    let has_targets = s.candidates.iter().any(|c| !c.targets.is_empty());
    let ecmp = s.selection() == "weighted-ecmp";
    let any_mark = s
        .candidates
        .iter()
        .any(|c| nz(c.mark) || c.targets.iter().any(|t| nz(t.mark)));
    if s.host_traffic() {
        p.field(
            PATH,
            "deadPath does not apply to hostTraffic: locally originated traffic carries no path mark",
        );
    } else if !any_mark {
        p.field(
            PATH,
            "deadPath requires candidates or targets with a mark: a path's connections are found by their ct mark",
        );
    } else if ecmp && mode == "priority" {
        p.field(
            PATH,
            "deadPath cannot single out a weighted-ecmp member in mode priority: every member's connections carry multipathMark",
        );
    } else if mode != "priority" && !has_targets && !ecmp {
        p.field(
            PATH,
            format!(
                "deadPath needs connections that carry their path's mark: mode {} marks packets, not connections; use mode priority, targets or weighted-ecmp",
                if mode.is_empty() { "omitted" } else { mode }
            ),
        );
    }
}

/// The largest weight a kernel multipath next hop carries (`rtnh_hops`
/// is one byte, weight - 1).
const MAX_ECMP_WEIGHT: i64 = 256;

/// `selection: weighted-ecmp` is refused in every shape the kernel cannot
/// carry, with what to use instead, so a policy never reports `Applied`
/// while nothing is rendered for it.
fn weighted_ecmp(s: &EgressRoutePolicySpec, p: &mut Problems<'_>) {
    let mode = s.mode();
    let ecmp = s.selection() == "weighted-ecmp";
    let multipath = [
        ("spec.multipathTable", s.multipath_table),
        ("spec.multipathPriority", s.multipath_priority),
        ("spec.multipathMark", s.multipath_mark),
    ];
    if !(ecmp && mode == "priority") {
        for (path, v) in multipath {
            if v.is_some() {
                p.field(
                    path,
                    "is only used with selection weighted-ecmp and mode priority",
                );
            }
        }
    }
    if !ecmp {
        return;
    }
    // A mode-less policy with marks renders them (spec §8.1.12): with
    // weighted-ecmp every member then needs one to take its share.
    let marked = mode.is_empty()
        && !s.host_traffic()
        && s.candidates.iter().any(|c| c.mark.unwrap_or(0) != 0);
    for (i, c) in s.candidates.iter().enumerate() {
        let base = format!("spec.candidates[{i}]");
        if !c.targets.is_empty() {
            p.field(
                &format!("{base}.targets"),
                "cannot be used with selection weighted-ecmp: a target candidate already spreads its flows over its targets; use selection highest-weight-ready, or make each path a candidate of its own",
            );
        }
        if c.weight.is_some_and(|w| w > MAX_ECMP_WEIGHT) {
            p.field(
                &format!("{base}.weight"),
                format!("must be at most {MAX_ECMP_WEIGHT} with selection weighted-ecmp (the kernel's multipath weight limit); scale the weights down"),
            );
        }
        match mode {
            "priority" if c.targets.is_empty()
                && c.effective_interface().is_none()
                && c.device_from.is_none() =>
            {
                p.at(
                    &base,
                    format!("{base} needs interface, device or deviceFrom with selection weighted-ecmp and mode priority: each member is a next hop of the multipath route"),
                );
            }
            "mark" | "hash" if c.targets.is_empty() && c.mark.unwrap_or(0) < 1 => p.field(
                &format!("{base}.mark"),
                format!("is required with selection weighted-ecmp and mode {mode}: each member takes its share of new connections by its mark"),
            ),
            "" if marked && c.mark.unwrap_or(0) < 1 => p.field(
                &format!("{base}.mark"),
                "is required with selection weighted-ecmp when other candidates set marks: each member takes its share of new connections by its mark; set marks on every candidate or on none",
            ),
            _ => {}
        }
    }
    if mode != "priority" {
        return;
    }
    for (path, v) in multipath {
        if v.is_none() {
            p.field(
                path,
                "is required when selection is weighted-ecmp and mode is priority: the members share a weighted multipath route in the table multipathTable, reached through multipathMark at rule multipathPriority; or use mode hash to spread connections by weight over the candidates' own marks",
            );
        }
    }
    if let Some(t) = s.multipath_table {
        if t < 1 {
            p.field("spec.multipathTable", "must be greater than 0");
        } else if (253..=255).contains(&t) {
            p.field(
                "spec.multipathTable",
                "must not be a reserved table (253 default, 254 main, 255 local)",
            );
        }
    }
    if let Some(v) = s.multipath_priority
        && !(1..=32765).contains(&v)
    {
        p.field("spec.multipathPriority", "must be within 1-32765");
    }
    if let Some(m) = s.multipath_mark
        && m < 1
    {
        p.field("spec.multipathMark", "must be greater than 0");
    }
    for (i, c) in s.candidates.iter().enumerate() {
        let clash = [
            (
                "spec.multipathTable",
                "table",
                s.multipath_table,
                c.route_table(),
            ),
            (
                "spec.multipathPriority",
                "priority",
                s.multipath_priority,
                c.priority.unwrap_or(0),
            ),
            (
                "spec.multipathMark",
                "mark",
                s.multipath_mark,
                c.mark.unwrap_or(0),
            ),
        ];
        for (path, what, mine, theirs) in clash {
            if mine.is_some_and(|v| v > 0 && v == theirs) {
                p.field(
                    path,
                    format!("must differ from spec.candidates[{i}].{what}: the candidate's own path keeps its {what}"),
                );
            }
        }
    }
}

fn candidate(
    s: &EgressRoutePolicySpec,
    c: &EgressCandidate,
    i: usize,
    idx: &NameIndex<'_>,
    p: &mut Problems<'_>,
) {
    let base = format!("spec.candidates[{i}]");
    let family = s.family();
    let host = s.host_traffic();
    let has_targets = !c.targets.is_empty();
    if host {
        if nz(c.mark) {
            p.field(
                &format!("{base}.mark"),
                "must be 0 when hostTraffic is true",
            );
        }
        if has_targets || c.preferred_source.as_deref() != Some("interface") {
            p.at(
                &base,
                format!("{base} hostTraffic requires preferredSource interface and no targets"),
            );
        }
        if c.gateway_source() != "static" || !set(&c.gateway) {
            p.at(
                &base,
                format!("{base} hostTraffic requires a static gateway"),
            );
        }
    }
    if !set(&c.name) && !set(&c.source) && c.effective_interface().is_none() && !has_targets {
        p.at(&base, format!("{base} requires name or source"));
    }
    if c.table.is_some() && c.route_table.is_some() {
        p.at(
            &base,
            format!("{base} must not set both table and routeTable"),
        );
    }
    if c.route_metric.is_some() && c.metric.is_some() {
        p.at(
            &base,
            format!("{base} must not set both routeMetric and metric"),
        );
    }
    if c.weight.is_some_and(|w| w < 0) {
        p.field(&format!("{base}.weight"), "must be non-negative");
    }
    if has_expr(&c.gateway) {
        p.field(
            &format!("{base}.gateway"),
            "status expressions were removed; use gatewayFrom",
        );
    }
    if has_expr(&c.device) {
        p.field(
            &format!("{base}.device"),
            "status expressions were removed; use deviceFrom",
        );
    }
    if let Some(ps) = c.preferred_source.as_deref()
        && !ps.is_empty()
        && ps != "interface"
    {
        p.field(&format!("{base}.preferredSource"), "must be interface");
    }
    if let Some(src) = c.source.as_deref().filter(|s| !s.trim().is_empty()) {
        match split_kind_name(src.trim()) {
            None => p.field(&format!("{base}.source"), "must be Kind/name"),
            Some((k, n)) => {
                if !Kind::parse(k).is_some_and(|k| idx.contains(k, n)) {
                    p.warn(
                        &format!("{base}.source"),
                        format!("{base}.source references {k} \"{n}\", which is not in this config; the candidate is ready only through its health check"),
                    );
                }
            }
        }
    }
    if let Some(x) = c
        .interface
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty())
        && !idx.has_interface_like(x)
    {
        p.at(
            &format!("{base}.interface"),
            format!("{base} references missing Interface, PPPoESession, or DSLiteTunnel \"{x}\""),
        );
    }
    if let Some(h) = c
        .health_check
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        && !idx.contains(Kind::HealthCheck, h)
    {
        p.at(
            &format!("{base}.healthCheck"),
            format!("{base} references missing HealthCheck \"{h}\""),
        );
    }
    if !has_targets && (nz(c.mark) || nz(c.priority) || c.route_table() != 0) {
        if !host && c.mark.unwrap_or(0) < 1 {
            p.field(&format!("{base}.mark"), "must be greater than 0");
        }
        if !(1..=32765).contains(&c.priority.unwrap_or(0)) {
            p.field(&format!("{base}.priority"), "must be within 1-32765");
        }
        if c.route_table() < 1 {
            p.field(&format!("{base}.table"), "must be greater than 0");
        }
    }
    if has_targets {
        if !matches!(s.mode(), "hash" | "priority") {
            p.field(&format!("{base}.targets"), "requires mode hash or priority");
        }
        if c.interface.is_some()
            || c.device.is_some()
            || c.device_from.is_some()
            || c.gateway.is_some()
            || c.gateway_from.is_some()
            || c.gateway_source.is_some()
            || c.table.is_some()
            || c.route_table.is_some()
            || c.mark.is_some()
            || c.route_metric.is_some()
            || c.metric.is_some()
        {
            p.at(&base, format!("{base} target candidates cannot set interface, gatewaySource, gateway, table, mark, or routeMetric directly"));
        }
        for (j, t) in c.targets.iter().enumerate() {
            target(t, &format!("{base}.targets[{j}]"), family, idx, p);
        }
    } else {
        gateway_rules(
            p,
            &base,
            c.gateway_source.as_deref(),
            &c.gateway,
            c.gateway_from.as_ref(),
            family,
            false,
        );
    }
}

fn target(t: &EgressTarget, base: &str, family: &str, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    match t.effective_interface() {
        None => p.field(&format!("{base}.interface"), "is required"),
        Some(x) => {
            if !idx.has_interface_like(x) {
                p.at(
                    &format!("{base}.interface"),
                    format!(
                        "{base} references missing Interface, PPPoESession, or DSLiteTunnel \"{x}\""
                    ),
                );
            }
        }
    }
    if t.table.is_some() && t.route_table.is_some() {
        p.at(
            base,
            format!("{base} must not set both table and routeTable"),
        );
    }
    if t.route_table() < 1 {
        p.field(&format!("{base}.table"), "must be greater than 0");
    }
    if !(1..=32765).contains(&t.priority.unwrap_or(0)) {
        p.field(&format!("{base}.priority"), "must be within 1-32765");
    }
    if t.mark.unwrap_or(0) < 1 {
        p.field(&format!("{base}.mark"), "must be greater than 0");
    }
    if let Some(h) = t
        .health_check
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        && !idx.contains(Kind::HealthCheck, h)
    {
        p.at(
            &format!("{base}.healthCheck"),
            format!("{base} references missing HealthCheck \"{h}\""),
        );
    }
    gateway_rules(
        p,
        base,
        t.gateway_source.as_deref(),
        &t.gateway,
        t.gateway_from.as_ref(),
        family,
        true,
    );
}

pub(super) fn ipv4_route(s: &IPv4RouteSpec, p: &mut Problems<'_>) {
    if s.destination.trim().is_empty() {
        p.field("spec.destination", "is required");
    } else if prefix(&s.destination).is_none() {
        p.field(
            "spec.destination",
            format!(
                "is invalid: netip.ParsePrefix(\"{}\"): not a valid prefix",
                s.destination
            ),
        );
    }
    let ty = s.type_.as_deref().unwrap_or("");
    if !matches!(ty, "" | "unicast" | "blackhole") {
        p.field("spec.type", "must be unicast or blackhole");
    }
    if has_expr(&s.device) {
        p.field(
            "spec.device",
            "status expressions were removed; use deviceFrom",
        );
    }
    if has_expr(&s.gateway) {
        p.field(
            "spec.gateway",
            "status expressions were removed; use gatewayFrom",
        );
    } else if let Some(g) = s.gateway.as_deref().filter(|g| !g.trim().is_empty())
        && ipv4(g).is_none()
    {
        p.field("spec.gateway", "must be an IPv4 address");
    }
    if has_expr(&s.preferred_source) {
        p.field(
            "spec.preferredSource",
            "status expressions are not supported",
        );
    } else if let Some(g) = s
        .preferred_source
        .as_deref()
        .filter(|g| !g.trim().is_empty())
        && ipv4(g).is_none()
    {
        p.field("spec.preferredSource", "must be an IPv4 address");
    }
    if s.metric.is_some_and(|m| m < 0) {
        p.field("spec.metric", "must be non-negative");
    }
    if ty == "blackhole"
        && (set(&s.device)
            || s.device_from.is_some()
            || set(&s.gateway)
            || s.gateway_from.is_some()
            || set(&s.preferred_source))
    {
        p.at("spec.type", "spec.device, spec.deviceFrom, spec.gateway, spec.gatewayFrom, and spec.preferredSource are not valid when spec.type is blackhole");
    }
}

pub(super) fn nat44(s: &NAT44RuleSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let legacy = s.type_.is_some()
        || s.egress_interface.is_some()
        || s.egress_policy_ref.is_some()
        || !s.source_ranges.is_empty();
    if s.is_source_nat_shape() {
        if legacy {
            p.at("spec", "NAT44Rule must not mix outboundInterface/sourceCIDRs/translation with type/egressInterface/sourceRanges fields");
            return;
        }
        source_nat(s, p);
        return;
    }
    let ty = s.type_.as_deref().unwrap_or("");
    if ty != "masquerade" && ty != "snat" {
        p.field("spec.type", "must be masquerade or snat");
    }
    let egress = s
        .egress_interface
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty());
    let policy = s
        .egress_policy_ref
        .as_deref()
        .map(str::trim)
        .filter(|x| !x.is_empty());
    match (egress, policy) {
        (None, None) => p.at(
            "spec",
            "spec.egressInterface or spec.egressPolicyRef is required",
        ),
        (Some(e), _) if !idx.has_interface_like(e) => {
            p.at(
                "spec.egressInterface",
                format!(
                    "references missing egress Interface, PPPoESession, or DSLiteTunnel \"{e}\""
                ),
            );
        }
        _ => {}
    }
    if let Some(pol) = policy {
        // routerd accepts this (a dynamic part may bring the policy later)
        // and reports the rule Pending/EgressPolicyMissing; a typo would
        // look the same, so it is a warning rather than silence.
        if !idx.contains(Kind::EgressRoutePolicy, pol) {
            p.warn(
                "spec.egressPolicyRef",
                format!("spec.egressPolicyRef references missing EgressRoutePolicy \"{pol}\"; the rule stays Pending (EgressPolicyMissing) until the policy appears"),
            );
        }
    }
    if s.source_ranges.is_empty() {
        p.field("spec.sourceRanges", "is required");
    }
    for (path, list) in [
        ("spec.sourceRanges", &s.source_ranges),
        ("spec.destinationCIDRs", &s.destination_cidrs),
        ("spec.excludeDestinationCIDRs", &s.exclude_destination_cidrs),
    ] {
        for (i, c) in list.iter().enumerate() {
            if !is_v4_prefix(c) {
                p.at(
                    &format!("{path}[{i}]"),
                    format!("{path} entries must be IPv4 prefixes"),
                );
            }
        }
    }
    set_refs(p, "spec.destinationSetRefs", &s.destination_set_refs, idx);
    set_refs(
        p,
        "spec.excludeDestinationSetRefs",
        &s.exclude_destination_set_refs,
        idx,
    );
    let has_addr = set(&s.snat_address);
    let has_from = s.snat_address_from.is_some();
    if ty == "snat" {
        if has_addr && has_from {
            p.at(
                "spec.snatAddress",
                "spec.snatAddress and spec.snatAddressFrom are mutually exclusive",
            );
        } else if !has_addr && !has_from {
            p.at(
                "spec.snatAddress",
                "spec.snatAddress or spec.snatAddressFrom is required when type is snat",
            );
        }
        if let Some(a) = s.snat_address.as_deref().filter(|a| !a.trim().is_empty())
            && ipv4(a).is_none()
        {
            p.field(
                "spec.snatAddress",
                "must be an IPv4 address when type is snat",
            );
        }
    } else if has_addr || has_from {
        p.at(
            "spec.snatAddress",
            "spec.snatAddress and spec.snatAddressFrom are only valid when type is snat",
        );
    }
}

fn source_nat(s: &NAT44RuleSpec, p: &mut Problems<'_>) {
    const USING: &str = "when using source NAT fields on NAT44Rule";
    if !set(&s.outbound_interface) {
        p.field("spec.outboundInterface", format!("is required {USING}"));
    }
    if s.source_cidrs.is_empty() {
        p.field("spec.sourceCIDRs", format!("is required {USING}"));
    }
    for (i, c) in s.source_cidrs.iter().enumerate() {
        if !is_v4_prefix(c) {
            p.at(
                &format!("spec.sourceCIDRs[{i}]"),
                "spec.sourceCIDRs entries must be IPv4 prefixes",
            );
        }
    }
    let t = s.translation.clone().unwrap_or_default();
    match t.type_.as_deref().unwrap_or("") {
        "interfaceAddress" => {}
        "address" => {
            if t.address.as_deref().is_none_or(|a| ipv4(a).is_none()) {
                p.field("spec.translation.address", "must be an IPv4 address");
            }
        }
        "pool" => {
            if t.addresses.is_empty() {
                p.field(
                    "spec.translation.addresses",
                    "is required when translation.type is pool",
                );
            }
            for (i, a) in t.addresses.iter().enumerate() {
                if ipv4(a).is_none() {
                    p.field(
                        &format!("spec.translation.addresses[{i}]"),
                        "must be an IPv4 address",
                    );
                }
            }
        }
        _ => p.field(
            "spec.translation.type",
            "must be interfaceAddress, address, or pool",
        ),
    }
    if let Some(pm) = &t.port_mapping {
        match pm.type_.as_deref().unwrap_or("") {
            "" | "auto" | "preserve" => {
                if pm.start.is_some() || pm.end.is_some() {
                    p.at(
                        "spec.translation.portMapping",
                        "spec.translation.portMapping start/end are only valid when type is range",
                    );
                }
            }
            "range" => {
                let (a, b) = (pm.start.unwrap_or(0), pm.end.unwrap_or(0));
                if !(1..=65535).contains(&a) || !(1..=65535).contains(&b) || a > b {
                    p.at(
                        "spec.translation.portMapping",
                        "spec.translation.portMapping range must be within 1-65535 and start must be <= end",
                    );
                }
            }
            _ => p.field(
                "spec.translation.portMapping.type",
                "must be auto, preserve, or range",
            ),
        }
    }
}

pub(super) fn address_set(s: &IPAddressSetSpec, p: &mut Problems<'_>) {
    if s.addresses.is_empty() && s.names.is_empty() {
        p.at("spec.addresses", "spec.addresses or spec.names is required");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, n) in s.names.iter().enumerate() {
        let path = format!("spec.names[{i}]");
        let n = n.trim();
        if n.is_empty() {
            p.field(&path, "must not be empty");
        } else if n.contains([' ', '\t', '\n', '\r', '/', ',']) {
            p.field(&path, "is invalid: must be a single DNS domain");
        } else if !seen.insert(n) {
            p.field(&path, format!("duplicates name \"{n}\""));
        }
    }
    if !s.refresh_interval.is_empty()
        && let Err(e) = GoDuration::parse(&s.refresh_interval)
    {
        p.field("spec.refreshInterval", format!("is invalid: {e}"));
    }
    let family = s.family.as_deref().unwrap_or("");
    if !matches!(family, "" | "ipv4" | "ipv6") {
        p.field("spec.family", "must be ipv4 or ipv6");
    }
    let family = if family.is_empty() { "ipv4" } else { family };
    for (i, a) in s.addresses.iter().enumerate() {
        let ok = match prefix(a).or_else(|| ip(a).map(ipnet::IpNet::from)) {
            Some(n) => family_matches(&n, family),
            None => false,
        };
        if !ok {
            p.at(
                &format!("spec.addresses[{i}]"),
                format!(
                    "spec.addresses[{i}] must be an {} address or prefix",
                    if family == "ipv6" { "IPv6" } else { "IPv4" }
                ),
            );
        }
    }
}

/// Kinds routerd counts as interfaces for an IPv4StaticAddress besides the
/// interface-like kinds this daemon manages (its config index).
const ROUTERD_LINK_KINDS: &[&str] = &[
    "Bridge",
    "VXLANSegment",
    "WireGuardInterface",
    "TailscaleNode",
    "VRF",
    "VXLANTunnel",
];

pub(super) fn static_address(s: &IPv4StaticAddressSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let i = s.interface.trim();
    let routerd_link = idx.contains(Kind::TunnelInterface, i)
        || ROUTERD_LINK_KINDS
            .iter()
            .any(|k| idx.contains_unmanaged(k, i));
    if i.is_empty() {
        p.field("spec.interface", "is required");
    } else if !idx.has_interface_like(i) && !routerd_link {
        p.at(
            "spec.interface",
            format!("references missing Interface, PPPoESession, or DSLiteTunnel \"{i}\""),
        );
    }
    if s.address.trim().is_empty() {
        p.field("spec.address", "is required");
    } else if !matches!(
        s.address.trim().parse::<ipnet::IpNet>(),
        Ok(ipnet::IpNet::V4(_))
    ) {
        p.field(
            "spec.address",
            "must be an IPv4 address with prefix length, such as 192.168.10.1/24",
        );
    }
    if s.allow_overlap == Some(true)
        && s.allow_overlap_reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        p.field(
            "spec.allowOverlapReason",
            "is required when allowOverlap is true",
        );
    }
}

pub(super) fn dhcpv4_client(s: &DHCPv4ClientSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let i = s.interface.trim();
    let routerd_link = idx.contains(Kind::TunnelInterface, i)
        || ROUTERD_LINK_KINDS
            .iter()
            .any(|k| idx.contains_unmanaged(k, i));
    if i.is_empty() {
        p.field("spec.interface", "is required");
    } else if !idx.has_interface_like(i) && !routerd_link {
        p.at(
            "spec.interface",
            format!("references missing Interface \"{i}\""),
        );
    }
    if let Some(a) = s.requested_address.as_deref().filter(|a| !a.is_empty())
        && ipv4(a).is_none()
    {
        p.field("spec.requestedAddress", "must be an IPv4 address");
    }
    if s.hostname
        .as_deref()
        .is_some_and(|h| h.contains([' ', '\t', '\n', '\r']))
    {
        p.field("spec.hostname", "must not contain whitespace");
    }
}

pub(super) fn pppoe(s: &PPPoESessionSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let i = s.interface.trim();
    if i.is_empty() {
        p.field("spec.interface", "is required");
    } else if !idx.contains(Kind::Interface, i) {
        p.at(
            "spec.interface",
            format!("references missing Interface \"{i}\""),
        );
    }
    if let Some(m) = s.mtu
        && m != 0
        && !(576..=1500).contains(&m)
    {
        p.field("spec.mtu", "must be within 576-1500");
    }
    if let Some(m) = s.mru
        && m != 0
        && !(576..=1500).contains(&m)
    {
        p.field("spec.mru", "must be within 576-1500");
    }
    if s.username.as_deref().is_none_or(str::is_empty) {
        p.field("spec.username", "is required");
    }
    let has_password = s.password.as_ref().is_some_and(|x| !x.expose().is_empty());
    let has_file = s.password_file.as_deref().is_some_and(|x| !x.is_empty());
    match (has_password, has_file) {
        (false, false) => p.at(
            "spec.password",
            "spec.password or spec.passwordFile is required",
        ),
        (true, true) => p.at(
            "spec.password",
            "spec.password and spec.passwordFile are mutually exclusive",
        ),
        _ => {}
    }
    if let Some(n) = s.ifname.as_deref().filter(|n| !n.is_empty()) {
        if n.contains([' ', '\t', '\n', '/']) {
            p.field("spec.ifname", "contains invalid whitespace or slash");
        } else if n.len() > 15 {
            p.field("spec.ifname", "must be 15 characters or fewer");
        }
    } else if format!("ppp-{}", resource_name(p)).len() > 15 {
        p.field(
            "spec.ifname",
            "is required when default PPP interface name exceeds 15 characters",
        );
    }
    for (path, v) in [
        ("spec.serviceName", &s.service_name),
        ("spec.acName", &s.ac_name),
    ] {
        if v.as_deref().is_some_and(|x| x.contains(['\n', '\r'])) {
            p.field(path, "contains invalid newline");
        }
    }
    // routerd's messages name the pair; the path names the negative one.
    for (a, b) in [
        (
            ("spec.lcpInterval", s.lcp_interval),
            ("spec.lcpFailure", s.lcp_failure),
        ),
        (
            ("spec.lcpEchoInterval", s.lcp_echo_interval),
            ("spec.lcpEchoFailure", s.lcp_echo_failure),
        ),
    ] {
        if let Some((path, _)) = [a, b].into_iter().find(|(_, v)| v.is_some_and(|x| x < 0)) {
            p.at(path, format!("{} and {} must be non-negative", a.0, b.0));
        }
    }
    if !matches!(
        s.auth_method.as_deref().unwrap_or(""),
        "" | "chap" | "pap" | "both"
    ) {
        p.field("spec.authMethod", "must be chap, pap, or both");
    }

    if !matches!(s.secret_encoding.as_deref().unwrap_or(""), "" | "plain") {
        p.field("spec.secretEncoding", "must be plain");
    }
}

/// `metadata.name` from the id the collector reports for
/// (`apiVersion/Kind/name`).
fn resource_name<'a>(p: &'a Problems<'_>) -> &'a str {
    p.id().rsplit('/').next().unwrap_or("")
}
