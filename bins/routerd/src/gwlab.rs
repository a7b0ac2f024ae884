//! The EgressGateway namespace lab shared by `routerd demo gateway` and
//! `tests/e2e_gateway.rs` (which includes this file): three gateway nodes
//! (`a`, `b`, `c`: eth0 on the internal bridge 10.0.0.0/24, eth1 on the
//! external bridge 172.18.18.0/24), a client node with a workload (`app`,
//! 10.1.0.5) behind it, and an upstream host (`up`, 172.18.18.1) whose
//! server answers with the source address it sees. Each node runs
//! `routerd serve` with its own `--node-name`; dropping the lab kills every
//! process in its namespaces and deletes them.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const GATEWAYS: [&str; 3] = ["a", "b", "c"];

pub(crate) const SERVER: &str = r#"
import socket, threading, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(64)
def serve(c, a):
    f = c.makefile("rwb", buffering=0)
    try:
        f.write((a[0] + "\n").encode())
        for line in f:
            f.write((a[0] + " " + line.decode().strip() + "\n").encode())
    except Exception:
        pass
    c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"#;

pub(crate) const WHOAMI: &str = r#"
import socket
c = socket.create_connection(("172.18.18.1", 7000), timeout=0.5)
print(c.makefile().readline().strip())
"#;

/// A connection that stays open: one line in, one line out, until stdin
/// closes; prints `ok <n>` per answered line, `broken` when it breaks.
pub(crate) const LONG: &str = r#"
import socket, sys
c = socket.create_connection(("172.18.18.1", 7000), timeout=3)
f = c.makefile("rwb", buffering=0)
print("hello " + f.readline().decode().strip(), flush=True)
n = 0
for line in sys.stdin:
    try:
        f.write(b"ping\n"); r = f.readline().decode().strip()
    except Exception as e:
        print("broken " + str(e), flush=True); break
    if not r:
        print("broken closed", flush=True); break
    n += 1
    print("ok %d %s" % (n, r), flush=True)
"#;
/// The application's probe (run in `app` with the seconds to run as
/// `argv[1]`): a fresh connection to the server every 5 ms, printing
/// `<time> <1|0>`, 1 when it was answered from the VIP.
pub(crate) const PROBE: &str = r#"
import socket, time, sys
end = time.time() + float(sys.argv[1])
while time.time() < end:
    t = time.time()
    try:
        c = socket.create_connection(("172.18.18.1", 7000), timeout=0.1)
        ok = c.makefile().readline().strip() == "172.18.18.242"; c.close()
    except Exception:
        ok = False
    print("%.4f %d" % (t, ok), flush=True)
    time.sleep(0.005)
"#;

/// [`PROBE`]'s samples: (time, answered from the VIP).
pub(crate) fn probe_samples(output: &[u8]) -> Vec<(f64, bool)> {
    String::from_utf8_lossy(output)
        .lines()
        .filter_map(|l| {
            let (t, ok) = l.split_once(' ')?;
            Some((t.parse().ok()?, ok == "1"))
        })
        .collect()
}

pub(crate) fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn try_run(args: &[&str]) -> Option<String> {
    let out = Command::new(args[0]).args(&args[1..]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`wait_for`] that gives up with `None` instead of panicking (the demo).
pub(crate) fn try_wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The namespaces, bridges and processes of one lab; dropping it kills
/// every process in its namespaces and deletes them.
pub(crate) struct GwLab {
    /// The routerd executable the nodes run.
    pub(crate) exe: PathBuf,
    p: String,
    dir: PathBuf,
    routerd: Vec<(String, Child)>,
    server: Option<Child>,
}

impl GwLab {
    pub(crate) fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.p)
    }

    pub(crate) fn ip(&self, n: &str, args: &[&str]) -> String {
        let ns = self.ns(n);
        let mut a = vec!["ip", "-n", ns.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    pub(crate) fn exec(&self, n: &str, args: &[&str]) -> Option<String> {
        let ns = self.ns(n);
        let mut a = vec!["ip", "netns", "exec", ns.as_str()];
        a.extend_from_slice(args);
        try_run(&a)
    }

    pub(crate) fn build(tag: &str, exe: PathBuf) -> GwLab {
        let p = format!("rg{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("routerd-{p}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = GwLab {
            exe,
            p,
            dir,
            routerd: Vec::new(),
            server: None,
        };
        for n in ["hub", "a", "b", "c", "client", "app", "up"] {
            run(&["ip", "netns", "add", &lab.ns(n)]);
            lab.ip(n, &["link", "set", "lo", "up"]);
        }
        for br in ["br-int", "br-ext"] {
            lab.ip(
                "hub",
                &["link", "add", br, "type", "bridge", "mcast_snooping", "0"],
            );
            lab.ip("hub", &["link", "set", br, "up"]);
        }
        let hub = lab.ns("hub");
        let veth = |node: &str, host_if: &str, inner: &str, bridge: &str| {
            let ns = lab.ns(node);
            run(&[
                "ip", "-n", &hub, "link", "add", host_if, "type", "veth", "peer", "name", inner,
                "netns", &ns,
            ]);
            lab.ip("hub", &["link", "set", host_if, "master", bridge, "up"]);
            lab.ip(node, &["link", "set", inner, "up"]);
        };
        for (i, g) in GATEWAYS.iter().enumerate() {
            veth(g, &format!("{}{g}0", lab.p), "eth0", "br-int");
            veth(g, &format!("{}{g}1", lab.p), "eth1", "br-ext");
            lab.ip(
                g,
                &[
                    "addr",
                    "add",
                    &format!("10.0.0.{}/24", 11 + i),
                    "dev",
                    "eth0",
                ],
            );
            lab.ip(
                g,
                &[
                    "addr",
                    "add",
                    &format!("172.18.18.{}/24", 11 + i),
                    "dev",
                    "eth1",
                ],
            );
            lab.routes(g);
        }
        veth("client", &format!("{}cl", lab.p), "eth0", "br-int");
        lab.ip("client", &["addr", "add", "10.0.0.20/24", "dev", "eth0"]);
        veth("up", &format!("{}up", lab.p), "eth0", "br-ext");
        lab.ip("up", &["addr", "add", "172.18.18.1/24", "dev", "eth0"]);
        let (client, app) = (lab.ns("client"), lab.ns("app"));
        run(&[
            "ip", "-n", &client, "link", "add", "veth-app", "type", "veth", "peer", "name", "eth0",
            "netns", &app,
        ]);
        lab.ip("client", &["addr", "add", "10.1.0.1/24", "dev", "veth-app"]);
        lab.ip("client", &["link", "set", "veth-app", "up"]);
        lab.ip("app", &["addr", "add", "10.1.0.5/24", "dev", "eth0"]);
        lab.ip("app", &["link", "set", "eth0", "up"]);
        lab.ip("app", &["route", "add", "default", "via", "10.1.0.1"]);
        for n in ["a", "b", "c", "client"] {
            lab.exec(
                n,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            )
            .unwrap();
        }
        lab
    }

    /// The gateway's static routes (a link set down loses them; the lab
    /// puts them back as an operator's network configuration would).
    pub(crate) fn routes(&self, g: &str) {
        self.ip(g, &["route", "replace", "default", "via", "172.18.18.1"]);
        self.ip(g, &["route", "replace", "10.1.0.0/24", "via", "10.0.0.20"]);
    }

    pub(crate) fn config(&self, text: &str) -> PathBuf {
        let path = self.dir.join("config.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn node_dir(&self, n: &str) -> PathBuf {
        self.dir.join(n)
    }

    pub(crate) fn start(&mut self, n: &str) {
        let node = if n == "client" {
            "client".to_string()
        } else {
            format!("gw-{n}")
        };
        let d = self.node_dir(n);
        std::fs::create_dir_all(&d).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("routerd.log"))
            .unwrap();
        let ns = self.ns(n);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&self.exe)
            .arg("serve")
            .arg("--config")
            .arg(self.dir.join("config.yaml"))
            .arg("--state-dir")
            .arg(d.join("state"))
            .arg("--socket")
            .arg(d.join("sock"))
            .arg("--gateway-dir")
            .arg(d.join("run"))
            .arg("--node-name")
            .arg(&node)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.routerd.push((n.to_string(), child));
    }

    /// SIGTERM to node `n`'s routerd, waiting for it to exit (it stops its
    /// keepalived on the way out).
    pub(crate) fn stop_routerd(&mut self, n: &str) {
        if let Some(i) = self.routerd.iter().position(|(m, _)| m == n) {
            let (_, mut c) = self.routerd.remove(i);
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub(crate) fn kill_routerd(&mut self, n: &str) {
        if let Some(i) = self.routerd.iter().position(|(m, _)| m == n) {
            let (_, mut c) = self.routerd.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn start_server(&mut self) {
        let ns = self.ns("up");
        self.server = Some(
            Command::new("ip")
                .args(["netns", "exec", &ns, "python3", "-c", SERVER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    /// The gateway node holding `vip`, if one does.
    pub(crate) fn holder(&self, vip: &str) -> Option<String> {
        let needle = format!("inet {vip}/");
        GATEWAYS
            .iter()
            .find(|g| {
                self.exec(g, &["ip", "-4", "addr"])
                    .is_some_and(|o| o.contains(&needle))
            })
            .map(|g| (*g).to_string())
    }

    /// The source address the upstream host sees for a new connection.
    pub(crate) fn whoami(&self) -> Option<String> {
        self.exec("app", &["python3", "-c", WHOAMI])
            .map(|s| s.trim().to_string())
    }

    pub(crate) fn keepalived_pid(&self, n: &str) -> Option<i32> {
        std::fs::read_to_string(self.node_dir(n).join("run/keepalived.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn log(&self, n: &str) -> String {
        std::fs::read_to_string(self.node_dir(n).join("routerd.log")).unwrap_or_default()
    }
}

impl Drop for GwLab {
    fn drop(&mut self) {
        for (_, c) in &mut self.routerd {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(c) = &mut self.server {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in ["a", "b", "c", "client", "app", "up", "hub"] {
            let ns = self.ns(n);
            if let Some(pids) = try_run(&["ip", "netns", "pids", &ns]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn node_doc(g: &str, i: usize) -> String {
    format!(
        "apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata: {{name: gw-{g}, labels: {{egress: \"\"}}}}
spec:
  addresses: [10.0.0.{n}]
  interfaces:
    - {{name: eth0, addresses: [10.0.0.{n}/24]}}
    - {{name: eth1, addresses: [172.18.18.{n}/24]}}
---
",
        n = 11 + i
    )
}

pub(crate) fn config(gateways: &str) -> String {
    let mut s = String::new();
    for (i, g) in GATEWAYS.iter().enumerate() {
        s.push_str(&node_doc(g, i));
    }
    s.push_str(
        "apiVersion: net.routerd.net/v1alpha1
kind: Node
metadata: {name: client}
spec:
  addresses: [10.0.0.20]
  interfaces: [{name: eth0, addresses: [10.0.0.20/24]}]
---
apiVersion: net.routerd.net/v1alpha1
kind: ClientGroup
metadata: {name: backend, labels: {app: backend}}
spec: {sourceCIDRs: [10.1.0.0/24]}
---
",
    );
    s.push_str(gateways);
    s
}

pub(crate) const ONE_GATEWAY: &str = "apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {name: egress-gw}
spec:
  nodeSelector: {egress: \"\"}
  sourceIP:
    mode: VirtualIPAddress
    virtualIPAddress: {ip: 172.18.18.242}
  internal: {ip: 10.0.0.254}
---
apiVersion: net.routerd.net/v1alpha1
kind: EgressGatewayPolicy
metadata: {name: backend-out}
spec:
  destinationCIDRs: [0.0.0.0/0]
  egressGatewayName: egress-gw
  selectors:
    - podSelector: {matchLabels: {app: backend}}
";

pub(crate) const VIP: &str = "172.18.18.242";
