//! `routerd apply --once` against a throwaway network namespace (root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::process::{Command, Output};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let s = Command::new("ip").args(args).status().unwrap();
    assert!(s.success(), "ip {args:?}");
}

fn routerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(args)
        .output()
        .unwrap()
}

const CONFIG: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: wan0}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4Route
metadata: {name: default}
spec: {destination: 0.0.0.0/0, device: wan0, gateway: 198.51.100.1, metric: 7}
---
apiVersion: net.routerd.net/v1alpha1
kind: NAT44Rule
metadata: {name: lan}
spec: {type: masquerade, egressInterface: wan, sourceRanges: [192.168.10.0/24]}
";

#[test]
#[ignore = "needs root: network namespaces"]
fn apply_once_prints_the_plan_then_nothing() {
    let ns = Ns(format!("rdtbin{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p",
    ]);
    ip(&["-n", &ns.0, "link", "set", "wan0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "wan0p", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "198.51.100.2/24", "dev", "wan0"]);
    let dir = std::env::temp_dir().join(format!("rdtbin{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let ledger = dir.join("ledger.json");
    let args = [
        "apply",
        "--once",
        "-f",
        config.to_str().unwrap(),
        "--netns",
        &ns.0,
        "--ledger",
        ledger.to_str().unwrap(),
    ];
    let first = routerd(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        out,
        "ip route add default via 198.51.100.1 dev wan0 proto 122 metric 7\n\
         nft -f (replace table ip routerd_nat: 1 chains, 1 rules)\n"
    );
    let second = routerd(&args);
    assert_eq!(String::from_utf8_lossy(&second.stdout), "# nothing to do\n");

    // Removing everything from the config removes exactly what was created.
    std::fs::write(&config, "apiVersion: net.routerd.net/v1alpha1\nkind: Interface\nmetadata: {name: wan}\nspec: {ifname: wan0}\n").unwrap();
    let third = routerd(&args);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&third.stdout),
        "ip route del default via 198.51.100.1 dev wan0 proto 122 metric 7\n\
         nft delete table ip routerd_nat\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exit codes as routerctl's: an invalid configuration is 65, an unreadable
/// file 66; neither touches the kernel (no root needed).
#[test]
fn apply_once_exit_codes_match_routerctl() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: net.routerd.net/v1alpha1\nkind: IPv4Route\nmetadata: {name: r}\nspec: {type: sideways}\n",
    )
    .unwrap();
    let ledger = dir.path().join("ledger.json");
    let o = routerd(&[
        "apply",
        "--once",
        "--ledger",
        ledger.to_str().unwrap(),
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.yaml"));
    let o = routerd(&[
        "apply",
        "--once",
        "--ledger",
        ledger.to_str().unwrap(),
        "-f",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(66));
}

/// Beside a live daemon on the same state directory (its store locked),
/// `apply --once` refuses with 75 instead of writing a second ledger.
#[test]
fn apply_once_refuses_beside_a_live_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let _held = routerd_store::Store::open_sled_with(
        &dir.path().join("store"),
        routerd_store::StoreOptions::default(),
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let o = routerd(&[
        "apply",
        "--once",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--ledger",
        dir.path().join("ledger.json").to_str().unwrap(),
        "-f",
        config.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("routerctl apply"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.path().join("ledger.json").exists());
}
