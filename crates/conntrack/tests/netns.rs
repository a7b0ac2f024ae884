//! The ctnetlink flusher against a real kernel table, in a throwaway network
//! namespace (root only): 10,000 entries with mark M and some with mark N,
//! flush M, and only M's entries are gone. `conntrack -L` (conntrack-tools)
//! is the independent witness. The timing test prints the median of the
//! flush, for docs/performance.md; it never asserts a duration.

#![cfg(all(target_os = "linux", feature = "netlink"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use routerd_conntrack::{ConntrackFlusher, NetlinkFlusher};

/// A namespace that is deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("rdct-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        Ns(name)
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens stay
    /// there).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    fn conntrack(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "conntrack"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "conntrack {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Entries with `mark`, as `conntrack -L` lists them.
    fn listed(&self, mark: u32) -> usize {
        self.conntrack(&["-L", "-m", &mark.to_string()])
            .lines()
            .filter(|l| l.contains(&format!("mark={mark} ")))
            .count()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tuple(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<Tuple> {
    vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(IpAddr::V4(src)),
            IPTuple::DestinationAddress(IpAddr::V4(dst)),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::Udp),
            ProtoTuple::SourcePort(sport),
            ProtoTuple::DestinationPort(dport),
        ]),
    ]
}

/// Inserts `n` UDP entries with `mark` over ctnetlink, many per datagram
/// (`conntrack -I` once per entry would take minutes). `base` keeps the
/// tuples of different calls apart.
fn insert(n: u32, mark: u32, base: u8) {
    let mut sock = Socket::new(NETLINK_NETFILTER).unwrap();
    sock.bind_auto().unwrap();
    sock.connect(&SocketAddr::new(0, 0)).unwrap();
    let dst = Ipv4Addr::new(192, 0, 2, 1);
    let mut batch = Vec::new();
    let mut pending = 0;
    let mut recv = Vec::with_capacity(1 << 16);
    for i in 0..n {
        let src = Ipv4Addr::new(
            10,
            base,
            u8::try_from(i >> 8 & 0xff).unwrap(),
            u8::try_from(i & 0xff).unwrap(),
        );
        let sport = 1024 + u16::try_from(i >> 16).unwrap();
        let mut h = NetlinkHeader::default();
        // ACK only the last of each batch; a refusal is reported anyway.
        h.flags = NLM_F_REQUEST | NLM_F_CREATE;
        h.sequence_number = i + 1;
        let last = pending == 199 || i + 1 == n;
        if last {
            h.flags |= NLM_F_ACK;
        }
        let mut m = NetlinkMessage::new(
            h,
            NetlinkPayload::from(NetfilterMessage::new(
                NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
                ConntrackMessage::New(vec![
                    ConntrackAttribute::CtaTupleOrig(tuple(src, dst, sport, 53)),
                    ConntrackAttribute::CtaTupleReply(tuple(dst, src, 53, sport)),
                    ConntrackAttribute::CtaTimeout(600),
                    ConntrackAttribute::CtaMark(mark),
                ]),
            )),
        );
        m.finalize();
        let start = batch.len();
        batch.resize(start + m.buffer_len(), 0);
        m.serialize(&mut batch[start..]);
        pending += 1;
        if last {
            sock.send(&batch, 0).unwrap();
            batch.clear();
            pending = 0;
            // Wait for the ACK of the last message; fail on any refusal.
            'ack: loop {
                recv.clear();
                sock.recv(&mut recv, 0).unwrap();
                for msg in routerd_conntrack::reply::messages(&recv) {
                    let msg = msg.unwrap();
                    match msg.reply {
                        routerd_conntrack::reply::Reply::Error(e) => {
                            panic!("insert {} refused: errno {e}", msg.seq)
                        }
                        routerd_conntrack::reply::Reply::Ack if msg.seq == i + 1 => break 'ack,
                        _ => {}
                    }
                }
            }
        }
    }
}

const M: u32 = 0x10;
const N: u32 = 0x20;

#[test]
#[ignore = "needs root: network namespaces"]
fn flush_deletes_only_the_dead_mark() {
    let ns = Ns::new("only");
    let flusher = ns.run(|| {
        insert(10_000, M, 1);
        insert(50, N, 2);
        NetlinkFlusher::open().unwrap()
    });
    // Some entries with mark N from the standard tool as well (without
    // `-u ASSURED`: conntrack-tools 1.4.7 then writes the status bits over
    // the mark).
    for i in 0..5u16 {
        ns.conntrack(&[
            "-I",
            "-p",
            "tcp",
            "-s",
            "10.9.0.1",
            "-d",
            "198.51.100.1",
            "--sport",
            &(2000 + i).to_string(),
            "--dport",
            "443",
            "--state",
            "ESTABLISHED",
            "-t",
            "600",
            "-m",
            &N.to_string(),
        ]);
    }
    assert_eq!(ns.listed(M), 10_000);
    assert_eq!(ns.listed(N), 55);
    assert_eq!(flusher.count_mark(M, u32::MAX).unwrap(), 10_000);

    let report = flusher.flush_mark(M, u32::MAX).unwrap();
    assert_eq!(report.deleted, 10_000);
    assert_eq!(report.remaining, 0);
    assert_eq!(ns.listed(M), 0);
    assert_eq!(ns.listed(N), 55, "entries of the healthy mark survive");

    // Nothing left: a second flush deletes nothing and does not fail.
    let again = flusher.flush_mark(M, u32::MAX).unwrap();
    assert_eq!(again.deleted, 0);
    assert_eq!(ns.listed(N), 55);
}

/// A mask selects a field of the mark: entries whose masked bits differ
/// stay.
#[test]
#[ignore = "needs root: network namespaces"]
fn flush_honours_the_mask() {
    let ns = Ns::new("mask");
    let flusher = ns.run(|| {
        insert(20, 0x0110, 1);
        insert(20, 0x0210, 2);
        insert(20, 0x0120, 3);
        NetlinkFlusher::open().unwrap()
    });
    let r = flusher.flush_mark(0x10, 0xff).unwrap();
    assert_eq!(r.deleted, 40);
    assert_eq!(ns.listed(0x0120), 20);
    assert_eq!(ns.listed(0x0110) + ns.listed(0x0210), 0);
}

/// Prints the median time to flush 10,000 entries of one mark next to 500
/// of another (docs/performance.md). Run in release:
/// `cargo test --release -p routerd-conntrack --features netlink --test netns -- --ignored --nocapture flush_10k`.
#[test]
#[ignore = "needs root: network namespaces"]
fn flush_10k_timing() {
    let ns = Ns::new("time");
    let mut runs = Vec::new();
    for round in 0..7u8 {
        let flusher = ns.run(move || {
            insert(10_000, M, 1);
            insert(500, N, 2 + round);
            NetlinkFlusher::open().unwrap()
        });
        let t = Instant::now();
        let counted = flusher.count_mark(M, u32::MAX).unwrap();
        let dump = t.elapsed();
        let t = Instant::now();
        let r = flusher.flush_mark(M, u32::MAX).unwrap();
        runs.push(t.elapsed());
        println!(
            "round {round}: filtered dump of {counted}: {:.1} ms; flush {:.1} ms",
            ms(dump),
            ms(runs[runs.len() - 1])
        );
        assert_eq!(r.deleted, 10_000);
    }
    runs.sort();
    let median = runs[runs.len() / 2];
    println!(
        "flush of 10,000 entries (one mark, 500+ others kept): median {:.1} ms over {} runs (min {:.1}, max {:.1})",
        ms(median),
        runs.len(),
        ms(runs[0]),
        ms(runs[runs.len() - 1])
    );
    // For comparison: conntrack-tools deletes entry by entry.
    ns.run(|| insert(10_000, M, 1));
    let t = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "conntrack",
            "-D",
            "-m",
            &M.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    println!(
        "conntrack -D -m {M} (one delete per entry): {:.1} ms",
        ms(t.elapsed())
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
