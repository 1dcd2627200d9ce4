//! The files as written: serde types that mirror the TOML, with spans kept on every value a check
//! may complain about. [`super`] turns them into the typed [`super::Config`].

use std::path::PathBuf;

use common::config::{Duration, SocketAddr, Validate, Validator};
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

/// `ldir.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    #[serde(default)]
    pub global: GlobalSection,
    pub check: Option<Spanned<CheckTable>>,
    pub alert: Option<Spanned<AlertSection>>,
    pub sync: Option<Spanned<SyncSection>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalSection {
    pub quiescent: Option<bool>,
    pub readd_quiescent: Option<bool>,
    pub cleanstop: Option<bool>,
    pub maintenance_dir: Option<PathBuf>,
    pub fallback_command: Option<Spanned<String>>,
    pub reconcile_interval: Option<Spanned<Duration>>,
    pub expire_nodest_conn: Option<bool>,
    pub expire_quiescent_template: Option<bool>,
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub socket_group: Option<Spanned<String>>,
    pub metrics: Option<SocketAddr>,
}

/// `[alert]`: ldirectord's e-mail alerts, sent through a command.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    pub command: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub repeat: Option<Duration>,
    pub on: Option<Spanned<Vec<Spanned<AlertOn>>>>,
}

/// Which transitions send an alert (ldirectord's `emailalertstatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertOn {
    Down,
    Up,
    Fallback,
    All,
}

/// `[sync]`: the kernel's connection sync daemons.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    pub interface: Spanned<String>,
    #[serde(default)]
    pub sync_id: u8,
    pub group: Option<Spanned<common::config::IpAddr>>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub max_len: Option<u16>,
    /// `sync_version`: 1 (the kernel's default) or 0, the old message format, which carries IPv4
    /// connections only (for a peer whose kernel predates 2.6.39).
    pub version: Option<Spanned<i64>>,
    /// `sync_threshold`'s first number: a connection is synced once it has this many incoming
    /// packets (kernel default 3).
    pub threshold: Option<Spanned<i64>>,
    /// `sync_threshold`'s second number: … and again every this many packets (kernel default 50;
    /// 0: only once).
    pub period: Option<Spanned<i64>>,
    /// `sync_refresh_period`: a connection whose state did not change is not synced again before
    /// this long (whole seconds; 0, the default, turns it off).
    pub refresh_period: Option<Spanned<Duration>>,
    /// `sync_retries`: sync messages resent this many times, every `refresh_period`/8 (0..=3).
    pub retries: Option<Spanned<i64>>,
    /// `sync_qlen_max`: sync messages queued, at most.
    pub qlen_max: Option<Spanned<i64>>,
    /// `sync_sock_size`: the sync sockets' buffer size in bytes (0: the system's default).
    pub sock_size: Option<Spanned<i64>>,
    /// `sync_ports`: threads (and UDP ports from `port` on) per daemon, a power of two up to 64.
    pub ports: Option<Spanned<i64>>,
    /// `sync_persist_mode`: for persistent services, sync the persistence templates only, not
    /// each connection.
    pub persist_mode: Option<bool>,
}

/// One virtual service's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualFile {
    #[serde(rename = "virtual")]
    pub virt: Spanned<VirtualSection>,
    pub check: Option<Spanned<CheckTable>>,
    pub alert: Option<Spanned<AlertSection>>,
    #[serde(default)]
    pub real: Vec<Spanned<RealSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualSection {
    pub address: Option<Spanned<SocketAddr>>,
    pub fwmark: Option<Spanned<u32>>,
    pub family: Option<Spanned<FamilyName>>,
    pub protocol: Option<Spanned<ProtocolName>>,
    pub scheduler: Option<Spanned<String>>,
    pub scheduler_flags: Option<Vec<Spanned<SchedFlag>>>,
    pub persistent: Option<Spanned<Duration>>,
    pub netmask: Option<Spanned<NetmaskValue>>,
    pub ops: Option<Spanned<bool>>,
    pub pe: Option<Spanned<String>>,
    pub forwarding: Option<Spanned<ForwardName>>,
    pub tunnel_port: Option<Spanned<u16>>,
    pub tunnel_checksum: Option<ChecksumName>,
    pub quiescent: Option<bool>,
    pub readd_quiescent: Option<bool>,
    pub cleanstop: Option<bool>,
    pub fallback: Option<Spanned<String>>,
    pub fallback_forwarding: Option<Spanned<ForwardName>>,
    pub fallback_command: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealSection {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub forwarding: Option<Spanned<ForwardName>>,
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<Spanned<u32>>,
    pub check: Option<Spanned<CheckTable>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyName {
    Inet,
    Inet6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardName {
    Gate,
    Masq,
    Ipip,
    Gue,
    Gre,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumName {
    None,
    Csum,
    Remcsum,
}

/// ipvsadm's `-b` names (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`, `flag-1..3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedFlag {
    ShFallback,
    ShPort,
    MhFallback,
    MhPort,
    #[serde(rename = "flag-1")]
    Flag1,
    #[serde(rename = "flag-2")]
    Flag2,
    #[serde(rename = "flag-3")]
    Flag3,
}

/// `netmask = "255.255.255.0"` (IPv4) or `netmask = 64` (an IPv6 prefix length).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a dotted IPv4 mask such as \"255.255.255.0\" or an IPv6 prefix length such as 64"
)]
pub enum NetmaskValue {
    Text(String),
    Prefix(i64),
}

/// A `[check]` table as written: its entries in order, each with the span of its value. The keys
/// are sorted out (ldir's own: `type`, `interval`, `rise`, `fall`; the rest belong to the probe
/// kind) and merged with defaults before the probe kind's own schema reads them, so the table is
/// kept raw here.
#[derive(Debug, Clone, Default)]
pub struct CheckTable {
    pub entries: Vec<(String, Spanned<toml::Value>)>,
}

impl CheckTable {
    pub fn get(&self, key: &str) -> Option<&Spanned<toml::Value>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for CheckTable {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckTable, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Spanned<toml::Value> = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(CheckTable { entries })
            }
        }
        d.deserialize_map(V)
    }
}

// Validation happens across files in `super`, where defaults are known; the loader's own pass
// has nothing to check.
impl Validate for GlobalFile {
    fn validate(&self, _: &mut Validator) {}
}
impl Validate for VirtualFile {
    fn validate(&self, _: &mut Validator) {}
}
