//! Synthetic merge inputs `GenMerge(N, D, K)` from the Go baseline
//! (shared/reference/bench-inputs.md), so the Rust and Go numbers are for the
//! same work. Used by the benchmarks, the RSS driver and the tests.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use routerd_model::spec::{
    AllowRule, Directive, DynamicConfigPartSpec, DynamicOverridePolicySpec, InterfaceSpec,
};
use routerd_model::{Kind, ObjectRef, Resource, Spec};

use crate::part::Part;

/// The counts a correct merge of [`gen_merge`] must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Effective resources: N − M + K·|A| plus the policy resources, which
    /// routerd passes as a separate argument but live in startup here.
    pub effective: usize,
    /// Suppressed startup resources (M = ⌊N/100⌋).
    pub suppressed: usize,
    /// Dynamic resources added (K·|A|).
    pub added: usize,
    /// Active parts (|A|).
    pub active: usize,
    /// Expired parts (D − |A|).
    pub expired: usize,
    /// DynamicOverridePolicy resources.
    pub policies: usize,
}

/// Generated inputs.
#[derive(Debug, Clone)]
pub struct Synth {
    /// N Interfaces followed by the policies.
    pub startup: Vec<Resource>,
    /// D parts.
    pub parts: Vec<Part>,
    /// `2026-05-29T12:00:00Z`.
    pub now: DateTime<Utc>,
    /// What the merge must produce.
    pub expected: Expected,
}

/// The fixed instant of the Go baseline.
pub fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 29, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn interface(name: String, ifname: String) -> Resource {
    Resource::new(
        name,
        Spec::Interface(InterfaceSpec {
            ifname,
            admin_up: Some(true),
            mtu: Some(1500),
            managed: Some(true),
            owner: Some("routerd".into()),
            ..InterfaceSpec::default()
        }),
    )
}

/// One dynamic part of the generator: part `p` (0-based) with `k` resources,
/// expiring at `expires_at`.
pub fn bench_part(
    p: usize,
    k: usize,
    observed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Part {
    let source = format!("bench-src-{p:03}");
    let resources = (0..k)
        .map(|j| interface(format!("d-{p:03}-{j:05}"), format!("x{p:03}{j:05}")))
        .collect();
    Part::new(
        source.clone(),
        DynamicConfigPartSpec {
            source,
            generation: i64::try_from(p).unwrap_or(i64::MAX).saturating_add(1),
            observed_at: Some(observed_at),
            expires_at: Some(expires_at),
            digest: Some("sha256:bench".into()),
            resources,
            directives: Vec::new(),
            action_plans: Vec::new(),
        },
    )
}

/// `GenMerge(N, D, K)`: N startup Interfaces, D parts of K Interfaces, every
/// tenth part expired, 1 % of startup masked by the active parts in turn,
/// one DynamicOverridePolicy per masking part.
pub fn gen_merge(n: usize, d: usize, k: usize) -> Synth {
    let now = bench_now();
    let mut startup: Vec<Resource> = (0..n)
        .map(|i| interface(format!("r-{i:06}"), format!("e{i:06}")))
        .collect();
    let mut parts: Vec<Part> = (0..d)
        .map(|p| {
            let exp = if p % 10 == 9 {
                now - TimeDelta::minutes(1)
            } else {
                now + TimeDelta::hours(1)
            };
            bench_part(p, k, now - TimeDelta::minutes(1), exp)
        })
        .collect();
    let active: Vec<usize> = (0..d).filter(|p| p % 10 != 9).collect();
    let m = if d == 0 { 0 } else { n / 100 };
    if !active.is_empty() {
        for j in 0..m {
            let target = ObjectRef {
                api_version: Kind::Interface.api_version().into(),
                kind: "Interface".into(),
                name: format!("r-{:06}", 100 * j),
            };
            let p = active[j % active.len()];
            if let Some(part) = parts.get_mut(p) {
                part.spec.directives.push(Directive {
                    op: "mask".into(),
                    target,
                    reason: Some(format!("bench mask {j}")),
                });
            }
        }
    }
    let mut policies = 0;
    for &p in &active {
        let Some(part) = parts.get(p) else { continue };
        if part.spec.directives.is_empty() {
            continue;
        }
        policies += 1;
        startup.push(Resource::new(
            part.spec.source.clone(),
            Spec::DynamicOverridePolicy(DynamicOverridePolicySpec {
                allow: vec![AllowRule {
                    source: part.spec.source.clone(),
                    operations: vec!["mask".into()],
                    targets: part
                        .spec
                        .directives
                        .iter()
                        .map(|d| d.target.clone())
                        .collect(),
                }],
            }),
        ));
    }
    let m = if active.is_empty() { 0 } else { m };
    Synth {
        startup,
        parts,
        now,
        expected: Expected {
            effective: n - m + k * active.len() + policies,
            suppressed: m,
            added: k * active.len(),
            active: active.len(),
            expired: d - active.len(),
            policies,
        },
    }
}
