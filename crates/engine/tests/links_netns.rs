#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The link source in a network namespace entered with `setns` and no
//! sysfs of its own (what `unshare -n` and `routerd serve --netns` give):
//! it must see that namespace's links, never those `/sys/class/net`
//! shows. Root only; each test builds and deletes its own namespace and
//! touches nothing of the host's.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use routerd_engine::links::{self, KernelLinks, LinkInfo, LinkSource};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace (`ip netns add`), deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "rdl-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        Netns(name)
    }

    fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v);
    }

    /// Runs `f` on a thread that entered the namespace with `setns` only:
    /// `/sys` stays the mount of the namespace the test started in.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.0.clone();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

const CONFIG: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: up}
spec: {ifname: rdl-a}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: nocarrier}
spec: {ifname: rdl-c}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: admindown}
spec: {ifname: rdl-d}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: elsewhere}
spec: {ifname: rdl-x}
";

/// rdl-a/rdl-b: a veth pair, both up (carrier); rdl-c/rdl-d: rdl-c up
/// with its peer rdl-d down (no carrier on rdl-c, rdl-d admin down).
fn topology(ns: &Netns) {
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&[
        "link", "add", "rdl-a", "type", "veth", "peer", "name", "rdl-b",
    ]);
    ns.ip(&[
        "link", "add", "rdl-c", "type", "veth", "peer", "name", "rdl-d",
    ]);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "rdl-a"]);
    ns.ip(&["addr", "add", "192.0.2.9/24", "dev", "rdl-a"]);
    ns.ip(&["addr", "add", "2001:db8::1/64", "dev", "rdl-a", "nodad"]);
    for l in ["rdl-a", "rdl-b", "rdl-c"] {
        ns.ip(&["link", "set", l, "up"]);
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_setns_thread_sees_exactly_its_namespaces_links_and_phases() {
    let ns = Netns::new();
    topology(&ns);
    let (seen, sysfs_has_it) = ns.run(|| {
        let mut k = KernelLinks::open().unwrap();
        (
            k.links(),
            std::path::Path::new("/sys/class/net/rdl-a").exists(),
        )
    });
    // What makes this test meaningful: sysfs shows another namespace.
    assert!(
        !sysfs_has_it,
        "/sys/class/net shows the test namespace, so this proves nothing"
    );
    let names: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["lo", "rdl-a", "rdl-b", "rdl-c", "rdl-d"]),
        "{seen:?}"
    );
    let a = &seen["rdl-a"];
    assert!(a.up && a.carrier, "{a:?}");
    assert_eq!(
        a.addresses
            .iter()
            .filter(|x| !x.starts_with("fe80"))
            .collect::<Vec<_>>(),
        vec!["192.0.2.1/24", "192.0.2.9/24", "2001:db8::1/64"]
    );
    assert!(a.mac.is_some());
    assert_eq!(seen["lo"].mac, None);

    let (l, d) = routerd_model::load_and_validate(&[("c", CONFIG)]);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let st = links::statuses(&l.resources, &seen);
    let phase = |n: &str| {
        let s = &st[&format!("net.routerd.net/v1alpha1/Interface/{n}")];
        (
            s["phase"].as_str().unwrap().to_string(),
            s.get("reason").and_then(|r| r.as_str()).map(str::to_string),
        )
    };
    assert_eq!(phase("up"), ("Up".into(), None));
    assert_eq!(
        phase("nocarrier"),
        ("Down".into(), Some("NoCarrier".into()))
    );
    assert_eq!(phase("admindown"), ("Down".into(), None));
    assert_eq!(
        phase("elsewhere"),
        ("Down".into(), Some("InterfaceNotFound".into()))
    );
    let up = &st["net.routerd.net/v1alpha1/Interface/up"];
    assert_eq!(up["primaryIPv4"], "192.0.2.1");
    assert_eq!(up["index"], a.index);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_source_opened_in_a_namespace_keeps_reading_it_from_any_thread() {
    let ns = Netns::new();
    topology(&ns);
    // Opened inside, used from this (the host namespace's) thread.
    let mut k = ns.run(|| KernelLinks::open().unwrap());
    let seen: BTreeMap<String, LinkInfo> = k.links();
    assert!(seen.contains_key("rdl-a"), "{seen:?}");
    assert!(!seen.contains_key("rdl-x"));
    ns.ip(&["link", "set", "rdl-a", "down"]);
    assert!(!k.links()["rdl-a"].up);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn address_and_link_changes_in_the_namespace_are_announced() {
    let ns = Netns::new();
    topology(&ns);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    let watch = ns.run(move || {
        links::watch(move || {
            let _ = tx.lock().unwrap().send(());
        })
        .unwrap()
    });
    // Nothing happened yet.
    while rx.try_recv().is_ok() {}
    ns.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "rdl-c", "nodad"]);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("an IPv6 address change is announced");
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    ns.ip(&["link", "set", "rdl-d", "up"]);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a carrier change is announced");
    drop(watch);
}
