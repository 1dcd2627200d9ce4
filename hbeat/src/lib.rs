//! `hbeat`: Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! - [`msg`]: the heartbeat message shared by the codec and the state machine.
//! - [`config`]: `hbeat.toml`, validated; [`resource`]: resources parsed, checked and run by a
//!   [`resource::GroupRunner`]; [`check`]: `hbeat check`.

/// One line saying what the tool is for, shown by `hbeat --help`.
pub const ABOUT: &str = "Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order";

pub mod check;
pub mod config;
pub mod msg;
pub mod resource;
