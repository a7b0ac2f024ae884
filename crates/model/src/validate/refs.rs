//! Cross-resource references: which resources a resource points at, and
//! checking that they exist and provide the fields read from them.

use std::collections::HashMap;

use crate::Problems;
use crate::id::{Kind, split_kind_name};
use crate::resource::Resource;
use crate::spec::{ResourceDependency, StatusValueSource};

/// Name lookup over one config: (kind, name) to position in the slice.
#[derive(Debug, Default)]
pub struct NameIndex<'a> {
    map: HashMap<(Kind, &'a str), usize>,
    /// (kind, name) of resources of routerd kinds kept without being managed.
    unmanaged: std::collections::HashSet<(&'a str, &'a str)>,
}

impl<'a> NameIndex<'a> {
    /// Indexes `resources` (the first of duplicates wins).
    pub fn build(resources: &'a [Resource]) -> Self {
        let mut map = HashMap::with_capacity(resources.len());
        for (i, r) in resources.iter().enumerate() {
            map.entry((r.kind(), r.name())).or_insert(i);
        }
        NameIndex {
            map,
            unmanaged: Default::default(),
        }
    }

    /// Indexes an iterator of resources with their positions.
    pub fn from_positions(items: impl IntoIterator<Item = (usize, &'a Resource)>) -> Self {
        let mut map = HashMap::new();
        for (i, r) in items {
            map.entry((r.kind(), r.name())).or_insert(i);
        }
        NameIndex {
            map,
            unmanaged: Default::default(),
        }
    }

    /// Adds one resource.
    pub fn insert(&mut self, kind: Kind, name: &'a str, pos: usize) {
        self.map.entry((kind, name)).or_insert(pos);
    }

    /// Adds a resource of a routerd kind this daemon does not manage.
    pub fn insert_unmanaged(&mut self, kind: &'a str, name: &'a str) {
        self.unmanaged.insert((kind, name));
    }

    /// Whether an unmanaged resource (kind, name) exists.
    pub fn contains_unmanaged(&self, kind: &str, name: &str) -> bool {
        self.unmanaged.contains(&(kind, name))
    }

    /// Removes one resource.
    pub fn remove(&mut self, kind: Kind, name: &str) {
        self.map.retain(|(k, n), _| !(*k == kind && *n == name));
    }

    /// Whether (kind, name) exists.
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.map.contains_key(&(kind, name))
    }

    /// Position of (kind, name).
    pub fn get(&self, kind: Kind, name: &str) -> Option<usize> {
        self.map.get(&(kind, name)).copied()
    }

    /// Whether `name` is an interface-like resource (Interface, PPPoESession, DSLiteTunnel).
    pub fn has_interface_like(&self, name: &str) -> bool {
        [Kind::Interface, Kind::PPPoESession, Kind::DSLiteTunnel]
            .iter()
            .any(|k| self.contains(*k, name))
    }
}

/// One outgoing reference of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Field path of the reference.
    pub path: String,
    /// Kinds that satisfy it.
    pub kinds: &'static [Kind],
    /// Referenced name.
    pub name: String,
}

const IFACE: &[Kind] = &[Kind::Interface, Kind::PPPoESession, Kind::DSLiteTunnel];

/// Every name reference of `r` (status references excluded), for reverse
/// indexes such as "which resources break if this one is masked".
pub fn references(r: &Resource) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut push = |path: String, kinds: &'static [Kind], name: &str| {
        if !name.trim().is_empty() {
            out.push(Reference {
                path,
                kinds,
                name: name.trim().to_string(),
            });
        }
    };
    if let Some(s) = r.as_dslite() {
        push("spec.interface".into(), &[Kind::Interface], &s.interface);
    }
    if let Some(s) = r.as_health_check()
        && let Some(i) = &s.interface
    {
        push("spec.interface".into(), IFACE, i);
    }
    if let Some(s) = r.as_egress_policy() {
        for (f, refs) in [
            ("destinationSetRefs", &s.destination_set_refs),
            ("excludeDestinationSetRefs", &s.exclude_destination_set_refs),
        ] {
            for (i, v) in refs.iter().enumerate() {
                if let Some(("IPAddressSet", n)) = split_kind_name(v) {
                    push(format!("spec.{f}[{i}]"), &[Kind::IPAddressSet], n);
                }
            }
        }
        for (i, c) in s.candidates.iter().enumerate() {
            if let Some(x) = &c.interface {
                push(format!("spec.candidates[{i}].interface"), IFACE, x);
            }
            if let Some(h) = &c.health_check {
                push(
                    format!("spec.candidates[{i}].healthCheck"),
                    &[Kind::HealthCheck],
                    h,
                );
            }
            for (j, t) in c.targets.iter().enumerate() {
                if let Some(h) = &t.health_check {
                    push(
                        format!("spec.candidates[{i}].targets[{j}].healthCheck"),
                        &[Kind::HealthCheck],
                        h,
                    );
                }
            }
        }
    }
    if let Some(s) = r.as_nat44() {
        if let Some(e) = &s.egress_interface {
            push("spec.egressInterface".into(), IFACE, e);
        }
        if let Some(p) = &s.egress_policy_ref {
            push("spec.egressPolicyRef".into(), &[Kind::EgressRoutePolicy], p);
        }
        for (f, refs) in [
            ("destinationSetRefs", &s.destination_set_refs),
            ("excludeDestinationSetRefs", &s.exclude_destination_set_refs),
        ] {
            for (i, v) in refs.iter().enumerate() {
                if let Some(("IPAddressSet", n)) = split_kind_name(v) {
                    push(format!("spec.{f}[{i}]"), &[Kind::IPAddressSet], n);
                }
            }
        }
    }
    if let Some(s) = r.as_static_address() {
        push("spec.interface".into(), IFACE, &s.interface);
    }
    if let Some(s) = r.as_ipv6_static_route() {
        push("spec.interface".into(), IFACE, &s.interface);
    }
    if let Some(s) = r.as_pppoe() {
        push("spec.interface".into(), &[Kind::Interface], &s.interface);
    }
    if let Some(s) = r.as_dhcpv4_client() {
        push("spec.interface".into(), IFACE, &s.interface);
    }
    if let Some(s) = r.as_hybrid_route() {
        if let Some(p) = &s.peer_ref {
            push(
                "spec.peerRef".into(),
                &[Kind::OverlayPeer],
                crate::lower::peer_name(p),
            );
        }
        if let Some(h) = &s.health_check_ref {
            push("spec.healthCheckRef".into(), &[Kind::HealthCheck], h);
        }
    }
    if let Some(s) = r.as_dynamic_source() {
        push("spec.pluginRef".into(), &[Kind::Plugin], &s.plugin_ref);
    }
    for (path, sv) in status_sources(r) {
        if let Some((k, n)) = split_kind_name(&sv.resource)
            && let Some(kind) = Kind::parse(k)
            && let Some(ks) = single_kind(kind)
        {
            push(format!("{path}.resource"), ks, n);
        }
    }
    out
}

fn single_kind(k: Kind) -> Option<&'static [Kind]> {
    Kind::ALL
        .iter()
        .position(|x| *x == k)
        .map(|i| &Kind::ALL[i..=i])
}

/// A status reference of any shape.
#[derive(Debug, Clone, Copy)]
pub enum StatusRef<'a> {
    /// A `*From` value source (field required).
    Value(&'a StatusValueSource),
    /// A readiness dependency (field defaults to `phase`).
    Dependency(&'a ResourceDependency),
}

impl StatusRef<'_> {
    /// `Kind/name` text.
    pub fn resource(&self) -> &str {
        match self {
            StatusRef::Value(v) => &v.resource,
            StatusRef::Dependency(d) => &d.resource,
        }
    }
}

/// Every status reference of `r` with its path.
pub fn status_refs(r: &Resource) -> Vec<(String, StatusRef<'_>)> {
    let mut out: Vec<(String, StatusRef<'_>)> = status_sources(r)
        .into_iter()
        .map(|(p, v)| (p, StatusRef::Value(v)))
        .collect();
    match &r.spec {
        crate::Spec::DSLiteTunnel(s) => {
            for (i, d) in s.depends_on.iter().enumerate() {
                out.push((format!("spec.dependsOn[{i}]"), StatusRef::Dependency(d)));
            }
        }
        crate::Spec::IPv4Route(s) => {
            for (i, d) in s.depends_on.iter().enumerate() {
                out.push((format!("spec.dependsOn[{i}]"), StatusRef::Dependency(d)));
            }
        }
        crate::Spec::EgressRoutePolicy(s) => {
            for (ci, c) in s.candidates.iter().enumerate() {
                for (i, d) in c.depends_on.iter().enumerate() {
                    out.push((
                        format!("spec.candidates[{ci}].dependsOn[{i}]"),
                        StatusRef::Dependency(d),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

fn status_sources(r: &Resource) -> Vec<(String, &StatusValueSource)> {
    let mut out = Vec::new();
    match &r.spec {
        crate::Spec::DSLiteTunnel(s) => {
            if let Some(v) = &s.aftr_from {
                out.push(("spec.aftrFrom".to_string(), v));
            }
            if let Some(v) = &s.local_address_from {
                out.push(("spec.localAddressFrom".to_string(), v));
            }
        }
        crate::Spec::EgressRoutePolicy(s) => {
            for (i, c) in s.candidates.iter().enumerate() {
                if let Some(v) = &c.device_from {
                    out.push((format!("spec.candidates[{i}].deviceFrom"), v));
                }
                if let Some(v) = &c.gateway_from {
                    out.push((format!("spec.candidates[{i}].gatewayFrom"), v));
                }
                for (j, t) in c.targets.iter().enumerate() {
                    if let Some(v) = &t.gateway_from {
                        out.push((format!("spec.candidates[{i}].targets[{j}].gatewayFrom"), v));
                    }
                }
            }
        }
        crate::Spec::IPv4Route(s) => {
            if let Some(v) = &s.device_from {
                out.push(("spec.deviceFrom".to_string(), v));
            }
            if let Some(v) = &s.gateway_from {
                out.push(("spec.gatewayFrom".to_string(), v));
            }
        }
        crate::Spec::NAT44Rule(s) => {
            if let Some(v) = &s.snat_address_from {
                out.push(("spec.snatAddressFrom".to_string(), v));
            }
        }
        _ => {}
    }
    out
}

/// Checks every status reference of `r` against `idx` (routerd's
/// `validateStatusReferences`).
pub(crate) fn check_status_refs(r: &Resource, idx: &NameIndex<'_>, p: &mut Problems<'_>) {
    for (path, sr) in status_refs(r) {
        let (resource, field, optional, is_value) = match sr {
            StatusRef::Value(v) => (
                v.resource.trim(),
                v.field.as_deref().unwrap_or(""),
                v.optional == Some(true),
                true,
            ),
            StatusRef::Dependency(d) => (
                d.resource.trim(),
                d.effective_field(),
                d.optional == Some(true),
                false,
            ),
        };
        if resource.is_empty() {
            if !field.is_empty() && is_value {
                p.field(&format!("{path}.resource"), "is required when field is set");
            } else {
                p.field(&format!("{path}.resource"), "is required");
            }
            continue;
        }
        let Some((k, n)) = split_kind_name(resource) else {
            p.at(
                &format!("{path}.resource"),
                format!("{path}.resource: must be Kind/name"),
            );
            continue;
        };
        if is_value && field.is_empty() {
            p.field(&format!("{path}.field"), "is required");
            continue;
        }
        let kind = Kind::parse(k);
        if kind.is_none() && idx.contains_unmanaged(k, n) {
            // Kept, never managed: its status never appears, and which
            // fields it would provide is routerd's business.
            continue;
        }
        let exists = kind.is_some_and(|kind| idx.contains(kind, n));
        if !exists {
            if !optional {
                p.field(&path, format!("references missing {k} \"{n}\""));
            }
            continue;
        }
        if let Some(kind) = kind
            && !kind.provides_field(field)
        {
            p.field(
                &path,
                format!("references {k}/{n}.{field}, but {k} does not provide field \"{field}\""),
            );
        }
    }
}

/// Status references (`dependsOn`, `deviceFrom`, `gatewayFrom` and the other
/// `*From` fields) that loop back to where they start, including a resource
/// that reads its own status. Such a loop can never resolve: each member
/// waits for another member's status, so all of them would sit in
/// `Pending` forever. One error per loop, on the member listed first in the
/// configuration, naming every hop.
pub fn status_ref_cycles(
    resources: &[Resource],
    idx: &NameIndex<'_>,
) -> Vec<(usize, String, String)> {
    // edges[i] = (path, target) for every status reference that resolves.
    let edges: Vec<Vec<(String, usize)>> = resources
        .iter()
        .map(|r| {
            status_refs(r)
                .into_iter()
                .filter_map(|(path, sr)| {
                    let (k, n) = split_kind_name(sr.resource().trim())?;
                    let j = idx.get(Kind::parse(k)?, n)?;
                    Some((path, j))
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    // Tarjan's strongly connected components, iteratively (configs are
    // operator input: no recursion depth bound on them).
    let n = resources.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0usize;
    let mut components: Vec<Vec<usize>> = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut e)) = work.last_mut() {
            if let Some((_, w)) = edges[v].get(*e) {
                let w = *w;
                *e += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(comp);
            }
        }
    }
    for comp in components {
        let Some(&first) = comp.iter().min() else {
            continue;
        };
        let self_loop = edges[first].iter().any(|(_, j)| *j == first);
        if comp.len() == 1 && !self_loop {
            continue;
        }
        // The shortest way from the first member back to itself.
        let Some((hops, first_path)) = shortest_loop(first, &edges, &comp) else {
            continue;
        };
        let names: Vec<String> = hops
            .iter()
            .map(|&i| format!("{}/{}", resources[i].kind().as_str(), resources[i].name()))
            .collect();
        out.push((first, first_path, names.join(" -> ")));
    }
    out.sort();
    out
}

/// Breadth-first from `start` inside `comp` until an edge leads back to
/// it: the hops (starting and ending with `start`) and the path of the
/// first reference taken.
fn shortest_loop(
    start: usize,
    edges: &[Vec<(String, usize)>],
    comp: &[usize],
) -> Option<(Vec<usize>, String)> {
    let mut prev: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for (_, w) in edges.get(v)? {
            if *w == start {
                let mut hops = vec![start, v];
                let mut cur = v;
                while let Some(&p) = prev.get(&cur) {
                    hops.push(p);
                    cur = p;
                }
                hops.reverse();
                let second = hops.get(1).copied().unwrap_or(start);
                let path = edges
                    .get(start)?
                    .iter()
                    .find(|(_, j)| *j == second)
                    .map(|(p, _)| p.clone())?;
                return Some((hops, path));
            }
            if comp.contains(w) && *w != start && !prev.contains_key(w) {
                prev.insert(*w, v);
                queue.push_back(*w);
            }
        }
    }
    None
}
