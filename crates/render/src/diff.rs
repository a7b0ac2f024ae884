//! `diff(desired, observed, ledger) -> Plan`: pure, and blind to foreign
//! state.
//!
//! Routes and rules are routerd's only when they carry routerd's protocol
//! (`proto 122`), nft tables when their name starts with `routerd_`.
//!
//! Addresses are routerd's only when the ledger says routerd added them:
//! one already on the device is left as it is and noted.
//!
//! Links are routerd's only when the ledger says routerd created them: a
//! link of the same name that routerd did not create is a conflict of the
//! owner, and nothing of that owner is put on it.
//!
//! Neighbour proxy entries (address capture) are routerd's only when the
//! ledger says routerd added them; forwarding is turned on only where it is
//! off and written back to the value found (see [`crate::capture`]).
//!
//! Safe order of the plan:
//! 1. fail-closed tables created or replaced (`whenNoCandidate`: a policy
//!    closes before anything else moves, at start-up too);
//! 2. capture stopped (stale neighbour proxies deleted): an address this
//!    node no longer captures stops being answered before anything else
//!    moves, so two sites never both answer for it;
//! 3. links created (recreated ones deleted first): an address or a route
//!    may use them;
//! 4. addresses added (a route may use one as `src` or need its subnet),
//!    then links brought up or re-announced (gratuitous ARP) and their
//!    MTU set;
//! 5. routes added or replaced (a rule must never point at an empty table),
//!    then the capture of an address this node now owns stops (owner flip:
//!    its local route on the capture device went in just before);
//! 6. nft tables replaced (each atomically), or only their set elements
//!    updated in place when nothing else differs;
//! 7. rules added;
//! 8. forwarding turned on, then capture started (neighbour proxies
//!    added): only once the delivery route is there;
//! 9. stale rules deleted (before the tables they use are emptied);
//! 10. stale routes deleted;
//! 11. forwarding written back where no owner needs it any more;
//! 12. stale nft tables deleted;
//! 13. stale addresses deleted (after the routes that may use them);
//! 14. stale links deleted (after everything that used them);
//! 15. stale fail-closed tables deleted, last of all: a policy opens only
//!     after its candidate's routes, rules and marks went in.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::dataplane::Observed;
use crate::dataplane::ObservedNftTable;
use crate::ir::{AddressKey, DesiredState, Family, NftTable, Route, RuleKey};
use crate::ledger::NftEntry;
use crate::ledger::{Ledger, Ownership};
use crate::plan::{Conflict, NftSetDelta, Op, Plan};

/// Plans with the default [`Ownership`].
pub fn diff(desired: &DesiredState, observed: &Observed, ledger: &Ledger) -> Plan {
    diff_with(desired, observed, ledger, &Ownership::default())
}

/// Computes the operations that make the owned part of `observed` equal to
/// `desired`. Objects without routerd's markers are never in the plan;
/// objects with markers are deleted only when the ledger records them and
/// their owner is not retained (fail-static).
pub fn diff_with(
    desired: &DesiredState,
    observed: &Observed,
    ledger: &Ledger,
    own: &Ownership,
) -> Plan {
    let mut plan = Plan::default();
    let links = diff_links(desired, observed, ledger, &mut plan);
    // A recreated link comes back without its addresses and routes; a
    // foreign link of a wanted name carries none of the owner's.
    let filtered_observed;
    let observed = if links.recreated.is_empty() {
        observed
    } else {
        let mut o = observed.clone();
        o.addresses.retain(|a| !links.recreated.contains(&a.device));
        o.routes.retain(|r| {
            !r.device
                .as_ref()
                .is_some_and(|d| links.recreated.contains(d))
        });
        filtered_observed = o;
        &filtered_observed
    };
    let filtered_desired;
    let desired = if links.foreign.is_empty() {
        desired
    } else {
        let mut d = desired.clone();
        d.addresses.retain(|a| !links.foreign.contains(&a.device));
        d.routes.retain(|r| {
            !r.device
                .iter()
                .chain(r.nexthops.iter().map(|n| &n.device))
                .any(|dev| links.foreign.contains(dev))
        });
        filtered_desired = d;
        &filtered_desired
    };
    let retained = |owner: &str| desired.retained.contains(owner);

    // Routes: both sides sorted by key, then one merge walk (10k routes
    // are diffed in well under a millisecond).
    let mut upserts = Vec::new();
    let mut route_deletes = Vec::new();
    let mut want: Vec<&Route> = desired.routes.iter().collect();
    want.sort_by_key(|r| r.key());
    want.dedup_by_key(|r| r.key());
    let mut have: Vec<&Route> = observed.routes.iter().collect();
    have.sort_by_key(|r| r.key());
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (want.get(i), have.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(d), Some(o)) => d.key().cmp(&o.key()),
        };
        match order {
            Ordering::Less => {
                if let Some(d) = want.get(i) {
                    upserts.push(Op::AddRoute {
                        route: (*d).clone(),
                    });
                }
                i += 1;
            }
            Ordering::Greater => {
                if let Some(o) = have.get(j) {
                    stale_route(o, ledger, own, &retained, &mut route_deletes);
                }
                j += 1;
            }
            Ordering::Equal => {
                if let (Some(d), Some(o)) = (want.get(i), have.get(j)) {
                    if o.protocol != own.route_protocol {
                        plan.conflicts.push(Conflict {
                            owner: d.owner.clone(),
                            message: format!(
                                "route {} is held by a foreign route (proto {})",
                                d.key(),
                                o.protocol
                            ),
                        });
                    } else if !d.same_forwarding(o) {
                        upserts.push(Op::ReplaceRoute {
                            old: (*o).clone(),
                            new: (*d).clone(),
                        });
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }

    // Rules.
    let mut rule_adds = Vec::new();
    let mut rule_deletes = Vec::new();
    let obs_rules: BTreeMap<RuleKey, u8> = observed
        .rules
        .iter()
        .map(|r| (r.key(), r.protocol))
        .collect();
    let want_rules: BTreeSet<RuleKey> = desired.rules.iter().map(|r| r.key()).collect();
    for d in &desired.rules {
        if !own.rule_priorities.contains(&d.priority) {
            plan.conflicts.push(Conflict {
                owner: d.owner.clone(),
                message: format!(
                    "rule {} is outside routerd's priority range {}-{}",
                    d.key(),
                    own.rule_priorities.start(),
                    own.rule_priorities.end()
                ),
            });
        } else {
            match obs_rules.get(&d.key()) {
                None => rule_adds.push(Op::AddRule { rule: d.clone() }),
                Some(p) if *p != own.route_protocol => plan.conflicts.push(Conflict {
                    owner: d.owner.clone(),
                    message: format!("rule {} is held by a foreign rule (proto {p})", d.key()),
                }),
                Some(_) => {}
            }
        }
    }
    let mut seen = BTreeSet::new();
    for o in &observed.rules {
        let k = o.key();
        if !own.rule_priorities.contains(&k.priority)
            || o.protocol != own.route_protocol
            || want_rules.contains(&k)
        {
            continue;
        }
        match ledger.rules.get(&k) {
            Some(owner) if !retained(owner) && seen.insert(k) => {
                let mut rule = o.clone();
                rule.owner = owner.clone();
                rule_deletes.push(Op::DeleteRule { rule });
            }
            _ => {}
        }
    }

    // nft tables.
    let mut nft_replaces = Vec::new();
    let mut nft_deletes = Vec::new();
    for t in &desired.nft {
        let key = t.key();
        let current = observed.nft.iter().find(|o| o.key == key);
        let up_to_date = match (current, ledger.nft.get(&key)) {
            (Some(o), Some(e)) => {
                e.digest == t.digest() && e.fingerprint == o.fingerprint && o.chains == t.shape()
            }
            _ => false,
        };
        if up_to_date {
            continue;
        }
        match current.and_then(|o| set_update(t, o, ledger.nft.get(&key)?)) {
            Some(op) => nft_replaces.push(op),
            None => nft_replaces.push(Op::ReplaceNftTable { table: t.clone() }),
        }
    }
    for o in &observed.nft {
        if desired.nft.iter().any(|t| t.key() == o.key) {
            continue;
        }
        if let Some(e) = ledger.nft.get(&o.key)
            && !e.owners.iter().any(|w| retained(w))
        {
            nft_deletes.push(Op::DeleteNftTable { key: o.key.clone() });
        }
    }

    let (address_adds, address_deletes) = diff_addresses(desired, observed, ledger, own, &mut plan);

    let closing = |op: &Op| match op {
        Op::ReplaceNftTable { table } => is_fail_closed(&table.name),
        Op::DeleteNftTable { key } => is_fail_closed(&key.name),
        _ => false,
    };
    let (closes, nft_replaces): (Vec<Op>, Vec<Op>) = nft_replaces.into_iter().partition(closing);
    let (opens, nft_deletes): (Vec<Op>, Vec<Op>) = nft_deletes.into_iter().partition(closing);
    // Every link that gets an IPv4 address now and announces its
    // addresses sends a gratuitous ARP once they are all there.
    let announces: Vec<Op> = desired
        .links
        .iter()
        .filter(|l| l.announce && !links.foreign.contains(&l.name))
        .filter(|l| {
            address_adds.iter().any(|op| {
                matches!(op, Op::AddAddress { address }
                    if address.device == l.name && address.family() == Family::V4)
            })
        })
        .map(|l| Op::AnnounceLink {
            device: l.name.clone(),
            owner: l.owner.clone(),
        })
        .collect();
    let capture = crate::capture::diff_capture(desired, observed, ledger);
    // An owner flip: this node now owns an address it captured, and its
    // local /32 route on the capture device goes in in this plan. The route
    // goes first and the capture stops after it (the order: the new
    // owner's local route, then the old capturer stops), so a packet that
    // still reaches this router is delivered locally, never sent back out.
    // Fencing keeps its order: a closed gate removes capture without adding
    // a local route for the address, so that stop stays first.
    let (handovers, stops): (Vec<Op>, Vec<Op>) =
        capture.stops.into_iter().partition(|op| match op {
            Op::DeleteNeighProxy { proxy } => upserts.iter().any(|u| {
                let route = match u {
                    Op::AddRoute { route } => route,
                    Op::ReplaceRoute { new, .. } => new,
                    _ => return false,
                };
                route.destination == ipnet::IpNet::from(ipnet::Ipv4Net::from(proxy.address))
                    && route.device.as_deref() == Some(proxy.device.as_str())
            }),
            _ => false,
        });
    plan.ops.extend(closes);
    plan.ops.extend(stops);
    plan.ops.extend(links.recreate_deletes);
    plan.ops.extend(links.adds);
    plan.ops.extend(address_adds);
    plan.ops.extend(links.sets);
    plan.ops.extend(announces);
    plan.ops.extend(upserts);
    plan.ops.extend(handovers);
    plan.ops.extend(nft_replaces);
    plan.ops.extend(rule_adds);
    plan.ops.extend(capture.forwarding_on);
    plan.ops.extend(capture.starts);
    plan.ops.extend(rule_deletes);
    plan.ops.extend(route_deletes);
    plan.ops.extend(capture.restores);
    plan.ops.extend(nft_deletes);
    plan.ops.extend(address_deletes);
    plan.ops.extend(links.deletes);
    plan.ops.extend(opens);
    plan
}

/// The link part of a plan.
#[derive(Default)]
struct LinkDiff {
    adds: Vec<Op>,
    recreate_deletes: Vec<Op>,
    sets: Vec<Op>,
    deletes: Vec<Op>,
    /// Owned links deleted and created again (kind or creation parameters
    /// changed).
    recreated: BTreeSet<String>,
    /// Wanted names held by links routerd did not create.
    foreign: BTreeSet<String>,
}

/// Links: created when absent; one of the same name that the ledger does
/// not record is foreign: a conflict of the owner, never adopted, changed
/// or deleted. An owned link is recreated when its kind or creation
/// parameters differ, set when only MTU or admin state do, deleted when
/// nobody wants it (unless its owner is retained).
fn diff_links(
    desired: &DesiredState,
    observed: &Observed,
    ledger: &Ledger,
    plan: &mut Plan,
) -> LinkDiff {
    let mut out = LinkDiff::default();
    if desired.links.is_empty() && ledger.links.is_empty() {
        return out;
    }
    for d in &desired.links {
        let Some(o) = observed.link(&d.name) else {
            out.adds.push(Op::AddLink { link: d.clone() });
            continue;
        };
        if !ledger.owns_link(&o) {
            let kind = match o.kind.kind_name() {
                "" => "a device".to_string(),
                k => format!("a {k} link"),
            };
            plan.conflicts.push(Conflict {
                owner: d.owner.clone(),
                message: format!(
                    "link {} is held by {kind} routerd did not create; routerd does not adopt, change or delete it",
                    d.name
                ),
            });
            out.foreign.insert(d.name.clone());
        } else if d.needs_recreate(&o) {
            let mut old = o.clone();
            old.owner = d.owner.clone();
            out.recreate_deletes.push(Op::DeleteLink { link: old });
            out.adds.push(Op::AddLink { link: d.clone() });
            out.recreated.insert(d.name.clone());
        } else if d.needs_set(&o) {
            out.sets.push(Op::SetLink { link: d.clone() });
        }
    }
    for (name, owner) in &ledger.links {
        if desired.links.iter().any(|d| &d.name == name) || desired.retained.contains(owner) {
            continue;
        }
        if let Some(mut link) = observed.link(name).filter(|l| ledger.owns_link(l)) {
            link.owner = owner.clone();
            out.deletes.push(Op::DeleteLink { link });
        }
    }
    out
}

/// The in-place update that turns the kernel's table into `t`, when only
/// set elements differ: the kernel holds what routerd last loaded
/// (fingerprint unchanged), that load had `t`'s skeleton, and every set's
/// elements were read back. Anything else is replaced whole.
fn set_update(t: &NftTable, o: &ObservedNftTable, e: &NftEntry) -> Option<Op> {
    if e.skeleton.is_empty()
        || e.fingerprint.is_empty()
        || e.fingerprint != o.fingerprint
        || e.skeleton != t.skeleton_digest()
        || o.chains != t.shape()
    {
        return None;
    }
    let mut sets = Vec::new();
    for s in &t.sets {
        let have: BTreeSet<_> = o.sets.get(&s.name)?.iter().collect();
        let want: BTreeSet<_> = s.elements.iter().collect();
        let add: Vec<_> = want.difference(&have).map(|n| **n).collect();
        let remove: Vec<_> = have.difference(&want).map(|n| **n).collect();
        if !add.is_empty() || !remove.is_empty() {
            sets.push(NftSetDelta {
                name: s.name.clone(),
                family: s.family,
                interval: s.is_interval(),
                add,
                remove,
            });
        }
    }
    // Same skeleton and elements but another digest cannot happen; a
    // replacement is the safe answer if it somehow does.
    if sets.is_empty() {
        return None;
    }
    Some(Op::UpdateNftSets {
        table: t.key(),
        owners: t.owners.clone(),
        sets,
    })
}

fn is_fail_closed(table: &str) -> bool {
    table.starts_with(crate::render::failclosed::FAIL_CLOSED_TABLE_PREFIX)
}

/// Addresses: added when absent; one present that the ledger does not
/// record is foreign and only noted; an owned one nobody wants any more is
/// deleted (unless its owner is retained or its device protected).
fn diff_addresses(
    desired: &DesiredState,
    observed: &Observed,
    ledger: &Ledger,
    own: &Ownership,
    plan: &mut Plan,
) -> (Vec<Op>, Vec<Op>) {
    let mut adds = Vec::new();
    let mut deletes = Vec::new();
    if desired.addresses.is_empty() && ledger.addresses.is_empty() {
        return (adds, deletes);
    }
    let have: BTreeSet<AddressKey> = observed.addresses.iter().map(|a| a.key()).collect();
    let want: BTreeSet<AddressKey> = desired.addresses.iter().map(|a| a.key()).collect();
    for d in &desired.addresses {
        let key = d.key();
        if !have.contains(&key) {
            adds.push(Op::AddAddress { address: d.clone() });
        } else if !ledger.addresses.contains_key(&key) {
            plan.notes.push(Conflict {
                owner: d.owner.clone(),
                message: format!(
                    "address {key} was already there; routerd did not add it and will not remove it"
                ),
            });
        }
        if d.exclusive {
            let others: Vec<String> = observed
                .addresses
                .iter()
                .filter(|o| o.device == d.device && o.family() == d.family() && o.key() != key)
                .map(|o| o.address.to_string())
                .collect();
            if !others.is_empty() {
                plan.notes.push(Conflict {
                    owner: d.owner.clone(),
                    message: format!(
                        "exclusive: {} also carries {}; routerd reports them and removes none it did not add",
                        d.device,
                        others.join(", ")
                    ),
                });
            }
        }
    }
    for o in &observed.addresses {
        let key = o.key();
        if want.contains(&key) || own.protected_devices.contains(&o.device) {
            continue;
        }
        if let Some(owner) = ledger.addresses.get(&key)
            && !desired.retained.contains(owner)
        {
            let mut address = o.clone();
            address.owner = owner.clone();
            deletes.push(Op::DeleteAddress { address });
        }
    }
    (adds, deletes)
}

fn stale_route(
    o: &Route,
    ledger: &Ledger,
    own: &Ownership,
    retained: &impl Fn(&str) -> bool,
    out: &mut Vec<Op>,
) {
    if o.protocol != own.route_protocol || own.protected_device(o).is_some() {
        return;
    }
    if let Some(owner) = ledger.routes.get(&o.key())
        && !retained(owner)
    {
        let mut route = o.clone();
        route.owner = owner.clone();
        out.push(Op::DeleteRoute { route });
    }
}
