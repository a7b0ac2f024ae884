#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use routerd_model::load_and_validate;

#[test]
fn dslite_example_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/dslite-static-egress.yaml"
    ))
    .unwrap();
    let (l, diags) = load_and_validate(&[("ex.yaml", &text)]);
    for d in &diags {
        eprintln!("{d}");
    }
    assert!(diags.iter().all(|d| !d.is_error()));
    assert_eq!(l.resources.len(), 8);
}

/// Every configuration under examples/ loads with no diagnostic at all (no
/// warnings either), and has the resources its comments describe.
#[test]
fn every_example_is_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let expected = [
        ("dslite-static-egress.yaml", 8),
        ("hash-multipath.yaml", 11),
        ("priority-failover.yaml", 6),
        ("snat-pool.yaml", 6),
        ("ipv6-dual-stack.yaml", 7),
        ("egress-gateway.yaml", 7),
    ];
    for (file, count) in expected {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let (l, diags) = load_and_validate(&[(file, &text)]);
        assert!(diags.is_empty(), "{file}: {diags:#?}");
        assert_eq!(l.resources.len(), count, "{file}");
    }
}
