//! The real IPVS: a generic netlink socket (neli's [`NlSocket`]) in one network namespace.
//!
//! - [`NetlinkIpvs::connect`] resolves the "IPVS" family through nlctrl; `ENOENT` there becomes
//!   [`IpvsError::Unavailable`] ("load the ip_vs module"). Since Linux 5.17 the lookup itself loads
//!   the module.
//! - Dumps (services, destinations, daemons) read until `NLMSG_DONE`, one dump at a time. A dump is
//!   not a snapshot: the kernel resumes each further message by position in its service table, which
//!   in the lab's kernel (6.1) is shared by every namespace. Services added or removed
//!   meanwhile (here or in another namespace) can make a dump miss or repeat some; a plan made from
//!   such a dump then fails with `already exists` / `no such service` and a later pass mends it.
//! - [`NetlinkIpvs::apply`] sends many requests per `send()` (chunks below the socket's send buffer),
//!   each with `NLM_F_ACK` and its own sequence number, then reads until every request has its ACK
//!   or error; the receive buffer is raised first (`SO_RCVBUFFORCE`, else `SO_RCVBUF`) so that a
//!   chunk's replies are never dropped. The kernel processes a chunk's requests in order and
//!   independently (no transaction); after a chunk with refusals no further chunk is sent.
//! - [`NetlinkIpvs::in_netns`] opens the socket from a short-lived thread that entered the
//!   namespace with `setns`: a netlink socket stays in the namespace it was created in, and the
//!   calling thread's namespace is never changed.
//!
//! Not here: modprobe, the connection table, multicast notifications (IPVS has none).
//!
//! ```no_run
//! use common::ipvs::{NetlinkIpvs, Op, Scheduler, Service, ServiceKey};
//!
//! # fn main() -> Result<(), common::ipvs::IpvsError> {
//! let mut ipvs = NetlinkIpvs::connect()?;
//! println!("{}", ipvs.info()?);
//! let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
//! ipvs.apply(&[Op::AddService(Service::new(key, Scheduler::Rr))])?;
//! for s in ipvs.services()? {
//!     println!("{} {} conns={}", s.service.key, s.service.scheduler, s.stats.conns);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF};
use neli::consts::socket::{Msg, NlFamily};
use neli::genl::{AttrTypeBuilder, GenlmsghdrBuilder, NlattrBuilder};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::NlSocket;
use neli::types::GenlBuffer;
use neli::utils::Groups;
use neli::{Size, ToBytes};

use super::codec::{self, Message, Reply};
use super::model::*;
use super::{ApplyReport, IpvsError, OpError, Subject};

/// Receive buffer requested for batches (replies of a whole chunk must fit; an ACK costs about
/// 1 KiB of buffer, an error echoing its request more). Measured in
/// `shared/reference/ipvs-netlink.md` §3: 8 MiB holds 5 000 replies.
const RECV_BUFFER: usize = 8 << 20;
/// Requests per `send()`: below what [`RECV_BUFFER`] holds with margin.
const CHUNK_MESSAGES: usize = 1000;
/// Bytes per `send()`: below the default `sk_sndbuf` (212 992) minus overhead, which would give
/// `EMSGSIZE` (`net/netlink/af_netlink.c: netlink_sendmsg`).
const CHUNK_BYTES: usize = 160 * 1024;
/// Largest datagram the kernel sends on a netlink socket: dump skbs are capped at 32 KiB
/// (`af_netlink.c: netlink_recvmsg`, `max_recvmsg_len`); twice that for safety.
const RECV_CHUNK: usize = 64 * 1024;
/// How long to wait for a reply before giving up (the kernel answers every request carrying
/// `NLM_F_ACK`; silence means replies were lost). moby/ipvs uses 3 s; emulated lab kernels are slower.
const RECV_TIMEOUT_SECS: libc::time_t = 30;

/// The IPVS table of one network namespace, over generic netlink.
pub struct NetlinkIpvs {
    sock: NlSocket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
    big_buffer: bool,
}

impl std::fmt::Debug for NetlinkIpvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkIpvs")
            .field("family", &self.family)
            .field("seq", &self.seq)
            .finish()
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> IpvsError {
    let context = context.into();
    move |source| IpvsError::Io { context, source }
}

impl NetlinkIpvs {
    /// Opens a socket in the calling thread's network namespace and resolves the IPVS family.
    pub fn connect() -> Result<NetlinkIpvs, IpvsError> {
        let sock = NlSocket::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(io_err("open a netlink socket"))?;
        sock.block()
            .map_err(io_err("make the netlink socket blocking"))?;
        let mut me = NetlinkIpvs {
            sock,
            family: 0,
            seq: 0,
            buf: vec![0; RECV_CHUNK],
            big_buffer: false,
        };
        me.family = me.resolve(codec::FAMILY_NAME)?;
        Ok(me)
    }

    /// Opens a socket in the named network namespace (`/var/run/netns/NAME`, as `ip netns add`
    /// makes them).
    pub fn in_netns(name: &str) -> Result<NetlinkIpvs, IpvsError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(IpvsError::Netns {
                name: name.into(),
                reason: "not a namespace name".into(),
            });
        }
        Self::in_netns_path(&Path::new("/var/run/netns").join(name))
    }

    /// Opens a socket in the network namespace of a file (`/var/run/netns/NAME`,
    /// `/proc/PID/ns/net`).
    pub fn in_netns_path(path: &Path) -> Result<NetlinkIpvs, IpvsError> {
        let path: PathBuf = path.to_path_buf();
        let name = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("ipvs-netns".into())
            .spawn(move || -> Result<NetlinkIpvs, IpvsError> {
                let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
                    IpvsError::Netns {
                        name: path.display().to_string(),
                        reason: "NUL in path".into(),
                    }
                })?;
                // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(IpvsError::Netns {
                        name: path.display().to_string(),
                        reason: std::io::Error::last_os_error().to_string(),
                    });
                }
                // SAFETY: fd was just opened and is owned by nobody else.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                // SAFETY: setns only changes this (short-lived) thread's network namespace.
                if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(IpvsError::Netns {
                        name: path.display().to_string(),
                        reason: format!("setns: {}", std::io::Error::last_os_error()),
                    });
                }
                NetlinkIpvs::connect()
            })
            .map_err(io_err(format!(
                "start a thread to enter network namespace {name}"
            )))?;
        thread.join().map_err(|_| IpvsError::Netns {
            name,
            reason: "the thread entering it panicked".into(),
        })?
    }

    /// The generic netlink family id the kernel gave IPVS.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn resolve(&mut self, name: &str) -> Result<u16, IpvsError> {
        let seq = self.next_seq();
        let build = || -> Result<Vec<u8>, String> {
            let t = AttrTypeBuilder::default()
                .nla_type(CtrlAttr::FamilyName)
                .build()
                .map_err(|e| e.to_string())?;
            let a = NlattrBuilder::default()
                .nla_type(t)
                .nla_payload(name)
                .build()
                .map_err(|e| e.to_string())?;
            let mut attrs = GenlBuffer::new();
            attrs.push(a);
            let g = GenlmsghdrBuilder::<CtrlCmd, CtrlAttr>::default()
                .cmd(CtrlCmd::Getfamily)
                .version(2)
                .attrs(attrs)
                .build()
                .map_err(|e| e.to_string())?;
            let nl = NlmsghdrBuilder::default()
                .nl_type(GenlId::Ctrl)
                .nl_flags(NlmF::REQUEST | NlmF::ACK)
                .nl_seq(seq)
                .nl_payload(NlPayload::Payload(g))
                .build()
                .map_err(|e| e.to_string())?;
            let mut c = std::io::Cursor::new(Vec::with_capacity(nl.padded_size()));
            nl.to_bytes(&mut c).map_err(|e| e.to_string())?;
            Ok(c.into_inner())
        };
        let bytes = build().map_err(|reason| {
            IpvsError::Codec(codec::CodecError::Encode {
                what: "family lookup".into(),
                reason,
            })
        })?;
        self.sock
            .send(&bytes, Msg::empty())
            .map_err(io_err("send the IPVS family lookup"))?;
        let mut id = None;
        loop {
            for r in self.recv()? {
                match r {
                    Reply::Message { seq: s, msg } if s == seq => {
                        for a in msg.attrs().iter() {
                            if *a.nla_type().nla_type() == u16::from(CtrlAttr::FamilyId) {
                                let p: &[u8] = a.nla_payload().as_ref();
                                if p.len() >= 2 {
                                    id = Some(u16::from_ne_bytes([p[0], p[1]]));
                                }
                            }
                        }
                    }
                    Reply::Ack { seq: s } if s == seq => {
                        return id.ok_or_else(|| {
                            IpvsError::Protocol("nlctrl replied without a family id".into())
                        });
                    }
                    Reply::Error { seq: s, errno } if s == seq => {
                        return Err(if errno == libc::ENOENT {
                            IpvsError::Unavailable
                        } else {
                            IpvsError::Op(OpError {
                                what: "look up the IPVS family".into(),
                                subject: Subject::Other,
                                errno,
                            })
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    /// Receives one datagram into `self.buf`, returning its length.
    fn recv_raw(&mut self, what: &str) -> Result<usize, IpvsError> {
        let (n, _) = self
            .sock
            .recv(&mut self.buf[..], Msg::TRUNC)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    IpvsError::Protocol(format!(
                        "{what}: no reply from the kernel within {RECV_TIMEOUT_SECS} s"
                    ))
                }
                _ if e.raw_os_error() == Some(libc::ENOBUFS) => IpvsError::Protocol(format!(
                    "{what}: the kernel dropped replies (netlink receive buffer overflow); \
                     the table may be partly changed"
                )),
                _ => IpvsError::Io {
                    context: format!("{what}: receive from the netlink socket"),
                    source: e,
                },
            })?;
        Ok(n)
    }

    fn recv(&mut self) -> Result<Vec<Reply>, IpvsError> {
        let n = self.recv_raw("IPVS")?;
        if n > self.buf.len() {
            return Err(IpvsError::Protocol(format!(
                "a {n}-byte datagram does not fit the {}-byte buffer",
                self.buf.len()
            )));
        }
        Ok(codec::parse_replies(&self.buf[..n])?)
    }

    fn raise_recv_buffer(&mut self) {
        if self.big_buffer {
            return;
        }
        let size = RECV_BUFFER as libc::c_int;
        // SO_RCVBUFFORCE ignores rmem_max (needs CAP_NET_ADMIN, which IPVS needs anyway).
        // SAFETY: a valid fd and a c_int option value of the right size.
        let forced = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if forced != 0 {
            // Capped by net.core.rmem_max; chunks still get their replies, with smaller margins.
            let _ = self.sock.set_recv_buffer_size(RECV_BUFFER);
        }
        self.big_buffer = true;
    }

    /// Runs a dump and returns its messages; the raw datagrams are appended to `raw` if given.
    fn dump(
        &mut self,
        msg: Message,
        what: &str,
        subject: Subject,
        mut raw: Option<&mut Vec<u8>>,
    ) -> Result<Vec<Message>, IpvsError> {
        let seq = self.next_seq();
        let mut out_bytes = Vec::new();
        codec::frame(self.family, seq, true, msg, &mut out_bytes)?;
        self.sock
            .send(&out_bytes, Msg::empty())
            .map_err(io_err(format!("send the request to {what}")))?;
        let mut out = Vec::new();
        loop {
            let n = self.recv_raw(what)?;
            if n > self.buf.len() {
                return Err(IpvsError::Protocol(format!(
                    "{what}: a {n}-byte datagram was truncated"
                )));
            }
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(&self.buf[..n]);
            }
            for r in codec::parse_replies(&self.buf[..n])? {
                match r {
                    Reply::Message { seq: s, msg } if s == seq => out.push(msg),
                    Reply::Done { seq: s, errno } if s == seq => {
                        if errno != 0 {
                            return Err(IpvsError::Op(OpError {
                                what: what.into(),
                                subject,
                                errno,
                            }));
                        }
                        return Ok(out);
                    }
                    Reply::Error { seq: s, errno } if s == seq => {
                        return Err(IpvsError::Op(OpError {
                            what: what.into(),
                            subject,
                            errno,
                        }));
                    }
                    Reply::Ack { seq: s } if s == seq => return Ok(out),
                    _ => {} // a late reply to an earlier request: not ours to act on
                }
            }
        }
    }

    /// One doit request with its reply messages (GET_CONFIG, GET_INFO, GET_SERVICE).
    fn doit(
        &mut self,
        msg: Message,
        what: &str,
        subject: Subject,
    ) -> Result<Vec<Message>, IpvsError> {
        let seq = self.next_seq();
        let mut bytes = Vec::new();
        codec::frame(self.family, seq, false, msg, &mut bytes)?;
        self.sock
            .send(&bytes, Msg::empty())
            .map_err(io_err(format!("send the request to {what}")))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv()? {
                match r {
                    Reply::Message { seq: s, msg } if s == seq => out.push(msg),
                    Reply::Ack { seq: s } if s == seq => return Ok(out),
                    Reply::Error { seq: s, errno } if s == seq => {
                        return Err(IpvsError::Op(OpError {
                            what: what.into(),
                            subject,
                            errno,
                        }));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every service with its counters.
    pub fn services(&mut self) -> Result<Vec<ServiceStatus>, IpvsError> {
        let msgs = self.dump(
            codec::dump_services()?,
            "dump services",
            Subject::Service,
            None,
        )?;
        msgs.iter()
            .map(|m| codec::decode_service(m).map_err(IpvsError::from))
            .collect()
    }

    /// One service, or `None` when the kernel has no such service.
    pub fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceStatus>, IpvsError> {
        match self.doit(
            codec::get_service(key)?,
            &format!("get service {key}"),
            Subject::Service,
        ) {
            Ok(msgs) => match msgs.first() {
                Some(m) => Ok(Some(codec::decode_service(m)?)),
                None => Err(IpvsError::Protocol(format!(
                    "get service {key}: no reply message"
                ))),
            },
            Err(IpvsError::Op(e)) if e.errno == libc::ESRCH => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The destinations of a service with their counters (empty when the service does not exist:
    /// the kernel does not tell the difference; see [`NetlinkIpvs::service`]).
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<DestinationStatus>, IpvsError> {
        let what = format!("dump destinations of {key}");
        let msgs = self.dump(
            codec::dump_destinations(key)?,
            &what,
            Subject::Destination,
            None,
        )?;
        msgs.iter()
            .map(|m| codec::decode_destination(m, key.family()).map_err(IpvsError::from))
            .collect()
    }

    /// The whole configuration: every service and its destinations.
    pub fn table(&mut self) -> Result<Table, IpvsError> {
        let mut t = Table::new();
        for s in self.services()? {
            let key = s.service.key;
            t.insert_service(s.service);
            for d in self.destinations(&key)? {
                t.insert_destination(&key, d.destination);
            }
        }
        Ok(t)
    }

    /// The running sync daemons (at most a master and a backup).
    pub fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        let msgs = self.dump(
            codec::bare(codec::cmd::GET_DAEMON)?,
            "dump sync daemons",
            Subject::Daemon,
            None,
        )?;
        msgs.iter()
            .map(|m| codec::decode_daemon(m).map_err(IpvsError::from))
            .collect()
    }

    /// The connection timeouts.
    pub fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let msgs = self.doit(
            codec::bare(codec::cmd::GET_CONFIG)?,
            "get timeouts",
            Subject::Other,
        )?;
        let m = msgs
            .first()
            .ok_or_else(|| IpvsError::Protocol("get timeouts: no reply message".into()))?;
        Ok(codec::decode_timeouts(m)?)
    }

    /// Version and connection table size.
    pub fn info(&mut self) -> Result<Info, IpvsError> {
        let msgs = self.doit(
            codec::bare(codec::cmd::GET_INFO)?,
            "get info",
            Subject::Other,
        )?;
        let m = msgs
            .first()
            .ok_or_else(|| IpvsError::Protocol("get info: no reply message".into()))?;
        Ok(codec::decode_info(m)?)
    }

    /// The raw reply bytes of the services dump followed by each service's destinations dump, in
    /// the order of the services dump (each dump ends with its `NLMSG_DONE`). For golden fixtures
    /// and debugging.
    pub fn raw_table_dump(&mut self) -> Result<Vec<u8>, IpvsError> {
        let mut raw = Vec::new();
        let msgs = self.dump(
            codec::dump_services()?,
            "dump services",
            Subject::Service,
            Some(&mut raw),
        )?;
        for m in &msgs {
            let key = codec::decode_service(m)?.service.key;
            let what = format!("dump destinations of {key}");
            self.dump(
                codec::dump_destinations(&key)?,
                &what,
                Subject::Destination,
                Some(&mut raw),
            )?;
        }
        Ok(raw)
    }

    /// Applies operations in order, batched; see the module docs.
    pub fn apply(&mut self, ops: &[Op]) -> Result<ApplyReport, IpvsError> {
        let mut report = ApplyReport::default();
        if ops.is_empty() {
            return Ok(report);
        }
        if ops.len() > 1 {
            self.raise_recv_buffer();
        }
        let mut i = 0;
        let mut bytes = Vec::with_capacity(CHUNK_BYTES + 4096);
        while i < ops.len() {
            bytes.clear();
            let mut pending: HashMap<u32, usize> = HashMap::new();
            while i < ops.len() && pending.len() < CHUNK_MESSAGES && bytes.len() < CHUNK_BYTES {
                let seq = self.next_seq();
                codec::frame(self.family, seq, false, codec::encode(&ops[i])?, &mut bytes)?;
                pending.insert(seq, i);
                i += 1;
            }
            let sent = self
                .sock
                .send(&bytes, Msg::empty())
                .map_err(io_err(format!(
                    "send {} IPVS requests ({} bytes)",
                    pending.len(),
                    bytes.len()
                )))?;
            if sent != bytes.len() {
                return Err(IpvsError::Protocol(format!(
                    "sent {sent} of {} bytes",
                    bytes.len()
                )));
            }
            report.sends += 1;
            let chunk = pending.len();
            let mut failed: Vec<(usize, i32)> = Vec::new();
            while !pending.is_empty() {
                for r in self.recv()? {
                    match r {
                        Reply::Ack { seq } => {
                            pending.remove(&seq);
                        }
                        Reply::Error { seq, errno } => {
                            if let Some(idx) = pending.remove(&seq) {
                                failed.push((idx, errno));
                            }
                        }
                        _ => {}
                    }
                }
            }
            report.operations += chunk - failed.len();
            if !failed.is_empty() {
                failed.sort();
                return Err(IpvsError::Apply {
                    failed: failed
                        .iter()
                        .map(|(idx, errno)| OpError::new(&ops[*idx], *errno))
                        .collect(),
                    applied: report.operations,
                    total: ops.len(),
                });
            }
        }
        Ok(report)
    }
}
