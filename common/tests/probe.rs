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
    assert!(o.latency < Duration::from_secs(1));
    let o = run(support::closed_tcp_port().await, "kind = \"tcp\"").await;
    down(&o, "connection refused");
}

#[tokio::test]
async fn tcp_from_a_source_address() {
    let s = support::http(Answer::ok("")).await;
    up(
        &run(s.addr, "kind = \"tcp\"\nsource = \"127.0.0.1\"").await,
        "connected",
    );
    // 192.0.2.1 is not an address of this host: binding to it fails, the check says so.
    down(
        &run(s.addr, "kind = \"tcp\"\nsource = \"192.0.2.1\"").await,
        "bind 192.0.2.1",
    );
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
    // The same server within a longer timeout is up.
    up(
        &run(s.addr, "kind = \"http\"\ntimeout = \"3s\"").await,
        "200 OK",
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
        o.latency < Duration::from_secs(1),
        "ICMP made it fail fast: {:?}",
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

// ---- ping (ICMP sockets: root here, or net.ipv4.ping_group_range)

#[tokio::test]
async fn ping_loopback_v4_and_v6() {
    let spec = |count| {
        let mut s: Spec = config::parse_str("p.toml", "kind = \"ping\"\n").unwrap();
        if let common::probe::Check::Ping(p) = &mut s.check {
            p.count = count;
        }
        s
    };
    let prober = Prober::new();
    let o = prober
        .run(&Probe::new("127.0.0.1".parse().unwrap(), spec(1)))
        .await;
    assert!(
        o.up,
        "{} (ICMP sockets need root or net.ipv4.ping_group_range)",
        o.reason
    );
    assert!(o.reason.starts_with("echo reply seq=0"), "{}", o.reason);
    let o = prober
        .run(&Probe::new("::1".parse().unwrap(), spec(3)))
        .await;
    assert!(o.up, "{}", o.reason);
}

// ---- external

fn script(body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = support::temp_dir("ext").join("check.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
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
    let dir = support::temp_dir("ext-kill");
    let pids = dir.join("pids");
    let hang = script(&format!(
        "sleep 60 & echo $! > {p}; echo $$ >> {p}; wait",
        p = pids.display()
    ));
    let ip: SocketAddr = "192.0.2.13:80".parse().unwrap();
    let start = Instant::now();
    let o = run(
        ip,
        &format!(
            "kind = \"external\"\ncommand = \"{}\"\ntimeout = \"500ms\"",
            hang.display()
        ),
    )
    .await;
    down(&o, "timeout after 500ms");
    assert!(start.elapsed() < Duration::from_secs(3));
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "script and its background sleep");
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in pids {
        assert!(!alive(p), "pid {p} still running after the timeout");
    }
}

// ---- the engine with real probes

#[tokio::test]
async fn two_users_of_one_probe_cause_one_connection_per_interval() {
    let s = support::http(Answer::ok("ok")).await;
    let engine = Engine::spawn(Arc::new(Prober::new()), EngineOptions::default());
    let p = probe(s.addr, "kind = \"http\"");
    let mut a = engine.watch(p.clone(), Duration::from_millis(200));
    let mut b = engine.watch(p, Duration::from_millis(200));
    let mut seen = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(r)) = tokio::time::timeout_at(until, a.recv()).await {
        assert!(r.outcome.up, "{}", r.outcome.reason);
        let rb = b.recv().await.unwrap();
        assert_eq!(rb.at, r.at, "both users get the same run's report");
        seen += 1;
    }
    drop((a, b));
    assert!((6..=8).contains(&seen), "{seen} runs in 1.5 s at 200 ms");
    assert_eq!(
        s.connections(),
        seen,
        "one connection per run, not one per user"
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
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = s.requests.lock().unwrap().clone();
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
