//! Address and neighbour primitives shared by the tools that move virtual IPs (`fakeip`, and
//! through it `hbeat`): [frames](frame) (pure ARP/NA builder and parser), [interfaces](iface)
//! (index, MAC, up/down), [address operations](addr) over rtnetlink, and [announcements](garp)
//! over an `AF_PACKET` socket, and [link notifications](links) (carrier, deletion) through
//! rtnetlink.
//!
//! Every privileged edge sits behind a small trait with one real implementation and one recording
//! fake: [`Interfaces`] (`SystemInterfaces` / `FakeInterfaces`), [`Addresses`] (`Rtnetlink` /
//! `RecordingAddresses`), [`Garp`] (`PacketGarp` / `RecordingGarp`). The fakes are for unit tests of
//! the tools' logic; the real implementations are proven on veth links in network namespaces
//! (`tests/tests/fakeip_root.rs`).
//!
//! Deliberately not here: routes, neighbour-table edits, changing links (creating, renaming), and any
//! policy (how often to announce, what to do on conflict): that belongs to the tools.

pub mod addr;
pub mod frame;
pub mod garp;
pub mod iface;
pub mod linkcodec;
pub mod links;
pub mod rtcodec;

use std::io;

pub use addr::{
    AddrCall, Addresses, AsyncAddresses, Change, IfAddr, RecordingAddresses, Rtnetlink,
};
pub use frame::{ArpFrame, ArpOp, Frame, FrameError, MacAddr, NaFrame};
pub use garp::{AsyncGarp, Garp, GarpCall, PacketGarp, RecordingGarp};
pub use iface::{FakeInterfaces, Interface, Interfaces, SystemInterfaces};
pub use links::{LinkEvent, LinkTable, LinkWatcher};

/// The message every privilege error carries, so that users know what to grant.
pub const PRIVILEGE_HINT: &str =
    "needs CAP_NET_ADMIN and CAP_NET_RAW (run as root or grant both capabilities)";

/// Why an interface, address or announcement operation failed. Each variant names the object and
/// the operation, and says what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No interface by that name in this network namespace.
    #[error("interface {name}: no such interface (see `ip link`)")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// The interface exists but is administratively down.
    #[error("interface {name} is down: bring it up first (`ip link set {name} up`)")]
    InterfaceDown {
        /// The interface.
        name: String,
    },
    /// ARP/NA need an Ethernet interface with a MAC address.
    #[error(
        "interface {name} is not an Ethernet interface (link type {link_type}): there is no ARP or neighbour discovery on it"
    )]
    NotEthernet {
        /// The interface.
        name: String,
        /// `ARPHRD_*` of the interface.
        link_type: u16,
    },
    /// The kernel said EPERM/EACCES.
    #[error("{op}: permission denied: {PRIVILEGE_HINT}")]
    Privilege {
        /// What was being done, e.g. `add 192.0.2.100/24 to eth0`.
        op: String,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a netlink request.
    #[error("{op}: the kernel refused: {reason}")]
    Kernel {
        /// What was being done.
        op: String,
        /// The positive errno.
        errno: i32,
        /// The errno in words, plus the kernel's extended-ack message when it sent one.
        reason: String,
    },
    /// A netlink message could not be built, sent or parsed.
    #[error("{op}: netlink: {detail}")]
    Netlink {
        /// What was being done.
        op: String,
        /// What went wrong.
        detail: String,
    },
}

impl NetError {
    /// An `Io` error, or `Privilege` when the error is EPERM/EACCES.
    pub fn io(op: impl Into<String>, source: io::Error) -> NetError {
        let op = op.into();
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => NetError::Privilege { op },
            _ => NetError::Io { op, source },
        }
    }

    /// True for missing privileges.
    pub fn is_privilege(&self) -> bool {
        matches!(self, NetError::Privilege { .. })
    }
}
