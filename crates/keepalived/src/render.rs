//! keepalived.conf and conntrackd.conf as pure functions of the plan, so
//! goldens pin every byte and a reload happens only when a byte changes.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::plan::{GatewayPlan, GroupPlan, Paths, SyncPlan};

/// conntrackd's default sync port (UDP unicast with one peer; multicast
/// group number with several).
pub const SYNC_PORT: u16 = 3780;
/// Multicast group of the FTFW sync with more than two members.
pub const SYNC_GROUP_V4: &str = "225.0.0.50";

fn push(out: &mut String, line: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = out.write_fmt(line);
    out.push('\n');
}

/// keepalived.conf for `plan`, or `None` when this node is a member of
/// no gateway (keepalived is then not run at all).
///
/// One VRRP instance per gateway carries both the external virtual IP and
/// the internal next hop, and tracks the public interface, so the two
/// addresses move together (what a sync group of two instances would do,
/// without a second advert stream on the public link; docs/adr/0017).
pub fn keepalived_conf(plan: &GroupPlan, paths: &Paths) -> Option<String> {
    if plan.gateways.is_empty() {
        return None;
    }
    let mut o = String::new();
    push(
        &mut o,
        format_args!(
            "# Rendered by routerd for node {}; every change is replaced (docs/adr/0017).",
            plan.node
        ),
    );
    o.push_str("global_defs {\n");
    push(
        &mut o,
        format_args!("    router_id {}", crate::plan::sanitize(&plan.node)),
    );
    push(&mut o, format_args!("    vrrp_version 3"));
    push(
        &mut o,
        format_args!("    notify_fifo \"{}\"", paths.notify_fifo().display()),
    );
    // Fast failover: announce the moved addresses at once, and let a
    // lower-priority master hear a higher one immediately.
    push(&mut o, format_args!("    vrrp_garp_master_delay 1"));
    push(&mut o, format_args!("    vrrp_garp_master_repeat 3"));
    push(
        &mut o,
        format_args!("    vrrp_higher_prio_send_advert true"),
    );
    o.push_str("}\n");
    for g in &plan.gateways {
        o.push('\n');
        track_file(&mut o, g);
    }
    for g in &plan.gateways {
        o.push('\n');
        instance(&mut o, g);
    }
    Some(o)
}

fn track_name(g: &GatewayPlan) -> String {
    format!("{}_suitable", g.instance())
}

fn track_file(o: &mut String, g: &GatewayPlan) {
    push(o, format_args!("track_file {} {{", track_name(g)));
    push(o, format_args!("    file \"{}\"", g.track_file.display()));
    // Weight 0: any non-zero value puts the instance in FAULT at once, so
    // an unsuitable node steps down without waiting for a priority race.
    push(o, format_args!("    weight 0"));
    o.push_str("}\n");
}

fn advert(cs: u32) -> String {
    format!("{}.{:02}", cs / 100, cs % 100)
}

fn instance(o: &mut String, g: &GatewayPlan) {
    push(
        o,
        format_args!(
            "# gateway {} ({}), preferred node {}",
            g.name,
            g.id,
            g.preferred().unwrap_or("-")
        ),
    );
    push(o, format_args!("vrrp_instance {} {{", g.instance()));
    // Every node starts as BACKUP: nopreempt requires it, and the election
    // then decides by priority alone.
    push(o, format_args!("    state BACKUP"));
    push(o, format_args!("    interface {}", g.vrrp_dev));
    push(o, format_args!("    virtual_router_id {}", g.vrid));
    push(o, format_args!("    priority {}", g.priority));
    push(o, format_args!("    advert_int {}", advert(g.advert_cs)));
    if g.preempt {
        if g.preempt_delay_s > 0 {
            push(o, format_args!("    preempt_delay {}", g.preempt_delay_s));
        }
    } else {
        push(o, format_args!("    nopreempt"));
    }
    push(o, format_args!("    unicast_src_ip {}", g.local));
    o.push_str("    unicast_peer {\n");
    for m in g.members.iter().filter(|m| m.address != g.local) {
        push(o, format_args!("        {}", m.address));
    }
    o.push_str("    }\n");
    let vips: Vec<_> = g.external.iter().chain(g.internal.iter()).collect();
    if !vips.is_empty() {
        o.push_str("    virtual_ipaddress {\n");
        for v in vips {
            push(o, format_args!("        {} dev {}", v.addr, v.dev));
        }
        o.push_str("    }\n");
    }
    // The advert interface is tracked by keepalived already; the others
    // (public, internal) put the instance in FAULT when they go down.
    let mut devs: Vec<&str> = Vec::new();
    for d in std::iter::once(g.public_dev.as_str()).chain(g.internal.iter().map(|i| i.dev.as_str()))
    {
        if d != g.vrrp_dev && !devs.contains(&d) {
            devs.push(d);
        }
    }
    if !devs.is_empty() {
        o.push_str("    track_interface {\n");
        for d in devs {
            push(o, format_args!("        {d}"));
        }
        o.push_str("    }\n");
    }
    o.push_str("    track_file {\n");
    push(o, format_args!("        {}", track_name(g)));
    o.push_str("    }\n");
    o.push_str("}\n");
}

fn family_key(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// conntrackd.conf (FTFW) for `plan`, or `None` when no gateway of this
/// node syncs connections (primary-IP mode cannot keep them: the source
/// address changes on failover).
pub fn conntrackd_conf(plan: &GroupPlan, paths: &Paths) -> Option<String> {
    let s: &SyncPlan = plan.sync.as_ref()?;
    let mut o = String::new();
    push(
        &mut o,
        format_args!(
            "# Rendered by routerd for node {}; FTFW sync between gateway members (docs/adr/0017).",
            plan.node
        ),
    );
    let fam = family_key(&s.local);
    o.push_str("Sync {\n");
    o.push_str("    Mode FTFW {\n");
    // The external cache is what the new master commits on promotion.
    push(&mut o, format_args!("        DisableExternalCache off"));
    push(&mut o, format_args!("        StartupResync on"));
    o.push_str("    }\n");
    if s.peers.len() == 1 && s.local.is_ipv4() {
        o.push_str("    UDP {\n");
        push(&mut o, format_args!("        {fam}_address {}", s.local));
        push(
            &mut o,
            format_args!("        {fam}_Destination_Address {}", s.peers[0]),
        );
        push(&mut o, format_args!("        Port {SYNC_PORT}"));
        push(&mut o, format_args!("        Interface {}", s.dev));
        push(&mut o, format_args!("        Checksum on"));
        o.push_str("    }\n");
    } else {
        o.push_str("    Multicast {\n");
        push(&mut o, format_args!("        IPv4_address {SYNC_GROUP_V4}"));
        push(&mut o, format_args!("        Group {SYNC_PORT}"));
        push(&mut o, format_args!("        IPv4_interface {}", s.local));
        push(&mut o, format_args!("        Interface {}", s.dev));
        push(&mut o, format_args!("        Checksum on"));
        o.push_str("    }\n");
    }
    o.push_str("}\n");
    o.push_str("General {\n");
    push(&mut o, format_args!("    HashSize 8192"));
    push(&mut o, format_args!("    HashLimit 65536"));
    push(&mut o, format_args!("    LogFile off"));
    push(&mut o, format_args!("    Syslog off"));
    push(
        &mut o,
        format_args!("    LockFile {}", paths.file("conntrackd.lock").display()),
    );
    o.push_str("    UNIX {\n");
    push(
        &mut o,
        format_args!("        Path {}", paths.file("conntrackd.ctl").display()),
    );
    o.push_str("    }\n");
    push(&mut o, format_args!("    NetlinkBufferSize 2097152"));
    push(
        &mut o,
        format_args!("    NetlinkBufferSizeMaxGrowth 8388608"),
    );
    o.push_str("    Filter From Userspace {\n");
    o.push_str("        Protocol Accept {\n");
    o.push_str("            TCP\n            UDP\n            ICMP\n");
    o.push_str("        }\n");
    // The members' own traffic (VRRP, sync) is not egress traffic.
    o.push_str("        Address Ignore {\n");
    push(&mut o, format_args!("            IPv4_address 127.0.0.1"));
    push(
        &mut o,
        format_args!("            {fam}_address {}", s.local),
    );
    for p in &s.peers {
        push(
            &mut o,
            format_args!("            {}_address {p}", family_key(p)),
        );
    }
    o.push_str("        }\n");
    o.push_str("    }\n");
    o.push_str("}\n");
    Some(o)
}
