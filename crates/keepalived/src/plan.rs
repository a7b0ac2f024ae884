//! The group plan: what this node runs for every gateway it is a member
//! of and steers for every policy it is a client of, computed from the
//! configuration alone so every member derives the same election inputs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use routerd_model::spec::gateway::{
    DEFAULT_ADVERT_INTERVAL, EgressGatewaySpec, NodeSpec, SourceMode, members, selected_groups,
    vrrp_id,
};
use routerd_model::{GoDuration, Kind, Resource};
use sha2::{Digest, Sha256};

/// Where the daemons' files live (one runtime directory per routerd
/// instance, so several instances in namespaces on one host never share).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The runtime directory (`/run/routerd/gateway` by default).
    pub dir: PathBuf,
}

impl Paths {
    /// Paths under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Paths { dir: dir.into() }
    }
    /// keepalived.conf.
    pub fn keepalived_conf(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }
    /// conntrackd.conf.
    pub fn conntrackd_conf(&self) -> PathBuf {
        self.dir.join("conntrackd.conf")
    }
    /// The notify FIFO keepalived writes state changes to.
    pub fn notify_fifo(&self) -> PathBuf {
        self.dir.join("keepalived.fifo")
    }
    /// The suitability file of one gateway (`0` suitable, `1` not).
    pub fn track_file(&self, gateway: &str) -> PathBuf {
        self.dir.join(format!("{}.suitable", sanitize(gateway)))
    }
    /// A file in the runtime directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths::new("/run/routerd/gateway")
    }
}

/// keepalived names allow few characters; gateway names are DNS labels,
/// but be safe with anything else.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why a gateway (or the node) could not be planned; the gateway is left
/// out whole (never half-configured) and its status says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The node name given to routerd is not a declared Node.
    #[error(
        "this node \"{0}\" is not declared as a Node: set --node-name (ROUTERD_NODE_NAME) to one of the Node resources"
    )]
    UnknownNode(String),
    /// A member has no usable peer address.
    #[error("Node \"{0}\" has no usable spec.addresses[0]")]
    NoAddress(String),
    /// No interface of this node can carry an address of the gateway.
    #[error(
        "no interface of node \"{node}\" holds {addr} in its subnet and none is named: set {field}"
    )]
    NoInterface {
        /// This node.
        node: String,
        /// The address.
        addr: IpAddr,
        /// The field that would name the interface.
        field: &'static str,
    },
    /// The gateway has no valid source configuration.
    #[error("spec.sourceIP is invalid: {0}")]
    Source(String),
}

/// An address keepalived places on the active node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    /// Address with prefix length.
    pub addr: IpNet,
    /// Interface it goes on.
    pub dev: String,
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Peer address.
    pub address: IpAddr,
    /// VRRP priority from rendezvous hashing.
    pub priority: u8,
}

/// One gateway this node is a member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPlan {
    /// Gateway name.
    pub name: String,
    /// Resource id, for status.
    pub id: String,
    /// VRRP virtual router id.
    pub vrid: u8,
    /// Source mode.
    pub mode: SourceMode,
    /// Advertisement interval in centiseconds.
    pub advert_cs: u32,
    /// Whether a returning higher-priority node takes over.
    pub preempt: bool,
    /// Preempt delay in seconds (with `preempt`).
    pub preempt_delay_s: u32,
    /// Every member, most preferred first.
    pub members: Vec<Member>,
    /// This node's priority.
    pub priority: u8,
    /// This node's peer address (VRRP unicast source).
    pub local: IpAddr,
    /// Interface the VRRP adverts use (the one holding `local`).
    pub vrrp_dev: String,
    /// The external virtual IP (VirtualIPAddress mode).
    pub external: Option<Vip>,
    /// The clients' next hop that moves with the role.
    pub internal: Option<Vip>,
    /// The public interface (the VIP's, or primary-IP mode's).
    pub public_dev: String,
    /// Routing table of the egress traffic (Deckhouse's field).
    pub routing_table: Option<String>,
    /// Health checks that make the node suitable.
    pub health_checks: Vec<String>,
    /// Whether conntrackd syncs this gateway.
    pub connection_sync: bool,
    /// The suitability file keepalived tracks.
    pub track_file: PathBuf,
}

impl GatewayPlan {
    /// The keepalived instance name.
    pub fn instance(&self) -> String {
        format!("gw_{}", sanitize(&self.name))
    }

    /// The member keepalived prefers when all are suitable.
    pub fn preferred(&self) -> Option<&str> {
        self.members.first().map(|m| m.name.as_str())
    }
}

/// One policy this node steers as a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPlan {
    /// Policy resource id.
    pub policy: String,
    /// Gateway name.
    pub gateway: String,
    /// Where matching traffic goes: the gateway's internal next hop.
    pub next_hop: IpAddr,
    /// Selected source prefixes.
    pub sources: Vec<IpNet>,
    /// Selected ingress interfaces.
    pub interfaces: Vec<String>,
    /// Steered destinations.
    pub destinations: Vec<IpNet>,
    /// Destinations left out.
    pub excluded: Vec<IpNet>,
}

/// conntrackd between the members of the gateways that sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPlan {
    /// This node's address.
    pub local: IpAddr,
    /// Interface holding it.
    pub dev: String,
    /// Other members' addresses (every gateway that syncs).
    pub peers: Vec<IpAddr>,
}

/// Everything this node runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// This node's name.
    pub node: String,
    /// Gateways this node is a member of, by name.
    pub gateways: Vec<GatewayPlan>,
    /// Gateways that could not be planned, with why.
    pub problems: Vec<(String, PlanError)>,
    /// Policies this node steers as a client (not a member of their gateway).
    pub clients: Vec<ClientPlan>,
    /// conntrackd, when a gateway syncs.
    pub sync: Option<SyncPlan>,
}

/// Rendezvous hashing as Deckhouse does it: members sorted by SHA-256 of
/// `gateway#node`, so every member computes the same order without
/// talking and different gateways prefer different nodes.
pub fn rendezvous_order<'a>(gateway: &str, nodes: &[&'a str]) -> Vec<&'a str> {
    let mut keyed: Vec<([u8; 32], &str)> = nodes
        .iter()
        .map(|n| {
            let d = Sha256::digest(format!("{gateway}#{n}").as_bytes());
            (d.into(), *n)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// Priority of rank `i`: 250, 240, ... (never below 10, never 255, which
/// VRRP reserves for the address owner).
pub fn priority_of_rank(i: usize) -> u8 {
    let p = 250usize.saturating_sub(i.saturating_mul(10)).max(10);
    u8::try_from(p).unwrap_or(10)
}

fn node_address(n: &NodeSpec) -> Option<IpAddr> {
    let a = n.addresses.first()?.trim();
    a.parse::<IpAddr>()
        .ok()
        .or_else(|| a.parse::<IpNet>().ok().map(|n| n.addr()))
}

/// The interface of `n` whose subnet holds `addr` (restricted to `only`
/// when given), with that subnet.
fn interface_for(n: &NodeSpec, addr: IpAddr, only: &[String]) -> Option<(String, IpNet)> {
    n.interfaces
        .iter()
        .filter(|i| only.is_empty() || only.iter().any(|o| o.trim() == i.name.trim()))
        .find_map(|i| {
            i.addresses
                .iter()
                .filter_map(|a| a.trim().parse::<IpNet>().ok())
                .find(|net| net.contains(&addr))
                .map(|net| (i.name.trim().to_string(), net))
        })
}

fn parse_vip(
    text: &str,
    node_name: &str,
    node: &NodeSpec,
    named: &[String],
    field: &'static str,
) -> Result<Vip, PlanError> {
    let text = text.trim();
    let (addr, given_len) = match text.parse::<IpNet>() {
        Ok(n) if text.contains('/') => (n.addr(), Some(n.prefix_len())),
        _ => match text.parse::<IpAddr>() {
            Ok(a) => (a, None),
            Err(_) => return Err(PlanError::Source(format!("\"{text}\" is not an address"))),
        },
    };
    let found = interface_for(node, addr, named);
    let dev = named
        .first()
        .map(|s| s.trim().to_string())
        .or_else(|| found.as_ref().map(|(d, _)| d.clone()))
        .ok_or(PlanError::NoInterface {
            node: node_name.to_string(),
            addr,
            field,
        })?;
    let len = given_len
        .or_else(|| found.map(|(_, net)| net.prefix_len()))
        .unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
    let addr = IpNet::new(addr, len).map_err(|e| PlanError::Source(e.to_string()))?;
    Ok(Vip { addr, dev })
}

fn centiseconds(text: Option<&str>) -> u32 {
    let d = text
        .and_then(|t| GoDuration::parse(t.trim()).ok())
        .or_else(|| GoDuration::parse(DEFAULT_ADVERT_INTERVAL).ok())
        .unwrap_or(GoDuration::from_millis(100));
    u32::try_from(d.as_nanos() / 10_000_000)
        .unwrap_or(10)
        .clamp(1, 4095)
}

fn plan_gateway(
    r: &Resource,
    s: &EgressGatewaySpec,
    resources: &[Resource],
    node_name: &str,
    me: &NodeSpec,
    paths: &Paths,
) -> Result<GatewayPlan, PlanError> {
    let mode = s
        .mode()
        .ok_or_else(|| PlanError::Source("unknown mode".into()))?;
    let ms = members(s, resources);
    let names: Vec<&str> = ms.iter().map(|m| m.name()).collect();
    let order = rendezvous_order(r.name(), &names);
    let mut out_members = Vec::with_capacity(order.len());
    for (rank, name) in order.iter().enumerate() {
        let spec = ms
            .iter()
            .find(|m| m.name() == *name)
            .and_then(|m| m.as_node())
            .ok_or_else(|| PlanError::NoAddress((*name).to_string()))?;
        let address =
            node_address(spec).ok_or_else(|| PlanError::NoAddress((*name).to_string()))?;
        out_members.push(Member {
            name: (*name).to_string(),
            address,
            priority: priority_of_rank(rank),
        });
    }
    let local = node_address(me).ok_or_else(|| PlanError::NoAddress(node_name.to_string()))?;
    let priority = out_members
        .iter()
        .find(|m| m.name == node_name)
        .map(|m| m.priority)
        .unwrap_or(10);
    let vrrp_dev = interface_for(me, local, &[])
        .map(|(d, _)| d)
        .ok_or(PlanError::NoInterface {
            node: node_name.to_string(),
            addr: local,
            field: "the Node's spec.interfaces (the interface holding spec.addresses[0])",
        })?;
    let src = s.source_ip.as_ref();
    let vip_src = src.and_then(|s| s.virtual_ip.as_ref());
    let external = match mode {
        SourceMode::VirtualIp => {
            let text = s
                .virtual_ip()
                .ok_or_else(|| PlanError::Source("virtualIPAddress.ip is missing".into()))?;
            let named = vip_src.map(|v| v.interfaces.clone()).unwrap_or_default();
            Some(parse_vip(
                text,
                node_name,
                me,
                &named,
                "spec.sourceIP.virtualIPAddress.interfaces",
            )?)
        }
        SourceMode::PrimaryIp => None,
    };
    let internal = match s.effective_internal(&r.metadata.annotations) {
        Some(i) => {
            let named: Vec<String> = i.interface.iter().cloned().collect();
            Some(parse_vip(
                &i.ip,
                node_name,
                me,
                &named,
                "spec.internal.interface",
            )?)
        }
        None => None,
    };
    let public_dev = match (&external, s.primary_interface()) {
        (Some(v), _) => v.dev.clone(),
        (None, Some(i)) => i.to_string(),
        (None, None) => {
            return Err(PlanError::Source(
                "primaryIPFromEgressGatewayNodeInterface.interfaceName is missing".into(),
            ));
        }
    };
    let (vrid, _) = vrrp_id(r, s);
    let preempt_delay_s = s
        .vrrp
        .as_ref()
        .and_then(|v| v.preempt_delay.as_deref())
        .and_then(|d| GoDuration::parse(d.trim()).ok())
        .map(|d| {
            u32::try_from(d.as_nanos() / 1_000_000_000)
                .unwrap_or(0)
                .min(1000)
        })
        .unwrap_or(0);
    Ok(GatewayPlan {
        name: r.name().to_string(),
        id: r.id().to_string(),
        vrid,
        mode,
        advert_cs: centiseconds(s.vrrp.as_ref().and_then(|v| v.advert_interval.as_deref())),
        preempt: s.preempt(),
        preempt_delay_s,
        members: out_members,
        priority,
        local,
        vrrp_dev,
        external,
        internal,
        public_dev,
        routing_table: vip_src
            .and_then(|v| v.routing_table_name.as_deref())
            .map(|t| t.trim().to_string()),
        health_checks: s
            .health_checks
            .iter()
            .map(|h| h.trim().to_string())
            .collect(),
        connection_sync: s.connection_sync(),
        track_file: paths.track_file(r.name()),
    })
}

fn cidrs(list: &[String]) -> Vec<IpNet> {
    list.iter()
        .filter_map(|c| c.trim().parse::<IpNet>().ok())
        .collect()
}

/// The plan for node `node_name` over a validated configuration.
pub fn plan(resources: &[Resource], node_name: &str, paths: &Paths) -> GroupPlan {
    let mut out = GroupPlan {
        node: node_name.to_string(),
        ..GroupPlan::default()
    };
    let me = resources
        .iter()
        .find(|r| r.kind() == Kind::Node && r.name() == node_name)
        .and_then(|r| r.as_node());
    let mut member_of: Vec<String> = Vec::new();
    for r in resources {
        let Some(s) = r.as_egress_gateway() else {
            continue;
        };
        let is_member = members(s, resources).iter().any(|m| m.name() == node_name);
        if !is_member {
            continue;
        }
        member_of.push(r.name().to_string());
        let Some(me) = me else {
            out.problems.push((
                r.name().to_string(),
                PlanError::UnknownNode(node_name.to_string()),
            ));
            continue;
        };
        match plan_gateway(r, s, resources, node_name, me, paths) {
            Ok(g) => out.gateways.push(g),
            Err(e) => out.problems.push((r.name().to_string(), e)),
        }
    }
    for r in resources {
        let Some(p) = r.as_egress_gateway_policy() else {
            continue;
        };
        let gw_name = p.egress_gateway_name.trim();
        if member_of.iter().any(|m| m == gw_name) {
            // The gateway's own members route it themselves.
            continue;
        }
        let Some(gw) = resources
            .iter()
            .find(|g| g.kind() == Kind::EgressGateway && g.name() == gw_name)
        else {
            continue;
        };
        let Some(gs) = gw.as_egress_gateway() else {
            continue;
        };
        let hop = gs
            .effective_internal(&gw.metadata.annotations)
            .map(|i| i.ip)
            .or_else(|| gs.virtual_ip().map(str::to_string));
        let Some(next_hop) = hop.and_then(|h| {
            let h = h.trim().to_string();
            h.parse::<IpAddr>()
                .ok()
                .or_else(|| h.parse::<IpNet>().ok().map(|n| n.addr()))
        }) else {
            continue;
        };
        let mut sources = cidrs(&p.source_cidrs);
        let mut interfaces: Vec<String> = p
            .ingress_interfaces
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        for g in selected_groups(p, resources) {
            if let Some(cg) = g.as_client_group() {
                sources.extend(cidrs(&cg.source_cidrs));
                interfaces.extend(cg.interfaces.iter().map(|s| s.trim().to_string()));
            }
        }
        sources.sort();
        sources.dedup();
        interfaces.sort();
        interfaces.dedup();
        out.clients.push(ClientPlan {
            policy: r.id().to_string(),
            gateway: gw_name.to_string(),
            next_hop,
            sources,
            interfaces,
            destinations: cidrs(&p.destination_cidrs),
            excluded: cidrs(&p.excluded_cidrs),
        });
    }
    let syncing: Vec<&GatewayPlan> = out.gateways.iter().filter(|g| g.connection_sync).collect();
    if let Some(first) = syncing.first() {
        let mut peers: Vec<IpAddr> = syncing
            .iter()
            .flat_map(|g| g.members.iter())
            .map(|m| m.address)
            .filter(|a| *a != first.local)
            .collect();
        peers.sort();
        peers.dedup();
        out.sync = Some(SyncPlan {
            local: first.local,
            dev: first.vrrp_dev.clone(),
            peers,
        });
    }
    out
}

/// Whether `path` is inside the plan's runtime directory (guards the
/// supervisor against writing elsewhere).
pub fn is_under(paths: &Paths, path: &Path) -> bool {
    path.starts_with(&paths.dir)
}
