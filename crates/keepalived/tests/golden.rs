//! keepalived.conf and conntrackd.conf goldens: every byte of the rendered
//! files for fixed configurations, and the real keepalived accepts them.
//! `ROUTERD_BLESS=1 cargo test -p routerd-keepalived --test golden`
//! rewrites the goldens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use routerd_keepalived::plan::{Paths, plan};
use routerd_keepalived::render::{conntrackd_conf, keepalived_conf};
use routerd_model::load_and_validate;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str, got: &str) {
    let path = dir().join(name);
    if std::env::var_os("ROUTERD_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ROUTERD_BLESS=1 writes it)", path.display()));
    assert_eq!(got, want, "{name} differs from its golden");
}

fn render(fixture: &str, node: &str) -> (Option<String>, Option<String>) {
    let text = std::fs::read_to_string(dir().join(fixture)).unwrap();
    let (loaded, ds) = load_and_validate(&[(fixture, text.as_str())]);
    let errors: Vec<_> = ds.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let paths = Paths::new("/run/routerd/gateway");
    let p = plan(&loaded.resources, node, &paths);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    (keepalived_conf(&p, &paths), conntrackd_conf(&p, &paths))
}

#[test]
fn three_members_two_gateways() {
    for node in ["gw-a", "gw-b"] {
        let (ka, ct) = render("three-vip.yaml", node);
        check(&format!("three-vip.{node}.keepalived.conf"), &ka.unwrap());
        check(&format!("three-vip.{node}.conntrackd.conf"), &ct.unwrap());
    }
}

#[test]
fn two_members_sync_over_unicast() {
    let (ka, ct) = render("two-nodes.yaml", "gw-a");
    check("two-nodes.gw-a.keepalived.conf", &ka.unwrap());
    let ct = ct.unwrap();
    assert!(ct.contains("IPv4_Destination_Address 10.0.0.12"), "{ct}");
    check("two-nodes.gw-a.conntrackd.conf", &ct);
}

#[test]
fn a_non_member_runs_neither_daemon() {
    let (ka, ct) = render("two-nodes.yaml", "client");
    assert_eq!(ka, None);
    assert_eq!(ct, None);
}

/// The real keepalived accepts every golden. `--config-test` checks that
/// the interfaces exist, so it runs in a throwaway namespace with eth0 and
/// eth1.
#[test]
#[ignore = "needs root: network namespaces"]
fn keepalived_accepts_the_goldens() {
    let ns = format!("rdka-golden-{}", std::process::id());
    let sh = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&["ip", "netns", "add", &ns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _del = Del(ns.clone());
    // A veth pair (dummy may not be built into the kernel).
    sh(&[
        "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    for dev in ["eth0", "eth1"] {
        sh(&["ip", "-n", &ns, "link", "set", dev, "up"]);
    }
    let mut n = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".keepalived.conf") {
            continue;
        }
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "keepalived",
                "--config-test",
                "--log-console",
                "-f",
            ])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} rejected:\n{}{}",
            p.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 3, "only {n} goldens checked");
}
