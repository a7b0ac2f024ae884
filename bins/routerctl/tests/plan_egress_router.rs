//! `routerctl plan` of OpenShift's EgressRouter YAML (seed 001, unchanged)
//! next to an Interface on the reserved subnet: the master is inferred from
//! the state's observed addresses, the plan says which and why, and lists
//! the macvlan and the reserved address; without that observation the
//! router is `Degraded` with `MasterNotFound`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

const INTERFACE: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: egress-net}
spec: {ifname: egr0}
";

fn plan(state: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/render/tests/data/seed001-egress-router-redirect.yaml");
    let iface = dir.path().join("iface.yaml");
    std::fs::write(&iface, INTERFACE).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_routerctl"));
    cmd.args(["plan", "-f"])
        .arg(&seed)
        .arg("-f")
        .arg(&iface)
        .args(["--now", "2026-12-03T12:00:00Z"]);
    if let Some(s) = state {
        let p = dir.path().join("state.yaml");
        std::fs::write(&p, s).unwrap();
        cmd.arg("--state").arg(&p);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_plan_names_the_inferred_master_and_lists_the_macvlan() {
    let text = plan(Some(
        "net.routerd.net/v1alpha1/Interface/egress-net: {phase: Up, ifname: egr0, addresses: [192.168.12.5/24]}\n",
    ));
    assert!(
        text.contains("master egr0 inferred: Interface/egress-net carries 192.168.12.5/24, whose subnet 192.168.12.0/24 holds the reserved address 192.168.12.99"),
        "{text}"
    );
    assert!(
        text.contains("ip link add rde-egress-1a3f up link egr0 type macvlan mode bridge"),
        "{text}"
    );
    assert!(
        text.contains("192.168.12.99/24 dev rde-egress-1a3f"),
        "{text}"
    );
    assert!(
        text.contains("EgressRouter/egress-router-redirect: Available Carried"),
        "{text}"
    );
}

#[test]
fn without_an_observed_subnet_the_router_is_degraded_master_not_found() {
    let text = plan(None);
    assert!(
        text.contains("EgressRouter/egress-router-redirect: Degraded MasterNotFound"),
        "{text}"
    );
    assert!(!text.contains("ip link add"), "{text}");
}
