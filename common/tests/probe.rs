//! Every probe kind against real servers on loopback: up, refused, timeout, wrong answers, TLS
//! failures; the engine sharing one connection per interval between users of the same probe.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config;
use common::probe::{Engine, EngineOptions, Outcome, Probe, Prober, Spec};
use support::{Answer, CertKind};

/// A probe of `addr` from a TOML spec (the port is taken from `addr`).
fn probe(addr: SocketAddr, toml: &str) -> Probe {
    let spec: Spec = config::parse_str("test.toml", &format!("port = {}\n{toml}", addr.port()))
        .unwrap_or_else(|e| panic!("{e}"));
    Probe::new(addr.ip(), spec)
}

async fn run(addr: SocketAddr, toml: &str) -> Outcome {
    Prober::new().run(&probe(addr, toml)).await
}

#[track_caller]
fn up(o: &Outcome, reason: &str) {
    assert!(o.up, "expected up, got down: {}", o.reason);
    assert_eq!(o.reason, reason);
}

#[track_caller]
fn down(o: &Outcome, reason_contains: &str) {
    assert!(!o.up, "expected down, got up: {}", o.reason);
    assert!(
        o.reason.contains(reason_contains),
        "reason {:?} lacks {reason_contains:?}",
        o.reason
    );
}

// ---- tcp

#[tokio::test]
async fn tcp_up_and_refused() {
    let s = support::http(Answer::ok("")).await;
    let o = run(s.addr, "kind = \"tcp\"").await;
    up(&o, "connected");
    assert!(
        o.latency > Duration::ZERO && o.latency < common::probe::DEFAULT_TIMEOUT,
        "{:?}",
        o.latency
    );
    let o = run(support::closed_tcp_port().await, "kind = \"tcp\"").await;
    down(&o, "connection refused");
}

/// tcp and plain http (which has its own connections): from a source address, and a source that is
/// not this host's.
#[tokio::test]
async fn tcp_and_http_from_a_source_address() {
    let s = support::http(Answer::ok("")).await;
    for (kind, reason) in [("tcp", "connected"), ("http", "200 OK")] {
        up(
            &run(
                s.addr,
                &format!("kind = \"{kind}\"\nsource = \"127.0.0.1\""),
            )
            .await,
            reason,
        );
        // 192.0.2.1 is not an address of this host: binding to it fails, the check says so.
        down(
            &run(
                s.addr,
                &format!("kind = \"{kind}\"\nsource = \"192.0.2.1\""),
            )
            .await,
            "bind 192.0.2.1",
        );
    }
}

// ---- http

#[tokio::test]
async fn http_up_with_status_and_host_header() {
    let s = support::http(Answer::ok("all fine")).await;
    let o = run(
        s.addr,
        "kind = \"http\"\npath = \"health\"\nhost = \"www.example.org\"",
    )
    .await;
    up(&o, "200 OK");
    let req = s.requests.lock().unwrap()[0].clone();
    assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
    let want = format!("host: www.example.org:{}\r\n", s.addr.port());
    assert!(req.to_lowercase().contains(&want), "{req}");
}

#[tokio::test]
async fn http_head_and_default_host() {
    let s = support::http(Answer::ok("x")).await;
    up(
        &run(s.addr, "kind = \"http\"\nmethod = \"HEAD\"").await,
        "200 OK",
    );
    let req = s.requests.lock().unwrap()[0].clone();
    assert!(req.starts_with("HEAD / HTTP/1.1\r\n"), "{req}");
    assert!(
        req.to_lowercase()
            .contains(&format!("host: {}\r\n", s.addr)),
        "{req}"
    );
}

#[tokio::test]
async fn http_wrong_status() {
    let s = support::http(Answer::status("503 Service Unavailable")).await;
    down(
        &run(s.addr, "kind = \"http\"").await,
        "status 503 Service Unavailable, expected 200-299",
    );
    let s = support::http(Answer::status("301 Moved Permanently")).await;
    up(
        &run(s.addr, "kind = \"http\"\nexpect = \"200-299,301\"").await,
        "301 Moved Permanently",
    );
}

#[tokio::test]
async fn http_redirects_are_not_followed_unless_asked() {
    let target = support::http(Answer::ok("")).await;
    let mut a = Answer::status("302 Found");
    a.body = String::new();
    // A redirect to the other server: the Location header is written by hand.
    let redirect = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to = target.addr;
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let r = format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://{to}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(r.as_bytes()).await;
                });
            }
        });
        addr
    };
    down(&run(redirect, "kind = \"http\"").await, "status 302 Found");
    assert_eq!(target.connections(), 0);
    up(
        &run(redirect, "kind = \"http\"\nfollow_redirects = true").await,
        "200 OK",
    );
    assert_eq!(target.connections(), 1);
}

#[tokio::test]
async fn http_body_regex() {
    let s = support::http(Answer::ok("<html>status: GREEN</html>")).await;
    up(
        &run(
            s.addr,
            "kind = \"http\"\nregex = \"status: (GREEN|YELLOW)\"",
        )
        .await,
        "200 OK",
    );
    down(
        &run(s.addr, "kind = \"http\"\nregex = \"status: RED\"").await,
        "200 OK but the body does not match /status: RED/",
    );
}

/// A plain-HTTP check closes with RST, as HAProxy's do: the server keeps no TIME_WAIT entry per
/// check. The server answers without closing, then reads on: a reset, not an orderly end of stream.
#[tokio::test]
async fn http_check_closes_with_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let s = support::tcp(move |mut c| {
        let tx = tx.clone();
        async move {
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf[got..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            let end = c.read(&mut buf).await.map_err(|e| e.kind());
            let _ = tx.send(end);
        }
    })
    .await;
    up(&run(s.addr, "kind = \"http\"").await, "200 OK");
    let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the server saw the check end")
        .unwrap();
    assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
}

/// A server that reads a request head, then sends `reply` and, with `endless`, `endless` over and
/// over until the client goes away.
async fn raw_http(reply: &'static [u8], endless: &'static [u8]) -> support::Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    support::tcp(move |mut c| async move {
        let mut buf = vec![0u8; 4096];
        let mut got = 0;
        while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
        if c.write_all(reply).await.is_err() {
            return;
        }
        while !endless.is_empty() && c.write_all(endless).await.is_ok() {}
    })
    .await
}

/// Heads and bodies as servers send them, parsed by httparse: accepted variants, malformed heads,
/// and servers that never end a head or a chunk size line (down with the cap's reason, not at the
/// timeout).
#[tokio::test]
async fn http_heads_and_chunked_bodies_from_raw_servers() {
    let many_headers: &'static [u8] = {
        let mut h = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..101 {
            h.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        h.leak()
    };
    /// What the server sends, then sends on and on; the spec's extra lines; up or down, and why.
    type Case<'a> = (&'a [u8], &'a [u8], &'a str, Result<&'a str, &'a str>);
    let cases: &[Case] = &[
        (
            b"HTTP/1.1 200 OK\nContent-Length: 5\n\nGREEN",
            b"",
            "regex = \"GREEN\"",
            Ok("200 OK"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;v=1\r\nGRE\r\n2 ; x\r\nEN\r\n0\r\n\r\n",
            b"",
            "regex = \"GREEN\"",
            Ok("200 OK"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
            b"",
            "regex = \"ok\"",
            Ok("200 OK"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            b"",
            "regex = \"x\"",
            Err("bad response: invalid header name"),
        ),
        (
            many_headers,
            b"",
            "regex = \"x\"",
            Err("bad response: more than 100 header fields"),
        ),
        // Without a regex only the status line is read: up, whatever follows.
        (many_headers, b"", "", Ok("200 OK")),
        (
            b"HTTP/1.1 200 OK\r\nX: ",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "",
            Err("response head longer than 65536 bytes"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;",
            b"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "regex = \"GREEN\"",
            Err("bad response: chunk size line longer than 1024 bytes"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"",
            "regex = \"GREEN\"",
            Err("bad response: chunk size \"zz\""),
        ),
    ];
    for (reply, endless, extra, want) in cases {
        let s = raw_http(reply, endless).await;
        // The reason says which cap ended the check (a timeout would say "timeout after 20s").
        let o = run(
            s.addr,
            &format!("kind = \"http\"\ntimeout = \"20s\"\n{extra}"),
        )
        .await;
        match want {
            Ok(reason) => up(&o, reason),
            Err(reason) => down(&o, reason),
        }
    }
}

#[tokio::test]
async fn http_refused() {
    down(
        &run(support::closed_tcp_port().await, "kind = \"http\"").await,
        "connection refused",
    );
}

#[tokio::test]
async fn http_silent_server_times_out() {
    let mut a = Answer::ok("");
    a.silent = true;
    let s = support::http(a).await;
    let start = Instant::now();
    let o = run(s.addr, "kind = \"http\"\ntimeout = \"300ms\"").await;
    down(&o, "timeout after 300ms");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn http_slow_server_past_the_timeout() {
    let mut a = Answer::ok("late");
    a.delay = Duration::from_millis(800);
    let s = support::http(a).await;
    down(
        &run(s.addr, "kind = \"http\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
    // The same server within a longer timeout is up, its latency the server's known delay or more.
    let o = run(s.addr, "kind = \"http\"\ntimeout = \"3s\"").await;
    up(&o, "200 OK");
    assert!(
        o.latency >= Duration::from_millis(800) && o.latency < Duration::from_secs(3),
        "{:?}",
        o.latency
    );
}

// ---- https

fn https_toml(ca: &std::path::Path, extra: &str) -> String {
    format!("kind = \"https\"\nca_file = \"{}\"\n{extra}", ca.display())
}

#[tokio::test]
async fn https_up_with_sni_and_verification() {
    let id = support::identity(&["rs1.example.org"], CertKind::Good);
    let s = support::https(Answer::ok("secure"), &id).await;
    let o = run(
        s.addr,
        &https_toml(
            &id.ca_file,
            "host = \"rs1.example.org\"\nregex = \"secure\"",
        ),
    )
    .await;
    up(&o, "200 OK");
    // sni overrides host for the TLS name; host stays the Host header.
    let o = run(
        s.addr,
        &https_toml(
            &id.ca_file,
            "host = \"www.example.org\"\nsni = \"rs1.example.org\"",
        ),
    )
    .await;
    up(&o, "200 OK");
    let req = s.requests.lock().unwrap()[1].to_lowercase();
    assert!(req.contains("host: www.example.org:"), "{req}");
}

#[tokio::test]
async fn https_certificate_for_an_ip_address() {
    let id = support::identity(&["127.0.0.1"], CertKind::Good);
    let s = support::https(Answer::ok(""), &id).await;
    up(&run(s.addr, &https_toml(&id.ca_file, "")).await, "200 OK");
}

#[tokio::test]
async fn https_wrong_name_is_down() {
    let id = support::identity(&["rs1.example.org"], CertKind::Good);
    let s = support::https(Answer::ok(""), &id).await;
    let o = run(
        s.addr,
        &https_toml(&id.ca_file, "sni = \"rs2.example.org\""),
    )
    .await;
    down(&o, "certificate not valid for the server's name");
}

#[tokio::test]
async fn https_expired_is_down() {
    let id = support::identity(&["rs1.example.org"], CertKind::Expired);
    let s = support::https(Answer::ok(""), &id).await;
    down(
        &run(
            s.addr,
            &https_toml(&id.ca_file, "sni = \"rs1.example.org\""),
        )
        .await,
        "certificate expired",
    );
}

#[tokio::test]
async fn https_self_signed_is_down_with_verification_and_up_without() {
    let id = support::identity(&["rs1.example.org"], CertKind::SelfSigned);
    let s = support::https(Answer::ok(""), &id).await;
    let o = run(
        s.addr,
        &https_toml(&id.ca_file, "sni = \"rs1.example.org\""),
    )
    .await;
    down(&o, "certificate signed by an unknown issuer");
    // Against the system roots as well (no ca_file).
    let o = run(s.addr, "kind = \"https\"\nsni = \"rs1.example.org\"").await;
    assert!(!o.up, "{}", o.reason);
    // Explicit opt-out: the handshake still has to complete.
    let o = run(
        s.addr,
        "kind = \"https\"\nsni = \"rs1.example.org\"\nverify = false",
    )
    .await;
    up(&o, "200 OK");
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_down() {
    let s = support::http(Answer::ok("")).await;
    // The test server waits for an HTTP request head that a TLS ClientHello never completes.
    let o = run(
        s.addr,
        "kind = \"https\"\nverify = false\ntimeout = \"500ms\"",
    )
    .await;
    down(&o, "timeout after 500ms");
}

#[tokio::test]
async fn https_missing_ca_file_says_so() {
    let s = support::http(Answer::ok("")).await;
    down(
        &run(
            s.addr,
            "kind = \"https\"\nca_file = \"/nonexistent/ca.pem\"",
        )
        .await,
        "cannot read CA file /nonexistent/ca.pem",
    );
}

/// A CA file replaced on disk is read again on `Prober::reload`, by https (reqwest's clients) and
/// by the other TLS kinds (pop3s here) alike: a check that failed against the old CA passes with
/// the new one, and the other way round; a broken file keeps the certificates read before.
#[tokio::test]
async fn a_replaced_ca_file_is_read_again_on_reload() {
    let id = support::identity(&["rs1.example.org"], CertKind::Good);
    let other = support::identity(&["rs1.example.org"], CertKind::Good);
    let web = support::https(Answer::ok(""), &id).await;
    let mail = support::line_server_tls(
        "+OK ready\r\n",
        vec![("QUIT", "+OK bye\r\n")],
        support::LineTls::Implicit(id.acceptor()),
    )
    .await;
    let right = std::fs::read(&*id.ca_file).unwrap();
    let wrong = std::fs::read(&*other.ca_file).unwrap();
    let dir = support::TempDir::new("reload");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &wrong).unwrap();
    let toml = |kind: &str| {
        format!(
            "kind = \"{kind}\"\nca_file = \"{}\"\nsni = \"rs1.example.org\"",
            ca.display()
        )
    };
    let (web_probe, mail_probe) = (
        probe(web.addr, &toml("https")),
        probe(mail.addr, &toml("pop3s")),
    );
    let prober = Prober::new();
    let check = async |want_up: bool| {
        for p in [&web_probe, &mail_probe] {
            let o = prober.run(p).await;
            if want_up {
                assert!(o.up, "{}: {}", p.target_display(), o.reason);
            } else {
                // Both test CAs have the same name: the wrong one is found, its signature fails.
                down(&o, "invalid peer certificate: BadSignature");
            }
        }
    };
    check(false).await;
    // Replaced, not yet reloaded: the configuration read before is still in use.
    std::fs::write(&ca, &right).unwrap();
    check(false).await;
    assert_eq!(prober.reload(), []);
    check(true).await;
    // A broken file: reload says so, and the certificates read before stay.
    std::fs::write(&ca, b"not a certificate").unwrap();
    let errors = prober.reload();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.ca_file, ca);
        assert!(
            e.to_string()
                .contains(&format!("no certificate in CA file {}", ca.display())),
            "{e}"
        );
    }
    check(true).await;
    // And back to the wrong CA.
    std::fs::write(&ca, &wrong).unwrap();
    assert_eq!(prober.reload(), []);
    check(false).await;
}

// ---- simpletcp

#[tokio::test]
async fn simpletcp_send_and_expect() {
    let s = support::line_server("+READY\r\n", vec![("PING", "+PONG\r\n")]).await;
    let o = run(
        s.addr,
        "kind = \"simpletcp\"\nsend = \"PING\\r\\n\"\nexpect = \"PONG\"",
    )
    .await;
    up(&o, "answer matches: \"+READY\\r\\n+PONG\\r\\n\"");
    assert_eq!(s.requests.lock().unwrap()[0], "PING\r\n");
    // Greeting only, no send.
    up(
        &run(s.addr, "kind = \"simpletcp\"\nexpect = \"^\\\\+READY\"").await,
        "answer matches: \"+READY\\r\\n\"",
    );
}

#[tokio::test]
async fn simpletcp_mismatch_waits_for_the_timeout_or_eof() {
    let s = support::line_server("+READY\r\n", vec![("QUIT", "")]).await;
    let o = run(
        s.addr,
        "kind = \"simpletcp\"\nexpect = \"PONG\"\ntimeout = \"300ms\"",
    )
    .await;
    down(&o, "timeout after 300ms");
    // A server that closes after a wrong answer: down at once with what it said.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut c, _) = listener.accept().await.unwrap();
        c.write_all(b"-ERR busy\r\n").await.unwrap();
    });
    down(
        &run(addr, "kind = \"simpletcp\"\nexpect = \"PONG\"").await,
        "answer does not match /PONG/: \"-ERR busy\\r\\n\"",
    );
    down(
        &run(
            support::closed_tcp_port().await,
            "kind = \"simpletcp\"\nexpect = \"x\"",
        )
        .await,
        "connection refused",
    );
}

// ---- udp

#[tokio::test]
async fn udp_reply_and_port_unreachable() {
    let s = support::udp(|d| (d == b"ping\n").then(|| b"pong\n".to_vec())).await;
    up(
        &run(
            s.addr,
            "kind = \"udp\"\nsend = \"ping\\n\"\nexpect = \"^pong\"",
        )
        .await,
        "reply of 5 bytes",
    );
    let o = run(
        support::closed_udp_port().await,
        "kind = \"udp\"\nsend = \"ping\\n\"",
    )
    .await;
    down(&o, "port unreachable");
    assert!(
        o.latency < common::probe::DEFAULT_TIMEOUT,
        "ICMP ended it before the timeout: {:?}",
        o.latency
    );
}

#[tokio::test]
async fn udp_silence_and_wrong_reply() {
    let s = support::udp(|d| {
        if d == b"x" {
            None
        } else {
            Some(b"nope".to_vec())
        }
    })
    .await;
    down(
        &run(s.addr, "kind = \"udp\"\nsend = \"x\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
    down(
        &run(s.addr, "kind = \"udp\"\nsend = \"y\"\nexpect = \"yes\"").await,
        "reply does not match /yes/: \"nope\"",
    );
}

// ---- dns

fn dns_server_answer(query: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{RData, Record, rdata::A};
    let q = Message::from_vec(query).ok()?;
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.queries = q.queries.clone();
    let name = q.queries[0].name().to_ascii();
    match name.as_str() {
        "www.example.org." => {
            r.answers.push(Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 13)),
            ));
        }
        "empty.example.org." => {}
        "silent.example.org." => return None,
        _ => r.metadata.response_code = ResponseCode::NXDomain,
    }
    Some(r.to_vec().unwrap())
}

#[tokio::test]
async fn dns_answers() {
    let s = support::udp(dns_server_answer).await;
    up(
        &run(s.addr, "kind = \"dns\"\nname = \"www.example.org\"").await,
        "NOERROR, 1 answer",
    );
    down(
        &run(s.addr, "kind = \"dns\"\nname = \"nope.example.org\"").await,
        "answer Non-Existent Domain",
    );
    down(
        &run(
            s.addr,
            "kind = \"dns\"\nname = \"empty.example.org\"\ntype = \"aaaa\"",
        )
        .await,
        "NOERROR but no answer",
    );
    down(
        &run(
            s.addr,
            "kind = \"dns\"\nname = \"silent.example.org\"\ntimeout = \"300ms\"",
        )
        .await,
        "timeout after 300ms",
    );
    down(
        &run(
            support::closed_udp_port().await,
            "kind = \"dns\"\nname = \"www.example.org\"",
        )
        .await,
        "port unreachable",
    );
}

#[test]
fn dns_bad_type_is_a_config_error() {
    let e = config::parse_str::<Spec>(
        "c.toml",
        "kind = \"dns\"\nname = \"x.org\"\ntype = \"BOGUS\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("type: unknown record type \"BOGUS\""),
        "{e}"
    );
}

// ---- ping: ICMP sockets need root (or net.ipv4.ping_group_range): `ping_root.rs`

// ---- external

/// An executable shell script, removed (with its directory) when dropped.
fn script(body: &str) -> support::TempFile {
    use std::os::unix::fs::PermissionsExt;
    let file = support::TempFile::new("ext", "check.sh", format!("#!/bin/sh\n{body}\n").as_bytes());
    std::fs::set_permissions(&*file, std::fs::Permissions::from_mode(0o755)).unwrap();
    file
}

#[tokio::test]
async fn external_exit_status_and_first_line() {
    let ip: SocketAddr = "192.0.2.13:8080".parse().unwrap();
    let ok = script("echo \"all good: $*\"; echo detail");
    let o = run(
        ip,
        &format!("kind = \"external\"\ncommand = \"{} -x\"", ok.display()),
    )
    .await;
    up(&o, "all good: -x 192.0.2.13");
    let o = run(
        ip,
        &format!(
            "kind = \"external\"\ncommand = \"{}\"\nvirtual = \"192.0.2.100:80\"",
            ok.display()
        ),
    )
    .await;
    up(&o, "all good: 192.0.2.100 80 192.0.2.13 8080");
    let bad = script("echo 'disk full'; exit 3");
    down(
        &run(
            ip,
            &format!("kind = \"external\"\ncommand = \"{}\"", bad.display()),
        )
        .await,
        "exit 3: disk full",
    );
    let quiet = script("exit 1");
    down(
        &run(
            ip,
            &format!("kind = \"external\"\ncommand = \"{}\"", quiet.display()),
        )
        .await,
        "exit 1",
    );
    down(
        &run(ip, "kind = \"external\"\ncommand = \"/nonexistent/check\"").await,
        "cannot run /nonexistent/check: no such file",
    );
}

fn alive(pid: i32) -> bool {
    // Gone, or a zombie waiting for its reaper: either way no longer running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn external_timeout_kills_the_child_and_its_group() {
    let dir = support::TempDir::new("ext-kill");
    let pids = dir.path().join("pids");
    let hang = script(&format!(
        "sleep 60 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    ));
    let ip: SocketAddr = "192.0.2.13:80".parse().unwrap();
    let start = Instant::now();
    let toml = format!(
        "kind = \"external\"\ncommand = \"{}\"\ntimeout = \"2s\"",
        hang.display()
    );
    let check = tokio::spawn(async move { run(ip, &toml).await });
    let read_pids = || -> Vec<i32> {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    support::wait_for(
        "the script and its background sleep to write their pids",
        || read_pids().len() == 2,
    )
    .await;
    let o = check.await.unwrap();
    down(&o, "timeout after 2s");
    // Not waiting for the script's `sleep 60`.
    assert!(start.elapsed() < Duration::from_secs(30));
    let pids = read_pids();
    support::wait_for(&format!("pids {pids:?} to end after the timeout"), || {
        !pids.iter().any(|&p| alive(p))
    })
    .await;
}

// ---- the engine with real probes

#[tokio::test]
async fn two_users_of_one_probe_cause_one_connection_per_interval() {
    const RUNS: usize = 3;
    let s = support::http(Answer::ok("ok")).await;
    let engine = Engine::spawn(Arc::new(Prober::new()), EngineOptions::default());
    let p = probe(s.addr, "kind = \"http\"");
    let mut a = engine.watch(p.clone(), Duration::from_millis(500));
    let mut b = engine.watch(p, Duration::from_millis(500));
    for run in 0..RUNS {
        let what = format!("report {run}");
        let r = tokio::time::timeout(support::WAIT, a.recv())
            .await
            .unwrap_or_else(|_| panic!("waited {:?} for {what} to user a", support::WAIT))
            .unwrap();
        assert!(r.outcome.up, "{}", r.outcome.reason);
        let rb = tokio::time::timeout(support::WAIT, b.recv())
            .await
            .unwrap_or_else(|_| panic!("waited {:?} for {what} to user b", support::WAIT))
            .unwrap();
        assert_eq!(rb.at, r.at, "both users get the same run's report");
    }
    let n = s.connections();
    drop((a, b));
    // One connection per run, not one per user (that would be twice as many); the next run may
    // have begun by now.
    assert!(
        (RUNS..=RUNS + 1).contains(&n),
        "{n} connections for {RUNS} runs"
    );
}

// ---- smtp, ftp, pop3, imap (line servers written here, speaking the RFCs' greetings)

#[tokio::test]
async fn smtp_greeting_ehlo_quit() {
    let s = support::line_server(
        "220 mx.example.org ESMTP ready\r\n",
        vec![
            (
                "EHLO",
                "250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            ),
            ("QUIT", "221 bye\r\n"),
        ],
    )
    .await;
    up(
        &run(s.addr, "kind = \"smtp\"\nhelo = \"lb1.example.org\"").await,
        "220 mx.example.org ESMTP ready",
    );
    let seen = s.requests_when(2).await;
    assert_eq!(seen, ["EHLO lb1.example.org\r\n", "QUIT\r\n"]);
    let busy = support::line_server("554 no service\r\n", vec![]).await;
    down(
        &run(busy.addr, "kind = \"smtp\"").await,
        "greeting: 554 no service",
    );
    let no_ehlo =
        support::line_server("220 hi\r\n", vec![("EHLO", "502 not implemented\r\n")]).await;
    down(
        &run(no_ehlo.addr, "kind = \"smtp\"").await,
        "EHLO: 502 not implemented",
    );
    let silent = support::line_server("", vec![]).await;
    down(
        &run(silent.addr, "kind = \"smtp\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
    down(
        &run(support::closed_tcp_port().await, "kind = \"smtp\"").await,
        "connection refused",
    );
}

#[tokio::test]
async fn ftp_greeting_and_login() {
    let s = support::line_server(
        "220-welcome\r\n220 ftp ready\r\n",
        vec![
            ("USER", "331 password please\r\n"),
            ("PASS secret", "230 logged in\r\n"),
            ("PASS", "530 no\r\n"),
        ],
    )
    .await;
    up(&run(s.addr, "kind = \"ftp\"").await, "220 ftp ready");
    up(
        &run(
            s.addr,
            "kind = \"ftp\"\nuser = \"probe\"\npassword = \"secret\"",
        )
        .await,
        "230 logged in",
    );
    down(
        &run(
            s.addr,
            "kind = \"ftp\"\nuser = \"probe\"\npassword = \"wrong\"",
        )
        .await,
        "login: 530 no",
    );
    let busy = support::line_server("421 too many users\r\n", vec![]).await;
    down(
        &run(busy.addr, "kind = \"ftp\"").await,
        "greeting: 421 too many users",
    );
}

#[tokio::test]
async fn pop3_and_imap_greetings() {
    let pop = support::line_server("+OK POP3 ready\r\n", vec![("QUIT", "+OK bye\r\n")]).await;
    up(&run(pop.addr, "kind = \"pop3\"").await, "+OK POP3 ready");
    let pop_bad = support::line_server("-ERR maintenance\r\n", vec![]).await;
    down(
        &run(pop_bad.addr, "kind = \"pop3\"").await,
        "greeting: \"-ERR maintenance\"",
    );
    let imap = support::line_server(
        "* OK [CAPABILITY IMAP4rev2] ready\r\n",
        vec![("a1 LOGOUT", "* BYE\r\na1 OK\r\n")],
    )
    .await;
    up(
        &run(imap.addr, "kind = \"imap\"").await,
        "* OK [CAPABILITY IMAP4rev2] ready",
    );
    let imap_bye = support::line_server("* BYE overloaded\r\n", vec![]).await;
    down(
        &run(imap_bye.addr, "kind = \"imap\"").await,
        "greeting: \"* BYE overloaded\"",
    );
    // An IMAP greeting is not a POP3 one.
    down(&run(imap.addr, "kind = \"pop3\"").await, "greeting:");
}

// ---- pop3s, imaps, STARTTLS (pop3, imap, smtp): TLS servers with rcgen certificates

fn tls_toml(kind: &str, ca: &std::path::Path, extra: &str) -> String {
    format!(
        "kind = \"{kind}\"\nca_file = \"{}\"\nsni = \"mail.example.org\"\n{extra}",
        ca.display()
    )
}

#[tokio::test]
async fn pop3s_and_imaps_up_with_verification() {
    use support::LineTls;
    let id = support::identity(&["mail.example.org"], CertKind::Good);
    let pop = support::line_server_tls(
        "+OK POP3 ready\r\n",
        vec![("QUIT", "+OK bye\r\n")],
        LineTls::Implicit(id.acceptor()),
    )
    .await;
    up(
        &run(pop.addr, &tls_toml("pop3s", &id.ca_file, "")).await,
        "+OK POP3 ready",
    );
    assert_eq!(pop.requests_when(1).await, ["QUIT\r\n"], "QUIT over TLS");
    let imap = support::line_server_tls(
        "* OK [CAPABILITY IMAP4rev2] ready\r\n",
        vec![("a1 LOGOUT", "* BYE\r\na1 OK\r\n")],
        LineTls::Implicit(id.acceptor()),
    )
    .await;
    up(
        &run(imap.addr, &tls_toml("imaps", &id.ca_file, "")).await,
        "* OK [CAPABILITY IMAP4rev2] ready",
    );
    // A TLS server whose greeting is negative is down like a plain one.
    let bye = support::line_server_tls(
        "* BYE overloaded\r\n",
        vec![],
        LineTls::Implicit(id.acceptor()),
    )
    .await;
    down(
        &run(bye.addr, &tls_toml("imaps", &id.ca_file, "")).await,
        "greeting: \"* BYE overloaded\"",
    );
}

#[tokio::test]
async fn pop3s_tls_failures() {
    use support::LineTls;
    let good = support::identity(&["mail.example.org"], CertKind::Good);
    let server = |id: &support::TlsIdentity| {
        support::line_server_tls("+OK ready\r\n", vec![], LineTls::Implicit(id.acceptor()))
    };
    let s = server(&good).await;
    down(
        &run(
            s.addr,
            &format!(
                "kind = \"pop3s\"\nca_file = \"{}\"\nsni = \"other.example.org\"",
                good.ca_file.display()
            ),
        )
        .await,
        "certificate not valid for the server's name",
    );
    // No sni: the certificate must name the IP address, which it does not.
    down(
        &run(
            s.addr,
            &format!("kind = \"pop3s\"\nca_file = \"{}\"", good.ca_file.display()),
        )
        .await,
        "certificate not valid for the server's name",
    );
    let expired = support::identity(&["mail.example.org"], CertKind::Expired);
    let s = server(&expired).await;
    down(
        &run(s.addr, &tls_toml("pop3s", &expired.ca_file, "")).await,
        "certificate expired",
    );
    let selfsigned = support::identity(&["mail.example.org"], CertKind::SelfSigned);
    let s = server(&selfsigned).await;
    down(
        &run(s.addr, &tls_toml("pop3s", &selfsigned.ca_file, "")).await,
        "certificate signed by an unknown issuer",
    );
    up(
        &run(s.addr, "kind = \"pop3s\"\nverify = false").await,
        "+OK ready",
    );
    // A plain POP3 server on the TLS port: its greeting is no TLS record.
    let plain = support::line_server("+OK POP3 ready\r\n", vec![]).await;
    down(
        &run(plain.addr, &tls_toml("pop3s", &good.ca_file, "")).await,
        "tls",
    );
    down(
        &run(support::closed_tcp_port().await, "kind = \"pop3s\"").await,
        "connection refused",
    );
    let silent = support::line_server("", vec![]).await;
    down(
        &run(silent.addr, "kind = \"imaps\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
}

#[tokio::test]
async fn pop3_imap_smtp_starttls() {
    use support::LineTls;
    let id = support::identity(&["mail.example.org"], CertKind::Good);
    let pop = support::line_server_tls(
        "+OK POP3 ready\r\n",
        vec![("STLS", "+OK begin TLS\r\n"), ("QUIT", "+OK bye\r\n")],
        LineTls::StartTls("STLS", id.acceptor()),
    )
    .await;
    up(
        &run(pop.addr, &tls_toml("pop3", &id.ca_file, "starttls = true")).await,
        "+OK POP3 ready (STARTTLS ok)",
    );
    assert_eq!(
        pop.requests_when(3).await,
        ["STLS\r\n", "(tls)", "QUIT\r\n"]
    );
    let imap = support::line_server_tls(
        "* OK ready\r\n",
        vec![
            ("a0 STARTTLS", "* OK untagged noise\r\na0 OK begin TLS\r\n"),
            ("a1 LOGOUT", "* BYE\r\na1 OK\r\n"),
        ],
        LineTls::StartTls("a0 STARTTLS", id.acceptor()),
    )
    .await;
    up(
        &run(imap.addr, &tls_toml("imap", &id.ca_file, "starttls = true")).await,
        "* OK ready (STARTTLS ok)",
    );
    let smtp = support::line_server_tls(
        "220 mx.example.org ESMTP\r\n",
        vec![
            ("EHLO", "250-mx.example.org\r\n250 STARTTLS\r\n"),
            ("STARTTLS", "220 go ahead\r\n"),
            ("QUIT", "221 bye\r\n"),
        ],
        LineTls::StartTls("STARTTLS", id.acceptor()),
    )
    .await;
    up(
        &run(smtp.addr, &tls_toml("smtp", &id.ca_file, "starttls = true")).await,
        "220 mx.example.org ESMTP (STARTTLS ok)",
    );
    assert_eq!(
        smtp.requests_when(5).await,
        [
            "EHLO localhost\r\n",
            "STARTTLS\r\n",
            "(tls)",
            "EHLO localhost\r\n",
            "QUIT\r\n"
        ],
        "EHLO again over TLS"
    );
    // The certificate is verified after STARTTLS too.
    down(
        &run(
            smtp.addr,
            &format!(
                "kind = \"smtp\"\nstarttls = true\nca_file = \"{}\"",
                id.ca_file.display()
            ),
        )
        .await,
        "certificate not valid for the server's name",
    );
    // Servers without STARTTLS.
    let no_stls = support::line_server("+OK ready\r\n", vec![("STLS", "-ERR not here\r\n")]).await;
    down(
        &run(no_stls.addr, "kind = \"pop3\"\nstarttls = true").await,
        "STLS: -ERR not here",
    );
    let no_starttls = support::line_server(
        "220 hi\r\n",
        vec![("EHLO", "250 hi\r\n"), ("STARTTLS", "502 no\r\n")],
    )
    .await;
    down(
        &run(no_starttls.addr, "kind = \"smtp\"\nstarttls = true").await,
        "STARTTLS: 502 no",
    );
    // A server that accepts STARTTLS but never completes the handshake.
    let stuck = support::line_server("+OK ready\r\n", vec![("STLS", "+OK go\r\n")]).await;
    down(
        &run(
            stuck.addr,
            "kind = \"pop3\"\nstarttls = true\ntimeout = \"300ms\"",
        )
        .await,
        "timeout after 300ms",
    );
}

#[test]
fn tls_settings_without_tls_are_config_errors() {
    let e = config::parse_str::<Spec>("c.toml", "kind = \"pop3\"\nsni = \"x.example.org\"\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("sni: applies only to TLS: set starttls = true or kind = \"pop3s\""),
        "{e}"
    );
    let e = config::parse_str::<Spec>("c.toml", "kind = \"imaps\"\nstarttls = true\n").unwrap_err();
    assert!(
        e.to_string()
            .contains("starttls: imaps speaks TLS from the start"),
        "{e}"
    );
    let e = config::parse_str::<Spec>("c.toml", "kind = \"smtp\"\nverify = false\n").unwrap_err();
    assert!(e.to_string().contains("verify: applies only to TLS"), "{e}");
}

// ---- ftp RETR (an FTP server written here: PASV/EPSV data connections on loopback)

#[tokio::test]
async fn ftp_retr_with_content_regex() {
    let s = support::ftp(vec![
        ("health.txt", "status: OK\n"),
        ("bad.txt", "status: FAIL\n"),
    ])
    .await;
    up(
        &run(
            s.addr,
            "kind = \"ftp\"\nretr = \"health.txt\"\nexpect = \"^status: OK$\"",
        )
        .await,
        "RETR health.txt: content matches",
    );
    assert_eq!(
        s.requests_when(5).await[..5],
        [
            "USER anonymous",
            "PASS probe@",
            "TYPE I",
            "PASV",
            "RETR health.txt"
        ]
    );
    up(
        &run(
            s.addr,
            "kind = \"ftp\"\nretr = \"health.txt\"\nuser = \"probe\"\npassword = \"secret\"",
        )
        .await,
        "RETR health.txt: 11 bytes",
    );
    down(
        &run(
            s.addr,
            "kind = \"ftp\"\nretr = \"bad.txt\"\nexpect = \"^status: OK$\"",
        )
        .await,
        "RETR bad.txt: content does not match /^status: OK$/: \"status: FAIL\\n\"",
    );
    down(
        &run(s.addr, "kind = \"ftp\"\nretr = \"nope.txt\"").await,
        "RETR nope.txt: 550 no such file",
    );
    down(
        &run(
            s.addr,
            "kind = \"ftp\"\nretr = \"health.txt\"\nuser = \"probe\"\npassword = \"bad\"",
        )
        .await,
        "login: 530 login incorrect",
    );
    down(
        &run(
            support::closed_tcp_port().await,
            "kind = \"ftp\"\nretr = \"x\"",
        )
        .await,
        "connection refused",
    );
    let silent = support::line_server("", vec![]).await;
    down(
        &run(
            silent.addr,
            "kind = \"ftp\"\nretr = \"x\"\ntimeout = \"300ms\"",
        )
        .await,
        "timeout after 300ms",
    );
    // A server that offers a data port where nothing listens.
    let closed = support::closed_tcp_port().await.port();
    let pasv: &'static str = Box::leak(
        format!(
            "227 Entering Passive Mode (127,0,0,1,{},{})\r\n",
            closed >> 8,
            closed & 0xff
        )
        .into_boxed_str(),
    );
    let liar = support::line_server(
        "220 hi\r\n",
        vec![
            ("USER", "230 ok\r\n"),
            ("TYPE", "200 ok\r\n"),
            ("PASV", pasv),
        ],
    )
    .await;
    down(
        &run(liar.addr, "kind = \"ftp\"\nretr = \"x\"").await,
        &format!("data connection to port {closed}: connection refused"),
    );
    let e = config::parse_str::<Spec>("c.toml", "kind = \"ftp\"\nexpect = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("expect: needs retr"), "{e}");
}

// ---- sip (a UDP server written here, answering per RFC 3261 §8.2.6)

fn sip_answer(request: &[u8], status: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let copied: String = text
        .lines()
        .filter(|l| {
            let n = l.split(':').next().unwrap_or("").to_ascii_lowercase();
            ["via", "from", "to", "call-id", "cseq"].contains(&n.as_str())
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!("SIP/2.0 {status}\r\n{copied}Content-Length: 0\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn sip_options() {
    let s = support::udp_multi(|d| {
        if !d.starts_with(b"OPTIONS sip:") {
            return vec![];
        }
        vec![sip_answer(d, "100 Trying"), sip_answer(d, "200 OK")]
    })
    .await;
    up(&run(s.addr, "kind = \"sip\"").await, "SIP/2.0 200 OK");
    let req = s.requests.lock().unwrap()[0].clone();
    assert!(
        req.starts_with(&format!("OPTIONS sip:{} SIP/2.0\r\n", s.addr)),
        "{req}"
    );
    let busy = support::udp(|d| Some(sip_answer(d, "503 Service Unavailable"))).await;
    down(
        &run(busy.addr, "kind = \"sip\"").await,
        "SIP/2.0 503 Service Unavailable, expected SIP/2.0 200",
    );
    // An answer to somebody else's request (another Call-ID) is not ours: the check waits.
    let stray = support::udp(|_| Some(b"SIP/2.0 200 OK\r\nCall-ID: x@y\r\n\r\n".to_vec())).await;
    down(
        &run(stray.addr, "kind = \"sip\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
    let dns = support::udp(|_| Some(b"\x00\x01garbage".to_vec())).await;
    down(&run(dns.addr, "kind = \"sip\"").await, "not a SIP answer");
    down(
        &run(support::closed_udp_port().await, "kind = \"sip\"").await,
        "port unreachable",
    );
}

// ---- radius (a UDP server written here: checks the Message-Authenticator, reveals the password
// per RFC 2865 §5.2 with its own secret, answers with a Response Authenticator per §3)

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    md5(&[&opad, &md5(&[&ipad, msg])])
}

/// `secret`: the server's; `check_ma`: drop requests whose Message-Authenticator is wrong (as
/// FreeRADIUS does); Accept for user `probe` with password `pw`, else Reject.
fn radius_server(secret: &'static [u8], check_ma: bool) -> impl Fn(&[u8]) -> Option<Vec<u8>> {
    move |req: &[u8]| {
        let (mut user, mut hidden, mut ma) = (Vec::new(), Vec::new(), None);
        let mut i = 20;
        while i + 2 <= req.len() {
            let (t, l) = (req[i], req[i + 1] as usize);
            let v = &req[i + 2..i + l];
            match t {
                1 => user = v.to_vec(),
                2 => hidden = v.to_vec(),
                80 => ma = Some(i + 2),
                _ => {}
            }
            i += l;
        }
        if check_ma {
            let at = ma?;
            let mut zeroed = req.to_vec();
            zeroed[at..at + 16].fill(0);
            if hmac_md5(secret, &zeroed)[..] != req[at..at + 16] {
                return None;
            }
        }
        let mut password = Vec::new();
        let mut prev = req[4..20].to_vec();
        for block in hidden.chunks(16) {
            let b = md5(&[secret, &prev]);
            password.extend(block.iter().zip(b).map(|(c, k)| c ^ k));
            prev = block.to_vec();
        }
        while password.last() == Some(&0) {
            password.pop();
        }
        let code = if user == b"probe" && password == b"pw" {
            2
        } else {
            3
        };
        let mut answer = vec![code, req[1], 0, 20];
        answer.extend_from_slice(&md5(&[&answer[..4], &req[4..20], secret]));
        Some(answer)
    }
}

#[tokio::test]
async fn radius_access_request() {
    let s = support::udp(radius_server(b"s3cret", true)).await;
    up(
        &run(
            s.addr,
            "kind = \"radius\"\nsecret = \"s3cret\"\npassword = \"pw\"",
        )
        .await,
        "Access-Accept",
    );
    // A wrong password (a long one: several hidden blocks) still proves the server alive.
    up(
        &run(
            s.addr,
            &format!(
                "kind = \"radius\"\nsecret = \"s3cret\"\npassword = \"{}\"",
                "x".repeat(40)
            ),
        )
        .await,
        "Access-Reject",
    );
    // Our secret is not the server's: it drops the request (bad Message-Authenticator).
    down(
        &run(
            s.addr,
            "kind = \"radius\"\nsecret = \"other\"\ntimeout = \"300ms\"",
        )
        .await,
        "timeout after 300ms",
    );
    // A server that answers anyway, with its own secret: the authenticator gives it away.
    let lax = support::udp(radius_server(b"theirs", false)).await;
    down(
        &run(lax.addr, "kind = \"radius\"\nsecret = \"ours\"").await,
        "Access-Reject with a bad Response Authenticator (wrong shared secret?)",
    );
    let garbage = support::udp(|_| Some(b"hello".to_vec())).await;
    down(
        &run(garbage.addr, "kind = \"radius\"\nsecret = \"s\"").await,
        "answer of 5 bytes is too short for RADIUS",
    );
    down(
        &run(
            support::closed_udp_port().await,
            "kind = \"radius\"\nsecret = \"s\"",
        )
        .await,
        "port unreachable",
    );
    let e = config::parse_str::<Spec>("c.toml", "kind = \"radius\"\n").unwrap_err();
    assert!(e.to_string().contains("secret"), "{e}");
}

// ---- ldap (a TCP server written here, decoding the BER bind request)

/// Reads one bind request and answers: anonymous or `cn=probe` with `secret` → success, else 49.
async fn ldap_session(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 512];
    let Ok(n) = s.read(&mut buf).await else {
        return;
    };
    let b = &buf[..n];
    // 30 L 02 01 id 60 L 02 01 03 04 dnlen dn 80 pwlen pw (short lengths)
    if n < 12 || b[0] != 0x30 || b[5] != 0x60 || b[10] != 0x04 {
        return;
    }
    let id = b[4];
    let dn = &b[12..12 + b[11] as usize];
    let at = 12 + dn.len();
    let pw = &b[at + 2..at + 2 + b[at + 1] as usize];
    let ok = dn.is_empty() || (dn == b"cn=probe,dc=example,dc=org" && pw == b"secret");
    let (code, diag): (u8, &[u8]) = if ok {
        (0, b"")
    } else {
        (49, b"invalid credentials")
    };
    let mut op = vec![0x0a, 1, code, 0x04, 0x00, 0x04, diag.len() as u8];
    op.extend_from_slice(diag);
    let mut msg = vec![0x02, 1, id, 0x61, op.len() as u8];
    msg.extend_from_slice(&op);
    let mut out = vec![0x30, msg.len() as u8];
    out.extend_from_slice(&msg);
    let _ = s.write_all(&out).await;
    let _ = s.read(&mut buf).await; // the unbind
}

#[tokio::test]
async fn ldap_bind() {
    let s = support::tcp(ldap_session).await;
    up(
        &run(s.addr, "kind = \"ldap\"").await,
        "anonymous bind: 0 success",
    );
    up(
        &run(
            s.addr,
            "kind = \"ldap\"\ndn = \"cn=probe,dc=example,dc=org\"\npassword = \"secret\"",
        )
        .await,
        "bind: 0 success",
    );
    down(
        &run(
            s.addr,
            "kind = \"ldap\"\ndn = \"cn=probe,dc=example,dc=org\"\npassword = \"nope\"",
        )
        .await,
        "bind: 49 invalidCredentials: invalid credentials",
    );
    let http = support::http(Answer::status("400 Bad Request")).await;
    // An HTTP server waits for a request head our bind never completes: a timeout, or its answer.
    down(
        &run(http.addr, "kind = \"ldap\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
    let junk = support::line_server("HTTP/1.0 400 Bad Request\r\n\r\n", vec![]).await;
    down(
        &run(junk.addr, "kind = \"ldap\"").await,
        "not an LDAP message: \"HTTP/1.0 400",
    );
    down(
        &run(support::closed_tcp_port().await, "kind = \"ldap\"").await,
        "connection refused",
    );
    // Reads the bind, then closes without a word.
    let closes = support::tcp(|mut s| async move {
        use tokio::io::AsyncReadExt;
        let _ = s.read(&mut [0u8; 64]).await;
    })
    .await;
    down(
        &run(closes.addr, "kind = \"ldap\"").await,
        "connection closed without an answer",
    );
}

// ---- mysql (a TCP server written here, sending a MariaDB 10.11 HandshakeV10)

fn mysql_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes().to_vec();
    p[3] = seq;
    p.extend_from_slice(payload);
    p
}

fn mysql_greeting() -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(b"10.11.6-MariaDB-0+deb12u1\0");
    g.extend_from_slice(&7u32.to_le_bytes()); // connection id
    g.extend_from_slice(b"abcdefgh\0"); // auth plugin data part 1 + filler
    g.extend_from_slice(&0xf7feu16.to_le_bytes()); // capabilities (lower)
    g.push(45); // charset
    g.extend_from_slice(&2u16.to_le_bytes()); // status
    g.extend_from_slice(&0x81bfu16.to_le_bytes()); // capabilities (upper)
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0");
    g.extend_from_slice(b"mysql_native_password\0");
    g
}

/// Greets; a login as `probe` gets OK, as `switch` an auth switch then OK, others ERR 1045.
async fn mysql_session(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(&mysql_packet(0, &mysql_greeting()))
        .await
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 1024];
    let Ok(n) = s.read(&mut buf).await else {
        return;
    };
    if n < 36 {
        return;
    }
    let user_end = 36 + buf[36..n].iter().position(|&b| b == 0).unwrap_or(0);
    let user = String::from_utf8_lossy(&buf[36..user_end]).into_owned();
    let ok = mysql_packet(2, &[0, 0, 0, 2, 0, 0, 0]);
    let reply = match user.as_str() {
        "probe" => ok,
        "switch" => {
            let mut sw = vec![0xfe];
            sw.extend_from_slice(b"caching_sha2_password\0");
            sw.extend_from_slice(&[1u8; 20]);
            sw.push(0);
            let _ = s.write_all(&mysql_packet(2, &sw)).await;
            let Ok(n) = s.read(&mut buf).await else {
                return;
            };
            // The empty answer to the switch: header only, sequence 3.
            if buf[..n] != [0, 0, 0, 3] {
                return;
            }
            mysql_packet(4, &[0, 0, 0, 2, 0, 0, 0])
        }
        _ => {
            let mut e = vec![0xff, 0x15, 0x04];
            e.extend_from_slice(
                format!("#28000Access denied for user '{user}'@'localhost'").as_bytes(),
            );
            mysql_packet(2, &e)
        }
    };
    let _ = s.write_all(&reply).await;
    let _ = s.read(&mut buf).await; // COM_QUIT
}

#[tokio::test]
async fn mysql_greeting_and_login() {
    let s = support::tcp(mysql_session).await;
    up(
        &run(s.addr, "kind = \"mysql\"").await,
        "protocol 10, server 10.11.6-MariaDB-0+deb12u1",
    );
    up(
        &run(s.addr, "kind = \"mysql\"\nuser = \"probe\"").await,
        "server 10.11.6-MariaDB-0+deb12u1, logged in as probe",
    );
    up(
        &run(s.addr, "kind = \"mysql\"\nuser = \"switch\"").await,
        "server 10.11.6-MariaDB-0+deb12u1, logged in as switch",
    );
    down(
        &run(s.addr, "kind = \"mysql\"\nuser = \"eve\"").await,
        "login as eve: error 1045: Access denied for user 'eve'@'localhost'",
    );
    let full = support::tcp(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let mut e = vec![0xff, 0x10, 0x04];
        e.extend_from_slice(b"Too many connections");
        let _ = s.write_all(&mysql_packet(0, &e)).await;
    })
    .await;
    down(
        &run(full.addr, "kind = \"mysql\"").await,
        "error 1040: Too many connections",
    );
    let ssh = support::line_server("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", vec![]).await;
    down(
        &run(ssh.addr, "kind = \"mysql\"").await,
        "not a MySQL greeting",
    );
    down(
        &run(support::closed_tcp_port().await, "kind = \"mysql\"").await,
        "connection refused",
    );
    let silent = support::line_server("", vec![]).await;
    down(
        &run(silent.addr, "kind = \"mysql\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
}

// ---- pgsql (a TCP server written here, speaking protocol 3.0's first messages)

/// Answers an SSLRequest with `ssl`, then a StartupMessage by user: `probe` → SASL request,
/// `starting` → 57P03, others → 28000.
async fn pg_session(mut s: tokio::net::TcpStream, ssl: u8) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).await.is_err() {
        return;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    if s.read_exact(&mut body).await.is_err() {
        return;
    }
    if body == 80877103u32.to_be_bytes() {
        let _ = s.write_all(&[ssl]).await;
        return;
    }
    assert_eq!(&body[..4], &196608u32.to_be_bytes());
    let user = body[4..]
        .split(|&b| b == 0)
        .skip_while(|k| *k != b"user")
        .nth(1)
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .unwrap_or_default();
    let msg = |tag: u8, b: &[u8]| {
        let mut m = vec![tag];
        m.extend_from_slice(&((b.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(b);
        m
    };
    let out = match user.as_str() {
        "probe" => msg(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0"),
        "starting" => msg(
            b'E',
            b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0",
        ),
        _ => msg(
            b'E',
            format!("SFATAL\0VFATAL\0C28000\0Mrole \"{user}\" does not exist\0\0").as_bytes(),
        ),
    };
    let _ = s.write_all(&out).await;
    let _ = s.read(&mut len).await;
}

#[tokio::test]
async fn pgsql_ssl_request_and_startup() {
    let n = support::tcp(|s| pg_session(s, b'N')).await;
    up(
        &run(n.addr, "kind = \"pgsql\"").await,
        "SSLRequest answered N (no TLS)",
    );
    let s = support::tcp(|s| pg_session(s, b'S')).await;
    up(
        &run(s.addr, "kind = \"pgsql\"").await,
        "SSLRequest answered S (TLS available)",
    );
    up(
        &run(
            n.addr,
            "kind = \"pgsql\"\nuser = \"probe\"\ndatabase = \"postgres\"",
        )
        .await,
        "asks for SASL authentication",
    );
    up(
        &run(n.addr, "kind = \"pgsql\"\nuser = \"eve\"").await,
        "refuses the login: 28000 role \"eve\" does not exist",
    );
    down(
        &run(n.addr, "kind = \"pgsql\"\nuser = \"starting\"").await,
        "error 57P03: the database system is starting up",
    );
    let x = support::tcp(|s| pg_session(s, b'X')).await;
    down(
        &run(x.addr, "kind = \"pgsql\"").await,
        "SSLRequest answered \"X\", expected S or N",
    );
    let http = support::line_server("HTTP/1.1 400 Bad Request\r\n\r\n", vec![]).await;
    down(
        &run(http.addr, "kind = \"pgsql\"\nuser = \"probe\"").await,
        "not a PostgreSQL answer",
    );
    down(
        &run(support::closed_tcp_port().await, "kind = \"pgsql\"").await,
        "connection refused",
    );
    let silent = support::line_server("", vec![]).await;
    down(
        &run(silent.addr, "kind = \"pgsql\"\ntimeout = \"300ms\"").await,
        "timeout after 300ms",
    );
}

// ---- hostile servers: endless streams (every read is capped) and trickles (the timeout bounds
// the whole check)

/// The most a flooding server writes: far past every cap, so a probe without one shows.
const FLOOD_MAX: u64 = 256 << 20;

/// What a probe with capped reads lets a flooding server write before it closes: its cap (64 KiB
/// at most) plus what the kernel buffers on loopback (a few MiB each way, autotuned). A probe
/// without a cap reads on until its timeout: hundreds of MiB.
const FLOOD_BOUND: u64 = 24 << 20;

/// A TCP server whose sessions report a number (the bytes a flood wrote) when they end.
struct Hostile {
    addr: SocketAddr,
    ended: tokio::sync::mpsc::UnboundedReceiver<u64>,
}

async fn hostile<F, Fut>(session: F) -> Hostile
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, ended) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (fut, tx) = (session(s), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(fut.await);
            });
        }
    });
    Hostile { addr, ended }
}

/// Writes `unit` again and again until the client goes away (a write fails) or [`FLOOD_MAX`];
/// returns the bytes written.
async fn flood<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, unit: &[u8]) -> u64 {
    use tokio::io::AsyncWriteExt;
    let block: Vec<u8> = unit
        .iter()
        .copied()
        .cycle()
        .take((64 * 1024 / unit.len()) * unit.len())
        .collect();
    let mut n = 0;
    while n < FLOOD_MAX {
        match s.write(&block).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    let _ = s.flush().await;
    n
}

/// Writes `unit` one byte every 50 ms, cycling, until the client goes away.
async fn trickle<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, unit: &[u8]) -> u64 {
    use tokio::io::AsyncWriteExt;
    let mut n = 0;
    for &b in unit.iter().cycle() {
        if s.write_all(&[b]).await.is_err() || s.flush().await.is_err() {
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

/// Reads up to and including a newline (a command of the probe); false if the client left.
async fn client_line<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if b[0] == b'\n' => return true,
            Ok(_) => {}
        }
    }
}

/// Reads what the client sent first (a request in one write).
async fn client_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 4096];
    matches!(s.read(&mut b).await, Ok(n) if n > 0)
}

/// Runs `toml` (with a 5 s timeout) against a flooding server: down with a reason naming the
/// cap, and the server could write no more than [`FLOOD_BOUND`] before the probe closed.
async fn flooded(mut h: Hostile, toml: &str, reason: &str) {
    let o = run(h.addr, &format!("{toml}\ntimeout = \"5s\"")).await;
    down(&o, reason);
    let written = tokio::time::timeout(Duration::from_secs(30), h.ended.recv())
        .await
        .expect("the server saw the probe close within 30 s")
        .expect("a session ended");
    assert!(
        written < FLOOD_BOUND,
        "{toml}: the server wrote {written} bytes before the probe closed"
    );
}

#[tokio::test]
async fn endless_lines_are_capped_smtp_ftp_pop3_imap() {
    use tokio::io::AsyncWriteExt;
    let no_newline = || hostile(|mut s| async move { flood(&mut s, b"x").await });
    for kind in ["smtp", "ftp", "pop3", "imap"] {
        flooded(
            no_newline().await,
            &format!("kind = \"{kind}\""),
            "greeting: line longer than 8192 bytes",
        )
        .await;
    }
    // Endless continuation lines: the reply is capped, not only its lines.
    for kind in ["smtp", "ftp"] {
        let h = hostile(|mut s| async move { flood(&mut s, b"220-more\r\n").await }).await;
        flooded(
            h,
            &format!("kind = \"{kind}\""),
            "greeting: reply longer than 65536 bytes",
        )
        .await;
    }
    let ehlo = hostile(|mut s| async move {
        let _ = s.write_all(b"220 hi\r\n").await;
        client_line(&mut s).await;
        flood(&mut s, b"250-x\r\n").await
    })
    .await;
    flooded(
        ehlo,
        "kind = \"smtp\"",
        "EHLO: reply longer than 65536 bytes",
    )
    .await;
    let login = hostile(|mut s| async move {
        let _ = s.write_all(b"220 hi\r\n").await;
        client_line(&mut s).await;
        flood(&mut s, b"331 ").await
    })
    .await;
    flooded(
        login,
        "kind = \"ftp\"\nuser = \"probe\"\npassword = \"pw\"",
        "USER: line longer than 8192 bytes",
    )
    .await;
    // IMAP's untagged lines before the tagged STARTTLS answer, POP3's STLS answer.
    let untagged = hostile(|mut s| async move {
        let _ = s.write_all(b"* OK hi\r\n").await;
        client_line(&mut s).await;
        flood(&mut s, b"* noise\r\n").await
    })
    .await;
    flooded(
        untagged,
        "kind = \"imap\"\nstarttls = true",
        "STARTTLS answer: reply longer than 65536 bytes",
    )
    .await;
    let stls = hostile(|mut s| async move {
        let _ = s.write_all(b"+OK hi\r\n").await;
        client_line(&mut s).await;
        flood(&mut s, b"+OK").await
    })
    .await;
    flooded(
        stls,
        "kind = \"pop3\"\nstarttls = true",
        "STLS answer: line longer than 8192 bytes",
    )
    .await;
}

#[tokio::test]
async fn endless_lines_over_tls_are_capped() {
    use tokio::io::AsyncWriteExt;
    let id = support::identity(&["mail.example.org"], CertKind::Good);
    for kind in ["pop3s", "imaps"] {
        let acceptor = id.acceptor();
        let h = hostile(move |s| {
            let acceptor = acceptor.clone();
            async move {
                let Ok(mut t) = acceptor.accept(s).await else {
                    return 0;
                };
                flood(&mut t, b"x").await
            }
        })
        .await;
        flooded(
            h,
            &tls_toml(kind, &id.ca_file, ""),
            "greeting: line longer than 8192 bytes",
        )
        .await;
    }
    // SMTP reads EHLO's answer again after STARTTLS, over TLS.
    let acceptor = id.acceptor();
    let h = hostile(move |mut s| {
        let acceptor = acceptor.clone();
        async move {
            let _ = s.write_all(b"220 hi\r\n").await;
            client_line(&mut s).await;
            let _ = s.write_all(b"250 STARTTLS\r\n").await;
            client_line(&mut s).await;
            let _ = s.write_all(b"220 go\r\n").await;
            let Ok(mut t) = acceptor.accept(s).await else {
                return 0;
            };
            client_line(&mut t).await;
            flood(&mut t, b"250-x\r\n").await
        }
    })
    .await;
    flooded(
        h,
        &tls_toml("smtp", &id.ca_file, "starttls = true"),
        "EHLO after STARTTLS: reply longer than 65536 bytes",
    )
    .await;
}

#[tokio::test]
async fn endless_answers_are_capped_simpletcp_ldap_mysql_pgsql() {
    use tokio::io::AsyncWriteExt;
    let h = hostile(|mut s| async move { flood(&mut s, b"x").await }).await;
    flooded(
        h,
        "kind = \"simpletcp\"\nexpect = \"^OK\"",
        "no match for /^OK/ in the first 65536 bytes (the read cap)",
    )
    .await;
    // LDAP: a BER length of 2 GiB is refused before anything is read for it; a length under the
    // cap whose content never ends runs into the cap.
    let h = hostile(|mut s| async move {
        client_request(&mut s).await;
        let _ = s.write_all(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]).await;
        flood(&mut s, b"x").await
    })
    .await;
    flooded(
        h,
        "kind = \"ldap\"",
        "BER length 2147483647 is over the 65536-byte cap",
    )
    .await;
    let h = hostile(|mut s| async move {
        client_request(&mut s).await;
        let _ = s.write_all(&[0x30, 0x83, 0x00, 0xff, 0xff]).await;
        flood(&mut s, b"x").await
    })
    .await;
    flooded(h, "kind = \"ldap\"", "answer longer than 65536 bytes").await;
    let h = hostile(|mut s| async move {
        let _ = s.write_all(&[0xff, 0xff, 0xff, 0x00]).await;
        flood(&mut s, b"x").await
    })
    .await;
    flooded(
        h,
        "kind = \"mysql\"",
        "not a MySQL greeting: packet of 16777215 bytes, over the 65536-byte cap",
    )
    .await;
    let h = hostile(|mut s| async move {
        client_request(&mut s).await;
        let _ = s.write_all(&[b'R', 0x7f, 0xff, 0xff, 0xff]).await;
        flood(&mut s, b"x").await
    })
    .await;
    flooded(
        h,
        "kind = \"pgsql\"\nuser = \"probe\"",
        "not a PostgreSQL answer: 2147483647 bytes, over the 16384-byte cap",
    )
    .await;
}

/// Runs `toml` with a 2 s timeout against a server that trickles (paused time): down with the
/// timeout's reason, stopped at the timeout give or take a timer tick; the server did trickle.
async fn trickled(h: &mut Hostile, toml: &str) {
    let timeout = Duration::from_secs(2);
    let start = tokio::time::Instant::now();
    let o = run(h.addr, &format!("{toml}\ntimeout = \"2s\"")).await;
    down(&o, "timeout after 2s");
    let took = start.elapsed();
    assert!(
        took >= timeout && took <= timeout + Duration::from_millis(5),
        "{toml}: the check took {took:?}"
    );
    let written = tokio::time::timeout(Duration::from_secs(30), h.ended.recv())
        .await
        .expect("the server saw the probe close")
        .expect("a session ended");
    assert!(
        written >= 20,
        "{toml}: the server trickled only {written} bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn trickling_servers_run_into_the_timeout() {
    use tokio::io::AsyncWriteExt;
    // Endless continuation lines, one byte at a time.
    let mut h = hostile(|mut s| async move { trickle(&mut s, b"220-slow\r\n").await }).await;
    trickled(&mut h, "kind = \"smtp\"").await;
    let mut h = hostile(|mut s| async move { trickle(&mut s, b"x").await }).await;
    for kind in ["ftp", "pop3", "imap"] {
        trickled(&mut h, &format!("kind = \"{kind}\"")).await;
    }
    trickled(&mut h, "kind = \"simpletcp\"\nexpect = \"^OK\"").await;
    // Binary protocols: a header announcing more than ever comes.
    let mut h = hostile(|mut s| async move {
        client_request(&mut s).await;
        trickle(&mut s, &[0x30, 0x7f]).await
    })
    .await;
    trickled(&mut h, "kind = \"ldap\"").await;
    let mut h = hostile(|mut s| async move { trickle(&mut s, &[0x40, 0, 0, 0]).await }).await;
    trickled(&mut h, "kind = \"mysql\"").await;
    let mut h = hostile(|mut s| async move {
        client_request(&mut s).await;
        trickle(&mut s, &[b'R', 0, 0, 0x40, 0]).await
    })
    .await;
    trickled(&mut h, "kind = \"pgsql\"\nuser = \"probe\"").await;
    // A TLS handshake that never completes: a record header announcing 16 KiB, then a trickle.
    let tls_record = [0x16, 0x03, 0x03, 0x40, 0x00];
    let mut h = hostile(move |mut s| async move {
        client_request(&mut s).await;
        trickle(&mut s, &tls_record).await
    })
    .await;
    for kind in ["pop3s", "imaps"] {
        trickled(&mut h, &format!("kind = \"{kind}\"\nverify = false")).await;
    }
    let mut h = hostile(move |mut s| async move {
        let _ = s.write_all(b"220 hi\r\n").await;
        client_line(&mut s).await;
        let _ = s.write_all(b"250 STARTTLS\r\n").await;
        client_line(&mut s).await;
        let _ = s.write_all(b"220 go\r\n").await;
        client_request(&mut s).await;
        trickle(&mut s, &tls_record).await
    })
    .await;
    trickled(&mut h, "kind = \"smtp\"\nstarttls = true\nverify = false").await;
}

/// The engine (what ldir and monitor's daemon run) stops a trickled run at its timeout as well.
#[tokio::test(start_paused = true)]
async fn the_engine_stops_a_trickled_check_at_its_timeout() {
    let h = hostile(|mut s| async move { trickle(&mut s, b"220-slow\r\n").await }).await;
    let engine = Engine::spawn(Arc::new(Prober::new()), EngineOptions::default());
    let mut watch = engine.watch(
        probe(h.addr, "kind = \"smtp\"\ntimeout = \"2s\""),
        Duration::from_secs(10),
    );
    let r = tokio::time::timeout(Duration::from_secs(60), watch.recv())
        .await
        .expect("a report within 60 s")
        .expect("the engine runs");
    down(&r.outcome, "timeout after 2s");
    assert!(
        r.outcome.latency <= Duration::from_secs(2) + Duration::from_millis(5),
        "{:?}",
        r.outcome.latency
    );
}

/// SIP: provisional answers (`100 Trying`) that never end in a final one.
#[tokio::test(start_paused = true)]
async fn sip_endless_provisional_answers_run_into_the_timeout() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let answer = sip_answer(&buf[..n], "100 Trying");
        for _ in 0..1000 {
            if socket.send_to(&answer, from).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let o = run(addr, "kind = \"sip\"\ntimeout = \"2s\"").await;
    down(&o, "timeout after 2s");
    assert!(
        o.latency <= Duration::from_secs(2) + Duration::from_millis(5),
        "{:?}",
        o.latency
    );
}

/// An external check whose command ignores TERM (and every signal it can) and whose children
/// hang on: stopped at the timeout all the same (SIGKILL to the process group).
#[tokio::test]
async fn external_ignoring_term_is_stopped_at_the_timeout() {
    let dir = support::TempDir::new("ext-term");
    let pid = dir.path().join("pid");
    // `sh -c`, not a script file: a file just written can be "text file busy" for an exec while
    // another test's fork holds its descriptor.
    let ip: SocketAddr = "192.0.2.13:80".parse().unwrap();
    let start = Instant::now();
    let o = run(
        ip,
        &format!(
            "kind = \"external\"\nargs = \"none\"\ntimeout = \"500ms\"\n\
             command = \"sh -c 'trap \\\"\\\" TERM INT HUP QUIT; echo $$ > {}; while :; do sleep 1; done'\"",
            pid.display()
        ),
    )
    .await;
    down(&o, "timeout after 500ms");
    // A correctness bound (the check ends at its timeout), not a performance figure.
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let pid: i32 = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "pid {pid} ignores TERM and still runs");
}
