#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The watchdog is fed from the reconcile loop's progress: an idle loop
//! feeds it, a loop wedged inside a step starves it, and it is fed again
//! once the step returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use routerd_engine::daemon::{self, NoHealth, Options, Shared, SystemClock};
use routerd_engine::links::{LinkInfo, StaticLinks};
use routerd_engine::watchdog;
use routerd_render::{ApplyError, Dataplane, DataplaneError, MemDataplane, Observed, Plan};
use routerd_store::Store;

const CONFIG: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: lab}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: default}
      spec: {destination: 0.0.0.0/0, device: wan1, gateway: 192.0.2.1}
"#;

/// A dataplane whose calls block while the gate is closed, as a kernel
/// call that never returns would.
#[derive(Clone, Default)]
struct Gated {
    dp: Arc<Mutex<MemDataplane>>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    blocked: Arc<AtomicBool>,
}

impl Gated {
    fn wait_open(&self) {
        let (closed, cv) = &*self.gate;
        let mut c = closed.lock().unwrap();
        while *c {
            self.blocked.store(true, Ordering::SeqCst);
            c = cv.wait(c).unwrap();
        }
        self.blocked.store(false, Ordering::SeqCst);
    }

    fn set_closed(&self, closed: bool) {
        *self.gate.0.lock().unwrap() = closed;
        self.gate.1.notify_all();
    }
}

impl Dataplane for Gated {
    fn observe(&mut self) -> Result<Observed, DataplaneError> {
        self.wait_open();
        self.dp.lock().unwrap().observe()
    }
    fn apply(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        self.wait_open();
        self.dp.lock().unwrap().apply(plan)
    }
}

/// Opens the gate when dropped.
struct Reopen(Gated);

impl Drop for Reopen {
    fn drop(&mut self) {
        self.0.set_closed(false);
    }
}

fn links() -> StaticLinks {
    StaticLinks(BTreeMap::from([(
        "wan1".to_string(),
        LinkInfo {
            index: 2,
            up: true,
            carrier: true,
            ..Default::default()
        },
    )]))
}

/// Polls with plain thread sleeps: while the loop blocks a worker, the
/// test must not depend on that runtime's timers.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Running {
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    notified: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    run: Option<tokio::task::JoinHandle<()>>,
    feeder: Option<watchdog::Feeder>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The loop with `dp` and a resync every `resync` on a two-worker
    /// runtime (as `routerd serve` runs it), and a watchdog fed every
    /// 20 ms that counts its notifications.
    fn start(dp: Gated, resync: Duration) -> Running {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        let store = Arc::new(Store::open_sled(&dir.path().join("store")).unwrap());
        let options = Options {
            config_path: dir.path().join("config.yaml"),
            resync,
            ..Options::default()
        };
        let shared = Shared::new(options, store, Arc::new(SystemClock)).unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = rt.spawn(daemon::run(
            shared.clone(),
            dp,
            links(),
            NoHealth,
            None,
            |_| {},
            async {
                let _ = stop_rx.await;
            },
        ));
        let notified = Arc::new(AtomicU64::new(0));
        let n = notified.clone();
        let feeder = watchdog::Feeder::spawn(
            shared.heartbeat().clone(),
            Duration::from_millis(20),
            move || {
                n.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        Running {
            rt,
            shared,
            notified,
            stop: Some(stop),
            run: Some(run),
            feeder: Some(feeder),
            _dir: dir,
        }
    }

    fn notified(&self) -> u64 {
        self.notified.load(Ordering::SeqCst)
    }

    fn stop(mut self) {
        self.feeder.take();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(run) = self.run.take() {
            self.rt.block_on(run).unwrap();
        }
    }
}

#[test]
fn an_idle_loop_feeds_the_watchdog() {
    // No resync, no events: after the first steps the loop only waits.
    let r = Running::start(Gated::default(), Duration::from_secs(3600));
    let steps = r.shared.steps();
    wait_for("the first step", || steps.borrow().seq >= 1);
    let before = r.notified();
    wait_for("notifications from an idle loop", || {
        r.notified() >= before + 5
    });
    r.stop();
}

#[test]
fn a_step_wedged_in_the_dataplane_starves_the_watchdog_until_it_returns() {
    let dp = Gated::default();
    // A short resync: the next full step calls the dataplane soon.
    let r = Running::start(dp.clone(), Duration::from_millis(100));
    wait_for("a fed watchdog", || r.notified() >= 5);

    dp.set_closed(true);
    // A failed assertion must not leave a worker blocked: dropping the
    // runtime would wait for it forever.
    let _reopen = Reopen(dp.clone());
    wait_for("the loop to wedge in the dataplane", || {
        dp.blocked.load(Ordering::SeqCst)
    });
    // A notification already under way when the step began may land.
    std::thread::sleep(Duration::from_millis(100));
    let at_wedge = r.notified();
    let beats = r.shared.heartbeat().beats();
    // Twenty-five feeding periods.
    std::thread::sleep(Duration::from_millis(500));
    assert!(dp.blocked.load(Ordering::SeqCst));
    assert_eq!(
        r.shared.heartbeat().beats(),
        beats,
        "a wedged loop never beats"
    );
    assert_eq!(
        r.notified(),
        at_wedge,
        "no notification while the loop is wedged"
    );

    dp.set_closed(false);
    wait_for("notifications after the step returned", || {
        r.notified() > at_wedge + 2
    });
    r.stop();
}
