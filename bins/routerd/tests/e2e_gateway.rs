#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! EgressGateway groups end to end (issue #18, root only): three gateway
//! nodes, a client node with a workload behind it and an upstream host that
//! answers with the source address it sees, each in its own namespace on
//! two bridges (internal 10.0.0.0/24, external 172.18.18.0/24). Every node
//! runs `routerd serve` on the same configuration with its own
//! `--node-name`; the gateway nodes run keepalived and conntrackd under it.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

#[path = "../src/gwlab.rs"]
mod gwlab;

use gwlab::*;

use routerd_keepalived::plan::rendezvous_order;

/// One lab at a time: the machine is small and VRRP timing matters.
static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lab for one test at a time (a failed test's poison is
/// ignored: the next one builds its own lab).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A control-API call on node `n` (what `routerctl explain gateway`
/// and `routerctl cordon` send).
fn api(lab: &GwLab, n: &str, post: bool, path: &str) -> Option<serde_json::Value> {
    let c = routerd_api::client::Client::new(lab.node_dir(n).join("sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        if post {
            c.post(path, &serde_json::json!({})).await.ok()
        } else {
            c.get(path).await.ok()
        }
    })
}

/// Waits until the role is on some node other than `not` and new policy
/// traffic leaves with the VIP; returns the new active node.
fn moved(lab: &GwLab, not: &str) -> String {
    let to = wait_for("the role to move", Duration::from_secs(10), || {
        lab.holder(VIP).filter(|h| h != not)
    });
    wait_for(
        "policy traffic through the new node",
        Duration::from_secs(10),
        || lab.whoami().filter(|w| w == VIP),
    );
    to
}

/// Starts the upstream server, the client, then the gateway preferred by
/// rendezvous hashing (so it takes the role) and the others as standbys
/// (nopreempt: no one takes a role that is held); returns the active node
/// once policy traffic leaves with the VIP.
fn bring_up(lab: &mut GwLab) -> String {
    lab.start_server();
    let order = rendezvous_order("egress-gw", &["gw-a", "gw-b", "gw-c"]);
    let first = order[0].trim_start_matches("gw-").to_string();
    lab.start("client");
    lab.start(&first);
    let active = wait_for(
        "the preferred node to take the role",
        Duration::from_secs(20),
        || lab.holder(VIP),
    );
    assert_eq!(active, first, "log:\n{}", lab.log(&first));
    for g in GATEWAYS.iter().filter(|g| **g != first) {
        lab.start(g);
    }
    wait_for(
        "policy traffic with the VIP",
        Duration::from_secs(20),
        || lab.whoami().filter(|w| w == VIP),
    );
    first
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_role_and_the_traffic_move_on_every_failure_and_connections_survive() {
    let _serial = serial();
    let mut lab = GwLab::build("f", env!("CARGO_BIN_EXE_routerd").into());
    lab.config(&config(ONE_GATEWAY));
    let first = bring_up(&mut lab);
    // Let the standbys come up and conntrackd sync.
    std::thread::sleep(Duration::from_secs(3));

    // An established connection through the VIP...
    let ns = lab.ns("app");
    let mut long = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", LONG])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = long.stdin.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(long.stdout.take().unwrap()));
    let hello = lines.next().unwrap().unwrap();
    assert_eq!(hello, format!("hello {VIP}"));
    let mut ask = |tag: &str| {
        use std::io::Write as _;
        writeln!(stdin, "x").unwrap();
        let l = lines.next().unwrap().unwrap();
        assert!(l.starts_with("ok "), "{tag}: the connection broke: {l}");
        l
    };
    ask("before");
    // conntrackd has replicated the connection to every standby.
    for g in GATEWAYS.iter().filter(|g| **g != first) {
        let conf = lab.node_dir(g).join("run/conntrackd.conf");
        let conf = conf.to_string_lossy().into_owned();
        wait_for(
            "the connection in a standby's external cache",
            Duration::from_secs(10),
            || {
                lab.exec(g, &["conntrackd", "-C", &conf, "-e"])
                    .filter(|o| o.contains("ESTABLISHED") && o.contains("dport=7000"))
            },
        );
    }

    // 1. keepalived killed on the active node: the role moves, the
    //    connection survives (conntrackd), routerd restarts keepalived, and
    //    the old node does not take the role back (nopreempt).
    let pid = lab.keepalived_pid(&first).expect("keepalived pid");
    run(&["kill", "-9", &pid.to_string()]);
    let second = moved(&lab, &first);
    ask("after keepalived was killed");
    wait_for(
        "routerd to restart keepalived",
        Duration::from_secs(10),
        || lab.keepalived_pid(&first).filter(|p| *p != pid),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.holder(VIP).as_deref(),
        Some(second.as_str()),
        "nopreempt: the preferred node took the role back"
    );
    let st = api(&lab, &second, false, "/explain?gateway=egress-gw").expect("explain gateway");
    assert_eq!(st["status"]["vrrpState"], "MASTER", "{st}");
    assert_eq!(
        st["status"]["activeNodeName"],
        format!("gw-{second}"),
        "{st}"
    );
    assert!(st["status"]["lastFailoverCause"].is_string(), "{st}");

    // 2. The active node's uplink is cut: it goes FAULT and the role moves.
    lab.ip(&second, &["link", "set", "eth1", "down"]);
    let third = moved(&lab, &second);
    ask("after the uplink was cut");
    lab.ip(&second, &["link", "set", "eth1", "up"]);
    lab.routes(&second);

    // 3. Cordoning the active node moves the role cleanly.
    api(
        &lab,
        &third,
        true,
        &format!("/cordon?node=gw-{third}&on=true"),
    )
    .expect("cordon");
    let fourth = moved(&lab, &third);
    ask("after cordon");
    api(
        &lab,
        &third,
        true,
        &format!("/cordon?node=gw-{third}&on=false"),
    )
    .expect("uncordon");

    // 4. The active node's routerd is killed: its keepalived dies with it.
    lab.kill_routerd(&fourth);
    let _fifth = moved(&lab, &fourth);
    ask("after routerd was killed");

    let _ = long.kill();
    let _ = long.wait();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn two_gateways_elect_different_active_nodes() {
    let _serial = serial();
    let nodes = ["gw-a", "gw-b", "gw-c"];
    // Two names whose preferred nodes differ (rendezvous hashing spreads
    // gateways; the test picks a pair so the assertion is meaningful).
    let names: Vec<String> = (0..20).map(|i| format!("gw{i}")).collect();
    let one = &names[0];
    let pref1 = rendezvous_order(one, &nodes)[0];
    let two = names
        .iter()
        .find(|n| rendezvous_order(n, &nodes)[0] != pref1)
        .unwrap();
    let pref2 = rendezvous_order(two, &nodes)[0];
    let gw = |name: &str, vip: &str, internal: &str, id: u8| {
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
    };
    let mut lab = GwLab::build("t", env!("CARGO_BIN_EXE_routerd").into());
    lab.config(&config(&format!(
        "{}{}",
        gw(one, "172.18.18.242", "10.0.0.254", 51),
        gw(two, "172.18.18.243", "10.0.0.253", 52)
    )));
    for g in GATEWAYS {
        lab.start(g);
    }
    // With preempt, each gateway ends on its own preferred node.
    let h1 = wait_for(
        "the first gateway on its preferred node",
        Duration::from_secs(30),
        || {
            lab.holder("172.18.18.242")
                .filter(|h| format!("gw-{h}") == pref1)
        },
    );
    let h2 = wait_for(
        "the second gateway on its preferred node",
        Duration::from_secs(30),
        || {
            lab.holder("172.18.18.243")
                .filter(|h| format!("gw-{h}") == pref2)
        },
    );
    assert_ne!(h1, h2, "both gateways are active on one node");
}

/// The failover measurement of docs/performance.md (no pass/fail on
/// timing): 20 trials rotating three failures of the active node — its
/// keepalived killed, its uplink cut, its internal link cut (the peers hear
/// nothing and take over after the advert timeout) — each timed from the
/// injection to the first new connection through the VIP after the first
/// failed one (0 when none failed), probing every 5 ms with a 100 ms
/// connect timeout. Three trials by default (CI); `ROUTERD_GW_TRIALS=20`
/// and `--nocapture` for the measurement.
#[test]
#[ignore = "needs root: network namespaces"]
fn failover_trials() {
    let _serial = serial();
    let trials: usize = std::env::var("ROUTERD_GW_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut lab = GwLab::build("m", env!("CARGO_BIN_EXE_routerd").into());
    lab.config(&config(ONE_GATEWAY));
    lab.start_server();
    for g in ["client", "a", "b", "c"] {
        lab.start(g);
    }
    wait_for(
        "policy traffic with the VIP",
        Duration::from_secs(30),
        || lab.whoami().filter(|w| w == VIP),
    );
    std::thread::sleep(Duration::from_secs(2));
    let kinds = ["keepalived killed", "uplink cut", "internal link cut"];
    let mut gaps = Vec::new();
    for i in 0..trials {
        let kind = kinds[i % 3];
        let active = wait_for("an active node", Duration::from_secs(10), || {
            lab.holder(VIP)
        });
        let ns = lab.ns("app");
        let probe = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", PROBE, "4"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let t0 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        match kind {
            "keepalived killed" => {
                let pid = lab.keepalived_pid(&active).expect("keepalived pid");
                run(&["kill", "-9", &pid.to_string()]);
            }
            "uplink cut" => {
                lab.ip(&active, &["link", "set", "eth1", "down"]);
            }
            _ => {
                lab.ip(&active, &["link", "set", "eth0", "down"]);
            }
        }
        let out = probe.wait_with_output().unwrap();
        let samples: Vec<(f64, bool)> = probe_samples(&out.stdout)
            .into_iter()
            .filter(|(t, _)| *t >= t0)
            .collect();
        let gap = match samples.iter().find(|(_, ok)| !ok) {
            None => 0.0,
            Some((first_fail, _)) => samples
                .iter()
                .find(|(t, ok)| *ok && t > first_fail)
                .map_or(f64::INFINITY, |(t, _)| t - t0),
        };
        let now = lab.holder(VIP).unwrap_or_default();
        println!(
            "trial {:2} {kind:18} {active}->{now} gap_ms {:.0}",
            i + 1,
            gap * 1000.0
        );
        gaps.push(gap * 1000.0);
        lab.ip(&active, &["link", "set", "eth1", "up"]);
        lab.ip(&active, &["link", "set", "eth0", "up"]);
        std::thread::sleep(Duration::from_millis(200));
        lab.routes(&active);
        std::thread::sleep(Duration::from_millis(2500));
    }
    gaps.sort_by(f64::total_cmp);
    let median = if gaps.len() % 2 == 1 {
        gaps[gaps.len() / 2]
    } else {
        (gaps[gaps.len() / 2 - 1] + gaps[gaps.len() / 2]) / 2.0
    };
    let p95 = gaps[(gaps.len() * 95).div_ceil(100).saturating_sub(1)];
    println!(
        "failover over {} trials: median {median:.0} ms, p95 {p95:.0} ms, max {:.0} ms",
        gaps.len(),
        gaps.last().copied().unwrap_or(0.0)
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn primary_ip_mode_sources_from_the_active_node_and_follows_it() {
    let _serial = serial();
    // Deckhouse's shape unchanged, the clients' next hop from the annotation.
    let gw = "apiVersion: network.deckhouse.io/v1alpha1
kind: EgressGateway
metadata:
  name: egress-gw
  annotations: {routerd.net/internal-ip: 10.0.0.254}
spec:
  nodeSelector:
    egress: \"\"
  sourceIP:
    mode: PrimaryIPFromEgressGatewayNodeInterface
    primaryIPFromEgressGatewayNodeInterface:
      interfaceName: eth1
---
apiVersion: network.deckhouse.io/v1alpha1
kind: EgressGatewayPolicy
metadata:
  name: egress-gw-policy
spec:
  destinationCIDRs:
    - 0.0.0.0/0
  egressGatewayName: egress-gw
  selectors:
    - podSelector:
        matchLabels:
          app: backend
";
    let mut lab = GwLab::build("p", env!("CARGO_BIN_EXE_routerd").into());
    lab.config(&config(gw));
    lab.start_server();
    for g in ["client", "a", "b", "c"] {
        lab.start(g);
    }
    let primary = |g: &str| {
        format!(
            "172.18.18.{}",
            11 + GATEWAYS.iter().position(|x| *x == g).unwrap()
        )
    };
    let active = wait_for("an active node", Duration::from_secs(30), || {
        lab.holder("10.0.0.254")
    });
    wait_for(
        "traffic from the active node's primary IP",
        Duration::from_secs(20),
        || lab.whoami().filter(|w| *w == primary(&active)),
    );
    let pid = lab.keepalived_pid(&active).expect("keepalived pid");
    run(&["kill", "-9", &pid.to_string()]);
    let next = wait_for("the role to move", Duration::from_secs(10), || {
        lab.holder("10.0.0.254").filter(|h| *h != active)
    });
    wait_for(
        "traffic from the new active node's primary IP",
        Duration::from_secs(10),
        || lab.whoami().filter(|w| *w == primary(&next)),
    );
    let st = api(&lab, &next, false, "/explain?gateway=egress-gw").expect("explain gateway");
    assert_eq!(st["status"]["connectionsKept"], false, "{st}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_gateway_demo_passes() {
    let _serial = serial();
    let out = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(["demo", "gateway"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo gateway failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "elect different active nodes",
        "sees the workload's new connections from 172.18.18.242",
        "the long-lived connection still answers",
        "traffic gap:",
    ] {
        assert!(stdout.contains(needle), "{needle}:\n{stdout}");
    }
}

/// Suitability through the gateway's own uplink check (the seed's "agent
/// ready", mapped to a host): when the active node's HealthCheck of the
/// upstream fails (its probes dropped in its own output path; the link
/// stays up and keepalived sees nothing wrong), routerd writes the
/// track file, the node steps down and policy traffic leaves through
/// another node. When the check passes again the node is suitable again
/// and, nopreempt, stays a standby.
#[test]
#[ignore = "needs root: network namespaces"]
fn a_failing_uplink_health_check_steps_the_active_node_down() {
    let _serial = serial();
    let mut lab = GwLab::build("h", env!("CARGO_BIN_EXE_routerd").into());
    let gateway = ONE_GATEWAY.replace(
        "  internal: {ip: 10.0.0.254}\n",
        "  internal: {ip: 10.0.0.254}\n  healthChecks: [uplink]\n",
    );
    assert_ne!(gateway, ONE_GATEWAY);
    lab.config(&config(&format!(
        "apiVersion: net.routerd.net/v1alpha1
kind: HealthCheck
metadata: {{name: uplink}}
spec: {{target: 172.18.18.1, protocol: tcp, port: 7000, interval: 200ms, timeout: 200ms, healthyThreshold: 2, unhealthyThreshold: 2}}
---
{gateway}"
    )));
    let first = bring_up(&mut lab);
    std::thread::sleep(Duration::from_secs(2));

    // The active node's probes to the upstream are dropped on their way
    // out; forwarded policy traffic is not (output hook only).
    let ns = lab.ns(&first);
    run(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "nft",
        "add table ip probecut; add chain ip probecut out { type filter hook output priority 0; }; add rule ip probecut out ip daddr 172.18.18.1 tcp dport 7000 drop",
    ]);
    let second = moved(&lab, &first);
    assert_ne!(second, first);
    let st = api(&lab, &first, false, "/explain?gateway=egress-gw").expect("explain gateway");
    assert_ne!(st["status"]["vrrpState"], "MASTER", "{st}");
    // The other members hear of it from its beacon.
    wait_for(
        "the new active node to see the old one as not ready",
        Duration::from_secs(5),
        || {
            api(&lab, &second, false, "/explain?gateway=egress-gw").filter(|s| {
                let ready = s["status"]["readyNodes"].to_string();
                ready.contains(&format!("gw-{second}")) && !ready.contains(&format!("gw-{first}"))
            })
        },
    );
    let text = st.to_string();
    assert!(
        text.contains("uplink") || text.contains("HealthCheck"),
        "the step-down names the failing check: {st}"
    );

    // The check passes again: the node is suitable (BACKUP, out of FAULT).
    // keepalived 2.2.7 usually keeps the role where it is (nopreempt), but
    // not always: leaving FAULT it may time out before it hears the
    // master and take the role (seen in about one run in six; ADR 0017).
    // What must hold is one active node, with policy traffic on the VIP.
    run(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "nft",
        "delete table ip probecut",
    ]);
    wait_for(
        "the old node to be suitable again",
        Duration::from_secs(10),
        || {
            api(&lab, &first, false, "/explain?gateway=egress-gw").filter(|s| {
                s["status"]["suitable"] == true
                    && matches!(s["status"]["vrrpState"].as_str(), Some("BACKUP" | "MASTER"))
            })
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let now = lab.holder(VIP).expect("an active node");
    wait_for(
        "policy traffic with the VIP",
        Duration::from_secs(10),
        || lab.whoami().filter(|w| w == VIP),
    );
    // Every member names the active node (the standbys from its adverts)
    // and, from the members' beacons, all three as ready.
    let all = serde_json::json!(["gw-a", "gw-b", "gw-c"]);
    for g in GATEWAYS {
        let st = wait_for(
            "the member to name the active node and every ready member",
            Duration::from_secs(5),
            || {
                api(&lab, g, false, "/explain?gateway=egress-gw").filter(|s| {
                    s["status"]["activeNodeName"] == format!("gw-{now}").as_str()
                        && s["status"]["readyNodes"] == all
                })
            },
        );
        let how = if *g == now { "self" } else { "advert" };
        assert_eq!(st["status"]["activeNodeSource"], how, "{st}");
    }
}
