//! Connections of plain-HTTP checks, on sockets that are used again and again.
//!
//! A check's connection ends with `connect(AF_UNSPEC)`, which resets it (RST, as a close with
//! SO_LINGER 0 would) and leaves the socket unconnected, ready for the next check's `connect`. On
//! the wire nothing changes: a new connection (new source port) per check, closed with RST. What
//! the checks no longer pay is the socket's making and unmaking: `socket`, `close` (file, dentry,
//! inode and sock freed, then allocated again) and two `epoll_ctl`s per check. In
//! `tests/lab bench probe-keepalived` that took the prober's system time per check from ~530 µs
//! to ~400 µs.
//!
//! The sockets are registered once, edge-triggered, in an epoll instance of the pool's own, which
//! is itself watched by the tokio runtime; a small task ([`drive`]) turns its events into wake-ups.
//! A socket's registration outlives its connections, which tokio's own sockets do not allow (their
//! readiness state stays "closed" once a connection ended).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use super::{Down, io_reason};

/// Unconnected sockets kept for later checks at most (one per check in flight is what a steady
/// schedule needs), and at most a quarter of the descriptors the process may open: the rest are
/// for other checks and the tool itself.
const IDLE_MAX: usize = 4096;

/// Events taken from the pool's epoll instance at a time.
const EVENTS: usize = 256;

/// The sockets of one [`super::Prober`]: made on first use, in the tokio runtime of that use (a
/// later use in another runtime, the first one gone, makes them anew).
#[derive(Default)]
pub(super) struct Pool {
    shared: Mutex<Option<Arc<Shared>>>,
}

struct Shared {
    registry: mio::Registry,
    state: Mutex<State>,
    /// Cleared when the driver task ends (its runtime shut down).
    alive: AtomicBool,
    idle_max: usize,
    /// Dropped with the pool: ends the driver task.
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    /// Readiness and waker of each registered socket, by token.
    slots: Vec<Slot>,
    free: Vec<usize>,
    idle: Vec<Idle>,
}

#[derive(Default)]
struct Slot {
    readable: bool,
    writable: bool,
    waker: Option<Waker>,
}

/// An unconnected socket waiting for its next check.
struct Idle {
    socket: Socket,
    token: usize,
    v6: bool,
    source: Option<IpAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no half-made state worth refusing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool {
    fn shared(&self) -> io::Result<Arc<Shared>> {
        let mut guard = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_ref().filter(|s| s.alive.load(Ordering::Acquire)) {
            return Ok(s.clone());
        }
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: the Poll owns its epoll descriptor, open and the same until the Poll is dropped,
        // which only the AsyncFd does.
        let fd = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::new(Shared {
            registry,
            state: Mutex::default(),
            alive: AtomicBool::new(true),
            idle_max: idle_max(nofile_soft()),
            _stop: stop,
        });
        tokio::spawn(drive(fd, Arc::downgrade(&shared), stopped));
        *guard = Some(shared.clone());
        Ok(shared)
    }

    /// Starts a connection to `addr`, from `source` when given, and returns at once: the first
    /// write or read waits for the connection and fails with its error (refused, unreachable…).
    pub(super) fn connect(&self, addr: SocketAddr, source: Option<IpAddr>) -> Result<Conn, Down> {
        let shared = self.shared().map_err(|e| io_reason("socket", &e))?;
        let v6 = addr.is_ipv6();
        let reused = {
            let mut st = shared.lock();
            let i = st
                .idle
                .iter()
                .rposition(|s| s.v6 == v6 && s.source == source);
            i.map(|i| {
                let idle = st.idle.swap_remove(i);
                // What the events said of the last connection is no longer true. (A new socket's
                // slot starts so: free slots are reset when their socket is closed.)
                let slot = &mut st.slots[idle.token];
                (slot.readable, slot.writable) = (false, false);
                idle
            })
        };
        let (socket, token) = match reused {
            Some(idle) => (idle.socket, idle.token),
            None => open(&shared, addr, source)?,
        };
        let conn = Conn {
            socket: Some(socket),
            token,
            v6,
            source,
            shared,
        };
        match conn.socket().connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(io_reason("", &e)),
        }
        Ok(conn)
    }

    /// Sockets waiting for a check (for tests).
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.shared().map(|s| s.lock().idle.len()).unwrap_or(0)
    }
}

/// How many unconnected sockets the pool keeps: [`IDLE_MAX`], or a quarter of `nofile` (the
/// soft limit on open descriptors) if that is less.
fn idle_max(nofile: u64) -> usize {
    usize::try_from(nofile / 4)
        .unwrap_or(usize::MAX)
        .clamp(1, IDLE_MAX)
}

/// The soft limit on open descriptors (1024, the usual one, if it cannot be read).
fn nofile_soft() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024)
}

/// A new socket for `addr`'s family, bound to `source`, registered with the pool.
fn open(
    shared: &Shared,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<(Socket, usize), Down> {
    // SOCK_NONBLOCK and SOCK_CLOEXEC in the one socket(2) call.
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(|e| io_reason("socket", &e))?;
    if let Some(src) = source {
        socket
            .bind(&SockAddr::from(SocketAddr::new(src, 0)))
            .map_err(|e| io_reason(&format!("bind {src}"), &e))?;
    }
    let token = {
        let mut st = shared.lock();
        match st.free.pop() {
            Some(t) => t,
            None => {
                st.slots.push(Slot::default());
                st.slots.len() - 1
            }
        }
    };
    let fd = socket.as_raw_fd();
    if let Err(e) = shared.registry.register(
        &mut SourceFd(&fd),
        Token(token),
        Interest::READABLE | Interest::WRITABLE,
    ) {
        shared.lock().free.push(token);
        return Err(io_reason("socket", &e));
    }
    Ok((socket, token))
}

/// Turns the pool's epoll events into wake-ups, until the pool is dropped or the runtime ends.
async fn drive(mut fd: AsyncFd<mio::Poll>, shared: Weak<Shared>, mut stop: oneshot::Receiver<()>) {
    struct Ended(Weak<Shared>);
    impl Drop for Ended {
        fn drop(&mut self) {
            if let Some(s) = self.0.upgrade() {
                s.alive.store(false, Ordering::Release);
            }
        }
    }
    let _ended = Ended(shared.clone());
    let mut events = Events::with_capacity(EVENTS);
    let mut wake: Vec<Waker> = Vec::new();
    loop {
        let mut guard = tokio::select! {
            biased;
            _ = &mut stop => return,
            g = fd.readable_mut() => match g {
                Ok(g) => g,
                Err(_) => return,
            },
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        loop {
            if let Err(e) = guard
                .get_inner_mut()
                .poll(&mut events, Some(Duration::ZERO))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return;
            }
            let mut n = 0;
            let mut st = shared.lock();
            for ev in events.iter() {
                n += 1;
                let Some(slot) = st.slots.get_mut(ev.token().0) else {
                    continue;
                };
                let failed = ev.is_error();
                slot.readable |= ev.is_readable() || ev.is_read_closed() || failed;
                slot.writable |= ev.is_writable() || ev.is_write_closed() || failed;
                wake.extend(slot.waker.take());
            }
            drop(st);
            if n < EVENTS {
                break;
            }
        }
        // Events that come after the last poll find the epoll instance readable again.
        guard.clear_ready();
        drop(guard);
        wake.drain(..).for_each(Waker::wake);
    }
}

/// A check's connection. Dropping it resets the connection and keeps the socket for the next
/// check (or closes it).
pub(super) struct Conn {
    socket: Option<Socket>,
    token: usize,
    v6: bool,
    source: Option<IpAddr>,
    shared: Arc<Shared>,
}

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

impl Conn {
    fn socket(&self) -> &Socket {
        self.socket
            .as_ref()
            .expect("a connection has its socket until dropped")
    }

    /// Runs `op` until it does not block: when it does, waits for an event of `dir`.
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        mut op: impl FnMut(&Socket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            {
                let mut st = self.shared.lock();
                let slot = &mut st.slots[self.token];
                let ready = match dir {
                    Dir::Read => &mut slot.readable,
                    Dir::Write => &mut slot.writable,
                };
                if !*ready {
                    if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        slot.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                // Taken: a WouldBlock below means waiting for the next event.
                *ready = false;
            }
            match op(self.socket()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.set_ready(dir),
                r => {
                    // More may be there (or room for more): the next call tries at once.
                    self.set_ready(dir);
                    return Poll::Ready(r);
                }
            }
        }
    }

    fn set_ready(&self, dir: Dir) {
        let mut st = self.shared.lock();
        let slot = &mut st.slots[self.token];
        match dir {
            Dir::Read => slot.readable = true,
            Dir::Write => slot.writable = true,
        }
    }

    /// Writes all of `buf` (the first write waits for the connection).
    pub(super) async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n =
                std::future::poll_fn(|cx| self.poll_io(cx, Dir::Write, |s| s.send(buf))).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Reads what has come into `buf`'s spare capacity (reserve first); 0 at the end of the stream.
    pub(super) async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let n = std::future::poll_fn(|cx| {
            self.poll_io(cx, Dir::Read, |s| s.recv(buf.spare_capacity_mut()))
        })
        .await?;
        // SAFETY: recv initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let mut st = self.shared.lock();
        st.slots[self.token].waker = None;
        let keep = st.idle.len() < self.shared.idle_max
            && self.shared.alive.load(Ordering::Acquire)
            && disconnect(&socket).is_ok();
        if keep {
            st.idle.push(Idle {
                socket,
                token: self.token,
                v6: self.v6,
                source: self.source,
            });
        } else {
            // Closing the socket takes it out of the epoll instance; the slot is free again.
            st.slots[self.token] = Slot::default();
            st.free.push(self.token);
            drop(socket);
        }
    }
}

/// `connect(AF_UNSPEC)`: resets the connection (RST if it was open) and leaves the socket
/// unconnected, its options and registration kept (Linux; POSIX leaves it unspecified).
fn disconnect(socket: &Socket) -> io::Result<()> {
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid sockaddr of the size given; the descriptor is the socket's own.
    let r = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP-ish server on loopback: answers every request, then reads on and sends what that
    /// read ended with (`Ok(0)` orderly close, or the error) with the connection's peer port.
    async fn server(
        answer: bool,
    ) -> (
        SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<(u16, io::Result<usize>)>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut c, peer) = l.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = c.read(&mut buf).await;
                    if answer {
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
                    }
                    let end = c.read(&mut buf).await;
                    let _ = tx.send((peer.port(), end));
                });
            }
        });
        (addr, rx)
    }

    async fn exchange(pool: &Pool, addr: SocketAddr) -> Result<Vec<u8>, String> {
        exchange_from(pool, addr, None).await
    }

    async fn exchange_from(
        pool: &Pool,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Vec<u8>, String> {
        let mut c = pool.connect(addr, source).map_err(|d| d.0)?;
        c.write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(64);
        c.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        Ok(buf)
    }

    /// A check through the pool's one idle socket works, and the socket is back after it.
    async fn serves_again(pool: &Pool, addr: SocketAddr) {
        assert_eq!(pool.idle(), 1);
        assert_eq!(
            exchange(pool, addr).await.unwrap(),
            b"HTTP/1.1 200 OK\r\n\r\n"
        );
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_socket_serves_check_after_check_each_a_new_connection_ended_by_reset() {
        let (addr, mut ends) = server(true).await;
        let pool = Pool::default();
        let mut ports = HashSet::new();
        for _ in 0..5 {
            assert_eq!(
                exchange(&pool, addr).await.unwrap(),
                b"HTTP/1.1 200 OK\r\n\r\n"
            );
            assert_eq!(pool.idle(), 1, "the one socket is back in the pool");
            let (port, end) = ends.recv().await.unwrap();
            assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
            ports.insert(port);
        }
        assert_eq!(ports.len(), 5, "each check a new connection (source port)");
    }

    #[tokio::test]
    async fn sockets_bound_to_a_source_are_kept_apart_and_get_a_new_port_each_check() {
        let (addr, mut ends) = server(true).await;
        let pool = Pool::default();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mut ports = HashSet::new();
        for _ in 0..3 {
            assert_eq!(
                exchange_from(&pool, addr, Some(lo)).await.unwrap(),
                b"HTTP/1.1 200 OK\r\n\r\n"
            );
            ports.insert(ends.recv().await.unwrap().0);
        }
        assert_eq!(ports.len(), 3);
        assert_eq!(pool.idle(), 1);
        // Unbound checks do not take the bound socket: a second one is made.
        exchange(&pool, addr).await.unwrap();
        assert_eq!(pool.idle(), 2);
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let e = exchange_from(&pool, addr, Some(bad)).await.unwrap_err();
        assert!(e.contains("bind 192.0.2.1"), "{e}");
    }

    #[test]
    fn the_idle_sockets_stay_within_a_quarter_of_the_descriptor_limit() {
        assert_eq!(idle_max(1024), 256);
        assert_eq!(idle_max(1 << 20), IDLE_MAX);
        assert_eq!(idle_max(libc::RLIM_INFINITY), IDLE_MAX);
        assert_eq!(idle_max(2), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_leaves_the_socket_usable() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (addr, _ends) = server(true).await;
        let pool = Pool::default();
        let e = exchange(&pool, dead).await.unwrap_err();
        assert!(e.contains("refused"), "{e}");
        serves_again(&pool, addr).await;
    }

    #[tokio::test]
    async fn a_check_dropped_mid_way_resets_and_the_socket_serves_the_next() {
        let (silent, mut silent_ends) = server(false).await;
        let (addr, _ends) = server(true).await;
        let pool = Pool::default();
        let stopped =
            tokio::time::timeout(Duration::from_millis(100), exchange(&pool, silent)).await;
        assert!(stopped.is_err(), "the silent server never answers");
        let (_, end) = silent_ends.recv().await.unwrap();
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        serves_again(&pool, addr).await;
    }

    /// A check stopped while its SYN is unanswered (a listener whose accept queue is full drops
    /// SYNs): the socket goes back unconnected, and the next check on it is not told of the old one.
    #[tokio::test]
    async fn a_check_stopped_before_the_handshake_leaves_the_socket_clean() {
        let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        full.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        full.listen(0).unwrap();
        let full_addr = full.local_addr().unwrap().as_socket().unwrap();
        // Fills the accept queue (never accepted).
        let _queued = std::net::TcpStream::connect(full_addr).unwrap();
        let (addr, _ends) = server(true).await;
        let pool = Pool::default();
        let stopped =
            tokio::time::timeout(Duration::from_millis(200), exchange(&pool, full_addr)).await;
        assert!(
            stopped.is_err(),
            "the SYN is dropped: the check can only be stopped"
        );
        serves_again(&pool, addr).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_on_several_threads() {
        let (addr, _ends) = server(true).await;
        let pool = Arc::new(Pool::default());
        for _ in 0..3 {
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let pool = pool.clone();
                tasks.push(tokio::spawn(async move { exchange(&pool, addr).await }));
            }
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap(), b"HTTP/1.1 200 OK\r\n\r\n");
            }
        }
        let idle = pool.idle();
        assert!(
            (1..=50).contains(&idle),
            "{idle} sockets kept for 50 checks at a time"
        );
    }

    #[test]
    fn a_pool_outlives_its_runtime() {
        let pool = Pool::default();
        for _ in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (addr, _ends) = server(true).await;
                let got = tokio::time::timeout(Duration::from_secs(5), exchange(&pool, addr)).await;
                assert_eq!(got.expect("no hang").unwrap(), b"HTTP/1.1 200 OK\r\n\r\n");
            });
        }
    }
}
