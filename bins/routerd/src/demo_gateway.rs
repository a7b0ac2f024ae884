//! `routerd demo gateway` (issue #18): three gateway nodes and a client
//! node in namespaces on shared bridges, an upstream host that prints the
//! source address it sees, two EgressGateways over the same nodes. The
//! timeline shows the gateways electing different active nodes, a
//! long-lived TCP connection through the VIP, the active node's uplink
//! cut and then its routerd killed, the role moving each time, the
//! measured traffic gap, and the connection surviving.

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use routerd_keepalived::plan::rendezvous_order;

use crate::gwlab::{GwLab, LONG, PROBE, VIP, config, probe_samples, try_wait_for};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Two gateway names whose preferred nodes differ.
fn two_names() -> (String, String) {
    let nodes = ["gw-a", "gw-b", "gw-c"];
    let first = "egress-gw".to_string();
    let pref = rendezvous_order(&first, &nodes)[0];
    let second = (2..50)
        .map(|i| format!("egress-gw-{i}"))
        .find(|n| rendezvous_order(n, &nodes)[0] != pref)
        .unwrap_or_else(|| "egress-gw-2".into());
    (first, second)
}

fn gateway(name: &str, vip: &str, internal: &str, id: u8) -> String {
    format!(
        "apiVersion: net.routerd.net/v1alpha1
kind: EgressGateway
metadata: {{name: {name}}}
spec:
  nodeSelector: {{egress: \"\"}}
  sourceIP:
    mode: VirtualIPAddress
    virtualIPAddress: {{ip: {vip}}}
  internal: {{ip: {internal}}}
  vrrp: {{id: {id}, preempt: true}}
---
"
    )
}

/// The gap a failure at `t0` caused, from the probe's samples: to the first
/// success after the first failure (0 when nothing failed).
fn gap(samples: &[(f64, bool)], t0: f64, until: f64) -> Option<f64> {
    let after: Vec<&(f64, bool)> = samples
        .iter()
        .filter(|(t, _)| *t >= t0 && *t < until)
        .collect();
    match after.iter().find(|(_, ok)| !ok) {
        None => Some(0.0),
        Some((first_fail, _)) => after
            .iter()
            .find(|(t, ok)| *ok && t > first_fail)
            .map(|(t, _)| t - t0),
    }
}

pub(crate) fn run(verbose: bool) -> Result<i32> {
    let exe = std::env::current_exe().context("find the routerd executable")?;
    let started = Instant::now();
    let say = |m: &str| println!("[{:6.2}s] {m}", started.elapsed().as_secs_f64());
    let (g1, g2) = two_names();
    let mut lab = GwLab::build("d", exe);
    let pol = format!(
        "apiVersion: net.routerd.net/v1alpha1
kind: EgressGatewayPolicy
metadata: {{name: backend-out}}
spec:
  destinationCIDRs: [0.0.0.0/0]
  egressGatewayName: {g1}
  selectors:
    - podSelector: {{matchLabels: {{app: backend}}}}
"
    );
    lab.config(&config(&format!(
        "{}{}{pol}",
        gateway(&g1, VIP, "10.0.0.254", 51),
        gateway(&g2, "172.18.18.243", "10.0.0.253", 52)
    )));
    lab.start_server();
    for n in ["client", "a", "b", "c"] {
        lab.start(n);
    }
    say(
        "3 gateway nodes (gw-a, gw-b, gw-c), a client node with a workload, an upstream host; routerd on every node",
    );
    let nodes = ["gw-a", "gw-b", "gw-c"];
    let p1 = rendezvous_order(&g1, &nodes)[0].to_string();
    let p2 = rendezvous_order(&g2, &nodes)[0].to_string();
    let h1 = try_wait_for(Duration::from_secs(40), || {
        lab.holder(VIP).filter(|h| format!("gw-{h}") == p1)
    });
    let h2 = try_wait_for(Duration::from_secs(40), || {
        lab.holder("172.18.18.243")
            .filter(|h| format!("gw-{h}") == p2)
    });
    let (Some(h1), Some(h2)) = (h1, h2) else {
        bail!("the gateways did not settle on their preferred nodes ({p1}, {p2})");
    };
    say(&format!(
        "{g1} is active on gw-{h1}, {g2} on gw-{h2}: two gateways over the same nodes elect different active nodes"
    ));
    let Some(src) = try_wait_for(Duration::from_secs(20), || {
        lab.whoami().filter(|w| w == VIP)
    }) else {
        bail!("policy traffic never left with the VIP");
    };
    say(&format!(
        "the upstream host sees the workload's new connections from {src}"
    ));
    // Let conntrackd replicate before the failures.
    std::thread::sleep(Duration::from_secs(2));

    let ns = lab.ns("app");
    let mut long = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", LONG])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the long-lived connection")?;
    let mut stdin = long.stdin.take().context("stdin")?;
    let mut lines = std::io::BufReader::new(long.stdout.take().context("stdout")?).lines();
    let hello = lines.next().transpose()?.unwrap_or_default();
    say(&format!("long-lived TCP connection open ({hello})"));
    let mut ask = || -> bool {
        if writeln!(stdin, "x").is_err() {
            return false;
        }
        lines
            .next()
            .and_then(Result::ok)
            .is_some_and(|l| l.starts_with("ok "))
    };
    let probe = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", PROBE, "14"])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the probe")?;
    std::thread::sleep(Duration::from_secs(1));

    // 1. The active node's uplink is cut.
    let t1 = now();
    lab.ip(&h1, &["link", "set", "eth1", "down"]);
    say(&format!("cut gw-{h1}'s uplink (eth1 down)"));
    let Some(n1) = try_wait_for(Duration::from_secs(10), || {
        lab.holder(VIP).filter(|h| *h != h1)
    }) else {
        bail!("the role did not move after the uplink cut");
    };
    say(&format!("{g1} moved to gw-{n1}"));
    std::thread::sleep(Duration::from_secs(2));
    let alive1 = ask();
    say(&format!(
        "the long-lived connection {}",
        if alive1 { "still answers" } else { "BROKE" }
    ));

    // 2. The new active node's routerd is killed (its keepalived dies with it).
    let t2 = now();
    lab.kill_routerd(&n1);
    say(&format!("killed routerd on gw-{n1}"));
    let Some(n2) = try_wait_for(Duration::from_secs(10), || {
        lab.holder(VIP).filter(|h| *h != n1)
    }) else {
        bail!("the role did not move after routerd was killed");
    };
    say(&format!("{g1} moved to gw-{n2}"));
    std::thread::sleep(Duration::from_secs(2));
    let alive2 = ask();
    say(&format!(
        "the long-lived connection {}",
        if alive2 { "still answers" } else { "BROKE" }
    ));
    let t_end = now();

    let out = probe.wait_with_output().context("probe")?;
    let samples = probe_samples(&out.stdout);
    let gap1 = gap(&samples, t1, t2);
    let gap2 = gap(&samples, t2, t_end);
    let ms = |g: Option<f64>| {
        g.map_or("no recovery".to_string(), |g| {
            format!("{:.0} ms", g * 1000.0)
        })
    };
    say(&format!(
        "traffic gap: uplink cut {}, routerd killed {}",
        ms(gap1),
        ms(gap2)
    ));
    let _ = long.kill();
    let _ = long.wait();
    if verbose {
        for n in ["a", "b", "c", "client"] {
            eprintln!("--- routerd log of {n}\n{}", lab.log(n));
        }
    }
    let ok = alive1 && alive2 && gap1.is_some_and(|g| g < 1.5) && gap2.is_some_and(|g| g < 1.5);
    say(if ok { "ok" } else { "FAILED" });
    Ok(if ok { 0 } else { 1 })
}
