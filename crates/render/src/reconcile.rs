//! observe → screen → diff → apply → verify, isolated per owner: a
//! refused operation fails its owner only.

use std::collections::{BTreeMap, BTreeSet};

use crate::dataplane::{Dataplane, DataplaneError, Observed};
use crate::diff::diff_with;
use crate::ir::{Address, DesiredState, Route, RouteKey, RuleKey};
use crate::ledger::{Ledger, Ownership};
use crate::plan::{Op, Plan};

/// Reconcile settings.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Which objects routerd may own.
    pub ownership: Ownership,
    /// How many times a non-empty verification diff is applied again.
    pub verify_retries: u32,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            ownership: Ownership::default(),
            verify_retries: 2,
        }
    }
}

/// Why one owner's part of the dataplane is not what it asked for. The
/// step turns each into the owner's status (phase, reason, the kernel's
/// message) and an event; every other owner's operations still apply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Resource id of the owner (`apiVersion/Kind/name`).
    pub owner: String,
    /// routerd-style reason: `ApplyFailed`, `DeviceNotReady`, `Conflict`, ...
    pub reason: String,
    /// What the kernel (or the check that kept the operation back) said.
    pub message: String,
}

/// A reconcile that ran: what was sent, and which owners did not get what
/// they asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The plan that was carried out (first attempt).
    pub plan: Plan,
    /// Further plans verification needed (empty when the first one stuck).
    pub retries: Vec<Plan>,
    /// Owners whose objects were kept back or refused; everyone else's
    /// operations were applied and verified.
    pub faults: Vec<Fault>,
    /// Objects with routerd's markers that neither the ledger nor the
    /// desired state claims (owners empty): reported, never removed unasked.
    pub orphans: Ledger,
    /// What owners should be told although nothing failed (an address that
    /// was already there and stays foreign; `exclusive` neighbours).
    pub notes: Vec<Fault>,
}

impl Outcome {
    /// Operations sent to the kernel, retries included.
    pub fn ops_sent(&self) -> usize {
        self.plan.ops.len() + self.retries.iter().map(|p| p.ops.len()).sum::<usize>()
    }
}

/// Why a reconcile could not run at all. A refused operation is not an
/// error of the reconcile: it is a [`Fault`] of its owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// Reading the kernel failed.
    #[error("observe: {0}")]
    Observe(#[source] DataplaneError),
    /// The caller's pre-apply hook (recording the intent) failed; nothing
    /// was sent.
    #[error("recording the intent failed: {0}")]
    Intent(String),
}

/// Makes the kernel's owned state equal `desired`, owner by owner.
///
/// Objects that cannot be carried now are kept back before anything is
/// sent (a device that does not exist, a protected device); every other
/// operation is sent, and one the kernel refuses fails only its owner. No
/// rollback: an owner whose operation was refused keeps whatever of its
/// state the kernel holds, is reported with the kernel's message, and is
/// retried on the next step. `before_apply` runs before each batch of
/// operations is sent (the daemon records the intent there, so a crash
/// between the kernel change and the ledger commit leaves no orphan).
pub fn reconcile<D: Dataplane + ?Sized>(
    dp: &mut D,
    desired: &DesiredState,
    ledger: &mut Ledger,
    opts: &ReconcileOptions,
) -> Result<Outcome, ReconcileError> {
    reconcile_with(dp, desired, ledger, opts, &mut |_| Ok(()))
}

/// [`reconcile`] with a hook that runs before every apply.
pub fn reconcile_with<D: Dataplane + ?Sized>(
    dp: &mut D,
    desired: &DesiredState,
    ledger: &mut Ledger,
    opts: &ReconcileOptions,
    before_apply: &mut dyn FnMut(&Plan) -> Result<(), String>,
) -> Result<Outcome, ReconcileError> {
    let observed = dp.observe().map_err(ReconcileError::Observe)?;
    let mut faults = Faults::default();
    let screened = screen(desired, &observed, ledger, &opts.ownership, &mut faults);
    let desired = screened.as_ref().unwrap_or(desired);
    let plan = diff_with(desired, &observed, ledger, &opts.ownership);
    for c in &plan.conflicts {
        faults.add(&c.owner, "Conflict", &c.message);
    }
    let notes: Vec<Fault> = plan
        .notes
        .iter()
        .map(|n| Fault {
            owner: n.owner.clone(),
            reason: "Note".into(),
            message: n.message.clone(),
        })
        .collect();
    let mut failed_nft = BTreeSet::new();
    if !plan.is_empty() {
        before_apply(&plan).map_err(ReconcileError::Intent)?;
        apply_opening_last(dp, &plan, ledger, &mut faults, &mut failed_nft);
    }
    let mut retries = Vec::new();
    loop {
        let observed = dp.observe().map_err(ReconcileError::Observe)?;
        let mut next = ledger.clone();
        next.commit(desired, &observed, &opts.ownership);
        // A refused nft replacement must not look loaded: keep what the
        // ledger knew before, so the next diff replaces it again.
        for key in &failed_nft {
            match ledger.nft.get(key) {
                Some(e) => next.nft.insert(key.clone(), e.clone()),
                None => next.nft.remove(key),
            };
        }
        let mut remaining = diff_with(desired, &observed, &next, &opts.ownership);
        remaining.conflicts.clear();
        remaining.notes.clear();
        // What faulted owners still lack is known; retry only the rest
        // (and never open a policy the kernel refused something of).
        remaining
            .ops
            .retain(|op| !faults.has(op_owner(op)) && !held_closed(op, &next, &faults));
        if remaining.is_empty() {
            let orphans = orphans(&observed, desired, &next, &opts.ownership);
            *ledger = next;
            return Ok(Outcome {
                plan,
                retries,
                faults: faults.into_vec(desired),
                orphans,
                notes,
            });
        }
        if retries.len() >= opts.verify_retries as usize {
            for op in &remaining.ops {
                faults.add(
                    op_owner(op),
                    "VerifyFailed",
                    &format!("the kernel still differs after applying: {op}"),
                );
            }
            *ledger = next;
            let orphans = orphans(&observed, desired, ledger, &opts.ownership);
            return Ok(Outcome {
                plan,
                retries,
                faults: faults.into_vec(desired),
                orphans,
                notes,
            });
        }
        before_apply(&remaining).map_err(ReconcileError::Intent)?;
        apply_opening_last(dp, &remaining, ledger, &mut faults, &mut failed_nft);
        retries.push(remaining);
    }
}

/// Faults by owner; the first reason an owner got is the one reported.
#[derive(Default)]
struct Faults(BTreeMap<String, Fault>);

impl Faults {
    fn add(&mut self, owner: &str, reason: &str, message: &str) {
        self.0.entry(owner.to_string()).or_insert_with(|| Fault {
            owner: owner.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        });
    }

    fn has(&self, owner: &str) -> bool {
        self.0.contains_key(owner)
    }

    /// The faults, each in its owner's words: routerd reports a refused
    /// hostTraffic route or rule as `HostPolicyApplyFailed`.
    fn into_vec(self, desired: &DesiredState) -> Vec<Fault> {
        self.0
            .into_values()
            .map(|mut f| {
                if desired.host_policies.contains(&f.owner)
                    && matches!(f.reason.as_str(), "ApplyFailed" | "VerifyFailed")
                {
                    crate::render::HOST_POLICY_APPLY_FAILED.clone_into(&mut f.reason);
                }
                f
            })
            .collect()
    }
}

/// The owner an operation acts for (for a deletion, the ledger's owner).
fn op_owner(op: &Op) -> &str {
    match op {
        Op::AddRoute { route } | Op::DeleteRoute { route } => &route.owner,
        Op::ReplaceRoute { new, .. } => &new.owner,
        Op::AddRule { rule } | Op::DeleteRule { rule } => &rule.owner,
        Op::ReplaceNftTable { table } => table.owners.iter().next().map_or("", String::as_str),
        Op::UpdateNftSets { owners, .. } => owners.iter().next().map_or("", String::as_str),
        Op::DeleteNftTable { .. } => "",
        Op::AddAddress { address } | Op::DeleteAddress { address } => &address.owner,
        Op::AddLink { link } | Op::SetLink { link } | Op::DeleteLink { link } => &link.owner,
        Op::AnnounceLink { owner, .. } | Op::SetForwarding { owner, .. } => owner,
        Op::AddNeighProxy { proxy }
        | Op::DeleteNeighProxy { proxy }
        | Op::AnnounceNeighProxy { proxy } => &proxy.owner,
    }
}

/// Every owner an operation acts for (an nft table may have several).
fn op_owners(op: &Op) -> Vec<&str> {
    match op {
        Op::ReplaceNftTable { table } => table.owners.iter().map(String::as_str).collect(),
        Op::UpdateNftSets { owners, .. } => owners.iter().map(String::as_str).collect(),
        other => vec![op_owner(other)],
    }
}

/// routerd's reason for an IPv4 prefix that overlaps another interface's.
pub const OVERLAP_REASON: &str = "OverlappingIPv4Prefix";

/// Keeps back what must not be sent: routes on devices that do not exist
/// (`DeviceNotReady`, they install when the device appears) and anything
/// on a protected device (`Protected`). `None` when nothing is kept back,
/// so the common step copies nothing.
fn screen(
    desired: &DesiredState,
    observed: &Observed,
    ledger: &Ledger,
    own: &Ownership,
    faults: &mut Faults,
) -> Option<DesiredState> {
    // A link is kept back while the device it hangs off is absent or
    // protected; the links that will be created count as present for the
    // addresses and routes put on them.
    let link_blocked = |l: &crate::ir::Link| -> Option<(&'static str, String)> {
        let lower = l.kind.lower()?;
        if own.protected_devices.contains(lower) {
            return Some((
                "Protected",
                format!(
                    "link {} would hang off protected interface \"{lower}\"; routerd does not touch it",
                    l.name
                ),
            ));
        }
        let links = observed.links.as_ref()?;
        (!links.contains(lower)).then(|| {
            (
                "DeviceNotReady",
                format!(
                    "device \"{lower}\" does not exist; link {} waits for it",
                    l.name
                ),
            )
        })
    };
    let created: BTreeSet<&str> = desired
        .links
        .iter()
        .filter(|l| link_blocked(l).is_none())
        .map(|l| l.name.as_str())
        .collect();
    let exists = |dev: &str| {
        created.contains(dev) || observed.links.as_ref().is_none_or(|l| l.contains(dev))
    };
    // Capture and forwarding on a device: kept back while it is absent
    // or protected.
    let device_blocked = |dev: &str| -> Option<(&'static str, String)> {
        if own.protected_devices.contains(dev) {
            return Some((
                "Protected",
                format!("interface \"{dev}\" is protected; routerd does not touch it"),
            ));
        }
        (!exists(dev)).then(|| {
            (
                "DeviceNotReady",
                format!("device \"{dev}\" does not exist; capture waits for it"),
            )
        })
    };
    let blocked = |r: &Route| -> Option<(&'static str, String)> {
        if let Some(dev) = own.protected_device(r) {
            return Some((
                "Protected",
                format!("route {r} uses protected interface \"{dev}\"; routerd does not touch it"),
            ));
        }
        r.device
            .iter()
            .chain(r.nexthops.iter().map(|n| &n.device))
            .find(|d| !exists(d))
            .map(|d| {
                (
                    "DeviceNotReady",
                    format!("device \"{d}\" does not exist; route {r} waits for it"),
                )
            })
    };
    let address_blocked = |a: &Address| -> Option<(&'static str, String)> {
        if own.protected_devices.contains(&a.device) {
            return Some((
                "Protected",
                format!(
                    "address {a} is on protected interface \"{}\"; routerd does not touch it",
                    a.device
                ),
            ));
        }
        if !exists(&a.device) {
            return Some((
                "DeviceNotReady",
                format!(
                    "device \"{}\" does not exist; address {} waits for it",
                    a.device, a.address
                ),
            ));
        }
        if a.allow_overlap {
            return None;
        }
        // routerd blocks an IPv4 prefix that overlaps one on another
        // interface unless allowOverlap says it is intended. routerd's own
        // addresses are either desired (the render compared them) or about
        // to go (an address moving to another device must not block itself).
        observed
            .addresses
            .iter()
            .filter(|o| !ledger.addresses.contains_key(&o.key()))
            .find(|o| o.device != a.device && o.family() == a.family() && a.overlaps(&o.address))
            .map(|o| {
                (
                    OVERLAP_REASON,
                    format!(
                        "{} prefix {} on {} overlaps with observed prefix {} on {}",
                        a.family().name(),
                        a.address.trunc(),
                        a.device,
                        o.address.trunc(),
                        o.device
                    ),
                )
            })
    };
    if !desired.routes.iter().any(|r| blocked(r).is_some())
        && !desired
            .addresses
            .iter()
            .any(|a| address_blocked(a).is_some())
        && !desired.links.iter().any(|l| link_blocked(l).is_some())
        && !desired
            .neigh_proxies
            .iter()
            .any(|p| device_blocked(&p.device).is_some())
        && !desired
            .forwarding
            .iter()
            .any(|f| device_blocked(&f.device).is_some())
    {
        return None;
    }
    let mut carried = desired.clone();
    let mut held = Vec::new();
    carried.links.retain(|l| match link_blocked(l) {
        None => true,
        Some((reason, message)) => {
            faults.add(&l.owner, reason, &message);
            // An owned link whose master went away stays as the kernel
            // has it (the kernel removes a macvlan with its master).
            held.push(l.owner.clone());
            false
        }
    });
    carried.addresses.retain(|a| match address_blocked(a) {
        None => true,
        Some((reason, message)) => {
            faults.add(&a.owner, reason, &message);
            // An overlap that appeared later keeps what is installed.
            if reason == OVERLAP_REASON {
                held.push(a.owner.clone());
            }
            false
        }
    });
    carried
        .neigh_proxies
        .retain(|p| match device_blocked(&p.device) {
            None => true,
            Some((reason, message)) => {
                faults.add(&p.owner, reason, &message);
                false
            }
        });
    carried
        .forwarding
        .retain(|f| match device_blocked(&f.device) {
            None => true,
            Some((reason, message)) => {
                faults.add(&f.owner, reason, &message);
                false
            }
        });
    carried.retained.extend(held);
    carried.routes.retain(|r| match blocked(r) {
        None => true,
        Some((reason, message)) => {
            faults.add(&r.owner, reason, &message);
            false
        }
    });
    Some(carried)
}

/// Sends `plan` with the deletions of fail-closed tables (`whenNoCandidate`
/// policies opening) held back until everything else was sent, and drops
/// those whose policy had an operation refused just now: a policy opens
/// only once the kernel took its candidate's routes, rules and marks. A
/// kept-back route (`DeviceNotReady`, screened before the plan) does not
/// hold it: a missing backup device must not keep a working policy shut.
fn apply_opening_last<D: Dataplane + ?Sized>(
    dp: &mut D,
    plan: &Plan,
    ledger: &mut Ledger,
    faults: &mut Faults,
    failed_nft: &mut BTreeSet<crate::ir::NftTableKey>,
) {
    let (opens, rest): (Vec<Op>, Vec<Op>) = plan.ops.iter().cloned().partition(is_opening);
    if opens.is_empty() {
        apply_isolated(dp, plan, ledger, faults, failed_nft);
        return;
    }
    let before = faults.0.len();
    let rest = Plan {
        ops: rest,
        ..Plan::default()
    };
    if !rest.ops.is_empty() {
        apply_isolated(dp, &rest, ledger, faults, failed_nft);
    }
    let refused: BTreeSet<String> = if faults.0.len() == before {
        BTreeSet::new()
    } else {
        faults
            .0
            .values()
            .filter(|f| f.reason == "ApplyFailed")
            .map(|f| f.owner.clone())
            .collect()
    };
    let opens = Plan {
        ops: opens
            .into_iter()
            .filter(|op| !owners_of(op, ledger).iter().any(|o| refused.contains(o)))
            .collect(),
        ..Plan::default()
    };
    if !opens.ops.is_empty() {
        apply_isolated(dp, &opens, ledger, faults, failed_nft);
    }
}

fn is_opening(op: &Op) -> bool {
    matches!(op, Op::DeleteNftTable { key }
        if key.name.starts_with(crate::render::failclosed::FAIL_CLOSED_TABLE_PREFIX))
}

/// The owners the ledger records for a table deletion.
fn owners_of(op: &Op, ledger: &Ledger) -> Vec<String> {
    match op {
        Op::DeleteNftTable { key } => ledger
            .nft
            .get(key)
            .map(|e| e.owners.iter().cloned().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A fail-closed table deletion whose policy the kernel refused something
/// of in this reconcile: it stays until a later step carries the policy.
fn held_closed(op: &Op, ledger: &Ledger, faults: &Faults) -> bool {
    is_opening(op)
        && owners_of(op, ledger)
            .iter()
            .any(|o| faults.0.get(o).is_some_and(|f| f.reason == "ApplyFailed"))
}

/// Sends `plan`; refused operations fault their owners, everything that
/// took effect goes into the ledger.
fn apply_isolated<D: Dataplane + ?Sized>(
    dp: &mut D,
    plan: &Plan,
    ledger: &mut Ledger,
    faults: &mut Faults,
    failed_nft: &mut BTreeSet<crate::ir::NftTableKey>,
) {
    match dp.apply(plan) {
        Ok(()) => ledger.record_ops(&plan.ops),
        Err(e) => {
            ledger.record_applied(plan, &e.succeeded);
            for (i, op) in plan.ops.iter().enumerate() {
                let Some(reason) = e.reason_for(i) else {
                    continue;
                };
                match op {
                    Op::ReplaceNftTable { table } => {
                        failed_nft.insert(table.key());
                    }
                    Op::UpdateNftSets { table, .. } => {
                        failed_nft.insert(table.clone());
                    }
                    _ => {}
                }
                for owner in op_owners(op) {
                    faults.add(owner, "ApplyFailed", &format!("{op}: {}", reason.reason()));
                }
            }
        }
    }
}

/// Marked objects that neither the ledger (after commit) nor the desired
/// state claims, as a ledger with empty owners.
fn orphans(
    observed: &Observed,
    desired: &DesiredState,
    ledger: &Ledger,
    own: &Ownership,
) -> Ledger {
    let want_routes: BTreeSet<RouteKey> = desired.routes.iter().map(Route::key).collect();
    let want_rules: BTreeSet<RuleKey> = desired.rules.iter().map(|r| r.key()).collect();
    let mut out = Ledger::default();
    for r in &observed.routes {
        let k = r.key();
        if r.protocol == own.route_protocol
            && own.protected_device(r).is_none()
            && !ledger.routes.contains_key(&k)
            && !want_routes.contains(&k)
        {
            out.routes.insert(k, String::new());
        }
    }
    for r in &observed.rules {
        let k = r.key();
        if r.protocol == own.route_protocol
            && own.rule_priorities.contains(&k.priority)
            && !ledger.rules.contains_key(&k)
            && !want_rules.contains(&k)
        {
            out.rules.insert(k, String::new());
        }
    }
    for t in &observed.nft {
        if t.key.name.starts_with("routerd_")
            && !ledger.nft.contains_key(&t.key)
            && !desired.nft.iter().any(|d| d.key() == t.key)
        {
            out.nft
                .insert(t.key.clone(), crate::ledger::NftEntry::default());
        }
    }
    out
}
