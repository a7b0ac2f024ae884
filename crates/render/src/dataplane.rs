//! The `Dataplane` port and its in-memory implementation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::capture::NeighProxy;
use crate::ir::{Address, IpNet, Link, LinkKind, NftTable, NftTableKey, Route, Rule};
use crate::plan::{Op, Plan};

/// An nft table as observed: enough to tell "present and unchanged" from
/// "missing or altered".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedNftTable {
    /// Identity.
    pub key: NftTableKey,
    /// Rule count per chain.
    pub chains: BTreeMap<String, usize>,
    /// Digest of the listing without handles and counters.
    pub fingerprint: String,
    /// Elements of each named set, sorted (a set whose elements could not
    /// be read is left out, so it is replaced rather than updated).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, Vec<IpNet>>,
}

/// What the kernel holds. Implementations may include foreign objects;
/// `diff` ignores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// IPv4 unicast and blackhole routes of every table but `local`.
    pub routes: Vec<Route>,
    /// IPv4 fwmark rules (a rule without fwmark has `fwmark` 0).
    pub rules: Vec<Rule>,
    /// `routerd_*` nft tables.
    pub nft: Vec<ObservedNftTable>,
    /// Every interface address (both families), foreign ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Names of the links that exist, when the dataplane knows them
    /// (`None`: unknown, e.g. an offline plan). A route on a device that is
    /// absent waits (`DeviceNotReady`) instead of being sent to a kernel
    /// that would refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<BTreeSet<String>>,
    /// The links with their kind, MTU and admin state (foreign ones
    /// included), when the dataplane reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_links: Vec<Link>,
    /// IPv4 neighbour proxy entries (foreign ones included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neigh_proxies: Vec<NeighProxy>,
    /// `net.ipv4.conf.<device>.forwarding` of the devices the dataplane
    /// read (absent: unknown).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ipv4_forwarding: BTreeMap<String, bool>,
}

impl Observed {
    /// Whether a link of that name exists (by either list).
    pub fn has_link(&self, name: &str) -> bool {
        self.kernel_links.iter().any(|l| l.name == name)
            || self.links.as_ref().is_some_and(|l| l.contains(name))
    }

    /// The observed link of that name; one only known by name is reported
    /// with an unknown kind.
    pub fn link(&self, name: &str) -> Option<Link> {
        if let Some(l) = self.kernel_links.iter().find(|l| l.name == name) {
            return Some(l.clone());
        }
        self.links
            .as_ref()
            .filter(|l| l.contains(name))
            .map(|_| Link::new(name, LinkKind::Other(String::new())))
    }
}

/// Why observing or applying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataplaneError {
    /// A netlink request was refused; `errno` is positive.
    #[error("{context}: {message} (errno {errno})")]
    Netlink {
        /// The request.
        context: String,
        /// Kernel extack text, or the errno's description.
        message: String,
        /// errno.
        errno: i32,
    },
    /// An nft backend failed.
    #[error("{context}: {message}")]
    Nft {
        /// The command.
        context: String,
        /// stderr or the backend's message.
        message: String,
    },
    /// A socket or process could not be used.
    #[error("{context}: {message}")]
    Io {
        /// What was attempted.
        context: String,
        /// The OS error.
        message: String,
    },
    /// The object cannot be expressed by this dataplane.
    #[error("{0}")]
    Unsupported(String),
}

impl DataplaneError {
    /// The reason without the command it was about (for messages that name
    /// the operation themselves).
    pub fn reason(&self) -> String {
        match self {
            DataplaneError::Netlink { message, errno, .. } => format!("{message} (errno {errno})"),
            DataplaneError::Nft { message, .. } | DataplaneError::Io { message, .. } => {
                message.clone()
            }
            DataplaneError::Unsupported(m) => m.clone(),
        }
    }
}

/// A plan that was not fully applied.
///
/// A dataplane attempts every operation of a plan even after one fails, so
/// that one owner's rejected object never holds back anyone else's:
/// `failed` lists each refused operation with the kernel's reason. An
/// operation in neither list was not attempted and counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} operation(s) failed, first: {}", .failed.len(), first_failure(.failed))]
pub struct ApplyError {
    /// Indices of the operations that took effect (the ledger records them;
    /// a pipelined backend may have applied ops after a failed one).
    pub succeeded: Vec<usize>,
    /// Every refused operation (index, reason).
    pub failed: Vec<(usize, DataplaneError)>,
}

fn first_failure(failed: &[(usize, DataplaneError)]) -> String {
    failed
        .first()
        .map(|(i, e)| format!("#{i}: {e}"))
        .unwrap_or_else(|| "none".into())
}

impl ApplyError {
    /// The error of a plan from per-operation results; `None` when nothing
    /// failed.
    pub fn from_results(
        succeeded: Vec<usize>,
        failed: Vec<(usize, DataplaneError)>,
    ) -> Option<ApplyError> {
        if failed.is_empty() {
            return None;
        }
        Some(ApplyError { succeeded, failed })
    }

    /// Why operation `i` did not take effect, if it did not.
    pub fn reason_for(&self, i: usize) -> Option<DataplaneError> {
        if self.succeeded.contains(&i) {
            return None;
        }
        Some(self.failed.iter().find(|(j, _)| *j == i).map_or_else(
            || DataplaneError::Unsupported("not attempted".into()),
            |(_, e)| e.clone(),
        ))
    }
}

/// The side of routerd that touches the kernel. Sync on purpose: the pure
/// crates and the offline CLI must not need an async runtime; the daemon
/// calls it from a blocking task.
pub trait Dataplane {
    /// Reads the current state (`ip route show table all`, `ip rule show`,
    /// `nft list ruleset`).
    fn observe(&mut self) -> Result<Observed, DataplaneError>;

    /// Executes the plan's operations in order, attempting every one even
    /// after a failure (see [`ApplyError`]).
    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError>;
}

/// A dataplane in memory with kernel-like semantics (exclusive adds,
/// ESRCH on deleting what is absent), for tests and offline planning.
#[derive(Clone, Debug, Default)]
pub struct MemDataplane {
    /// Routes (foreign ones may be inserted by tests).
    pub routes: Vec<Route>,
    /// Rules.
    pub rules: Vec<Rule>,
    /// Tables with their text.
    pub nft: BTreeMap<NftTableKey, NftTable>,
    /// Foreign nft tables (name and rule count per chain), never touched.
    pub foreign_nft: BTreeMap<NftTableKey, BTreeMap<String, usize>>,
    /// Fail the operation with this index of the next `apply` (fault
    /// injection for tests).
    pub fail_at: Option<usize>,
    /// Refuse every operation whose command line contains one of these
    /// strings, on every apply (a persistent kernel refusal, for tests).
    pub refuse: Vec<String>,
    /// The links that exist (`None`: any device is accepted). A route on a
    /// device not listed is refused with ENODEV, as the kernel does.
    pub links: Option<BTreeSet<String>>,
    /// Interface addresses (foreign ones may be inserted by tests).
    pub addresses: Vec<Address>,
    /// Links with their kind (routerd's and, inserted by tests, foreign
    /// ones); names in `links` without an entry here are links of an
    /// unknown kind.
    pub kernel_links: Vec<Link>,
    /// Announcements made, in order: `AnnounceLink` by device,
    /// `AnnounceNeighProxy` as `ADDR dev DEVICE`.
    pub announced: Vec<String>,
    /// Neighbour proxy entries (foreign ones may be inserted by tests).
    pub neigh_proxies: Vec<NeighProxy>,
    /// `net.ipv4.conf.<device>.forwarding`; a listed link not here is off.
    pub ipv4_forwarding: BTreeMap<String, bool>,
    /// Number of operations executed so far.
    pub ops_executed: usize,
}

fn err(op: &Op, errno: i32, message: &str) -> DataplaneError {
    DataplaneError::Netlink {
        context: op.to_string(),
        message: message.to_string(),
        errno,
    }
}

const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;

impl MemDataplane {
    /// An empty dataplane.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nft text of every owned table, as `routerctl plan` shows it.
    pub fn nft_text(&self) -> Vec<(NftTableKey, String)> {
        self.nft
            .iter()
            .map(|(k, t)| (k.clone(), crate::nft_text::table_batch(t)))
            .collect()
    }

    fn exec(&mut self, op: &Op) -> Result<(), DataplaneError> {
        if let Some(r) = self
            .refuse
            .iter()
            .find(|r| op.to_string().contains(r.as_str()))
        {
            return Err(err(op, 22, &format!("Invalid argument (refused: {r})")));
        }
        if let (Some(links), Op::AddRoute { route } | Op::ReplaceRoute { new: route, .. }) =
            (&self.links, op)
        {
            let devices = route
                .device
                .iter()
                .chain(route.nexthops.iter().map(|n| &n.device));
            for dev in devices {
                if !links.contains(dev) {
                    return Err(err(op, 19, &format!("Cannot find device \"{dev}\"")));
                }
            }
        }
        if let (Some(links), Op::AddAddress { address } | Op::DeleteAddress { address }) =
            (&self.links, op)
            && !links.contains(&address.device)
        {
            return Err(err(
                op,
                19,
                &format!("Cannot find device \"{}\"", address.device),
            ));
        }
        match op {
            Op::AddLink { link } => {
                if let (Some(links), Some(lower)) = (&self.links, link.kind.lower())
                    && !links.contains(lower)
                {
                    return Err(err(op, 19, &format!("Cannot find device \"{lower}\"")));
                }
                let exists = self.kernel_links.iter().any(|l| l.name == link.name)
                    || self.links.as_ref().is_some_and(|l| l.contains(&link.name));
                if exists {
                    return Err(err(op, EEXIST, "File exists"));
                }
                // A fresh index per creation, as the kernel gives.
                let index = u32::try_from(1000 + self.ops_executed).unwrap_or(u32::MAX);
                self.kernel_links.push(Link {
                    owner: String::new(),
                    announce: false,
                    index: Some(index),
                    ..link.clone()
                });
                if let Some(links) = &mut self.links {
                    links.insert(link.name.clone());
                }
            }
            Op::SetLink { link } => {
                let Some(l) = self.kernel_links.iter_mut().find(|l| l.name == link.name) else {
                    return Err(err(op, 19, "No such device"));
                };
                l.up = link.up;
                if link.mtu.is_some() {
                    l.mtu = link.mtu;
                }
            }
            Op::DeleteLink { link } => {
                let Some(i) = self.kernel_links.iter().position(|l| l.name == link.name) else {
                    return Err(err(op, 19, "No such device"));
                };
                self.kernel_links.remove(i);
                if let Some(links) = &mut self.links {
                    links.remove(&link.name);
                }
                // The kernel takes the link's addresses and routes with it.
                self.addresses.retain(|a| a.device != link.name);
                self.routes
                    .retain(|r| r.device.as_deref() != Some(link.name.as_str()));
            }
            Op::AnnounceLink { device, .. } => {
                if !self.kernel_links.iter().any(|l| &l.name == device) {
                    return Err(err(op, 19, "No such device"));
                }
                self.announced.push(device.clone());
            }
            Op::AddAddress { address } => {
                if self.addresses.iter().any(|a| a.key() == address.key()) {
                    return Err(err(op, EEXIST, "File exists"));
                }
                self.addresses.push(Address {
                    owner: String::new(),
                    allow_overlap: false,
                    exclusive: false,
                    no_prefix_route: false,
                    ..address.clone()
                });
            }
            Op::AddNeighProxy { proxy } => {
                if let Some(links) = &self.links
                    && !links.contains(&proxy.device)
                {
                    return Err(err(op, 19, "No such device"));
                }
                // The kernel updates an existing entry in place (no EEXIST
                // for proxies); the diff never adds one that is there.
                if !self.neigh_proxies.iter().any(|p| p.key() == proxy.key()) {
                    self.neigh_proxies.push(NeighProxy {
                        owner: String::new(),
                        announce: false,
                        ..proxy.clone()
                    });
                }
            }
            Op::AnnounceNeighProxy { proxy } => {
                if !self.neigh_proxies.iter().any(|p| p.key() == proxy.key()) {
                    return Err(err(op, ENOENT, "No such file or directory"));
                }
                self.announced
                    .push(format!("{} dev {}", proxy.address, proxy.device));
            }
            Op::DeleteNeighProxy { proxy } => {
                let Some(i) = self
                    .neigh_proxies
                    .iter()
                    .position(|p| p.key() == proxy.key())
                else {
                    return Err(err(op, ENOENT, "No such file or directory"));
                };
                self.neigh_proxies.remove(i);
            }
            Op::SetForwarding {
                device, enabled, ..
            } => {
                if let Some(links) = &self.links
                    && !links.contains(device)
                {
                    return Err(DataplaneError::Io {
                        context: op.to_string(),
                        message: "No such file or directory (os error 2)".into(),
                    });
                }
                self.ipv4_forwarding.insert(device.clone(), *enabled);
            }
            Op::DeleteAddress { address } => {
                let Some(i) = self.addresses.iter().position(|a| a.key() == address.key()) else {
                    // The kernel's answer to deleting an absent address.
                    return Err(err(op, 99, "Cannot assign requested address"));
                };
                self.addresses.remove(i);
            }
            Op::AddRoute { route } => {
                if self.routes.iter().any(|r| r.key() == route.key()) {
                    return Err(err(op, EEXIST, "File exists"));
                }
                self.routes.push(route.clone());
            }
            Op::ReplaceRoute { new, .. } => {
                self.routes.retain(|r| r.key() != new.key());
                self.routes.push(new.clone());
            }
            Op::DeleteRoute { route } => {
                let before = self.routes.len();
                self.routes.retain(|r| r.key() != route.key());
                if self.routes.len() == before {
                    return Err(err(op, ESRCH, "No such process"));
                }
            }
            Op::AddRule { rule } => {
                if self.rules.iter().any(|r| r.key() == rule.key()) {
                    return Err(err(op, EEXIST, "File exists"));
                }
                self.rules.push(rule.clone());
            }
            Op::DeleteRule { rule } => {
                let Some(i) = self.rules.iter().position(|r| r.key() == rule.key()) else {
                    return Err(err(op, ENOENT, "No such file or directory"));
                };
                self.rules.remove(i);
            }
            Op::ReplaceNftTable { table } => {
                self.nft.insert(table.key(), table.clone());
            }
            Op::DeleteNftTable { key } => {
                if self.nft.remove(key).is_none() {
                    return Err(err(op, ENOENT, "No such file or directory"));
                }
            }
            Op::UpdateNftSets { table, sets, .. } => {
                let Some(t) = self.nft.get(table) else {
                    return Err(err(op, ENOENT, "No such file or directory"));
                };
                // One transaction: check everything before changing anything.
                let mut next = t.clone();
                for d in sets {
                    let Some(s) = next.sets.iter_mut().find(|s| s.name == d.name) else {
                        return Err(err(op, ENOENT, "No such file or directory"));
                    };
                    for r in &d.remove {
                        let Some(i) = s.elements.iter().position(|e| e == r) else {
                            return Err(err(op, ENOENT, "No such file or directory"));
                        };
                        s.elements.remove(i);
                    }
                    for a in &d.add {
                        if s.elements.contains(a) {
                            return Err(err(op, EEXIST, "File exists"));
                        }
                        s.elements.push(*a);
                    }
                    s.elements.sort();
                }
                self.nft.insert(table.clone(), next);
            }
        }
        Ok(())
    }
}

impl Dataplane for MemDataplane {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        let mut nft: Vec<ObservedNftTable> = self
            .nft
            .iter()
            .map(|(k, t)| ObservedNftTable {
                key: k.clone(),
                chains: t.shape(),
                fingerprint: t.digest(),
                sets: t
                    .sets
                    .iter()
                    .map(|s| {
                        let mut e = s.elements.clone();
                        e.sort();
                        (s.name.clone(), e)
                    })
                    .collect(),
            })
            .collect();
        nft.extend(self.foreign_nft.iter().map(|(k, c)| ObservedNftTable {
            key: k.clone(),
            chains: c.clone(),
            fingerprint: String::new(),
            sets: BTreeMap::new(),
        }));
        Ok(Observed {
            routes: self.routes.clone(),
            rules: self.rules.clone(),
            nft,
            addresses: self.addresses.clone(),
            links: self.links.clone(),
            kernel_links: self.kernel_links.clone(),
            neigh_proxies: self.neigh_proxies.clone(),
            ipv4_forwarding: {
                let mut f = self.ipv4_forwarding.clone();
                for l in self.links.iter().flatten() {
                    f.entry(l.clone()).or_insert(false);
                }
                f
            },
        })
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let fail_at = self.fail_at.take();
        let mut succeeded = Vec::new();
        let mut failed = Vec::new();
        for (i, op) in plan.ops.iter().enumerate() {
            let r = if fail_at == Some(i) {
                Err(err(op, 22, "Invalid argument (injected)"))
            } else {
                self.exec(op)
            };
            self.ops_executed += 1;
            match r {
                Ok(()) => succeeded.push(i),
                Err(error) => failed.push((i, error)),
            }
        }
        match ApplyError::from_results(succeeded, failed) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// A [`MemDataplane`] shared between the component that applies to it (a
/// daemon under test, the offline planner) and whoever inspects or changes
/// "the kernel" meanwhile (a test injecting a refusal or a missing device).
#[derive(Clone, Debug, Default)]
pub struct SharedMemDataplane(pub std::sync::Arc<std::sync::Mutex<MemDataplane>>);

impl SharedMemDataplane {
    /// The dataplane behind the handle (a poisoned lock is recovered: the
    /// in-memory state is plain data and stays consistent per operation).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemDataplane> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Destinations of every route, sorted (what tests usually compare).
    pub fn destinations(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .routes
            .iter()
            .map(|r| r.destination.to_string())
            .collect();
        v.sort();
        v
    }
}

impl Dataplane for SharedMemDataplane {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.lock().observe()
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        self.lock().apply(plan)
    }
}
