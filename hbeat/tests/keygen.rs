//! `hbeat keygen`: the binary prints a key file that the loader accepts, with a new key each time.

use std::path::Path;
use std::process::Command;

use hbeat::keys::KeyRing;

fn keygen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hbeat"))
        .arg("keygen")
        .args(args)
        .output()
        .expect("run hbeat keygen")
}

fn secret_line(text: &str) -> &str {
    text.lines().find(|l| !l.starts_with('#')).unwrap()
}

#[test]
fn prints_a_loadable_key_file_with_a_fresh_key() {
    let a = keygen(&[]);
    assert!(a.status.success(), "{a:?}");
    let a = String::from_utf8(a.stdout).unwrap();
    let ring = KeyRing::parse(&a, Path::new("stdout")).unwrap();
    assert_eq!(ring.ids().collect::<Vec<_>>(), [1]);
    let b = String::from_utf8(keygen(&[]).stdout).unwrap();
    assert_ne!(
        secret_line(&a),
        secret_line(&b),
        "two runs gave the same key"
    );
    // What an operator does with it: write it 0600 and start (here: load) with it.
    let dir = std::env::temp_dir().join(format!("hbeat-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("authkey");
    std::fs::write(&path, &a).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(KeyRing::load(&path).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn id_option_and_its_range() {
    let out = keygen(&["--id", "42"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(secret_line(&text).starts_with("42 "), "{text}");
    for bad in ["0", "256", "x"] {
        let out = keygen(&["--id", bad]);
        assert_eq!(out.status.code(), Some(2), "--id {bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("--id"), "--id {bad}: {err}");
    }
}
