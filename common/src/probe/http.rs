//! `http` and `https`: a request gets a status in the expected ranges and, optionally, a body
//! matching a regex (ldirectord's `service = http(s)` with `request`/`receive`/`virtualhost`,
//! keepalived's `HTTP_GET`/`SSL_GET`).
//!
//! Each check opens a fresh connection (idle connections are never kept), so an up result means the
//! server accepts new connections now. Redirects are not followed unless `follow_redirects` is set
//! (a redirect status is then judged like any other); proxies from the environment are never used.
//! HTTPS verifies the certificate unless `verify = false` ([`super::tls`]); the name checked and sent
//! as SNI is `sni`, else `host`, else none (the certificate must then name the IP address). Only
//! HTTP/1.1 is spoken. Bodies are read up to [`BODY_LIMIT`] when a regex is given, not at all
//! otherwise.
//!
//! Plain `http` without `follow_redirects` (the common health check, thousands a second) is spoken
//! by a minimal HTTP/1.1 client over one tokio `TcpStream` ([`plain`]): request line, `Host`,
//! `User-Agent`, `Connection: close`; the head is parsed with httparse (the status line alone when
//! no body is read), the body is read (`Content-Length`, chunked or until close) only when a regex
//! needs it. Every read is capped: the head at [`HEAD_LIMIT`] bytes and [`MAX_HEADERS`] fields, a
//! chunk size line at [`CHUNK_LINE_LIMIT`], what is kept of a body at [`BODY_LIMIT`] (the rest of
//! the body is not read). It deliberately does not
//! do keep-alive, redirects, proxies or compression. `https` and followed redirects go through
//! reqwest (hyper), whose per-request setup costs several times more CPU.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tls::{self, TlsConfigs, TlsKey};
use super::{Down, Pattern, io_reason};

/// How much of a body is searched for the regex: 1 MiB (a health page is small; a huge answer must
/// not make a check expensive).
pub const BODY_LIMIT: usize = 1 << 20;

/// An HTTP(S) check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// `GET` (default) or `HEAD` (ldirectord's `httpmethod`).
    #[serde(default)]
    pub method: Method,
    /// The path and query, `/` by default (ldirectord's `request`; a leading `/` is added).
    #[serde(default = "default_path", deserialize_with = "de_path")]
    pub path: String,
    /// The Host header (ldirectord's and keepalived's `virtualhost`); by default the target's address.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_host"
    )]
    pub host: Option<String>,
    /// Statuses that count as up: `"200-299"` (default), `"200,301-302"`.
    #[serde(default)]
    pub expect: StatusRanges,
    /// A regex the body must match (ldirectord's `receive`); GET only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Pattern>,
    /// The TLS server name (SNI, and the name the certificate must carry); defaults to `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Verify the server's certificate (https); on unless explicitly turned off.
    #[serde(default = "super::yes")]
    pub verify: bool,
    /// Trust only the CA certificates in this PEM file instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Follow redirects (up to 10); off by default.
    #[serde(default)]
    pub follow_redirects: bool,
}

fn default_path() -> String {
    "/".to_string()
}

fn de_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    super::text::check_wire_text(&p).map_err(|e| serde::de::Error::custom(format!("path: {e}")))?;
    Ok(normalize_path(&p))
}

/// The Host header goes into the request as is: no control characters (no header injection).
fn de_host<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let h = String::deserialize(d)?;
    super::text::check_wire_text(&h).map_err(|e| serde::de::Error::custom(format!("host: {e}")))?;
    Ok(Some(h))
}

/// Adds the leading `/` ldirectord adds to a `request`.
pub fn normalize_path(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            method: Method::Get,
            path: default_path(),
            host: None,
            expect: StatusRanges::default(),
            regex: None,
            sni: None,
            verify: true,
            ca_file: None,
            follow_redirects: false,
        }
    }
}

impl Http {
    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if self.regex.is_some() && self.method == Method::Head {
            out.push(("regex", "a HEAD request has no body to match".to_string()));
        }
        // A path given on the command line (a URL) is set without serde: checked here too.
        if let Err(e) = super::text::check_wire_text(&self.path) {
            out.push(("path", e));
        } else if self.path.contains(char::is_whitespace) {
            out.push(("path", "must not contain blanks".to_string()));
        }
        if let Some(Err(e)) = self.host.as_deref().map(super::text::check_wire_text) {
            out.push(("host", e));
        } else if self
            .host
            .as_ref()
            .is_some_and(|h| h.contains(char::is_whitespace))
        {
            out.push(("host", "must not contain blanks".to_string()));
        }
    }
}

/// The request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET (default).
    #[default]
    Get,
    /// HEAD: status only.
    Head,
}

/// Status code ranges, written `"200-299,304"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusRanges(Vec<(u16, u16)>);

impl Default for StatusRanges {
    /// 200-299, keepalived's `status_code` default and ldirectord's "any 2xx" (classic-tools.md §1.4).
    fn default() -> Self {
        StatusRanges(vec![(200, 299)])
    }
}

impl StatusRanges {
    /// Whether `status` is in one of the ranges.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl FromStr for StatusRanges {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let parse = |x: &str| -> Result<u16, String> {
                match x.trim().parse::<u16>() {
                    Ok(n) if (100..=599).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "{part:?} is not a status code or range 100-599 (write e.g. \"200-299,301\")"
                    )),
                }
            };
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(format!("range {part:?} is backwards"));
            }
            out.push((lo, hi));
        }
        Ok(StatusRanges(out))
    }
}

impl fmt::Display for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?
            } else {
                write!(f, "{lo}-{hi}")?
            }
        }
        Ok(())
    }
}

impl Serialize for StatusRanges {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRanges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What makes two checks need different HTTP clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    tls: TlsKey,
    source: Option<IpAddr>,
    follow_redirects: bool,
    /// A TLS server name pinned to the target's address (reqwest connects by URL host).
    resolve: Option<(String, SocketAddr)>,
}

/// The most reqwest clients kept: one per distinct [`ClientKey`], which for `https` with a TLS
/// name means one per target. Far more than the HTTPS targets of a usual director; past it, the
/// least recently used client is dropped (its target's next check builds it again: correct, only
/// dearer), so thousands of targets or a stream of reloads cannot grow the cache without bound.
const CLIENTS_MAX: usize = 1024;

/// HTTP clients shared by checks with the same [`ClientKey`], at most [`CLIENTS_MAX`].
pub(super) struct Clients {
    clients: Mutex<ClientCache>,
    tls: TlsConfigs,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::with_capacity(CLIENTS_MAX)
    }
}

/// The clients by key, each with the time (a counter) of its last use.
struct ClientCache {
    map: HashMap<ClientKey, (reqwest::Client, u64)>,
    clock: u64,
    max: usize,
}

impl ClientCache {
    fn get(&mut self, key: &ClientKey) -> Option<reqwest::Client> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(key).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    /// Adds `client`, first dropping the least recently used one when full (a scan: it happens
    /// only when a client is built, which costs far more).
    fn insert(&mut self, key: ClientKey, client: reqwest::Client) {
        if self.map.len() >= self.max && !self.map.contains_key(&key) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        self.clock += 1;
        self.map.insert(key, (client, self.clock));
    }
}

impl Clients {
    fn with_capacity(max: usize) -> Clients {
        Clients {
            clients: Mutex::new(ClientCache {
                map: HashMap::new(),
                clock: 0,
                max: max.max(1),
            }),
            tls: TlsConfigs::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ClientCache> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the CA files again ([`TlsConfigs::reload`]) and drops every client: the next checks
    /// build theirs with the new certificates.
    pub(super) fn reload(&self) -> Vec<tls::ReloadError> {
        let errors = self.tls.reload();
        self.cache().map.clear();
        errors
    }

    fn client(&self, key: &ClientKey) -> Result<reqwest::Client, Down> {
        if let Some(c) = self.cache().get(key) {
            return Ok(c);
        }
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .http1_only()
            .tcp_nodelay(true)
            .redirect(if key.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .local_address(key.source);
        // Plain HTTP gets a TLS setup too: reqwest needs one, and a followed redirect may lead to https.
        let config = self.tls.get(&key.tls, &[b"http/1.1"])?;
        b = b.tls_backend_preconfigured((*config).clone());
        if let Some((name, addr)) = &key.resolve {
            b = b.resolve(name, *addr);
        }
        let client = b
            .build()
            .map_err(|e| Down(format!("http client setup: {}", chain(&e))))?;
        self.cache().insert(key.clone(), client.clone());
        Ok(client)
    }

    /// A check through reqwest: HTTPS, or HTTP that follows redirects. Plain HTTP without
    /// redirects is [`plain`], which the prober calls directly with the probe's prepared request.
    pub(super) async fn check(
        &self,
        h: &Http,
        tls: bool,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<String, Down> {
        let name = if tls {
            h.sni
                .as_ref()
                .or(h.host.as_ref())
                .filter(|n| n.parse::<IpAddr>().is_err())
        } else {
            None
        };
        let scheme = if tls { "https" } else { "http" };
        let url = match name {
            Some(n) => format!("{scheme}://{n}:{}{}", addr.port(), h.path),
            None => format!("{scheme}://{addr}{}", h.path),
        };
        let key = ClientKey {
            tls: TlsKey {
                verify: h.verify,
                ca_file: h.ca_file.clone(),
            },
            source,
            follow_redirects: h.follow_redirects,
            resolve: name.map(|n| (n.clone(), addr)),
        };
        let client = self.client(&key)?;
        let method = match h.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
        };
        let mut req = client.request(method, &url);
        if let Some(host) = &h.host {
            let port = if addr.port() == if tls { 443 } else { 80 } {
                String::new()
            } else {
                format!(":{}", addr.port())
            };
            req = req.header(reqwest::header::HOST, format!("{host}{port}"));
        }
        let mut resp = req.send().await.map_err(|e| request_reason(&e))?;
        let status = resp.status();
        let status_line = match status.canonical_reason() {
            Some(r) => format!("{} {r}", status.as_u16()),
            None => status.as_u16().to_string(),
        };
        if !h.expect.contains(status.as_u16()) {
            return Err(Down(format!("status {status_line}, expected {}", h.expect)));
        }
        if let Some(re) = &h.regex {
            let mut body = Vec::new();
            loop {
                if re.is_match(&body) {
                    return Ok(status_line);
                }
                if body.len() >= BODY_LIMIT {
                    break;
                }
                match resp.chunk().await.map_err(|e| request_reason(&e))? {
                    Some(c) => body.extend_from_slice(&c[..c.len().min(BODY_LIMIT - body.len())]),
                    None => break,
                }
            }
            return Err(Down(format!(
                "{status_line} but the body does not match /{}/",
                re.as_str()
            )));
        }
        Ok(status_line)
    }
}

/// Bytes read at a time by plain-HTTP checks.
const READ_CHUNK: usize = 1024;

/// The `User-Agent` of plain-HTTP checks.
const USER_AGENT: &str = concat!("lvs-probe/", env!("CARGO_PKG_VERSION"));

/// The most response head (status line and headers) read: 64 KiB, far more than any health page
/// sends; a server sending more is down rather than an unbounded read.
const HEAD_LIMIT: usize = 64 << 10;

/// The request of a plain-HTTP check of `addr` (made once per probe: see [`plain`]).
pub(super) fn request(h: &Http, addr: SocketAddr) -> Box<[u8]> {
    use std::fmt::Write as _;
    let mut req = String::with_capacity(160);
    let method = match h.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
    };
    let _ = write!(req, "{method} {} HTTP/1.1\r\nHost: ", h.path);
    match &h.host {
        Some(host) => req.push_str(host),
        None => {
            let _ = match addr.ip() {
                IpAddr::V4(ip) => write!(req, "{ip}"),
                IpAddr::V6(ip) => write!(req, "[{ip}]"),
            };
        }
    }
    if addr.port() != 80 {
        let _ = write!(req, ":{}", addr.port());
    }
    let _ = write!(
        req,
        "\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    req.into_bytes().into_boxed_slice()
}

/// One plain-HTTP check without redirects: connect, send `req` ([`request`]'s), judge status (and
/// body).
pub(super) async fn plain(
    conns: &super::conn::Pool,
    h: &Http,
    req: &[u8],
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    // The request is one write, so TCP_NODELAY would only cost a syscall; the write itself waits
    // for the connection. The connection ends with RST when `stream` is dropped.
    let mut stream = conns.connect(addr, source)?;
    stream.write_all(req).await.map_err(|e| io_reason("", &e))?;

    // read_buf appends to a Vec's spare capacity: no buffer is zeroed per check.
    // 1 KiB: room for a usual health answer's head, and small enough for the allocator's per-thread cache.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Read heads until a final (non-1xx) one; `buf` then holds what followed it.
    let head = loop {
        let mut searched = 0;
        let end = loop {
            if let Some(end) = head_end(&buf, searched) {
                break end;
            }
            searched = buf.len();
            if buf.len() >= HEAD_LIMIT {
                return Err(Down(format!(
                    "response head longer than {HEAD_LIMIT} bytes"
                )));
            }
            buf.reserve(READ_CHUNK);
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| io_reason("", &e))?;
            if n == 0 {
                return Err(Down("connection closed before a response".into()));
            }
        };
        // The framing headers matter only when the body is read.
        let head = parse_head(&buf[..end], h.regex.is_some())?;
        buf.drain(..end);
        if !(100..200).contains(&head.status) || head.status == 101 {
            break head;
        }
    };
    let status_line = status_line(head.status);
    if !h.expect.contains(head.status) {
        return Err(Down(format!("status {status_line}, expected {}", h.expect)));
    }
    let Some(re) = &h.regex else {
        return Ok(status_line);
    };
    // A body: HEAD, 1xx, 204 and 304 have none (RFC 9112 §6.3).
    let bodiless = h.method == Method::Head || head.status == 204 || head.status == 304;
    let mut body = Body::new(&head, bodiless);
    body.feed(&buf)?;
    loop {
        if re.is_match(&body.data) {
            return Ok(status_line);
        }
        if body.done || body.data.len() >= BODY_LIMIT {
            break;
        }
        buf.clear();
        buf.reserve(READ_CHUNK);
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| io_reason("", &e))?;
        if n == 0 {
            if body.close_delimited() {
                break;
            }
            return Err(Down("connection closed in the middle of the body".into()));
        }
        body.feed(&buf)?;
    }
    Err(Down(format!(
        "{status_line} but the body does not match /{}/",
        re.as_str()
    )))
}

/// `200 OK`: a status (100 to 999) and its standard reason phrase, if it has one.
fn status_line(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut line = String::with_capacity(4 + reason.len());
    for d in [status / 100, status / 10 % 10, status % 10] {
        line.push(char::from(b'0' + (d % 10) as u8));
    }
    if !reason.is_empty() {
        line.push(' ');
        line.push_str(reason);
    }
    line
}

/// Where a response head ends: just past its blank line (CRLF or bare LF line ends, RFC 9112 §2.2).
/// `from` is where the previous search of the same buffer stopped: what was searched is not
/// searched again (a server sending its head a byte at a time costs one pass, not one per byte).
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    // The blank line may have begun (up to "\n\r") in what was searched before.
    let start = from.saturating_sub(2).min(buf.len());
    memchr::memchr_iter(b'\n', &buf[start..]).find_map(|i| {
        let i = start + i;
        let blank = i >= 1
            && (buf[i - 1] == b'\n' || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'));
        blank.then_some(i + 1)
    })
}

/// What the parser keeps of a response head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
}

/// Header fields a response head may have: hyper's default limit. A head with more is not a
/// health answer (and is already bounded in bytes by [`HEAD_LIMIT`]).
const MAX_HEADERS: usize = 100;

/// Parses a response head (`raw` ends with its blank line, [`head_end`]) with httparse. With
/// `framing` (the body is read), every header line is checked and the framing headers are kept;
/// without, only the status line is read: httparse is given that line alone.
///
/// Measured with callgrind (`monitor probe http - --every 1s` against `bench_http_server`, 200
/// targets, release build, the difference between 600 and 2,600 checks), instructions per check in
/// [`plain`] with what it calls, against the hand-written parser before: status only 2,268 ->
/// 2,376 (the whole process ~7,900 a check); with a body regex 3,408 -> 3,590. Parsing and
/// checking every header line when no body is read made it 2,851: hence the status line alone.
///
/// httparse accepts bare LF line ends and a missing reason phrase; allowed on top, as RFC 9112
/// asks of a recipient or as old servers send: obs-fold (§5.2: replaced by a blank) and blanks
/// between a header's name and its colon. Refused: anything but `HTTP/1.0` or `HTTP/1.1`, a status
/// that is not three digits from 100, invalid bytes in names or values, more than
/// [`MAX_HEADERS`] headers.
fn parse_head(raw: &[u8], framing: bool) -> Result<Head, Down> {
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    // Without the body: the status line alone, through its line end (httparse then stops where
    // the headers would start, the status line complete).
    let (input, room) = if framing {
        (raw, &mut headers[..])
    } else {
        let end = memchr::memchr(b'\n', raw).map_or(raw.len(), |i| i + 1);
        (&raw[..end], &mut [][..])
    };
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response_with_uninit_headers(&mut resp, input, room);
    let bad_status = || {
        let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
        let shown: String = String::from_utf8_lossy(first.strip_suffix(b"\r").unwrap_or(first))
            .chars()
            .take(60)
            .collect();
        Down(format!(
            "bad response: {shown:?} is not an HTTP status line"
        ))
    };
    match parsed {
        Ok(httparse::Status::Complete(_)) => {}
        // The status line alone: complete once its reason phrase (even an empty one) was read.
        Ok(httparse::Status::Partial) if !framing && resp.reason.is_some() => {}
        // `raw` holds the whole head: a partial parse means the status line never ended well.
        Ok(httparse::Status::Partial) => return Err(bad_status()),
        Err(httparse::Error::Version | httparse::Error::Status | httparse::Error::Token) => {
            return Err(bad_status());
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Down(format!(
                "bad response: more than {MAX_HEADERS} header fields"
            )));
        }
        // HeaderName, HeaderValue, NewLine: "invalid header name" and the like.
        Err(e) => return Err(Down(format!("bad response: {e}"))),
    }
    let status = resp.code.unwrap_or(0);
    if !(100..=999).contains(&status) {
        return Err(bad_status());
    }
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
    };
    for h in resp.headers.iter().take_while(|_| framing) {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(
                std::str::from_utf8(value)
                    .ok()
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        Down(format!(
                            "bad response: Content-Length {:?}",
                            String::from_utf8_lossy(value)
                        ))
                    })?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    Ok(head)
}

/// The longest chunk size line (size, extensions, CRLF) read: chunk extensions are ignored, and a
/// server streaming one is down rather than an unbounded read.
const CHUNK_LINE_LIMIT: usize = 1024;

/// A response body being received: decoded data (capped at [`BODY_LIMIT`]) and whether it is
/// complete.
struct Body {
    data: Vec<u8>,
    done: bool,
    framing: Framing,
}

enum Framing {
    /// `Content-Length`: bytes still to come.
    Length(u64),
    /// Until the server closes.
    Close,
    /// Chunked: undecoded bytes, and the bytes left of the current chunk's data (with its CRLF).
    Chunked { pending: Vec<u8>, left: usize },
}

impl Body {
    fn new(head: &Head, bodiless: bool) -> Body {
        let framing = if bodiless {
            Framing::Length(0)
        } else if head.chunked {
            Framing::Chunked {
                pending: Vec::new(),
                left: 0,
            }
        } else if let Some(n) = head.content_length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        let done = matches!(framing, Framing::Length(0));
        Body {
            data: Vec::new(),
            done,
            framing,
        }
    }

    fn close_delimited(&self) -> bool {
        matches!(self.framing, Framing::Close)
    }

    fn keep(data: &mut Vec<u8>, bytes: &[u8]) {
        let room = BODY_LIMIT.saturating_sub(data.len());
        data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Adds received bytes.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), Down> {
        if self.done {
            return Ok(());
        }
        match &mut self.framing {
            Framing::Close => Body::keep(&mut self.data, bytes),
            Framing::Length(left) => {
                let n = bytes
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                Body::keep(&mut self.data, &bytes[..n]);
                *left -= n as u64;
                self.done = *left == 0;
            }
            Framing::Chunked { pending, left } => {
                pending.extend_from_slice(bytes);
                let mut pos = 0;
                loop {
                    if *left > 0 {
                        // Chunk data, then its CRLF (the last 2 of `left`).
                        let take = (*left).min(pending.len() - pos);
                        let data_part = take.min(left.saturating_sub(2));
                        Body::keep(&mut self.data, &pending[pos..pos + data_part]);
                        pos += take;
                        *left -= take;
                        if *left > 0 {
                            break;
                        }
                        continue;
                    }
                    let line = &pending[pos..];
                    let (used, size) = match httparse::parse_chunk_size(line) {
                        // A size line must start with a digit (httparse takes a bare CRLF as 0).
                        Ok(httparse::Status::Complete(_)) if !line[0].is_ascii_hexdigit() => {
                            return Err(Down(chunk_line_error(line)));
                        }
                        Ok(httparse::Status::Complete(c)) => c,
                        Ok(httparse::Status::Partial) if line.len() > CHUNK_LINE_LIMIT => {
                            return Err(Down(format!(
                                "bad response: chunk size line longer than {CHUNK_LINE_LIMIT} bytes"
                            )));
                        }
                        Ok(httparse::Status::Partial) => break,
                        Err(httparse::InvalidChunkSize) => {
                            return Err(Down(chunk_line_error(line)));
                        }
                    };
                    // Past what a body may hold anyway: only its first BODY_LIMIT bytes are kept.
                    let size = usize::try_from(size).unwrap_or(usize::MAX);
                    pos += used;
                    if size == 0 {
                        // Trailers are not needed: the body is complete.
                        self.done = true;
                        break;
                    }
                    *left = size.saturating_add(2);
                }
                pending.drain(..pos);
            }
        }
        Ok(())
    }
}

/// `bad response: chunk size "zz"`: the size line as received (up to its end, 40 characters).
fn chunk_line_error(line: &[u8]) -> String {
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
    let shown: String = String::from_utf8_lossy(&line[..end])
        .trim_end()
        .chars()
        .take(40)
        .collect();
    format!("bad response: chunk size {shown:?}")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn request_reason(e: &reqwest::Error) -> Down {
    if let Some(t) = tls::find_rustls_error(e) {
        return Down(tls::reason(t));
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_none_or(|i| i.downcast_ref::<rustls::Error>().is_none())
        {
            return io_reason("", io);
        }
        cur = err.source();
    }
    if e.is_timeout() {
        return Down("timed out".into());
    }
    if e.is_redirect() {
        return Down("too many redirects".into());
    }
    let c = chain(e);
    if c.contains("connection closed before message completed") || c.contains("IncompleteMessage") {
        return Down("connection closed before a response".into());
    }
    Down(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges() {
        let r: StatusRanges = "200-299, 301".parse().unwrap();
        assert!(r.contains(200) && r.contains(299) && r.contains(301));
        assert!(!r.contains(300) && !r.contains(302));
        assert_eq!(r.to_string(), "200-299,301");
        assert!(
            "299-200"
                .parse::<StatusRanges>()
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            "2xx"
                .parse::<StatusRanges>()
                .unwrap_err()
                .contains("not a status code")
        );
        assert!("99".parse::<StatusRanges>().is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(200), "200 OK");
        assert_eq!(status_line(503), "503 Service Unavailable");
        assert_eq!(status_line(299), "299");
        assert_eq!(status_line(999), "999");
        assert_eq!(status_line(100), "100 Continue");
    }

    #[test]
    fn requests() {
        let h = Http::default();
        let req = request(&h, "192.0.2.13:80".parse().unwrap());
        assert_eq!(
            std::str::from_utf8(&req).unwrap(),
            format!(
                "GET / HTTP/1.1\r\nHost: 192.0.2.13\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
        );
        let h = Http {
            method: Method::Head,
            path: "/health?x=1".into(),
            ..Http::default()
        };
        let req = request(&h, "[2001:db8::13]:8080".parse().unwrap());
        assert!(req.starts_with(b"HEAD /health?x=1 HTTP/1.1\r\nHost: [2001:db8::13]:8080\r\n"));
        let h = Http {
            host: Some("www.example.org".into()),
            ..Http::default()
        };
        let req = request(&h, "192.0.2.13:8080".parse().unwrap());
        assert!(req.starts_with(b"GET / HTTP/1.1\r\nHost: www.example.org:8080\r\n"));
    }

    #[test]
    fn heads_parse() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true).unwrap();
        assert_eq!(
            (h.status, h.content_length, h.chunked),
            (200, Some(12), false)
        );
        let h = parse_head(
            b"HTTP/1.0 503\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!((h.status, h.chunked), (503, true));
        assert!(
            parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", true)
                .unwrap_err()
                .0
                .contains("not an HTTP status line")
        );
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n", true).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true).is_err());
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n"[..],
            b"HTTP/1.1 099 X\r\n",
            b"HTTP/2 200\r\n",
            b"HTTP/1.1  200\r\n",
            b"",
        ] {
            assert!(
                parse_head(bad, true).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // No reason phrase; bare LF line ends; blanks around a header's value.
        let h = parse_head(b"HTTP/1.1 204\nContent-Length :  0 \n\n", true).unwrap();
        assert_eq!((h.status, h.content_length), (204, Some(0)));
        let h = parse_head(
            b"HTTP/1.1 301 Moved\r\nX: a:b\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!((h.status, h.chunked, h.content_length), (301, false, None));
        // Without headers (no body to read): the status line alone, a bad header not looked at.
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).unwrap();
        assert_eq!((h.status, h.content_length, h.chunked), (200, None, false));
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n", false).is_err());
    }

    #[test]
    fn malformed_heads_are_bad_responses() {
        let err = |raw: &[u8], framing| parse_head(raw, framing).unwrap_err().0;
        // Header lines are checked when the body is read (else only the status line is read).
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", true),
            "bad response: invalid header name"
        );
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", true),
            "bad response: invalid header name"
        );
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", true),
            "bad response: invalid header value"
        );
        assert!(err(b"HTTP/1.1 200 O\x01K\r\n\r\n", true).contains("not an HTTP status line"));
        for ok in [
            &b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert_eq!(parse_head(ok, false).unwrap().status, 200);
        }
        assert!(err(b"HTTP/1.1 200 O\x01K\r\n\r\n", false).contains("not an HTTP status line"));
        // A status line without its line end is not complete.
        assert!(err(b"HTTP/1.1 200 OK", false).contains("not an HTTP status line"));
        assert!(err(b"HTTP/1.1 200", false).contains("not an HTTP status line"));
        assert_eq!(
            err(b"HTTP/1.2 200 OK\r\n\r\n", false),
            "bad response: \"HTTP/1.2 200 OK\" is not an HTTP status line"
        );
        assert!(
            err(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n", true).contains("Content-Length")
        );
        assert!(
            err(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                true
            )
            .contains("Content-Length")
        );
    }

    #[test]
    fn obs_fold_is_read_as_a_blank() {
        // RFC 9112 §5.2: a recipient replaces obs-fold with a blank; the fields after it still count.
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\n\tc\r\nContent-Length: 3\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!((h.status, h.content_length), (200, Some(3)));
        let h = parse_head(b"HTTP/1.1 200 OK\nTransfer-Encoding:\n chunked\n\n", true).unwrap();
        assert!(h.chunked);
    }

    #[test]
    fn at_most_max_headers() {
        let head = |n: usize| {
            let mut h = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..n {
                h.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
            }
            h.extend_from_slice(b"\r\n");
            h
        };
        assert_eq!(parse_head(&head(MAX_HEADERS), true).unwrap().status, 200);
        // Without the body, header lines are not read: any number of them.
        assert_eq!(
            parse_head(&head(MAX_HEADERS + 1), false).unwrap().status,
            200
        );
        assert_eq!(
            parse_head(&head(MAX_HEADERS + 1), true).unwrap_err().0,
            format!("bad response: more than {MAX_HEADERS} header fields")
        );
    }

    #[test]
    fn head_ends() {
        let end = |b: &[u8]| head_end(b, 0);
        assert_eq!(end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), Some(25));
        assert_eq!(end(b"HTTP/1.1 200 OK\nA: b\n\nbody"), Some(22));
        assert_eq!(end(b"HTTP/1.1 200 OK\r\n\nx"), Some(18));
        assert_eq!(end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r"), None);
        assert_eq!(end(b""), None);
    }

    #[test]
    fn head_end_resumes_where_it_stopped() {
        // Every way a head can arrive a byte at a time: the end is found whatever was seen before.
        for head in [
            &b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"[..],
            b"HTTP/1.1 200 OK\nA: b\n\nbody",
            b"HTTP/1.1 200 OK\r\n\nx",
        ] {
            let want = head_end(head, 0);
            let mut searched = 0;
            let mut found = None;
            for n in 1..=head.len() {
                if let Some(e) = head_end(&head[..n], searched) {
                    found = Some(e);
                    break;
                }
                searched = n;
            }
            assert_eq!(found, want, "{:?}", String::from_utf8_lossy(head));
        }
        // What was searched before is not searched again (no blank line found in it twice).
        assert_eq!(head_end(b"\n\nHTTP/1.1 200 OK\r\n", 5), None);
        assert_eq!(head_end(b"x", 9), None);
    }

    #[test]
    fn chunked_bodies_decode_across_reads() {
        let head = Head {
            status: 200,
            content_length: None,
            chunked: true,
        };
        let mut b = Body::new(&head, false);
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        for piece in raw.chunks(3) {
            b.feed(piece).unwrap();
        }
        assert!(b.done);
        assert_eq!(b.data, b"hello, world");
        let mut b = Body::new(&head, false);
        assert!(b.feed(b"zz\r\n").is_err());
    }

    #[test]
    fn chunk_extensions_and_bad_size_lines() {
        let head = Head {
            status: 200,
            content_length: None,
            chunked: true,
        };
        let decode = |raw: &[u8]| {
            let mut b = Body::new(&head, false);
            b.feed(raw).map(|()| (b.done, b.data))
        };
        // Extensions (with a quoted ';'), blanks before them, upper-case hex.
        assert_eq!(
            decode(b"5 ; a=\"x;y\"\r\nhello\r\nA;b\r\n, world!!!\r\n0\r\n\r\n").unwrap(),
            (true, b"hello, world!!!".to_vec())
        );
        // Trailers after the last chunk are not waited for.
        assert_eq!(
            decode(b"2\r\nok\r\n0\r\nX-Trailer: 1\r\n").unwrap(),
            (true, b"ok".to_vec())
        );
        for (raw, want) in [
            (&b"\r\nhello"[..], "bad response: chunk size \"\""),
            (b";x\r\n", "bad response: chunk size \";x\""),
            (b"-5\r\n", "bad response: chunk size \"-5\""),
            (b"5\nhello", "bad response: chunk size \"5\""),
            // More than 64 bits of size.
            (
                b"10000000000000000\r\n",
                "bad response: chunk size \"10000000000000000\"",
            ),
        ] {
            assert_eq!(
                decode(raw).unwrap_err().0,
                want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // A size line that never ends: refused once it passes the limit, not buffered on.
        let mut b = Body::new(&head, false);
        b.feed(b"5;").unwrap();
        let ext = vec![b'e'; 256];
        let mut fed = 2;
        let e = loop {
            match b.feed(&ext) {
                Ok(()) => fed += ext.len(),
                Err(e) => break e.0,
            }
            assert!(fed <= CHUNK_LINE_LIMIT + ext.len(), "{fed} bytes taken");
        };
        assert_eq!(
            e,
            format!("bad response: chunk size line longer than {CHUNK_LINE_LIMIT} bytes")
        );
        // A huge chunk: its first BODY_LIMIT bytes are kept.
        let mut b = Body::new(&head, false);
        b.feed(b"fffffffffffffff\r\n").unwrap();
        let data = vec![b'x'; 64 << 10];
        for _ in 0..(BODY_LIMIT / data.len() + 2) {
            b.feed(&data).unwrap();
        }
        assert_eq!((b.done, b.data.len()), (false, BODY_LIMIT));
    }

    #[test]
    fn length_and_close_bodies() {
        let head = Head {
            status: 200,
            content_length: Some(4),
            chunked: false,
        };
        let mut b = Body::new(&head, false);
        b.feed(b"ab").unwrap();
        assert!(!b.done);
        b.feed(b"cdEXTRA").unwrap();
        assert!(b.done);
        assert_eq!(b.data, b"abcd");
        assert!(Body::new(&head, true).done);
        let head = Head {
            content_length: None,
            ..head
        };
        let mut b = Body::new(&head, false);
        b.feed(b"xyz").unwrap();
        assert!(!b.done && b.close_delimited());
        assert_eq!(b.data, b"xyz");
    }

    fn key(port: u16) -> ClientKey {
        ClientKey {
            tls: TlsKey {
                verify: true,
                ca_file: None,
            },
            source: None,
            follow_redirects: false,
            resolve: Some((
                "rs.example.org".into(),
                SocketAddr::from(([127, 0, 0, 1], port)),
            )),
        }
    }

    #[test]
    fn the_client_cache_drops_the_least_recently_used() {
        let clients = Clients::with_capacity(3);
        for port in 1..=3 {
            clients.client(&key(port)).unwrap();
        }
        // 1 is used again: 2 is now the least recently used, and goes when 4 comes.
        clients.client(&key(1)).unwrap();
        clients.client(&key(4)).unwrap();
        let kept = |port| clients.cache().map.contains_key(&key(port));
        assert_eq!(
            (kept(1), kept(2), kept(3), kept(4)),
            (true, false, true, true)
        );
        assert_eq!(clients.cache().map.len(), 3);
    }

    /// Many HTTPS targets with a TLS name, each its own client: the cache stays at its bound.
    #[tokio::test]
    async fn many_targets_do_not_grow_the_client_cache_past_its_bound() {
        let clients = Clients::with_capacity(8);
        let h = Http {
            host: Some("rs.example.org".into()),
            ..Http::default()
        };
        // Ports nothing listens on: each check is refused, after its client was made.
        let closed: Vec<SocketAddr> = (0..40)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            })
            .collect();
        for (i, addr) in closed.iter().enumerate() {
            let down = clients.check(&h, true, *addr, None).await.unwrap_err();
            assert!(down.0.contains("refused"), "{down}");
            assert_eq!(clients.cache().map.len(), (i + 1).min(8));
        }
        assert_eq!(CLIENTS_MAX, Clients::default().cache().max);
    }

    #[test]
    fn reload_drops_the_clients() {
        let clients = Clients::with_capacity(3);
        clients.client(&key(1)).unwrap();
        assert!(clients.reload().is_empty());
        assert!(clients.cache().map.is_empty());
    }

    #[test]
    fn paths_get_a_leading_slash() {
        assert_eq!(normalize_path("health"), "/health");
        assert_eq!(normalize_path("/x?y=1"), "/x?y=1");
    }
}
