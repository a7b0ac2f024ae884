//! Namespace tests: path pinning, ICMP, carrier loss and detection times
//! against real kernels paths. They need root (network namespaces), so they
//! are ignored by default and show as ignored; CI runs them as root with
//! `--include-ignored`.
//!
//! Every test builds its own namespaces with unique names, removes them
//! through Drop guards (also when an assertion fails), and sends traffic
//! only between them. The host's interfaces, routes and ruleset are never
//! touched: links are created directly inside the namespaces.
#![cfg(feature = "runtime")]
// Test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; a failed setup should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use routerd_health::runtime::{
    IcmpMode, Jitter, NetProber, NetlinkLinks, NetlinkRoutes, NoLinks, Options, RouteLookup,
    Scheduler, TokioClock, Update, probe_with_timeout,
};
use routerd_health::{
    Binding, CheckConfig, Derivation, FailureKind, Outcome, Phase, ProbeSpec, Protocol, Thresholds,
};
use tokio::sync::mpsc;

/// The server's address, reachable from the client over both links.
const TARGET: &str = "203.0.113.10";
const PORT: u16 = 7000;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Namespace tests run one at a time: they measure timings, and link
/// changes of one test delay another's carrier events (the kernel batches
/// link events host-wide).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh_out(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!(
            "rdh-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// Runs an nft script inside the namespace.
    fn nft(&self, script: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft: {script}");
    }

    fn exec_out(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        sh_out(&v)
    }

    /// Runs `f` on a thread inside the namespace with its own tokio runtime.
    /// Sockets (and the netlink link watcher) opened there belong to it.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.name);
        let h = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f())
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Client `c` with an uplink `pa0` (192.0.2.1) and a management link
/// `ma0` (198.18.0.1), both to server `s` (`pb0` 192.0.2.2, `mb0`
/// 198.18.0.2) which owns TARGET on its loopback. The client's main table
/// reaches TARGET over management; only table 100 (fwmark 0x10) uses the
/// uplink. So a probe that escaped its binding would still succeed: over
/// the wrong path. Counters in `s` tell which link each probe came in on.
struct Lab {
    c: Netns,
    s: Netns,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let c = Netns::new(&format!("{tag}c"));
        let s = Netns::new(&format!("{tag}s"));
        sh(&[
            "ip", "link", "add", "pa0", "netns", &c.name, "type", "veth", "peer", "name", "pb0",
            "netns", &s.name,
        ]);
        sh(&[
            "ip", "link", "add", "ma0", "netns", &c.name, "type", "veth", "peer", "name", "mb0",
            "netns", &s.name,
        ]);
        c.ip(&["addr", "add", "192.0.2.1/24", "dev", "pa0"]);
        c.ip(&["addr", "add", "198.18.0.1/24", "dev", "ma0"]);
        s.ip(&["addr", "add", "192.0.2.2/24", "dev", "pb0"]);
        s.ip(&["addr", "add", "198.18.0.2/24", "dev", "mb0"]);
        s.ip(&["addr", "add", &format!("{TARGET}/32"), "dev", "lo"]);
        for (ns, l) in [(&c, "pa0"), (&c, "ma0"), (&s, "pb0"), (&s, "mb0")] {
            ns.ip(&["link", "set", l, "up"]);
        }
        c.ip(&[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "198.18.0.2",
            "dev",
            "ma0",
        ]);
        c.ip(&[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "192.0.2.2",
            "dev",
            "pa0",
            "table",
            "100",
        ]);
        c.ip(&[
            "rule", "add", "fwmark", "0x10", "lookup", "100", "pref", "1000",
        ]);
        s.nft(&format!(
            "table inet rdh {{\n counter uplink {{ }}\n counter mgmt {{ }}\n chain input {{ type filter hook input priority 0; }}\n}}\n{}",
            count_rules()
        ));
        Lab { c, s }
    }

    /// Packets counted on the server's input per link: (uplink, mgmt).
    fn counters(&self) -> (u64, u64) {
        let get = |name: &str| -> u64 {
            let out = self
                .s
                .exec_out(&["nft", "list", "counter", "inet", "rdh", name]);
            out.split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("counter {name}: {out}"))
        };
        (get("uplink"), get("mgmt"))
    }

    /// Starts a TCP listener on TARGET:PORT in the server namespace; it
    /// lives until the namespace is deleted.
    fn serve_tcp(&self) {
        let path = format!("/run/netns/{}", self.s.name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let l = std::net::TcpListener::bind((TARGET, PORT)).unwrap();
            tx.send(()).unwrap();
            for s in l.incoming() {
                drop(s);
            }
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }

    fn drop_uplink_input(&self, on: bool) {
        if on {
            self.s.nft("add rule inet rdh input iifname pb0 drop\n");
        } else {
            self.s
                .nft(&format!("flush chain inet rdh input\n{}", count_rules()));
        }
    }
}

/// Counting rules for the server's input chain. Connection attempts (TCP
/// SYN) and echo requests only: a late RST or FIN from an earlier
/// connection's teardown is not a probe taking a path.
fn count_rules() -> String {
    let mut r = String::new();
    for (dev, counter) in [("pb0", "uplink"), ("mb0", "mgmt")] {
        r.push_str(&format!(
            "add rule inet rdh input iifname {dev} ip daddr {TARGET} tcp flags & (syn | ack) == syn counter name {counter}\n"
        ));
        r.push_str(&format!(
            "add rule inet rdh input iifname {dev} ip daddr {TARGET} icmp type echo-request counter name {counter}\n"
        ));
    }
    r
}

fn target() -> IpAddr {
    TARGET.parse().unwrap()
}

fn uplink() -> Binding {
    Binding {
        mark: Some(0x10),
        device: Some("pa0".into()),
        ..Binding::default()
    }
}

fn tcp_spec(binding: Binding, timeout: Duration) -> ProbeSpec {
    ProbeSpec::new(target(), Protocol::Tcp, PORT, timeout).with_binding(binding)
}

#[test]
#[ignore = "needs root: network namespaces"]
fn pinned_probes_never_leave_through_another_path() {
    let _serial = serial();
    let lab = Lab::new("pin");
    lab.serve_tcp();

    // Unpinned, the main table takes the management link and succeeds:
    // the wrong path works, which is exactly what must not hide a dead uplink.
    let r = lab.c.run(|| {
        Box::pin(async {
            probe_with_timeout(
                &NetProber::new(),
                &tcp_spec(Binding::default(), Duration::from_secs(1)),
            )
            .await
        })
    });
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    // Let the unpinned connection's tail (the server's FIN, our RST) pass
    // before taking the baseline.
    std::thread::sleep(Duration::from_millis(300));
    let (up0, mg0) = lab.counters();
    assert!(
        mg0 > 0 && up0 == 0,
        "unpinned went via management: {up0}/{mg0}"
    );

    // Pinned by mark and device: the uplink only.
    let reports = lab.c.run(|| {
        Box::pin(async {
            let p = NetProber::new();
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(probe_with_timeout(&p, &tcp_spec(uplink(), Duration::from_secs(1))).await);
            }
            v
        })
    });
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Passed),
        "{reports:?}"
    );
    assert_eq!(
        reports[0].evidence.source_address.as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(reports[0].evidence.egress_interface.as_deref(), Some("pa0"));
    let (up1, mg1) = lab.counters();
    assert!(up1 >= 5, "pinned probes arrived on the uplink: {up1}");
    assert_eq!(mg1, mg0, "no pinned packet used the management link");

    // Uplink silently dead: the pinned probe fails instead of escaping.
    lab.drop_uplink_input(true);
    let r = lab.c.run(|| {
        Box::pin(async {
            probe_with_timeout(
                &NetProber::new(),
                &tcp_spec(uplink(), Duration::from_millis(300)),
            )
            .await
        })
    });
    assert_eq!(r.outcome, Outcome::Timeout, "{}", r.message);
    lab.drop_uplink_input(false);
    let (_, mg2) = lab.counters();
    assert_eq!(mg2, mg0, "the failing probe did not escape over management");

    // Device without the mark: the main table's route leaves by ma0, which
    // the bound device forbids. The kernel then treats the target as on-link
    // on pa0 (ARP on the uplink), so the probe either uses the uplink or
    // fails; it never takes the management link.
    let r = lab.c.run(|| {
        Box::pin(async {
            let b = Binding {
                device: Some("pa0".into()),
                ..Binding::default()
            };
            probe_with_timeout(&NetProber::new(), &tcp_spec(b, Duration::from_millis(300))).await
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let (up3, mg3) = lab.counters();
    if r.outcome == Outcome::Passed {
        assert!(
            up3 > up1,
            "a passing device-bound probe came in on the uplink"
        );
    }
    assert_eq!(mg3, mg0, "device-bound probe never used management");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn route_evidence_follows_the_mark() {
    let _serial = serial();
    let lab = Arc::new(Lab::new("route"));
    lab.serve_tcp();
    let (marked, mark_only, unmarked_lookup, unmarked, no_such_dev) = lab.c.run(|| {
        Box::pin(async {
            let p = NetProber::new();
            let marked = probe_with_timeout(&p, &tcp_spec(uplink(), Duration::from_secs(1))).await;
            let mark_only = Binding {
                mark: Some(0x10),
                ..Binding::default()
            };
            let mark_only =
                probe_with_timeout(&p, &tcp_spec(mark_only, Duration::from_secs(1))).await;
            let unmarked_lookup = NetlinkRoutes::new()
                .lookup(target(), &Binding::default())
                .await
                .unwrap();
            let unmarked =
                probe_with_timeout(&p, &tcp_spec(Binding::default(), Duration::from_secs(1))).await;
            // A device that does not exist: the probe fails, the lookup
            // fails too and only leaves the route fields empty.
            let gone = Binding {
                device: Some("nosuch0".into()),
                ..uplink()
            };
            let no_such_dev = probe_with_timeout(&p, &tcp_spec(gone, Duration::from_secs(1))).await;
            (marked, mark_only, unmarked_lookup, unmarked, no_such_dev)
        })
    });
    // Marked (and bound): table 100's next hop and device.
    assert_eq!(marked.outcome, Outcome::Passed, "{}", marked.message);
    assert_eq!(marked.evidence.next_hop.as_deref(), Some("192.0.2.2"));
    assert_eq!(marked.evidence.out_interface.as_deref(), Some("pa0"));
    assert_eq!(marked.evidence.route_source.as_deref(), Some("192.0.2.1"));
    // The mark alone selects table 100 too.
    assert_eq!(mark_only.outcome, Outcome::Passed, "{}", mark_only.message);
    assert_eq!(mark_only.evidence.next_hop.as_deref(), Some("192.0.2.2"));
    assert_eq!(mark_only.evidence.out_interface.as_deref(), Some("pa0"));
    // Without the mark the same target resolves through the main table.
    assert_eq!(
        unmarked_lookup.next_hop,
        Some("198.18.0.2".parse::<IpAddr>().unwrap())
    );
    assert_eq!(unmarked_lookup.out_interface.as_deref(), Some("ma0"));
    assert_eq!(
        unmarked_lookup.source,
        Some("198.18.0.1".parse::<IpAddr>().unwrap())
    );
    assert_eq!(unmarked.evidence.next_hop.as_deref(), Some("198.18.0.2"));
    assert_eq!(unmarked.evidence.out_interface.as_deref(), Some("ma0"));
    assert_ne!(no_such_dev.outcome, Outcome::Passed);
    assert_eq!(no_such_dev.evidence.next_hop, None);
    assert_eq!(no_such_dev.evidence.out_interface, None);
    assert_eq!(no_such_dev.evidence.route_source, None);

    // Through the scheduler: a timed-out probe still carries the route, and
    // the status and the event show it.
    lab.drop_uplink_input(true);
    let (update, status) = lab.c.run(|| {
        Box::pin(async {
            let mut c = fast_check("wan", uplink());
            c.thresholds.unhealthy = 1;
            let (h, mut rx) = Scheduler::spawn(
                Arc::new(NetProber::new()),
                Arc::new(TokioClock::system()),
                NoLinks,
                vec![c],
                Options {
                    jitter: Jitter::none(),
                    ..Options::default()
                },
            );
            let u = wait_phase(&mut rx, Phase::Unhealthy, Duration::from_secs(5))
                .await
                .expect("unhealthy");
            let snap = h.snapshot().await;
            h.shutdown().await;
            (u, snap)
        })
    });
    lab.drop_uplink_input(false);
    assert_eq!(update.report.outcome, Outcome::Timeout);
    let ev = &update.event.as_ref().unwrap().attributes;
    assert_eq!(ev["network.nexthop.address"], "192.0.2.2");
    assert_eq!(ev["network.out.interface"], "pa0");
    assert_eq!(ev["network.route.source"], "192.0.2.1");
    let st = &status[0].1;
    assert_eq!(st["lastEvidence"]["nextHop"], "192.0.2.2");
    assert_eq!(st["lastEvidence"]["outInterface"], "pa0");
    assert_eq!(st["lastEvidence"]["routeSource"], "192.0.2.1");
    assert_eq!(st["lastEvidence"]["failureKind"], "timeout");
    assert_eq!(st["history"][0]["evidence"]["nextHop"], "192.0.2.2");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn icmp_pinned_raw_then_datagram() {
    let _serial = serial();
    let lab = Lab::new("icmp");
    // A fresh namespace's ping_group_range ("1 0") forbids datagram ICMP
    // sockets even for root, so the prober falls back to raw.
    let (r, mode) = lab.c.run(|| {
        Box::pin(async {
            let p = NetProber::new();
            let s = ProbeSpec::new(target(), Protocol::Icmp, 0, Duration::from_secs(1))
                .with_binding(uplink());
            let r = probe_with_timeout(&p, &s).await;
            (r, p.icmp_mode())
        })
    });
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(mode, Some(IcmpMode::Raw));
    let (up, mg) = lab.counters();
    assert!(up >= 1 && mg == 0, "echo took the uplink: {up}/{mg}");

    lab.c
        .exec(&["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
    let r = lab.c.run(|| {
        Box::pin(async {
            let p = NetProber::with_icmp_mode(IcmpMode::Datagram);
            let s = ProbeSpec::new(target(), Protocol::Icmp, 0, Duration::from_secs(1))
                .with_binding(uplink());
            probe_with_timeout(&p, &s).await
        })
    });
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert!(r.message.contains("datagram"), "{}", r.message);
    // Dead uplink: no echo over management either.
    lab.drop_uplink_input(true);
    let r = lab.c.run(|| {
        Box::pin(async {
            let s = ProbeSpec::new(target(), Protocol::Icmp, 0, Duration::from_millis(300))
                .with_binding(uplink());
            probe_with_timeout(&NetProber::new(), &s).await
        })
    });
    assert_eq!(r.outcome, Outcome::Timeout, "{}", r.message);
}

fn fast_check(name: &str, binding: Binding) -> CheckConfig {
    CheckConfig {
        name: name.into(),
        role: "next-hop".into(),
        enabled: true,
        probe: tcp_spec(binding, Duration::from_millis(100)),
        interval: Duration::from_millis(100),
        failing_interval: Duration::from_millis(100),
        thresholds: Thresholds {
            healthy: 1,
            unhealthy: 3,
        },
        fail_closed: None,
        derivation: Derivation::default(),
    }
}

async fn wait_phase(
    rx: &mut mpsc::Receiver<Update>,
    phase: Phase,
    limit: Duration,
) -> Option<Update> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(u)) if u.transition.to == phase => {
                if std::env::var_os("RDH_DEBUG").is_some() {
                    eprintln!(
                        "{:?} {:?} {}",
                        std::time::SystemTime::now(),
                        u.transition,
                        u.report.message
                    );
                }
                return Some(u);
            }
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root: network namespaces"]
fn dead_path_detected_within_budget() {
    let _serial = serial();
    // interval 100 ms, timeout 100 ms, fall 3; silent drop on the uplink.
    let lab = Arc::new(Lab::new("dead"));
    lab.serve_tcp();
    let lab2 = lab.clone();
    let mut times = lab.c.run(move || {
        Box::pin(async move {
            let opts = Options {
                jitter: Jitter::seeded(1),
                ..Options::default()
            };
            let (h, mut rx) = Scheduler::spawn(
                Arc::new(NetProber::new()),
                Arc::new(TokioClock::system()),
                NoLinks,
                vec![fast_check("wan", uplink())],
                opts,
            );
            let mut times = Vec::new();
            for _ in 0..7 {
                assert!(
                    wait_phase(&mut rx, Phase::Healthy, Duration::from_secs(5))
                        .await
                        .is_some()
                );
                // Let a couple of passes land so the phase of the drop
                // within the interval varies.
                tokio::time::sleep(Duration::from_millis(130)).await;
                let t0 = Instant::now();
                lab2.drop_uplink_input(true);
                let u = wait_phase(&mut rx, Phase::Unhealthy, Duration::from_secs(5))
                    .await
                    .expect("detected");
                times.push(t0.elapsed().as_millis());
                assert_ne!(u.report.outcome, Outcome::Passed);
                lab2.drop_uplink_input(false);
            }
            let stats = h.stats().await;
            h.shutdown().await;
            eprintln!("dead path stats: {stats:?}");
            times
        })
    });
    let m = median(&mut times);
    eprintln!(
        "dead path detection ms (interval 100ms, timeout 100ms, fall 3): median {m}, all {times:?}"
    );
    assert!(m <= 450, "median {m} ms over budget: {times:?}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn carrier_loss_fails_checks_at_once() {
    let _serial = serial();
    let lab = Arc::new(Lab::new("carr"));
    lab.serve_tcp();
    let lab2 = lab.clone();
    let mut times = lab.c.run(move || {
        Box::pin(async move {
            let links = NetlinkLinks::open().unwrap();
            // A slow interval: only the carrier can explain a fast failure.
            let mut c = fast_check("wan", uplink());
            c.interval = Duration::from_secs(30);
            c.failing_interval = Duration::from_secs(30);
            c.probe.timeout = Duration::from_secs(1);
            let (h, mut rx) = Scheduler::spawn(
                Arc::new(NetProber::new()),
                Arc::new(TokioClock::system()),
                links,
                vec![c],
                Options {
                    jitter: Jitter::none(),
                    ..Options::default()
                },
            );
            let mut times = Vec::new();
            for _ in 0..7 {
                assert!(
                    wait_phase(&mut rx, Phase::Healthy, Duration::from_secs(5))
                        .await
                        .is_some()
                );
                // The kernel's linkwatch batches non-urgent link events (a
                // physical NIC's carrier loss is one) to about one run a
                // second, host-wide. Measure the ordinary case: links that
                // have been quiet for a while (docs/health.md).
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let t0 = Instant::now();
                if std::env::var_os("RDH_DEBUG").is_some() {
                    eprintln!("{:?} down", std::time::SystemTime::now());
                }
                lab2.s.ip(&["link", "set", "pb0", "down"]);
                let u = wait_phase(&mut rx, Phase::Unhealthy, Duration::from_secs(5))
                    .await
                    .expect("carrier loss seen");
                times.push(t0.elapsed().as_micros());
                assert_eq!(
                    u.report.evidence.failure_kind,
                    Some(FailureKind::CarrierLost)
                );
                assert_eq!(
                    u.event.as_ref().unwrap().type_,
                    "routerd.healthcheck.wan.failed"
                );
                // Carrier back: probed at once, not after 30 s.
                lab2.s.ip(&["link", "set", "pb0", "up"]);
            }
            h.shutdown().await;
            times
        })
    });
    let min = *times.iter().min().unwrap();
    let m = median(&mut times);
    eprintln!(
        "carrier loss to Unhealthy (µs, includes spawning `ip`): median {m}, min {min}, all {times:?}"
    );
    // Our part (netlink event to failed check) is well under a millisecond;
    // the kernel's host-wide linkwatch batching adds up to a second when
    // other links on the host changed within the last second. So: fast when
    // the kernel is prompt, and never worse than the batching bound.
    assert!(min <= 20_000, "fastest {min} µs: {times:?}");
    assert!(times.iter().all(|t| *t <= 1_500_000), "{times:?}");
}

/// (utime, stime) of the calling thread, in clock ticks.
fn thread_cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap(), f[12].parse::<u64>().unwrap())
}

fn clk_tck() -> f64 {
    sh_out(&["getconf", "CLK_TCK"])
        .trim()
        .parse()
        .unwrap_or(100.0)
}

struct Load {
    user: f64,
    sys: f64,
    stats: routerd_health::runtime::Stats,
    failures: usize,
}

/// 1,000 distinct checks (no sharing) of `protocol` at a 1 s interval against
/// the namespace's own loopback (127.0.x.y, all local), measured for 10 s
/// after 2 s of warm-up on the scheduler's thread (a current-thread runtime
/// runs the scheduler and every probe).
fn load(ns: &Netns, protocol: Protocol) -> Load {
    ns.run(move || {
        Box::pin(async move {
            let checks: Vec<CheckConfig> = (0..1000u32)
                .map(|i| {
                    let t: IpAddr = format!("127.0.{}.{}", i / 250, i % 250 + 1)
                        .parse()
                        .unwrap();
                    let port = if protocol == Protocol::Icmp { 0 } else { PORT };
                    CheckConfig {
                        name: format!("c{i}"),
                        role: "next-hop".into(),
                        enabled: true,
                        probe: ProbeSpec::new(t, protocol, port, Duration::from_millis(500)),
                        interval: Duration::from_secs(1),
                        failing_interval: Duration::from_secs(1),
                        thresholds: Thresholds {
                            healthy: 1,
                            unhealthy: 3,
                        },
                        fail_closed: None,
                        derivation: Derivation::default(),
                    }
                })
                .collect();
            let (h, mut rx) = Scheduler::spawn(
                Arc::new(NetProber::new()),
                Arc::new(TokioClock::system()),
                NoLinks,
                checks,
                Options::default(),
            );
            let failures = Arc::new(AtomicUsize::new(0));
            let f2 = failures.clone();
            tokio::spawn(async move {
                while let Some(u) = rx.recv().await {
                    if !u.report.outcome.is_ok() {
                        f2.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            tokio::time::sleep(Duration::from_secs(2)).await;
            let c0 = thread_cpu_ticks();
            let w0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(10)).await;
            let c1 = thread_cpu_ticks();
            let secs = w0.elapsed().as_secs_f64() * clk_tck();
            let stats = h.stats().await;
            h.shutdown().await;
            Load {
                user: (c1.0 - c0.0) as f64 / secs,
                sys: (c1.1 - c0.1) as f64 / secs,
                stats,
                failures: failures.load(Ordering::Relaxed),
            }
        })
    })
}

fn serve_any(ns: &Netns) {
    let path = format!("/run/netns/{}", ns.name);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind(("0.0.0.0", PORT)).unwrap();
        tx.send(()).unwrap();
        for s in l.incoming() {
            drop(s);
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
}

/// The kernel's own cost of the same TCP traffic: 1,000 blocking
/// connect-and-reset a second from a plain thread, no scheduler. On loopback
/// both endpoints' TCP work runs in the sender's softirq and is charged to
/// it (no IRQ time accounting), so this is the floor any TCP prober pays here.
fn kernel_floor(ns: &Netns) -> f64 {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let c0 = thread_cpu_ticks();
        let w0 = Instant::now();
        for sec in 0..5u32 {
            for i in 0..1000u32 {
                let t = format!("127.0.{}.{}:{PORT}", i / 250, i % 250 + 1);
                let s = std::net::TcpStream::connect(t).unwrap();
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
            let next = w0 + Duration::from_secs(u64::from(sec) + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let c1 = thread_cpu_ticks();
        ((c1.0 + c1.1) - (c0.0 + c0.1)) as f64 / clk_tck() / w0.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
}

fn report(what: &str, l: &Load) {
    eprintln!(
        "1000 {what} checks @1s: scheduler thread CPU {:.2}% of one core (user {:.2}%, system {:.2}%); stats {:?}; failed results {}",
        (l.user + l.sys) * 100.0,
        l.user * 100.0,
        l.sys * 100.0,
        l.stats,
        l.failures
    );
    assert_eq!(l.stats.missed_ticks, 0);
    assert_eq!(l.stats.skipped_ticks, 0);
    assert_eq!(l.failures, 0);
    assert!(l.stats.probes_started >= 11_000, "{:?}", l.stats);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn thousand_tcp_checks_at_one_second() {
    let _serial = serial();
    // Run with --release for the numbers; debug builds only check that no
    // tick is missed.
    let ns = Netns::new("ltcp");
    serve_any(&ns);
    let l = load(&ns, Protocol::Tcp);
    report("tcp", &l);
    let floor = kernel_floor(&ns);
    eprintln!(
        "kernel floor, 1000 plain TCP connect+reset/s on loopback: {:.2}% of one core",
        floor * 100.0
    );
    if !cfg!(debug_assertions) {
        // Measured 4.6-4.9 % in total. On loopback the listener's kernel
        // work is charged to the prober's thread too (see
        // docs/performance.md), so the total gets a point of slack; the
        // scheduler's own work (user time) is held to the budget.
        assert!(l.user <= 0.05, "user {:.2}%", l.user * 100.0);
        assert!(l.user + l.sys <= 0.06, "{:.2}%", (l.user + l.sys) * 100.0);
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn thousand_icmp_checks_at_one_second_fit_the_cpu_budget() {
    let _serial = serial();
    let ns = Netns::new("licmp");
    ns.exec(&["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
    let l = load(&ns, Protocol::Icmp);
    report("icmp", &l);
    if !cfg!(debug_assertions) {
        assert!(l.user + l.sys <= 0.05, "{:.2}%", (l.user + l.sys) * 100.0);
    }
}
