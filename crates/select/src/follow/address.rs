//! The status of an IPv4StaticAddress.
//!
//! routerd's controller reports the address it assigns: `Applied` with
//! `address`, `interface` (the logical name, as routerd's status has it)
//! and `ifname` (the kernel device). Whether the kernel carries it is laid
//! over this by the reconcile (`DeviceNotReady` → `Pending`, an overlap →
//! `Blocked`, a refusal → `Error`), and a false `when` gate by the render
//! (`Pending`, `WhenFalse`), exactly as for routes. The address comes from
//! the spec, so `snatAddressFrom` and `preferredSource` resolve from it
//! offline too.

use chrono::{DateTime, Utc};
use routerd_model::spec::IPv4StaticAddressSpec;
use routerd_model::{Event, Status};
use serde_json::json;

use super::{FollowOptions, FollowOutcome, Subject, non_empty, outcome};
use crate::set::World;

/// routerd's event for an address that was (re)assigned.
pub const IPV4_ADDRESS_APPLIED_EVENT: &str = "routerd.lan.ipv4_address.applied";

/// The status of an IPv4StaticAddress.
pub fn ipv4_static_address(
    who: Subject<'_>,
    spec: &IPv4StaticAddressSpec,
    world: &World,
    previous: Option<&Status>,
    now: DateTime<Utc>,
    options: &FollowOptions,
) -> FollowOutcome {
    let interface = non_empty(Some(&spec.interface)).unwrap_or("");
    let address = spec.address.trim();
    if interface.is_empty() {
        let mut st = Status::new();
        st.insert("phase".into(), json!("Pending"));
        st.insert("reason".into(), json!("InterfaceMissing"));
        st.insert("address".into(), json!(address));
        st.insert("dryRun".into(), json!(options.dry_run));
        return outcome(st, previous, Vec::new());
    }
    let ifname = world.device_of(interface);
    let (st, same) = super::carried_status(
        previous,
        now,
        "Applied",
        "appliedAt",
        options.dry_run,
        &[
            ("address", json!(address)),
            ("interface", json!(interface)),
            ("ifname", json!(ifname)),
        ],
    );
    let mut events = Vec::new();
    if !same {
        events.push(
            Event::info(
                IPV4_ADDRESS_APPLIED_EVENT,
                who.object_ref("IPv4StaticAddress"),
                now,
            )
            .attr("address", address)
            .attr("interface", interface)
            .attr("ifname", &ifname)
            .attr("dryRun", options.dry_run.to_string()),
        );
    }
    outcome(st, previous, events)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> IPv4StaticAddressSpec {
        IPv4StaticAddressSpec {
            interface: "lan".into(),
            address: "192.168.10.1/24".into(),
            ..IPv4StaticAddressSpec::default()
        }
    }

    #[test]
    fn applied_with_the_kernel_name_and_a_kept_stamp_until_something_changes() {
        let mut world = World::default();
        world.aliases.insert("lan".into(), "ens19".into());
        let who = Subject {
            api_version: "net.routerd.net/v1alpha1",
            name: "lan-ip",
        };
        let t0 = crate::time::parse_rfc3339("2026-11-21T09:00:00Z").unwrap();
        let t1 = crate::time::parse_rfc3339("2026-11-21T09:05:00Z").unwrap();
        let opts = FollowOptions::default();
        let a = ipv4_static_address(who, &spec(), &world, None, t0, &opts);
        assert_eq!(a.status["phase"], "Applied");
        assert_eq!(a.status["address"], "192.168.10.1/24");
        assert_eq!(a.status["interface"], "lan");
        assert_eq!(a.status["ifname"], "ens19");
        assert_eq!(a.events.len(), 1);
        assert_eq!(a.events[0].type_, IPV4_ADDRESS_APPLIED_EVENT);

        let b = ipv4_static_address(who, &spec(), &world, Some(&a.status), t1, &opts);
        assert!(!b.status_changed);
        assert!(b.events.is_empty());

        let mut moved = spec();
        moved.address = "192.168.10.2/24".into();
        let c = ipv4_static_address(who, &moved, &world, Some(&b.status), t1, &opts);
        assert!(c.status_changed);
        assert_eq!(c.events.len(), 1);
        assert_ne!(c.status["appliedAt"], a.status["appliedAt"]);
    }

    #[test]
    fn no_interface_is_pending() {
        let who = Subject {
            api_version: "net.routerd.net/v1alpha1",
            name: "x",
        };
        let mut s = spec();
        s.interface = " ".into();
        let t0 = crate::time::parse_rfc3339("2026-11-21T09:00:00Z").unwrap();
        let o = ipv4_static_address(
            who,
            &s,
            &World::default(),
            None,
            t0,
            &FollowOptions::default(),
        );
        assert_eq!(o.status["phase"], "Pending");
        assert_eq!(o.status["reason"], "InterfaceMissing");
    }
}
