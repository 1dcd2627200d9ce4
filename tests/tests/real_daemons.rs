//! The probe kinds against the real servers users run: Debian's nginx (http, https), slapd (ldap),
//! mariadb-server (mysql), postgresql (pgsql), freeradius (radius), unbound (dns), exim4 (smtp),
//! vsftpd (ftp) and dovecot (imap, pop3, imaps, pop3s). Each runs as a private instance: its own
//! configuration and data in a scratch directory, listening on 127.0.0.1 only, on ports picked
//! here, started by its test and stopped at the end — on failure too ([`Daemon`] stops it when
//! dropped). The system's service scripts and /etc configurations are never used.
//!
//! Every kind is checked through the probe library as `ldir` and `monitor` run it, from the TOML a
//! configuration holds (the test does not build the `monitor` binary: that build, with its own
//! feature set, would rebuild much of the workspace each run): up cases; down cases in
//! which the live daemon answers, but not as asked (wrong password, secret or DN, NXDOMAIN, wrong
//! status or body, a TLS name or CA that does not fit, a full server); and a check after the
//! daemon was stopped. A down case must be down for its own reason (the reason is matched), so a
//! daemon that is simply not there cannot pass for one.
//!
//! Needs root (as CI runs it: postgres and mariadb are dropped to their package's user, the
//! others drop privileges themselves or need none) and the packages `tests/lab deps` installs; a
//! missing one fails its test with one line naming the package. Not built by plain `cargo test`
//! (`test = false`); `tests/lab all` runs it: `cargo test -p tests --test real_daemons`.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::config;
use common::probe::{Probe, Prober, Spec};

/// How long a daemon may take to be ready: mariadb-install-db and initdb take seconds, several
/// times that on a busy two-core CI machine.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long a daemon may take to exit after its stop signal before its process group is killed.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// Each check's timeout: generous, the machine may be busy; answers come in milliseconds.
const TIMEOUT: &str = "5s";
/// The names in the test certificate (`www` for nginx, `mail` for exim and dovecot).
const WWW: &str = "www.example.org";
const MAIL: &str = "mail.example.org";

// ---- the harness: scratch directories, daemons, checks

/// Fails the test, in one line, when not run as root.
fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "real_daemons needs root (it starts daemons that drop to their own users): run it as root, as `tests/lab all` does"
    );
}

/// `path`, which Debian's `package` installs; fails the test in one line when it is missing.
fn installed(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: install Debian's {package} (tests/lab deps)"
    );
    p
}

/// The uid and gid of the system user `name`, which `package` creates.
fn account(name: &str, package: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .unwrap_or_else(|| {
            panic!("no user {name}: install Debian's {package} (tests/lab deps), which creates it")
        })
}

/// A scratch directory for one daemon, removed when dropped (after the daemon: declare it first).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        // /tmp, not $TMPDIR: the daemons' own users must be able to reach it.
        let dir = Path::new("/tmp").join(format!("lvs-real-daemons-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // The daemons' own users (nobody, postgres, mysql, ...) must reach their files.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// A path under the directory as a string, for configuration files and arguments.
    fn at(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Writes `content` to `rel` (mode 0644, parents created) and returns its path.
    fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// Creates the directory `rel`, owned by `owner` when given.
    fn dir(&self, rel: &str, owner: Option<(u32, u32)>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        if let Some((uid, gid)) = owner {
            chown(&p, Some(uid), Some(gid)).unwrap();
        }
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `template` with each `@KEY@` replaced (configuration files are full of braces).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("@{k}@"), v);
    }
    assert!(!out.contains("@DIR@"), "unfilled template: {out}");
    out
}

/// A loopback TCP port free at the time of the call.
fn free_tcp_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A loopback UDP port free at the time of the call.
fn free_udp_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0/udp");
    s.local_addr().unwrap().port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// A daemon started in its own process group, its output in a log file; stopped when dropped.
struct Daemon {
    name: &'static str,
    child: Option<Child>,
    /// The main process's pid, which is also its process group's id.
    pid: i32,
    log: PathBuf,
    /// The daemon's "stop now" signal (postgres: SIGINT, fast shutdown; the others: SIGTERM).
    stop_signal: i32,
}

impl Daemon {
    fn start(name: &'static str, mut cmd: Command, log: PathBuf, stop_signal: i32) -> Daemon {
        let out = fs::File::create(&log).expect("create the daemon's log");
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Daemon {
            name,
            pid: child.id() as i32,
            child: Some(child),
            log,
            stop_signal,
        }
    }

    /// Whether the daemon's main process has exited, without reaping it: until it is reaped its
    /// pid stays its process group's id, so the group can still be signalled safely.
    fn exited(&self) -> bool {
        if self.child.is_none() {
            return true;
        }
        // SAFETY: an all-zero siginfo_t is a valid value (a plain C struct); waitid only writes it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid siginfo_t pointer; WNOWAIT leaves it unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is set (to 0 when nothing exited) by a successful waitid.
        r != 0 || unsafe { info.si_pid() } != 0
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the daemon's output, for failure messages.
    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `ready()`; fails with the daemon's output if it exits first or the deadline passes.
    fn wait_ready(&self, what: &str, mut ready: impl FnMut() -> bool) {
        self.wait_for(what, || ready().then_some(()))
    }

    /// Waits until `get()` gives something, and returns it; fails as [`Daemon::wait_ready`] does.
    fn wait_for<T>(&self, what: &str, mut get: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(t) = get() {
                return t;
            }
            assert!(
                !self.exited(),
                "{} exited before {what}; its output:\n{}",
                self.name,
                self.log_tail()
            );
            assert!(
                Instant::now() < deadline,
                "{} not ready ({what}) within {READY_WITHIN:?}; its output:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the daemon's output contains `line`.
    fn wait_log(&self, line: &str) {
        self.wait_ready(&format!("its log says {line:?}"), || {
            self.log_text().contains(line)
        });
    }

    /// Stops the daemon as an administrator would (its stop signal), then kills whatever is left
    /// of its process group (workers, children) and reaps it.
    fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        // SAFETY: kill has no memory effects; the group is the one we created, and its leader is
        // not reaped yet, so the id cannot have been reused.
        unsafe { libc::kill(-self.pid, self.stop_signal) };
        let deadline = Instant::now() + STOP_WITHIN;
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One check and what it must give.
struct Case {
    what: &'static str,
    /// The check as a configuration holds it (ldir's and monitor's TOML), target 127.0.0.1.
    toml: String,
    up: bool,
    /// A part of the reason the check must give.
    reason: &'static str,
}

/// A check that must be up, with `reason` in its reason.
fn up(what: &'static str, toml: String, reason: &'static str) -> Case {
    Case {
        what,
        toml,
        up: true,
        reason,
    }
}

/// A check that must be down, with `reason` in its reason.
fn down(what: &'static str, toml: String, reason: &'static str) -> Case {
    Case {
        up: false,
        ..up(what, toml, reason)
    }
}

/// A check of `kind` on 127.0.0.1:`port`, with the kind's own fields in `fields` (`key = value`
/// lines) and the default timeout unless `fields` sets one.
fn spec(kind: &str, port: u16, fields: &str) -> String {
    let timeout = if fields.contains("timeout =") {
        String::new()
    } else {
        format!("timeout = \"{TIMEOUT}\"\n")
    };
    format!("kind = \"{kind}\"\nport = {port}\n{timeout}{fields}")
}

/// Runs the cases through the probe library (one runtime, one prober, as `monitor probe` does);
/// returns what went wrong, one line per case.
fn check(daemon: &str, cases: &[Case]) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let prober = Prober::new();
    let mut failures = Vec::new();
    for c in cases {
        let spec: Spec = config::parse_str(&format!("{daemon}.toml"), &c.toml)
            .unwrap_or_else(|e| panic!("{daemon}: {}: bad check:\n{}\n{e}", c.what, c.toml));
        let probe = Probe::new(Ipv4Addr::LOCALHOST.into(), spec);
        let outcome = rt.block_on(prober.run(&probe));
        let state = |up| if up { "up" } else { "down" };
        println!(
            "{daemon}: {}: {} ({})",
            c.what,
            state(outcome.up),
            outcome.reason
        );
        if outcome.up != c.up || !outcome.reason.contains(c.reason) {
            failures.push(format!(
                "{daemon}: {}: expected {} with a reason containing {:?}, got {} ({:?}); the check: {}",
                c.what,
                state(c.up),
                c.reason,
                state(outcome.up),
                outcome.reason,
                c.toml.replace('\n', "; ")
            ));
        }
    }
    failures
}

/// Fails the test with every failed case and the daemon's output.
fn verdict(daemon: &Daemon, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}\n--- {}'s output (last lines) ---\n{}",
        failures.len(),
        failures.join("\n"),
        daemon.name,
        daemon.log_tail()
    );
}

/// A test CA and a certificate it signed for www.example.org and mail.example.org, as PEM files;
/// and a second CA that signed nothing here.
struct Tls {
    ca: String,
    other_ca: String,
    cert: String,
    key: String,
}

fn tls(s: &Scratch) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, issuer) = ca("real-daemons test CA");
    let (other_pem, _) = ca("another test CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![WWW.to_string(), MAIL.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, WWW);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Tls {
        ca: s.write("tls/ca.pem", &ca_pem).display().to_string(),
        other_ca: s
            .write("tls/other-ca.pem", &other_pem)
            .display()
            .to_string(),
        cert: s.write("tls/cert.pem", &cert.pem()).display().to_string(),
        // Readable by the daemons' unprivileged users (exim reads it as Debian-exim); a test key.
        key: s
            .write("tls/key.pem", &key.serialize_pem())
            .display()
            .to_string(),
    }
}

// ---- the daemons

#[test]
fn nginx_http_and_https() {
    require_root();
    let nginx = installed("/usr/sbin/nginx", "nginx");
    let s = Scratch::new("nginx");
    let tls = tls(&s);
    let (http, https) = (free_tcp_port(), free_tcp_port());
    s.write("www/index.html", "hello from nginx\n");
    let conf = s.write(
        "nginx.conf",
        &fill(
            r#"
worker_processes 1;
daemon off;
pid @DIR@/nginx.pid;
error_log stderr;
user nobody nogroup;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp/body;
    proxy_temp_path @DIR@/tmp/proxy;
    fastcgi_temp_path @DIR@/tmp/fastcgi;
    uwsgi_temp_path @DIR@/tmp/uwsgi;
    scgi_temp_path @DIR@/tmp/scgi;
    server {
        listen 127.0.0.1:@HTTP@;
        root @DIR@/www;
        location = /health { default_type text/plain; return 200 "healthy\n"; }
    }
    server {
        listen 127.0.0.1:@HTTPS@ ssl;
        server_name www.example.org;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        root @DIR@/www;
    }
}
"#,
            &[
                ("DIR", &s.at("")),
                ("HTTP", &http.to_string()),
                ("HTTPS", &https.to_string()),
                ("CERT", &tls.cert),
                ("KEY", &tls.key),
            ],
        ),
    );
    s.dir("tmp", None);
    let mut cmd = Command::new(nginx);
    cmd.arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(s.path(""))
        .arg("-c")
        .arg(&conf);
    let mut d = Daemon::start("nginx", cmd, s.path("nginx.log"), libc::SIGTERM);
    d.wait_ready("listening", || listening(http) && listening(https));

    let web = |fields: &str| spec("http", http, fields);
    let secure = |ca: &str, host: &str| {
        let fields = format!("ca_file = \"{ca}\"\nhost = \"{host}\"\nregex = \"hello\"\n");
        spec("https", https, &fields)
    };
    let mut failures = check(
        "nginx",
        &[
            up(
                "a static file",
                web("regex = \"hello from nginx\""),
                "200 OK",
            ),
            up(
                "a location",
                web("path = \"/health\"\nregex = \"^healthy\""),
                "200 OK",
            ),
            up("HEAD", web("method = \"HEAD\""), "200 OK"),
            down("a missing file", web("path = \"/missing.html\""), "404"),
            down(
                "a status not expected",
                web("path = \"/health\"\nexpect = \"204\""),
                "status 200 OK, expected 204",
            ),
            down(
                "a body that does not match",
                web("regex = \"goodbye\""),
                "does not match /goodbye/",
            ),
            up("https with the CA and name", secure(&tls.ca, WWW), "200 OK"),
            down(
                "https, a name the certificate does not have",
                secure(&tls.ca, "shop.example.net"),
                "not valid for the server's name",
            ),
            down(
                "https, a CA that did not sign it",
                secure(&tls.other_ca, WWW),
                "unknown issuer",
            ),
            down(
                "plain http to the https port",
                spec("http", https, ""),
                "400",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "nginx",
        &[
            down("http, stopped", web(""), "connection refused"),
            down("https, stopped", secure(&tls.ca, WWW), "connection refused"),
        ],
    ));
    verdict(&d, failures);
}

#[test]
fn slapd_ldap() {
    require_root();
    let slapd = installed("/usr/sbin/slapd", "slapd");
    let slapadd = installed("/usr/sbin/slapadd", "slapd");
    let s = Scratch::new("slapd");
    let port = free_tcp_port();
    let conf = s.write(
        "slapd.conf",
        &fill(
            r#"
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile @DIR@/slapd.pid
database mdb
maxsize 16777216
directory @DIR@/db
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin-secret
"#,
            &[("DIR", &s.at(""))],
        ),
    );
    s.dir("db", None);
    let ldif = s.write(
        "init.ldif",
        "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: uid=probe,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: probe\ncn: probe\nsn: probe\nuserPassword: probe-secret\n",
    );
    let out = Command::new(slapadd)
        .arg("-f")
        .arg(&conf)
        .arg("-l")
        .arg(&ldif)
        .output()
        .expect("run slapadd");
    assert!(
        out.status.success(),
        "slapadd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(slapd);
    // -d 0: stay in the foreground, log nothing but errors.
    cmd.args(["-d", "0", "-h", &format!("ldap://127.0.0.1:{port}/"), "-f"])
        .arg(&conf);
    let mut d = Daemon::start("slapd", cmd, s.path("slapd.log"), libc::SIGTERM);
    d.wait_ready("listening", || listening(port));

    let ldap = |dn: &str, password: &str| {
        spec(
            "ldap",
            port,
            &format!("dn = \"{dn}\"\npassword = \"{password}\""),
        )
    };
    let user = "uid=probe,dc=example,dc=org";
    let mut failures = check(
        "slapd",
        &[
            up(
                "anonymous bind",
                spec("ldap", port, ""),
                "anonymous bind: 0 success",
            ),
            up("bind as a user", ldap(user, "probe-secret"), "0 success"),
            up(
                "bind as the root DN",
                ldap("cn=admin,dc=example,dc=org", "admin-secret"),
                "0 success",
            ),
            down(
                "a wrong password",
                ldap(user, "wrong"),
                "49 invalidCredentials",
            ),
            down(
                "a DN that does not exist",
                ldap("uid=nobody,dc=example,dc=org", "probe-secret"),
                "49 invalidCredentials",
            ),
            down("a DN that is no DN", ldap("not a dn", "probe-secret"), "34"),
        ],
    );
    d.stop();
    failures.extend(check(
        "slapd",
        &[down(
            "stopped",
            spec("ldap", port, ""),
            "connection refused",
        )],
    ));
    verdict(&d, failures);
}

#[test]
fn mariadb_mysql() {
    require_root();
    let mariadbd = installed("/usr/sbin/mariadbd", "mariadb-server");
    let install_db = installed("/usr/bin/mariadb-install-db", "mariadb-server");
    let mysql = account("mysql", "mariadb-server");
    let s = Scratch::new("mariadb");
    let port = free_tcp_port();
    let data = s.dir("data", Some(mysql));
    // Small InnoDB files: the instance holds nothing, and writing them is most of the start-up.
    let innodb = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"];
    let out = Command::new(install_db)
        // --skip-name-resolve: no host name lookups (a CI machine's own name may not resolve).
        .args([
            "--no-defaults",
            "--user=mysql",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .arg(format!("--datadir={}", data.display()))
        .args(innodb)
        .output()
        .expect("run mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A user without a password, as the probe logs in, and one with a password.
    let init = s.write(
        "init.sql",
        "CREATE USER IF NOT EXISTS 'probe'@'127.0.0.1';\n\
         CREATE USER IF NOT EXISTS 'guarded'@'127.0.0.1' IDENTIFIED BY 'guarded-secret';\n",
    );
    let mut cmd = Command::new(mariadbd);
    cmd.args([
        "--no-defaults",
        "--user=mysql",
        "--bind-address=127.0.0.1",
        "--skip-name-resolve",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--datadir={}", data.display()))
    .arg(format!("--socket={}", data.join("mysqld.sock").display()))
    .arg(format!("--pid-file={}", data.join("mysqld.pid").display()))
    .arg(format!("--init-file={}", init.display()))
    .args(innodb);
    let mut d = Daemon::start("mariadbd", cmd, s.path("mariadbd.log"), libc::SIGTERM);
    d.wait_log("ready for connections");

    let login = |user: &str| spec("mysql", port, &format!("user = \"{user}\""));
    let mut failures = check(
        "mariadb",
        &[
            up("greeting", spec("mysql", port, ""), "protocol 10"),
            up(
                "login without a password",
                login("probe"),
                "logged in as probe",
            ),
            down(
                "a user with a password",
                login("guarded"),
                "error 1045: Access denied",
            ),
            down(
                "a user that does not exist",
                login("nobody"),
                "error 1045: Access denied",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "mariadb",
        &[down("stopped", login("probe"), "connection refused")],
    ));
    verdict(&d, failures);
}

/// The newest PostgreSQL server of Debian's packages: `/usr/lib/postgresql/VERSION/bin`.
fn postgresql_bin() -> PathBuf {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((version, bin))
        })
        .max();
    newest
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!("/usr/lib/postgresql/*/bin/postgres is missing: install Debian's postgresql (tests/lab deps)")
        })
}

/// A StartupMessage (protocol 3.0) for `user`.
fn pg_startup(user: &str) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for part in ["user", user, "database", user, ""] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

#[test]
fn postgresql_pgsql() {
    require_root();
    let bin = postgresql_bin();
    let (uid, gid) = account("postgres", "postgresql");
    let s = Scratch::new("postgresql");
    let port = free_tcp_port();
    let home = s.dir("pg", Some((uid, gid)));
    let data = home.join("data");
    // postgres refuses to run as root: initdb and the server run as the package's user. Password
    // (SCRAM) logins over TCP, as a real server would ask of a director.
    let out = Command::new(bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ])
        // The C locale: a fresh machine may have no other generated.
        .args(["--locale=C", "--encoding=UTF8"])
        .current_dir(&home)
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&home)
        // One connection only: the down case fills it.
        .args([
            "-c",
            "max_connections=1",
            "-c",
            "superuser_reserved_connections=0",
        ])
        .args(["-c", "fsync=off"])
        .current_dir(&home)
        .uid(uid)
        .gid(gid);
    let mut d = Daemon::start("postgres", cmd, s.path("postgres.log"), libc::SIGINT);
    d.wait_log("ready to accept connections");

    let startup = spec("pgsql", port, "user = \"probe\"");
    let mut failures = check(
        "postgresql",
        &[
            up(
                "SSLRequest",
                spec("pgsql", port, ""),
                "SSLRequest answered N",
            ),
            up(
                "startup as a user",
                startup.clone(),
                "asks for SASL authentication",
            ),
        ],
    );
    // A client that logs in and waits holds the only connection slot: the server is full. The
    // backend of the check before may still hold the slot for a moment (it is told "too many
    // clients" then): try again until the server asks the holder for its password.
    let holder = d.wait_for("the connection slot held", || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        c.write_all(&pg_startup("postgres")).ok()?;
        let mut first = [0u8; 1];
        c.read_exact(&mut first).ok()?;
        (first[0] == b'R').then_some(c)
    });
    failures.extend(check(
        "postgresql",
        &[down("no connection slot left", startup, "error 53300")],
    ));
    drop(holder);
    d.stop();
    failures.extend(check(
        "postgresql",
        &[down(
            "stopped",
            spec("pgsql", port, ""),
            "connection refused",
        )],
    ));
    verdict(&d, failures);
}

#[test]
fn freeradius_radius() {
    require_root();
    let freeradius = installed("/usr/sbin/freeradius", "freeradius");
    let s = Scratch::new("freeradius");
    let port = free_udp_port();
    // The smallest server: one client (127.0.0.1 with its secret), one user, PAP, no delay on rejects.
    s.write(
        "radiusd.conf",
        &fill(
            r#"
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
confdir = @DIR@
raddbdir = @DIR@
modconfdir = @DIR@
logdir = @DIR@
run_dir = @DIR@
radacctdir = @DIR@
pidfile = @DIR@/radiusd.pid
name = freeradius
hostname_lookups = no
max_request_time = 10
cleanup_delay = 0
max_requests = 256
log {
    destination = stderr
    auth = yes
}
security {
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}
client localhost {
    ipaddr = 127.0.0.1
    secret = radius-secret
}
modules {
    files {
        filename = @DIR@/users
    }
    pap {
    }
}
server default {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = @PORT@
    }
    authorize {
        files
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
    }
}
"#,
            &[("DIR", &s.at("")), ("PORT", &port.to_string())],
        ),
    );
    s.write("users", "probe Cleartext-Password := \"probe-secret\"\n");
    let mut cmd = Command::new(freeradius);
    cmd.args(["-f", "-l", "stdout", "-n", "radiusd", "-d"])
        .arg(s.path(""));
    let mut d = Daemon::start("freeradius", cmd, s.path("freeradius.log"), libc::SIGTERM);
    d.wait_log("Ready to process requests");

    let radius = |secret: &str, password: &str, extra: &str| {
        let fields =
            format!("secret = \"{secret}\"\nuser = \"probe\"\npassword = \"{password}\"\n{extra}");
        spec("radius", port, &fields)
    };
    // Checks the server answers with silence: a short timeout.
    let silent = "timeout = \"1s\"\n";
    let mut failures = check(
        "freeradius",
        &[
            up(
                "the right user and password",
                radius("radius-secret", "probe-secret", ""),
                "Access-Accept",
            ),
            // Alive and sharing our secret: a reject is up (see common::probe::radius).
            up(
                "a wrong password",
                radius("radius-secret", "wrong", ""),
                "Access-Reject",
            ),
            // The server drops a request whose Message-Authenticator is not made with its secret,
            down(
                "a wrong secret",
                radius("wrong-secret", "probe-secret", silent),
                "timeout after 1s",
            ),
            // ... and a request from an address that is not one of its clients.
            down(
                "from an unknown client",
                radius(
                    "radius-secret",
                    "probe-secret",
                    &format!("{silent}source = \"127.0.0.2\""),
                ),
                "timeout after 1s",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "freeradius",
        &[down(
            "stopped",
            radius("radius-secret", "probe-secret", ""),
            "port unreachable",
        )],
    ));
    verdict(&d, failures);
}

#[test]
fn unbound_dns() {
    require_root();
    let unbound = installed("/usr/sbin/unbound", "unbound");
    let s = Scratch::new("unbound");
    let port = free_udp_port();
    let conf = s.write(
        "unbound.conf",
        &fill(
            r#"
server:
    interface: 127.0.0.1
    port: @PORT@
    do-ip6: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "@DIR@"
    pidfile: "@DIR@/unbound.pid"
    use-syslog: no
    logfile: ""
    num-threads: 1
    access-control: 127.0.0.2/32 refuse
    local-zone: "example.org." static
    local-data: "www.example.org. 60 IN A 192.0.2.10"
    local-data: "example.org. 60 IN MX 10 mail.example.org."
remote-control:
    control-enable: no
"#,
            &[("DIR", &s.at("")), ("PORT", &port.to_string())],
        ),
    );
    let mut cmd = Command::new(unbound);
    cmd.arg("-d").arg("-c").arg(&conf);
    let mut d = Daemon::start("unbound", cmd, s.path("unbound.log"), libc::SIGTERM);
    d.wait_log("start of service");

    let dns = |name: &str, qtype: &str| {
        spec(
            "dns",
            port,
            &format!("name = \"{name}\"\ntype = \"{qtype}\""),
        )
    };
    let mut failures = check(
        "unbound",
        &[
            up("an A record", dns(WWW, "A"), "NOERROR, 1 answer"),
            up(
                "an MX record",
                dns("example.org", "MX"),
                "NOERROR, 1 answer",
            ),
            down(
                "a name that does not exist",
                dns("nope.example.org", "A"),
                "Non-Existent Domain",
            ),
            down(
                "a type the name does not have",
                dns(WWW, "AAAA"),
                "NOERROR but no answer",
            ),
            down(
                "a client the server refuses",
                spec(
                    "dns",
                    port,
                    &format!("name = \"{WWW}\"\nsource = \"127.0.0.2\""),
                ),
                "Refused",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "unbound",
        &[down("stopped", dns(WWW, "A"), "port unreachable")],
    ));
    verdict(&d, failures);
}

#[test]
fn exim_smtp() {
    require_root();
    let exim = installed("/usr/sbin/exim4", "exim4-daemon-light");
    let exim_user = account("Debian-exim", "exim4-daemon-light");
    let s = Scratch::new("exim");
    let tls = tls(&s);
    let port = free_tcp_port();
    // Exim writes its spool and logs as its own user.
    s.dir("exim", Some(exim_user));
    let conf = s.write(
        "exim.conf",
        &fill(
            r#"
primary_hostname = mail.example.org
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = @DIR@/exim/spool
log_file_path = @DIR@/exim/%slog
pid_file_path = @DIR@/exim/exim.pid
daemon_smtp_ports = @PORT@
local_interfaces = <; 127.0.0.1
keep_environment =
tls_advertise_hosts = *
tls_certificate = @CERT@
tls_privatekey = @KEY@
acl_smtp_helo = acl_helo

begin acl

acl_helo:
  deny condition = ${if eq{$sender_helo_name}{blocked.example.net}}
       message = go away
  accept
"#,
            &[
                ("DIR", &s.at("")),
                ("PORT", &port.to_string()),
                ("CERT", &tls.cert),
                ("KEY", &tls.key),
            ],
        ),
    );
    let mut cmd = Command::new(exim);
    // -bdf: the listening daemon, in the foreground.
    cmd.arg("-C").arg(&conf).arg("-bdf");
    let mut d = Daemon::start("exim4", cmd, s.path("exim.log"), libc::SIGTERM);
    d.wait_ready("listening", || listening(port));

    let starttls = |ca: &str, sni: &str| {
        spec(
            "smtp",
            port,
            &format!("starttls = true\nca_file = \"{ca}\"\nsni = \"{sni}\""),
        )
    };
    let mut failures = check(
        "exim",
        &[
            up(
                "greeting and EHLO",
                spec("smtp", port, ""),
                "220 mail.example.org ESMTP Exim",
            ),
            up(
                "STARTTLS with the CA and name",
                starttls(&tls.ca, MAIL),
                "STARTTLS ok",
            ),
            down(
                "a HELO name it rejects",
                spec("smtp", port, "helo = \"blocked.example.net\""),
                "EHLO: 550 go away",
            ),
            down(
                "STARTTLS, a name the certificate does not have",
                starttls(&tls.ca, "smtp.example.net"),
                "not valid for the server's name",
            ),
            down(
                "STARTTLS, a CA that did not sign it",
                starttls(&tls.other_ca, MAIL),
                "unknown issuer",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "exim",
        &[down(
            "stopped",
            spec("smtp", port, ""),
            "connection refused",
        )],
    ));
    verdict(&d, failures);
}

#[test]
fn vsftpd_ftp() {
    require_root();
    let vsftpd = installed("/usr/sbin/vsftpd", "vsftpd");
    // Anonymous sessions run as `ftp`, which the package creates.
    account("ftp", "vsftpd");
    let s = Scratch::new("vsftpd");
    let port = free_tcp_port();
    s.write("pub/health.txt", "ftp content ok\n");
    s.dir("empty", None);
    let conf = s.write(
        "vsftpd.conf",
        &fill(
            r#"listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=@PORT@
background=NO
anonymous_enable=YES
anon_root=@DIR@/pub
local_enable=NO
write_enable=NO
secure_chroot_dir=@DIR@/empty
nopriv_user=nobody
ftp_username=ftp
pasv_enable=YES
seccomp_sandbox=NO
xferlog_enable=NO
syslog_enable=NO
"#,
            &[("DIR", &s.at("")), ("PORT", &port.to_string())],
        ),
    );
    let mut cmd = Command::new(vsftpd);
    cmd.arg(&conf);
    let mut d = Daemon::start("vsftpd", cmd, s.path("vsftpd.log"), libc::SIGTERM);
    d.wait_ready("listening", || listening(port));

    let ftp = |fields: &str| spec("ftp", port, fields);
    let mut failures = check(
        "vsftpd",
        &[
            up("greeting", ftp(""), "220 (vsFTPd"),
            up(
                "an anonymous download",
                ftp("retr = \"health.txt\"\nexpect = \"content ok\""),
                "content matches",
            ),
            down(
                "content that does not match",
                ftp("retr = \"health.txt\"\nexpect = \"content bad\""),
                "does not match",
            ),
            down("a missing file", ftp("retr = \"missing.txt\""), "550"),
            down(
                "a login it refuses",
                ftp("user = \"probe\"\npassword = \"wrong\""),
                "530",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "vsftpd",
        &[down("stopped", ftp(""), "connection refused")],
    ));
    verdict(&d, failures);
}

#[test]
fn dovecot_imap_and_pop3() {
    require_root();
    let dovecot = installed("/usr/sbin/dovecot", "dovecot-imapd and dovecot-pop3d");
    installed("/usr/lib/dovecot/imap-login", "dovecot-imapd");
    installed("/usr/lib/dovecot/pop3-login", "dovecot-pop3d");
    let s = Scratch::new("dovecot");
    let tls = tls(&s);
    let ports: Vec<u16> = (0..4).map(|_| free_tcp_port()).collect();
    let (imap, imaps, pop3, pop3s) = (ports[0], ports[1], ports[2], ports[3]);
    let conf = s.write(
        "dovecot.conf",
        &fill(
            r#"
base_dir = @DIR@/run
state_dir = @DIR@/state
log_path = /dev/stderr
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <@CERT@
ssl_key = <@KEY@
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:@DIR@/mail/%u
passdb {
    driver = static
    args = password=probe-secret
}
userdb {
    driver = static
    args = uid=nobody gid=nogroup home=@DIR@/mail/%u
}
service imap-login {
    inet_listener imap {
        port = @IMAP@
    }
    inet_listener imaps {
        port = @IMAPS@
        ssl = yes
    }
}
service pop3-login {
    inet_listener pop3 {
        port = @POP3@
    }
    inet_listener pop3s {
        port = @POP3S@
        ssl = yes
    }
}
"#,
            &[
                ("DIR", &s.at("")),
                ("CERT", &tls.cert),
                ("KEY", &tls.key),
                ("IMAP", &imap.to_string()),
                ("IMAPS", &imaps.to_string()),
                ("POP3", &pop3.to_string()),
                ("POP3S", &pop3s.to_string()),
            ],
        ),
    );
    let mut cmd = Command::new(dovecot);
    // -F: in the foreground.
    cmd.arg("-F").arg("-c").arg(&conf);
    let mut d = Daemon::start("dovecot", cmd, s.path("dovecot.log"), libc::SIGTERM);
    d.wait_ready("listening", || ports.iter().all(|&p| listening(p)));

    let verified = |ca: &str, sni: &str| format!("ca_file = \"{ca}\"\nsni = \"{sni}\"\n");
    let good = verified(&tls.ca, MAIL);
    let starttls = format!("starttls = true\n{good}");
    let mut failures = check(
        "dovecot",
        &[
            up("imap greeting", spec("imap", imap, ""), "* OK"),
            up("pop3 greeting", spec("pop3", pop3, ""), "+OK Dovecot"),
            up(
                "imap STARTTLS",
                spec("imap", imap, &starttls),
                "STARTTLS ok",
            ),
            up(
                "pop3 STARTTLS",
                spec("pop3", pop3, &starttls),
                "STARTTLS ok",
            ),
            up("imaps", spec("imaps", imaps, &good), "* OK"),
            up("pop3s", spec("pop3s", pop3s, &good), "+OK Dovecot"),
            down(
                "imap against the pop3 port",
                spec("imap", pop3, ""),
                "greeting: \"+OK",
            ),
            down(
                "imaps, a name the certificate does not have",
                spec("imaps", imaps, &verified(&tls.ca, "imap.example.net")),
                "not valid for the server's name",
            ),
            down(
                "pop3s, a CA that did not sign it",
                spec("pop3s", pop3s, &verified(&tls.other_ca, MAIL)),
                "unknown issuer",
            ),
        ],
    );
    d.stop();
    failures.extend(check(
        "dovecot",
        &[
            down(
                "imap, stopped",
                spec("imap", imap, ""),
                "connection refused",
            ),
            down(
                "pop3s, stopped",
                spec("pop3s", pop3s, &good),
                "connection refused",
            ),
        ],
    ));
    verdict(&d, failures);
}
