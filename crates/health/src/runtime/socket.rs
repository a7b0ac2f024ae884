//! Pinned sockets. Every option is set before `connect`/`send`, because
//! the kernel picks the route at connect time: a mark set afterwards would
//! not move a probe that already left over the main table.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::net::{TcpSocket, UdpSocket};

use crate::binding::Binding;
use crate::evidence::{Evidence, FailureKind};
use crate::machine::ProbeReport;

/// A failure to set up the socket, with the step that failed.
#[derive(Debug)]
pub(crate) struct SetupError {
    pub(crate) step: &'static str,
    pub(crate) err: io::Error,
}

impl SetupError {
    fn at(step: &'static str) -> impl FnOnce(io::Error) -> SetupError {
        move |err| SetupError { step, err }
    }

    pub(crate) fn report(&self, binding: &Binding) -> ProbeReport {
        ProbeReport::failed(format!("{}: {}", self.step, self.err)).with_evidence(Evidence {
            failure_kind: Some(FailureKind::classify(&self.err)),
            ..base_evidence(binding)
        })
    }
}

/// Evidence known before the probe runs: the pinned device and source.
pub(crate) fn base_evidence(binding: &Binding) -> Evidence {
    Evidence {
        egress_interface: binding.device.clone(),
        source_address: binding.source_address.map(|a| a.to_string()),
        ..Evidence::default()
    }
}

/// Sets `SO_MARK` and `SO_BINDTODEVICE`.
pub(crate) fn pin(sock: SockRef<'_>, b: &Binding) -> Result<(), SetupError> {
    if let Some(m) = b.mark {
        sock.set_mark(m).map_err(SetupError::at("set SO_MARK"))?;
    }
    if let Some(d) = &b.device {
        sock.bind_device(Some(d.as_bytes()))
            .map_err(SetupError::at("set SO_BINDTODEVICE"))?;
    }
    Ok(())
}

fn local_for(target: IpAddr, b: &Binding) -> Option<SocketAddr> {
    b.source_address
        .filter(|s| s.is_ipv4() == target.is_ipv4())
        .map(|s| SocketAddr::new(s, 0))
}

/// A TCP socket pinned by `b`, ready to connect to `target`.
pub(crate) fn tcp(target: IpAddr, b: &Binding) -> Result<TcpSocket, SetupError> {
    let s = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(SetupError::at("create socket"))?;
    pin(SockRef::from(&s), b)?;
    if let Some(local) = local_for(target, b) {
        s.bind(local)
            .map_err(SetupError::at("bind source address"))?;
    }
    Ok(s)
}

/// A UDP socket pinned by `b` and connected to `target` (connected so the
/// kernel drops datagrams from anyone else and reports ICMP errors).
pub(crate) async fn udp(target: SocketAddr, b: &Binding) -> Result<UdpSocket, SetupError> {
    let domain = Domain::for_address(target);
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(SetupError::at("create socket"))?;
    pin(SockRef::from(&s), b)?;
    let local = local_for(target.ip(), b).unwrap_or_else(|| match target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    });
    s.bind(&SockAddr::from(local))
        .map_err(SetupError::at("bind source address"))?;
    s.set_nonblocking(true)
        .map_err(SetupError::at("set non-blocking"))?;
    let std: std::net::UdpSocket = s.into();
    let u = UdpSocket::from_std(std).map_err(SetupError::at("register socket"))?;
    u.connect(target).await.map_err(SetupError::at("connect"))?;
    Ok(u)
}
