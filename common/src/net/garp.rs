//! Announcing an address on the wire, and asking whether someone else holds it.
//!
//! [`Garp`] is the narrow interface: one *announcement* is, for IPv4, a gratuitous ARP request and
//! a gratuitous ARP reply sent back to back (heartbeat's `send_arp` pair), for IPv6 one unsolicited
//! Neighbor Advertisement with the Override flag (the frames are in [`frame`](super::frame)).
//! A *probe* is RFC 5227 address conflict detection for IPv4. How many announcements to send and
//! how far apart is the caller's policy.
//!
//! [`PacketGarp`] sends the frames through an `AF_PACKET` socket (`packet(7)`; needs
//! `CAP_NET_RAW`), bypassing the kernel's ARP and NDP code so that the bytes on the wire are
//! exactly ours; its calls block their thread (a probe for its whole `wait`): async code uses
//! [`AsyncGarp`]. [`RecordingGarp`] records calls (with the tokio clock, so that tests on paused time
//! can check the spacing) and answers probes as told.
//!
//! Deliberately not here: IPv6 duplicate address detection (the kernel's job; addresses are added
//! with `nodad`, see [`addr`](super::addr)), VLAN tagging, receiving anything but ARP.

use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{LinkAddr, MsgFlags, SockaddrLike, bind, recvfrom, sendto};

use super::NetError;
use super::frame::{self, ArpFrame, ArpOp, Frame, MacAddr, NaFrame};
use super::iface::Interface;

/// Sends announcements and probes.
pub trait Garp: Send + Sync {
    /// Sends one announcement of `ip` on `iface` (IPv4: request + reply; IPv6: one NA).
    fn announce(&self, iface: &Interface, ip: IpAddr) -> Result<(), NetError>;

    /// RFC 5227 probe: sends `probes` ARP probes for `ip`, spread evenly over `wait`, and listens
    /// until `wait` is over. Returns the MAC address of the first other host that claims `ip`
    /// (an ARP packet with `ip` as sender, or a probe for `ip` from another MAC: RFC 5227 §2.1.1),
    /// `None` if nobody did.
    fn probe(
        &self,
        iface: &Interface,
        ip: Ipv4Addr,
        probes: u32,
        wait: Duration,
    ) -> Result<Option<MacAddr>, NetError>;
}

/// The frames one announcement of `ip` from `mac` consists of, in sending order, with their
/// EtherType and Ethernet destination.
pub fn announcement(mac: MacAddr, ip: IpAddr) -> Vec<(u16, MacAddr, Vec<u8>)> {
    match ip {
        IpAddr::V4(v4) => [
            ArpFrame::gratuitous_request(mac, v4),
            ArpFrame::gratuitous_reply(mac, v4),
        ]
        .into_iter()
        .map(|f| (frame::ETHERTYPE_ARP, f.eth_dst, f.to_bytes().to_vec()))
        .collect(),
        IpAddr::V6(v6) => {
            let na = NaFrame::unsolicited(mac, v6);
            vec![(frame::ETHERTYPE_IPV6, na.eth_dst, na.to_bytes())]
        }
    }
}

/// True when `f` shows another host holding `ip` (RFC 5227 §2.1.1), `own` being our MAC.
pub fn claims(f: &ArpFrame, ip: Ipv4Addr, own: MacAddr) -> bool {
    f.sender_mac != own
        && (f.sender_ip == ip
            || (f.op == ArpOp::Request
                && f.sender_ip == Ipv4Addr::UNSPECIFIED
                && f.target_ip == ip))
}

/// `AF_PACKET` sender (see the [module docs](self)). Open it before changing anything, so that a
/// missing `CAP_NET_RAW` is found before an address was added.
#[derive(Debug)]
pub struct PacketGarp {
    fd: OwnedFd,
}

/// An `AF_PACKET` raw socket for `protocol`; a receiving one is non-blocking (its reads follow a
/// poll), a sending-only one blocking (a full device queue waits instead of failing).
fn packet_socket(protocol: u16, nonblocking: bool, op: &str) -> Result<OwnedFd, NetError> {
    let ty = socket2::Type::RAW.cloexec();
    // The protocol goes in network byte order (packet(7)).
    let sock = socket2::Socket::new(
        socket2::Domain::PACKET,
        if nonblocking { ty.nonblocking() } else { ty },
        Some(socket2::Protocol::from(i32::from(protocol.to_be()))),
    )
    .map_err(|e| NetError::io(op, e))?;
    Ok(OwnedFd::from(sock))
}

/// The link-layer address of `dst` on interface `ifindex` for `protocol`.
fn link_addr(ifindex: u32, protocol: u16, dst: MacAddr) -> LinkAddr {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&dst.0);
    let sa = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    };
    // SAFETY: `sa` is a complete, initialised sockaddr_ll and the length given is its size; nix
    // has no safe constructor for a LinkAddr.
    unsafe {
        LinkAddr::from_raw(
            (&sa as *const libc::sockaddr_ll).cast(),
            Some(mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t),
        )
    }
    .expect("a sockaddr_ll of the right family and size")
}

fn send_frame(
    fd: &OwnedFd,
    iface: &Interface,
    protocol: u16,
    dst: MacAddr,
    bytes: &[u8],
    op: &str,
) -> Result<(), NetError> {
    let to = link_addr(iface.index, protocol, dst);
    if let Err(errno) = sendto(fd.as_raw_fd(), bytes, &to, MsgFlags::empty()) {
        return Err(match errno {
            Errno::ENETDOWN => NetError::InterfaceDown {
                name: iface.name.clone(),
            },
            Errno::ENODEV | Errno::ENXIO => NetError::NoSuchInterface {
                name: iface.name.clone(),
            },
            e => NetError::io(op, e.into()),
        });
    }
    Ok(())
}

impl PacketGarp {
    /// Opens the sending socket; [`NetError::Privilege`] without `CAP_NET_RAW`.
    pub fn open() -> Result<PacketGarp, NetError> {
        // Protocol 0: this socket only sends, the kernel queues nothing to it.
        Ok(PacketGarp {
            fd: packet_socket(0, false, "open a packet socket to send ARP/NA")?,
        })
    }
}

impl Garp for PacketGarp {
    fn announce(&self, iface: &Interface, ip: IpAddr) -> Result<(), NetError> {
        let mac = iface.ethernet_mac()?;
        let op = format!("announce {ip} on {}", iface.name);
        for (proto, dst, bytes) in announcement(mac, ip) {
            send_frame(&self.fd, iface, proto, dst, &bytes, &op)?;
        }
        Ok(())
    }

    fn probe(
        &self,
        iface: &Interface,
        ip: Ipv4Addr,
        probes: u32,
        wait: Duration,
    ) -> Result<Option<MacAddr>, NetError> {
        let mac = iface.ethernet_mac()?;
        let op = format!("probe {ip} on {}", iface.name);
        let rx = packet_socket(frame::ETHERTYPE_ARP, true, &op)?;
        let here = link_addr(iface.index, frame::ETHERTYPE_ARP, MacAddr::ZERO);
        bind(rx.as_raw_fd(), &here).map_err(|e| NetError::io(&op, e.into()))?;
        let probe = ArpFrame::probe(mac, ip).to_bytes();
        let probes = probes.max(1);
        let start = Instant::now();
        for i in 1..=probes {
            send_frame(
                &rx,
                iface,
                frame::ETHERTYPE_ARP,
                MacAddr::BROADCAST,
                &probe,
                &op,
            )?;
            let until = start + wait * i / probes;
            if let Some(found) = listen(&rx, iface, ip, mac, until, &op)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Reads ARP frames on `rx` until `until`; the first claim of `ip` by another MAC wins.
fn listen(
    rx: &OwnedFd,
    iface: &Interface,
    ip: Ipv4Addr,
    own: MacAddr,
    until: Instant,
    op: &str,
) -> Result<Option<MacAddr>, NetError> {
    let mut buf = [0u8; 1600];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms = u16::try_from(left.as_millis().clamp(1, u128::from(u16::MAX))).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(NetError::io(op, e.into())),
        }
        let (n, from) = match recvfrom::<LinkAddr>(rx.as_raw_fd(), &mut buf) {
            Ok(got) => got,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(NetError::io(op, e.into())),
        };
        // Frames from before bind(2) may come from other interfaces.
        if from.map(|f| f.ifindex()) != Some(iface.index as usize) {
            continue;
        }
        if let Ok(Frame::Arp(f)) = frame::parse(&buf[..n])
            && claims(&f, ip, own)
        {
            return Ok(Some(f.sender_mac));
        }
    }
}

/// [`Garp`] for async code: announcements and probes run on tokio's blocking pool
/// ([`crate::blocking::off_runtime`]); a probe listens for up to its `wait` there, never on a
/// runtime worker.
#[derive(Debug)]
pub struct AsyncGarp<G: ?Sized> {
    inner: std::sync::Arc<G>,
}

impl<G: ?Sized> Clone for AsyncGarp<G> {
    fn clone(&self) -> Self {
        AsyncGarp {
            inner: self.inner.clone(),
        }
    }
}

impl<G: Garp + ?Sized + 'static> AsyncGarp<G> {
    /// Shares `inner` (e.g. `Arc<PacketGarp>`, or an `Arc<dyn Garp>`).
    pub fn new(inner: std::sync::Arc<G>) -> AsyncGarp<G> {
        AsyncGarp { inner }
    }

    /// The blocking implementation inside.
    pub fn inner(&self) -> &std::sync::Arc<G> {
        &self.inner
    }

    /// [`Garp::announce`].
    pub async fn announce(&self, iface: Interface, ip: IpAddr) -> Result<(), NetError> {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || inner.announce(&iface, ip)).await
    }

    /// [`Garp::probe`].
    pub async fn probe(
        &self,
        iface: Interface,
        ip: Ipv4Addr,
        probes: u32,
        wait: Duration,
    ) -> Result<Option<MacAddr>, NetError> {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || inner.probe(&iface, ip, probes, wait)).await
    }
}

/// One call made to [`RecordingGarp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GarpCall {
    /// `announce(iface, ip)`.
    Announce(String, IpAddr),
    /// `probe(iface, ip, probes, wait)`.
    Probe(String, Ipv4Addr, u32, Duration),
}

/// Records calls with the tokio clock's time; answers probes with [`RecordingGarp::answer`].
#[derive(Debug, Default)]
pub struct RecordingGarp {
    state: Mutex<GarpState>,
}

#[derive(Debug, Default)]
struct GarpState {
    calls: Vec<(tokio::time::Instant, GarpCall)>,
    answers: Vec<(Ipv4Addr, MacAddr)>,
    fail_announce: Option<NetError>,
}

impl RecordingGarp {
    /// Nobody answers probes.
    pub fn new() -> RecordingGarp {
        RecordingGarp::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GarpState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Probes for `ip` are answered by `mac`.
    pub fn answer(&self, ip: Ipv4Addr, mac: MacAddr) {
        self.lock().answers.push((ip, mac));
    }

    /// The next announcement fails with `err`.
    pub fn fail_announce(&self, err: NetError) {
        self.lock().fail_announce = Some(err);
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<GarpCall> {
        self.lock().calls.iter().map(|(_, c)| c.clone()).collect()
    }

    /// The calls so far with the (tokio) time each was made.
    pub fn timed_calls(&self) -> Vec<(tokio::time::Instant, GarpCall)> {
        self.lock().calls.clone()
    }
}

impl Garp for RecordingGarp {
    fn announce(&self, iface: &Interface, ip: IpAddr) -> Result<(), NetError> {
        let mut s = self.lock();
        s.calls.push((
            tokio::time::Instant::now(),
            GarpCall::Announce(iface.name.clone(), ip),
        ));
        match s.fail_announce.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn probe(
        &self,
        iface: &Interface,
        ip: Ipv4Addr,
        probes: u32,
        wait: Duration,
    ) -> Result<Option<MacAddr>, NetError> {
        let mut s = self.lock();
        s.calls.push((
            tokio::time::Instant::now(),
            GarpCall::Probe(iface.name.clone(), ip, probes, wait),
        ));
        Ok(s.answers.iter().find(|(a, _)| *a == ip).map(|(_, m)| *m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const OTHER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    #[test]
    fn an_ipv4_announcement_is_a_request_then_a_reply_to_broadcast() {
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        let frames = announcement(MAC, IpAddr::V4(ip));
        assert_eq!(frames.len(), 2);
        let parsed: Vec<_> = frames
            .iter()
            .map(|(proto, dst, b)| {
                assert_eq!((*proto, *dst), (frame::ETHERTYPE_ARP, MacAddr::BROADCAST));
                match frame::parse(b).unwrap() {
                    Frame::Arp(a) => a,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(parsed[0], ArpFrame::gratuitous_request(MAC, ip));
        assert_eq!(parsed[1], ArpFrame::gratuitous_reply(MAC, ip));
    }

    #[test]
    fn an_ipv6_announcement_is_one_na_to_all_nodes() {
        let ip: std::net::Ipv6Addr = "2001:db8::100".parse().unwrap();
        let frames = announcement(MAC, IpAddr::V6(ip));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].1.to_string(), "33:33:00:00:00:01");
        assert_eq!(frames[0].0, frame::ETHERTYPE_IPV6);
    }

    #[test]
    fn what_counts_as_a_claim() {
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        let other_ip = Ipv4Addr::new(192, 0, 2, 1);
        // Someone's reply to our probe, someone's gratuitous ARP, someone's own probe.
        let reply = ArpFrame {
            op: ArpOp::Reply,
            target_mac: MAC,
            target_ip: Ipv4Addr::UNSPECIFIED,
            ..ArpFrame::gratuitous_request(OTHER, ip)
        };
        assert!(claims(&reply, ip, MAC));
        assert!(claims(&ArpFrame::gratuitous_request(OTHER, ip), ip, MAC));
        assert!(claims(&ArpFrame::probe(OTHER, ip), ip, MAC));
        // Our own frames (seen as outgoing) and unrelated traffic are not.
        assert!(!claims(&ArpFrame::probe(MAC, ip), ip, MAC));
        assert!(!claims(&ArpFrame::gratuitous_request(MAC, ip), ip, MAC));
        let asks_for_it = ArpFrame {
            sender_ip: other_ip,
            ..ArpFrame::gratuitous_request(OTHER, ip)
        };
        assert!(!claims(&asks_for_it, ip, MAC));
    }

    #[test]
    fn recording_garp_records_and_answers() {
        let g = RecordingGarp::new();
        let eth0 = Interface::ethernet("eth0", 2, MAC);
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        assert_eq!(g.probe(&eth0, ip, 3, Duration::from_secs(1)).unwrap(), None);
        g.answer(ip, OTHER);
        assert_eq!(
            g.probe(&eth0, ip, 3, Duration::from_secs(1)).unwrap(),
            Some(OTHER)
        );
        g.announce(&eth0, IpAddr::V4(ip)).unwrap();
        assert_eq!(g.calls().len(), 3);
        assert_eq!(
            g.calls()[2],
            GarpCall::Announce("eth0".into(), IpAddr::V4(ip))
        );
    }

    /// A [`Garp`] whose probe blocks until the test opens the gate (or 20 s pass), then answers.
    struct Gated(Mutex<std::sync::mpsc::Receiver<()>>);

    impl Garp for Gated {
        fn announce(&self, _: &Interface, _: IpAddr) -> Result<(), NetError> {
            Ok(())
        }
        fn probe(
            &self,
            _: &Interface,
            _: Ipv4Addr,
            _: u32,
            _: Duration,
        ) -> Result<Option<MacAddr>, NetError> {
            let gate = self.0.lock().unwrap();
            gate.recv_timeout(Duration::from_secs(20))
                .map_err(|_| NetError::Privilege {
                    op: "the gate stayed shut".into(),
                })?;
            Ok(Some(OTHER))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_async_probe_keeps_the_runtime_free_while_it_listens() {
        let (open, gate) = std::sync::mpsc::channel();
        let g = AsyncGarp::new(std::sync::Arc::new(Gated(Mutex::new(gate))));
        let eth0 = Interface::ethernet("eth0", 2, MAC);
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        let call = tokio::spawn({
            let g = g.clone();
            async move { g.probe(eth0, ip, 3, Duration::from_secs(1)).await }
        });
        tokio::task::yield_now().await;
        open.send(()).unwrap();
        assert_eq!(call.await.unwrap().unwrap(), Some(OTHER));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn async_garp_answers_like_the_blocking_one() {
        let fake = std::sync::Arc::new(RecordingGarp::new());
        let g: AsyncGarp<dyn Garp> = AsyncGarp::new(fake.clone());
        let eth0 = Interface::ethernet("eth0", 2, MAC);
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        fake.answer(ip, OTHER);
        assert_eq!(
            g.probe(eth0.clone(), ip, 3, Duration::from_secs(1))
                .await
                .unwrap(),
            Some(OTHER)
        );
        g.announce(eth0, IpAddr::V4(ip)).await.unwrap();
        assert_eq!(
            fake.calls(),
            vec![
                GarpCall::Probe("eth0".into(), ip, 3, Duration::from_secs(1)),
                GarpCall::Announce("eth0".into(), IpAddr::V4(ip))
            ]
        );
    }
}
