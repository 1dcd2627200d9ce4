//! `hbeat check` as a user runs it: the binary, a config file, exit codes and messages.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A valid key file's text (see `hbeat::keys`).
const KEY: &str = "1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("hbeat-check-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pair example's shape with paths inside `dir`.
fn config(dir: &Dir, key: &Path, resources: &[String]) -> PathBuf {
    config_with(dir, key, resources, "")
}

fn config_with(dir: &Dir, key: &Path, resources: &[String], extra: &str) -> PathBuf {
    let resources: Vec<String> = resources.iter().map(|r| format!("{r:?}")).collect();
    let text = format!(
        "node = \"lb1\"\ncluster = \"lb\"\nkey_file = {key:?}\n{extra}\
         keepalive = \"20ms\"\nwarntime = \"60ms\"\ndeadtime = \"100ms\"\ninitdead = \"2s\"\n\
         [[peer]]\nname = \"lb2\"\n\
         [[link]]\nudp = {{ bind = \"192.0.2.11:694\", peer = \"192.0.2.12:694\" }}\n\
         [[group]]\nname = \"web\"\npreferred = \"lb1\"\nresources = [{}]\n",
        resources.join(", ")
    );
    dir.file("hbeat.toml", &text, 0o644)
}

fn check(config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hbeat"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run hbeat");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_config_passes() {
    let dir = Dir::new("good");
    let key = dir.file("authkey", KEY, 0o600);
    let script = dir.file("ldir-sync", "#!/bin/sh\nexit 0\n", 0o755);
    let path = config(
        &dir,
        &key,
        &[
            "sleep 1000".into(),
            format!("script:{}::master", script.display()),
        ],
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains(": ok, node lb1, 1 peer(s), 1 link(s), 1 group(s), 2 resource(s)"),
        "{out}"
    );
    // A read-only key (0400) is fine too.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(check(&path).0, 0);
}

#[test]
fn a_resource_that_cannot_run_is_caught() {
    let dir = Dir::new("resources");
    let key = dir.file("authkey", KEY, 0o600);
    let plain = dir.file("ldir-sync", "#!/bin/sh\nexit 0\n", 0o644);
    let path = config(
        &dir,
        &key,
        &[
            "hbeat-no-such-program hold 192.0.2.100/24".into(),
            format!("script:{}::master", plain.display()),
        ],
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(
            "group \"web\": resource 0 (`hbeat-no-such-program hold 192.0.2.100/24`): \
             `hbeat-no-such-program` not found in PATH ("
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "group \"web\": resource 1 (`script:{p}::master`): {p} is not executable (mode 0644); chmod +x it",
            p = plain.display()
        )),
        "{err}"
    );
    assert!(err.contains("hbeat: 2 problem(s)"), "{err}");
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = Dir::new("key");
    let key = dir.file("authkey", KEY, 0o644);
    let path = config(&dir, &key, &["sleep 1000".into()]);
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "key_file: {k}: the key file has mode 0644; it must be 0600 or 0400",
            k = key.display()
        )),
        "{err}"
    );
    // The contents are checked too: empty, and a duplicate id.
    for (text, wanted) in [
        ("# no key yet\n".to_string(), "the key file holds no key"),
        (
            format!("{KEY}{KEY}"),
            ":2:1: key id 1 is listed twice (first at line 1)",
        ),
    ] {
        std::fs::write(&key, text).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (code, _, err) = check(&path);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(wanted), "missing {wanted:?} in:\n{err}");
    }
    std::fs::remove_file(&key).unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key_file: ") && err.contains("cannot read the key file"),
        "{err}"
    );
}

#[test]
fn config_errors_are_all_reported_with_exit_2() {
    let dir = Dir::new("config");
    let path = dir.file(
        "hbeat.toml",
        "cluster = \"lb\"\nnode = \"lb1\"\n[[peer]]\nname = \"lb1\"\n[[group]]\nname = \"web\"\npreferred = \"lb3\"\nresources = []\n",
        0o644,
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    let p = path.display();
    for wanted in [
        format!("hbeat: {p}:4:8: peer[0].name: node \"lb1\" is this node's own name"),
        format!("hbeat: {p}:7:13: group[0].preferred: unknown node \"lb3\""),
        format!("hbeat: {p}:8:13: group[0].resources: a group needs at least one resource"),
        format!("hbeat: {p}: link: no [[link]]"),
    ] {
        assert!(err.contains(&wanted), "missing {wanted:?} in:\n{err}");
    }
    let (code, _, err) = check(&dir.0.join("missing.toml"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.toml: cannot read"), "{err}");
}

#[test]
fn notify_and_socket_group_are_checked() {
    let dir = Dir::new("extra");
    let key = dir.file("authkey", KEY, 0o600);
    let path = config_with(
        &dir,
        &key,
        &["sleep 1000".into()],
        "notify = \"hbeat-no-such-notifier --all\"\nsocket_group = \"hbeat-no-such-group\"\n",
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("notify: `hbeat-no-such-notifier` not found in PATH"),
        "{err}"
    );
    assert!(
        err.contains("socket_group: no group named \"hbeat-no-such-group\""),
        "{err}"
    );
    let path = config_with(
        &dir,
        &key,
        &["sleep 1000".into()],
        "notify = \"true\"\nsocket_group = \"root\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_fence_command_that_cannot_run_is_caught() {
    let dir = Dir::new("fence");
    let key = dir.file("authkey", KEY, 0o600);
    let good = dir.file("fence-ok", "#!/bin/sh\nexit 0\n", 0o755);
    let path = config(&dir, &key, &["sleep 1000".into()]);
    let text = std::fs::read_to_string(&path).unwrap();
    let with = |fence: &str| {
        text.replace(
            "[[peer]]\nname = \"lb2\"\n",
            &format!("[[peer]]\nname = \"lb2\"\nfence = \"{fence}\"\n"),
        )
    };
    std::fs::write(&path, with("/nonexistent/fence_ipmilan -o off")).unwrap();
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("peer \"lb2\": fence: ") && err.contains("/nonexistent/fence_ipmilan"),
        "{err}"
    );
    std::fs::write(&path, with(&format!("{} lb2", good.display()))).unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{out}{err}");
}
