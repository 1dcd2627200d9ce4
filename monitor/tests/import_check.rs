//! `monitor import` and `monitor check`, the binary: Debian's example mon.cf converted, the output
//! passing the check; an existing file never overwritten; a bad file refused with exit 2.

use std::path::PathBuf;
use std::process::Command;

fn monitor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("monitor-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn debians_mon_cf_imports_and_passes_the_check() {
    let mon_cf = std::path::Path::new("/etc/mon/mon.cf");
    assert!(
        mon_cf.exists(),
        "Debian's example mon.cf is missing: apt-get install mon (tests/lab deps installs it)"
    );
    let out = tmp("import.toml");
    let r = monitor()
        .args(["import", "/etc/mon/mon.cf", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("a trap service has no equivalent"),
        "{stderr}"
    );
    let r = monitor()
        .args(["check", "--config"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("{}: ok, 3 service(s) in 1 group(s)\n", out.display())
    );
    // Never overwritten.
    let before = std::fs::read(&out).unwrap();
    let r = monitor()
        .args(["import", "/etc/mon/mon.cf", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read(&out).unwrap(), before);
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn check_refuses_a_bad_file_with_every_problem() {
    let bad = tmp("bad.toml");
    std::fs::write(
        &bad,
        "[hostgroup]\nweb = [\"192.0.2.13\"]\n[[watch]]\ngroup = \"wbe\"\n[[watch.service]]\nname = \"http\"\nprobe = { type = \"htp\" }\n",
    )
    .unwrap();
    let r = monitor()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        e.contains(":4:9: watch[0].group: no [hostgroup] \"wbe\"; did you mean \"web\"?"),
        "{e}"
    );
    assert!(
        e.contains("watch[0].service[0].probe.type: unknown value `htp`"),
        "{e}"
    );
    std::fs::remove_file(&bad).unwrap();
}
