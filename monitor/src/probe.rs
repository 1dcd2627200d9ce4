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
//! so the command line and `ldir`/`monitor` configurations accept and reject the same things.
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
use common::probe::{Engine, EngineOptions, Outcome, Probe, Prober, Spec};
use serde_json::{Map, Value, json};
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

/// Which option set which spec field, to name the option in errors.
const OPTION_OF: &[(&str, &str)] = &[
    ("path", "--path"),
    ("method", "--method"),
    ("host", "--host"),
    ("expect", "--expect/--regex"),
    ("regex", "--regex"),
    ("sni", "--sni"),
    ("verify", "--insecure"),
    ("ca_file", "--ca-file"),
    ("follow_redirects", "--follow-redirects"),
    ("name", "--name"),
    ("type", "--type"),
    ("count", "--count"),
    ("send", "--send"),
    ("command", "--command"),
    ("args", "--args"),
    ("virtual", "--virtual"),
    ("helo", "--helo"),
    ("user", "--user"),
    ("password", "--password"),
    ("starttls", "--starttls"),
    ("retr", "--retr"),
    ("secret", "--secret"),
    ("nas_identifier", "--nas-identifier"),
    ("dn", "--dn"),
    ("database", "--database"),
    ("timeout", "--timeout"),
    ("source", "--source"),
];

/// Builds the spec the options describe for `kind`, through the configuration schema.
pub fn spec_from_args(kind: &str, a: &ProbeArgs) -> Result<Spec, String> {
    // Values whose parse errors do not name their field in serde's message: checked here first.
    a.timeout
        .parse::<Duration>()
        .map_err(|e| format!("--timeout: {e}"))?;
    if let Some(s) = &a.source {
        s.parse::<common::config::IpAddr>()
            .map_err(|e| format!("--source: {e}"))?;
    }
    if let Some(v) = &a.virtual_addr {
        v.parse::<common::config::SocketAddr>()
            .map_err(|e| format!("--virtual: {e}"))?;
    }
    let mut m = Map::new();
    m.insert("kind".into(), json!(kind));
    m.insert("timeout".into(), json!(a.timeout));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("source", a.source.as_ref().map(|v| json!(v)));
    put("port", a.port.map(|v| json!(v)));
    put("path", a.path.as_ref().map(|v| json!(v)));
    put(
        "method",
        a.method.as_ref().map(|v| json!(v.to_ascii_uppercase())),
    );
    put("host", a.host.as_ref().map(|v| json!(v)));
    put("sni", a.sni.as_ref().map(|v| json!(v)));
    put("verify", a.insecure.then_some(json!(false)));
    put("ca_file", a.ca_file.as_ref().map(|v| json!(v)));
    put(
        "follow_redirects",
        a.follow_redirects.then_some(json!(true)),
    );
    put("name", a.name.as_ref().map(|v| json!(v)));
    put("type", a.qtype.as_ref().map(|v| json!(v)));
    put("count", a.count.map(|v| json!(v)));
    put("send", a.send.as_ref().map(|v| json!(v)));
    put("command", a.command.as_ref().map(|v| json!(v)));
    put("args", a.args.as_ref().map(|v| json!(v)));
    put("virtual", a.virtual_addr.as_ref().map(|v| json!(v)));
    put("helo", a.helo.as_ref().map(|v| json!(v)));
    put("user", a.user.as_ref().map(|v| json!(v)));
    put("password", a.password.as_ref().map(|v| json!(v)));
    put("starttls", a.starttls.then_some(json!(true)));
    put("retr", a.retr.as_ref().map(|v| json!(v)));
    put("secret", a.secret.as_ref().map(|v| json!(v)));
    put(
        "nas_identifier",
        a.nas_identifier.as_ref().map(|v| json!(v)),
    );
    put("dn", a.dn.as_ref().map(|v| json!(v)));
    put("database", a.database.as_ref().map(|v| json!(v)));
    match kind {
        // The regex is what simpletcp, udp and ftp expect; http's `expect` is status ranges.
        "simpletcp" | "udp" | "ftp" => put("expect", a.regex.as_ref().map(|v| json!(v))),
        _ => {
            put("expect", a.expect.as_ref().map(|v| json!(v)));
            put("regex", a.regex.as_ref().map(|v| json!(v)));
        }
    }
    if matches!(kind, "simpletcp" | "udp" | "ftp") && a.expect.is_some() {
        return Err(format!(
            "--expect does not apply to {kind} (use --regex for the answer)"
        ));
    }
    let spec: Spec =
        serde_json::from_value(Value::Object(m)).map_err(|e| explain(kind, &e.to_string()))?;
    if let Some((field, msg)) = spec.problems().into_iter().find(|(f, _)| *f != "port") {
        let opt = OPTION_OF
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(field, |(_, o)| o);
        return Err(format!("{opt}: {msg}"));
    }
    Ok(spec)
}

fn explain(kind: &str, e: &str) -> String {
    if let Some(rest) = e.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let opt = OPTION_OF
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(field, |(_, o)| o);
        return format!("{opt} does not apply to a {kind} probe");
    }
    if e.starts_with("unknown variant `") && e.contains("expected one of `tcp`") {
        return format!(
            "unknown probe kind {kind:?}: use tcp, http, https, ping, dns, udp, simpletcp, external, smtp, ftp, pop3, imap, pop3s, imaps, sip, radius, ldap, mysql or pgsql"
        );
    }
    if e.starts_with("missing field `") {
        let field = e
            .trim_start_matches("missing field `")
            .split('`')
            .next()
            .unwrap_or("");
        let opt = OPTION_OF
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(field, |(_, o)| o);
        return format!("a {kind} probe needs {opt}");
    }
    format!("{kind}: {e}")
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
        let json: Value = serde_json::from_str(&format_result(
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
