//! routerd's dataplane: what the kernel should hold, how that differs from
//! what it holds, and how to change only the difference.
//!
//! * [`ir`]: typed desired state (routes, fwmark rules, owned nft tables);
//! * [`render()`]: effective config + status snapshot → desired state;
//! * [`diff()`](diff::diff): desired + observed + [`Ledger`] → ordered [`Plan`];
//! * [`Dataplane`]: observe/apply port, with [`MemDataplane`] for tests and
//!   offline plans, and (feature `linux`) the netlink + nft implementation;
//! * [`reconcile()`](reconcile::reconcile): observe → diff → apply → verify,
//!   rolling back a failed apply.
//!
//! Everything but the `linux` module is pure: no sockets, no processes, no
//! async runtime, so `routerctl plan` links only that part.

#![deny(missing_docs)]

pub mod capture;
pub mod dataplane;
pub mod diff;
pub mod fault;
pub mod ir;
pub mod ledger;
pub mod nft_backend;
pub mod nft_json;
pub mod nft_netlink;
pub mod nft_text;
pub mod plan;
pub mod reconcile;
pub mod render;

#[cfg(feature = "linux")]
pub mod linux;

pub use dataplane::{
    ApplyError, Dataplane, DataplaneError, MemDataplane, Observed, SharedMemDataplane,
};
pub use diff::{diff, diff_with};
pub use ir::DesiredState;
pub use ledger::{Ledger, Ownership};
pub use plan::{Op, Plan};
pub use reconcile::{Fault, Outcome, ReconcileError, ReconcileOptions, reconcile, reconcile_with};
pub use render::{Rendered, render};
