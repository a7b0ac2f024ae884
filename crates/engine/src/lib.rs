//! routerd's daemon library: the reconcile loop, its work queue and the
//! control-socket server. Binaries build the adapters and call into it;
//! time and shutdown are inputs.

#![deny(missing_docs)]

pub mod configfile;
pub mod control;
pub mod core;
pub mod daemon;
pub mod faults;
pub mod flush;
pub mod gateway;
pub mod health;
pub mod links;
pub mod metrics;
pub mod names;
pub mod nftwatch;
pub mod plugins;
pub mod queue;
pub mod watchdog;
