//! Who may do what on monitor's control socket (DESIGN.md): with `read_group` set, a member may
//! read the status but not acknowledge or disable; root may. Needs root (to call as another
//! user); `tests/lab all` runs it with the other `*_root` tests.

mod daemon_util;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use daemon_util::*;

#[test]
fn a_reader_may_read_but_not_change_and_root_may() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "run as root: cargo test --test control_root (tests/lab all does)"
    );
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("the group nogroup (Debian's base-passwd) is missing");
    let s = Scratch::new("access");
    // The caller must reach the socket in the scratch directory.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let port = closed_port();
    let config = s.config(&format!(
        "read_group = \"nogroup\"\n[hostgroup]\ng = [\"127.0.0.1\"]\n[[watch]]\ngroup = \"g\"\n[[watch.service]]\nname = \"s\"\nprobe = {{ type = \"tcp\", port = {port} }}\ninterval = \"100ms\"\n"
    ));
    let mut d = Daemon::start(&s, &config);
    d.wait("g/s fails", Duration::from_secs(20), |v| {
        is(v, "change", "g/s") && v["to"] == "fail"
    });
    let as_nobody = |args: &[&str]| {
        monitor()
            .args(args)
            .arg("--socket")
            .arg(s.socket())
            .uid(65534)
            .gid(nogroup.gid.as_raw())
            .output()
            .unwrap()
    };
    let status = as_nobody(&["status"]);
    assert!(status.status.success(), "{status:?}");
    assert!(text(&status.stdout).starts_with("g/s  FAIL"), "{status:?}");
    for args in [
        &["ack", "g/s", "mine now"][..],
        &["disable", "g"],
        &["enable", "g"],
    ] {
        let out = as_nobody(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {out:?}");
        assert!(
            text(&out.stderr).contains("permission denied: uid 65534 is not root"),
            "{out:?}"
        );
    }
    let status = status_json(&s);
    assert_eq!(status["services"][0]["acked"], serde_json::Value::Null);
    assert_eq!(status["services"][0]["disabled"], false);
    let log = d.log();
    assert!(
        log.contains("65534"),
        "refusals are logged with the caller: {log}"
    );
    // Root may.
    let ack = client(&s, &["ack", "g/s", "mine now"]);
    assert!(ack.status.success(), "{ack:?}");
    assert_eq!(status_json(&s)["services"][0]["acked"], "mine now");
    let (status, log) = d.stop();
    assert!(status.success(), "{log}");
    s.remove();
}
