#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Store hygiene (issue #12, item 6): generation dedupe and pruning, event
//! bounds, bulk summaries, time-ordered ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use routerd_model::{Event, ObjectRef};
use routerd_store::{
    Backend, Batch, Entries, EventQuery, GenerationStart, MemBackend, Namespace, Store, StoreError,
    StoreOptions,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
}

/// Counts the batches that reach the backend, to prove no-op work writes nothing.
#[derive(Default)]
struct Counting {
    inner: MemBackend,
    applies: AtomicUsize,
}

impl Backend for Counting {
    fn get(&self, ns: Namespace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(ns, key)
    }
    fn scan(&self, ns: Namespace, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.inner.scan(ns, prefix)
    }
    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(batch)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

fn begin(store: &Store, hash: &str) -> GenerationStart {
    let mut w = store.writer();
    let g = w
        .begin_generation_if_changed(hash, &format!("config {hash}"), t0())
        .unwrap();
    w.commit().unwrap();
    g
}

fn finish(store: &Store, generation: u64, phase: &str) {
    let mut w = store.writer();
    w.finish_generation(generation, phase, vec![], t0())
        .unwrap();
    w.commit().unwrap();
}

#[test]
fn an_unchanged_config_reuses_its_generation_and_writes_nothing() {
    let backend = Arc::new(Counting::default());
    let store = Store::open(backend.clone()).unwrap();
    let first = begin(&store, "a");
    assert_eq!(
        first,
        GenerationStart {
            generation: 1,
            created: true
        }
    );
    // Still Pending: the attempt in progress is joined, not duplicated.
    assert_eq!(begin(&store, "a").generation, 1);
    finish(&store, 1, "Applied");
    let writes = backend.applies.load(Ordering::SeqCst);
    for _ in 0..100 {
        let g = begin(&store, "a");
        assert!(!g.created);
        assert_eq!(g.generation, 1);
        // The daemon marks the generation applied after each good step.
        finish(&store, 1, "Applied");
    }
    assert_eq!(
        backend.applies.load(Ordering::SeqCst),
        writes,
        "no-op reloads must not write"
    );
    assert_eq!(store.generations(100).unwrap().len(), 1);
}

#[test]
fn errored_attempts_never_suppress_a_retry_and_going_back_is_a_new_generation() {
    let store = Store::in_memory();
    let a = begin(&store, "a").generation;
    finish(&store, a, "Applied");
    let b = begin(&store, "b");
    assert!(b.created);
    finish(&store, b.generation, "Failed");
    // The same text again after a failure is a fresh attempt.
    let b2 = begin(&store, "b");
    assert!(b2.created);
    assert!(b2.generation > b.generation);
    // Back to the last good text while b2 is pending or failed: reuse `a`.
    assert_eq!(begin(&store, "a").generation, a);
    finish(&store, b2.generation, "Applied");
    // Now the newest good one is b: returning to a is a change.
    let a2 = begin(&store, "a");
    assert!(a2.created);
    assert!(a2.generation > b2.generation);
    // The plain API always inserts (routerd's BeginGeneration).
    let mut w = store.writer();
    let forced = w.begin_generation("a", "config a", t0()).unwrap();
    w.commit().unwrap();
    assert_eq!(forced, a2.generation + 1);
}

#[test]
fn generations_are_pruned_but_the_newest_good_one_stays() {
    let store = Store::with_options(
        Arc::new(MemBackend::new()),
        StoreOptions {
            generation_history: 5,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    finish(&store, begin(&store, "h1").generation, "Applied");
    for i in 2..=12 {
        let g = begin(&store, &format!("h{i}")).generation;
        finish(&store, g, "Failed");
    }
    let kept: Vec<u64> = store
        .generations(100)
        .unwrap()
        .iter()
        .map(|g| g.generation)
        .collect();
    assert_eq!(kept, vec![12, 11, 10, 9, 8, 1]);
    assert_eq!(
        store.last_good_generation().unwrap().unwrap().config_yaml,
        "config h1"
    );
    // Once a newer generation is good, the old good one ages out normally.
    finish(&store, 12, "Applied");
    begin(&store, "h13");
    let kept: Vec<u64> = store
        .generations(100)
        .unwrap()
        .iter()
        .map(|g| g.generation)
        .collect();
    assert_eq!(kept, vec![13, 12, 11, 10, 9]);
}

fn ev(topic: &str, name: &str, at: DateTime<Utc>) -> Event {
    Event::info(
        topic,
        ObjectRef {
            api_version: "net.routerd.net/v1alpha1".into(),
            kind: "IPv4Route".into(),
            name: name.into(),
        },
        at,
    )
}

fn all_events(store: &Store) -> Vec<Event> {
    let mut out = Vec::new();
    let mut since = 0;
    loop {
        let page = store
            .events(&EventQuery {
                since_id: since,
                ascending: true,
                limit: Some(1000),
                ..Default::default()
            })
            .unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        since = last.id;
        out.extend(page);
    }
}

fn encoded_len(store: &Store) -> usize {
    store
        .export()
        .unwrap()
        .iter()
        .filter(|r| r["ns"] == "e")
        .map(|r| serde_json::to_vec(&r["value"]).unwrap().len())
        .sum()
}

#[test]
fn events_are_bounded_by_bytes_as_well_as_count() {
    let store = Store::with_options(
        Arc::new(MemBackend::new()),
        StoreOptions {
            event_capacity: 1000,
            event_bytes: 8 * 1024,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        let mut w = store.writer();
        let mut e = ev("t.big", &format!("r{i}"), t0());
        e.message = "x".repeat(500);
        w.append_event(e);
        w.commit().unwrap();
    }
    let kept = all_events(&store);
    assert!(kept.len() < 20, "the byte bound applies: {}", kept.len());
    assert_eq!(kept.last().unwrap().id, 100, "the newest is kept");
    let ids: Vec<u64> = kept.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "oldest leave first: {ids:?}"
    );
    assert!(encoded_len(&store) <= 8 * 1024);

    // One event above the whole budget is still stored, alone.
    let mut w = store.writer();
    let mut huge = ev("t.huge", "h", t0());
    huge.message = "y".repeat(20_000);
    w.append_event(huge);
    w.commit().unwrap();
    let kept = all_events(&store);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].type_, "t.huge");

    // The byte count survives a reopen (it is stored, not recounted).
    let backend = Arc::new(MemBackend::new());
    let small = StoreOptions {
        event_bytes: 4 * 1024,
        ..StoreOptions::default()
    };
    {
        let s = Store::with_options(backend.clone(), small.clone()).unwrap();
        for i in 0..20 {
            let mut w = s.writer();
            let mut e = ev("t.big", &format!("r{i}"), t0());
            e.message = "x".repeat(500);
            w.append_event(e);
            w.commit().unwrap();
        }
    }
    let s = Store::with_options(backend, small).unwrap();
    let mut w = s.writer();
    w.append_event(ev("t.after", "a", t0()));
    w.commit().unwrap();
    assert!(encoded_len(&s) <= 4 * 1024);
}

#[test]
fn a_bulk_change_is_one_summary_and_keeps_history() {
    let store = Store::with_options(
        Arc::new(MemBackend::new()),
        StoreOptions {
            event_capacity: 100,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut w = store.writer();
    for i in 0..10 {
        w.append_event(ev("routerd.health.changed", &format!("h{i}"), t0()));
    }
    w.commit().unwrap();

    let mut w = store.writer();
    w.append_event(ev("routerd.config.applied", "cfg", t0()));
    for i in 0..5000 {
        let mut e = ev(
            "routerd.route.installed",
            &format!("r{i}"),
            t0() + Duration::seconds(1),
        )
        .attr("generation", "7")
        .attr("index", i.to_string());
        e.reason = if i % 10 == 0 {
            "RouteReplaced".into()
        } else {
            "RouteInstalled".into()
        };
        if i == 42 {
            e.severity = "warning".into();
        }
        w.append_event(e);
    }
    w.append_event(ev("routerd.step.done", "step", t0() + Duration::seconds(1)));
    let stored = w.commit().unwrap();
    assert_eq!(stored.len(), 3, "{stored:#?}");
    let summary = &stored[1];
    assert_eq!(summary.type_, "routerd.route.installed");
    assert_eq!(summary.reason, "BulkChange");
    assert_eq!(summary.severity, "warning");
    assert_eq!(summary.attributes["count"], "5000");
    assert_eq!(
        summary.attributes["samples"],
        "IPv4Route/r0, IPv4Route/r1, IPv4Route/r2, IPv4Route/r3, IPv4Route/r4"
    );
    assert_eq!(
        summary.attributes["reasons"],
        "RouteInstalled=4500, RouteReplaced=500"
    );
    assert_eq!(summary.attributes["warnings"], "1");
    // Attributes shared by every member survive; the others do not.
    assert_eq!(summary.attributes["generation"], "7");
    assert!(!summary.attributes.contains_key("index"));
    assert!(summary.message.contains("5000"), "{}", summary.message);

    let kept = all_events(&store);
    assert_eq!(kept.len(), 13, "the earlier history is still there");
    assert_eq!(
        kept.iter()
            .filter(|e| e.type_ == "routerd.health.changed")
            .count(),
        10
    );

    // At the threshold itself nothing is summarised.
    let mut w = store.writer();
    for i in 0..50 {
        w.append_event(ev("t.fifty", &format!("r{i}"), t0() + Duration::seconds(2)));
    }
    assert_eq!(w.commit().unwrap().len(), 50);
}

#[test]
fn an_event_stamped_before_a_stored_one_takes_its_time() {
    let store = Store::in_memory();
    let mut w = store.writer();
    w.append_event(ev("t", "late", t0() + Duration::seconds(10)));
    w.commit().unwrap();
    // A producer that read the clock earlier commits after.
    let mut w = store.writer();
    w.append_event(ev("t", "early", t0()));
    let stored = w.commit().unwrap();
    assert_eq!(stored[0].time, Some(t0() + Duration::seconds(10)));
    assert_eq!(stored[0].attributes["originalTime"], t0().to_rfc3339());
    // Inside one commit, ids follow the events' times.
    let mut w = store.writer();
    w.append_event(ev("t", "b", t0() + Duration::seconds(30)));
    w.append_event(ev("t", "a", t0() + Duration::seconds(20)));
    let stored = w.commit().unwrap();
    assert_eq!(stored[0].resource.name, "a");
    assert!(stored[0].id < stored[1].id);
}

#[test]
fn concurrent_commits_store_every_event_once_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(Store::open_sled(dir.path()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let mut w = store.writer();
                        w.append_event(ev("t", &format!("w{t}-{i}"), Utc::now()));
                        w.commit().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        store.flush().unwrap();
    }
    let store = Store::open_sled(dir.path()).unwrap();
    let events = all_events(&store);
    assert_eq!(events.len(), 400);
    assert_eq!(
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<_>>()
    );
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(store.last_event_id().unwrap(), 400);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever order producers stamp and commit events in, a later id
    /// never carries an earlier time, and the ring's bounds hold.
    #[test]
    fn ids_follow_time_and_the_ring_stays_bounded(
        commits in prop::collection::vec(
            prop::collection::vec((0i64..600, 0usize..400), 0..80),
            1..25,
        ),
    ) {
        let store = Store::with_options(
            Arc::new(MemBackend::new()),
            StoreOptions {
                event_capacity: 40,
                event_bytes: 12 * 1024,
                bulk_threshold: 20,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        for (c, events) in commits.iter().enumerate() {
            let mut w = store.writer();
            for (i, (offset, len)) in events.iter().enumerate() {
                let mut e = ev(
                    if i % 3 == 0 { "t.a" } else { "t.b" },
                    &format!("r{c}-{i}"),
                    t0() + Duration::seconds(*offset),
                );
                e.message = "m".repeat(*len);
                w.append_event(e);
            }
            w.commit().unwrap();
        }
        let kept = all_events(&store);
        prop_assert!(kept.len() <= 40);
        prop_assert!(kept.len() == 1 || encoded_len(&store) <= 12 * 1024);
        for pair in kept.windows(2) {
            prop_assert!(pair[0].id < pair[1].id);
            prop_assert!(pair[0].time <= pair[1].time, "{:?} then {:?}", pair[0], pair[1]);
        }
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// 1,000 reloads of an unchanged 200 KB configuration, each with its
/// commit and flush, leave the sled directory the size it was.
#[test]
fn a_thousand_no_op_reloads_leave_the_store_size_flat() {
    let dir = tempfile::tempdir().unwrap();
    let text = "# filler line of a large configuration file\n".repeat(5000);
    let hash = "sha-of-the-text";
    let store = Store::open_sled(dir.path()).unwrap();
    let reload = || {
        let mut w = store.writer();
        let g = w.begin_generation_if_changed(hash, &text, t0()).unwrap();
        w.commit().unwrap();
        let mut w = store.writer();
        w.finish_generation(g.generation, "Applied", vec![], t0())
            .unwrap();
        w.commit().unwrap();
        store.flush().unwrap();
        g
    };
    let first = reload();
    assert!(first.created);
    let before = dir_size(dir.path());
    for _ in 0..1000 {
        let g = reload();
        assert_eq!(g.generation, first.generation);
        assert!(!g.created);
    }
    let after = dir_size(dir.path());
    assert!(
        after <= before + 64 * 1024,
        "store grew from {before} to {after} bytes over 1,000 no-op reloads"
    );
    assert_eq!(store.generations(100).unwrap().len(), 1);
}

/// Distinct configurations, each applied once: the history is pruned and
/// the sled directory stops growing (large values would leak in sled 0.34;
/// texts are stored in small pieces so it reclaims them).
#[test]
fn changing_configurations_keep_the_store_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sled_with(
        dir.path(),
        StoreOptions {
            generation_history: 10,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let mut sizes = Vec::new();
    for i in 0..300 {
        let text = format!(
            "# configuration {i}\n{}",
            "route: 10.0.0.0/8\n".repeat(8000)
        );
        let mut w = store.writer();
        let g = w
            .begin_generation_if_changed(&format!("h{i}"), &text, t0())
            .unwrap();
        w.commit().unwrap();
        let mut w = store.writer();
        w.finish_generation(g.generation, "Applied", vec![], t0())
            .unwrap();
        w.commit().unwrap();
        store.flush().unwrap();
        if i % 50 == 49 {
            sizes.push(dir_size(dir.path()));
        }
    }
    assert_eq!(store.generations(100).unwrap().len(), 10);
    let text_pieces = store
        .export()
        .unwrap()
        .iter()
        .filter(|r| r["ns"] == "c")
        .count();
    // 10 texts of 144 KB in 4 KiB pieces.
    assert_eq!(text_pieces, 10 * 36, "texts of pruned generations are gone");
    // Live data is about 1.5 MB and 430 MB went through the store. sled
    // settles at a small multiple of the live data (about 10 MB here, flat
    // from 200 to 1,000 generations); inline texts leaked 1.5 MB each.
    let (early, late) = (sizes[1], *sizes.last().unwrap());
    assert!(
        late <= 2 * early && late < 32 * 1024 * 1024,
        "store keeps growing: {sizes:?} bytes after every 50 generations"
    );
}

#[test]
fn the_same_text_under_two_generations_is_stored_once() {
    let store = Store::in_memory();
    let text_pieces = |s: &Store| {
        s.export()
            .unwrap()
            .iter()
            .filter(|r| r["ns"] == "c")
            .count()
    };
    let big_a = "a: 1\n".repeat(3000);
    let big_b = "b: 2\n".repeat(3000);
    for (hash, text) in [("A", &big_a), ("B", &big_b), ("A", &big_a)] {
        let mut w = store.writer();
        let g = w.begin_generation_if_changed(hash, text, t0()).unwrap();
        assert!(g.created);
        w.finish_generation(g.generation, "Applied", vec![], t0())
            .unwrap_err(); // not committed yet
        w.commit().unwrap();
        finish(&store, g.generation, "Applied");
    }
    assert_eq!(store.generations(10).unwrap().len(), 3);
    // 15,000 bytes each: 4 pieces per text, two texts.
    assert_eq!(text_pieces(&store), 8);
    let gens = store.generations(10).unwrap();
    assert_eq!(gens[0].config_yaml, big_a);
    assert_eq!(gens[1].config_yaml, big_b);
    assert_eq!(gens[2].config_yaml, big_a);
    assert_eq!(store.last_good_generation().unwrap().unwrap().generation, 3);
}
