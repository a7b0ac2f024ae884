//! `routerd demo mobility`: Selective Address Mobility in namespaces
//! (root). Two sites joined by a VXLAN overlay, each router running
//! `routerd serve` with its own OverlayPeer `role`; a VM with 192.168.10.50,
//! an address inside the on-prem LAN prefix, lives in the cloud. An
//! inventory plugin on both routers brings the RemoteAddressClaim with the
//! `ownerSide` it sees. The on-prem client reaches the VM by its address as
//! if it were local; the overlay fails and capture stops (the client gets
//! no ARP answer rather than a black hole); the overlay returns; the VM
//! moves on-prem, the inventory flips `ownerSide`, and traffic follows.
//! Timeline printed; every namespace and process removed (stale ones of an
//! interrupted run at the next start).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use routerd_lab::mobility::{
    ECHO, INVENTORY_PLUGIN, PROBE, parse_probe, router_config, write_exec,
};
use routerd_lab::{Timeline, wait_until};

const PREFIX: &str = "rdmob";

fn run(args: &[&str]) -> Result<String> {
    let (prog, rest) = args.split_first().context("empty command")?;
    let out = Command::new(prog)
        .args(rest)
        .output()
        .with_context(|| format!("run {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lab's namespaces and processes; dropping it kills every process in
/// the namespaces and deletes them.
struct MobLab {
    tag: String,
    dir: PathBuf,
    children: Vec<Child>,
}

const NODES: [&str; 5] = ["client", "onprem", "cloud", "vmc", "vmo"];

impl MobLab {
    fn ns(&self, n: &str) -> String {
        format!("{PREFIX}{}{n}", self.tag)
    }

    fn ip(&self, n: &str, args: &[&str]) -> Result<()> {
        let ns = self.ns(n);
        let mut a = vec!["ip", "-n", ns.as_str()];
        a.extend_from_slice(args);
        run(&a).map(drop)
    }

    fn exec(&self, n: &str, args: &[&str]) -> Result<String> {
        let ns = self.ns(n);
        let mut a = vec!["ip", "netns", "exec", ns.as_str()];
        a.extend_from_slice(args);
        run(&a)
    }

    fn spawn(&mut self, n: &str, prog: &Path, args: &[&str], log: Option<&Path>) -> Result<()> {
        let out = match log {
            Some(p) => Stdio::from(std::fs::File::create(p)?),
            None => Stdio::null(),
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(n)])
            .arg(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {} in {n}", prog.display()))?;
        self.children.push(child);
        Ok(())
    }

    /// Namespaces of runs whose process is gone (an interrupted demo).
    fn cleanup_stale() {
        let Ok(list) = run(&["ip", "netns", "list"]) else {
            return;
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if pid.is_empty() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            Self::remove(name);
        }
    }

    fn remove(ns: &str) {
        if let Ok(pids) = run(&["ip", "netns", "pids", ns]) {
            for pid in pids.split_whitespace() {
                if let Ok(p) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }

    fn build(dir: PathBuf) -> Result<MobLab> {
        let lab = MobLab {
            tag: std::process::id().to_string(),
            dir,
            children: Vec::new(),
        };
        for n in NODES {
            run(&["ip", "netns", "add", &lab.ns(n)])?;
            lab.ip(n, &["link", "set", "lo", "up"])?;
        }
        let veth = |a: &str, ai: &str, b: &str, bi: &str| -> Result<()> {
            lab.ip(
                a,
                &[
                    "link",
                    "add",
                    ai,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    bi,
                    "netns",
                    &lab.ns(b),
                ],
            )?;
            lab.ip(a, &["link", "set", ai, "up"])?;
            lab.ip(b, &["link", "set", bi, "up"])
        };
        // On-prem LAN: a switch (bridge in the client's namespace) with the
        // client 192.168.10.10, the router's lan0 and the on-prem VM port.
        lab.ip("client", &["link", "add", "sw", "type", "bridge"])?;
        veth("onprem", "lan0", "client", "c0")?;
        veth("vmo", "m0", "client", "p2")?;
        for p in ["c0", "p2"] {
            lab.ip("client", &["link", "set", p, "master", "sw"])?;
        }
        lab.ip("client", &["addr", "add", "192.168.10.10/24", "dev", "sw"])?;
        lab.ip("client", &["link", "set", "sw", "up"])?;
        lab.ip("onprem", &["addr", "add", "192.168.10.1/24", "dev", "lan0"])?;
        lab.ip("vmo", &["route", "add", "default", "dev", "m0"])?;
        // Underlay and the VXLAN overlay between the routers.
        veth("onprem", "u0", "cloud", "u1")?;
        lab.ip("onprem", &["addr", "add", "198.51.100.1/30", "dev", "u0"])?;
        lab.ip("cloud", &["addr", "add", "198.51.100.2/30", "dev", "u1"])?;
        for (n, local, remote, inner) in [
            ("onprem", "198.51.100.1", "198.51.100.2", "10.255.0.1/30"),
            ("cloud", "198.51.100.2", "198.51.100.1", "10.255.0.2/30"),
        ] {
            lab.ip(
                n,
                &[
                    "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote",
                    remote, "dstport", "4789",
                ],
            )?;
            lab.ip(n, &["addr", "add", inner, "dev", "vx0"])?;
            lab.ip(n, &["link", "set", "vx0", "up"])?;
        }
        // Cloud LAN with the VM, which starts here.
        veth("cloud", "clan0", "vmc", "h0")?;
        lab.ip("cloud", &["addr", "add", "10.99.0.1/24", "dev", "clan0"])?;
        lab.ip("vmc", &["addr", "add", "10.99.0.50/24", "dev", "h0"])?;
        lab.ip("vmc", &["addr", "add", "192.168.10.50/32", "dev", "h0"])?;
        lab.vm_cloud_route()?;
        lab.cloud_return_route()?;
        lab.exec("cloud", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(lab)
    }

    /// The VM answers from its mobile address while in the cloud.
    fn vm_cloud_route(&self) -> Result<()> {
        self.ip(
            "vmc",
            &[
                "route",
                "replace",
                "default",
                "via",
                "10.99.0.1",
                "src",
                "192.168.10.50",
            ],
        )
    }

    /// The cloud's way back to the on-prem LAN (the operator's route; it
    /// goes with the overlay link and comes back with it).
    fn cloud_return_route(&self) -> Result<()> {
        self.ip(
            "cloud",
            &[
                "route",
                "replace",
                "192.168.10.0/24",
                "via",
                "10.255.0.1",
                "dev",
                "vx0",
            ],
        )
    }

    fn proxies(&self, n: &str) -> String {
        self.exec(n, &["ip", "neigh", "show", "proxy"])
            .unwrap_or_default()
    }

    /// ARP answers the client gets for the VM's address (fresh cache).
    fn arp_answers(&self) -> u32 {
        let _ = self.exec("client", &["ip", "neigh", "flush", "dev", "sw"]);
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("client")])
            .args(["arping", "-c", "2", "-w", "3", "-I", "sw", "192.168.10.50"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .find_map(|l| l.strip_prefix("Received "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Which site answers a UDP probe to the VM's address now.
    fn site(&self) -> Option<String> {
        let probe = self.dir.join("probe");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("client")])
            .arg(&probe)
            .arg("0.3")
            .output()
            .ok()?;
        let (answers, _) = parse_probe(&String::from_utf8_lossy(&out.stdout));
        answers.last().map(|a| a.site.clone())
    }
}

impl Drop for MobLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in NODES {
            Self::remove(&self.ns(n));
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(crate) fn run_demo(verbose: bool) -> Result<i32> {
    MobLab::cleanup_stale();
    let dir = tempfile::tempdir()?;
    // The plugin runner refuses executables others can write.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let mut lab = MobLab::build(dir.path().to_path_buf()).context("build the namespaces")?;
    let result = demo(&mut lab, verbose);
    let logs = [
        ("onprem", lab.dir.join("onprem.log")),
        ("cloud", lab.dir.join("cloud.log")),
    ];
    drop(lab);
    if result.is_err() {
        for (node, log) in logs {
            if let Ok(text) = std::fs::read_to_string(log) {
                eprintln!("--- {node} routerd log (last 30 lines)");
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
    result
}

fn demo(lab: &mut MobLab, verbose: bool) -> Result<i32> {
    let dir = lab.dir.clone();
    let plugin = dir.join("inventory");
    write_exec(&plugin, INVENTORY_PLUGIN)?;
    write_exec(&dir.join("echo"), ECHO)?;
    write_exec(&dir.join("probe"), PROBE)?;
    let owner = dir.join("owner");
    std::fs::write(&owner, "cloud\n")?;
    let exe = std::env::current_exe()?;
    let mut tl = Timeline::new();
    println!(
        "lab: on-prem client 192.168.10.10 and router (lan0 192.168.10.1/24) — vxlan vx0 — cloud router (clan0 10.99.0.1/24) and the VM 192.168.10.50"
    );
    for (node, lan, target) in [
        ("onprem", "lan0", "10.255.0.2"),
        ("cloud", "clan0", "10.255.0.1"),
    ] {
        let nd = dir.join(node);
        std::fs::create_dir_all(&nd)?;
        std::fs::write(
            nd.join("config.yaml"),
            router_config(node, lan, target, &plugin, &owner),
        )?;
        let log = dir.join(format!("{node}.log"));
        let args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            nd.join("config.yaml").display().to_string(),
            "--state-dir".into(),
            nd.join("state").display().to_string(),
            "--socket".into(),
            nd.join("routerd.sock").display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn(node, &exe, &args, (!verbose).then_some(log.as_path()))?;
    }
    let echo = dir.join("echo");
    lab.spawn("vmc", &echo, &["cloud"], None)?;
    lab.spawn("vmo", &echo, &["onprem"], None)?;
    tl.record(
        "routerd serve started on both routers; the inventory plugin says the VM is in the cloud",
    );

    let mut ok = true;
    let step = |tl: &mut Timeline, what: &str, limit: u64, f: &mut dyn FnMut() -> bool| {
        let seen = wait_until(f, Duration::from_secs(limit), Duration::from_millis(100)).is_ok();
        tl.record(if seen {
            what.to_string()
        } else {
            format!("{what}: NOT SEEN within {limit} s")
        });
        seen
    };
    ok &= step(
        &mut tl,
        "the on-prem client reaches 192.168.10.50 in the cloud as if it were local: the on-prem router answers ARP for it on lan0 (neighbour proxy entry) and delivers it over vx0",
        90,
        &mut || lab.site().as_deref() == Some("cloud"),
    );

    lab.ip("cloud", &["link", "set", "vx0", "down"])?;
    tl.record("the overlay breaks (vx0 down on the cloud router)");
    ok &= step(
        &mut tl,
        "its health check fails: the on-prem router stops answering for 192.168.10.50 (proxy entry removed)",
        20,
        &mut || !lab.proxies("onprem").contains("192.168.10.50"),
    );
    let answers = lab.arp_answers();
    tl.record(format!(
        "the client's ARP request for 192.168.10.50 gets {answers} answers: no answer rather than a black hole"
    ));
    ok &= answers == 0;

    lab.ip("cloud", &["link", "set", "vx0", "up"])?;
    lab.cloud_return_route()?;
    tl.record("the overlay returns");
    ok &= step(
        &mut tl,
        "capture resumes once the gate is healthy again (after its hold): the client reaches the VM in the cloud again",
        90,
        &mut || lab.site().as_deref() == Some("cloud"),
    );

    // The VM moves on-prem; the inventory notices.
    let probe = Command::new("ip")
        .args(["netns", "exec", &lab.ns("client")])
        .arg(dir.join("probe"))
        .arg("6")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(1));
    let moved = now();
    lab.ip("vmc", &["addr", "del", "192.168.10.50/32", "dev", "h0"])?;
    lab.ip("vmo", &["addr", "add", "192.168.10.50/24", "dev", "m0"])?;
    std::fs::write(dir.join("owner.new"), "onprem\n")?;
    std::fs::rename(dir.join("owner.new"), &owner)?;
    tl.record("the VM moves to the on-prem LAN; the inventory now says ownerSide onprem");
    let out = probe.wait_with_output()?;
    let (answers, _) = parse_probe(&String::from_utf8_lossy(&out.stdout));
    let last_old = answers.iter().rfind(|a| a.site == "cloud").map(|a| a.at);
    let first_new = answers.iter().find(|a| a.site == "onprem").map(|a| a.at);
    match (last_old, first_new) {
        (Some(a), Some(b)) => tl.record(format!(
            "traffic follows: answers from the VM on-prem {:.0} ms after the move (no answer for {:.0} ms, probes every 20 ms)",
            (b - moved) * 1000.0,
            (b - a) * 1000.0
        )),
        _ => {
            ok = false;
            tl.record("traffic did NOT follow the VM within 5 s")
        }
    };
    let flipped = wait_until(
        || {
            lab.proxies("cloud").contains("192.168.10.50 dev clan0")
                && lab.proxies("onprem").contains("192.168.10.50 dev vx0")
        },
        Duration::from_secs(10),
        Duration::from_millis(100),
    )
    .is_ok();
    tl.record(if flipped {
        "the claim moved: the on-prem router owns it (local route on lan0, answers on the overlay), the cloud router captures it on its LAN"
    } else {
        "the claim's capture did NOT move within 10 s"
    });
    ok &= flipped;
    println!("\n{tl}");
    if !ok {
        bail!("the mobility demo did not go as described");
    }
    println!("mobility: reach, fence and move as described");
    Ok(0)
}
