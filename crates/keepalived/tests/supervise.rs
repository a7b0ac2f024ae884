//! Supervision policy against the in-memory twin: a rejected configuration
//! is never installed, reloads happen only on change, a dead daemon is
//! restarted, a missing binary is a clear error, promotion commits the
//! conntrackd external cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_keepalived::plan::{Paths, plan, rendezvous_order};
use routerd_keepalived::supervise::{Daemon, MemoryEffects, Outcome, SuperviseError, Supervisor};
use routerd_model::load_and_validate;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

fn group(text: &str, node: &str) -> routerd_keepalived::GroupPlan {
    let (loaded, ds) = load_and_validate(&[("g.yaml", text)]);
    assert!(ds.iter().all(|d| !d.is_error()), "{ds:#?}");
    plan(&loaded.resources, node, &Paths::new("/run/test"))
}

fn names(o: &[Outcome]) -> Vec<String> {
    o.iter().map(|o| format!("{o:?}")).collect()
}

#[test]
fn starts_then_reloads_only_on_change_and_restarts_the_dead() {
    let text = fixture("three-vip.yaml");
    let p = group(&text, "gw-a");
    let mut s = Supervisor::new(MemoryEffects::default(), Paths::new("/run/test"));
    let o = s.apply(&p);
    assert!(
        matches!(
            o[..],
            [
                Outcome::Started(Daemon::Conntrackd),
                Outcome::Started(Daemon::Keepalived)
            ]
        ),
        "{:?}",
        names(&o)
    );
    // Track files start unsuitable: no role before routerd says so.
    for g in &p.gateways {
        assert_eq!(
            s.effects().files.get(&g.track_file).map(String::as_str),
            Some("1\n")
        );
    }
    let o = s.apply(&p);
    assert!(
        matches!(o[..], [Outcome::Unchanged(_), Outcome::Unchanged(_)]),
        "{:?}",
        names(&o)
    );

    let changed = group(
        &text.replace("preemptDelay: 5s", "preemptDelay: 7s"),
        "gw-a",
    );
    let o = s.apply(&changed);
    assert!(
        matches!(o[1], Outcome::Reloaded(Daemon::Keepalived)),
        "{:?}",
        names(&o)
    );
    assert!(
        s.installed(Daemon::Keepalived)
            .unwrap()
            .contains("preempt_delay 7")
    );
    assert_eq!(
        s.effects()
            .log
            .iter()
            .filter(|l| *l == "reload keepalived")
            .count(),
        1
    );

    s.effects().kill(Daemon::Keepalived);
    let o = s.tick();
    assert!(
        matches!(o[..], [Outcome::Restarted(Daemon::Keepalived)]),
        "{:?}",
        names(&o)
    );
    assert_eq!(s.restarts(Daemon::Keepalived), 1);
    assert!(s.tick().is_empty());
}

#[test]
fn a_rejected_configuration_is_never_installed() {
    let text = fixture("three-vip.yaml");
    let mut s = Supervisor::new(MemoryEffects::default(), Paths::new("/run/test"));
    s.apply(&group(&text, "gw-a"));
    let before = s.installed(Daemon::Keepalived).unwrap().to_string();
    s.effects().reject_containing = Some("preempt_delay 9".into());
    let o = s.apply(&group(
        &text.replace("preemptDelay: 5s", "preemptDelay: 9s"),
        "gw-a",
    ));
    match &o[1] {
        Outcome::Failed(Daemon::Keepalived, SuperviseError::Rejected { message, .. }) => {
            assert!(message.contains("preempt_delay 9"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.installed(Daemon::Keepalived), Some(before.as_str()));
    let live = s
        .effects()
        .files
        .get(&Paths::new("/run/test").keepalived_conf())
        .unwrap()
        .clone();
    assert_eq!(
        live, before,
        "the live file still holds the accepted configuration"
    );
    assert!(!s.effects().log.iter().any(|l| l == "reload keepalived"));
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let mut fx = MemoryEffects::default();
    fx.missing.insert(Daemon::Keepalived);
    let mut s = Supervisor::new(fx, Paths::new("/run/test"));
    let o = s.apply(&group(&fixture("two-nodes.yaml"), "gw-a"));
    let Outcome::Failed(Daemon::Keepalived, e) = &o[1] else {
        panic!("{:?}", names(&o))
    };
    assert!(matches!(e, SuperviseError::MissingBinary("keepalived")));
    assert!(
        e.to_string()
            .contains("install the distribution's keepalived package"),
        "{e}"
    );
}

#[test]
fn suitability_writes_only_on_change_and_promotion_commits_the_external_cache() {
    let p = group(&fixture("two-nodes.yaml"), "gw-a");
    let mut s = Supervisor::new(MemoryEffects::default(), Paths::new("/run/test"));
    s.apply(&p);
    let tf = p.gateways[0].track_file.clone();
    assert!(s.set_suitable(&tf, true).unwrap());
    assert!(!s.set_suitable(&tf, true).unwrap());
    assert_eq!(s.effects().files.get(&tf).map(String::as_str), Some("0\n"));
    s.promoted().unwrap();
    s.demoted().unwrap();
    let ctl: Vec<&String> = s
        .effects()
        .log
        .iter()
        .filter(|l| l.starts_with("ctl"))
        .collect();
    assert_eq!(
        ctl,
        [
            "ctl conntrackd -c",
            "ctl conntrackd -f",
            "ctl conntrackd -R",
            "ctl conntrackd -B",
            "ctl conntrackd -t",
            "ctl conntrackd -n"
        ]
    );
}

#[test]
fn leaving_every_gateway_stops_the_daemons() {
    let text = fixture("two-nodes.yaml");
    let mut s = Supervisor::new(MemoryEffects::default(), Paths::new("/run/test"));
    s.apply(&group(&text, "gw-a"));
    let o = s.apply(&group(
        &text.replace(
            "role: egress}}\nspec:\n  addresses: [10.0.0.11/24]",
            "role: other}}\nspec:\n  addresses: [10.0.0.11/24]",
        ),
        "gw-a",
    ));
    assert!(
        matches!(
            o[..],
            [
                Outcome::Stopped(Daemon::Conntrackd),
                Outcome::Stopped(Daemon::Keepalived)
            ]
        ),
        "{:?}",
        names(&o)
    );
    assert!(s.effects().running.is_empty());
}

#[test]
fn different_gateways_prefer_different_nodes() {
    let nodes = ["gw-a", "gw-b", "gw-c"];
    let firsts: std::collections::BTreeSet<&str> = (0..12)
        .map(|i| rendezvous_order(&format!("gateway-{i}"), &nodes)[0])
        .collect();
    assert_eq!(
        firsts.len(),
        3,
        "12 gateways should spread over all 3 nodes: {firsts:?}"
    );
    // Stable: the same inputs give the same order on every member.
    assert_eq!(
        rendezvous_order("g", &nodes),
        rendezvous_order("g", &["gw-c", "gw-a", "gw-b"])
    );
    // Removing a node that is not first keeps the first (minimal reshuffle).
    let order = rendezvous_order("g", &nodes);
    let without: Vec<&str> = nodes.iter().copied().filter(|n| *n != order[2]).collect();
    assert_eq!(rendezvous_order("g", &without)[0], order[0]);
}

#[test]
fn priorities_follow_the_rendezvous_order() {
    let p = group(&fixture("three-vip.yaml"), "gw-a");
    for g in &p.gateways {
        let prios: Vec<u8> = g.members.iter().map(|m| m.priority).collect();
        assert_eq!(prios, [250, 240, 230], "{}", g.name);
        let me = g.members.iter().find(|m| m.name == "gw-a").unwrap();
        assert_eq!(g.priority, me.priority);
    }
}
