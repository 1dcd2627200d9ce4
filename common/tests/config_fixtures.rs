//! `common::config` against the fixtures in `tests/fixtures/` (at the workspace root), with a
//! sample schema that uses every value type, plus a no-panic test over mutated inputs.
//!
//! Each `tests/fixtures/bad/NAME.toml` has its exact expected output in `NAME.err`, with paths
//! relative to the workspace root. After a deliberate change of messages, rewrite the `.err` files
//! with `UPDATE_FIXTURES=1 cargo test -p common --test config_fixtures` and review the diff.

use std::net::IpAddr as StdIpAddr;
use std::path::{Path, PathBuf};

use common::config::{
    self, Cidr, ConfigError, ConfigErrors, Duration, IfName, IpAddr, SocketAddr, Validate,
    Validator,
};
use serde::Deserialize;
use toml::Spanned;

// ---------------------------------------------------------------------------------------------
// The sample schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    name: String,
    interface: Spanned<IfName>,
    address: Spanned<Cidr>,
    #[serde(default)]
    peers: Vec<Spanned<IpAddr>>,
    check_interval: Spanned<Duration>,
    check_timeout: Spanned<Duration>,
    #[serde(default, rename = "virtual")]
    virtuals: Vec<Virtual>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Virtual {
    listen: Spanned<SocketAddr>,
    #[serde(default)]
    scheduler: Scheduler,
    /// A probe spec as ldir and monitor embed it (`kind` and the kind's fields, flattened).
    #[serde(default)]
    check: Option<common::probe::Spec>,
    #[serde(default)]
    real: Vec<Real>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scheduler {
    #[default]
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sh,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Real {
    address: Spanned<SocketAddr>,
    #[serde(default = "default_weight")]
    weight: u16,
}

fn default_weight() -> u16 {
    1
}

impl Validate for Sample {
    fn validate(&self, v: &mut Validator) {
        if self.check_timeout.get_ref() >= self.check_interval.get_ref() {
            v.error(
                "check_timeout",
                &self.check_timeout,
                format_args!(
                    "must be shorter than check_interval ({}), got {}",
                    self.check_interval.get_ref(),
                    self.check_timeout.get_ref()
                ),
            );
        }
        let own = self.address.get_ref().addr();
        v.field("peers", |v| {
            for (i, peer) in self.peers.iter().enumerate() {
                if peer.get_ref().get() == own {
                    v.index(i, |v| {
                        v.error("", peer, "a peer cannot have this director's own address");
                    });
                }
            }
        });
        v.nested("virtual", &self.virtuals);
    }
}

impl Validate for Virtual {
    fn validate(&self, v: &mut Validator) {
        let listen = self.listen.get_ref();
        if let Some(check) = &self.check {
            v.nested("check", check);
        }
        if self.real.is_empty() {
            v.error(
                "real",
                &self.listen,
                "a virtual service needs at least one real server",
            );
        }
        v.field("real", |v| {
            for (i, real) in self.real.iter().enumerate() {
                let addr = real.address.get_ref();
                v.index(i, |v| {
                    if addr.ip().is_ipv4() != listen.ip().is_ipv4() {
                        v.error(
                            "address",
                            &real.address,
                            format_args!(
                                "{addr} and the virtual service {listen} differ in address family"
                            ),
                        );
                    }
                    let earlier = self.real[..i]
                        .iter()
                        .position(|r| r.address.get_ref() == addr);
                    if let Some(first) = earlier {
                        v.error(
                            "address",
                            &real.address,
                            format_args!("{addr} is already real[{first}]"),
                        );
                    }
                });
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Harness

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("common/ has a parent")
        .to_owned()
}

fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// The errors as displayed, with paths relative to the workspace root.
fn render(errors: &ConfigErrors) -> String {
    let prefix = format!("{}/", workspace_root().display());
    errors
        .to_string()
        .lines()
        .map(|line| line.strip_prefix(&prefix).unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `*.toml` files of `dir`, sorted.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    files
}

/// Compares `actual` with the content of `expected_file`; returns a diff-friendly report on
/// mismatch, or rewrites the file when `UPDATE_FIXTURES` is set.
fn check_expected(expected_file: &Path, actual: &str) -> Option<String> {
    let shown = expected_file
        .strip_prefix(workspace_root())
        .unwrap_or(expected_file)
        .display()
        .to_string();
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(expected_file, format!("{actual}\n")).unwrap();
        return None;
    }
    let expected = match std::fs::read_to_string(expected_file) {
        Ok(text) => text,
        Err(e) => {
            return Some(format!(
                "{shown}: cannot read: {e}\nactual output:\n{actual}\n"
            ));
        }
    };
    let expected = expected.strip_suffix('\n').unwrap_or(&expected);
    if expected == actual {
        return None;
    }
    let mut report = format!("{shown}: output differs\n");
    let (exp, act): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..exp.len().max(act.len()) {
        match (exp.get(i), act.get(i)) {
            (Some(e), Some(a)) if e == a => report.push_str(&format!("  {e}\n")),
            (e, a) => {
                if let Some(e) = e {
                    report.push_str(&format!("- {e}\n"));
                }
                if let Some(a) = a {
                    report.push_str(&format!("+ {a}\n"));
                }
            }
        }
    }
    Some(report)
}

fn assert_no_mismatch(mismatches: Vec<String>) {
    assert!(
        mismatches.is_empty(),
        "{} fixture(s) differ (- expected, + actual):\n\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Fixture tests

#[test]
fn bad_fixtures_report_exact_messages() {
    let dir = fixtures().join("bad");
    let files = toml_files(&dir);
    assert!(
        files.len() >= 12,
        "expected the bad fixtures in {}",
        dir.display()
    );
    let mut mismatches = Vec::new();
    for file in &files {
        let actual = match config::load_file::<Sample>(file) {
            Ok(value) => format!("unexpectedly loaded: {value:?}"),
            Err(errors) => render(&errors),
        };
        if let Some(report) = check_expected(&file.with_extension("err"), &actual) {
            mismatches.push(report);
        }
    }
    // Every expectation has its fixture.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "err") && !path.with_extension("toml").exists() {
            mismatches.push(format!("{}: no matching .toml fixture\n", path.display()));
        }
    }
    assert_no_mismatch(mismatches);
}

#[test]
fn semantic_checks_report_every_problem_of_a_file() {
    let errors = config::load_file::<Sample>(fixtures().join("bad/semantic.toml")).unwrap_err();
    assert_eq!(errors.len(), 4, "{errors}");
    assert!(
        errors
            .errors()
            .iter()
            .all(|e| matches!(e, ConfigError::Check { .. }))
    );
    let fields: Vec<_> = errors
        .errors()
        .iter()
        .filter_map(ConfigError::field)
        .collect();
    assert_eq!(
        fields,
        [
            "peers[1]",
            "check_timeout",
            "virtual[0].real[1].address",
            "virtual[0].real[2].address"
        ]
    );
}

#[test]
fn bad_directory_reports_every_file_in_name_order() {
    // The bad fixtures as one directory: the concatenation of their expectations.
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        return; // The expectations are being rewritten by the test above.
    }
    let dir = fixtures().join("bad");
    let errors = config::load_dir::<Sample>(&dir).unwrap_err();
    let expected: Vec<String> = toml_files(&dir)
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f.with_extension("err")).unwrap();
            text.trim_end_matches('\n').to_owned()
        })
        .collect();
    assert_eq!(render(&errors), expected.join("\n"));
}

#[test]
fn mixed_directory_reports_all_bad_files_and_ignores_others() {
    let errors = config::load_dir::<Sample>(fixtures().join("dir")).unwrap_err();
    let files: std::collections::BTreeSet<_> = errors
        .errors()
        .iter()
        .filter_map(|e| e.location().map(|l| l.file.clone()))
        .collect();
    assert_eq!(files.len(), 3, "three bad files:\n{errors}");
    assert_no_mismatch(
        check_expected(&fixtures().join("dir.err"), &render(&errors))
            .into_iter()
            .collect(),
    );
}

#[test]
fn good_fixtures_load() {
    let dir = fixtures().join("good");
    let loaded = config::load_dir::<Sample>(&dir).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = loaded
        .iter()
        .map(|(path, _)| path.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["full.toml", "inline.toml", "minimal.toml"]);

    let full = &loaded[0].1;
    assert_eq!(full.name, "web");
    assert_eq!(full.interface.get_ref().as_str(), "eth0");
    assert_eq!(full.address.get_ref().to_string(), "192.0.2.100/24");
    assert_eq!(full.peers.len(), 2);
    assert_eq!(
        full.check_interval.get_ref().as_std(),
        std::time::Duration::from_secs(2)
    );
    assert_eq!(full.virtuals.len(), 2);
    assert_eq!(full.virtuals[0].scheduler, Scheduler::Wrr);
    let reals = &full.virtuals[0].real;
    assert_eq!((reals[0].weight, reals[1].weight), (10, 1));
    assert_eq!(
        full.virtuals[1].listen.get_ref().to_string(),
        "[2001:db8::100]:443"
    );
    assert_eq!(full.virtuals[1].scheduler, Scheduler::Rr);

    let inline = &loaded[1].1;
    assert_eq!(inline.virtuals[0].scheduler, Scheduler::Sh);
    assert_eq!(inline.virtuals[0].real[1].weight, 65535);

    let minimal = config::load_file::<Sample>(dir.join("minimal.toml")).unwrap();
    assert_eq!(minimal.check_timeout.get_ref().to_string(), "1s500ms");
    assert!(minimal.virtuals.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Read errors

/// A fresh, empty directory under the system temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("common-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn missing_paths_are_named() {
    let missing = fixtures().join("no-such-thing");
    let shown = missing.display();
    let e = config::load_file::<Sample>(&missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{shown}: cannot read: no such file or directory")
    );
    let e = config::load_dir::<Sample>(&missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{shown}: cannot list directory: no such file or directory")
    );
    let file = fixtures().join("good/minimal.toml");
    let e = config::load_dir::<Sample>(&file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: cannot list directory: not a directory", file.display())
    );
    let e = config::load_file::<Sample>(fixtures().join("good")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read: is a directory",
            fixtures().join("good").display()
        )
    );
}

#[test]
fn directory_without_toml_files_is_an_error() {
    let dir = temp_dir("empty");
    let e = config::load_dir::<Sample>(&dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: no *.toml files in this directory", dir.display())
    );
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    std::fs::create_dir(dir.join("sub.toml")).unwrap();
    let e = config::load_dir::<Sample>(&dir).unwrap_err();
    assert!(matches!(e.errors(), [ConfigError::NoFiles { .. }]), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_utf8_is_located() {
    let dir = temp_dir("utf8");
    let file = dir.join("latin1.toml");
    std::fs::write(&file, b"name = \"web\"\ninterface = \"caf\xe9\"\n").unwrap();
    let e = config::load_file::<Sample>(&file).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:17: not valid UTF-8 (byte 0xe9); TOML files must be UTF-8",
            file.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn unreadable_file_names_the_os_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("perm");
    let file = dir.join("secret.toml");
    std::fs::write(&file, "name = \"x\"\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    // root (CAP_DAC_OVERRIDE) reads it anyway; then there is nothing to test.
    if std::fs::read(&file).is_err() {
        let e = config::load_file::<Sample>(&file).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: cannot read: permission denied", file.display())
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parse_str_uses_the_given_name_and_counts_columns_in_characters() {
    let text = "name = \"wéb\" ; interface = \"eth0\"\n";
    let e = config::parse_str::<Sample>("über.toml", text).unwrap_err();
    // The `;` is the 14th character but the 15th byte.
    assert_eq!(e.to_string().split(": ").next().unwrap(), "über.toml:1:14");
}

#[test]
fn plain_toml_tables_load_without_checks() {
    let table: toml::Table = config::parse_str("t.toml", "a = 1\n[b]\nc = \"d\"\n").unwrap();
    assert_eq!(table["b"]["c"].as_str(), Some("d"));
}

// ---------------------------------------------------------------------------------------------
// No panic on any input

/// A fixed xorshift generator: the same inputs on every run, no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that tend to break parsers, values and the schema.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "\\",
    "\\u0000",
    "\\UFFFFFFFF",
    "\u{feff}",
    "é",
    "\u{10ffff}",
    "\0",
    "-",
    "+",
    "-1",
    "0",
    "65536",
    "1e999",
    "nan",
    "-inf",
    "0x",
    "1_0",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "true",
    "[]",
    "{}",
    "\"2s\"",
    "\"-1s\"",
    "\"1.5ns\"",
    "\"999999999999999999999h\"",
    "ms",
    "µs",
    "/",
    "/129",
    ":",
    "::",
    "[::]",
    "2001:db8::1",
    "192.0.2.300",
    "%eth0",
    "[[virtual]]",
    "[[virtual.real]]",
    "[virtual]",
    "virtual",
    "real",
    "weight",
    "address",
    "listen",
    "peers",
    "interface",
    "check_timeout",
    "scheduler",
    "a.b.c",
    "\"a\nb\"",
];

fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(6) {
            0 => {
                let end = (at + rng.below(8) + 1).min(chars.len());
                chars.drain(at..end);
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            3 => {
                let end = (at + rng.below(40) + 1).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                let to = rng.below(chars.len() + 1);
                chars.splice(to..to, copy);
            }
            4 => chars.truncate(at),
            _ => {
                if at < chars.len() {
                    chars[at] = char::from_u32(rng.below(0x80) as u32).unwrap_or('?');
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn assert_well_formed(name: &str, input: &str, errors: &ConfigErrors) {
    assert!(!errors.is_empty(), "empty error list for {input:?}");
    let lines = input.split('\n').count();
    for error in errors {
        let text = error.to_string();
        assert!(
            !text.contains('\n'),
            "multi-line message {text:?} for {input:?}"
        );
        assert!(text.starts_with(name), "{text:?} for {input:?}");
        if let Some(position) = error.location().and_then(|l| l.position) {
            assert!(
                position.line >= 1 && position.line <= lines && position.column >= 1,
                "{text:?} out of range for {input:?}"
            );
        }
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let mut seeds: Vec<String> = ["good", "bad", "dir"]
        .iter()
        .flat_map(|d| toml_files(&fixtures().join(d)))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    seeds.push(String::new());
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut outcomes = [0usize; 2];
    for round in 0..20_000 {
        let seed = &seeds[round % seeds.len()];
        let input = mutate(&mut rng, seed);
        match config::parse_str::<Sample>("fuzz.toml", &input) {
            Ok(_) => outcomes[0] += 1,
            Err(errors) => {
                outcomes[1] += 1;
                // `SHOW_FUZZ=1 … -- --nocapture` prints the messages, to review their wording.
                if std::env::var_os("SHOW_FUZZ").is_some() {
                    for e in &errors {
                        eprintln!("FUZZ {e}");
                    }
                }
                assert_well_formed("fuzz.toml", &input, &errors);
            }
        }
        if let Err(errors) = config::parse_str::<toml::Table>("fuzz.toml", &input) {
            assert_well_formed("fuzz.toml", &input, &errors);
        }
        // The value parsers on their own, with the mutated text as a value.
        let value = mutate(
            &mut rng,
            ["2s", "192.0.2.1", "2001:db8::1/64", "[::1]:80", "eth0"][round % 5],
        );
        let _ = value.parse::<Duration>();
        let _ = value.parse::<IpAddr>();
        let _ = value.parse::<Cidr>();
        let _ = value.parse::<SocketAddr>();
        let _ = value.parse::<IfName>();
    }
    // Both outcomes occur, so the mutations neither always break nor never break the input.
    assert!(
        outcomes[0] > 20 && outcomes[1] > 1000,
        "ok/err: {outcomes:?}"
    );
}

#[test]
fn value_types_round_trip_through_display() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let v4 = StdIpAddr::from(std::net::Ipv4Addr::from(rng.next() as u32));
        let v6 = StdIpAddr::from(std::net::Ipv6Addr::from(
            (u128::from(rng.next()) << 64) | u128::from(rng.next()),
        ));
        for ip in [v4, v6] {
            let max = if ip.is_ipv4() { 33 } else { 129 };
            let cidr = Cidr::new(ip, rng.below(max) as u8).unwrap();
            assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr));
            let sa = SocketAddr::from(std::net::SocketAddr::new(ip, rng.next() as u16));
            assert_eq!(sa.to_string().parse::<SocketAddr>(), Ok(sa));
            let addr = IpAddr::from(ip);
            assert_eq!(addr.to_string().parse::<IpAddr>(), Ok(addr));
        }
    }
}
