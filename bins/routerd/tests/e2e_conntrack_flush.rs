#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `flushOnFailover: deadPath` end to end (root only): a real `routerd
//! serve` in the lab's router namespace, a long-lived flow on each uplink,
//! the primary dies, and `conntrack -L` before and after shows that only
//! the dead path's entries are gone while the healthy path's flow keeps its
//! entry and still passes data. A busy flow on the dying path (a UDP
//! datagram every 0.5 ms from one socket) is not re-marked onto the new
//! path before the flush can find it: its entry is re-created with the new
//! uplink's NAT address instead of keeping the dead one's.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Daemon, lab, sh};
use routerd_lab::{ChildOutput, ConntrackEntry, Lab, Node, TARGET, Uplink, wait_until};

/// Two policies: `a` (client .10, flushOnFailover: deadPath) prefers wan1
/// (mark 0x10) over wan2 (0x20); `b` (client .11) has only wan2 (0x30), so
/// a flow of `b` lives on the path that stays healthy. The uplinks use
/// static SNAT, not masquerade: the kernel itself kills a masqueraded
/// connection whose packets leave through another interface, so only SNAT
/// shows whether a busy flow keeps a stale binding.
fn config() -> String {
    routerd_lab::router_config("flush") + "    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-snat-wan1}
      spec: {type: snat, egressInterface: wan1, snatAddress: 198.18.1.1, sourceRanges: [192.168.50.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: NAT44Rule
      metadata: {name: lan-snat-wan2}
      spec: {type: snat, egressInterface: wan2, snatAddress: 198.18.2.1, sourceRanges: [192.168.50.0/24]}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: a}
      spec:
        mode: priority
        sourceCIDRs: [192.168.50.10/32]
        hysteresis: 0s
        flushOnFailover: deadPath
        candidates:
          - {name: primary, interface: wan1, gatewaySource: static, gateway: 198.18.1.2,
             mark: 0x10, table: 110, priority: 1100, weight: 80}
          - {name: backup, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x20, table: 120, priority: 1200, weight: 50}
    - apiVersion: net.routerd.net/v1alpha1
      kind: EgressRoutePolicy
      metadata: {name: b}
      spec:
        mode: priority
        sourceCIDRs: [192.168.50.11/32]
        hysteresis: 0s
        candidates:
          - {name: only, interface: wan2, gatewaySource: static, gateway: 198.18.2.2,
             mark: 0x30, table: 130, priority: 1300, weight: 50}
"
}

fn entry_of(entries: &[ConntrackEntry], local: SocketAddr) -> Option<&ConntrackEntry> {
    entries
        .iter()
        .find(|e| e.original.src == local.ip() && e.original.sport == Some(local.port()))
}

fn marked(entries: &[ConntrackEntry], mark: u32) -> usize {
    entries.iter().filter(|e| e.mark == mark).count()
}

/// One UDP socket on 192.168.50.10:40000 sending a datagram to the target
/// every 0.5 ms, forever (python3 is a test dependency, scripts/deps.sh).
const BUSY_UDP: &str = "import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('192.168.50.10', 40000))
while True:
    try:
        s.sendto(b'x', ('203.0.113.1', 9999))
    except OSError:
        pass
    time.sleep(0.0005)
";

/// The conntrack entries of the busy UDP flow.
fn busy(entries: &[ConntrackEntry]) -> Vec<&ConntrackEntry> {
    entries
        .iter()
        .filter(|e| {
            e.protocol == "udp"
                && e.original.src.to_string() == "192.168.50.10"
                && e.original.sport == Some(40000)
                && e.original.dst == std::net::IpAddr::V4(TARGET)
        })
        .collect()
}

fn table(lab: &Lab) -> String {
    sh(lab, "conntrack", &["-L", "-o", "extended"])
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_dead_primary_loses_only_its_connections() {
    let lab = lab("rflsh");
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::new(&lab, dir.path(), "");
    std::fs::write(dir.path().join("config.yaml"), config()).unwrap();
    d.start();

    // Flow 1 from the client's first address: policy a, wan1.
    wait_until(
        || {
            lab.client_flow(Duration::from_millis(500))
                .is_ok_and(|f| f.upstream == Node::Up1)
        },
        Duration::from_secs(20),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| panic!("no flow left through wan1; log:\n{}", d.log()));
    let mut dead_flow = lab.open_long_flow(Duration::from_secs(2)).unwrap();
    assert_eq!(dead_flow.report().upstream, Node::Up1);

    // Flow 2 from a second address: policy b, wan2.
    lab.ip(
        Node::Client,
        &["addr", "add", "192.168.50.11/24", "dev", "eth0"],
    )
    .unwrap();
    lab.ip(
        Node::Client,
        &[
            "route",
            "replace",
            "default",
            "via",
            "192.168.50.1",
            "src",
            "192.168.50.11",
        ],
    )
    .unwrap();
    let mut live_flow = lab.open_long_flow(Duration::from_secs(2)).unwrap();
    // A busy flow of policy a.
    let pinger = lab
        .spawn(Node::Client, "python3", ["-c", BUSY_UDP], ChildOutput::Null)
        .unwrap();
    wait_until(
        || {
            lab.conntrack(Node::Router).is_ok_and(|es| {
                busy(&es).iter().any(|e| {
                    e.mark == 0x10 && e.snat_source() == Some(Uplink::Wan1.router_addr().into())
                })
            })
        },
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("the busy flow is not on wan1:\n{}", table(&lab)));
    assert_eq!(
        live_flow.report().upstream,
        Node::Up2,
        "policy b steers .11 to wan2"
    );
    assert_eq!(live_flow.local_addr().ip().to_string(), "192.168.50.11");

    let before = lab.conntrack(Node::Router).unwrap();
    let dead_before = entry_of(&before, dead_flow.local_addr())
        .unwrap_or_else(|| panic!("flow 1 not tracked:\n{}", table(&lab)));
    assert_eq!(dead_before.mark, 0x10, "{}", table(&lab));
    let live_before = entry_of(&before, live_flow.local_addr())
        .unwrap_or_else(|| panic!("flow 2 not tracked:\n{}", table(&lab)))
        .clone();
    assert_eq!(live_before.mark, 0x30, "{}", table(&lab));

    // wan1 dies: policy a fails over and deletes mark 0x10's entries.
    // Carrier loss takes wan1's address off the router's ARP/route path but
    // not off the interface, so a stale NAT binding would stay visible.
    lab.cut_carrier(Uplink::Wan1).unwrap();
    wait_until(
        || {
            lab.conntrack(Node::Router)
                .is_ok_and(|es| marked(&es, 0x10) == 0)
        },
        Duration::from_secs(15),
        Duration::from_millis(100),
    )
    .unwrap_or_else(|_| {
        panic!(
            "entries of the dead path remain:\n{}\nlog:\n{}",
            table(&lab),
            d.log()
        )
    });
    // The busy flow's entry was deleted and re-created on wan2, never
    // carried over with wan1's NAT binding.
    wait_until(
        || {
            lab.conntrack(Node::Router).is_ok_and(|es| {
                busy(&es)
                    .iter()
                    .any(|e| e.snat_source() == Some(Uplink::Wan2.router_addr().into()))
            })
        },
        Duration::from_secs(5),
        Duration::from_millis(50),
    )
    .unwrap_or_else(|_| panic!("the busy flow never re-appeared on wan2:\n{}", table(&lab)));
    let after = lab.conntrack(Node::Router).unwrap();
    for e in busy(&after) {
        assert_ne!(
            e.snat_source(),
            Some(Uplink::Wan1.router_addr().into()),
            "a busy flow escaped the flush with the dead uplink's NAT binding:\n{}",
            table(&lab)
        );
        assert_eq!(e.mark, 0x20, "{}", table(&lab));
    }
    let _ = lab.stop_child(pinger, Duration::from_secs(2));
    assert!(
        entry_of(&after, dead_flow.local_addr()).is_none(),
        "the dead path's flow is gone:\n{}",
        table(&lab)
    );
    let live_after = entry_of(&after, live_flow.local_addr())
        .unwrap_or_else(|| panic!("the healthy flow lost its entry:\n{}", table(&lab)));
    assert_eq!(live_after.mark, 0x30);
    assert_eq!(live_after.reply, live_before.reply, "same NAT binding");
    live_flow
        .ping(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("the healthy flow stopped passing data: {e}"));
    // The dead flow's entry is not simply re-created with its old mark.
    let _ = dead_flow.ping(Duration::from_millis(300));
    let later = lab.conntrack(Node::Router).unwrap();
    assert_eq!(marked(&later, 0x10), 0, "{}", table(&lab));

    lab.restore(Uplink::Wan1).unwrap();
    d.stop();
    drop(d);
    lab.teardown().unwrap();
}
