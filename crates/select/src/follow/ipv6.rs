//! The status of an IPv6StaticRoute.
//!
//! routerd hands IPv6StaticRoute to its platform network backend; here it
//! is a main-table route like IPv4Route, so it reports the same way: the
//! intended route is `Installed` (with `installedAt` kept while nothing
//! changes), and what the kernel cannot carry (its device missing, a
//! refusal) is laid over that by the reconcile (`DeviceNotReady` →
//! `Pending`, otherwise `Error`). It follows no selection: every field is
//! literal, and the interface resolves through the alias map.

use chrono::{DateTime, Utc};
use routerd_model::spec::IPv6StaticRouteSpec;
use routerd_model::{Event, Status};
use serde_json::json;

use super::{FollowOptions, FollowOutcome, Subject, non_empty, outcome};
use crate::set::World;

/// The event of an IPv6StaticRoute whose install-relevant fields changed.
pub const IPV6_ROUTE_INSTALLED_EVENT: &str = "routerd.ipv6.route.installed";

/// The status of an IPv6StaticRoute. Status keys follow routerd's
/// `provides` for the kind (`destination`, `gateway`, `interface`) plus
/// IPv4Route's bookkeeping (`device`, `metric`, `dryRun`, `installedAt`,
/// `changed`).
pub fn ipv6_static_route(
    who: Subject<'_>,
    spec: &IPv6StaticRouteSpec,
    world: &World,
    previous: Option<&Status>,
    now: DateTime<Utc>,
    options: &FollowOptions,
) -> FollowOutcome {
    let interface = non_empty(Some(&spec.interface)).unwrap_or("");
    let device = if interface.is_empty() {
        String::new()
    } else {
        world.device_of(interface)
    };
    if device.is_empty() {
        let mut st = Status::new();
        st.insert("phase".into(), json!("Pending"));
        st.insert("reason".into(), json!("DeviceMissing"));
        st.insert("message".into(), json!("no interface"));
        return outcome(st, previous, Vec::new());
    }
    let destination = spec.destination.trim();
    let gateway = spec.via.trim();
    let metric = spec.metric.unwrap_or(0);
    let (st, same) = super::installed_status(
        previous,
        now,
        options.dry_run,
        &[
            ("destination", json!(destination)),
            ("gateway", json!(gateway)),
            ("interface", json!(interface)),
            ("device", json!(device)),
            ("metric", json!(metric)),
        ],
    );
    let mut events = Vec::new();
    if !same {
        events.push(
            Event::info(
                IPV6_ROUTE_INSTALLED_EVENT,
                who.object_ref("IPv6StaticRoute"),
                now,
            )
            .attr("destination", destination)
            .attr("gateway", gateway)
            .attr("device", &device)
            .attr("dryRun", options.dry_run.to_string()),
        );
    }
    outcome(st, previous, events)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> IPv6StaticRouteSpec {
        IPv6StaticRouteSpec {
            destination: "2001:db8:1::/64".into(),
            via: "fe80::1".into(),
            interface: "wan".into(),
            metric: Some(200),
        }
    }

    #[test]
    fn installed_with_the_alias_and_kept_stamp_until_something_changes() {
        let mut world = World::default();
        world.aliases.insert("wan".into(), "ens18".into());
        let who = Subject {
            api_version: "net.routerd.net/v1alpha1",
            name: "r",
        };
        let t0 = crate::time::parse_rfc3339("2026-11-21T09:00:00Z").unwrap();
        let t1 = crate::time::parse_rfc3339("2026-11-21T09:05:00Z").unwrap();
        let opts = FollowOptions::default();
        let a = ipv6_static_route(who, &spec(), &world, None, t0, &opts);
        assert_eq!(a.status["phase"], "Installed");
        assert_eq!(a.status["device"], "ens18");
        assert_eq!(a.status["gateway"], "fe80::1");
        assert_eq!(a.events.len(), 1);
        assert_eq!(a.events[0].type_, IPV6_ROUTE_INSTALLED_EVENT);
        let b = ipv6_static_route(who, &spec(), &world, Some(&a.status), t1, &opts);
        assert!(b.events.is_empty());
        assert_eq!(b.status["installedAt"], a.status["installedAt"]);
        assert_eq!(b.status["changed"], false);
        let mut moved = spec();
        moved.via = "fe80::2".into();
        let c = ipv6_static_route(who, &moved, &world, Some(&b.status), t1, &opts);
        assert_eq!(c.events.len(), 1);
        assert_ne!(c.status["installedAt"], a.status["installedAt"]);
    }
}
