//! The datagram links: unicast, multicast (IPv4 and IPv6) and IPv4 broadcast. Sockets are made
//! with socket2 (for the options tokio does not offer) and then driven by tokio.
//!
//! A datagram is read into a buffer of `MAX_FRAME + 1` bytes, so a larger one (truncated by the
//! kernel) is recognised and counted as garbage rather than delivered cut.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{Ctx, LinkError, MAX_FRAME, Stop};

/// Which sources a link accepts.
enum Accept {
    /// Only this address (unicast).
    Only(SocketAddr),
    /// Anyone but these (broadcast: our own datagrams come back to us).
    NotFrom(Vec<SocketAddr>),
    /// Anyone (multicast: own datagrams are not looped back).
    Any,
}

impl Accept {
    fn allows(&self, from: &SocketAddr) -> bool {
        match self {
            // Address and port only: an IPv6 source carries a flow label and scope the
            // configured peer does not, and a dual-stack socket sees IPv4 peers as mapped.
            Accept::Only(a) => {
                a.ip().to_canonical() == from.ip().to_canonical() && a.port() == from.port()
            }
            Accept::NotFrom(own) => !own.contains(from),
            Accept::Any => true,
        }
    }
}

pub(super) async fn unicast(bind: SocketAddr, peer: SocketAddr, ctx: &mut Ctx) -> Stop {
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return LinkError::io(format!("bind {bind}"), e).into(),
    };
    serve(sock, peer, Accept::Only(peer), None, ctx).await
}

pub(super) async fn mcast(dev: &str, group: SocketAddr, ttl: u8, ctx: &mut Ctx) -> Stop {
    let (sock, dest, index) = match mcast_socket(dev, group, ttl) {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    serve(sock, dest, Accept::Any, Some((dev, index)), ctx).await
}

pub(super) async fn bcast(dev: &str, port: u16, ctx: &mut Ctx) -> Stop {
    let (sock, dest, own, index) = match bcast_socket(dev, port) {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    serve(sock, dest, Accept::NotFrom(own), Some((dev, index)), ctx).await
}

fn ifindex(dev: &str) -> Result<u32, LinkError> {
    nix::net::if_::if_nametoindex(dev).map_err(|_| LinkError::NoInterface {
        dev: dev.to_string(),
    })
}

fn new_socket(domain: Domain, what: &str) -> Result<Socket, LinkError> {
    let s = Socket::new(
        domain,
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )
    .map_err(|e| LinkError::io(format!("{what}: socket"), e))?;
    // Another link (or a unicast socket on the same port) may share the port.
    s.set_reuse_address(true)
        .map_err(|e| LinkError::io(format!("{what}: SO_REUSEADDR"), e))?;
    Ok(s)
}

fn into_tokio(s: Socket, what: &str) -> Result<UdpSocket, LinkError> {
    UdpSocket::from_std(s.into()).map_err(|e| LinkError::io(format!("{what}: register"), e))
}

/// A socket bound to the group's address and port on `dev`, member of the group there; returns
/// it, where to send (the group, scoped to `dev` for IPv6) and `dev`'s index.
fn mcast_socket(
    dev: &str,
    group: SocketAddr,
    ttl: u8,
) -> Result<(UdpSocket, SocketAddr, u32), LinkError> {
    let what = format!("mcast {group} on {dev}");
    if !group.ip().is_multicast() {
        return Err(LinkError::Other(format!(
            "{what}: {} is not a multicast address",
            group.ip()
        )));
    }
    let index = ifindex(dev)?;
    let ctx = |step: &str| {
        let what = what.clone();
        let step = step.to_string();
        move |e: io::Error| LinkError::io(format!("{what}: {step}"), e)
    };
    let (sock, bind, dest) = match group {
        SocketAddr::V4(g) => {
            let s = new_socket(Domain::IPV4, &what)?;
            s.join_multicast_v4_n(g.ip(), &InterfaceIndexOrAddress::Index(index))
                .map_err(ctx("join"))?;
            s.set_multicast_loop_v4(false)
                .map_err(ctx("IP_MULTICAST_LOOP"))?;
            s.set_multicast_ttl_v4(ttl.into())
                .map_err(ctx("IP_MULTICAST_TTL"))?;
            // Only the groups this socket joined, not every group joined on the host.
            s.set_multicast_all_v4(false)
                .map_err(ctx("IP_MULTICAST_ALL"))?;
            (s, group, group)
        }
        SocketAddr::V6(g) => {
            let s = new_socket(Domain::IPV6, &what)?;
            s.set_only_v6(true).map_err(ctx("IPV6_V6ONLY"))?;
            s.join_multicast_v6(g.ip(), index).map_err(ctx("join"))?;
            s.set_multicast_loop_v6(false)
                .map_err(ctx("IPV6_MULTICAST_LOOP"))?;
            s.set_multicast_hops_v6(ttl.into())
                .map_err(ctx("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_if_v6(index)
                .map_err(ctx("IPV6_MULTICAST_IF"))?;
            s.set_multicast_all_v6(false)
                .map_err(ctx("IPV6_MULTICAST_ALL"))?;
            let scoped = SocketAddr::V6(SocketAddrV6::new(*g.ip(), g.port(), 0, index));
            (s, scoped, scoped)
        }
    };
    // Sends leave through `dev` whatever the routing table says; receives only what came in on it.
    sock.bind_device(Some(dev.as_bytes()))
        .map_err(ctx("SO_BINDTODEVICE"))?;
    // Bound to the group's address: datagrams to other groups or unicast on this port stay out.
    sock.bind(&bind.into()).map_err(ctx("bind"))?;
    Ok((into_tokio(sock, &what)?, dest, index))
}

/// A broadcast socket on `dev` bound to `port`; returns it, where to send (the interface's
/// broadcast address), our own addresses on `dev` (whose datagrams come back to us) and `dev`'s
/// index.
type Bcast = (UdpSocket, SocketAddr, Vec<SocketAddr>, u32);
fn bcast_socket(dev: &str, port: u16) -> Result<Bcast, LinkError> {
    let what = format!("bcast port {port} on {dev}");
    let index = ifindex(dev)?;
    let addrs =
        nix::ifaddrs::getifaddrs().map_err(|e| LinkError::nix(format!("{what}: getifaddrs"), e))?;
    let mut broadcast = None;
    let mut own = Vec::new();
    for a in addrs.filter(|a| a.interface_name == dev) {
        let v4 = |s: Option<nix::sys::socket::SockaddrStorage>| {
            s.and_then(|s| s.as_sockaddr_in().map(|s| s.ip()))
        };
        if let Some(ip) = v4(a.address) {
            own.push(SocketAddr::new(IpAddr::V4(ip), port));
            broadcast.get_or_insert(broadcast_of(ip, v4(a.netmask), v4(a.broadcast)));
        }
    }
    let broadcast = broadcast.ok_or_else(|| LinkError::NoBroadcast {
        dev: dev.to_string(),
    })?;
    let ctx = |step: &'static str| {
        let what = what.clone();
        move |e: io::Error| LinkError::io(format!("{what}: {step}"), e)
    };
    let sock = new_socket(Domain::IPV4, &what)?;
    sock.set_broadcast(true).map_err(ctx("SO_BROADCAST"))?;
    sock.bind_device(Some(dev.as_bytes()))
        .map_err(ctx("SO_BINDTODEVICE"))?;
    sock.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).into())
        .map_err(ctx("bind"))?;
    // Our own broadcasts come back to this socket (the kernel loops every broadcast to the local
    // sockets; IP_MULTICAST_LOOP does not govern broadcast). Dropped in the kernel, they never wake
    // the daemon: a third of its wake-ups at 20 ms. `serve` still checks the source (`NotFrom`).
    if let Some(prog) = own_datagrams_filter(&own)
        && let Err(e) = sock.attach_filter(&prog)
    {
        tracing::debug!(link = %what, error = %e, "no socket filter: own datagrams are dropped after receipt");
    }
    Ok((
        into_tokio(sock, &what)?,
        SocketAddr::new(IpAddr::V4(broadcast), port),
        own,
        index,
    ))
}

/// A classic BPF socket filter that drops the UDP datagrams sent from any of `own` (IPv4 address
/// and source port) and keeps every other; `None` when there is nothing to drop or too many
/// addresses for the jumps' 8-bit offsets. A UDP socket's filter sees the datagram from its UDP
/// header (offset 0: the source port); the IP header is reached through `SKF_NET_OFF`.
fn own_datagrams_filter(own: &[SocketAddr]) -> Option<Vec<socket2::SockFilter>> {
    use socket2::SockFilter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SKF_NET_OFF: u32 = 0xfff0_0000; // -0x100000: offsets from the network header
    let v4: Vec<(u32, u16)> = own
        .iter()
        .filter_map(|a| match a {
            SocketAddr::V4(a) => Some((u32::from(*a.ip()), a.port())),
            SocketAddr::V6(_) => None,
        })
        .collect();
    let port = v4.first()?.1;
    // One port (the link's) for every address, as `bcast_socket` makes them.
    if v4.iter().any(|(_, p)| *p != port) || v4.len() > 200 {
        return None;
    }
    let n = v4.len() as u8;
    // 0: the source port; 1: not ours -> keep; 2: the source address; 3..3+n: ours -> drop;
    // 3+n: keep; 4+n: drop.
    let mut prog = vec![
        SockFilter::new(LD_H_ABS, 0, 0, 0),
        SockFilter::new(JEQ_K, 0, n + 1, u32::from(port)),
        SockFilter::new(LD_W_ABS, 0, 0, SKF_NET_OFF + 12),
    ];
    for (k, (ip, _)) in v4.iter().enumerate() {
        prog.push(SockFilter::new(JEQ_K, n - k as u8, 0, *ip));
    }
    prog.push(SockFilter::new(RET_K, 0, 0, u32::MAX));
    prog.push(SockFilter::new(RET_K, 0, 0, 0));
    Some(prog)
}

/// Where to broadcast for one IPv4 address of an interface: its broadcast address when one is set,
/// else the directed broadcast of its prefix. `ip addr add 198.18.0.1/24 dev eth1` (without `brd
/// +`) sets no broadcast address: glibc's getifaddrs then reports the address itself (0.0.0.0 from
/// other sources), and a datagram sent there never leaves this host (it comes back to our own
/// socket); the kernel routes the prefix's directed broadcast all the same (it adds that broadcast
/// route for every address). A /31 or /32 has no broadcast address of its
/// own: the limited broadcast, which the socket's device binding keeps on the link.
fn broadcast_of(addr: Ipv4Addr, netmask: Option<Ipv4Addr>, brd: Option<Ipv4Addr>) -> Ipv4Addr {
    if let Some(b) = brd.filter(|b| !b.is_unspecified() && *b != addr) {
        return b;
    }
    match netmask.map(u32::from) {
        Some(mask) if mask.leading_ones() <= 30 => Ipv4Addr::from(u32::from(addr) | !mask),
        _ => Ipv4Addr::BROADCAST,
    }
}

/// Errors after which the socket is no use any more (the interface went away): the link restarts.
fn fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENODEV | nix::libc::ENXIO | nix::libc::EBADF)
    )
}

/// Whether the interface a socket was set up on is still there under the same index. A deleted
/// interface does not always surface as ENODEV (IPv6 multicast sends fail with ENETUNREACH), and
/// one created again under the same name has a new index the old socket knows nothing of.
fn same_interface(dev: &str, index: u32) -> Result<(), LinkError> {
    match ifindex(dev)? {
        i if i == index => Ok(()),
        _ => Err(LinkError::Other(format!(
            "interface {dev} was replaced: setting the link up again"
        ))),
    }
}

/// Carries datagrams until the daemon goes away or the socket breaks. `iface` is the device and
/// index a multicast or broadcast socket is tied to, checked after every failed send.
async fn serve(
    sock: UdpSocket,
    dest: SocketAddr,
    accept: Accept,
    iface: Option<(&str, u32)>,
    ctx: &mut Ctx,
) -> Stop {
    ctx.shared.set_up();
    let mut buf = vec![0u8; MAX_FRAME + 1];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if !accept.allows(&from) {
                        ctx.shared.rejected_source();
                    } else if n == 0 || n > MAX_FRAME {
                        ctx.shared.garbage();
                    } else if let Err(c) = ctx.deliver(buf[..n].to_vec(), Some(from)) {
                        return c.into();
                    }
                }
                // An ICMP error queued on the socket (port unreachable, ...) is not the link's end.
                Err(e) if !fatal(&e) => ctx.shared.lock().last_error = Some(format!("receive: {e}")),
                Err(e) => return LinkError::io("receive", e).into(),
            },
            f = ctx.out.recv() => {
                let Some(f) = f else { return Stop::Closed };
                match sock.try_send_to(&f, dest) {
                    Ok(n) => ctx.shared.sent(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ctx.shared.lock().send_dropped += 1;
                    }
                    Err(e) if fatal(&e) => return LinkError::io(format!("send to {dest}"), e).into(),
                    Err(e) => {
                        ctx.shared.send_error(format!("send to {dest}: {e}"));
                        if let Some(Err(gone)) = iface.map(|(dev, index)| same_interface(dev, index)) {
                            return gone.into();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The own-datagram filter on a real socket (loopback): only the datagrams from one of the
    /// listed address-and-port pairs are dropped, in the kernel.
    #[test]
    fn the_socket_filter_drops_our_own_datagrams_only() {
        use std::net::UdpSocket as Std;
        let rx = Std::bind("127.0.0.1:0").unwrap();
        let own = Std::bind("127.0.0.1:0").unwrap();
        let other_port = Std::bind("127.0.0.1:0").unwrap();
        let other_addr = Std::bind(("127.0.0.2", own.local_addr().unwrap().port())).unwrap();
        let own_addr = own.local_addr().unwrap();
        let prog = own_datagrams_filter(&[
            SocketAddr::new("192.0.2.9".parse().unwrap(), own_addr.port()),
            own_addr,
        ])
        .unwrap();
        let rx = Socket::from(rx);
        rx.attach_filter(&prog).unwrap();
        let rx: Std = rx.into();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        own.send_to(b"mine", to).unwrap();
        other_port.send_to(b"port", to).unwrap();
        own.send_to(b"mine", to).unwrap();
        other_addr.send_to(b"addr", to).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        for _ in 0..2 {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["port", "addr"]);
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "nothing else came");
    }

    #[test]
    fn no_filter_without_addresses_or_with_mixed_ports() {
        assert!(own_datagrams_filter(&[]).is_none());
        let a: SocketAddr = "192.0.2.1:694".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:695".parse().unwrap();
        assert!(own_datagrams_filter(&[a, b]).is_none());
        assert_eq!(own_datagrams_filter(&[a, a]).unwrap().len(), 7);
    }

    #[test]
    fn unicast_accepts_the_peer_only_by_address_and_port() {
        let peer = Accept::Only("192.0.2.12:694".parse().unwrap());
        for (from, ok) in [
            ("192.0.2.12:694", true),
            ("[::ffff:192.0.2.12]:694", true),
            ("192.0.2.12:695", false),
            ("192.0.2.13:694", false),
        ] {
            assert_eq!(peer.allows(&from.parse().unwrap()), ok, "{from}");
        }
        let peer6 = Accept::Only("[2001:db8::12]:694".parse().unwrap());
        let scoped = SocketAddr::V6(SocketAddrV6::new(
            "2001:db8::12".parse().unwrap(),
            694,
            7,
            2,
        ));
        assert!(peer6.allows(&scoped));
        assert!(!peer6.allows(&"[2001:db8::13]:694".parse().unwrap()));
        let own = Accept::NotFrom(vec!["192.0.2.11:694".parse().unwrap()]);
        assert!(!own.allows(&"192.0.2.11:694".parse().unwrap()));
        assert!(own.allows(&"192.0.2.12:694".parse().unwrap()));
    }

    /// Found in the lab (topo.sh adds its addresses without `brd +`): the broadcast link sent to
    /// its own address, so every frame came back to its own socket and the peer heard nothing.
    #[test]
    fn an_address_without_a_broadcast_address_broadcasts_to_its_prefix() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let addr = ip("198.18.0.1");
        let mask = Some(ip("255.255.255.0"));
        assert_eq!(
            broadcast_of(addr, mask, Some(ip("0.0.0.0"))),
            ip("198.18.0.255")
        );
        assert_eq!(broadcast_of(addr, mask, None), ip("198.18.0.255"));
        // What glibc's getifaddrs reports for it: the address itself.
        assert_eq!(broadcast_of(addr, mask, Some(addr)), ip("198.18.0.255"));
        // A broadcast address set (`brd +` or by hand) is used as it is.
        assert_eq!(
            broadcast_of(addr, mask, Some(ip("198.18.0.127"))),
            ip("198.18.0.127")
        );
        assert_eq!(
            broadcast_of(ip("198.18.5.9"), Some(ip("255.254.0.0")), None),
            ip("198.19.255.255")
        );
        assert_eq!(
            broadcast_of(ip("192.0.2.9"), Some(ip("255.255.255.252")), None),
            ip("192.0.2.11")
        );
        // /31 and /32 have none: the limited broadcast.
        for m in ["255.255.255.254", "255.255.255.255"] {
            assert_eq!(
                broadcast_of(addr, Some(ip(m)), None),
                Ipv4Addr::BROADCAST,
                "{m}"
            );
        }
        assert_eq!(broadcast_of(addr, None, None), Ipv4Addr::BROADCAST);
    }
}
