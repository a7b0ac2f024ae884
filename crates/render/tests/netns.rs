//! Network-namespace tests of the Linux dataplane (root only).
//!
//! Every test creates its own namespaces (named after the pid), runs the
//! dataplane on a thread that entered the router namespace, checks the
//! result with `ip` and `nft`, and deletes the namespaces in a Drop guard.
//! Nothing here touches the host's interfaces, routes or ruleset.

#![cfg(feature = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

mod lab;

use lab::{Ns, sh};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use routerd_model::{StateSnapshot, load_and_validate};
use routerd_render::linux::{LinuxDataplane, NftJson, netns};
use routerd_render::nft_backend::NftBackend;
use routerd_render::plan::Op;
use routerd_render::{DesiredState, Ledger, Ownership, ReconcileOptions, reconcile, render};

/// A router namespace with two uplinks (veth pairs whose peers stay in the
/// namespace; this kernel has no dummy driver).
fn router() -> Ns {
    let r = Ns::new("rdt", "r");
    for (dev, addr) in [("wan0", "198.51.100.2/24"), ("wan1", "203.0.113.2/24")] {
        let peer = format!("{dev}p");
        r.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        r.ip(&["addr", "add", addr, "dev", dev]);
        r.ip(&["link", "set", dev, "up"]);
        r.ip(&["link", "set", &peer, "up"]);
    }
    r
}

fn rendered(config: &str, state: &str) -> DesiredState {
    let r = rendered_with_problems(config, state);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    r.desired
}

/// The render of a case that may hold problems on purpose (a golden case
/// showing one).
fn rendered_with_problems(config: &str, state: &str) -> routerd_render::Rendered {
    let (loaded, diags) = load_and_validate(&[("c.yaml", config)]);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let mut state: StateSnapshot = serde_yaml::from_str(state).unwrap();
    common::select_missing(&loaded.resources, &mut state);
    render(&loaded.resources, &state)
}

const PRIORITY: &str = r#"
apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {name: t}
spec:
  resources:
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan0}
      spec: {ifname: wan0}
    - apiVersion: net.routerd.net/v1alpha1
      kind: Interface
      metadata: {name: wan1}
      spec: {ifname: wan1}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: lan}
      spec:
        mode: priority
        sourceCIDRs: [192.168.10.0/24]
        candidates:
          - {name: primary, device: wan0, gatewaySource: static, gateway: 198.51.100.1,
             table: 100, priority: 10100, mark: 256, weight: 80}
          - {name: secondary, device: wan1, gatewaySource: static, gateway: 203.0.113.1,
             table: 101, priority: 10101, mark: 257, weight: 50}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: via-wan0}
      spec: {type: masquerade, egressInterface: wan0, sourceRanges: [192.168.10.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: via-wan1}
      spec: {type: masquerade, egressInterface: wan1, sourceRanges: [192.168.10.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: IPv4Route
      metadata: {name: rfc1918}
      spec: {type: blackhole, destination: 10.0.0.0/8}
"#;

fn priority_state(selected: &str) -> String {
    format!(
        "net.routerd.net/v1alpha1/EgressRoutePolicy/lan:
  phase: Applied
  selectedCandidate: {selected}
  candidates:
    - {{name: primary, ready: true}}
    - {{name: secondary, ready: true}}
"
    )
}

fn dataplane() -> LinuxDataplane {
    LinuxDataplane::new(Vec::new(), Ownership::default()).unwrap()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn apply_is_visible_idempotent_minimal_and_removable() {
    let r = router();
    // Foreign state that must survive everything below.
    r.ip(&[
        "route",
        "add",
        "10.9.0.0/16",
        "dev",
        "wan0",
        "table",
        "100",
        "proto",
        "static",
    ]);
    r.ip(&[
        "rule", "add", "priority", "10150", "fwmark", "0x99", "table", "99",
    ]);
    r.exec(&["nft", "add table inet foreign; add chain inet foreign c { type filter hook input priority 0; }; add rule inet foreign c accept"]);
    let foreign_routes = r.ip(&["route", "show", "table", "all"]);
    let foreign_rules = r.ip(&["rule", "show"]);

    let d1 = rendered(PRIORITY, &priority_state("primary"));
    let (plan1, plan2, plan3, plan4) = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let p1 = reconcile(&mut dp, &d1, &mut ledger, &opts).unwrap();
        let p2 = reconcile(&mut dp, &d1, &mut ledger, &opts).unwrap();
        // A change: the secondary's gateway moves.
        let mut d2 = d1.clone();
        let rt = d2.routes.iter_mut().find(|r| r.table == 101).unwrap();
        rt.gateway = Some("203.0.113.9".parse().unwrap());
        let p3 = reconcile(&mut dp, &d2, &mut ledger, &opts).unwrap();
        // Keep the ledger on disk-equivalent form to prove it carries over.
        let text = serde_json::to_string(&ledger).unwrap();
        let mut ledger: Ledger = serde_json::from_str(&text).unwrap();
        let p4 = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
        assert!(ledger.is_empty());
        (p1.plan, p2.plan, p3.plan, p4.plan)
    });
    assert_eq!(plan1.ops.len(), 7, "{plan1}");
    assert!(plan2.is_empty(), "second apply must be a no-op: {plan2}");
    assert_eq!(plan3.ops.len(), 1, "{plan3}");
    assert!(matches!(&plan3.ops[0], Op::ReplaceRoute { new, .. } if new.table == 101));
    assert_eq!(plan4.ops.len(), 7, "{plan4}");

    // After removal: exactly the foreign state is left.
    assert_eq!(r.ip(&["route", "show", "table", "all"]), foreign_routes);
    assert_eq!(r.ip(&["rule", "show"]), foreign_rules);
    let tables = r.exec(&["nft", "list", "tables"]);
    assert_eq!(tables.trim(), "table inet foreign");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn applied_state_shows_in_ip_and_nft() {
    let r = router();
    let d = rendered(PRIORITY, &priority_state("primary"));
    r.run(move || {
        let mut dp = dataplane();
        reconcile(
            &mut dp,
            &d,
            &mut Ledger::default(),
            &ReconcileOptions::default(),
        )
        .unwrap();
    });
    let t100 = r.ip(&["route", "show", "table", "100"]);
    assert_eq!(
        t100.trim(),
        "default via 198.51.100.1 dev wan0 proto 122 metric 50"
    );
    let t101 = r.ip(&["route", "show", "table", "101"]);
    assert_eq!(
        t101.trim(),
        "default via 203.0.113.1 dev wan1 proto 122 metric 50"
    );
    let main = r.ip(&["route", "show", "10.0.0.0/8"]);
    assert_eq!(main.trim(), "blackhole 10.0.0.0/8 proto 122");
    let rules = r.ip(&["rule", "show"]);
    assert!(
        rules.contains("10100:\tfrom all fwmark 0x100 lookup 100 proto 122"),
        "{rules}"
    );
    assert!(
        rules.contains("10101:\tfrom all fwmark 0x101 lookup 101 proto 122"),
        "{rules}"
    );
    let steer = r.exec(&["nft", "list", "table", "ip", "routerd_default_route"]);
    // nft 1.0.6 neither reads nor prints table comments in JSON, so the
    // ownership comment only appears with newer nft (docs/dataplane.md).
    assert!(
        steer.contains("type filter hook prerouting priority mangle - 1; policy accept;"),
        "{steer}"
    );
    assert!(
        steer.contains(
            "ip saddr 192.168.10.0/24 ct mark { 0x00000100, 0x00000101 } meta mark set ct mark"
        ),
        "{steer}"
    );
    assert!(
        steer.contains("ip saddr 192.168.10.0/24 ct mark 0x00000000 meta mark set 0x00000100 ct mark set meta mark"),
        "{steer}"
    );
    let nat = r.exec(&["nft", "list", "table", "ip", "routerd_nat"]);
    assert!(
        nat.contains("oifname \"wan0\" ip saddr 192.168.10.0/24 masquerade"),
        "{nat}"
    );
    assert!(
        nat.contains("oifname \"wan1\" ip saddr 192.168.10.0/24 masquerade"),
        "{nat}"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn drift_is_detected_and_repaired() {
    let r = router();
    let d = rendered(PRIORITY, &priority_state("primary"));
    let name = r.0.clone();
    r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        sh(&["ip", "-n", &name, "route", "del", "default", "table", "100"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &name,
            "nft",
            "flush",
            "table",
            "ip",
            "routerd_nat",
        ]);
        let out = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        let lines: Vec<String> = out.plan.ops.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("ip route add default via 198.51.100.1 dev wan0 table 100"));
        assert!(lines[1].contains("routerd_nat"));
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_refused_route_fails_its_owner_only_with_the_kernels_extack() {
    let r = router();
    let mut d = rendered(PRIORITY, &priority_state("primary"));
    // An unreachable gateway: the kernel refuses the second route.
    d.routes
        .iter_mut()
        .find(|r| r.table == 101)
        .unwrap()
        .gateway = Some("192.0.2.99".parse().unwrap());
    let faults = r.run(move || {
        let mut dp = dataplane();
        reconcile(
            &mut dp,
            &d,
            &mut Ledger::default(),
            &ReconcileOptions::default(),
        )
        .unwrap()
        .faults
    });
    assert_eq!(faults.len(), 1, "{faults:?}");
    let f = &faults[0];
    assert_eq!(f.owner, "net.routerd.net/v1alpha1/EgressRoutePolicy/lan");
    assert_eq!(f.reason, "ApplyFailed");
    assert!(
        f.message
            .contains("ip route add default via 192.0.2.99 dev wan1 table 101"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("Nexthop has invalid gateway"),
        "{}",
        f.message
    );
    // Every other object, the same owner's accepted ones included, is in.
    let routes = r.ip(&["route", "show", "table", "all"]);
    assert!(routes.contains("blackhole 10.0.0.0/8"), "{routes}");
    assert!(
        routes.contains("default via 198.51.100.1 dev wan0 table 100"),
        "{routes}"
    );
    let tables = r.exec(&["nft", "list", "tables"]);
    assert!(tables.contains("routerd_nat"), "{tables}");
}

/// Every golden case's nft tables, and one SCTP redirect.
fn golden_tables() -> Vec<routerd_render::ir::NftTable> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut tables = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(case) = name.strip_suffix(".config.yaml") else {
            continue;
        };
        let config = std::fs::read_to_string(&p).unwrap();
        let state = std::fs::read_to_string(dir.join(format!("{case}.state.yaml")))
            .unwrap_or_else(|_| "{}".into());
        tables.extend(rendered_with_problems(&config, &state).desired.nft);
    }
    let mut dnat = DesiredState::default();
    routerd_render::render::add_redirects(
        &mut dnat,
        &[routerd_render::render::Redirect {
            owner: "x".into(),
            iifname: Some("wan0".into()),
            destination: None,
            protocol: routerd_render::ir::L4Proto::Sctp,
            port: 9,
            to_address: "203.0.113.26".parse().unwrap(),
            to_port: Some(99),
        }],
    );
    tables.extend(dnat.nft);
    tables
}

/// Every golden case's nft tables load through the JSON backend and read
/// back with the same chain/rule shape.
#[test]
#[ignore = "needs root: network namespaces"]
fn every_rendered_table_loads_through_nft_json() {
    let tables = golden_tables();
    assert!(tables.len() >= 7, "{}", tables.len());
    let r = router();
    r.run(move || {
        let mut nft = NftJson::default();
        for t in &tables {
            nft.replace_table(t)
                .unwrap_or_else(|e| panic!("{} {}: {e}", t.family, t.name));
            let listed = nft.list_owned().unwrap();
            let o = listed.iter().find(|o| o.key == t.key()).unwrap();
            assert_eq!(o.chains, t.shape(), "{}", t.name);
            nft.delete_table(&t.key()).unwrap();
        }
    });
}

/// What `nft` shows of a table, with the handles (which differ between
/// two loads) left out: the kernel's expressions and set elements
/// (`--debug=netlink`) and the JSON routerd's observation reads.
fn kernel_view(r: &Ns, t: &routerd_render::ir::NftTable) -> (String, String) {
    let fam = t.family.to_string();
    let debug = r.exec(&["nft", "--debug=netlink", "list", "table", &fam, &t.name]);
    // Rule headers end with the rule's handle and position; a hash set
    // lists its elements in an order of its own, so they are sorted.
    let mut debug_lines: Vec<String> = Vec::new();
    let mut elements: Vec<String> = Vec::new();
    for l in debug.lines() {
        if l.trim_start().starts_with("element ") {
            elements.push(l.to_string());
            continue;
        }
        elements.sort();
        debug_lines.append(&mut elements);
        if l.starts_with(&format!("{fam} {} ", t.name)) && !l.contains('@') {
            debug_lines.push(l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        } else {
            debug_lines.push(l.to_string());
        }
    }
    elements.sort();
    debug_lines.append(&mut elements);
    let debug = debug_lines;
    let json = r.exec(&["nft", "-j", "list", "table", &fam, &t.name]);
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("handle");
                for (k, v) in m.iter_mut() {
                    strip(v);
                    if let ("elem" | "set", serde_json::Value::Array(a)) = (k.as_str(), v) {
                        a.sort_by_key(|e| e.to_string());
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    (debug.join("\n"), v.to_string())
}

/// The in-process backend writes every table it supports exactly as `nft`
/// loads the same table's text: the kernel holds the same expressions, set
/// metadata and elements, and `nft` lists the same. Replacing a table it
/// loaded works too.
#[test]
#[ignore = "needs root: network namespaces"]
fn nf_netlink_loads_tables_exactly_as_nft_does() {
    use routerd_render::linux::NfNetlink;
    let tables: Vec<_> = golden_tables()
        .into_iter()
        .filter(|t| routerd_render::nft_netlink::supports(t).is_ok())
        .collect();
    let egress = tables
        .iter()
        .filter(|t| t.name.starts_with("routerd_egress_"))
        .count();
    assert!(egress >= 13, "{egress} EgressRouter tables are supported");
    let r = router();
    for t in tables {
        let key = t.key();
        // The reference is nft's text front end (its JSON one drops the
        // table comment).
        let file = std::env::temp_dir().join(format!("routerd-nfnl-{}.nft", std::process::id()));
        std::fs::write(&file, routerd_render::nft_text::replace_batch(&t)).unwrap();
        r.exec(&["nft", "-f", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        let by_nft = kernel_view(&r, &t);
        let t2 = t.clone();
        r.run(move || {
            let mut nft = NftJson::default();
            nft.delete_table(&t2.key()).unwrap();
            let mut nl = NfNetlink::new();
            nl.replace_table(&t2)
                .unwrap_or_else(|e| panic!("{} {}: {e}", t2.family, t2.name));
            // A second load replaces the first in one transaction.
            nl.replace_table(&t2)
                .unwrap_or_else(|e| panic!("{} {} again: {e}", t2.family, t2.name));
        });
        let by_netlink = kernel_view(&r, &t);
        assert_eq!(by_netlink.0, by_nft.0, "{key}: kernel expressions");
        assert_eq!(by_netlink.1, by_nft.1, "{key}: nft -j list");
        r.run(move || {
            let mut nl = NfNetlink::new();
            nl.delete_table(&key).unwrap();
            let listed = NftJson::default().list_owned().unwrap();
            assert!(listed.iter().all(|o| o.key != key), "{key} was deleted");
        });
    }
}

/// A batch the kernel refuses leaves nothing behind (the older table
/// stays as it was), the error names the refused object with the kernel's
/// words, and the backend's next batch goes through on a fresh socket.
#[test]
#[ignore = "needs root: network namespaces"]
fn nf_netlink_refusals_name_the_object_and_change_nothing() {
    use routerd_render::ir::{
        ChainType, Expr, Hook, NftChain, NftFamily, NftRule, NftTable, Priority,
    };
    use routerd_render::linux::NfNetlink;
    let table = |exprs: Vec<Expr>| {
        let mut t = NftTable::new(NftFamily::Ip, "routerd_egress_bad");
        t.chains.push(NftChain {
            name: "route".into(),
            chain_type: ChainType::Filter,
            hook: Hook::Prerouting,
            priority: Priority::Num(-90),
            rules: vec![NftRule { exprs }],
        });
        t
    };
    let good = table(vec![Expr::CtStatusDnat, Expr::Accept]);
    // The kernel refuses NAT in a filter chain.
    let bad = table(vec![Expr::Dnat {
        addr: "203.0.113.26".parse().unwrap(),
        port: None,
    }]);
    let r = router();
    let g = good.clone();
    r.run(move || NfNetlink::new().replace_table(&g).unwrap());
    let before = r.exec(&["nft", "list", "ruleset"]);
    let err = r.run(move || {
        let mut nl = NfNetlink::new();
        let err = nl.replace_table(&bad).unwrap_err().to_string();
        nl.replace_table(&good).unwrap();
        err
    });
    assert!(
        err.contains("table ip routerd_egress_bad chain route rule 1"),
        "{err}"
    );
    assert!(err.contains("errno"), "{err}");
    assert_eq!(r.exec(&["nft", "list", "ruleset"]), before);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn nft_backend_refuses_a_thread_in_another_namespace() {
    let r = router();
    let nft = r.run(NftJson::default);
    // This thread is in the host namespace: the backend must not run here.
    let err = nft.list_owned().unwrap_err().to_string();
    assert!(err.contains("another network namespace"), "{err}");
}

/// TCP servers answering with their own name, in one namespace each.
struct Server {
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(ns: &Ns, who: &'static str) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let name = ns.0.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        netns::enter(&name).unwrap();
        let l = TcpListener::bind("192.0.2.100:7000").unwrap();
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        while !s.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    std::thread::spawn(move || {
                        let _ = writeln!(c, "{who}");
                        let mut r = BufReader::new(c.try_clone().unwrap());
                        let mut line = String::new();
                        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                            let _ = write!(c, "{who}:{line}");
                            line.clear();
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    rx.recv().unwrap();
    Server { stop }
}

fn connect(client: &Ns) -> (TcpStream, BufReader<TcpStream>, String) {
    let name = client.0.clone();
    let s = std::thread::spawn(move || {
        netns::enter(&name).unwrap();
        TcpStream::connect_timeout(&"192.0.2.100:7000".parse().unwrap(), Duration::from_secs(3))
    })
    .join()
    .unwrap()
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut hello = String::new();
    r.read_line(&mut hello).unwrap();
    (s, r, hello.trim().to_string())
}

fn veth(a: &Ns, a_dev: &str, a_addr: &str, b: &Ns, b_dev: &str, b_addr: &str) {
    sh(&[
        "ip", "link", "add", a_dev, "netns", &a.0, "type", "veth", "peer", "name", b_dev, "netns",
        &b.0,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_dev]);
    a.ip(&["link", "set", a_dev, "up"]);
    b.ip(&["addr", "add", b_addr, "dev", b_dev]);
    b.ip(&["link", "set", b_dev, "up"]);
}

/// client ─ router ─┬─ u1 (via wan0) ─ 192.0.2.100
///                  └─ u2 (via wan1) ─ 192.0.2.100
/// The upstreams know no route back to the LAN, so only NATed flows work.
#[test]
#[ignore = "needs root: network namespaces"]
fn traffic_follows_selection_with_snat_and_conntrack_survives_a_switch() {
    let c = Ns::new("rdt", "c");
    let r = Ns::new("rdt", "r");
    let u1 = Ns::new("rdt", "u1");
    let u2 = Ns::new("rdt", "u2");
    veth(&c, "eth0", "192.168.10.2/24", &r, "lan0", "192.168.10.1/24");
    veth(
        &r,
        "wan0",
        "198.51.100.2/24",
        &u1,
        "eth0",
        "198.51.100.1/24",
    );
    veth(&r, "wan1", "203.0.113.2/24", &u2, "eth0", "203.0.113.1/24");
    c.ip(&["route", "add", "default", "via", "192.168.10.1"]);
    for u in [&u1, &u2] {
        u.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"]);
    }
    r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    r.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    let _s1 = serve(&u1, "u1");
    let _s2 = serve(&u2, "u2");

    let d1 = rendered(PRIORITY, &priority_state("primary"));
    let d2 = rendered(PRIORITY, &priority_state("secondary"));
    let (tx, rx) = std::sync::mpsc::channel::<DesiredState>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let rname = r.0.clone();
    let worker = std::thread::spawn(move || {
        netns::enter(&rname).unwrap();
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        for d in rx {
            let out = reconcile(&mut dp, &d, &mut ledger, &ReconcileOptions::default()).unwrap();
            done_tx.send(out.plan).unwrap();
        }
    });

    tx.send(d1).unwrap();
    done_rx.recv().unwrap();
    let (mut old, mut old_r, who) = connect(&c);
    assert_eq!(who, "u1", "new flows leave through the selected uplink");
    let ct = r.exec(&["conntrack", "-L", "-p", "tcp", "--dport", "7000"]);
    assert!(
        ct.contains("dst=198.51.100.2"),
        "SNAT to wan0's address: {ct}"
    );
    assert!(ct.contains("mark=256"), "{ct}");

    // Switch the selection while the primary stays healthy.
    tx.send(d2).unwrap();
    let plan = done_rx.recv().unwrap();
    assert_eq!(plan.ops.len(), 1, "only the steering table changes: {plan}");

    // The established flow keeps its path, NAT binding and conntrack entry.
    writeln!(old, "still-there").unwrap();
    let mut line = String::new();
    old_r.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "u1:still-there");
    let ct = r.exec(&["conntrack", "-L", "-p", "tcp", "--dport", "7000"]);
    assert!(ct.contains("dst=198.51.100.2"), "{ct}");

    // New flows take the new uplink with its address.
    let (_new, _new_r, who) = connect(&c);
    assert_eq!(who, "u2");
    let ct = r.exec(&["conntrack", "-L", "-p", "tcp", "--dport", "7000"]);
    assert!(
        ct.contains("dst=203.0.113.2"),
        "SNAT to wan1's address: {ct}"
    );
    assert!(ct.contains("dst=198.51.100.2"), "old entry survives: {ct}");

    drop(tx);
    worker.join().unwrap();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn weighted_multipath_route_round_trips() {
    let r = router();
    let mut d = DesiredState::default();
    let mut route = routerd_render::ir::Route::new(
        254,
        "0.0.0.0/0".parse().unwrap(),
        10,
        routerd_render::ir::RouteKind::Unicast,
    );
    route.owner = "x/IPv4Route/default".into();
    route.nexthops = vec![
        routerd_render::ir::NextHop {
            gateway: Some("198.51.100.1".parse().unwrap()),
            device: "wan0".into(),
            weight: 3,
        },
        routerd_render::ir::NextHop {
            gateway: Some("203.0.113.1".parse().unwrap()),
            device: "wan1".into(),
            weight: 1,
        },
    ];
    d.routes.push(route);
    let again = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        reconcile(&mut dp, &d, &mut ledger, &opts).unwrap().plan
    });
    assert!(
        again.is_empty(),
        "observed multipath equals desired: {again}"
    );
    let shown = r.ip(&["route", "show", "default"]);
    assert!(
        shown.contains("nexthop via 198.51.100.1 dev wan0 weight 3"),
        "{shown}"
    );
    assert!(
        shown.contains("nexthop via 203.0.113.1 dev wan1 weight 1"),
        "{shown}"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn events_report_carrier_loss_route_deletion_and_table_flush() {
    use routerd_render::linux::events::{DataplaneEvent, EventStream};
    let r = router();
    let d = rendered(PRIORITY, &priority_state("primary"));
    r.run(move || {
        reconcile(
            &mut dataplane(),
            &d,
            &mut Ledger::default(),
            &ReconcileOptions::default(),
        )
        .unwrap();
    });
    let rx = EventStream::spawn(Some(r.0.clone())).unwrap();
    let t0 = std::time::Instant::now();
    r.ip(&["link", "set", "wan0p", "down"]);
    let carrier_lost = loop {
        match rx.recv_timeout(Duration::from_secs(2)).expect("link event") {
            DataplaneEvent::Link {
                name,
                carrier: false,
                ..
            } if name == "wan0" => {
                break t0.elapsed();
            }
            _ => {}
        }
    };
    assert!(
        carrier_lost < Duration::from_millis(500),
        "{carrier_lost:?}"
    );
    r.ip(&["route", "del", "default", "table", "101"]);
    loop {
        match rx
            .recv_timeout(Duration::from_secs(2))
            .expect("route event")
        {
            DataplaneEvent::Route {
                route,
                removed: true,
            } if route.table == 101 => {
                assert_eq!(route.protocol, 122);
                assert_eq!(route.device.as_deref(), Some("wan1"));
                break;
            }
            _ => {}
        }
    } // Someone flushes an owned nft table: rtnetlink is silent about it, the
    // nftables notification is not.
    r.exec(&["nft", "flush", "table", "ip", "routerd_nat"]);
    loop {
        match rx.recv_timeout(Duration::from_secs(2)).expect("nft event") {
            DataplaneEvent::NftChanged { family, table } if table == "routerd_nat" => {
                assert_eq!(family, 2);
                break;
            }
            _ => {}
        }
    }
}

/// IPv6 routes and rules (fwmark and `iif lo`) through rtnetlink: applied,
/// read back as the same identities (a second reconcile is a no-op) and
/// removed without touching the kernel's own IPv6 routes and rules.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_routes_and_rules_apply_idempotently_and_are_removed() {
    use routerd_render::ir::{Family, Route, RouteKind, Rule};
    let r = router();
    r.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    r.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::2/64",
        "dev",
        "wan0",
        "nodad",
    ]);
    // A foreign IPv6 route in a table routerd writes to must survive.
    r.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:99::/48",
        "dev",
        "wan0",
        "table",
        "100",
        "proto",
        "static",
    ]);
    let foreign_rules = r.ip(&["-6", "rule", "show"]);
    let mut d = DesiredState::default();
    let mut t = Route::new(100, "::/0".parse().unwrap(), 50, RouteKind::Unicast);
    t.gateway = Some("2001:db8:ff::1".parse().unwrap());
    t.device = Some("wan0".into());
    t.owner = "o".into();
    d.routes.push(t);
    let mut b = Route::new(
        254,
        "2001:db8:dead::/48".parse().unwrap(),
        0,
        RouteKind::Blackhole,
    );
    b.owner = "o".into();
    d.routes.push(b);
    d.rules
        .push(Rule::new(10100, 0x100, 100, "o").in_family(Family::V6));
    d.rules.push(
        Rule::new(10200, 0, 100, "o")
            .in_family(Family::V6)
            .with_iif("lo"),
    );
    // A DS-Lite endpoint's `from <addr>/128 lookup main` next to it.
    d.rules
        .push(Rule::new(10150, 0, 254, "o").with_from("2001:db8:ff::2/128".parse().unwrap()));
    let (p1, p2, p3) = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let p1 = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        assert!(p1.faults.is_empty(), "{:?}", p1.faults);
        let p2 = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        let p3 = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
        assert!(ledger.is_empty());
        (p1.plan, p2.plan, p3.plan)
    });
    assert_eq!(p1.ops.len(), 5, "{p1}");
    assert!(
        p1.to_string()
            .contains("ip -6 rule add priority 10200 iif lo table 100"),
        "{p1}"
    );
    assert!(p2.is_empty(), "second apply must be a no-op: {p2}");
    assert_eq!(p3.ops.len(), 5, "{p3}");
    // The kernel adds its own IPv6 routes as link-local addresses settle,
    // so the check is: nothing of routerd's left, the foreign one kept.
    let left = r.ip(&["-6", "route", "show", "table", "all"]);
    assert!(!left.contains("proto 122"), "{left}");
    assert!(
        left.contains("2001:db8:99::/48 dev wan0 table 100 proto static"),
        "{left}"
    );
    assert_eq!(r.ip(&["-6", "rule", "show"]), foreign_rules);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_objects_show_in_ip_as_routerd_writes_them() {
    use routerd_render::ir::{Family, Route, RouteKind, Rule};
    let r = router();
    r.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:ff::2/64",
        "dev",
        "wan0",
        "nodad",
    ]);
    let mut d = DesiredState::default();
    let mut t = Route::new(100, "::/0".parse().unwrap(), 50, RouteKind::Unicast);
    t.gateway = Some("2001:db8:ff::1".parse().unwrap());
    t.device = Some("wan0".into());
    t.preferred_source = Some("2001:db8:ff::2".parse().unwrap());
    t.owner = "o".into();
    d.routes.push(t);
    d.rules.push(
        Rule::new(10200, 0, 100, "o")
            .in_family(Family::V6)
            .with_iif("lo"),
    );
    r.run(move || {
        let out = reconcile(
            &mut dataplane(),
            &d,
            &mut Ledger::default(),
            &ReconcileOptions::default(),
        )
        .unwrap();
        assert!(out.faults.is_empty(), "{:?}", out.faults);
    });
    let t100 = r.ip(&["-6", "route", "show", "table", "100"]);
    assert!(
        t100.starts_with(
            "default via 2001:db8:ff::1 dev wan0 proto 122 src 2001:db8:ff::2 metric 50"
        ),
        "{t100}"
    );
    let rules = r.ip(&["-6", "rule", "show"]);
    assert!(
        rules.contains("10200:\tfrom all iif lo lookup 100 proto 122"),
        "{rules}"
    );
}

/// An IPv6 weighted multipath route (weighted-ecmp of an IPv6 policy in
/// priority mode) is created, read back identical and replaced in place
/// when a member's weight changes.
#[test]
#[ignore = "needs root: network namespaces"]
fn ipv6_weighted_multipath_route_round_trips_and_replaces() {
    use routerd_render::ir::{NextHop, Route, RouteKind};
    let r = router();
    r.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:a::2/64",
        "dev",
        "wan0",
        "nodad",
    ]);
    r.ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:b::2/64",
        "dev",
        "wan1",
        "nodad",
    ]);
    let desired = |w: u16| {
        let mut d = DesiredState::default();
        let mut route = Route::new(300, "::/0".parse().unwrap(), 50, RouteKind::Unicast);
        route.owner = "x/EgressRoutePolicy/p".into();
        route.nexthops = vec![
            NextHop {
                gateway: Some("2001:db8:a::1".parse().unwrap()),
                device: "wan0".into(),
                weight: w,
            },
            NextHop {
                gateway: Some("2001:db8:b::1".parse().unwrap()),
                device: "wan1".into(),
                weight: 1,
            },
        ];
        d.routes.push(route);
        d
    };
    let (again, changed, after) = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let first = reconcile(&mut dp, &desired(3), &mut ledger, &opts).unwrap();
        assert!(first.faults.is_empty(), "{:?}", first.faults);
        let again = reconcile(&mut dp, &desired(3), &mut ledger, &opts)
            .unwrap()
            .plan;
        let changed = reconcile(&mut dp, &desired(2), &mut ledger, &opts).unwrap();
        assert!(changed.faults.is_empty(), "{:?}", changed.faults);
        let after = reconcile(&mut dp, &desired(2), &mut ledger, &opts)
            .unwrap()
            .plan;
        (again, changed.plan, after)
    });
    assert!(
        again.is_empty(),
        "observed multipath equals desired: {again}"
    );
    assert_eq!(changed.ops.len(), 1, "{changed}");
    assert!(after.is_empty(), "{after}");
    let shown = r.ip(&["-6", "route", "show", "table", "300"]);
    assert!(
        shown.contains("nexthop via 2001:db8:a::1 dev wan0 weight 2"),
        "{shown}"
    );
    assert!(
        shown.contains("nexthop via 2001:db8:b::1 dev wan1 weight 1"),
        "{shown}"
    );
    assert!(!shown.contains("weight 3"), "{shown}");
}

const EGRESS_ROUTER: &str = "\
apiVersion: net.routerd.net/v1alpha1
kind: EgressRouter
metadata: {name: er}
spec:
  networkInterface: {macvlan: {master: mst0}}
  addresses: [{ip: 192.0.2.10/24, gateway: 192.0.2.1}]
  redirect:
    redirectRules:
      - {destinationIP: 192.0.2.7, port: 8080, targetPort: 80, protocol: TCP}
";

/// client ─ router (lan0 10.1.0.1; mst0 192.0.2.5, the master; the
/// reserved address 192.0.2.10 on the macvlan routerd creates on it) ─
/// destination 192.0.2.7.
/// The destination has no route back to the client: only the redirected,
/// source-NATed flow can work. An unmapped TCP port is refused at once
/// (TCP reset), not left to time out, even where the host listens on it.
#[test]
#[ignore = "needs root: network namespaces"]
fn egress_router_redirects_from_the_reserved_address_and_resets_unmapped_ports() {
    let c = Ns::new("rdt", "c");
    let r = Ns::new("rdt", "r");
    let d = Ns::new("rdt", "d");
    veth(&c, "eth0", "10.1.0.2/24", &r, "lan0", "10.1.0.1/24");
    veth(&r, "mst0", "192.0.2.5/24", &d, "eth0", "192.0.2.7/24");
    r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let dname = d.0.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        netns::enter(&dname).unwrap();
        let l = TcpListener::bind("192.0.2.7:80").unwrap();
        tx.send(()).unwrap();
        if let Ok((mut s, peer)) = l.accept() {
            let _ = writeln!(s, "{}", peer.ip());
        }
    });
    rx.recv().unwrap();

    // A host service on the unmapped port: the refusal must come from the
    // EgressRouter's rule, not from "nothing listens".
    let rname = r.0.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        netns::enter(&rname).unwrap();
        let l = TcpListener::bind("0.0.0.0:9999").unwrap();
        tx.send(()).unwrap();
        while let Ok((mut s, _)) = l.accept() {
            let _ = writeln!(s, "host service");
        }
    });
    rx.recv().unwrap();

    let desired = rendered(EGRESS_ROUTER, "{}");
    let rname = r.0.clone();
    std::thread::spawn(move || {
        netns::enter(&rname).unwrap();
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        reconcile(&mut dp, &desired, &mut ledger, &ReconcileOptions::default()).unwrap();
    })
    .join()
    .unwrap();

    let cname = c.0.clone();
    let (seen, unmapped) = std::thread::spawn(move || {
        netns::enter(&cname).unwrap();
        let s =
            TcpStream::connect_timeout(&"10.1.0.1:8080".parse().unwrap(), Duration::from_secs(3))
                .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let unmapped =
            TcpStream::connect_timeout(&"10.1.0.1:9999".parse().unwrap(), Duration::from_secs(3));
        (line.trim().to_string(), unmapped)
    })
    .join()
    .unwrap();
    assert_eq!(
        seen, "192.0.2.10",
        "the destination sees the reserved address"
    );
    let carried = r.ip(&["-d", "addr", "show", "rde-er"]);
    assert!(
        carried.contains("macvlan mode bridge") && carried.contains("192.0.2.10/24"),
        "{carried}"
    );
    let err = unmapped.expect_err("an unmapped port must be refused");
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "refused by a reset, not a timeout: {err}"
    );
}

const STATIC_ADDRESSES: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: lan0}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: wan}
spec: {ifname: wan0}
---
apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: ghost}
spec: {ifname: ghost0}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {name: lan-ip}
spec: {interface: lan, address: 192.168.50.1/24, exclusive: true}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {name: wan-ip}
spec: {interface: wan, address: 198.51.100.2/24}
---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {name: ghost}
spec: {interface: ghost, address: 10.200.0.1/24}
";

#[test]
#[ignore = "needs root: network namespaces"]
fn static_addresses_are_assigned_and_removed_and_foreign_ones_left_alone() {
    let r = router();
    r.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    r.ip(&["link", "set", "lan0", "up"]);
    // The operator's address on the same device.
    r.ip(&["addr", "add", "10.77.0.1/24", "dev", "lan0"]);
    let d = rendered(STATIC_ADDRESSES, "{}");
    let (first, second, removal, ledger_after) = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        let opts = ReconcileOptions::default();
        let first = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        let second = reconcile(&mut dp, &d, &mut ledger, &opts).unwrap();
        let owned = ledger.addresses.len();
        let removal = reconcile(&mut dp, &DesiredState::default(), &mut ledger, &opts).unwrap();
        (first, second, removal, (owned, ledger.addresses.len()))
    });
    let lines: Vec<String> = first.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["ip -4 addr add 192.168.50.1/24 dev lan0"],
        "{}",
        first.plan
    );
    let fault = |o: &str| {
        first
            .faults
            .iter()
            .find(|f| f.owner.ends_with(o))
            .map(|f| f.reason.clone())
    };
    assert_eq!(fault("/ghost").as_deref(), Some("DeviceNotReady"));
    assert_eq!(fault("/lan-ip"), None);
    assert_eq!(fault("/wan-ip"), None, "the kernel carries it (foreign)");
    let notes: Vec<&str> = first.notes.iter().map(|n| n.message.as_str()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("198.51.100.2/24 dev wan0 was already there")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("10.77.0.1/24")),
        "exclusive reports the operator's address: {notes:?}"
    );
    assert!(
        second.plan.is_empty(),
        "second apply must be a no-op: {}",
        second.plan
    );
    assert_eq!(ledger_after, (1, 0), "only the added address is owned");
    let lines: Vec<String> = removal.plan.ops.iter().map(ToString::to_string).collect();
    assert_eq!(lines, ["ip -4 addr del 192.168.50.1/24 dev lan0"]);

    // What the kernel holds afterwards: the operator's addresses only.
    let lan = r.ip(&["-4", "-o", "addr", "show", "dev", "lan0"]);
    assert!(lan.contains("10.77.0.1/24"), "{lan}");
    assert!(!lan.contains("192.168.50.1"), "{lan}");
    let wan = r.ip(&["-4", "-o", "addr", "show", "dev", "wan0"]);
    assert!(wan.contains("198.51.100.2/24"), "{wan}");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_added_address_shows_in_ip_while_applied() {
    let r = router();
    r.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ]);
    let d = rendered(STATIC_ADDRESSES, "{}");
    let faults = r.run(move || {
        let mut dp = dataplane();
        let mut ledger = Ledger::default();
        reconcile(&mut dp, &d, &mut ledger, &ReconcileOptions::default())
            .unwrap()
            .faults
    });
    assert_eq!(faults.len(), 1, "only the ghost device waits: {faults:?}");
    let lan = r.ip(&["-4", "-o", "addr", "show", "dev", "lan0"]);
    assert!(lan.contains("inet 192.168.50.1/24"), "{lan}");
}
