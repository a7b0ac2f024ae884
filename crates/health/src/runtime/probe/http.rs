//! HTTP GET over the pinned TCP connection.
//!
//! Hand-written HTTP/1.0 rather than a client library: the socket must be
//! marked and bound before connect, the probe only needs the status line,
//! and hyper would add hyper-util, http-body and their trees for that
//! (docs/health.md, "HTTP").

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::io_failure;
use crate::check::ProbeSpec;
use crate::evidence::{Evidence, FailureKind};
use crate::machine::ProbeReport;
use crate::runtime::socket::base_evidence;

/// Longest status line we read before giving up on the peer.
const MAX_HEAD: usize = 1024;

pub(super) async fn probe(target: IpAddr, spec: &ProbeSpec) -> ProbeReport {
    let start = Instant::now();
    let mut stream = match super::tcp::connect(target, spec).await {
        Ok(s) => s,
        Err(Ok(report)) => return report,
        Err(Err(setup)) => return setup.report(&spec.binding),
    };
    let mut evidence = base_evidence(&spec.binding);
    if let Ok(local) = stream.local_addr() {
        evidence.source_address = Some(local.ip().to_string());
    }
    let addr = SocketAddr::new(target, spec.port);
    let host = spec.http.host.clone().unwrap_or_else(|| match target {
        IpAddr::V4(_) => target.to_string(),
        IpAddr::V6(_) => format!("[{target}]"),
    });
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: routerd-healthcheck\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.http.path
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return io_failure(&spec.binding, format!("send request to {addr}"), &e);
    }
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    let line_end = loop {
        if let Some(p) = head.windows(2).position(|w| w == b"\r\n") {
            break p;
        }
        if head.len() >= MAX_HEAD {
            return protocol_error(evidence, format!("{addr}: status line too long"));
        }
        match stream.read(&mut buf).await {
            Ok(0) => {
                return protocol_error(
                    evidence,
                    format!("{addr}: connection closed before a response"),
                );
            }
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return io_failure(&spec.binding, format!("read response from {addr}"), &e),
        }
    };
    let line = String::from_utf8_lossy(&head[..line_end]).to_string();
    let Some(code) = parse_status_line(&line) else {
        return protocol_error(evidence, format!("{addr}: malformed status line {line:?}"));
    };
    let rtt = start.elapsed();
    if spec.http.accepts(code) {
        let mut r = ProbeReport::passed(format!(
            "GET http://{addr}{} returned {code}",
            spec.http.path
        ))
        .with_evidence(evidence);
        r.rtt = Some(rtt);
        r
    } else {
        evidence.failure_kind = Some(FailureKind::Other);
        ProbeReport::failed(format!(
            "GET http://{addr}{} returned {code}, outside the expected status",
            spec.http.path
        ))
        .with_evidence(evidence)
    }
}

fn protocol_error(mut evidence: Evidence, message: String) -> ProbeReport {
    evidence.failure_kind = Some(FailureKind::Other);
    ProbeReport::failed(message).with_evidence(evidence)
}

/// `HTTP/1.1 204 No Content` → 204.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_status_line;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(parse_status_line("HTTP/1.0 500"), Some(500));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.1 20"), None);
    }
}
