//! The refresh invariants, over arbitrary sequences of answers and
//! failures: a failure never takes addresses away, a name is never due
//! again sooner than the floor, and the spec's literal addresses are
//! always members.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use routerd_resolve::refresh::{FLOOR, SetSpec, SetState, status_members};
use routerd_resolve::{Answer, Family, ResolveError};

fn spec(names: &[&str], interval: Option<u64>) -> SetSpec {
    SetSpec {
        id: "net.routerd.net/v1alpha1/IPAddressSet/svc".into(),
        family: Family::V4,
        addresses: vec!["192.0.2.0/24".into()],
        names: names.iter().map(|n| n.to_string()).collect(),
        refresh_interval: interval.map(Duration::from_secs),
        refresh_interval_text: interval.map(|i| format!("{i}s")).unwrap_or_default(),
    }
}

#[derive(Clone, Debug)]
enum Outcome {
    Ok(Vec<IpAddr>, Option<u64>),
    Fail,
    Timeout,
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => (0u8..4).prop_map(|d| IpAddr::V4(Ipv4Addr::new(198, 51, 100, d))),
        1 => (0u16..2).prop_map(|d| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, d))),
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => (proptest::collection::vec(addr(), 0..4), proptest::option::of(0u64..400))
            .prop_map(|(a, t)| Outcome::Ok(a, t)),
        2 => Just(Outcome::Fail),
        1 => Just(Outcome::Timeout),
    ]
}

proptest! {
    #[test]
    fn failures_keep_addresses_and_delays_respect_the_floor(
        steps in proptest::collection::vec((0usize..2, outcome(), 0u64..1000), 1..40),
        interval in proptest::option::of(0u64..120),
    ) {
        let names = ["a.example", "b.example"];
        let mut set = SetState::new(spec(&names, interval), None, Duration::ZERO);
        let mut now = Duration::ZERO;
        let wall0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_default();
        for (which, out, advance) in steps {
            now += Duration::from_secs(advance);
            let name = names[which];
            let before = set.name(name).cloned().unwrap_or_default();
            let members_before = set.members();
            let result = match &out {
                Outcome::Ok(a, t) => Ok(Answer { addresses: a.clone(), ttl: t.map(Duration::from_secs) }),
                Outcome::Fail => Err(ResolveError::Failed { name: name.into(), message: "SERVFAIL".into() }),
                Outcome::Timeout => Err(ResolveError::Timeout { name: name.into(), after: Duration::from_secs(5) }),
            };
            let wall = wall0 + chrono::Duration::seconds(now.as_secs() as i64);
            set.record(name, result, now, wall);
            let after = set.name(name).cloned().unwrap_or_default();
            prop_assert!(after.due >= now + FLOOR, "due {:?} now {:?}", after.due, now);
            let v4: Vec<IpAddr> = match &out {
                Outcome::Ok(a, _) => a.iter().copied().filter(IpAddr::is_ipv4).collect(),
                _ => Vec::new(),
            };
            if v4.is_empty() {
                // A failure (or an answer with nothing of the family):
                // nothing is taken away, and the error is recorded.
                prop_assert_eq!(&after.addresses, &before.addresses);
                prop_assert!(after.last_error.is_some());
                prop_assert_eq!(set.members(), members_before);
            } else {
                prop_assert!(after.last_error.is_none());
                prop_assert_eq!(after.addresses.iter().copied().collect::<std::collections::BTreeSet<_>>(),
                    v4.into_iter().collect());
                prop_assert_eq!(after.resolved_at, Some(wall));
            }
            let members = set.members();
            prop_assert!(members.contains("192.0.2.0/24"));
            prop_assert!(members.iter().all(|m| !m.contains(':')), "{:?}", members);
            prop_assert_eq!(status_members(&set.status()), members);
        }
    }
}

#[test]
fn last_good_addresses_survive_a_restart() {
    let wall = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let mut set = SetState::new(spec(&["a.example"], None), None, Duration::ZERO);
    let a: IpAddr = "198.51.100.7"
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    set.record(
        "a.example",
        Ok(Answer {
            addresses: vec![a],
            ttl: Some(Duration::from_secs(60)),
        }),
        Duration::ZERO,
        wall,
    );
    let status = set.status();
    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["resolved"]["a.example"]["ttlSeconds"], 60);
    assert_eq!(
        status["resolved"]["a.example"]["resolvedAt"],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        status["resolved"]["a.example"]["nextRefreshAt"],
        "2026-01-01T00:01:00Z"
    );
    // A new daemon (or a reconfiguration) starts from the published status:
    // due at once, with the old addresses until an answer replaces them.
    let mut again = SetState::new(spec(&["a.example"], None), Some(&status), Duration::ZERO);
    assert_eq!(again.due(Duration::ZERO), vec!["a.example".to_string()]);
    assert_eq!(again.members(), set.members());
    again.record(
        "a.example",
        Err(ResolveError::Failed {
            name: "a.example".into(),
            message: "no server".into(),
        }),
        Duration::ZERO,
        wall,
    );
    let st = again.status();
    assert_eq!(st["phase"], "Ready");
    assert_eq!(st["reason"], "ResolveFailed");
    assert_eq!(st["resolveErrors"][0], "a.example: no server");
    assert_eq!(
        st["resolved"]["a.example"]["lastError"],
        "a.example: no server"
    );
    assert_eq!(
        st["addresses"],
        serde_json_array(&["192.0.2.0/24", "198.51.100.7"])
    );
}

#[test]
fn a_name_that_never_resolved_is_pending() {
    let set = SetState::new(spec(&["a.example"], Some(60)), None, Duration::ZERO);
    let st = set.status();
    assert_eq!(st["phase"], "Pending");
    assert_eq!(st["reason"], "Resolving");
    assert_eq!(st["refreshInterval"], "60s");
    assert_eq!(st["addresses"], serde_json_array(&["192.0.2.0/24"]));
}

fn serde_json_array(v: &[&str]) -> serde_json::Value {
    serde_json::Value::from(v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}
