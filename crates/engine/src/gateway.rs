//! The gateway agent (issue #18): runs this node's part of every
//! EgressGateway group through keepalived and conntrackd, and reports it as
//! statuses the render reads.
//!
//! The agent owns a [`Supervisor`] on one long-lived thread (its children
//! die with that thread, so a routerd that dies takes its keepalived along
//! and a peer takes the role). It is told after every step what the
//! effective configuration is, which health checks pass and whether the
//! step converged; from that it plans (`routerd_keepalived::plan`), writes
//! each gateway's suitability into its track file, and supervises the
//! daemons. keepalived's notify FIFO tells it the VRRP state, which it
//! publishes as the gateway's status (`vrrpState`, `phase`, conditions,
//! the last failover): the step then renders the source NAT on the MASTER
//! and nothing on the others. On promotion it commits conntrackd's
//! external cache so established connections through the VIP continue.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use routerd_keepalived::plan::{GatewayPlan, GroupPlan, Paths, plan};
use routerd_keepalived::supervise::{Daemon, Effects, Outcome, Supervisor};
use routerd_keepalived::{NotifyEvent, VrrpState};
use routerd_model::{Event, Kind, ObjectRef, Resource};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::daemon::Observation;

/// Event type of a gateway role change on this node.
pub const GATEWAY_ROLE_EVENT: &str = "routerd.gateway.role.changed";
/// Event type of a supervision problem (missing binary, rejected config).
pub const GATEWAY_DEGRADED_EVENT: &str = "routerd.gateway.degraded";

/// Where the agent's statuses go (the loop's observation channel, set when
/// the loop starts).
type Observer = Arc<Mutex<Option<mpsc::Sender<Observation>>>>;

enum Cmd {
    Update {
        effective: Vec<Resource>,
        healthy: BTreeMap<String, bool>,
        converged: bool,
        now: DateTime<Utc>,
    },
    Cordon(bool),
    Notify(NotifyEvent),
    Advert(routerd_keepalived::advert::Advert),
    Beacon(routerd_keepalived::beacon::Beacon, std::net::IpAddr),
    Shutdown(std_mpsc::Sender<()>),
}

/// Handle of the agent thread.
#[derive(Debug)]
pub struct GatewayAgent {
    tx: std_mpsc::Sender<Cmd>,
    observer: Observer,
    node: String,
    paths: Paths,
}

/// What the loop tells the agent after a step.
#[derive(Debug, Clone, Default)]
pub struct StepFacts {
    /// HealthCheck name → whether it passes.
    pub healthy: BTreeMap<String, bool>,
    /// Whether the step applied without faults.
    pub converged: bool,
}

impl GatewayAgent {
    /// Starts the agent for node `node` with runtime files under `paths`
    /// and the daemons' effects `effects` (the real ones, or the in-memory
    /// twin in tests).
    pub fn spawn<E: Effects + Send + 'static>(node: String, paths: Paths, effects: E) -> Self {
        let (tx, rx) = std_mpsc::channel();
        let observer: Observer = Arc::new(Mutex::new(None));
        let obs = observer.clone();
        let node2 = node.clone();
        let paths2 = paths.clone();
        let fifo_tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("routerd-gateway".into())
            .spawn(move || {
                let mut w = Worker::new(node2, paths2, effects, obs);
                if w.sup.effects().networked() {
                    w.start_adverts(fifo_tx.clone());
                    w.start_beacons(fifo_tx.clone());
                }
                w.start_fifo(fifo_tx);
                w.run(&rx);
            });
        GatewayAgent {
            tx,
            observer,
            node,
            paths,
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The runtime directory.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Where statuses go (called by the loop when it starts).
    pub fn set_observer(&self, tx: mpsc::Sender<Observation>) {
        *self
            .observer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }

    /// After a step: the effective configuration and what suitability reads.
    pub fn update(&self, effective: &[Resource], facts: StepFacts, now: DateTime<Utc>) {
        let _ = self.tx.send(Cmd::Update {
            effective: effective.to_vec(),
            healthy: facts.healthy,
            converged: facts.converged,
            now,
        });
    }

    /// Marks this node cordoned (maintenance: it gives up every role and
    /// takes none) or not.
    pub fn cordon(&self, on: bool) {
        let _ = self.tx.send(Cmd::Cordon(on));
    }

    /// Stops keepalived and conntrackd (they release the addresses, so a
    /// peer takes over at once) and waits for that.
    pub fn shutdown(&self) {
        let (tx, rx) = std_mpsc::channel();
        if self.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// Whether `id` is a status the agent writes: such a status wakes a step
/// whenever it changes (the render reads it).
pub fn is_gateway_status(id: &str) -> bool {
    id.contains("/EgressGateway/") || id.contains("/EgressGatewayPolicy/")
}

/// The fields of a gateway status the render reads.
pub fn render_key(s: &routerd_model::Status) -> [Option<&Value>; 4] {
    [
        s.get("vrrpState"),
        s.get("publicInterface"),
        s.get("internalInterface"),
        s.get("nextHop"),
    ]
}

#[derive(Debug, Default, Clone)]
struct GwState {
    state: Option<VrrpState>,
    suitable: bool,
    reason: String,
    since: Option<DateTime<Utc>>,
    last_failover_at: Option<DateTime<Utc>>,
    last_failover_cause: Option<String>,
    failovers: u64,
}

struct Worker<E: Effects> {
    node: String,
    sup: Supervisor<E>,
    observer: Observer,
    effective: Vec<Resource>,
    plan: GroupPlan,
    healthy: BTreeMap<String, bool>,
    converged: bool,
    cordoned: bool,
    /// Per gateway name.
    gws: BTreeMap<String, GwState>,
    /// Supervision problem per daemon (missing binary, rejected config).
    degraded: BTreeMap<Daemon, String>,
    published: BTreeMap<String, Value>,
    /// The sender of each virtual router's adverts and when it was last
    /// heard: the active node, as every member sees it.
    heard: BTreeMap<u8, (std::net::Ipv4Addr, Instant)>,
    /// What each other member last said of its suitability, and when.
    peers: BTreeMap<String, (BTreeMap<String, bool>, Instant)>,
    /// Whether beacons are exchanged (never by the in-memory twin), and the
    /// sockets they go out on, one per local peer address: a beacon leaves
    /// from the address the other members know this node by.
    beacons: bool,
    beacon_out: BTreeMap<std::net::IpAddr, std::net::UdpSocket>,
    now: DateTime<Utc>,
}

impl<E: Effects> Worker<E> {
    fn new(node: String, paths: Paths, effects: E, observer: Observer) -> Self {
        let cordoned = paths.file("cordoned").exists();
        Worker {
            node,
            sup: Supervisor::new(effects, paths),
            observer,
            effective: Vec::new(),
            plan: GroupPlan::default(),
            healthy: BTreeMap::new(),
            converged: false,
            cordoned,
            gws: BTreeMap::new(),
            degraded: BTreeMap::new(),
            published: BTreeMap::new(),
            heard: BTreeMap::new(),
            peers: BTreeMap::new(),
            beacons: false,
            beacon_out: BTreeMap::new(),
            now: Utc::now(),
        }
    }

    /// Reads keepalived's notify FIFO on its own thread. The FIFO is
    /// opened read-write so the open never blocks and keepalived
    /// restarting never ends the stream.
    fn start_fifo(&self, tx: std_mpsc::Sender<Cmd>) {
        let path = self.sup.paths().notify_fifo();
        let _ = std::fs::create_dir_all(&self.sup.paths().dir);
        if !path.exists() {
            let _ = nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600));
        }
        let _ = std::thread::Builder::new()
            .name("routerd-gateway-fifo".into())
            .spawn(move || fifo_loop(&path, &tx));
    }

    /// Listens for VRRP adverts on a raw socket of its own thread (the
    /// daemon's namespace). Without the privilege (tests as a user) the
    /// gateway status names only this node when it is active.
    fn start_adverts(&self, tx: std_mpsc::Sender<Cmd>) {
        use socket2::{Domain, Protocol, Socket, Type};
        let sock = match Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(routerd_keepalived::advert::IPPROTO_VRRP)),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "no VRRP advert socket: the active node is named only by itself");
                return;
            }
        };
        let _ = std::thread::Builder::new()
            .name("routerd-gateway-adverts".into())
            .spawn(move || {
                use std::io::Read as _;
                let mut sock = sock;
                let mut buf = [0u8; 2048];
                loop {
                    let Ok(n) = sock.read(&mut buf) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    let bytes = buf.get(..n).unwrap_or_default();
                    if let Some(a) = routerd_keepalived::advert::parse(bytes)
                        && tx.send(Cmd::Advert(a)).is_err()
                    {
                        return;
                    }
                }
            });
    }

    /// Listens for the other members' suitability beacons on their own
    /// thread, and keeps a socket to send this node's.
    fn start_beacons(&mut self, tx: std_mpsc::Sender<Cmd>) {
        use routerd_keepalived::beacon;
        let sock = match std::net::UdpSocket::bind(("0.0.0.0", beacon::PORT)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, port = beacon::PORT, "no suitability beacons: readyNodes lists only what this node sees");
                return;
            }
        };
        self.beacons = true;
        let _ = std::thread::Builder::new()
            .name("routerd-gateway-beacons".into())
            .spawn(move || {
                let mut buf = vec![0u8; beacon::MAX_LEN + 1];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    if let Some(b) = buf.get(..n).and_then(beacon::parse)
                        && tx.send(Cmd::Beacon(b, from.ip())).is_err()
                    {
                        return;
                    }
                }
            });
    }

    /// Tells every other member of this node's gateways which of them it
    /// is suitable for.
    fn send_beacons(&mut self) {
        use routerd_keepalived::beacon::{Beacon, PORT};
        if !self.beacons {
            return;
        }
        let suitable = self
            .gws
            .iter()
            .map(|(name, st)| (name.clone(), st.suitable))
            .collect();
        let data = Beacon::new(&self.node, suitable).encode();
        let mut sent = Vec::new();
        for g in &self.plan.gateways {
            let sock = match self.beacon_out.entry(g.local) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    match std::net::UdpSocket::bind((g.local, 0)) {
                        Ok(s) => v.insert(s),
                        Err(_) => continue,
                    }
                }
            };
            for m in g.members.iter().filter(|m| m.name != self.node) {
                if !sent.contains(&m.address) {
                    sent.push(m.address);
                    let _ = sock.send_to(&data, (m.address, PORT));
                }
            }
        }
    }

    fn run(&mut self, rx: &std_mpsc::Receiver<Cmd>) {
        // Supervision runs every TICK however busy the channel is: adverts
        // arrive every 100 ms, and a dead keepalived must still be
        // restarted.
        let mut last_tick = Instant::now();
        loop {
            let wait = TICK.saturating_sub(last_tick.elapsed());
            let msg = rx.recv_timeout(wait);
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
            }
            match msg {
                Ok(Cmd::Update {
                    effective,
                    healthy,
                    converged,
                    now,
                }) => {
                    self.now = now;
                    self.healthy = healthy;
                    self.converged = converged;
                    if effective != self.effective {
                        self.effective = effective;
                        self.replan();
                    }
                    self.suitability();
                    self.publish();
                }
                Ok(Cmd::Cordon(on)) => {
                    self.cordoned = on;
                    let f = self.sup.paths().file("cordoned");
                    if on {
                        let _ = self.sup.effects().write(&f, "1\n");
                    } else {
                        let _ = std::fs::remove_file(&f);
                    }
                    self.now = Utc::now();
                    self.suitability();
                    self.publish();
                }
                Ok(Cmd::Notify(ev)) => {
                    self.now = Utc::now();
                    self.on_notify(&ev);
                    self.publish();
                }
                Ok(Cmd::Advert(a)) => {
                    let before = self.heard.get(&a.vrid).map(|(s, _)| *s);
                    if a.priority == 0 {
                        // The master gives the role up (shutdown).
                        self.heard.remove(&a.vrid);
                    } else {
                        self.heard.insert(a.vrid, (a.source, Instant::now()));
                    }
                    if before != self.heard.get(&a.vrid).map(|(s, _)| *s) {
                        self.now = Utc::now();
                        self.publish();
                    }
                }
                Ok(Cmd::Beacon(b, from)) => {
                    // Only a member, from its own peer address, speaks for
                    // itself; anything else is dropped (and never kept).
                    let member = self.plan.gateways.iter().any(|g| {
                        g.members
                            .iter()
                            .any(|m| m.name == b.node && m.address == from)
                    });
                    if member && b.node != self.node {
                        let changed = self.peers.get(&b.node).map(|(s, _)| s) != Some(&b.suitable);
                        self.peers.insert(b.node, (b.suitable, Instant::now()));
                        if changed {
                            self.now = Utc::now();
                            self.publish();
                        }
                    }
                }
                Ok(Cmd::Shutdown(done)) => {
                    self.sup.shutdown();
                    let _ = done.send(());
                    return;
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    self.sup.shutdown();
                    return;
                }
            }
        }
    }

    /// Restarts dead daemons and forgets silent masters.
    fn tick(&mut self) {
        let outcomes = self.sup.tick();
        self.send_beacons();
        let n = self.peers.len();
        self.peers.retain(|_, (_, at)| at.elapsed() < BEACON_FOR);
        let silent = self.expire_heard() || self.peers.len() != n;
        if !outcomes.is_empty() || silent {
            self.now = Utc::now();
            self.outcomes(outcomes);
            self.publish();
        }
    }

    /// Forgets masters not heard for [`HEARD_FOR`]; whether any was.
    fn expire_heard(&mut self) -> bool {
        let n = self.heard.len();
        self.heard.retain(|_, (_, at)| at.elapsed() < HEARD_FOR);
        self.heard.len() != n
    }

    /// The node named active for gateway `g`: this node when it is MASTER,
    /// else the member whose address sends `g`'s adverts.
    fn active_node(&self, g: &GatewayPlan, vrrp: VrrpState) -> Option<(String, &'static str)> {
        if vrrp == VrrpState::Master {
            return Some((self.node.clone(), "self"));
        }
        let (src, _) = self.heard.get(&g.vrid)?;
        g.members
            .iter()
            .find(|m| m.address == std::net::IpAddr::V4(*src))
            .map(|m| (m.name.clone(), "advert"))
    }

    fn replan(&mut self) {
        self.plan = plan(&self.effective, &self.node, self.sup.paths());
        // Gateways that went away forget their state.
        let names: Vec<String> = self.plan.gateways.iter().map(|g| g.name.clone()).collect();
        self.gws.retain(|k, _| names.contains(k));
        for n in names {
            self.gws.entry(n).or_default();
        }
        // Suitability first, so a new gateway starts from the right file.
        self.suitability();
        let outcomes = self.sup.apply(&self.plan);
        self.outcomes(outcomes);
    }

    fn outcomes(&mut self, outcomes: Vec<Outcome>) {
        for o in outcomes {
            match o {
                Outcome::Failed(d, e) => {
                    tracing::error!(daemon = d.binary(), error = %e, "gateway supervision");
                    self.degraded.insert(d, e.to_string());
                }
                Outcome::Started(d) | Outcome::Reloaded(d) | Outcome::Restarted(d) => {
                    tracing::info!(daemon = d.binary(), outcome = ?o, "gateway supervision");
                    self.degraded.remove(&d);
                }
                Outcome::Stopped(d) => {
                    self.degraded.remove(&d);
                }
                Outcome::Unchanged(_) => {}
            }
        }
    }

    fn suitability(&mut self) {
        let plans = self.plan.gateways.clone();
        let mut changed = false;
        for g in &plans {
            let mut reasons = Vec::new();
            if self.cordoned {
                reasons.push("node is cordoned".to_string());
            }
            if !self.converged {
                reasons.push("routerd has not converged".to_string());
            }
            for h in &g.health_checks {
                if self.healthy.get(h) != Some(&true) {
                    reasons.push(format!("HealthCheck {h} is not passing"));
                }
            }
            let suitable = reasons.is_empty();
            if let Err(e) = self.sup.set_suitable(&g.track_file, suitable) {
                self.degraded.insert(Daemon::Keepalived, e.to_string());
            }
            let st = self.gws.entry(g.name.clone()).or_default();
            changed |= st.suitable != suitable;
            st.suitable = suitable;
            st.reason = reasons.join("; ");
        }
        // The others hear of a change at once, not at the next tick.
        if changed {
            self.send_beacons();
        }
    }

    fn on_notify(&mut self, ev: &NotifyEvent) {
        if ev.group {
            return;
        }
        let Some(g) = self.plan.gateways.iter().find(|g| g.instance() == ev.name) else {
            return;
        };
        let name = g.name.clone();
        let st = self.gws.entry(name.clone()).or_default();
        let before = st.state;
        if before == Some(ev.state) {
            return;
        }
        let prev_since = st.since;
        st.state = Some(ev.state);
        st.since = Some(self.now);
        let was_master = before == Some(VrrpState::Master);
        let is_master = ev.state == VrrpState::Master;
        if was_master != is_master {
            st.failovers += 1;
            st.last_failover_at = Some(self.now);
            let cause = if is_master {
                match before {
                    // A standby that heard an active node for a while
                    // took over; one that just started found none.
                    Some(VrrpState::Backup)
                        if prev_since.is_some_and(|t| (self.now - t).num_seconds() >= 3) =>
                    {
                        "took over: the active node stopped advertising or stepped down".to_string()
                    }
                    _ => "became active: no active node was advertising".to_string(),
                }
            } else if ev.state == VrrpState::Fault {
                format!(
                    "stepped down: unsuitable ({})",
                    if st.reason.is_empty() {
                        "a tracked interface is down"
                    } else {
                        &st.reason
                    }
                )
            } else if ev.state == VrrpState::Stop {
                "stepped down: keepalived stopped".to_string()
            } else {
                "stepped down: a higher-priority member took the role".to_string()
            };
            st.last_failover_cause = Some(cause);
        }
        let commit = if is_master && !was_master {
            self.sup.promoted()
        } else if was_master && !is_master {
            self.sup.demoted()
        } else {
            Ok(())
        };
        if let Err(e) = commit {
            tracing::warn!(gateway = %name, error = %e, "conntrackd commit/resync");
            self.degraded.insert(Daemon::Conntrackd, e.to_string());
        }
    }

    fn send(&mut self, id: String, mut status: Value, event: Option<Event>) {
        keep_transition_times(self.published.get(&id), &mut status);
        if self.published.get(&id) == Some(&status) && event.is_none() {
            return;
        }
        let Value::Object(map) = status.clone() else {
            return;
        };
        self.published.insert(id.clone(), status);
        let tx = self
            .observer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(tx) = tx {
            let _ = tx.try_send(Observation {
                id,
                status: map,
                event,
            });
        }
    }

    fn publish(&mut self) {
        let now_s = routerd_select::time::format_rfc3339_nano(self.now);
        let gateways: Vec<Resource> = self
            .effective
            .iter()
            .filter(|r| r.kind() == Kind::EgressGateway)
            .cloned()
            .collect();
        for r in &gateways {
            let id = r.id().to_string();
            let plan = self
                .plan
                .gateways
                .iter()
                .find(|g| g.name == r.name())
                .cloned();
            let problem = self
                .plan
                .problems
                .iter()
                .find(|(n, _)| n == r.name())
                .map(|(_, e)| e.to_string());
            let degraded: Vec<String> = self.degraded.values().cloned().collect();
            let st = self.gws.get(r.name()).cloned().unwrap_or_default();
            let prev_state = self
                .published
                .get(&id)
                .and_then(|v| v.get("vrrpState"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let (status, event) = match (&plan, &problem) {
                (None, None) => (
                    json!({"phase": "NotMember", "nodeName": self.node,
                        "conditions": [cond("Ready", "Unknown", "NotMember", "this node is not a member of the gateway", &now_s)]}),
                    None,
                ),
                (_, Some(p)) => (
                    json!({"phase": "Degraded", "nodeName": self.node,
                        "conditions": [cond("Ready", "False", "NotPlanned", p, &now_s), cond("Degraded", "True", "NotPlanned", p, &now_s)]}),
                    None,
                ),
                (Some(g), None) => {
                    let vrrp = st.state.unwrap_or(VrrpState::Unknown);
                    let active = self.active_node(g, vrrp);
                    let phase = if !degraded.is_empty() {
                        "Degraded"
                    } else {
                        match vrrp {
                            VrrpState::Master => "Active",
                            VrrpState::Backup => "Standby",
                            VrrpState::Fault => "Fault",
                            _ => "Pending",
                        }
                    };
                    let ready = vrrp == VrrpState::Master || vrrp == VrrpState::Backup;
                    let mut conds = vec![cond(
                        "Ready",
                        if ready && degraded.is_empty() {
                            "True"
                        } else {
                            "False"
                        },
                        if !degraded.is_empty() {
                            "Degraded"
                        } else if st.suitable {
                            vrrp.as_str()
                        } else {
                            "Unsuitable"
                        },
                        &if !degraded.is_empty() {
                            degraded.join("; ")
                        } else if st.suitable {
                            format!("this node is {vrrp} for the gateway")
                        } else {
                            format!("this node is not suitable: {}", st.reason)
                        },
                        &now_s,
                    )];
                    if !degraded.is_empty() {
                        conds.push(cond(
                            "Degraded",
                            "True",
                            "Supervision",
                            &degraded.join("; "),
                            &now_s,
                        ));
                    }
                    let mut s = json!({
                        "phase": phase,
                        "nodeName": self.node,
                        "vrrpState": vrrp.as_str(),
                        "suitable": st.suitable,
                        "priority": g.priority,
                        "preferredNode": g.preferred(),
                        "members": g.members.iter().map(|m| json!({"name": m.name, "address": m.address.to_string(), "priority": m.priority})).collect::<Vec<_>>(),
                        "publicInterface": g.public_dev,
                        "internalInterface": g.internal.as_ref().map(|i| i.dev.clone()).unwrap_or_else(|| g.vrrp_dev.clone()),
                        "vrid": g.vrid,
                        "connectionSync": g.connection_sync,
                        "failoverCount": st.failovers,
                        "conditions": conds,
                    });
                    let o = s.as_object_mut();
                    if let Some(o) = o {
                        if !st.suitable {
                            o.insert("unsuitableReason".into(), json!(st.reason));
                        }
                        // Itself, the members whose beacons say they are
                        // suitable, and the node it hears advertising (a
                        // master is suitable, or it would be in FAULT).
                        let mut ready = Vec::new();
                        if st.suitable {
                            ready.push(self.node.clone());
                        }
                        for m in g.members.iter().filter(|m| m.name != self.node) {
                            let said = self
                                .peers
                                .get(&m.name)
                                .and_then(|(s, _)| s.get(&g.name))
                                .copied();
                            if said == Some(true) {
                                ready.push(m.name.clone());
                            }
                        }
                        if let Some((active, how)) = active.clone() {
                            o.insert("activeNodeName".into(), json!(active));
                            o.insert("activeNodeSource".into(), json!(how));
                            if !ready.contains(&active) {
                                ready.push(active);
                            }
                        }
                        ready.sort();
                        o.insert("readyNodes".into(), json!(ready));
                        if let Some(v) = &g.external {
                            o.insert("virtualIP".into(), json!(v.addr.addr().to_string()));
                        }
                        if let Some(v) = &g.internal {
                            o.insert("internalIP".into(), json!(v.addr.addr().to_string()));
                        }
                        if !g.connection_sync {
                            o.insert("connectionsKept".into(), json!(false));
                        }
                        if let Some(t) = st.last_failover_at {
                            o.insert(
                                "lastFailoverAt".into(),
                                json!(routerd_select::time::format_rfc3339_nano(t)),
                            );
                        }
                        if let Some(c) = &st.last_failover_cause {
                            o.insert("lastFailoverCause".into(), json!(c));
                        }
                    }
                    let event = (prev_state.as_deref() != Some(vrrp.as_str())).then(|| {
                        let mut e = Event::info(GATEWAY_ROLE_EVENT, object_ref(r), self.now)
                            .attr("node", &self.node)
                            .attr("state", vrrp.as_str());
                        if let Some(p) = &prev_state {
                            e = e.attr("previous", p);
                        }
                        if let Some(c) = &st.last_failover_cause {
                            e = e.attr("cause", c);
                        }
                        e
                    });
                    (s, event)
                }
            };
            self.send(id, status, event);
        }
        let clients = self.plan.clients.clone();
        for r in self
            .effective
            .iter()
            .filter(|r| r.kind() == Kind::EgressGatewayPolicy)
            .cloned()
            .collect::<Vec<_>>()
        {
            let id = r.id().to_string();
            let status = match clients.iter().find(|c| c.policy == id) {
                Some(c) => {
                    json!({"phase": "Steering", "nodeName": self.node, "gateway": c.gateway, "nextHop": c.next_hop.to_string()})
                }
                None => json!({"phase": "Member", "nodeName": self.node}),
            };
            self.send(id, status, None);
        }
    }
}

/// A condition whose status did not change keeps its lastTransitionTime.
fn keep_transition_times(prev: Option<&Value>, status: &mut Value) {
    let Some(prev) = prev
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conds {
        let same = prev.iter().find(|p| {
            p.get("type") == c.get("type")
                && p.get("status") == c.get("status")
                && p.get("reason") == c.get("reason")
        });
        if let (Some(p), Some(o)) = (same, c.as_object_mut())
            && let Some(t) = p.get("lastTransitionTime")
        {
            o.insert("lastTransitionTime".into(), t.clone());
        }
    }
}

fn object_ref(r: &Resource) -> ObjectRef {
    ObjectRef {
        api_version: r.api_version.clone(),
        kind: r.kind().as_str().to_string(),
        name: r.name().to_string(),
    }
}

fn cond(t: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": status, "reason": reason, "message": message, "lastTransitionTime": now})
}

fn fifo_loop(path: &Path, tx: &std_mpsc::Sender<Cmd>) {
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path);
        let Ok(file) = file else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            if let Some(ev) = routerd_keepalived::notify::parse_line(&line)
                && tx.send(Cmd::Notify(ev)).is_err()
            {
                return;
            }
        }
    }
}

/// The default runtime directory.
pub fn default_dir() -> PathBuf {
    PathBuf::from("/run/routerd/gateway")
}

/// Tells the agent what a step left: the effective configuration, which
/// health checks pass (phase Healthy) and whether the step converged
/// (it ran and the dataplane applied without error).
pub(crate) fn after_step(
    agent: &GatewayAgent,
    core: &crate::core::Core,
    report: Option<&crate::core::StepReport>,
    now: DateTime<Utc>,
) {
    let effective = core.effective();
    if !effective
        .iter()
        .any(|r| matches!(r.kind(), Kind::EgressGateway | Kind::EgressGatewayPolicy))
        && core.statuses.keys().all(|k| !is_gateway_status(k))
    {
        return;
    }
    let healthy = effective
        .iter()
        .filter(|r| r.kind() == Kind::HealthCheck)
        .map(|r| {
            let ok = core
                .statuses
                .get(&r.id().to_string())
                .and_then(|s| s.get("phase"))
                .and_then(Value::as_str)
                == Some("Healthy");
            (r.name().to_string(), ok)
        })
        .collect();
    let converged = report.is_some_and(|r| r.dataplane_error.is_none());
    agent.update(effective, StepFacts { healthy, converged }, now);
}

/// `GET /explain?gateway=NAME`: the gateway as this node sees it — its
/// status (role, suitability, members by preference, last failover), the
/// policies that use it with their statuses, and this node's fault if the
/// kernel refused its source NAT.
pub(crate) async fn explain(
    s: &crate::daemon::Shared,
    name: &str,
) -> Result<Value, crate::control::ApiError> {
    let node = s.gateway().map(|g| g.node().to_string());
    s.with_core(|core| {
        let Some(g) = core
            .effective()
            .iter()
            .find(|r| r.kind() == Kind::EgressGateway && r.name() == name)
        else {
            return Err(crate::control::ApiError::not_found(format!(
                "EgressGateway/{name} is not in the effective configuration"
            )));
        };
        let id = g.id().to_string();
        let policies: Vec<Value> = core
            .effective()
            .iter()
            .filter(|p| {
                p.as_egress_gateway_policy()
                    .is_some_and(|ps| ps.egress_gateway_name.trim() == name)
            })
            .map(|p| {
                let pid = p.id().to_string();
                json!({"policy": pid, "status": core.reported_status(&pid)})
            })
            .collect();
        let fault = core.faults().find(|f| f.owner == id).cloned();
        let status = core.reported_status(&id);
        let role = status
            .as_ref()
            .and_then(|st| st.get("vrrpState"))
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string();
        let summary = match role.as_str() {
            "MASTER" => "this node is the active node: it holds the addresses and source-NATs the policies' traffic",
            "BACKUP" => "this node is a hot standby: keepalived hears the active node's adverts",
            "FAULT" => "this node is unsuitable and takes no role (see unsuitableReason)",
            _ => "this node's role is not known yet (keepalived has not reported)",
        };
        Ok(json!({
            "gateway": id,
            "node": node,
            "summary": summary,
            "status": status,
            "policies": policies,
            "installed": fault.is_none(),
            "fault": fault,
        }))
    })
    .await
}

/// `POST /cordon`: cordons or uncordons this node in every gateway group.
/// Cordoning is local (there is no cluster API): run it on the node.
pub(crate) fn cordon(
    s: &crate::daemon::Shared,
    node: &str,
    on: bool,
) -> Result<Value, crate::control::ApiError> {
    let Some(g) = s.gateway() else {
        return Err(crate::control::ApiError::bad_request(
            "this routerd takes part in no gateway group (no --node-name, no EgressGateway)",
        ));
    };
    if g.node() != node {
        return Err(crate::control::ApiError::bad_request(format!(
            "this routerd is node \"{}\", not \"{node}\": run routerctl cordon on that node",
            g.node()
        )));
    }
    g.cordon(on);
    Ok(json!({"node": node, "cordoned": on}))
}

const ROLES: &[&str] = &["MASTER", "BACKUP", "FAULT", "UNKNOWN"];

/// How often supervision runs (dead daemons restarted within it).
const TICK: Duration = Duration::from_millis(500);

/// How long a member's beacon counts: four beacons at the 500 ms tick.
const BEACON_FOR: Duration = Duration::from_secs(2);

/// How long a master stays named after its last advert: ten adverts at the
/// default 100 ms (a new master is elected after about three).
const HEARD_FOR: Duration = Duration::from_secs(1);

/// Prometheus lines for every gateway status: this node's VRRP role
/// (one-hot) and how many times it took or left the role.
pub(crate) fn metrics(o: &mut String, statuses: &routerd_model::StateSnapshot) {
    use std::fmt::Write as _;
    let gws: Vec<(&str, &routerd_model::Status)> = statuses
        .iter()
        .filter_map(|(id, st)| {
            let (_, rest) = id.split_once("/EgressGateway/")?;
            st.get("vrrpState").map(|_| (rest, st))
        })
        .collect();
    if gws.is_empty() {
        return;
    }
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(
        o,
        "# HELP routerd_egress_gateway_role This node's VRRP state per EgressGateway (one-hot)."
    );
    let _ = writeln!(o, "# TYPE routerd_egress_gateway_role gauge");
    for (name, st) in &gws {
        let node = st.get("nodeName").and_then(Value::as_str).unwrap_or("");
        let state = st
            .get("vrrpState")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN");
        for r in ROLES {
            let _ = writeln!(
                o,
                "routerd_egress_gateway_role{{gateway=\"{}\",node=\"{}\",state=\"{r}\"}} {}",
                esc(name),
                esc(node),
                u8::from(*r == state)
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP routerd_egress_gateway_failovers_total Times this node took or gave up the active role, per EgressGateway."
    );
    let _ = writeln!(o, "# TYPE routerd_egress_gateway_failovers_total counter");
    for (name, st) in &gws {
        let node = st.get("nodeName").and_then(Value::as_str).unwrap_or("");
        let n = st.get("failoverCount").and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(
            o,
            "routerd_egress_gateway_failovers_total{{gateway=\"{}\",node=\"{}\"}} {n}",
            esc(name),
            esc(node)
        );
    }
}
