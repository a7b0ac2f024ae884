//! A network-namespace lab for routerd's `routerd demo` and its end-to-end tests.
//!
//! [`Lab::build`] creates four namespaces: a router (`rtr`) with two uplinks (`wan1`,
//! `wan2`) to two upstreams (`up1`, `up2`) and a LAN link (`lan0`) to a client (`cli`).
//! Both upstreams host the same "internet" address, [`TARGET`], with a TCP listener, an
//! HTTP responder and a traffic sink that tells each client flow which upstream saw it
//! and from which (translated) source address. The router gets no default route: that is
//! routerd's job. `docs/lab.md` has the diagram and addresses.
//!
//! # Safety rules
//!
//! The lab never touches the host's interfaces, routes or nftables ruleset:
//! * every `ip`, `nft`, `sysctl` and `conntrack` call runs as `ip netns exec NS ...`; only
//!   `ip netns add/del/pids` run in the host namespace;
//! * veth pairs are created inside the router namespace with the peer placed directly in
//!   the other namespace (`ip link add wan1 type veth peer name eth0 netns up1`), so no
//!   interface ever appears in the host namespace;
//! * all traffic goes between lab namespaces, to documentation addresses;
//! * every wait is bounded: helper commands, connects and polls all have timeouts.
//!
//! # Running code inside a namespace: `setns` threads, not helper processes
//!
//! Code that must run inside a namespace (listeners, client connects, probes) runs on a
//! short-lived thread that calls [`nix::sched::setns`] (a safe API, so the workspace's
//! `unsafe_code = "deny"` holds) and is discarded afterwards. A socket keeps the namespace
//! it was created in, so the thread only creates the socket; serving and reading happen
//! on ordinary threads. This was chosen over a helper binary started with `ip netns exec`
//! because:
//! * the demo lives in the `routerd` binary, which would otherwise have to find or re-exec
//!   a second executable;
//! * results (which upstream saw a flow, with which source) arrive as Rust values instead
//!   of JSON lines from another process;
//! * there are no agent processes to leak: the listeners die with the process even on
//!   SIGKILL. Processes the caller starts in the lab (the daemon) go through
//!   [`Lab::spawn`] and are killed on teardown.
//!
//! # Teardown
//!
//! Dropping a [`Lab`] kills its children and deletes its namespaces, also while unwinding
//! from a panic. [`Lab::install_ctrlc_cleanup`] covers Ctrl-C, and [`cleanup_stale`]
//! removes what a crashed (SIGKILLed) run left behind.
//!
//! All methods block (they start processes and sleep in bounded polls); from async code,
//! call them through `spawn_blocking`.
#![deny(missing_docs)]

pub mod cloudedge;
mod error;
mod flow;
pub mod mobility;
mod netns;
mod observe;
mod signal;
mod sink;
mod timeline;
mod topology;
mod traffic;

use std::ffi::OsStr;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use error::{LabError, Result};
pub use flow::{ConnectOutcome, FlowReport, LongFlow};
pub use netns::cleanup_stale;
pub use observe::{
    ConntrackEntry, Link, Route, Tuple, parse_conntrack, parse_conntrack_line, parse_link,
    parse_routes,
};
pub use sink::SinkRecord;
pub use timeline::{Entry, Timeline, wait_until, wait_until_async};
pub use topology::{
    HTTP_PORT, LAN_CLIENT, LAN_IF, LAN_PREFIX_LEN, LAN_ROUTER, Node, PEER_IF, SINK_PORT, TARGET,
    TCP_PORT, Uplink, WAN_PREFIX_LEN, router_config,
};
pub use traffic::{ClientTraffic, TrafficSample};

use netns::{ns_command, run};

/// Name of the nftables table that [`Lab::drop_silently`] creates in an upstream.
pub const FAULT_TABLE: &str = "routerd_lab_fault";

/// Identifies a process started with [`Lab::spawn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildId(u32);

impl ChildId {
    /// The process id.
    pub fn pid(self) -> u32 {
        self.0
    }
}

/// Where a spawned process's stdout and stderr go.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChildOutput {
    /// Discarded.
    Null,
    /// Shared with this process (the demo shows the daemon's log).
    Inherit,
    /// Appended to this file (e2e tests attach it to a failure message).
    File(PathBuf),
}

/// A running lab. See the crate documentation.
pub struct Lab {
    names: [String; 4],
    created: Vec<String>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    records: sink::Records,
    children: Mutex<Vec<Child>>,
    flows: AtomicU64,
    torn_down: bool,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("namespaces", &self.names)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Builds the lab with namespaces named `PREFIX-PID-N-ROLE`.
    ///
    /// The pid and a per-process counter make names unique across concurrent tests and
    /// processes, and let [`cleanup_stale`] tell a crashed run's leftovers from a live
    /// lab. On error, whatever was already created is removed before returning.
    pub fn build(name_prefix: &str) -> Result<Lab> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        netns::validate_prefix(name_prefix)?;
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let names = Node::ALL.map(|node| netns::ns_name(name_prefix, pid, n, node));
        let mut lab = Lab {
            names,
            created: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            records: sink::Records::default(),
            children: Mutex::new(Vec::new()),
            flows: AtomicU64::new(0),
            torn_down: false,
        };
        // On error `lab` is dropped here, which removes what was created so far.
        lab.setup()?;
        Ok(lab)
    }

    fn setup(&mut self) -> Result<()> {
        for node in Node::ALL {
            let name = self.ns(node).to_owned();
            // Registered before creation, so a Ctrl-C during the build still cleans up.
            signal::register_namespace(&name);
            netns::add_namespace(&name)?;
            self.created.push(name);
        }
        // Forwarding and rp_filter first, so the interfaces created next inherit the
        // `default` values. rp_filter off: the router must accept replies on whichever
        // uplink routerd picked, also while policy routing is being changed.
        for (key, value) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            self.sysctl(Node::Router, key, value)?;
        }
        for node in Node::ALL {
            self.ip(node, &["link", "set", "lo", "up"])?;
        }
        let wan_prefix = WAN_PREFIX_LEN.to_string();
        for uplink in Uplink::ALL {
            let up = uplink.upstream();
            self.veth(uplink.router_if(), up)?;
            self.address(
                Node::Router,
                uplink.router_if(),
                uplink.router_addr(),
                &wan_prefix,
            )?;
            self.address(up, PEER_IF, uplink.gateway(), &wan_prefix)?;
            self.ip(up, &["addr", "add", &format!("{TARGET}/32"), "dev", "lo"])?;
            self.upstream_default_route(uplink)?;
        }
        self.veth(LAN_IF, Node::Client)?;
        let lan_prefix = LAN_PREFIX_LEN.to_string();
        self.address(Node::Router, LAN_IF, LAN_ROUTER, &lan_prefix)?;
        self.address(Node::Client, PEER_IF, LAN_CLIENT, &lan_prefix)?;
        self.ip(
            Node::Client,
            &["route", "add", "default", "via", &LAN_ROUTER.to_string()],
        )?;
        for up in [Node::Up1, Node::Up2] {
            let threads = sink::start(self.ns(up), up, &self.records, &self.stop)?;
            self.threads.extend(threads);
        }
        Ok(())
    }

    /// Creates a veth pair with `router_if` in the router and `eth0` directly in `peer`,
    /// and sets both ends up.
    fn veth(&self, router_if: &str, peer: Node) -> Result<()> {
        let peer_ns = self.ns(peer).to_owned();
        self.ip(
            Node::Router,
            &[
                "link", "add", router_if, "type", "veth", "peer", "name", PEER_IF, "netns",
                &peer_ns,
            ],
        )?;
        self.ip(Node::Router, &["link", "set", router_if, "up"])?;
        self.ip(peer, &["link", "set", PEER_IF, "up"])
    }

    fn address(&self, node: Node, dev: &str, addr: impl fmt::Display, len: &str) -> Result<()> {
        self.ip(node, &["addr", "add", &format!("{addr}/{len}"), "dev", dev])
    }

    /// The upstream's route back to the router. Needed again after [`Lab::restore`]
    /// because taking `eth0` down removes the routes through it.
    fn upstream_default_route(&self, uplink: Uplink) -> Result<()> {
        let via = uplink.router_addr().to_string();
        self.ip(
            uplink.upstream(),
            &["route", "replace", "default", "via", &via, "dev", PEER_IF],
        )
    }

    fn sysctl(&self, node: Node, key: &str, value: &str) -> Result<()> {
        self.exec(node, "sysctl", ["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// The namespace name of `node`, for commands the lab has no helper for
    /// (`ip netns exec NAME ...`).
    pub fn ns(&self, node: Node) -> &str {
        let index = Node::ALL
            .iter()
            .position(|n| *n == node)
            .unwrap_or_default();
        self.names.get(index).map_or("", String::as_str)
    }

    /// Runs `program args` inside `node`'s namespace and returns its stdout.
    pub fn exec<I, S>(&self, node: Node, program: &str, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(ns_command(self.ns(node), program).args(args), None)
    }

    /// Like [`Lab::exec`], feeding `stdin` to the program.
    pub fn exec_with_stdin<I, S>(
        &self,
        node: Node,
        program: &str,
        args: I,
        stdin: &str,
    ) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(ns_command(self.ns(node), program).args(args), Some(stdin))
    }

    /// Runs `ip ARGS` inside `node`'s namespace.
    pub fn ip(&self, node: Node, args: &[&str]) -> Result<()> {
        self.exec(node, "ip", args).map(drop)
    }

    /// Loads an nft script (`nft -f -`) into `node`'s own ruleset; tests use it to stand
    /// in for routerd's NAT until the daemon exists.
    pub fn nft(&self, node: Node, script: &str) -> Result<()> {
        self.exec_with_stdin(node, "nft", ["-f", "-"], script)
            .map(drop)
    }

    /// Takes the upstream's end of `uplink` down, so the router's interface loses carrier
    /// (`LOWER_UP` clears): the failure routerd's link monitor should see in milliseconds.
    pub fn cut_carrier(&self, uplink: Uplink) -> Result<()> {
        self.ip(uplink.upstream(), &["link", "set", PEER_IF, "down"])
    }

    /// Makes the upstream drop every IPv4 packet arriving on its end of `uplink`, while the
    /// link and ARP stay up: a silent failure that only health probes can detect.
    ///
    /// The rule lives in the upstream namespace's own ruleset, in a table of its own
    /// ([`FAULT_TABLE`]), at the earliest prerouting priority so nothing else sees the
    /// packets first.
    pub fn drop_silently(&self, uplink: Uplink) -> Result<()> {
        let script = format!(
            "table ip {FAULT_TABLE} {{\n  chain drop_in {{\n    type filter hook prerouting priority -400; policy accept;\n    iifname \"{PEER_IF}\" counter drop\n  }}\n}}\n"
        );
        self.clear_fault_table(uplink.upstream())?;
        self.nft(uplink.upstream(), &script)
    }

    /// Undoes [`Lab::cut_carrier`] and [`Lab::drop_silently`] on `uplink`. Safe to call when
    /// no fault is active.
    pub fn restore(&self, uplink: Uplink) -> Result<()> {
        let up = uplink.upstream();
        self.clear_fault_table(up)?;
        self.ip(up, &["link", "set", PEER_IF, "up"])?;
        self.upstream_default_route(uplink)
    }

    fn clear_fault_table(&self, node: Node) -> Result<()> {
        // `destroy` would be idempotent but needs nft >= 1.0.8; Debian 12 has 1.0.6.
        let tables = self.exec(node, "nft", ["list", "tables"])?;
        if tables
            .lines()
            .any(|l| l.trim() == format!("table ip {FAULT_TABLE}"))
        {
            self.exec(node, "nft", ["delete", "table", "ip", FAULT_TABLE])?;
        }
        Ok(())
    }

    /// `ip route get DST` in `node`: the route the kernel would use right now.
    pub fn route_get(&self, node: Node, dst: IpAddr) -> Result<Route> {
        self.route_get_args(node, &[dst.to_string()])
    }

    /// `ip route get DST mark MARK`: the route a probe or a marked flow would use, which is
    /// how routerd's per-uplink policy routing is observed.
    pub fn route_get_marked(&self, node: Node, dst: IpAddr, mark: u32) -> Result<Route> {
        self.route_get_args(
            node,
            &[dst.to_string(), "mark".to_owned(), format!("{mark:#x}")],
        )
    }

    /// `ip route get DST from SRC iif IF`: the route for forwarded traffic, e.g. a LAN
    /// client's flow entering the router on `lan0`.
    pub fn route_get_forwarded(
        &self,
        node: Node,
        dst: IpAddr,
        src: IpAddr,
        iif: &str,
    ) -> Result<Route> {
        let args = [
            dst.to_string(),
            "from".to_owned(),
            src.to_string(),
            "iif".to_owned(),
            iif.to_owned(),
        ];
        self.route_get_args(node, &args)
    }

    fn route_get_args(&self, node: Node, args: &[String]) -> Result<Route> {
        let mut argv = vec!["-j".to_owned(), "route".to_owned(), "get".to_owned()];
        argv.extend_from_slice(args);
        let out = self.exec(node, "ip", &argv)?;
        parse_routes(&out)?
            .into_iter()
            .next()
            .ok_or_else(|| LabError::parse("ip -j route get", "no route in the output"))
    }

    /// The default routes of `table` (`"main"` or a number), lowest metric first.
    pub fn default_routes(&self, node: Node, table: &str) -> Result<Vec<Route>> {
        let out = self.exec(
            node,
            "ip",
            ["-j", "route", "show", "default", "table", table],
        )?;
        let mut routes = parse_routes(&out)?;
        routes.sort_by_key(|r| r.metric);
        Ok(routes)
    }

    /// The main table's default route with the lowest metric, if any. A route whose
    /// device lost carrier is still returned (flagged [`Route::is_linkdown`]), because the
    /// kernel keeps using it unless `ignore_routes_with_linkdown` is set.
    pub fn default_route(&self, node: Node) -> Result<Option<Route>> {
        Ok(self.default_routes(node, "main")?.into_iter().next())
    }

    /// `ip -j link show dev IFNAME` in `node`.
    pub fn link(&self, node: Node, ifname: &str) -> Result<Link> {
        parse_link(&self.exec(node, "ip", ["-j", "link", "show", "dev", ifname])?)
    }

    /// The conntrack table of `node` (normally the router), via `conntrack -L -o extended`.
    pub fn conntrack(&self, node: Node) -> Result<Vec<ConntrackEntry>> {
        parse_conntrack(&self.exec(node, "conntrack", ["-L", "-o", "extended"])?)
    }

    /// Opens a short flow from the client to the sink through the router and reports which
    /// upstream saw it and with which source address.
    pub fn client_flow(&self, timeout: Duration) -> Result<FlowReport> {
        Ok(self.open_long_flow(timeout)?.report().clone())
    }

    /// Opens a flow from the client that stays open until the returned value is dropped.
    pub fn open_long_flow(&self, timeout: Duration) -> Result<LongFlow> {
        let n = self.flows.fetch_add(1, Ordering::Relaxed);
        flow::open(self.ns(Node::Client), &format!("flow-{n}"), timeout)
    }

    /// Starts background traffic: a new client flow every `interval`, each allowed
    /// `timeout`. It runs until the returned value is stopped or dropped.
    pub fn start_client_traffic(
        &self,
        interval: Duration,
        timeout: Duration,
    ) -> Result<ClientTraffic> {
        ClientTraffic::start(self.ns(Node::Client).to_owned(), interval, timeout)
    }

    /// Opens a TCP connection from `node` to `dst`, optionally bound to `device`, and
    /// reports how it ended; used to check reachability through one uplink.
    pub fn tcp_connect(
        &self,
        node: Node,
        dst: SocketAddr,
        device: Option<&str>,
        timeout: Duration,
    ) -> Result<ConnectOutcome> {
        flow::tcp_connect(self.ns(node), dst, device, timeout)
    }

    /// Sends `GET /` from `node` to `dst` (optionally bound to `device`) and returns the
    /// HTTP status code, to check the probe targets' HTTP responders.
    pub fn http_status(
        &self,
        node: Node,
        dst: SocketAddr,
        device: Option<&str>,
        timeout: Duration,
    ) -> Result<u16> {
        flow::http_status(self.ns(node), dst, device, timeout)
    }

    /// Every connection the upstreams accepted so far (probes and client flows), oldest
    /// first; bounded to the most recent 50,000.
    pub fn sink_records(&self) -> Vec<SinkRecord> {
        self.records.snapshot()
    }

    /// Forgets the sink records, e.g. between phases of a test.
    pub fn clear_sink_records(&self) {
        self.records.clear();
    }

    fn children(&self) -> MutexGuard<'_, Vec<Child>> {
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `program args` inside `node` (e.g. `routerd serve` in the router). The
    /// process is killed on teardown if it is still running.
    pub fn spawn<I, S>(
        &self,
        node: Node,
        program: impl AsRef<OsStr>,
        args: I,
        output: ChildOutput,
    ) -> Result<ChildId>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = ns_command(self.ns(node), program);
        cmd.args(args).stdin(Stdio::null());
        let what = format!("{cmd:?}");
        match output {
            ChildOutput::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            ChildOutput::Inherit => {}
            ChildOutput::File(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| LabError::io(format!("opening {}", path.display()), e))
                };
                cmd.stdout(open()?).stderr(open()?);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| LabError::io(format!("starting {what}"), e))?;
        let id = ChildId(child.id());
        if let Ok(pid) = i32::try_from(id.0) {
            signal::register_child(pid);
        }
        self.children().push(child);
        Ok(id)
    }

    /// The exit status of a spawned process, or `None` while it runs.
    pub fn child_status(&self, id: ChildId) -> Result<Option<ExitStatus>> {
        let mut children = self.children();
        let child = children
            .iter_mut()
            .find(|c| c.id() == id.0)
            .ok_or_else(|| {
                LabError::io("looking up a child", std::io::ErrorKind::NotFound.into())
            })?;
        child
            .try_wait()
            .map_err(|e| LabError::io("polling a child", e))
    }

    /// Sends SIGTERM to a spawned process, waits up to `grace` for it to exit (so a daemon
    /// can run its shutdown path) and kills it after that.
    pub fn stop_child(&self, id: ChildId, grace: Duration) -> Result<ExitStatus> {
        let mut child = {
            let mut children = self.children();
            let index = children
                .iter()
                .position(|c| c.id() == id.0)
                .ok_or_else(|| {
                    LabError::io("looking up a child", std::io::ErrorKind::NotFound.into())
                })?;
            children.swap_remove(index)
        };
        let pid = i32::try_from(id.0).map_err(|_| LabError::parse("pid", id.0.to_string()))?;
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let status = netns::wait_bounded(&mut child, grace, &format!("process {pid} to exit"))
            .or_else(|_| child.wait().map_err(|e| LabError::io("reaping a child", e)));
        signal::unregister_child(pid);
        status
    }

    /// Makes Ctrl-C (SIGINT) and SIGTERM remove this lab's namespaces and kill its
    /// children before the process exits with status 130.
    ///
    /// Meant for the demo binary. It replaces the default signal action for the whole
    /// process, which is why it is opt-in rather than part of [`Lab::build`].
    pub fn install_ctrlc_cleanup(&self) -> Result<()> {
        signal::install()
    }

    /// Tears the lab down and reports every step that failed. Dropping the lab does the
    /// same but can only ignore errors.
    pub fn teardown(mut self) -> Result<()> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for mut child in std::mem::take(&mut *self.children()) {
            let _ = child.kill();
            if let Err(e) = netns::wait_bounded(&mut child, Duration::from_secs(5), "a lab child") {
                errors.push(e);
            }
            if let Ok(pid) = i32::try_from(child.id()) {
                signal::unregister_child(pid);
            }
        }
        for name in std::mem::take(&mut self.created).into_iter().rev() {
            match netns::destroy_namespace(&name) {
                Ok(()) => signal::unregister_namespace(&name),
                Err(e) => errors.push(e),
            }
        }
        for name in &self.names {
            signal::unregister_namespace(name);
        }
        // The serving threads poll the stop flag every few milliseconds.
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                errors.push(LabError::ThreadPanicked("serving a listener".to_owned()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown(errors))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            // Nothing to return to; say it where a test log or the demo's user sees it.
            eprintln!("routerd-lab: teardown: {e}");
        }
    }
}

impl fmt::Display for Lab {
    /// The topology with this lab's namespace names, for the demo's opening screen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w1, w2) = (Uplink::Wan1, Uplink::Wan2);
        writeln!(f, "namespaces: {}", self.names.join(" "))?;
        writeln!(
            f,
            "  cli {LAN_CLIENT}/{LAN_PREFIX_LEN} --- {LAN_ROUTER} lan0 [rtr]"
        )?;
        for u in [w1, w2] {
            writeln!(
                f,
                "  [rtr] {} {}/{WAN_PREFIX_LEN} --- {} {} [{}]  target {TARGET} (tcp {TCP_PORT}, http {HTTP_PORT}, sink {SINK_PORT})",
                u.router_if(),
                u.router_addr(),
                u.gateway(),
                PEER_IF,
                u.upstream(),
            )?;
        }
        Ok(())
    }
}
