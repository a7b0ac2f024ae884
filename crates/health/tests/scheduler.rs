//! The scheduler on tokio's paused clock with a scripted prober: sharing,
//! hung probes, jitter, failingInterval, concurrency, carrier and
//! fail-closed behaviour, all in virtual time.
#![cfg(feature = "runtime")]
// Test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; a failed setup should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use routerd_health::runtime::{
    Jitter, MemoryLinks, NoLinks, Options, Prober, Scheduler, TokioClock, Update,
};
use routerd_health::{
    Binding, CheckConfig, Derivation, Outcome, Phase, ProbeReport, ProbeSpec, Protocol, Thresholds,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the scripted prober does for a target.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Pass,
    Fail,
    /// Never answers (the scheduler's timeout must cut it).
    Hang,
    /// Answers `Pass` after a delay.
    SlowPass(Duration),
}

#[derive(Default)]
struct Scripted {
    behaviour: Mutex<HashMap<IpAddr, Behaviour>>,
    calls: Mutex<Vec<(IpAddr, Instant)>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl Scripted {
    fn set(&self, target: &str, b: Behaviour) {
        self.behaviour
            .lock()
            .unwrap()
            .insert(target.parse().unwrap(), b);
    }
    fn calls_to(&self, target: &str) -> Vec<Instant> {
        let t: IpAddr = target.parse().unwrap();
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| *a == t)
            .map(|(_, i)| *i)
            .collect()
    }
}

struct Running<'a>(&'a AtomicUsize);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Prober for Scripted {
    async fn probe(&self, spec: &ProbeSpec) -> ProbeReport {
        let target = spec.target.unwrap();
        self.calls.lock().unwrap().push((target, Instant::now()));
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _guard = Running(&self.running);
        let b = *self
            .behaviour
            .lock()
            .unwrap()
            .get(&target)
            .unwrap_or(&Behaviour::Pass);
        match b {
            Behaviour::Pass => ProbeReport::passed("ok"),
            Behaviour::Fail => ProbeReport::failed("refused"),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::SlowPass(d) => {
                tokio::time::sleep(d).await;
                ProbeReport::passed("slow ok")
            }
        }
    }
}

fn check(name: &str, target: &str, interval_ms: u64, timeout_ms: u64) -> CheckConfig {
    CheckConfig {
        name: name.into(),
        role: "next-hop".into(),
        enabled: true,
        probe: ProbeSpec::new(
            target.parse().unwrap(),
            Protocol::Tcp,
            443,
            Duration::from_millis(timeout_ms),
        ),
        interval: Duration::from_millis(interval_ms),
        failing_interval: Duration::from_millis(interval_ms),
        thresholds: Thresholds {
            healthy: 1,
            unhealthy: 3,
        },
        fail_closed: None,
        derivation: Derivation::default(),
    }
}

fn clock() -> Arc<TokioClock> {
    Arc::new(TokioClock::starting_at(
        Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap(),
    ))
}

fn opts() -> Options {
    Options {
        jitter: Jitter::none(),
        ..Options::default()
    }
}

#[tokio::test(start_paused = true)]
async fn ticks_due_close_together_share_one_wake_up() {
    let p = Arc::new(Scripted::default());
    // Two checks whose ticks are 3 ms apart run in one wake-up (5 ms window).
    let checks = vec![
        check("a", "192.0.2.1", 1000, 500),
        check("b", "192.0.2.2", 1003, 500),
    ];
    let (h, _rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, checks, opts());
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b: Vec<u128> = p
        .calls_to("192.0.2.2")
        .iter()
        .map(|c| (*c - start).as_millis())
        .collect();
    assert_eq!(
        b,
        vec![0, 1000],
        "b's tick at 1003 ms ran with a's at 1000 ms"
    );
    h.shutdown().await;
}

fn drain(rx: &mut mpsc::Receiver<Update>) -> Vec<Update> {
    let mut v = Vec::new();
    while let Ok(u) = rx.try_recv() {
        v.push(u);
    }
    v
}

#[tokio::test(start_paused = true)]
async fn identical_probes_run_once_and_feed_every_check() {
    let p = Arc::new(Scripted::default());
    let checks = vec![
        check("a", "192.0.2.1", 1000, 500),
        check("b", "192.0.2.1", 1000, 500),
        check("c", "192.0.2.2", 1000, 500),
    ];
    let (h, mut rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, checks, opts());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(p.calls_to("192.0.2.1").len(), 3, "ticks at 0, 1 s, 2 s");
    assert_eq!(p.calls_to("192.0.2.2").len(), 3);
    let ups = drain(&mut rx);
    let per = |n: &str| ups.iter().filter(|u| u.check == n).count();
    assert_eq!((per("a"), per("b"), per("c")), (3, 3, 3));
    let stats = h.stats().await;
    assert_eq!((stats.checks, stats.groups), (3, 2));
    assert_eq!(stats.probes_started, 6);
    // One event per check: the first pass (Unknown -> Healthy).
    assert_eq!(ups.iter().filter(|u| u.event.is_some()).count(), 3);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_never_delays_the_next_tick() {
    let p = Arc::new(Scripted::default());
    p.set("192.0.2.1", Behaviour::Hang);
    // Timeout (3 s) longer than the interval (1 s): probes overlap.
    let (h, mut rx) = Scheduler::spawn(
        p.clone(),
        clock(),
        NoLinks,
        vec![check("hc", "192.0.2.1", 1000, 3000)],
        opts(),
    );
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let calls = p.calls_to("192.0.2.1");
    let offsets: Vec<u128> = calls.iter().map(|c| (*c - start).as_millis()).collect();
    assert_eq!(offsets, vec![0, 1000, 2000, 3000, 4000, 5000]);
    // Timeouts of the probes started at 0, 1 s and 2 s have landed.
    let ups = drain(&mut rx);
    assert_eq!(ups.len(), 3);
    assert!(ups.iter().all(|u| u.report.outcome == Outcome::Timeout));
    assert_eq!(ups[2].transition.to, Phase::Unhealthy);
    assert!(p.max_running.load(Ordering::SeqCst) >= 3);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn older_results_never_overwrite_newer_ones() {
    let p = Arc::new(Scripted::default());
    // First probe answers after 2.5 s, the next ones fail at once: the slow
    // pass from the past must not mask the newer failures.
    p.set(
        "192.0.2.1",
        Behaviour::SlowPass(Duration::from_millis(2500)),
    );
    let (h, mut rx) = Scheduler::spawn(
        p.clone(),
        clock(),
        NoLinks,
        vec![check("hc", "192.0.2.1", 1000, 3000)],
        opts(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.set("192.0.2.1", Behaviour::Fail);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let ups = drain(&mut rx);
    assert!(
        ups.iter().all(|u| u.report.outcome == Outcome::Failed),
        "{ups:?}"
    );
    assert_eq!(h.stats().await.stale_results, 1);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_spreads_first_ticks_reproducibly() {
    async fn first_ticks(seed: u64) -> Vec<u128> {
        let p = Arc::new(Scripted::default());
        let checks: Vec<_> = (1..=50)
            .map(|i| check(&format!("c{i}"), &format!("198.51.100.{i}"), 1000, 500))
            .collect();
        let o = Options {
            jitter: Jitter::seeded(seed),
            // Observe the jitter itself, not the wake-up coalescing.
            coalesce: Duration::ZERO,
            ..Options::default()
        };
        let start = Instant::now();
        let (h, _rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, checks, o);
        tokio::time::sleep(Duration::from_millis(999)).await;
        h.shutdown().await;
        let mut v: Vec<u128> = (1..=50)
            .map(|i| {
                let c = p.calls_to(&format!("198.51.100.{i}"));
                (c[0] - start).as_millis()
            })
            .collect();
        v.sort_unstable();
        v
    }
    let a = first_ticks(7).await;
    let b = first_ticks(7).await;
    assert_eq!(a, b, "same seed, same schedule");
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert!(distinct.len() > 40, "ticks spread over the interval: {a:?}");
    assert!(*a.last().unwrap() > 500 && *a.first().unwrap() < 500);
    assert_ne!(a, first_ticks(8).await);
}

#[tokio::test(start_paused = true)]
async fn failing_interval_confirms_a_failure_sooner() {
    let p = Arc::new(Scripted::default());
    p.set("192.0.2.1", Behaviour::Fail);
    let mut c = check("hc", "192.0.2.1", 10_000, 500);
    c.failing_interval = Duration::from_millis(1000);
    let (h, mut rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, vec![c], opts());
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let offsets: Vec<u128> = p
        .calls_to("192.0.2.1")
        .iter()
        .map(|c| (*c - start).as_millis())
        .collect();
    assert_eq!(offsets, vec![0, 1000, 2000]);
    let ups = drain(&mut rx);
    assert_eq!(ups.last().unwrap().transition.to, Phase::Unhealthy);
    // Unhealthy is not Failing: back to the long interval, counted from
    // the last tick (2 s), so the next probe is at 12 s.
    tokio::time::sleep(Duration::from_millis(9000)).await;
    assert_eq!(p.calls_to("192.0.2.1").len(), 3);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let last = *p.calls_to("192.0.2.1").last().unwrap();
    assert_eq!((last - start).as_millis(), 12_000);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_overflow_is_counted() {
    let p = Arc::new(Scripted::default());
    let mut checks = Vec::new();
    for i in 1..=5 {
        let t = format!("198.51.100.{i}");
        p.set(&t, Behaviour::Hang);
        checks.push(check(&format!("c{i}"), &t, 1000, 10_000));
    }
    let o = Options {
        max_in_flight: 2,
        ..opts()
    };
    let (h, _rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, checks, o);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = h.stats().await;
    assert_eq!(p.max_running.load(Ordering::SeqCst), 2);
    assert_eq!(stats.probes_started, 2);
    assert_eq!(stats.skipped_ticks, 8, "3 at t=0, 5 at t=1s");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn carrier_loss_fails_pinned_checks_at_once() {
    let p = Arc::new(Scripted::default());
    // Slow probes so one is always in flight when the carrier goes.
    p.set("192.0.2.1", Behaviour::SlowPass(Duration::from_millis(300)));
    let mut pinned = check("wan", "192.0.2.1", 1000, 800);
    pinned.probe.binding = Binding {
        device: Some("wan0".into()),
        mark: Some(0x10),
        ..Binding::default()
    };
    let other = check("lan", "192.0.2.9", 1000, 800);
    let (links, tx) = MemoryLinks::new();
    let (h, mut rx) = Scheduler::spawn(p.clone(), clock(), links, vec![pinned, other], opts());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ups = drain(&mut rx);
    assert_eq!(ups.iter().filter(|u| u.check == "wan").count(), 1);
    // t=1.1 s: the probe started at 1 s is in flight. Carrier goes.
    let lost_at = Instant::now();
    assert!(tx.set("wan0", false));
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    let ups = drain(&mut rx);
    assert_eq!(ups.len(), 1, "only the pinned check: {ups:?}");
    let u = &ups[0];
    assert_eq!(u.check, "wan");
    assert_eq!(u.transition.to, Phase::Unhealthy);
    assert_eq!(Instant::now(), lost_at, "no virtual time passed");
    let e = u.event.as_ref().unwrap();
    assert_eq!(e.type_, "routerd.healthcheck.wan.failed");
    assert_eq!(
        e.attributes["routerd.healthcheck.failureKind"],
        "carrier_lost"
    );
    // The in-flight pass from before the loss is discarded; ticks while
    // down fail without probing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ups = drain(&mut rx);
    let wan: Vec<_> = ups.iter().filter(|u| u.check == "wan").collect();
    assert!(
        wan.iter().all(|u| u.report.outcome == Outcome::Failed),
        "{wan:?}"
    );
    assert!(wan.iter().all(|u| u.event.is_none()), "no churn while down");
    assert_eq!(p.calls_to("192.0.2.1").len(), 2, "no probes while down");
    // Repeated "down" announcements change nothing.
    tx.set("wan0", false);
    // Carrier back: probe at once.
    let back = Instant::now();
    tx.set("wan0", true);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let calls = p.calls_to("192.0.2.1");
    assert_eq!(*calls.last().unwrap(), back);
    let ups = drain(&mut rx);
    let last = ups.iter().rfind(|u| u.check == "wan").unwrap();
    assert_eq!(last.transition.to, Phase::Healthy);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn fail_closed_checks_never_probe() {
    let p = Arc::new(Scripted::default());
    let mut c = check("ds", "192.0.2.1", 1000, 500);
    c.fail_closed = Some(routerd_health::binding::DSLITE_BINDING_INVALID.into());
    c.thresholds.unhealthy = 1;
    let (h, mut rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, vec![c], opts());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(p.calls.lock().unwrap().is_empty());
    let ups = drain(&mut rx);
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].transition.to, Phase::Unhealthy);
    assert_eq!(
        ups[0].report.message,
        "DSLiteProbeBindingInvalid: source-interface and fwmark are required"
    );
    let snap = h.snapshot().await;
    assert_eq!(snap[0].1["phase"], "Unhealthy");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn disabled_checks_report_disabled_and_never_probe() {
    let p = Arc::new(Scripted::default());
    let mut c = check("off", "192.0.2.1", 1000, 500);
    c.enabled = false;
    let (h, mut rx) = Scheduler::spawn(p.clone(), clock(), NoLinks, vec![c], opts());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(p.calls.lock().unwrap().is_empty());
    assert!(drain(&mut rx).is_empty());
    let snap = h.snapshot().await;
    assert_eq!(snap[0].0, "off");
    assert_eq!(snap[0].1["phase"], "Disabled");
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn status_snapshot_is_what_selection_reads() {
    let p = Arc::new(Scripted::default());
    let (h, _rx) = Scheduler::spawn(
        p.clone(),
        clock(),
        NoLinks,
        vec![check("hc", "192.0.2.1", 1000, 500)],
        opts(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let snap = h.snapshot().await;
    let s = &snap[0].1;
    assert_eq!(s["phase"], "Healthy");
    assert_eq!(s["consecutiveFailed"], 0);
    assert_eq!(s["lastCheckedAt"], "2026-11-21T00:00:01Z");
    assert_eq!(s["history"].as_array().unwrap().len(), 2);
    h.shutdown().await;
}
