//! `hbeat import` end to end, through the binary: Debian heartbeat's example files (as shipped, and
//! with their example lines uncommented as their comments tell the admin to) and a two-node LVS
//! pair in the style of seed 002 are converted, written with `--out`/`--key-out`, and then
//! `hbeat check` is run on the result. Script resources and `fakeip` resolve to stubs the test
//! creates (hbeat check only needs them to exist and be executable).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hbeat-import-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Executable stubs for `fakeip` and the script resources, in `bin/`.
    fn stubs(&self, names: &[&str]) -> PathBuf {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for n in names {
            let p = bin.join(n);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        bin
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hbeat(args: &[&str], path_dir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hbeat"));
    c.args(args);
    if let Some(dir) = path_dir {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", dir.display()));
    }
    c.output().expect("run hbeat")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `hbeat --config FILE check` with the stubs first in PATH; panics with its output unless ok.
fn check_passes(config: &Path, bin: &Path) -> String {
    let out = hbeat(&["--config", config.to_str().unwrap(), "check"], Some(bin));
    assert!(
        out.status.success(),
        "hbeat check refused the converted file:\n{}\n--- {} ---\n{}",
        text(&out.stderr),
        config.display(),
        std::fs::read_to_string(config).unwrap_or_default()
    );
    text(&out.stdout)
}

/// A copy of Debian's example with the given lines' leading `#` removed (and `edits` applied).
fn uncommented(src: &Path, dst: &Path, lines: &[usize], edits: &[(&str, &str)]) {
    let original = std::fs::read_to_string(src).unwrap();
    let mut out = String::new();
    for (i, l) in original.lines().enumerate() {
        let mut l = l.to_owned();
        if lines.contains(&(i + 1)) {
            assert!(l.starts_with('#'), "line {} is not commented: {l}", i + 1);
            l.remove(0);
            for (from, to) in edits {
                l = l.replace(from, to);
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    std::fs::write(dst, out).unwrap();
}

#[test]
fn debian_example_as_shipped_has_nothing_to_convert() {
    let d = TempDir::new("debian-shipped");
    let out = d.path("hbeat.toml");
    let o = hbeat(
        &[
            "import",
            fixture("debian/ha.cf").to_str().unwrap(),
            fixture("debian/haresources").to_str().unwrap(),
            fixture("debian/authkeys").to_str().unwrap(),
            "--node",
            "ken3",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // Every line of the example is a comment except these two.
    let cf = fixture("debian/ha.cf");
    assert!(
        err.contains(&format!(
            "hbeat: {}:37: logfacility: not converted",
            cf.display()
        )),
        "{err}"
    );
    assert!(err.contains("node: no `node` line"), "{err}");
    assert!(err.contains("authkeys: auth: no `auth N` line"), "{err}");
    assert!(err.contains("nothing usable"), "{err}");
    assert!(!out.exists());
}

/// Debian's three examples with their (Linux) example lines uncommented, for node ken3 whose
/// ucast peer kathy is 192.168.1.2; haresources' example group moved to ken3.
fn debian_uncommented(d: &TempDir, auth: &str) -> [PathBuf; 3] {
    let files = [d.path("ha.cf"), d.path("haresources"), d.path("authkeys")];
    uncommented(
        &fixture("debian/ha.cf"),
        &files[0],
        &[
            51, 59, 64, 74, 79, 83, 86, 94, 116, 124, 173, 210, 214, 215, 223, 256, 262,
        ],
        &[],
    );
    uncommented(
        &fixture("debian/haresources"),
        &files[1],
        &[137],
        &[("just.linux-ha.org", "ken3")],
    );
    uncommented(
        &fixture("debian/authkeys"),
        &files[2],
        &[26, 27, 28, 29],
        &[("auth 1", auth)],
    );
    files
}

#[test]
fn debian_example_uncommented_converts_and_passes_check() {
    let d = TempDir::new("debian");
    let bin = d.stubs(&["fakeip", "httpd"]);
    let [cf, res, keys] = debian_uncommented(&d, "auth 2");
    let (out, key) = (d.path("hbeat.toml"), d.path("authkey"));
    let o = hbeat(
        &[
            "import",
            cf.to_str().unwrap(),
            res.to_str().unwrap(),
            keys.to_str().unwrap(),
            "--node",
            "ken3",
            "--address",
            "192.168.1.1",
            "--script-dir",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // What has no equivalent is named with its line.
    for (line, what) in [
        (37, "logfacility"),
        (173, "stonith"),
        (210, "watchdog"),
        (256, "respawn"),
        (262, "apiauth"),
    ] {
        let want = format!("{}:{line}: {what}: ", cf.display());
        assert!(err.contains(&want), "{want}\n{err}");
    }
    assert!(
        err.contains(&format!("{}:137: ", res.display())) && err.contains("broadcast"),
        "{err}"
    );
    assert!(
        err.contains("1 crc") || err.contains("crc: key 1 has no secret"),
        "{err}"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let toml = std::fs::read_to_string(&out).unwrap();
    for want in [
        "node = \"ken3\"",
        "keepalive = \"2s\"",
        "deadtime = \"30s\"",
        "warntime = \"10s\"",
        "initdead = \"2m\"",
        "serial = { device = \"/dev/ttyS0\", baud = 19200 }",
        "bcast = { dev = \"eth0\", port = 694 }",
        "mcast = { dev = \"eth0\", group = \"225.0.0.1:694\", ttl = 1 }",
        "udp = { bind = \"192.168.1.1:694\", peer = \"192.168.1.2:694\" }",
        "targets = [\"10.10.10.254\"]",
        "\"armed:fakeip hold 135.9.216.3/28 dev eth0\"",
    ] {
        assert!(toml.contains(want), "{want}\n{toml}");
    }
    let summary = check_passes(&out, &bin);
    assert!(
        summary.contains("node ken3, 1 peer(s), 4 link(s), 1 group(s), 2 resource(s)"),
        "{summary}"
    );
}

#[test]
fn debian_example_signing_with_crc_writes_no_key_and_check_says_so() {
    let d = TempDir::new("debian-crc");
    let bin = d.stubs(&["fakeip", "httpd"]);
    let [cf, res, keys] = debian_uncommented(&d, "auth 1");
    let (out, key) = (d.path("hbeat.toml"), d.path("authkey"));
    let o = hbeat(
        &[
            "import",
            cf.to_str().unwrap(),
            res.to_str().unwrap(),
            keys.to_str().unwrap(),
            "--node",
            "ken3",
            "--address",
            "192.168.1.1",
            "--script-dir",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{}:26: auth: key 1 signs", keys.display())),
        "{err}"
    );
    assert!(err.contains("no key file written"), "{err}");
    assert!(!key.exists());
    let o = hbeat(&["--config", out.to_str().unwrap(), "check"], Some(&bin));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("key_file"), "{}", text(&o.stderr));
}

fn import_pair(d: &TempDir, node: &str, address: &str, bin: &Path) -> (PathBuf, PathBuf, String) {
    let out = d.path(&format!("{node}.toml"));
    let key = d.path(&format!("{node}.key"));
    let o = hbeat(
        &[
            "import",
            fixture("lvs-pair/ha.cf").to_str().unwrap(),
            fixture("lvs-pair/haresources").to_str().unwrap(),
            fixture("lvs-pair/authkeys").to_str().unwrap(),
            "--node",
            node,
            "--address",
            address,
            "--script-dir",
            bin.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    (out, key, err)
}

#[test]
fn lvs_pair_converts_for_both_nodes_and_passes_check() {
    let d = TempDir::new("lvs-pair");
    let bin = d.stubs(&["fakeip", "LVSSyncDaemonSwap", "httpd"]);
    let (out1, key1, err1) = import_pair(&d, "node1", "192.0.2.11", &bin);
    let (out2, key2, _) = import_pair(&d, "node2", "192.0.2.12", &bin);
    let res = fixture("lvs-pair/haresources");
    assert!(
        err1.contains(&format!("{}:4: ldirectord::www: dropped", res.display()))
            && err1.contains("ldir import /etc/ha.d/www"),
        "{err1}"
    );
    let t1 = std::fs::read_to_string(&out1).unwrap();
    assert!(
        t1.contains("udp = { bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }"),
        "{t1}"
    );
    assert!(
        t1.contains("\"armed:fakeip hold 192.0.2.3/24 dev eth0\""),
        "{t1}"
    );
    assert!(
        t1.contains("serial = { device = \"/dev/ttyS0\", baud = 38400 }"),
        "{t1}"
    );
    assert!(t1.contains("auto_failback = false"), "{t1}");
    let t2 = std::fs::read_to_string(&out2).unwrap();
    assert!(
        t2.contains("udp = { bind = \"192.0.2.12:694\", peer = \"192.0.2.11:694\" }"),
        "{t2}"
    );
    // Both nodes get the same key file, and the same groups (the hash every heartbeat carries).
    assert_eq!(
        std::fs::read_to_string(&key1).unwrap(),
        std::fs::read_to_string(&key2).unwrap()
    );
    let s1 = check_passes(&out1, &bin);
    let s2 = check_passes(&out2, &bin);
    let hash = |s: &str| s.rsplit("groups hash ").next().unwrap().trim().to_owned();
    assert!(
        s1.contains("node node1, 1 peer(s), 3 link(s), 2 group(s), 4 resource(s)"),
        "{s1}"
    );
    assert_eq!(hash(&s1), hash(&s2));
}

#[test]
fn the_seed_line_without_prefix_and_nic_is_refused_by_check_until_filled_in() {
    let d = TempDir::new("seed");
    let bin = d.stubs(&["fakeip"]);
    let res = d.path("haresources");
    std::fs::write(&res, "node1 IPaddr::192.0.2.3 ldirectord::www\n").unwrap();
    let out = d.path("hbeat.toml");
    let key = d.path("authkey");
    let o = hbeat(
        &[
            "import",
            fixture("lvs-pair/ha.cf").to_str().unwrap(),
            res.to_str().unwrap(),
            fixture("lvs-pair/authkeys").to_str().unwrap(),
            "--node",
            "node1",
            "--address",
            "192.0.2.11",
            "--out",
            out.to_str().unwrap(),
            "--key-out",
            key.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("names no NIC and no prefix length"), "{err}");
    let c = hbeat(&["--config", out.to_str().unwrap(), "check"], Some(&bin));
    assert_eq!(c.status.code(), Some(2));
    let cerr = text(&c.stderr);
    assert!(cerr.contains("`FIXME` not found"), "{cerr}");
    // Filled in as the note says: accepted.
    let toml = std::fs::read_to_string(&out).unwrap().replace(
        "FIXME armed:fakeip hold 192.0.2.3/PREFIX dev NIC",
        "armed:fakeip hold 192.0.2.3/24 dev eth0",
    );
    std::fs::write(&out, toml).unwrap();
    check_passes(&out, &bin);
}

#[test]
fn never_overwrites_and_prints_without_out() {
    let d = TempDir::new("overwrite");
    let out = d.path("hbeat.toml");
    std::fs::write(&out, "# mine\n").unwrap();
    let key = d.path("authkey");
    let args = |out: Option<&Path>| {
        let mut a: Vec<String> = vec![
            "import".into(),
            fixture("lvs-pair/ha.cf").display().to_string(),
            fixture("lvs-pair/haresources").display().to_string(),
            fixture("lvs-pair/authkeys").display().to_string(),
            "--node".into(),
            "node1".into(),
            "--address".into(),
            "192.0.2.11".into(),
            "--key-out".into(),
            key.display().to_string(),
        ];
        if let Some(o) = out {
            a.extend(["--out".into(), o.display().to_string()]);
        }
        a
    };
    let a = args(Some(&out));
    let o = hbeat(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("exists; not overwritten"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    assert!(
        !key.exists(),
        "nothing is written when one file is in the way"
    );
    // Without --out: the TOML on stdout, the key still only into its file.
    let a = args(None);
    let o = hbeat(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.starts_with("# hbeat.toml converted by `hbeat import`"),
        "{stdout}"
    );
    let secret = std::fs::read_to_string(&key).unwrap();
    let line = secret.lines().find(|l| l.starts_with("2 ")).unwrap();
    assert!(!stdout.contains(line), "the key is never printed");
}

#[test]
fn converting_on_this_host_finds_its_own_address() {
    let host = nix::unistd::gethostname()
        .expect("host name")
        .into_string()
        .unwrap()
        .to_ascii_lowercase();
    let d = TempDir::new("host");
    let cf = d.path("ha.cf");
    std::fs::write(
        &cf,
        format!("node {host}\nnode peer\nucast lo 127.0.0.1\nucast lo 192.0.2.12\n"),
    )
    .unwrap();
    let res = d.path("haresources");
    std::fs::write(&res, "").unwrap();
    let keys = d.path("authkeys");
    std::fs::write(&keys, "auth 1\n1 sha1 x\n").unwrap();
    let o = hbeat(
        &[
            "import",
            cf.to_str().unwrap(),
            res.to_str().unwrap(),
            keys.to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        stdout.contains("udp = { bind = \"127.0.0.1:694\", peer = \"192.0.2.12:694\" }"),
        "{stdout}"
    );
}

#[test]
fn an_unreadable_file_exits_2_naming_it() {
    let o = hbeat(
        &[
            "import",
            "/nonexistent/ha.cf",
            "/nonexistent/haresources",
            "/nonexistent/authkeys",
            "--node",
            "a",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "hbeat: /nonexistent/ha.cf: no such file or directory\n"
    );
}
