//! TCP connect: the default protocol (docs/adr/0005-health-defaults.md).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::io_failure;
use crate::check::ProbeSpec;
use crate::machine::ProbeReport;
use crate::runtime::socket::{self, SetupError, base_evidence};

/// Connects over the pinned socket; shared with the HTTP prober.
pub(super) async fn connect(
    target: IpAddr,
    spec: &ProbeSpec,
) -> Result<TcpStream, Result<ProbeReport, SetupError>> {
    let addr = SocketAddr::new(target, spec.port);
    let sock = socket::tcp(target, &spec.binding).map_err(Err)?;
    sock.connect(addr)
        .await
        .map_err(|e| Ok(io_failure(&spec.binding, format!("connect {addr}"), &e)))
}

pub(super) async fn probe(target: IpAddr, spec: &ProbeSpec) -> ProbeReport {
    let start = Instant::now();
    match connect(target, spec).await {
        Ok(stream) => {
            let rtt = start.elapsed();
            let mut evidence = base_evidence(&spec.binding);
            if let Ok(local) = stream.local_addr() {
                evidence.source_address = Some(local.ip().to_string());
            }
            // Reset instead of FIN: a probe needs no orderly close, and
            // thousands of probes a second would otherwise pile up
            // TIME_WAIT sockets (and collide with them, see deps.md §5).
            let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let mut r = ProbeReport::passed(format!(
                "connected to {} in {rtt:?}",
                SocketAddr::new(target, spec.port)
            ))
            .with_evidence(evidence);
            r.rtt = Some(rtt);
            r
        }
        Err(Ok(report)) => report,
        Err(Err(setup)) => setup.report(&spec.binding),
    }
}
