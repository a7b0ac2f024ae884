//! The parsers of what other hosts send (the fuzz targets' properties, on
//! stable): a VRRP advert is accepted only as IPv4, protocol 112, TTL 255,
//! reported with its own source address; a suitability beacon only as a
//! version-1 beacon of a named node, which encodes back to itself; neither
//! ever panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use routerd_keepalived::advert::parse;
use routerd_keepalived::beacon;

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

    #[test]
    fn arbitrary_beacon_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Some(b) = beacon::parse(&data) {
            prop_assert_eq!(b.v, 1);
            prop_assert_eq!(beacon::parse(&b.encode()), Some(b));
        }
    }

    #[test]
    fn every_beacon_reads_back(
        node in "[a-z][a-z0-9-]{0,20}",
        gws in proptest::collection::btree_map("[a-z0-9-]{1,12}", any::<bool>(), 0..8),
    ) {
        let b = beacon::Beacon::new(&node, gws);
        prop_assert_eq!(beacon::parse(&b.encode()), Some(b));
    }
}
