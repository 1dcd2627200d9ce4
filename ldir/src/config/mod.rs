//! ldir's configuration: `ldir.toml` (optional, global) and one `*.toml` file per virtual service in
//! one directory, read and validated into a [`Config`] in one step.
//!
//! [`load`] reads every file, checks each one and then everything across files (the same virtual
//! in two files, two files with one name, a real listed twice, a fallback equal to a real), and
//! returns every problem at once, each as `file:line:col: field: message`. A [`Config`] is only
//! returned when there is no problem at all, so a caller never applies half a configuration.
//!
//! What a file holds is documented in `contrib/examples/standalone/README.md`; the mapping from
//! ldirectord's directives is in [`crate::import`]. This module does no I/O besides reading the
//! directory and its files, and never touches the kernel.

pub mod addr;
mod check;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::config::{ConfigError, ConfigErrors, Location, Position};
use common::ipvs::{
    DaemonRole, Destination, Encap, Family, Forward, Netmask, Scheduler, Service, ServiceKey,
    SyncDaemon, TunnelChecksum,
};
use common::probe::Probe;
use toml::Spanned;

use schema::{AlertOn, ForwardName, GlobalFile, NetmaskValue, SchedFlag, VirtualFile};

pub use check::CheckMode;

/// The directory read when `--config-dir` is not given.
pub const DEFAULT_DIR: &str = "/etc/ldir";
/// The global file's name inside the directory.
pub const GLOBAL_FILE: &str = "ldir.toml";
/// A weight's range (ldirectord and ipvsadm take 0..=65535).
pub const MAX_WEIGHT: i64 = 65_535;
/// The most reals one `a->b` range may name (a /16 of IPv4).
pub const MAX_RANGE: u128 = 65_536;

/// Everything ldir runs from, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Daemon-wide settings.
    pub global: Global,
    /// The sync daemons' settings, if `[sync]` is given.
    pub sync: Option<SyncConfig>,
    /// The virtual services, in file name order.
    pub virtuals: Vec<Virtual>,
}

/// `[global]` with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// How often the kernel table is compared with the desired one.
    pub reconcile_interval: Duration,
    /// `net.ipv4.vs.expire_nodest_conn`, when set.
    pub expire_nodest_conn: Option<bool>,
    /// `net.ipv4.vs.expire_quiescent_template`, when set.
    pub expire_quiescent_template: Option<bool>,
    /// Runtime state (the state file; the default socket's directory).
    pub state_dir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// The group allowed state-changing control requests, besides root.
    pub socket_group: Option<String>,
    /// Where Prometheus metrics are served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// A file named `IP` or `IP:PORT` here holds that real at weight 0.
    pub maintenance_dir: Option<PathBuf>,
}

/// `[sync]`: both roles use these settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// A daemon for `role` with these settings.
    pub template: SyncDaemon,
    /// The `net.ipv4.vs.sync_*` sysctls to write before a daemon starts.
    pub sysctls: SyncSysctls,
}

/// `sync_threshold`'s kernel defaults (`ip_vs.h`: `DEFAULT_SYNC_THRESHOLD`, `DEFAULT_SYNC_PERIOD`):
/// the one of the pair `[sync]` leaves out keeps this value.
pub const DEFAULT_SYNC_THRESHOLD: (u32, u32) = (3, 50);
/// The most sync threads per daemon (`ip_vs.h`: `IPVS_SYNC_PORTS_MAX`, 1 << 6).
pub const MAX_SYNC_PORTS: i64 = 64;
/// The longest `sync_refresh_period` every kernel can hold: it is kept in jiffies in an `int`,
/// and `HZ` is at most 1000 (`proc_dointvec_jiffies`).
pub const MAX_SYNC_REFRESH_SECS: u64 = i32::MAX as u64 / 1000;
/// The sysctl the kernel reads only when a sync daemon starts: the number of sync threads.
pub const SYSCTL_SYNC_PORTS: &str = "sync_ports";
/// The sysctl the kernel reads only when a sync daemon starts: its sockets' buffer size.
pub const SYSCTL_SYNC_SOCK_SIZE: &str = "sync_sock_size";
/// The sysctls a running sync daemon does not follow: a daemon started before a change keeps the
/// old value until it is started again.
pub const START_TIME_SYSCTLS: [&str; 2] = [SYSCTL_SYNC_PORTS, SYSCTL_SYNC_SOCK_SIZE];

/// The `net.ipv4.vs.sync_*` sysctls `[sync]` sets (`Documentation/networking/ipvs-sysctl.rst`);
/// `None` leaves the kernel's value alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSysctls {
    /// `sync_version`: 1 (the kernel's default) or 0, the old message format, which carries IPv4
    /// connections only.
    pub version: Option<u8>,
    /// `sync_threshold`: (threshold, period), the one not configured at its kernel default.
    pub threshold: Option<(u32, u32)>,
    /// `sync_refresh_period`, in seconds.
    pub refresh_period: Option<u32>,
    /// `sync_retries` (0..=3).
    pub retries: Option<u8>,
    /// `sync_qlen_max` (messages).
    pub qlen_max: Option<u64>,
    /// `sync_sock_size` (bytes; 0: the system's default).
    pub sock_size: Option<u32>,
    /// `sync_ports` (1, 2, 4 … 64).
    pub ports: Option<u8>,
    /// `sync_persist_mode`.
    pub persist_mode: Option<bool>,
}

impl SyncSysctls {
    /// The (file name under `/proc/sys/net/ipv4/vs`, value) pairs to write, only those set, in
    /// a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.version {
            out.push(("sync_version", v.to_string()));
        }
        if let Some((t, p)) = self.threshold {
            out.push(("sync_threshold", format!("{t} {p}")));
        }
        if let Some(v) = self.refresh_period {
            out.push(("sync_refresh_period", v.to_string()));
        }
        if let Some(v) = self.retries {
            out.push(("sync_retries", v.to_string()));
        }
        if let Some(v) = self.qlen_max {
            out.push(("sync_qlen_max", v.to_string()));
        }
        if let Some(v) = self.sock_size {
            out.push((SYSCTL_SYNC_SOCK_SIZE, v.to_string()));
        }
        if let Some(v) = self.ports {
            out.push((SYSCTL_SYNC_PORTS, v.to_string()));
        }
        if let Some(v) = self.persist_mode {
            out.push(("sync_persist_mode", u8::from(v).to_string()));
        }
        out
    }
}

impl SyncConfig {
    /// The daemon to start for `role`.
    pub fn daemon(&self, role: DaemonRole) -> SyncDaemon {
        SyncDaemon {
            role,
            ..self.template.clone()
        }
    }
}

/// When an alert is sent for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlertOnSet {
    /// A real went down.
    pub down: bool,
    /// A real came up.
    pub up: bool,
    /// The fallback server was added or removed.
    pub fallback: bool,
}

/// `[alert]`: a mail piped to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// argv of the mailer; the mail (headers and body) goes to its standard input.
    pub command: Vec<String>,
    /// The recipient.
    pub to: String,
    /// The sender, if set.
    pub from: Option<String>,
    /// Resend while the state lasts, every this long (zero: never).
    pub repeat: Duration,
    /// Which transitions are mailed.
    pub on: AlertOnSet,
}

/// One virtual service with its reals and how they are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Virtual {
    /// `name`, or the file's stem.
    pub name: String,
    /// The file it comes from.
    pub file: PathBuf,
    /// The IPVS service.
    pub service: Service,
    /// `comment`.
    pub comment: Option<String>,
    /// on, off, or a probe.
    pub check: CheckMode,
    /// Time between checks of one real.
    pub interval: Duration,
    /// Consecutive successes to come up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Down reals stay at weight 0 (true) or are removed (false).
    pub quiescent: bool,
    /// A real that someone removed from the kernel comes back at weight 0 while it is down.
    pub readd_quiescent: bool,
    /// On stop, delete this service.
    pub cleanstop: bool,
    /// The sorry server, while no real is up.
    pub fallback: Option<Destination>,
    /// argv run with `start|stop VIP:PORT PROTO` when the fallback comes and goes.
    pub fallback_command: Option<Vec<String>>,
    /// Mail alerts for this virtual.
    pub alert: Option<Alert>,
    /// The reals, ranges expanded, in file order.
    pub reals: Vec<Real>,
}

/// One real server of a virtual.
#[derive(Debug, Clone, PartialEq)]
pub struct Real {
    /// The destination at its configured weight.
    pub dest: Destination,
    /// Its probe; `None` for `type = "on"` and `"off"`.
    pub probe: Option<Arc<Probe>>,
}

/// Reads and validates the directory `dir`.
pub fn load(dir: &Path) -> Result<Config, ConfigErrors> {
    load_cached(dir, &mut Cache::default())
}

/// A virtual service file as read and parsed.
#[derive(Debug)]
pub struct Parsed {
    path: PathBuf,
    src: Src,
    file: VirtualFile,
}

/// What [`load_cached`] keeps between loads: each virtual file's text, parse and result, valid
/// while `ldir.toml` stays the same, and the directory's listing. A reload of a 10k-real directory
/// where one file changed reads every file (a file's time stamps are too coarse to tell two quick
/// edits apart) but parses and checks that file only; [`load_changed`], told by inotify which
/// names changed, reads only those. The checks across files run on all of them, from memory.
#[derive(Debug, Default)]
pub struct Cache {
    global: Option<Option<String>>,
    /// By file name (hashing a path parses it into components: a tenth of a reload).
    files: HashMap<std::ffi::OsString, (Arc<Parsed>, Virtual)>,
    /// The virtual files (`*.toml` but ldir.toml, valid or not) by name, as last listed, and
    /// ldir.toml's path if it was there.
    listing: Option<Listing>,
}

#[derive(Debug, Clone)]
struct Listing {
    files: BTreeMap<std::ffi::OsString, PathBuf>,
    global: Option<PathBuf>,
}

/// One virtual file for [`assemble`]: read now, or unchanged since the cache holds it.
enum Input {
    Text(PathBuf, Result<String, ConfigError>),
    Cached(Arc<Parsed>, Box<Virtual>),
}

/// A name the loader reads: `*.toml`, not hidden (editor leftovers like `.web.toml.swp` and
/// `web.toml~` are not).
pub(crate) fn is_config_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".toml")
}

/// Like [`load`], reading again only the files that changed since `cache` saw them.
pub fn load_cached(dir: &Path, cache: &mut Cache) -> Result<Config, ConfigErrors> {
    // Until this listing succeeds, the cache has none to trust.
    cache.listing = None;
    let list_error = |e: std::io::Error| ConfigError::Read {
        path: dir.to_owned(),
        reason: format!("cannot list directory: {}", words(&e)),
    };
    let mut listing = Listing {
        files: BTreeMap::new(),
        global: None,
    };
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let path = entry.path();
        let name = entry.file_name();
        let text_name = name.to_string_lossy();
        if !is_config_name(&text_name) {
            tracing::debug!(file = %path.display(), "ignored: not a *.toml file (editor leftovers and hidden files are skipped)");
            continue;
        }
        // The entry's own type (no stat for each of a thousand files); links are followed.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => std::fs::metadata(&path).is_ok_and(|m| m.is_dir()),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        if is_dir {
            tracing::debug!(file = %path.display(), "ignored: a directory");
            continue;
        }
        if text_name == GLOBAL_FILE {
            listing.global = Some(path);
        } else {
            listing.files.insert(name, path);
        }
    }
    let global = listing.global.as_ref().map(|p| read_text(p));
    load_listed(dir, cache, listing, global, |_| true)
}

/// Like [`load_cached`] when the caller knows (from inotify) that no name but `changed` was
/// created, written, renamed or removed in `dir` since the last load with this cache: reads only
/// those files. Without a listing from an earlier load, or when ldir.toml changed, it reads all.
pub fn load_changed(
    dir: &Path,
    cache: &mut Cache,
    changed: &std::collections::BTreeSet<std::ffi::OsString>,
) -> Result<Config, ConfigErrors> {
    let (Some(mut listing), Some(global_text)) = (cache.listing.take(), cache.global.clone())
    else {
        return load_cached(dir, cache);
    };
    if changed.iter().any(|n| n == GLOBAL_FILE) {
        return load_cached(dir, cache);
    }
    for name in changed {
        if !is_config_name(&name.to_string_lossy()) {
            continue;
        }
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                listing.files.remove(name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                listing.files.remove(name);
            }
            // Present, or there but unreadable: reading it says which.
            _ => {
                listing.files.insert(name.clone(), path);
            }
        }
    }
    let global = listing.global.as_ref().and(global_text).map(Ok);
    load_listed(dir, cache, listing, global, |name| changed.contains(name))
}

/// The shared end of [`load_cached`] and [`load_changed`]: `read(name)` says whether a file the
/// cache holds must be read again.
fn load_listed(
    dir: &Path,
    cache: &mut Cache,
    listing: Listing,
    global: Option<Result<String, ConfigError>>,
    read: impl Fn(&std::ffi::OsStr) -> bool,
) -> Result<Config, ConfigErrors> {
    if listing.files.is_empty() {
        cache.listing = None;
        return Err(ConfigError::Read {
            path: dir.to_owned(),
            reason: "no virtual service files (*.toml besides ldir.toml) in this directory"
                .to_string(),
        }
        .into());
    }
    // Every file's result depends on ldir.toml's defaults: a changed ldir.toml invalidates all.
    let global_now = match &global {
        None => Some(None),
        Some(Ok(t)) => Some(Some(t.clone())),
        Some(Err(_)) => None,
    };
    if global_now.is_none() || cache.global != global_now {
        cache.files.clear();
    }
    cache.global = global_now;
    // In name order (a BTreeMap of names: no path comparisons, which cost a tenth of a load).
    let inputs: Vec<Input> = listing
        .files
        .iter()
        .map(|(name, p)| {
            let cached = cache.files.get(name);
            if let Some((parsed, v)) = cached
                && !read(name)
            {
                return Input::Cached(parsed.clone(), Box::new(v.clone()));
            }
            let text = read_text(p);
            match (cached, &text) {
                (Some((parsed, v)), Ok(t)) if *parsed.src.text == **t => {
                    Input::Cached(parsed.clone(), Box::new(v.clone()))
                }
                _ => Input::Text(p.clone(), text),
            }
        })
        .collect();
    let mut fresh = Vec::new();
    let global_path = listing.global.clone().unwrap_or_default();
    let result = assemble(dir, global.map(|t| (global_path, t)), inputs, &mut fresh);
    for (parsed, v) in fresh {
        if let Some(name) = parsed.path.file_name() {
            cache.files.insert(name.to_owned(), (parsed, v));
        }
    }
    if let Ok(c) = &result {
        // Files gone or no longer valid leave the cache.
        if cache.files.len() != c.virtuals.len() {
            let live: std::collections::HashSet<&std::ffi::OsStr> = c
                .virtuals
                .iter()
                .filter_map(|v| v.file.file_name())
                .collect();
            cache.files.retain(|n, _| live.contains(n.as_os_str()));
        }
    }
    cache.listing = Some(listing);
    result
}

/// Validates texts already read (tests, and [`load`]).
pub fn build(
    dir: &Path,
    global: Option<(PathBuf, Result<String, ConfigError>)>,
    virtuals: Vec<(PathBuf, Result<String, ConfigError>)>,
) -> Result<Config, ConfigErrors> {
    let inputs = virtuals
        .into_iter()
        .map(|(p, t)| Input::Text(p, t))
        .collect();
    assemble(dir, global, inputs, &mut Vec::new())
}

/// Checks every file and everything across files; `fresh` gets each file parsed now that is valid
/// on its own, for the cache.
fn assemble(
    dir: &Path,
    global: Option<(PathBuf, Result<String, ConfigError>)>,
    inputs: Vec<Input>,
    fresh: &mut Vec<(Arc<Parsed>, Virtual)>,
) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();

    let mut global_file = GlobalFile::default();
    let mut global_src: Option<Src> = None;
    if let Some((path, text)) = global {
        match text {
            Err(e) => errors.push(e),
            Ok(text) => {
                let name = path.display().to_string();
                match common::config::parse_str::<GlobalFile>(&name, &text) {
                    Ok(g) => {
                        global_file = g;
                        global_src = Some(Src::new(name, text));
                    }
                    Err(e) => errors.extend(e),
                }
            }
        }
    }
    let mut problems = Problems::default();
    let defaults = Defaults::from_file(&global_file, global_src.as_ref(), &mut problems);

    let mut parsed: Vec<Arc<Parsed>> = Vec::new();
    let mut out = Vec::new();
    for input in inputs {
        let (path, text) = match input {
            Input::Cached(p, v) => {
                parsed.push(p);
                out.push(*v);
                continue;
            }
            Input::Text(path, text) => (path, text),
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let name = path.display().to_string();
        if is_blank(&text) {
            errors.push(ConfigError::Check {
                location: Location {
                    file: name,
                    position: None,
                },
                field: None,
                message: "the file is empty: a virtual service file needs a [virtual] table and \
                          [[real]] entries"
                    .to_string(),
            });
            continue;
        }
        let file = match common::config::parse_str::<VirtualFile>(&name, &text) {
            Ok(v) => v,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let p = Arc::new(Parsed {
            path,
            src: Src::new(name, text),
            file,
        });
        if let Some(v) = build_virtual(&p.path, &p.src, &p.file, &defaults, &mut problems) {
            fresh.push((p.clone(), v.clone()));
            out.push(v);
        }
        parsed.push(p);
    }
    across_files(&parsed, &out, &mut problems);

    errors.extend(problems.into_errors());
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        dir: dir.to_owned(),
        global: defaults.global,
        sync: defaults.sync,
        virtuals: out,
    })
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: format!("cannot read: {}", words(&e)),
    })?;
    String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        location: Location {
            file: path.display().to_string(),
            position: Some(Position::of_offset(
                std::str::from_utf8(&e.as_bytes()[..e.utf8_error().valid_up_to()])
                    .unwrap_or_default(),
                e.utf8_error().valid_up_to(),
            )),
        },
        message: "not valid UTF-8; TOML files must be UTF-8".to_string(),
    })
}

/// An I/O error in lower-case words without the errno number.
fn words(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

/// Only whitespace and comments.
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
}

/// A file's name and text, to turn byte spans into `file:line:col`.
#[derive(Debug, Clone)]
pub(crate) struct Src {
    name: String,
    text: Arc<str>,
}

impl Src {
    fn new(name: String, text: String) -> Src {
        Src {
            name,
            text: text.into(),
        }
    }

    fn line_of(&self, span: &std::ops::Range<usize>) -> usize {
        Position::of_offset(&self.text, span.start).line
    }
}

/// Problems found across files, each placed in its own file.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

/// File name, (text, byte offset), field, message.
type Problem = (String, Option<(Arc<str>, usize)>, String, String);

impl Problems {
    pub(crate) fn at(
        &mut self,
        src: &Src,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        message: impl std::fmt::Display,
    ) {
        self.0.push((
            src.name.clone(),
            span.map(|s| (src.text.clone(), s.start)),
            field.to_string(),
            message.to_string(),
        ));
    }

    fn into_errors(mut self) -> ConfigErrors {
        // Sorted by file and place; a virtual-wide problem met once per [[real]] is said once.
        self.0.sort_by(|a, b| {
            (&a.0, a.1.as_ref().map(|x| x.1), &a.2, &a.3).cmp(&(
                &b.0,
                b.1.as_ref().map(|x| x.1),
                &b.2,
                &b.3,
            ))
        });
        self.0.dedup_by(|a, b| {
            a.0 == b.0
                && a.1.as_ref().map(|x| x.1) == b.1.as_ref().map(|x| x.1)
                && a.2 == b.2
                && a.3 == b.3
        });
        ConfigErrors::new(
            self.0
                .into_iter()
                .map(|(file, at, field, message)| ConfigError::Check {
                    location: Location {
                        file,
                        position: at.map(|(text, off)| Position::of_offset(&text, off)),
                    },
                    field: Some(field).filter(|f| !f.is_empty()),
                    message,
                })
                .collect(),
        )
    }
}

/// What `ldir.toml` sets for every virtual.
struct Defaults<'a> {
    global: Global,
    sync: Option<SyncConfig>,
    quiescent: bool,
    readd_quiescent: bool,
    cleanstop: bool,
    fallback_command: Option<Vec<String>>,
    check: Option<(&'a schema::CheckTable, &'a Src)>,
    alert: Option<(&'a schema::AlertSection, &'a Src)>,
}

impl<'a> Defaults<'a> {
    fn from_file(f: &'a GlobalFile, src: Option<&'a Src>, p: &mut Problems) -> Defaults<'a> {
        let g = &f.global;
        let state_dir = g
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/ldir"));
        let reconcile_interval = match &g.reconcile_interval {
            Some(d) if d.get_ref().as_std().is_zero() => {
                if let Some(src) = src {
                    p.at(
                        src,
                        Some(d.span()),
                        "global.reconcile_interval",
                        "must be more than 0s",
                    );
                }
                Duration::from_secs(10)
            }
            Some(d) => d.get_ref().as_std(),
            None => Duration::from_secs(10),
        };
        let fallback_command = g
            .fallback_command
            .as_ref()
            .and_then(|c| argv(c, "global.fallback_command", src?, p));
        let sync = f.sync.as_ref().and_then(|s| sync_config(s, src?, p));
        if let (Some(group), Some(src)) = (&g.socket_group, src)
            && (group.get_ref().is_empty() || group.get_ref().contains(char::is_whitespace))
        {
            p.at(
                src,
                Some(group.span()),
                "global.socket_group",
                "must be a group name",
            );
        }
        let check = match (&f.check, src) {
            (Some(c), Some(src)) => {
                for (key, value) in &c.get_ref().entries {
                    if !check::DEFAULTABLE.contains(&key.as_str()) {
                        let hint =
                            common::config::did_you_mean(key, check::DEFAULTABLE.iter().copied())
                                .map(|k| format!("did you mean `{k}`? "))
                                .unwrap_or_default();
                        p.at(
                            src,
                            Some(value.span()),
                            &format!("check.{key}"),
                            format!(
                                "not a default every virtual can share: {hint}ldir.toml's [check] takes {}; \
                                 put the kind's fields in each virtual's [check]",
                                check::DEFAULTABLE.join(", ")
                            ),
                        );
                    }
                }
                Some((c.get_ref(), src))
            }
            _ => None,
        };
        Defaults {
            global: Global {
                reconcile_interval,
                expire_nodest_conn: g.expire_nodest_conn,
                expire_quiescent_template: g.expire_quiescent_template,
                socket: g
                    .socket
                    .clone()
                    .unwrap_or_else(|| state_dir.join("ldir.sock")),
                state_dir,
                socket_group: g.socket_group.as_ref().map(|s| s.get_ref().clone()),
                metrics: g.metrics.map(Into::into),
                maintenance_dir: g.maintenance_dir.clone(),
            },
            sync,
            quiescent: g.quiescent.unwrap_or(true),
            readd_quiescent: g.readd_quiescent.unwrap_or(false),
            cleanstop: g.cleanstop.unwrap_or(true),
            fallback_command,
            check,
            alert: f.alert.as_ref().and_then(|a| Some((a.get_ref(), src?))),
        }
    }
}

/// A command line split like a POSIX shell would (no shell runs it).
fn argv(c: &Spanned<String>, field: &str, src: &Src, p: &mut Problems) -> Option<Vec<String>> {
    match shlex::split(c.get_ref()) {
        Some(v) if !v.is_empty() => Some(v),
        Some(_) => {
            p.at(src, Some(c.span()), field, "must name a command");
            None
        }
        None => {
            p.at(src, Some(c.span()), field, "unbalanced quotes");
            None
        }
    }
}

fn sync_config(
    s: &Spanned<schema::SyncSection>,
    src: &Src,
    p: &mut Problems,
) -> Option<SyncConfig> {
    let s = s.get_ref();
    let mut ok = true;
    let iface = s.interface.get_ref();
    if let Err(e) = iface.parse::<common::config::IfName>() {
        p.at(src, Some(s.interface.span()), "sync.interface", e);
        ok = false;
    }
    if let Some(g) = &s.group {
        let ip: IpAddr = (*g.get_ref()).into();
        if !ip.is_multicast() {
            p.at(
                src,
                Some(g.span()),
                "sync.group",
                format!("{ip} is not a multicast address"),
            );
            ok = false;
        }
    }
    let sysctls = sync_sysctls(s, src, p);
    if !ok {
        return None;
    }
    let mut template = SyncDaemon::new(DaemonRole::Master, iface, u32::from(s.sync_id));
    template.group = s.group.as_ref().map(|g| (*g.get_ref()).into());
    template.port = s.port;
    template.ttl = s.ttl;
    template.max_len = s.max_len;
    Some(SyncConfig {
        template,
        sysctls: sysctls?,
    })
}

/// The sysctls of `[sync]`, each checked against what the kernel accepts (`ip_vs_ctl.c`'s
/// handlers), so that a value the kernel would refuse is a configuration error and not a failed
/// write at failover time.
fn sync_sysctls(s: &schema::SyncSection, src: &Src, p: &mut Problems) -> Option<SyncSysctls> {
    let mut ok = true;
    // An integer field within `range`; `what` says what the kernel takes.
    let mut int = |v: &Option<Spanned<i64>>,
                   field: &str,
                   range: std::ops::RangeInclusive<i64>,
                   what: &str,
                   p: &mut Problems|
     -> Option<i64> {
        let v = v.as_ref()?;
        if range.contains(v.get_ref()) {
            Some(*v.get_ref())
        } else {
            p.at(
                src,
                Some(v.span()),
                field,
                format!("must be {what}, got {}", v.get_ref()),
            );
            ok = false;
            None
        }
    };
    let int_max = i64::from(i32::MAX);
    let version = int(&s.version, "sync.version", 0..=1, "0 or 1", p);
    let threshold = int(
        &s.threshold,
        "sync.threshold",
        0..=int_max,
        &format!("0..={int_max}"),
        p,
    );
    let period = int(
        &s.period,
        "sync.period",
        0..=int_max,
        &format!("0..={int_max}"),
        p,
    );
    let retries = int(&s.retries, "sync.retries", 0..=3, "0..=3", p);
    let qlen_max = int(
        &s.qlen_max,
        "sync.qlen_max",
        1..=i64::from(u32::MAX),
        &format!("1..={} (messages)", u32::MAX),
        p,
    );
    let sock_size = int(
        &s.sock_size,
        "sync.sock_size",
        0..=int_max,
        &format!("0..={int_max} (bytes; 0: the system's default)"),
        p,
    );
    let ports = match &s.ports {
        Some(v) if !(1..=MAX_SYNC_PORTS).contains(v.get_ref()) || v.get_ref().count_ones() != 1 => {
            p.at(
                src,
                Some(v.span()),
                "sync.ports",
                format!(
                    "must be a power of two from 1 to {MAX_SYNC_PORTS} (1, 2, 4, 8, 16, 32 or 64), got {}",
                    v.get_ref()
                ),
            );
            ok = false;
            None
        }
        Some(v) => Some(*v.get_ref()),
        None => None,
    };
    // The kernel refuses a threshold at or above a non-zero period (`proc_do_sync_threshold`).
    let pair = match (&s.threshold, &s.period) {
        (None, None) => None,
        _ => {
            let t = threshold.map_or(DEFAULT_SYNC_THRESHOLD.0, |t| t as u32);
            let per = period.map_or(DEFAULT_SYNC_THRESHOLD.1, |x| x as u32);
            let valid = (s.threshold.is_none() || threshold.is_some())
                && (s.period.is_none() || period.is_some());
            if valid && per != 0 && t >= per {
                let complaint = match (&s.threshold, &s.period) {
                    (Some(_), Some(pv)) => Some((
                        pv.span(),
                        "sync.period",
                        format!("must be more than threshold ({t}), or 0 to sync once, got {per}"),
                    )),
                    (Some(tv), None) => Some((
                        tv.span(),
                        "sync.threshold",
                        format!(
                            "must be less than period, which is the kernel's default {per} when not set, got {t}"
                        ),
                    )),
                    (None, Some(pv)) => Some((
                        pv.span(),
                        "sync.period",
                        format!(
                            "must be more than threshold, which is the kernel's default {t} when not set, or 0 to sync once, got {per}"
                        ),
                    )),
                    (None, None) => None,
                };
                if let Some((span, field, msg)) = complaint {
                    p.at(src, Some(span), field, msg);
                    ok = false;
                }
            }
            Some((t, per))
        }
    };
    let refresh_period = match &s.refresh_period {
        None => None,
        Some(d) => {
            let std = d.get_ref().as_std();
            if std.subsec_nanos() != 0 {
                p.at(
                    src,
                    Some(d.span()),
                    "sync.refresh_period",
                    "must be whole seconds (the kernel counts it in seconds)",
                );
                ok = false;
                None
            } else if std.as_secs() > MAX_SYNC_REFRESH_SECS {
                p.at(
                    src,
                    Some(d.span()),
                    "sync.refresh_period",
                    format!(
                        "must be at most {MAX_SYNC_REFRESH_SECS}s (the kernel keeps it in jiffies), got {}s",
                        std.as_secs()
                    ),
                );
                ok = false;
                None
            } else {
                Some(std.as_secs() as u32)
            }
        }
    };
    if !ok {
        return None;
    }
    Some(SyncSysctls {
        version: version.map(|v| v as u8),
        threshold: pair,
        refresh_period,
        retries: retries.map(|v| v as u8),
        qlen_max: qlen_max.map(|v| v as u64),
        sock_size: sock_size.map(|v| v as u32),
        ports: ports.map(|v| v as u8),
        persist_mode: s.persist_mode,
    })
}

fn alert(
    own: Option<(&schema::AlertSection, &Src)>,
    defaults: Option<(&schema::AlertSection, &Src)>,
    p: &mut Problems,
) -> Option<Alert> {
    if own.is_none() && defaults.is_none() {
        return None;
    }
    // A field from the virtual's [alert] wins; each is reported in the file that holds it.
    fn pick<'a, T>(
        own: Option<(&'a schema::AlertSection, &'a Src)>,
        def: Option<(&'a schema::AlertSection, &'a Src)>,
        f: impl Fn(&'a schema::AlertSection) -> Option<&'a T>,
    ) -> Option<(&'a T, &'a Src)> {
        own.and_then(|(a, s)| f(a).map(|v| (v, s)))
            .or_else(|| def.and_then(|(a, s)| f(a).map(|v| (v, s))))
    }
    let command = match pick(own, defaults, |a| a.command.as_ref()) {
        Some((c, src)) => argv(c, "alert.command", src, p)?,
        None => vec!["/usr/sbin/sendmail".into(), "-t".into(), "-i".into()],
    };
    let Some((to, _)) = pick(own, defaults, |a| a.to.as_ref()) else {
        let (_, src) = own.or(defaults)?;
        p.at(
            src,
            None,
            "alert.to",
            "required field is missing: who receives the alerts",
        );
        return None;
    };
    let mut ok = true;
    for (field, v) in [
        ("alert.to", Some(to)),
        (
            "alert.from",
            pick(own, defaults, |a| a.from.as_ref()).map(|x| x.0),
        ),
    ] {
        if let Some(v) = v
            && (v.get_ref().is_empty() || v.get_ref().chars().any(char::is_control))
        {
            let src = own.or(defaults).map(|x| x.1)?;
            p.at(src, Some(v.span()), field, "must be one line, not empty");
            ok = false;
        }
    }
    let on = match pick(own, defaults, |a| a.on.as_ref()) {
        None => AlertOnSet {
            down: true,
            up: true,
            fallback: true,
        },
        Some((list, _)) => {
            let mut set = AlertOnSet::default();
            for item in list.get_ref() {
                match item.get_ref() {
                    AlertOn::Down => set.down = true,
                    AlertOn::Up => set.up = true,
                    AlertOn::Fallback => set.fallback = true,
                    AlertOn::All => {
                        set = AlertOnSet {
                            down: true,
                            up: true,
                            fallback: true,
                        }
                    }
                }
            }
            set
        }
    };
    let repeat = own
        .and_then(|(a, _)| a.repeat)
        .or_else(|| defaults.and_then(|(a, _)| a.repeat))
        .map(|d| d.as_std())
        .unwrap_or_default();
    ok.then(|| Alert {
        command,
        to: to.get_ref().clone(),
        from: pick(own, defaults, |a| a.from.as_ref()).map(|(f, _)| f.get_ref().clone()),
        repeat,
        on,
    })
}

fn forward(
    name: ForwardName,
    tunnel_port: Option<&Spanned<u16>>,
    checksum: Option<schema::ChecksumName>,
) -> Result<Forward, &'static str> {
    let checksum = match checksum {
        None | Some(schema::ChecksumName::None) => TunnelChecksum::None,
        Some(schema::ChecksumName::Csum) => TunnelChecksum::Checksum,
        Some(schema::ChecksumName::Remcsum) => TunnelChecksum::Remote,
    };
    Ok(match name {
        ForwardName::Gate => Forward::Route,
        ForwardName::Masq => Forward::Masq,
        ForwardName::Ipip => Forward::Tunnel(Encap::Ipip),
        ForwardName::Gre => Forward::Tunnel(Encap::Gre { checksum }),
        ForwardName::Gue => match tunnel_port.map(|p| *p.get_ref()) {
            Some(port) if port != 0 => Forward::Tunnel(Encap::Gue { port, checksum }),
            _ => {
                return Err(
                    "gue forwarding needs [virtual] tunnel_port (the real's GUE port, 1..=65535)",
                );
            }
        },
    })
}

fn family_words(f: Family) -> &'static str {
    match f {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
    }
}

fn build_virtual(
    path: &Path,
    src: &Src,
    file: &VirtualFile,
    d: &Defaults,
    p: &mut Problems,
) -> Option<Virtual> {
    let v = file.virt.get_ref();
    let before = p.0.len();
    let name = match &v.name {
        Some(n) => {
            let s = n.get_ref();
            if s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                p.at(
                    src,
                    Some(n.span()),
                    "virtual.name",
                    "must be one word without spaces",
                );
            }
            s.clone()
        }
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };

    // The key.
    let key = match (&v.address, &v.fwmark) {
        (Some(_), Some(m)) => {
            p.at(
                src,
                Some(m.span()),
                "virtual.fwmark",
                "give either address or fwmark, not both",
            );
            None
        }
        (None, None) => {
            p.at(
                src,
                Some(file.virt.span()),
                "virtual",
                "needs address = \"IP:PORT\" or fwmark = N",
            );
            None
        }
        (Some(a), None) => {
            if let Some(f) = &v.family {
                p.at(
                    src,
                    Some(f.span()),
                    "virtual.family",
                    "only for fwmark services: an address has its own family",
                );
            }
            let addr: SocketAddr = (*a.get_ref()).into();
            if addr.ip().is_unspecified() || addr.ip().is_multicast() {
                p.at(
                    src,
                    Some(a.span()),
                    "virtual.address",
                    "must be a unicast address",
                );
            }
            Some(match v.protocol.as_ref().map(|p| *p.get_ref()) {
                None | Some(schema::ProtocolName::Tcp) => ServiceKey::tcp(addr),
                Some(schema::ProtocolName::Udp) => ServiceKey::udp(addr),
                Some(schema::ProtocolName::Sctp) => ServiceKey::sctp(addr),
            })
        }
        (None, Some(m)) => {
            if let Some(pr) = &v.protocol {
                p.at(
                    src,
                    Some(pr.span()),
                    "virtual.protocol",
                    "a fwmark service matches packets by mark, not protocol: leave protocol out",
                );
            }
            if *m.get_ref() == 0 {
                p.at(
                    src,
                    Some(m.span()),
                    "virtual.fwmark",
                    "must be 1..=4294967295",
                );
            }
            let family = match v.family.as_ref().map(|f| *f.get_ref()) {
                Some(schema::FamilyName::Inet6) => Family::Inet6,
                _ => Family::Inet,
            };
            Some(ServiceKey::fwmark(family, *m.get_ref()))
        }
    };
    let family = key.map(|k| k.family()).unwrap_or(Family::Inet);
    let vport = match key {
        Some(ServiceKey::Addr { addr, .. }) => addr.port(),
        _ => 0,
    };

    // The service.
    let scheduler = match &v.scheduler {
        Some(s) => {
            let n = s.get_ref();
            if n.is_empty()
                || n.len() > 15
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                p.at(src, Some(s.span()), "virtual.scheduler", format!("{n:?} is not a scheduler name (rr, wrr, lc, wlc, sh, mh, ...: lower case, at most 15 characters)"));
            }
            Scheduler::from_name(n)
        }
        None => Scheduler::Wrr,
    };
    let mut service = key.map(|k| Service::new(k, scheduler));
    if let Some(svc) = &mut service {
        for f in v.scheduler_flags.iter().flatten() {
            match f.get_ref() {
                SchedFlag::ShFallback | SchedFlag::MhFallback | SchedFlag::Flag1 => {
                    svc.flags.sched_fallback = true
                }
                SchedFlag::ShPort | SchedFlag::MhPort | SchedFlag::Flag2 => {
                    svc.flags.sched_port = true
                }
                SchedFlag::Flag3 => svc.flags.sched3 = true,
            }
        }
        if let Some(per) = &v.persistent {
            let d = per.get_ref().as_std();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            if secs == 0 || secs > u64::from(u32::MAX) {
                p.at(
                    src,
                    Some(per.span()),
                    "virtual.persistent",
                    "must be 1s or more",
                );
            }
            *svc = svc.clone().persistent(secs.min(u64::from(u32::MAX)) as u32);
        }
        if let Some(m) = &v.netmask {
            if v.persistent.is_none() {
                p.at(
                    src,
                    Some(m.span()),
                    "virtual.netmask",
                    "only with persistent (it groups clients of one persistent service)",
                );
            }
            match (family, m.get_ref()) {
                (Family::Inet, NetmaskValue::Text(t)) => match t.parse::<std::net::Ipv4Addr>() {
                    Ok(mask)
                        if u32::from(mask).leading_ones() + u32::from(mask).trailing_zeros()
                            == 32
                            && !mask.is_unspecified() =>
                    {
                        svc.netmask = Netmask::V4(mask)
                    }
                    _ => p.at(
                        src,
                        Some(m.span()),
                        "virtual.netmask",
                        format!("{t:?} is not an IPv4 netmask such as \"255.255.255.0\""),
                    ),
                },
                (Family::Inet6, NetmaskValue::Prefix(n)) if (1..=128).contains(n) => {
                    svc.netmask = Netmask::V6(*n as u8)
                }
                (Family::Inet, _) => p.at(
                    src,
                    Some(m.span()),
                    "virtual.netmask",
                    "an IPv4 service takes a dotted mask such as \"255.255.255.0\"",
                ),
                (Family::Inet6, _) => p.at(
                    src,
                    Some(m.span()),
                    "virtual.netmask",
                    "an IPv6 service takes a prefix length 1..=128, such as 64",
                ),
            }
        }
        if let Some(o) = &v.ops
            && *o.get_ref()
        {
            if !matches!(
                key,
                Some(ServiceKey::Addr {
                    protocol: common::ipvs::Protocol::Udp,
                    ..
                })
            ) {
                p.at(
                    src,
                    Some(o.span()),
                    "virtual.ops",
                    "one-packet scheduling is for udp services only",
                );
            }
            svc.flags.one_packet = true;
        }
        if let Some(pe) = &v.pe {
            if pe.get_ref() != "sip" {
                p.at(
                    src,
                    Some(pe.span()),
                    "virtual.pe",
                    format!("{:?}: the only persistence engine is \"sip\"", pe.get_ref()),
                );
            }
            svc.pe_name = Some(pe.get_ref().clone());
        }
    }

    let vforward = match &v.forwarding {
        Some(f) => match forward(*f.get_ref(), v.tunnel_port.as_ref(), v.tunnel_checksum) {
            Ok(fw) => fw,
            Err(m) => {
                p.at(src, Some(f.span()), "virtual.forwarding", m);
                Forward::Route
            }
        },
        None => Forward::Route,
    };

    // Reals.
    let mut reals = Vec::new();
    let mut seen: HashMap<SocketAddr, usize, foldhash::fast::FixedState> = HashMap::default();
    let mut expanded = 0u128;
    // The virtual's check compiled for a port, shared by the reals on it that have no [check]
    // of their own (the result is the same for each; a problem in it is said once anyway).
    // With these two, build_virtual went from 30.5 to 13.1 M instructions for 1,000 files.
    let mut shared: Option<(u16, check::Compiled)> = None;
    for (i, r) in file.real.iter().enumerate() {
        let field = |f: &str| format!("real[{i}].{f}");
        let rs = r.get_ref();
        let range = match addr::parse_real(rs.address.get_ref(), vport) {
            Ok(range) => range,
            Err(m) => {
                p.at(src, Some(rs.address.span()), &field("address"), m);
                continue;
            }
        };
        if range.len() > MAX_RANGE {
            p.at(
                src,
                Some(rs.address.span()),
                &field("address"),
                format!(
                    "the range names {} reals; at most {MAX_RANGE} per range",
                    range.len()
                ),
            );
            continue;
        }
        expanded += range.len();
        let weight = match &rs.weight {
            Some(w) if !(0..=MAX_WEIGHT).contains(w.get_ref()) => {
                p.at(
                    src,
                    Some(w.span()),
                    &field("weight"),
                    format!("must be 0..=65535, got {}", w.get_ref()),
                );
                1
            }
            Some(w) => *w.get_ref() as u32,
            None => 1,
        };
        let fw = match &rs.forwarding {
            Some(f) => match forward(*f.get_ref(), v.tunnel_port.as_ref(), v.tunnel_checksum) {
                Ok(fw) => fw,
                Err(m) => {
                    p.at(src, Some(f.span()), &field("forwarding"), m);
                    vforward
                }
            },
            None => vforward,
        };
        let rfamily = Family::of(&range.first().ip());
        if rfamily != family && !matches!(fw, Forward::Tunnel(_)) {
            let span = rs
                .forwarding
                .as_ref()
                .map(|f| f.span())
                .unwrap_or_else(|| rs.address.span());
            p.at(src, Some(span), &field("forwarding"), format!(
                "{} forwarding cannot reach an {} real from an {} virtual: use ipip, gue or gre",
                fw_name(fw), family_words(rfamily), family_words(family)
            ));
        }
        let upper = rs.upper_threshold.unwrap_or(0);
        let lower = rs
            .lower_threshold
            .as_ref()
            .map(|l| *l.get_ref())
            .unwrap_or(0);
        if let Some(l) = &rs.lower_threshold
            && upper != 0
            && lower > upper
        {
            p.at(
                src,
                Some(l.span()),
                &field("lower_threshold"),
                format!("must not exceed upper_threshold ({upper})"),
            );
        }
        let probe = match &shared {
            Some((port, c)) if rs.check.is_none() && *port == range.port() => c.clone(),
            _ => {
                let c = check::compile(
                    d.check,
                    file.check.as_ref().map(|c| (c, src)),
                    rs.check.as_ref().map(|c| (c, src, i)),
                    range.port(),
                    (src, file.virt.span()),
                    p,
                );
                if rs.check.is_none() {
                    shared = Some((range.port(), c.clone()));
                }
                c
            }
        };
        for a in range.iter() {
            if let Some(prev) = seen.insert(a, i) {
                p.at(
                    src,
                    Some(rs.address.span()),
                    &field("address"),
                    format!(
                        "real {a} is listed twice in this virtual (also by real[{prev}], line {})",
                        src.line_of(&file.real[prev].get_ref().address.span())
                    ),
                );
                break;
            }
        }
        if let Some((mode, spec, ..)) = &probe {
            for a in range.iter() {
                let mut dest = Destination::new(a, fw).weight(weight);
                dest.upper_threshold = upper;
                dest.lower_threshold = lower;
                let probe = spec
                    .as_ref()
                    .map(|s| Arc::new(Probe::new(a.ip(), s.clone())));
                let _ = mode;
                reals.push(Real { dest, probe });
            }
        }
        if expanded > 1_000_000 {
            p.at(
                src,
                Some(rs.address.span()),
                &field("address"),
                "more than 1,000,000 reals in one virtual",
            );
            return None;
        }
    }
    let (mode, interval, rise, fall) =
        check::settings(d.check, file.check.as_ref().map(|c| (c, src)), p);
    if file.real.is_empty() {
        p.at(
            src,
            Some(file.virt.span()),
            "real",
            "no [[real]] entries: a virtual service needs at least one real server",
        );
    }

    // The fallback.
    let fallback = match &v.fallback {
        None => None,
        Some(fb) => match addr::parse_real(fb.get_ref(), vport) {
            Ok(r) if r.len() == 1 => {
                let a = r.first();
                let fw = match &v.fallback_forwarding {
                    Some(f) => forward(*f.get_ref(), v.tunnel_port.as_ref(), v.tunnel_checksum)
                        .unwrap_or(vforward),
                    None => vforward,
                };
                if seen.contains_key(&a) {
                    p.at(src, Some(fb.span()), "virtual.fallback", format!("{a} is also a real of this virtual; the fallback must be another server"));
                }
                if Family::of(&a.ip()) != family && !matches!(fw, Forward::Tunnel(_)) {
                    p.at(src, Some(fb.span()), "virtual.fallback", format!("an {} fallback for an {} virtual needs fallback_forwarding ipip, gue or gre", family_words(Family::of(&a.ip())), family_words(family)));
                }
                Some(Destination::new(a, fw).weight(1))
            }
            Ok(_) => {
                p.at(
                    src,
                    Some(fb.span()),
                    "virtual.fallback",
                    "one server, not a range",
                );
                None
            }
            Err(m) => {
                p.at(src, Some(fb.span()), "virtual.fallback", m);
                None
            }
        },
    };
    let fallback_command = match &v.fallback_command {
        Some(c) => argv(c, "virtual.fallback_command", src, p),
        None => d.fallback_command.clone(),
    };
    let alert = alert(file.alert.as_ref().map(|a| (a.get_ref(), src)), d.alert, p);

    if p.0.len() != before {
        return None;
    }
    Some(Virtual {
        name,
        file: path.to_owned(),
        service: service?,
        comment: v.comment.clone(),
        check: mode,
        interval,
        rise,
        fall,
        quiescent: v.quiescent.unwrap_or(d.quiescent),
        readd_quiescent: v.readd_quiescent.unwrap_or(d.readd_quiescent),
        cleanstop: v.cleanstop.unwrap_or(d.cleanstop),
        fallback,
        fallback_command,
        alert,
        reals,
    })
}

fn fw_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "masq",
        Forward::Route => "gate",
        Forward::Tunnel(_) => "tunnel",
        _ => "this",
    }
}

/// The same service in two files, and two files with one name.
fn across_files(parsed: &[Arc<Parsed>], built: &[Virtual], p: &mut Problems) {
    let mut by_key: BTreeMap<ServiceKey, Vec<&Virtual>> = BTreeMap::new();
    for v in built {
        by_key.entry(v.service.key).or_default().push(v);
    }
    let src_of = |v: &Virtual| {
        parsed
            .iter()
            .find(|x| x.path == v.file)
            .map(|x| (&x.path, &x.src, &x.file))
    };
    for (key, vs) in &by_key {
        if vs.len() < 2 {
            continue;
        }
        let names: Vec<String> = vs.iter().map(|v| v.file.display().to_string()).collect();
        for v in vs {
            if let Some((_, src, f)) = src_of(v) {
                let span = f
                    .virt
                    .get_ref()
                    .address
                    .as_ref()
                    .map(|a| a.span())
                    .or_else(|| f.virt.get_ref().fwmark.as_ref().map(|m| m.span()));
                p.at(
                    src,
                    span,
                    "virtual",
                    format!(
                        "the virtual service {key} is defined in {} files: {}",
                        vs.len(),
                        names.join(" and ")
                    ),
                );
            }
        }
    }
    let mut by_name: BTreeMap<&str, Vec<&Virtual>> = BTreeMap::new();
    for v in built {
        by_name.entry(&v.name).or_default().push(v);
    }
    for (name, vs) in by_name {
        if vs.len() < 2 {
            continue;
        }
        let names: Vec<String> = vs.iter().map(|v| v.file.display().to_string()).collect();
        for v in vs {
            if let Some((_, src, f)) = src_of(v) {
                p.at(
                    src,
                    f.virt.get_ref().name.as_ref().map(|n| n.span()),
                    "virtual.name",
                    format!(
                        "the name {name:?} is used by {}; names must be unique",
                        names.join(" and ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
