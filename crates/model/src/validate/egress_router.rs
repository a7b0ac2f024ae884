//! Validation of EgressRouter (issue #15): OpenShift's field rules plus
//! the checks OpenShift leaves out (duplicate port rules that would shadow
//! each other, mixed address families, unused addresses).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::refs::NameIndex;
use crate::resource::Resource;
use crate::spec::egress_router::{
    EgressRouterListen, EgressRouterSpec, LISTEN_ANNOTATION, MACVLAN_MODES, OPENSHIFT_NETWORK_API,
    RedirectProtocol,
};
use crate::{Kind, Problems};

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Checks one EgressRouter; every problem is reported, each at its path.
pub(super) fn check(r: &Resource, s: &EgressRouterSpec, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let openshift = r.api_version == OPENSHIFT_NETWORK_API;
    // The family of the router is the first valid address's; everything
    // else must agree because one nft table (ip or ip6) carries it.
    let mut fam: Option<(&'static str, String)> = None;
    let mut check_family = |p: &mut Problems<'_>, path: &str, a: &IpAddr| match &fam {
        None => fam = Some((family(a), path.to_string())),
        Some((f, at)) if *f != family(a) => p.field(
            path,
            format!(
                "{} is {} but {at} is {f}: an EgressRouter carries one address family",
                a,
                family(a)
            ),
        ),
        Some(_) => {}
    };

    if s.addresses.is_empty() {
        p.field(
            "spec.addresses",
            "is required: list at least one reserved address (ip in CIDR form)",
        );
    }
    let mut seen_addr: HashMap<IpAddr, usize> = HashMap::new();
    for (i, a) in s.addresses.iter().enumerate() {
        let path = format!("spec.addresses[{i}].ip");
        let ip = a.ip.trim();
        match ip.parse::<IpNet>() {
            Ok(net) if ip.contains('/') => {
                let addr = net.addr();
                check_family(p, &path, &addr);
                if let Some(first) = seen_addr.insert(addr, i) {
                    p.field(
                        &path,
                        format!("{addr} is also spec.addresses[{first}].ip: each reserved address is listed once"),
                    );
                }
                if let Some(g) = a
                    .gateway
                    .as_deref()
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                {
                    let gpath = format!("spec.addresses[{i}].gateway");
                    match g.parse::<IpAddr>() {
                        Ok(gw) => {
                            if family(&gw) != family(&addr) {
                                p.field(
                                    &gpath,
                                    format!(
                                        "{gw} is {} but the address {addr} is {}",
                                        family(&gw),
                                        family(&addr)
                                    ),
                                );
                            } else if !net.contains(&gw) {
                                p.warn(
                                    &gpath,
                                    format!("{gpath} {gw} is outside {}: the gateway must be reachable on the master's link", net.trunc()),
                                );
                            }
                        }
                        Err(_) => p.field(&gpath, format!("must be an IP address, not \"{g}\"")),
                    }
                }
            }
            _ => p.field(
                &path,
                format!("must be an IP address in CIDR form (like 192.168.12.99/24), not \"{ip}\""),
            ),
        }
    }

    let mode = s.mode();
    if mode != "Redirect" {
        p.field(
            "spec.mode",
            format!("\"{mode}\" is not supported: Redirect is the default and only mode (OpenShift's HTTP and DNS proxy modes are not implemented)"),
        );
    }
    let mm = s.macvlan_mode();
    if !MACVLAN_MODES.contains(&mm) {
        p.field(
            "spec.networkInterface.macvlan.mode",
            format!("must be one of Bridge, Private, VEPA or Passthru, not \"{mm}\""),
        );
    }
    if let Some(m) = s.master()
        && (m.len() > 15 || m.contains('/') || m.contains(char::is_whitespace))
    {
        p.field(
            "spec.networkInterface.macvlan.master",
            format!("\"{m}\" is not a valid kernel interface name"),
        );
    }

    let mut seen: HashMap<(i64, RedirectProtocol), usize> = HashMap::new();
    for (i, rule) in s.rules().iter().enumerate() {
        let base = format!("spec.redirect.redirectRules[{i}]");
        let dpath = format!("{base}.destinationIP");
        let one = rule.destination_ip.trim();
        if openshift && rule.uses_routerd_fields() {
            let field = if !rule.destination_ips.is_empty() {
                "destinationIPs"
            } else if rule.health_check.is_some() {
                "healthCheck"
            } else {
                "healthChecks"
            };
            p.field(
                &format!("{base}.{field}"),
                format!("is routerd's field and not part of {OPENSHIFT_NETWORK_API}; use apiVersion net.routerd.net/v1alpha1"),
            );
        }
        if !one.is_empty() && !rule.destination_ips.is_empty() {
            p.field(
                &format!("{base}.destinationIPs"),
                "is exclusive with destinationIP: list every destination in destinationIPs",
            );
        } else if !one.is_empty() || rule.destination_ips.is_empty() {
            match one.parse::<IpAddr>() {
                Ok(d) => check_family(p, &dpath, &d),
                Err(_) if one.is_empty() && !openshift => p.field(
                    &dpath,
                    "is required: set destinationIP, or destinationIPs for several destinations",
                ),
                Err(_) => p.field(&dpath, format!("must be an IP address, not \"{one}\"")),
            }
        } else {
            let mut seen_dest: HashMap<IpAddr, usize> = HashMap::new();
            for (j, d) in rule.destination_ips.iter().enumerate() {
                let path = format!("{base}.destinationIPs[{j}]");
                match d.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        check_family(p, &path, &ip);
                        if let Some(first) = seen_dest.insert(ip, j) {
                            p.field(
                                &path,
                                format!("{ip} is also {base}.destinationIPs[{first}]: each destination is listed once"),
                            );
                        }
                    }
                    Err(_) => p.field(
                        &path,
                        format!("must be an IP address, not \"{}\"", d.trim()),
                    ),
                }
            }
        }
        let checks = rule
            .health_check
            .iter()
            .map(|h| (format!("{base}.healthCheck"), h))
            .chain(
                rule.health_checks
                    .iter()
                    .enumerate()
                    .map(|(j, h)| (format!("{base}.healthChecks[{j}]"), h)),
            );
        for (path, h) in checks {
            health_ref(&path, h, idx, p);
        }
        let port_ok = (1..=65535).contains(&rule.port);
        if !port_ok {
            p.field(
                &format!("{base}.port"),
                format!("must be within 1-65535, not {}", rule.port),
            );
        }
        if let Some(t) = rule.target_port
            && !(1..=65535).contains(&t)
        {
            p.field(
                &format!("{base}.targetPort"),
                format!("must be within 1-65535, not {t}"),
            );
        }
        match RedirectProtocol::parse(&rule.protocol) {
            Some(proto) => {
                if port_ok && let Some(first) = seen.insert((rule.port, proto), i) {
                    p.field(
                            &format!("{base}.port"),
                            format!(
                                "{}/{} is also redirected by spec.redirect.redirectRules[{first}]: each (port, protocol) pair may appear once (positions {first} and {i})",
                                rule.port,
                                proto.as_str()
                            ),
                        );
                }
            }
            None => p.field(
                &format!("{base}.protocol"),
                format!("must be TCP, UDP or SCTP, not \"{}\"", rule.protocol.trim()),
            ),
        }
    }
    if let Some(f) = s.fallback() {
        match f.parse::<IpAddr>() {
            Ok(a) => check_family(p, "spec.redirect.fallbackIP", &a),
            Err(_) => p.field(
                "spec.redirect.fallbackIP",
                format!("must be an IP address, not \"{f}\""),
            ),
        }
    }
    if let Some(h) = s
        .redirect
        .as_ref()
        .and_then(|x| x.fallback_health_check.as_ref())
    {
        let path = "spec.redirect.fallbackHealthCheck";
        if openshift {
            p.field(
                path,
                format!("is routerd's field and not part of {OPENSHIFT_NETWORK_API}; use apiVersion net.routerd.net/v1alpha1"),
            );
        } else if s.fallback().is_none() {
            p.field(
                path,
                "needs spec.redirect.fallbackIP: there is no fallback to guard",
            );
        }
        health_ref(path, h, idx, p);
    }
    if s.rules().is_empty() && s.fallback().is_none() {
        p.warn(
            "spec.redirect",
            "has no redirect rules and no fallbackIP: every connection to it is refused",
        );
    }

    if openshift && s.listen.is_some() {
        p.field(
            "spec.listen",
            format!("is routerd's field and not part of {OPENSHIFT_NETWORK_API}; use apiVersion net.routerd.net/v1alpha1, or the annotation {LISTEN_ANNOTATION} to keep OpenShift's shape"),
        );
    }
    if let Some(l) = &s.listen {
        listen(l, "spec.listen", p, &mut check_family);
    } else if let Some(v) = r.metadata.annotations.get(LISTEN_ANNOTATION) {
        let l = EgressRouterListen::from_annotation(v);
        let path = format!("metadata.annotations.{LISTEN_ANNOTATION}");
        if l.is_empty() {
            p.field(&path, "lists no interface or address");
        }
        listen(&l, &path, p, &mut check_family);
    }
}

/// A HealthCheck reference: a name that exists, like a candidate's.
fn health_ref(path: &str, name: &str, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    let n = name.trim();
    if n.is_empty() {
        p.field(path, "must name a HealthCheck");
    } else if !idx.contains(Kind::HealthCheck, n) {
        p.at(
            path,
            format!("{path} references missing HealthCheck \"{n}\""),
        );
    }
}

fn listen(
    l: &EgressRouterListen,
    path: &str,
    p: &mut Problems<'_>,
    check_family: &mut impl FnMut(&mut Problems<'_>, &str, &IpAddr),
) {
    for (i, ifname) in l.interfaces.iter().enumerate() {
        let n = ifname.trim();
        if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) {
            p.field(
                &format!("{path}.interfaces[{i}]"),
                format!("\"{n}\" is not a valid kernel interface name"),
            );
        }
    }
    for (i, a) in l.addresses.iter().enumerate() {
        let ap = format!("{path}.addresses[{i}]");
        match a.trim().parse::<IpAddr>() {
            Ok(ip) => check_family(p, &ap, &ip),
            Err(_) => p.field(&ap, format!("must be an IP address, not \"{}\"", a.trim())),
        }
    }
}
