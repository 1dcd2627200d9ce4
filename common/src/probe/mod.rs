//! Health probes: one engine for every check that `ldir` and `monitor` run.
//!
//! A probe is plain data: a [`Spec`] (the kind of check and its parameters, a timeout, an optional
//! source address, an optional port) is what a configuration file holds, with the same TOML schema
//! in `ldir` and `monitor`; a [`Probe`] is a spec bound to one target address. Probes are `Eq` and
//! `Hash`, so identical probes asked for by several users can be recognised and run once
//! ([`engine`]).
//!
//! [`Prober::run`] performs one check and returns an [`Outcome`]: up or down, the latency, and a
//! one-line reason (`200 OK`, `connection refused`, `timeout after 2s`). It never panics and never
//! blocks a thread; every check is bounded by its timeout, after which whatever it started (a
//! connection, a child process and its process group) is torn down. Every read from the network is
//! capped as well (each kind's module says how much), so a server that streams without end is
//! down at once in bounded memory, and every value a check sends as is (a Host header, an EHLO
//! name, a user, a DN) is one line without control characters, checked when the spec is read.
//!
//! Kinds, one module each: [`tcp`] connect, [`http`] (`http`, `https`), [`ping`] (ICMP echo),
//! [`dns`], [`udp`], [`simpletcp`], [`external`] (ldirectord check scripts and mon monitors),
//! [`smtp`], [`ftp`], [`mailbox`] (`pop3`, `imap`, `pop3s`, `imaps`), [`sip`], [`radius`], [`ldap`],
//! [`mysql`], [`pgsql`].
//!
//! Deliberately not here: hysteresis (N failures before a server is declared down) and what to do
//! with a result (IPVS weights, alerts) — those belong to `ldir` and `monitor`. Host names are never
//! resolved: targets are IP addresses, as in the IPVS table.

pub mod dns;
pub mod engine;
pub mod external;
pub mod ftp;
pub mod http;
pub mod ldap;
pub mod mailbox;
pub mod mysql;
pub mod pgsql;
pub mod ping;
pub mod radius;
pub mod simpletcp;
pub mod sip;
pub mod smtp;
pub mod tcp;
pub mod tls;
pub mod udp;

mod conn;
mod line;
mod text;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{self, Validate, Validator};

pub use engine::{Engine, EngineOptions, Feed, Report, Runner, Watch};
pub use text::{Pattern, unescape};

/// A check's timeout when the configuration gives none: ldirectord's `negotiatetimeout` default
/// (classic-tools.md §1.3) is 5 s, keepalived's `connect_timeout` default is 5 s (peers.md §1.3).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to check and how, without the target: the part a configuration holds.
///
/// In TOML: `kind = "http"`, `port = 8080`, `timeout = "2s"`, `source = "192.0.2.1"`, then the
/// kind's own fields (see [`Check`]). Unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    /// The port to check; the kind's well-known port when absent ([`Check::default_port`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How long the whole check may take, connection included.
    #[serde(default = "default_timeout")]
    pub timeout: config::Duration,
    /// The local address to send from (keepalived's `bindto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<config::IpAddr>,
    /// The kind and its parameters.
    #[serde(flatten)]
    pub check: Check,
}

/// serde default for the settings that are on unless turned off explicitly (TLS `verify`).
fn yes() -> bool {
    true
}

fn default_timeout() -> config::Duration {
    DEFAULT_TIMEOUT.into()
}

impl Spec {
    /// A spec with the default timeout, no source address and the kind's default port.
    pub fn new(check: Check) -> Spec {
        Spec {
            port: None,
            timeout: default_timeout(),
            source: None,
            check,
        }
    }

    /// The port the check talks to: the configured one, else the kind's default.
    pub fn port(&self) -> Option<u16> {
        self.port.or_else(|| self.check.default_port())
    }

    /// Problems that serde cannot see; the same as [`Validate`] reports, as plain messages
    /// `(field, message)`, for callers without a TOML document (the command line).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.check.needs_port() && self.port().is_none() {
            out.push((
                "port",
                format!("a {} check needs a port", self.check.name()),
            ));
        }
        if self.timeout.as_std().is_zero() {
            out.push(("timeout", "must be more than 0s".to_string()));
        }
        self.check.problems(&mut out);
        out
    }
}

impl Validate for Spec {
    fn validate(&self, v: &mut Validator) {
        for (field, message) in self.problems() {
            v.error_at(field, None, message);
        }
    }
}

/// A probe: a [`Spec`] bound to one target. Two equal probes do the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Probe {
    /// The address checked (the real server).
    pub target: IpAddr,
    /// How it is checked.
    #[serde(flatten)]
    pub spec: Spec,
    /// What runs of the probe work out once and reuse (an HTTP check's request bytes).
    #[serde(skip)]
    memo: Memo,
}

/// A probe's reusable, derived state: not part of what the probe is, so equal probes stay equal
/// (ignored by `==` and the hash) and a clone starts without it.
#[derive(Default)]
struct Memo {
    request: std::sync::OnceLock<Box<[u8]>>,
}

impl PartialEq for Memo {
    fn eq(&self, _: &Memo) -> bool {
        true
    }
}

impl Eq for Memo {}

impl std::hash::Hash for Memo {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memo")
    }
}

impl Probe {
    /// Binds `spec` to `target`.
    pub fn new(target: IpAddr, spec: Spec) -> Probe {
        Probe {
            target,
            spec,
            memo: Memo::default(),
        }
    }

    /// The target with the port the check uses, if the kind has one.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.spec.port().map(|p| SocketAddr::new(self.target, p))
    }

    /// How the target is shown: `192.0.2.13:80`, `[2001:db8::13]:80`, or `192.0.2.13` for ping.
    pub fn target_display(&self) -> String {
        match self.addr() {
            Some(a) if !matches!(self.spec.check, Check::Ping(_)) => a.to_string(),
            _ => self.target.to_string(),
        }
    }

    fn timeout(&self) -> Duration {
        self.spec.timeout.as_std()
    }
}

/// The probe kinds as configurations and command lines name them ([`Check::name`]), in the order of
/// [`Check`]'s variants.
pub const KINDS: &[&str] = &[
    "tcp",
    "http",
    "https",
    "ping",
    "dns",
    "udp",
    "simpletcp",
    "external",
    "smtp",
    "ftp",
    "pop3",
    "imap",
    "pop3s",
    "imaps",
    "sip",
    "radius",
    "ldap",
    "mysql",
    "pgsql",
];

/// The kinds of check and their own parameters, tagged by `kind` in TOML and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Check {
    /// A TCP connection is accepted ([`tcp`]).
    Tcp(tcp::Tcp),
    /// An HTTP request gets an expected answer ([`http`]).
    Http(http::Http),
    /// The same over TLS ([`http`]).
    Https(http::Http),
    /// ICMP echo replies ([`ping`]).
    Ping(ping::Ping),
    /// A DNS query is answered ([`dns`]).
    Dns(dns::Dns),
    /// A UDP datagram is answered ([`udp`]).
    Udp(udp::Udp),
    /// Bytes sent over TCP get an answer matching a regex ([`simpletcp`]).
    SimpleTcp(simpletcp::SimpleTcp),
    /// A command exits 0 ([`external`]).
    External(external::External),
    /// Greeting, EHLO, QUIT ([`smtp`]).
    Smtp(smtp::Smtp),
    /// Greeting, optional login ([`ftp`]).
    Ftp(ftp::Ftp),
    /// `+OK` greeting ([`mailbox`]).
    Pop3(mailbox::Mailbox),
    /// `* OK` greeting ([`mailbox`]).
    Imap(mailbox::Mailbox),
    /// `+OK` greeting over TLS from the start ([`mailbox`]).
    Pop3s(mailbox::Mailbox),
    /// `* OK` greeting over TLS from the start ([`mailbox`]).
    Imaps(mailbox::Mailbox),
    /// OPTIONS over UDP answered `SIP/2.0 200` ([`sip`]).
    Sip(sip::Sip),
    /// Access-Request answered with a valid authenticator ([`radius`]).
    Radius(radius::Radius),
    /// A simple bind succeeds ([`ldap`]).
    Ldap(ldap::Ldap),
    /// The server greets with protocol 10, optional login ([`mysql`]).
    Mysql(mysql::Mysql),
    /// SSLRequest or startup answered ([`pgsql`]).
    Pgsql(pgsql::Pgsql),
}

impl Check {
    /// The kind's name as written in configurations and output: `http`, `tcp`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Check::Tcp(_) => "tcp",
            Check::Http(_) => "http",
            Check::Https(_) => "https",
            Check::Ping(_) => "ping",
            Check::Dns(_) => "dns",
            Check::Udp(_) => "udp",
            Check::SimpleTcp(_) => "simpletcp",
            Check::External(_) => "external",
            Check::Smtp(_) => "smtp",
            Check::Ftp(_) => "ftp",
            Check::Pop3(_) => "pop3",
            Check::Imap(_) => "imap",
            Check::Pop3s(_) => "pop3s",
            Check::Imaps(_) => "imaps",
            Check::Sip(_) => "sip",
            Check::Radius(_) => "radius",
            Check::Ldap(_) => "ldap",
            Check::Mysql(_) => "mysql",
            Check::Pgsql(_) => "pgsql",
        }
    }

    /// The well-known port of the kind (ldirectord's defaults, classic-tools.md §1.4; IANA's
    /// registry for pop3s 995 and imaps 993, RFC 8314 §7.3; RADIUS 1812, RFC 2865 §3), if any.
    pub fn default_port(&self) -> Option<u16> {
        match self {
            Check::Http(_) => Some(80),
            Check::Https(_) => Some(443),
            Check::Dns(_) => Some(53),
            Check::Smtp(_) => Some(25),
            Check::Ftp(_) => Some(21),
            Check::Pop3(_) => Some(110),
            Check::Imap(_) => Some(143),
            Check::Pop3s(_) => Some(995),
            Check::Imaps(_) => Some(993),
            Check::Sip(_) => Some(5060),
            Check::Radius(_) => Some(1812),
            Check::Ldap(_) => Some(389),
            Check::Mysql(_) => Some(3306),
            Check::Pgsql(_) => Some(5432),
            Check::Tcp(_)
            | Check::Ping(_)
            | Check::Udp(_)
            | Check::SimpleTcp(_)
            | Check::External(_) => None,
        }
    }

    fn needs_port(&self) -> bool {
        matches!(self, Check::Tcp(_) | Check::Udp(_) | Check::SimpleTcp(_))
    }

    fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        match self {
            Check::Http(h) | Check::Https(h) => h.problems(out),
            Check::Ping(p) => p.problems(out),
            Check::External(e) => e.problems(out),
            Check::Dns(d) => d.problems(out),
            Check::Smtp(c) => c.problems(out),
            Check::Ftp(c) => c.problems(out),
            Check::Pop3(m) => m.problems("pop3", false, out),
            Check::Imap(m) => m.problems("imap", false, out),
            Check::Pop3s(m) => m.problems("pop3s", true, out),
            Check::Imaps(m) => m.problems("imaps", true, out),
            Check::Sip(c) => c.problems(out),
            Check::Radius(c) => c.problems(out),
            Check::Ldap(c) => c.problems(out),
            Check::Pgsql(c) => c.problems(out),
            Check::Mysql(c) => c.problems(out),
            Check::Tcp(_) | Check::Udp(_) | Check::SimpleTcp(_) => {}
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Whether the service answered as expected.
    pub up: bool,
    /// From the start of the check to its verdict (for a timeout: the timeout).
    #[serde(serialize_with = "ser_ms")]
    pub latency: Duration,
    /// One line: what was seen (`200 OK`) or what went wrong (`connection refused`).
    pub reason: String,
}

impl Outcome {
    /// A run of `probe` stopped at its timeout, `latency` after it started.
    pub(crate) fn timed_out(probe: &Probe, latency: Duration) -> Outcome {
        Outcome {
            up: false,
            latency,
            reason: format!("timeout after {}", probe.spec.timeout),
        }
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// Why a check failed: the one-line reason of a down [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down(pub String);

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Down {
    fn from(s: String) -> Down {
        Down(s)
    }
}

impl From<&str> for Down {
    fn from(s: &str) -> Down {
        Down(s.to_string())
    }
}

/// An I/O error as a reason: the OS's words, lower case, without the errno number.
pub(crate) fn io_reason(what: &str, e: &std::io::Error) -> Down {
    use std::io::ErrorKind::*;
    let words = match e.kind() {
        ConnectionRefused => "connection refused".to_string(),
        ConnectionReset => "connection reset by peer".to_string(),
        TimedOut => "timed out".to_string(),
        HostUnreachable => "host unreachable".to_string(),
        NetworkUnreachable => "network unreachable".to_string(),
        AddrNotAvailable => "source address not available".to_string(),
        UnexpectedEof => "connection closed by peer".to_string(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s.to_lowercase(),
            }
        }
    };
    if what.is_empty() {
        Down(words)
    } else {
        Down(format!("{what}: {words}"))
    }
}

/// Runs checks. Holds what checks may share and reuse (HTTP clients, TLS settings, ICMP sockets);
/// cheap to share behind an `Arc` between many concurrent checks.
#[derive(Default)]
pub struct Prober {
    http: http::Clients,
    /// Sockets of plain-HTTP checks, used again check after check.
    conns: conn::Pool,
    ping: ping::Pingers,
    /// TLS settings of the non-HTTP kinds (no ALPN).
    tls: tls::TlsConfigs,
}

impl Prober {
    /// A prober with empty caches.
    pub fn new() -> Prober {
        Prober::default()
    }

    /// Reads every CA file in use again (and the system's roots), for a daemon's reload (SIGHUP):
    /// later checks trust what the files hold now. A file that cannot be read keeps the
    /// certificates read before and is returned, for the daemon to log; the checks using it go on.
    pub fn reload(&self) -> Vec<tls::ReloadError> {
        let mut errors = self.http.reload();
        errors.extend(self.tls.reload());
        errors
    }

    /// Performs one check of `probe`, bounded by its timeout.
    pub async fn run(&self, probe: &Probe) -> Outcome {
        let start = Instant::now();
        match tokio::time::timeout(probe.timeout(), self.run_untimed(probe, start)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::timed_out(probe, start.elapsed()),
        }
    }

    /// [`Prober::run`] without the timer: for a caller that stops the run at the timeout itself
    /// (the engine keeps one timer for all its runs).
    async fn run_untimed(&self, probe: &Probe, start: Instant) -> Outcome {
        let result = match self.dispatch(probe, probe.timeout()) {
            Ok(check) => check.await,
            Err(e) => Err(e),
        };
        let latency = start.elapsed();
        match result {
            Ok(reason) => Outcome {
                up: true,
                latency,
                reason: into_one_line(reason),
            },
            Err(Down(reason)) => Outcome {
                up: false,
                latency,
                reason: into_one_line(reason),
            },
        }
    }

    /// The check of `probe`'s kind, boxed: a run then holds only that kind's state, not room for the
    /// largest of them (the state is moved into place once per run).
    fn dispatch<'a>(&'a self, probe: &'a Probe, timeout: Duration) -> Result<Checking<'a>, Down> {
        let source = probe.spec.source.map(|s| s.get());
        let addr = probe.addr();
        let need_addr = || addr.ok_or_else(|| Down("no port to check".into()));
        Ok(match &probe.spec.check {
            Check::Tcp(_) => Box::pin(tcp::check(need_addr()?, source)),
            Check::Http(h) if !h.follow_redirects => {
                let addr = need_addr()?;
                let request = probe.memo.request.get_or_init(|| http::request(h, addr));
                Box::pin(http::plain(&self.conns, h, request, addr, source))
            }
            Check::Http(h) => Box::pin(self.http.check(h, false, need_addr()?, source)),
            Check::Https(h) => Box::pin(self.http.check(h, true, need_addr()?, source)),
            Check::Ping(p) => Box::pin(self.ping.check(p, probe.target, source, timeout)),
            Check::Dns(d) => Box::pin(dns::check(d, need_addr()?, source)),
            Check::Udp(u) => Box::pin(udp::check(u, need_addr()?, source)),
            Check::SimpleTcp(s) => Box::pin(simpletcp::check(s, need_addr()?, source)),
            Check::External(e) => Box::pin(external::check(e, probe.target, addr)),
            Check::Smtp(c) => Box::pin(smtp::check(c, &self.tls, need_addr()?, source)),
            Check::Ftp(c) => Box::pin(ftp::check(c, need_addr()?, source)),
            Check::Pop3(m) | Check::Pop3s(m) | Check::Imap(m) | Check::Imaps(m) => {
                let (proto, implicit) = match &probe.spec.check {
                    Check::Pop3(_) => (mailbox::Proto::Pop3, false),
                    Check::Pop3s(_) => (mailbox::Proto::Pop3, true),
                    Check::Imap(_) => (mailbox::Proto::Imap, false),
                    _ => (mailbox::Proto::Imap, true),
                };
                Box::pin(mailbox::check(
                    proto,
                    implicit,
                    m,
                    &self.tls,
                    need_addr()?,
                    source,
                ))
            }
            Check::Sip(c) => Box::pin(sip::check(c, need_addr()?, source)),
            Check::Radius(c) => Box::pin(radius::check(c, need_addr()?, source)),
            Check::Ldap(c) => Box::pin(ldap::check(c, need_addr()?, source)),
            Check::Mysql(c) => Box::pin(mysql::check(c, need_addr()?, source)),
            Check::Pgsql(c) => Box::pin(pgsql::check(c, need_addr()?, source)),
        })
    }
}

/// A check in progress, as [`Prober::dispatch`] starts it.
type Checking<'a> = Pin<Box<dyn Future<Output = Result<String, Down>> + Send + 'a>>;

impl Runner for Prober {
    /// The engine applies the timeout.
    async fn run(&self, probe: Arc<Probe>) -> Outcome {
        self.run_untimed(&probe, Instant::now()).await
    }
}

/// [`one_line`] of an owned string, without a copy when it is one line already (most reasons are).
fn into_one_line(s: String) -> String {
    let plain = |b: &u8| b.is_ascii_graphic();
    if s.len() <= 200
        && s.bytes().all(|b| b >= b' ' && b != 0x7f)
        && s.as_bytes().first().is_none_or(plain)
        && s.as_bytes().last().is_none_or(plain)
    {
        return s;
    }
    one_line(&s)
}

/// Keeps the first line of `s`, trimmed, at most 200 characters: reasons are one line.
pub(crate) fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_from_toml_with_kind_fields() {
        let spec: Spec = config::parse_str(
            "check.toml",
            "kind = \"http\"\ntimeout = \"2s\"\npath = \"/health\"\nexpect = \"200-299,301\"\nhost = \"www.example.org\"\n",
        )
        .unwrap();
        assert_eq!(spec.port(), Some(80));
        assert_eq!(spec.timeout.as_std(), Duration::from_secs(2));
        let Check::Http(h) = &spec.check else {
            panic!("{spec:?}")
        };
        assert_eq!(h.path, "/health");
        assert_eq!(h.host.as_deref(), Some("www.example.org"));
        assert!(h.expect.contains(301) && h.expect.contains(204) && !h.expect.contains(302));
    }

    #[test]
    fn spec_rejects_unknown_fields_and_kinds() {
        let e = config::parse_str::<Spec>("c.toml", "kind = \"tcp\"\nport = 22\nbogus = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = config::parse_str::<Spec>("c.toml", "kind = \"gopher\"\n").unwrap_err();
        assert!(e.to_string().contains("gopher"), "{e}");
    }

    #[test]
    fn spec_validation_reports_missing_port() {
        let e = config::parse_str::<Spec>("c.toml", "kind = \"tcp\"\n").unwrap_err();
        assert!(
            e.to_string().contains("port: a tcp check needs a port"),
            "{e}"
        );
    }

    #[test]
    fn equal_specs_make_equal_probes() {
        let a: Spec = config::parse_str("a.toml", "kind = \"tcp\"\nport = 22\n").unwrap();
        let b: Spec =
            config::parse_str("b.toml", "port = 22\nkind = \"tcp\"\ntimeout = \"5s\"\n").unwrap();
        let ip: IpAddr = "192.0.2.13".parse().unwrap();
        assert_eq!(Probe::new(ip, a.clone()), Probe::new(ip, b));
        let c: Spec = config::parse_str("c.toml", "kind = \"tcp\"\nport = 23\n").unwrap();
        assert_ne!(Probe::new(ip, a), Probe::new(ip, c));
    }

    /// Every value a kind sends as is refuses control characters, naming its field (issue 10).
    #[test]
    fn values_sent_on_the_wire_refuse_control_characters() {
        for (kind, field, extra) in [
            ("http", "path", ""),
            ("http", "host", ""),
            ("https", "host", ""),
            ("smtp", "helo", ""),
            ("ftp", "user", ""),
            ("ftp", "password", "user = \"probe\"\n"),
            ("ftp", "retr", ""),
            ("ldap", "dn", "password = \"pw\"\n"),
            ("mysql", "user", ""),
            ("pgsql", "user", ""),
            ("pgsql", "database", "user = \"probe\"\n"),
            ("sip", "user", ""),
        ] {
            let good = format!("kind = \"{kind}\"\n{extra}{field} = \"probe.example\"\n");
            config::parse_str::<Spec>("c.toml", &good).unwrap_or_else(|e| panic!("{e}"));
            for bad in [
                "probe\\r\\nQUIT",
                "a\\nb",
                "nul\\u0000",
                "del\\u007f",
                "c1\\u0085",
            ] {
                let toml = format!("kind = \"{kind}\"\n{extra}{field} = \"{bad}\"\n");
                let e = config::parse_str::<Spec>("c.toml", &toml)
                    .expect_err(&toml)
                    .to_string();
                assert!(
                    e.contains(&format!("{field}: contains the control character")),
                    "{toml}: {e}"
                );
            }
        }
        // A path set without serde (monitor's URL targets) is checked by the validation.
        let mut spec = Spec::new(Check::Http(http::Http::default()));
        if let Check::Http(h) = &mut spec.check {
            h.path = "/x\r\nX-Injected: 1".into();
        }
        assert_eq!(spec.problems()[0].0, "path");
        // Blanks in an EHLO name would split the command.
        let e =
            config::parse_str::<Spec>("c.toml", "kind = \"smtp\"\nhelo = \"a b\"\n").unwrap_err();
        assert!(e.to_string().contains("helo: must be one name"), "{e}");
    }

    #[test]
    fn reasons_are_one_line() {
        assert_eq!(one_line("\n  first line \nsecond"), "first line");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), 201);
        for s in [
            "200 OK",
            "",
            " lead",
            "trail ",
            "a\nb",
            "tab\there",
            "é",
            "\u{a0}x",
            &"y".repeat(250),
        ] {
            assert_eq!(into_one_line(s.to_string()), one_line(s), "{s:?}");
        }
    }
}
