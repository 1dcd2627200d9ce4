//! `fakeip`: takes over and releases virtual IP addresses, announcing them with gratuitous ARP and
//! unsolicited Neighbor Advertisements. The successor of `fake` and heartbeat's IPaddr2 + send_arp.
//!
//! Each command is a function taking the privileged edges as traits ([`Deps`]: interfaces,
//! addresses, announcer from [`common::net`]), so that the logic is unit-tested with the recording
//! fakes on paused tokio time, and proven on real veth links by `tests/tests/fakeip_root.rs`.
//! [`target`] turns the `ADDR dev IFACE` words into validated values before anything is touched;
//! [`ops`] holds `up`, `down`, `status`, `announce` and `probe`; [`hold`] the long-running form
//! that hbeat supervises. `main.rs` only parses the command line and prints.
//!
//! Deliberately not here: choosing the interface from the routing table (IPaddr2's `findif`:
//! name it), routes, the `fake` rc files and router rsh tricks, and any daemon state on disk.

pub mod hold;
pub mod ops;
pub mod target;

use std::time::Duration;

use common::daemon::Exit;
use common::net::{Addresses, Garp, Interfaces, MacAddr, NetError};

/// One line saying what the tool is for, shown by `fakeip --help`.
pub const ABOUT: &str = "Takes over and releases virtual IP addresses, announcing them with gratuitous ARP and unsolicited Neighbor Advertisements";

/// Announcements per burst by default: heartbeat IPaddr2's `arp_count` (5).
pub const DEFAULT_COUNT: u32 = 5;
/// Time between announcements by default: heartbeat IPaddr2's `arp_interval` (200 ms).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);

/// The privileged edges a command works through.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    /// Interface lookup.
    pub interfaces: &'a dyn Interfaces,
    /// Address operations.
    pub addresses: &'a dyn Addresses,
    /// Announcements and probes.
    pub garp: &'a dyn Garp,
}

/// How many announcements to send and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Announcements (each IPv4 one = an ARP request and an ARP reply; IPv6: one NA). 0 = none.
    pub count: u32,
    /// Time from one announcement to the next.
    pub interval: Duration,
}

impl Default for Burst {
    fn default() -> Burst {
        Burst {
            count: DEFAULT_COUNT,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// Why a command failed. [`Error::exit`] maps each to the toolkit's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// Interface, address or announcement failure.
    #[error(transparent)]
    Net(#[from] NetError),
    /// `up --check-conflict`: someone answers for the address.
    #[error("{ip} is in use on {iface} by {mac}: not taking it (--force takes it anyway)")]
    InUse {
        /// The address.
        ip: std::net::IpAddr,
        /// The interface probed.
        iface: String,
        /// Who answered.
        mac: MacAddr,
    },
    /// The address is on the interface with another prefix length.
    #[error(
        "{addr} is on {iface} already as {addr}/{have}, not /{want}: run `fakeip down {addr}/{have} dev {iface}` first, or use /{have}"
    )]
    PrefixMismatch {
        /// The address.
        addr: std::net::IpAddr,
        /// The interface.
        iface: String,
        /// The prefix length found.
        have: u8,
        /// The prefix length asked for.
        want: u8,
    },
    /// The process could not set itself up (tokio runtime, signal handlers).
    #[error("cannot start: {0}")]
    Start(String),
    /// Releasing addresses at the end of `hold` failed for some of them.
    #[error("could not release everything: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Release(Vec<NetError>),
}

impl Error {
    /// The exit code for this failure (`DESIGN.md`: 1 negative answer, 2 usage/config, 111
    /// temporary, 125 permanent).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) | Error::PrefixMismatch { .. } => Exit::Usage,
            Error::InUse { .. } => Exit::Negative,
            Error::Net(n) => match n {
                NetError::NoSuchInterface { .. } | NetError::NotEthernet { .. } => Exit::Usage,
                NetError::Privilege { .. } => Exit::PermFail,
                NetError::InterfaceDown { .. }
                | NetError::Io { .. }
                | NetError::Kernel { .. }
                | NetError::Netlink { .. } => Exit::TempFail,
            },
            Error::Release(_) | Error::Start(_) => Exit::TempFail,
        }
    }
}
