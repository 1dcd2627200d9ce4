//! Seeing and making real frames in the test namespaces: a packet capture by the test process
//! itself, pcap files for `tcpdump -r` as a second opinion, and running code inside a namespace
//! (for sending a hand-made frame).
//!
//! The capture is deliberately an independent witness: it is this crate's own `AF_PACKET` code,
//! and the tests check the bytes at fixed offsets, never through the toolkit's frame parser.
//! (A live `tcpdump -w` started from the test harness reported frames "received by filter" but
//! wrote none of them on this host, so it is not used for capturing.)

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Capture time since the epoch.
    pub ts: Duration,
    /// The frame, from the Ethernet header on.
    pub data: Vec<u8>,
}

/// A packet capture on one interface of a namespace, by a thread of this test process with its own
/// `AF_PACKET` socket (every EtherType, incoming frames only, kernel receive timestamps).
/// [`Capture::wait_until`] waits for the frames a test expects; [`Capture::stop`] ends it and
/// returns what it saw.
pub struct Capture {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Packet>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long [`Capture::wait_until`] waits before it fails: generous, the machine may be busy.
pub const CAPTURE_WAIT: Duration = Duration::from_secs(10);

/// `asm-generic/sockios.h: SIOCGSTAMP_OLD`: the receive time of the last packet read.
const SIOCGSTAMP: libc::Ioctl = 0x8906;
/// `if_packet.h: PACKET_OUTGOING`.
const PACKET_OUTGOING: u8 = 4;

impl Capture {
    /// Starts capturing on `iface` in namespace `netns`; returns once the socket is bound.
    pub fn start(netns: &str, iface: &str) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (netns, iface, flag) = (netns.to_owned(), iface.to_owned(), stop.clone());
        let out = seen.clone();
        let thread = std::thread::spawn(move || {
            enter_netns(&netns);
            let fd = bind_packet_socket(&iface);
            ready_tx.send(()).expect("the test waits");
            let mut buf = vec![0u8; 65536];
            loop {
                // SAFETY: sockaddr_ll is plain old data.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buffer and address valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n < 0 {
                    // The receive timeout: stop when asked and nothing is left.
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    continue;
                }
                if from.sll_pkttype == PACKET_OUTGOING {
                    continue;
                }
                let mut tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 0,
                };
                // SAFETY: SIOCGSTAMP writes one timeval.
                unsafe { libc::ioctl(fd, SIOCGSTAMP, &mut tv) };
                out.lock().unwrap().push(Packet {
                    ts: Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000),
                    data: buf[..n as usize].to_vec(),
                });
            }
            // SAFETY: closing the descriptor this thread opened.
            unsafe { libc::close(fd) };
        });
        ready_rx
            .recv()
            .expect("the capture thread failed to start (see its panic above)");
        Capture {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits until the frames received so far satisfy `done`; fails naming `what` after
    /// [`CAPTURE_WAIT`]. Frames sent a moment ago may still be on their way through the bridge:
    /// a test waits for those it expects before [`Capture::stop`].
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Packet]) -> bool) {
        let deadline = Instant::now() + CAPTURE_WAIT;
        loop {
            let seen = self.seen.lock().unwrap();
            if done(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {CAPTURE_WAIT:?} for {what}; captured {} frames: {seen:?}",
                seen.len()
            );
            drop(seen);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the capture and returns the frames received, in order.
    pub fn stop(mut self) -> Vec<Packet> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the capture thread panicked");
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn enter_netns(netns: &str) {
    let ns = File::open(format!("/run/netns/{netns}"))
        .unwrap_or_else(|e| panic!("open /run/netns/{netns}: {e}"));
    // SAFETY: setns on this thread only, with a valid namespace descriptor.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {netns}: {}", std::io::Error::last_os_error());
}

fn bind_packet_socket(iface: &str) -> i32 {
    let name = std::ffi::CString::new(iface).expect("no NUL");
    // ETH_P_ALL (if_ether.h), in network byte order.
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain calls with valid arguments; results checked.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        assert!(ifindex > 0, "no interface {iface} in this namespace");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all));
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = all;
        sa.sll_ifindex = ifindex as i32;
        let rc = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        // Frames that arrived between socket(2) and bind(2) may be from other interfaces.
        let mut junk = [0u8; 2048];
        while libc::recv(fd, junk.as_mut_ptr().cast(), junk.len(), libc::MSG_DONTWAIT) > 0 {}
        fd
    }
}

/// Writes `pkts` as a classic little-endian microsecond pcap file (for `tcpdump -r`).
pub fn write_pcap(path: &std::path::Path, pkts: &[Packet]) {
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    file.extend_from_slice(&65535u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for p in pkts {
        file.extend_from_slice(&(p.ts.as_secs() as u32).to_le_bytes());
        file.extend_from_slice(&p.ts.subsec_micros().to_le_bytes());
        file.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        file.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        file.extend_from_slice(&p.data);
    }
    std::fs::write(path, file).expect("write the pcap file");
}

/// Reads a classic pcap file (microsecond or nanosecond, either byte order).
pub fn parse_pcap(b: &[u8]) -> Vec<Packet> {
    assert!(b.len() >= 24, "pcap file too short: {} bytes", b.len());
    let magic = [b[0], b[1], b[2], b[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        other => panic!("not a pcap file: magic {other:02x?}"),
    };
    let u32_at = |o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (sec, frac, caplen) = (u32_at(o), u32_at(o + 4), u32_at(o + 8) as usize);
        let data = b[o + 16..(o + 16 + caplen).min(b.len())].to_vec();
        let sub = if nanos {
            Duration::from_nanos(frac.into())
        } else {
            Duration::from_micros(frac.into())
        };
        out.push(Packet {
            ts: Duration::from_secs(sec.into()) + sub,
            data,
        });
        o += 16 + caplen;
    }
    out
}

/// Runs `f` on a thread that has entered network namespace `netns` (`/run/netns/NAME`, made by
/// `ip netns add`); sockets it opens live in that namespace.
pub fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(netns);
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    })
}

/// Sends `frame` (Ethernet header included) on interface `iface` of the calling thread's
/// namespace through an `AF_PACKET` socket.
pub fn send_raw(iface: &str, frame: &[u8]) {
    let name = std::ffi::CString::new(iface).expect("no NUL");
    // SAFETY: plain if_nametoindex/socket/sendto calls with valid buffers; the descriptor is
    // closed below.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        assert!(ifindex > 0, "no interface {iface} in this namespace");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = ifindex as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[0..6]);
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(n, frame.len() as isize, "sendto: {err}");
    }
}
