//! Interface lookup: index, link type, MAC address, and whether the interface is up, in the
//! caller's network namespace.
//!
//! [`SystemInterfaces`] asks the kernel with the classic `SIOCGIF*` ioctls on a throw-away datagram
//! socket (no privileges needed, no dependence on a `/sys` mounted for the right namespace);
//! [`FakeInterfaces`] serves a fixed list for unit tests. Deliberately not here: listing all
//! interfaces, watching link changes, or changing a link.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// The kernel's interfaces, through `SIOCGIFINDEX`, `SIOCGIFHWADDR` and `SIOCGIFFLAGS`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemInterfaces;

fn ifreq_for(name: &str) -> Result<libc::ifreq, NetError> {
    let no_such = || NetError::NoSuchInterface {
        name: name.to_owned(),
    };
    // IFNAMSIZ counts the terminating NUL.
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(no_such());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn ioctl(fd: &OwnedFd, request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: the SIOCGIF* requests used here read and write only within the ifreq we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Interfaces for SystemInterfaces {
    fn interface(&self, name: &str) -> Result<Interface, NetError> {
        let op = || format!("look up interface {name}");
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(NetError::io(op(), io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let no_such = |e: io::Error| match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) => NetError::NoSuchInterface {
                name: name.to_owned(),
            },
            _ => NetError::io(op(), e),
        };

        let mut req = ifreq_for(name)?;
        ioctl(&fd, libc::SIOCGIFINDEX, &mut req).map_err(no_such)?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
        let index = unsafe { req.ifr_ifru.ifru_ifindex } as u32;

        let mut req = ifreq_for(name)?;
        ioctl(&fd, libc::SIOCGIFHWADDR, &mut req).map_err(no_such)?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
        let link_type = hw.sa_family;
        let mac = (link_type == ARPHRD_ETHER).then(|| {
            let mut m = [0u8; 6];
            for (d, s) in m.iter_mut().zip(hw.sa_data.iter()) {
                *d = *s as u8;
            }
            MacAddr(m)
        });

        let mut req = ifreq_for(name)?;
        ioctl(&fd, libc::SIOCGIFFLAGS, &mut req).map_err(no_such)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
        Ok(Interface {
            name: name.to_owned(),
            index,
            link_type,
            mac,
            up: flags & libc::IFF_UP != 0,
            carrier: flags & libc::IFF_RUNNING != 0,
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
