//! The body of fuzz/fuzz_targets/plugin_result.rs over a fixed corpus:
//! single-byte mutations of a valid result must never panic, and every
//! accepted part must keep the protocol's invariants.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use routerd_model::Resource;
use routerd_plugin::part::digest;
use routerd_plugin::{
    PartInput, PartRules, check_against_startup, decode_result, override_policies, part_from_result,
};

const STARTUP: &str = r#"
- {apiVersion: net.routerd.net/v1alpha1, kind: Interface, metadata: {name: wan}, spec: {ifname: ens18}}
- {apiVersion: net.routerd.net/v1alpha1, kind: IPv4Route, metadata: {name: fallback}, spec: {destination: 10.20.0.0/16, device: ens18}}
"#;

const SEED: &str = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"observedAt":"2026-05-28T20:26:00Z","ttl":"5m","resources":[{"apiVersion":"net.routerd.net/v1alpha1","kind":"IPv4Route","metadata":{"name":"r"},"spec":{"destination":"10.40.0.0/16","device":"ens18"}}],"directives":[{"op":"mask","target":{"apiVersion":"net.routerd.net/v1alpha1","kind":"IPv4Route","name":"fallback"}}],"actionPlans":[{"name":"p","provider":"aws","action":"ensure-forwarding-enabled"}]}}"#;

/// Returns whether the input was accepted.
fn body(data: &[u8], startup: &[Resource]) -> bool {
    let Ok(doc) = decode_result("fuzz", data) else {
        return false;
    };
    let now = DateTime::parse_from_rfc3339("2026-05-28T20:27:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let rules = PartRules::default();
    let input = PartInput {
        source: "Plugin/fuzz",
        previous_generation: 41,
        now,
        startup,
        rules: &rules,
    };
    let Ok(part) = part_from_result(doc, input) else {
        return false;
    };
    let s = &part.spec;
    assert_eq!(s.generation, 42);
    let exp = s.expires_at.unwrap();
    assert!(exp > now);
    assert!(exp - s.observed_at.unwrap() <= rules.max_ttl.to_chrono());
    assert_eq!(
        s.digest.as_deref(),
        Some(digest(&s.resources, &s.directives).as_str())
    );
    let _ = check_against_startup(s, startup, &override_policies(startup));
    serde_json::to_string(&part.to_resource()).unwrap();
    true
}

#[test]
fn mutated_results_never_panic() {
    let startup: Vec<Resource> = serde_yaml::from_str(STARTUP).unwrap();
    assert!(body(SEED.as_bytes(), &startup), "the seed must be accepted");
    let replacements = [b'0', b'9', b'"', b'{', b']', b'-', b'h', b' ', 0xff];
    let (mut accepted, mut total) = (0, 0);
    for i in 0..SEED.len() {
        for r in replacements {
            let mut m = SEED.as_bytes().to_vec();
            m[i] = r;
            total += 1;
            if body(&m, &startup) {
                accepted += 1;
            }
        }
        let mut cut = SEED.as_bytes().to_vec();
        cut.truncate(i);
        body(&cut, &startup);
    }
    // Some mutations keep the result valid, most do not: both paths ran.
    assert!(accepted > 0 && accepted < total, "{accepted}/{total}");
}
