//! Round trips: parse → serialize → parse gives the same resource, through
//! YAML and through JSON, for random valid-shaped resources of several
//! kinds and for every example configuration.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use routerd_model::spec::*;
use routerd_model::{Loaded, Metadata, Resource, Spec, load_and_validate};

// ---- strategies ----

/// Short strings, including ones YAML would read as something else if the
/// serializer did not quote them.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9][a-zA-Z0-9 ._:/-]{0,12}",
        1 => prop::sample::select(vec![
            "", "true", "no", "1", "0x10", "1e3", "null", "~", "- x", "a: b", "#c", "'q'",
            "\"dq\"", "${x}", "@at", "ü€😀", " lead", "trail ", "multi\nline", "tab\there",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn name() -> BoxedStrategy<String> {
    "[a-z][a-z0-9-]{0,10}".boxed()
}

fn opt_text() -> BoxedStrategy<Option<String>> {
    option::of(text()).boxed()
}

fn opt_int() -> BoxedStrategy<Option<i64>> {
    option::of(any::<i64>()).boxed()
}

fn strings() -> BoxedStrategy<Vec<String>> {
    vec(text(), 0..3).boxed()
}

fn metadata() -> BoxedStrategy<Metadata> {
    (
        name(),
        btree_map(name(), text(), 0..3),
        btree_map("routerd\\.net/[a-z-]{1,8}", text(), 0..2),
    )
        .prop_map(|(name, labels, annotations)| Metadata {
            name,
            labels,
            annotations,
            ..Metadata::default()
        })
        .boxed()
}

fn status_source() -> BoxedStrategy<StatusValueSource> {
    (text(), opt_text(), option::of(any::<bool>()))
        .prop_map(|(resource, field, optional)| StatusValueSource {
            resource,
            field,
            optional,
        })
        .boxed()
}

fn dependency() -> BoxedStrategy<ResourceDependency> {
    (
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(resource, field, phase, equals, not_empty, optional)| ResourceDependency {
                resource,
                field,
                phase,
                equals,
                not_empty,
                optional,
            },
        )
        .boxed()
}

fn when_match() -> BoxedStrategy<WhenMatch> {
    (
        option::of(any::<bool>()),
        opt_text(),
        option::of(strings()),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |(exists, equals, in_, contains, status, for_, max_age)| WhenMatch {
                exists,
                equals,
                in_,
                contains,
                status,
                for_,
                max_age,
            },
        )
        .boxed()
}

fn when() -> BoxedStrategy<WhenSpec> {
    let leaf = option::of(btree_map(text(), when_match(), 0..3)).prop_map(|state| WhenSpec {
        state,
        ..WhenSpec::default()
    });
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            option::of(vec(inner.clone(), 0..3)),
            option::of(vec(inner, 0..3)),
        )
            .prop_map(|(all, any)| WhenSpec {
                all,
                any,
                ..WhenSpec::default()
            })
    })
    .boxed()
}

fn interface() -> BoxedStrategy<Spec> {
    (
        text(),
        option::of(any::<bool>()),
        opt_int(),
        option::of(any::<bool>()),
        opt_text(),
        option::of(when()),
    )
        .prop_map(|(ifname, admin_up, mtu, managed, owner, when)| {
            Spec::Interface(InterfaceSpec {
                ifname,
                admin_up,
                mtu,
                managed,
                owner,
                when,
            })
        })
        .boxed()
}

fn health_check() -> BoxedStrategy<Spec> {
    (
        (
            option::of(any::<bool>()),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_int(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_int(),
            opt_int(),
        ),
        option::of((opt_text(), opt_text(), strings())),
        option::of((opt_text(), opt_text())),
    )
        .prop_map(|(a, b, http, dns)| {
            let mut s = HealthCheckSpec {
                enabled: a.0,
                type_: a.1,
                role: a.2,
                address_family: a.3,
                target: a.4,
                target_source: a.5,
                interface: a.6,
                port: b.0,
                interval: b.1,
                failing_interval: b.2,
                timeout: b.3,
                healthy_threshold: b.4,
                unhealthy_threshold: b.5,
                ..HealthCheckSpec::default()
            };
            s.protocol = s.role.clone();
            s.http = http.map(|(path, host, expected_status)| HttpProbeSpec {
                path,
                host,
                expected_status,
            });
            s.dns = dns.map(|(query_name, query_type)| DnsProbeSpec {
                query_name,
                query_type,
            });
            Spec::HealthCheck(s)
        })
        .boxed()
}

fn target() -> BoxedStrategy<EgressTarget> {
    (
        (opt_text(), opt_text(), opt_text(), opt_text()),
        option::of(status_source()),
        (opt_text(), opt_int(), opt_int(), opt_int(), opt_int()),
        (opt_int(), opt_int(), opt_text()),
    )
        .prop_map(|(a, gateway_from, b, c)| EgressTarget {
            name: a.0,
            interface: a.1,
            outbound_interface: a.2,
            gateway: a.3,
            gateway_from,
            gateway_source: b.0,
            table: b.1,
            route_table: b.2,
            priority: b.3,
            mark: b.4,
            route_metric: c.0,
            metric: c.1,
            health_check: c.2,
        })
        .boxed()
}

fn candidate() -> BoxedStrategy<EgressCandidate> {
    (
        (
            opt_text(),
            option::of(any::<bool>()),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (option::of(status_source()), option::of(status_source())),
        (opt_text(), opt_text(), opt_text(), opt_int(), opt_int()),
        (
            opt_int(),
            opt_int(),
            opt_int(),
            opt_int(),
            opt_int(),
            opt_text(),
        ),
        (
            vec(target(), 0..3),
            vec(dependency(), 0..2),
            option::of(when()),
        ),
    )
        .prop_map(|(a, froms, b, c, d)| EgressCandidate {
            name: a.0,
            enabled: a.1,
            source: a.2,
            interface: a.3,
            device: a.4,
            device_from: froms.0,
            gateway_from: froms.1,
            gateway: b.0,
            gateway_source: b.1,
            preferred_source: b.2,
            table: b.3,
            route_table: b.4,
            route_metric: c.0,
            metric: c.1,
            priority: c.2,
            mark: c.3,
            weight: c.4,
            health_check: c.5,
            targets: d.0,
            depends_on: d.1,
            when: d.2,
        })
        .boxed()
}

fn egress_policy() -> BoxedStrategy<Spec> {
    (
        (opt_text(), option::of(any::<bool>()), opt_text()),
        (
            strings(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings(),
        ),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            option::of(any::<bool>()),
        ),
        (vec(candidate(), 0..4), option::of(when()), opt_text()),
    )
        .prop_map(|(a, lists, b, c)| {
            Spec::EgressRoutePolicy(EgressRoutePolicySpec {
                family: a.0,
                host_traffic: a.1,
                mode: a.2,
                source_cidrs: lists.0,
                destination_cidrs: lists.1,
                destination_set_refs: lists.2,
                exclude_destination_set_refs: lists.3,
                exclude_destination_cidrs: lists.4,
                hash_fields: lists.5,
                selection: b.0,
                hysteresis: b.1,
                preempt_delay: b.2,
                preempt: b.3,
                multipath_table: None,
                multipath_priority: None,
                multipath_mark: None,
                flush_on_failover: None,
                candidates: c.0,
                when_no_candidate: c.2,
                when: c.1,
            })
        })
        .boxed()
}

fn ipv4_route() -> BoxedStrategy<Spec> {
    (
        (text(), opt_text(), opt_text(), option::of(status_source())),
        (
            opt_text(),
            option::of(status_source()),
            opt_text(),
            opt_int(),
        ),
        (vec(dependency(), 0..3), option::of(when())),
    )
        .prop_map(|(a, b, c)| {
            Spec::IPv4Route(IPv4RouteSpec {
                destination: a.0,
                type_: a.1,
                device: a.2,
                device_from: a.3,
                gateway: b.0,
                gateway_from: b.1,
                preferred_source: b.2,
                metric: b.3,
                depends_on: c.0,
                when: c.1,
            })
        })
        .boxed()
}

fn nat44() -> BoxedStrategy<Spec> {
    let translation = (
        opt_text(),
        opt_text(),
        strings(),
        option::of((opt_text(), opt_int(), opt_int())),
    )
        .prop_map(|(type_, address, addresses, pm)| NatTranslation {
            type_,
            address,
            addresses,
            port_mapping: pm.map(|(type_, start, end)| PortMapping { type_, start, end }),
        });
    (
        (opt_text(), opt_text(), opt_text()),
        (strings(), strings(), strings(), strings(), strings()),
        (
            opt_text(),
            option::of(status_source()),
            opt_text(),
            strings(),
        ),
        (option::of(translation), option::of(when())),
    )
        .prop_map(|(a, l, b, c)| {
            Spec::NAT44Rule(NAT44RuleSpec {
                type_: a.0,
                egress_interface: a.1,
                egress_policy_ref: a.2,
                source_ranges: l.0,
                destination_cidrs: l.1,
                exclude_destination_cidrs: l.2,
                destination_set_refs: l.3,
                exclude_destination_set_refs: l.4,
                snat_address: b.0,
                snat_address_from: b.1,
                outbound_interface: b.2,
                source_cidrs: b.3,
                translation: c.0,
                when: c.1,
            })
        })
        .boxed()
}

fn object_ref() -> BoxedStrategy<routerd_model::ObjectRef> {
    (text(), text(), text())
        .prop_map(|(api_version, kind, name)| routerd_model::ObjectRef {
            api_version,
            kind,
            name,
        })
        .boxed()
}

fn override_policy() -> BoxedStrategy<Spec> {
    vec(
        (text(), strings(), vec(object_ref(), 0..3)).prop_map(|(source, operations, targets)| {
            AllowRule {
                source,
                operations,
                targets,
            }
        }),
        0..3,
    )
    .prop_map(|allow| Spec::DynamicOverridePolicy(DynamicOverridePolicySpec { allow }))
    .boxed()
}

fn plugin() -> BoxedStrategy<Spec> {
    let trigger = (text(), opt_text(), opt_text()).prop_map(|(type_, every, topic)| Trigger {
        type_,
        every,
        topic,
    });
    (
        text(),
        opt_text(),
        btree_map("[A-Z_]{1,6}", text(), 0..3),
        strings(),
        vec(trigger, 0..3),
        option::of(vec(object_ref(), 0..2)),
    )
        .prop_map(|(executable, timeout, env, capabilities, triggers, ctx)| {
            Spec::Plugin(PluginSpec {
                executable,
                timeout,
                env,
                capabilities,
                triggers,
                context: ctx.map(|resources| PluginContextSpec { resources }),
            })
        })
        .boxed()
}

fn status() -> BoxedStrategy<Option<routerd_model::Status>> {
    let leaf = prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
    ];
    option::of(
        btree_map(name(), leaf, 0..4).prop_map(|m: BTreeMap<String, serde_json::Value>| {
            m.into_iter().collect::<routerd_model::Status>()
        }),
    )
    .boxed()
}

fn dslite() -> BoxedStrategy<Spec> {
    (
        (
            text(),
            opt_text(),
            option::of(any::<bool>()),
            opt_text(),
            opt_text(),
        ),
        (
            strings(),
            opt_int(),
            opt_text(),
            option::of(status_source()),
        ),
        (
            opt_text(),
            opt_text(),
            option::of(status_source()),
            opt_text(),
        ),
        (
            opt_text(),
            opt_text(),
            option::of(any::<bool>()),
            opt_int(),
            opt_int(),
        ),
        (opt_text(), option::of(when()), vec(dependency(), 0..2)),
    )
        .prop_map(|(a, b, c, d, e)| {
            Spec::DSLiteTunnel(DSLiteTunnelSpec {
                interface: a.0,
                tunnel_name: a.1,
                enabled: a.2,
                aftr_fqdn: a.3,
                aftr_ipv6: a.4,
                aftr_dns_servers: b.0,
                aftr_address_ordinal: b.1,
                aftr_address_selection: b.2,
                aftr_from: b.3,
                remote_address: c.0,
                local_address: c.1,
                local_address_from: c.2,
                local_address_source: c.3,
                local_delegated_address: d.0,
                local_address_suffix: d.1,
                default_route: d.2,
                route_metric: d.3,
                mtu: d.4,
                encapsulation_limit: e.0,
                when: e.1,
                depends_on: e.2,
                local_ipv6_source: None,
            })
        })
        .boxed()
}

fn overlay_peer() -> BoxedStrategy<Spec> {
    (
        opt_text(),
        opt_text(),
        option::of((opt_text(), opt_text(), opt_text())),
        option::of((opt_text(), opt_text())),
        option::of(option::of(any::<bool>())),
    )
        .prop_map(|(role, node_id, underlay, remote, mtu)| {
            Spec::OverlayPeer(OverlayPeerSpec {
                role,
                node_id,
                underlay: underlay.map(|(type_, interface, address)| Underlay {
                    type_,
                    interface,
                    address,
                }),
                remote: remote.map(|(node_id, address)| RemotePeer { node_id, address }),
                path_mtu: mtu.map(|force_fragment_ipv4| PathMtu {
                    force_fragment_ipv4,
                }),
            })
        })
        .boxed()
}

fn hybrid_route() -> BoxedStrategy<Spec> {
    (
        strings(),
        opt_text(),
        option::of((opt_text(), opt_int())),
        opt_text(),
    )
        .prop_map(|(destination_cidrs, peer_ref, install, health_check_ref)| {
            Spec::HybridRoute(HybridRouteSpec {
                destination_cidrs,
                peer_ref,
                install: install.map(|(table, metric)| RouteInstall { table, metric }),
                health_check_ref,
            })
        })
        .boxed()
}

fn resource() -> BoxedStrategy<Resource> {
    let spec = prop_oneof![
        interface(),
        health_check(),
        egress_policy(),
        ipv4_route(),
        nat44(),
        override_policy(),
        plugin(),
        dslite(),
        overlay_peer(),
        hybrid_route(),
    ];
    (metadata(), spec, status())
        .prop_map(|(metadata, spec, status)| {
            let mut r = Resource::new(metadata.name.clone(), spec);
            r.metadata = metadata;
            r.status = status;
            r
        })
        .boxed()
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn yaml_round_trip(r in resource()) {
        let yaml = serde_yaml::to_string(&r).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let back = Resource::from_value(value)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(&back, &r, "{}", yaml);
        // And serializing again is a fixed point.
        prop_assert_eq!(serde_yaml::to_string(&back).unwrap(), yaml);
    }

    #[test]
    fn json_round_trip(r in resource()) {
        let json = serde_json::to_string(&r).unwrap();
        let back: Resource = serde_json::from_str(&json)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{json}")))?;
        prop_assert_eq!(&back, &r, "{}", json);
    }

    /// Through the loader too: a stream of serialized resources loads back
    /// to the same resources, with no decoding diagnostics (validation may
    /// reject the random values, decoding must not).
    #[test]
    fn loader_round_trip(rs in vec(resource(), 1..5)) {
        let docs: Vec<String> = rs.iter().map(|r| serde_yaml::to_string(r).unwrap()).collect();
        let text = docs.join("---\n");
        let mut l = Loaded::new();
        l.add_file("rt.yaml", &text);
        prop_assert!(l.diagnostics.is_empty(), "{:?}\n{}", l.diagnostics, text);
        prop_assert_eq!(&l.resources, &rs);
    }
}

// ---- examples ----

fn example_configs() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            out.push((
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    out.sort();
    assert!(out.len() >= 4, "examples missing: {out:?}");
    out
}

#[test]
fn examples_are_fixed_points() {
    for (name, text) in example_configs() {
        let (l, diags) = load_and_validate(&[(&name, &text)]);
        assert!(diags.iter().all(|d| !d.is_error()), "{name}: {diags:#?}");
        // Serialize as a stream of bare resources, load again: same resources.
        let yaml: Vec<String> = l
            .resources
            .iter()
            .map(|r| serde_yaml::to_string(r).unwrap())
            .collect();
        let stream = yaml.join("---\n");
        let (l2, d2) = load_and_validate(&[(&name, &stream)]);
        assert!(d2.iter().all(|d| !d.is_error()), "{name}: {d2:#?}");
        assert_eq!(l2.resources, l.resources, "{name}");
        // A second serialization is byte-identical.
        let again: Vec<String> = l2
            .resources
            .iter()
            .map(|r| serde_yaml::to_string(r).unwrap())
            .collect();
        assert_eq!(again.join("---\n"), stream, "{name}");
        // JSON too.
        for r in &l.resources {
            let json = serde_json::to_string(r).unwrap();
            let back: Resource = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, r, "{name}");
        }
    }
}
