//! IPVS (the kernel's Linux Virtual Server table) over generic netlink, without `ipvsadm`.
//!
//! - [`model`]: typed services, destinations, sync daemons, timeouts, stats, and the [`Op`]s that
//!   change them; a [`Table`] is one namespace's whole configuration.
//! - [`codec`]: the wire format, pure (model ⇄ neli messages, reply bytes → model).
//! - [`socket`]: [`NetlinkIpvs`], the real kernel: family resolution, dumps, batched apply with every
//!   reply matched to its request, errors in words, a named network namespace.
//! - [`plan`](mod@plan): the pure planner `plan(desired, actual, owned) -> Vec<Op>`.
//! - [`Ipvs`]: the trait the rest of the toolkit programs against, with [`NetlinkIpvs`] and the
//!   in-memory [`RecordingIpvs`] (for tests of logic; it is not proof that anything works on a kernel);
//!   [`AsyncIpvs`] runs either on tokio's blocking pool for async callers.
//!
//! Deliberately not here: health checks, config files, retries, shelling out to `ipvsadm` or
//! `modprobe` (on kernels before 5.17 the `ip_vs` module must be loaded by the host), connection
//! table listing, and transactions (the kernel has none: a batch stops at the first chunk that had
//! a failure, and the error says how many operations were applied before).
//!
//! Bringing a namespace's table to a desired state:
//!
//! ```no_run
//! use common::ipvs::{self, Destination, Forward, Ipvs, NetlinkIpvs, Scheduler, Service, ServiceKey, Table};
//!
//! # fn main() -> Result<(), ipvs::IpvsError> {
//! let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
//! let mut desired = Table::new();
//! desired.insert_service(Service::new(key, Scheduler::Wlc));
//! desired.insert_destination(&key, Destination::new("192.0.2.11:80".parse().unwrap(), Forward::Route));
//!
//! let mut kernel = NetlinkIpvs::in_netns("d1")?;          // or NetlinkIpvs::connect()
//! let actual = kernel.table()?;
//! // Own only what we declare: services added by others (ipvsadm) are left alone.
//! let ops = ipvs::plan(&desired, &actual, |k| desired.services.contains_key(k));
//! let report = kernel.apply(&ops)?;
//! println!("{} operations in {} sends", report.operations, report.sends);
//! # Ok(()) }
//! ```
//!
//! The same logic against the recording fake, as a unit test would do it:
//!
//! ```
//! use common::ipvs::{plan, Destination, Forward, Ipvs, Op, RecordingIpvs, Scheduler, Service, ServiceKey, Table};
//!
//! let key = ServiceKey::udp("192.0.2.100:53".parse().unwrap());
//! let mut desired = Table::new();
//! desired.insert_service(Service::new(key, Scheduler::Rr));
//! desired.insert_destination(&key, Destination::new("192.0.2.11:53".parse().unwrap(), Forward::Masq));
//!
//! let mut fake = RecordingIpvs::default();
//! let ops = plan(&desired, &fake.table().unwrap(), |_| true);
//! fake.apply(&ops).unwrap();
//! assert_eq!(fake.table().unwrap(), desired);
//! assert!(matches!(fake.applied[0], Op::AddService(_)));
//! assert!(plan(&desired, &fake.table().unwrap(), |_| true).is_empty());
//! ```

pub mod codec;
pub mod model;
pub mod plan;
pub mod socket;

use std::fmt;
use std::io;

pub use model::*;
pub use plan::plan;
pub use socket::NetlinkIpvs;

/// What a kernel error belongs to, to put its errno in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A service operation (add/edit/delete/zero service, or a dump of one).
    Service,
    /// A destination operation.
    Destination,
    /// A sync daemon operation.
    Daemon,
    /// Anything else (timeouts, info, flush).
    Other,
}

impl Subject {
    /// The subject of an operation.
    pub fn of(op: &Op) -> Subject {
        match op {
            Op::AddService(_) | Op::EditService(_) | Op::DelService(_) | Op::Zero(Some(_)) => {
                Subject::Service
            }
            Op::AddDestination(..) | Op::EditDestination(..) | Op::DelDestination(..) => {
                Subject::Destination
            }
            Op::StartDaemon(_) | Op::StopDaemon(_) => Subject::Daemon,
            Op::SetTimeouts(_) | Op::Zero(None) | Op::Flush => Subject::Other,
        }
    }
}

/// The errno an IPVS command returned, in words that depend on what it was about
/// (`ip_vs_ctl.c`; the table in `shared/reference/ipvs-netlink.md`).
pub fn describe_errno(subject: Subject, errno: i32) -> String {
    use Subject::*;
    match (errno, subject) {
        (libc::EEXIST, Daemon) => "already running".into(),
        (libc::EEXIST, _) => "already exists".into(),
        (libc::ESRCH, Daemon) => "not running".into(),
        (libc::ESRCH, _) => "no such service".into(),
        (libc::ENOENT, Destination) => "no such destination".into(),
        (libc::ENOENT, Service) => {
            "scheduler or persistence engine not available in this kernel (no such module)".into()
        }
        (libc::ENOENT, _) => "not found".into(),
        (libc::EINVAL, Destination) => "invalid argument: the kernel rejected the destination (the address must be \
            unicast or local in this namespace, another family needs tunnel forwarding, a GUE tunnel needs a port)"
            .into(),
        (libc::EINVAL, Service) => "invalid argument: the kernel rejected the service (bad netmask, scheduler or \
            persistence engine name too long, or missing attributes)"
            .into(),
        (libc::EINVAL, Daemon) => "invalid argument: the kernel rejected the sync daemon (the group must be a \
            multicast address, the interface name at most 15 bytes)"
            .into(),
        (libc::EINVAL, Other) => "invalid argument: the kernel rejected the values".into(),
        (libc::ERANGE, _) => {
            "value out of range (weight above 2147483647, or lower threshold above upper threshold)".into()
        }
        (libc::EAFNOSUPPORT, _) => "address family not supported (IPv6 disabled or IPVS built without IPv6)".into(),
        (libc::EPERM, _) => "permission denied: needs CAP_NET_ADMIN in the initial user namespace".into(),
        (libc::ENODEV, _) => "no such network interface".into(),
        (libc::EOPNOTSUPP, _) => "operation not supported by the kernel's IPVS".into(),
        (libc::ENOPROTOOPT, _) => "the IPVS module is being unloaded".into(),
        (libc::ENOMEM, _) => "the kernel is out of memory".into(),
        (e, _) => {
            let s = io::Error::from_raw_os_error(e).to_string();
            // "File exists (os error 17)" -> "file exists (errno 17)"
            let s = s.replace("(os error", "(errno");
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
    }
}

/// One operation the kernel refused: `add destination 192.0.2.13:80 to tcp 192.0.2.100:80: already exists`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// The operation and its object in words.
    pub what: String,
    /// What it is about.
    pub subject: Subject,
    /// The errno (positive).
    pub errno: i32,
}

impl OpError {
    /// The error of an operation.
    pub fn new(op: &Op, errno: i32) -> OpError {
        OpError {
            what: op.to_string(),
            subject: Subject::of(op),
            errno,
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            describe_errno(self.subject, self.errno)
        )
    }
}

impl std::error::Error for OpError {}

/// Everything that can go wrong talking to IPVS.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// The generic netlink family "IPVS" is not registered (`ENOENT` from nlctrl).
    #[error("IPVS is not available in this kernel: load the ip_vs module (modprobe ip_vs)")]
    Unavailable,
    /// A single request or dump was refused.
    #[error("{0}")]
    Op(OpError),
    /// Some operations of a batch were refused; `applied` went through before the batch stopped.
    #[error("{}", apply_message(.failed, *.applied, *.total))]
    Apply {
        /// The refused operations, in order.
        failed: Vec<OpError>,
        /// Operations the kernel accepted (in this batch, failures excluded).
        applied: usize,
        /// Operations requested.
        total: usize,
    },
    /// A socket or system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// A network namespace could not be entered.
    #[error("network namespace {name}: {reason}")]
    Netns {
        /// The namespace name or path.
        name: String,
        /// Why.
        reason: String,
    },
    /// The kernel sent something this module cannot read, or a request could not be built.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// The kernel's replies did not match the requests (unexpected sequence numbers, missing
    /// answers).
    #[error("netlink protocol error: {0}")]
    Protocol(String),
    /// The netlink socket failed or stayed silent: no reply within the timeout, replies dropped
    /// by a full receive buffer, an oversized datagram.
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done.
        context: String,
        /// What went wrong.
        source: crate::netlink::NlError,
    },
    /// Every services dump of a call was contradicted by the next (kernel 6.1 resumes a dump by
    /// position in the service table that all namespaces share; see [`socket::judge_dump`]).
    #[error(
        "dump services: the service table changed during each of {attempts} dumps ({duplicates} of them \
         repeated services), so none can be trusted; another namespace or process is changing IPVS \
         services: try again"
    )]
    Inconsistent {
        /// Dumps made.
        attempts: usize,
        /// Dumps that listed a service twice.
        duplicates: usize,
    },
}

fn apply_message(failed: &[OpError], applied: usize, total: usize) -> String {
    const SHOWN: usize = 5;
    let mut s = match failed {
        [one] => one.to_string(),
        _ => format!(
            "{} of {total} operations failed: {}",
            failed.len(),
            failed
                .iter()
                .take(SHOWN)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    if failed.len() > SHOWN {
        s.push_str(&format!("; and {} more", failed.len() - SHOWN));
    }
    if failed.len() == 1 && total > 1 {
        s.push_str(&format!(
            " ({applied} of {total} operations applied before stopping)"
        ));
    }
    s
}

impl IpvsError {
    /// The errnos of the refused operations, for callers that branch on them.
    pub fn errnos(&self) -> Vec<i32> {
        match self {
            IpvsError::Op(e) => vec![e.errno],
            IpvsError::Apply { failed, .. } => failed.iter().map(|e| e.errno).collect(),
            _ => vec![],
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Operations applied (one netlink request each).
    pub operations: usize,
    /// `send()` calls used (batches).
    pub sends: usize,
}

/// The IPVS table of one network namespace, as the toolkit uses it.
pub trait Ipvs {
    /// The whole configuration: every service with its destinations.
    fn table(&mut self) -> Result<Table, IpvsError>;
    /// Applies operations in order.
    fn apply(&mut self, ops: &[Op]) -> Result<ApplyReport, IpvsError>;
}

impl Ipvs for NetlinkIpvs {
    fn table(&mut self) -> Result<Table, IpvsError> {
        NetlinkIpvs::table(self)
    }
    fn apply(&mut self, ops: &[Op]) -> Result<ApplyReport, IpvsError> {
        NetlinkIpvs::apply(self, ops)
    }
}

/// [`Ipvs`] for async code: each call runs on tokio's blocking pool
/// ([`crate::blocking::off_runtime`]), so a dump of a large table or a kernel that is slow to
/// answer (bounded by the socket's timeout) never holds a runtime worker. Clones share the one
/// socket; calls are serialised on it.
#[derive(Debug)]
pub struct AsyncIpvs<I> {
    inner: std::sync::Arc<std::sync::Mutex<I>>,
}

impl<I> Clone for AsyncIpvs<I> {
    fn clone(&self) -> Self {
        AsyncIpvs {
            inner: self.inner.clone(),
        }
    }
}

impl<I: Ipvs + Send + 'static> AsyncIpvs<I> {
    /// Wraps a blocking [`Ipvs`] (usually a [`NetlinkIpvs`]).
    pub fn new(ipvs: I) -> AsyncIpvs<I> {
        AsyncIpvs {
            inner: std::sync::Arc::new(std::sync::Mutex::new(ipvs)),
        }
    }

    /// Runs `f` with the wrapped value on the blocking pool (for calls beyond the trait, e.g.
    /// [`NetlinkIpvs::daemons`]).
    pub async fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut I) -> R + Send + 'static) -> R {
        let inner = self.inner.clone();
        crate::blocking::off_runtime(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
    }

    /// [`Ipvs::table`].
    pub async fn table(&self) -> Result<Table, IpvsError> {
        self.with(|i| i.table()).await
    }

    /// [`Ipvs::apply`].
    pub async fn apply(&self, ops: Vec<Op>) -> Result<ApplyReport, IpvsError> {
        self.with(move |i| i.apply(&ops)).await
    }
}

/// An in-memory IPVS table that records the operations applied to it and answers like the kernel
/// does (`EEXIST`, `ESRCH`, `ENOENT`, `ERANGE`), so planner and reconcile logic can be tested
/// without privileges.
#[derive(Debug, Clone, Default)]
pub struct RecordingIpvs {
    /// The current table.
    pub table: Table,
    /// Running sync daemons.
    pub daemons: Vec<SyncDaemon>,
    /// Every operation applied successfully, in order.
    pub applied: Vec<Op>,
}

impl RecordingIpvs {
    /// A fake holding `table`.
    pub fn with_table(table: Table) -> RecordingIpvs {
        RecordingIpvs {
            table,
            ..Default::default()
        }
    }

    fn apply_one(&mut self, op: &Op) -> Result<(), i32> {
        let t = &mut self.table;
        match op {
            Op::AddService(s) => {
                if t.services.contains_key(&s.key) {
                    return Err(libc::EEXIST);
                }
                t.insert_service(s.clone());
            }
            Op::EditService(s) => {
                t.services.get_mut(&s.key).ok_or(libc::ESRCH)?.service = s.clone();
            }
            Op::DelService(k) => {
                t.services.remove(k).ok_or(libc::ESRCH)?;
            }
            Op::AddDestination(k, d) | Op::EditDestination(k, d) => {
                if d.weight > i32::MAX as u32 || d.lower_threshold > d.upper_threshold {
                    return Err(libc::ERANGE);
                }
                let vs = t.services.get_mut(k).ok_or(libc::ESRCH)?;
                let exists = vs.destinations.contains_key(&d.addr);
                match (op, exists) {
                    (Op::AddDestination(..), true) => return Err(libc::EEXIST),
                    (Op::EditDestination(..), false) => return Err(libc::ENOENT),
                    _ => {}
                }
                vs.destinations.insert(d.addr, d.clone());
            }
            Op::DelDestination(k, a) => {
                let vs = t.services.get_mut(k).ok_or(libc::ESRCH)?;
                vs.destinations.remove(a).ok_or(libc::ENOENT)?;
            }
            Op::StartDaemon(d) => {
                if self.daemons.iter().any(|x| x.role == d.role) {
                    return Err(libc::EEXIST);
                }
                self.daemons.push(d.clone());
            }
            Op::StopDaemon(r) => {
                let i = self
                    .daemons
                    .iter()
                    .position(|x| x.role == *r)
                    .ok_or(libc::ESRCH)?;
                self.daemons.remove(i);
            }
            Op::SetTimeouts(_) => {}
            Op::Zero(Some(k)) => {
                t.services.get(k).ok_or(libc::ESRCH)?;
            }
            Op::Zero(None) => {}
            Op::Flush => t.services.clear(),
        }
        Ok(())
    }
}

impl Ipvs for RecordingIpvs {
    fn table(&mut self) -> Result<Table, IpvsError> {
        Ok(self.table.clone())
    }

    fn apply(&mut self, ops: &[Op]) -> Result<ApplyReport, IpvsError> {
        let mut failed = Vec::new();
        for op in ops {
            match self.apply_one(op) {
                Ok(()) => self.applied.push(op.clone()),
                Err(errno) => failed.push(OpError::new(op, errno)),
            }
        }
        if failed.is_empty() {
            Ok(ApplyReport {
                operations: ops.len(),
                sends: usize::from(!ops.is_empty()),
            })
        } else {
            Err(IpvsError::Apply {
                applied: ops.len() - failed.len(),
                total: ops.len(),
                failed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_in_words_with_operation_and_object() {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        let d = Destination::new("192.0.2.13:80".parse().unwrap(), Forward::Route);
        let e = OpError::new(&Op::AddDestination(key, d.clone()), libc::EEXIST);
        assert_eq!(
            e.to_string(),
            "add destination 192.0.2.13:80 to tcp 192.0.2.100:80: already exists"
        );
        let e = OpError::new(&Op::EditDestination(key, d), libc::ENOENT);
        assert_eq!(
            e.to_string(),
            "edit destination 192.0.2.13:80 of tcp 192.0.2.100:80: no such destination"
        );
        let e = OpError::new(
            &Op::EditService(Service::new(key, Scheduler::Other("nosuch".into()))),
            libc::ENOENT,
        );
        assert!(
            e.to_string()
                .starts_with("edit service tcp 192.0.2.100:80: scheduler or persistence engine")
        );
        let e = OpError::new(&Op::StopDaemon(DaemonRole::Backup), libc::ESRCH);
        assert_eq!(e.to_string(), "stop sync daemon backup: not running");
        assert_eq!(
            describe_errno(Subject::Other, libc::EBUSY),
            "device or resource busy (errno 16)"
        );
        assert_eq!(
            IpvsError::Unavailable.to_string(),
            "IPVS is not available in this kernel: load the ip_vs module (modprobe ip_vs)"
        );
        let many = IpvsError::Apply {
            failed: vec![OpError::new(&Op::DelService(key), libc::ESRCH); 7],
            applied: 3,
            total: 10,
        };
        assert_eq!(
            many.to_string(),
            "7 of 10 operations failed: delete service tcp 192.0.2.100:80: no such service; delete service tcp \
             192.0.2.100:80: no such service; delete service tcp 192.0.2.100:80: no such service; delete service \
             tcp 192.0.2.100:80: no such service; delete service tcp 192.0.2.100:80: no such service; and 2 more"
        );
    }

    #[test]
    fn fake_answers_like_the_kernel() {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        let d = Destination::new("192.0.2.13:80".parse().unwrap(), Forward::Route);
        let mut f = RecordingIpvs::default();
        let e = f.apply(&[Op::AddDestination(key, d.clone())]).unwrap_err();
        assert_eq!(e.errnos(), vec![libc::ESRCH]);
        f.apply(&[
            Op::AddService(Service::new(key, Scheduler::Rr)),
            Op::AddDestination(key, d.clone()),
        ])
        .unwrap();
        assert_eq!(
            f.apply(&[Op::AddDestination(key, d.clone())])
                .unwrap_err()
                .errnos(),
            vec![libc::EEXIST]
        );
        let bad = Destination {
            lower_threshold: 2,
            upper_threshold: 1,
            ..d
        };
        assert_eq!(
            f.apply(&[Op::EditDestination(key, bad)])
                .unwrap_err()
                .errnos(),
            vec![libc::ERANGE]
        );
        assert_eq!(f.applied.len(), 2);
    }

    /// An [`Ipvs`] whose `table` blocks its thread until the test opens the gate (or 20 s pass).
    struct Gated(std::sync::mpsc::Receiver<()>);

    impl Ipvs for Gated {
        fn table(&mut self) -> Result<Table, IpvsError> {
            self.0
                .recv_timeout(std::time::Duration::from_secs(20))
                .map_err(|_| IpvsError::Protocol("the gate stayed shut".into()))?;
            Ok(Table::new())
        }
        fn apply(&mut self, _: &[Op]) -> Result<ApplyReport, IpvsError> {
            Ok(ApplyReport::default())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_ipvs_keeps_the_runtime_free_while_the_kernel_call_blocks() {
        // One worker thread: had `table` run on it, the gate below could not open before
        // `table` gave up, and the result would be an error.
        let (open, gate) = std::sync::mpsc::channel();
        let ipvs = AsyncIpvs::new(Gated(gate));
        let call = tokio::spawn({
            let ipvs = ipvs.clone();
            async move { ipvs.table().await }
        });
        tokio::task::yield_now().await;
        open.send(()).unwrap();
        assert_eq!(call.await.unwrap().unwrap(), Table::new());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_ipvs_applies_and_dumps_like_the_blocking_one() {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        let mut desired = Table::new();
        desired.insert_service(Service::new(key, Scheduler::Rr));
        let ipvs = AsyncIpvs::new(RecordingIpvs::default());
        let ops = plan(&desired, &ipvs.table().await.unwrap(), |_| true);
        let report = ipvs.apply(ops).await.unwrap();
        assert_eq!(report.operations, 1);
        assert_eq!(ipvs.table().await.unwrap(), desired);
        assert_eq!(ipvs.with(|f| f.applied.len()).await, 1);
        let err = ipvs
            .apply(vec![Op::AddService(Service::new(key, Scheduler::Rr))])
            .await
            .unwrap_err();
        assert_eq!(err.errnos(), vec![libc::EEXIST]);
    }
}
