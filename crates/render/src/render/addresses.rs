//! IPv4StaticAddress → interface addresses.
//!
//! routerd assigns the address to the interface's kernel device (resolved
//! through the same alias map as routes), drops it when the `when` gate
//! turns false (`Pending`, `WhenFalse`), and blocks a prefix that overlaps
//! another interface's unless `allowOverlap` says it is intended
//! (`Blocked`, `OverlappingIPv4Prefix`). Overlaps with addresses already
//! in the kernel are screened by the reconcile, which sees them.

use ipnet::IpNet;
use routerd_model::Kind;
use routerd_model::spec::{WhenMatch, WhenSpec};
use serde_json::Value;

use super::{Ctx, RenderProblem, Rendered, lookup, value_string};
use crate::ir::{Address, Family};
use crate::reconcile::OVERLAP_REASON;

/// routerd's reason for an address whose `when` gate does not hold.
pub const WHEN_FALSE: &str = "WhenFalse";

pub(super) fn render_static_addresses(ctx: &Ctx<'_>, out: &mut Rendered) {
    // (logical interface, address) of every address rendered so far, for
    // routerd's overlap check between desired prefixes.
    let mut rendered: Vec<(String, Address)> = Vec::new();
    for r in ctx.of_kind(Kind::IPv4StaticAddress) {
        let Some(spec) = r.as_static_address() else {
            continue;
        };
        let owner = r.id().to_string();
        if let Some(when) = &spec.when
            && !when_holds(ctx, when)
        {
            out.problems.push(RenderProblem {
                owner,
                reason: WHEN_FALSE.into(),
                message: "the when gate does not hold; the address is not assigned".into(),
            });
            continue;
        }
        let interface = spec.interface.trim();
        let address = match parse_address(&spec.address) {
            Ok(a) if !interface.is_empty() => a,
            Ok(_) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(
                    owner.clone(),
                    format!("{owner} spec.interface is required"),
                ));
                continue;
            }
            Err(e) => {
                out.desired.retained.insert(owner.clone());
                out.problems.push(RenderProblem::new(
                    owner.clone(),
                    format!("{owner} spec.address {e}"),
                ));
                continue;
            }
        };
        let mut a = Address::new(ctx.alias(interface), address);
        a.allow_overlap = spec.allow_overlap.unwrap_or(false);
        a.exclusive = spec.exclusive.unwrap_or(false);
        a.owner = owner;
        rendered.push((interface.to_string(), a));
    }
    for (interface, a) in &rendered {
        let clash = rendered
            .iter()
            .find(|(i, o)| i != interface && o.owner != a.owner && a.overlaps(&o.address));
        match clash {
            Some((_, o)) if !a.allow_overlap => {
                out.desired.retained.insert(a.owner.clone());
                out.problems.push(RenderProblem {
                    owner: a.owner.clone(),
                    reason: OVERLAP_REASON.into(),
                    message: format!(
                        "IPv4 prefix {} on {} overlaps with desired prefix {} on {}; set allowOverlap with a reason only for intentional NAT/HA cases",
                        a.address.trunc(),
                        a.device,
                        o.address.trunc(),
                        o.device
                    ),
                });
            }
            _ => out.desired.addresses.push(a.clone()),
        }
    }
}

/// `192.0.2.10/24` keeps its host bits; a bare address is a /32.
fn parse_address(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from));
    net.filter(|n| Family::of_net(n) == Family::V4)
        .ok_or_else(|| format!("\"{s}\" is not an IPv4 address with a prefix length"))
}

/// Evaluates a `when` gate over the statuses: a key `Kind/name` reads the
/// resource's `phase`, `Kind/name.field` that field. A value that is not
/// known yet does not match (routerd's indeterminate result), so the
/// address waits. `for` and `maxAge` are not evaluated.
pub(crate) fn when_holds(ctx: &Ctx<'_>, when: &WhenSpec) -> bool {
    if let Some(all) = &when.all
        && !all.iter().all(|w| when_holds(ctx, w))
    {
        return false;
    }
    if let Some(any) = &when.any
        && !any.is_empty()
        && !any.iter().any(|w| when_holds(ctx, w))
    {
        return false;
    }
    when.state
        .iter()
        .flatten()
        .all(|(key, m)| match_holds(state_value(ctx, key), m))
}

fn state_value(ctx: &Ctx<'_>, key: &str) -> Option<String> {
    let (reference, field) = match key.split_once('.') {
        Some((r, f)) => (r, f),
        None => (key, "phase"),
    };
    let st = ctx.status_of_ref(reference)?;
    lookup(st, field).and_then(|v: &Value| value_string(v))
}

fn match_holds(value: Option<String>, m: &WhenMatch) -> bool {
    if let Some(status) = m.status.as_deref() {
        let ok = match status {
            "set" => value.is_some(),
            "unset" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    if let Some(exists) = m.exists
        && exists != value.is_some()
    {
        return false;
    }
    let needs_value = m.equals.is_some() || m.in_.is_some() || m.contains.is_some();
    let Some(v) = value else {
        return !needs_value;
    };
    m.equals.as_deref().is_none_or(|e| e.trim() == v)
        && m.in_
            .as_ref()
            .is_none_or(|list| list.iter().any(|e| e.trim() == v))
        && m.contains.as_deref().is_none_or(|c| v.contains(c.trim()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use routerd_model::{StateSnapshot, load_and_validate};
    use serde_json::json;

    use crate::render::render;

    const INTERFACE: &str = "apiVersion: net.routerd.net/v1alpha1
kind: Interface
metadata: {name: lan}
spec: {ifname: ens19}
";

    fn rendered(addresses: &str, state: &[(&str, serde_json::Value)]) -> crate::render::Rendered {
        let config = format!("{INTERFACE}{addresses}");
        let (loaded, diags) = load_and_validate(&[("c.yaml", &config)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
        let mut snapshot = StateSnapshot::new();
        for (id, st) in state {
            snapshot.insert((*id).into(), serde_json::from_value(st.clone()).unwrap());
        }
        render(&loaded.resources, &snapshot)
    }

    fn gated(when: &str) -> String {
        format!(
            "---
apiVersion: net.routerd.net/v1alpha1
kind: IPv4StaticAddress
metadata: {{name: a}}
spec: {{interface: lan, address: 10.0.0.1/24, when: {when}}}
"
        )
    }

    const WAN: &str = "net.routerd.net/v1alpha1/Interface/lan";

    #[test]
    fn the_address_keeps_its_host_bits_on_the_aliased_device() {
        let r = rendered(
            &gated("{state: {Interface/lan: {exists: true}}}"),
            &[(WAN, json!({"phase": "Up"}))],
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.desired.addresses.len(), 1);
        assert_eq!(r.desired.addresses[0].to_string(), "10.0.0.1/24 dev ens19");
    }

    #[test]
    fn when_gates_read_phase_or_a_field_and_unknown_values_do_not_match() {
        let up = [(WAN, json!({"phase": "Up", "primaryIPv4": "10.0.0.9/24"}))];
        let cases = [
            ("{state: {Interface/lan: {equals: Up}}}", true),
            ("{state: {Interface/lan: {equals: Down}}}", false),
            ("{state: {Interface/lan: {in: [Down, Up]}}}", true),
            (
                "{state: {Interface/lan.primaryIPv4: {contains: '10.0.0.'}}}",
                true,
            ),
            (
                "{state: {Interface/lan.primaryIPv4: {exists: false}}}",
                false,
            ),
            ("{state: {Interface/lan.missing: {status: unset}}}", true),
            (
                "{any: [{state: {Interface/lan: {equals: Down}}}, {state: {Interface/lan: {equals: Up}}}]}",
                true,
            ),
            (
                "{all: [{state: {Interface/lan: {equals: Down}}}, {state: {Interface/lan: {equals: Up}}}]}",
                false,
            ),
        ];
        for (when, holds) in cases {
            let r = rendered(&gated(when), &up);
            assert_eq!(
                r.desired.addresses.len() == 1,
                holds,
                "{when}: {:?}",
                r.problems
            );
            if !holds {
                assert_eq!(r.problems[0].reason, super::WHEN_FALSE, "{when}");
            }
        }
        // No status yet: the gate does not hold, the address waits.
        let r = rendered(&gated("{state: {Interface/lan: {equals: Up}}}"), &[]);
        assert!(r.desired.addresses.is_empty());
    }
}
