//! The effectful half (feature `runtime`): tokio probers pinned to their
//! path, route evidence from rtnetlink, one scheduler for every check, and
//! a netlink carrier watcher.
//!
//! Time is read through tokio's clock only (and [`clock::Clock`] for wall
//! timestamps), so tests run the scheduler on paused time.

pub mod carrier;
pub mod clock;
pub mod probe;
pub mod route;
pub mod scheduler;
mod socket;

pub use carrier::{LinkEvent, LinkEvents, MemoryLinks, MemoryLinksSender, NetlinkLinks, NoLinks};
pub use clock::{Clock, TokioClock};
pub use probe::{IcmpMode, NetProber, Prober, probe_with_timeout};
pub use route::{NetlinkRoutes, NoRoutes, RouteInfo, RouteLookup};
pub use scheduler::{Jitter, Options, Scheduler, SchedulerHandle, Stats, Update};
