use super::*;

/// A private directory removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("monitor-alert-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn script(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hosts() -> Vec<std::net::IpAddr> {
    vec!["192.0.2.13".parse().unwrap(), "192.0.2.14".parse().unwrap()]
}

fn ctx<'a>(id: &'a ServiceId, hosts: &'a [std::net::IpAddr], kind: AlertKind) -> Context<'a> {
    Context {
        id,
        kind,
        hosts,
        alert_every: Some(Duration::from_secs(3600)),
        time: 1_764_000_000,
        summary: "192.0.2.14: connection refused",
        detail: "192.0.2.14: connect to port 80: connection refused\n",
        retval: 1,
        status: OpStatus::Fail,
        description: Some("the web servers"),
        ack: None,
        first_failure: Some(1_763_999_000),
        last_failure: Some(1_764_000_000),
        last_success: Some(1_763_998_990),
        state_dir: Some(Path::new("/var/lib/monitor")),
    }
}

#[test]
fn the_argv_environment_and_input_are_mons() {
    let id = ServiceId::new("web", "http");
    let h = hosts();
    let inv = invocation(
        Path::new("/usr/lib/mon/alert.d/mail.alert"),
        &["ops@example.com".to_string()],
        &ctx(&id, &h, AlertKind::Failure),
    );
    assert_eq!(
        inv.argv,
        [
            "/usr/lib/mon/alert.d/mail.alert",
            "-s",
            "http",
            "-g",
            "web",
            "-h",
            "192.0.2.13 192.0.2.14",
            "-l",
            "3600",
            "-t",
            "1764000000",
            "ops@example.com"
        ]
    );
    let env: std::collections::BTreeMap<&str, &str> = inv
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["MON_ALERTTYPE"], "failure");
    assert_eq!(env["MON_OPSTATUS"], "0");
    assert_eq!(env["MON_RETVAL"], "1");
    assert_eq!(env["MON_GROUP"], "web");
    assert_eq!(env["MON_SERVICE"], "http");
    assert_eq!(env["MON_DESCRIPTION"], "the web servers");
    assert_eq!(env["MON_FIRST_FAILURE"], "1763999000");
    assert_eq!(env["MON_LAST_SUCCESS"], "1763998990");
    assert_eq!(env["MON_LAST_SUMMARY"], "192.0.2.14: connection refused");
    assert_eq!(env["MON_STATEDIR"], "/var/lib/monitor");
    assert!(!env.contains_key("MON_ACK"));
    assert_eq!(
        String::from_utf8(inv.stdin).unwrap(),
        "192.0.2.14: connection refused\n192.0.2.14: connect to port 80: connection refused\n"
    );
    // An upalert: -u after -t; no -l without alert_every; the ack comment when there is one.
    let mut c = ctx(&id, &h, AlertKind::Up);
    c.alert_every = None;
    c.ack = Some("on it");
    c.status = OpStatus::Ok;
    let inv = invocation(Path::new("/x/up.alert"), &[], &c);
    assert_eq!(
        inv.argv,
        [
            "/x/up.alert",
            "-s",
            "http",
            "-g",
            "web",
            "-h",
            "192.0.2.13 192.0.2.14",
            "-t",
            "1764000000",
            "-u"
        ]
    );
    assert!(inv.env.contains(&("MON_ACK".into(), "on it".into())));
    assert!(inv.env.contains(&("MON_ALERTTYPE".into(), "up".into())));
    assert!(inv.env.contains(&("MON_OPSTATUS".into(), "1".into())));
}

#[test]
fn alerts_are_found_in_the_directories_in_order() {
    let (a, b) = (Dir::new("dir-a"), Dir::new("dir-b"));
    let in_b = b.script("mail.alert", "exit 0", 0o755);
    let dirs = [a.0.clone(), b.0.clone()];
    assert_eq!(resolve("mail.alert", &dirs).unwrap(), in_b);
    let in_a = a.script("mail.alert", "exit 0", 0o755);
    assert_eq!(
        resolve("mail.alert", &dirs).unwrap(),
        in_a,
        "the first directory wins"
    );
    assert_eq!(resolve(in_b.to_str().unwrap(), &[]).unwrap(), in_b);
    let e = resolve("page.alert", &dirs).unwrap_err().to_string();
    assert!(
        e.contains("\"page.alert\" not found in") && e.contains("dir-a"),
        "{e}"
    );
    a.script("bad.alert", "exit 0", 0o644);
    let e = resolve("bad.alert", &dirs).unwrap_err().to_string();
    assert!(
        e.contains("is not executable (mode 0644): chmod +x it"),
        "{e}"
    );
}

#[tokio::test]
async fn a_recording_alert_receives_exactly_the_argv_environment_and_input() {
    let d = Dir::new("record");
    let rec = d.0.join("rec");
    let script = d.script(
        "record.alert",
        &format!(
            "printf '%s\\n' \"$@\" > {r}.argv; env | grep '^MON_' | sort > {r}.env; printf '%s' \"$MON_LAST_OUTPUT\" > {r}.output; cat > {r}.stdin",
            r = rec.display()
        ),
        0o755,
    );
    let id = ServiceId::new("web", "http");
    let h = hosts();
    let inv = invocation(
        &script,
        &["ops@example.com".into(), "two words".into()],
        &ctx(&id, &h, AlertKind::Failure),
    );
    run(&inv, Duration::from_secs(10)).await.unwrap();
    let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", rec.display())).unwrap();
    assert_eq!(read("argv").lines().collect::<Vec<_>>(), inv.argv[1..]);
    // Every variable (MON_LAST_OUTPUT, two lines long, compared on its own).
    let got = read("env");
    for (k, v) in &inv.env {
        if k == "MON_LAST_OUTPUT" {
            assert_eq!(&read("output"), v);
        } else {
            assert!(
                got.lines().any(|l| l == format!("{k}={v}")),
                "{k}={v} not in {got}"
            );
        }
    }
    assert_eq!(
        got.lines().filter(|l| l.starts_with("MON_")).count(),
        inv.env.len(),
        "{got}"
    );
    assert_eq!(read("stdin").as_bytes(), inv.stdin);
}

#[tokio::test]
async fn debians_file_alert_works_unchanged() {
    let file_alert = Path::new("/usr/lib/mon/alert.d/file.alert");
    assert!(
        file_alert.exists(),
        "Debian's mon alert scripts are missing: apt-get install mon (tests/lab deps installs it)"
    );
    let d = Dir::new("file-alert");
    let out = d.0.join("alerts.log");
    let id = ServiceId::new("web", "http");
    let h = hosts();
    let dirs = [PathBuf::from("/usr/lib/mon/alert.d")];
    let inv = invocation(
        &resolve("file.alert", &dirs).unwrap(),
        &[out.display().to_string()],
        &ctx(&id, &h, AlertKind::Failure),
    );
    run(&inv, Duration::from_secs(20)).await.unwrap();
    let log = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    // "failure web http 1764000000 (Mon Nov 24 ...) SUMMARY", then DESCR, OPSTATUS, the detail, "."
    assert!(
        lines[0].starts_with("failure web http 1764000000 (")
            && lines[0].ends_with(") 192.0.2.14: connection refused"),
        "{log}"
    );
    assert_eq!(
        lines[1..],
        [
            "DESCR=the web servers",
            "OPSTATUS=0",
            "192.0.2.14: connect to port 80: connection refused",
            "."
        ],
        "{log}"
    );
}

#[tokio::test]
async fn failing_hanging_and_chatty_alerts_are_bounded() {
    let d = Dir::new("bounded");
    let id = ServiceId::new("web", "http");
    let h = hosts();
    let c = ctx(&id, &h, AlertKind::Failure);
    let fail = d.script("fail.alert", "echo 'relay refused' >&2; exit 3", 0o755);
    let e = run(&invocation(&fail, &[], &c), Duration::from_secs(10))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("failed (exit status 3): relay refused"), "{e}");
    // Hangs with a child of its own: both killed at the timeout.
    let pidfile = d.0.join("pid");
    let hang = d.script(
        "hang.alert",
        &format!("sleep 1000 & echo $! > {}; wait", pidfile.display()),
        0o755,
    );
    let started = std::time::Instant::now();
    let e = run(&invocation(&hang, &[], &c), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, AlertError::TimedOut { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{child}")).exists()
        && !std::fs::read_to_string(format!("/proc/{child}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert's child {child} outlived it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Megabytes of output: read to the end (no blocked pipe), kept to OUTPUT_LIMIT.
    let chatty = d.script(
        "chatty.alert",
        "head -c 5000000 /dev/zero | tr '\\0' x; exit 0",
        0o755,
    );
    let out = run(&invocation(&chatty, &[], &c), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(out.len(), OUTPUT_LIMIT);
    // Output of megabytes from the probe: the variables and the input are cut, the exec works,
    // and an alert that does not read its input is fine.
    let deaf = d.script("deaf.alert", "exit 0", 0o755);
    let huge = "y".repeat(5 << 20);
    let big = Context { detail: &huge, ..c };
    let inv = invocation(&deaf, &[], &big);
    assert!(inv.env.iter().all(|(_, v)| v.len() <= ENV_LIMIT));
    assert_eq!(inv.stdin.len(), INPUT_LIMIT);
    run(&inv, Duration::from_secs(10)).await.unwrap();
    let wide = "é".repeat(ENV_LIMIT);
    assert!(
        cut(wide, ENV_LIMIT + 1).len() == ENV_LIMIT,
        "cut at a character boundary"
    );
}
