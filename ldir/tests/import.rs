//! `ldir import` end to end: ldirectord configurations (Debian's example and one using every
//! directive) converted, written and read back by ldir's own loader; the command-line edge
//! (`run_import`): output format, warnings, exit codes, refusing to overwrite.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::daemon::Exit;
use ldir::import::{Conversion, convert, run_import};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ldirectord")
        .join(name)
}

/// A fresh directory under the target's temp space, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ldir-import-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn convert_fixture(name: &str) -> Conversion {
    convert(&std::fs::read_to_string(fixture(name)).unwrap())
}

/// Writes the conversion into a directory and loads it with `ldir::config::load`.
fn load_converted(tag: &str, conv: &Conversion) -> ldir::config::Config {
    let dir = TempDir::new(tag);
    for f in &conv.files {
        std::fs::write(dir.0.join(&f.name), &f.text).unwrap();
    }
    match ldir::config::load(&dir.0) {
        Ok(c) => c,
        Err(errors) => {
            let all: Vec<String> = errors.errors().iter().map(|e| e.to_string()).collect();
            let texts: Vec<String> = conv
                .files
                .iter()
                .map(|f| format!("==> {} <==\n{}", f.name, f.text))
                .collect();
            panic!(
                "ldir check refuses the converted files:\n{}\n\n{}",
                all.join("\n"),
                texts.join("\n")
            );
        }
    }
}

#[test]
fn debian_example_converts_into_files_ldir_accepts() {
    let conv = convert_fixture("debian-example.cf");
    assert!(conv.usable);
    let warnings: Vec<String> = conv.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "line 31: servicename: ldir's names are one word and unique: \"Web Site\" is named \"Web-Site\""
        ]
    );
    let names: Vec<&str> = conv.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ldir.toml", "Web-Site.toml"]);
    let config = load_converted("debian", &conv);
    assert_eq!(config.virtuals.len(), 1);
    let v = &config.virtuals[0];
    assert_eq!(v.reals.len(), 3);
    assert_eq!(v.name, "Web-Site");
    assert!(!v.quiescent, "ldirectord's quiescent=no is kept");
    let probe = v.reals[0].probe.as_ref().expect("an http probe");
    assert_eq!(probe.addr().unwrap().to_string(), "192.168.6.2:80");
    let common::probe::Check::Http(h) = &probe.spec.check else {
        panic!("{probe:?}")
    };
    assert_eq!(h.path, "/index.html");
    assert_eq!(h.host.as_deref(), Some("www.x.y.z"));
    assert_eq!(h.regex.as_ref().unwrap().as_str(), "Test Page");
    assert_eq!(
        probe.spec.timeout.as_std(),
        std::time::Duration::from_secs(3)
    );
}

#[test]
fn every_directive_converts_into_files_ldir_accepts() {
    let conv = convert_fixture("every-directive.cf");
    assert!(conv.usable);
    // 30 virtual blocks, all converted.
    assert_eq!(
        conv.files.len(),
        1 + 30,
        "{:?}",
        conv.files.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    let config = load_converted("every", &conv);
    assert_eq!(config.virtuals.len(), 30);
    // Directives without an equivalent are each named with their line.
    let text = std::fs::read_to_string(fixture("every-directive.cf")).unwrap();
    for directive in ["callback", "logfile", "smtp", "execute", "monitorfile"] {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{directive}=")))
            .unwrap()
            + 1;
        assert!(
            conv.warnings
                .iter()
                .any(|w| w.line == line && w.directive == directive),
            "{directive} at line {line}: {:?}",
            conv.warnings
        );
    }
    // Files holding a password are marked secret.
    for f in &conv.files {
        assert_eq!(
            f.secret,
            f.text.contains("password =") || f.text.contains("secret ="),
            "{}",
            f.name
        );
    }
}

#[test]
fn prints_every_file_and_warns_on_stderr_with_file_and_line() {
    let path = fixture("every-directive.cf");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run_import(&path, None, &mut out, &mut err), Exit::Ok);
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(out.starts_with("# ==> ldir.toml <==\n"), "{out}");
    assert!(out.contains("\n# ==> web.toml <==\n"), "{out}");
    let line = format!(
        "ldir: {}:12: callback: no equivalent; ldir re-reads its files itself",
        path.display()
    );
    assert!(err.contains(&line), "{err}");
    // Each file's text is exactly what the conversion made.
    let conv = convert_fixture("every-directive.cf");
    for f in &conv.files {
        assert!(out.contains(&format!("# ==> {} <==\n{}", f.name, f.text)));
    }
}

#[test]
fn writes_into_a_directory_and_never_overwrites() {
    let dir = TempDir::new("out");
    let out = dir.0.join("etc-ldir");
    let path = fixture("every-directive.cf");
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(run_import(&path, Some(&out), &mut o, &mut e), Exit::Ok);
    assert!(o.is_empty());
    let conv = convert_fixture("every-directive.cf");
    for f in &conv.files {
        let p = out.join(&f.name);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), f.text);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode,
            if f.secret { 0o600 } else { 0o644 } & !umask(),
            "{}",
            f.name
        );
    }
    ldir::config::load(&out).expect("the written directory loads");
    // Again into the same directory: refused before anything is written, files untouched.
    std::fs::write(out.join("web.toml"), "# mine\n").unwrap();
    std::fs::remove_file(out.join("ldir.toml")).unwrap();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(run_import(&path, Some(&out), &mut o, &mut e), Exit::Usage);
    let e = String::from_utf8(e).unwrap();
    assert!(e.contains("exists; not overwritten"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("web.toml")).unwrap(),
        "# mine\n"
    );
    assert!(
        !out.join("ldir.toml").exists(),
        "nothing is written when one file is in the way"
    );
}

fn umask() -> u32 {
    // The process umask applies to created files; read it back without changing it for long.
    let dir = TempDir::new("umask");
    let p = dir.0.join("probe");
    std::fs::write(&p, "").unwrap();
    let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    // std creates files 0o666 & !umask.
    0o666 & !m
}

#[test]
fn nothing_usable_exits_2_and_writes_nothing() {
    let dir = TempDir::new("unusable");
    let cf = dir.0.join("ldirectord.cf");
    std::fs::write(
        &cf,
        "checktimeout=3\nvirtual=web.example.org:80\n\treal=192.0.2.1:80 gate\n",
    )
    .unwrap();
    let out = dir.0.join("out");
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(run_import(&cf, Some(&out), &mut o, &mut e), Exit::Usage);
    let e = String::from_utf8(e).unwrap();
    assert!(
        e.contains(":2: virtual: \"web.example.org\" is a host name"),
        "{e}"
    );
    assert!(e.contains("nothing usable"), "{e}");
    assert!(!out.exists());
}

#[test]
fn an_unreadable_file_exits_2_naming_it() {
    let path = Path::new("/nonexistent/ldirectord.cf");
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(run_import(path, None, &mut o, &mut e), Exit::Usage);
    let e = String::from_utf8(e).unwrap();
    assert_eq!(
        e,
        "ldir: /nonexistent/ldirectord.cf: no such file or directory\n"
    );
}

/// The corners the fixtures do not reach, through ldir's loader as well.
#[test]
fn corner_cases_convert_into_files_ldir_accepts() {
    let text = "\
fallbackcommand=/usr/bin/logger -t ld | cat
emailalertstatus=none
virtual=7
\treal=192.0.2.70 gate
\tchecktype=external
\tcheckcommand=/bin/echo
\temailalert=\"fw@example.org\"
\temailalertstatus=running
virtual=9
\treal=192.0.2.71 gate
\tchecktype=connect
virtual=192.0.2.100:5000
\treal=192.0.2.1:5000 gate 1 \"HELLO\\n\", \"^WORLD\"
\treal=192.0.2.2:5000 gate 1 \"PING\", \"\"
\tservice=simpletcp
\trequest=\"PING\\n\"
\treceive=\"^PONG\"
\tchecktype=on
\tcheckinterval=1
\tfailurecount=2
virtual=192.0.2.100:21
\treal=192.0.2.3:21 gate 1 \"other.txt\", \"fine\"
\tservice=ftp
\trequest=\"health.txt\"
virtual=192.0.2.100:53
\treal=192.0.2.4:53 gate 1 \"192.0.2.9\", \"x\"
\treal=192.0.2.5:53 gate 1 \"www.example.org\", \"x\"
\trequest=\"example.org\"
virtual=192.0.2.100:5001
\treal=192.0.2.6 gate
\tservice=simpletcp
virtual6=[2001:db8::100]:80
\treal6=[2001:db8::1]->[2001:db8::ff]:8080 masq 2 \"/v6\", \"ok\"
\thttpmethod=HEAD
\treceive=\"never\"
\temailalertfreq=5
";
    let conv = convert(text);
    assert!(conv.usable);
    let config = load_converted("corners", &conv);
    assert_eq!(config.virtuals.len(), 7);
    let by_name = |n: &str| {
        config
            .virtuals
            .iter()
            .find(|v| v.name == n)
            .unwrap_or_else(|| {
                panic!(
                    "{n}: {:?}",
                    config.virtuals.iter().map(|v| &v.name).collect::<Vec<_>>()
                )
            })
    };
    // emailalertstatus=none: no mail for the virtual that has none of its own.
    let fw = by_name("fwmark-7");
    let a = fw.alert.as_ref().expect("its own emailalert");
    assert_eq!(a.to, "fw@example.org");
    assert!(a.on.down && a.on.up && a.on.fallback);
    // The v6 range expands to 255 reals, each checked on its own port.
    let v6 = by_name("2001-db8--100-80");
    assert_eq!(v6.reals.len(), 255);
    assert_eq!(v6.reals[0].dest.addr.to_string(), "[2001:db8::1]:8080");
    for (line, directive, words) in [
        (1, "fallbackcommand", "shell syntax"),
        (8, "emailalertstatus", "not by the daemon's state"),
        (11, "checktype", "not valid"),
        (
            13,
            "real",
            "a type = \"on\" check has no request or receive to override",
        ),
        (26, "real", "cannot set the PTR record type"),
        (33, "real6", "ldirectord refuses IPv6 ranges"),
        (33, "real6", "a HEAD request has no body"),
        (35, "receive", "a HEAD answer has no body"),
        (36, "emailalertfreq", "without an emailalert"),
        (2, "emailalertstatus", "without a global emailalert"),
    ] {
        assert!(
            conv.warnings
                .iter()
                .any(|w| w.line == line && w.directive == directive && w.message.contains(words)),
            "line {line}: {directive}: {words}: {:#?}",
            conv.warnings
        );
    }
}
