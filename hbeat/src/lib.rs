//! `hbeat`: Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! - [`msg`]: the heartbeat message shared by the codec and the state machine.
//! - [`frame`]: the wire format (authenticated frames), the replay guard and reject counters.
//! - [`keys`]: the key file and `hbeat keygen`.
//! - [`link`]: the transports that carry frames between nodes (UDP, multicast, broadcast, serial, disk);
//!   [`linkstats`]: per peer and link, loss and lag for status.
//! - [`machine`]: membership and failover, a pure state machine `(now, event) -> actions`.
//! - [`config`]: `hbeat.toml`, validated; [`resource`]: resources parsed, checked and run by a
//!   [`resource::GroupRunner`]; [`check`]: `hbeat check`; [`reload`]: what SIGHUP may change.
//! - [`facts`]: what the failover policies decide on (ping targets), gathered for the machine.
//! - [`import`]: `hbeat import`, heartbeat v1's ha.cf, haresources and authkeys converted.

/// One line saying what the tool is for, shown by `hbeat --help`.
pub const ABOUT: &str = "Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order";

pub mod check;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod frame;
pub mod import;
pub mod keys;
pub mod link;
pub mod linkstats;
pub mod machine;
pub mod msg;
pub mod reload;
pub mod resource;
