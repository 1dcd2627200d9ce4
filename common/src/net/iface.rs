//! Interface lookup: index, link type, MAC address, and whether the interface is up, in the
//! caller's network namespace.
//!
//! [`SystemInterfaces`] asks the kernel through `getifaddrs(3)` (nix's safe wrapper: one rtnetlink
//! dump in the caller's namespace, no privileges needed, no dependence on a `/sys` mounted for the
//! right namespace): its `AF_PACKET` entry carries the index, link type and MAC, its flags up and
//! carrier;
//! [`FakeInterfaces`] serves a fixed list for unit tests. Deliberately not here: listing all
//! interfaces, watching link changes, or changing a link.

use std::sync::Mutex;

use super::NetError;
use super::frame::MacAddr;

/// `if_arp.h: ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;
/// `if_arp.h: ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// What the tools need to know about one interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index (`if_nametoindex`).
    pub index: u32,
    /// Link type, `ARPHRD_*` (1 for Ethernet, veth, bridges, bonds).
    pub link_type: u16,
    /// Hardware address, for Ethernet interfaces.
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Has carrier (`IFF_RUNNING`, RFC 2863 operational state up).
    pub carrier: bool,
}

impl Interface {
    /// The MAC address, or [`NetError::NotEthernet`] for interfaces without one.
    pub fn ethernet_mac(&self) -> Result<MacAddr, NetError> {
        match self.mac {
            Some(mac) if self.link_type == ARPHRD_ETHER => Ok(mac),
            _ => Err(NetError::NotEthernet {
                name: self.name.clone(),
                link_type: self.link_type,
            }),
        }
    }

    /// `Ok(())` when up, else [`NetError::InterfaceDown`].
    pub fn require_up(&self) -> Result<(), NetError> {
        if self.up {
            Ok(())
        } else {
            Err(NetError::InterfaceDown {
                name: self.name.clone(),
            })
        }
    }

    /// A test interface: Ethernet, up, with carrier.
    pub fn ethernet(name: &str, index: u32, mac: MacAddr) -> Interface {
        Interface {
            name: name.to_owned(),
            index,
            link_type: ARPHRD_ETHER,
            mac: Some(mac),
            up: true,
            carrier: true,
        }
    }
}

/// Looks up interfaces by name.
pub trait Interfaces: Send + Sync {
    /// The interface called `name`, or [`NetError::NoSuchInterface`].
    fn interface(&self, name: &str) -> Result<Interface, NetError>;
}

/// The kernel's interfaces, through `getifaddrs(3)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemInterfaces;

impl Interfaces for SystemInterfaces {
    fn interface(&self, name: &str) -> Result<Interface, NetError> {
        let no_such = || NetError::NoSuchInterface {
            name: name.to_owned(),
        };
        // IFNAMSIZ counts the terminating NUL.
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(no_such());
        }
        let all = nix::ifaddrs::getifaddrs()
            .map_err(|e| NetError::io(format!("look up interface {name}"), e.into()))?;
        // Every link has one AF_PACKET entry (glibc builds it from RTM_NEWLINK).
        let found = all.filter(|i| i.interface_name == name).find_map(|i| {
            let link = *i.address.as_ref()?.as_link_addr()?;
            Some((i.flags, link))
        });
        let (flags, link) = found.ok_or_else(no_such)?;
        let link_type = link.hatype();
        let mac = (link_type == ARPHRD_ETHER && link.halen() == 6)
            .then(|| link.addr().map(MacAddr))
            .flatten();
        Ok(Interface {
            name: name.to_owned(),
            index: u32::try_from(link.ifindex()).map_err(|_| no_such())?,
            link_type,
            mac,
            up: flags.contains(nix::net::if_::InterfaceFlags::IFF_UP),
            carrier: flags.contains(nix::net::if_::InterfaceFlags::IFF_RUNNING),
        })
    }
}

/// A fixed set of interfaces for unit tests; [`FakeInterfaces::set_up`] flips one.
#[derive(Debug, Default)]
pub struct FakeInterfaces {
    list: Mutex<Vec<Interface>>,
}

impl FakeInterfaces {
    /// Serves `list`.
    pub fn new(list: Vec<Interface>) -> FakeInterfaces {
        FakeInterfaces {
            list: Mutex::new(list),
        }
    }

    /// Marks `name` up or down.
    pub fn set_up(&self, name: &str, up: bool) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        for i in list.iter_mut().filter(|i| i.name == name) {
            i.up = up;
        }
    }
}

impl Interfaces for FakeInterfaces {
    fn interface(&self, name: &str) -> Result<Interface, NetError> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|i| i.name == name)
            .cloned()
            .ok_or_else(|| NetError::NoSuchInterface {
                name: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_is_not_ethernet() {
        let lo = SystemInterfaces.interface("lo").unwrap();
        assert_eq!(lo.index, 1);
        assert_eq!(lo.link_type, ARPHRD_LOOPBACK);
        assert!(lo.up);
        assert!(matches!(
            lo.ethernet_mac(),
            Err(NetError::NotEthernet { link_type: 772, .. })
        ));
    }

    #[test]
    fn unknown_and_invalid_names_are_no_such_interface() {
        for name in ["nosuchif0", "", "a-name-far-too-long-for-linux"] {
            let err = SystemInterfaces.interface(name).unwrap_err();
            assert!(
                matches!(err, NetError::NoSuchInterface { .. }),
                "{name}: {err}"
            );
        }
        assert_eq!(
            SystemInterfaces
                .interface("nosuchif0")
                .unwrap_err()
                .to_string(),
            "interface nosuchif0: no such interface (see `ip link`)"
        );
    }

    #[test]
    fn fake_serves_and_flips() {
        let f = FakeInterfaces::new(vec![Interface::ethernet(
            "eth0",
            2,
            MacAddr([2, 0, 0, 0, 0, 1]),
        )]);
        assert!(f.interface("eth0").unwrap().up);
        f.set_up("eth0", false);
        let e = f.interface("eth0").unwrap();
        assert_eq!(
            e.require_up().unwrap_err().to_string(),
            "interface eth0 is down: bring it up first (`ip link set eth0 up`)"
        );
        assert!(f.interface("eth1").is_err());
    }
}
