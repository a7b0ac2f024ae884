//! The `Dataplane` port and its in-memory implementation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::{NftTable, NftTableKey, Route, Rule};
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

/// A plan that was not fully applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation {index} ({op}) failed: {error}")]
pub struct ApplyError {
    /// Index of the first failed operation in the plan.
    pub index: usize,
    /// The failed operation as a command line.
    pub op: String,
    /// Why.
    #[source]
    pub error: DataplaneError,
    /// Indices of the operations that took effect (needed for rollback and
    /// the ledger; a pipelined backend may have applied ops after `index`).
    pub succeeded: Vec<usize>,
}

/// The side of routerd that touches the kernel. Sync on purpose: the pure
/// crates and the offline CLI must not need an async runtime; the daemon
/// calls it from a blocking task.
pub trait Dataplane {
    /// Reads the current state (`ip route show table all`, `ip rule show`,
    /// `nft list ruleset`).
    fn observe(&mut self) -> Result<Observed, DataplaneError>;

    /// Executes the plan's operations in order.
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
        match op {
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
            })
            .collect();
        nft.extend(self.foreign_nft.iter().map(|(k, c)| ObservedNftTable {
            key: k.clone(),
            chains: c.clone(),
            fingerprint: String::new(),
        }));
        Ok(Observed {
            routes: self.routes.clone(),
            rules: self.rules.clone(),
            nft,
        })
    }

    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let fail_at = self.fail_at.take();
        let mut succeeded = Vec::new();
        for (i, op) in plan.ops.iter().enumerate() {
            let r = if fail_at == Some(i) {
                Err(err(op, 22, "Invalid argument (injected)"))
            } else {
                self.exec(op)
            };
            self.ops_executed += 1;
            match r {
                Ok(()) => succeeded.push(i),
                Err(error) => {
                    return Err(ApplyError {
                        index: i,
                        op: op.to_string(),
                        error,
                        succeeded,
                    });
                }
            }
        }
        Ok(())
    }
}
