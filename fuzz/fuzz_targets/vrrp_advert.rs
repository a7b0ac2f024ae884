//! VRRP adverts come from the network: the parser must never panic, and
//! what it accepts is an IPv4 packet of protocol 112 sent with TTL 255
//! whose source it reports. crates/keepalived/tests/advert_props.rs runs
//! the same properties with proptest on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerd_keepalived::advert::parse;

fuzz_target!(|data: &[u8]| {
    if let Some(a) = parse(data) {
        assert_eq!(data[0] >> 4, 4);
        assert_eq!(data[8], 255);
        assert_eq!(data[9], 112);
        assert_eq!(a.source.octets(), [data[12], data[13], data[14], data[15]]);
        assert!(a.version == 2 || a.version == 3);
    }
});
