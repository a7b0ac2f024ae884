//! Properties of the state machine over arbitrary result sequences, on
//! virtual time (every result is judged 100 ms after the previous one).

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use routerd_health::{HealthState, Identity, Outcome, Phase, ProbeReport, Thresholds};

fn report(o: u8) -> ProbeReport {
    match o % 3 {
        0 => ProbeReport::passed("ok"),
        1 => ProbeReport::failed("refused"),
        _ => ProbeReport::timeout("deadline"),
    }
}

proptest! {
    #[test]
    fn phase_follows_the_trailing_run(
        results in proptest::collection::vec(0u8..3, 1..60),
        rise in 1u32..5,
        fall in 1u32..5,
    ) {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        let mut s = HealthState::new(
            Identity { name: "p".into(), protocol: "tcp".into(), ..Identity::default() },
            Thresholds { healthy: rise, unhealthy: fall },
        );
        s.start(t0);
        let mut events = 0usize;
        let mut prev_phase = Phase::Unknown;
        let mut prev_result: Option<Outcome> = None;
        let mut last_transition = t0;
        for (i, r) in results.iter().enumerate() {
            let now = t0 + chrono::TimeDelta::milliseconds(100 * (i as i64 + 1));
            let rep = report(*r);
            let tr = s.apply(now, &rep);
            // Counters equal the length of the trailing run.
            let run = results[..=i]
                .iter()
                .rev()
                .take_while(|x| (**x % 3 == 0) == (*r % 3 == 0))
                .count() as u32;
            if rep.outcome.is_ok() {
                prop_assert_eq!(s.consecutive_passed(), run);
                prop_assert_eq!(s.consecutive_failed(), 0);
                let want = if run >= rise { Phase::Healthy } else { Phase::Passing };
                prop_assert_eq!(s.phase(), want);
            } else {
                prop_assert_eq!(s.consecutive_failed(), run);
                prop_assert_eq!(s.consecutive_passed(), 0);
                let want = if run >= fall { Phase::Unhealthy } else { Phase::Failing };
                prop_assert_eq!(s.phase(), want);
            }
            // lastTransitionAt moves exactly when the phase changes.
            if s.phase() != prev_phase {
                last_transition = now;
            }
            prop_assert_eq!(s.last_transition_at(), Some(last_transition));
            prop_assert_eq!(s.last_checked_at(), Some(now));
            // Events exactly on phase or result change.
            let expect_event = s.phase() != prev_phase || prev_result != Some(rep.outcome);
            prop_assert_eq!(s.event(&tr, now).is_some(), expect_event);
            if expect_event {
                events += 1;
            }
            prev_phase = s.phase();
            prev_result = Some(rep.outcome);
        }
        prop_assert!(events <= results.len());
        prop_assert!(s.history().len() <= routerd_health::DEFAULT_HISTORY);
    }
}
