//! A minimal HTTP/1.1 server for `tests/bench/probe-http.sh`: answers `200 OK` to every request and
//! closes, on every port given, on all addresses (the benchmark runs it inside its own network
//! namespace, so "all addresses" is only that namespace's loopback). Prints `ready` when listening.
//!
//! Usage: bench_http_server PORT...

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ports: Vec<u16> = std::env::args()
        .skip(1)
        .map(|p| p.parse().expect("a port number"))
        .collect();
    assert!(!ports.is_empty(), "usage: bench_http_server PORT...");
    for port in ports {
        let l = TcpListener::bind(("0.0.0.0", port)).await.expect("bind");
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut got = 0;
                    loop {
                        match s.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got += n,
                        }
                        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") || got == buf.len() {
                            break;
                        }
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
    }
    println!("ready");
    std::future::pending::<()>().await;
}
