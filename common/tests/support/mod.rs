//! Real servers for probe tests, on loopback: HTTP(S) written here with tokio (and tokio-rustls),
//! DNS and UDP answering with real sockets, certificates made with rcgen. Each server counts the
//! connections it accepts and stops when the test's runtime ends.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What an HTTP test server answers.
#[derive(Clone)]
pub struct Answer {
    pub status: &'static str,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Accept the connection but never answer.
    pub silent: bool,
}

impl Answer {
    pub fn ok(body: &str) -> Answer {
        Answer {
            status: "200 OK",
            body: body.to_string(),
            delay: Duration::ZERO,
            silent: false,
        }
    }
    pub fn status(status: &'static str) -> Answer {
        Answer {
            status,
            body: String::new(),
            delay: Duration::ZERO,
            silent: false,
        }
    }
}

/// A running test server.
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// The request heads received (HTTP), or the datagrams (UDP).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The requests recorded, once there are at least `n`: the server may still be reading when
    /// the check already has its answer. Fails after [`WAIT`] naming what it waited for.
    pub async fn requests_when(&self, n: usize) -> Vec<String> {
        let r = &self.requests;
        wait_for(&format!("{n} requests at the test server"), || {
            r.lock().unwrap().len() >= n
        })
        .await;
        r.lock().unwrap().clone()
    }
}

/// How long a test waits for an event before it fails: generous, the machine may be busy.
pub const WAIT: Duration = Duration::from_secs(10);

/// Waits until `done()` holds, checking every few milliseconds; fails after [`WAIT`] naming `what`.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn serve_http<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut s: S,
    answer: Answer,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let head = read_head(&mut s).await;
    requests.lock().unwrap().push(head.clone());
    if answer.silent {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    tokio::time::sleep(answer.delay).await;
    let body = if head.starts_with("HEAD ") {
        ""
    } else {
        answer.body.as_str()
    };
    let reply = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        body
    );
    let _ = s.write_all(reply.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// An HTTP/1.1 server on 127.0.0.1 answering every request with `answer`.
pub async fn http(answer: Answer) -> Server {
    http_on("127.0.0.1:0", answer, None).await
}

/// The same over TLS with `tls`' certificate.
pub async fn https(answer: Answer, tls: &TlsIdentity) -> Server {
    http_on("127.0.0.1:0", answer, Some(tls.acceptor())).await
}

pub async fn http_on(bind: &str, answer: Answer, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (answer, r, tls) = (answer.clone(), r.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve_http(stream, answer, r).await,
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            serve_http(s, answer, r).await
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        connections,
        requests,
    }
}

/// How a line server speaks TLS.
#[derive(Clone)]
pub enum LineTls {
    /// Plain text only.
    None,
    /// TLS from the first byte (pop3s, imaps).
    Implicit(tokio_rustls::TlsAcceptor),
    /// After answering a line starting with the command (case-insensitively) with its script reply,
    /// the session continues over TLS (STLS, STARTTLS).
    StartTls(&'static str, tokio_rustls::TlsAcceptor),
}

/// A TCP server that sends `greeting`, then answers each line it reads with the matching reply of
/// `script` (first prefix that matches, case-insensitively), or nothing.
pub async fn line_server(
    greeting: &'static str,
    script: Vec<(&'static str, &'static str)>,
) -> Server {
    line_server_tls(greeting, script, LineTls::None).await
}

/// The result of a plain session: the stream, when the client asked for STARTTLS.
async fn line_session<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut stream: S,
    greeting: &'static str,
    script: &[(&'static str, &'static str)],
    requests: &Mutex<Vec<String>>,
    starttls: Option<&'static str>,
) -> Option<S> {
    if stream.write_all(greeting.as_bytes()).await.is_err() {
        return None;
    }
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match stream.read(&mut b).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => line.push(b[0]),
        }
        if b[0] != b'\n' {
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        requests.lock().unwrap().push(text.clone());
        line.clear();
        let upper = text.to_uppercase();
        if let Some((_, reply)) = script
            .iter()
            .find(|(p, _)| upper.starts_with(&p.to_uppercase()))
            && stream.write_all(reply.as_bytes()).await.is_err()
        {
            return None;
        }
        if let Some(cmd) = starttls
            && upper.starts_with(&cmd.to_uppercase())
        {
            return Some(stream);
        }
    }
}

/// A [`line_server`] with TLS ([`LineTls`]).
pub async fn line_server_tls(
    greeting: &'static str,
    script: Vec<(&'static str, &'static str)>,
    tls: LineTls,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (script, r, tls) = (script.clone(), r.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    LineTls::None => {
                        line_session(stream, greeting, &script, &r, None).await;
                    }
                    LineTls::Implicit(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            line_session(s, greeting, &script, &r, None).await;
                        }
                    }
                    LineTls::StartTls(cmd, acceptor) => {
                        let Some(plain) =
                            line_session(stream, greeting, &script, &r, Some(cmd)).await
                        else {
                            return;
                        };
                        if let Ok(s) = acceptor.accept(plain).await {
                            r.lock().unwrap().push("(tls)".into());
                            line_session(s, "", &script, &r, None).await;
                        }
                    }
                }
            });
        }
    });
    Server {
        addr,
        connections,
        requests,
    }
}

/// A TCP server running `session` on every connection it accepts.
pub async fn tcp<F, Fut>(session: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let c = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(session(stream));
        }
    });
    Server {
        addr,
        connections,
        requests: Arc::new(Mutex::new(Vec::new())),
    }
}

/// An FTP server (RFC 959): login with any user and password `secret` (or `anonymous` with any
/// password), TYPE, PASV/EPSV on loopback, RETR of `files` (name, content), QUIT. Missing files
/// get 550. The requests (control lines) are recorded.
pub async fn ftp(files: Vec<(&'static str, &'static str)>) -> Server {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let r = requests.clone();
    let mut server = tcp(move |stream| {
        let (files, r) = (files.clone(), r.clone());
        async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            use tokio::io::AsyncBufReadExt;
            let _ = write.write_all(b"220 test ftp ready\r\n").await;
            let mut user = String::new();
            let mut data: Option<TcpListener> = None;
            while let Ok(Some(line)) = lines.next_line().await {
                r.lock().unwrap().push(line.clone());
                let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                let reply = match cmd.to_uppercase().as_str() {
                    "USER" => {
                        user = arg.to_string();
                        "331 password please\r\n".to_string()
                    }
                    "PASS" if user == "anonymous" || arg == "secret" => "230 logged in\r\n".into(),
                    "PASS" => "530 login incorrect\r\n".into(),
                    "TYPE" => "200 type set\r\n".into(),
                    "PASV" | "EPSV" => {
                        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                        let port = l.local_addr().unwrap().port();
                        data = Some(l);
                        if cmd.eq_ignore_ascii_case("PASV") {
                            format!(
                                "227 Entering Passive Mode (127,0,0,1,{},{}).\r\n",
                                port >> 8,
                                port & 0xff
                            )
                        } else {
                            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
                        }
                    }
                    "RETR" => match (files.iter().find(|(n, _)| *n == arg), data.take()) {
                        (Some((_, content)), Some(l)) => {
                            let _ = write.write_all(b"150 opening data connection\r\n").await;
                            if let Ok((mut d, _)) = l.accept().await {
                                let _ = d.write_all(content.as_bytes()).await;
                                let _ = d.shutdown().await;
                            }
                            "226 transfer complete\r\n".into()
                        }
                        (None, _) => "550 no such file\r\n".into(),
                        (_, None) => "425 use PASV first\r\n".into(),
                    },
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => "502 not implemented\r\n".into(),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    server.requests = requests;
    server
}

/// A loopback port on which nothing listens (bound then released).
pub async fn closed_tcp_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A loopback UDP port on which nothing listens.
pub async fn closed_udp_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.local_addr().unwrap()
}

/// A UDP server that answers each datagram with `reply(datagram)`, or stays silent on `None`.
pub async fn udp<F>(reply: F) -> Server
where
    F: Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
{
    udp_multi(move |d| reply(d).into_iter().collect()).await
}

/// A UDP server that answers each datagram with every datagram of `replies(datagram)`, in order.
pub async fn udp_multi<F>(replies: F) -> Server
where
    F: Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
{
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            r.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            for answer in replies(&buf[..n]) {
                let _ = socket.send_to(&answer, from).await;
            }
        }
    });
    Server {
        addr,
        connections,
        requests,
    }
}

/// Connects to `addr` and returns the stream (to hold a server's accept queue busy, etc.).
pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// A server certificate and key, with the CA that signed it (if any) written to a PEM file.
pub struct TlsIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    /// The CA's PEM file, removed when the identity is dropped.
    pub ca_file: TempFile,
}

impl TlsIdentity {
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// A directory under the system's temporary directory, removed with everything in it when dropped
/// (also when a test fails: the guard is dropped while unwinding).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `probe-test-PID-N-name`.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "probe-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file in its own [`TempDir`], removed when dropped; derefs to its path.
pub struct TempFile {
    path: PathBuf,
    _dir: TempDir,
}

impl TempFile {
    /// Writes `contents` to `file` in a new directory named after `name`.
    pub fn new(name: &str, file: &str, contents: &[u8]) -> TempFile {
        let dir = TempDir::new(name);
        let path = dir.path().join(file);
        std::fs::write(&path, contents).unwrap();
        TempFile { path, _dir: dir }
    }
}

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// How a test certificate is made.
pub enum CertKind {
    /// Signed by a test CA, valid now, for `names`.
    Good,
    /// Signed by the test CA, expired in 2021.
    Expired,
    /// Self-signed (no CA); `ca_file` then holds an unrelated CA.
    SelfSigned,
}

/// Makes a CA and a server certificate for `names` (DNS names or IP addresses).
pub fn identity(names: &[&str], kind: CertKind) -> TlsIdentity {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "probe test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    if let CertKind::Expired = kind {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = match kind {
        CertKind::SelfSigned => params.self_signed(&key).unwrap(),
        _ => params.signed_by(&key, &issuer).unwrap(),
    };
    let ca_file = TempFile::new("ca", "ca.pem", ca_cert.pem().as_bytes());
    TlsIdentity {
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        ca_file,
    }
}
