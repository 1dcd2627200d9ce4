//! `monitor probe` as a user runs it: the real binary against real servers on loopback, no privilege
//! needed. "No answer" in a network namespace (root) is in `probe_cli_root.rs`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod cli_util;
use cli_util::{line, stderr, stdout};

const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

/// An HTTP server answering `status` to everything, counting connections.
async fn http(status: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            n2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let r = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    });
    (addr, n)
}

fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs `monitor probe ARGS` with `stdin`, off the test's runtime threads.
async fn monitor(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_string();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(MONITOR)
            .arg("probe")
            .args(&args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_up_exits_0_with_one_line() {
    let (addr, _) = http("200 OK").await;
    let o = monitor(
        &[
            &format!("http://{addr}/health"),
            "--expect",
            "200-299",
            "--timeout",
            "2s",
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    line(
        out.lines().next().unwrap(),
        "up",
        &addr.to_string(),
        "http",
        "200 OK",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_down_exits_1_and_order_is_kept() {
    let (ok, _) = http("200 OK").await;
    let (bad, _) = http("503 Service Unavailable").await;
    let closed = closed_port();
    let o = monitor(
        &[
            "http",
            &ok.to_string(),
            &bad.to_string(),
            &closed.to_string(),
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    line(lines[0], "up", &ok.to_string(), "http", "200 OK");
    line(
        lines[1],
        "down",
        &bad.to_string(),
        "http",
        "status 503 Service Unavailable, expected 200-299",
    );
    line(
        lines[2],
        "down",
        &closed.to_string(),
        "http",
        "connection refused",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_from_stdin_and_json() {
    let (a, _) = http("200 OK").await;
    let (b, _) = http("200 OK").await;
    let input = format!("# servers\n{a}\n\n{b}\n");
    let o = monitor(&["tcp", "-", "--json"], &input, &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["target"], a.to_string());
    assert_eq!(objs[1]["target"], b.to_string());
    for o in &objs {
        assert_eq!(o["kind"], "tcp");
        assert_eq!(o["up"], true);
        assert_eq!(o["reason"], "connected");
        // A connection takes some time, and less than the (default 5 s) timeout.
        let ms = o["latency_ms"].as_f64().unwrap();
        assert!(ms > 0.0 && ms < 5000.0, "latency_ms {ms}");
    }
}

/// The latency reported is the time to the answer: from a server that answers a known 300 ms late,
/// at least that, and less than the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_the_time_to_the_answer() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                let r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    });
    let o = monitor(
        &["http", &addr.to_string(), "--json", "--timeout", "10s"],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["up"], true, "{v}");
    let ms = v["latency_ms"].as_f64().unwrap();
    assert!((300.0..10_000.0).contains(&ms), "latency_ms {ms}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_say_what_is_wrong() {
    let cases: &[(&[&str], &str)] = &[
        (&["gopher", "192.0.2.13"], "unknown probe kind \"gopher\""),
        (
            &["htps", "192.0.2.13"],
            "unknown probe kind \"htps\": did you mean https?",
        ),
        (
            &["http", "192.0.2.13", "--name", "x"],
            "--name does not apply to a http probe (only to dns)",
        ),
        (
            &["http", "192.0.2.13", "--method", "PUT"],
            "--method: \"PUT\" is not one of the values: use GET, HEAD",
        ),
        (
            &["http", "192.0.2.13", "--expect", "2xx"],
            "--expect: \"2xx\" is not a status code",
        ),
        (
            &["simpletcp", "192.0.2.13:25"],
            "a simpletcp probe needs --regex",
        ),
        (&["tcp", "192.0.2.13"], "a tcp check needs a port"),
        (&["dns", "192.0.2.53"], "a dns probe needs --name"),
        (
            &["http", "192.0.2.13", "--expect", "2xx"],
            "is not a status code",
        ),
        (&["http", "192.0.2.13", "--regex", "("], "not a valid regex"),
        (&["http", "192.0.2.13", "--timeout", "2"], "--timeout"),
        (&["http", "www.example.org"], "is not a target"),
        (&["http"], "no target given"),
        (
            &["https://192.0.2.13/", "--method", "HEAD", "--regex", "x"],
            "HEAD request has no body",
        ),
        (&["radius", "192.0.2.13"], "a radius probe needs --secret"),
        (
            &["pop3", "192.0.2.13", "--sni", "mail.example.org"],
            "--sni: applies only to TLS",
        ),
        (
            &["tcp", "192.0.2.13:22", "--starttls"],
            "--starttls does not apply to a tcp probe",
        ),
        (
            &["ftp", "192.0.2.13", "--expect", "200"],
            "--expect does not apply to ftp",
        ),
    ];
    for (args, want) in cases {
        let o = monitor(args, "", &[]).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{args:?}: {:?} lacks {want:?}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_are_ignored() {
    let (addr, n) = http("200 OK").await;
    let proxy = format!("http://{}", closed_port());
    let env = [
        ("http_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let o = monitor(&["http", &addr.to_string()], "", &env).await;
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        n.load(Ordering::SeqCst),
        1,
        "the request went straight to the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_repeats_on_the_engine() {
    let (addr, n) = http("200 OK").await;
    let t = addr.to_string();
    let o = monitor(
        &["http", &t, &t, "--every", "100ms", "--rounds", "3"],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // The same target twice is one probe: 3 runs, each reported to both users.
    assert_eq!(out.lines().count(), 6, "{out}");
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_command_with_mon_arguments() {
    let o = monitor(
        &[
            "external",
            "192.0.2.13",
            "--command",
            "sh -c 'echo checked $0; exit 0'",
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    line(
        stdout(&o).trim_end(),
        "up",
        "192.0.2.13",
        "external",
        "checked 192.0.2.13",
    );
    let o = monitor(
        &[
            "external",
            "192.0.2.13",
            "--command",
            "sleep 30",
            "--args",
            "none",
            "--timeout",
            "300ms",
        ],
        "",
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    line(
        stdout(&o).trim_end(),
        "down",
        "192.0.2.13",
        "external",
        "timeout after 300ms",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_and_pgsql_from_the_command_line() {
    // A SIP server answering 200 to OPTIONS (copying the Call-ID), a PostgreSQL one answering N.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let call_id = req
                .lines()
                .find(|l| l.starts_with("Call-ID:"))
                .unwrap_or("");
            let answer = format!("SIP/2.0 200 OK\r\n{call_id}\r\nCSeq: 1 OPTIONS\r\n\r\n");
            let _ = udp.send_to(answer.as_bytes(), from).await;
        }
    });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pg = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).await.is_ok() && req[4..] == 80877103u32.to_be_bytes() {
                let _ = s.write_all(b"N").await;
            }
        }
    });
    let o = monitor(&["sip", &sip.to_string()], "", &[]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    line(
        stdout(&o).trim(),
        "up",
        &sip.to_string(),
        "sip",
        "SIP/2.0 200 OK",
    );
    let closed = closed_port().to_string();
    let o = monitor(&["pgsql", &pg.to_string(), &closed], "", &[]).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    line(
        lines[0],
        "up",
        &pg.to_string(),
        "pgsql",
        "SSLRequest answered N (no TLS)",
    );
    line(lines[1], "down", &closed, "pgsql", "connection refused");
}
