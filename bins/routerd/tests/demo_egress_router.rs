#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `routerd demo egress-router` end to end: a real daemon in a namespace
//! lab, real probes from the reserved address, real nftables. The demo
//! itself checks every step (redirects, the source the destinations see,
//! balancing, the fallback, the refusals, the established connection kept)
//! and exits 1 when one is wrong; this test also reads its timeline.

mod common;

#[test]
#[ignore = "needs root: network namespaces"]
fn egress_router_demo_redirects_falls_back_and_refuses_then_cleans_up() {
    let stdout = common::run_routerd_demo(&["egress-router"]);
    for want in [
        "TCP 10.1.0.1:8080 -> \"web1 192.0.2.10\"",
        "UDP 10.1.0.1:5353 -> \"web2 192.0.2.10\"",
        "TCP 10.1.0.1:80 (unmapped) -> \"fallback 192.0.2.10\"",
        "refused by a reset",
        "ICMP port unreachable",
        "TCP 10.1.0.1:8081 -> \"web2 192.0.2.10\" (web1 left out of the balance)",
        "still talks to web1: \"web1 pong\"",
        "egress-router: ok",
        "established connection kept: yes",
        "cleanup: all 5 namespaces removed",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    // The demo's namespaces are named after its pid (`rder-<pid>-cli`);
    // other runs' may exist at the same time, ours must be gone.
    let ours = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab: client "))
        .and_then(|l| l.split_whitespace().next())
        .map(|n| n.trim_end_matches("cli").to_string())
        .unwrap();
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&ours))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}
