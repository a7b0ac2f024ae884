//! The ownership ledger: what routerd created, and for whom.
//!
//! Markers (route protocol, rule priority range, `routerd_` table names) say
//! what routerd *may* own; the ledger says what it *did* create. Only objects
//! in both are ever deleted, so a foreign route that happens to carry our
//! protocol number or a rule an operator put in our priority range survives.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::capture::{ForwardingEntry, NeighProxyKey};
use crate::dataplane::Observed;
use crate::ir::{AddressKey, DesiredState, NftTableKey, RTPROT_ROUTERD, RouteKey, RuleKey};
use crate::plan::{Op, Plan};

/// Which kernel objects routerd may consider its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// Protocol of routerd's routes and rules.
    pub route_protocol: u8,
    /// Rule priorities routerd manages (candidate priorities are 1-32765).
    pub rule_priorities: RangeInclusive<u32>,
    /// Devices routerd never creates, changes or removes anything on
    /// (`spec.reconcile.protectedInterfaces`, kernel names).
    pub protected_devices: BTreeSet<String>,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            route_protocol: RTPROT_ROUTERD,
            rule_priorities: 1..=32765,
            protected_devices: BTreeSet::new(),
        }
    }
}

impl Ownership {
    /// The protected device a route uses, if any.
    pub fn protected_device<'a>(&self, route: &'a crate::ir::Route) -> Option<&'a str> {
        if self.protected_devices.is_empty() {
            return None;
        }
        route
            .device
            .iter()
            .chain(route.nexthops.iter().map(|n| &n.device))
            .find(|d| self.protected_devices.contains(*d))
            .map(String::as_str)
    }
}

/// What the ledger knows about one owned nft table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftEntry {
    /// Contributing resource ids.
    pub owners: BTreeSet<String>,
    /// Digest of the desired table last loaded.
    pub digest: String,
    /// Fingerprint of the kernel's listing right after that load; a
    /// different fingerprint later means someone changed the table.
    pub fingerprint: String,
    /// [`NftTable::skeleton_digest`] of that table: when the desired one
    /// has the same, only set elements changed and they are updated in
    /// place. Empty (older ledgers): the table is replaced.
    ///
    /// [`NftTable::skeleton_digest`]: crate::ir::NftTable::skeleton_digest
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub skeleton: String,
}

/// The ownership ledger. Persist it (JSON) across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LedgerFile", into = "LedgerFile")]
pub struct Ledger {
    /// Owned routes and their owner.
    pub routes: BTreeMap<RouteKey, String>,
    /// Owned rules and their owner.
    pub rules: BTreeMap<RuleKey, String>,
    /// Owned nft tables.
    pub nft: BTreeMap<NftTableKey, NftEntry>,
    /// Addresses routerd added, and for whom. Addresses have no marker,
    /// so this is the only thing that makes one routerd's.
    pub addresses: BTreeMap<AddressKey, String>,
    /// Links routerd created (by name), and for whom. Like addresses,
    /// links carry no marker the kernel keeps: this is what makes one
    /// routerd's.
    pub links: BTreeMap<String, String>,
    /// The ifindex each owned link had when routerd last saw it: a link of
    /// that name with another index was created by someone else.
    pub link_indexes: BTreeMap<String, u32>,
    /// Neighbour proxy entries routerd added (capture), and for whom: no
    /// kernel-kept marker, so this alone makes one routerd's.
    pub neigh_proxies: BTreeMap<NeighProxyKey, String>,
    /// Devices whose IPv4 forwarding routerd turned on, with the value it
    /// found (written back when the last owner goes).
    pub forwarding: BTreeMap<String, ForwardingEntry>,
}

#[derive(Serialize, Deserialize, Default)]
struct LedgerFile {
    #[serde(default)]
    routes: Vec<(RouteKey, String)>,
    #[serde(default)]
    rules: Vec<(RuleKey, String)>,
    #[serde(default)]
    nft: Vec<(NftTableKey, NftEntry)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<(AddressKey, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    links: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    link_indexes: Vec<(String, u32)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    neigh_proxies: Vec<(NeighProxyKey, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forwarding: Vec<(String, ForwardingEntry)>,
}

impl From<LedgerFile> for Ledger {
    fn from(f: LedgerFile) -> Self {
        Ledger {
            routes: f.routes.into_iter().collect(),
            rules: f.rules.into_iter().collect(),
            nft: f.nft.into_iter().collect(),
            addresses: f.addresses.into_iter().collect(),
            links: f.links.into_iter().collect(),
            link_indexes: f.link_indexes.into_iter().collect(),
            neigh_proxies: f.neigh_proxies.into_iter().collect(),
            forwarding: f.forwarding.into_iter().collect(),
        }
    }
}

impl From<Ledger> for LedgerFile {
    fn from(l: Ledger) -> Self {
        LedgerFile {
            routes: l.routes.into_iter().collect(),
            rules: l.rules.into_iter().collect(),
            nft: l.nft.into_iter().collect(),
            addresses: l.addresses.into_iter().collect(),
            links: l.links.into_iter().collect(),
            link_indexes: l.link_indexes.into_iter().collect(),
            neigh_proxies: l.neigh_proxies.into_iter().collect(),
            forwarding: l.forwarding.into_iter().collect(),
        }
    }
}

impl Ledger {
    /// Whether routerd records nothing.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.rules.is_empty()
            && self.nft.is_empty()
            && self.addresses.is_empty()
            && self.links.is_empty()
            && self.neigh_proxies.is_empty()
            && self.forwarding.is_empty()
    }

    /// Records the outcome of an applied plan: every desired object the
    /// kernel now holds with routerd's marker is owned by its resource;
    /// entries the kernel still holds stay (a retained, fail-static owner's,
    /// or a stale object whose removal failed and is retried next time);
    /// entries of objects the kernel no longer holds are forgotten.
    pub fn commit(&mut self, desired: &DesiredState, observed: &Observed, own: &Ownership) {
        let present_routes: BTreeSet<RouteKey> = observed
            .routes
            .iter()
            .filter(|r| r.protocol == own.route_protocol)
            .map(|r| r.key())
            .collect();
        let present_rules: BTreeSet<RuleKey> = observed
            .rules
            .iter()
            .filter(|r| r.protocol == own.route_protocol)
            .map(|r| r.key())
            .collect();

        let mut routes: BTreeMap<RouteKey, String> = self
            .routes
            .iter()
            .filter(|(k, _)| present_routes.contains(k))
            .map(|(k, o)| (*k, o.clone()))
            .collect();
        // Only what the kernel holds as routerd's: a desired object that
        // conflicts with a foreign one is never adopted.
        routes.extend(
            desired
                .routes
                .iter()
                .filter(|r| present_routes.contains(&r.key()))
                .map(|r| (r.key(), r.owner.clone())),
        );

        let mut rules: BTreeMap<RuleKey, String> = self
            .rules
            .iter()
            .filter(|(k, _)| present_rules.contains(k))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        rules.extend(
            desired
                .rules
                .iter()
                .filter(|r| present_rules.contains(&r.key()))
                .map(|r| (r.key(), r.owner.clone())),
        );

        let mut nft: BTreeMap<NftTableKey, NftEntry> = self
            .nft
            .iter()
            .filter(|(k, _)| observed.nft.iter().any(|o| &o.key == *k))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for t in &desired.nft {
            let key = t.key();
            let Some(fingerprint) = observed
                .nft
                .iter()
                .find(|o| o.key == key)
                .map(|o| o.fingerprint.clone())
            else {
                continue;
            };
            nft.insert(
                key,
                NftEntry {
                    owners: t.owners.clone(),
                    digest: t.digest(),
                    fingerprint,
                    skeleton: t.skeleton_digest(),
                },
            );
        }
        // Addresses are never adopted from the desired state: one the
        // kernel holds that routerd did not add (record_ops) is foreign.
        let present_addresses: BTreeSet<AddressKey> =
            observed.addresses.iter().map(|a| a.key()).collect();
        let addresses = self
            .addresses
            .iter()
            .filter(|(k, _)| present_addresses.contains(k))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        // Links likewise: only those record_ops saw created, while the
        // kernel still has that link (same name, and the index it had).
        let mut links = BTreeMap::new();
        let mut link_indexes = BTreeMap::new();
        for (name, owner) in &self.links {
            let Some(o) = observed.link(name) else {
                continue;
            };
            if !self.owns_link(&o) {
                continue;
            }
            links.insert(name.clone(), owner.clone());
            if let Some(i) = o.index.or_else(|| self.link_indexes.get(name).copied()) {
                link_indexes.insert(name.clone(), i);
            }
        }
        let (neigh_proxies, forwarding) = crate::capture::commit_capture(self, observed);
        *self = Ledger {
            routes,
            rules,
            nft,
            addresses,
            links,
            link_indexes,
            neigh_proxies,
            forwarding,
        };
    }

    /// Whether the observed link `l` is the one routerd created: the
    /// ledger records its name and, once seen, its ifindex.
    pub fn owns_link(&self, l: &crate::ir::Link) -> bool {
        self.links.contains_key(&l.name)
            && match (self.link_indexes.get(&l.name), l.index) {
                (Some(want), Some(have)) => *want == have,
                _ => true,
            }
    }

    /// Adds `other`'s entries (an intent left by a crashed step, or orphans
    /// an operator asked to remove); existing entries keep their owner.
    pub fn absorb(&mut self, other: Ledger) {
        for (k, o) in other.routes {
            self.routes.entry(k).or_insert(o);
        }
        for (k, o) in other.rules {
            self.rules.entry(k).or_insert(o);
        }
        for (k, e) in other.nft {
            self.nft.entry(k).or_insert(e);
        }
        for (k, o) in other.addresses {
            self.addresses.entry(k).or_insert(o);
        }
        for (k, o) in other.links {
            self.links.entry(k).or_insert(o);
        }
        for (k, i) in other.link_indexes {
            self.link_indexes.entry(k).or_insert(i);
        }
        for (k, o) in other.neigh_proxies {
            self.neigh_proxies.entry(k).or_insert(o);
        }
        for (k, o) in other.forwarding {
            self.forwarding.entry(k).or_insert(o);
        }
    }

    /// One line per object, for listings (`routerctl get orphans`).
    pub fn describe(&self) -> Vec<String> {
        let routes = self.routes.keys().map(|k| format!("route {k}"));
        let rules = self.rules.keys().map(|k| format!("rule {k}"));
        let nft = self.nft.keys().map(|k| format!("nft table {k}"));
        let addresses = self.addresses.keys().map(|k| format!("address {k}"));
        let links = self.links.keys().map(|k| format!("link {k}"));
        let proxies = self
            .neigh_proxies
            .keys()
            .map(|k| format!("neighbour proxy {k}"));
        let forwarding = self.forwarding.keys().map(|k| format!("forwarding {k}"));
        routes
            .chain(rules)
            .chain(nft)
            .chain(addresses)
            .chain(links)
            .chain(proxies)
            .chain(forwarding)
            .collect()
    }

    /// Records the operations of a partly applied plan, so that what was
    /// created stays owned (and removable) even though the apply failed.
    pub fn record_ops<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) {
        for op in ops {
            match op {
                Op::AddRoute { route } | Op::ReplaceRoute { new: route, .. } => {
                    self.routes.insert(route.key(), route.owner.clone());
                }
                Op::DeleteRoute { route } => {
                    self.routes.remove(&route.key());
                }
                Op::AddRule { rule } => {
                    self.rules.insert(rule.key(), rule.owner.clone());
                }
                Op::DeleteRule { rule } => {
                    self.rules.remove(&rule.key());
                }
                Op::ReplaceNftTable { table } => {
                    self.nft.insert(
                        table.key(),
                        NftEntry {
                            owners: table.owners.clone(),
                            digest: table.digest(),
                            // Unknown until observed: forces a reload next time.
                            fingerprint: String::new(),
                            skeleton: table.skeleton_digest(),
                        },
                    );
                }
                Op::UpdateNftSets { table, .. } => {
                    // The kernel's elements are no longer the ones the
                    // digest describes; until observed, reload next time.
                    if let Some(e) = self.nft.get_mut(table) {
                        e.fingerprint.clear();
                    }
                }
                Op::DeleteNftTable { key } => {
                    self.nft.remove(key);
                }
                Op::AddAddress { address } => {
                    self.addresses.insert(address.key(), address.owner.clone());
                }
                Op::DeleteAddress { address } => {
                    self.addresses.remove(&address.key());
                }
                Op::AddLink { link } => {
                    // A new link: its index is learnt when next observed.
                    self.links.insert(link.name.clone(), link.owner.clone());
                    self.link_indexes.remove(&link.name);
                }
                Op::DeleteLink { link } => {
                    self.links.remove(&link.name);
                    self.link_indexes.remove(&link.name);
                }
                Op::AddNeighProxy { proxy } => {
                    self.neigh_proxies.insert(proxy.key(), proxy.owner.clone());
                }
                Op::DeleteNeighProxy { proxy } => {
                    self.neigh_proxies.remove(&proxy.key());
                }
                Op::SetForwarding {
                    device,
                    previous,
                    restore,
                    owner,
                    ..
                } => {
                    if *restore {
                        self.forwarding.remove(device);
                    } else {
                        self.forwarding.insert(
                            device.clone(),
                            ForwardingEntry {
                                owner: owner.clone(),
                                previous: *previous,
                            },
                        );
                    }
                }
                Op::SetLink { .. } | Op::AnnounceLink { .. } | Op::AnnounceNeighProxy { .. } => {}
            }
        }
    }

    /// Records a plan's operations by index (those that succeeded).
    pub fn record_applied(&mut self, plan: &Plan, succeeded: &[usize]) {
        self.record_ops(succeeded.iter().filter_map(|i| plan.ops.get(*i)));
    }
}
