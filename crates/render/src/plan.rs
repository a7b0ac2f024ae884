//! The plan: ordered kernel operations that turn the observed dataplane into
//! the desired one.

use std::fmt;

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::capture::NeighProxy;
use crate::ir::{Address, Family, IpNet, Link, NftTable, NftTableKey, Route, Rule};

/// One kernel operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// `ip route add` (exclusive create).
    AddRoute {
        /// The route.
        route: Route,
    },
    /// `ip route replace` of a route routerd owns.
    ReplaceRoute {
        /// What the kernel holds now.
        old: Route,
        /// What it will hold.
        new: Route,
    },
    /// `ip route del`.
    DeleteRoute {
        /// The route.
        route: Route,
    },
    /// `ip rule add` (exclusive).
    AddRule {
        /// The rule.
        rule: Rule,
    },
    /// `ip rule del`.
    DeleteRule {
        /// The rule.
        rule: Rule,
    },
    /// Atomic replacement of an owned table (`nft -f` of the whole table).
    ReplaceNftTable {
        /// The new table.
        table: NftTable,
    },
    /// `nft delete table`.
    DeleteNftTable {
        /// The table.
        key: NftTableKey,
    },
    /// `ip addr add` (exclusive: an address already there is not adopted).
    AddAddress {
        /// The address.
        address: Address,
    },
    /// `ip addr del` of an address the ledger says routerd added.
    DeleteAddress {
        /// The address.
        address: Address,
    },
    /// `ip link add` (exclusive: a link of that name already there is
    /// never adopted).
    AddLink {
        /// The link.
        link: Link,
    },
    /// `ip link set dev <name> [mtu M] up|down` of a link routerd created.
    SetLink {
        /// The link as it should be.
        link: Link,
    },
    /// `ip link del` of a link the ledger says routerd created.
    DeleteLink {
        /// The link.
        link: Link,
    },
    /// Sets a link's MAC address to the one it has: the kernel then sends
    /// a gratuitous ARP for every IPv4 address on it (`arp_notify`, which
    /// routerd switched on when it created the link). Planned after the
    /// addresses of an announcing link were added.
    AnnounceLink {
        /// Device name.
        device: String,
        /// Resource id the link is for.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        owner: String,
    },
    /// `ip neigh add proxy ADDR dev IF`: capture starts (the host answers
    /// ARP for the address on that device).
    AddNeighProxy {
        /// The entry.
        proxy: NeighProxy,
    },
    /// `ip neigh del proxy ADDR dev IF` of an entry the ledger says
    /// routerd added: capture stops.
    DeleteNeighProxy {
        /// The entry.
        proxy: NeighProxy,
    },
    /// A gratuitous ARP for a just-captured address, from the device's MAC
    /// (`gratuitousARP`): neighbours that cached the previous holder move.
    AnnounceNeighProxy {
        /// The entry.
        proxy: NeighProxy,
    },
    /// `sysctl net.ipv4.conf.<device>.forwarding=<enabled>`: turned on for
    /// capture or delivery (`restore: false`, `previous` is the value
    /// found, kept in the ledger), or written back to that value when the
    /// last owner goes (`restore: true`).
    SetForwarding {
        /// Device name.
        device: String,
        /// The value written.
        enabled: bool,
        /// The value before this write.
        previous: bool,
        /// Whether this gives the device back (the ledger forgets it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restore: bool,
        /// Resource id it is for.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        owner: String,
    },
    /// Element changes of an owned table whose chains, rules and set
    /// declarations already match: `delete element` / `add element` in one
    /// transaction, so a DNS refresh never rebuilds the table (no rule,
    /// counter or chain is recreated and packets see the old or the new
    /// set, never an empty one).
    UpdateNftSets {
        /// The table.
        table: NftTableKey,
        /// Resource ids that contributed to the table (for faults).
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        owners: BTreeSet<String>,
        /// One entry per set whose elements differ.
        sets: Vec<NftSetDelta>,
    },
}

/// The element changes of one named set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftSetDelta {
    /// Set name.
    pub name: String,
    /// Key family of the set.
    #[serde(default, skip_serializing_if = "Family::is_v4")]
    pub family: Family,
    /// Whether the set is an interval set (`flags interval`): its elements
    /// are ranges in the kernel, which not every backend can edit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interval: bool,
    /// Elements to add (absent from the kernel's set now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<IpNet>,
    /// Elements to delete (present in the kernel's set now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<IpNet>,
}

impl Op {
    /// The operation that undoes this one, where the old state is known
    /// (an nft replacement keeps no copy of the old table).
    pub fn inverse(&self) -> Option<Op> {
        Some(match self {
            Op::AddRoute { route } => Op::DeleteRoute {
                route: route.clone(),
            },
            Op::ReplaceRoute { old, new } => Op::ReplaceRoute {
                old: new.clone(),
                new: old.clone(),
            },
            Op::DeleteRoute { route } => Op::AddRoute {
                route: route.clone(),
            },
            Op::AddRule { rule } => Op::DeleteRule { rule: rule.clone() },
            Op::DeleteRule { rule } => Op::AddRule { rule: rule.clone() },
            Op::AddAddress { address } => Op::DeleteAddress {
                address: address.clone(),
            },
            Op::DeleteAddress { address } => Op::AddAddress {
                address: address.clone(),
            },
            Op::UpdateNftSets {
                table,
                owners,
                sets,
            } => Op::UpdateNftSets {
                table: table.clone(),
                owners: owners.clone(),
                sets: sets
                    .iter()
                    .map(|d| NftSetDelta {
                        name: d.name.clone(),
                        family: d.family,
                        interval: d.interval,
                        add: d.remove.clone(),
                        remove: d.add.clone(),
                    })
                    .collect(),
            },
            Op::AddLink { link } => Op::DeleteLink { link: link.clone() },
            Op::AddNeighProxy { proxy } => Op::DeleteNeighProxy {
                proxy: proxy.clone(),
            },
            Op::DeleteNeighProxy { proxy } => Op::AddNeighProxy {
                proxy: proxy.clone(),
            },
            Op::SetForwarding {
                device,
                enabled,
                previous,
                restore,
                owner,
            } => Op::SetForwarding {
                device: device.clone(),
                enabled: *previous,
                previous: *enabled,
                restore: !restore,
                owner: owner.clone(),
            },
            Op::DeleteLink { link } => Op::AddLink { link: link.clone() },
            Op::ReplaceNftTable { .. }
            | Op::DeleteNftTable { .. }
            | Op::SetLink { .. }
            | Op::AnnounceLink { .. }
            | Op::AnnounceNeighProxy { .. } => return None,
        })
    }
}

/// The equivalent command line, for operators.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddRoute { route } => write!(f, "ip{} route add {route}", route_flag(route)),
            Op::ReplaceRoute { new, .. } => {
                write!(f, "ip{} route replace {new}", route_flag(new))
            }
            Op::DeleteRoute { route } => write!(f, "ip{} route del {route}", route_flag(route)),
            Op::AddRule { rule } => write!(f, "ip {} rule add {rule}", rule.family.ip_flag()),
            Op::DeleteRule { rule } => write!(f, "ip {} rule del {rule}", rule.family.ip_flag()),
            Op::ReplaceNftTable { table } => {
                let rules: usize = table.chains.iter().map(|c| c.rules.len()).sum();
                write!(
                    f,
                    "nft -f (replace table {} {}: {} chains, {} rules)",
                    table.family,
                    table.name,
                    table.chains.len(),
                    rules
                )
            }
            Op::DeleteNftTable { key } => write!(f, "nft delete table {key}"),
            Op::AddAddress { address } => {
                write!(f, "ip {} addr add {address}", address.family().ip_flag())
            }
            Op::DeleteAddress { address } => {
                write!(f, "ip {} addr del {address}", address.family().ip_flag())
            }
            Op::AddLink { link } => write!(f, "ip link add {link}"),
            Op::SetLink { link } => {
                write!(f, "ip link set dev {}", link.name)?;
                if let Some(mtu) = link.mtu {
                    write!(f, " mtu {mtu}")?;
                }
                f.write_str(if link.up { " up" } else { " down" })
            }
            Op::DeleteLink { link } => write!(f, "ip link del {}", link.name),
            Op::AddNeighProxy { proxy } => write!(f, "ip neigh add {proxy}"),
            Op::DeleteNeighProxy { proxy } => write!(f, "ip neigh del {proxy}"),
            Op::AnnounceNeighProxy { proxy } => write!(
                f,
                "arping -U -c 1 -I {} {} (gratuitous ARP from the device's MAC)",
                proxy.device, proxy.address
            ),
            Op::SetForwarding {
                device, enabled, ..
            } => write!(
                f,
                "sysctl -w net.ipv4.conf.{device}.forwarding={}",
                u8::from(*enabled)
            ),
            Op::AnnounceLink { device, .. } => write!(
                f,
                "ip link set dev {device} address <its own> (gratuitous ARP for its addresses)"
            ),
            Op::UpdateNftSets { table, sets, .. } => {
                let add: usize = sets.iter().map(|d| d.add.len()).sum();
                let remove: usize = sets.iter().map(|d| d.remove.len()).sum();
                let names: Vec<&str> = sets.iter().map(|d| d.name.as_str()).collect();
                write!(
                    f,
                    "nft -f (update sets of table {table}: {}; +{add} -{remove} elements)",
                    names.join(", ")
                )
            }
        }
    }
}

/// `ip route` guesses IPv4 for `default`; IPv6 routes say `-6`.
fn route_flag(route: &Route) -> &'static str {
    match route.family() {
        Family::V4 => "",
        Family::V6 => " -6",
    }
}

/// Something desired that routerd will not do because a foreign object
/// holds the same identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Resource id that wanted the object.
    pub owner: String,
    /// What was wanted and what is in the way.
    pub message: String,
}

/// Ordered operations plus the conflicts that were skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Operations in safe order.
    pub ops: Vec<Op>,
    /// Desired objects left alone because foreign state holds their identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
    /// Things an owner should be told that need no operation: an address
    /// the kernel already carries that routerd did not add (left as the
    /// operator's), other addresses on an `exclusive` address's device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Conflict>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One command per line.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        for c in &self.conflicts {
            writeln!(f, "# skipped ({}): {}", c.owner, c.message)?;
        }
        for n in &self.notes {
            writeln!(f, "# note ({}): {}", n.owner, n.message)?;
        }
        Ok(())
    }
}
