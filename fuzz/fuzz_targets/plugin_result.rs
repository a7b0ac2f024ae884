//! The PluginResult decoder and the result-to-part conversion must never
//! panic on plugin stdout, and an accepted part must honour the protocol's
//! invariants (expiry after now and within the TTL cap, generation previous
//! + 1, digest a function of content). crates/plugin/tests/no_panic.rs runs
//! the same body over a fixed, mutated corpus on stable.

#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use routerd_model::Resource;
use routerd_plugin::part::digest;
use routerd_plugin::{
    PartInput, PartRules, check_against_startup, decode_result, override_policies, part_from_result,
};

const STARTUP: &str = r#"
- {apiVersion: net.routerd.net/v1alpha1, kind: Interface, metadata: {name: wan}, spec: {ifname: ens18}}
- {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, metadata: {name: fallback}, spec: {destination: 10.20.0.0/16, device: ens18}}
- apiVersion: config.routerd.net/v1alpha1
  kind: DynamicOverridePolicy
  metadata: {name: p}
  spec: {allow: [{source: Plugin/fuzz, operations: [mask], targets: [{apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, name: fallback}]}]}
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = decode_result("fuzz", data) else {
        return;
    };
    let startup: Vec<Resource> = startup();
    let now: DateTime<Utc> = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    let rules = PartRules::default();
    let input = PartInput {
        source: "Plugin/fuzz",
        previous_generation: 41,
        now,
        startup: &startup,
        rules: &rules,
    };
    let Ok(part) = part_from_result(doc, input) else {
        return;
    };
    let s = &part.spec;
    assert_eq!(s.generation, 42);
    let exp = s.expires_at.unwrap_or_default();
    assert!(exp > now);
    assert!(exp - s.observed_at.unwrap_or_default() <= rules.max_ttl.to_chrono());
    assert_eq!(
        s.digest.as_deref(),
        Some(digest(&s.resources, &s.directives).as_str())
    );
    let _ = check_against_startup(s, &startup, &override_policies(&startup));
    let _ = serde_json::to_string(&part.to_resource());
});

fn startup() -> Vec<Resource> {
    let mut l = routerd_model::Loaded::new();
    l.add_file("startup.yaml", STARTUP);
    l.resources
}
