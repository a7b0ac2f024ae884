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
