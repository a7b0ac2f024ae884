//! Address capture (Selective Address Mobility): per-address proxy ARP and
//! the per-interface IPv4 forwarding it needs.
//!
//! A claimed /32 is captured with a neighbour proxy entry
//! (`ip neigh add proxy ADDR dev IF`), never with the interface-wide
//! `proxy_arp` switch, which would answer for every address the host can
//! route and so capture the whole LAN. The kernel answers a proxied request
//! only when the interface forwards IPv4 and the address routes out of
//! another device (the delivery route), so capture also needs
//! `net.ipv4.conf.<if>.forwarding=1` on the capture interface, and delivery
//! needs it on the devices the traffic enters by.
//!
//! Ownership: proxy entries carry no marker the kernel keeps, so, like
//! addresses, routerd owns exactly those its ledger says it added; an
//! identical entry someone else made is used as it is and never removed.
//! Forwarding is a setting, not an object: routerd turns it on only where
//! it is off, records the value it found, and writes that value back when
//! the last owner that needed it goes. A device that already forwarded is
//! never recorded, so routerd never turns off what it did not turn on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::dataplane::Observed;
use crate::ir::DesiredState;
use crate::ledger::Ledger;
use crate::plan::Op;

/// The kernel identity of a proxy entry: address and device.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NeighProxyKey {
    /// Kernel device name the entry answers on.
    pub device: String,
    /// The proxied IPv4 address.
    pub address: Ipv4Addr,
}

impl fmt::Display for NeighProxyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.address, self.device)
    }
}

/// A neighbour proxy entry: the host answers ARP requests for `address`
/// arriving on `device` with the device's own MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NeighProxy {
    /// Kernel device name.
    pub device: String,
    /// The captured address.
    pub address: Ipv4Addr,
    /// Send a gratuitous ARP for the address from the device when the
    /// entry is added (`gratuitousARP`), so neighbours that cached the
    /// previous holder's MAC move at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announce: bool,
    /// Resource id that wants the entry (empty for observed ones).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

impl NeighProxy {
    /// An entry without owner.
    pub fn new(device: impl Into<String>, address: Ipv4Addr) -> Self {
        NeighProxy {
            device: device.into(),
            address,
            announce: false,
            owner: String::new(),
        }
    }

    /// The kernel identity.
    pub fn key(&self) -> NeighProxyKey {
        NeighProxyKey {
            device: self.device.clone(),
            address: self.address,
        }
    }
}

/// Renders the `ip neigh` arguments (after `ip neigh <verb>`).
impl fmt::Display for NeighProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy {} dev {}", self.address, self.device)
    }
}

/// IPv4 forwarding wanted on a device (`net.ipv4.conf.<device>.forwarding=1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Forwarding {
    /// Kernel device name.
    pub device: String,
    /// Resource id that needs it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

/// What the ledger keeps of a forwarding switch routerd turned on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingEntry {
    /// The resource it was turned on for.
    pub owner: String,
    /// The value found before routerd changed it, written back when the
    /// last owner goes.
    pub previous: bool,
}

/// The capture part of a plan.
#[derive(Default)]
pub(crate) struct CaptureDiff {
    /// Proxy entries removed: capture stops before anything else moves, so
    /// two sites never both answer for an address.
    pub(crate) stops: Vec<Op>,
    /// Forwarding turned on (after the delivery routes are in).
    pub(crate) forwarding_on: Vec<Op>,
    /// Proxy entries added, once routes and forwarding are there.
    pub(crate) starts: Vec<Op>,
    /// Forwarding restored to the value routerd found, after the routes
    /// that used it went.
    pub(crate) restores: Vec<Op>,
}

/// Proxy entries and forwarding: entries added when absent (one already
/// there is used, never adopted), owned ones removed when nobody wants them
/// (unless the owner is retained); forwarding turned on where it is off and
/// restored when no desired owner needs it.
pub(crate) fn diff_capture(
    desired: &DesiredState,
    observed: &Observed,
    ledger: &Ledger,
) -> CaptureDiff {
    let mut out = CaptureDiff::default();
    if desired.neigh_proxies.is_empty()
        && desired.forwarding.is_empty()
        && ledger.neigh_proxies.is_empty()
        && ledger.forwarding.is_empty()
    {
        return out;
    }
    let present: BTreeSet<NeighProxyKey> =
        observed.neigh_proxies.iter().map(NeighProxy::key).collect();
    let wanted: BTreeSet<NeighProxyKey> =
        desired.neigh_proxies.iter().map(NeighProxy::key).collect();
    for (key, owner) in &ledger.neigh_proxies {
        if wanted.contains(key) || desired.retained.contains(owner) || !present.contains(key) {
            continue;
        }
        out.stops.push(Op::DeleteNeighProxy {
            proxy: NeighProxy {
                device: key.device.clone(),
                address: key.address,
                announce: false,
                owner: owner.clone(),
            },
        });
    }
    let mut announces = Vec::new();
    for p in &desired.neigh_proxies {
        if !present.contains(&p.key()) {
            out.starts.push(Op::AddNeighProxy { proxy: p.clone() });
            if p.announce {
                announces.push(Op::AnnounceNeighProxy { proxy: p.clone() });
            }
        }
    }
    out.starts.extend(announces);
    let mut seen = BTreeSet::new();
    for f in &desired.forwarding {
        if !seen.insert(f.device.as_str()) {
            continue;
        }
        // Unknown (the dataplane does not read it): assume off, so the
        // write happens and the ledger learns the value to restore.
        let on = observed.ipv4_forwarding.get(&f.device).copied();
        if on == Some(true) {
            continue;
        }
        let previous = ledger
            .forwarding
            .get(&f.device)
            .map_or(on.unwrap_or(false), |e| e.previous);
        out.forwarding_on.push(Op::SetForwarding {
            device: f.device.clone(),
            enabled: true,
            previous,
            restore: false,
            owner: f.owner.clone(),
        });
    }
    for (device, entry) in &ledger.forwarding {
        if seen.contains(device.as_str()) || desired.retained.contains(&entry.owner) {
            continue;
        }
        let Some(now) = observed.ipv4_forwarding.get(device).copied() else {
            // The device went; the ledger forgets it on commit.
            continue;
        };
        out.restores.push(Op::SetForwarding {
            device: device.clone(),
            enabled: entry.previous,
            previous: now,
            restore: true,
            owner: entry.owner.clone(),
        });
    }
    out
}

/// Ledger entries still backed by the kernel (commit): proxy entries the
/// kernel holds, forwarding of devices that still exist.
pub(crate) fn commit_capture(
    ledger: &Ledger,
    observed: &Observed,
) -> (
    BTreeMap<NeighProxyKey, String>,
    BTreeMap<String, ForwardingEntry>,
) {
    let present: BTreeSet<NeighProxyKey> =
        observed.neigh_proxies.iter().map(NeighProxy::key).collect();
    let proxies = ledger
        .neigh_proxies
        .iter()
        .filter(|(k, _)| present.contains(k))
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    let forwarding = ledger
        .forwarding
        .iter()
        .filter(|(d, _)| observed.ipv4_forwarding.contains_key(*d) || observed.has_link(d))
        .map(|(d, e)| (d.clone(), e.clone()))
        .collect();
    (proxies, forwarding)
}
