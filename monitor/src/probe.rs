//! `monitor probe`: checks targets once (or every `--every`) with any probe kind and prints one line
//! per result, for shell pipelines and cron.
//!
//! ```text
//! monitor probe http://192.0.2.13/health --expect 200-299 --timeout 2s
//! monitor probe tcp 192.0.2.13:22 192.0.2.14:22
//! monitor probe ping 192.0.2.13
//! monitor probe dns 192.0.2.53 --name example.org --type A
//! cat servers | monitor probe https - --host www.example.org --json
//! ```
//! Output: `up 192.0.2.13:80 http 12.3ms 200 OK` or `down 192.0.2.13:80 http 2000.0ms timeout after
//! 2s`, in the order the targets were given; with `--json` one object per line with the same
//! fields. Exit status ([`Exit`]): 0 every target up, 1 any down, 2 usage (bad option, bad target,
//! an option that does not apply to the kind).
//!
//! The options are turned into a [`Spec`] through the same serde schema as the configuration files,
//! so the command line and `ldir`/`monitor` configurations accept and reject the same things: each
//! option is a field of the kind, and the schema's verdict comes back as data
//! (the `options` module) that names the option, what is wrong and what the option is for.
//! Targets run concurrently (`--concurrency`). With `--every`, the probes run on the shared engine
//! ([`common::probe::Engine`]) until `--rounds` results per target were printed (or forever).
//! `out` may be buffered: it is flushed whenever no further result is waiting (with `--every`, at
//! most 50 ms after a result), so every line appears as soon as its check is done, or nearly.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use clap::Args;
use common::config::Duration;
use common::daemon::Exit;
use common::probe::{Check, Engine, EngineOptions, Outcome, Probe, Prober, Spec};
use serde_json::json;

mod options;

use options::{FieldError, Given, Value, fields};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

/// `monitor probe` options.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit status: 0 all targets up, 1 any target down, 2 usage error.\n\
Kinds: tcp http https ping dns udp simpletcp external smtp ftp pop3 imap pop3s imaps sip radius ldap mysql pgsql.\n\
Targets: 192.0.2.13, 192.0.2.13:80, [2001:db8::13]:80, http(s)://192.0.2.13:8080/path, or - for one per line on stdin."
)]
pub struct ProbeArgs {
    /// The probe kind, or a URL (http://…, https://…) that gives kind, target, port and path at once.
    #[arg(value_name = "KIND|URL")]
    pub kind: String,
    /// Targets: `ip`, `ip:port`, `[ipv6]:port`, a URL, or `-` to read them from stdin.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// How long each check may take.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,
    /// Local address to send from.
    #[arg(long, value_name = "IP")]
    pub source: Option<String>,
    /// Port, for targets given without one (default: the kind's well-known port).
    #[arg(long)]
    pub port: Option<u16>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Checks in flight at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub concurrency: usize,
    /// Repeat: check every target at this interval (first checks spread over one interval).
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// With --every: stop after this many results per target (default: run until killed).
    #[arg(long, value_name = "N", requires = "every")]
    pub rounds: Option<u64>,

    /// http(s): path and query.
    #[arg(long, help_heading = "HTTP")]
    pub path: Option<String>,
    /// http(s): GET or HEAD.
    #[arg(long, help_heading = "HTTP")]
    pub method: Option<String>,
    /// http(s): Host header (ldirectord's virtualhost); also the TLS name unless --sni.
    #[arg(long, help_heading = "HTTP")]
    pub host: Option<String>,
    /// http(s): statuses that count as up, e.g. 200-299,301.
    #[arg(long, value_name = "RANGES", help_heading = "HTTP")]
    pub expect: Option<String>,
    /// http(s): regex the body must match; simpletcp, udp: the answer; ftp: the --retr file.
    #[arg(long, help_heading = "HTTP")]
    pub regex: Option<String>,
    /// https, pop3s, imaps, --starttls: TLS server name.
    #[arg(long, help_heading = "HTTP")]
    pub sni: Option<String>,
    /// https, pop3s, imaps, --starttls: do not verify the certificate.
    #[arg(long, help_heading = "HTTP")]
    pub insecure: bool,
    /// https, pop3s, imaps, --starttls: trust only the CA certificates of this PEM file.
    #[arg(long, value_name = "FILE", help_heading = "HTTP")]
    pub ca_file: Option<String>,
    /// http(s): follow redirects.
    #[arg(long, help_heading = "HTTP")]
    pub follow_redirects: bool,

    /// dns: name to look up.
    #[arg(long, help_heading = "DNS")]
    pub name: Option<String>,
    /// dns: record type (A, AAAA, SOA, MX, ...).
    #[arg(long = "type", value_name = "TYPE", help_heading = "DNS")]
    pub qtype: Option<String>,

    /// ping: echoes to send at most.
    #[arg(long, help_heading = "PING")]
    pub count: Option<u8>,

    /// simpletcp, udp: bytes to send, with escapes (\r \n \xNN).
    #[arg(long, help_heading = "SIMPLETCP, UDP")]
    pub send: Option<String>,

    /// external: command line to run (exit 0 = up, first output line = reason).
    #[arg(long, help_heading = "EXTERNAL")]
    pub command: Option<String>,
    /// external: arguments appended: mon (the target), ldirectord (vip vport rip rport), none.
    #[arg(long, value_name = "STYLE", help_heading = "EXTERNAL")]
    pub args: Option<String>,
    /// smtp: the name given in EHLO.
    #[arg(long, help_heading = "SMTP, FTP")]
    pub helo: Option<String>,
    /// ftp, mysql, pgsql: log in as this user; radius: User-Name; sip: Request-URI user.
    #[arg(long, help_heading = "SMTP, FTP")]
    pub user: Option<String>,
    /// ftp, radius, ldap: password.
    #[arg(long, help_heading = "SMTP, FTP")]
    pub password: Option<String>,
    /// smtp, pop3, imap: upgrade to TLS with STARTTLS.
    #[arg(long, help_heading = "SMTP, FTP")]
    pub starttls: bool,
    /// ftp: file to download (its content must match --regex, if given).
    #[arg(long, value_name = "FILE", help_heading = "SMTP, FTP")]
    pub retr: Option<String>,

    /// radius: the shared secret.
    #[arg(long, help_heading = "RADIUS, LDAP, PGSQL")]
    pub secret: Option<String>,
    /// radius: NAS-Identifier.
    #[arg(long, help_heading = "RADIUS, LDAP, PGSQL")]
    pub nas_identifier: Option<String>,
    /// ldap: DN to bind as (anonymous when absent).
    #[arg(long, help_heading = "RADIUS, LDAP, PGSQL")]
    pub dn: Option<String>,
    /// pgsql: database named in the startup message (with --user).
    #[arg(long, help_heading = "RADIUS, LDAP, PGSQL")]
    pub database: Option<String>,

    /// external: the virtual service ip:port, for ldirectord-style arguments.
    #[arg(long = "virtual", value_name = "IP:PORT", help_heading = "EXTERNAL")]
    pub virtual_addr: Option<String>,
}

/// A target as given: address, optional port, optional path (from a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address.
    pub ip: IpAddr,
    /// The port, if given.
    pub port: Option<u16>,
    /// The path, for URLs.
    pub path: Option<String>,
    /// The URL scheme, for URLs.
    pub scheme: Option<String>,
}

/// Parses `192.0.2.13`, `192.0.2.13:80`, `[2001:db8::13]:80`, `2001:db8::13`, `http://…/path`.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let s = s.trim();
    if let Some((scheme, rest)) = s.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        let mut t = parse_target(authority).map_err(|_| {
            format!("{s:?}: the URL's host must be an IP address (names are not resolved), e.g. http://192.0.2.13/health")
        })?;
        t.path = path;
        t.scheme = Some(scheme.to_ascii_lowercase());
        return Ok(t);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Target {
            ip,
            port: None,
            path: None,
            scheme: None,
        });
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(Target {
            ip: a.ip(),
            port: Some(a.port()),
            path: None,
            scheme: None,
        });
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = ip.parse::<IpAddr>() {
        return Ok(Target {
            ip,
            port: None,
            path: None,
            scheme: None,
        });
    }
    Err(format!(
        "{s:?} is not a target: write an address (192.0.2.13, 192.0.2.13:80, [2001:db8::13]:80) or a URL"
    ))
}

/// The probe kinds, as `monitor probe` and configuration files name them.
pub use common::probe::KINDS;

/// An option that sets a field of the probe kinds: the option, the field, and its value if given.
struct Opt {
    option: &'static str,
    field: &'static str,
    value: fn(&ProbeArgs) -> Option<Value>,
}

fn text(v: &Option<String>) -> Option<Value> {
    v.as_ref().map(|v| Value::Text(v.clone()))
}

/// The kinds' fields each option sets. `--regex` is `expect` for the kinds whose answer is
/// matched by a regex (see [`spec_from_args`]); `--insecure` sets `verify` to false.
const OPTIONS: &[Opt] = &[
    Opt {
        option: "--path",
        field: "path",
        value: |a| text(&a.path),
    },
    Opt {
        option: "--method",
        field: "method",
        value: |a| {
            a.method
                .as_ref()
                .map(|m| Value::Text(m.to_ascii_uppercase()))
        },
    },
    Opt {
        option: "--host",
        field: "host",
        value: |a| text(&a.host),
    },
    Opt {
        option: "--expect",
        field: "expect",
        value: |a| text(&a.expect),
    },
    Opt {
        option: "--regex",
        field: "regex",
        value: |a| text(&a.regex),
    },
    Opt {
        option: "--sni",
        field: "sni",
        value: |a| text(&a.sni),
    },
    Opt {
        option: "--insecure",
        field: "verify",
        value: |a| a.insecure.then_some(Value::Flag(false)),
    },
    Opt {
        option: "--ca-file",
        field: "ca_file",
        value: |a| text(&a.ca_file),
    },
    Opt {
        option: "--follow-redirects",
        field: "follow_redirects",
        value: |a| a.follow_redirects.then_some(Value::Flag(true)),
    },
    Opt {
        option: "--name",
        field: "name",
        value: |a| text(&a.name),
    },
    Opt {
        option: "--type",
        field: "type",
        value: |a| text(&a.qtype),
    },
    Opt {
        option: "--count",
        field: "count",
        value: |a| a.count.map(|n| Value::Number(n.into())),
    },
    Opt {
        option: "--send",
        field: "send",
        value: |a| text(&a.send),
    },
    Opt {
        option: "--command",
        field: "command",
        value: |a| text(&a.command),
    },
    Opt {
        option: "--args",
        field: "args",
        value: |a| text(&a.args),
    },
    Opt {
        option: "--virtual",
        field: "virtual",
        value: |a| text(&a.virtual_addr),
    },
    Opt {
        option: "--helo",
        field: "helo",
        value: |a| text(&a.helo),
    },
    Opt {
        option: "--user",
        field: "user",
        value: |a| text(&a.user),
    },
    Opt {
        option: "--password",
        field: "password",
        value: |a| text(&a.password),
    },
    Opt {
        option: "--starttls",
        field: "starttls",
        value: |a| a.starttls.then_some(Value::Flag(true)),
    },
    Opt {
        option: "--retr",
        field: "retr",
        value: |a| text(&a.retr),
    },
    Opt {
        option: "--secret",
        field: "secret",
        value: |a| text(&a.secret),
    },
    Opt {
        option: "--nas-identifier",
        field: "nas_identifier",
        value: |a| text(&a.nas_identifier),
    },
    Opt {
        option: "--dn",
        field: "dn",
        value: |a| text(&a.dn),
    },
    Opt {
        option: "--database",
        field: "database",
        value: |a| text(&a.database),
    },
];

/// The kinds whose answer `--regex` matches (their field `expect`); `--expect` is http's statuses.
const REGEX_IS_EXPECT: &[&str] = &["simpletcp", "udp", "ftp"];

/// The check of `kind` with the fields `given`, each kind through its own schema.
fn check_of(kind: &str, given: &[Given]) -> Option<Result<Check, FieldError>> {
    let f = given;
    Some(match kind {
        "tcp" => fields(f).map(Check::Tcp),
        "http" => fields(f).map(Check::Http),
        "https" => fields(f).map(Check::Https),
        "ping" => fields(f).map(Check::Ping),
        "dns" => fields(f).map(Check::Dns),
        "udp" => fields(f).map(Check::Udp),
        "simpletcp" => fields(f).map(Check::SimpleTcp),
        "external" => fields(f).map(Check::External),
        "smtp" => fields(f).map(Check::Smtp),
        "ftp" => fields(f).map(Check::Ftp),
        "pop3" => fields(f).map(Check::Pop3),
        "imap" => fields(f).map(Check::Imap),
        "pop3s" => fields(f).map(Check::Pop3s),
        "imaps" => fields(f).map(Check::Imaps),
        "sip" => fields(f).map(Check::Sip),
        "radius" => fields(f).map(Check::Radius),
        "ldap" => fields(f).map(Check::Ldap),
        "mysql" => fields(f).map(Check::Mysql),
        "pgsql" => fields(f).map(Check::Pgsql),
        _ => return None,
    })
}

/// The kinds that have `field` (for "it applies to …"): those whose schema does not call it unknown.
fn kinds_with(field: &'static str, value: &Value) -> Vec<&'static str> {
    let given = [Given {
        option: "",
        field,
        value: value.clone(),
    }];
    KINDS
        .iter()
        .copied()
        .filter(|k| !matches!(check_of(k, &given), Some(Err(FieldError::Unknown(f))) if f == field))
        .collect()
}

/// `unknown probe kind "htp": did you mean http? use tcp, http, …`.
fn unknown_kind(kind: &str) -> String {
    let close = common::config::did_you_mean(kind, KINDS.iter().copied())
        .map(|k| format!("did you mean {k}? "))
        .unwrap_or_default();
    format!(
        "unknown probe kind {kind:?}: {close}use {}",
        KINDS.join(", ")
    )
}

/// Builds the spec the options describe for `kind`, through the configuration schema.
pub fn spec_from_args(kind: &str, a: &ProbeArgs) -> Result<Spec, String> {
    if !KINDS.contains(&kind) {
        return Err(unknown_kind(kind));
    }
    let timeout = a
        .timeout
        .parse::<Duration>()
        .map_err(|e| format!("--timeout: {e}"))?;
    let source = match &a.source {
        Some(s) => Some(
            s.parse::<common::config::IpAddr>()
                .map_err(|e| format!("--source: {e}"))?,
        ),
        None => None,
    };
    let regex_is_expect = REGEX_IS_EXPECT.contains(&kind);
    if regex_is_expect && a.expect.is_some() {
        return Err(format!(
            "--expect does not apply to {kind} (use --regex for the answer)"
        ));
    }
    let given: Vec<Given> = OPTIONS
        .iter()
        .filter_map(|o| {
            let value = (o.value)(a)?;
            let field = if regex_is_expect && o.field == "regex" {
                "expect"
            } else {
                o.field
            };
            Some(Given {
                option: o.option,
                field,
                value,
            })
        })
        .collect();
    let option_of = |field: &str| {
        given
            .iter()
            .find(|g| g.field == field)
            .map(|g| g.option)
            .or_else(|| (regex_is_expect && field == "expect").then_some("--regex"))
            .or_else(|| OPTIONS.iter().find(|o| o.field == field).map(|o| o.option))
    };
    let check = match check_of(kind, &given) {
        None => return Err(unknown_kind(kind)),
        Some(Ok(c)) => c,
        Some(Err(FieldError::Unknown(field))) => {
            let g = given.iter().find(|g| g.field == field);
            let opt = g.map_or(field.as_str(), |g| g.option);
            let others = g.map(|g| kinds_with(g.field, &g.value)).unwrap_or_default();
            return Err(if others.is_empty() {
                format!("{opt} does not apply to a {kind} probe")
            } else {
                format!(
                    "{opt} does not apply to a {kind} probe (only to {})",
                    others.join(", ")
                )
            });
        }
        Some(Err(FieldError::Missing(field))) => {
            return Err(format!(
                "a {kind} probe needs {}",
                option_of(field).unwrap_or(field)
            ));
        }
        Some(Err(FieldError::Invalid { field, message })) => {
            return Err(match field.and_then(option_of) {
                Some(opt) => format!("{opt}: {message}"),
                None => format!("{kind}: {message}"),
            });
        }
    };
    let spec = Spec {
        port: a.port,
        timeout,
        source,
        check,
    };
    if let Some((field, msg)) = spec.problems().into_iter().find(|(f, _)| *f != "port") {
        return Err(format!("{}: {msg}", option_of(field).unwrap_or(field)));
    }
    Ok(spec)
}

/// The probe for one target.
pub fn probe_for(spec: &Spec, t: &Target) -> Result<Probe, String> {
    let mut spec = spec.clone();
    if t.port.is_some() {
        spec.port = t.port;
    }
    if let Some(path) = &t.path
        && let common::probe::Check::Http(h) | common::probe::Check::Https(h) = &mut spec.check
    {
        h.path = path.clone();
    }
    if let Some((_, msg)) = spec.problems().into_iter().next() {
        return Err(format!("{}: {msg} (give ip:port or --port)", t.ip));
    }
    Ok(Probe::new(t.ip, spec))
}

/// Unread reports `--every` lets queue up: far more than any number of targets makes per interval
/// while the output keeps up (the queue takes memory only for what it holds).
const FEED_QUEUE: usize = 1 << 20;

/// With `--every`, how long a result line may wait in the buffer: lines of the results that come
/// within it go out in one write (thousands of results a second cost a few writes, not thousands).
const OUTPUT_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// One result line: `up 192.0.2.13:80 http 12.3ms 200 OK`, or the JSON object.
pub fn format_result(probe: &Probe, o: &Outcome, json: bool) -> String {
    let mut line = Vec::new();
    let _ = write_result(&mut line, probe, o, json);
    line.pop();
    String::from_utf8(line).unwrap_or_default()
}

/// Writes [`format_result`]'s line and a newline to `out`, with no string in between.
pub fn write_result(
    out: &mut impl Write,
    probe: &Probe,
    o: &Outcome,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let v = json!({
            "target": probe.target_display(),
            "kind": probe.spec.check.name(),
            "up": o.up,
            "latency_ms": (o.latency.as_secs_f64() * 1e4).round() / 10.0,
            "reason": o.reason,
        });
        writeln!(out, "{v}")
    } else {
        write_line(out, &subject(probe), o)
    }
}

/// What a text line says of the probe: `192.0.2.13:80 http`.
fn subject(probe: &Probe) -> String {
    format!("{} {}", probe.target_display(), probe.spec.check.name())
}

/// `up 192.0.2.13:80 http 12.3ms 200 OK`, from the [`subject`] and the outcome.
fn write_line(out: &mut impl Write, subject: &str, o: &Outcome) -> std::io::Result<()> {
    // Pieces rather than format machinery, and the latency in tenths of a millisecond, rounded, in
    // integers: the same text as `{:.1}ms`, for a fraction of the cost (a line per check, thousands
    // a second).
    let tenths = u64::try_from((o.latency.as_micros() + 50) / 100).unwrap_or(u64::MAX);
    let mut n = itoa::Buffer::new();
    out.write_all(if o.up { b"up " } else { b"down " })?;
    out.write_all(subject.as_bytes())?;
    out.write_all(b" ")?;
    out.write_all(n.format(tenths / 10).as_bytes())?;
    out.write_all(&[b'.', b'0' + (tenths % 10) as u8, b'm', b's', b' '])?;
    out.write_all(o.reason.as_bytes())?;
    out.write_all(b"\n")
}

enum Item {
    Probe(Box<Probe>),
    Bad(String),
}

/// Runs `monitor probe`: reads extra targets from `stdin` when one target is `-`, writes result
/// lines to `out` and error messages to `err`.
pub async fn run<I, O, E>(args: ProbeArgs, stdin: I, mut out: O, mut err: E) -> Exit
where
    I: AsyncBufRead + Unpin + Send + 'static,
    O: Write,
    E: Write,
{
    // `monitor probe http://192.0.2.13/health` names kind and first target at once.
    let mut targets = args.targets.clone();
    let kind = match parse_target(&args.kind) {
        Ok(Target {
            scheme: Some(s), ..
        }) => {
            targets.insert(0, args.kind.clone());
            s
        }
        _ => args.kind.to_ascii_lowercase(),
    };
    let spec = match spec_from_args(&kind, &args) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "monitor probe: {e}");
            return Exit::Usage;
        }
    };
    if targets.is_empty() {
        let _ = writeln!(
            err,
            "monitor probe: no target given (give addresses, or - to read them from stdin)"
        );
        return Exit::Usage;
    }
    let every = match args.every.as_deref().map(str::parse::<Duration>) {
        None => None,
        Some(Ok(d)) if !d.as_std().is_zero() => Some(d.as_std()),
        Some(Ok(_)) => {
            let _ = writeln!(err, "monitor probe: --every must be more than 0s");
            return Exit::Usage;
        }
        Some(Err(e)) => {
            let _ = writeln!(err, "monitor probe: --every: {e}");
            return Exit::Usage;
        }
    };

    // Targets, in order, as they come (stdin may be a slow pipe).
    let (items_tx, mut items_rx) = mpsc::channel::<Item>(args.concurrency.max(1));
    let check_target = move |s: &str, kind: &str| -> Item {
        let t = match parse_target(s) {
            Ok(t) => t,
            Err(e) => return Item::Bad(e),
        };
        if let Some(scheme) = &t.scheme
            && scheme != kind
        {
            return Item::Bad(format!(
                "{s:?} is a {scheme} URL but the probe kind is {kind}"
            ));
        }
        match probe_for(&spec, &t) {
            Ok(p) => Item::Probe(Box::new(p)),
            Err(e) => Item::Bad(e),
        }
    };
    let kind2 = kind.clone();
    tokio::spawn(async move {
        let mut stdin = Some(stdin);
        for t in targets {
            if t == "-" {
                let Some(input) = stdin.take() else { continue };
                let mut lines = input.lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    if items_tx.send(check_target(line, &kind2)).await.is_err() {
                        return;
                    }
                }
            } else if items_tx.send(check_target(&t, &kind2)).await.is_err() {
                return;
            }
        }
    });

    let prober = Arc::new(Prober::new());
    let mut any_down = false;
    let mut bad = false;
    match every {
        None => {
            // Results in input order: handles queue up to `concurrency` deep.
            let (done_tx, mut done_rx) = mpsc::channel(args.concurrency.max(1));
            let p2 = prober.clone();
            tokio::spawn(async move {
                while let Some(item) = items_rx.recv().await {
                    let h = match item {
                        Item::Bad(e) => Err(e),
                        Item::Probe(probe) => {
                            let prober = p2.clone();
                            Ok(tokio::spawn(async move {
                                let o = prober.run(&probe).await;
                                (probe, o)
                            }))
                        }
                    };
                    if done_tx.send(h).await.is_err() {
                        return;
                    }
                }
            });
            while let Some(h) = done_rx.recv().await {
                match h {
                    Err(e) => {
                        let _ = writeln!(err, "monitor probe: {e}");
                        bad = true;
                    }
                    Ok(h) => match h.await {
                        Ok((probe, o)) => {
                            any_down |= !o.up;
                            let _ = write_result(&mut out, &probe, &o, args.json);
                            if done_rx.is_empty() {
                                let _ = out.flush();
                            }
                        }
                        Err(e) => {
                            let _ = writeln!(err, "monitor probe: check failed: {e}");
                            any_down = true;
                        }
                    },
                }
            }
        }
        Some(interval) => {
            let engine = Engine::spawn(
                prober,
                EngineOptions {
                    max_concurrent: args.concurrency.max(1),
                    spread: true,
                },
            );
            let mut feed = engine.feed(FEED_QUEUE);
            // Results printed per target, by the feed's tag (targets in the order they came).
            let mut printed: Vec<u64> = Vec::new();
            // Each target's text line prefix, made once.
            let mut subjects: Vec<String> = Vec::new();
            let mut items_open = true;
            let mut finished = 0usize;
            let done = |n: u64| args.rounds.is_some_and(|max| n >= max);
            // Output goes out OUTPUT_DELAY after the first line not yet written.
            let flush = tokio::time::sleep(std::time::Duration::ZERO);
            tokio::pin!(flush);
            let mut dirty = false;
            loop {
                tokio::select! {
                    item = items_rx.recv(), if items_open => match item {
                        Some(Item::Probe(p)) => {
                            subjects.push(if args.json { String::new() } else { subject(&p) });
                            feed.watch(*p, interval);
                            printed.push(0);
                        }
                        Some(Item::Bad(e)) => {
                            let _ = writeln!(err, "monitor probe: {e}");
                            bad = true;
                        }
                        None => {
                            items_open = false;
                            if printed.is_empty() { break; }
                        }
                    },
                    () = &mut flush, if dirty => {
                        let _ = out.flush();
                        dirty = false;
                    }
                    Some((tag, r)) = feed.recv() => {
                        // A report already queued when the target had its rounds is not printed.
                        if done(printed[tag]) {
                            continue;
                        }
                        printed[tag] += 1;
                        any_down |= !r.outcome.up;
                        let _ = if args.json {
                            write_result(&mut out, &r.probe, &r.outcome, true)
                        } else {
                            write_line(&mut out, &subjects[tag], &r.outcome)
                        };
                        if !dirty {
                            dirty = true;
                            flush.as_mut().reset(tokio::time::Instant::now() + OUTPUT_DELAY);
                        }
                        if done(printed[tag]) {
                            feed.unwatch(tag);
                            finished += 1;
                            if !items_open && finished == printed.len() { break; }
                        }
                    }
                }
            }
        }
    }
    let _ = out.flush();
    if bad {
        Exit::Usage
    } else if any_down {
        Exit::Negative
    } else {
        Exit::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ProbeArgs,
        }
        let cli = <Cli as clap::Parser>::parse_from(["probe", "http"]);
        let spec = spec_from_args("http", &cli.args).unwrap();
        let probe = probe_for(&spec, &parse_target("192.0.2.13:8080").unwrap()).unwrap();
        let outcome = |up, us, reason: &str| Outcome {
            up,
            latency: std::time::Duration::from_micros(us),
            reason: reason.into(),
        };
        for (up, us, reason, line) in [
            (
                true,
                12_340,
                "200 OK",
                "up 192.0.2.13:8080 http 12.3ms 200 OK",
            ),
            (
                true,
                12_350,
                "200 OK",
                "up 192.0.2.13:8080 http 12.4ms 200 OK",
            ),
            (
                false,
                49,
                "connection refused",
                "down 192.0.2.13:8080 http 0.0ms connection refused",
            ),
            (
                false,
                1_999_960,
                "timeout after 2s",
                "down 192.0.2.13:8080 http 2000.0ms timeout after 2s",
            ),
        ] {
            assert_eq!(format_result(&probe, &outcome(up, us, reason), false), line);
        }
        let json: serde_json::Value = serde_json::from_str(&format_result(
            &probe,
            &outcome(true, 12_340, "200 OK"),
            true,
        ))
        .unwrap();
        assert_eq!(
            json,
            json!({"target": "192.0.2.13:8080", "kind": "http", "up": true, "latency_ms": 12.3, "reason": "200 OK"})
        );
    }

    fn args(argv: &[&str]) -> ProbeArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ProbeArgs,
        }
        let mut full = vec!["probe", "x"];
        full.extend_from_slice(argv);
        <Cli as clap::Parser>::parse_from(full).args
    }

    #[test]
    fn the_kinds_are_the_schemas() {
        for kind in KINDS {
            match check_of(kind, &[]) {
                Some(Ok(c)) => assert_eq!(c.name(), *kind),
                Some(Err(FieldError::Missing(_))) => {}
                other => panic!("{kind}: {other:?}"),
            }
        }
        // The same kinds, in the same order, as the configuration schema's.
        let kind = [Given {
            option: "",
            field: "kind",
            value: Value::Text("?".into()),
        }];
        assert_eq!(
            fields::<Check>(&kind).unwrap_err(),
            FieldError::Invalid {
                field: Some("kind"),
                message: format!("\"?\" is not one of the values: use {}", KINDS.join(", ")),
            }
        );
    }

    #[test]
    fn option_errors_name_the_option_and_what_is_expected() {
        let err = |kind: &str, argv: &[&str]| spec_from_args(kind, &args(argv)).unwrap_err();
        assert_eq!(
            err("htp", &[]),
            format!(
                "unknown probe kind \"htp\": did you mean http? use {}",
                KINDS.join(", ")
            )
        );
        assert_eq!(
            err("http", &["--name", "x"]),
            "--name does not apply to a http probe (only to dns)"
        );
        assert_eq!(
            err("tcp", &["--starttls"]),
            "--starttls does not apply to a tcp probe (only to smtp, pop3, imap, pop3s, imaps)"
        );
        assert_eq!(err("dns", &[]), "a dns probe needs --name");
        assert_eq!(err("simpletcp", &[]), "a simpletcp probe needs --regex");
        assert_eq!(
            err("http", &["--method", "PUT"]),
            "--method: \"PUT\" is not one of the values: use GET, HEAD"
        );
        assert_eq!(
            err("external", &["--command", "true", "--args", "mom"]),
            "--args: \"mom\" is not one of the values: did you mean mon? use mon, ldirectord, none"
        );
        assert!(
            err("http", &["--expect", "2xx"]).starts_with("--expect: \"2xx\" is not a status code"),
        );
        assert!(err("udp", &["--send", "x", "--regex", "("]).starts_with("--regex: "));
        assert!(
            err("external", &["--command", "true", "--virtual", "x"]).starts_with("--virtual: ")
        );
        assert!(err("http", &["--timeout", "2"]).starts_with("--timeout: "));
        assert!(err("http", &["--source", "nowhere"]).starts_with("--source: "));
        assert_eq!(
            err("ftp", &["--expect", "200"]),
            "--expect does not apply to ftp (use --regex for the answer)"
        );
        assert_eq!(
            err("https", &["--method", "head", "--regex", "x"]),
            "--regex: a HEAD request has no body to match"
        );
    }

    #[test]
    fn options_become_the_kinds_fields() {
        let spec = spec_from_args(
            "udp",
            &args(&[
                "--send",
                "ping\\n",
                "--regex",
                "^pong",
                "--port",
                "7",
                "--timeout",
                "2s",
            ]),
        )
        .unwrap();
        assert_eq!(
            (spec.port, spec.timeout.to_string()),
            (Some(7), "2s".to_string())
        );
        let Check::Udp(u) = &spec.check else {
            panic!("{spec:?}")
        };
        assert_eq!(u.expect.as_ref().map(|p| p.as_str()), Some("^pong"));
        let spec = spec_from_args("https", &args(&["--insecure", "--method", "head"])).unwrap();
        let Check::Https(h) = &spec.check else {
            panic!("{spec:?}")
        };
        assert!(!h.verify);
        assert_eq!(h.method, common::probe::http::Method::Head);
    }

    #[test]
    fn targets() {
        let t = parse_target("192.0.2.13").unwrap();
        assert_eq!((t.ip.to_string(), t.port), ("192.0.2.13".into(), None));
        let t = parse_target("[2001:db8::13]:8080").unwrap();
        assert_eq!(
            (t.ip.to_string(), t.port),
            ("2001:db8::13".into(), Some(8080))
        );
        let t = parse_target("2001:db8::13").unwrap();
        assert_eq!(t.port, None);
        let t = parse_target("https://192.0.2.13:8443/health?x=1").unwrap();
        assert_eq!(
            (t.port, t.path.as_deref(), t.scheme.as_deref()),
            (Some(8443), Some("/health?x=1"), Some("https"))
        );
        assert!(
            parse_target("http://www.example.org/")
                .unwrap_err()
                .contains("must be an IP address")
        );
        assert!(
            parse_target("192.0.2.300")
                .unwrap_err()
                .contains("not a target")
        );
    }
}
