//! The real IPVS: a generic netlink socket ([`Netlink`], the toolkit's one netlink socket) in one
//! network namespace.
//!
//! - [`NetlinkIpvs::connect`] resolves the "IPVS" family through nlctrl; `ENOENT` there becomes
//!   [`IpvsError::Unavailable`] ("load the ip_vs module"). Since Linux 5.17 the lookup itself loads
//!   the module.
//! - Every wait for the kernel is bounded: a reply datagram that does not come within the timeout
//!   ([`crate::netlink::DEFAULT_TIMEOUT`], 5 s, or [`NetlinkIpvs::set_timeout`]) is an error
//!   saying so, never a hang. The calls block their thread for at most that long per datagram:
//!   async code uses [`AsyncIpvs`](super::AsyncIpvs).
//! - Dumps (services, destinations, daemons) read until `NLMSG_DONE`, one dump at a time. A dump is
//!   not a snapshot: the kernel resumes each further message by position in its service table, which
//!   in the lab's kernel (6.1) is shared by every namespace, and it does not flag such a dump
//!   (`ip_vs_ctl.c: ip_vs_genl_dump_services` sets no `NLM_F_DUMP_INTR`). Services added or removed
//!   meanwhile (here or in another namespace) make a dump repeat or miss some. So
//!   [`NetlinkIpvs::services`] (and [`NetlinkIpvs::table`]) return a dump only when it has no
//!   repeated service and the next dump is the same ([`judge_dump`]); after [`DUMP_ATTEMPTS`]
//!   dumps without that, [`IpvsError::Inconsistent`]. A destinations dump walks one service's own
//!   list and is not affected by other namespaces.
//! - [`NetlinkIpvs::apply`] sends many requests per `send()` (chunks below the socket's send buffer),
//!   each with its own sequence number, only the last with `NLM_F_ACK` (the kernel answers a
//!   request without it only when it fails), then reads until that last request's ACK or error;
//!   the receive buffer is raised first (`SO_RCVBUFFORCE`, else `SO_RCVBUF`) so that a
//!   chunk's replies are never dropped. The kernel processes a chunk's requests in order and
//!   independently (no transaction); after a chunk with refusals no further chunk is sent.
//! - [`NetlinkIpvs::in_netns`] opens the socket from a short-lived thread that entered the
//!   namespace with `setns`: a netlink socket stays in the namespace it was created in, and the
//!   calling thread's namespace is never changed.
//! - [`NetlinkIpvs::with_netlink`] runs the same logic over any [`Netlink`], which unit tests
//!   connect to a socketpair whose other end plays the kernel.
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

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use neli::consts::socket::NlFamily;
use nix::sched::{CloneFlags, setns};

use super::codec::{self, Message, Reply};
use super::model::*;
use super::{ApplyReport, IpvsError, OpError, Subject};
use crate::netlink::{Netlink, NlError};

/// Receive buffer requested for batches (replies of a whole chunk must fit; an ACK costs about
/// 1 KiB of buffer, an error echoing its request more). Measured in
/// `shared/reference/ipvs-netlink.md` §3: 8 MiB holds 5 000 replies.
const RECV_BUFFER: usize = 8 << 20;
/// Requests per `send()`: below what [`RECV_BUFFER`] holds with margin.
const CHUNK_MESSAGES: usize = 1000;
/// Bytes per `send()`: below the default `sk_sndbuf` (212 992) minus overhead, which would give
/// `EMSGSIZE` (`net/netlink/af_netlink.c: netlink_sendmsg`).
const CHUNK_BYTES: usize = 160 * 1024;
/// Services dumps tried before [`IpvsError::Inconsistent`]: two consecutive dumps must agree
/// (see the module docs).
pub const DUMP_ATTEMPTS: usize = 8;

/// The IPVS table of one network namespace, over generic netlink.
pub struct NetlinkIpvs {
    nl: Netlink,
    family: u16,
    big_buffer: bool,
}

impl std::fmt::Debug for NetlinkIpvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkIpvs")
            .field("family", &self.family)
            .field("netlink", &self.nl)
            .finish()
    }
}

fn nl_err(context: impl Into<String>) -> impl FnOnce(NlError) -> IpvsError {
    let context = context.into();
    move |source| IpvsError::Netlink { context, source }
}

/// Whether a services dump can be trusted, given the previous dump of the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpVerdict {
    /// This dump repeats a service: the table moved under it. Start again.
    Duplicates,
    /// The first dump, or one that differs from the previous: dump again to confirm.
    Unconfirmed,
    /// Equal to the previous dump, without duplicates: the table.
    Confirmed,
}

/// Judges a services dump (pure). A dump of kernel 6.1 resumes each message by position in the
/// service table all namespaces share, so a change anywhere between two messages shifts it: an
/// insertion before the resume point repeats a service, a removal skips one. A repeat is seen
/// in the dump itself; a skip only by comparing with another dump, so a dump is believed when
/// the next one is the same (configuration only: counters move all the time).
pub fn judge_dump(previous: Option<&[Service]>, current: &[Service]) -> DumpVerdict {
    let mut seen = HashSet::with_capacity(current.len());
    if !current.iter().all(|s| seen.insert(s.key)) {
        return DumpVerdict::Duplicates;
    }
    match previous {
        Some(p) if p == current => DumpVerdict::Confirmed,
        _ => DumpVerdict::Unconfirmed,
    }
}

impl NetlinkIpvs {
    /// Opens a socket in the calling thread's network namespace and resolves the IPVS family.
    pub fn connect() -> Result<NetlinkIpvs, IpvsError> {
        let nl = Netlink::connect(NlFamily::Generic).map_err(nl_err("open a netlink socket"))?;
        NetlinkIpvs::with_netlink(nl)
    }

    /// Resolves the IPVS family over `nl` and talks to IPVS through it: the seam that lets the
    /// logic run against a test peer ([`Netlink::from_fd`]).
    pub fn with_netlink(nl: Netlink) -> Result<NetlinkIpvs, IpvsError> {
        let mut me = NetlinkIpvs {
            nl,
            family: 0,
            big_buffer: false,
        };
        me.family = me.resolve()?;
        Ok(me)
    }

    /// How long a request waits for each reply datagram ([`crate::netlink::DEFAULT_TIMEOUT`]
    /// unless set).
    pub fn timeout(&self) -> Duration {
        self.nl.timeout()
    }

    /// Sets how long a request waits for each reply datagram before failing with
    /// "no reply from the kernel within ...".
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), IpvsError> {
        self.nl
            .set_timeout(timeout)
            .map_err(nl_err("set the netlink receive timeout"))
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
                let netns_err = |reason: String| IpvsError::Netns {
                    name: path.display().to_string(),
                    reason,
                };
                let file = File::open(&path).map_err(|e| netns_err(e.to_string()))?;
                // Only this short-lived thread changes namespace; the socket stays in it.
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| netns_err(format!("setns: {}", std::io::Error::from(e))))?;
                NetlinkIpvs::connect()
            })
            .map_err(|source| IpvsError::Io {
                context: format!("start a thread to enter network namespace {name}"),
                source,
            })?;
        thread.join().map_err(|_| IpvsError::Netns {
            name,
            reason: "the thread entering it panicked".into(),
        })?
    }

    /// The generic netlink family id the kernel gave IPVS.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    fn send(&self, bytes: &[u8], what: &str) -> Result<(), IpvsError> {
        self.nl
            .send(bytes)
            .map_err(nl_err(format!("{what}: send the request")))
    }

    fn recv(&mut self, what: &str) -> Result<Vec<Reply>, IpvsError> {
        let bytes = self.nl.recv().map_err(|e| match e {
            NlError::Overflow => IpvsError::Netlink {
                context: format!("{what} (the table may be partly changed)"),
                source: e,
            },
            e => IpvsError::Netlink {
                context: what.to_owned(),
                source: e,
            },
        })?;
        Ok(codec::parse_replies(bytes)?)
    }

    /// The IPVS family id from nlctrl (`CTRL_CMD_GETFAMILY`). neli's `NlRouter` has the same
    /// lookup, but waits for the reply on a router thread without a deadline.
    fn resolve(&mut self) -> Result<u16, IpvsError> {
        let seq = self.nl.next_seq();
        let bytes = codec::family_request(codec::FAMILY_NAME, seq)?;
        let what = "look up the IPVS family";
        self.send(&bytes, what)?;
        let mut id = None;
        loop {
            for r in self.recv(what)? {
                match r {
                    Reply::Message { seq: s, msg } if s == seq => {
                        id = id.or(codec::decode_family_id(&msg)?);
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
                                what: what.into(),
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

    fn raise_recv_buffer(&mut self) {
        if !self.big_buffer {
            self.nl.raise_recv_buffer(RECV_BUFFER);
            self.big_buffer = true;
        }
    }

    /// Runs a dump and returns its messages; the raw datagrams are appended to `raw` if given.
    fn dump(
        &mut self,
        msg: Message,
        what: &str,
        subject: Subject,
        mut raw: Option<&mut Vec<u8>>,
    ) -> Result<Vec<Message>, IpvsError> {
        let seq = self.nl.next_seq();
        let mut out_bytes = Vec::new();
        codec::frame(self.family, seq, codec::Ask::Dump, msg, &mut out_bytes)?;
        self.send(&out_bytes, what)?;
        let mut out = Vec::new();
        loop {
            let bytes = self.nl.recv().map_err(nl_err(what.to_owned()))?;
            if let Some(raw) = raw.as_deref_mut() {
                raw.extend_from_slice(bytes);
            }
            for r in codec::parse_replies(bytes)? {
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
        let seq = self.nl.next_seq();
        let mut bytes = Vec::new();
        codec::frame(self.family, seq, codec::Ask::Ack, msg, &mut bytes)?;
        self.send(&bytes, what)?;
        let mut out = Vec::new();
        loop {
            for r in self.recv(what)? {
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

    /// One services dump exactly as the kernel gave it, unchecked: it may repeat or miss services
    /// while the table changes (see the module docs). For diagnostics and the lab test that shows
    /// the quirk; use [`NetlinkIpvs::services`].
    pub fn services_unchecked(&mut self) -> Result<Vec<ServiceStatus>, IpvsError> {
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

    /// Every service with its counters, from a dump confirmed by a second equal one
    /// ([`judge_dump`]); [`IpvsError::Inconsistent`] after [`DUMP_ATTEMPTS`] dumps without two
    /// that agree.
    pub fn services(&mut self) -> Result<Vec<ServiceStatus>, IpvsError> {
        let mut previous: Option<Vec<Service>> = None;
        let mut duplicates = 0;
        for _ in 0..DUMP_ATTEMPTS {
            let dump = self.services_unchecked()?;
            let config: Vec<Service> = dump.iter().map(|s| s.service.clone()).collect();
            match judge_dump(previous.as_deref(), &config) {
                DumpVerdict::Confirmed => return Ok(dump),
                DumpVerdict::Unconfirmed => previous = Some(config),
                DumpVerdict::Duplicates => {
                    duplicates += 1;
                    previous = None;
                }
            }
        }
        Err(IpvsError::Inconsistent {
            attempts: DUMP_ATTEMPTS,
            duplicates,
        })
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
            let mut last = (0, 0);
            while i < ops.len() && pending.len() < CHUNK_MESSAGES && bytes.len() < CHUNK_BYTES {
                let seq = self.nl.next_seq();
                last = (seq, bytes.len());
                codec::encode_framed(
                    &ops[i],
                    self.family,
                    seq,
                    codec::Ask::ErrorsOnly,
                    &mut bytes,
                )?;
                pending.insert(seq, i);
                i += 1;
            }
            // Only the chunk's last request asks for an ACK: the others are answered only when
            // they fail, and the kernel handles a send's requests in order, so the last one's
            // answer comes after every earlier error. Saves a reply and its decoding per request.
            let (last, at) = last;
            codec::ask_for_ack(&mut bytes[at..]);
            self.send(
                &bytes,
                &format!(
                    "apply {} IPVS requests ({} bytes)",
                    pending.len(),
                    bytes.len()
                ),
            )?;
            report.sends += 1;
            let chunk = pending.len();
            let mut failed: Vec<(usize, i32)> = Vec::new();
            let mut answered = false;
            while !answered {
                for r in self.recv("apply IPVS requests")? {
                    let (seq, errno) = match r {
                        Reply::Ack { seq } => (seq, 0),
                        Reply::Error { seq, errno } => (seq, errno),
                        _ => continue,
                    };
                    answered |= seq == last;
                    // An ACK of an earlier request (not asked for) changes nothing.
                    if let Some(idx) = pending.remove(&seq).filter(|_| errno != 0) {
                        failed.push((idx, errno));
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

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::thread::JoinHandle;

    use super::*;
    use crate::netlink::testing::{error_reply, pair, split};

    /// Replies of a real kernel (6.1): the services dump, then each service's destinations.
    const CAPTURE: &[u8] = include_bytes!("../../tests/fixtures/ipvs/dump-6.1.bin");
    const IPVS_ID: u16 = 0x1c;

    /// The services-dump messages of the capture (without its `NLMSG_DONE`).
    fn captured_services() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let len = u32::from_ne_bytes(CAPTURE[at..at + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(CAPTURE[at + 4..at + 6].try_into().unwrap());
            if ty == libc::NLMSG_DONE as u16 {
                return out;
            }
            out.push(CAPTURE[at..at + len].to_vec());
            at += (len + 3) & !3;
        }
    }

    fn with_seq(msg: &[u8], seq: u32) -> Vec<u8> {
        let mut m = msg.to_vec();
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        m
    }

    fn done(seq: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b
    }

    /// nlctrl's answer: the family id, then the ACK.
    fn family_reply(seq: u32, request: &[u8]) -> Vec<u8> {
        let mut attrs = GenlBufferForTest::id(IPVS_ID);
        let mut b = Vec::new();
        let len = 16 + 4 + attrs.len();
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&codec::GENL_ID_CTRL.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&[1, 2, 0, 0]); // CTRL_CMD_NEWFAMILY, version 2
        b.append(&mut attrs);
        b.extend_from_slice(&error_reply(seq, 0, request));
        b
    }

    struct GenlBufferForTest;
    impl GenlBufferForTest {
        /// `CTRL_ATTR_FAMILY_ID` (u16, padded).
        fn id(id: u16) -> Vec<u8> {
            let mut a = vec![6, 0, 1, 0];
            a.extend_from_slice(&id.to_ne_bytes());
            a.extend_from_slice(&[0, 0]);
            a
        }
    }

    /// A kernel played by a thread: `answer(n, type, seq, request)` gives the datagrams to send
    /// for the n-th request (none: swallow it). Ends after `requests` requests.
    fn fake_kernel(
        peer: UnixDatagram,
        requests: usize,
        mut answer: impl FnMut(usize, u16, u32, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> JoinHandle<Vec<u16>> {
        std::thread::spawn(move || {
            peer.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            for n in 0..requests {
                let len = peer.recv(&mut buf).expect("a request within 60 s");
                let (ty, _, seq, _) = split(&buf[..len])[0].clone();
                seen.push(ty);
                for d in answer(n, ty, seq, &buf[..len]) {
                    peer.send(&d).unwrap();
                }
            }
            seen
        })
    }

    fn answering_family(
        n: usize,
        seq: u32,
        request: &[u8],
        rest: impl FnOnce() -> Vec<Vec<u8>>,
    ) -> Vec<Vec<u8>> {
        if n == 0 {
            vec![family_reply(seq, request)]
        } else {
            rest()
        }
    }

    #[test]
    fn enoent_from_nlctrl_is_unavailable_in_words() {
        let (nl, peer) = pair();
        let kernel = fake_kernel(peer, 1, |_, _, seq, req| {
            vec![error_reply(seq, libc::ENOENT, req)]
        });
        let err = NetlinkIpvs::with_netlink(nl).unwrap_err();
        assert!(matches!(err, IpvsError::Unavailable), "{err:?}");
        assert_eq!(
            err.to_string(),
            "IPVS is not available in this kernel: load the ip_vs module (modprobe ip_vs)"
        );
        // The request was nlctrl's GETFAMILY for "IPVS".
        assert_eq!(kernel.join().unwrap(), vec![codec::GENL_ID_CTRL]);
    }

    #[test]
    fn the_family_id_comes_from_nlctrl() {
        let (nl, peer) = pair();
        let kernel = fake_kernel(peer, 1, |_, _, seq, req| vec![family_reply(seq, req)]);
        let ipvs = NetlinkIpvs::with_netlink(nl).unwrap();
        assert_eq!(ipvs.family_id(), IPVS_ID);
        kernel.join().unwrap();
    }

    #[test]
    fn a_swallowed_reply_is_an_error_after_the_timeout_not_a_hang() {
        let (nl, peer) = pair();
        let kernel = fake_kernel(peer, 2, |n, _, seq, req| {
            answering_family(n, seq, req, Vec::new) // GET_INFO: never answered
        });
        let mut ipvs = NetlinkIpvs::with_netlink(nl).unwrap();
        assert_eq!(ipvs.timeout(), Duration::from_secs(5));
        ipvs.set_timeout(Duration::from_millis(300)).unwrap();
        let err = ipvs.info().unwrap_err();
        assert_eq!(
            err.to_string(),
            "get info: no reply from the kernel within 0.3 s"
        );
        assert_eq!(kernel.join().unwrap(), vec![codec::GENL_ID_CTRL, IPVS_ID]);
    }

    #[test]
    fn a_dump_that_stops_midway_is_an_error_after_the_timeout() {
        let (nl, peer) = pair();
        let kernel = fake_kernel(peer, 2, |n, _, seq, req| {
            answering_family(n, seq, req, || {
                // The first message of the dump, then silence (no NLMSG_DONE).
                vec![with_seq(&captured_services()[0], seq)]
            })
        });
        let mut ipvs = NetlinkIpvs::with_netlink(nl).unwrap();
        ipvs.set_timeout(Duration::from_millis(300)).unwrap();
        let err = ipvs.services().unwrap_err();
        assert_eq!(
            err.to_string(),
            "dump services: no reply from the kernel within 0.3 s"
        );
        kernel.join().unwrap();
    }

    /// A services dump answer made of the captured messages at `picks`.
    fn dump_of(picks: &[usize], seq: u32) -> Vec<Vec<u8>> {
        let all = captured_services();
        let mut d: Vec<u8> = Vec::new();
        for &i in picks {
            d.extend_from_slice(&with_seq(&all[i], seq));
        }
        vec![d, done(seq)]
    }

    #[test]
    fn a_dump_is_believed_only_when_the_next_agrees_and_repeats_nothing() {
        let n = captured_services().len();
        assert!(n >= 3, "the capture has {n} services");
        let all: Vec<usize> = (0..n).collect();
        let (nl, peer) = pair();
        let answers = [
            vec![0, 1, 1, 2],  // a repeat: another namespace inserted before the resume point
            all[1..].to_vec(), // a miss, seen only against the next dump
            all.clone(),       // differs from the previous: unconfirmed
            all.clone(),       // agrees: believed
        ];
        let kernel = fake_kernel(peer, 1 + answers.len(), move |i, _, seq, req| {
            answering_family(i, seq, req, || dump_of(&answers[i - 1], seq))
        });
        let mut ipvs = NetlinkIpvs::with_netlink(nl).unwrap();
        let got = ipvs.services().unwrap();
        assert_eq!(got.len(), n);
        assert_eq!(kernel.join().unwrap().len(), 5, "four dumps were needed");
    }

    #[test]
    fn dumps_that_never_agree_are_an_error_in_words() {
        let n = captured_services().len();
        let (nl, peer) = pair();
        let kernel = fake_kernel(peer, 1 + DUMP_ATTEMPTS, move |i, _, seq, req| {
            answering_family(i, seq, req, || {
                // Alternately one service missing, and one repeated.
                if i % 2 == 0 {
                    dump_of(&(1..n).collect::<Vec<_>>(), seq)
                } else {
                    dump_of(&[0, 0], seq)
                }
            })
        });
        let mut ipvs = NetlinkIpvs::with_netlink(nl).unwrap();
        let err = ipvs.services().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "dump services: the service table changed during each of {DUMP_ATTEMPTS} dumps ({} of them \
                 repeated services), so none can be trusted; another namespace or process is changing IPVS \
                 services: try again",
                DUMP_ATTEMPTS / 2
            )
        );
        assert_eq!(kernel.join().unwrap().len(), 1 + DUMP_ATTEMPTS);
    }

    /// The framed messages of one datagram, whole (header included).
    fn messages(datagram: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 16 <= datagram.len() {
            let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap()) as usize;
            out.push(&datagram[at..at + len]);
            at += (len + 3) & !3;
        }
        out
    }

    /// Four destinations to add to one service, as one chunk.
    fn four_adds() -> Vec<Op> {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        (1..=4)
            .map(|k| {
                let addr = format!("192.0.2.{k}:80").parse().unwrap();
                Op::AddDestination(key, Destination::new(addr, Forward::Route))
            })
            .collect()
    }

    /// A kernel answering an apply chunk as Linux does: an error for each refused request
    /// (`refuse`: indexes), an ACK only where the request asks for one. Returns the flags seen.
    fn answering_chunk(
        refuse: &'static [usize],
    ) -> (
        NetlinkIpvs,
        JoinHandle<Vec<u16>>,
        std::sync::mpsc::Receiver<Vec<u16>>,
    ) {
        let (nl, peer) = pair();
        let (tx, rx) = std::sync::mpsc::channel();
        let kernel = fake_kernel(peer, 2, move |n, _, seq, req| {
            answering_family(n, seq, req, || {
                let mut reply = Vec::new();
                let mut flags = Vec::new();
                for (k, m) in messages(req).into_iter().enumerate() {
                    let f = u16::from_ne_bytes([m[6], m[7]]);
                    let seq = u32::from_ne_bytes(m[8..12].try_into().unwrap());
                    flags.push(f);
                    if refuse.contains(&k) {
                        reply.extend_from_slice(&error_reply(seq, libc::EEXIST, m));
                    } else if f & 4 != 0 {
                        reply.extend_from_slice(&error_reply(seq, 0, m));
                    }
                }
                let _ = tx.send(flags);
                vec![reply]
            })
        });
        (NetlinkIpvs::with_netlink(nl).unwrap(), kernel, rx)
    }

    #[test]
    fn a_chunk_asks_an_ack_of_its_last_request_only_and_is_done_by_it() {
        let (mut ipvs, kernel, flags) = answering_chunk(&[]);
        let report = ipvs.apply(&four_adds()).unwrap();
        assert_eq!((report.operations, report.sends), (4, 1));
        // REQUEST for the first three, REQUEST | ACK for the last.
        assert_eq!(flags.recv().unwrap(), vec![1, 1, 1, 5]);
        kernel.join().unwrap();
    }

    #[test]
    fn refusals_without_an_ack_asked_are_still_each_reported() {
        let (mut ipvs, kernel, _) = answering_chunk(&[1, 3]);
        match ipvs.apply(&four_adds()).unwrap_err() {
            IpvsError::Apply {
                failed,
                applied,
                total,
            } => {
                assert_eq!((applied, total), (2, 4));
                let what: Vec<_> = failed.iter().map(|f| f.to_string()).collect();
                assert_eq!(
                    what,
                    [
                        "add destination 192.0.2.2:80 to tcp 192.0.2.100:80: already exists",
                        "add destination 192.0.2.4:80 to tcp 192.0.2.100:80: already exists"
                    ]
                );
            }
            e => panic!("{e:?}"),
        }
        kernel.join().unwrap();
    }

    #[test]
    fn the_ack_asked_for_is_set_in_place() {
        let mut framed = Vec::new();
        codec::frame(
            0x1c,
            9,
            codec::Ask::ErrorsOnly,
            codec::encode(&Op::Flush).unwrap(),
            &mut framed,
        )
        .unwrap();
        let mut acked = Vec::new();
        codec::frame(
            0x1c,
            9,
            codec::Ask::Ack,
            codec::encode(&Op::Flush).unwrap(),
            &mut acked,
        )
        .unwrap();
        assert_ne!(framed, acked);
        codec::ask_for_ack(&mut framed);
        assert_eq!(framed, acked);
        let mut short = vec![0u8; 5];
        codec::ask_for_ack(&mut short);
        assert_eq!(short, [0; 5]);
    }

    #[test]
    fn judging_dumps() {
        let s = |p: u16| Service::new(ServiceKey::tcp(([192, 0, 2, 100], p).into()), Scheduler::Rr);
        let a = vec![s(1), s(2)];
        assert_eq!(judge_dump(None, &a), DumpVerdict::Unconfirmed);
        assert_eq!(judge_dump(Some(&a), &a), DumpVerdict::Confirmed);
        assert_eq!(judge_dump(Some(&a[..1]), &a), DumpVerdict::Unconfirmed);
        assert_eq!(judge_dump(Some(&a), &[s(1), s(1)]), DumpVerdict::Duplicates);
        assert_eq!(judge_dump(Some(&[]), &[]), DumpVerdict::Confirmed);
    }
}
