//! `routerd demo`: the README's main command. As root it builds a lab of
//! network namespaces (a router with two uplinks to two upstreams that host
//! the probe target, and a LAN client), runs `routerd serve` inside the
//! router with an embedded configuration, sends client traffic, cuts the
//! primary uplink, shows the switch and its measured time, restores the
//! uplink, shows the failback after the hold-down, prints a timeline and
//! removes every namespace it made (also on Ctrl-C).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use routerd_lab::{ChildOutput, Lab, Node, Timeline, Uplink, wait_until};

/// The embedded configuration: a priority-mode policy over two uplinks with
/// pinned health checks, the main default route following the selection,
/// and LAN masquerade. New LAN connections are marked with the selected
/// candidate's mark and the mark is kept in conntrack, so established flows
/// keep their uplink across a switch while new flows take the new one.
pub(crate) const DEMO_CONFIG: &str = include_str!("../../../examples/demo/config.yaml");

/// Arguments of `routerd demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The scenario: `failover` (the default: two uplinks, a failover and a
    /// failback), `egress-router` (redirects with health-checked
    /// destinations), `gateway` (EgressGateway on keepalived and
    /// conntrackd), `cloudedge` (a HybridRoute over a vxlan overlay, its
    /// health check and a plugin part) or `mobility` (a claimed /32
    /// captured on-prem for a VM in the cloud, fenced by the overlay's
    /// health, then moved with the VM).
    #[arg(value_parser = ["failover", "egress-router", "gateway", "cloudedge", "mobility"])]
    scenario: Option<String>,
    /// Keep the daemon's log on standard error.
    #[arg(long)]
    verbose: bool,
    /// Fail (exit 1) when a switch takes longer than this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    max_switch_ms: u64,
    /// Probe every 100 ms with a 100 ms timeout and fall 3 (instead of the
    /// config's 200 ms / 200 ms / fall 2), the detection budget.
    #[arg(long)]
    fast_probes: bool,
    /// How the primary fails: `carrier` (link down) or `drop` (silent loss).
    #[arg(long, default_value = "carrier", value_parser = ["carrier", "drop"])]
    fault: String,
}

pub(crate) fn run(args: Args) -> Result<i32> {
    if args.scenario.as_deref() == Some("egress-router") {
        return crate::demo_egress::run_demo(args.verbose);
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("routerd demo builds network namespaces and needs root (try: sudo routerd demo)");
    }
    if args.scenario.as_deref() == Some("gateway") {
        return crate::demo_gateway::run(args.verbose);
    }
    if args.scenario.as_deref() == Some("cloudedge") {
        return crate::demo_cloudedge::run(args.verbose);
    }
    if args.scenario.as_deref() == Some("mobility") {
        return crate::demo_mobility::run_demo(args.verbose);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let _ = routerd_lab::cleanup_stale("rdemo");
    let lab = Lab::build("rdemo").context("build the namespace lab")?;
    lab.install_ctrlc_cleanup()
        .context("install Ctrl-C cleanup")?;
    let result = demo(&lab, &args);
    if let Err(e) = lab.teardown() {
        eprintln!("routerd demo: cleanup: {e}");
    }
    result
}

fn demo(lab: &Lab, args: &Args) -> Result<i32> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    let text = if args.fast_probes {
        DEMO_CONFIG
            .replace("interval: 200ms", "interval: 100ms")
            .replace("timeout: 200ms", "timeout: 100ms")
            .replace("unhealthyThreshold: 2", "unhealthyThreshold: 3")
    } else {
        DEMO_CONFIG.to_string()
    };
    std::fs::write(&config, text)?;
    let exe = std::env::current_exe()?;
    let log = dir.path().join("routerd.log");
    let mut tl = Timeline::new();
    println!(
        "lab: router {} with uplinks wan1 (primary) and wan2 (backup), client {}",
        lab.ns(Node::Router),
        lab.ns(Node::Client)
    );
    let output = if args.verbose {
        ChildOutput::Inherit
    } else {
        ChildOutput::File(log.clone())
    };
    let daemon = lab.spawn(
        Node::Router,
        &exe,
        [
            "serve".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            dir.path().join("state").as_os_str(),
            "--socket".as_ref(),
            dir.path().join("routerd.sock").as_os_str(),
            "--resync".as_ref(),
            "5s".as_ref(),
        ],
        output,
    )?;
    tl.record("routerd serve started in the router namespace");

    let upstream_of_client = |timeout| lab.client_flow(timeout).ok().map(|r| r.upstream);
    let converged = wait_until(
        || upstream_of_client(Duration::from_millis(300)) == Some(Node::Up1),
        Duration::from_secs(20),
        Duration::from_millis(50),
    );
    if converged.is_err() {
        dump_log(&log);
        bail!("the router did not converge on the primary uplink within 20 s");
    }
    tl.record("converged: client traffic leaves through wan1 (primary)");

    let mut long = lab
        .open_long_flow(Duration::from_secs(2))
        .context("open a long-lived flow")?;
    tl.record("long-lived flow established through wan1");
    let traffic =
        lab.start_client_traffic(Duration::from_millis(20), Duration::from_millis(150))?;
    std::thread::sleep(Duration::from_millis(500));

    let cut = Instant::now();
    match args.fault.as_str() {
        "drop" => lab.drop_silently(Uplink::Wan1)?,
        _ => lab.cut_carrier(Uplink::Wan1)?,
    }
    tl.record_at(cut, format!("primary uplink fails ({})", args.fault));
    // The kernel's view: the default route leaves wan1. Polled with one
    // short `ip route` per iteration, so the resolution is a few ms.
    let route_switched = wait_until(
        || {
            lab.exec(Node::Router, "ip", ["route", "show", "default"])
                .is_ok_and(|out| out.contains("dev wan2"))
        },
        Duration::from_secs(15),
        Duration::from_millis(1),
    );
    let route_ms = route_switched.map(|d| d.as_millis()).ok();
    if let Some(ms) = route_ms {
        let at = cut + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        tl.record_at(
            at,
            format!("kernel default route moved to wan2 ({ms} ms after the failure)"),
        );
    }
    let switched = wait_until(
        || traffic.first_on(Node::Up2, cut).is_some(),
        Duration::from_secs(15),
        Duration::from_millis(10),
    );
    let Ok(_) = switched else {
        dump_log(&log);
        bail!("traffic did not move to the backup uplink within 15 s");
    };
    let first = traffic.first_on(Node::Up2, cut).unwrap_or(cut);
    let switch_ms = first.duration_since(cut).as_millis();
    tl.record_at(
        first,
        format!("first new client flow through wan2 after {switch_ms} ms (flows open one at a time, 150 ms timeout)"),
    );
    let switch_ms = route_ms.unwrap_or(switch_ms);

    // A flow opened on the backup must keep its path (and its conntrack
    // entry) when new flows fail back to the primary.
    let mut on_backup = lab
        .open_long_flow(Duration::from_secs(2))
        .context("open a flow on the backup")?;
    let backup_port = on_backup.local_addr().port();
    tl.record(format!(
        "long-lived flow established through {:?}",
        on_backup.report().upstream
    ));
    std::thread::sleep(Duration::from_secs(1));
    let restored = Instant::now();
    lab.restore(Uplink::Wan1)?;
    tl.record_at(restored, "primary uplink restored");
    let back = wait_until(
        || traffic.first_on(Node::Up1, restored).is_some(),
        Duration::from_secs(30),
        Duration::from_millis(20),
    );
    let failback_ms = match back {
        Ok(_) => {
            let t = traffic.first_on(Node::Up1, restored).unwrap_or(restored);
            let ms = t.duration_since(restored).as_millis();
            tl.record_at(
                t,
                format!(
                    "failback: new flows leave through wan1 again after {ms} ms (hold-down 3 s)"
                ),
            );
            Some(ms)
        }
        Err(_) => {
            tl.record("no failback within 30 s");
            None
        }
    };
    let backup_alive = on_backup.ping(Duration::from_secs(1)).is_ok();
    let tracked = lab
        .conntrack(Node::Router)
        .map(|entries| {
            entries
                .iter()
                .any(|e| e.original.sport == Some(backup_port))
        })
        .unwrap_or(false);
    tl.record(format!(
        "flow on the backup after failback: {}, conntrack entry {}",
        if backup_alive {
            "still working"
        } else {
            "BROKEN"
        },
        if tracked { "kept" } else { "GONE" }
    ));
    let samples = traffic.stop();
    let failed = samples.iter().filter(|s| s.result.is_err()).count();
    let long_alive = long.ping(Duration::from_secs(1)).is_ok();
    tl.record(format!(
        "{} client flows, {failed} failed; the established flow {}",
        samples.len(),
        if long_alive {
            "survived (its uplink stayed healthy after failback)"
        } else {
            "ended with its uplink"
        }
    ));
    if let Some(kib) = rss_kib(daemon.pid()) {
        tl.record(format!(
            "routerd resident memory: {:.1} MiB",
            kib as f64 / 1024.0
        ));
    }
    let _ = lab.stop_child(daemon, Duration::from_secs(5));
    tl.record("routerd stopped (kernel state left in place)");
    println!("\n{tl}");
    println!(
        "switch: {switch_ms} ms; failback: {}",
        failback_ms.map_or("none".to_string(), |m| format!("{m} ms"))
    );
    if switch_ms > u128::from(args.max_switch_ms)
        || failback_ms.is_none()
        || !backup_alive
        || !tracked
    {
        dump_log(&log);
        return Ok(1);
    }
    Ok(0)
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

/// `VmRSS` of a process, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
