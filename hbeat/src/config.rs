//! hbeat's configuration: `/etc/hbeat/hbeat.toml`, read and validated into a [`Config`] in one step.
//!
//! The schema (fields, defaults, rules) is documented on [`File`] and in the pair example
//! `contrib/examples/pair/lb1/hbeat.toml`; `config/fixtures/issue-12-example.toml` is issue 12's
//! example, which must parse as written. Loading goes through `common::config`, so every problem
//! of the file is reported at once as `file:line:col: field: message`, unknown keys with a "did you
//! mean". A [`Config`] exists only when there is no problem at all.
//!
//! [`Config::groups_hash`] is the hash of the group definitions that every heartbeat carries, so
//! that nodes whose groups differ notice it (heartbeat wanted identical haresources by hand).
//!
//! Not here: the key file's contents (`keys`), whether interfaces or devices exist (the links report
//! that at run time, one link down does not stop the others), and whether resources are executable
//! ([`crate::check`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use common::config::{self, ConfigErrors, Duration, IfName, SocketAddr, Validate, Validator};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::resource::{Resource, Timings};

/// The file read when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/hbeat/hbeat.toml";
/// `key_file`'s default.
pub const DEFAULT_KEY_FILE: &str = "/etc/hbeat/authkey";
/// `state_dir`'s default (DESIGN.md: persistent state under `/var/lib/<tool>/`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hbeat";
/// The control socket's directory; the socket is `<node>.sock` in it unless `socket` is set.
pub const DEFAULT_SOCKET_DIR: &str = "/run/hbeat";
/// Serial speeds termios can set (`cfsetspeed`), in bit/s.
pub const BAUD_RATES: [u32; 14] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 500_000, 576_000,
    921_600, 1_000_000,
];
/// The most links: a frame carries its link id in one byte.
pub const MAX_LINKS: usize = 256;
/// The longest node, group or cluster name: enough for a host name label, short enough for frames.
pub const MAX_NAME_LEN: usize = 64;

const DEFAULT_KEEPALIVE: StdDuration = StdDuration::from_millis(200);
const DEFAULT_WARNTIME: StdDuration = StdDuration::from_millis(600);
const DEFAULT_DEADTIME: StdDuration = StdDuration::from_secs(1);
const DEFAULT_INITDEAD: StdDuration = StdDuration::from_secs(10);
/// auto_failback's hold-off is at least this many deadtimes (and at least initdead): a preferred
/// node must stay up through several would-be deaths before it gets its groups back, so that a
/// flapping node does not drag its groups back and forth.
const HOLDOFF_DEADTIMES: u32 = 10;
const DEFAULT_MONITOR_INTERVAL: StdDuration = StdDuration::from_secs(10);
const DEFAULT_RESTART_LIMIT: u32 = 3;
const DEFAULT_RESTART_WINDOW: StdDuration = StdDuration::from_secs(300);
const DEFAULT_PING_INTERVAL: StdDuration = StdDuration::from_secs(1);
/// The most ping targets (a frame counts them in one byte).
pub const MAX_PING_TARGETS: usize = 32;

/// Everything hbeat runs from, validated, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's name.
    pub node: String,
    /// The cluster's name; frames of other clusters are ignored.
    pub cluster: String,
    pub key_file: PathBuf,
    pub keepalive: StdDuration,
    pub warntime: StdDuration,
    pub deadtime: StdDuration,
    pub initdead: StdDuration,
    pub auto_failback: bool,
    /// How long a group's preferred node must have been up before auto_failback returns the group.
    pub failback_holdoff: StdDuration,
    /// The other nodes, in file order.
    pub peers: Vec<String>,
    pub links: Vec<Link>,
    pub groups: Vec<Group>,
    /// The control socket.
    pub socket: PathBuf,
    /// The group allowed state-changing control requests besides root.
    pub socket_group: Option<String>,
    /// Run (argv, no shell) on every transition with `HBEAT_*` in its environment.
    pub notify: Option<Vec<String>>,
    pub state_dir: PathBuf,
    /// The resource runner's time limits.
    pub resource_timings: Timings,
    /// With three or more nodes, hold groups only with a majority of the votes.
    pub quorum: bool,
    /// Votes per node, this one included (a node not listed has one).
    pub votes: BTreeMap<String, u32>,
    /// Fence commands (argv) per peer.
    pub fence: BTreeMap<String, Vec<String>>,
    pub ping: Option<Ping>,
    /// How often script resources are `status`-checked while held.
    pub monitor_interval: StdDuration,
    /// Local restarts of a failed group within `restart_window` when no peer is ready.
    pub restart_limit: u32,
    pub restart_window: StdDuration,
}

/// The ping targets (heartbeat's `ping`): reachability is compared with the peers'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub targets: Vec<std::net::IpAddr>,
    /// One round every interval; a target answering within `timeout` is reached.
    pub interval: StdDuration,
    pub timeout: StdDuration,
}

/// One heartbeat path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Unicast UDP from `bind` to `peer`.
    Udp {
        bind: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    },
    /// Multicast UDP on `dev` to `group`.
    Mcast {
        dev: String,
        group: std::net::SocketAddr,
        ttl: u8,
    },
    /// IPv4 broadcast on `dev` to `port`.
    Bcast { dev: String, port: u16 },
    /// A serial line.
    Serial { device: PathBuf, baud: u32 },
    /// A shared block device or file: each node writes its own slot and reads the others'.
    /// `quorum`: it is also the quorum disk (a node that hears no peer holds groups only while
    /// it sees its own writes there).
    Disk { path: PathBuf, quorum: bool },
}

impl Link {
    /// The kind's name as in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Link::Udp { .. } => "udp",
            Link::Mcast { .. } => "mcast",
            Link::Bcast { .. } => "bcast",
            Link::Serial { .. } => "serial",
            Link::Disk { .. } => "disk",
        }
    }
}

/// A resource group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// The nodes allowed to hold it, most preferred first; `nodes[0]` is the preferred node.
    pub nodes: Vec<String>,
    /// Started left to right, stopped right to left.
    pub resources: Vec<Resource>,
    /// Interfaces that must have carrier on the node holding it.
    pub interfaces: Vec<String>,
}

impl Group {
    /// The node the group belongs on.
    pub fn preferred(&self) -> &str {
        &self.nodes[0]
    }
}

impl Config {
    /// Every node of the cluster, this one included, sorted by name.
    pub fn nodes(&self) -> Vec<&str> {
        let mut all: Vec<&str> = std::iter::once(self.node.as_str())
            .chain(self.peers.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all
    }

    /// The link id (its index) of the quorum disk, if a disk link is one.
    pub fn quorum_disk_link(&self) -> Option<u8> {
        self.links
            .iter()
            .position(|l| matches!(l, Link::Disk { quorum: true, .. }))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// What the state machine needs: names, timings, groups with their nodes, link ids (the
    /// index in `links`; validation keeps it within a `u8`), the groups hash.
    pub fn machine_settings(&self) -> crate::machine::Settings {
        crate::machine::Settings {
            me: self.node.clone(),
            peers: self.peers.clone(),
            keepalive: self.keepalive,
            warntime: self.warntime,
            deadtime: self.deadtime,
            initdead: self.initdead,
            auto_failback: self.auto_failback,
            failback_holdoff: self.failback_holdoff,
            groups: self
                .groups
                .iter()
                .map(|g| crate::machine::GroupSpec {
                    name: g.name.clone(),
                    nodes: g.nodes.clone(),
                    interfaces: g.interfaces.clone(),
                })
                .collect(),
            links: (0..self.links.len())
                .map(|i| u8::try_from(i).unwrap_or(u8::MAX))
                .collect(),
            groups_hash: self.groups_hash(),
            policy: crate::machine::Policy {
                quorum: self.quorum,
                votes: self.votes.clone(),
                ping: self.ping.is_some(),
                quorum_disk: self.quorum_disk_link().is_some(),
                fence: self.fence.keys().cloned().collect(),
                restart_limit: self.restart_limit,
                restart_window: self.restart_window,
            },
        }
    }

    /// A stable hash of the group definitions: names, order, allowed nodes in order, resources
    /// (as argv words, so quoting does not matter). Nodes with the same groups get the same value
    /// whatever their own name, peers, links or timings. SHA-256 over a length-prefixed encoding,
    /// truncated to its first 8 bytes (big-endian): the same on every platform and every build,
    /// unlike std's randomly keyed hasher. Changing the encoding changes every hash, so mixed
    /// versions would report a mismatch: the golden test guards it.
    pub fn groups_hash(&self) -> u64 {
        let mut h = Sha256::new();
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        };
        put("hbeat groups v1");
        put(&self.groups.len().to_string());
        for g in &self.groups {
            put(&g.name);
            put(&g.nodes.len().to_string());
            for n in &g.nodes {
                put(n);
            }
            put(&g.resources.len().to_string());
            for r in &g.resources {
                let words = r.canonical_words();
                put(&words.len().to_string());
                for w in words {
                    put(w);
                }
            }
            // Only when set, so that groups without them keep the hash they always had.
            if !g.interfaces.is_empty() {
                put("interfaces");
                put(&g.interfaces.len().to_string());
                for i in &g.interfaces {
                    put(i);
                }
            }
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
    config::load_file::<File>(path).map(File::into_config)
}

/// Parses and validates `text`; `name` is the file name in messages.
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigErrors> {
    config::parse_str::<File>(name, text).map(File::into_config)
}

// -------------------------------------------------------------------------------------------------
// The file as written

/// `hbeat.toml` as written. Fields and defaults:
///
/// | field | default | meaning |
/// |---|---|---|
/// | `node` | the host name (`uname -n`) | this node's name |
/// | `cluster` | required | frames of other clusters are ignored |
/// | `key_file` | `/etc/hbeat/authkey` | mode 0600 or 0400 |
/// | `keepalive`, `warntime`, `deadtime`, `initdead` | 200ms, 600ms, 1s, 10s | keepalive < warntime <= deadtime < initdead, deadtime >= 2 x keepalive |
/// | `auto_failback` | false | give groups back to their preferred node |
/// | `failback_holdoff` | max(initdead, 10 x deadtime) | how long that node must be up first |
/// | `socket` | `/run/hbeat/<node>.sock` | control socket |
/// | `socket_group` | none (root only) | group allowed state-changing requests |
/// | `notify` | none | command run on every transition |
/// | `state_dir` | `/var/lib/hbeat` | incarnation and other persistent state |
/// | `resource_settle` | 200ms | a command must still run after this long to count as started |
/// | `resource_timeout` | 30s | limit for a script's start/stop/status |
/// | `resource_kill_after` | 5s | KILL a command this long after TERM |
/// | `quorum` | true | with three or more nodes, hold groups only with a majority of the votes (false: a lone survivor holds everything) |
/// | `votes` | 1 | this node's votes |
/// | `monitor_interval` | 10s | how often held script resources are `status`-checked |
/// | `restart_limit`, `restart_window` | 3, 5m | local restarts of a failed group when no peer is ready |
/// | `[ping]` `targets`, `interval`, `timeout` | none; 1s; the interval | ping nodes (ICMP): reachability compared with the peers'; when no peer is heard for warntime, a round at once (timeout at most (deadtime - warntime) / 2) decides whether this node is the one cut off |
/// | `[[peer]]` `name`, `votes`, `fence` | at least one; 1; none | the other nodes; `fence` runs before taking over from a dead one |
/// | `[[link]]` | at least one | exactly one of `udp = {bind, peer}`, `mcast = {dev, group, ttl = 1}`, `bcast = {dev, port}`, `serial = {device, baud}`, `disk = {path, quorum = false}` (`quorum`: the quorum disk, a two-node tie-breaker) |
/// | `[[group]]` `name`, `preferred`, `nodes`, `resources`, `interfaces` | nodes: preferred first, then every node by name; preferred: `nodes[0]` | resources: at least one; interfaces: carrier needed to hold it |
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    node: Option<Spanned<String>>,
    cluster: Spanned<String>,
    key_file: Option<Spanned<PathBuf>>,
    keepalive: Option<Spanned<Duration>>,
    warntime: Option<Spanned<Duration>>,
    deadtime: Option<Spanned<Duration>>,
    initdead: Option<Spanned<Duration>>,
    auto_failback: Option<bool>,
    failback_holdoff: Option<Spanned<Duration>>,
    socket: Option<Spanned<PathBuf>>,
    socket_group: Option<Spanned<String>>,
    notify: Option<Spanned<String>>,
    state_dir: Option<Spanned<PathBuf>>,
    resource_settle: Option<Spanned<Duration>>,
    resource_timeout: Option<Spanned<Duration>>,
    resource_kill_after: Option<Spanned<Duration>>,
    quorum: Option<bool>,
    votes: Option<Spanned<u32>>,
    monitor_interval: Option<Spanned<Duration>>,
    restart_limit: Option<Spanned<u32>>,
    restart_window: Option<Spanned<Duration>>,
    ping: Option<Spanned<PingSection>>,
    #[serde(default)]
    peer: Vec<Spanned<PeerSection>>,
    link: Option<Spanned<Vec<Spanned<LinkSection>>>>,
    #[serde(default)]
    group: Vec<Spanned<GroupSection>>,
    /// The host name, read while parsing, as `node`'s default.
    #[serde(skip, default = "host_name")]
    host_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    name: Spanned<String>,
    votes: Option<Spanned<u32>>,
    fence: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingSection {
    targets: Spanned<Vec<Spanned<common::config::IpAddr>>>,
    interval: Option<Spanned<Duration>>,
    timeout: Option<Spanned<Duration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkSection {
    udp: Option<Spanned<UdpLink>>,
    mcast: Option<Spanned<McastLink>>,
    bcast: Option<Spanned<BcastLink>>,
    serial: Option<Spanned<SerialLink>>,
    disk: Option<Spanned<DiskLink>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UdpLink {
    bind: Spanned<SocketAddr>,
    peer: Spanned<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McastLink {
    dev: IfName,
    group: Spanned<SocketAddr>,
    #[serde(default = "default_ttl")]
    ttl: Spanned<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BcastLink {
    dev: IfName,
    port: Spanned<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialLink {
    device: Spanned<PathBuf>,
    baud: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskLink {
    path: Spanned<PathBuf>,
    quorum: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSection {
    name: Spanned<String>,
    preferred: Option<Spanned<String>>,
    nodes: Option<Spanned<Vec<Spanned<String>>>>,
    resources: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    interfaces: Vec<IfName>,
}

fn default_ttl() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

/// Where the daemon of a configuration that does not load is likely to listen, for the clients
/// (`status`, `standby`, `takeover` must reach a running daemon while its file is being edited):
/// the file's `socket`, else `<node>.sock`, read leniently from whatever TOML parses; `None` when
/// the text is not TOML or names neither.
pub fn socket_hint(text: &str) -> Option<PathBuf> {
    let table: toml::Table = text.parse().ok()?;
    if let Some(s) = table.get("socket").and_then(toml::Value::as_str) {
        return Some(PathBuf::from(s));
    }
    let node = table.get("node").and_then(toml::Value::as_str)?;
    (name_problem(node).is_none())
        .then(|| Path::new(DEFAULT_SOCKET_DIR).join(format!("{node}.sock")))
}

fn host_name() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

fn dur(value: &Option<Spanned<Duration>>, default: StdDuration) -> StdDuration {
    value.as_ref().map_or(default, |d| d.get_ref().as_std())
}

/// Why `name` cannot name a node, group or cluster, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    let ok_first = name.as_bytes()[0].is_ascii_alphanumeric();
    let ok_rest = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok_first || !ok_rest {
        return Some(format!(
            "{name:?} is not a valid name: use letters, digits, '-', '_' and '.', starting with a \
             letter or digit"
        ));
    }
    None
}

fn check_name(v: &mut Validator, field: &str, value: &Spanned<String>) {
    if let Some(problem) = name_problem(value.get_ref()) {
        v.error(field, value, problem);
    }
}

/// A command line split like a shell would: at least one word, quotes closed.
fn check_command(v: &mut Validator, field: &str, value: &Spanned<String>) {
    match shlex::split(value.get_ref()) {
        Some(words) if !words.is_empty() => {}
        Some(_) => v.error(field, value, "the command is empty"),
        None => v.error(
            field,
            value,
            "cannot split the command line: unterminated quote or a lone backslash",
        ),
    }
}

fn check_absolute(v: &mut Validator, field: &str, value: &Spanned<PathBuf>) {
    if !value.get_ref().is_absolute() {
        v.error(
            field,
            value,
            format!(
                "must be an absolute path, got {:?}",
                value.get_ref().display().to_string()
            ),
        );
    }
}

impl File {
    /// This node's name: `node`, else the host name.
    fn node_name(&self) -> Option<&str> {
        match &self.node {
            Some(n) => Some(n.get_ref()),
            None => self.host_name.as_deref(),
        }
    }

    fn into_config(self) -> Config {
        let node = self.node_name().unwrap_or_default().to_owned();
        let keepalive = dur(&self.keepalive, DEFAULT_KEEPALIVE);
        let warntime = dur(&self.warntime, DEFAULT_WARNTIME);
        let deadtime = dur(&self.deadtime, DEFAULT_DEADTIME);
        let initdead = dur(&self.initdead, DEFAULT_INITDEAD);
        let peers: Vec<String> = self
            .peer
            .iter()
            .map(|p| p.get_ref().name.get_ref().clone())
            .collect();
        let mut everyone: Vec<String> = std::iter::once(node.clone())
            .chain(peers.iter().cloned())
            .collect();
        everyone.sort();
        let default_timings = Timings::default();
        let groups = self
            .group
            .iter()
            .map(|g| {
                let g = g.get_ref();
                let nodes = match (&g.nodes, &g.preferred) {
                    (Some(list), _) => list.get_ref().iter().map(|n| n.get_ref().clone()).collect(),
                    (None, Some(preferred)) => {
                        let preferred = preferred.get_ref();
                        std::iter::once(preferred.clone())
                            .chain(everyone.iter().filter(|n| *n != preferred).cloned())
                            .collect()
                    }
                    (None, None) => unreachable!("validated: preferred or nodes is set"),
                };
                Group {
                    name: g.name.get_ref().clone(),
                    nodes,
                    resources: g
                        .resources
                        .get_ref()
                        .iter()
                        .map(|r| Resource::parse(r.get_ref()).expect("validated resource"))
                        .collect(),
                    interfaces: g.interfaces.iter().map(|i| i.as_str().to_owned()).collect(),
                }
            })
            .collect();
        let links = self
            .link
            .iter()
            .flat_map(|l| l.get_ref())
            .map(|l| {
                let l = l.get_ref();
                if let Some(u) = &l.udp {
                    let u = u.get_ref();
                    Link::Udp {
                        bind: u.bind.get_ref().get(),
                        peer: u.peer.get_ref().get(),
                    }
                } else if let Some(m) = &l.mcast {
                    let m = m.get_ref();
                    Link::Mcast {
                        dev: m.dev.as_str().to_owned(),
                        group: m.group.get_ref().get(),
                        ttl: *m.ttl.get_ref(),
                    }
                } else if let Some(b) = &l.bcast {
                    let b = b.get_ref();
                    Link::Bcast {
                        dev: b.dev.as_str().to_owned(),
                        port: *b.port.get_ref(),
                    }
                } else if let Some(s) = &l.serial {
                    let s = s.get_ref();
                    Link::Serial {
                        device: s.device.get_ref().clone(),
                        baud: *s.baud.get_ref(),
                    }
                } else if let Some(d) = &l.disk {
                    Link::Disk {
                        path: d.get_ref().path.get_ref().clone(),
                        quorum: d.get_ref().quorum.as_ref().is_some_and(|q| *q.get_ref()),
                    }
                } else {
                    unreachable!("validated: exactly one kind per link")
                }
            })
            .collect();
        let votes = std::iter::once((
            node.clone(),
            self.votes.as_ref().map_or(1, |v| *v.get_ref()),
        ))
        .chain(self.peer.iter().map(|p| {
            let p = p.get_ref();
            (
                p.name.get_ref().clone(),
                p.votes.as_ref().map_or(1, |v| *v.get_ref()),
            )
        }))
        .collect();
        Config {
            socket: self.socket.as_ref().map_or_else(
                || Path::new(DEFAULT_SOCKET_DIR).join(format!("{node}.sock")),
                |s| s.get_ref().clone(),
            ),
            node,
            cluster: self.cluster.get_ref().clone(),
            key_file: self
                .key_file
                .as_ref()
                .map_or_else(|| DEFAULT_KEY_FILE.into(), |k| k.get_ref().clone()),
            keepalive,
            warntime,
            deadtime,
            initdead,
            auto_failback: self.auto_failback.unwrap_or(false),
            failback_holdoff: dur(
                &self.failback_holdoff,
                initdead.max(deadtime * HOLDOFF_DEADTIMES),
            ),
            peers,
            links,
            groups,
            socket_group: self.socket_group.as_ref().map(|g| g.get_ref().clone()),
            notify: self
                .notify
                .as_ref()
                .map(|n| shlex::split(n.get_ref()).expect("validated notify")),
            state_dir: self
                .state_dir
                .as_ref()
                .map_or_else(|| DEFAULT_STATE_DIR.into(), |d| d.get_ref().clone()),
            resource_timings: Timings {
                settle: dur(&self.resource_settle, default_timings.settle),
                script_timeout: dur(&self.resource_timeout, default_timings.script_timeout),
                kill_after: dur(&self.resource_kill_after, default_timings.kill_after),
                ..default_timings
            },
            quorum: self.quorum.unwrap_or(true),
            votes,
            fence: self
                .peer
                .iter()
                .filter_map(|p| {
                    let p = p.get_ref();
                    p.fence.as_ref().map(|f| {
                        (
                            p.name.get_ref().clone(),
                            shlex::split(f.get_ref()).expect("validated fence"),
                        )
                    })
                })
                .collect(),
            ping: self.ping.as_ref().map(|p| {
                let p = p.get_ref();
                let interval = dur(&p.interval, DEFAULT_PING_INTERVAL);
                Ping {
                    targets: p
                        .targets
                        .get_ref()
                        .iter()
                        .map(|t| t.get_ref().get())
                        .collect(),
                    interval,
                    timeout: dur(&p.timeout, interval),
                }
            }),
            monitor_interval: dur(&self.monitor_interval, DEFAULT_MONITOR_INTERVAL),
            restart_limit: self
                .restart_limit
                .as_ref()
                .map_or(DEFAULT_RESTART_LIMIT, |r| *r.get_ref()),
            restart_window: dur(&self.restart_window, DEFAULT_RESTART_WINDOW),
        }
    }

    fn validate_timing(&self, v: &mut Validator) {
        let keepalive = dur(&self.keepalive, DEFAULT_KEEPALIVE);
        let warntime = dur(&self.warntime, DEFAULT_WARNTIME);
        let deadtime = dur(&self.deadtime, DEFAULT_DEADTIME);
        let initdead = dur(&self.initdead, DEFAULT_INITDEAD);
        // Place each problem at the value the user wrote, or, for a default, at the other one.
        let at = |field: &'static str, own: &Option<Spanned<Duration>>| {
            own.as_ref().map(|s| (field, Some(s.span())))
        };
        let place = |v: &mut Validator,
                     first: Option<(&'static str, Option<std::ops::Range<usize>>)>,
                     second: Option<(&'static str, Option<std::ops::Range<usize>>)>,
                     fallback: &'static str,
                     message: String| {
            let (field, span) = first.or(second).unwrap_or((fallback, None));
            v.error_at(field, span, message);
        };
        if keepalive.is_zero() {
            place(
                v,
                at("keepalive", &self.keepalive),
                None,
                "keepalive",
                "must be more than 0".into(),
            );
        }
        if keepalive >= warntime {
            place(
                v,
                at("warntime", &self.warntime),
                at("keepalive", &self.keepalive),
                "warntime",
                format!(
                    "warntime ({}) must be longer than keepalive ({})",
                    Duration::from(warntime),
                    Duration::from(keepalive)
                ),
            );
        }
        if warntime > deadtime {
            place(
                v,
                at("deadtime", &self.deadtime),
                at("warntime", &self.warntime),
                "deadtime",
                format!(
                    "deadtime ({}) must not be shorter than warntime ({})",
                    Duration::from(deadtime),
                    Duration::from(warntime)
                ),
            );
        }
        if deadtime < keepalive * 2 {
            place(
                v,
                at("deadtime", &self.deadtime),
                at("keepalive", &self.keepalive),
                "deadtime",
                format!(
                    "deadtime ({}) must be at least twice keepalive ({}), or one lost heartbeat \
                     declares the peer dead",
                    Duration::from(deadtime),
                    Duration::from(keepalive)
                ),
            );
        }
        if deadtime >= initdead {
            place(
                v,
                at("initdead", &self.initdead),
                at("deadtime", &self.deadtime),
                "initdead",
                format!(
                    "initdead ({}) must be longer than deadtime ({}): at start the links need time \
                     to come up",
                    Duration::from(initdead),
                    Duration::from(deadtime)
                ),
            );
        }
        for (field, value) in [
            ("resource_settle", &self.resource_settle),
            ("resource_timeout", &self.resource_timeout),
            ("resource_kill_after", &self.resource_kill_after),
        ] {
            if let Some(d) = value
                && d.get_ref().as_std().is_zero()
            {
                v.error(field, d, "must be more than 0");
            }
        }
    }

    /// Votes, fence commands, ping targets, monitor and restart settings, group interfaces.
    fn validate_policy(&self, v: &mut Validator) {
        for (field, value) in [
            ("monitor_interval", &self.monitor_interval),
            ("restart_window", &self.restart_window),
        ] {
            if let Some(d) = value
                && d.get_ref().as_std().is_zero()
            {
                v.error(field, d, "must be more than 0");
            }
        }
        let mut total = u64::from(self.votes.as_ref().map_or(1, |x| *x.get_ref()));
        v.field("peer", |v| {
            for (i, p) in self.peer.iter().enumerate() {
                let p = p.get_ref();
                total += u64::from(p.votes.as_ref().map_or(1, |x| *x.get_ref()));
                v.index(i, |v| {
                    if let Some(f) = &p.fence {
                        check_command(v, "fence", f);
                    }
                });
            }
        });
        if total == 0 {
            let at = self.votes.as_ref().map(Spanned::span);
            v.error_at(
                "votes",
                at,
                "the nodes have no votes at all: give at least one node a vote",
            );
        }
        if let Some(ping) = &self.ping {
            let p = ping.get_ref();
            v.field("ping", |v| {
                let targets = p.targets.get_ref();
                if targets.is_empty() {
                    v.error(
                        "targets",
                        &p.targets,
                        "list at least one address, or drop [ping]",
                    );
                }
                if targets.len() > MAX_PING_TARGETS {
                    v.error(
                        "targets",
                        &p.targets,
                        format!("at most {MAX_PING_TARGETS} targets"),
                    );
                }
                let mut seen = BTreeSet::new();
                v.field("targets", |v| {
                    for (i, t) in targets.iter().enumerate() {
                        v.index(i, |v| {
                            if !seen.insert(t.get_ref().get()) {
                                v.error("", t, format!("{} is listed twice", t.get_ref().get()));
                            }
                        });
                    }
                });
                let interval = dur(&p.interval, DEFAULT_PING_INTERVAL);
                if let Some(i) = &p.interval
                    && i.get_ref().as_std() < StdDuration::from_millis(100)
                {
                    v.error("interval", i, "must be at least 100ms");
                }
                if let Some(t) = &p.timeout {
                    if t.get_ref().as_std().is_zero() {
                        v.error("timeout", t, "must be more than 0");
                    } else if t.get_ref().as_std() > interval {
                        v.error(
                            "timeout",
                            t,
                            format!(
                                "must not be longer than the interval ({})",
                                Duration::from(interval)
                            ),
                        );
                    }
                }
            });
        }
    }

    fn validate_links(&self, v: &mut Validator) {
        let Some(links) = &self.link else {
            v.error_at(
                "link",
                None,
                "no [[link]]: add at least one, e.g. [[link]] udp = { bind = \"192.0.2.11:694\", \
                 peer = \"192.0.2.12:694\" }",
            );
            return;
        };
        if links.get_ref().is_empty() {
            v.error("link", links, "no links: add at least one [[link]]");
        }
        if links.get_ref().len() > MAX_LINKS {
            v.error(
                "link",
                links,
                format!("at most {MAX_LINKS} links (a frame names its link in one byte)"),
            );
        }
        v.field("link", |v| {
            let mut quorum_disk = false;
            for (i, link) in links.get_ref().iter().enumerate() {
                v.index(i, |v| {
                    validate_link(v, link);
                    if let Some(q) = link
                        .get_ref()
                        .disk
                        .as_ref()
                        .and_then(|d| d.get_ref().quorum.as_ref())
                        && *q.get_ref()
                    {
                        if quorum_disk {
                            v.field("disk", |v| {
                                v.error("quorum", q, "only one disk link can be the quorum disk")
                            });
                        }
                        quorum_disk = true;
                    }
                });
            }
        });
    }

    fn validate_groups(&self, v: &mut Validator, known: &BTreeSet<&str>) {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        v.field("group", |v| {
            for (i, g) in self.group.iter().enumerate() {
                let g = g.get_ref();
                v.index(i, |v| {
                    check_name(v, "name", &g.name);
                    if !seen.insert(g.name.get_ref().as_str()) {
                        v.error(
                            "name",
                            &g.name,
                            format!("group {:?} is defined twice", g.name.get_ref()),
                        );
                    }
                    let unknown = |name: &str| {
                        let hint = config::did_you_mean(name, known.iter().copied())
                            .map(|h| format!("; did you mean {h:?}?"))
                            .unwrap_or_default();
                        format!(
                            "unknown node {name:?}: the nodes are {}{hint}",
                            known.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    };
                    if let Some(p) = &g.preferred
                        && !known.contains(p.get_ref().as_str())
                    {
                        v.error("preferred", p, unknown(p.get_ref()));
                    }
                    match (&g.nodes, &g.preferred) {
                        (None, None) => v.error(
                            "",
                            &g.name,
                            "set preferred (the node the group belongs on) or nodes",
                        ),
                        (Some(list), preferred) => {
                            if list.get_ref().is_empty() {
                                v.error("nodes", list, "must list at least one node");
                            }
                            let mut listed = BTreeSet::new();
                            v.field("nodes", |v| {
                                for (j, n) in list.get_ref().iter().enumerate() {
                                    v.index(j, |v| {
                                        if !known.contains(n.get_ref().as_str()) {
                                            v.error("", n, unknown(n.get_ref()));
                                        } else if !listed.insert(n.get_ref().as_str()) {
                                            v.error(
                                                "",
                                                n,
                                                format!("node {:?} is listed twice", n.get_ref()),
                                            );
                                        }
                                    });
                                }
                            });
                            if let (Some(p), Some(first)) = (preferred, list.get_ref().first())
                                && p.get_ref() != first.get_ref()
                            {
                                v.error(
                                    "preferred",
                                    p,
                                    format!(
                                        "must be the first of nodes ({:?}): nodes lists the \
                                         allowed nodes in order of preference",
                                        first.get_ref()
                                    ),
                                );
                            }
                        }
                        (None, Some(_)) => {}
                    }
                    if g.resources.get_ref().is_empty() {
                        v.error(
                            "resources",
                            &g.resources,
                            "a group needs at least one resource",
                        );
                    }
                    v.field("resources", |v| {
                        for (j, r) in g.resources.get_ref().iter().enumerate() {
                            if let Err(e) = Resource::parse(r.get_ref()) {
                                v.index(j, |v| v.error("", r, e));
                            }
                        }
                    });
                });
            }
        });
    }
}

fn validate_link(v: &mut Validator, link: &Spanned<LinkSection>) {
    let l = link.get_ref();
    let kinds: Vec<&str> = [
        ("udp", l.udp.is_some()),
        ("mcast", l.mcast.is_some()),
        ("bcast", l.bcast.is_some()),
        ("serial", l.serial.is_some()),
        ("disk", l.disk.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    match kinds.len() {
        0 => v.error(
            "",
            link,
            "a link needs one of udp, mcast, bcast, serial or disk",
        ),
        1 => {}
        _ => v.error(
            "",
            link,
            format!(
                "a link has exactly one kind, this one has {}: write one [[link]] for each",
                kinds.join(" and ")
            ),
        ),
    }
    if let Some(u) = &l.udp {
        let u = u.get_ref();
        let (bind, peer) = (u.bind.get_ref().get(), u.peer.get_ref().get());
        v.field("udp", |v| {
            if bind.is_ipv4() != peer.is_ipv4() {
                v.error(
                    "peer",
                    &u.peer,
                    "must be of the same address family as bind",
                );
            }
            if peer.ip().is_unspecified() || peer.port() == 0 {
                v.error(
                    "peer",
                    &u.peer,
                    "needs the peer's address and a port other than 0",
                );
            }
        });
    }
    if let Some(m) = &l.mcast {
        let m = m.get_ref();
        let group = m.group.get_ref().get();
        v.field("mcast", |v| {
            if !group.ip().is_multicast() || group.port() == 0 {
                v.error(
                    "group",
                    &m.group,
                    "must be a multicast address with a port, e.g. \"239.255.0.1:694\"",
                );
            }
            if *m.ttl.get_ref() == 0 {
                v.error("ttl", &m.ttl, "must be at least 1");
            }
        });
    }
    if let Some(b) = &l.bcast
        && *b.get_ref().port.get_ref() == 0
    {
        v.field("bcast", |v| {
            v.error("port", &b.get_ref().port, "must not be 0")
        });
    }
    if let Some(s) = &l.serial {
        let s = s.get_ref();
        v.field("serial", |v| {
            check_absolute(v, "device", &s.device);
            if !BAUD_RATES.contains(s.baud.get_ref()) {
                v.error(
                    "baud",
                    &s.baud,
                    format!(
                        "{} is not a standard speed; use one of {}",
                        s.baud.get_ref(),
                        BAUD_RATES.map(|b| b.to_string()).join(", ")
                    ),
                );
            }
        });
    }
    if let Some(d) = &l.disk {
        v.field("disk", |v| check_absolute(v, "path", &d.get_ref().path));
    }
}

impl Validate for File {
    fn validate(&self, v: &mut Validator) {
        match (&self.node, self.node_name()) {
            (Some(n), _) => check_name(v, "node", n),
            (None, Some(host)) => {
                if let Some(problem) = name_problem(host) {
                    v.error_at(
                        "node",
                        None,
                        format!("not set, and the host name cannot be used: {problem}; set node"),
                    );
                }
            }
            (None, None) => v.error_at("node", None, "not set, and the host name is unknown"),
        }
        check_name(v, "cluster", &self.cluster);
        for (field, value) in [
            ("key_file", &self.key_file),
            ("socket", &self.socket),
            ("state_dir", &self.state_dir),
        ] {
            if let Some(p) = value {
                check_absolute(v, field, p);
            }
        }
        if let Some(g) = &self.socket_group
            && g.get_ref().is_empty()
        {
            v.error("socket_group", g, "must not be empty");
        }
        if let Some(n) = &self.notify {
            check_command(v, "notify", n);
        }
        self.validate_timing(v);
        self.validate_policy(v);

        // Nodes: this one and the peers, each name once.
        let me = self.node_name().unwrap_or_default();
        let mut known: BTreeSet<&str> = BTreeSet::new();
        known.insert(me);
        if self.peer.is_empty() {
            v.error_at(
                "peer",
                None,
                "no [[peer]]: name at least one other node, e.g. [[peer]] name = \"lb2\"",
            );
        }
        v.field("peer", |v| {
            for (i, p) in self.peer.iter().enumerate() {
                let name = &p.get_ref().name;
                v.index(i, |v| {
                    check_name(v, "name", name);
                    if !known.insert(name.get_ref().as_str()) {
                        let what = if name.get_ref() == me {
                            "is this node's own name (node)"
                        } else {
                            "is listed twice"
                        };
                        v.error(
                            "name",
                            name,
                            format!(
                                "node {:?} {what}: node names must be unique",
                                name.get_ref()
                            ),
                        );
                    }
                });
            }
        });
        self.validate_links(v);
        self.validate_groups(v, &known);
    }
}

#[cfg(test)]
mod tests;
