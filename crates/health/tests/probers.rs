//! Probers against tiny loopback servers written here (TCP, HTTP, DNS) and
//! the loopback device itself (ICMP, device pinning).
#![cfg(feature = "runtime")]
// Test helpers outside #[test] fns are not covered by clippy.toml's
// allow-unwrap-in-tests; a failed setup should panic here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use routerd_health::runtime::{NetProber, NoRoutes, Prober, RouteInfo, probe_with_timeout};
use routerd_health::{Binding, FailureKind, Outcome, ProbeReport, ProbeSpec, Protocol, QueryType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn spec(protocol: Protocol, port: u16) -> ProbeSpec {
    ProbeSpec::new(LOOPBACK, protocol, port, Duration::from_secs(2))
}

async fn tcp_server() -> (TcpListener, u16) {
    let l = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[tokio::test]
async fn tcp_passes_on_listener_and_fails_refused_without() {
    let (l, port) = tcp_server().await;
    tokio::spawn(async move {
        loop {
            let _ = l.accept().await;
        }
    });
    let p = NetProber::new();
    let r = probe_with_timeout(&p, &spec(Protocol::Tcp, port)).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(r.evidence.source_address.as_deref(), Some("127.0.0.1"));
    assert!(r.rtt.is_some());

    // A port nobody listens on: RST, classified.
    let (l2, closed) = tcp_server().await;
    drop(l2);
    let r = probe_with_timeout(&p, &spec(Protocol::Tcp, closed)).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(
        r.evidence.failure_kind,
        Some(FailureKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn missing_target_fails_with_routerd_message() {
    let mut s = spec(Protocol::Tcp, 1);
    s.target = None;
    let r = probe_with_timeout(&NetProber::new(), &s).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.message, "target is required");
}

#[tokio::test]
async fn device_pinning_is_applied_before_connect() {
    let (l, port) = tcp_server().await;
    tokio::spawn(async move {
        loop {
            let _ = l.accept().await;
        }
    });
    let p = NetProber::new();
    let on_lo = spec(Protocol::Tcp, port).with_binding(Binding {
        device: Some("lo".into()),
        mark: Some(0x10),
        ..Binding::default()
    });
    let r = probe_with_timeout(&p, &on_lo).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(r.evidence.egress_interface.as_deref(), Some("lo"));

    let missing = spec(Protocol::Tcp, port).with_binding(Binding {
        device: Some("rdh-nonexist0".into()),
        ..Binding::default()
    });
    let r = probe_with_timeout(&p, &missing).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.message.starts_with("set SO_BINDTODEVICE"),
        "{}",
        r.message
    );
}

/// Serves one canned status per connection and records request heads.
async fn http_server(status: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let (l, port) = tcp_server().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_string());
                let resp = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn http_accepts_200_to_499_by_default() {
    let p = NetProber::new();
    for (status, ok) in [(200, true), (204, true), (404, true), (503, false)] {
        let (port, seen) = http_server(status).await;
        let mut s = spec(Protocol::Http, port);
        s.http.path = "/healthz".into();
        let r = probe_with_timeout(&p, &s).await;
        assert_eq!(r.outcome.is_ok(), ok, "status {status}: {}", r.message);
        let head = seen.lock().unwrap()[0].clone();
        assert!(head.starts_with("GET /healthz HTTP/1.0\r\n"), "{head}");
        assert!(head.contains("\r\nHost: 127.0.0.1\r\n"), "{head}");
    }
}

#[tokio::test]
async fn http_expected_status_is_configurable() {
    let p = NetProber::new();
    let (port, _) = http_server(302).await;
    let mut s = spec(Protocol::Http, port);
    s.http.expected = vec![(200, 299)];
    s.http.host = Some("probe.example".into());
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.message.contains("returned 302"), "{}", r.message);
    s.http.expected = vec![(200, 299), (302, 302)];
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
}

#[tokio::test]
async fn http_non_http_peer_fails() {
    let (l, port) = tcp_server().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        }
    });
    let r = probe_with_timeout(&NetProber::new(), &spec(Protocol::Http, port)).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.message.contains("malformed status line"), "{}", r.message);
}

/// Answers A queries for `name` with 192.0.2.53, NXDOMAIN otherwise.
async fn dns_server(name: &str) -> (u16, Arc<Mutex<Vec<(String, RecordType)>>>) {
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let zone = Name::from_ascii(name).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let q = Message::from_vec(&buf[..n]).unwrap();
            let query = q.queries[0].clone();
            seen2
                .lock()
                .unwrap()
                .push((query.name().to_ascii(), query.query_type()));
            let mut resp = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            resp.add_query(query.clone());
            let mut qname = query.name().clone();
            qname.set_fqdn(false);
            let mut zone = zone.clone();
            zone.set_fqdn(false);
            if qname != zone {
                resp.metadata.response_code = ResponseCode::NXDomain;
            } else if query.query_type() == RecordType::A {
                resp.answers.push(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
                ));
            }
            let _ = sock.send_to(&resp.to_vec().unwrap(), peer).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn dns_resolves_the_configured_name() {
    let (port, seen) = dns_server("probe.example").await;
    let p = NetProber::new();
    let mut s = spec(Protocol::Dns, port);
    s.dns.query_name = "probe.example".into();
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(
        seen.lock().unwrap()[0],
        ("probe.example.".to_string(), RecordType::A)
    );

    s.dns.query_name = "other.example".into();
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.evidence.failure_kind, Some(FailureKind::DnsError));
    assert!(
        r.message.contains("answered other.example"),
        "{}",
        r.message
    );

    s.dns.query_name = "probe.example".into();
    s.dns.query_type = QueryType::Aaaa;
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Failed, "no AAAA record");
    assert!(r.message.contains("no AAAA record"), "{}", r.message);
}

#[tokio::test]
async fn dns_without_server_fails_fast_or_times_out() {
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    drop(sock);
    let mut s = spec(Protocol::Dns, port);
    s.timeout = Duration::from_millis(500);
    let r = probe_with_timeout(&NetProber::new(), &s).await;
    // Loopback answers with ICMP port unreachable, seen as ECONNREFUSED.
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.message);
    assert_eq!(
        r.evidence.failure_kind,
        Some(FailureKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn timeouts_are_reported_as_timeout() {
    // A listener whose accept queue is never drained still completes the
    // handshake, so stall at the HTTP layer instead: the server never answers.
    let (l, port) = tcp_server().await;
    tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            keep.push(s);
        }
    });
    let mut s = spec(Protocol::Http, port);
    s.timeout = Duration::from_millis(200);
    let r = probe_with_timeout(&NetProber::new(), &s).await;
    assert_eq!(r.outcome, Outcome::Timeout);
    assert_eq!(r.evidence.failure_kind, Some(FailureKind::Timeout));
}

#[tokio::test]
async fn icmp_echo_to_loopback() {
    let p = NetProber::new();
    let s = ProbeSpec::new(LOOPBACK, Protocol::Icmp, 0, Duration::from_secs(2));
    let r = probe_with_timeout(&p, &s).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert!(
        p.icmp_mode().is_some(),
        "socket kind decided and remembered"
    );
    let s6 = ProbeSpec::new(
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        Protocol::Icmp,
        0,
        Duration::from_secs(2),
    );
    let r = probe_with_timeout(&p, &s6).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
}

#[tokio::test]
async fn passed_and_failed_probes_carry_the_route() {
    let (l, port) = tcp_server().await;
    tokio::spawn(async move {
        loop {
            let _ = l.accept().await;
        }
    });
    // A read-only RTM_GETROUTE for 127.0.0.1: the local table, device lo.
    let r = probe_with_timeout(&NetProber::new(), &spec(Protocol::Tcp, port)).await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(r.evidence.out_interface.as_deref(), Some("lo"));
    assert_eq!(r.evidence.route_source.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.evidence.next_hop, None);
    let closed = {
        let (l, port) = tcp_server().await;
        drop(l);
        port
    };
    let r = probe_with_timeout(&NetProber::new(), &spec(Protocol::Tcp, closed)).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.evidence.out_interface.as_deref(), Some("lo"));
    // Without lookups the route fields stay empty and nothing else changes.
    let r = probe_with_timeout(
        &NetProber::new().with_routes(NoRoutes),
        &spec(Protocol::Tcp, port),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Passed, "{}", r.message);
    assert_eq!(r.evidence.out_interface, None);
    assert_eq!(r.evidence.route_source, None);
}

/// Hangs forever, knows its route.
struct Hanging;

impl Prober for Hanging {
    async fn probe(&self, _spec: &ProbeSpec) -> ProbeReport {
        std::future::pending().await
    }

    async fn route(&self, _spec: &ProbeSpec) -> Option<RouteInfo> {
        Some(RouteInfo {
            next_hop: Some("192.0.2.2".parse().unwrap()),
            out_interface: Some("wan0".into()),
            source: Some("192.0.2.1".parse().unwrap()),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_probe_keeps_the_route_looked_up_before_it() {
    let r = probe_with_timeout(&Hanging, &spec(Protocol::Tcp, 1)).await;
    assert_eq!(r.outcome, Outcome::Timeout);
    assert_eq!(r.evidence.failure_kind, Some(FailureKind::Timeout));
    assert_eq!(r.evidence.next_hop.as_deref(), Some("192.0.2.2"));
    assert_eq!(r.evidence.out_interface.as_deref(), Some("wan0"));
    assert_eq!(r.evidence.route_source.as_deref(), Some("192.0.2.1"));
}
