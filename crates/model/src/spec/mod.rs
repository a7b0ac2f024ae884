//! Typed specs, one struct per kind, grouped by API group.

pub mod common;
pub mod config;
pub mod egress_router;
pub mod gateway;
pub mod hybrid;
pub mod ipv6;
pub mod net;
pub mod plugin;

pub use common::*;
pub use config::*;
pub use egress_router::*;
pub use gateway::*;
pub use hybrid::*;
pub use ipv6::*;
pub use net::*;
pub use plugin::*;
