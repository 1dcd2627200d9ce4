//! `hbeat import`: converts a heartbeat v1 configuration (`ha.cf`, `haresources`, `authkeys`) into
//! `hbeat.toml` and hbeat's key file.
//!
//! [`convert`] is pure (the three texts and [`Options`] in; the TOML, the key file and warnings
//! out); [`run`] is the command line's edge (reads the files, finds this node's name and addresses,
//! prints or writes the result). The parser follows heartbeat 3.0.6's `config.c` (Debian's
//! heartbeat 1:3.0.6, classic-tools.md §2): `#` starts a comment anywhere on an ha.cf line, a
//! directive's values are separated by blanks or commas, order matters (`udpport` and `baud` apply
//! to the media lines after them; like heartbeat, the first `ucast` and the first `bcast` line fix
//! the port of every later one), node names are lower-cased, times are seconds unless suffixed
//! `ms`, and the defaults are heartbeat's (keepalive 1s, deadtime 30s, warntime deadtime/2,
//! initdead from deadtime, auto_failback legacy), written out explicitly so the converted node keeps
//! heartbeat's (slow) timing.
//!
//! What each part becomes:
//! - `node` lines: `node` (this node, `--node`, default the host name) and one `[[peer]]` each.
//! - `ucast dev ip`: a `udp` link from this node's address to `ip` (an entry for this node's own
//!   address is skipped, as heartbeat ignores it, so one file still serves every node). This node's
//!   address is taken from `--address`, else (when converting for this host) from its interfaces; when
//!   it is unknown the link gets a placeholder bind address that `hbeat check` refuses.
//! - `bcast dev...`, `mcast dev group port ttl loop`, `serial dev...` with `baud`: the same links.
//! - `ping ip...` and the members of `ping_group name ip...`: `[ping] targets` (hbeat asks whether any target answers, which is what a group was); `auto_failback on|off|legacy` (legacy behaves as on).
//! - haresources groups (`preferred-node res...`, `\` continues a line): one `[[group]]` each, named
//!   after its first resource (heartbeat's group key). `IPaddr`/`IPaddr2` (and a bare address)
//!   become `armed:fakeip hold ADDR/PREFIX dev NIC` (started ahead, told to go at the takeover:
//!   no process start on the failover path); without a NIC or prefix the resource is written with
//!   a leading `FIXME` word so that `hbeat check` refuses it until it is filled in (heartbeat's
//!   `findif` guessed them from the routing table; a wrong guess would be a silently wrong VIP).
//!   `ldirectord[::cfg]` is dropped: ldir runs on both nodes all the time (DESIGN.md); convert its
//!   file with `ldir import`. Any other `script::a::b` becomes `script:script::a::b`, found by hbeat
//!   in `/etc/hbeat/resource.d`, then heartbeat's `/etc/ha.d/resource.d` and `/etc/init.d`
//!   (`resource::SCRIPT_DIRS`), or `script:DIR/script::a::b` with `--script-dir DIR`.
//! - authkeys: heartbeat's `sha1`/`md5` secrets are arbitrary strings; hbeat's keys are 32 bytes.
//!   Each becomes the key `SHA-256("hbeat-import:" + secret)` with the same id, the `auth` one
//!   first (it signs): deterministic, so every node converting the same authkeys gets the same key
//!   file, and no stronger than the old secret. `crc` has no secret: no key comes from it.
//!
//! Everything else (respawn, stonith, watchdog, logging, apiauth, crm, ...) yields a [`Warning`]
//! with its file and line. Deliberately not here: host names are never resolved (a `ucast` or
//! `ping` by name is skipped with a warning), and the files are not merged with an existing
//! `hbeat.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use common::config::IfName;
use common::daemon::Exit;
use sha2::{Digest, Sha256};

use crate::config::{BAUD_RATES, DEFAULT_KEY_FILE};
use crate::resource::Resource;

/// The largest input file read: heartbeat's files are kilobytes.
pub const MAX_INPUT: u64 = 1024 * 1024;

/// heartbeat's UDP port when neither `udpport` nor `/etc/services` names one (`UDPPORT`).
const HA_UDPPORT: u16 = 694;
/// heartbeat's serial speed when `baud` is not set.
const HA_BAUD: u32 = 19200;
/// The cluster name heartbeat used when `cluster` is not set (`KEY_CLUSTER`'s default).
const HA_CLUSTER: &str = "linux-ha";
/// What a bind address that could not be derived is written as: not an address, so `hbeat check`
/// names the field.
pub const BIND_PLACEHOLDER: &str = "THIS-NODE-ADDRESS";
/// The first word of a resource that needs editing: not a program, so `hbeat check` names it.
pub const FIXME: &str = "FIXME";
/// The prefix hashed with a heartbeat secret to make an hbeat key (see the module doc).
pub const KEY_DERIVATION_PREFIX: &str = "hbeat-import:";

/// Which input a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    HaCf,
    Haresources,
    Authkeys,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::HaCf => "ha.cf",
            Source::Haresources => "haresources",
            Source::Authkeys => "authkeys",
        })
    }
}

/// Something not converted as written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub source: Source,
    /// The line (from 1); 0 for the file as a whole.
    pub line: usize,
    /// The directive or resource (`respawn`, `IPaddr`, ...).
    pub what: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": {}: {}", self.what, self.message)
    }
}

/// What the conversion needs besides the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The node converted for (heartbeat's `uname -n`); lower-cased like heartbeat does.
    pub node: String,
    /// This node's addresses: which `ucast` entry is its own, and the bind address of the others.
    pub addresses: Vec<IpAddr>,
    /// Where script resources are, instead of hbeat's lookup by name.
    pub script_dir: Option<PathBuf>,
    /// `key_file` in the output.
    pub key_file: PathBuf,
}

/// What the conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// `hbeat.toml`.
    pub toml: String,
    /// The key file, when authkeys had a usable secret.
    pub key: Option<String>,
    /// Sorted by file and line.
    pub warnings: Vec<Warning>,
    /// The output can become a working configuration (this node and a peer are known and there
    /// is at least one link); otherwise there is nothing to write.
    pub usable: bool,
}

#[derive(Default)]
struct Warnings(Vec<Warning>);

impl Warnings {
    fn push(&mut self, source: Source, line: usize, what: &str, message: impl Into<String>) {
        self.0.push(Warning {
            source,
            line,
            what: what.chars().take(60).collect(),
            message: message.into(),
        });
    }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Text fit for a TOML comment, which allows no control character but tab.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

fn dur(d: Duration) -> String {
    common::config::Duration::from(d).to_string()
}

// -------------------------------------------------------------------------------------------------
// ha.cf

/// One heartbeat path as converted, with the ha.cf line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkOut {
    Udp {
        bind: Option<IpAddr>,
        peer: IpAddr,
        port: u16,
        dev: String,
    },
    Mcast {
        dev: String,
        group: IpAddr,
        port: u16,
        ttl: u8,
    },
    Bcast {
        dev: String,
        port: u16,
    },
    Serial {
        device: String,
        baud: u32,
    },
}

#[derive(Debug, Default)]
struct HaCf {
    nodes: Vec<(String, usize)>,
    cluster: Option<String>,
    keepalive: Option<(Duration, usize)>,
    deadtime: Option<(Duration, usize)>,
    warntime: Option<(Duration, usize)>,
    initdead: Option<(Duration, usize)>,
    /// Some(true/false) and whether it was `legacy`, with the line.
    auto_failback: Option<(bool, bool, usize)>,
    ping: Vec<IpAddr>,
    links: Vec<(LinkOut, usize, String)>,
}

/// heartbeat's booleans (`cl_str_to_boolean`): case-insensitive.
fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// heartbeat's times (`cl_get_msec`): a number, seconds unless suffixed `ms` (or `us`).
fn ha_time(v: &str) -> Option<Duration> {
    let lower = v.to_ascii_lowercase();
    let (num, scale) = if let Some(n) = lower.strip_suffix("msec").or(lower.strip_suffix("ms")) {
        (n, 1e-3)
    } else if let Some(n) = lower.strip_suffix("usec").or(lower.strip_suffix("us")) {
        (n, 1e-6)
    } else if let Some(n) = lower.strip_suffix("sec").or(lower.strip_suffix('s')) {
        (n, 1.0)
    } else {
        (lower.as_str(), 1.0)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs = num.parse::<f64>().ok()? * scale;
    // Whole milliseconds, as heartbeat keeps them; at most a day (a larger value is a typo).
    let ms = (secs * 1000.0).round();
    (1.0..=86_400_000.0)
        .contains(&ms)
        .then(|| Duration::from_millis(ms as u64))
}

/// The words of an ha.cf line after the directive: heartbeat's `DELIMS` (blanks and commas).
fn values(rest: &str) -> Vec<&str> {
    rest.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_ha_cf(text: &str, w: &mut Warnings) -> HaCf {
    let mut cf = HaCf::default();
    let mut udpport: Option<(u16, usize)> = None;
    let mut baud: Option<u32> = None;
    // heartbeat's ucast and bcast plugins read udpport once, at their first line.
    let mut ucast_port: Option<u16> = None;
    let mut bcast_port: Option<u16> = None;
    let mut any_media = false;
    let warn = |w: &mut Warnings, n: usize, d: &str, m: String| w.push(Source::HaCf, n, d, m);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (directive, rest) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((line, ""));
        let rest = rest.trim();
        let vals = values(rest);
        let d = directive;
        match d {
            "node" => {
                for v in &vals {
                    cf.nodes.push((v.to_ascii_lowercase(), n));
                }
                if vals.is_empty() {
                    warn(w, n, d, "no node name; ignored".into());
                }
            }
            "cluster" => match vals.as_slice() {
                [name] => cf.cluster = Some((*name).to_owned()),
                _ => warn(w, n, d, "expected one name; ignored".into()),
            },
            "keepalive" | "deadtime" | "warntime" | "initdead" => {
                let Some(t) = vals.first().and_then(|v| ha_time(v)) else {
                    warn(
                        w,
                        n,
                        d,
                        format!(
                            "{rest:?} is not a time (seconds, or milliseconds with \"ms\"); \
                             heartbeat's default is used"
                        ),
                    );
                    continue;
                };
                let slot = match d {
                    "keepalive" => &mut cf.keepalive,
                    "deadtime" => &mut cf.deadtime,
                    "warntime" => &mut cf.warntime,
                    _ => &mut cf.initdead,
                };
                *slot = Some((t, n));
            }
            "auto_failback" => match vals.first().copied() {
                Some(v) if v.eq_ignore_ascii_case("legacy") => {
                    cf.auto_failback = Some((true, true, n));
                }
                Some(v) if boolean(v).is_some() => {
                    cf.auto_failback = Some((boolean(v).unwrap_or(false), false, n));
                }
                _ => warn(
                    w,
                    n,
                    d,
                    format!("{rest:?} is not on, off or legacy; ignored"),
                ),
            },
            "nice_failback" => match vals.first().and_then(|v| boolean(v)) {
                // heartbeat: "nice_failback on" became "auto_failback off", "off" legacy.
                Some(true) => {
                    cf.auto_failback = Some((false, false, n));
                    warn(
                        w,
                        n,
                        d,
                        "obsolete; converted as heartbeat did: auto_failback off".into(),
                    );
                }
                Some(false) => {
                    cf.auto_failback = Some((true, true, n));
                    warn(
                        w,
                        n,
                        d,
                        "obsolete; converted as heartbeat did: auto_failback legacy".into(),
                    );
                }
                None => warn(w, n, d, format!("{rest:?} is not a boolean; ignored")),
            },
            "udpport" => match rest.parse::<u16>() {
                Ok(p) if p > 0 => {
                    if any_media {
                        warn(
                            w,
                            n,
                            d,
                            "comes after media lines: it applies only to the bcast and ucast \
                             media declared after it (heartbeat read it once, at the first line of \
                             each)"
                                .into(),
                        );
                    }
                    udpport = Some((p, n));
                }
                _ => warn(w, n, d, format!("{rest:?} is not a port; ignored")),
            },
            "baud" => match rest.parse::<u32>() {
                Ok(b) if BAUD_RATES.contains(&b) => baud = Some(b),
                _ => warn(
                    w,
                    n,
                    d,
                    format!("{rest:?} is not a serial speed heartbeat supported; ignored"),
                ),
            },
            "bcast" => {
                any_media = true;
                let port = *bcast_port.get_or_insert(udpport.map_or(HA_UDPPORT, |u| u.0));
                for dev in &vals {
                    match IfName::from_str(dev) {
                        Ok(_) => cf.links.push((
                            LinkOut::Bcast {
                                dev: (*dev).to_owned(),
                                port,
                            },
                            n,
                            line.to_owned(),
                        )),
                        Err(e) => warn(w, n, d, format!("{e}; this medium is skipped")),
                    }
                }
                if vals.is_empty() {
                    warn(w, n, d, "no interface; ignored".into());
                }
            }
            "ucast" => {
                any_media = true;
                let port = *ucast_port.get_or_insert(udpport.map_or(HA_UDPPORT, |u| u.0));
                let [dev, target, ..] = vals.as_slice() else {
                    warn(w, n, d, "expected `ucast DEV PEER-ADDRESS`; ignored".into());
                    continue;
                };
                if vals.len() > 2 {
                    warn(
                        w,
                        n,
                        d,
                        "heartbeat read only the first address of a ucast line; the rest is ignored"
                            .into(),
                    );
                }
                let Ok(peer) = target.parse::<Ipv4Addr>() else {
                    warn(
                        w,
                        n,
                        d,
                        format!(
                            "{target:?} is not an IPv4 address (host names are not resolved): \
                             this medium is skipped; write its address"
                        ),
                    );
                    continue;
                };
                cf.links.push((
                    LinkOut::Udp {
                        bind: None,
                        peer: IpAddr::V4(peer),
                        port,
                        dev: (*dev).to_owned(),
                    },
                    n,
                    line.to_owned(),
                ));
            }
            "mcast" => {
                any_media = true;
                let parsed = match vals.as_slice() {
                    [dev, group, port, ttl, lp] => (|| {
                        IfName::from_str(dev).map_err(|e| e.to_string())?;
                        let group = group
                            .parse::<Ipv4Addr>()
                            .ok()
                            .filter(Ipv4Addr::is_multicast)
                            .ok_or(format!("{group:?} is not an IPv4 multicast group"))?;
                        let port = port
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or(format!("{port:?} is not a port"))?;
                        let ttl = ttl
                            .parse::<u8>()
                            .ok()
                            .filter(|t| *t > 0)
                            .ok_or(format!("ttl {ttl:?} must be 1..=255"))?;
                        Ok::<_, String>((dev.to_string(), group, port, ttl, *lp == "1"))
                    })(),
                    _ => Err("expected `mcast DEV GROUP PORT TTL LOOP`".to_owned()),
                };
                match parsed {
                    Ok((dev, group, port, ttl, lp)) => {
                        if lp {
                            warn(
                                w,
                                n,
                                d,
                                "loop 1 is not kept: hbeat does not need its own frames back"
                                    .into(),
                            );
                        }
                        cf.links.push((
                            LinkOut::Mcast {
                                dev,
                                group: IpAddr::V4(group),
                                port,
                                ttl,
                            },
                            n,
                            line.to_owned(),
                        ));
                    }
                    Err(e) => warn(w, n, d, format!("{e}; this medium is skipped")),
                }
            }
            "serial" => {
                any_media = true;
                for dev in &vals {
                    if dev.starts_with('/') {
                        cf.links.push((
                            LinkOut::Serial {
                                device: (*dev).to_owned(),
                                baud: baud.unwrap_or(HA_BAUD),
                            },
                            n,
                            line.to_owned(),
                        ));
                    } else {
                        warn(
                            w,
                            n,
                            d,
                            format!("{dev:?} is not a device path; this medium is skipped"),
                        );
                    }
                }
            }
            "ping" => {
                for v in &vals {
                    match v.parse::<IpAddr>() {
                        Ok(ip) if !cf.ping.contains(&ip) => cf.ping.push(ip),
                        Ok(_) => {}
                        Err(_) => warn(
                            w,
                            n,
                            d,
                            format!(
                                "{v:?} is not an address (host names are not resolved); skipped"
                            ),
                        ),
                    }
                }
            }
            "ping_group" => {
                // `ping_group NAME HOST...`: up when any member answers. hbeat only asks whether
                // any target answers, so the members as targets decide the same.
                let mut added = Vec::new();
                for v in vals.iter().skip(1) {
                    match v.parse::<IpAddr>() {
                        Ok(ip) => {
                            if !cf.ping.contains(&ip) {
                                cf.ping.push(ip);
                            }
                            added.push(ip.to_string());
                        }
                        Err(_) => warn(
                            w,
                            n,
                            d,
                            format!(
                                "{v:?} is not an address (host names are not resolved); skipped"
                            ),
                        ),
                    }
                }
                warn(
                    w,
                    n,
                    d,
                    format!(
                        "its members ({}) became [ping] targets: hbeat asks whether any target \
                         answers, as a group did",
                        added.join(" ")
                    ),
                );
            }
            "deadping" => warn(
                w,
                n,
                d,
                "not converted: a ping target counts as reached when it answers within \
                 [ping] timeout, every [ping] interval"
                    .into(),
            ),
            "respawn" if rest.contains("ipfail") => warn(
                w,
                n,
                d,
                "not converted: hbeat does ipfail's job itself with the [ping] targets".into(),
            ),
            "respawn" => warn(
                w,
                n,
                d,
                "not converted: run the program as its own systemd service".into(),
            ),
            "stonith" | "stonith_host" => warn(
                w,
                n,
                d,
                "not converted: give the peer a fence command ([[peer]] fence = \"...\"), run \
                 before taking over from it"
                    .into(),
            ),
            "watchdog" => warn(
                w,
                n,
                d,
                "not converted: hbeat notifies systemd's watchdog (WatchdogSec= in its unit)"
                    .into(),
            ),
            "logfacility" | "logfile" | "debugfile" | "use_logd" | "debug" | "conn_logd_time"
            | "syslogmsgfmt" => warn(
                w,
                n,
                d,
                "not converted: hbeat logs to stderr (the journal under systemd)".into(),
            ),
            "apiauth" => warn(
                w,
                n,
                d,
                "not converted: hbeat's control socket is root's, plus socket_group".into(),
            ),
            "crm" | "pacemaker" if vals.first().and_then(|v| boolean(v)) != Some(false) => warn(
                w,
                n,
                d,
                "with crm/pacemaker on, heartbeat ignored haresources: the groups converted \
                 here may not be what this cluster ran"
                    .into(),
            ),
            "crm" | "pacemaker" => {}
            "autojoin" if vals.first().is_some_and(|v| *v != "none") => warn(
                w,
                n,
                d,
                "not converted: hbeat's nodes are the ones listed".into(),
            ),
            "autojoin" => {}
            "hopfudge"
            | "realtime"
            | "rtprio"
            | "hbgenmethod"
            | "msgfmt"
            | "compression"
            | "compression_threshold"
            | "traditional_compression"
            | "uuidfrom"
            | "coredumps"
            | "coreroot"
            | "memreserve"
            | "max_rexmit_delay"
            | "warn_bad_packets"
            | "env"
            | "failfast"
            | "register_to_apphbd"
            | "quorum_server" => warn(w, n, d, "no equivalent in hbeat; ignored".into()),
            "mcast6" | "ucast6" | "ping6" | "hbaping" | "rds" => warn(
                w,
                n,
                d,
                "not converted: write this path as a [[link]] (or [ping] target) by hand".into(),
            ),
            _ => warn(
                w,
                n,
                d,
                "unknown directive (heartbeat refused it too); ignored".into(),
            ),
        }
    }
    cf
}

// -------------------------------------------------------------------------------------------------
// haresources

/// One converted group.
struct GroupOut {
    name: String,
    preferred: String,
    /// The resource as hbeat writes it, and a note for the user (may be empty).
    resources: Vec<(String, String)>,
    /// Notes about resources left out (ldirectord).
    notes: Vec<String>,
    line: usize,
}

/// `IPaddr`'s `ip[/prefix][/nic][/broadcast]`.
struct IpSpec {
    ip: IpAddr,
    prefix: Option<u8>,
    nic: Option<String>,
    broadcast: Option<String>,
}

/// Parses `IPaddr`'s argument; the error says what is wrong.
fn ipaddr(spec: &str) -> Result<IpSpec, String> {
    let mut parts = spec.split('/');
    let ip_text = parts.next().unwrap_or_default();
    let ip: Ipv4Addr = ip_text
        .parse()
        .map_err(|_| format!("{ip_text:?} is not an IPv4 address"))?;
    let mut prefix = None;
    let mut nic = None;
    let mut broadcast = None;
    for (k, p) in parts.enumerate() {
        if p.is_empty() {
            continue;
        }
        if k == 0 {
            prefix = Some(if let Ok(len) = p.parse::<u8>() {
                if len > 32 {
                    return Err(format!("prefix length {len} is more than 32"));
                }
                len
            } else if let Ok(mask) = p.parse::<Ipv4Addr>() {
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(format!("netmask {mask} is not contiguous"));
                }
                bits.leading_ones() as u8
            } else {
                return Err(format!("{p:?} is not a prefix length"));
            });
        } else if p.parse::<Ipv4Addr>().is_ok() {
            broadcast = Some(p.to_owned());
        } else if nic.is_none() {
            nic = Some(p.to_owned());
        } else {
            return Err(format!("unexpected {p:?}"));
        }
    }
    Ok(IpSpec {
        ip: IpAddr::V4(ip),
        prefix,
        nic,
        broadcast,
    })
}

/// A group name from its first resource: letters, digits, `-`, `_`, `.`; unique.
fn group_name(first: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = if let Some(ip) = first
        .strip_prefix("IPaddr2::")
        .or(first.strip_prefix("IPaddr::"))
        .map(|s| s.split('/').next().unwrap_or_default())
        .or_else(|| first.parse::<Ipv4Addr>().is_ok().then_some(first))
        .or_else(|| {
            let ip = first.split('/').next().unwrap_or_default();
            ip.parse::<Ipv4Addr>().is_ok().then_some(ip)
        }) {
        format!("ip-{ip}")
    } else {
        first.split("::").next().unwrap_or_default().to_owned()
    };
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        clean.insert(0, 'g');
    }
    let mut name = clean.clone();
    let mut k = 2;
    while !taken.insert(name.clone()) {
        name = format!("{clean}-{k}");
        k += 1;
    }
    name
}

/// One haresources resource as hbeat writes it, or `None` (dropped, warned).
fn resource(
    word: &str,
    n: usize,
    opts: &Options,
    w: &mut Warnings,
) -> Option<(String, Option<String>)> {
    let warn = |w: &mut Warnings, m: String| w.push(Source::Haresources, n, word, m);
    let (script, args) = word.split_once("::").unwrap_or((word, ""));
    let is_ip = word
        .split('/')
        .next()
        .is_some_and(|ip| ip.parse::<Ipv4Addr>().is_ok());
    if is_ip || script == "IPaddr" || script == "IPaddr2" {
        let spec = if is_ip { word } else { args };
        let IpSpec {
            ip,
            prefix,
            nic,
            broadcast,
        } = match ipaddr(spec) {
            Ok(v) => v,
            Err(e) => {
                warn(w, format!("{e}; this resource is dropped"));
                return None;
            }
        };
        if let Some(b) = &broadcast {
            warn(
                w,
                format!(
                    "the broadcast address {b} is not kept: the kernel derives it from the prefix"
                ),
            );
        }
        let nic = nic.map(|nic| match nic.split_once(':') {
            Some((base, label)) => {
                warn(
                    w,
                    format!(
                        "alias label {nic:?}: fakeip adds the address to {base:?} itself \
                         (fakeip --label {label} to keep a label)"
                    ),
                );
                base.to_owned()
            }
            None => nic,
        });
        let nic = nic.filter(|nic| match IfName::from_str(nic) {
            Ok(_) => true,
            Err(e) => {
                warn(w, e.to_string());
                false
            }
        });
        return Some(match (prefix, nic) {
            (Some(p), Some(nic)) => (format!("armed:fakeip hold {ip}/{p} dev {nic}"), None),
            (prefix, nic) => {
                let missing = match (prefix.is_none(), nic.is_none()) {
                    (true, true) => "no NIC and no prefix length",
                    (true, false) => "no prefix length",
                    _ => "no NIC",
                };
                let text = format!(
                    "{FIXME} armed:fakeip hold {ip}/{} dev {}",
                    prefix.map_or("PREFIX".to_owned(), |p| p.to_string()),
                    nic.as_deref().unwrap_or("NIC")
                );
                warn(
                    w,
                    format!(
                        "names {missing} (heartbeat's findif took them from the routing \
                         table): fill them in and remove the leading {FIXME}; until then \
                         `hbeat check` refuses the file"
                    ),
                );
                (
                    text,
                    Some(format!(
                        "hbeat import: haresources names {missing}: fill them in, then remove \
                         {FIXME}"
                    )),
                )
            }
        });
    }
    if script == "ldirectord" {
        let file = if args.is_empty() {
            "/etc/ha.d/ldirectord.cf".to_owned()
        } else {
            format!("/etc/ha.d/{args}")
        };
        warn(
            w,
            format!(
                "dropped: ldir runs on both nodes all the time and has nothing to move; convert \
                 its configuration with `ldir import {file}` and enable ldir on both nodes"
            ),
        );
        return None;
    }
    let path = match &opts.script_dir {
        Some(dir) => dir.join(script).display().to_string(),
        None => script.to_owned(),
    };
    let text = if args.is_empty() {
        format!("script:{path}")
    } else {
        format!("script:{path}::{args}")
    };
    match Resource::parse(&text) {
        Ok(_) => Some((text, None)),
        Err(e) => {
            warn(w, format!("{e}; this resource is dropped"));
            None
        }
    }
}

/// haresources' logical lines: `\` at the end continues a line; `#` starts a comment line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (body, more) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (n, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body);
        if !more {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

fn parse_haresources(
    text: &str,
    nodes: &[String],
    opts: &Options,
    w: &mut Warnings,
) -> Vec<GroupOut> {
    let mut groups = Vec::new();
    let mut taken = BTreeSet::new();
    for (n, line) in logical_lines(text) {
        let mut words = line.split_ascii_whitespace();
        let Some(node) = words.next().map(str::to_ascii_lowercase) else {
            continue;
        };
        if !nodes.contains(&node) {
            w.push(
                Source::Haresources,
                n,
                &node,
                format!(
                    "not a node of ha.cf ({}); this group is skipped",
                    nodes.join(", ")
                ),
            );
            continue;
        }
        let words: Vec<&str> = words.collect();
        let Some(first) = words.first() else {
            w.push(
                Source::Haresources,
                n,
                &node,
                "a group without resources; skipped",
            );
            continue;
        };
        let mut resources = Vec::new();
        let mut notes = Vec::new();
        for word in &words {
            if let Some((text, comment)) = resource(word, n, opts, w) {
                resources.push((text, comment.unwrap_or_default()));
            } else if word.split("::").next() == Some("ldirectord") {
                notes.push(format!(
                    "hbeat import: {word} left out: ldir runs on both nodes (ldir import)"
                ));
            }
        }
        if resources.is_empty() {
            w.push(
                Source::Haresources,
                n,
                first,
                "no resource of this group is left for hbeat to run; the group is skipped",
            );
            continue;
        }
        groups.push(GroupOut {
            name: group_name(first, &mut taken),
            preferred: node,
            resources,
            notes,
            line: n,
        });
    }
    groups
}

// -------------------------------------------------------------------------------------------------
// authkeys

/// The key file's text from authkeys, or `None` with the reason warned.
fn convert_authkeys(text: &str, w: &mut Warnings) -> Option<String> {
    let mut auth: Option<(u8, usize)> = None;
    let mut keys: BTreeMap<u8, (String, String, usize)> = BTreeMap::new();
    let warn = |w: &mut Warnings, n: usize, d: &str, m: String| w.push(Source::Authkeys, n, d, m);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, |c: char| c.is_ascii_whitespace());
        let first = parts.next().unwrap_or_default();
        let second = parts.next().unwrap_or_default().trim();
        let rest = parts.next().unwrap_or_default().trim();
        if first == "auth" {
            match second.parse::<u8>() {
                Ok(id) if (1..=15).contains(&id) => auth = Some((id, n)),
                _ => warn(w, n, "auth", format!("{second:?} is not a key id 1..15")),
            }
            continue;
        }
        let Ok(id) = first.parse::<u8>() else {
            warn(
                w,
                n,
                first,
                "not `auth N` or `N METHOD [SECRET]`; ignored".into(),
            );
            continue;
        };
        if !(1..=15).contains(&id) {
            warn(w, n, first, "key ids are 1..15; ignored".into());
            continue;
        }
        let method = second.to_ascii_lowercase();
        match method.as_str() {
            "sha1" | "md5" if !rest.is_empty() => {
                if keys
                    .insert(id, (method.clone(), rest.to_owned(), n))
                    .is_some()
                {
                    warn(
                        w,
                        n,
                        &method,
                        format!("key {id} is listed twice; the last one is kept"),
                    );
                }
            }
            "sha1" | "md5" => warn(w, n, &method, "no secret; ignored".into()),
            "crc" => warn(
                w,
                n,
                "crc",
                format!(
                    "key {id} has no secret (crc only caught corruption): no hbeat key comes \
                     from it; hbeat signs every frame with a secret key"
                ),
            ),
            _ => warn(
                w,
                n,
                second,
                "unknown method (heartbeat knew crc, md5, sha1); ignored".into(),
            ),
        }
    }
    let Some((active, auth_line)) = auth else {
        warn(
            w,
            0,
            "auth",
            "no `auth N` line: no key file is written; make one with `hbeat keygen` and install \
             it on every node"
                .into(),
        );
        return None;
    };
    if !keys.contains_key(&active) {
        warn(
            w,
            auth_line,
            "auth",
            format!(
                "key {active} signs, and it has no usable secret (crc, missing or unknown): no key \
                 file is written; make one with `hbeat keygen` and install it on every node"
            ),
        );
        return None;
    }
    let mut out = String::from(
        "# hbeat key file converted by `hbeat import` from heartbeat's authkeys: mode 0600,\n\
         # identical on every node. Each key is SHA-256(\"hbeat-import:\" + heartbeat's secret),\n\
         # so every node converting the same authkeys gets the same keys; they are no stronger\n\
         # than the old secrets: once every node runs hbeat, consider `hbeat keygen` for a new one.\n",
    );
    let order = std::iter::once(active).chain(keys.keys().copied().filter(|k| *k != active));
    for id in order {
        let (method, secret, n) = &keys[&id];
        let mut h = Sha256::new();
        h.update(KEY_DERIVATION_PREFIX.as_bytes());
        h.update(secret.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let line = format!("{id} {hex}");
        let role = if id == active { ", signs" } else { "" };
        out.push_str(&format!("# authkeys:{n}: {id} {method}{role}\n{line}\n"));
    }
    Some(out)
}

// -------------------------------------------------------------------------------------------------
// Timings

struct Timings {
    keepalive: Duration,
    warntime: Duration,
    deadtime: Duration,
    initdead: Duration,
}

/// heartbeat's timings with its defaults (`init_config`), made to fit hbeat's rules where heartbeat
/// allowed what hbeat does not.
fn timings(cf: &HaCf, w: &mut Warnings) -> Timings {
    let keepalive = cf.keepalive.map_or(Duration::from_secs(1), |t| t.0);
    let deadtime = cf.deadtime.map_or(Duration::from_secs(30), |t| t.0);
    let warntime = cf.warntime.map_or(deadtime / 2, |t| t.0);
    let mut initdead = cf.initdead.map_or_else(
        || {
            if deadtime > Duration::from_secs(10) {
                deadtime
            } else if deadtime < Duration::from_secs(6) {
                Duration::from_secs(12)
            } else {
                deadtime * 2
            }
        },
        |t| t.0,
    );
    let line_of = |t: Option<(Duration, usize)>| t.map_or(0, |t| t.1);
    if deadtime <= keepalive * 2 {
        w.push(
            Source::HaCf,
            line_of(cf.deadtime),
            "deadtime",
            format!(
                "deadtime ({}) must be more than twice keepalive ({}); heartbeat refused this \
                 too, and so will `hbeat check`",
                dur(deadtime),
                dur(keepalive)
            ),
        );
    }
    if warntime <= keepalive || warntime > deadtime {
        w.push(
            Source::HaCf,
            line_of(cf.warntime),
            "warntime",
            format!(
                "hbeat needs keepalive ({}) < warntime ({}) <= deadtime ({}); `hbeat check` will \
                 refuse it: fix warntime",
                dur(keepalive),
                dur(warntime),
                dur(deadtime)
            ),
        );
    }
    if initdead == deadtime {
        // heartbeat allowed (and by default chose) initdead == deadtime; hbeat wants more.
        initdead = deadtime + keepalive;
        w.push(
            Source::HaCf,
            line_of(cf.initdead),
            "initdead",
            format!(
                "equal to deadtime{}; hbeat needs initdead longer than deadtime: written as {} \
                 (deadtime + keepalive)",
                if cf.initdead.is_none() {
                    " (heartbeat's default)"
                } else {
                    ""
                },
                dur(initdead)
            ),
        );
    } else if initdead < deadtime {
        w.push(
            Source::HaCf,
            line_of(cf.initdead),
            "initdead",
            "shorter than deadtime; heartbeat refused this too, and so will `hbeat check`",
        );
    }
    Timings {
        keepalive,
        warntime,
        deadtime,
        initdead,
    }
}

// -------------------------------------------------------------------------------------------------
// The whole conversion

/// Converts heartbeat's three files for the node `opts.node`.
pub fn convert(ha_cf: &str, haresources: &str, authkeys: &str, opts: &Options) -> Conversion {
    let mut w = Warnings::default();
    let cf = parse_ha_cf(ha_cf, &mut w);
    let me = opts.node.to_ascii_lowercase();
    let mut nodes: Vec<String> = Vec::new();
    for (name, n) in &cf.nodes {
        if nodes.contains(name) {
            w.push(
                Source::HaCf,
                *n,
                "node",
                format!("{name:?} is listed twice"),
            );
        } else {
            nodes.push(name.clone());
        }
    }
    let mut usable = true;
    if nodes.is_empty() {
        w.push(
            Source::HaCf,
            0,
            "node",
            "no `node` line: the cluster's nodes are unknown",
        );
        usable = false;
    } else if !nodes.contains(&me) {
        w.push(
            Source::HaCf,
            0,
            "node",
            format!(
                "this node {me:?} is not one of the nodes ({}): pass --node NAME",
                nodes.join(", ")
            ),
        );
        usable = false;
    } else if nodes.len() < 2 {
        w.push(
            Source::HaCf,
            0,
            "node",
            "only this node is listed: hbeat needs at least one peer",
        );
        usable = false;
    }
    let peers: Vec<&String> = nodes.iter().filter(|n| **n != me).collect();

    // ucast: skip the entries naming this node's own address; bind the others to this node's
    // address on the same device when a skipped entry showed it, else to the one given.
    let own_by_dev: BTreeMap<&str, IpAddr> = cf
        .links
        .iter()
        .filter_map(|(l, _, _)| match l {
            LinkOut::Udp { peer, dev, .. } if opts.addresses.contains(peer) => {
                Some((dev.as_str(), *peer))
            }
            _ => None,
        })
        .collect();
    let single_own = match opts.addresses.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let mut links = Vec::new();
    for (l, n, line) in &cf.links {
        match l {
            // This node's own entry: heartbeat sent to itself there and ignored it.
            LinkOut::Udp { peer, .. } if opts.addresses.contains(peer) => {}
            LinkOut::Udp {
                peer, dev, port, ..
            } => {
                let bind = own_by_dev.get(dev.as_str()).copied().or(single_own);
                if bind.is_none() {
                    w.push(
                        Source::HaCf,
                        *n,
                        "ucast",
                        format!(
                            "this node's own address on {dev} is unknown (no ucast line names \
                             it, and none was given): the link's bind address is left as \
                             {BIND_PLACEHOLDER}, which `hbeat check` refuses; pass --address \
                             or fill it in"
                        ),
                    );
                }
                links.push((
                    LinkOut::Udp {
                        bind,
                        peer: *peer,
                        port: *port,
                        dev: dev.clone(),
                    },
                    *n,
                    line.clone(),
                ));
            }
            other => links.push((other.clone(), *n, line.clone())),
        }
    }
    // hbeat opens one socket per udp link: two links bound to one address and port cannot both
    // run (heartbeat's one ucast socket per device served every peer on it).
    let mut binds: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
    for (l, n, _) in &links {
        if let LinkOut::Udp {
            bind: Some(b),
            port,
            ..
        } = l
            && let Some(first) = binds.insert((*b, *port), *n)
        {
            w.push(
                Source::HaCf,
                *n,
                "ucast",
                format!(
                    "binds {b}:{port} like the link of line {first}: hbeat gives each udp link                      its own socket, so only one of them can run; give this one another port on                      both nodes, or drop it"
                ),
            );
        }
    }
    if links.is_empty() && usable {
        w.push(
            Source::HaCf,
            0,
            "media",
            "no heartbeat medium (ucast, bcast, mcast, serial) could be converted",
        );
        usable = false;
    }
    let times = timings(&cf, &mut w);
    let groups = parse_haresources(haresources, &nodes, opts, &mut w);
    let key = convert_authkeys(authkeys, &mut w);

    let mut t = String::new();
    t.push_str(&format!(
        "# hbeat.toml converted by `hbeat import` from heartbeat's ha.cf, haresources and authkeys\n\
         # for node {}. Read every \"hbeat import:\" note; `hbeat check` must pass before use.\n",
        q(&me)
    ));
    t.push_str(&format!("node = {}\n", q(&me)));
    let cluster = cf.cluster.clone().unwrap_or_else(|| HA_CLUSTER.to_owned());
    t.push_str(&format!("cluster = {}\n", q(&cluster)));
    t.push_str(&format!(
        "key_file = {}\n",
        q(&opts.key_file.display().to_string())
    ));
    t.push_str(
        "# heartbeat's timings, kept as they were (hbeat's defaults are much faster: keepalive \
         200ms,\n# deadtime 1s): shorten them once both nodes run hbeat.\n",
    );
    t.push_str(&format!("keepalive = {}\n", q(&dur(times.keepalive))));
    t.push_str(&format!("warntime = {}\n", q(&dur(times.warntime))));
    t.push_str(&format!("deadtime = {}\n", q(&dur(times.deadtime))));
    t.push_str(&format!("initdead = {}\n", q(&dur(times.initdead))));
    let failback = match cf.auto_failback {
        Some((on, legacy, n)) => {
            if legacy {
                w.push(
                    Source::HaCf,
                    n,
                    "auto_failback",
                    "legacy gave groups back to their preferred node: converted as true",
                );
            }
            on
        }
        None => {
            w.push(
                Source::HaCf,
                0,
                "auto_failback",
                "not set: heartbeat's default was legacy, which gave groups back to their \
                 preferred node: converted as true",
            );
            true
        }
    };
    t.push_str(&format!("auto_failback = {failback}\n"));
    if !cf.ping.is_empty() {
        let targets: Vec<String> = cf.ping.iter().map(|ip| q(&ip.to_string())).collect();
        t.push_str(&format!("\n[ping]\ntargets = [{}]\n", targets.join(", ")));
    }
    for p in &peers {
        t.push_str(&format!("\n[[peer]]\nname = {}\n", q(p)));
    }
    for (l, n, line) in &links {
        let line = comment_safe(line);
        t.push_str(&format!("\n# ha.cf:{n}: {line}\n[[link]]\n"));
        match l {
            LinkOut::Udp {
                bind,
                peer,
                port,
                dev,
            } => {
                let bind = bind.map_or_else(
                    || format!("{BIND_PLACEHOLDER}:{port}"),
                    |b| format!("{b}:{port}"),
                );
                if bind.starts_with(BIND_PLACEHOLDER) {
                    t.push_str(&format!(
                        "# hbeat import: put this node's address on {dev} in bind\n"
                    ));
                }
                t.push_str(&format!(
                    "udp = {{ bind = {}, peer = {} }}\n",
                    q(&bind),
                    q(&format!("{peer}:{port}"))
                ));
            }
            LinkOut::Mcast {
                dev,
                group,
                port,
                ttl,
            } => t.push_str(&format!(
                "mcast = {{ dev = {}, group = {}, ttl = {ttl} }}\n",
                q(dev),
                q(&format!("{group}:{port}"))
            )),
            LinkOut::Bcast { dev, port } => {
                t.push_str(&format!("bcast = {{ dev = {}, port = {port} }}\n", q(dev)))
            }
            LinkOut::Serial { device, baud } => t.push_str(&format!(
                "serial = {{ device = {}, baud = {baud} }}\n",
                q(device)
            )),
        }
    }
    for g in &groups {
        t.push_str(&format!("\n# haresources:{}\n", g.line));
        for note in &g.notes {
            t.push_str(&format!("# {}\n", comment_safe(note)));
        }
        t.push_str(&format!(
            "[[group]]\nname = {}\npreferred = {}\nresources = [\n",
            q(&g.name),
            q(&g.preferred)
        ));
        for (text, comment) in &g.resources {
            if !comment.is_empty() {
                t.push_str(&format!("  # {comment}\n"));
            }
            t.push_str(&format!("  {},\n", q(text)));
        }
        t.push_str("]\n");
    }
    let mut warnings = w.0;
    warnings.sort_by_key(|w| (w.source, w.line));
    Conversion {
        toml: t,
        key,
        warnings,
        usable,
    }
}

// -------------------------------------------------------------------------------------------------
// The command line's edge

/// `hbeat import`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// heartbeat's ha.cf.
    pub ha_cf: PathBuf,
    /// heartbeat's haresources.
    pub haresources: PathBuf,
    /// heartbeat's authkeys.
    pub authkeys: PathBuf,
    /// Write hbeat.toml to FILE (never replaced) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the key file to FILE (mode 0600, never replaced); key_file names it.
    #[arg(long, value_name = "FILE")]
    pub key_out: Option<PathBuf>,
    /// The node to convert for (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// This node's address (repeatable): which ucast entry is its own, the bind address of the
    /// others (default, when converting for this host: its interfaces' addresses).
    #[arg(long = "address", value_name = "IP")]
    pub addresses: Vec<IpAddr>,
    /// Refer to script resources by their path in DIR instead of by name.
    #[arg(long, value_name = "DIR")]
    pub script_dir: Option<PathBuf>,
}

fn read_input(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_words(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_words(&e))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(format!(
            "larger than {} KiB: not a heartbeat file",
            MAX_INPUT >> 10
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn io_words(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

fn host_name() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

/// This host's interface addresses.
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// `hbeat import HA_CF HARESOURCES AUTHKEYS [--out FILE] [--key-out FILE] ...`.
///
/// Warnings go to `stderr` as `hbeat: FILE:LINE: WHAT: why`. Without `--out` the TOML is printed.
/// With `--out`/`--key-out` the files are created new (never replacing one: the import stops
/// before writing anything and says which is in the way), the key file mode 0600. Without
/// `--key-out` no key file is written (it is a secret: never printed) and `key_file` keeps its
/// default. Exit 0 when the configuration was converted (even with warnings), 2 when nothing
/// usable came out or a file cannot be read or written.
pub fn run(args: &Args, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Exit {
    let host = host_name();
    let Some(node) = args.node.clone().or_else(|| host.clone()) else {
        let _ = writeln!(stderr, "hbeat: the host name is unknown: pass --node NAME");
        return Exit::Usage;
    };
    // The interfaces tell this node's addresses only when converting for this very host.
    let for_this_host = host
        .as_deref()
        .is_some_and(|h| h.eq_ignore_ascii_case(&node));
    let addresses = if !args.addresses.is_empty() || !for_this_host {
        args.addresses.clone()
    } else {
        local_addresses()
    };
    let mut texts = Vec::new();
    for p in [&args.ha_cf, &args.haresources, &args.authkeys] {
        match read_input(p) {
            Ok(t) => texts.push(t),
            Err(e) => {
                let _ = writeln!(stderr, "hbeat: {}: {e}", p.display());
                return Exit::Usage;
            }
        }
    }
    let key_file = match &args.key_out {
        Some(k) => std::path::absolute(k).unwrap_or_else(|_| k.clone()),
        None => PathBuf::from(DEFAULT_KEY_FILE),
    };
    let opts = Options {
        node,
        addresses,
        script_dir: args
            .script_dir
            .as_ref()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())),
        key_file,
    };
    let conv = convert(&texts[0], &texts[1], &texts[2], &opts);
    for w in &conv.warnings {
        let file = match w.source {
            Source::HaCf => &args.ha_cf,
            Source::Haresources => &args.haresources,
            Source::Authkeys => &args.authkeys,
        };
        let at = if w.line > 0 {
            format!("{}:{}", file.display(), w.line)
        } else {
            file.display().to_string()
        };
        let _ = writeln!(stderr, "hbeat: {at}: {}: {}", w.what, w.message);
    }
    if !conv.usable {
        let _ = writeln!(
            stderr,
            "hbeat: nothing usable: the configuration cannot be converted (see above)"
        );
        return Exit::Usage;
    }
    let mut files: Vec<(&Path, &str, u32)> = Vec::new();
    if let Some(out) = &args.out {
        files.push((out.as_path(), conv.toml.as_str(), 0o644));
    }
    if let (Some(k), Some(key)) = (&args.key_out, &conv.key) {
        files.push((k.as_path(), key.as_str(), 0o600));
    }
    if let Err(e) = write_files(&files) {
        let _ = writeln!(stderr, "hbeat: {e}");
        return Exit::Usage;
    }
    if args.out.is_none() && write!(stdout, "{}", conv.toml).is_err() {
        return Exit::TempFail;
    }
    match (&args.key_out, &conv.key) {
        (Some(k), Some(_)) => {
            let _ = writeln!(stderr, "hbeat: wrote the key file {}", k.display());
        }
        (Some(k), None) => {
            let _ = writeln!(
                stderr,
                "hbeat: no key file written to {}: authkeys has no usable secret (see above)",
                k.display()
            );
        }
        (None, Some(_)) => {
            let _ = writeln!(
                stderr,
                "hbeat: the key was not written: run again with --key-out {DEFAULT_KEY_FILE}"
            );
        }
        (None, None) => {}
    }
    Exit::Ok
}

/// Creates every file or none: a path already taken stops before anything is written, and a
/// failed write removes what this call created.
fn write_files(files: &[(&Path, &str, u32)]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    for (p, _, _) in files {
        if p.symlink_metadata().is_ok() {
            return Err(format!("{}: exists; not overwritten", p.display()));
        }
    }
    let mut created: Vec<&Path> = Vec::new();
    for (p, text, mode) in files {
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(*mode)
            .open(p)
            .and_then(|mut f| {
                created.push(*p);
                f.write_all(text.as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = result {
            for c in &created {
                let _ = std::fs::remove_file(c);
            }
            return Err(format!("{}: {}", p.display(), io_words(&e)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
