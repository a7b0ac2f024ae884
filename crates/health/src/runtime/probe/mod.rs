//! Probers. The scheduler only knows the [`Prober`] trait, so tests feed it
//! scripted results and embedders can add protocols.

mod dns;
mod http;
mod icmp;
mod tcp;

use std::future::Future;

use crate::binding::Binding;
use crate::check::{ProbeSpec, Protocol};
use crate::evidence::{Evidence, FailureKind};
use crate::machine::ProbeReport;

pub use icmp::IcmpMode;

use super::route::{NetlinkRoutes, RouteInfo, RouteLookup};
use super::socket::base_evidence;

/// Runs one probe. Implementations need not enforce `spec.timeout`:
/// [`probe_with_timeout`] does, so a hung implementation cannot stall a check.
pub trait Prober: Send + Sync + 'static {
    /// Probes once.
    fn probe(&self, spec: &ProbeSpec) -> impl Future<Output = ProbeReport> + Send;

    /// The route the kernel picks for this probe (route evidence), asked
    /// before the probe runs so that a probe that times out still says
    /// where it went. `None` (the default) leaves the route fields empty.
    fn route(&self, spec: &ProbeSpec) -> impl Future<Output = Option<RouteInfo>> + Send {
        let _ = spec;
        std::future::ready(None)
    }
}

/// The network prober: TCP connect, ICMP echo, HTTP GET and DNS query, each
/// on a socket pinned by the spec's binding, with route evidence from `R`
/// (rtnetlink by default).
#[derive(Debug, Default)]
pub struct NetProber<R = NetlinkRoutes> {
    icmp: icmp::IcmpState,
    routes: R,
}

impl NetProber {
    /// A prober that picks the ICMP socket kind on first use.
    pub fn new() -> Self {
        NetProber::default()
    }

    /// A prober with a fixed ICMP socket kind.
    pub fn with_icmp_mode(mode: IcmpMode) -> Self {
        NetProber {
            icmp: icmp::IcmpState::fixed(mode),
            routes: NetlinkRoutes::new(),
        }
    }
}

impl<R: RouteLookup> NetProber<R> {
    /// The same prober with another route lookup (for example
    /// [`NoRoutes`](super::route::NoRoutes) where rtnetlink is unavailable).
    pub fn with_routes<L: RouteLookup>(self, routes: L) -> NetProber<L> {
        NetProber {
            icmp: self.icmp,
            routes,
        }
    }

    /// The ICMP socket kind in use, once decided.
    pub fn icmp_mode(&self) -> Option<IcmpMode> {
        self.icmp.mode()
    }
}

impl<R: RouteLookup> Prober for NetProber<R> {
    async fn route(&self, spec: &ProbeSpec) -> Option<RouteInfo> {
        let target = spec.target?;
        self.routes.lookup(target, &spec.binding).await.ok()
    }

    async fn probe(&self, spec: &ProbeSpec) -> ProbeReport {
        let Some(target) = spec.target else {
            return ProbeReport::failed("target is required").with_evidence(Evidence {
                failure_kind: Some(FailureKind::Other),
                ..base_evidence(&spec.binding)
            });
        };
        match spec.protocol {
            Protocol::Tcp => tcp::probe(target, spec).await,
            Protocol::Http => http::probe(target, spec).await,
            Protocol::Dns => dns::probe(target, spec).await,
            Protocol::Icmp => icmp::probe(&self.icmp, target, spec).await,
        }
    }
}

/// Runs `prober` on `spec` under its deadline; past it the result is a
/// `timeout` whatever the prober was doing.
///
/// The route lookup ([`Prober::route`]) runs first, under the same deadline:
/// it describes the route the probe's socket is about to take, and its
/// result goes into every report, passed, failed or timed out. A lookup that
/// fails or runs out of time only leaves the route fields empty.
pub async fn probe_with_timeout<P: Prober + ?Sized>(prober: &P, spec: &ProbeSpec) -> ProbeReport {
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let route = tokio::time::timeout_at(deadline, prober.route(spec))
        .await
        .ok()
        .flatten();
    let start = tokio::time::Instant::now();
    let mut report = match tokio::time::timeout_at(deadline, prober.probe(spec)).await {
        Ok(mut r) => {
            if r.outcome.is_ok() && r.rtt.is_none() {
                r.rtt = Some(start.elapsed());
            }
            r
        }
        Err(_) => timeout_report(spec),
    };
    if let Some(route) = route {
        route.fill(&mut report.evidence);
    }
    report
}

pub(crate) fn timeout_report(spec: &ProbeSpec) -> ProbeReport {
    ProbeReport::timeout(format!(
        "{} {} timed out after {:?}",
        spec.protocol.as_str(),
        spec.endpoint(),
        spec.timeout
    ))
    .with_evidence(Evidence {
        failure_kind: Some(FailureKind::Timeout),
        ..base_evidence(&spec.binding)
    })
}

pub(crate) fn io_failure(binding: &Binding, what: String, err: &std::io::Error) -> ProbeReport {
    ProbeReport::failed(format!("{what}: {err}")).with_evidence(Evidence {
        failure_kind: Some(FailureKind::classify(err)),
        ..base_evidence(binding)
    })
}
