//! `routerd demo egress-router`: OpenShift's egress router in redirect mode
//! on a plain host, with routerd's health-checked destinations (issue #15).
//!
//! As root it builds five network namespaces: a client, the egress router
//! (where `routerd serve` runs with `examples/demo/egress-router.yaml`),
//! two destination hosts (web1, web2) and a fallback host, all on one
//! bridge behind the router. It shows TCP and UDP redirects, the reserved
//! source address the destinations see, balancing over two destinations,
//! web1's service dying and its port falling back while a connection
//! established before keeps working, and an unmapped port refused by the
//! router that has no fallback. It prints a timeline and removes every
//! namespace it made, also when a step fails.
//!
//! Until the macvlan of issue #15's links part lands, the demo places the
//! reserved addresses (192.0.2.10, 192.0.2.11) on the master `ext0`
//! itself; routerd renders and applies the nft tables, runs the probes
//! from the reserved address and follows their health.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use routerd_lab::{Timeline, wait_until};

/// The embedded configuration (two HealthChecks, two EgressRouters).
pub(crate) const CONFIG: &str = include_str!("../../../examples/demo/egress-router.yaml");

/// Prefix of the namespaces this demo makes: `rder-<pid>-<role>`.
const PREFIX: &str = "rder";

const ROLES: [&str; 5] = ["cli", "rtr", "web1", "web2", "fb"];

/// The namespaces of one run, removed on drop (every exit path).
struct Topo {
    names: Vec<String>,
}

impl Topo {
    fn ns(&self, role: &str) -> &str {
        ROLES
            .iter()
            .position(|r| *r == role)
            .and_then(|i| self.names.get(i))
            .map_or("", String::as_str)
    }

    fn build() -> Result<Topo> {
        let pid = std::process::id();
        let topo = Topo {
            names: ROLES
                .iter()
                .map(|r| format!("{PREFIX}-{pid}-{r}"))
                .collect(),
        };
        for n in &topo.names {
            run(Command::new("ip").args(["netns", "add", n]))?;
            topo.exec(n, &["ip", "link", "set", "lo", "up"])?;
        }
        let (cli, rtr) = (topo.ns("cli"), topo.ns("rtr"));
        run(Command::new("ip").args([
            "-n", cli, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0", "netns", rtr,
        ]))?;
        topo.exec(cli, &["ip", "addr", "add", "10.1.0.2/24", "dev", "eth0"])?;
        topo.exec(cli, &["ip", "link", "set", "eth0", "up"])?;
        topo.exec(rtr, &["ip", "addr", "add", "10.1.0.1/24", "dev", "lan0"])?;
        topo.exec(rtr, &["ip", "addr", "add", "10.1.0.3/24", "dev", "lan0"])?;
        topo.exec(rtr, &["ip", "link", "set", "lan0", "up"])?;
        topo.exec(rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        // The master: a bridge in the router, one port per host behind it.
        topo.exec(rtr, &["ip", "link", "add", "ext0", "type", "bridge"])?;
        topo.exec(rtr, &["ip", "link", "set", "ext0", "up"])?;
        // The reserved addresses, placed by the demo until routerd creates
        // the macvlan that carries them.
        for a in ["192.0.2.10/24", "192.0.2.11/24"] {
            topo.exec(rtr, &["ip", "addr", "add", a, "dev", "ext0"])?;
        }
        for (role, addr) in [
            ("web1", "192.0.2.21/24"),
            ("web2", "192.0.2.22/24"),
            ("fb", "192.0.2.30/24"),
        ] {
            let ns = topo.ns(role);
            let port = format!("p-{role}");
            run(Command::new("ip").args([
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                rtr,
            ]))?;
            topo.exec(ns, &["ip", "addr", "add", addr, "dev", "eth0"])?;
            if role == "web2" {
                // web2's second address, the destination of router
                // `strict`: each router's source NAT matches the
                // destinations it redirects to, so two routers must not
                // share one (a known limit, docs/resources.md).
                topo.exec(ns, &["ip", "addr", "add", "192.0.2.23/24", "dev", "eth0"])?;
            }
            topo.exec(ns, &["ip", "link", "set", "eth0", "up"])?;
            topo.exec(rtr, &["ip", "link", "set", &port, "master", "ext0", "up"])?;
        }
        Ok(topo)
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["netns", "exec", ns]).args(args))
    }

    /// Whether any of this run's namespaces is still listed.
    fn left_over(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
            .cloned()
            .collect()
    }

    fn teardown(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Removes namespaces of earlier runs whose process is gone (a run killed
/// by a signal), never those of a live run.
fn cleanup_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let Some((pid, role)) = rest.split_once('-') else {
            continue;
        };
        if !ROLES.contains(&role) || pid.parse::<u32>().is_err() {
            continue;
        }
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let ns = ns.to_string();
    thread::spawn(move || -> Result<T> {
        routerd_render::linux::netns::enter(&ns).map_err(|e| anyhow!("enter {ns}: {e}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))?
}

/// A destination host's services: TCP on `tcp_ports` (one line `"<name>
/// <client address>"`, then `"<name> pong"` per line received) and UDP on
/// port 53 (the same first line per datagram). The fallback keeps the
/// client's port (OpenShift's fallback DNAT has no port), so it listens on
/// the ports that fall back to it.
struct Host {
    /// Closing the TCP listener is the service dying: new connections are
    /// reset, connections already accepted keep being served.
    listening: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Host {
    fn start(ns: &str, name: &'static str, addr: &str, tcp_ports: &[u16]) -> Result<Host> {
        let listening = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let tcp: Vec<SocketAddr> = tcp_ports
            .iter()
            .map(|p| format!("0.0.0.0:{p}").parse())
            .collect::<Result<_, _>>()?;
        let udp: SocketAddr = format!("{addr}:53").parse()?;
        let (l, s) = (listening.clone(), stop.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let ns_owned = ns.to_string();
        thread::spawn(move || {
            if routerd_render::linux::netns::enter(&ns_owned).is_err() {
                let _ = tx.send(false);
                return;
            }
            let listeners: Result<Vec<TcpListener>, _> =
                tcp.iter().map(TcpListener::bind).collect();
            let (Ok(listeners), Ok(sock)) = (listeners, UdpSocket::bind(udp)) else {
                let _ = tx.send(false);
                return;
            };
            for li in &listeners {
                let _ = li.set_nonblocking(true);
            }
            let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
            let _ = tx.send(true);
            let mut listeners = listeners;
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                if !l.load(Ordering::Relaxed) {
                    listeners.clear();
                }
                for li in &listeners {
                    if let Ok((conn, peer)) = li.accept() {
                        let s = s.clone();
                        thread::spawn(move || serve_tcp(conn, peer, name, &s));
                    }
                }
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(5)) != Ok(true) {
            bail!("{name}: could not start its services in {ns}");
        }
        Ok(Host { listening, stop })
    }

    fn die(&self) {
        self.listening.store(false, Ordering::Relaxed);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_tcp(conn: TcpStream, peer: SocketAddr, name: &str, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut w) = conn.try_clone() else {
        return;
    };
    if writeln!(w, "{name} {}", peer.ip()).is_err() {
        return;
    }
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if writeln!(w, "{name} pong").is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The first line a TCP destination answers to a connection from the
/// client namespace.
fn tcp_hello(ns: &str, to: &str) -> Result<String> {
    let to: SocketAddr = to.parse()?;
    in_ns(ns, move || -> Result<String> {
        let s = TcpStream::connect_timeout(&to, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line.trim().to_string())
    })?
}

/// The answer to one UDP datagram from the client namespace.
fn udp_hello(ns: &str, to: &str) -> Result<String> {
    let to: SocketAddr = to.parse()?;
    in_ns(ns, move || -> Result<String> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(to)?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.send(b"hello\n")?;
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })?
}

pub(crate) fn run_demo(verbose: bool) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "routerd demo egress-router builds network namespaces and needs root (try: sudo routerd demo egress-router)"
        );
    }
    cleanup_stale();
    let mut topo = Topo::build().context("build the namespace lab")?;
    let result = demo(&topo, verbose);
    topo.teardown();
    let left = topo.left_over();
    if left.is_empty() {
        println!("cleanup: all {} namespaces removed", topo.names.len());
    } else {
        eprintln!("routerd demo: cleanup left {}", left.join(", "));
        return Ok(1);
    }
    result
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn demo(topo: &Topo, verbose: bool) -> Result<i32> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("egress-router.yaml");
    std::fs::write(&config, CONFIG)?;
    let log = dir.path().join("routerd.log");
    let mut tl = Timeline::new();
    let (cli, rtr) = (topo.ns("cli"), topo.ns("rtr"));
    println!(
        "lab: client {cli} (10.1.0.2) -> egress router {rtr} (er 10.1.0.1, strict 10.1.0.3; reserved 192.0.2.10, 192.0.2.11 on ext0) -> web1 192.0.2.21, web2 192.0.2.22 and .23, fallback 192.0.2.30"
    );
    let web1 = Host::start(topo.ns("web1"), "web1", "192.0.2.21", &[80])?;
    let _web2 = Host::start(topo.ns("web2"), "web2", "192.0.2.22", &[80])?;
    let _fb = Host::start(topo.ns("fb"), "fallback", "192.0.2.30", &[80, 8080])?;
    tl.record("web1 and web2 serve TCP 80 and UDP 53; the fallback TCP 80, 8080 and UDP 53");

    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", rtr])
        .arg(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("routerd.sock"))
        .stdin(Stdio::null());
    if !verbose {
        let f = std::fs::File::create(&log)?;
        cmd.stdout(f.try_clone()?).stderr(f);
    }
    let mut daemon = cmd.spawn().context("start routerd serve")?;
    tl.record("routerd serve started in the egress router namespace");
    let outcome = scenario(topo, &web1, &mut tl);
    stop(&mut daemon);
    tl.record("routerd stopped");
    println!("\n{tl}");
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            Ok(if summary.starts_with("egress-router: ok") {
                0
            } else {
                dump_log(&log);
                1
            })
        }
        Err(e) => {
            dump_log(&log);
            Err(e)
        }
    }
}

fn scenario(topo: &Topo, web1: &Host, tl: &mut Timeline) -> Result<String> {
    let cli = topo.ns("cli");
    let converged = wait_until(
        || tcp_hello(cli, "10.1.0.1:8080").is_ok_and(|l| l.starts_with("web1 ")),
        Duration::from_secs(20),
        Duration::from_millis(50),
    );
    if converged.is_err() {
        bail!("TCP 10.1.0.1:8080 did not reach web1 within 20 s");
    }
    let mut ok = true;
    let mut check = |tl: &mut Timeline, what: String, good: bool| {
        ok &= good;
        tl.record(format!(
            "{what}{}",
            if good { "" } else { "  <-- UNEXPECTED" }
        ));
    };
    let seen = said(tcp_hello(cli, "10.1.0.1:8080"));
    check(
        tl,
        format!("TCP 10.1.0.1:8080 -> \"{seen}\" (web1:80, source = reserved 192.0.2.10)"),
        seen == "web1 192.0.2.10",
    );
    let seen = said(udp_hello(cli, "10.1.0.1:5353"));
    check(
        tl,
        format!("UDP 10.1.0.1:5353 -> \"{seen}\" (web2:53)"),
        seen == "web2 192.0.2.10",
    );
    let seen = said(tcp_hello(cli, "10.1.0.1:8081"));
    check(
        tl,
        format!("TCP 10.1.0.1:8081 -> \"{seen}\" (balanced over web1 and web2 by client address)"),
        seen == "web1 192.0.2.10" || seen == "web2 192.0.2.10",
    );
    let seen = said(tcp_hello(cli, "10.1.0.1:80"));
    check(
        tl,
        format!("TCP 10.1.0.1:80 (unmapped) -> \"{seen}\" (fallback, same port)"),
        seen == "fallback 192.0.2.10",
    );
    let seen = said(udp_hello(cli, "10.1.0.1:53"));
    check(
        tl,
        format!("UDP 10.1.0.1:53 (unmapped) -> \"{seen}\" (fallback)"),
        seen == "fallback 192.0.2.10",
    );
    let seen = said(tcp_hello(cli, "10.1.0.3:8080"));
    check(
        tl,
        format!(
            "TCP 10.1.0.3:8080 -> \"{seen}\" (router strict to web2's 192.0.2.23, source = reserved 192.0.2.11)"
        ),
        seen == "web2 192.0.2.11",
    );
    let t = Instant::now();
    let refused = tcp_hello(cli, "10.1.0.3:9999");
    let ms = t.elapsed().as_millis();
    let reset = refused
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        == Some(std::io::ErrorKind::ConnectionRefused);
    check(
        tl,
        format!("TCP 10.1.0.3:9999 (unmapped, no fallback) -> refused by a reset after {ms} ms"),
        reset,
    );
    let refused = udp_hello(cli, "10.1.0.3:9999");
    let unreachable = refused
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind)
        == Some(std::io::ErrorKind::ConnectionRefused);
    check(
        tl,
        "UDP 10.1.0.3:9999 (unmapped, no fallback) -> ICMP port unreachable".to_string(),
        unreachable,
    );

    // A connection established to web1 before it dies.
    let to: SocketAddr = "10.1.0.1:8080".parse()?;
    let long = in_ns(cli, move || -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&to, Duration::from_millis(500))?;
        s.set_read_timeout(Some(Duration::from_millis(1000)))?;
        Ok(s)
    })??;
    let mut reader = BufReader::new(long.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    tl.record(format!(
        "long-lived connection to 10.1.0.1:8080 established: \"{}\"",
        first.trim()
    ));

    let died = Instant::now();
    web1.die();
    tl.record_at(
        died,
        "web1's service dies (its listener closes; accepted connections stay)",
    );
    let fell_back = wait_until(
        || tcp_hello(cli, "10.1.0.1:8080").is_ok_and(|l| l.starts_with("fallback ")),
        Duration::from_secs(10),
        Duration::from_millis(10),
    );
    let fallback_ms = match fell_back {
        Ok(d) => {
            tl.record_at(
                died + d,
                format!(
                    "new connections to 10.1.0.1:8080 reach the fallback after {} ms (probe every 200 ms, 2 failures)",
                    d.as_millis()
                ),
            );
            Some(d.as_millis())
        }
        Err(_) => {
            check(tl, "port 8080 did not fall back within 10 s".into(), false);
            None
        }
    };
    let seen = said(tcp_hello(cli, "10.1.0.1:8081"));
    check(
        tl,
        format!("TCP 10.1.0.1:8081 -> \"{seen}\" (web1 left out of the balance)"),
        seen == "web2 192.0.2.10",
    );
    let mut w = long.try_clone()?;
    writeln!(w, "ping")?;
    let mut pong = String::new();
    let kept = reader.read_line(&mut pong).is_ok() && pong.trim() == "web1 pong";
    check(
        tl,
        format!(
            "the connection established before still talks to web1: \"{}\"",
            pong.trim()
        ),
        kept,
    );
    drop(reader);
    drop(w);
    drop(long);
    tl.record("long-lived connection closed by the client");
    let table = topo
        .exec(
            topo.ns("rtr"),
            &["nft", "list", "table", "ip", "routerd_egress_er"],
        )
        .unwrap_or_default();
    let no_8080 = !table.contains("dport 8080");
    check(
        tl,
        "nft table routerd_egress_er has no rule for port 8080 any more (it meets the fallback)"
            .to_string(),
        no_8080,
    );
    Ok(format!(
        "egress-router: {}; fallback after {}; established connection kept: {}",
        if ok && fallback_ms.is_some() {
            "ok"
        } else {
            "FAILED"
        },
        fallback_ms.map_or("never".to_string(), |m| format!("{m} ms")),
        if kept { "yes" } else { "no" }
    ))
}

/// What a destination answered, or the error, for the timeline.
fn said(r: Result<String>) -> String {
    r.unwrap_or_else(|e| format!("error: {e}"))
}

fn dump_log(path: &std::path::Path) {
    if let Ok(text) = std::fs::read_to_string(path) {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("--- routerd log (last {} lines) ---", tail.len());
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
}
