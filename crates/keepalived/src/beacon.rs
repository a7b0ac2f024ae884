//! Suitability beacons between the members of gateway groups: each node
//! tells the others, twice a second over UDP, which of its gateways it is
//! suitable for. keepalived has no such channel (a standby is silent in
//! VRRP), and `readyNodes` of a gateway's status needs every member's
//! view, not only this node's and the active one's.
//!
//! A beacon only feeds status: the election stays keepalived's, so a
//! forged or lost beacon can make `readyNodes` wrong for a moment, never
//! move a role. The payload is one line of JSON, small and versioned; the
//! parser takes any bytes and never panics (fuzzed:
//! `fuzz/fuzz_targets/gateway_beacon.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// UDP port of the beacons (next to conntrackd's 3780).
pub const PORT: u16 = 3781;

/// Largest beacon accepted: a node in a few hundred gateways fits.
pub const MAX_LEN: usize = 16 * 1024;

/// What one node says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// Format version (1).
    pub v: u32,
    /// The sending node's name.
    pub node: String,
    /// Per gateway name: whether the sender is suitable for it.
    pub suitable: BTreeMap<String, bool>,
}

impl Beacon {
    /// A beacon of version 1.
    pub fn new(node: &str, suitable: BTreeMap<String, bool>) -> Beacon {
        Beacon {
            v: 1,
            node: node.to_string(),
            suitable,
        }
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Reads a datagram; `None` for anything that is not a version-1 beacon of
/// a named node within [`MAX_LEN`].
pub fn parse(data: &[u8]) -> Option<Beacon> {
    if data.len() > MAX_LEN {
        return None;
    }
    let b: Beacon = serde_json::from_slice(data).ok()?;
    (b.v == 1 && !b.node.trim().is_empty()).then_some(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_beacon_reads_back_and_anything_else_is_refused() {
        let b = Beacon::new(
            "gw-a",
            [
                ("egress-gw".to_string(), true),
                ("other".to_string(), false),
            ]
            .into(),
        );
        assert_eq!(parse(&b.encode()), Some(b.clone()));
        let mut v2 = b.clone();
        v2.v = 2;
        assert_eq!(parse(&v2.encode()), None);
        let mut anon = b;
        anon.node = " ".into();
        assert_eq!(parse(&anon.encode()), None);
        assert_eq!(parse(b"not json"), None);
        assert_eq!(parse(&[0xff; 8]), None);
        let big = format!(
            r#"{{"v":1,"node":"n","suitable":{{"{}":true}}}}"#,
            "x".repeat(MAX_LEN)
        );
        assert_eq!(parse(big.as_bytes()), None);
    }
}
