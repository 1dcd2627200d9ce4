//! `fakeip`: Takes over and releases virtual IP addresses, announcing them with gratuitous ARP and unsolicited Neighbor Advertisements.
//!
//! This crate holds the tool's logic as modules; `main.rs` only parses the command line and calls in.
//! So far it offers only its identity: the tool's features arrive with their issues, none are stubbed.

/// One line saying what the tool is for, shown by `fakeip --help`.
pub const ABOUT: &str = "Takes over and releases virtual IP addresses, announcing them with gratuitous ARP and unsolicited Neighbor Advertisements";
