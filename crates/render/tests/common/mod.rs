//! Helpers shared by the render integration tests.

#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_model::{Resource, StateSnapshot};

/// The instant selection runs at in the golden cases.
pub const NOW: &str = "2026-11-21T09:00:00Z";

/// Evaluates, at [`NOW`], every EgressRoutePolicy that has no status in
/// `state` and stores what selection publishes, as the daemon and
/// `routerctl plan` do before rendering. Returns the ids it evaluated.
pub fn select_missing(resources: &[Resource], state: &mut StateSnapshot) -> Vec<String> {
    let now = routerd_select::time::parse_rfc3339(NOW).expect("now");
    let set = routerd_select::PolicySet::new(resources);
    let mut done = Vec::new();
    for i in 0..set.len() {
        let id = set.id(i).expect("id").to_string();
        if state.contains_key(&id) {
            continue;
        }
        let o = set
            .evaluate(
                i,
                &*state,
                &*state,
                now,
                routerd_select::SelectOptions::default(),
            )
            .expect("policy");
        state.insert(id.clone(), o.status);
        done.push(id);
    }
    // EgressRouters: the follower publishes which destinations are live,
    // and the renderer reads that (ADR 0009).
    for r in resources {
        let Some(spec) = r.as_egress_router() else {
            continue;
        };
        let id = r.id().to_string();
        if state.contains_key(&id) {
            continue;
        }
        let who = routerd_select::follow::Subject {
            api_version: &r.api_version,
            name: r.name(),
        };
        let o =
            routerd_select::follow::egress_router(who, r, spec, set.world(), &*state, None, now);
        state.insert(id, o.status);
    }
    done
}

/// Compares `actual` with `tests/golden/<file>`; `ROUTERD_BLESS=1` writes
/// it instead.
pub fn check_golden(file: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("ROUTERD_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with ROUTERD_BLESS=1)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{file}: output differs from {} (re-bless with ROUTERD_BLESS=1 if intended)",
        path.display()
    );
}
