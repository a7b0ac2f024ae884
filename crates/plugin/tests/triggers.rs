//! The trigger loop, on tokio's paused clock.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use routerd_model::spec::{RequestTrigger, Trigger};
use routerd_model::{Event, ObjectRef};
use routerd_plugin::TriggerPlan;
use routerd_plugin::scheduler::{DriveStats, Gates, Holder, drive};
use tokio::sync::{broadcast, oneshot};

/// An event of `topic` about IPv4Route `name`, with one attribute.
fn ev(topic: &str, name: &str, selected: &str) -> Event {
    let resource = ObjectRef {
        api_version: "net.routerd.net/v1alpha1".into(),
        kind: "IPv4Route".into(),
        name: name.into(),
    };
    let mut e = Event::info(topic, resource, chrono::Utc::now());
    e.reason = "RouteChanged".into();
    e.attributes.insert("selected".into(), selected.into());
    e
}

fn plan(triggers: &[(&str, &str)]) -> TriggerPlan {
    let ts: Vec<Trigger> = triggers
        .iter()
        .map(|(ty, v)| Trigger {
            type_: ty.to_string(),
            every: (*ty == "interval").then(|| v.to_string()),
            topic: (*ty == "event").then(|| v.to_string()),
        })
        .collect();
    TriggerPlan::from_triggers(&ts).unwrap()
}

/// Runs the loop for `total` of virtual time; each run takes `run_time`.
async fn drive_for(
    plan: &TriggerPlan,
    topics: Option<broadcast::Receiver<Event>>,
    flights: &Gates,
    total: Duration,
    run_time: Duration,
) -> (DriveStats, Vec<RequestTrigger>, u32) {
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let active = Rc::new(Cell::new(0u32));
    let max_active = Rc::new(Cell::new(0u32));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stopper = async move {
        tokio::time::sleep(total).await;
        let _ = stop_tx.send(());
    };
    let runner = {
        let seen = Rc::clone(&seen);
        let active = Rc::clone(&active);
        let max_active = Rc::clone(&max_active);
        drive(
            "cloud",
            plan,
            topics,
            flights,
            async {
                let _ = stop_rx.await;
            },
            move |t| {
                let seen = Rc::clone(&seen);
                let active = Rc::clone(&active);
                let max_active = Rc::clone(&max_active);
                async move {
                    seen.borrow_mut().push(t);
                    active.set(active.get() + 1);
                    max_active.set(max_active.get().max(active.get()));
                    tokio::time::sleep(run_time).await;
                    active.set(active.get() - 1);
                }
            },
        )
    };
    let ((), stats) = tokio::join!(stopper, runner);
    let seen = seen.borrow().clone();
    (stats, seen, max_active.get())
}

#[tokio::test(start_paused = true)]
async fn interval_runs_every_period() {
    let p = plan(&[("interval", "10s")]);
    let (stats, seen, max) = drive_for(
        &p,
        None,
        &Gates::new(),
        Duration::from_secs(35),
        Duration::from_millis(10),
    )
    .await;
    // Fires at 10 s, 20 s and 30 s; not at start.
    assert_eq!(stats.runs, 3);
    assert!(seen.iter().all(|t| t.type_ == "interval"));
    assert_eq!(max, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_run_never_overlaps_itself() {
    let p = plan(&[("interval", "10s"), ("interval", "15s")]);
    let (stats, _, max) = drive_for(
        &p,
        None,
        &Gates::new(),
        Duration::from_secs(100),
        Duration::from_secs(25),
    )
    .await;
    assert_eq!(max, 1, "two runs of one plugin overlapped");
    // Each run takes 25 s and ticks during a run coalesce: at most 100/25.
    assert!(stats.runs >= 2 && stats.runs <= 4, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn event_topics_trigger_runs() {
    let p = plan(&[("event", "routerd.lan.route.changed")]);
    let (tx, rx) = broadcast::channel(16);
    let sender = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(ev("routerd.lan.route.changed", "a", "wan-a"))
            .unwrap();
        tx.send(ev("routerd.other", "x", "none")).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(ev("routerd.lan.route.changed", "b", "wan-b"))
            .unwrap();
    };
    let flights = Gates::new();
    let ((), (stats, seen, _)) = tokio::join!(
        sender,
        drive_for(
            &p,
            Some(rx),
            &flights,
            Duration::from_secs(5),
            Duration::from_millis(10)
        )
    );
    assert_eq!(stats.runs, 2);
    assert!(
        seen.iter()
            .all(|t| t.type_ == "event" && t.topic.as_deref() == Some("routerd.lan.route.changed"))
    );
    // Each run is told which resource the event was about and its
    // attributes, so a plugin need not re-read every status.
    let told: Vec<_> = seen
        .iter()
        .map(|t| {
            (
                t.resource.clone().unwrap_or_default(),
                t.attributes.get("selected").cloned().unwrap_or_default(),
                t.reason.clone().unwrap_or_default(),
                t.coalesced,
            )
        })
        .collect();
    assert_eq!(
        told,
        vec![
            (
                "IPv4Route/a".into(),
                "wan-a".into(),
                "RouteChanged".into(),
                None
            ),
            (
                "IPv4Route/b".into(),
                "wan-b".into(),
                "RouteChanged".into(),
                None
            ),
        ]
    );
}

fn manual() -> Holder {
    Holder {
        trigger: "manual".into(),
        since: chrono::Utc::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn triggers_during_another_paths_run_wait_and_make_one_run() {
    let p = plan(&[("interval", "10s")]);
    let flights = Gates::new();
    // Another path (a manual run) holds the plugin for 35 s: the ticks at
    // 10, 20 and 30 s wait for it and become one run when it ends.
    let held = flights.try_acquire("cloud", manual()).unwrap();
    assert!(flights.try_acquire("cloud", manual()).is_err());
    let release = async {
        tokio::time::sleep(Duration::from_secs(35)).await;
        drop(held);
    };
    let ((), (stats, seen, max)) = tokio::join!(
        release,
        drive_for(
            &p,
            None,
            &flights,
            Duration::from_secs(40),
            Duration::from_millis(10),
        )
    );
    assert_eq!(stats.runs, 1, "{stats:?}");
    assert_eq!(stats.waited, 1, "{stats:?}");
    // The missed ticks of one interval count once.
    assert_eq!(stats.coalesced, 1, "{stats:?}");
    assert_eq!(seen.len(), 1);
    assert_eq!(max, 1);
    assert!(flights.running("cloud").is_none());
    assert!(flights.try_acquire("cloud", manual()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_events_during_a_run_makes_one_follow_up() {
    let p = plan(&[("event", "routerd.lan.route.changed")]);
    let (tx, rx) = broadcast::channel(64);
    let sender = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(ev("routerd.lan.route.changed", "first", "wan-a"))
            .unwrap();
        // Ten more while the first run (5 s) is in progress.
        tokio::time::sleep(Duration::from_secs(1)).await;
        for i in 0..10 {
            tx.send(ev("routerd.lan.route.changed", &format!("r{i}"), "wan-b"))
                .unwrap();
            tx.send(ev("routerd.other", "x", "none")).unwrap();
        }
    };
    let flights = Gates::new();
    let ((), (stats, seen, max)) = tokio::join!(
        sender,
        drive_for(
            &p,
            Some(rx),
            &flights,
            Duration::from_secs(30),
            Duration::from_secs(5)
        )
    );
    assert_eq!(stats.runs, 2, "{stats:?}");
    assert_eq!(stats.coalesced, 9, "{stats:?}");
    assert_eq!(max, 1);
    assert!(seen.iter().all(|t| t.type_ == "event"));
    // The follow-up describes the latest event and counts the ten.
    let last = seen.last().unwrap();
    assert_eq!(last.resource.as_deref(), Some("IPv4Route/r9"));
    assert_eq!(last.coalesced, Some(10));
    assert_eq!(seen[0].resource.as_deref(), Some("IPv4Route/first"));
    assert_eq!(seen[0].coalesced, None);
}

#[tokio::test(start_paused = true)]
async fn ticks_missed_during_a_slow_run_make_one_immediate_follow_up() {
    let p = plan(&[("interval", "10s")]);
    let flights = Gates::new();
    // Runs take 25 s: the first starts at 10 s, the ticks at 20 and 30 s
    // fall into it and make one follow-up at 35 s, whose own missed ticks
    // make one at 60 s; the one at 85 s is cut by the end at 100 s.
    let (stats, _, max) = drive_for(
        &p,
        None,
        &flights,
        Duration::from_secs(100),
        Duration::from_secs(25),
    )
    .await;
    assert_eq!(max, 1);
    assert_eq!(stats.runs, 4, "{stats:?}");
    assert_eq!(stats.waited, 0, "{stats:?}");
}
