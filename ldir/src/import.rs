//! `ldir import`: converts an ldirectord configuration (`ldirectord.cf`) into ldir's files —
//! `ldir.toml` (ldirectord's globals as `[global]`, `[check]`, `[alert]`) and one `<name>.toml` per
//! virtual service.
//!
//! [`convert`] is pure (text in; files, warnings and a verdict out); [`run_import`] is the command
//! line's edge (reads the file, prints or writes the result). The parser follows ldirectord's
//! `read_config` (Debian's ldirectord 1:4.12.0-2, classic-tools.md §1.2–§1.5) line by line: its
//! regular expressions are ported as they are (unanchored where Perl's are, greedy where Perl's
//! are), `virtual=`/`virtual6=` start at column 0, the block's lines are indented by 4 spaces or
//! a tab and have `#` comments stripped (even inside quotes, as ldirectord does), the block ends
//! at the first line that is not indented — a blank line too — and global lines are not
//! comment-stripped. Defaults are ldirectord's (quiescent off, negotiate checks with a 30 s
//! timeout, protocol udp for port 53, the service chosen by port), so the converted files keep
//! what the daemon did, written out explicitly.
//!
//! Every directive either maps to a field of LDIR.md's schema or yields a [`Warning`] naming its
//! line, the directive and why: what ldirectord refused (its fatal errors), what ldir has no home
//! for (`callback`, `execute`, `monitorfile`, SQL queries), what changed meaning. A line
//! ldirectord would have rejected is skipped with a warning rather than failing the whole import.
//!
//! Deliberately not here: host names are never resolved (a pure function has no DNS, and a
//! converted file should not depend on when it was converted): a virtual, real or fallback given
//! by name is skipped with a warning, to be rewritten with its address. Port names are looked up
//! in a small table of the usual `/etc/services` entries ([`service_port`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::LazyLock;

use common::daemon::Exit;
use common::probe::{Pattern, Spec};
use regex::Regex;
use toml::Value;

/// The largest ldirectord.cf read: configurations are kilobytes; this bounds memory on a wrong file.
pub const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// ldir's limit on the reals one range expands to (LDIR.md `[[real]]`).
const MAX_RANGE: u128 = 65_536;

/// How much of a value a warning quotes.
const SHOWN: usize = 60;

/// ldirectord's defaults (`set_defaults`, classic-tools.md §1.3).
const LD_CHECKTIMEOUT: u64 = 5;
const LD_NEGOTIATETIMEOUT: u64 = 30;
const LD_CHECKINTERVAL: u64 = 10;

/// The command ldir mails alerts through; ldirectord without `smtp` mails through sendmail too.
const SENDMAIL: &str = "/usr/sbin/sendmail -t";

/// What the conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// `ldir.toml` first, then one file per virtual service, in the order of the input.
    pub files: Vec<OutFile>,
    /// One per directive not converted (or converted with a change of meaning), by line.
    pub warnings: Vec<Warning>,
    /// At least one virtual service was converted; otherwise there is nothing to run.
    pub usable: bool,
}

/// One file of ldir's configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// The file name: `ldir.toml` or `<name>.toml`.
    pub name: String,
    /// The TOML text.
    pub text: String,
    /// It holds a password or shared secret: written readable by its owner only.
    pub secret: bool,
}

/// A directive that was not converted as written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The line in ldirectord.cf (from 1); 0 for the file as a whole.
    pub line: usize,
    /// The directive (`callback`, `real`, ...).
    pub directive: String,
    /// Why, and what was done instead.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}: {}", self.directive, self.message)
    }
}

/// `ldir import FILE [--out DIR]`.
///
/// Without `out`, every file is printed to `stdout`, each after a line `# ==> NAME <==`. With
/// `out`, the directory is created if missing and the files are written into it; no existing file
/// is ever overwritten (the import stops before writing anything and says which file is in the
/// way); files holding a password are created mode 0600, the others 0644. Warnings go to `stderr`
/// as `ldir: FILE:LINE: DIRECTIVE: why`. Exit 0 when at least one virtual service was converted
/// (even with warnings), 2 when nothing usable came out, the file cannot be read, or the output
/// cannot be written (nothing is then left behind).
pub fn run_import(
    path: &Path,
    out: Option<&Path>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Exit {
    let text = match read_input(path) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(stderr, "ldir: {}: {e}", path.display());
            return Exit::Usage;
        }
    };
    let conv = convert(&text);
    for w in &conv.warnings {
        let _ = if w.line > 0 {
            writeln!(
                stderr,
                "ldir: {}:{}: {}: {}",
                path.display(),
                w.line,
                w.directive,
                w.message
            )
        } else {
            writeln!(
                stderr,
                "ldir: {}: {}: {}",
                path.display(),
                w.directive,
                w.message
            )
        };
    }
    if !conv.usable {
        let _ = writeln!(
            stderr,
            "ldir: {}: nothing usable: no virtual service could be converted",
            path.display()
        );
        return Exit::Usage;
    }
    match out {
        None => {
            for f in &conv.files {
                if writeln!(stdout, "# ==> {} <==\n{}", f.name, f.text).is_err() {
                    return Exit::TempFail;
                }
            }
            Exit::Ok
        }
        Some(dir) => match write_files(dir, &conv.files) {
            Ok(()) => {
                let _ = writeln!(
                    stderr,
                    "ldir: wrote {} files into {}",
                    conv.files.len(),
                    dir.display()
                );
                Exit::Ok
            }
            Err(e) => {
                let _ = writeln!(stderr, "ldir: {e}");
                Exit::Usage
            }
        },
    }
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
            "larger than {} MiB: not an ldirectord configuration",
            MAX_INPUT >> 20
        ));
    }
    // ldirectord reads bytes; invalid UTF-8 only ever ends up in warnings (shown replaced).
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn io_words(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s.to_lowercase(),
    }
}

/// Writes every file into `dir`, or none: a name already taken stops the import before anything
/// is written, and a failed write removes what this call created.
fn write_files(dir: &Path, files: &[OutFile]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), io_words(&e)))?;
    for f in files {
        let p = dir.join(&f.name);
        if p.symlink_metadata().is_ok() {
            return Err(format!(
                "{}: exists; not overwritten (choose an empty directory with --out)",
                p.display()
            ));
        }
    }
    let mut created = Vec::new();
    for f in files {
        let p = dir.join(&f.name);
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if f.secret { 0o600 } else { 0o644 })
            .open(&p)
            .and_then(|mut file| {
                created.push(p.clone());
                file.write_all(f.text.as_bytes())?;
                file.sync_all()
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

/// Converts the text of an ldirectord.cf.
pub fn convert(text: &str) -> Conversion {
    let mut w = Warnings::default();
    let parsed = parse(text, &mut w);
    let mut files = vec![OutFile {
        name: "ldir.toml".into(),
        text: global_file(&parsed.globals, &mut w),
        secret: false,
    }];
    let mut taken: HashSet<String> = HashSet::from(["ldir".to_string()]);
    let mut pings = false;
    for v in &parsed.virtuals {
        let (stem, text, secret, ping) = virtual_file(&parsed.globals, v, &mut taken, &mut w);
        pings |= ping;
        files.push(OutFile {
            name: format!("{stem}.toml"),
            text,
            secret,
        });
    }
    if let Some(c) = parsed
        .globals
        .checkcount
        .as_ref()
        .filter(|c| c.v != 1 && !pings)
    {
        w.push(
            c.line,
            "checkcount",
            "only ping checks repeat, and no service's check is a ping; ignored",
        );
    }
    let usable = files.len() > 1;
    if !usable {
        w.push(0, "virtual", "no virtual service could be converted");
    }
    let mut warnings = w.0;
    warnings.sort_by_key(|w| w.line);
    Conversion {
        files,
        warnings,
        usable,
    }
}

#[derive(Default)]
struct Warnings(Vec<Warning>);

impl Warnings {
    fn push(&mut self, line: usize, directive: &str, message: impl Into<String>) {
        self.0.push(Warning {
            line,
            directive: directive.chars().take(SHOWN).collect(),
            message: message.into(),
        });
    }
}

/// A value as a warning quotes it: at most [`SHOWN`] characters, escaped.
fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(SHOWN).collect();
    if s.chars().count() > SHOWN {
        t.push('…');
    }
    format!("{t:?}")
}

// ---------------------------------------------------------------------------------------------
// Parsing: ldirectord's read_config.

/// A value and the line it came from.
#[derive(Debug, Clone)]
struct At<T> {
    v: T,
    line: usize,
}

fn at<T>(v: T, line: usize) -> Option<At<T>> {
    Some(At { v, line })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Gate,
    Masq,
    Ipip,
}

impl Fwd {
    fn parse(s: &str) -> Option<Fwd> {
        match s {
            "gate" => Some(Fwd::Gate),
            "masq" => Some(Fwd::Masq),
            "ipip" => Some(Fwd::Ipip),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fwd::Gate => "gate",
            Fwd::Masq => "masq",
            Fwd::Ipip => "ipip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    Fwm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VAddr {
    Ip(SocketAddr),
    Mark(u32),
}

#[derive(Debug, Clone)]
struct Fallback {
    ip: IpAddr,
    port: Option<u16>,
    fwd: Fwd,
}

#[derive(Debug, Clone)]
struct Real {
    line: usize,
    first: IpAddr,
    last: Option<IpAddr>,
    /// `None`: not given (ldirectord's port 0).
    port: Option<u16>,
    fwd: Fwd,
    weight: u32,
    request_receive: Option<(String, String)>,
    lower: Option<u32>,
    upper: Option<u32>,
}

/// What `emailalertstatus` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AlertStatus {
    All,
    None,
    /// Some daemon states only (starting, running, stopping, reloading).
    Some,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckType {
    Negotiate,
    Connect,
    Ping,
    External,
    ExternalPerl,
    On,
    Off,
    /// `checktype = N`: N connect checks, then a negotiate check.
    Combined(u64),
}

#[derive(Debug, Default)]
struct Globals {
    checktimeout: Option<At<u64>>,
    negotiatetimeout: Option<At<u64>>,
    checkinterval: Option<At<u64>>,
    checkcount: Option<At<u64>>,
    failurecount: Option<At<u64>>,
    fallback: Option<At<Fallback>>,
    fallback6: Option<At<Fallback>>,
    fallbackcommand: Option<At<String>>,
    emailalert: Option<At<String>>,
    emailalertfreq: Option<At<u64>>,
    emailalertstatus: Option<At<AlertStatus>>,
    emailalertfrom: Option<At<String>>,
    fork: bool,
    quiescent: Option<At<bool>>,
    readdquiescent: Option<At<bool>>,
    cleanstop: Option<At<bool>>,
    maintenancedir: Option<At<String>>,
}

#[derive(Debug)]
struct Virtual {
    line: usize,
    v6: bool,
    addr: VAddr,
    protocol: Proto,
    reals: Vec<Real>,
    service: Option<At<String>>,
    checktype: Option<At<CheckType>>,
    checkcommand: Option<At<String>>,
    checktimeout: Option<At<u64>>,
    negotiatetimeout: Option<At<u64>>,
    checkcount: Option<At<u64>>,
    failurecount: Option<At<u64>>,
    checkinterval: Option<At<u64>>,
    checkport: Option<At<u16>>,
    request: Option<At<String>>,
    receive: Option<At<String>>,
    login: Option<At<String>>,
    passwd: Option<At<String>>,
    database: Option<At<String>>,
    secret: Option<At<String>>,
    scheduler: Option<At<String>>,
    persistent: Option<At<u64>>,
    schedflags: Option<At<String>>,
    netmask: Option<At<String>>,
    ops: Option<At<bool>>,
    httpmethod: Option<At<String>>,
    virtualhost: Option<At<String>>,
    fallback: Option<At<Fallback>>,
    fallbackcommand: Option<At<String>>,
    quiescent: Option<At<bool>>,
    emailalert: Option<At<String>>,
    emailalertfreq: Option<At<u64>>,
    emailalertstatus: Option<At<AlertStatus>>,
    cleanstop: Option<At<bool>>,
    servicename: Option<At<String>>,
    comment: Option<At<String>>,
}

impl Virtual {
    /// `port_text` is the port as written: ldirectord picks udp for `53` and `domain`.
    fn new(line: usize, v6: bool, addr: VAddr, port_text: String) -> Virtual {
        let protocol = match addr {
            VAddr::Mark(_) => Proto::Fwm,
            // `$ip_port =~ /:(53|domain)$/`
            VAddr::Ip(_) if port_text == "53" || port_text == "domain" => Proto::Udp,
            VAddr::Ip(_) => Proto::Tcp,
        };
        Virtual {
            line,
            v6,
            addr,
            protocol,
            reals: Vec::new(),
            service: None,
            checktype: None,
            checkcommand: None,
            checktimeout: None,
            negotiatetimeout: None,
            checkcount: None,
            failurecount: None,
            checkinterval: None,
            checkport: None,
            request: None,
            receive: None,
            login: None,
            passwd: None,
            database: None,
            secret: None,
            scheduler: None,
            persistent: None,
            schedflags: None,
            netmask: None,
            ops: None,
            httpmethod: None,
            virtualhost: None,
            fallback: None,
            fallbackcommand: None,
            quiescent: None,
            emailalert: None,
            emailalertfreq: None,
            emailalertstatus: None,
            cleanstop: None,
            servicename: None,
            comment: None,
        }
    }

    fn port(&self) -> u16 {
        match self.addr {
            VAddr::Ip(a) => a.port(),
            VAddr::Mark(_) => 0,
        }
    }

    /// ldirectord's service: as given, else by port (`ld_port_to_service`); fwmarks get `none`.
    fn service(&self) -> &str {
        match (&self.service, self.addr) {
            (Some(s), _) => &s.v,
            (None, VAddr::Mark(_)) => "none",
            (None, VAddr::Ip(a)) => port_to_service(a.port()),
        }
    }

    fn checktype(&self) -> CheckType {
        self.checktype
            .as_ref()
            .map_or(CheckType::Negotiate, |c| c.v)
    }

    /// The identity ldirectord refuses twice (`get_virtual_id_str`).
    fn id(&self) -> String {
        match self.addr {
            VAddr::Mark(m) => format!("fwm{}:{m}", if self.v6 { "6" } else { "" }),
            VAddr::Ip(a) => format!("{:?}:{a}", self.protocol),
        }
    }
}

struct Parsed {
    globals: Globals,
    virtuals: Vec<Virtual>,
}

/// Perl's `\d`, `\w`, `\s`, `\S` are ASCII here, as in ldirectord (no `use utf8`).
fn perl(re: &str) -> Regex {
    let re = re
        .replace(r"\d", "[0-9]")
        .replace(r"\w", "[0-9A-Za-z_]")
        .replace(r"\s", r"[\t\n\x0B\x0C\r ]")
        .replace(r"\S", r"[^\t\n\x0B\x0C\r ]");
    Regex::new(&re).expect("a fixed pattern")
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| perl($pat));
    };
}

re!(VIRTUAL_LINE, r"^virtual(6)?\s*=\s*(.*)");
re!(V_IPV4, r"^(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)");
re!(V_HOST, r"^([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)");
re!(V_MARK, r"^(\d+)");
re!(V_IPV6, r"^\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)");
re!(
    REAL,
    r"(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-fa-f:]+\])(->(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-fa-f:]+\]))?(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)"
);
re!(R_FWD, r"(\w+)(.*)");
re!(R_WEIGHT, r"\s+(\d+)(.*)");
re!(R_REQREC, r#"\s+"(.*)"[, ]\s*"(.*)"(.*)"#);
re!(R_LOWER, r"\s+l:(\d+)(.*)");
re!(R_UPPER, r"\s+u:(\d+)(.*)");
re!(R_LEFTOVER, r"\S");
re!(FB_SPLIT, r"(\S+)(\s+(\S+))?\s*$");
re!(FB_PORT, r"(:(\d+|[A-Za-z0-9_-]+))?$");
re!(DIGITS, r"(\d+)");
re!(WORD, r"(\w+)");
re!(CHECKTYPE_WORD, r"([\w-]+)");
re!(LOWER_WORD, r"([a-z]+)");
re!(NONBLANK, r"(\S+)");
re!(KEY, r"^([A-Za-z0-9_]+)\s*(=\s*(.*))?$");
re!(DOTTED_QUAD, r"^\d+\.\d+\.\d+\.\d+$");

/// The first run of digits, as ldirectord's `$1 =~ /(\d+)/` takes it; `None` without one (or one
/// too large for any setting).
fn first_number(s: &str) -> Option<u64> {
    DIGITS.captures(s).and_then(|c| c[1].parse::<u64>().ok())
}

fn first_match(re: &Regex, s: &str) -> Option<String> {
    re.captures(s).map(|c| c[1].to_string())
}

/// `key\s*=\s*"(.*)"`: between the first and the last quote; `None` when not quoted.
fn quoted(v: &str) -> Option<&str> {
    let rest = v.strip_prefix('"')?;
    let end = rest.rfind('"')?;
    Some(&rest[..end])
}

fn yes_no(v: &str) -> Option<bool> {
    // ldirectord compares the whole value; trailing blanks (before a stripped comment) are
    // forgiven here, which only accepts more than ldirectord did.
    match v.trim_end() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn parse(text: &str, w: &mut Warnings) -> Parsed {
    let mut g = Globals::default();
    let mut virtuals: Vec<Virtual> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let raw = lines[i];
        i += 1;
        if let Some(c) = VIRTUAL_LINE.captures(raw) {
            let v6 = c.get(1).is_some();
            let vattr = c[2].to_string();
            // The block: every following line that is a comment or indented (tabs count 4).
            let mut block = Vec::new();
            while i < lines.len() {
                let l = lines[i];
                if l.trim_start().starts_with('#') {
                    i += 1;
                    continue;
                }
                let l = match l.find('#') {
                    Some(p) => &l[..p],
                    None => l,
                }
                .replace('\t', "    ");
                let body = l.trim_start_matches(' ');
                if l.len() - body.len() < 4 || body.is_empty() {
                    break;
                }
                block.push((i + 1, body.to_string()));
                i += 1;
            }
            let mut bw = Warnings::default();
            let Some(mut v) = virtual_head(n, v6, &vattr, &mut bw) else {
                w.0.extend(bw.0);
                continue;
            };
            let mut reals_todo = Vec::new();
            for (ln, body) in &block {
                virtual_directive(&mut v, *ln, body, &mut reals_todo, &mut bw);
            }
            for (ln, s) in reals_todo {
                if let Some(r) = parse_real(&v, ln, &s, &mut bw) {
                    v.reals.push(r);
                }
            }
            if !seen.insert(v.id()) {
                bw.push(
                    n,
                    "virtual",
                    "the same virtual service again (ldirectord refuses this file); skipped",
                );
                w.0.extend(bw.0);
                continue;
            }
            w.0.extend(bw.0);
            virtuals.push(v);
            continue;
        }
        if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            w.push(
                n,
                raw.trim_start()
                    .split(['=', ' ', '\t'])
                    .next()
                    .unwrap_or(""),
                "indented line outside a virtual block (ldirectord refuses it; a blank line \
                 ends a block); skipped",
            );
            continue;
        }
        global_directive(&mut g, n, raw, w);
    }
    Parsed {
        globals: g,
        virtuals,
    }
}

/// `virtual=` / `virtual6=`: the service's address, or `None` (warned) when it cannot be used.
fn virtual_head(n: usize, v6: bool, vattr: &str, w: &mut Warnings) -> Option<Virtual> {
    let dir = if v6 { "virtual6" } else { "virtual" };
    let (host, port_text) = if let Some(c) = V_IPV4.captures(vattr).filter(|_| !v6) {
        (c[1].to_string(), c[2].to_string())
    } else if let Some(c) = V_HOST.captures(vattr) {
        (c[1].to_string(), c[2].to_string())
    } else if let Some(c) = V_MARK.captures(vattr) {
        if vattr[c[1].len()..].starts_with(['.', ':']) {
            w.push(
                n,
                dir,
                format!(
                    "{} has no port: read as firewall mark {}, as ldirectord does; write \
                     ADDRESS:PORT if a service on an address was meant",
                    shown(vattr.trim_end()),
                    &c[1]
                ),
            );
        }
        let Some(mark) = c[1].parse::<u32>().ok().filter(|m| *m > 0) else {
            w.push(
                n,
                dir,
                format!(
                    "firewall mark {} out of range 1..=4294967295; skipped",
                    shown(&c[1])
                ),
            );
            return None;
        };
        return Some(Virtual::new(n, v6, VAddr::Mark(mark), String::new()));
    } else if let Some(c) = V_IPV6.captures(vattr) {
        if !v6 {
            w.push(
                n,
                dir,
                "an IPv6 address needs virtual6= (ldirectord refuses this); skipped",
            );
            return None;
        }
        (c[1].to_string(), c[2].to_string())
    } else {
        w.push(
            n,
            dir,
            format!("invalid address {} ; skipped", shown(vattr)),
        );
        return None;
    };
    let Some(ip) = ip_literal(&host, v6) else {
        w.push(n, dir, not_an_address(&host, v6, "virtual service"));
        return None;
    };
    let Some(port) = port_number(&port_text) else {
        w.push(
            n,
            dir,
            format!("unknown port {}; skipped", shown(&port_text)),
        );
        return None;
    };
    if port == 0 {
        w.push(n, dir, "port 0; skipped");
        return None;
    }
    Some(Virtual::new(
        n,
        v6,
        VAddr::Ip(SocketAddr::new(ip, port)),
        port_text,
    ))
}

/// The message for a host that is not an address literal of the family.
fn not_an_address(host: &str, v6: bool, what: &str) -> String {
    let other = ip_literal(host, !v6).is_some();
    if other {
        format!(
            "{} is an IPv{} address in an IPv{} service (ldirectord refuses this); skipped",
            shown(host),
            if v6 { 4 } else { 6 },
            if v6 { 6 } else { 4 },
        )
    } else {
        format!(
            "{} is a host name: the import does not resolve names (the result would depend on \
             when it ran); write the {what}'s address instead; skipped",
            shown(host)
        )
    }
}

/// An address literal of the family (`[...]` allowed around IPv6).
fn ip_literal(s: &str, v6: bool) -> Option<IpAddr> {
    if v6 {
        let s = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(s);
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// A port: digits, or a name from [`service_port`].
fn port_number(s: &str) -> Option<u16> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        service_port(s)
    }
}

/// The usual `/etc/services` names (IANA's registry) that ldirectord resolves with
/// `getservbyname`: the ports of ldirectord's services and a few more. Unknown names are warned.
pub fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "tftp" => 69,
        "http" | "www" | "www-http" => 80,
        "kerberos" => 88,
        "pop3" | "pop-3" => 110,
        "nntp" => 119,
        "ntp" => 123,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "submissions" | "smtps" | "ssmtp" => 465,
        "submission" => 587,
        "ldaps" => 636,
        "rsync" => 873,
        "imaps" => 993,
        "pop3s" => 995,
        "ms-sql-s" => 1433,
        "openvpn" => 1194,
        "radius" => 1812,
        "radius-acct" => 1813,
        "nfs" => 2049,
        "squid" => 3128,
        "mysql" => 3306,
        "sip" => 5060,
        "sip-tls" => 5061,
        "postgresql" => 5432,
        "http-alt" | "webcache" => 8080,
        _ => return None,
    })
}

/// `ld_port_to_service`.
fn port_to_service(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        995 => "pops",
        993 => "imaps",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

/// `ld_service_to_port`.
fn service_to_port(service: &str) -> Option<u16> {
    Some(match service {
        "ftp" => 21,
        "smtp" => 25,
        "dns" => 53,
        "http" => 80,
        "pop" => 110,
        "nntp" => 119,
        "imap" => 143,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pops" => 995,
        "oracle" => 1521,
        "radius" => 1812,
        "http_proxy" => 3128,
        "mysql" => 3306,
        "sip" => 5060,
        "pgsql" => 5432,
        _ => return None,
    })
}

const SERVICES: [&str; 21] = [
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "nntp",
    "mysql",
    "none",
    "oracle",
    "pop",
    "pops",
    "radius",
    "pgsql",
    "sip",
    "smtp",
    "submission",
    "simpletcp",
];

/// Splits `key = value` (ldirectord's `^key\s*=\s*(.*)`); `None` for a line that is no directive.
fn key_value(line: &str) -> Option<(String, Option<String>)> {
    KEY.captures(line)
        .map(|c| (c[1].to_string(), c.get(3).map(|m| m.as_str().to_string())))
}

/// A positive number (`$1 =~ /(\d+)/ && $1`), or a warning.
fn positive(line: usize, key: &str, v: &str, w: &mut Warnings) -> Option<At<u64>> {
    match first_number(v) {
        Some(x) if x > 0 => at(x, line),
        _ => {
            w.push(
                line,
                key,
                format!(
                    "{} is not a positive number (ldirectord refuses it); ignored",
                    shown(v)
                ),
            );
            None
        }
    }
}

fn yes_no_at(line: usize, key: &str, v: &str, w: &mut Warnings) -> Option<At<bool>> {
    match yes_no(v) {
        Some(b) => at(b, line),
        None => {
            w.push(
                line,
                key,
                format!(
                    "must be yes or no, got {} (ldirectord refuses it); ignored",
                    shown(v)
                ),
            );
            None
        }
    }
}

fn global_directive(g: &mut Globals, n: usize, raw: &str, w: &mut Warnings) {
    let Some((key, value)) = key_value(raw).or_else(|| {
        // `supervised` may stand alone; anything else without `=` is unknown.
        raw.starts_with("supervised")
            .then(|| ("supervised".to_string(), None))
    }) else {
        w.push(
            n,
            raw.split(['=', ' ', '\t']).next().unwrap_or(""),
            "not a directive (ldirectord refuses it); skipped",
        );
        return;
    };
    let k = key.as_str();
    let v = value.unwrap_or_default();
    let v = v.as_str();
    match k {
        "checktimeout" => g.checktimeout = positive(n, k, v, w),
        "negotiatetimeout" => g.negotiatetimeout = positive(n, k, v, w),
        "checkinterval" => g.checkinterval = positive(n, k, v, w),
        "checkcount" => g.checkcount = positive(n, k, v, w),
        "failurecount" => g.failurecount = positive(n, k, v, w),
        "connecttimeout" | "timeout" => w.push(
            n,
            k,
            "obsolete (ldirectord refuses it): use checktimeout and negotiatetimeout; ignored",
        ),
        "fallback" | "fallback6" => {
            if let Some(f) = parse_fallback(n, k, v, k == "fallback6", None, w) {
                if k == "fallback" {
                    g.fallback = at(f, n);
                } else {
                    g.fallback6 = at(f, n);
                }
            }
        }
        "fallbackcommand" => {
            if v.is_empty() {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
            } else {
                g.fallbackcommand = at(v.to_string(), n);
            }
        }
        "autoreload" => match yes_no(v) {
            Some(true) => {}
            Some(false) => w.push(
                n,
                k,
                "ldir always reloads when its files change (and on SIGHUP); autoreload=no has \
                 no equivalent",
            ),
            None => {
                yes_no_at(n, k, v, w);
            }
        },
        "callback" => w.push(
            n,
            k,
            "no equivalent; ldir re-reads its files itself (inotify, SIGHUP); ignored",
        ),
        "logfile" => w.push(
            n,
            k,
            "no equivalent; ldir logs to stderr (the journal under systemd), see --log-format; \
             ignored",
        ),
        "execute" => w.push(
            n,
            k,
            format!(
                "no equivalent; convert {} with its own `ldir import` and run an ldir per \
                 configuration directory; ignored",
                shown(v)
            ),
        ),
        "fork" => {
            if let Some(b) = yes_no_at(n, k, v, w) {
                g.fork = b.v;
            }
        }
        "supervised" => {
            // ldir always runs in the foreground under its supervisor; nothing to write.
            if !v.is_empty() && yes_no(v).is_none() {
                yes_no_at(n, k, v, w);
            }
        }
        "quiescent" => g.quiescent = yes_no_at(n, k, v, w),
        "readdquiescent" => g.readdquiescent = yes_no_at(n, k, v, w),
        "cleanstop" => g.cleanstop = yes_no_at(n, k, v, w),
        "emailalert" => g.emailalert = email(n, k, v, w),
        "emailalertfreq" => g.emailalertfreq = alert_freq(n, k, v, w),
        "emailalertstatus" => g.emailalertstatus = alert_status(n, k, v, w),
        "emailalertfrom" => {
            if v.is_empty() {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
            } else {
                g.emailalertfrom = at(unquote(v).to_string(), n);
            }
        }
        "smtp" => smtp_warning(n, v, w),
        "maintenancedir" => {
            if v.is_empty() {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
            } else {
                g.maintenancedir = at(v.trim_end().to_string(), n);
            }
        }
        _ => w.push(
            n,
            k,
            "unknown global directive (ldirectord refuses it); skipped",
        ),
    }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| !s.contains('"'))
        .unwrap_or(v)
}

fn email(n: usize, k: &str, v: &str, w: &mut Warnings) -> Option<At<String>> {
    let a = unquote(v.trim_end());
    if a.is_empty() {
        w.push(n, k, "no address (ldirectord refuses it); ignored");
        return None;
    }
    at(a.to_string(), n)
}

fn alert_freq(n: usize, k: &str, v: &str, w: &mut Warnings) -> Option<At<u64>> {
    // `^emailalertfreq\s*=\s*(\d*)`: digits right after the `=`.
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u64>() {
        Ok(x) => at(x, n),
        Err(_) => {
            w.push(
                n,
                k,
                format!("{} is not a number of seconds; ignored", shown(v)),
            );
            None
        }
    }
}

fn alert_status(n: usize, k: &str, v: &str, w: &mut Warnings) -> Option<At<AlertStatus>> {
    let words: Vec<&str> = v.trim_end().split(',').map(str::trim).collect();
    let mut all = false;
    let mut none = false;
    for word in &words {
        match *word {
            "all" => all = true,
            "none" => none = true,
            "starting" | "stopping" | "running" | "reloading" => {}
            other => {
                w.push(
                    n,
                    k,
                    format!(
                        "unknown status {} (ldirectord refuses it); ignored",
                        shown(other)
                    ),
                );
                return None;
            }
        }
    }
    if none && words.len() > 1 {
        w.push(
            n,
            k,
            "none together with other states (ldirectord refuses it); ignored",
        );
        return None;
    }
    if none {
        return at(AlertStatus::None, n);
    }
    if all {
        return at(AlertStatus::All, n);
    }
    w.push(
        n,
        k,
        "ldir chooses mails by transition (down, up, fallback), not by the daemon's state; \
         every transition mails (on = [\"all\"])",
    );
    at(AlertStatus::Some, n)
}

fn smtp_warning(n: usize, v: &str, w: &mut Warnings) {
    w.push(
        n,
        "smtp",
        format!(
            "no equivalent; ldir mails through [alert] command ({SENDMAIL}): have the local \
             mail transfer agent relay through {}; ignored",
            shown(v.trim_end())
        ),
    );
}

/// `parse_fallback` and `_ld_read_config_fallback_resolve`.
fn parse_fallback(
    n: usize,
    k: &str,
    v: &str,
    v6: bool,
    vport: Option<u16>,
    w: &mut Warnings,
) -> Option<Fallback> {
    let (mut server, mut fwd) = (v.to_string(), None);
    if let Some(c) = FB_SPLIT.captures(v) {
        fwd = c.get(3).map(|m| m.as_str().to_string());
        server = c[1].to_string();
    }
    let mut port_text = None;
    if let Some(c) = FB_PORT.captures(&server) {
        port_text = c.get(2).map(|m| m.as_str().to_string());
        let start = c.get(0).map_or(server.len(), |m| m.start());
        server.truncate(start);
    }
    let fwd = match fwd.as_deref() {
        None => Fwd::Gate,
        Some(f) => match Fwd::parse(f) {
            Some(f) => f,
            None => {
                w.push(
                    n,
                    k,
                    format!(
                        "forwarding must be gate, masq or ipip, got {} (ldirectord refuses \
                         it); ignored",
                        shown(f)
                    ),
                );
                return None;
            }
        },
    };
    let Some(ip) = ip_literal(&server, v6) else {
        w.push(n, k, not_an_address(&server, v6, "fallback server"));
        return None;
    };
    let port = match port_text {
        Some(p) => match port_number(&p) {
            Some(p) => Some(p),
            None => {
                w.push(n, k, format!("unknown port {}; ignored", shown(&p)));
                return None;
            }
        },
        None => vport,
    };
    Some(Fallback { ip, port, fwd })
}

fn virtual_directive(
    v: &mut Virtual,
    n: usize,
    body: &str,
    reals: &mut Vec<(usize, String)>,
    w: &mut Warnings,
) {
    let Some((key, Some(value))) = key_value(body) else {
        w.push(
            n,
            body.split(['=', ' ']).next().unwrap_or(""),
            "not a directive (ldirectord refuses it); skipped",
        );
        return;
    };
    let k = key.as_str();
    let val = value.as_str();
    // ldirectord's quoted directives: `^key\s*=\s*"(.*)"`, non-empty.
    let q = |w: &mut Warnings| -> Option<At<String>> {
        match quoted(val) {
            Some(s) if !s.is_empty() => at(s.to_string(), n),
            Some(_) => {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
                None
            }
            None => {
                w.push(
                    n,
                    k,
                    format!(
                        "must be a quoted string, got {} (ldirectord refuses it; note that `#` \
                         starts a comment even inside quotes); ignored",
                        shown(val)
                    ),
                );
                None
            }
        }
    };
    match k {
        "real" | "real6" => {
            if (k == "real6") != v.v6 {
                w.push(
                    n,
                    k,
                    format!(
                        "{k} in a {} block (ldirectord refuses it); skipped",
                        if v.v6 { "virtual6" } else { "virtual" }
                    ),
                );
            } else {
                reals.push((n, val.to_string()));
            }
        }
        "request" => {
            if let Some(mut r) = q(w) {
                if !r.v.starts_with('/') {
                    r.v.insert(0, '/');
                }
                v.request = Some(r);
            }
        }
        "receive" => v.receive = q(w),
        "login" => v.login = q(w),
        "passwd" => v.passwd = q(w),
        "database" => v.database = q(w),
        "secret" => v.secret = q(w),
        "load" => w.push(
            n,
            k,
            "undocumented in ldirectord and unused by its checks; no equivalent; ignored",
        ),
        "checktype" => {
            if let Some(num) = first_number(val) {
                v.checktype = at(CheckType::Combined(num), n);
            } else {
                let word = first_match(&CHECKTYPE_WORD, val).unwrap_or_default();
                let t = match word.as_str() {
                    "connect" => Some(CheckType::Connect),
                    "negotiate" => Some(CheckType::Negotiate),
                    "ping" => Some(CheckType::Ping),
                    "off" => Some(CheckType::Off),
                    "on" => Some(CheckType::On),
                    "external" => Some(CheckType::External),
                    "external-perl" => Some(CheckType::ExternalPerl),
                    _ => None,
                };
                match t {
                    Some(t) => v.checktype = at(t, n),
                    None => w.push(
                        n,
                        k,
                        format!(
                            "unknown check type {} (ldirectord refuses it); ignored",
                            shown(val)
                        ),
                    ),
                }
            }
        }
        "checkcommand" => {
            let c = quoted(val).unwrap_or(val);
            if c.is_empty() {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
            } else {
                v.checkcommand = at(c.to_string(), n);
            }
        }
        "checktimeout" => v.checktimeout = positive(n, k, val, w),
        "negotiatetimeout" => v.negotiatetimeout = positive(n, k, val, w),
        "connecttimeout" => w.push(
            n,
            k,
            "obsolete (ldirectord refuses it): use negotiatetimeout; ignored",
        ),
        "checkcount" => v.checkcount = positive(n, k, val, w),
        "failurecount" => v.failurecount = positive(n, k, val, w),
        "checkinterval" => v.checkinterval = positive(n, k, val, w),
        "checkport" => match first_number(val) {
            Some(p) if (1..=65535).contains(&p) => v.checkport = at(p as u16, n),
            _ => w.push(
                n,
                k,
                format!(
                    "must be a port 1..=65535, got {} (ldirectord refuses it); ignored",
                    shown(val)
                ),
            ),
        },
        "scheduler" => match first_match(&LOWER_WORD, val) {
            Some(s) => v.scheduler = at(s, n),
            None => w.push(
                n,
                k,
                format!(
                    "must be lower-case letters, got {} (ldirectord refuses it); ignored",
                    shown(val)
                ),
            ),
        },
        "persistent" => match first_number(val) {
            Some(0) => w.push(
                n,
                k,
                "0 seconds is no persistence (ipvsadm refuses -p 0); ignored",
            ),
            Some(p) => v.persistent = at(p, n),
            None => w.push(
                n,
                k,
                format!(
                    "not a number of seconds: {} (ldirectord refuses it); ignored",
                    shown(val)
                ),
            ),
        },
        "schedflags" => match first_match(&NONBLANK, val) {
            Some(s) => v.schedflags = at(s, n),
            None => w.push(n, k, "empty (ldirectord refuses it); ignored"),
        },
        "netmask" => {
            let m = val.trim_end();
            let ok = if v.v6 {
                m.parse::<u8>().is_ok_and(|p| (1..=128).contains(&p))
            } else {
                DOTTED_QUAD.is_match(m) && m.parse::<Ipv4Addr>().is_ok()
            };
            if ok {
                v.netmask = at(m.to_string(), n);
            } else {
                w.push(
                    n,
                    k,
                    format!(
                        "must be {}, got {} (ldirectord refuses it); ignored",
                        if v.v6 {
                            "a prefix length 1..=128"
                        } else {
                            "a dotted quad"
                        },
                        shown(m)
                    ),
                );
            }
        }
        "protocol" => {
            let word = first_match(&WORD, val).unwrap_or_default();
            match (v.protocol, word.as_str()) {
                (Proto::Fwm, "fwm") => {}
                (Proto::Fwm, _) => w.push(
                    n,
                    k,
                    "a firewall-mark service's protocol is fwm (ldirectord refuses others); \
                     ignored",
                ),
                (_, "tcp") => v.protocol = Proto::Tcp,
                (_, "udp") => v.protocol = Proto::Udp,
                _ => w.push(
                    n,
                    k,
                    format!(
                        "must be tcp or udp for an address and port, got {} (ldirectord \
                         refuses it); ignored",
                        shown(val)
                    ),
                ),
            }
        }
        "ops" => v.ops = yes_no_at(n, k, val, w),
        "service" => {
            let word = first_match(&WORD, val).unwrap_or_default();
            if SERVICES.contains(&word.as_str()) {
                v.service = at(word, n);
            } else {
                w.push(
                    n,
                    k,
                    format!(
                        "unknown service {} (ldirectord refuses it); ignored",
                        shown(val)
                    ),
                );
            }
        }
        "httpmethod" => match first_match(&WORD, val).map(|m| m.to_ascii_uppercase()) {
            Some(m) if m == "GET" || m == "HEAD" => v.httpmethod = at(m, n),
            _ => w.push(
                n,
                k,
                format!(
                    "must be GET or HEAD, got {} (ldirectord refuses it); ignored",
                    shown(val)
                ),
            ),
        },
        "virtualhost" => {
            let h = val.strip_prefix('"').unwrap_or(val);
            let h = h.split('"').next().unwrap_or("");
            v.virtualhost = at(h.to_string(), n);
        }
        "fallback" | "fallback6" => {
            if (k == "fallback6") != v.v6 {
                w.push(
                    n,
                    k,
                    format!(
                        "{k} in a {} block (ldirectord refuses it); ignored",
                        if v.v6 { "virtual6" } else { "virtual" }
                    ),
                );
            } else if let Some(f) = parse_fallback(n, k, val, v.v6, Some(v.port()), w) {
                v.fallback = at(f, n);
            }
        }
        "fallbackcommand" => {
            let c = quoted(val).unwrap_or(val);
            if c.is_empty() {
                w.push(n, k, "empty (ldirectord refuses it); ignored");
            } else {
                v.fallbackcommand = at(c.to_string(), n);
            }
        }
        "quiescent" => v.quiescent = yes_no_at(n, k, val, w),
        "emailalert" => v.emailalert = email(n, k, val, w),
        "emailalertfreq" => v.emailalertfreq = alert_freq(n, k, val, w),
        "emailalertstatus" => v.emailalertstatus = alert_status(n, k, val, w),
        "monitorfile" => w.push(
            n,
            k,
            "no equivalent; `ldir status` and --metrics show every check's result; ignored",
        ),
        "cleanstop" => v.cleanstop = yes_no_at(n, k, val, w),
        "smtp" => smtp_warning(n, val, w),
        "servicename" => {
            let s = val.trim_end();
            if !s.is_empty() {
                v.servicename = at(s.to_string(), n);
            }
        }
        "comment" => {
            let s = val.trim_end();
            if !s.is_empty() {
                v.comment = at(s.to_string(), n);
            }
        }
        _ => w.push(
            n,
            k,
            "unknown directive in a virtual block (ldirectord refuses it); skipped",
        ),
    }
}

/// `_ld_read_config_real_resolve` and `add_real_server`: one `real=` line.
fn parse_real(v: &Virtual, n: usize, s: &str, w: &mut Warnings) -> Option<Real> {
    let k = if v.v6 { "real6" } else { "real" };
    let Some(c) = REAL.captures(s) else {
        w.push(
            n,
            k,
            format!(
                "invalid address {} (ldirectord refuses it); skipped",
                shown(s)
            ),
        );
        return None;
    };
    let Some(first) = ip_literal(&c[1], v.v6) else {
        w.push(n, k, not_an_address(&c[1], v.v6, "real server"));
        return None;
    };
    let last = match c.get(3) {
        None => None,
        Some(m) => match ip_literal(m.as_str(), v.v6) {
            Some(ip) => Some(ip),
            None => {
                w.push(n, k, not_an_address(m.as_str(), v.v6, "real server"));
                return None;
            }
        },
    };
    let port = match c.get(5) {
        None => None,
        Some(p) => match port_number(p.as_str()) {
            Some(0) => None,
            Some(p) => Some(p),
            None => {
                w.push(n, k, format!("unknown port {}; skipped", shown(p.as_str())));
                return None;
            }
        },
    };
    let flags = &c[6];
    let Some(fc) = R_FWD
        .captures(flags)
        .filter(|fc| Fwd::parse(&fc[1]).is_some())
    else {
        w.push(
            n,
            k,
            format!(
                "forwarding must be gate, masq or ipip, got {} (ldirectord refuses it); skipped",
                shown(flags)
            ),
        );
        return None;
    };
    let fwd = Fwd::parse(&fc[1])?;
    let mut rest = fc[2].to_string();
    let mut weight = 1;
    if let Some(c) = R_WEIGHT.captures(&rest) {
        match c[1].parse::<u32>() {
            Ok(x) if x <= 65535 => weight = x,
            _ => {
                w.push(
                    n,
                    k,
                    format!("weight {} out of range 0..=65535; skipped", shown(&c[1])),
                );
                return None;
            }
        }
        rest = c[2].to_string();
    }
    let mut request_receive = None;
    if let Some(c) = R_REQREC.captures(&rest) {
        let mut req = c[1].to_string();
        if !req.starts_with('/') {
            req.insert(0, '/');
        }
        request_receive = Some((req, c[2].to_string()));
        rest = c[3].to_string();
    }
    let threshold = |re: &Regex, rest: &mut String, w: &mut Warnings| -> Result<Option<u32>, ()> {
        let Some(c) = re.captures(rest) else {
            return Ok(None);
        };
        let Ok(x) = c[1].parse::<u32>() else {
            w.push(
                n,
                k,
                format!("threshold {} out of range; skipped", shown(&c[1])),
            );
            return Err(());
        };
        *rest = c[2].to_string();
        Ok(Some(x))
    };
    let lower = threshold(&R_LOWER, &mut rest, w).ok()?;
    let upper = threshold(&R_UPPER, &mut rest, w).ok()?;
    if R_LEFTOVER.is_match(&rest) {
        w.push(
            n,
            k,
            format!(
                "cannot read the line around {} (ldirectord refuses it); skipped",
                shown(rest.trim())
            ),
        );
        return None;
    }
    if let Some(last) = last {
        let (a, b) = (ip_num(first), ip_num(last));
        if a > b {
            w.push(
                n,
                k,
                "the range's first address is after its last (ldirectord refuses it); skipped",
            );
            return None;
        }
        if b - a + 1 > MAX_RANGE {
            w.push(
                n,
                k,
                format!(
                    "the range holds {} reals, more than ldir's {MAX_RANGE}; skipped",
                    b - a + 1
                ),
            );
            return None;
        }
        if v.v6 {
            w.push(
                n,
                k,
                "ldirectord refuses IPv6 ranges; ldir accepts them, converted",
            );
        }
    }
    Some(Real {
        line: n,
        first,
        last,
        port,
        fwd,
        weight,
        request_receive,
        lower,
        upper,
    })
}

fn ip_num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing: ldir's files.

/// A TOML document written line by line; every value is encoded by the `toml` crate.
#[derive(Default)]
struct Doc {
    text: String,
}

impl Doc {
    fn comment(&mut self, s: &str) {
        // A comment may not hold control characters (TOML 1.0 §Comment).
        let clean: String = s
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        self.text.push_str("# ");
        self.text.push_str(&clean);
        self.text.push('\n');
    }

    fn table(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(&format!("[{name}]\n"));
    }

    fn array_table(&mut self, name: &str) {
        self.text.push_str(&format!("\n[[{name}]]\n"));
    }

    fn kv(&mut self, key: &str, value: impl Into<Value>) {
        let value: Value = value.into();
        self.text.push_str(&format!("{key} = {value}\n"));
    }
}

fn secs(s: u64) -> Value {
    Value::String(format!("{s}s"))
}

fn int(x: impl Into<i64>) -> Value {
    Value::Integer(x.into())
}

/// The timeout a check uses (`ld_setup`): negotiate checks use negotiatetimeout, the others
/// checktimeout, each falling back on the other, then on the globals, then on the defaults.
fn timeouts(g: &Globals, v: Option<&Virtual>) -> (u64, u64) {
    let val = |o: &Option<At<u64>>| o.as_ref().map(|a| a.v);
    let (vc, vn) = v.map_or((None, None), |v| {
        (val(&v.checktimeout), val(&v.negotiatetimeout))
    });
    let (gc, gn) = (val(&g.checktimeout), val(&g.negotiatetimeout));
    let check = vc.or(vn).or(gc).or(gn).unwrap_or(LD_CHECKTIMEOUT);
    let negotiate = vn.or(vc).or(gn).or(gc).unwrap_or(LD_NEGOTIATETIMEOUT);
    (check, negotiate)
}

fn global_file(g: &Globals, w: &mut Warnings) -> String {
    let mut d = Doc::default();
    d.comment("ldir's global settings, converted by `ldir import` from ldirectord.cf.");
    d.comment("ldirectord's defaults are written out where ldir's differ (quiescent, timeouts).");
    d.table("global");
    d.kv("quiescent", g.quiescent.as_ref().is_some_and(|q| q.v));
    d.kv(
        "readd_quiescent",
        g.readdquiescent.as_ref().is_some_and(|q| q.v),
    );
    d.kv("cleanstop", g.cleanstop.as_ref().is_none_or(|c| c.v));
    if let Some(m) = &g.maintenancedir {
        d.kv("maintenance_dir", m.v.clone());
    }
    if let Some(c) = &g.fallbackcommand
        && let Some(cmd) = shell_command(&c.v, c.line, "fallbackcommand", w)
    {
        d.kv("fallback_command", cmd);
    }
    d.table("check");
    d.kv(
        "interval",
        secs(g.checkinterval.as_ref().map_or(LD_CHECKINTERVAL, |c| c.v)),
    );
    d.kv("timeout", secs(timeouts(g, None).1));
    d.kv("rise", int(1));
    d.kv(
        "fall",
        int(clamp_count(g.failurecount.as_ref(), "failurecount", w)),
    );
    if let Some(a) = &g.emailalert {
        let status = g.emailalertstatus.as_ref().map(|s| &s.v);
        d.table("alert");
        d.kv("command", SENDMAIL);
        d.kv("to", a.v.clone());
        if let Some(f) = &g.emailalertfrom {
            d.kv("from", f.v.clone());
        }
        d.kv("repeat", secs(g.emailalertfreq.as_ref().map_or(0, |f| f.v)));
        d.kv("on", alert_on(status));
    } else {
        for (o, k) in [
            (g.emailalertfreq.as_ref().map(|a| a.line), "emailalertfreq"),
            (
                g.emailalertstatus.as_ref().map(|a| a.line),
                "emailalertstatus",
            ),
            (g.emailalertfrom.as_ref().map(|a| a.line), "emailalertfrom"),
        ] {
            if let Some(line) = o {
                w.push(line, k, "without a global emailalert; ignored");
            }
        }
    }
    d.text
}

fn clamp_count(c: Option<&At<u64>>, k: &str, w: &mut Warnings) -> u32 {
    match c {
        None => 1,
        Some(a) => match u32::try_from(a.v) {
            Ok(x) if x <= 1000 => x,
            _ => {
                w.push(
                    a.line,
                    k,
                    format!("{} is more than 1000; 1000 written", a.v),
                );
                1000
            }
        },
    }
}

fn alert_on(status: Option<&AlertStatus>) -> Value {
    match status {
        Some(AlertStatus::None) => Value::Array(vec![]),
        _ => Value::Array(vec![Value::String("all".into())]),
    }
}

/// A command ldirectord runs through `system()` (so through `sh -c` when it holds shell syntax),
/// as ldir runs it: split into words like a shell, no shell. A command with shell syntax is
/// wrapped in `sh -c '... "$@"'` so it keeps its meaning and still gets ldir's arguments.
fn shell_command(cmd: &str, line: usize, k: &str, w: &mut Warnings) -> Option<String> {
    let cmd = cmd.trim();
    let words = shlex::split(cmd).filter(|words| !words.is_empty());
    if let Some(words) = &words
        && !cmd.contains(|c: char| "|&;<>()$`*?[]{}~!#=".contains(c))
    {
        // Plain words: the same argv with or without a shell, written in its plainest form.
        return shlex::try_join(words.iter().map(String::as_str)).ok();
    }
    let Ok(q) = shlex::try_quote(&format!("{cmd} \"$@\"")).map(|q| q.into_owned()) else {
        w.push(line, k, "holds a NUL byte; ignored");
        return None;
    };
    w.push(
        line,
        k,
        "uses shell syntax, which ldir does not interpret: written as `sh -c '... \"$@\"'`",
    );
    Some(format!("sh -c {q} {k}"))
}

/// The sanitised file stem: letters, digits, `.`, `_`, `-`; not hidden.
fn stem_of(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 64 {
            break;
        }
    }
    let out = out.trim_start_matches(['.', '-']).trim_end_matches('-');
    out.to_string()
}

fn derived_stem(v: &Virtual) -> String {
    match v.addr {
        VAddr::Mark(m) if v.v6 => format!("fwmark-{m}-inet6"),
        VAddr::Mark(m) => format!("fwmark-{m}"),
        VAddr::Ip(a) => {
            let ip = a.ip().to_string().replace(':', "-");
            let udp = if v.protocol == Proto::Udp { "-udp" } else { "" };
            format!("{ip}-{}{udp}", a.port())
        }
    }
}

fn unique(stem: String, taken: &mut HashSet<String>) -> String {
    let mut s = stem.clone();
    let mut i = 2;
    while taken.contains(&s) {
        s = format!("{stem}-{i}");
        i += 1;
    }
    taken.insert(s.clone());
    s
}

fn fmt_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

fn fmt_addr(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// The planned `[check]`: ldir's type and the kind's fields.
struct CheckPlan {
    ty: &'static str,
    fields: Vec<(&'static str, Value)>,
    /// Which ldirectord timeout applies: negotiate (true) or check (false); none for on/off.
    negotiate: Option<bool>,
    /// The check port when ldirectord's differs from what ldir would use.
    port: Option<u16>,
    /// The ldirectord service, for per-real request/receive.
    service: String,
}

impl CheckPlan {
    fn simple(ty: &'static str, negotiate: Option<bool>, service: &str) -> CheckPlan {
        CheckPlan {
            ty,
            fields: Vec::new(),
            negotiate,
            port: None,
            service: service.to_string(),
        }
    }
}

fn virtual_file(
    g: &Globals,
    v: &Virtual,
    taken: &mut HashSet<String>,
    w: &mut Warnings,
) -> (String, String, bool, bool) {
    let dir = if v.v6 { "virtual6" } else { "virtual" };
    let reals = accepted_reals(v, w);
    let mut d = Doc::default();
    d.comment(&format!(
        "converted by `ldir import` from ldirectord.cf line {}",
        v.line
    ));
    d.table("virtual");
    match v.addr {
        VAddr::Ip(a) => {
            d.kv("address", a.to_string());
            d.kv(
                "protocol",
                if v.protocol == Proto::Udp {
                    "udp"
                } else {
                    "tcp"
                },
            );
        }
        VAddr::Mark(m) => {
            d.kv("fwmark", int(m));
            if v.v6 {
                d.kv("family", "inet6");
            }
        }
    }
    d.kv(
        "scheduler",
        v.scheduler
            .as_ref()
            .map_or("wrr".to_string(), |s| s.v.clone()),
    );
    if let Some(f) = &v.schedflags {
        d.kv(
            "scheduler_flags",
            Value::Array(
                f.v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
        );
    }
    match (&v.persistent, &v.netmask) {
        (Some(p), m) => {
            d.kv("persistent", secs(p.v));
            if let Some(m) = m {
                if v.v6 {
                    d.kv("netmask", int(m.v.parse::<i64>().unwrap_or(128)));
                } else {
                    d.kv("netmask", m.v.clone());
                }
            }
        }
        (None, Some(m)) => w.push(
            m.line,
            "netmask",
            "only applies with persistent (ldirectord ignores it too); ignored",
        ),
        (None, None) => {}
    }
    if let Some(o) = &v.ops {
        if v.protocol == Proto::Udp {
            d.kv("ops", o.v);
        } else if o.v {
            w.push(
                o.line,
                "ops",
                "one-packet scheduling is for udp services only (ldirectord ignores it here); \
                 ignored",
            );
        }
    }
    let vfwd = reals.first().map_or(Fwd::Gate, |r| r.fwd);
    d.kv("forwarding", vfwd.name());
    if let Some(q) = &v.quiescent {
        d.kv("quiescent", q.v);
    }
    if let Some(c) = &v.cleanstop {
        d.kv("cleanstop", c.v);
    }
    if let Some(f) = fallback_for(g, v, &reals, w) {
        let port = f.port.unwrap_or(v.port());
        d.kv(
            "fallback",
            if port == 0 {
                f.ip.to_string()
            } else {
                fmt_addr(f.ip, port)
            },
        );
        if f.fwd != Fwd::Gate {
            d.kv("fallback_forwarding", f.fwd.name());
        }
    }
    if let Some(c) = &v.fallbackcommand
        && let Some(cmd) = shell_command(&c.v, c.line, "fallbackcommand", w)
    {
        d.kv("fallback_command", cmd);
    }
    // The file's stem is ldir's default name; `name` is written only where servicename differs.
    let stem = v
        .servicename
        .as_ref()
        .map(|s| stem_of(&s.v))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| derived_stem(v));
    let stem = unique(stem, taken);
    if let Some(s) = &v.servicename {
        // ldir's name is one word (it names the service on the command line) and unique.
        let wanted: String =
            s.v.split_whitespace()
                .collect::<Vec<_>>()
                .join("-")
                .chars()
                .filter(|c| !c.is_control())
                .collect();
        let name = if wanted == stem || wanted.is_empty() || !taken.insert(wanted.clone()) {
            stem.clone()
        } else {
            d.kv("name", wanted.clone());
            wanted
        };
        if name != s.v {
            w.push(
                s.line,
                "servicename",
                format!(
                    "ldir's names are one word and unique: {} is named {}",
                    shown(&s.v),
                    shown(&name)
                ),
            );
        }
    }
    if let Some(c) = &v.comment {
        d.kv("comment", c.v.clone());
    }

    let plan = check_plan(g, v, &reals, w);
    let mut secret = false;
    d.table("check");
    d.kv("type", plan.ty);
    if let Some(i) = &v.checkinterval {
        if !g.fork {
            w.push(
                i.line,
                "checkinterval",
                "ldirectord ignores a virtual's checkinterval unless fork=yes; ldir honours it, \
                 converted",
            );
        }
        d.kv("interval", secs(i.v));
    }
    if let Some(neg) = plan.negotiate {
        let (c, n) = timeouts(g, Some(v));
        let t = if neg { n } else { c };
        if t != timeouts(g, None).1 {
            d.kv("timeout", secs(t));
        }
    }
    if let Some(f) = &v.failurecount {
        d.kv("fall", int(clamp_count(Some(f), "failurecount", w)));
    }
    // External checks get the real's port (check_external), pings none.
    if plan.negotiate.is_some() && !matches!(plan.ty, "external" | "ping") {
        if let Some(p) = v.checkport.as_ref().map(|p| p.v).or(plan.port) {
            d.kv("port", int(p));
        }
    } else if let Some(p) = &v.checkport {
        w.push(
            p.line,
            "checkport",
            format!(
                "a type = \"{}\" check does not use it (ldirectord's neither); ignored",
                plan.ty
            ),
        );
    }
    for (k, val) in &plan.fields {
        secret |= matches!(*k, "password" | "secret");
        d.kv(k, val.clone());
    }
    if let Some(a) = &v.emailalert {
        d.table("alert");
        if g.emailalert.is_none() {
            d.kv("command", SENDMAIL);
        }
        d.kv("to", a.v.clone());
        if let Some(f) = &v.emailalertfreq {
            d.kv("repeat", secs(f.v));
        }
        if let Some(s) = &v.emailalertstatus {
            d.kv("on", alert_on(Some(&s.v)));
        }
    } else if v.emailalertfreq.is_some() || v.emailalertstatus.is_some() {
        if g.emailalert.is_some() {
            d.table("alert");
            if let Some(f) = &v.emailalertfreq {
                d.kv("repeat", secs(f.v));
            }
            if let Some(s) = &v.emailalertstatus {
                d.kv("on", alert_on(Some(&s.v)));
            }
        } else {
            for (line, k) in [
                (v.emailalertfreq.as_ref().map(|a| a.line), "emailalertfreq"),
                (
                    v.emailalertstatus.as_ref().map(|a| a.line),
                    "emailalertstatus",
                ),
            ] {
                if let Some(line) = line {
                    w.push(line, k, "without an emailalert; ignored");
                }
            }
        }
    }

    for r in &reals {
        d.array_table("real");
        let port = r.port.unwrap_or(v.port());
        let one = |ip: IpAddr| {
            if port == 0 {
                ip.to_string()
            } else {
                fmt_addr(ip, port)
            }
        };
        let addr = match r.last {
            None => one(r.first),
            Some(last) if port == 0 => format!("{}->{}", r.first, last),
            Some(last) => format!("{}->{}:{port}", fmt_ip(r.first), fmt_ip(last)),
        };
        d.kv("address", addr);
        d.kv("weight", int(r.weight));
        if r.fwd != vfwd {
            d.kv("forwarding", r.fwd.name());
        }
        if let Some(u) = r.upper {
            d.kv("upper_threshold", int(u));
        }
        if let Some(l) = r.lower {
            d.kv("lower_threshold", int(l));
        }
        if let Some((req, rec)) = &r.request_receive {
            let fields = real_overrides(&plan, v, r.line, req, rec, w);
            if !fields.is_empty() {
                d.table("real.check");
                for (k, val) in fields {
                    d.kv(k, val);
                }
            }
        }
    }
    if reals.is_empty() {
        w.push(
            v.line,
            dir,
            "no real server could be converted; the service is written without reals",
        );
    }
    (stem, d.text, secret, plan.ty == "ping")
}

/// The reals ldir accepts: each address (and port) once. ldirectord adds a duplicate again (and
/// ipvsadm refuses it); ldir's loader refuses the file, so the later line is dropped with a warning.
fn accepted_reals(v: &Virtual, w: &mut Warnings) -> Vec<Real> {
    // Disjoint intervals by (port, first address): a new interval overlaps an accepted one only if
    // it overlaps the accepted interval starting last at or before its own end.
    let mut taken: BTreeMap<(u16, u128), u128> = BTreeMap::new();
    let mut out = Vec::new();
    for r in &v.reals {
        let port = r.port.unwrap_or(v.port());
        let a = ip_num(r.first);
        let b = r.last.map_or(a, ip_num);
        let clash = taken
            .range((port, 0)..=(port, b))
            .next_back()
            .is_some_and(|(_, &end)| end >= a);
        if clash {
            w.push(
                r.line,
                if v.v6 { "real6" } else { "real" },
                "the same real server again in this virtual service (ldir refuses a real listed \
                 twice); skipped",
            );
            continue;
        }
        taken.insert((port, a), b);
        out.push(r.clone());
    }
    out
}

/// The virtual's fallback (its own, else the global one of its family), unless it is one of the
/// reals (ldir refuses that).
fn fallback_for(g: &Globals, v: &Virtual, reals: &[Real], w: &mut Warnings) -> Option<Fallback> {
    let f = v.fallback.as_ref().or(if v.v6 {
        g.fallback6.as_ref()
    } else {
        g.fallback.as_ref()
    })?;
    let port = f.v.port.unwrap_or(v.port());
    let ip = ip_num(f.v.ip);
    let is_real = reals.iter().any(|r| {
        r.port.unwrap_or(v.port()) == port
            && (ip_num(r.first)..=r.last.map_or(ip_num(r.first), ip_num)).contains(&ip)
    });
    if is_real {
        w.push(
            f.line,
            if v.v6 { "fallback6" } else { "fallback" },
            format!(
                "the fallback is one of the reals of the service at line {} (ldir refuses \
                 that); not written there",
                v.line
            ),
        );
        return None;
    }
    Some(f.v.clone())
}

/// ldirectord's check of a virtual, as ldir's `[check]`.
fn check_plan(g: &Globals, v: &Virtual, reals: &[Real], w: &mut Warnings) -> CheckPlan {
    let service = v.service().to_string();
    let ct_line = v.checktype.as_ref().map_or(v.line, |c| c.line);
    let mut plan = match v.checktype() {
        CheckType::On => CheckPlan::simple("on", None, &service),
        CheckType::Off => CheckPlan::simple("off", None, &service),
        CheckType::Connect if v.protocol == Proto::Udp => {
            w.push(
                ct_line,
                "checktype",
                "connect on a udp service is a ping in ldirectord; converted to type = \"ping\"",
            );
            ping_plan(g, v, &service)
        }
        CheckType::Connect => {
            let mut p = CheckPlan::simple("tcp", Some(false), &service);
            p.port = ldirectord_check_port(v, reals, w);
            p
        }
        CheckType::Ping => ping_plan(g, v, &service),
        CheckType::External | CheckType::ExternalPerl => external_plan(v, w),
        CheckType::Combined(num) => {
            w.push(
                ct_line,
                "checktype",
                format!(
                    "{num} connect checks between negotiate checks has no equivalent; converted \
                     as negotiate"
                ),
            );
            negotiate_plan(v, reals, w)
        }
        CheckType::Negotiate => negotiate_plan(v, reals, w),
    };
    if plan.ty != "ping"
        && let Some(c) = v.checkcount.as_ref().filter(|c| c.v != 1)
    {
        w.push(
            c.line,
            "checkcount",
            format!(
                "only ping checks repeat; this service's check is type = \"{}\"; ignored",
                plan.ty
            ),
        );
    }
    // The kind's fields, checked by the probe's own schema; a refused check is replaced by a
    // plain one rather than written to fail `ldir check`.
    // The port each real's check gets from its address, if every real has one (ldir's default).
    let real_port = if v.port() != 0 {
        Some(v.port())
    } else if !reals.is_empty() && reals.iter().all(|r| r.port.is_some()) {
        reals[0].port
    } else {
        None
    };
    let port = v
        .checkport
        .as_ref()
        .map(|p| p.v)
        .or(plan.port)
        .or(real_port);
    if let Err(e) = validate_plan(&plan, port) {
        w.push(
            ct_line,
            "checktype",
            format!(
                "the converted {} check is not valid ({e}); a plain connect check is written \
                 instead",
                plan.ty
            ),
        );
        plan = fallback_plan(v, reals, w, &service);
    }
    plan
}

/// Whether ldir will accept the planned check: the probe kind's own schema reads it, with the port
/// the check will use (`None`: the kind's default, or none).
fn validate_plan(plan: &CheckPlan, port: Option<u16>) -> Result<(), String> {
    if matches!(plan.ty, "on" | "off") {
        return Ok(());
    }
    let mut t = toml::Table::new();
    t.insert("kind".into(), plan.ty.into());
    if let Some(p) = port {
        t.insert("port".into(), int(p));
    }
    for (k, v) in &plan.fields {
        t.insert((*k).into(), v.clone());
    }
    validate_spec(t)
}

fn validate_spec(t: toml::Table) -> Result<(), String> {
    let spec: Spec = Value::Table(t)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    match spec.problems().first() {
        None => Ok(()),
        Some((field, m)) => Err(format!("{field}: {m}")),
    }
}

/// A connect check when a service's own cannot be written: tcp on the check port, or a ping for
/// services without a TCP port (udp, firewall marks without a port).
fn fallback_plan(v: &Virtual, reals: &[Real], w: &mut Warnings, service: &str) -> CheckPlan {
    let port = v
        .checkport
        .as_ref()
        .map(|p| p.v)
        .or_else(|| ldirectord_check_port(v, reals, w));
    let has_port = port.is_some()
        || v.port() != 0
        || (!reals.is_empty() && reals.iter().all(|r| r.port.is_some()));
    if v.protocol == Proto::Udp || !has_port {
        return CheckPlan::simple("ping", Some(false), service);
    }
    let mut p = CheckPlan::simple("tcp", Some(false), service);
    p.port = port;
    p
}

fn ping_plan(g: &Globals, v: &Virtual, service: &str) -> CheckPlan {
    let mut p = CheckPlan::simple("ping", Some(false), service);
    let count = v.checkcount.as_ref().or(g.checkcount.as_ref());
    if let Some(c) = count.filter(|c| c.v != 1) {
        p.fields
            .push(("count", int(c.v.min(u8::MAX.into()) as i64)));
    }
    p
}

/// The port ldirectord checks when no `checkport` is given (`ld_checkport`): the real's port, or
/// the service's when the real has none. ldir checks the real's port (the virtual's when the
/// line has none), so a differing service port is written as the check's `port` when every
/// real lacks a port, and warned when only some do.
fn ldirectord_check_port(v: &Virtual, reals: &[Real], w: &mut Warnings) -> Option<u16> {
    if v.checkport.is_some() {
        return None;
    }
    let portless: Vec<&Real> = reals.iter().filter(|r| r.port.is_none()).collect();
    if portless.is_empty() {
        return None;
    }
    let sp = service_to_port(v.service());
    if sp.is_none() || sp == Some(v.port()) {
        return None;
    }
    if portless.len() == reals.len() {
        return sp;
    }
    w.push(
        portless[0].line,
        if v.v6 { "real6" } else { "real" },
        format!(
            "ldirectord checks reals without a port on the {} port {}, ldir on the virtual's \
             port; add checkport to keep ldirectord's",
            v.service(),
            sp.unwrap_or(0)
        ),
    );
    None
}

fn external_plan(v: &Virtual, w: &mut Warnings) -> CheckPlan {
    let perl = v.checktype() == CheckType::ExternalPerl;
    let service = v.service().to_string();
    let line = v.checkcommand.as_ref().map_or(v.line, |c| c.line);
    // ldirectord execs the command as one program path (no shell, no splitting).
    let path = v
        .checkcommand
        .as_ref()
        .map_or("/bin/true".to_string(), |c| c.v.clone());
    let Ok(quoted_path) = shlex::try_quote(&path).map(|q| q.into_owned()) else {
        w.push(line, "checkcommand", "holds a NUL byte");
        return CheckPlan::simple("on", None, &service);
    };
    let program = if perl {
        w.push(
            line,
            "checktype",
            "external-perl: ldir runs the file with perl for every check (ldirectord evaluates \
             it inside its own process); exit status 0 is still up",
        );
        format!("perl {quoted_path}")
    } else {
        quoted_path
    };
    let mut p = CheckPlan::simple("external", Some(false), &service);
    match v.addr {
        VAddr::Ip(a) => {
            p.fields.push(("command", program.into()));
            p.fields.push(("args", "ldirectord".into()));
            p.fields.push(("virtual", a.to_string().into()));
        }
        VAddr::Mark(m) => {
            // ldirectord passes `MARK 0 RIP RPORT`; ldir's ldirectord style needs an address, so
            // a small shell line puts the mark back in front of the real's address.
            let script = format!("exec {program} {m} 0 \"$1\" 0");
            let Ok(q) = shlex::try_quote(&script).map(|q| q.into_owned()) else {
                return CheckPlan::simple("on", None, &service);
            };
            p.fields
                .push(("command", format!("sh -c {q} check").into()));
            p.fields.push(("args", "mon".into()));
            if v.reals.iter().any(|r| r.port.is_some()) {
                w.push(
                    line,
                    "checkcommand",
                    "the command gets 0 as the real's port (ports of reals in a firewall-mark \
                     service are not passed)",
                );
            }
        }
    }
    p
}

fn negotiate_plan(v: &Virtual, reals: &[Real], w: &mut Warnings) -> CheckPlan {
    let service = v.service().to_string();
    let sline = v.service.as_ref().map_or(v.line, |s| s.line);
    // The directives this service's conversion has dealt with (used, or warned about already).
    let mut handled: HashSet<&'static str> = HashSet::new();
    let mut p = CheckPlan::simple("tcp", Some(true), &service);
    p.port = ldirectord_check_port(v, reals, w);
    match service.as_str() {
        "http" | "https" => {
            p.ty = if service == "http" { "http" } else { "https" };
            handled.extend(["httpmethod", "virtualhost", "request", "receive"]);
            if let Some(m) = &v.httpmethod {
                p.fields.push(("method", m.v.clone().into()));
            }
            if let Some(r) = &v.request {
                if valid_path(&r.v) {
                    p.fields.push(("path", r.v.clone().into()));
                } else {
                    w.push(
                        r.line,
                        "request",
                        format!(
                            "{} is not a path ldir can send (blanks or control characters); \
                             the check requests /",
                            shown(&r.v)
                        ),
                    );
                }
            }
            if let Some(h) = v.virtualhost.as_ref().filter(|h| !h.v.is_empty()) {
                if valid_path(&h.v) {
                    p.fields.push(("host", h.v.clone().into()));
                } else {
                    w.push(
                        h.line,
                        "virtualhost",
                        format!("{} is not a host name; ignored", shown(&h.v)),
                    );
                }
            }
            if let Some(r) = &v.receive {
                if v.httpmethod.as_ref().is_some_and(|m| m.v == "HEAD") {
                    w.push(
                        r.line,
                        "receive",
                        "a HEAD answer has no body to match (ldirectord's check could never \
                         succeed); ignored",
                    );
                } else if let Some(re) = regex_of(&r.v, r.line, "receive", w) {
                    p.fields.push(("regex", re.into()));
                }
            }
            // LWP follows redirects of GET and HEAD requests (requests_redirectable).
            p.fields.push(("follow_redirects", true.into()));
            if service == "https" {
                w.push(
                    sline,
                    "service",
                    "ldirectord does not verify https certificates: written verify = false (turn \
                     it on when the reals' certificates are valid)",
                );
                p.fields.push(("verify", false.into()));
            }
        }
        "http_proxy" | "ldaps" | "oracle" => {
            let why = match service.as_str() {
                "http_proxy" => "ldir has no proxy check",
                "ldaps" => "ldir's ldap check has no TLS",
                _ => "ldir has no oracle check",
            };
            w.push(
                sline,
                "service",
                format!("{service}: {why}; converted to a tcp connect check"),
            );
        }
        "smtp" | "submission" => p.ty = "smtp",
        "pop" | "pops" | "imap" | "imaps" => {
            p.ty = match service.as_str() {
                "pop" => "pop3",
                "pops" => "pop3s",
                "imap" => "imap",
                _ => "imaps",
            };
        }
        "ldap" => {
            p.ty = "ldap";
            handled.extend(["login", "passwd"]);
            match (&v.login, &v.passwd) {
                (Some(l), Some(pw)) => {
                    p.fields.push(("dn", l.v.clone().into()));
                    p.fields.push(("password", pw.v.clone().into()));
                }
                (Some(l), None) => w.push(
                    l.line,
                    "login",
                    "a bind DN without passwd proves nothing; the check binds anonymously",
                ),
                (None, Some(pw)) => w.push(
                    pw.line,
                    "passwd",
                    "a password without login; the check binds anonymously",
                ),
                (None, None) => {}
            }
            if v.request.is_some() || v.receive.is_some() {
                handled.extend(["request", "receive"]);
                let line = v
                    .request
                    .as_ref()
                    .or(v.receive.as_ref())
                    .map_or(0, |a| a.line);
                w.push(
                    line,
                    "request",
                    "ldir's ldap check binds and does not search (no base DN, no receive); \
                     request and receive ignored",
                );
            }
        }
        "nntp" => {
            // ldirectord's check: the greeting starts with 2 (classic-tools.md §1.5).
            p.ty = "simpletcp";
            p.fields.push(("expect", r"\A2".into()));
        }
        "dns" => {
            p.ty = "dns";
            handled.extend(["request", "receive"]);
            match &v.request {
                Some(r) => match dns_query(&r.v) {
                    (name, None) => p.fields.push(("name", name.into())),
                    (name, Some(ty)) => {
                        // ldir's [check] has no key for the record type: `type` is the check's.
                        w.push(
                            r.line,
                            "request",
                            format!(
                                "an address asks for its {ty} record ({name}), and ldir's [check] \
                                 cannot set the record type; converted to a ping check"
                            ),
                        );
                        return CheckPlan::simple("ping", Some(false), &service);
                    }
                },
                None => {
                    w.push(
                        sline,
                        "service",
                        "a dns check needs request (the name to look up; ldirectord's check \
                         without one never succeeds); converted to a ping check",
                    );
                    return CheckPlan::simple("ping", Some(false), &service);
                }
            }
            if let Some(r) = &v.receive {
                w.push(
                    r.line,
                    "receive",
                    "ldir's dns check wants NOERROR with an answer and does not match the \
                     answer's content; ignored",
                );
            }
            if v.protocol == Proto::Tcp {
                w.push(
                    sline,
                    "service",
                    "ldir queries DNS over udp (ldirectord used tcp for a tcp service)",
                );
            }
        }
        "mysql" => {
            p.ty = "mysql";
            handled.extend(["login", "passwd"]);
            match (&v.login, &v.passwd) {
                (Some(l), None) => p.fields.push(("user", l.v.clone().into())),
                (_, Some(pw)) => w.push(
                    pw.line,
                    "passwd",
                    "ldir's mysql check logs in only without a password; it reads the greeting \
                     (login and passwd ignored)",
                ),
                _ => {}
            }
        }
        "pgsql" => {
            p.ty = "pgsql";
            if let Some(l) = &v.login {
                handled.extend(["login", "database"]);
                p.fields.push(("user", l.v.clone().into()));
                if let Some(db) = &v.database {
                    p.fields.push(("database", db.v.clone().into()));
                }
            }
        }
        "radius" => match &v.secret {
            Some(s) => {
                p.ty = "radius";
                handled.extend(["secret", "login", "passwd"]);
                p.fields.push(("secret", s.v.clone().into()));
                if let Some(l) = &v.login {
                    p.fields.push(("user", l.v.clone().into()));
                }
                if let Some(pw) = &v.passwd {
                    p.fields.push(("password", pw.v.clone().into()));
                }
            }
            None => {
                w.push(
                    sline,
                    "service",
                    "a radius check needs secret; converted to a ping check",
                );
                return CheckPlan::simple("ping", Some(false), &service);
            }
        },
        "sip" => {
            p.ty = "sip";
            if let Some(l) = &v.login {
                handled.insert("login");
                // ldirectord's Request-URI is `sip:LOGIN`; ldir's is `sip:USER@REAL`.
                let user = l.v.split('@').next().unwrap_or("");
                if l.v.contains('@') {
                    w.push(
                        l.line,
                        "login",
                        "ldir sends OPTIONS to sip:USER@REAL: the part after @ is not used",
                    );
                }
                if !user.is_empty() {
                    p.fields.push(("user", user.to_string().into()));
                }
            }
        }
        "ftp" => {
            p.ty = "ftp";
            handled.extend(["login", "passwd", "request", "receive"]);
            // `service = ftp` logs in as anonymous unless login is given (read_config).
            let user = v.login.as_ref().map_or("anonymous", |l| l.v.as_str());
            p.fields.push(("user", user.to_string().into()));
            let pw = v
                .passwd
                .as_ref()
                .map_or("ldirectord@localhost", |p| p.v.as_str());
            p.fields.push(("password", pw.to_string().into()));
            if let Some(r) = &v.request {
                p.fields.push(("retr", r.v.clone().into()));
                if let Some(r) = &v.receive
                    && let Some(re) = regex_of(&r.v, r.line, "receive", w)
                {
                    p.fields.push(("expect", re.into()));
                }
            } else if let Some(r) = &v.receive {
                w.push(
                    r.line,
                    "receive",
                    "matches a file's content, and no request names the file; ignored",
                );
            }
        }
        "simpletcp" => {
            p.ty = "simpletcp";
            handled.extend(["request", "receive"]);
            if let Some(r) = &v.request {
                p.fields.push(("send", simpletcp_send(&r.v).into()));
            }
            let expect = match &v.receive {
                Some(r) => regex_of(&r.v, r.line, "receive", w),
                None => None,
            };
            // Any answer at all, as ldirectord's empty receive matches the first line read.
            p.fields
                .push(("expect", expect.unwrap_or_else(|| "(?s).".into()).into()));
        }
        _ => {
            // none: ldirectord's check_none, always up.
            p = CheckPlan::simple("on", None, &service);
        }
    }
    for (a, k) in [
        (&v.request, "request"),
        (&v.receive, "receive"),
        (&v.login, "login"),
        (&v.passwd, "passwd"),
        (&v.database, "database"),
        (&v.secret, "secret"),
        (&v.httpmethod, "httpmethod"),
        (&v.virtualhost, "virtualhost"),
    ] {
        if let Some(a) = a
            && !handled.contains(k)
        {
            w.push(
                a.line,
                k,
                format!(
                    "not used by ldir's {service} check (type = \"{}\"); ignored",
                    p.ty
                ),
            );
        }
    }
    p
}

/// ldirectord's DNS request as ldir's `name` and `type`: Net::DNS's `search` turns an address
/// into its PTR query (RFC 1035 §3.5, RFC 3596 §2.5); anything else is an A query.
fn dns_query(request: &str) -> (String, Option<&'static str>) {
    let name = request.trim_start_matches('/');
    match name.parse::<IpAddr>() {
        Ok(ip) => (ptr_name(ip), Some("PTR")),
        Err(_) => (name.to_string(), None),
    }
}

/// A path ldir's http check can send as is.
fn valid_path(p: &str) -> bool {
    !p.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A Perl `receive` regex as ldir's pattern, or a warning when the `regex` crate cannot read it
/// (look-around, back-references).
fn regex_of(re: &str, line: usize, k: &str, w: &mut Warnings) -> Option<String> {
    match Pattern::new(re) {
        Ok(_) => Some(re.to_string()),
        Err(e) => {
            w.push(
                line,
                k,
                format!(
                    "{} cannot be converted ({e}; ldir's regexes have no look-around or \
                     back-references); the check matches any answer",
                    shown(re)
                ),
            );
            None
        }
    }
}

/// ldirectord's simpletcp sends the request without its added `/`, with `\n` expanded and every
/// other backslash as is; ldir's `send` reads escapes, so those backslashes are doubled.
fn simpletcp_send(request: &str) -> String {
    let raw = request.strip_prefix('/').unwrap_or(request);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if chars.peek() == Some(&'n') {
                chars.next();
                out.push_str("\\n");
            } else {
                out.push_str("\\\\");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The PTR name of an address (RFC 1035 §3.5, RFC 3596 §2.5).
fn ptr_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::new();
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa"
        }
    }
}

/// A real's quoted `"request", "receive"` as `[real.check]` fields of the virtual's kind.
fn real_overrides(
    plan: &CheckPlan,
    v: &Virtual,
    line: usize,
    req: &str,
    rec: &str,
    w: &mut Warnings,
) -> Vec<(&'static str, Value)> {
    let k = if v.v6 { "real6" } else { "real" };
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    let ignored = |w: &mut Warnings, why: &str| {
        w.push(
            line,
            k,
            format!("the quoted request/receive: {why}; ignored"),
        )
    };
    match plan.ty {
        "http" | "https" => {
            let schema = if plan.service == "http_proxy" {
                "http"
            } else {
                plan.service.as_str()
            };
            if req.contains(&format!("{schema}://")) {
                ignored(
                    w,
                    "a full URL (another host) has no equivalent; the real's own address is checked",
                );
                return out;
            }
            if valid_path(req) {
                out.push(("path", req.to_string().into()));
            }
            if rec.is_empty() {
                // An empty receive accepts any 2xx: the virtual's regex must not apply.
                if plan.fields.iter().any(|(k, _)| *k == "regex") {
                    out.push(("regex", "".into()));
                }
            } else if let Some(re) = regex_of(rec, line, k, w) {
                out.push(("regex", re.into()));
            }
        }
        "simpletcp" if plan.service == "simpletcp" => {
            out.push(("send", simpletcp_send(req).into()));
            let re = if rec.is_empty() {
                Some("(?s).".to_string())
            } else {
                regex_of(rec, line, k, w)
            };
            if let Some(re) = re {
                out.push(("expect", re.into()));
            }
        }
        "ftp" => {
            out.push(("retr", req.to_string().into()));
            if !rec.is_empty()
                && let Some(re) = regex_of(rec, line, k, w)
            {
                out.push(("expect", re.into()));
            }
        }
        "dns" => match dns_query(req) {
            (name, None) => out.push(("name", name.into())),
            (_, Some(ty)) => {
                ignored(
                    w,
                    &format!("ldir's [check] cannot set the {ty} record type an address needs"),
                );
                return out;
            }
        },
        ty => {
            ignored(
                w,
                &format!("a type = \"{ty}\" check has no request or receive to override"),
            );
            return out;
        }
    }
    // The merged check must still be valid; otherwise the virtual's check applies to this real.
    let mut t = toml::Table::new();
    t.insert("kind".into(), plan.ty.into());
    // The port does not change what these fields may hold.
    t.insert("port".into(), int(plan.port.unwrap_or(1)));
    for (key, val) in plan.fields.iter().chain(out.iter()) {
        t.insert((*key).into(), val.clone());
    }
    if let Err(e) = validate_spec(t) {
        ignored(w, &format!("not valid for ldir's check ({e})"));
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(c: &Conversion, name: &str) -> toml::Table {
        let f = c
            .files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", names(c)));
        f.text
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", f.text))
    }

    fn names(c: &Conversion) -> Vec<&str> {
        c.files.iter().map(|f| f.name.as_str()).collect()
    }

    /// The value at a dotted path (`virtual.address`, `real.0.weight`).
    fn get(t: &toml::Table, path: &str) -> Option<Value> {
        let mut v = Value::Table(t.clone());
        for part in path.split('.') {
            v = match (&v, part.parse::<usize>()) {
                (Value::Array(a), Ok(i)) => a.get(i)?.clone(),
                (Value::Table(t), _) => t.get(part)?.clone(),
                _ => return None,
            };
        }
        Some(v)
    }

    fn s(v: &str) -> Option<Value> {
        Some(Value::String(v.into()))
    }

    fn i(v: i64) -> Option<Value> {
        Some(Value::Integer(v))
    }

    fn warned(c: &Conversion, line: usize, directive: &str, words: &str) -> bool {
        c.warnings
            .iter()
            .any(|w| w.line == line && w.directive == directive && w.message.contains(words))
    }

    fn assert_warned(c: &Conversion, line: usize, directive: &str, words: &str) {
        assert!(
            warned(c, line, directive, words),
            "no warning `line {line}: {directive}: ...{words}...` in {:#?}",
            c.warnings
        );
    }

    /// One virtual block with `body` (tab-indented lines) after `virtual=192.0.2.100:80`: the
    /// conversion and the virtual's file.
    fn one(body: &str) -> (Conversion, toml::Table) {
        let text = format!("virtual=192.0.2.100:80\n{body}");
        let c = convert(&text);
        let name = c
            .files
            .get(1)
            .map_or("none", |f| f.name.as_str())
            .to_string();
        let t = table(&c, &name);
        // ldir's own [check] keys are never a kind's field.
        let check = t["check"].as_table().unwrap();
        assert!(check["type"].is_str());
        (c, t)
    }

    #[test]
    fn globals_keep_ldirectords_defaults() {
        let c = convert("virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n");
        let g = table(&c, "ldir.toml");
        assert_eq!(get(&g, "global.quiescent"), Some(false.into()));
        assert_eq!(get(&g, "global.readd_quiescent"), Some(false.into()));
        assert_eq!(get(&g, "global.cleanstop"), Some(true.into()));
        assert_eq!(get(&g, "check.interval"), s("10s"));
        assert_eq!(
            get(&g, "check.timeout"),
            s("30s"),
            "negotiatetimeout's default"
        );
        assert_eq!(get(&g, "check.rise"), i(1));
        assert_eq!(get(&g, "check.fall"), i(1));
        assert_eq!(get(&g, "alert"), None);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn global_directives_map() {
        let c = convert(
            "checktimeout=3\ncheckinterval=7\nfailurecount=4\nquiescent=yes\nreaddquiescent=yes\n\
             cleanstop=no\nmaintenancedir=/etc/ha.d/maint\nfallbackcommand=/usr/bin/sorry -v\n\
             emailalert=\"ops@example.org\"\nemailalertfreq=600\nemailalertstatus=all\n\
             emailalertfrom=lb@example.org\nautoreload=yes\nfork=yes\nsupervised\n\
             virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n\tchecktype=connect\n",
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let g = table(&c, "ldir.toml");
        for (path, want) in [
            ("global.quiescent", Some(true.into())),
            ("global.readd_quiescent", Some(true.into())),
            ("global.cleanstop", Some(false.into())),
            ("global.maintenance_dir", s("/etc/ha.d/maint")),
            ("global.fallback_command", s("/usr/bin/sorry -v")),
            ("check.interval", s("7s")),
            // checktimeout stands in for negotiatetimeout when only it is given (ld_setup).
            ("check.timeout", s("3s")),
            ("check.fall", i(4)),
            ("alert.command", s("/usr/sbin/sendmail -t")),
            ("alert.to", s("ops@example.org")),
            ("alert.from", s("lb@example.org")),
            ("alert.repeat", s("600s")),
            ("alert.on", Some(Value::Array(vec!["all".into()]))),
        ] {
            assert_eq!(get(&g, path), want, "{path}");
        }
        // A connect check uses checktimeout, the same 3 s here: not repeated in the virtual.
        let v = table(&c, "192.0.2.100-80.toml");
        assert_eq!(get(&v, "check.type"), s("tcp"));
        assert_eq!(get(&v, "check.timeout"), None);
    }

    #[test]
    fn timeouts_follow_the_checktype() {
        let text = "negotiatetimeout=20\nchecktimeout=4\n\
                    virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n\
                    virtual=192.0.2.101:80\n\treal=192.0.2.1:80 gate\n\tchecktype=connect\n\
                    virtual=192.0.2.102:80\n\treal=192.0.2.1:80 gate\n\tchecktype=ping\n\tchecktimeout=2\n";
        let c = convert(text);
        assert_eq!(get(&table(&c, "ldir.toml"), "check.timeout"), s("20s"));
        assert_eq!(
            get(&table(&c, "192.0.2.100-80.toml"), "check.timeout"),
            None
        );
        assert_eq!(
            get(&table(&c, "192.0.2.101-80.toml"), "check.timeout"),
            s("4s")
        );
        assert_eq!(
            get(&table(&c, "192.0.2.102-80.toml"), "check.timeout"),
            s("2s")
        );
    }

    #[test]
    fn virtual_directives_map() {
        let (c, t) = one(
            "\treal=192.0.2.1:80 masq 7\n\tscheduler=wlc\n\tpersistent=600\n\tnetmask=255.255.255.0\n\
             \tschedflags=sh-fallback,sh-port\n\tquiescent=no\n\tcleanstop=no\n\
             \tfallback=192.0.2.50 masq\n\tfallbackcommand=\"/usr/bin/sorry\"\n\
             \tservicename=web\n\tcomment=the web\n\tfailurecount=3\n\tcheckport=8080\n\
             \tservice=http\n\trequest=\"health\"\n\treceive=\"^OK\"\n\thttpmethod=get\n\
             \tvirtualhost=\"www.example.org\"\n\temailalert=web@example.org\n\temailalertfreq=60\n\
             \temailalertstatus=none\n",
        );
        assert_eq!(names(&c), ["ldir.toml", "web.toml"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (path, want) in [
            ("virtual.address", s("192.0.2.100:80")),
            ("virtual.protocol", s("tcp")),
            ("virtual.scheduler", s("wlc")),
            (
                "virtual.scheduler_flags",
                Some(Value::Array(vec!["sh-fallback".into(), "sh-port".into()])),
            ),
            ("virtual.persistent", s("600s")),
            ("virtual.netmask", s("255.255.255.0")),
            ("virtual.forwarding", s("masq")),
            ("virtual.quiescent", Some(false.into())),
            ("virtual.cleanstop", Some(false.into())),
            // The port defaults to the virtual's (parse_fallback).
            ("virtual.fallback", s("192.0.2.50:80")),
            ("virtual.fallback_forwarding", s("masq")),
            ("virtual.fallback_command", s("/usr/bin/sorry")),
            ("virtual.name", None),
            ("virtual.comment", s("the web")),
            ("check.type", s("http")),
            ("check.fall", i(3)),
            ("check.port", i(8080)),
            ("check.path", s("/health")),
            ("check.regex", s("^OK")),
            ("check.method", s("GET")),
            ("check.host", s("www.example.org")),
            ("check.follow_redirects", Some(true.into())),
            ("alert.command", s("/usr/sbin/sendmail -t")),
            ("alert.to", s("web@example.org")),
            ("alert.repeat", s("60s")),
            ("alert.on", Some(Value::Array(vec![]))),
            ("real.0.address", s("192.0.2.1:80")),
            ("real.0.weight", i(7)),
            ("real.0.forwarding", None),
        ] {
            assert_eq!(get(&t, path), want, "{path}");
        }
    }

    #[test]
    fn service_and_protocol_follow_the_port() {
        let c = convert(
            "virtual=192.0.2.100:domain\n\treal=192.0.2.1:53 gate\n\trequest=\"www.example.org\"\n\
             virtual=192.0.2.100:http\n\treal=192.0.2.1:http gate\n\
             virtual=192.0.2.100:25\n\treal=192.0.2.1 gate\n\
             virtual=192.0.2.100:4000\n\treal=192.0.2.1 gate\n",
        );
        let dns = table(&c, "192.0.2.100-53-udp.toml");
        assert_eq!(get(&dns, "virtual.protocol"), s("udp"));
        assert_eq!(get(&dns, "check.type"), s("dns"));
        assert_eq!(get(&dns, "check.name"), s("www.example.org"));
        let http = table(&c, "192.0.2.100-80.toml");
        assert_eq!(get(&http, "check.type"), s("http"));
        assert_eq!(get(&http, "real.0.address"), s("192.0.2.1:80"));
        assert_eq!(
            get(&table(&c, "192.0.2.100-25.toml"), "check.type"),
            s("smtp")
        );
        // No service for the port: ldirectord's `none`, always up.
        assert_eq!(
            get(&table(&c, "192.0.2.100-4000.toml"), "check.type"),
            s("on")
        );
    }

    #[test]
    fn every_service_has_a_kind() {
        for (service, extra, kind) in [
            ("dns", "\trequest=\"www.example.org\"\n", "dns"),
            ("dns", "\trequest=\"192.0.2.7\"\n", "ping"),
            ("dns", "", "ping"),
            ("ftp", "", "ftp"),
            ("http", "", "http"),
            ("https", "", "https"),
            ("http_proxy", "", "tcp"),
            ("imap", "", "imap"),
            ("imaps", "", "imaps"),
            ("ldap", "", "ldap"),
            ("ldaps", "", "tcp"),
            ("mysql", "", "mysql"),
            ("nntp", "", "simpletcp"),
            ("none", "", "on"),
            ("oracle", "", "tcp"),
            ("pop", "", "pop3"),
            ("pops", "", "pop3s"),
            ("radius", "\tsecret=\"s3\"\n", "radius"),
            ("radius", "", "ping"),
            ("pgsql", "", "pgsql"),
            ("sip", "", "sip"),
            ("smtp", "", "smtp"),
            ("submission", "", "smtp"),
            ("simpletcp", "", "simpletcp"),
        ] {
            let (c, t) = one(&format!(
                "\treal=192.0.2.1:80 gate\n\tservice={service}\n{extra}"
            ));
            assert_eq!(
                get(&t, "check.type"),
                s(kind),
                "{service}: {:?}",
                c.warnings
            );
            // Whatever was written is valid for the probe kind.
            if !matches!(kind, "on" | "off") {
                let mut check = get(&t, "check").unwrap().as_table().unwrap().clone();
                let ty = check.remove("type").unwrap();
                check.insert("kind".into(), ty);
                check.entry("port").or_insert(int(80));
                validate_spec(check).unwrap_or_else(|e| panic!("{service}: {e}"));
            }
        }
        // An address asks for a PTR record (Net::DNS's search), which ldir cannot ask for.
        let (c, _) = one("\treal=192.0.2.1:80 gate\n\tservice=dns\n\trequest=\"192.0.2.7\"\n");
        assert_warned(&c, 4, "request", "PTR record (7.2.0.192.in-addr.arpa)");
        assert_eq!(
            ptr_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn checktypes_map() {
        for (ct, kind) in [
            ("negotiate", "http"),
            ("connect", "tcp"),
            ("ping", "ping"),
            ("on", "on"),
            ("off", "off"),
            ("external", "external"),
            ("external-perl", "external"),
            ("3", "http"),
        ] {
            let (c, t) = one(&format!("\treal=192.0.2.1:80 gate\n\tchecktype={ct}\n"));
            assert_eq!(get(&t, "check.type"), s(kind), "{ct}: {:?}", c.warnings);
        }
        let (c, _) = one("\treal=192.0.2.1:80 gate\n\tchecktype=3\n");
        assert_warned(
            &c,
            3,
            "checktype",
            "3 connect checks between negotiate checks",
        );
        let (c, t) = one("\treal=192.0.2.1:80 gate\n\tchecktype=bogus\n");
        assert_warned(&c, 3, "checktype", "unknown check type");
        assert_eq!(get(&t, "check.type"), s("http"));
        // connect on udp is a ping in ldirectord.
        let (c, t) =
            one("\treal=192.0.2.1:80 gate\n\tprotocol=udp\n\tchecktype=connect\n\tcheckcount=3\n");
        assert_eq!(get(&t, "check.type"), s("ping"));
        assert_eq!(get(&t, "check.count"), i(3));
        assert_warned(&c, 4, "checktype", "is a ping in ldirectord");
        let (c, t) = one("\treal=192.0.2.1:80 gate\n\tchecktype=external\n\tcheckport=81\n");
        assert_eq!(get(&t, "check.port"), None);
        assert_warned(&c, 4, "checkport", "does not use it");
        // checkcount elsewhere is ignored with a word.
        let (c, _) = one("\treal=192.0.2.1:80 gate\n\tchecktype=connect\n\tcheckcount=3\n");
        assert_warned(&c, 4, "checkcount", "only ping checks repeat");
    }

    #[test]
    fn external_checks_get_ldirectords_arguments() {
        let (_, t) = one(
            "\treal=192.0.2.1:80 gate\n\tchecktype=external\n\tcheckcommand=\"/usr/lib/check it\"\n",
        );
        assert_eq!(get(&t, "check.command"), s("'/usr/lib/check it'"));
        assert_eq!(get(&t, "check.args"), s("ldirectord"));
        assert_eq!(get(&t, "check.virtual"), s("192.0.2.100:80"));
        let spec = spec_of(&t);
        let common::probe::Check::External(e) = &spec.check else {
            panic!("{spec:?}")
        };
        assert_eq!(
            e.argv("192.0.2.1".parse().unwrap(), Some(80)).unwrap(),
            ["/usr/lib/check it", "192.0.2.100", "80", "192.0.2.1", "80"]
        );
        // Without checkcommand: ldirectord's /bin/true.
        let (_, t) = one("\treal=192.0.2.1:80 gate\n\tchecktype=external\n");
        assert_eq!(get(&t, "check.command"), s("/bin/true"));
    }

    /// A firewall mark has no address: a shell line puts `MARK 0` in front, as ldirectord passes
    /// them. Run for real through /bin/sh with echo as the check.
    #[test]
    fn external_checks_of_a_firewall_mark_get_the_mark() {
        let c = convert(
            "virtual=7\n\treal=192.0.2.70 gate\n\tchecktype=external\n\tcheckcommand=/bin/echo\n",
        );
        let t = table(&c, "fwmark-7.toml");
        let spec = spec_of(&t);
        let common::probe::Check::External(e) = &spec.check else {
            panic!("{spec:?}")
        };
        let argv = e.argv("192.0.2.70".parse().unwrap(), None).unwrap();
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output()
            .expect("/bin/sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "7 0 192.0.2.70 0\n");
    }

    fn spec_of(t: &toml::Table) -> Spec {
        let mut check = get(t, "check").unwrap().as_table().unwrap().clone();
        let ty = check.remove("type").unwrap();
        check.insert("kind".into(), ty);
        Value::Table(check).try_into().unwrap()
    }

    #[test]
    fn reals_ranges_weights_thresholds_and_overrides() {
        let (c, t) = one("\treal=192.0.2.10->192.0.2.19:8080 gate 10\n\
             \treal=192.0.2.20:80 masq 5 \"/other.html\", \"Other\" l:10 u:100\n\
             \treal=192.0.2.21 ipip\n\
             \trequest=\"index.html\"\n\treceive=\"Main\"\n");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (path, want) in [
            ("virtual.forwarding", s("gate")),
            ("real.0.address", s("192.0.2.10->192.0.2.19:8080")),
            ("real.0.weight", i(10)),
            ("real.1.address", s("192.0.2.20:80")),
            ("real.1.forwarding", s("masq")),
            ("real.1.weight", i(5)),
            ("real.1.lower_threshold", i(10)),
            ("real.1.upper_threshold", i(100)),
            ("real.1.check.path", s("/other.html")),
            ("real.1.check.regex", s("Other")),
            ("real.2.address", s("192.0.2.21:80")),
            ("real.2.weight", i(1)),
            ("real.2.forwarding", s("ipip")),
            ("real.2.check", None),
        ] {
            assert_eq!(get(&t, path), want, "{path}");
        }
        // An empty receive accepts any answer, overriding the virtual's regex.
        let (_, t) = one("\treal=192.0.2.20:80 gate 1 \"/x\", \"\"\n\treceive=\"Main\"\n");
        assert_eq!(get(&t, "real.0.check.regex"), s(""));
    }

    #[test]
    fn bad_reals_are_skipped_with_a_reason() {
        let (c, t) = one("\treal=192.0.2.9->192.0.2.1:80 gate\n\
             \treal=192.0.2.1:80 bridge\n\
             \treal=192.0.2.1:80 gate 70000\n\
             \treal=web1:80 gate\n\
             \treal=192.0.2.1:80 gate 1 junk\n\
             \treal=198.18.0.0->198.19.0.0:80 gate\n\
             \treal=192.0.2.1:nosuchport gate\n\
             \treal=192.0.2.2:80 gate\n\
             \treal=192.0.2.2:80 masq\n\
             \treal6=[2001:db8::1]:80 gate\n");
        for (line, words) in [
            (2, "first address is after its last"),
            (3, "forwarding must be gate, masq or ipip"),
            (4, "weight \"70000\" out of range"),
            (5, "is a host name"),
            (6, "cannot read the line around \"junk\""),
            (7, "more than ldir's 65536"),
            (8, "unknown port"),
            (10, "the same real server again"),
        ] {
            assert_warned(&c, line, "real", words);
        }
        assert_warned(&c, 11, "real6", "real6 in a virtual block");
        assert_eq!(get(&t, "real.0.address"), s("192.0.2.2:80"));
        assert_eq!(get(&t, "real.1"), None);
        // Overlapping ranges are one real twice.
        let (c, t) = one(
            "\treal=192.0.2.1->192.0.2.9:80 gate\n\treal=192.0.2.5:80 gate\n\treal=192.0.2.9->192.0.2.12:80 gate\n\treal=192.0.2.10:81 gate\n",
        );
        assert_warned(&c, 3, "real", "the same real server again");
        assert_warned(&c, 4, "real", "the same real server again");
        assert_eq!(get(&t, "real.1.address"), s("192.0.2.10:81"));
    }

    #[test]
    fn ipv6_services() {
        let c = convert(
            "fallback6=[2001:db8::250]:80\n\
             virtual6=[2001:db8::100]:443\n\treal6=[2001:db8::10]:443 masq 3\n\
             \treal6=[2001:db8::20]->[2001:db8::2f]:443 masq\n\tpersistent=300\n\tnetmask=64\n\
             \tservice=https\n\
             virtual6=[2001:db8::100]:80\n\treal6=[2001:db8::10] gate\n\
             virtual=[2001:db8::100]:80\n\treal=192.0.2.1 gate\n",
        );
        let t = table(&c, "2001-db8--100-443.toml");
        for (path, want) in [
            ("virtual.address", s("[2001:db8::100]:443")),
            ("virtual.netmask", i(64)),
            ("virtual.fallback", s("[2001:db8::250]:80")),
            ("real.0.address", s("[2001:db8::10]:443")),
            ("real.1.address", s("[2001:db8::20]->[2001:db8::2f]:443")),
            ("check.type", s("https")),
            ("check.verify", Some(false.into())),
        ] {
            assert_eq!(get(&t, path), want, "{path}");
        }
        assert_warned(&c, 4, "real6", "ldirectord refuses IPv6 ranges");
        assert_warned(&c, 7, "service", "does not verify https certificates");
        let t = table(&c, "2001-db8--100-80.toml");
        assert_eq!(get(&t, "real.0.address"), s("[2001:db8::10]:80"));
        assert_warned(&c, 10, "virtual", "needs virtual6=");
    }

    #[test]
    fn firewall_marks() {
        let c = convert(
            "virtual=7\n\treal=192.0.2.70 gate\n\treal=192.0.2.71:8080 gate\n\tprotocol=tcp\n\
             virtual6=8\n\treal6=[2001:db8::70] gate\n\tservice=http\n\
             virtual=9\n\treal=192.0.2.70 gate\n\tchecktype=connect\n",
        );
        let t = table(&c, "fwmark-7.toml");
        assert_eq!(get(&t, "virtual.fwmark"), i(7));
        assert_eq!(get(&t, "virtual.protocol"), None);
        assert_eq!(get(&t, "virtual.family"), None);
        // ldirectord's fwmark services default to service none: always up.
        assert_eq!(get(&t, "check.type"), s("on"));
        assert_eq!(get(&t, "real.0.address"), s("192.0.2.70"));
        assert_eq!(get(&t, "real.1.address"), s("192.0.2.71:8080"));
        assert_warned(&c, 4, "protocol", "fwm");
        let t = table(&c, "fwmark-8-inet6.toml");
        assert_eq!(get(&t, "virtual.family"), s("inet6"));
        assert_eq!(get(&t, "real.0.address"), s("2001:db8::70"));
        // The reals have no port: ldirectord checks the service's (ld_checkport).
        assert_eq!(get(&t, "check.port"), i(80));
        assert_eq!(get(&t, "check.type"), s("http"));
        // A connect check without any port has nothing to connect to; a ping instead.
        let t = table(&c, "fwmark-9.toml");
        assert_eq!(get(&t, "check.type"), s("ping"));
        assert_warned(&c, 10, "checktype", "not valid");
    }

    #[test]
    fn block_syntax_follows_read_config() {
        let c = convert(
            "# comment\n\
             virtual = 192.0.2.100:80\n\
             \treal=192.0.2.1:80 gate # a comment after a real\n\
             # a comment inside the block does not end it\n\
             \x20\x20\x20\x20real=192.0.2.2:80 gate\n\
             \treceive=\"a#b\"\n\
             \n\
             \treal=192.0.2.3:80 gate\n\
             checkinterval=3 # globals keep their comment, the number is read\n\
             \x20\x20real=192.0.2.4:80 gate\n\
             nonsense\n\
             bogus=1\n",
        );
        let t = table(&c, "192.0.2.100-80.toml");
        assert_eq!(get(&t, "real.1.address"), s("192.0.2.2:80"));
        assert_eq!(get(&t, "real.2"), None);
        assert_warned(&c, 6, "receive", "`#` starts a comment even inside quotes");
        assert_warned(&c, 8, "real", "indented line outside a virtual block");
        assert_eq!(get(&table(&c, "ldir.toml"), "check.interval"), s("3s"));
        assert_warned(&c, 10, "real", "indented line outside a virtual block");
        assert_warned(&c, 11, "nonsense", "unknown global directive");
        assert_warned(&c, 12, "bogus", "unknown global directive");
    }

    #[test]
    fn directives_without_a_home_are_named_with_their_line() {
        let c = convert(
            "callback=\"/usr/bin/reloaded\"\nlogfile=\"/var/log/ld.log\"\nexecute=other.cf\n\
             smtp=192.0.2.25\nautoreload=no\ntimeout=5\nconnecttimeout=5\n\
             virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n\tmonitorfile=/var/log/m\n\
             \tload=\"x\"\n\tsmtp=192.0.2.26\n\tconnecttimeout=3\n\tpersistent=0\n\
             \tnetmask=255.255.255.0\n\tops=yes\n\tcheckinterval=5\n\tsecret=\"s\"\n",
        );
        for (line, directive, words) in [
            (
                1,
                "callback",
                "no equivalent; ldir re-reads its files itself",
            ),
            (2, "logfile", "no equivalent"),
            (3, "execute", "no equivalent"),
            (4, "smtp", "relay through \"192.0.2.25\""),
            (5, "autoreload", "always reloads"),
            (6, "timeout", "obsolete"),
            (7, "connecttimeout", "obsolete"),
            (10, "monitorfile", "no equivalent"),
            (11, "load", "no equivalent"),
            (12, "smtp", "no equivalent"),
            (13, "connecttimeout", "obsolete"),
            (14, "persistent", "ipvsadm refuses -p 0"),
            (15, "netmask", "only applies with persistent"),
            (16, "ops", "udp services only"),
            (17, "checkinterval", "unless fork=yes"),
            (18, "secret", "not used by ldir's http check"),
        ] {
            assert_warned(&c, line, directive, words);
        }
        assert_eq!(
            c.warnings[0].to_string(),
            "line 1: callback: no equivalent; ldir re-reads its files itself (inotify, SIGHUP); ignored"
        );
        let t = table(&c, "192.0.2.100-80.toml");
        assert_eq!(get(&t, "check.interval"), s("5s"));
    }

    #[test]
    fn names_are_unique_words() {
        let c = convert(
            "virtual=192.0.2.100:80\n\tservicename=web\n\
             virtual=192.0.2.101:80\n\tservicename=web\n\
             virtual=192.0.2.102:80\n\tservicename=ldir\n\
             virtual=192.0.2.103:80\n\tservicename=.hidden/../x y\n\
             virtual=192.0.2.104:80\n\tservicename=\"quoted\" \\ name\n",
        );
        assert_eq!(
            names(&c),
            [
                "ldir.toml",
                "web.toml",
                "web-2.toml",
                "ldir-2.toml",
                "hidden-..-x-y.toml",
                "quoted-name.toml"
            ]
        );
        assert_eq!(get(&table(&c, "web-2.toml"), "virtual.name"), None);
        assert_warned(&c, 4, "servicename", "is named \"web-2\"");
        assert_eq!(
            get(&table(&c, "quoted-name.toml"), "virtual.name"),
            s("\"quoted\"-\\-name")
        );
    }

    #[test]
    fn values_survive_toml_escaping() {
        let nasty = "a\"b\\c'd\u{e9}\u{1F600}$x";
        let (c, t) = one(&format!(
            "\treal=192.0.2.1:80 gate\n\tcomment={nasty}\n\tservice=simpletcp\n\
             \trequest=\"{nasty}\\n\"\n\treceive=\"{}\"\n",
            regex::escape(nasty)
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(get(&t, "virtual.comment"), s(nasty));
        // What ldir sends is what ldirectord sent: the request, `\n` expanded, no `/`.
        let send = get(&t, "check.send").unwrap();
        let bytes = common::probe::unescape(send.as_str().unwrap()).unwrap();
        assert_eq!(bytes, format!("{nasty}\n").as_bytes());
        assert_eq!(simpletcp_send("/a\\\\nb\\x"), "a\\\\\\nb\\\\x");
    }

    #[test]
    fn shell_syntax_in_commands_keeps_its_meaning() {
        let c = convert(
            "fallbackcommand=/usr/bin/logger -t ld $1 | cat\n\
             virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n",
        );
        let g = table(&c, "ldir.toml");
        let cmd = get(&g, "global.fallback_command").unwrap();
        let words = shlex::split(cmd.as_str().unwrap()).unwrap();
        assert_eq!(
            words,
            [
                "sh",
                "-c",
                "/usr/bin/logger -t ld $1 | cat \"$@\"",
                "fallbackcommand"
            ]
        );
        assert_warned(&c, 1, "fallbackcommand", "shell syntax");
    }

    #[test]
    fn fallbacks() {
        let c = convert(
            "fallback=192.0.2.250\n\
             virtual=192.0.2.100:80\n\treal=192.0.2.1:80 gate\n\
             virtual=192.0.2.100:443\n\treal=192.0.2.1:443 gate\n\tfallback=192.0.2.1:443\n\
             virtual=192.0.2.100:25\n\treal=192.0.2.1:25 gate\n\tfallback=sorry.example.org:25\n\
             virtual=192.0.2.100:26\n\treal=192.0.2.1:26 gate\n\tfallback=192.0.2.9:26 bridge\n",
        );
        // The global fallback without a port takes each virtual's.
        assert_eq!(
            get(&table(&c, "192.0.2.100-80.toml"), "virtual.fallback"),
            s("192.0.2.250:80")
        );
        assert_eq!(
            get(&table(&c, "192.0.2.100-443.toml"), "virtual.fallback"),
            None
        );
        assert_warned(&c, 6, "fallback", "one of the reals");
        assert_warned(&c, 9, "fallback", "host name");
        assert_warned(&c, 12, "fallback", "forwarding must be gate, masq or ipip");
    }

    #[test]
    fn nothing_usable() {
        for text in [
            "",
            "checktimeout=3\n",
            "virtual=www.example.org:80\n\treal=192.0.2.1:80 gate\n",
            "virtual=192.0.2.1:80\nvirtual=192.0.2.1:80\n"
                .repeat(0)
                .as_str(),
            "\treal=192.0.2.1:80 gate\n",
        ] {
            let c = convert(text);
            assert!(!c.usable, "{text:?}");
            assert!(
                c.warnings
                    .iter()
                    .any(|w| w.line == 0 && w.message.contains("no virtual service")),
                "{:?}",
                c.warnings
            );
        }
        let c = convert("virtual=192.0.2.1:80\n\treal=192.0.2.1:80 gate\nvirtual=192.0.2.1:80\n");
        assert!(c.usable);
        assert_warned(&c, 3, "virtual", "the same virtual service again");
        assert_eq!(c.files.len(), 2);
        let c = convert("virtual=192.0.2.1\n\treal=192.0.2.1:80 gate\n");
        assert_warned(&c, 1, "virtual", "read as firewall mark 192");
    }

    /// Files and garbage: nothing panics, whatever comes out is TOML.
    #[test]
    fn hostile_input_never_panics() {
        let mut inputs: Vec<String> = vec![
            "a".repeat(1 << 20),
            format!("virtual={}\n", "9".repeat(1 << 16)),
            format!("virtual=192.0.2.1:80\n\treal={}\n", "1.".repeat(1 << 16)),
            format!(
                "virtual=192.0.2.1:80\n\treal=192.0.2.1:80 gate {} \"{}\", \"{}\"\n",
                "9".repeat(400),
                "\"".repeat(10_000),
                "(".repeat(1000)
            ),
            format!("virtual=192.0.2.1:80\n\tservicename={}\n", "\u{0}\u{7}\u{202e}".repeat(1000)),
            format!("virtual=192.0.2.1:80\n\treceive=\"{}\"\n", "a{1000}{1000}".repeat(10)),
            "virtual=192.0.2.1:80\n\treal=0.0.0.0->255.255.255.255:80 gate\n".into(),
            "virtual6=[::]:65535\n\treal6=[::]->[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:0 gate 65535 l:4294967296\n".into(),
            "virtual=4294967296\nvirtual=0\nvirtual=1\n\tchecktype=99999999999999999999999\n".into(),
        ];
        // Deterministic junk: bytes of every value, lines of every length.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..50 {
            let mut s = String::from("virtual=192.0.2.1:80\n");
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let c = char::from_u32(x % 0x3000).unwrap_or('?');
                s.push(if x.is_multiple_of(7) {
                    '\n'
                } else if x.is_multiple_of(11) {
                    '\t'
                } else {
                    c
                });
            }
            inputs.push(s);
        }
        for text in &inputs {
            let c = convert(text);
            for f in &c.files {
                f.text
                    .parse::<toml::Table>()
                    .unwrap_or_else(|e| panic!("{e}\n{}", f.text));
            }
            for w in &c.warnings {
                assert!(w.to_string().len() < 1000, "{w}");
            }
        }
    }
}
