//! Suitability beacons come from the network: the parser must never
//! panic, and what it accepts is a version-1 beacon of a named node that
//! encodes back to an equal one. crates/keepalived/tests/advert_props.rs
//! runs the same properties with proptest on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerd_keepalived::beacon::{MAX_LEN, parse};

fuzz_target!(|data: &[u8]| {
    if let Some(b) = parse(data) {
        assert!(data.len() <= MAX_LEN);
        assert_eq!(b.v, 1);
        assert!(!b.node.trim().is_empty());
        assert_eq!(parse(&b.encode()), Some(b));
    }
});
