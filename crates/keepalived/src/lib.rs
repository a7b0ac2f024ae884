//! keepalived and conntrackd for EgressGateway groups (issue #18,
//! docs/adr/0017).
//!
//! Electing an active node and moving a virtual IP is VRRP's job, and
//! keeping connection state across a failover is conntrackd's; routerd
//! builds on both instead of inventing an election. This crate turns the
//! model into a per-node [`plan::GroupPlan`], renders both daemons'
//! configurations as pure functions of it ([`render`]), parses keepalived's
//! notify FIFO ([`notify`]), and supervises the daemons ([`supervise`])
//! through the narrow [`supervise::Effects`] trait, with an in-memory twin
//! for tests ([`supervise::MemoryEffects`]) and the real one
//! ([`supervise::SystemEffects`]).

#![deny(missing_docs)]

pub mod advert;
pub mod beacon;
pub mod notify;
pub mod plan;
pub mod render;
pub mod supervise;

pub use notify::{NotifyEvent, VrrpState};
pub use plan::{GatewayPlan, GroupPlan, Paths, PlanError, plan};
