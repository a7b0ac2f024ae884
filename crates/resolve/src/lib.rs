//! DNS names as IPAddressSet members (issue #14 item 4).
//!
//! Three parts, so the daemon's loop never waits on DNS and the rules are
//! testable without a network:
//! - [`Resolver`]: the one question routerd asks DNS ("the A or AAAA
//!   addresses of this exact name, and their TTL"), with an in-memory twin
//!   ([`MemoryResolver`]) for tests and, with feature `system`, a hickory
//!   resolver that reads `resolv.conf` ([`system::SystemResolver`]).
//! - [`refresh`]: the pure rules: when a name is due again, what a failure
//!   does (keeps the last good addresses), the set's effective members and
//!   the status published for it. No tokio, no clock: time is passed in.
//! - The task that runs resolutions with a timeout and hands results to the
//!   loop lives in the daemon (routerd-engine), beside the health driver.

pub mod memory;
pub mod refresh;
#[cfg(feature = "system")]
pub mod system;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

pub use memory::MemoryResolver;
pub use refresh::{FLOOR, SetSpec, SetState};

/// The record type asked for: an `ipv4` set wants A records, an `ipv6`
/// set AAAA records (a set holds one family, as its nft set does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

impl Family {
    /// The family of an IPAddressSet's `spec.family` (`ipv4` when empty).
    pub fn of_spec(family: Option<&str>) -> Family {
        match family {
            Some("ipv6") => Family::V6,
            _ => Family::V4,
        }
    }

    /// Whether `a` belongs to this family.
    pub fn holds(self, a: &IpAddr) -> bool {
        matches!(
            (self, a),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }

    /// The DNS record type name.
    pub fn record_type(self) -> &'static str {
        match self {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.record_type())
    }
}

/// A successful answer: the addresses and the smallest TTL among their
/// records (None when the source has no TTL, such as a hosts file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// Addresses of the asked family.
    pub addresses: Vec<IpAddr>,
    /// Smallest record TTL.
    pub ttl: Option<Duration>,
}

/// Why a name gave no addresses. Each is a failure that keeps the name's
/// last good addresses: a name that stops resolving is far more often a
/// DNS outage than a service that moved to nowhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name exists nowhere or has no record of the family.
    #[error("{name}: no {family} records")]
    NoRecords {
        /// The name asked.
        name: String,
        /// The record type asked.
        family: Family,
    },
    /// The resolver failed (no server answered, SERVFAIL, bad config).
    #[error("{name}: {message}")]
    Failed {
        /// The name asked.
        name: String,
        /// What the resolver said.
        message: String,
    },
    /// No answer within the time the daemon allows one resolution.
    #[error("{name}: no answer within {}s", .after.as_secs())]
    Timeout {
        /// The name asked.
        name: String,
        /// The limit.
        after: Duration,
    },
}

/// What a [`Resolver`] returns.
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Answer, ResolveError>> + Send + 'a>>;

/// The resolver routerd needs: addresses of one exact name (no search
/// domains beyond what the resolver configuration says) in one family.
pub trait Resolver: Send + Sync + 'static {
    /// Resolves `name` for `family`. Implementations return
    /// [`ResolveError::NoRecords`] rather than an empty answer.
    fn resolve<'a>(&'a self, name: &'a str, family: Family) -> ResolveFuture<'a>;
}
