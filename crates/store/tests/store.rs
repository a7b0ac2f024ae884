#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use routerd_model::{Event, ObjectRef, Resource, Status};
use routerd_store::{Backend, EventQuery, MemBackend, PartRecord, PartState, SledBackend, Store};

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
}

fn status(phase: &str) -> Status {
    let mut s = Status::new();
    s.insert("phase".into(), phase.into());
    s
}

fn both() -> Vec<(&'static str, Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sled = Store::open_sled(dir.path()).unwrap();
    vec![
        ("memory", Store::in_memory(), None),
        ("sled", sled, Some(dir)),
    ]
}

#[test]
fn identical_status_writes_are_skipped_but_new_generation_writes() {
    for (name, store, _d) in both() {
        let mut w = store.writer();
        assert!(
            w.save_status("a", &status("Up"), Some(1), now()).unwrap(),
            "{name}"
        );
        w.commit().unwrap();
        let mut w = store.writer();
        assert!(
            !w.save_status("a", &status("Up"), Some(1), now()).unwrap(),
            "{name}"
        );
        w.commit().unwrap();
        assert_eq!(
            store.status("a").unwrap().unwrap().resource_version,
            1,
            "{name}"
        );
        let mut w = store.writer();
        assert!(
            w.save_status("a", &status("Up"), Some(2), now()).unwrap(),
            "{name}"
        );
        assert!(
            w.save_status("b", &status("Down"), Some(2), now()).unwrap(),
            "{name}"
        );
        w.commit().unwrap();
        let rec = store.status("a").unwrap().unwrap();
        assert_eq!(
            (rec.resource_version, rec.observed_generation),
            (2, Some(2)),
            "{name}"
        );
        let snap = store.status_snapshot().unwrap();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap["b"]["phase"], "Down");
    }
}

fn ev(topic: &str, kind: &str, name: &str) -> Event {
    Event::info(
        topic,
        ObjectRef {
            api_version: "net.routerd.net/v1alpha1".into(),
            kind: kind.into(),
            name: name.into(),
        },
        now(),
    )
}

#[test]
fn events_are_a_bounded_ring_queryable_by_since_topic_and_resource() {
    let store = Store::with_event_capacity(Arc::new(MemBackend::new()), 5).unwrap();
    for i in 0..8 {
        let mut w = store.writer();
        let topic = if i % 2 == 0 { "t.even" } else { "t.odd" };
        w.append_event(ev(topic, "HealthCheck", &format!("h{}", i % 3)));
        let stored = w.commit().unwrap();
        assert_eq!(stored[0].id, i + 1);
    }
    let all = store
        .events(&EventQuery {
            ascending: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8]
    );
    let since = store
        .events(&EventQuery {
            since_id: 6,
            ascending: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(since.iter().map(|e| e.id).collect::<Vec<_>>(), vec![7, 8]);
    let newest_first = store
        .events(&EventQuery {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        newest_first.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![8, 7]
    );
    let even = store
        .events(&EventQuery {
            topic: Some("t.even".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(even.iter().map(|e| e.id).collect::<Vec<_>>(), vec![7, 5]);
    let h1 = store
        .events(&EventQuery {
            resource: Some("HealthCheck/h1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(h1.iter().map(|e| e.id).collect::<Vec<_>>(), vec![8, 5]);
    assert!(
        store
            .events(&EventQuery {
                resource: Some("bad".into()),
                ..Default::default()
            })
            .is_err()
    );
    assert!(
        store
            .events(&EventQuery {
                limit: Some(5000),
                ..Default::default()
            })
            .is_err()
    );
    assert_eq!(store.last_event_id().unwrap(), 8);
}

#[test]
fn failed_apply_never_replaces_the_last_good_generation() {
    for (name, store, _d) in both() {
        assert!(store.last_good_generation().unwrap().is_none());
        let mut w = store.writer();
        let g1 = w.begin_generation("h1", "config: 1", now()).unwrap();
        w.finish_generation(g1, "Applied", vec![], now())
            .unwrap_err();
        w.commit().unwrap();
        let mut w = store.writer();
        w.finish_generation(g1, "Applied", vec![], now()).unwrap();
        w.commit().unwrap();
        let mut w = store.writer();
        let g2 = w.begin_generation("h2", "config: 2", now()).unwrap();
        w.commit().unwrap();
        let mut w = store.writer();
        w.finish_generation(g2, "Failed", vec!["apply failed".into()], now())
            .unwrap();
        w.commit().unwrap();
        let good = store.last_good_generation().unwrap().unwrap();
        assert_eq!(
            (good.generation, good.config_yaml.as_str()),
            (1, "config: 1"),
            "{name}"
        );
        let gens = store.generations(10).unwrap();
        assert_eq!(
            gens.iter().map(|g| g.generation).collect::<Vec<_>>(),
            vec![2, 1],
            "{name}"
        );
        assert_eq!(gens[0].phase, "Failed");
    }
}

fn part(source: &str, generation: i64) -> Resource {
    let text = format!(
        "apiVersion: config.routerd.net/v1alpha1\nkind: DynamicConfigPart\nmetadata: {{name: p-{generation}}}\nspec: {{source: {source}, generation: {generation}}}\n"
    );
    Resource::from_value(serde_yaml::from_str(&text).unwrap()).unwrap()
}

#[test]
fn parts_keep_every_generation_in_order_with_state() {
    for (name, store, _d) in both() {
        let mut w = store.writer();
        for g in [3, 1, 12, 2] {
            let state = if g == 12 {
                PartState::Active
            } else {
                PartState::Superseded
            };
            w.put_part(&PartRecord {
                part: part("Plugin/cloud", g),
                state,
                reason: String::new(),
                stored_at: now(),
            })
            .unwrap();
        }
        w.put_part(&PartRecord {
            part: part("Plugin/other", 7),
            state: PartState::Rejected,
            reason: "bad".into(),
            stored_at: now(),
        })
        .unwrap();
        w.commit().unwrap();
        let gens: Vec<i64> = store
            .parts_of("Plugin/cloud")
            .unwrap()
            .iter()
            .map(|p| p.part.as_dynamic_part().unwrap().generation)
            .collect();
        assert_eq!(gens, vec![1, 2, 3, 12], "{name}");
        assert_eq!(store.max_generation("Plugin/cloud").unwrap(), 12);
        assert_eq!(store.max_generation("Plugin/none").unwrap(), 0);
        assert_eq!(store.parts().unwrap().len(), 5);
        assert_eq!(
            store.parts_of("Plugin/other").unwrap()[0].state,
            PartState::Rejected
        );
    }
}

#[test]
fn ledger_and_reopen_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_sled(dir.path()).unwrap();
        let mut w = store.writer();
        w.ledger_put(
            "route/main/0.0.0.0/0",
            &serde_json::json!({"owner": "IPv4Route/default"}),
        )
        .unwrap();
        w.ledger_put(
            "nft/ip/routerd_nat",
            &serde_json::json!({"owner": "NAT44Rule/lan"}),
        )
        .unwrap();
        w.append_event(ev("t", "IPv4Route", "default"));
        w.commit().unwrap();
        let mut w = store.writer();
        w.ledger_remove("nft/ip/routerd_nat");
        w.commit().unwrap();
        store.flush().unwrap();
    }
    let store = Store::open_sled(dir.path()).unwrap();
    let ledger = store.ledger().unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].0, "route/main/0.0.0.0/0");
    // Counters are recovered: the next event continues the sequence.
    let mut w = store.writer();
    w.append_event(ev("t", "IPv4Route", "default"));
    assert_eq!(w.commit().unwrap()[0].id, 2);
    assert!(!store.export().unwrap().is_empty());
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledBackend::open(dir.path()).unwrap();
    let second = SledBackend::open(dir.path());
    assert!(second.is_err());
}

#[test]
fn a_lock_released_moments_later_is_waited_for() {
    // sled lets go of its lock a moment after the last handle is dropped;
    // an open in that moment must not report the store as held.
    let dir = tempfile::tempdir().unwrap();
    let first = SledBackend::open(dir.path()).unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(150));
        drop(first);
    });
    let second = SledBackend::open(dir.path());
    closer.join().unwrap();
    assert!(second.is_ok(), "{:?}", second.err());
}

#[test]
fn batches_are_atomic_in_memory() {
    let b = MemBackend::new();
    let mut batch = routerd_store::Batch::default();
    batch.put(routerd_store::Namespace::Meta, b"a".to_vec(), b"1".to_vec());
    batch.put(routerd_store::Namespace::Meta, b"b".to_vec(), b"2".to_vec());
    b.apply(batch).unwrap();
    assert_eq!(
        b.scan(routerd_store::Namespace::Meta, b"").unwrap().len(),
        2
    );
    assert_eq!(
        b.scan(routerd_store::Namespace::Status, b"").unwrap().len(),
        0
    );
}

/// kill -9 in the middle of writing, 20 times: the store always opens, every
/// batch is whole, and nothing acknowledged by a flush is lost.
#[test]
fn survives_kill_9_twenty_times() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_routerd-store-crash-writer");
    let mut acknowledged = 0u64;
    for round in 0..20u64 {
        let mut child = Command::new(exe)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = 0u64;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                last = line.trim().parse().unwrap_or(last);
            }
            last
        });
        // Vary the kill point between 150 and 600 ms.
        std::thread::sleep(Duration::from_millis(150 + (round * 97) % 450));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last_flushed = reader.join().unwrap();
        acknowledged = acknowledged.max(last_flushed);

        let store = Store::open_sled(dir.path()).unwrap();
        let seqs: Vec<u64> = (0..10)
            .map(|k| {
                store
                    .status(&format!("k{k}"))
                    .unwrap()
                    .map_or(0, |r| r.status["seq"].as_u64().unwrap())
            })
            .collect();
        assert!(
            seqs.iter().all(|s| *s == seqs[0]),
            "round {round}: torn batch {seqs:?}"
        );
        assert!(
            seqs[0] >= acknowledged,
            "round {round}: lost flushed data {} < {acknowledged}",
            seqs[0]
        );
        let last = store
            .events(&EventQuery {
                limit: Some(1),
                ..Default::default()
            })
            .unwrap();
        if seqs[0] > 0 {
            assert_eq!(
                last[0].attributes["seq"],
                seqs[0].to_string(),
                "round {round}: event and status disagree"
            );
        }
        drop(store);
    }
    assert!(acknowledged > 0, "the writer never reached a flush");
}
