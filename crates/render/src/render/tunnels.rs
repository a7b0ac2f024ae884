//! TunnelInterface → a kernel link routerd creates and owns, and its inner
//! address (routerd-spec §1.8; routerd itself only defines the kind).
//!
//! `vxlan` (ours: VNI in `key`, UDP port in `encapDport`, default 4789),
//! `ipip`, `gre` (with its `key`), and routerd's `fou` and `gue` (ipip
//! inside UDP, with the FOU port that receives it) become links of the IR;
//! the reconcile creates them through netlink and a kernel refusal (a
//! missing module, say) is a fault of the TunnelInterface alone: the rest
//! of the router still applies.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use routerd_model::Kind;
use routerd_model::spec::TunnelInterfaceSpec;
use routerd_model::spec::common::StatusValueSource;

use super::{Ctx, RenderProblem, Rendered};
use crate::ir::{Address, IFNAME_MAX, Link, LinkKind, UdpEncap, UdpEncapKind};

/// IANA's VXLAN port, the default of `encapDport` for vxlan.
pub const VXLAN_PORT: u16 = 4789;

pub(super) fn render_tunnel_interfaces(ctx: &Ctx<'_>, out: &mut Rendered) {
    for r in ctx.of_kind(Kind::TunnelInterface) {
        let Some(spec) = r.as_tunnel_interface() else {
            continue;
        };
        let owner = r.id().to_string();
        match link_of(ctx, r.name(), spec, &owner) {
            Ok(Some((link, address))) => {
                if let Some(a) = address {
                    let mut a = Address::new(link.name.clone(), a);
                    a.owner = owner.clone();
                    out.desired.addresses.push(a);
                }
                out.desired.links.push(link);
            }
            // An endpoint read from a status that has none yet: keep what
            // is there (fail-static), like a route without its device.
            Ok(None) => {
                out.desired.retained.insert(owner);
            }
            Err(message) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(owner, message));
            }
        }
    }
}

/// The kernel name of a TunnelInterface: `ifname`, else its name.
pub fn tunnel_ifname<'a>(name: &'a str, spec: &'a TunnelInterfaceSpec) -> &'a str {
    spec.ifname
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
}

fn endpoint(
    ctx: &Ctx<'_>,
    literal: Option<&str>,
    from: Option<&StatusValueSource>,
) -> Option<String> {
    literal
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            from.and_then(|f| ctx.status_value(f))
                .map(|v| v.split('/').next().unwrap_or("").trim().to_string())
                .filter(|v| !v.is_empty())
        })
}

type Rendering = Option<(Link, Option<IpNet>)>;

/// A UDP port field: none or 0 is unset, else 1-65535.
fn udp_port(id: &str, what: &str, v: Option<i64>) -> Result<Option<u16>, String> {
    v.filter(|p| *p != 0)
        .map(|p| u16::try_from(p).map_err(|_| format!("{id} spec.{what} must be within 1-65535")))
        .transpose()
}

/// The UDP encapsulation of a fou or gue tunnel: ports from `spec.encap`
/// or routerd's `encapSport`/`encapDport` (validation requires the
/// destination port); a source port of 0 or none is `auto`.
fn udp_encap(spec: &TunnelInterfaceSpec, mode: &str, id: &str) -> Result<UdpEncap, String> {
    let e = spec.encap.clone().unwrap_or_default();
    let dport = udp_port(id, "encap.dport", e.dport.or(spec.encap_dport))?.ok_or_else(|| {
        format!("{id} spec.encap.dport must be within 1-65535 when spec.mode is {mode}")
    })?;
    Ok(UdpEncap {
        kind: if mode == "gue" {
            UdpEncapKind::Gue
        } else {
            UdpEncapKind::Fou
        },
        sport: udp_port(id, "encap.sport", e.sport.or(spec.encap_sport))?,
        dport,
    })
}

fn link_of(
    ctx: &Ctx<'_>,
    name: &str,
    spec: &TunnelInterfaceSpec,
    id: &str,
) -> Result<Rendering, String> {
    let ifname = tunnel_ifname(name, spec);
    if ifname.len() > IFNAME_MAX {
        return Err(format!(
            "{id} kernel name {ifname:?} is longer than {IFNAME_MAX} bytes; set spec.ifname"
        ));
    }
    let mode = spec.mode.as_deref().map(str::trim).unwrap_or("");
    let (Some(local), Some(remote)) = (
        endpoint(ctx, spec.local.as_deref(), spec.local_from.as_ref()),
        endpoint(ctx, spec.remote.as_deref(), spec.remote_from.as_ref()),
    ) else {
        return Ok(None);
    };
    let v4 = |what: &str, s: &str| {
        s.parse::<Ipv4Addr>()
            .map_err(|_| format!("{id} spec.{what} must be an IPv4 address (got {s:?})"))
    };
    let kind = match mode {
        "vxlan" => {
            let vni = spec
                .key
                .and_then(|k| u32::try_from(k).ok())
                .filter(|k| *k <= 0x00ff_ffff)
                .ok_or_else(|| {
                    format!("{id} spec.key is required when spec.mode is vxlan (the VNI)")
                })?;
            let dstport = udp_port(id, "encapDport", spec.encap_dport)?.unwrap_or(VXLAN_PORT);
            LinkKind::Vxlan {
                vni,
                local: Some(IpAddr::V4(v4("local", &local)?)),
                remote: Some(IpAddr::V4(v4("remote", &remote)?)),
                dstport,
                device: spec
                    .underlay_interface
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| ctx.alias(s)),
            }
        }
        "ipip" => LinkKind::Ipip {
            local: Some(v4("local", &local)?),
            remote: v4("remote", &remote)?,
            encap: None,
        },
        "gre" => LinkKind::Gre {
            local: Some(v4("local", &local)?),
            remote: v4("remote", &remote)?,
            key: spec
                .key
                .map(|k| {
                    u32::try_from(k)
                        .map_err(|_| format!("{id} spec.key must be within 0-4294967295"))
                })
                .transpose()?,
            encap: None,
        },
        // routerd's fou and gue: IPv4-in-IPv4 inside UDP.
        "fou" | "gue" => LinkKind::Ipip {
            local: Some(v4("local", &local)?),
            remote: v4("remote", &remote)?,
            encap: Some(udp_encap(spec, mode, id)?),
        },
        other => return Err(format!("{id} spec.mode {other:?} cannot be created")),
    };
    let mut link = Link::new(ifname, kind);
    link.mtu = spec
        .mtu
        .filter(|m| *m > 0)
        .and_then(|m| u32::try_from(m).ok());
    link.owner = id.to_string();
    let address = spec
        .address
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| {
            a.parse::<IpNet>()
                .map_err(|e| format!("{id} spec.address: must be an IPv4 prefix: {e}"))
        })
        .transpose()?;
    Ok(Some((link, address)))
}
