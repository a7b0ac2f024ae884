//! DNS query to the target as a resolver, built and parsed with
//! hickory-proto. Passes when the answer is NOERROR and holds a record of
//! the asked type (routerd: "resolver bound to target resolves example.com").

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::time::Instant;

use super::io_failure;
use crate::check::{ProbeSpec, QueryType};
use crate::evidence::{Evidence, FailureKind};
use crate::machine::ProbeReport;
use crate::runtime::socket::{self, base_evidence};

/// Query ids only need to differ between probes in flight on one socket
/// (each probe has its own connected socket), so a counter will do.
static NEXT_ID: AtomicU16 = AtomicU16::new(0x5eed);

pub(super) async fn probe(target: IpAddr, spec: &ProbeSpec) -> ProbeReport {
    let addr = SocketAddr::new(target, spec.port);
    let rtype = match spec.dns.query_type {
        QueryType::A => RecordType::A,
        QueryType::Aaaa => RecordType::AAAA,
    };
    let mut evidence = base_evidence(&spec.binding);
    let name = match Name::from_ascii(&spec.dns.query_name) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n
        }
        Err(e) => {
            return dns_error(
                evidence,
                format!("query name {:?}: {e}", spec.dns.query_name),
            );
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), rtype));
    let bytes = match query.to_vec() {
        Ok(b) => b,
        Err(e) => return dns_error(evidence, format!("encode query: {e}")),
    };
    let sock = match socket::udp(addr, &spec.binding).await {
        Ok(s) => s,
        Err(setup) => return setup.report(&spec.binding),
    };
    if let Ok(local) = sock.local_addr() {
        evidence.source_address = Some(local.ip().to_string());
    }
    let start = Instant::now();
    if let Err(e) = sock.send(&bytes).await {
        return io_failure(&spec.binding, format!("send query to {addr}"), &e);
    }
    let mut buf = vec![0u8; 4096];
    // Datagrams that do not answer our query (stale, spoofed) are skipped;
    // the caller's deadline bounds the loop.
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => return io_failure(&spec.binding, format!("query {addr}"), &e),
        };
        let Ok(resp) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if resp.metadata.id != id || resp.metadata.message_type != MessageType::Response {
            continue;
        }
        let rtt = start.elapsed();
        let code = resp.metadata.response_code;
        if code != ResponseCode::NoError {
            return dns_error(
                evidence,
                format!("{addr} answered {name} {rtype} with {code}"),
            );
        }
        let hits = resp
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .count();
        if hits == 0 {
            return dns_error(evidence, format!("{addr} has no {rtype} record for {name}"));
        }
        let mut r = ProbeReport::passed(format!(
            "{addr} resolved {name} {rtype} ({hits} record{}) in {rtt:?}",
            if hits == 1 { "" } else { "s" }
        ))
        .with_evidence(evidence);
        r.rtt = Some(rtt);
        return r;
    }
}

fn dns_error(mut evidence: Evidence, message: String) -> ProbeReport {
    evidence.failure_kind = Some(FailureKind::DnsError);
    ProbeReport::failed(message).with_evidence(evidence)
}
