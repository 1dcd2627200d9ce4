//! `ldir`: Programs the kernel IPVS table from one TOML file per virtual service and health-checks
//! the real servers.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! - [`config`]: the files, read and validated into a typed [`config::Config`].
//! - [`import`]: `ldir import`, ldirectord.cf converted into those files.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod director;
pub mod import;
pub mod state;
pub mod status;
pub mod watch;

/// One line saying what the tool is for, shown by `ldir --help`.
pub const ABOUT: &str = "Programs the kernel IPVS table from one TOML file per virtual service and health-checks the real servers";
