//! The systemd units in `contrib/systemd/` parse: `systemd-analyze verify` on each (with the
//! binaries replaced by `/bin/true`, which exists everywhere) reports nothing about our files — a
//! misspelt directive or value is only a warning to systemd, and a unit that silently loses
//! `KillMode=mixed` would stop hbeat's resources out of order.

use std::path::Path;
use std::process::Command;

#[test]
fn every_contrib_unit_passes_systemd_analyze_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let scratch = std::env::temp_dir().join(format!("lvs-units-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut units: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    assert!(
        units.len() >= 2,
        "expected ldir.service and hbeat.service in {}",
        root.display()
    );
    for unit in units {
        let text = std::fs::read_to_string(&unit).unwrap();
        let copy = scratch.join(unit.file_name().unwrap());
        let mut replaced = text.clone();
        for tool in ["hbeat", "ldir", "fakeip", "monitor"] {
            replaced = replaced.replace(&format!("/usr/sbin/{tool}"), "/bin/true");
        }
        std::fs::write(&copy, replaced).unwrap();
        let out = match Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
        {
            Ok(o) => o,
            Err(e) => panic!("systemd-analyze: {e} (install it: apt-get install systemd)"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(copy.to_str().unwrap()))
            .collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "{}: {}",
            unit.display(),
            stderr
        );
        // What the units promise in their comments and the docs.
        for needed in [
            "Type=notify",
            "ExecReload=",
            "WatchdogSec=",
            "Restart=on-failure",
        ] {
            assert!(text.contains(needed), "{}: no {needed}", unit.display());
        }
    }
    let hbeat = std::fs::read_to_string(root.join("hbeat.service")).unwrap();
    assert!(
        hbeat.contains("KillMode=mixed"),
        "hbeat stops its resources itself, in order"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}
