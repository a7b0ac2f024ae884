//! The VRRP advert parser over arbitrary bytes (the fuzz target's
//! properties, on stable): never a panic, and an accepted packet is IPv4,
//! protocol 112, TTL 255, reported with its own source address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use routerd_keepalived::advert::parse;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..96)) {
        if let Some(a) = parse(&data) {
            prop_assert_eq!(data[0] >> 4, 4);
            prop_assert_eq!(data[8], 255);
            prop_assert_eq!(data[9], 112);
            prop_assert_eq!(a.source.octets(), [data[12], data[13], data[14], data[15]]);
        }
    }

    #[test]
    fn a_well_formed_advert_is_read_whatever_its_fields(
        src in any::<[u8; 4]>(), vrid in any::<u8>(), prio in any::<u8>(), v3 in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[224, 0, 0, 18]);
        p.extend_from_slice(&[if v3 { 0x31 } else { 0x21 }, vrid, prio, 1, 0, 10, 0, 0]);
        p.extend_from_slice(&tail);
        let a = parse(&p).unwrap();
        prop_assert_eq!(a.source.octets(), src);
        prop_assert_eq!((a.vrid, a.priority, a.version), (vrid, prio, if v3 { 3 } else { 2 }));
    }
}
