//! `hbeat`: Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! So far it offers only its identity: the tool's features arrive with their issues, none are stubbed.

/// One line saying what the tool is for, shown by `hbeat --help`.
pub const ABOUT: &str = "Director-pair membership and failover: authenticated heartbeats over redundant links; starts and stops resource groups in order";
