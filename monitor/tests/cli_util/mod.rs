//! What the `monitor probe` tests share: reading a run's output and checking its result lines.

use std::process::Output;

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks a text result line: `up 127.0.0.1:80 http 1.2ms 200 OK`.
#[track_caller]
pub fn line(l: &str, state: &str, target: &str, kind: &str, reason: &str) {
    let f: Vec<&str> = l.splitn(5, ' ').collect();
    assert_eq!(f.len(), 5, "{l:?}");
    assert_eq!(
        (f[0], f[1], f[2], f[4]),
        (state, target, kind, reason),
        "{l:?}"
    );
    assert!(
        f[3].ends_with("ms") && f[3].trim_end_matches("ms").parse::<f64>().is_ok(),
        "{l:?}"
    );
}
