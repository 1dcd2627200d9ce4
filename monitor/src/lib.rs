//! `monitor`: Probes hosts and services on schedules and runs alerts; one-shot probes for shell pipelines and cron.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! So far it offers only its identity: the tool's features arrive with their issues, none are stubbed.

/// One line saying what the tool is for, shown by `monitor --help`.
pub const ABOUT: &str = "Probes hosts and services on schedules and runs alerts; one-shot probes for shell pipelines and cron";
